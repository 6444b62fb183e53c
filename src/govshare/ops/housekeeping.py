"""日常清理: rows that only ever grow and stop meaning anything — ended console sessions
and bearer tokens, expired developer sessions and confirmation links — removed once an
hour by each hub process (removing twice is harmless)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime

import structlog
from sqlalchemy.orm import Session, sessionmaker

from govshare.db import session_scope
from govshare.opendata import developers
from govshare.security import service as security

log = structlog.get_logger()
INTERVAL_SECONDS = 3600.0

PURGES: dict[str, Callable[[Session, datetime], int]] = {
    "auth_session": security.purge_ended_sessions,
    "open_developer_token": developers.purge_ended_tokens,
}


def purge_once(factory: sessionmaker[Session], now: datetime) -> dict[str, int]:
    """Run every purge, each in its own transaction; rows removed per table."""
    removed: dict[str, int] = {}
    for table, purge in PURGES.items():
        with session_scope(factory) as session:
            removed[table] = purge(session, now)
    return removed


class Housekeeper:
    """A daemon thread running ``purge_once`` every ``interval`` seconds."""

    def __init__(
        self,
        factory: sessionmaker[Session],
        *,
        interval: float = INTERVAL_SECONDS,
        clock: Callable[[], datetime] = lambda: datetime.now().astimezone(),
    ) -> None:
        self.factory = factory
        self.interval = interval
        self.clock = clock
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="housekeeping", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                removed = purge_once(self.factory, self.clock())
            except Exception:
                log.exception("housekeeping failed")
                continue
            if any(removed.values()):
                log.info("housekeeping", **removed)
