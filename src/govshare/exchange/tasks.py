"""The hub's background work for the exchange: silent nodes, lag, reconciliations that
time out, daily reconciliation."""

from __future__ import annotations

import threading

import structlog
from sqlalchemy.orm import Session, sessionmaker

from govshare.config import Settings
from govshare.db import session_scope
from govshare.exchange import service

log = structlog.get_logger()


class Monitor:
    """A daemon thread; the hub's processes are stateless, so any of them may run it."""

    def __init__(self, settings: Settings, factory: sessionmaker[Session]) -> None:
        self.settings = settings
        self.factory = factory
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="exchange-monitor", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def run_once(self) -> None:
        with session_scope(self.factory) as session:
            service.check_nodes(session, self.settings)
        with session_scope(self.factory) as session:
            service.check_lag(session, self.settings)
        with session_scope(self.factory) as session:
            service.check_reconciliations(session, self.settings)
        with session_scope(self.factory) as session:
            service.daily_reconciliations(session)

    def _run(self) -> None:
        while not self._stop.wait(self.settings.monitor_interval_seconds):
            try:
                self.run_once()
            except Exception:
                log.exception("exchange monitor tick failed")
