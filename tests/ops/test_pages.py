"""运维监控 page: the platform admin sees readiness, charts with real figures and the
API's errors; nobody else sees it."""

from __future__ import annotations

import json
import re
from contextlib import closing
from datetime import date
from html import unescape

import httpx
import pytest

from govshare.catalog import search
from govshare.exchange import alerts
from govshare.exchange.models import AlertKind
from govshare.rules.clock import fixed_today
from tests.factories import PASSWORD, World
from tests.web.test_pages import sign_in


@pytest.fixture(autouse=True)
def _dictionary_loaded() -> None:
    # The hub loads jieba's dictionary on a timer thread a few seconds after it starts;
    # loaded here first, that thread's import cannot race pytest's warning filters.
    search.warm_up()


def _signed_in(world: World, who: str) -> httpx.Client:
    client = httpx.Client(base_url=world.hub.base_url, timeout=30)
    assert sign_in(client, who, PASSWORD).status_code == 303
    return client


def _chart(page: str, chart_id: str) -> dict[str, object]:
    found = re.search(
        rf'<script type="application/json" id="{chart_id}">(.*?)</script>', page, re.S
    )
    assert found, chart_id
    return json.loads(unescape(found.group(1)))  # type: ignore[no-any-return]


def test_the_admin_sees_readiness_traffic_and_alerts(world: World) -> None:
    with world.hub.db() as s:
        alerts.raise_alert(s, AlertKind.DATABASE_ERROR, "测试：数据库连接中断")
    with world.api() as c:  # an API error the page must count
        assert c.get("/api/v1/catalog/resources").status_code == 401
    with closing(_signed_in(world, world.admin)) as c, fixed_today(date(2026, 3, 2)):
        r = c.get("/ops")
        assert r.status_code == 200
        page = r.text
        assert 'href="/ops"' in page  # in the navigation
        for name in ("database", "bus", "shared_stores", "disk", "calendar"):
            assert f'data-check="{name}"' in page
        assert "节假日历已知至 2026-05-01" in page
        assert "calendar known through" not in page  # the console shows the Chinese part
        api = _chart(page, "chart-api")
        assert api["labels"] == ["成功", "重定向", "请求错误", "服务器错误"]
        series = api["series"]
        assert isinstance(series, list)
        assert series[0]["values"][2] >= 1  # the 401 above
        kinds = _chart(page, "chart-alerts")
        assert "数据库错误" in kinds["labels"]  # type: ignore[operator]
        assert len(_chart(page, "chart-calls")["labels"]) == 14  # type: ignore[arg-type]


def test_nobody_else_sees_it(world: World) -> None:
    dept = world.department()
    for who in (world.auditor, dept.resource_admin, dept.registrar):
        with closing(_signed_in(world, who)) as c:
            assert c.get("/ops").status_code == 403
            assert 'href="/ops"' not in c.get("/").text
    with httpx.Client(base_url=world.hub.base_url, timeout=30) as c:
        r = c.get("/ops")
        assert r.status_code == 303
        assert r.headers["location"].startswith("/login?next=")


def test_the_dashboard_shows_how_old_the_last_good_backup_is(world: World) -> None:
    from datetime import timedelta

    from govshare.db import utcnow
    from govshare.ops.models import BackupRun, BackupStatus

    now = utcnow()
    with world.hub.db() as s:
        s.add(
            BackupRun(
                trigger="manual",
                dest="/backups/a",
                status=BackupStatus.SUCCEEDED,
                started_at=now - timedelta(hours=5, minutes=10),
                finished_at=now - timedelta(hours=5, minutes=1),
            )
        )
        s.add(
            BackupRun(
                trigger="schedule",
                dest="/backups/b",
                status=BackupStatus.FAILED,
                started_at=now - timedelta(hours=1),
                finished_at=now - timedelta(hours=1),
                message="磁盘已满",
            )
        )
    with closing(_signed_in(world, world.admin)) as c:
        page = c.get("/ops").text
    card = re.search(
        r'<span class="stat-value">([^<]*)</span><span class="stat-label">最近备份', page
    )
    assert card is not None
    assert card.group(1) == "5 小时前"
    assert "失败 · <code>磁盘已满</code>" in page
