"""The call journal of the data services: every call's nonce, audit record and usage
count, written by one thread in group commits (the calls of a batch from one client
share one chained audit entry, which lists each call).

A data-service call is answered only after its journal entry is committed, so no data
leaves unaudited and a replayed nonce is refused before anything is sent. Writing each
call in a transaction of its own would make the database's commit rate the ceiling of
the service; here the calls that arrive while one batch commits share the next.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import queue
import sqlite3
import threading
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from collections.abc import Set as AbstractSet
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import IO, Any

import structlog
from sqlalchemy import Engine, Table, bindparam, delete

from govshare import telemetry
from govshare.db import Prepared, RowsInsert, utcnow
from govshare.security import audit
from govshare.security.errors import ReplayedRequest
from govshare.security.models import ApiNonce
from govshare.sharing.models import CallStat

log = structlog.get_logger()

# Plain tables, not the mapped classes: the journal's inserts skip the ORM's bulk path.
_NONCES: Table = ApiNonce.__table__  # type: ignore[assignment]
_STATS: Table = CallStat.__table__  # type: ignore[assignment]
_SEEN_AT = _NONCES.c.seen_at.type


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
    at: datetime = field(default_factory=utcnow)
    done: Future[None] = field(default_factory=Future)
    # What a request on the event loop awaits (``CallJournal.wait``): settled with
    # ``done``, directly when the loop wrote the batch, else from the writer thread.
    waiter: asyncio.Future[None] | None = None

    @property
    def group(self) -> tuple[Any, ...]:
        """Calls of one batch with the same group share one audit entry: same client,
        address, action and object, so the entry's own columns describe every call."""
        return (
            self.app_key,
            self.department_id,
            self.remote_addr,
            self.action,
            self.grant_id,
            self.resource_id if self.grant_id is None else None,
        )

    @property
    def actor(self) -> audit.Actor:
        return audit.Actor(
            name=self.app_key,
            kind="client",
            department_id=self.department_id,
            remote_addr=self.remote_addr,
        )

    def record(self) -> dict[str, Any]:
        """The call inside its audit entry: what an auditor needs of it alone."""
        return {
            "at": self.at.isoformat(timespec="milliseconds"),
            "nonce": self.nonce,
            "resource_id": self.resource_id,
            "keys": self.keys,
            "rows": self.rows,
            "key_hashes": self.key_hashes,
            **self.details,
        }


def _entry(calls: Sequence[Call]) -> audit.Pending:
    """One chained audit entry for calls of one group (``Call.group``) in one batch.

    Decided for the data services' tail latency: an entry per call made each batch's
    audit write grow with its size. Every call stays findable on its own: the entry's
    actor, department, action and object are the calls', and ``calls`` lists each one
    (time, nonce, counts, hashed keys) for the auditor's search and ``audit key-hash``."""
    first = calls[0]
    return audit.Pending(
        actor=first.actor,
        action=first.action,
        object_type="sharing_grant" if first.grant_id is not None else "resource",
        object_id=first.grant_id if first.grant_id is not None else first.resource_id,
        after={
            "calls": [c.record() for c in calls],
            "keys": sum(c.keys for c in calls),
            "rows": sum(c.rows for c in calls),
        },
        request_id=None,  # a batch of calls from many requests, written by the journal
    )


CHECKPOINT = object()  # on the writer thread's queue: housekeeping after the loop's writes
CHECKPOINT_SECONDS = 1.0
PRUNE_SECONDS = 10.0


class CallJournal:
    """One writer thread; ``commit`` blocks the calling request until its batch is in.
    With ``on_loop`` (SQLite) the event loop writes the batches itself when it can
    (``_write_on_loop``), and the thread takes what it cannot and the WAL checkpoints.

    The batch is written on a DBAPI connection with statements compiled once, one per
    table (multi-row ``VALUES``): every database call lets the other threads take the
    GIL, and getting it back waits for a switch interval, so a batch that took two calls
    per row spent most of its time, and the waiting calls' latency, queueing for it."""

    def __init__(
        self,
        engine: Engine,
        *,
        audit_alg: str,
        audit_key: audit.AuditKey | None,
        nonce_ttl_seconds: int,
        max_batch: int = 512,
        lock_path: Path | None = None,
        on_loop: bool = False,
    ) -> None:
        self.engine = engine
        self.lock_path = lock_path
        self.on_loop = on_loop
        self._loop_batch: list[Call] = []
        self._loop_conn: Any = None
        self._loop_lock: IO[str] | None = None
        self._checkpointed = time.monotonic()
        self.nonce_ttl = timedelta(seconds=nonce_ttl_seconds)
        self.max_batch = max_batch
        dialect = engine.dialect
        self._audit = audit.ChainAppender(dialect, audit_alg, audit_key)
        # RETURNING names the nonces this batch spent; a call whose nonce is missing
        # there is a replay (of an earlier call, or of another call in the same batch).
        self._spend = RowsInsert(
            _NONCES,
            dialect,
            ["app_key", "nonce", "seen_at"],
            lambda ins: ins.on_conflict_do_nothing().returning(_NONCES.c.app_key, _NONCES.c.nonce),
        )
        self._counts = RowsInsert(
            _STATS,
            dialect,
            ["day", "client_id", "grant_id", "calls", "keys", "rows"],
            lambda ins: ins.on_conflict_do_update(  # type: ignore[attr-defined]
                index_elements=["day", "client_id", "grant_id"],
                set_={
                    "calls": _STATS.c.calls + ins.excluded.calls,  # type: ignore[attr-defined]
                    "keys": _STATS.c["keys"] + ins.excluded["keys"],  # type: ignore[attr-defined]
                    "rows": _STATS.c.rows + ins.excluded.rows,  # type: ignore[attr-defined]
                },
            ),
        )
        self._prune = Prepared(
            delete(_NONCES).where(_NONCES.c.seen_at < bindparam("before", type_=_SEEN_AT)),
            dialect,
        )
        self._queue: queue.SimpleQueue[Call | object | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="call-journal", daemon=True)
        self._pruned = 0.0
        self.batches = 0
        self.checkpoints = 0
        self._thread.start()

    def commit(self, call: Call, timeout: float = 30.0) -> None:
        """Journal ``call``; raises ``ReplayedRequest`` when its nonce was used before."""
        self._queue.put(call)
        call.done.result(timeout=timeout)

    async def wait(self, call: Call, timeout: float = 30.0) -> None:
        """``commit`` for the event loop: the request waits without holding a thread.

        It awaits a future of the loop's own (``Call.waiter``), which the batch's write
        settles in the same turn when the loop wrote it: no hop through a thread-safe
        callback and a wrapped, shielded future per call (three more turns of the loop
        for every answer, each a wait behind every other request ready then). A client
        hanging up cancels only its waiter: the call stays in its batch and is written."""
        loop = asyncio.get_running_loop()
        call.waiter = waiter = loop.create_future()
        if self.on_loop:
            self._loop_batch.append(call)
            if len(self._loop_batch) == 1:
                # After the callbacks ready now: the calls they finish join this batch.
                loop.call_soon(self._write_on_loop)
        else:
            self._queue.put(call)
        async with asyncio.timeout(timeout):
            await waiter

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=10)
        if self._loop_conn is not None:
            self._loop_conn.close()
        if self._loop_lock is not None:
            self._loop_lock.close()

    def _write_on_loop(self) -> None:
        """SQLite: write the batch on the event loop, if nobody holds the write lock.

        The writer thread needs the GIL back after each of its database calls, and
        while requests keep the event loop busy each return waits up to a switch
        interval: a batch's few milliseconds of work took tens. On the loop the batch
        costs the same work and no waiting. A writer that holds the lock (another hub
        process's journal, a console transaction) would block every request, so then
        the batch goes to the thread, which may wait."""
        batch, self._loop_batch = self._loop_batch, []
        if self._loop_conn is None:
            self._loop_conn = self.engine.raw_connection()
            cur = self._loop_conn.cursor()
            cur.execute("PRAGMA busy_timeout=0")
            # Checkpoints (copying the WAL into the database, with an fsync) are the
            # writer thread's: on the loop they stalled every request for tens of ms.
            cur.execute("PRAGMA wal_autocheckpoint=0")
            cur.close()
        try:
            replays = self._write_now(batch)
        except Exception as exc:
            log.exception("call journal write failed", calls=len(batch))
            self._answer(batch, exc)
            return
        if replays is None:
            for call in batch:
                self._queue.put(call)
        else:
            self._answer(batch, replays)
            if time.monotonic() - self._checkpointed > CHECKPOINT_SECONDS:
                self._checkpointed = time.monotonic()
                self._queue.put(CHECKPOINT)

    def _write_now(self, batch: Sequence[Call]) -> set[int] | None:
        """``write`` without waiting: None when another writer holds the lock.

        The loop's lock file stays open (opening and closing it per batch was about a
        twelfth of the batch's time on the loop in a profile); it is an open file of its
        own, so the writer thread's lock (``_file_lock``, another open file) and the
        loop's still exclude each other."""
        lock = None
        if self.lock_path is not None:
            if self._loop_lock is None:
                self._loop_lock = self.lock_path.open("a")
            lock = self._loop_lock
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return None
        try:
            return self._write_locked(batch, self._loop_conn)
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc) or "busy" in str(exc):
                return None
            raise
        finally:
            if lock is not None:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _answer(self, batch: Sequence[Call], outcome: set[int] | Exception) -> None:
        # Running futures can no longer be cancelled; one already cancelled is still
        # written, only not answered.
        for call in batch:
            if not call.done.set_running_or_notify_cancel():
                continue
            if isinstance(outcome, Exception):
                call.done.set_exception(outcome)
            elif id(call) in outcome:
                call.done.set_exception(ReplayedRequest("重复的请求 (nonce 已使用)"))
            else:
                call.done.set_result(None)
            if call.waiter is not None:
                _notify(call.waiter, call.done)

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            if not isinstance(first, Call):
                self._housekeep()
                continue
            batch = [first]
            while len(batch) < self.max_batch:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if not isinstance(nxt, Call):
                    self._queue.put(nxt)
                    break
                batch.append(nxt)
            try:
                replays = self.write(batch)
            except Exception as exc:  # the database is down: every waiting call fails
                log.exception("call journal write failed", calls=len(batch))
                self._answer(batch, exc)
                continue
            self._answer(batch, replays)

    def _housekeep(self) -> None:
        """What the loop's writes leave to the thread: spent nonces past their time
        deleted (thousands of rows every few seconds under load), then the WAL copied
        into the database without waiting for readers or writers (a passive
        checkpoint; the next one finishes the job)."""
        try:
            if time.monotonic() - self._pruned > PRUNE_SECONDS:
                self._pruned = time.monotonic()
                with self._file_lock():
                    conn = self.engine.raw_connection()
                    try:
                        self._prune.run(conn, {"before": utcnow() - self.nonce_ttl})
                        conn.commit()
                    finally:
                        conn.close()
            conn = self.engine.raw_connection()
            try:
                cur = conn.cursor()
                cur.execute("PRAGMA wal_checkpoint(PASSIVE)")
                cur.close()
            finally:
                conn.close()
            self.checkpoints += 1
        except Exception:
            log.exception("call journal housekeeping failed")

    @contextlib.contextmanager
    def _file_lock(self) -> Iterator[None]:
        if self.lock_path is None:
            yield
            return
        with self.lock_path.open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def write(self, batch: Sequence[Call]) -> set[int]:
        """Write one batch in one transaction (what the writer thread does with each);
        answers the calls (by ``id``) refused as replays. Nothing of a failed batch
        stays: no nonce spent, no audit entry, no count."""
        # SQLite: the hub processes' journal writers queue on a file lock, which wakes
        # the next one the moment it is free; waiting in SQLite's busy handler instead
        # sleeps 1, 2, 5, 10 … ms between tries, and those sleeps were the p99.
        with self._file_lock():
            refused = self._write_locked(batch)
        telemetry.JOURNAL_BATCH.observe(len(batch))
        return refused

    def _write_locked(self, batch: Sequence[Call], conn: Any = None) -> set[int]:
        self.batches += 1
        now = utcnow()
        own = conn is None
        if own:
            conn = self.engine.raw_connection()
        try:
            replays = self._spend_nonces(conn, batch, now)
            self._audit.append(conn, audit_entries(batch, replays), now)
            self._count(conn, [c for c in batch if id(c) not in replays])
            # on the loop (a connection given) pruning is the thread's (``_housekeep``)
            if own and time.monotonic() - self._pruned > PRUNE_SECONDS:
                self._prune.run(conn, {"before": now - self.nonce_ttl})
                self._pruned = time.monotonic()
            conn.commit()
        except BaseException:
            conn.rollback()
            raise
        finally:
            if own:
                conn.close()
        return replays

    def _spend_nonces(self, conn: Any, batch: Sequence[Call], now: datetime) -> set[int]:
        """The calls (by ``id``) whose nonce was spent before, by an earlier call or an
        earlier one of this batch."""
        rows = [{"app_key": c.app_key, "nonce": c.nonce, "seen_at": now} for c in batch]
        unspent = set(self._spend.rows(conn, rows))
        replays: set[int] = set()
        for call in batch:
            key = (call.app_key, call.nonce)
            if key in unspent:
                unspent.discard(key)  # the first call with it spends it
            else:
                replays.add(id(call))
        return replays

    def _count(self, conn: Any, calls: Sequence[Call]) -> None:
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
        self._counts.run(
            conn,
            [
                {"day": d, "client_id": c, "grant_id": g, "calls": n, "keys": k, "rows": r}
                for (d, c, g), (n, k, r) in sums.items()
            ],
        )


def _notify(waiter: asyncio.Future[None], done: Future[None]) -> None:
    """Settle a request's ``waiter`` as ``done`` was: at once on its own loop, else
    (the writer thread answering) in the loop's next turn."""
    loop = waiter.get_loop()
    if asyncio._get_running_loop() is loop:
        _settle(waiter, done)
        return
    with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
        loop.call_soon_threadsafe(_settle, waiter, done)


def _settle(waiter: asyncio.Future[None], done: Future[None]) -> None:
    if waiter.done():  # cancelled: the client hung up or its time ran out
        return
    exc = done.exception()
    if exc is None:
        waiter.set_result(None)
    else:
        waiter.set_exception(exc)


def audit_entries(
    batch: Sequence[Call], replays: AbstractSet[int] = frozenset()
) -> list[audit.Pending]:
    """The batch's audit entries: one per group of calls served or refused, in the order
    of each group's first call, and one per replay refused."""
    groups: dict[tuple[Any, ...], list[Call]] = {}
    entries: list[audit.Pending | list[Call]] = []
    for call in batch:
        if id(call) in replays:
            entries.append(_replay_entry(call))
        elif (group := groups.get(call.group)) is not None:
            group.append(call)
        else:
            groups[call.group] = group = [call]
            entries.append(group)
    return [_entry(e) if isinstance(e, list) else e for e in entries]


def _replay_entry(call: Call) -> audit.Pending:
    return audit.Pending(
        actor=call.actor,
        action="data.replay_refused",
        object_type="api_client",
        object_id=call.client_id,
        after={"nonce": call.nonce, "action": call.action},
        request_id=None,
    )
