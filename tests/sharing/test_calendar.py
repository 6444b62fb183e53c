"""节假日安排 over the live API, on SQLite and PostgreSQL: sharing never waits for a
year's official schedule. Deadlines falling in a year nobody knows (2099 here, far
beyond any chinesecalendar release) are counted from the week and marked provisional
(预计); the platform admin enters the year and every open provisional deadline is
recounted, audited; withdrawing it counts them on the estimate again."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from typing import Any

import pytest
from sqlalchemy import select

from govshare.rules import workdays
from govshare.rules.clock import fixed_today
from govshare.rules.workdays import CalendarSource
from govshare.security.models import AuditEntry
from govshare.security.roles import Role
from govshare.sharing import calendar
from tests.factories import World
from tests.sharing.builders import application_payload, principal

# A Wednesday; every day counted from it falls in 2099.
DAY = date(2098, 12, 31)
# 2099 as the test enters it: Thu 1 Jan to Sat 3 Jan off, Sunday 4 Jan worked.
SCHEDULE = {"holidays": ["2099-01-01~2099-01-03"], "workdays": ["2099-01-04"]}


@pytest.fixture(autouse=True)
def _on_new_years_eve() -> Iterator[None]:
    with fixed_today(DAY):
        yield


def _call(world: World, user: str, method: str, path: str, expect: int, **kw: Any) -> Any:
    with world.api(user) as c:
        r = c.request(method, f"/api/v1/sharing{path}", **kw)
        assert r.status_code == expect, r.text
        return r.json()


def test_deadlines_in_an_unknown_year_are_provisional_until_the_year_is_entered(
    world: World,
) -> None:
    provider, consumer = world.department("公安局"), world.department("人社局")
    res = world.published(provider)
    body = application_payload(res["id"], end_date="2099-06-30")
    waiting = _call(world, consumer.resource_admin, "POST", "/applications", 201, json=body)
    approved = _call(world, consumer.resource_admin, "POST", "/applications", 201, json=body)
    approved = _call(
        world,
        provider.resource_admin,
        "POST",
        f"/applications/{approved['id']}/approve",
        200,
        json={},
    )
    # Counted from the week alone: 10 and 5 working days after Wednesday 12-31.
    assert (waiting["answer_due"], waiting["answer_due_provisional"]) == ("2099-01-14", True)
    assert (approved["provide_due"], approved["provide_due_provisional"]) == ("2099-01-07", True)

    entered = _call(world, world.admin, "PUT", "/calendar/2099", 200, json=SCHEDULE)
    assert (entered["source"], entered["recounted"]) == ("console", 2)
    assert entered["holidays"] == ["2099-01-01", "2099-01-02", "2099-01-03"]
    # Recounted on the schedule: three days off, the Sunday worked.
    waiting = _call(world, consumer.resource_admin, "GET", f"/applications/{waiting['id']}", 200)
    approved = _call(world, provider.resource_admin, "GET", f"/applications/{approved['id']}", 200)
    assert (waiting["answer_due"], waiting["answer_due_provisional"]) == ("2099-01-15", False)
    assert (approved["provide_due"], approved["provide_due_provisional"]) == ("2099-01-08", False)
    with world.hub.db() as s:
        recounts = s.scalars(
            select(AuditEntry).where(
                AuditEntry.action == "sharing.deadline.recount",
                # Objections and catalog changes of other tests may share these ids.
                AuditEntry.object_type == "sharing_application",
                AuditEntry.object_id.in_([str(waiting["id"]), str(approved["id"])]),
            )
        ).all()
        assert sorted(e.after["provisional"] for e in recounts) == [False, False]
        assert all(e.actor == world.admin for e in recounts)
        assert s.scalar(
            select(AuditEntry.action).where(
                AuditEntry.action == "sharing.calendar.enter", AuditEntry.object_id == "2099"
            )
        )

    withdrawn = _call(world, world.admin, "DELETE", "/calendar/2099", 200)
    assert withdrawn == {"year": 2099, "recounted": 2}
    waiting = _call(world, consumer.resource_admin, "GET", f"/applications/{waiting['id']}", 200)
    assert (waiting["answer_due"], waiting["answer_due_provisional"]) == ("2099-01-14", True)


def test_only_the_platform_admin_enters_a_schedule_and_faults_are_named(world: World) -> None:
    dept = world.department("民政局")
    for user in (dept.resource_admin, dept.registrar):
        _call(world, user, "PUT", "/calendar/2099", 403, json=SCHEDULE)
        _call(world, user, "GET", "/calendar", 403)
    wrong = _call(
        world,
        world.admin,
        "PUT",
        "/calendar/2099",
        422,
        json={"holidays": ["2099-01-01", "2098-12-31", "元旦"], "workdays": ["2099-01-05"]},
    )
    assert [d["message"] for d in wrong["error"]["details"]] == [
        "放假日期 2098-12-31 不属于 2099 年",
        "放假日期“元旦”不是日期，应写作 2099-01-01 或区间 2099-02-15~2099-02-21",
        "调休上班日 2099-01-05 不是周六或周日",
    ]
    _call(world, world.admin, "PUT", "/calendar/1850", 422, json=SCHEDULE)
    _call(world, world.admin, "DELETE", "/calendar/2099", 404)
    years = _call(world, world.admin, "GET", "/calendar", 200)
    assert {y["year"]: y["source"] for y in years}[2099] == "estimate"
    assert {y["year"]: y["source"] for y in years}[2098] == "estimate"


def test_a_year_entered_stays_in_the_calendar_whatever_a_tick_read_before_its_commit(
    world: World,
) -> None:
    """The monitor tick reloads the entered years from what is committed. One that read
    while an entry was still uncommitted installed the years without it, and the
    calendar page showed the year just entered as 未录入 (CI, 2026-12-07)."""
    admin = principal(world.admin, 0, Role.PLATFORM_ADMIN)
    settings, days = world.hub.settings, SCHEDULE["holidays"]
    try:
        with world.hub.session_factory() as entering:
            calendar.enter_year(entering, settings, admin, year=2099, holidays=days, workdays_=[])
            assert workdays.source_of(2099) is CalendarSource.CONSOLE
            with world.hub.db() as ticking:  # a tick in another thread, before the commit
                calendar.load_entered(ticking)
            entering.commit()
        assert workdays.source_of(2099) is CalendarSource.CONSOLE
    finally:
        with world.hub.db() as s:
            if calendar.entered_year(s, 2099) is not None:
                calendar.remove_year(s, settings, admin, 2099)
    assert workdays.source_of(2099) is CalendarSource.ESTIMATE


def test_a_year_whose_entry_rolled_back_is_not_in_the_calendar(world: World) -> None:
    admin = principal(world.admin, 0, Role.PLATFORM_ADMIN)
    with world.hub.session_factory() as entering:
        calendar.enter_year(
            entering, world.hub.settings, admin, year=2099, holidays=["2099-01-01"], workdays_=[]
        )
        assert workdays.source_of(2099) is CalendarSource.CONSOLE  # for its own recount
        entering.rollback()
    assert workdays.source_of(2099) is CalendarSource.ESTIMATE
