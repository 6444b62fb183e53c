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


def _two_months(settings: Settings) -> dict[str, int]:
    """公安局 answers 2 of 2 applications due in October on time and 1 of 3 due in
    November; 民政局 answers its one October application late and none in November."""
    with session_for(settings) as s:
        police = department(s, "公安局")
        civil = department(s, "民政局")
        police_entry = entry(s, police)
        civil_entry = entry(s, civil)
        for due, answered in [
            (date(2026, 10, 12), date(2026, 10, 9)),
            (date(2026, 10, 20), date(2026, 10, 20)),
            (date(2026, 11, 10), date(2026, 11, 9)),
            (date(2026, 11, 12), date(2026, 11, 16)),
            (date(2026, 11, 20), date(2026, 11, 23)),
        ]:
            application(s, police_entry, civil, answer_due=due, answered_on=answered)
        application(
            s, civil_entry, police, answer_due=date(2026, 10, 15), answered_on=date(2026, 10, 19)
        )
        return {"police": police.id, "civil": civil.id}


def test_year_to_date_adds_the_years_months_up(fresh_settings: Settings) -> None:
    ids = _two_months(fresh_settings)
    oct_ = Month(2026, 10)
    with session_for(fresh_settings) as s:
        service.run_month(s, SYSTEM, Month(2025, 12), today=TODAY)  # last year: not counted
        service.run_month(s, SYSTEM, oct_, today=TODAY)
        run = service.run_month(s, SYSTEM, NOV, today=TODAY)
        results = {r.department_id: r for r in service.ranking(s, run)}
        ytd_months = run.year_to_date["months"] if run.year_to_date else None
        october = {r.department_id: r for r in service.ranking(s, service.get_run(s, "2026-10"))}
        police, civil = results[ids["police"]], results[ids["civil"]]
        police_ytd = police.year_to_date or {}
        civil_ytd = civil.year_to_date or {}
    assert ytd_months == ["2026-10", "2026-11"]
    answers = police_ytd["indicators"]["answer_on_time"]
    assert (answers["hits"], answers["records"], answers["value"]) == (3, 5, 60.0)
    assert police.indicators["answer_on_time"]["value"] == 33.33  # the month alone
    assert police_ytd["months"] == 2
    # 民政局: late in October, nothing due in November → the year's rate is October's.
    civil_answers = civil_ytd["indicators"]["answer_on_time"]
    assert (civil_answers["hits"], civil_answers["records"]) == (0, 1)
    assert civil.indicators["answer_on_time"]["value"] is None
    # Stock indicators add up month by month: one complete entry counted in each month.
    complete = police_ytd["indicators"]["catalog_complete"]
    assert (complete["hits"], complete["records"]) == (2, 2)
    # The year's score and rank are made from the summed figures with this month's scheme.
    assert police_ytd["score"] == service.score_of(police_ytd["indicators"], run.scheme)
    assert police_ytd["score"] > civil_ytd["score"]
    assert (police_ytd["rank"], civil_ytd["rank"]) == (1, 2)
    # October computed before November existed: its year is October alone.
    assert (october[ids["police"]].year_to_date or {})["indicators"]["answer_on_time"][
        "records"
    ] == 2


def test_a_published_months_year_to_date_does_not_move(fresh_settings: Settings) -> None:
    ids = _two_months(fresh_settings)
    admin = principal("admin", ids["police"], Role.PLATFORM_ADMIN)
    with session_for(fresh_settings) as s:
        service.run_month(s, SYSTEM, Month(2026, 10), today=TODAY)
        service.run_month(s, SYSTEM, NOV, today=TODAY)
        service.publish_run(s, admin, str(NOV))
    with session_for(fresh_settings) as s:
        dept = s.get(Department, ids["police"])
        civil = s.get(Department, ids["civil"])
        assert dept is not None
        assert civil is not None
        late = entry(s, dept)
        application(s, late, civil, answer_due=date(2026, 10, 5), answered_on=date(2026, 10, 30))
    with session_for(fresh_settings) as s:
        # October is recomputed with the new late answer; November's year stays as published.
        service.run_month(s, SYSTEM, Month(2026, 10), today=TODAY)
        nov = service.get_result(s, admin, service.get_run(s, str(NOV)), ids["police"])
        oct_ = service.get_result(s, admin, service.get_run(s, "2026-10"), ids["police"])
        nov_ytd = (nov.year_to_date or {})["indicators"]["answer_on_time"]
        oct_month = oct_.indicators["answer_on_time"]
    assert (nov_ytd["hits"], nov_ytd["records"]) == (3, 5)
    assert (oct_month["hits"], oct_month["records"]) == (2, 3)


def test_competition_ranks() -> None:
    assert service.competition_ranks([70.0, None, 90.0, 70.0, 50.0]) == [2, None, 1, 2, 4]
    assert service.competition_ranks([]) == []
