"""The security domain's scheduled work: signed checkpoints of the audit chain's head,
and archiving the entries older than the retention (审计归档)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime

import structlog
from sqlalchemy.orm import Session, sessionmaker

from govshare.db import session_scope, utcnow
from govshare.security import archive, audit
from govshare.security.anchor import AuditKey, current

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
                audit.checkpoint(session, current(self.key), datetime.now().astimezone())
                self._last = head

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.run_once()
            except Exception:
                log.exception("audit checkpoint failed")


class Archiver:
    """A daemon thread that archives the audit entries older than the retention
    (``archive.archive_due``) every ``interval`` seconds, first after one interval so a
    hub starting up does no heavy work. Several hub processes may run one: a lock in
    the archive directory lets one archive at a time."""

    def __init__(
        self,
        factory: sessionmaker[Session],
        interval: float,
        years: int,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.factory = factory
        self.interval = interval
        self.years = years
        self.clock = clock
        self.key: AuditKey = factory.kw["info"]["audit_key"]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="audit-archive", daemon=True)

    def start(self) -> None:
        if self.interval > 0:
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)

    def run_once(self) -> archive.ArchiveResult | str:
        with self.factory() as session:
            result = archive.archive_due(
                session, current(self.key), now=self.clock(), years=self.years
            )
        if isinstance(result, archive.ArchiveResult):
            log.info(
                "audit archived",
                archive=result.name,
                first_seq=result.first_seq,
                last_seq=result.last_seq,
                entries=result.entries,
            )
        return result

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.run_once()
            except archive.ArchiveError as exc:
                log.error("audit archive refused", reason=str(exc))
            except Exception:
                log.exception("audit archive failed")
