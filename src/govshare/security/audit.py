"""The audit log: every change and every data access, appended to one hash chain.

Each entry's hash covers its own fields and the previous entry's hash, so an edited,
deleted or inserted row breaks the chain at that point; ``AuditHead`` holds the newest
seq and hash so that a removed tail is found too. Other domains call ``record``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Integer, Table, bindparam, func, insert, select, update
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Session

from govshare.db import Prepared, RowsInsert, dialect_insert, utcnow
from govshare.security.crypto import digest
from govshare.security.models import AuditEntry, AuditHead

GENESIS = "0" * 64
# The plain table: entries are final once hashed, so they are inserted without the ORM.
_ENTRIES: Table = AuditEntry.__table__  # type: ignore[assignment]


@dataclass(frozen=True, slots=True)
class Actor:
    """Who did it: a person, an API client, or the platform itself (``system``)."""

    name: str
    kind: str = "user"
    department_id: int | None = None
    remote_addr: str | None = None


SYSTEM = Actor(name="system", kind="system")


_HASHED = (
    "seq",
    "at",
    "actor",
    "actor_kind",
    "department_id",
    "action",
    "object_type",
    "object_id",
    "before",
    "after",
    "remote_addr",
    "alg",
    "prev_hash",
)


def _canonical(entry: AuditEntry) -> bytes:
    return _canonical_row({f: getattr(entry, f) for f in _HASHED})


def _canonical_row(row: Mapping[str, Any]) -> bytes:
    fields = {f: row[f] for f in _HASHED}
    fields["at"] = row["at"].isoformat()
    return orjson.dumps(fields, option=orjson.OPT_SORT_KEYS)


def _jsonable(value: dict[str, Any] | None) -> dict[str, Any] | None:
    if value is None:
        return None
    # Round-trip so dates, enums and decimals are stored exactly as they are hashed.
    return orjson.loads(orjson.dumps(value, default=str))


def ensure_head(session: Session) -> None:
    if session.get(AuditHead, 1) is None:
        session.add(AuditHead(id=1, seq=0, hash=GENESIS))
        session.flush()


@dataclass(frozen=True, slots=True)
class Pending:
    """An entry to append: who did what to which object, with its before/after state."""

    actor: Actor
    action: str
    object_type: str
    object_id: str | int | None = None
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None


def record(
    session: Session,
    actor: Actor,
    action: str,
    *,
    object_type: str,
    object_id: str | int | None = None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> AuditEntry:
    """Append one entry in the caller's transaction; it commits or rolls back with it.

    The digest is the deployment's ``audit_digest``, carried in ``session.info``.
    """
    return record_many(session, [Pending(actor, action, object_type, object_id, before, after)])[0]


def record_many(session: Session, pending: Sequence[Pending]) -> list[AuditEntry]:
    """Append entries in order under one claim on the head; they commit or roll back
    with the caller's transaction."""
    if not pending:
        return []
    alg = session.info.get("audit_alg", "sm3")
    # Taking the head row's write lock first serialises appenders on both SQLite and
    # PostgreSQL, so no two entries ever claim the same predecessor.
    # The claim returns the new seq and the hash to chain on (one statement, not two).
    claim = (
        update(AuditHead)
        .where(AuditHead.id == 1)
        .values(seq=AuditHead.seq + len(pending))
        .returning(AuditHead.seq, AuditHead.hash)
    )
    head = session.execute(claim).first()
    if head is None:
        ensure_head(session)
        head = session.execute(claim).one()
    rows = chained(pending, alg=alg, head=(head[0], head[1]), at=utcnow())
    session.execute(insert(_ENTRIES), rows)
    session.execute(update(AuditHead).where(AuditHead.id == 1).values(hash=rows[-1]["hash"]))
    return [AuditEntry(**row) for row in rows]


def chained(
    pending: Sequence[Pending], *, alg: str, head: tuple[int, str], at: datetime
) -> list[dict[str, Any]]:
    """The rows of ``pending`` hashed onto the chain; ``head`` is the claimed seq (the
    last of the entries) and the hash they chain on."""
    last_seq, prev_hash = head
    seq = last_seq - len(pending)
    rows: list[dict[str, Any]] = []
    for p in pending:
        seq += 1
        row = {
            "seq": seq,
            "at": at,
            "actor": p.actor.name,
            "actor_kind": p.actor.kind,
            "department_id": p.actor.department_id,
            "action": p.action,
            "object_type": p.object_type,
            "object_id": None if p.object_id is None else str(p.object_id),
            "before": _jsonable(p.before),
            "after": _jsonable(p.after),
            "remote_addr": p.actor.remote_addr,
            "alg": alg,
            "prev_hash": prev_hash,
        }
        row["hash"] = prev_hash = digest(alg, _canonical_row(row))
        rows.append(row)
    return rows


class ChainAppender:
    """``record_many`` for a DBAPI connection, for the data services' call journal,
    which appends a batch of entries per commit: three statements compiled once (claim
    the head, insert the rows, move the head's hash) and no ORM on the way."""

    def __init__(self, dialect: Dialect, alg: str) -> None:
        head: Table = AuditHead.__table__  # type: ignore[assignment]
        self.alg = alg
        self._claim = Prepared(
            update(head)
            .where(head.c.id == 1)
            .values(seq=head.c.seq + bindparam("n", type_=Integer))
            .returning(head.c.seq, head.c.hash),
            dialect,
        )
        self._genesis = Prepared(
            dialect_insert(head, dialect)
            .values(id=1, seq=0, hash=GENESIS)
            .on_conflict_do_nothing(),
            dialect,
        )
        self._insert = RowsInsert(_ENTRIES, dialect, [c.name for c in _ENTRIES.columns])
        self._move = Prepared(
            update(head).where(head.c.id == 1).values(hash=bindparam("hash")), dialect
        )

    def append(self, dbapi_conn: Any, pending: Sequence[Pending], at: datetime) -> None:
        """In the connection's open transaction; the caller commits."""
        if not pending:
            return
        claimed = self._claim.rows(dbapi_conn, {"n": len(pending)})
        if not claimed:
            self._genesis.run(dbapi_conn, {})
            claimed = self._claim.rows(dbapi_conn, {"n": len(pending)})
        rows = chained(pending, alg=self.alg, head=claimed[0], at=at)  # type: ignore[arg-type]
        self._insert.run(dbapi_conn, rows)
        self._move.run(dbapi_conn, {"hash": rows[-1]["hash"]})


@dataclass(frozen=True, slots=True)
class ChainProblem:
    seq: int
    problem: str


@dataclass(frozen=True, slots=True)
class ChainReport:
    entries: int
    problems: list[ChainProblem]

    @property
    def intact(self) -> bool:
        return not self.problems


def _iter_entries(session: Session, batch: int = 5000) -> Iterator[AuditEntry]:
    last = 0
    while True:
        rows = session.scalars(
            select(AuditEntry).where(AuditEntry.seq > last).order_by(AuditEntry.seq).limit(batch)
        ).all()
        if not rows:
            return
        yield from rows
        last = rows[-1].seq
        session.expunge_all()


def verify_chain(session: Session) -> ChainReport:
    """Walk the whole chain; report every break (edited, inserted or deleted rows)."""
    problems: list[ChainProblem] = []
    expected_seq, prev_hash, count = 1, GENESIS, 0
    for entry in _iter_entries(session):
        count += 1
        if entry.seq != expected_seq:
            problems.append(
                ChainProblem(expected_seq, f"entries {expected_seq}..{entry.seq - 1} are missing")
            )
        if entry.prev_hash != prev_hash:
            problems.append(ChainProblem(entry.seq, "does not link to the entry before it"))
        if digest(entry.alg, _canonical(entry)) != entry.hash:
            problems.append(ChainProblem(entry.seq, "content does not match its hash (edited)"))
        expected_seq, prev_hash = entry.seq + 1, entry.hash
    head = session.get(AuditHead, 1)
    head_seq, head_hash = (head.seq, head.hash) if head else (0, GENESIS)
    if head_seq != expected_seq - 1 or head_hash != prev_hash:
        problems.append(
            ChainProblem(head_seq, f"chain ends at {expected_seq - 1} but the head says {head_seq}")
        )
    return ChainReport(entries=count, problems=problems)


@dataclass(frozen=True, slots=True)
class AuditFilter:
    actor: str | None = None
    action: str | None = None
    object_type: str | None = None
    object_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def list_entries(
    session: Session, flt: AuditFilter, *, before_seq: int | None = None, limit: int = 50
) -> list[AuditEntry]:
    """Newest first, keyset-paged by ``seq``."""
    q = select(AuditEntry).order_by(AuditEntry.seq.desc()).limit(limit)
    if before_seq is not None:
        q = q.where(AuditEntry.seq < before_seq)
    if flt.actor:
        q = q.where(AuditEntry.actor == flt.actor)
    if flt.action:
        q = q.where(AuditEntry.action == flt.action)
    if flt.object_type:
        q = q.where(AuditEntry.object_type == flt.object_type)
    if flt.object_id:
        q = q.where(AuditEntry.object_id == flt.object_id)
    if flt.since:
        q = q.where(AuditEntry.at >= flt.since)
    if flt.until:
        q = q.where(AuditEntry.at < flt.until)
    return list(session.scalars(q))


def count_entries(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(AuditEntry)) or 0
