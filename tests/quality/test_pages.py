"""The quality console over real HTTP: the overview, a resource's page with its trend
and failing values, the rules editor with Chinese messages, and the owner checks."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from govshare.db import utcnow
from govshare.quality import scan as scanning
from govshare.quality import service
from govshare.sharing.models import SharedStore
from govshare.sharing.store import SharedDatabase
from tests.catalog.console import csrf_of, signed_in
from tests.factories import World
from tests.quality.builders import StoreScene, planted, store_with_rows
from tests.sharing.builders import principal


@pytest.fixture
def scene(world: World) -> StoreScene:
    return store_with_rows(world, world.department("公安局"), planted().rows, applied_at=utcnow())


def test_scan_from_the_console_then_read_the_trend_and_the_failing_values(
    world: World, scene: StoreScene
) -> None:
    with signed_in(world, scene.provider.resource_admin) as c:
        page = c.get(f"/quality/resources/{scene.resource_id}")
        assert page.status_code == 200
        assert "尚未检测" in page.text
        csrf = csrf_of(c)
        for _ in range(2):
            r = c.post(f"/quality/resources/{scene.resource_id}/scan", data={"csrf_token": csrf})
            assert r.status_code == 303, r.text
        page = c.get(r.headers["location"])
        assert page.status_code == 200
        assert "检测已完成" in page.text
        assert 'data-series-chart="chart-quality-trend"' in page.text
        assert "下载问题数据（XLSX）" in page.text
        assert "行政区划代码 999999 不在 GB/T 2260 代码表中" in page.text
        assert len(re.findall(r"<tr><td><code>", page.text)) == 14
        overview = c.get("/quality")
        assert f'/quality/resources/{scene.resource_id}"' in overview.text
        assert "数据质量" in c.get("/").text  # in the navigation


def test_rules_editor_saves_and_says_what_is_wrong_in_chinese(
    world: World, scene: StoreScene
) -> None:
    url = f"/quality/resources/{scene.resource_id}/rules"
    with signed_in(world, scene.provider.resource_admin) as c:
        page = c.get(url)
        assert page.status_code == 200
        assert "自动生成" in page.text
        form = _form(page.text)
        form["csrf_token"] = csrf_of(c)
        xb = _row(page.text, "xb")
        form[f"{xb}format"] = "code_table"
        form[f"{xb}code_table"] = ""
        r = c.post(url, data=form)
        assert r.status_code == 422
        assert "性别：请选择代码表" in r.text
        form[f"{xb}code_table"] = "GB/T 2261.1"
        r = c.post(url, data=form)
        assert r.status_code == 303, r.text
        page = c.get(r.headers["location"])
        assert "质量规则已保存" in page.text
        assert "已修改" in page.text
    other = world.department("民政局")
    with signed_in(world, other.resource_admin) as c:
        assert c.get(url).status_code == 403
        form["csrf_token"] = csrf_of(c)
        assert c.post(url, data=form).status_code == 403
        assert c.get(f"/quality/resources/{scene.resource_id}").status_code == 403


def _row(html: str, code: str) -> str:
    found = re.search(rf'<tr id="rule-{code}">.*?name="(r\d+\.)required"', html, re.S)
    assert found
    return found.group(1)


def _form(html: str) -> dict[str, str]:
    """The editor's fields as the browser would post them unchanged."""
    form: dict[str, str] = {}
    for name, value in re.findall(r'<input name="(r\d+\.\w+)" value="([^"]*)"', html):
        form[name] = value
    for name, value in re.findall(r'<input type="date" name="(r\d+\.\w+)" value="([^"]*)"', html):
        form[name] = value
    for name in re.findall(r'name="(r\d+\.required)" value="1"[^>]*checked', html):
        form[name] = "1"
    for name, body in re.findall(r'<select name="(r\d+\.\w+)"[^>]*>(.*?)</select>', html, re.S):
        chosen = re.search(r'<option value="([^"]*)" selected>', body)
        form[name] = chosen.group(1) if chosen else ""
    return form


def test_the_overview_shows_the_departments_daily_trend(world: World, scene: StoreScene) -> None:
    db = SharedDatabase.of(world.hub.settings)
    now = utcnow()
    try:
        with world.hub.db() as s:
            store = s.get(SharedStore, scene.store_id)
            assert store is not None
            for days_ago in (3, 3, 1):
                scanning.scan_store(s, db, store, now=now - timedelta(days=days_ago))
            me = principal(scene.provider.resource_admin, scene.provider.id)
            days = service.daily_scores(s, me, since=now - timedelta(days=30))
    finally:
        db.close()
    assert len(days) == 2  # two scans on one day make one point
    with signed_in(world, scene.provider.resource_admin) as c:
        page = c.get("/quality")
    assert 'data-series-chart="chart-quality-days"' in page.text
    assert "本部门综合得分趋势" in page.text
