"""Demo data of the evaluation (考核评估): the last three complete months evaluated, the
older two published, so the ranking, a department's trend and the drill-downs show real
numbers on first run.

The demo's departments, systems and entries are written in one go at start-up; they are
dated three months back here (the city did not build its catalog this morning), so
the evaluated months count them."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import update
from sqlalchemy.orm import Session

from govshare.catalog.models import DutyResource, InformationSystem, Resource
from govshare.evaluation import service
from govshare.security.audit import SYSTEM
from govshare.security.models import Department
from govshare.security.roles import Role, permissions_for
from govshare.security.service import Principal

MONTHS = 3


def seed_evaluation(session: Session, today: date) -> dict[str, int]:
    """Evaluate the ``MONTHS`` complete months before ``today``; publish all but the
    newest. Returns ``{"evaluations": MONTHS}``."""
    since = datetime.combine(today - timedelta(days=31 * (MONTHS + 1)), time(), UTC)
    for model in (Department, InformationSystem, Resource):
        session.execute(update(model).values(created_at=since))
    # The demo's duties were linked to their entries as the register was compiled.
    session.execute(update(DutyResource).values(linked_at=since))
    bureau = Principal(
        kind="system",
        name="admin",
        department_id=None,
        roles=(Role.PLATFORM_ADMIN.value,),
        permissions=permissions_for([Role.PLATFORM_ADMIN]),
    )
    month = service.last_complete_month(today)
    months = [month]
    for _ in range(MONTHS - 1):
        months.insert(0, months[0].previous())
    for m in months:
        service.run_month(session, SYSTEM, m, today=today)
        if m != month:
            service.publish_run(session, bureau, str(m))
    return {"evaluations": len(months)}
