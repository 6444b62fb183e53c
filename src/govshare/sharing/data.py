"""Data services for consumer systems: look records up by key, page through them, and
verify (核验) keys without the rows leaving the hub (数据不落地).

Every call is made by an API client of the consumer department and is allowed only by
a grant in force for the resource and the mode: the grant's items are all a caller
sees, its row filter bounds the rows, its masking rules apply before anything is
serialised. Calls are rate-limited and counted against a daily quota per client, and
journalled (nonce, audit entry with hashed keys, usage counts) before the answer goes.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date
from typing import Any, NamedTuple, TypeVar

from sqlalchemy import Connection, Date, Engine, bindparam, create_engine, event, func, select
from sqlalchemy.orm import Session, sessionmaker

from govshare.catalog.models import Resource
from govshare.config import Settings
from govshare.cursors import CursorCodec
from govshare.db import LoopConnections, PerDialect, Prepared
from govshare.rules.masking import masker
from govshare.security.audit import KeyHasher
from govshare.security.service import VerifiedClient
from govshare.sharing import store as shared
from govshare.sharing.errors import (
    InvalidApplication,
    NoGrant,
    QuotaExceeded,
    RateLimited,
    StoreNotFound,
)
from govshare.sharing.journal import Call, CallJournal
from govshare.sharing.models import CallStat, SharedStore, SharingGrant, SharingMode
from govshare.sharing.schemas import VerifyIn

T = TypeVar("T")
MAX_LOOKUP_KEYS = 100


@dataclass(frozen=True, slots=True)
class Caller:
    """A signed data-service request's client (nonce not yet spent)."""

    client_id: int
    app_key: str
    department_id: int
    nonce: str
    remote_addr: str | None
    rate_per_second: float | None
    daily_quota: int | None

    @classmethod
    def of(cls, client: VerifiedClient, nonce: str, remote_addr: str | None) -> Caller:
        return cls(
            client_id=client.id,
            app_key=client.app_key,
            department_id=client.department_id,
            nonce=nonce,
            remote_addr=remote_addr,
            rate_per_second=client.rate_per_second,
            daily_quota=client.daily_quota,
        )

    @classmethod
    def platform(cls, app_key: str, department_id: int, remote_addr: str | None = None) -> Caller:
        """The platform's own use of a department's grants (a case's verification, a
        window's 带出): no client, no nonce, no client quota."""
        return cls(
            client_id=0,
            app_key=app_key,
            department_id=department_id,
            nonce="",
            remote_addr=remote_addr,
            rate_per_second=None,
            daily_quota=None,
        )


class Limits:
    """Per-client rate (token bucket, one second's burst) and daily key quota.

    Counted in this process: each of the hub's ``workers`` processes admits its share
    of a client's rate (the server spreads connections evenly over them), and reads the
    day's use recorded by the journal (all processes) when it first sees a client that
    day and every ``refresh_seconds`` after, so a quota is exceeded by at most what
    the other processes served in that window.
    """

    def __init__(
        self,
        settings: Settings,
        factory: sessionmaker[Session],
        refresh_seconds: float = 10,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.factory = factory
        self.refresh = refresh_seconds
        self.clock = clock
        self._lock = threading.Lock()
        self._buckets: dict[int, tuple[float, float]] = {}
        self._used: dict[tuple[int, date], tuple[int, int, float]] = {}  # base, local, at

    def admit(self, caller: Caller, keys: int, day: date) -> None:
        client_rate = caller.rate_per_second or self.settings.data_rate_per_second
        # Never below one call a second per process, or a slow client could never call.
        rate = max(1.0, client_rate / self.settings.workers)
        quota = caller.daily_quota or self.settings.data_daily_quota
        now = self.clock()
        used_key = (caller.client_id, day)
        with self._lock:
            tokens, at = self._buckets.get(caller.client_id, (rate, now))
            tokens = min(rate, tokens + (now - at) * rate)
            if tokens < 1:
                self._buckets[caller.client_id] = (tokens, now)
                raise RateLimited(f"调用过于频繁: 每秒至多 {client_rate:g} 次 (rate limited)")
            self._buckets[caller.client_id] = (tokens - 1, now)
            entry = self._used.get(used_key)
        if entry is None or now - entry[2] > self.refresh:
            with self.factory() as session:
                base = int(
                    session.scalar(
                        select(func.coalesce(func.sum(CallStat.keys), 0)).where(
                            CallStat.client_id == caller.client_id, CallStat.day == day
                        )
                    )
                    or 0
                )
            with self._lock:
                self._used[used_key] = entry = (base, 0, now)
        with self._lock:
            base, local, at = self._used[used_key]
            if base + local + keys > quota:
                raise QuotaExceeded(f"今日调用额度已用完: 每日至多 {quota} 个键 (quota exceeded)")
            self._used[used_key] = (base, local + keys, at)


def reader_engine(settings: Settings, pool_size: int = 48) -> Engine:
    """Connections to the hub database for the data services' reads (client, grant):
    a pool as large as the request threads, so a busy service never opens and closes
    connections per call (the hub's own pool is sized for the console)."""
    url = settings.resolved_database_url
    if not url.startswith("sqlite"):
        return create_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True)
    engine = create_engine(
        url,
        connect_args={"check_same_thread": False, "timeout": 10},
        pool_size=pool_size,
        max_overflow=pool_size,
    )
    event.listen(engine, "connect", _reader_pragmas)
    return engine


def _reader_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA busy_timeout=10000")
    cur.execute("PRAGMA query_only=ON")
    cur.close()


class DataServices:
    """What the data-service routes share: the stores, the journal, the limits."""

    def __init__(
        self, settings: Settings, factory: sessionmaker[Session], workers: int = 4
    ) -> None:
        self.settings = settings
        self.factory = factory
        self.hub = reader_engine(settings)
        # The calls' reads of the hub (client, grant): kept connections on the loop.
        self.hub_reads: LoopConnections[Connection] = LoopConnections(self.hub.connect)
        self.db = shared.SharedDatabase.of(settings)
        self.inline = settings.is_sqlite and self.db.engine.dialect.name == "sqlite"
        self.journal = CallJournal(
            factory.kw["bind"],
            audit_alg=settings.audit_digest,
            audit_key=factory.kw["info"]["audit_key"],
            nonce_ttl_seconds=2 * settings.signature_max_skew_seconds,
            lock_path=settings.data_dir / "journal.lock" if settings.is_sqlite else None,
            on_loop=settings.is_sqlite,
        )
        self.limits = Limits(settings, factory)
        self.hash_key = KeyHasher(settings.secret_key)
        self.cursors = CursorCodec(settings.secret_key)
        # The calls' database work runs on a few threads of their own: every extra
        # thread waiting for the GIL lengthens each call's turn (the shared worker pool
        # would run all 40 at once under load), and SQLite answers these lookups in
        # microseconds, so more threads add no throughput.
        self.executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="data")
        # Bulk verifications (up to 10,000 keys, ~170 ms each) get threads of their own,
        # so a few of them never leave the key lookups queueing behind them.
        self.bulk_executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="data-bulk")

    def run(
        self, fn: Callable[..., T], *args: Any, bulk: bool = False, light: bool = False
    ) -> asyncio.Future[T]:
        """``fn(*args)`` on the data services' threads, in the caller's context.

        ``light`` work (a key lookup: a few indexed reads) runs at once on the event
        loop when both the hub and the shared stores are SQLite files: their reads take
        microseconds and never wait for a writer (WAL), while the trip to a thread and
        back costs more than the work and makes every thread, the journal's first,
        queue longer for the GIL. On PostgreSQL each read is a network round trip, which
        the event loop must not wait for."""
        if light and self.inline:
            done = asyncio.get_running_loop().create_future()
            try:
                done.set_result(fn(*args))
            except Exception as exc:
                done.set_exception(exc)
            return done
        context = contextvars.copy_context()
        pool = self.bulk_executor if bulk else self.executor
        return asyncio.get_running_loop().run_in_executor(pool, context.run, fn, *args)

    def close(self) -> None:
        self.executor.shutdown(wait=False)
        self.bulk_executor.shutdown(wait=False)
        self.journal.close()
        self.db.close()
        self.hub_reads.close()
        self.hub.dispose()


@dataclass(frozen=True, slots=True)
class GrantView:
    """What a call needs of the grant in force (read from the database on every call)."""

    id: int
    items: list[str]
    row_filter: list[dict[str, Any]] | None
    modes: list[str]
    masking: dict[str, str]


@dataclass(frozen=True, slots=True)
class Authorized:
    resource_id: int
    resource_code: str
    store: shared.StoreView
    grant: GrantView

    @property
    def items(self) -> list[str]:
        """Granted items the store keeps, in the grant's order."""
        return list(self.grant.items)


# The listed resource's grants in force for the caller's department, newest first, each
# with the resource's store (if any): one indexed query, no ORM objects. Built once.
_GRANTS_IN_FORCE = (
    select(
        Resource.id.label("resource_id"),
        SharingGrant.id,
        SharingGrant.items,
        SharingGrant.row_filter,
        SharingGrant.modes,
        SharingGrant.masking,
        SharedStore.id.label("store_id"),
        SharedStore.key_item,
        SharedStore.table_name,
        SharedStore.verify_rules,
        SharedStore.sealed_items,
        SharedStore.seal_key,
    )
    .select_from(Resource)
    .join(SharingGrant, SharingGrant.resource_id == Resource.id)
    .outerjoin(SharedStore, SharedStore.resource_id == Resource.id)
    .where(
        Resource.code == bindparam("code"),
        Resource.listed.is_(True),
        SharingGrant.consumer_department_id == bindparam("department_id"),
        SharingGrant.revoked.is_(False),
        SharingGrant.expires_on >= bindparam("today", type_=Date),
    )
    .order_by(SharingGrant.id.desc())
)
_grants_in_force = PerDialect(lambda dialect: Prepared(_GRANTS_IN_FORCE, dialect))
_LISTED = select(Resource.id).where(Resource.code == bindparam("code"), Resource.listed.is_(True))


class _GrantRow(NamedTuple):
    """A row of ``_GRANTS_IN_FORCE``, in its column order."""

    resource_id: int
    id: int
    items: list[str]
    row_filter: list[dict[str, Any]] | None
    modes: list[str]
    masking: dict[str, str]
    store_id: int | None
    key_item: str | None
    table_name: str | None
    verify_rules: list[dict[str, Any]] | None
    sealed_items: dict[str, str] | None
    seal_key: int | None


if _GrantRow._fields != tuple(c.key for c in _GRANTS_IN_FORCE.selected_columns):
    raise RuntimeError("_GrantRow does not match the columns of _GRANTS_IN_FORCE")


def authorize(
    session: Session | Connection,
    caller: Caller,
    resource_code: str,
    modes: Sequence[SharingMode],
    today: date,
) -> Authorized:
    """The store and the grant in force letting the caller's department use the
    resource in one of ``modes`` (the first mode with a grant wins, the newest grant
    of that mode); revoked and expired grants count as none. Read on every call, so a
    revocation or expiry stops the next call."""
    conn = session.connection() if isinstance(session, Session) else session
    rows = [
        _GrantRow(*r)
        for r in _grants_in_force(conn.dialect).rows(
            conn.connection.dbapi_connection,
            {"code": resource_code, "department_id": caller.department_id, "today": today},
        )
    ]
    row = next((r for mode in modes for r in rows if str(mode) in r.modes), None)
    if row is None:
        if session.scalar(_LISTED, {"code": resource_code}) is None:
            raise StoreNotFound("目录不存在或未发布 (no such resource)")
        wanted = "或".join(m.label for m in modes)
        raise NoGrant(f"本部门没有该目录在有效期内的{wanted}授权 (no grant in force)")
    if row.store_id is None or row.key_item is None or row.table_name is None:
        raise StoreNotFound("该目录没有共享信息库 (no shared store)")
    return Authorized(
        row.resource_id,
        resource_code,
        shared.StoreView(
            row.store_id,
            row.key_item,
            row.table_name,
            list(row.verify_rules or []),
            dict(row.sealed_items) if row.sealed_items else None,
            row.seal_key,
        ),
        GrantView(
            row.id,
            list(row.items),
            row.row_filter,
            list(row.modes),
            dict(row.masking),
        ),
    )


def denied_call(caller: Caller, action: str, resource_code: str, reason: str) -> Call:
    return Call(
        client_id=caller.client_id,
        app_key=caller.app_key,
        department_id=caller.department_id,
        remote_addr=caller.remote_addr,
        nonce=caller.nonce,
        action="data.denied",
        resource_id=None,
        grant_id=None,
        details={"resource_code": resource_code, "wanted": action, "reason": reason},
    )


def call_of(caller: Caller, auth: Authorized, action: str, day: date) -> Call:
    return Call(
        client_id=caller.client_id,
        app_key=caller.app_key,
        department_id=caller.department_id,
        remote_addr=caller.remote_addr,
        nonce=caller.nonce,
        action=action,
        resource_id=auth.resource_id,
        grant_id=auth.grant.id,
        day=day,
    )


def lookup(ds: DataServices, auth: Authorized, keys: Sequence[str]) -> list[dict[str, Any]]:
    """Records of the keys, granted items only, masked."""
    show = masker(auth.grant.masking)
    items = auth.items
    visible = [auth.store.key_item, *items]
    out = []
    for record in shared.lookup(ds.db, auth.store, keys, items, auth.grant.row_filter):
        if auth.store.key_item not in items:
            record.pop(auth.store.key_item, None)
        out.append(show({k: record.get(k) for k in visible if k in record}))
    return out


def query(
    ds: DataServices,
    auth: Authorized,
    filters: dict[str, str],
    after: str | None,
    limit: int,
) -> tuple[list[dict[str, Any]], str | None]:
    """A keyset page; filters may only name granted items (others would let a caller
    probe values it may not see)."""
    bad = [k for k in filters if k not in auth.items]
    if bad:
        raise InvalidApplication(
            "只能按授权的信息项筛选",
            details=[{"field": f"filters.{k}", "message": "不在授权的信息项中"} for k in bad],
        )
    records, cursor = shared.page(
        ds.db,
        auth.store,
        auth.items,
        auth.grant.row_filter,
        filters,
        after=after,
        limit=limit,
        cursors=ds.cursors,
    )
    show = masker(auth.grant.masking)
    return [show(r) for r in records], cursor


def _rule(auth: Authorized, name: str) -> dict[str, Any]:
    for rule in auth.store.verify_rules:
        if rule.get("name") == name:
            item = rule.get("item")
            if item is not None and item not in auth.items:
                raise NoGrant("核验规则依据的信息项不在授权范围内")
            return rule
    names = "、".join(r["name"] for r in auth.store.verify_rules) or "无"
    raise InvalidApplication(
        "该目录没有这个核验规则",
        details=[{"field": "rule", "message": f"可用规则: {names}"}],
    )


def _judge(rule: dict[str, Any], value: Any) -> str | None:
    kind = rule["kind"]
    if kind == "status":
        found = rule["values"].get("" if value is None else str(value))
        return found if found is not None else rule.get("default")
    if kind == "range":
        try:
            number = float(value)
        except (TypeError, ValueError):
            return rule.get("default")
        for band in rule["bands"]:
            if "below" not in band or number < float(band["below"]):
                return str(band["label"])
    return None


def verify(ds: DataServices, auth: Authorized, body: VerifyIn) -> list[dict[str, Any]]:
    """核验: per key, in request order, match or not, or the rule's status/range/presence
    value. The underlying values never leave this function."""
    key_item = auth.store.key_item
    if body.records is not None:
        wanted = sorted({i for r in body.records for i in r.values})
        outside = [i for i in wanted if i not in auth.items]
        if outside:
            raise InvalidApplication(
                "只能核验授权的信息项",
                details=[
                    {"field": f"records.values.{i}", "message": "不在授权的信息项中"}
                    for i in outside
                ],
            )
        keys = [r.key for r in body.records]
    else:
        wanted = []
        keys = list(body.keys or [])
    rule = _rule(auth, body.rule) if body.rule else None
    items = list(wanted)
    if rule is not None and rule.get("item"):
        items.append(rule["item"])
    found: dict[str, list[dict[str, Any]]] = {}
    for record in shared.lookup(
        ds.db, auth.store, list(dict.fromkeys(keys)), items, auth.grant.row_filter
    ):
        found.setdefault(str(record[key_item]), []).append(record)
    # Plain dicts shaped as ``VerifyAnswer``: up to 10,000 a call, serialised as they are.
    answers: list[dict[str, Any]] = []
    for i, key in enumerate(keys):
        records = found.get(key, [])
        if rule is not None:
            if rule["kind"] == "presence":
                answers.append(
                    {"match": bool(records), "value": rule["present" if records else "absent"]}
                )
            else:
                value = _judge(rule, records[0].get(rule["item"])) if records else None
                answers.append({"match": bool(records), "value": value})
        elif body.records is not None:
            claimed = body.records[i].values
            ok = any(all(_same(r.get(k), v) for k, v in claimed.items()) for r in records)
            answers.append({"match": ok, "value": None})
        else:
            answers.append({"match": bool(records), "value": None})
    return answers


def _same(stored: Any, claimed: str) -> bool:
    return stored is not None and str(stored).strip() == claimed.strip()
