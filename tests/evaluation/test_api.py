"""The evaluation over the live API and console, on SQLite and PostgreSQL: the bureau
runs, publishes and recomputes a month (audited); a department reads the ranking and its
own detail but not another's; the scheme is versioned; the exports open and show the
stored numbers; bad input gets the error envelope."""

from __future__ import annotations

import io
import itertools
import re
import subprocess
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from openpyxl import load_workbook
from sqlalchemy import select

from govshare.catalog.models import Resource
from govshare.rules.clock import fixed_today
from govshare.security.models import AuditEntry
from tests.factories import Dept, World

# The platform stands on a fixed day far after the records the tests write, so every
# record counts in the evaluated months whatever day the suite runs on.
DAY = date(2031, 6, 10)
_months = itertools.count(1)


@pytest.fixture(autouse=True)
def _on_a_fixed_day() -> Iterator[None]:
    with fixed_today(DAY):
        yield


def _month() -> str:
    """A month of 2030 no other test of this session has evaluated."""
    return f"2030-{next(_months):02d}"


def _scene(world: World) -> tuple[Dept, Dept, int]:
    a = world.department("考核甲局")
    b = world.department("考核乙局")
    complete = world.published(a)["id"]
    incomplete = world.published(a)["id"]
    with world.hub.db() as s:
        r = s.get(Resource, incomplete)
        assert r is not None
        r.abstract = ""  # an entry that lost a core field
    return a, b, complete


def _run(world: World, month: str, **body: bool) -> dict[str, object]:
    with world.api(world.admin) as c:
        r = c.post(f"/api/v1/evaluation/runs/{month}", json=body or None)
        assert r.status_code == 200, r.text
        return dict(r.json())


def test_department_sees_ranking_and_only_its_own_detail(world: World) -> None:
    a, b, _ = _scene(world)
    month = _month()
    _run(world, month)
    with world.api(a.registrar) as c:
        ranking = c.get(f"/api/v1/evaluation/runs/{month}").json()["ranking"]
        assert {r["department_id"] for r in ranking} >= {a.id, b.id}
        own = c.get(f"/api/v1/evaluation/runs/{month}/departments/{a.id}")
        assert own.status_code == 200
        assert own.json()["indicators"]["catalog_complete"] == {
            "records": 2,
            "hits": 1,
            "total": 2.0,
            "value": 50.0,
        }
        # The department is new in this month, so its year to date is this month alone.
        year = own.json()["year_to_date"]
        assert year["months"] == 1
        assert (
            year["indicators"]["catalog_complete"] == own.json()["indicators"]["catalog_complete"]
        )
        mine_ranked = next(r for r in ranking if r["department_id"] == a.id)
        assert mine_ranked["year_to_date_score"] == year["score"] == own.json()["score"]
        other = c.get(f"/api/v1/evaluation/runs/{month}/departments/{b.id}")
        assert other.status_code == 403
        assert other.json()["error"]["code"] == "permission_denied"
        path = f"/api/v1/evaluation/runs/{month}/departments/{b.id}/indicators/"
        path += "catalog_complete/records"
        assert c.get(path).status_code == 403
        assert c.get(f"/evaluation/departments/{b.id}?month={month}").status_code == 403
        page = c.get(f"/evaluation?month={month}")
        assert page.status_code == 200
        assert a.name in page.text
        assert b.name in page.text
        assert f'href="/evaluation/departments/{b.id}?' not in page.text
        mine = c.get(f"/evaluation/departments/{a.id}?month={month}")
        assert mine.status_code == 200
        assert "目录核心元数据完整率" in mine.text
        # Only the bureau runs, publishes and exports.
        assert c.post(f"/api/v1/evaluation/runs/{month}/publish").status_code == 403
        assert c.post(f"/api/v1/evaluation/runs/{month}").status_code == 403
        assert c.get(f"/api/v1/evaluation/runs/{month}/export.xlsx").status_code == 403


def test_drilldown_over_the_api_lists_the_counted_entries(world: World) -> None:
    a, _, complete = _scene(world)
    month = _month()
    _run(world, month)
    with world.api(a.registrar) as c:
        r = c.get(
            f"/api/v1/evaluation/runs/{month}/departments/{a.id}/indicators/catalog_complete/records"
        )
        assert r.status_code == 200, r.text
        body = r.json()
    assert (body["total"], body["hits"]) == (2, 1)
    hit = [i for i in body["items"] if i["hit"]]
    assert [i["record_id"] for i in hit] == [complete]
    assert hit[0]["cells"]["状态"] == "已发布"


def test_publish_freezes_the_month_and_recompute_is_audited(world: World) -> None:
    a, _, _ = _scene(world)
    month = _month()
    _run(world, month)
    with world.api(world.admin) as c:
        assert c.post(f"/api/v1/evaluation/runs/{month}/publish").status_code == 200
        world.published(a)  # later data
        again = c.post(f"/api/v1/evaluation/runs/{month}")
        assert again.status_code == 409
        assert again.json()["error"]["code"] == "evaluation_month_published"
        before = c.get(f"/api/v1/evaluation/runs/{month}/departments/{a.id}").json()
        assert before["indicators"]["catalog_complete"]["records"] == 2
        _run(world, month, recompute=True)
        after = c.get(f"/api/v1/evaluation/runs/{month}/departments/{a.id}").json()
        assert after["indicators"]["catalog_complete"]["records"] == 3
        assert c.get(f"/api/v1/evaluation/runs/{month}").json()["status"] == "published"
    with world.hub.db() as s:
        actions = s.scalars(
            select(AuditEntry.action)
            .where(AuditEntry.object_type == "evaluation_run", AuditEntry.object_id == month)
            .order_by(AuditEntry.seq)
        ).all()
    assert actions == ["evaluation.run", "evaluation.publish", "evaluation.recompute"]


def test_a_month_not_over_and_bad_months_are_refused(world: World) -> None:
    with world.api(world.admin) as c:
        r = c.post("/api/v1/evaluation/runs/2031-06")
        assert r.status_code == 409
        assert r.json()["error"]["code"] == "evaluation_month_not_over"
        for bad in ("2031-13", "june", "2031-1", "9999999999"):
            r = c.post(f"/api/v1/evaluation/runs/{bad}")
            assert r.status_code == 422, bad
            assert r.json()["error"]["code"] == "invalid_evaluation_month"
        assert c.get("/api/v1/evaluation/runs/1999-01").status_code == 422
        assert c.get("/api/v1/evaluation/runs/2001-01").status_code == 404


def test_scheme_is_versioned_and_checked(world: World) -> None:
    with world.api(world.admin) as c:
        current = c.get("/api/v1/evaluation/scheme").json()
        bad = c.put(
            "/api/v1/evaluation/scheme",
            json={
                "weights": {"nonsense": 5},
                "thresholds": {"excellent": 50, "good": 70, "pass": 60},
            },
        )
        assert bad.status_code == 422
        assert {d["field"] for d in bad.json()["error"]["details"]} >= {"weights.nonsense"}
        assert c.get("/api/v1/evaluation/scheme").json()["version"] == current["version"]
        ok = c.put(
            "/api/v1/evaluation/scheme",
            json={
                "weights": {"catalog_complete": 100},
                "thresholds": {"excellent": 95, "good": 80, "pass": 60},
                "note": "只考核编目",
            },
        )
        assert ok.status_code == 200, ok.text
        assert ok.json()["version"] == current["version"] + 1
        assert ok.json()["weights"]["answer_on_time"] == 0
        versions = [s["version"] for s in c.get("/api/v1/evaluation/schemes").json()]
        assert versions[0] == current["version"] + 1
        # Put the defaults back for the other tests of the session.
        c.put(
            "/api/v1/evaluation/scheme",
            json={k: current[k] for k in ("weights", "thresholds", "dispute_penalty")},
        )


def test_exports_open_and_show_the_stored_numbers(world: World, tmp_path: Path) -> None:
    a, _, _ = _scene(world)
    month = _month()
    _run(world, month)
    with world.api(world.admin) as c:
        x = c.get(f"/api/v1/evaluation/runs/{month}/export.xlsx")
        assert x.status_code == 200
    wb = load_workbook(io.BytesIO(x.content), read_only=True)
    assert wb.sheetnames[0] == "排名"
    assert {"目录核心元数据完整率", "申请按时答复率", "平台指标", "指标口径"} <= set(wb.sheetnames)
    rows = list(wb["目录核心元数据完整率"].iter_rows(values_only=True))
    assert rows[0] == ("部门", "分子（核心元数据完整）", "记录数", "值")
    assert (a.name, 1, 2, 50) in rows
    year = list(wb["年度累计"].iter_rows(values_only=True))
    assert year[0][:5] == ("年度排名", "部门", "年度得分", "等级", "计入月数")
    mine = next(row for row in year if row[1] == a.name)
    assert mine[4] == 1
    assert mine[5] == 50
    with world.api(a.registrar) as c:
        p = c.get(f"/api/v1/evaluation/runs/{month}/report.pdf", params={"department_id": a.id})
        assert p.status_code == 200
        assert p.headers["content-type"] == "application/pdf"
    pdf = tmp_path / "report.pdf"
    pdf.write_bytes(p.content)
    subprocess.run(["pdftoppm", "-png", "-r", "40", str(pdf), str(tmp_path / "page")], check=True)
    pages = sorted(tmp_path.glob("page*.png"))
    assert pages
    assert all(page.stat().st_size > 1000 for page in pages)
    text = subprocess.run(
        ["pdftotext", str(pdf), "-"], check=True, capture_output=True, text=True
    ).stdout
    assert a.name in text
    assert "目录核心元数据完整率" in text
    assert "年度累计" in text
    # The footer comes from the report's stylesheet (@page): the sheet was applied.
    assert re.search(r"第\s*1\s*页\s*/\s*共", text)
