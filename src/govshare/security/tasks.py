"""The security domain's scheduled work: signed checkpoints of the audit chain's head."""

from __future__ import annotations

import threading
from datetime import datetime

import structlog
from sqlalchemy.orm import Session, sessionmaker

from govshare.db import session_scope
from govshare.security import audit
from govshare.security.anchor import AuditKey

log = structlog.get_logger()


class Checkpointer:
    """A daemon thread that signs the head into the checkpoint file every ``interval``
    seconds when it has moved. Any hub process may run one: checkpoints from several
    processes only repeat each other."""

    def __init__(self, factory: sessionmaker[Session], interval: float) -> None:
        self.factory = factory
        self.interval = interval
        self.key: AuditKey = factory.kw["info"]["audit_key"]
        self._last: tuple[int, str] | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="audit-checkpoint", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def run_once(self) -> None:
        with session_scope(self.factory) as session:
            head = audit.head(session)
            if head[0] > 0 and head != self._last:
                audit.checkpoint(session, self.key, datetime.now().astimezone())
                self._last = head

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.run_once()
            except Exception:
                log.exception("audit checkpoint failed")
