"""The call journal of the data services: every call's nonce, audit entry and usage
count, written by one thread in group commits.

A data-service call is answered only after its journal entry is committed, so no data
leaves unaudited and a replayed nonce is refused before anything is sent. Writing each
call in a transaction of its own would make the database's commit rate the ceiling of
the service; here the calls that arrive while one batch commits share the next.
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import hmac
import queue
import threading
import time
from collections import defaultdict
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import structlog
from sqlalchemy import Table, delete, insert
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from govshare.db import utcnow
from govshare.security import audit
from govshare.security.crypto import _derive
from govshare.security.errors import ReplayedRequest
from govshare.security.models import ApiNonce
from govshare.sharing.models import CallStat

log = structlog.get_logger()

# Plain tables, not the mapped classes: the journal's inserts skip the ORM's bulk path.
_NONCES: Table = ApiNonce.__table__  # type: ignore[assignment]
_STATS: Table = CallStat.__table__  # type: ignore[assignment]


class KeyHasher:
    """Keys (公民身份号码 …) appear in the audit log only as keyed hashes: an auditor
    holding a key can find its calls (``govshare audit key-hash``); nobody can read keys
    back, even for an 18-digit ID number whose space is small enough to enumerate."""

    def __init__(self, secret_key: str) -> None:
        self._key = _derive(secret_key, b"govshare-audit-key-hash")

    def __call__(self, key: str) -> str:
        return hmac.new(self._key, key.encode(), hashlib.sha256).hexdigest()[:16]


@dataclass(slots=True)
class Call:
    """One data-service call as the journal keeps it."""

    client_id: int
    app_key: str
    department_id: int
    remote_addr: str | None
    nonce: str
    action: str  # data.lookup | data.query | data.verify | data.denied
    resource_id: int | None
    grant_id: int | None
    keys: int = 0
    rows: int = 0
    key_hashes: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    day: date | None = None
    done: Future[None] = field(default_factory=Future)

    def entry(self) -> audit.Pending:
        return audit.Pending(
            actor=audit.Actor(
                name=self.app_key,
                kind="client",
                department_id=self.department_id,
                remote_addr=self.remote_addr,
            ),
            action=self.action,
            object_type="sharing_grant" if self.grant_id is not None else "resource",
            object_id=self.grant_id if self.grant_id is not None else self.resource_id,
            after={
                "resource_id": self.resource_id,
                "keys": self.keys,
                "rows": self.rows,
                "key_hashes": self.key_hashes,
                **self.details,
            },
        )


class CallJournal:
    """One writer thread; ``commit`` blocks the calling request until its batch is in."""

    def __init__(
        self,
        factory: sessionmaker[Session],
        *,
        nonce_ttl_seconds: int,
        max_batch: int = 512,
        lock_path: Path | None = None,
    ) -> None:
        self.factory = factory
        self.lock_path = lock_path
        self.nonce_ttl = timedelta(seconds=nonce_ttl_seconds)
        self.max_batch = max_batch
        self._queue: queue.SimpleQueue[Call | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="call-journal", daemon=True)
        self._pruned = 0.0
        self.batches = 0
        self._thread.start()

    def commit(self, call: Call, timeout: float = 30.0) -> None:
        """Journal ``call``; raises ``ReplayedRequest`` when its nonce was used before."""
        self._queue.put(call)
        call.done.result(timeout=timeout)

    async def wait(self, call: Call, timeout: float = 30.0) -> None:
        """``commit`` for the event loop: the request waits without holding a thread."""
        self._queue.put(call)
        # Shielded: a client hanging up must not cancel the entry, which is written anyway.
        await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(call.done)), timeout)

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < self.max_batch:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self._queue.put(None)
                    break
                batch.append(nxt)
            # Running futures can no longer be cancelled; one already cancelled is still
            # written, only not answered.
            waiting = [c for c in batch if c.done.set_running_or_notify_cancel()]
            try:
                replays = self._write(batch)
            except Exception as exc:  # the database is down: every waiting call fails
                log.exception("call journal write failed", calls=len(batch))
                for call in waiting:
                    call.done.set_exception(exc)
                continue
            for call in waiting:
                if id(call) in replays:
                    call.done.set_exception(ReplayedRequest("重复的请求 (nonce 已使用)"))
                else:
                    call.done.set_result(None)

    def _write(self, batch: Sequence[Call]) -> set[int]:
        if self.lock_path is None:
            return self._write_locked(batch)
        # SQLite: the hub processes' journal writers queue on a file lock, which wakes
        # the next one the moment it is free; waiting in SQLite's busy handler instead
        # sleeps 1, 2, 5, 10 … ms between tries, and those sleeps were the p99.
        with self.lock_path.open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                return self._write_locked(batch)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _write_locked(self, batch: Sequence[Call]) -> set[int]:
        self.batches += 1
        now = utcnow()
        replays: set[int] = set()
        with self.factory() as session:
            rows = [{"app_key": c.app_key, "nonce": c.nonce, "seen_at": now} for c in batch]
            dialect = session.get_bind().dialect.name
            spend = (sqlite_insert if dialect == "sqlite" else pg_insert)(_NONCES)
            spent = session.execute(spend.on_conflict_do_nothing(), rows)
            if spent.rowcount != len(rows):  # type: ignore[attr-defined]
                # Someone replayed a nonce (rare): start over and find which, one
                # savepoint each.
                session.rollback()
                for call, row in zip(batch, rows, strict=True):
                    try:
                        with session.begin_nested():
                            session.execute(insert(_NONCES), [row])
                    except IntegrityError:
                        replays.add(id(call))
            entries = []
            for call in batch:
                if id(call) in replays:
                    entries.append(
                        audit.Pending(
                            actor=call.entry().actor,
                            action="data.replay_refused",
                            object_type="api_client",
                            object_id=call.client_id,
                            after={"nonce": call.nonce, "action": call.action},
                        )
                    )
                else:
                    entries.append(call.entry())
            audit.record_many(session, entries)
            self._count(session, [c for c in batch if id(c) not in replays])
            if time.monotonic() - self._pruned > 10:
                session.execute(delete(_NONCES).where(_NONCES.c.seen_at < now - self.nonce_ttl))
                self._pruned = time.monotonic()
            session.commit()
        return replays

    def _count(self, session: Session, calls: Sequence[Call]) -> None:
        sums: dict[tuple[date, int, int], list[int]] = defaultdict(lambda: [0, 0, 0])
        for c in calls:
            if c.grant_id is None or c.day is None:
                continue
            s = sums[(c.day, c.client_id, c.grant_id)]
            s[0] += 1
            s[1] += c.keys
            s[2] += c.rows
        if not sums:
            return
        dialect = session.get_bind().dialect.name
        stats = _STATS
        stmt = (sqlite_insert if dialect == "sqlite" else pg_insert)(stats)
        stmt = stmt.on_conflict_do_update(
            index_elements=["day", "client_id", "grant_id"],
            set_={
                "calls": stats.c.calls + stmt.excluded.calls,
                "keys": stats.c["keys"] + stmt.excluded["keys"],
                "rows": stats.c.rows + stmt.excluded.rows,
            },
        )
        session.execute(
            stmt,
            [
                {"day": d, "client_id": c, "grant_id": g, "calls": n, "keys": k, "rows": r}
                for (d, c, g), (n, k, r) in sums.items()
            ],
        )
