"""A month's indicators from fixtures with known late answers, incomplete entries and
silent resources, on SQLite and PostgreSQL: exactly the expected numbers, the
drill-down lists exactly the records counted, and a published month does not move."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from govshare.catalog.codes import ResourceStatus
from govshare.config import Settings
from govshare.evaluation import service
from govshare.evaluation.errors import MonthNotOver, MonthPublished
from govshare.evaluation.indicators import Month
from govshare.evaluation.models import EvaluationResult, RunStatus
from govshare.security.audit import SYSTEM
from govshare.security.models import Department
from govshare.security.roles import Role
from govshare.sharing.models import ApplicationStatus
from tests.evaluation.builders import (
    application,
    department,
    entry,
    objection,
    session_for,
    system,
    task,
)
from tests.sharing.builders import principal

NOV = Month(2026, 11)
TODAY = date(2026, 12, 3)


def _scene(settings: Settings) -> dict[str, int]:
    """公安局: 4 registered entries (1 without items, 1 conditional without its
    conditions), 1 draft; 2 systems (1 catalogued); 3 applications due in November (1
    late, 1 never answered), 1 refused; 1 objection answered late; 2 daily tasks (one
    silent since September). 民政局 asks and does nothing else."""
    with session_for(settings) as s:
        police = department(s, "公安局")
        civil = department(s, "民政局")
        sys_a = system(s, police)
        system(s, police)
        ok = entry(s, police, system_id=sys_a.id)
        no_items = entry(s, police, items=0)
        no_conditions = entry(s, police, sharing_conditions="")
        stale = entry(s, police, updated_at=datetime(2025, 6, 1, tzinfo=UTC))
        entry(s, police, status=ResourceStatus.DRAFT, abstract="")
        application(s, ok, civil, answer_due=date(2026, 11, 10), answered_on=date(2026, 11, 9))
        application(s, ok, civil, answer_due=date(2026, 11, 12), answered_on=date(2026, 11, 16))
        application(
            s,
            ok,
            civil,
            answer_due=date(2026, 11, 20),
            answered_on=None,
            status=ApplicationStatus.SUBMITTED,
        )
        application(
            s,
            stale,
            civil,
            answer_due=date(2026, 12, 2),
            answered_on=date(2026, 11, 30),
            status=ApplicationStatus.REFUSED,
        )
        objection(s, ok, civil, due=date(2026, 11, 5), answered=date(2026, 11, 6))
        task(s, ok, [datetime(2026, 11, 29, 16, tzinfo=UTC)])
        task(s, stale, [datetime(2026, 9, 1, tzinfo=UTC)])
        return {
            "police": police.id,
            "civil": civil.id,
            "ok": ok.id,
            "no_items": no_items.id,
            "no_conditions": no_conditions.id,
            "stale": stale.id,
        }


def test_month_indicators_are_exact(fresh_settings: Settings) -> None:
    ids = _scene(fresh_settings)
    with session_for(fresh_settings) as s:
        run = service.run_month(s, SYSTEM, NOV, today=TODAY)
        police = (
            s.query(EvaluationResult).filter_by(run_id=run.id, department_id=ids["police"]).one()
        )
        got = {k: (v["hits"], v["records"], v["value"]) for k, v in police.indicators.items()}
    assert got["catalog_complete"] == (2, 4, 50.0)
    assert got["catalog_reviewed"] == (3, 4, 75.0)
    assert got["system_coverage"] == (1, 2, 50.0)
    assert got["data_timely"] == (1, 2, 50.0)
    assert got["answer_on_time"] == (1, 3, 33.33)
    assert got["refusal_rate"] == (1, 3, 33.33)  # answered in November: 3, 1 refused
    assert got["objection_on_time"] == (0, 1, 0.0)
    assert got["provide_on_time"] == (0, 0, None)
    assert got["quality"] == (0, 0, None)
    assert got["disputes_lost"][1] == 0
    # Weighted mean of the rates that apply, refusal counted as 100 - rate.
    weights = service.DEFAULT_WEIGHTS
    parts = {
        "catalog_complete": 50.0,
        "system_coverage": 50.0,
        "catalog_reviewed": 75.0,
        "data_timely": 50.0,
        "answer_on_time": 33.33,
        "refusal_rate": 100 - 33.33,
        "objection_on_time": 0.0,
    }
    expected = round(
        sum(weights[k] * v for k, v in parts.items()) / sum(weights[k] for k in parts), 2
    )
    assert police.score == expected


def test_drilldown_lists_exactly_the_counted_records(fresh_settings: Settings) -> None:
    ids = _scene(fresh_settings)
    admin = principal("admin", ids["police"], Role.PLATFORM_ADMIN)
    with session_for(fresh_settings) as s:
        run = service.run_month(s, SYSTEM, NOV, today=TODAY)
        facts = service.facts(s, admin, run, "catalog_complete", ids["police"])
        misses = {f.record_id for f in facts if not f.hit}
        hits = {f.record_id for f in facts if f.hit}
    assert misses == {ids["no_items"], ids["no_conditions"]}
    assert hits == {ids["ok"], ids["stale"]}


def test_published_month_does_not_change(fresh_settings: Settings) -> None:
    ids = _scene(fresh_settings)
    admin = principal("admin", ids["police"], Role.PLATFORM_ADMIN)
    with session_for(fresh_settings) as s:
        with pytest.raises(MonthNotOver):
            service.run_month(s, SYSTEM, NOV, today=date(2026, 11, 30))
        service.run_month(s, SYSTEM, NOV, today=TODAY)
        run = service.publish_run(s, admin, str(NOV))
        before = service.get_result(s, admin, run, ids["police"]).indicators
    with session_for(fresh_settings) as s:
        dept = s.get(Department, ids["police"])
        assert dept is not None
        entry(s, dept, items=0)  # a new incomplete entry arrives
    with session_for(fresh_settings) as s:
        with pytest.raises(MonthPublished):
            service.run_month(s, SYSTEM, NOV, today=TODAY)
        run = service.get_run(s, str(NOV))
        assert run.status is RunStatus.PUBLISHED
        assert service.get_result(s, admin, run, ids["police"]).indicators == before
        rerun = service.run_month(s, admin.actor, NOV, today=TODAY, recompute=True)
        after = service.get_result(s, admin, rerun, ids["police"]).indicators
    assert after["catalog_complete"]["records"] == 5
    assert before["catalog_complete"]["records"] == 4
