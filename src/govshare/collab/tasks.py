"""Scheduled work of business collaboration: the overdue check of case tasks, the
bureau's reminder of those about to be due (黄牌), and the mail to each task's handlers
when it gets its 黄牌 and its 红牌."""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from govshare.collab import service, supervision
from govshare.db import session_scope
from govshare.periodic import Periodic
from govshare.rules.clock import china_today

INTERVAL_SECONDS = 60.0


def check_once(factory: sessionmaker[Session], warn_days: int) -> int:
    today = china_today()
    with session_scope(factory) as session:
        supervision.remind_due_soon(session, today, warn_days)
        supervision.remind_handlers(session, today, warn_days)
        return service.check_overdue(session, today)


def overdue_watch(
    factory: sessionmaker[Session], warn_days: int, interval: float = INTERVAL_SECONDS
) -> Periodic:
    """Every minute: flag tasks past their working-day deadline and raise the alert;
    keep the reminder of the tasks about to be due."""
    return Periodic("collab-overdue", interval, lambda: check_once(factory, warn_days))
