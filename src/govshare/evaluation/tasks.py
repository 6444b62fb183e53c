"""The evaluation's scheduled work: on the ``RUN_DAY``-th of each month (Beijing time) the
previous month is computed once, as a draft for the bureau to check and publish.

Any hub process may run the scheduler: the month is unique, so a second process that
computes the same month at the same moment loses on the unique constraint and leaves it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

import structlog
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from govshare.db import session_scope
from govshare.evaluation import service
from govshare.evaluation.models import EvaluationRun
from govshare.periodic import Periodic
from govshare.rules.clock import china_today
from govshare.security.audit import SYSTEM

log = structlog.get_logger()

# Packages and answers of the month's last days reach the hub in the first days of the
# next; the scheduled run waits for them.
RUN_DAY = 3
INTERVAL_SECONDS = 3600.0


def run_due(
    factory: sessionmaker[Session], today: date, *, run_day: int = RUN_DAY
) -> EvaluationRun | None:
    """Compute the last complete month if it is due (``today`` on or after its run day)
    and was never computed; the run, or None when nothing was due."""
    if today.day < run_day:
        return None
    month = service.last_complete_month(today)
    try:
        with session_scope(factory) as session:
            if service.find_run(session, str(month)) is not None:
                return None
            run = service.run_month(session, SYSTEM, month, today=today, trigger="schedule")
            session.expunge(run)
            return run
    except IntegrityError:
        return None  # another process computed it meanwhile


class Scheduler(Periodic):
    """Checks every ``interval`` seconds (first after one interval, so a hub starting up
    does no heavy work) whether a month is due."""

    def __init__(
        self,
        factory: sessionmaker[Session],
        interval: float = INTERVAL_SECONDS,
        today: Callable[[], date] = china_today,
    ) -> None:
        super().__init__("evaluation", interval, self.run_once)
        self.factory = factory
        self.today = today

    def run_once(self) -> None:
        run = run_due(self.factory, self.today())
        if run is not None:
            log.info("evaluation computed", month=run.month, facts=run.facts)
