"""共享信息库: the hub's copy of a resource's rows, fed by the exchange, served by the
data services.

A shared store follows one provider task (发送任务): every package the hub accepted for
that task is applied here in sequence order, exactly as a subscriber node would apply it
(``TargetWriter``), into a table of its own in the shared-store database. Only the
source key and the columns mapped to the resource's information items are kept.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import pyarrow as pa
import structlog
from sqlalchemy import (
    Column,
    Connection,
    DateTime,
    Engine,
    Index,
    MetaData,
    Select,
    String,
    Table,
    bindparam,
    func,
    inspect,
    select,
    tuple_,
)
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session
from sqlalchemy.pool import PoolProxiedConnection

from govshare.catalog.models import Resource
from govshare.config import Settings
from govshare.cursors import CursorCodec
from govshare.db import LoopConnections, Prepared, utcnow
from govshare.exchange import package, pruning
from govshare.exchange.models import ExchangePackage, ExchangeTask, TaskKind
from govshare.exchange.store import PackageStore
from govshare.node.target import TargetWriter
from govshare.security import audit
from govshare.security.crypto import digest
from govshare.security.fieldseal import FieldSealer, FieldSealError, text_of, type_name
from govshare.security.service import Principal
from govshare.sharing.errors import InvalidApplication, NotYourDepartment
from govshare.sharing.models import SharedStore
from govshare.sharing.schemas import StoreCreate
from govshare.sharing.shared_db import (
    field_sealer,
    row_conditions,
    sealed_prefixes,
    shared_engine,
)

log = structlog.get_logger()

VERIFY_KINDS = ("status", "range", "presence")
# In the shared-store database: the tables resealing left behind (``retired_tables``).
RETIRED_TABLE = "govshare_retired_table"


@dataclass(frozen=True, slots=True)
class LookupPlan:
    """A lookup's columns (the first ``shown`` go to the caller; the rest are read for
    ``checks``, prefixes on sealed items checked once opened) and its statements."""

    names: list[str]
    shown: int
    checks: list[tuple[str, str]]
    one: Prepared
    many: Select[Any]

    def records(
        self, opened: Callable[[Sequence[Sequence[Any]]], list[dict[str, Any]]], rows: Any
    ) -> Iterator[dict[str, Any]]:
        for found in opened(list(rows)):
            if passes(found, self.checks):
                yield {n: found[n] for n in self.names[: self.shown]} if self.checks else found


def passes(record: dict[str, Any], checks: list[tuple[str, str]]) -> bool:
    """Whether an opened record meets the prefix conditions on sealed items."""
    return all(str(record.get(item) or "").startswith(prefix) for item, prefix in checks)


class SharedDatabase:
    """The database holding every shared store's table; tables are reflected once.

    Statement parameters stay out of errors and logs: they are people's data, and a
    feed error is shown to the store's administrators as ``last_error``."""

    def __init__(self, url: str, sealer: FieldSealer | None = None) -> None:
        self.engine: Engine = shared_engine(url)
        # 字段加密: seals the sensitive items of new stores, opens them when read. None
        # (a tool that only reads unsealed stores) fails clearly on a sealed one.
        self._sealer = sealer
        # One-key lookups' connections: kept between calls on the event loop.
        self.key_reads: LoopConnections[PoolProxiedConnection] = LoopConnections(
            self.engine.raw_connection
        )
        self._tables: dict[str, Table] = {}
        self._statements: dict[tuple[Any, ...], LookupPlan] = {}
        self._lock = threading.Lock()

    @classmethod
    def of(cls, settings: Settings) -> SharedDatabase:
        return cls(settings.resolved_shared_store_url, field_sealer(settings))

    @property
    def sealer(self) -> FieldSealer:
        if self._sealer is None:
            raise FieldSealError("该共享信息库的敏感信息项已加密保存, 但此处没有字段加密密钥")
        return self._sealer

    def seal_for(self, store: SharedStore | StoreView) -> Callable[[Any], str] | None:
        """What seals a value compared with the store's sealed items (None: none)."""
        return self.sealer.under(store.seal_key or 1).seal_value if store.sealed_items else None

    def rows_opener(
        self,
        store: SharedStore | StoreView,
        names: Sequence[str],
        known: Mapping[str, Mapping[str, str]] | None = None,
    ) -> Callable[[Sequence[Sequence[Any]]], list[dict[str, Any]]]:
        """What turns rows of ``names`` read from the store into records, the cells of
        sealed items opened a column at a time (one pass of the cipher per column, not
        one per cell) and given back as the type they had. ``known``: columns whose
        cells the caller sealed itself (the keys of a lookup), cell → value, so they
        need no opening."""
        sealed = store.sealed_items or {}
        known = known or {}
        at = [(i, sealed[n]) for i, n in enumerate(names) if n in sealed and n not in known]
        given = [(i, known[n]) for i, n in enumerate(names) if n in sealed and n in known]
        if not at and not given:
            return lambda rows: [
                {n: _json_value(v) for n, v in zip(names, row, strict=True)} for row in rows
            ]
        sealer = self.sealer

        def records(rows: Sequence[Sequence[Any]]) -> list[dict[str, Any]]:
            columns = [[_json_value(v) for v in row] for row in rows]
            for i, kind in at:
                cells = pa.array([None if r[i] is None else str(r[i]) for r in rows], pa.string())
                values = sealer.open_array(cells, kind).to_pylist()
                for row, value in zip(columns, values, strict=True):
                    row[i] = _json_value(value)
            for i, values_of in given:
                for row in columns:
                    cell = row[i]
                    if cell is not None:
                        row[i] = values_of.get(cell) or sealer.open(cell)
            return [dict(zip(names, row, strict=True)) for row in columns]

        return records

    def table(self, name: str) -> Table | None:
        """The store's table, or None before its first package arrived."""
        found = self._tables.get(name)
        if found is not None:
            return found
        with self._lock:
            if name not in self._tables and inspect(self.engine).has_table(name):
                self._tables[name] = Table(name, MetaData(), autoload_with=self.engine)
        return self._tables.get(name)

    def forget(self, name: str) -> None:
        with self._lock:
            self._tables.pop(name, None)
            self._statements.clear()

    def lookup_statements(
        self,
        store: SharedStore | StoreView,
        items: Sequence[str],
        row_filter: list[dict[str, Any]] | None,
    ) -> LookupPlan | None:
        """The columns and the statements (one key, a list of keys) of a lookup, built
        once per store, items and row filter: building and keying a statement costs
        more than running it on an indexed key."""
        wanted = (store.table_name, store.key_item, tuple(items), orjson.dumps(row_filter))
        found = self._statements.get(wanted)
        if found is not None:
            return found
        table = self.table(store.table_name)
        if table is None:
            return None
        sealed = store.sealed_items or None
        checks = sealed_prefixes(row_filter, sealed)
        key_col = table.c[store.key_item]
        shown = [key_col, *[table.c[i] for i in items if i in table.c and i != store.key_item]]
        cols = shown + [
            table.c[i] for i, _ in checks if i in table.c and i not in {c.name for c in shown}
        ]
        conds = row_conditions(
            table, row_filter, sealed, self.seal_for(store), prefixes_opened=True
        )
        found = LookupPlan(
            [str(c.name) for c in cols],  # plain str: quoted_name is a subclass
            len(shown),
            checks,
            Prepared(select(*cols).where(key_col == bindparam("key"), *conds), self.engine.dialect),
            select(*cols).where(key_col.in_(bindparam("keys", expanding=True)), *conds),
        )
        with self._lock:
            if len(self._statements) >= 1024:
                self._statements.clear()
            self._statements[wanted] = found
        return found

    def close(self) -> None:
        self.key_reads.close()
        self.engine.dispose()


# -- setting a store up --------------------------------------------------------------------


_bad = InvalidApplication.about


def check_verify_rules(resource: Resource, rules: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Status (状态值), range (区间) and presence (有无) rules of 核验, each on one item."""
    known = {item.code for item in resource.items}
    names: set[str] = set()
    for i, rule in enumerate(rules):
        field = f"verify_rules[{i}]"
        name = str(rule.get("name", ""))
        if not name.isidentifier() or name in names:
            raise _bad("核验规则名称须为唯一的英文标识符", f"{field}.name", name or "为空")
        names.add(name)
        kind = rule.get("kind")
        if kind not in VERIFY_KINDS:
            raise _bad("核验规则类型须为 status、range 或 presence", f"{field}.kind", str(kind))
        if kind != "presence" and rule.get("item") not in known:
            raise _bad("核验规则引用了目录没有的信息项", f"{field}.item", str(rule.get("item")))
        if kind == "status" and not isinstance(rule.get("values"), dict):
            raise _bad("状态规则须给出取值与状态的对应 values", f"{field}.values", "缺少")
        if kind == "range":
            bands = rule.get("bands")
            ok = isinstance(bands, list) and bands and all("label" in b for b in bands)
            if not ok or any("below" not in b for b in bands[:-1]):  # type: ignore[index]
                raise _bad(
                    "区间规则须给出 bands: [{below, label}, …, {label}]", f"{field}.bands", "不完整"
                )
            limits = [float(b["below"]) for b in bands[:-1]]  # type: ignore[index]
            if limits != sorted(limits):
                raise _bad("区间上限须递增", f"{field}.bands", "上限未递增")
        if kind == "presence" and not {"present", "absent"} <= set(rule):
            raise _bad("有无规则须给出 present 与 absent 的结论", field, "缺少 present/absent")
    return rules


def create_store(
    session: Session,
    principal: Principal,
    data: StoreCreate,
    *,
    sealing: bool = True,
    seal_key: int | None = None,
) -> SharedStore:
    """Set up the shared store of a resource from one of its provider tasks. With
    ``sealing`` (静态加密 on), the items the catalog marks sensitive and the store keeps
    are kept sealed (字段加密), under the field key of generation ``seal_key`` (None:
    the first)."""
    resource = session.get(Resource, data.resource_id)
    if resource is None or not resource.listed:
        raise _bad("只能为已发布的目录建立共享信息库", "resource_id", "目录不存在或未发布")
    if not principal.is_admin and principal.department_id != resource.provider_department_id:
        raise NotYourDepartment("只有目录提供部门或平台管理员可以建立共享信息库")
    if session.scalar(select(SharedStore.id).where(SharedStore.resource_id == resource.id)):
        raise _bad("该目录已有共享信息库", "resource_id", "已存在")
    task = session.get(ExchangeTask, data.source_task_id)
    if task is None or task.kind is not TaskKind.PROVIDER or task.resource_id != resource.id:
        raise _bad("来源须为该目录的发送任务", "source_task_id", "不是该目录的发送任务")
    if task.config.get("folder"):
        raise _bad("文件夹任务不能作为共享信息库的来源", "source_task_id", "非结构化任务")
    known = {item.code for item in resource.items}
    wrong = [
        {"field": f"mapping.{col}", "message": f"目录没有信息项 {code}"}
        for col, code in data.mapping.items()
        if code not in known
    ]
    if wrong:
        raise InvalidApplication("映射引用了目录没有的信息项", details=wrong)
    if len(set(data.mapping.values())) != len(data.mapping):
        raise _bad("一个信息项只能对应一个源字段", "mapping", "信息项重复")
    if data.key_item not in data.mapping.values():
        raise _bad("查询键须是已映射的信息项", "key_item", f"{data.key_item} 未映射")
    store = SharedStore(
        resource_id=resource.id,
        source_task_id=task.id,
        key_item=data.key_item,
        mapping=dict(data.mapping),
        verify_rules=check_verify_rules(resource, [r.model_dump() for r in data.verify_rules]),
        table_name=f"ss_{resource.id}",
        sealed_items=sealed_items(resource, data.mapping.values()) if sealing else None,
        seal_key=seal_key if sealing else None,
        created_by=principal.name,
    )
    session.add(store)
    session.flush()
    audit.record(
        session,
        principal.actor,
        "sharing.store.create",
        object_type="shared_store",
        object_id=store.id,
        after={
            "resource_id": resource.id,
            "source_task_id": task.id,
            "key_item": store.key_item,
            "mapping": store.mapping,
            "verify_rules": store.verify_rules,
            "sealed_items": sorted(store.sealed_items or {}),
        },
    )
    return store


def sealed_items(resource: Resource, kept: Iterable[str]) -> dict[str, str] | None:
    """The items of ``kept`` the catalog marks sensitive, to be kept sealed; their
    types are filled in from the first package (None: nothing to seal)."""
    found = dict.fromkeys(sorted(resource.sensitive_codes & set(kept)), "")
    return found or None


def list_stores(session: Session) -> list[SharedStore]:
    return list(session.scalars(select(SharedStore).order_by(SharedStore.id)))


# -- the feed: packages in, rows kept ----------------------------------------------------


def retired_tables(metadata: MetaData) -> Table:
    """Tables a resealing copied to another (``sharing.reseal``): a feeder that still
    holds the store as it was finds its table here and writes nothing."""
    return Table(
        RETIRED_TABLE,
        metadata,
        Column("table_name", String(63), primary_key=True),
        Column("retired_at", DateTime, nullable=False),
    )


def make_table(engine: Engine, table: Table) -> None:
    """Create ``table`` unless it is there; another hub process creating it at the same
    moment is no failure."""
    try:
        table.create(engine, checkfirst=True)
    except DBAPIError:
        if not inspect(engine).has_table(table.name):
            raise


class StoreRetired(RuntimeError):
    """The table a feeder was writing to was resealed into another meanwhile."""


class Writers:
    """One ``TargetWriter`` per store table: a resealed store is written to its new
    table by a new writer."""

    def __init__(self, db: SharedDatabase) -> None:
        self.db = db
        self._writers: dict[tuple[int, str], TargetWriter] = {}
        self.retired = retired_tables(MetaData())
        self._retired_made = False
        # One statement for every table, compiled once (a guard runs per package).
        self._is_retired: Select[tuple[str]] = select(self.retired.c.table_name).where(
            self.retired.c.table_name == bindparam("name")
        )

    def get(self, store: SharedStore, source_key: list[str]) -> TargetWriter:
        writer = self._writers.get((store.id, store.table_name))
        if writer is None:
            writer = TargetWriter(
                self.db.engine,
                store.id,
                {"table": store.table_name, "mapping": store.mapping},
                source_key,
            )
            self._writers = {k: w for k, w in self._writers.items() if k[0] != store.id}
            self._writers[(store.id, store.table_name)] = writer
        return writer

    def current(self, table_name: str) -> Callable[[Connection], None]:
        """The guard a package is applied under: its table is still the store's."""
        if not self._retired_made:
            make_table(self.db.engine, self.retired)
            self._retired_made = True

        def check(conn: Connection) -> None:
            if conn.scalar(self._is_retired, {"name": table_name}) is not None:
                raise StoreRetired(f"共享信息库表 {table_name} 已重新加密到新表, 本批不写入")

        return check


def _kept(data: pa.Table, keep: set[str]) -> pa.Table:
    return data.select([n for n in data.column_names if n in keep or n == package.OP_COLUMN])


def seal_columns(
    sealer: FieldSealer, store: SharedStore, data: pa.Table, names: dict[str, str]
) -> pa.Table:
    """``data`` with the columns of sealed items sealed (字段加密); ``names`` maps each
    column to its item. The type each item had is recorded the first time it is seen."""
    sealed = store.sealed_items
    if not sealed:
        return data
    kinds = dict(sealed)
    for column, item in names.items():
        if item not in kinds or column not in data.column_names:
            continue
        at = data.column_names.index(column)
        values = data.column(at)
        if not kinds[item] and values.type != pa.null():
            kinds[item] = type_name(values.type)
        data = data.set_column(at, column, sealer.seal_array(values))
    if kinds != sealed:
        store.sealed_items = kinds  # a new dict: the JSON column sees the change
    return data


def trusted_body(blob: bytes) -> tuple[int, bytes]:
    """The hub verified signature and digest on receipt and keeps packages opened or
    under their data key; the digest is checked again so a damaged stored blob is never
    applied."""
    pkg = package.parse(blob)
    if "wrap" in pkg.envelope or (
        pkg.envelope.get("enc", "none") != "none" and "data_key" not in pkg.envelope
    ):
        raise package.PackageError("stored package is unexpectedly encrypted for a hop")
    body = pkg.plaintext()
    if digest(pkg.header["digest_alg"], body) != pkg.digest:
        raise package.PackageError("stored package does not match its digest")
    return pkg.seq, body


def feed_store(
    session: Session,
    db: SharedDatabase,
    packages: PackageStore,
    writers: Writers,
    store: SharedStore,
    *,
    limit: int = 20,
) -> int:
    """Apply the next accepted packages of the store's task; returns how many."""
    if store.source_task_id is None:
        return 0  # assembled by the hub itself (a base database)
    if store.reseal_to is not None:
        return 0  # being copied to a table of its new sealing; fed again after
    task = session.get(ExchangeTask, store.source_task_id)
    if task is None:
        return 0
    source_key = [str(k) for k in task.config.get("key") or []]
    rows = list(
        session.scalars(
            select(ExchangePackage)
            .where(
                ExchangePackage.task_id == store.source_task_id,
                ExchangePackage.seq > store.applied_seq,
            )
            .order_by(ExchangePackage.seq)
            .limit(limit)
        )
    )
    if not rows:
        return 0
    writer = writers.get(store, source_key)
    guard = writers.current(store.table_name)
    keep = set(source_key) | set(store.mapping)
    applied = 0
    for row in rows:
        if row.seq != store.applied_seq + 1:
            break  # a gap: the package log was pruned under us; wait for a resync
        if pruning.is_pruned(row):
            # Added after its packages were pruned: resume after the provider's newest
            # package, which the snapshot it is asked for follows.
            store.applied_seq = pruning.catch_up(
                session, task, f"共享信息库 {store.id} 晚于交换日志清理接入"
            )
            break
        seq, body = trusted_body(packages.get(session, row))
        data = _kept(package.decode_rows(body), keep)
        if store.sealed_items:
            data = seal_columns(db.sealer.under(store.seal_key or 1), store, data, store.mapping)
        writer.apply(seq, data, guard)
        if applied == 0 and db.table(store.table_name) is not None:
            _ensure_key_index(db, store)
        store.applied_seq = seq
        applied += 1
    if applied:
        store.applied_at = utcnow()
        store.last_error = ""
        table = db.table(store.table_name)
        if table is not None:
            with db.engine.connect() as conn:
                store.row_count = int(conn.scalar(select(func.count()).select_from(table)) or 0)
    return applied


def _ensure_key_index(db: SharedDatabase, store: SharedStore) -> None:
    table = db.table(store.table_name)
    if table is None or store.key_item not in table.c:
        return
    name = f"ix_{store.table_name}_key"
    if any(ix.name == name for ix in table.indexes):
        return
    Index(name, table.c[store.key_item]).create(db.engine, checkfirst=True)


# -- reading -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StoreView:
    """What reading a store needs: its table and key item, its verification rules."""

    id: int
    key_item: str
    table_name: str
    verify_rules: list[dict[str, Any]]
    sealed_items: dict[str, str] | None = None
    seal_key: int | None = None


def _json_value(value: Any) -> Any:
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def lookup(
    db: SharedDatabase,
    store: SharedStore | StoreView,
    keys: Sequence[str],
    items: Sequence[str],
    row_filter: list[dict[str, Any]] | None,
    *,
    chunk: int = 900,
) -> Iterator[dict[str, Any]]:
    """Records whose key item is one of ``keys``, with the key item and ``items``."""
    found = db.lookup_statements(store, items, row_filter)
    if found is None:
        return
    sealed = store.sealed_items or {}
    known: dict[str, dict[str, str]] = {}
    if store.key_item in sealed:
        sealer = db.sealer.under(store.seal_key or 1)
        texts = [text_of(k) for k in keys]
        cells = [k or "" for k in sealer.seal_texts(texts)]
        if sealed[store.key_item] in ("", "string", "large_string"):
            # The keys found are the keys asked for: no need to open them again.
            known[store.key_item] = dict(zip(cells, texts, strict=True))
        keys = cells
    opened = db.rows_opener(store, found.names, known)
    if len(keys) == 1:
        with db.key_reads.use() as raw:
            rows = found.one.rows(raw.dbapi_connection, {"key": keys[0]})
        yield from found.records(opened, rows)
        return
    with db.engine.connect() as conn:
        for start in range(0, len(keys), chunk):
            part = list(keys[start : start + chunk])
            yield from found.records(opened, conn.execute(found.many, {"keys": part}).all())


def page(
    db: SharedDatabase,
    store: SharedStore | StoreView,
    items: Sequence[str],
    row_filter: list[dict[str, Any]] | None,
    filters: dict[str, str],
    *,
    after: str | None,
    limit: int,
    cursors: CursorCodec,
) -> tuple[list[dict[str, Any]], str | None]:
    """One page of records in key order (keyset paging: stable under concurrent
    changes, and as fast on the last page as on the first); ``after`` is the sealed
    cursor of the previous page (``govshare.cursors``)."""
    table = db.table(store.table_name)
    if table is None:
        return [], None
    order = list(table.primary_key.columns)
    scope = f"sharing.query:{store.table_name}"
    cols = [table.c[i] for i in items if i in table.c]
    sealed = store.sealed_items or {}
    seal = db.seal_for(store)
    checks = sealed_prefixes(row_filter, sealed)
    extra = [table.c[i] for i, _ in checks if i in table.c and i not in items]
    conds = row_conditions(table, row_filter, sealed, seal, prefixes_opened=True)
    conds += [
        table.c[k] == (seal(v) if seal and k in sealed else v)
        for k, v in filters.items()
        if k in table.c
    ]
    last = cursors.decode(scope, after, width=len(order), field="after") if after else None
    width = len(order)
    names = [str(c.name) for c in cols]
    opened = db.rows_opener(store, names + [str(c.name) for c in extra])
    # Rows a prefix on a sealed item turns away are only found once opened: read on in
    # batches until the page is full or the table ends.
    batch = limit + 1 if not checks else max(limit + 1, 500)
    out: list[dict[str, Any]] = []
    cursor_row: Sequence[Any] | None = None
    more = False
    with db.engine.connect() as conn:
        while not more:
            where = list(conds)
            if last is not None:
                where.append(tuple_(*order) > tuple_(*last) if width > 1 else order[0] > last[0])
            q = select(*order, *cols, *extra).where(*where).order_by(*order).limit(batch)
            rows = conn.execute(q).all()
            for row, found in zip(rows, opened([r[width:] for r in rows]), strict=True):
                if not passes(found, checks):
                    continue
                if len(out) == limit:
                    more = True
                    break
                out.append({n: found[n] for n in names})
                cursor_row = row
            if len(rows) < batch:
                break
            last = list(rows[-1][:width])
    cursor = cursors.encode(scope, cursor_row[:width]) if more and cursor_row else None
    return out, cursor
