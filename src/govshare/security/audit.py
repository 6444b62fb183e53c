"""The audit log: every change and every data access, appended to one keyed hash chain.

Each entry's hash covers its own fields and the previous entry's hash, so an edited,
deleted or inserted row breaks the chain at that point; ``AuditHead`` holds the newest
seq and hash so that a removed tail is found too. Other domains call ``record``.

Entries are sealed with an HMAC (``hmac-sm3`` or ``hmac-sha256`` in ``alg``) under the
key in the data directory (``security.anchor``), never in the database, so nobody who
can only write the database can recompute the chain after changing a row; signed
checkpoints of the head, kept in the data directory too, catch a rewrite by someone
who does hold the key. Entries written before the deployment had a key carry the plain
digest (``sm3`` or ``sha256``) and are verified by that rule, up to the key's
``legacy_until``.
"""

from __future__ import annotations

import hashlib
import hmac
import multiprocessing
import os
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import (
    Integer,
    Select,
    Table,
    Text,
    bindparam,
    cast,
    create_engine,
    func,
    select,
    type_coerce,
    update,
)
from sqlalchemy.engine import URL, Dialect
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from govshare.db import PerDialect, Prepared, RowsInsert, dialect_insert, utcnow
from govshare.requestid import current_request_id
from govshare.security.anchor import (
    AuditKey,
    Checkpoint,
    append_checkpoint,
    current,
    read_checkpoints,
)
from govshare.security.crypto import _derive, digest, keyed_digest
from govshare.security.models import AuditEntry, AuditHead

GENESIS = "0" * 64
IN_ARCHIVED_RANGE = "lies within an archived range"
KEYED = "hmac-"
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
    return _canonical_row({f: getattr(entry, f) for f in (*_HASHED, "request_id")})


def _canonical_row(row: Mapping[Any, Any]) -> bytes:
    fields = {f: row[f] for f in _HASHED}
    # Archived entries carry the time as the text that was hashed (``security.archive``).
    at = row["at"]
    fields["at"] = at if isinstance(at, str) else utc_text(at)
    # The request id is hashed when there is one, so it cannot be changed unnoticed;
    # entries without one (all those written before it existed) hash as they always did.
    if row.get("request_id") is not None:
        fields["request_id"] = row["request_id"]
    return orjson.dumps(fields, option=orjson.OPT_SORT_KEYS)


def utc_text(at: datetime) -> str:
    """An entry's time as it is hashed: ISO 8601 in UTC. PostgreSQL hands times back in
    its session's zone (``Asia/Shanghai`` on a server set up in China), which would read
    as a different text for the same instant."""
    return (at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)).isoformat()


def _sqlite_utc_text(stored: str) -> str:
    """``utc_text`` of a time as SQLite stores it (``YYYY-MM-DD HH:MM:SS.ffffff``, UTC),
    without parsing it: the walk of the chain does this millions of times."""
    if len(stored) == 26 and stored[10] == " " and stored[19] == ".":
        fraction = stored[19:]
        return f"{stored[:10]}T{stored[11:19]}{'' if fraction == '.000000' else fraction}+00:00"
    return utc_text(datetime.fromisoformat(stored))


def _jsonable(value: dict[str, Any] | None) -> dict[str, Any] | None:
    if value is None:
        return None
    # Round-trip so dates, enums and decimals are stored exactly as they are hashed.
    return orjson.loads(orjson.dumps(value, default=str))


def session_key(session: Session) -> AuditKey | None:
    """The session's audit key (``info["audit_key"]``, the data dir's) as its file now
    says, so a rotation by another process is seen (``anchor.current``)."""
    key: AuditKey | None = session.info.get("audit_key")
    return current(key) if key is not None else None


def lock_head(session: Session) -> tuple[int, str]:
    """Take the chain head's write lock for the rest of the transaction (as an append
    does) and give the head: nothing can be appended until the caller commits."""
    ensure_head(session)
    row = session.execute(
        update(AuditHead)
        .where(AuditHead.id == 1)
        .values(seq=AuditHead.seq)
        .returning(AuditHead.seq, AuditHead.hash)
        .execution_options(synchronize_session=False)
    ).one()
    return int(row[0]), str(row[1])


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
    # The request being served when the entry was made (``govshare.requestid``).
    request_id: str | None = field(default_factory=current_request_id)


def record(
    session: Session,
    actor: Actor,
    action: str,
    *,
    object_type: str,
    object_id: str | int | None = None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> AuditEntry:
    """Append one entry in the caller's transaction; it commits or rolls back with it.

    The digest is the deployment's ``audit_digest``, carried in ``session.info``; ``at``
    is now unless a caller with an injected clock gives it.
    """
    return record_many(
        session, [Pending(actor, action, object_type, object_id, before, after)], at=at
    )[0]


def record_many(
    session: Session, pending: Sequence[Pending], *, at: datetime | None = None
) -> list[AuditEntry]:
    """Append entries in order under one claim on the head; they commit or roll back
    with the caller's transaction.

    The statements run on the session's own connection, compiled once per dialect
    (``ChainStatements``): through the ORM the three of them cost more than the rest
    of a typical writing request's statements together."""
    if not pending:
        return []
    if session.autoflush:  # what the ORM would do before a statement: keep the order
        session.flush()
    connection = session.connection()
    rows = chain_statements(connection.dialect).append(
        connection.connection,
        pending,
        alg=session.info.get("audit_alg", "sm3"),
        key=lambda: session_key(session),
        at=at or utcnow(),
    )
    return [AuditEntry(**row) for row in rows]


def chained(
    pending: Sequence[Pending],
    *,
    alg: str,
    mac_key: bytes | None,
    head: tuple[int, str],
    at: datetime,
) -> list[dict[str, Any]]:
    """The rows of ``pending`` hashed onto the chain; ``head`` is the claimed seq (the
    last of the entries) and the hash they chain on. With ``mac_key`` (every hub has
    one) the hashes are HMACs and ``alg`` is stored as ``hmac-<alg>``."""
    last_seq, prev_hash = head
    stored_alg = KEYED + alg if mac_key is not None else alg
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
            "alg": stored_alg,
            "prev_hash": prev_hash,
            "request_id": p.request_id,
        }
        data = _canonical_row(row)
        row["hash"] = prev_hash = (
            digest(alg, data) if mac_key is None else keyed_digest(alg, mac_key, data)
        )
        rows.append(row)
    return rows


class ChainStatements:
    """The three statements of an append, compiled once for a dialect and run on the
    DBAPI connection: claim the head (its write lock, on SQLite and PostgreSQL alike,
    serialises appenders, so no two entries ever claim the same predecessor; one
    statement returns the new seq and the hash to chain on), insert the rows, move the
    head's hash."""

    def __init__(self, dialect: Dialect) -> None:
        head: Table = AuditHead.__table__  # type: ignore[assignment]
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

    def append(
        self,
        dbapi_conn: Any,
        pending: Sequence[Pending],
        *,
        alg: str,
        key: Callable[[], AuditKey | None],
        at: datetime,
    ) -> list[dict[str, Any]]:
        """The rows appended, in the connection's open transaction; the caller commits.
        ``key`` is asked after the claim: a rotation replaces the key while it holds
        the head."""
        claimed = self._claim.rows(dbapi_conn, {"n": len(pending)})
        if not claimed:
            self._genesis.run(dbapi_conn, {})
            claimed = self._claim.rows(dbapi_conn, {"n": len(pending)})
        mac_key = key()
        rows = chained(
            pending,
            alg=alg,
            mac_key=mac_key.mac_key if mac_key else None,
            head=claimed[0],  # type: ignore[arg-type]
            at=at,
        )
        self._insert.run(dbapi_conn, rows)
        self._move.run(dbapi_conn, {"hash": rows[-1]["hash"]})
        return rows


chain_statements = PerDialect(ChainStatements)


class ChainAppender:
    """``record_many`` for a DBAPI connection, for the data services' call journal,
    which appends a batch of entries per commit, with the journal's key."""

    def __init__(self, dialect: Dialect, alg: str, key: AuditKey | None) -> None:
        self.alg = alg
        self.key = key
        self._statements = chain_statements(dialect)

    def append(self, dbapi_conn: Any, pending: Sequence[Pending], at: datetime) -> None:
        """In the connection's open transaction; the caller commits."""
        if pending:
            self._statements.append(dbapi_conn, pending, alg=self.alg, key=self._key, at=at)

    def _key(self) -> AuditKey | None:
        if self.key is not None:
            self.key = current(self.key)
        return self.key


@dataclass(frozen=True, slots=True)
class ChainProblem:
    seq: int
    problem: str


@dataclass(frozen=True, slots=True)
class ChainReport:
    entries: int
    problems: list[ChainProblem]
    archived: int = 0  # of ``entries``, those read from archive files
    archives: int = 0

    @property
    def intact(self) -> bool:
        return not self.problems


Progress = Callable[[int], None]
"""Told how many more entries a long walk has done (a CLI progress bar)."""


_JSON_COLUMNS = ("before", "after")


def select_rows() -> Select[Any]:
    """Every column of the entries, the JSON ones read as they are stored and decoded by
    ``decoded`` (orjson), which is several times faster than the JSON type's own decoding
    on a walk of millions of rows."""
    return select(
        *(
            type_coerce(c, Text).label(c.name) if c.name in _JSON_COLUMNS else c
            for c in _ENTRIES.columns
        )
    )


def decoded(rows: Sequence[Mapping[Any, Any]]) -> list[dict[str, Any]]:
    """Rows of ``select_rows`` with their JSON columns decoded (PostgreSQL's driver
    already hands JSONB over decoded)."""
    out = []
    for row in rows:
        entry = dict(row)
        for name in _JSON_COLUMNS:
            value = entry[name]
            if isinstance(value, str | bytes):
                entry[name] = orjson.loads(value)
        if entry["at"].tzinfo != UTC:  # PostgreSQL's session zone (``utc_text``)
            entry["at"] = entry["at"].astimezone(UTC)
        out.append(entry)
    return out


_BELOW_EVERY_SEQ = -(2**63)


_WALKED = (*_HASHED, "hash", "request_id")


def _iter_rows(
    session: Session, *, after: int = _BELOW_EVERY_SEQ, last: int | None = None, batch: int = 10_000
) -> Iterator[tuple[dict[str, Any], str]]:
    """Every row with ``after < seq <= last`` by seq, those with seq <= 0 included (they
    are forgeries to report), as (the fields its hash covers — ``_canonical_row``'s,
    ``at`` as the text that was hashed — and its stored hash).

    Read off the driver's cursor (``Prepared.fetch``) and unpacked by position:
    SQLAlchemy's row objects, date parsing and per-field lookups cost more than
    verifying the entry does."""
    q = (
        select(*(_ENTRIES.c[name] for name in _WALKED))
        .where(_ENTRIES.c.seq > bindparam("after", type_=_ENTRIES.c.seq.type))
        .order_by(_ENTRIES.c.seq)
        .limit(batch)
    )
    if last is not None:
        q = q.where(_ENTRIES.c.seq <= last)
    page = Prepared(q, session.get_bind().dialect)
    dbapi_conn = session.connection().connection
    loads = orjson.loads
    while True:
        fetched = page.fetch(dbapi_conn, {"after": after})
        if not fetched:
            return
        for (
            seq,
            at,
            actor,
            actor_kind,
            department_id,
            action,
            object_type,
            object_id,
            before,
            after_,
            remote_addr,
            alg,
            prev_hash,
            hash_,
            request_id,
        ) in fetched:
            fields = {
                "seq": seq,
                "at": _sqlite_utc_text(at) if isinstance(at, str) else utc_text(at),
                "actor": actor,
                "actor_kind": actor_kind,
                "department_id": department_id,
                "action": action,
                "object_type": object_type,
                "object_id": object_id,
                # Text on SQLite; PostgreSQL's driver hands JSONB over decoded.
                "before": loads(before) if isinstance(before, str | bytes) else before,
                "after": loads(after_) if isinstance(after_, str | bytes) else after_,
                "remote_addr": remote_addr,
                "alg": alg,
                "prev_hash": prev_hash,
            }
            if request_id is not None:
                fields["request_id"] = request_id
            yield fields, hash_
        after = fetched[-1][0]


def _entry_problem(entry: AuditEntry, key: AuditKey | None) -> str | None:
    """Why an entry's own hash is wrong, or None when it is right."""
    return hash_problem(
        seq=entry.seq, alg=entry.alg, hash=entry.hash, data=_canonical(entry), key=key
    )


def row_problem(row: Mapping[Any, Any], key: AuditKey | None) -> str | None:
    """``_entry_problem`` for an entry as a mapping (a table row or an archived line)."""
    return hash_problem(
        seq=row["seq"], alg=row["alg"], hash=row["hash"], data=_canonical_row(row), key=key
    )


def hash_problem(*, seq: int, alg: str, hash: str, data: bytes, key: AuditKey | None) -> str | None:
    """Why ``hash`` is not the entry's hash of ``data`` under ``alg``, or None."""
    if alg.startswith(KEYED):
        if key is None:
            return "is keyed but no audit key was found in the data directory"
        try:
            expected = keyed_digest(alg.removeprefix(KEYED), key.mac_key_for(seq), data)
        except ValueError:
            return f"unknown algorithm {alg!r}"
    else:
        if key is not None and seq > key.legacy_until:
            return "is not keyed, yet the chain was keyed from entry " + str(key.legacy_until + 1)
        try:
            expected = digest(alg, data)
        except ValueError:
            return f"unknown algorithm {alg!r}"
    if expected != hash:
        return "content does not match its hash (edited)"
    return None


def usable_cores() -> int:
    """The cores this process may run on (a container's share, not the host's count)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


SEGMENT_ENTRIES = 100_000
"""Seqs per segment when the live table is walked by several processes."""


@dataclass(frozen=True, slots=True)
class _Walk:
    """Where a walk of the live table stands: the seq it expects next and the hash that
    entry must link to."""

    expected_seq: int
    prev_hash: str


@dataclass(frozen=True, slots=True)
class _Walked:
    entries: int
    problems: list[ChainProblem]
    expected_seq: int
    prev_hash: str


def _walk_live(
    rows: Iterator[tuple[dict[str, Any], str]],
    key: AuditKey | None,
    anchored: Mapping[int, Sequence[tuple[str, str]]],
    entering: _Walk,
    progress: Progress | None,
) -> _Walked:
    """Check each row of ``_iter_rows``'s place, link, hash and signed checkpoints
    (``anchored``: seq → (hash, signed at)), starting from ``entering``."""
    problems: list[ChainProblem] = []
    expected_seq, prev_hash = entering.expected_seq, entering.prev_hash
    count = done = 0
    dumps, sort_keys = orjson.dumps, orjson.OPT_SORT_KEYS
    for entry, entry_hash in rows:
        count += 1
        done += 1
        if progress is not None and done == 10_000:
            progress(done)
            done = 0
        seq = entry["seq"]
        if seq <= 0:
            problems.append(ChainProblem(seq, "seq is not a chain position (forged)"))
            continue
        if seq < expected_seq:
            problems.append(ChainProblem(seq, f"{IN_ARCHIVED_RANGE} (re-inserted)"))
            continue
        if seq != expected_seq:
            problems.append(
                ChainProblem(expected_seq, f"entries {expected_seq}..{seq - 1} are missing")
            )
        if entry["prev_hash"] != prev_hash:
            problems.append(ChainProblem(seq, "does not link to the entry before it"))
        if problem := hash_problem(
            seq=seq, alg=entry["alg"], hash=entry_hash, data=dumps(entry, option=sort_keys), key=key
        ):
            problems.append(ChainProblem(seq, problem))
        for signed_hash, signed_at in anchored.get(seq, ()):
            if signed_hash != entry_hash:
                problems.append(
                    ChainProblem(
                        seq, f"differs from the checkpoint signed at {signed_at} (rewritten)"
                    )
                )
        expected_seq, prev_hash = seq + 1, entry_hash
    if progress is not None and done:
        progress(done)
    return _Walked(count, problems, expected_seq, prev_hash)


def _walk_in_parallel(
    session: Session,
    url: URL,
    key: AuditKey | None,
    anchored: Mapping[int, Sequence[tuple[str, str]]],
    entering: _Walk,
    last_seq: int,
    workers: int,
    segment_entries: int,
    progress: Progress | None,
) -> _Walked:
    """``_walk_live`` over segments of the live table in ``workers`` processes.

    A segment ``(after, last]`` starts from the state one walk would have there: the
    row with the highest seq at or below ``after`` (at or above the seq expected on
    entering; rows below it never move a walk), which one indexed read finds."""
    bounds = list(range(entering.expected_seq - 1, last_seq, segment_entries))[1:]
    segments: list[tuple[int, int | None, _Walk]] = []
    after, state = _BELOW_EVERY_SEQ, entering
    for bound in [*bounds, None]:
        segments.append((after, bound, state))
        if bound is None:
            break
        row = session.execute(
            select(_ENTRIES.c.seq, _ENTRIES.c.hash)
            .where(_ENTRIES.c.seq <= bound, _ENTRIES.c.seq >= entering.expected_seq)
            .order_by(_ENTRIES.c.seq.desc())
            .limit(1)
        ).first()
        after = bound
        if row is not None:
            state = _Walk(row.seq + 1, row.hash)
    found: list[_Walked] = []
    with ProcessPoolExecutor(
        max_workers=min(workers, len(segments)), mp_context=multiprocessing.get_context("spawn")
    ) as pool:
        futures = [
            pool.submit(
                _walk_segment,
                url.render_as_string(hide_password=False),
                key,
                anchored,
                low,
                high,
                start,
            )
            for low, high, start in segments
        ]
        for future in futures:
            found.append(future.result())
            if progress is not None:
                progress(found[-1].entries)
    return _Walked(
        entries=sum(w.entries for w in found),
        problems=[p for w in found for p in w.problems],
        expected_seq=found[-1].expected_seq,
        prev_hash=found[-1].prev_hash,
    )


def _walk_segment(
    url: str,
    key: AuditKey | None,
    anchored: Mapping[int, Sequence[tuple[str, str]]],
    after: int,
    last: int | None,
    entering: _Walk,
) -> _Walked:
    """One worker's segment (run in a child process: its own engine, no pool)."""
    engine = create_engine(url, poolclass=NullPool)
    try:
        with Session(engine) as session:
            rows = _iter_rows(session, after=after, last=last)
            return _walk_live(rows, key, anchored, entering, None)
    finally:
        engine.dispose()


def verify_chain(
    session: Session,
    *,
    progress: Progress | None = None,
    workers: int = 1,
    segment_entries: int = SEGMENT_ENTRIES,
) -> ChainReport:
    """Walk the whole chain — the archived ranges (``security.archive``), then the live
    table — and hold it against the signed checkpoints; report every break (edited,
    inserted, deleted or rewritten rows, rows outside the chain, and damaged, removed or
    reordered archives). The chain must link across every archive boundary.

    With ``workers`` above one and more than ``segment_entries`` live entries, the live
    table is walked in segments of that many seqs by that many processes (``govshare
    audit verify`` uses every core): hashing is most of the walk, and the finding is the
    same as one walk's.

    The key and checkpoints are the session's ``info["audit_key"]`` (the data dir's)."""
    from govshare.security import archive  # it builds on this module

    audit_key = session_key(session)
    checkpoints = read_checkpoints(audit_key) if audit_key else []
    problems: list[ChainProblem] = []
    for cp in checkpoints:
        if not cp.valid:
            problems.append(
                ChainProblem(cp.seq, f"checkpoint line {cp.line} has no valid signature")
            )
    signed: dict[int, list[Checkpoint]] = {}
    for cp in checkpoints:
        if cp.valid:
            signed.setdefault(cp.seq, []).append(cp)
    walked = archive.verify_archives(session, audit_key, signed, progress=progress)
    problems.extend(walked.problems)
    anchored = {seq: [(cp.hash, cp.at) for cp in cps] for seq, cps in signed.items()}
    entering = _Walk(walked.next_seq, walked.prev_hash)
    url = session.connection().engine.url
    last_seq = session.execute(select(func.max(_ENTRIES.c.seq))).scalar() or 0
    if (
        workers > 1
        and last_seq - entering.expected_seq >= segment_entries
        and url.get_backend_name() in ("sqlite", "postgresql")
        and url.database not in (None, "", ":memory:")
    ):
        live = _walk_in_parallel(
            session,
            url,
            audit_key,
            anchored,
            entering,
            last_seq,
            workers,
            segment_entries,
            progress,
        )
    else:
        live = _walk_live(_iter_rows(session), audit_key, anchored, entering, progress)
    problems.extend(live.problems)
    count = walked.entries + live.entries
    expected_seq, prev_hash = live.expected_seq, live.prev_hash
    last = expected_seq - 1
    for cp in checkpoints:
        if cp.valid and cp.seq > last:
            problems.append(
                ChainProblem(
                    cp.seq,
                    f"the checkpoint signed at {cp.at} covers entry {cp.seq} "
                    f"but the chain ends at {last} (truncated)",
                )
            )
    head = session.get(AuditHead, 1)
    head_seq, head_hash = (head.seq, head.hash) if head else (0, GENESIS)
    if head_seq != last or head_hash != prev_hash:
        problems.append(
            ChainProblem(head_seq, f"chain ends at {last} but the head says {head_seq}")
        )
    return ChainReport(
        entries=count, problems=problems, archived=walked.entries, archives=walked.archives
    )


def problem_text(problem: str) -> str:
    """A finding of ``verify_chain`` in Chinese (those about archives already are)."""
    if m := re.match(r"entries (\d+)\.\.(\d+) are missing", problem):
        return f"第 {m.group(1)} 至 {m.group(2)} 条记录缺失（被删除）"
    if problem.startswith("does not link"):
        return "与前一条记录的哈希不衔接（被插入或删除）"
    if problem.startswith("content does not match"):
        return "内容与其哈希不符（被篡改）"
    if problem.startswith("seq is not a chain position"):
        return "序号不在链上（伪造的记录）"
    if problem.startswith("is not keyed"):
        return "未用审计密钥签封，却位于启用密钥之后（无密钥重写）"
    if problem.startswith("is keyed but no audit key"):
        return "记录已加密钥签封，但数据目录中找不到审计密钥"
    if m := re.match(r"differs from the checkpoint signed at (\S+)", problem):
        return f"与 {m.group(1)} 签署的检查点不符（整链被重写）"
    if m := re.match(
        r"the checkpoint signed at (\S+) covers entry (\d+) but the chain ends at (\d+)", problem
    ):
        at, covered, end = m.groups()
        return f"{at} 签署的检查点包含第 {covered} 条，而链只到第 {end} 条（尾部被截断）"
    if m := re.match(r"checkpoint line (\d+) has no valid signature", problem):
        return f"检查点文件第 {m.group(1)} 行签名无效（检查点被伪造或改动）"
    if m := re.match(r"chain ends at (\d+) but the head says (\d+)", problem):
        return f"链尾为第 {m.group(1)} 条，而链头记录为第 {m.group(2)} 条（尾部被截断或改动）"
    if problem.startswith("lies within an archived range"):
        return "序号位于已归档并清理的范围内（被重新插入）"
    return problem


def head(session: Session) -> tuple[int, str]:
    """The chain's committed head: (seq, hash)."""
    row = session.execute(select(AuditHead.seq, AuditHead.hash).where(AuditHead.id == 1)).first()
    return (row.seq, row.hash) if row else (0, GENESIS)


def checkpoint(session: Session, key: AuditKey, at: datetime) -> tuple[int, str] | None:
    """Sign the chain's committed head into the checkpoint file; None when the chain is
    empty. Called periodically by the hub and by ``govshare audit checkpoint``."""
    seq, hash = head(session)
    if seq <= 0:
        return None
    append_checkpoint(key, seq=seq, hash=hash, at=at)
    return seq, hash


KEY_HASH = re.compile(r"[0-9a-f]{16}")
"""What ``govshare audit key-hash`` prints: 16 lower-case hex digits."""


@dataclass(frozen=True, slots=True)
class AuditFilter:
    actor: str | None = None
    action: str | None = None
    object_type: str | None = None
    object_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    key_hash: str | None = None  # a data-service call's hashed key (``audit key-hash``)


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
    if flt.key_hash:
        if not KEY_HASH.fullmatch(flt.key_hash):
            raise ValueError(f"not a key hash: {flt.key_hash!r}")
        # A scan of the data-service entries' text: hashes are stored only inside
        # ``after`` (a list per call), never as a column of their own.
        q = q.where(
            AuditEntry.action.like("data.%"),
            cast(AuditEntry.after, Text).like(f'%"{flt.key_hash}"%'),
        )
    return list(session.scalars(q))


def count_entries(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(AuditEntry)) or 0


# -- data-service calls in the log ------------------------------------------------------


class KeyHasher:
    """Keys (公民身份号码 …) appear in the audit log only as keyed hashes: an auditor
    holding a key can find its calls (``govshare audit key-hash``); nobody can read keys
    back, even for an 18-digit ID number whose space is small enough to enumerate."""

    def __init__(self, secret_key: str) -> None:
        self._key = _derive(secret_key, b"govshare-audit-key-hash")

    def __call__(self, key: str) -> str:
        return hmac.new(self._key, key.encode(), hashlib.sha256).hexdigest()[:16]


def journalled_calls(after: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The calls an audit entry's ``after`` records: a batch entry's ``calls``, or the
    single call of an entry written before calls shared entries."""
    if not after:
        return []
    calls = after.get("calls")
    if isinstance(calls, list):
        return [c for c in calls if isinstance(c, dict)]
    return [after] if "key_hashes" in after else []


def calls_with_key(after: dict[str, Any] | None, key_hash: str) -> list[dict[str, Any]]:
    """The calls of an entry that asked for the key whose hash is ``key_hash``."""
    return [c for c in journalled_calls(after) if key_hash in (c.get("key_hashes") or [])]
