"""The audit log: every change and every data access, appended to one hash chain.

Each entry's hash covers its own fields and the previous entry's hash, so an edited,
deleted or inserted row breaks the chain at that point; ``AuditHead`` holds the newest
seq and hash so that a removed tail is found too. Other domains call ``record``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import SimpleNamespace
from typing import Any

import orjson
from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session

from govshare.db import utcnow
from govshare.security.crypto import digest
from govshare.security.models import AuditEntry, AuditHead

GENESIS = "0" * 64


@dataclass(frozen=True, slots=True)
class Actor:
    """Who did it: a person, an API client, or the platform itself (``system``)."""

    name: str
    kind: str = "user"
    department_id: int | None = None
    remote_addr: str | None = None


SYSTEM = Actor(name="system", kind="system")


def _canonical(entry: AuditEntry) -> bytes:
    fields = {
        "seq": entry.seq,
        "at": entry.at.isoformat(),
        "actor": entry.actor,
        "actor_kind": entry.actor_kind,
        "department_id": entry.department_id,
        "action": entry.action,
        "object_type": entry.object_type,
        "object_id": entry.object_id,
        "before": entry.before,
        "after": entry.after,
        "remote_addr": entry.remote_addr,
        "alg": entry.alg,
        "prev_hash": entry.prev_hash,
    }
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
    """Append entries in order under one claim on the head (group commit of the data
    services' call journal); they commit or roll back with the caller's transaction."""
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
    last_seq, prev_hash = head
    seq = last_seq - len(pending)
    rows: list[dict[str, Any]] = []
    for p in pending:
        seq += 1
        row = {
            "seq": seq,
            "at": utcnow(),
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
            "hash": "",
        }
        row["hash"] = prev_hash = digest(alg, _canonical(SimpleNamespace(**row)))  # type: ignore[arg-type]
        rows.append(row)
    # A plain multi-row insert into the table: the entries are final once hashed, so
    # neither the unit of work nor the ORM's bulk path has anything to do (the call
    # journal appends hundreds per commit).
    session.execute(insert(AuditEntry.__table__), rows)
    session.execute(update(AuditHead).where(AuditHead.id == 1).values(hash=prev_hash))
    return [AuditEntry(**row) for row in rows]


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
