"""使用情况统计 of open data: page views added up in memory and written in batches,
downloads and API calls counted as served, and the console page that shows them per
day and per dataset — a department its own, the platform all. The day is fixed."""

from __future__ import annotations

import json
import re
from datetime import date, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from govshare.opendata.datasets import slug_of
from govshare.opendata.models import OpenDownload
from govshare.opendata.portal import count_download
from govshare.opendata.usage import ViewCounter
from govshare.rules.clock import fixed_today
from tests.catalog.console import signed_in
from tests.factories import World, unique
from tests.live import LiveHub

pytestmark = pytest.mark.xdist_group("opendata")
DAY = date(2026, 6, 15)


def _chart(page: str) -> dict[str, Any]:
    found = re.search(r'<script type="application/json" id="chart-open-usage">(.*?)</script>', page)
    assert found, page
    return dict(json.loads(found.group(1)))


def _total(page: str, key: str) -> int:
    found = re.search(rf'id="total-{key}">(\d+)<', page)
    assert found, page
    return int(found.group(1))


def _views(hub: LiveHub, resource_id: int) -> int:
    with hub.db() as s:
        rows = s.scalars(
            select(OpenDownload.count).where(
                OpenDownload.resource_id == resource_id, OpenDownload.format == "view"
            )
        )
        return sum(rows)


def test_views_are_written_in_batches_and_on_flush(hub: LiveHub, world: World) -> None:
    dept = world.department("浏览局")
    entry = world.published(dept, is_open=True, name=unique("公园名录"))
    counter = ViewCounter(hub.session_factory, flush_seconds=3600)
    with fixed_today(DAY):
        for _ in range(3):
            counter.add(entry["id"])
        assert _views(hub, entry["id"]) == 0
        counter.flush()
        assert _views(hub, entry["id"]) == 3
        counter.flush()  # nothing pending: nothing written twice
        assert _views(hub, entry["id"]) == 3
    due = ViewCounter(hub.session_factory, flush_seconds=0)
    due.add(entry["id"])
    assert _views(hub, entry["id"]) == 4


def test_the_portal_counts_page_views_apart_from_downloads(hub: LiveHub, world: World) -> None:
    dept = world.department("浏览局")
    entry = world.published(dept, is_open=True, name=unique("公园名录"))
    app = hub.server.config.app
    with hub.client() as c:
        for _ in range(4):
            assert c.get(f"/open/datasets/{slug_of(entry['code'])}").status_code == 200
        app.state.open_views.flush()
        assert _views(hub, entry["id"]) == 4
        page = c.get(f"/open/datasets/{slug_of(entry['code'])}").text
    # Views are not downloads: the dataset page shows no 下载次数 for them.
    assert "下载次数" not in page


def _scenery(world: World) -> tuple[Any, dict[str, Any], dict[str, Any]]:
    mine = world.department("统计局")
    theirs = world.department("别的局")
    a = world.published(mine, is_open=True, name=unique("公交站点"))
    b = world.published(theirs, is_open=True, name=unique("停车场"))
    with world.hub.db() as s:
        count_download(s, a["id"], "view", n=5, day=DAY - timedelta(days=1))
        count_download(s, a["id"], "csv", n=2, day=DAY)
        count_download(s, a["id"], "file", n=1, day=DAY)
        count_download(s, a["id"], "api", n=7, day=DAY - timedelta(days=2))
        count_download(s, a["id"], "view", n=50, day=DAY - timedelta(days=40))
        count_download(s, a["id"], "view", n=9, day=DAY + timedelta(days=1))  # tomorrow
        count_download(s, b["id"], "view", n=100, day=DAY)
    return mine, a, b


def test_a_department_sees_its_own_datasets_use_per_day(world: World) -> None:
    mine, a, b = _scenery(world)
    with fixed_today(DAY), signed_in(world, mine.registrar) as c:
        page = c.get("/open-usage").text
        assert (_total(page, "views"), _total(page, "downloads"), _total(page, "api")) == (5, 3, 7)
        assert a["name"] in page
        assert b["name"] not in page
        chart = _chart(page)
        assert len(chart["labels"]) == 30
        assert chart["labels"][-1] == "06-15"
        views, downloads, api = (s["values"] for s in chart["series"])
        assert views[-2] == 5
        assert downloads[-1] == 3
        assert api[-3] == 7
        assert sum(views) + sum(downloads) + sum(api) == 15
        # Ninety days reach the views of 40 days ago.
        assert _total(c.get("/open-usage", params={"days": "90"}).text, "views") == 55
        # One dataset; someone else's dataset id shows nothing of it.
        one = c.get("/open-usage", params={"days": "7", "resource": str(a["id"])}).text
        assert _total(one, "api") == 7
        assert len(_chart(one)["labels"]) == 7
        other = c.get("/open-usage", params={"resource": str(b["id"])}).text
        assert _total(other, "views") == 0
        for crafted in ("-1", "abc", "99999999999999999999", ""):
            r = c.get("/open-usage", params={"resource": crafted, "days": crafted})
            assert r.status_code == 200, crafted


def test_the_platform_sees_every_department(world: World) -> None:
    _, a, b = _scenery(world)
    with fixed_today(DAY), signed_in(world, world.admin) as c:
        page = c.get("/open-usage").text
    assert a["name"] in page
    assert b["name"] in page
    assert _total(page, "views") >= 105
