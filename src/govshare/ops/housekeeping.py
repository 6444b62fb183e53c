"""日常清理: rows that only ever grow and stop meaning anything — ended console sessions
and bearer tokens, expired developer sessions and confirmation links, users' reminder
mail sent a month ago — removed once an hour by each hub process (removing twice is
harmless)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import structlog
from sqlalchemy.orm import Session, sessionmaker

from govshare.db import session_scope
from govshare.opendata import developers
from govshare.periodic import Periodic
from govshare.security import service as security

log = structlog.get_logger()
INTERVAL_SECONDS = 3600.0

PURGES: dict[str, Callable[[Session, datetime], int]] = {
    "auth_session": security.purge_ended_sessions,
    "open_developer_token": developers.purge_ended_tokens,
    "user_mail": security.purge_sent_mail,
}


def purge_once(factory: sessionmaker[Session], now: datetime) -> dict[str, int]:
    """Run every purge, each in its own transaction; rows removed per table."""
    removed: dict[str, int] = {}
    for table, purge in PURGES.items():
        with session_scope(factory) as session:
            removed[table] = purge(session, now)
    return removed


class Housekeeper(Periodic):
    """``purge_once`` every ``interval`` seconds on a thread of its own."""

    def __init__(
        self,
        factory: sessionmaker[Session],
        *,
        interval: float = INTERVAL_SECONDS,
        clock: Callable[[], datetime] = lambda: datetime.now().astimezone(),
    ) -> None:
        super().__init__("housekeeping", interval, self.run_once)
        self.factory = factory
        self.clock = clock

    def run_once(self) -> None:
        removed = purge_once(self.factory, self.clock())
        if any(removed.values()):
            log.info("housekeeping", **removed)
