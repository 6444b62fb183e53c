"""节假日安排: the years' holiday schedules the platform admin enters in the console, and
the deadlines counted provisionally (预计) on a year nobody knew yet.

Sharing never waits for the State Council's schedule: a deadline that falls in an
unknown year is estimated from the week and marked provisional; once the year is
entered here (or the holidays file or a new ``chinesecalendar`` brings it),
``refresh_provisional`` recounts each such deadline from its starting day, audited.
The catalog's update deadlines after a change of duties or systems
(``CatalogChangeEvent.catalog_due``) are recounted the same way: only the derived
date and its mark change, never what the event records.
Every hub process reads the entered years from the database (``load_entered``) at
start-up and on each monitor tick, so a year entered in one process reaches all.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import event as orm_event
from sqlalchemy import or_, select
from sqlalchemy.orm import Session, SessionTransaction

from govshare.catalog.models import CatalogChangeEvent
from govshare.config import Settings
from govshare.errors import InvalidInput, NotFound
from govshare.rules import workdays
from govshare.rules.clock import china_date
from govshare.rules.workdays import (
    CalendarSource,
    Deadline,
    ScheduleInvalid,
    YearSchedule,
)
from govshare.security import audit
from govshare.security.service import Principal
from govshare.sharing.models import (
    ApplicationStatus,
    DisputeOutcome,
    Objection,
    ObjectionStatus,
    SharingApplication,
    WorkingCalendarYear,
)


class InvalidSchedule(InvalidInput):
    code = "invalid_holiday_schedule"


class ScheduleNotFound(NotFound):
    code = "holiday_schedule_not_found"


@dataclass(frozen=True, slots=True)
class YearOverview:
    """A year as the calendar page shows it: where its working days come from and,
    for an entered year, what was entered, by whom and when."""

    year: int
    source: CalendarSource
    entered: WorkingCalendarYear | None


def _schedule(row: WorkingCalendarYear) -> YearSchedule:
    return YearSchedule(
        row.year,
        frozenset(date.fromisoformat(d) for d in row.holidays),
        frozenset(date.fromisoformat(d) for d in row.workdays),
    )


# One turn at the process's calendar: reading the entered years and installing them;
# an entry or withdrawal, from its first write to its recount; a tick's reload with the
# recount of provisional deadlines. So a tick cannot install what it read before an
# entry's commit over the entry's reload after it, nor recount on a year installed by
# an entry not yet committed.
_loading = threading.RLock()


def load_entered(session: Session) -> None:
    """Install the years entered in the console, as ``session`` sees them, into this
    process's calendar."""
    with _loading:
        workdays.install_entered(
            [_schedule(row) for row in session.scalars(select(WorkingCalendarYear))],
            source=str(session.get_bind().engine.url),
        )


def reload(session: Session, settings: Settings) -> int:
    """Install the entered years and recount the provisional deadlines on them (at
    start-up and on each monitor tick: a year entered in another hub process, a new
    file or package); returns how many deadlines changed."""
    with _loading:
        load_entered(session)
        return refresh_provisional(session, settings)


def _reload_when_settled(session: Session) -> None:
    """Install the years again from the database once ``session``'s transaction ends.

    An entry is installed before its commit, so that the deadlines it recounts in the
    same transaction count on it; until the commit only that transaction sees the row.
    A monitor tick reading meanwhile installs the years without it (seen on CI: the
    calendar page showed 2099 as 未录入 just after it was entered), and a rollback would
    leave a year in the calendar that was never stored. Reading again after the
    transaction ends settles both on what the database holds."""
    engine = session.get_bind().engine
    settled = False

    def settle(_: Session, transaction: SessionTransaction) -> None:
        nonlocal settled
        if settled or transaction.parent is not None:  # a savepoint's end settles nothing
            return
        settled = True  # (removing a listener while the session calls it is refused)
        with Session(engine) as fresh:
            load_entered(fresh)

    orm_event.listen(session, "after_transaction_end", settle)


def _install_and_recount(
    session: Session, settings: Settings, principal: Principal, year: int
) -> int:
    """After ``year``'s schedule changed in ``session``: the calendar as this transaction
    sees it, read again once it ends, and the deadlines it touches recounted on it."""
    load_entered(session)
    _reload_when_settled(session)
    return refresh_deadlines_in(session, settings, principal, year)


def entered_year(session: Session, year: int) -> WorkingCalendarYear | None:
    return session.get(WorkingCalendarYear, year)


def overview(session: Session, today: date) -> list[YearOverview]:
    """Last year, this year, the next two and every year entered, in order."""
    entered = {row.year: row for row in session.scalars(select(WorkingCalendarYear))}
    years = sorted(set(range(today.year - 1, today.year + 3)) | set(entered))
    return [YearOverview(y, workdays.source_of(y), entered.get(y)) for y in years]


def enter_year(
    session: Session,
    settings: Settings,
    principal: Principal,
    *,
    year: int,
    holidays: str | list[str],
    workdays_: str | list[str],
) -> tuple[WorkingCalendarYear, int]:
    """Enter (or correct) a year's official schedule; deadlines counted on an estimate
    are recounted at once. Returns the stored year and how many deadlines changed."""
    try:
        schedule = workdays.parse_schedule(year, holidays, workdays_)
    except ScheduleInvalid as exc:
        raise InvalidSchedule(f"{year} 年节假日安排有误", details=list(exc.problems)) from None
    # The turn is taken before the first write: a tick holding it may be waiting for
    # the database's write lock, which this transaction would otherwise hold.
    with _loading:
        row = session.get(WorkingCalendarYear, year)
        before = None if row is None else {"holidays": row.holidays, "workdays": row.workdays}
        if row is None:
            row = WorkingCalendarYear(year=year)
            session.add(row)
        row.holidays = sorted(d.isoformat() for d in schedule.holidays)
        row.workdays = sorted(d.isoformat() for d in schedule.workdays)
        row.entered_by = principal.name
        session.flush()
        audit.record(
            session,
            principal.actor,
            "sharing.calendar.enter",
            object_type="working_calendar_year",
            object_id=year,
            before=before,
            after={"holidays": row.holidays, "workdays": row.workdays},
        )
        return row, _install_and_recount(session, settings, principal, year)


def remove_year(session: Session, settings: Settings, principal: Principal, year: int) -> int:
    """Withdraw an entered year (the file, the package or the estimate applies again).
    Returns how many deadlines were recounted."""
    with _loading:
        row = session.get(WorkingCalendarYear, year)
        if row is None:
            raise ScheduleNotFound(f"{year} 年没有在控制台录入的节假日安排")
        audit.record(
            session,
            principal.actor,
            "sharing.calendar.remove",
            object_type="working_calendar_year",
            object_id=year,
            before={"holidays": row.holidays, "workdays": row.workdays},
        )
        session.delete(row)
        session.flush()
        # Deadlines counted on the withdrawn schedule are recounted on what applies now.
        return _install_and_recount(session, settings, principal, year)


# -- recounting deadlines ------------------------------------------------------------------

# What carries a working-day deadline and its 预计 mark.
Deadlined = SharingApplication | Objection | CatalogChangeEvent


def _provide_start(app: SharingApplication) -> date | None:
    """The day the provision deadline ran from: the dispute's decision when it overturned
    a refusal, the approval otherwise."""
    if app.dispute_outcome is DisputeOutcome.OVERTURNED and app.dispute_decided_at is not None:
        return china_date(app.dispute_decided_at)
    return app.answered_on


def _recount(
    principal: Principal | None,
    session: Session,
    target: Deadlined,
    field: str,
    fresh: Deadline,
) -> bool:
    """Store a recounted deadline when it differs, audited; True when it changed."""
    due, provisional = getattr(target, field), getattr(target, f"{field}_provisional")
    if (due, provisional) == (fresh.due, fresh.provisional):
        return False
    setattr(target, field, fresh.due)
    setattr(target, f"{field}_provisional", fresh.provisional)
    kind = {
        SharingApplication: "sharing_application",
        Objection: "sharing_objection",
        CatalogChangeEvent: "catalog_change_event",
    }[type(target)]
    audit.record(
        session,
        principal.actor if principal else audit.SYSTEM,
        "sharing.deadline.recount",
        object_type=kind,
        object_id=target.id,
        before={field: due, "provisional": provisional},
        after={field: fresh.due, "provisional": fresh.provisional},
    )
    return True


def _open_deadlines(
    session: Session, settings: Settings, where: Callable[[Any, Any], Any]
) -> list[tuple[Deadlined, str, Deadline]]:
    """Each open deadline chosen by ``where(column, provisional_column)`` with its
    recount on the calendar as it now stands."""
    found: list[tuple[Deadlined, str, Deadline]] = []
    apps = session.scalars(
        select(SharingApplication).where(
            or_(
                (SharingApplication.status == ApplicationStatus.SUBMITTED)
                & where(SharingApplication.answer_due, SharingApplication.answer_due_provisional),
                (SharingApplication.status == ApplicationStatus.APPROVED)
                & where(SharingApplication.provide_due, SharingApplication.provide_due_provisional),
            )
        )
    )
    for app in apps:
        if app.status is ApplicationStatus.SUBMITTED and app.answer_due is not None:
            fresh = workdays.deadline(app.submitted_on, settings.answer_working_days)
            found.append((app, "answer_due", fresh))
        elif app.status is ApplicationStatus.APPROVED and (start := _provide_start(app)):
            fresh = workdays.deadline(start, settings.provide_working_days)
            found.append((app, "provide_due", fresh))
    objs = session.scalars(
        select(Objection).where(
            Objection.status == ObjectionStatus.OPEN,
            where(Objection.answer_due, Objection.answer_due_provisional),
        )
    )
    for obj in objs:
        fresh = workdays.deadline(obj.raised_on, settings.objection_working_days)
        found.append((obj, "answer_due", fresh))
    events = session.scalars(
        select(CatalogChangeEvent).where(
            where(CatalogChangeEvent.catalog_due, CatalogChangeEvent.catalog_due_provisional)
        )
    )
    for event in events:
        fresh = workdays.deadline(event.changed_on, settings.catalog_update_working_days)
        found.append((event, "catalog_due", fresh))
    return found


def refresh_provisional(
    session: Session, settings: Settings, principal: Principal | None = None
) -> int:
    """Recount every open deadline marked provisional on the calendar as it now stands
    (a year entered in another process, a file or package update); returns how many
    changed."""
    return sum(
        _recount(principal, session, target, field, fresh)
        for target, field, fresh in _open_deadlines(session, settings, lambda _due, prov: prov)
    )


def refresh_deadlines_in(
    session: Session, settings: Settings, principal: Principal | None, year: int
) -> int:
    """Recount every open deadline due in ``year`` (or early the next January, which a
    count may run into) or marked provisional: after ``year``'s schedule changed."""
    first, last = date(year, 1, 1), date(year + 1, 1, 31)

    def where(due: Any, prov: Any) -> Any:
        return prov | due.between(first, last)

    return sum(
        _recount(principal, session, target, field, fresh)
        for target, field, fresh in _open_deadlines(session, settings, where)
    )
