"""Console pages of the evaluation: the bureau's run button, publish button and scheme
form (errors beside the fields, a new version on save); the drill-down page lists the
records; a department without the bureau's permission cannot post."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date

import pytest

from govshare.rules.clock import fixed_today
from tests.factories import World

DAY = date(2032, 3, 10)


@pytest.fixture(autouse=True)
def _on_a_fixed_day() -> Iterator[None]:
    with fixed_today(DAY):
        yield


def test_run_publish_and_drill_down_from_the_console(world: World) -> None:
    a = world.department("页面考核局")
    world.published(a)
    with world.api(world.admin) as c:
        page = c.get("/evaluation")
        assert page.status_code == 200
        assert "立即考核" in page.text
        r = c.post("/evaluation/run", data={"month": "2032-02"})
        assert r.status_code == 303
        assert r.headers["location"] == "/evaluation?month=2032-02&done=ran"
        shown = c.get("/evaluation?month=2032-02")
        assert "考核已完成" not in shown.text  # the notice needs done=
        assert a.name in shown.text
        assert "发布 2032-02" in shown.text
        assert "共享部门覆盖率" in shown.text
        drill = c.get(
            f"/evaluation/departments/{a.id}/records?indicator=catalog_complete&month=2032-02"
        )
        assert drill.status_code == 200
        assert drill.text.count('class="hit"') == 1
        platform = c.get("/evaluation/departments/0/records?indicator=dept_coverage&month=2032-02")
        assert platform.status_code == 200
        assert a.name in platform.text
        assert c.post("/evaluation/publish", data={"month": "2032-02"}).status_code == 303
        again = c.post("/evaluation/run", data={"month": "2032-02"})
        assert again.status_code == 409
        bad = c.post("/evaluation/run", data={"month": "二月"})
        assert bad.status_code == 422
    with world.api(a.registrar) as c:
        assert c.post("/evaluation/run", data={"month": "2032-01"}).status_code == 403
        assert c.get("/evaluation/scheme").status_code == 403


def test_scheme_form_shows_errors_and_saves_a_version(world: World) -> None:
    with world.api(world.admin) as c:
        form = c.get("/evaluation/scheme")
        assert form.status_code == 200
        assert "保存为新版本" in form.text
        bad = c.post(
            "/evaluation/scheme",
            data={
                "w_catalog_complete": "很多",
                "t_excellent": "90",
                "t_good": "75",
                "t_pass": "60",
            },
        )
        assert bad.status_code == 422
        assert "应为数字" in bad.text
        order = c.post(
            "/evaluation/scheme",
            data={"w_catalog_complete": "10", "t_excellent": "50", "t_good": "75", "t_pass": "60"},
        )
        assert order.status_code == 422
        assert "优秀线 ≥ 良好线 ≥ 合格线" in order.text
        before = c.get("/api/v1/evaluation/scheme").json()
        ok = c.post(
            "/evaluation/scheme",
            data={
                **{f"w_{k}": str(v) for k, v in before["weights"].items()},
                **{f"t_{k}": str(v) for k, v in before["thresholds"].items()},
                "dispute_penalty": "3",
                "note": "扣分调整",
            },
        )
        assert ok.status_code == 303
        after = c.get("/api/v1/evaluation/scheme").json()
        assert (after["version"], after["dispute_penalty"]) == (before["version"] + 1, 3.0)


def test_year_to_date_on_the_pages_with_its_months(world: World) -> None:
    """Two months of 2031 run: the department page shows the year's score, the ranking
    its column, and the drill-down lists each month behind the year's figure. When an
    earlier month is recomputed later, the page says the stored figure stands."""
    a = world.department("年度累计局")
    world.published(a)
    with world.api(world.admin) as c:
        for month in ("2031-07", "2031-08"):
            assert c.post("/evaluation/run", data={"month": month}).status_code == 303
        ranking = c.get("/evaluation?month=2031-08")
        assert "年度累计得分" in ranking.text
        dept = c.get(f"/evaluation/departments/{a.id}?month=2031-08")
        assert dept.status_code == 200
        assert 'id="year-summary"' in dept.text
        assert "2031 年累计（2 个月）" in dept.text
        # 目录核心元数据完整率: one complete entry, counted in each month.
        row = dept.text.split('id="ind-catalog_complete"')[1].split("</tr>")[0]
        assert re.search(r'class="num year">.*100\.00%.*2 / 2', row, re.S)
        drill_path = f"/evaluation/departments/{a.id}/records?indicator=catalog_complete"
        drill = c.get(f"{drill_path}&month=2031-08")
        assert 'id="year-months"' in drill.text
        for month in ("2031-07", "2031-08"):
            assert f"&month={month}" in drill.text
        assert "重新计算过" not in drill.text
        world.published(a)  # a second entry arrives; July is computed again
        assert c.post("/evaluation/run", data={"month": "2031-07"}).status_code == 303
        again = c.get(f"{drill_path}&month=2031-08")
        assert "重新计算过" in again.text
