"""Assembly of a base database (基础库归集): each item's value is taken from its one
authoritative store (一数一源), kept with its provenance and history, and compared with
the evidence stores (多元校核).

Assembly is driven by the exchange: after a source store applied packages, only the
keys those packages touched are merged again. A base never merged from a store (or
whose packages were pruned) is assembled in full, key by key in sorted batches, so
memory stays flat whatever the size. Merging the same keys twice changes nothing,
which is what makes a crash between the shared-store write and the hub's bookkeeping
harmless: the next run merges those keys again.

字段加密: a base keeps the items its catalog marks sensitive sealed, as the stores do
(``Plan.sealed``), and a store may keep its own sealed or not (``SourcePlan.sealed``).
Within the base everything is in the base's form: keys and values read from a store are
opened or sealed on the way in when the store keeps them otherwise, and copied as they
are when it keeps them alike (one key for the whole hub, and equal values seal equal).
Whatever is compared after normalisation, shown, or kept outside the shared database (the
conflicts) is opened first.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    bindparam,
    case,
    cast,
    delete,
    func,
    literal,
    null,
    or_,
    select,
    union,
    update,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.sql import Subquery
from sqlalchemy.types import TypeEngine

from govshare.db import UTCDateTime
from govshare.rules.validators import normalize_text, parse_datetime
from govshare.security.fieldseal import FieldSealer
from govshare.sharing.shared_db import unmapped
from govshare.sharing.store import SharedDatabase

BATCH = 5000


@dataclass(frozen=True, slots=True)
class SourcePlan:
    """A shared store as a base reads it: its table and the column holding the key."""

    store_id: int
    table_name: str
    key_column: str
    department_id: int
    # The store's columns (item codes) kept sealed (its ``sealed_items``), and the
    # generation of the field key they are sealed under (its ``seal_key``).
    sealed: frozenset[str] = frozenset()
    seal_key: int = 1

    def form(self, column: str) -> int:
        """How the store keeps ``column``: 0 in the clear, else its key's generation."""
        return self.seal_key if column in self.sealed else 0

    @property
    def key_form(self) -> int:
        return self.form(self.key_column)

    @property
    def key_sealed(self) -> bool:
        return self.key_column in self.sealed


@dataclass(frozen=True, slots=True)
class ItemPlan:
    """One base item: where its value comes from and what it is checked against.
    ``codes`` maps a code table's names to codes (男 → 1) so 男 and 1 agree."""

    item: str
    store_id: int
    column: str
    evidence: tuple[tuple[int, str], ...] = ()
    codes: dict[str, str] = field(default_factory=dict)
    is_date: bool = False


@dataclass(frozen=True, slots=True)
class Plan:
    base_id: int
    table_name: str
    key_item: str
    items: tuple[ItemPlan, ...]
    sources: dict[int, SourcePlan]
    # The base's items (its key included) kept sealed in its table (字段加密), and the
    # generation of the field key they are sealed under.
    sealed: frozenset[str] = frozenset()
    seal_key: int = 1

    @property
    def authoritative(self) -> list[int]:
        return list(dict.fromkeys(i.store_id for i in self.items))

    def form(self, item: str) -> int:
        """How the base keeps ``item``: 0 in the clear, else its key's generation."""
        return self.seal_key if item in self.sealed else 0

    @property
    def key_form(self) -> int:
        return self.form(self.key_item)

    @property
    def key_sealed(self) -> bool:
        return self.key_item in self.sealed

    def same_keys(self, store_id: int) -> bool:
        """Whether the store keeps its key column in the base's form (both in the clear,
        or both sealed under the same key): then its keys are the base's as they are."""
        return self.sources[store_id].key_form == self.key_form

    @property
    def cells_alike(self) -> bool:
        """Whether every source keeps its keys and the columns the base reads in the
        base's form: then the database alone can join, copy and compare them (the
        set-based first assembly)."""
        return all(self.same_keys(sid) for sid in self.sources) and all(
            self.sources[sid].form(col) == self.form(i.item)
            for i in self.items
            for sid, col in ((i.store_id, i.column), *i.evidence)
        )


@dataclass(frozen=True, slots=True)
class Disagreement:
    """An evidence value that differs from the authoritative one (多元校核冲突)."""

    key: str
    item: str
    value: str | None
    store_id: int
    seq: int
    evidence_value: str
    evidence_store_id: int
    evidence_seq: int


@dataclass(slots=True)
class Outcome:
    """What merging one batch of keys did."""

    keys: list[str]
    inserted: int = 0
    updated: int = 0
    deleted: int = 0
    history: int = 0
    disagreements: list[Disagreement] = field(default_factory=list)
    present: set[str] = field(default_factory=set)
    # The (item, evidence store) pairs that were checked for ``keys``; None: every pair
    # of the plan (a merge checks them all). Conflicts of other pairs are left alone.
    checked: frozenset[tuple[str, int]] | None = None


# -- tables in the shared database ---------------------------------------------------------


def seq_column(item: str) -> str:
    return f"{item}__seq"


# 记录版本: raised on every insert and update of a record, so a front-end node can read the
# base's changes by this cursor column (返还 to districts through an ordinary subscription).
# A merge gives all the records it writes one new version; assembly runs one merge at a
# time per base, so versions only grow in commit order.
VERSION = "__rev"


def at_column(item: str) -> str:
    return f"{item}__at"


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class Instant(UTCDateTime):
    """The moment an item's value was taken (provenance), always returned aware in UTC.
    PostgreSQL keeps it as a timestamp; SQLite as microseconds since 1970 in an integer,
    because the ISO text a SQLite DATETIME holds is 26 bytes a value and a record has
    one per item: at 2,000,000 persons and 7 items, a third of the first assembly's
    time went to writing them. A base created before keeps text until its next assembly
    converts it (:func:`_compact_times`); until then its text is read too."""

    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(BigInteger())
        return dialect.type_descriptor(DateTime(timezone=True))

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        utc = super().process_bind_param(value, dialect)
        if utc is None or dialect.name != "sqlite":
            return utc
        return (utc - _EPOCH) // timedelta(microseconds=1)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if isinstance(value, int):
            return _EPOCH + timedelta(microseconds=value)
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        return super().process_result_value(value, dialect)


_TABLES: dict[tuple[str, str, tuple[str, ...]], tuple[Table, Table]] = {}


def base_tables(plan: Plan) -> tuple[Table, Table]:
    """The base's records (one column per item plus its provenance: package seq and time
    of the value) and its history (每一次变更: the value replaced, and when it held).
    Built once per shape: the same Table objects let SQLAlchemy reuse its compiled
    statements batch after batch."""
    shape = (plan.table_name, plan.key_item, tuple(i.item for i in plan.items))
    found = _TABLES.get(shape)
    if found is None:
        found = _TABLES[shape] = _build_tables(plan)
    return found


def _build_tables(plan: Plan) -> tuple[Table, Table]:
    md = MetaData()
    cols: list[Column[Any]] = [Column(plan.key_item, String(200), primary_key=True)]
    for item in plan.items:
        cols += [
            Column(item.item, Text),
            Column(seq_column(item.item), BigInteger),
            Column(at_column(item.item), Instant()),
        ]
    records = Table(
        plan.table_name,
        md,
        *cols,
        Column(VERSION, BigInteger, nullable=False, server_default="0"),
    )
    history = Table(
        f"{plan.table_name}_hist",
        md,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("record_key", String(200), nullable=False),
        Column("item", String(60), nullable=False),
        Column("value", Text),
        Column("store_id", Integer),
        Column("seq", BigInteger),
        Column("valid_from", UTCDateTime()),
        Column("valid_to", UTCDateTime(), nullable=False),
        Index(f"ix_{plan.table_name}_hist_key", "record_key", "item", "valid_to"),
    )
    return records, history


def ensure_tables(db: SharedDatabase, plan: Plan) -> tuple[Table, Table]:
    """Create the tables on first use, add the columns of items defined later."""
    records, history = base_tables(plan)
    with db.engine.begin() as conn:
        history.create(conn, checkfirst=True)
        existing = db.table(plan.table_name)
        if existing is None:
            records.create(conn, checkfirst=True)
        else:
            for col in records.columns:
                if col.name not in existing.c:
                    ddl = col.type.compile(dialect=conn.dialect)
                    name = conn.dialect.identifier_preparer.quote(col.name)
                    table = conn.dialect.identifier_preparer.quote(plan.table_name)
                    default = " NOT NULL DEFAULT 0" if col.name == VERSION else ""
                    conn.exec_driver_sql(f"ALTER TABLE {table} ADD COLUMN {name} {ddl}{default}")
            _compact_times(conn, plan, existing)
            _index_versions(conn, plan)
    db.forget(plan.table_name)
    return records, history


def _compact_times(conn: Connection, plan: Plan, existing: Table) -> None:
    """Turn a SQLite base's provenance times kept as text (by a version before
    :class:`Instant`) into integers, once, so that every reader of the table, reflected
    or not, finds one type in the column."""
    if conn.dialect.name != "sqlite":
        return
    quote = conn.dialect.identifier_preparer.quote
    table = quote(plan.table_name)
    for item in plan.items:
        name = at_column(item.item)
        if name not in existing.c or isinstance(existing.c[name].type, Integer):
            continue
        col, old = quote(name), quote(f"{name}__text")
        conn.exec_driver_sql(f"ALTER TABLE {table} RENAME COLUMN {col} TO {old}")
        conn.exec_driver_sql(f"ALTER TABLE {table} ADD COLUMN {col} BIGINT")
        # SQLAlchemy wrote them as 'YYYY-MM-DD HH:MM:SS.ffffff' in UTC.
        conn.exec_driver_sql(
            f"UPDATE {table} SET {col} = CAST(strftime('%s', {old}) AS INTEGER) * 1000000"
            f" + CAST(substr({old}, 21, 6) AS INTEGER) WHERE {old} IS NOT NULL"
        )
        conn.exec_driver_sql(f"ALTER TABLE {table} DROP COLUMN {old}")


def _index_versions(conn: Connection, plan: Plan) -> None:
    """The index a node reads changes by (and merges find the last version by). Made
    after the first assembly's bulk insert, which it would slow by a quarter; plain DDL,
    as an Index object would attach itself to the shared Table and come with it."""
    quote = conn.dialect.identifier_preparer.quote
    conn.exec_driver_sql(
        f"CREATE INDEX IF NOT EXISTS {quote(f'ix_{plan.table_name}_rev')} "
        f"ON {quote(plan.table_name)} ({quote(VERSION)}, {quote(plan.key_item)})"
    )


# -- values ----------------------------------------------------------------------------------


def as_text(value: Any) -> str | None:
    """A source value as the base keeps it: text, dates in ISO form."""
    if value is None:
        return None
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return format(value, "f")
    return str(value)


def comparable(item: ItemPlan, value: str | None) -> str | None:
    """The form two sources' values are compared in: full/half width and blanks
    normalised, code-table names turned into codes, dates in ISO form."""
    if value is None:
        return None
    text = normalize_text(value)
    if not text:
        return None
    if item.codes:
        text = item.codes.get(text, text)
    if item.is_date:
        # An evidence store may keep the day with a time (出生时间 2003-05-12 08:31):
        # the base's date item compares the day.
        day = parse_datetime(text)
        return day.date().isoformat() if day is not None else text
    return text


def _same(text: str) -> str:
    return text


def converter(db: SharedDatabase, kept: int, wanted: int) -> Callable[[str], str]:
    """What turns a text kept in the form ``kept`` into the form ``wanted`` (0: in the
    clear, else sealed under that generation of the field key): opened, sealed, or
    both, or left as it is when both are alike."""
    if kept == wanted:
        return _same
    sealer: FieldSealer = db.sealer.under(wanted or 1)  # opens any, seals under ``wanted``
    if not kept:
        return sealer.seal
    if not wanted:
        return sealer.open
    return lambda cell: sealer.seal(sealer.open(cell))


def base_key(db: SharedDatabase, plan: Plan) -> Callable[[str], str]:
    """A key given in the clear (typed, or read from a package) as the base keeps it."""
    return converter(db, 0, plan.key_form)


def clear(db: SharedDatabase, sealed: bool, value: str | None) -> str | None:
    """A value in the clear: opened when it is kept ``sealed``."""
    return db.sealer.open(value) if sealed and value is not None else value


# -- reading the sources -----------------------------------------------------------------------


def _as_text(col: Any) -> Any:
    """The column as text, converted by the database: both ways of merging (row by row,
    and the set-based first assembly) read values in the same form."""
    return col if isinstance(col.type, String) else cast(col, Text)


def latest_rows(table: Table, key_column: str, columns: Sequence[str]) -> Subquery:
    """One row per base key (column ``k``) with ``columns`` as text. A store keyed
    otherwise may hold several rows per base key: the last in its primary-key order
    wins, the same choice on every run."""
    key_col = table.c[key_column]
    cols = [_as_text(table.c[c]).label(c) for c in columns if c in table.c]
    pk = list(table.primary_key.columns)
    if len(pk) == 1 and pk[0] is key_col:
        return select(_as_text(key_col).label("k"), *cols).subquery()
    rank = func.row_number().over(partition_by=key_col, order_by=[c.desc() for c in pk])
    inner = (
        select(_as_text(key_col).label("k"), *cols, rank.label("rn"))
        .where(key_col.is_not(None))
        .subquery()
    )
    return select(*[c for c in inner.c if c.name != "rn"]).where(inner.c.rn == 1).subquery()


def _source_rows(
    conn: Connection,
    db: SharedDatabase,
    plan: Plan,
    src: SourcePlan,
    columns: set[str],
    keys: Sequence[str],
) -> dict[str, dict[str, Any]]:
    """The store's rows of ``keys`` (in the base's form), by those keys; values as the
    store keeps them."""
    table = db.table(src.table_name)
    if table is None or src.key_column not in table.c:
        return {}
    key_col = table.c[src.key_column]
    names = sorted(c for c in columns if c in table.c and c != src.key_column)
    order = list(table.primary_key.columns)
    # Each key as the store keeps it, with the base's form it stands for.
    theirs = converter(db, plan.key_form, src.key_form)
    asked = {theirs(k): k for k in keys}
    found: dict[str, dict[str, Any]] = {}
    # Last in primary-key order wins, as in ``latest_rows``.
    q = (
        select(key_col, *[_as_text(table.c[c]) for c in names])
        .where(key_col.in_(list(asked)))
        .order_by(*order)
    )
    for row in conn.execute(q):
        found[asked.get(str(row[0]), str(row[0]))] = dict(zip(names, row[1:], strict=True))
    return found


def sorted_keys(db: SharedDatabase, table_name: str, key_column: str) -> Iterator[str]:
    """Every distinct key of a table in order, read in batches by keyset (no cursor stays
    open across the writes of a merge)."""
    table = db.table(table_name)
    if table is None or key_column not in table.c:
        return
    # Keys merge as text: a numeric key column is ordered as text too (unindexed, so
    # slower), or the union of the stores' keys would not be in one order.
    col = _as_text(table.c[key_column])
    last: str | None = None
    while True:
        q = select(col).distinct().where(col.is_not(None)).order_by(col).limit(BATCH * 4)
        if last is not None:
            q = q.where(col > last)
        with db.engine.connect() as conn:
            part = [str(k) for (k,) in conn.execute(q)]
        if not part:
            return
        yield from part
        last = part[-1]


def all_keys(db: SharedDatabase, plan: Plan) -> Iterator[list[str]]:
    """The union of the authoritative stores' keys and the base's own (so records whose
    sources went away are removed), in sorted batches; all in the base's form."""
    streams = [
        sorted_keys(db, plan.sources[sid].table_name, plan.sources[sid].key_column)
        for sid in plan.authoritative
        if plan.same_keys(sid)
    ]
    streams.append(sorted_keys(db, plan.table_name, plan.key_item))
    unique = (k for k, _ in itertools.groupby(heapq.merge(*streams)))
    yield from batched(unique, BATCH)
    # A store keeping its keys sealed where the base does not (or the other way) cannot
    # join that order: its keys, once opened or sealed, are in no order. They follow in
    # batches, without those the base holds by now (merged above, or from an earlier
    # such store): a key missing from the base was in none of the streams merged so far.
    for sid in plan.authoritative:
        if plan.same_keys(sid):
            continue
        src = plan.sources[sid]
        ours = converter(db, src.key_form, plan.key_form)
        for part in batched(sorted_keys(db, src.table_name, src.key_column), BATCH):
            if new := _not_in_base(db, plan, [ours(k) for k in part]):
                yield new


def _not_in_base(db: SharedDatabase, plan: Plan, keys: list[str]) -> list[str]:
    records, _ = base_tables(plan)
    key_col = records.c[plan.key_item]
    with db.engine.connect() as conn:
        held = {str(k) for (k,) in conn.execute(select(key_col).where(key_col.in_(keys)))}
    return [k for k in keys if k not in held]


def batched(keys: Iterable[str], size: int) -> Iterator[list[str]]:
    it = iter(keys)
    while part := list(itertools.islice(it, size)):
        yield part


# -- merging -------------------------------------------------------------------------------------


def merge(
    db: SharedDatabase,
    plan: Plan,
    keys: Sequence[str],
    seq_of: Callable[[int, str], int],
    now: datetime,
) -> Outcome:
    """Merge ``keys`` (in the base's form) again from their sources in one
    shared-database transaction. The outcome names the keys in the clear, as the
    conflicts keep them."""
    records, history = base_tables(plan)
    # Once each: a key read twice (streams ordered otherwise by the database than by
    # Python, sealed cells under a collation that is not by code point) would be
    # inserted twice.
    keys = list(dict.fromkeys(keys))
    clear_key = converter(db, plan.key_form, 0)
    plain = {k: clear_key(k) for k in keys}
    out = Outcome(keys=list(plain.values()))
    # Each item's value as the base keeps it (sealed or not), however its store does.
    kept = {
        i.item: converter(db, plan.sources[i.store_id].form(i.column), plan.form(i.item))
        for i in plan.items
    }
    wanted: dict[int, set[str]] = {sid: set() for sid in plan.sources}
    for item in plan.items:
        wanted[item.store_id].add(item.column)
        for ev_store, ev_col in item.evidence:
            wanted[ev_store].add(ev_col)
    key_col = records.c[plan.key_item]
    with unmapped(db.engine, begin=True) as conn:
        rows = {
            sid: _source_rows(conn, db, plan, plan.sources[sid], cols, keys)
            for sid, cols in wanted.items()
        }
        current = {
            str(r[0]): r._mapping for r in conn.execute(select(records).where(key_col.in_(keys)))
        }
        version = int(conn.scalar(select(func.max(records.c[VERSION]))) or 0) + 1
        inserts: list[dict[str, Any]] = []
        updates: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        removed: list[str] = []
        replaced: list[dict[str, Any]] = []
        for key in keys:
            present = any(key in rows[sid] for sid in plan.authoritative)
            cur = current.get(key)
            if not present:
                if cur is not None:
                    removed.append(key)
                    replaced += _superseded(plan, key, cur, [i.item for i in plan.items], now)
                continue
            out.present.add(plain[key])
            record: dict[str, Any] = {plan.key_item: key, VERSION: version}
            changed: list[str] = []
            for item in plan.items:
                src = rows[item.store_id].get(key)
                value = as_text(src.get(item.column)) if src is not None else None
                if value is not None:
                    value = kept[item.item](value)
                if cur is not None and cur[item.item] == value:
                    record[item.item] = value
                    record[seq_column(item.item)] = cur[seq_column(item.item)]
                    record[at_column(item.item)] = cur[at_column(item.item)]
                else:
                    changed.append(item.item)
                    record[item.item] = value
                    record[seq_column(item.item)] = seq_of(item.store_id, key)
                    record[at_column(item.item)] = now
                _check(db, plan, item, key, plain[key], value, rows, seq_of, out)
            if cur is None:
                inserts.append(record)
            elif changed:
                # Only the changed items' columns are written: one statement per set of
                # changed items (usually one set for a whole batch).
                cols = [c for i in changed for c in (i, seq_column(i), at_column(i))]
                updates.setdefault(tuple(changed), []).append(
                    {"k": key, VERSION: version, **{c: record[c] for c in cols}}
                )
                replaced += _superseded(plan, key, cur, changed, now)
        if inserts:
            conn.execute(records.insert(), inserts)
        for changed_items, params in updates.items():
            cols = [c for i in changed_items for c in (i, seq_column(i), at_column(i))]
            cols.append(VERSION)
            stmt = (
                update(records)
                .where(key_col == bindparam("k"))
                .values({c: bindparam(c) for c in cols})
            )
            conn.execute(stmt, params)
        if removed:
            conn.execute(delete(records).where(key_col.in_(removed)))
        if replaced:
            conn.execute(history.insert(), replaced)
    out.inserted, out.updated, out.deleted, out.history = (
        len(inserts),
        sum(len(p) for p in updates.values()),
        len(removed),
        len(replaced),
    )
    return out


def _superseded(
    plan: Plan, key: str, cur: Any, items: Iterable[str], now: datetime
) -> list[dict[str, Any]]:
    by_item = {i.item: i for i in plan.items}
    return [
        {
            "record_key": key,
            "item": item,
            "value": cur[item],
            "store_id": by_item[item].store_id,
            "seq": cur[seq_column(item)],
            "valid_from": cur[at_column(item)],
            "valid_to": now,
        }
        for item in items
        if cur[item] is not None
    ]


def _check(
    db: SharedDatabase,
    plan: Plan,
    item: ItemPlan,
    key: str,
    plain_key: str,
    value: str | None,
    rows: dict[int, dict[str, dict[str, Any]]],
    seq_of: Callable[[int, str], int],
    out: Outcome,
) -> None:
    """多元校核 of one item: every evidence store holding the key and a value for the
    item must agree with the authoritative value (``value``, as the base keeps it) once
    both are opened and normalised. A disagreement is kept in the clear."""
    if not item.evidence:
        return
    sealed = item.item in plan.sealed
    mine: tuple[str | None, str | None] | None = None  # (value, comparable), opened once
    for ev_store, ev_col in item.evidence:
        ev_row = rows[ev_store].get(key)
        if ev_row is None:
            continue
        ev_value = as_text(ev_row.get(ev_col))
        ev_sealed = ev_col in plan.sources[ev_store].sealed
        same_form = plan.sources[ev_store].form(ev_col) == plan.form(item.item)
        if ev_value is None or (same_form and ev_value == value):
            continue  # nothing to check, or the same cell: the same value
        ev_text = clear(db, ev_sealed, ev_value)
        theirs = comparable(item, ev_text)
        if mine is None:
            opened = clear(db, sealed, value)
            mine = (opened, comparable(item, opened))
        if theirs is None or theirs == mine[1]:
            continue
        out.disagreements.append(
            Disagreement(
                key=plain_key,
                item=item.item,
                value=mine[0],
                store_id=item.store_id,
                seq=seq_of(item.store_id, key),
                evidence_value=ev_text or "",
                evidence_store_id=ev_store,
                evidence_seq=seq_of(ev_store, key),
            )
        )


# -- the first assembly, set-based ----------------------------------------------------------


def is_empty(db: SharedDatabase, plan: Plan) -> bool:
    table = db.table(plan.table_name)
    if table is None:
        return True
    with db.engine.connect() as conn:
        return conn.execute(select(table.c[plan.key_item]).limit(1)).first() is None


def assemble_empty(db: SharedDatabase, plan: Plan, seqs: dict[int, int], now: datetime) -> int:
    """Fill an empty base in one ``INSERT … SELECT``: the union of the authoritative
    stores' keys, a join per store. Values and provenance are those row-by-row merging
    would give (the same text conversion, the stores' applied sequence numbers), in a
    fraction of the time; returns the records written. Only for a plan whose sources
    keep their cells as the base does (``Plan.cells_alike``): the database copies
    sealed cells as they are but cannot open or seal one."""
    records, _ = base_tables(plan)
    tables = {sid: db.table(plan.sources[sid].table_name) for sid in plan.authoritative}
    present = {sid: t for sid, t in tables.items() if t is not None}
    if not present:
        return 0
    subs = {
        sid: latest_rows(
            t,
            plan.sources[sid].key_column,
            [i.column for i in plan.items if i.store_id == sid],
        )
        for sid, t in present.items()
        if plan.sources[sid].key_column in t.c
    }
    if not subs:
        return 0
    keys = union(*[select(sub.c.k) for sub in subs.values()]).subquery()
    cols: list[Any] = [keys.c.k]
    for item in plan.items:
        sub = subs.get(item.store_id)
        value = sub.c[item.column] if sub is not None and item.column in sub.c else null()
        cols += [
            value,
            literal(seqs.get(item.store_id, 0), BigInteger),
            literal(now, Instant()),
        ]
    cols.append(literal(1, BigInteger))  # VERSION: the first
    q = select(*cols).select_from(keys)
    for sub in subs.values():
        q = q.outerjoin(sub, sub.c.k == keys.c.k)
    with unmapped(db.engine, begin=True) as conn:
        conn.execute(records.insert().from_select([c.name for c in records.columns], q))
        _index_versions(conn, plan)
        return int(conn.scalar(select(func.count()).select_from(records)) or 0)


def _as_code(item: ItemPlan, theirs: Any) -> Any:
    """The evidence value with the item's code-table names turned into codes by the
    database (男 → 1), so that a store keeping names sends only its real disagreements to
    Python rather than every row. Only where the database's equality then implies
    ``comparable``'s: every name and code already in normal form, no code itself a name
    of another code. Otherwise the plain value: Python sorts out the pairs as before."""
    codes = item.codes
    clean = codes and all(
        normalize_text(name) == name and comparable(item, code) == code
        for name, code in codes.items()
    )
    return case(codes, value=theirs, else_=theirs) if clean else theirs


def disagreements(
    db: SharedDatabase, plan: Plan, seqs: dict[int, int]
) -> Iterator[list[Disagreement]]:
    """Every evidence disagreement of the whole base, in chunks: the database finds the
    pairs whose text differs (cells, where sealed: equal values seal equal),
    normalisation in Python keeps the real ones, opened. As :func:`assemble_empty`,
    only for a plan whose ``cells_alike``."""
    records, _ = base_tables(plan)
    key = records.c[plan.key_item]
    for item in plan.items:
        sealed = item.item in plan.sealed
        for ev_store, ev_col in item.evidence:
            table = db.table(plan.sources[ev_store].table_name)
            if table is None or ev_col not in table.c:
                continue
            ev = latest_rows(table, plan.sources[ev_store].key_column, [ev_col])
            mine = records.c[item.item]
            theirs = ev.c[ev_col]
            q = (
                select(key, mine, theirs)
                .join(ev, ev.c.k == key)
                .where(theirs.is_not(None), or_(mine.is_(None), mine != _as_code(item, theirs)))
                .order_by(key)
            )
            with unmapped(db.engine) as conn:
                result = conn.execution_options(stream_results=True, yield_per=BATCH).execute(q)
                for part in result.partitions(BATCH):
                    found: list[Disagreement] = []
                    for k, cell, ev_cell in part:
                        value, ev_text = clear(db, sealed, cell), clear(db, sealed, str(ev_cell))
                        if comparable(item, ev_text) in (None, comparable(item, value)):
                            continue
                        found.append(
                            Disagreement(
                                key=str(clear(db, plan.key_sealed, str(k))),
                                item=item.item,
                                value=value,
                                store_id=item.store_id,
                                seq=seqs.get(item.store_id, 0),
                                evidence_value=str(ev_text),
                                evidence_store_id=ev_store,
                                evidence_seq=seqs.get(ev_store, 0),
                            )
                        )
                    if found:
                        yield found


# -- reading the base ---------------------------------------------------------------------------


def record_as_of(
    db: SharedDatabase, plan: Plan, key: str, when: datetime | None
) -> dict[str, dict[str, Any]] | None:
    """One record's items with their provenance, now or as they stood at ``when``:
    the history row whose validity covers ``when``, else the current value if it
    already held then. ``key`` and the values in the clear, however the base keeps
    them."""
    records, history = base_tables(plan)
    if db.table(plan.table_name) is None:
        return None
    by_item = {i.item: i for i in plan.items}
    key = base_key(db, plan)(key)
    with db.engine.connect() as conn:
        cur = conn.execute(select(records).where(records.c[plan.key_item] == key)).first()
        past: dict[str, Any] = {}
        if when is not None:
            q = (
                select(history)
                .where(history.c.record_key == key, history.c.valid_to > when)
                .order_by(history.c.valid_to)
            )
            for row in conn.execute(q):
                m = row._mapping
                starts = m["valid_from"]
                if m["item"] not in past and (starts is None or starts <= when):
                    past[m["item"]] = m
    if cur is None and not past:
        return None
    if cur is not None and not past and when is not None:
        entered = [cur._mapping[at_column(i)] for i in by_item]
        if all(t is None or t > when for t in entered):
            return None  # the record came into the base after ``when``
    out: dict[str, dict[str, Any]] = {}
    for name, item in by_item.items():
        sealed = name in plan.sealed
        if name in past:
            m = past[name]
            out[name] = {
                "value": clear(db, sealed, m["value"]),
                "store_id": m["store_id"],
                "seq": m["seq"],
                "since": m["valid_from"],
            }
            continue
        c = cur._mapping if cur is not None else None
        since = c[at_column(name)] if c is not None else None
        if c is None or (when is not None and since is not None and since > when):
            out[name] = {"value": None, "store_id": item.store_id, "seq": None, "since": None}
        else:
            out[name] = {
                "value": clear(db, sealed, c[name]),
                "store_id": item.store_id,
                "seq": c[seq_column(name)],
                "since": since,
            }
    return out
