"""Scheduled work of business collaboration: the overdue check of case tasks."""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from govshare.collab import service
from govshare.db import session_scope
from govshare.periodic import Periodic
from govshare.rules.clock import china_today

INTERVAL_SECONDS = 60.0


def check_once(factory: sessionmaker[Session]) -> int:
    with session_scope(factory) as session:
        return service.check_overdue(session, china_today())


def overdue_watch(factory: sessionmaker[Session], interval: float = INTERVAL_SECONDS) -> Periodic:
    """Every minute: flag tasks past their working-day deadline and raise the alert."""
    return Periodic("collab-overdue", interval, lambda: check_once(factory))
