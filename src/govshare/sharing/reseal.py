"""重新加密: a shared store brought in line with the catalog after its sensitive items
changed (an item marked 敏感 after the store was set up, a mark taken away, a store set
up before encryption at rest was turned on, or turned off since).

Sealing an item changes its column's cells and type, and every lookup, filter and
join on it; doing that in place under a serving store would show callers half-sealed
columns. So the store is copied, in key order, to a new table in which the changed
columns are sealed or opened, and the store is switched to that table in one step:

1. The store is marked (``reseal_to``: the items it will keep sealed, the new table).
   The feed leaves a marked store alone; readers go on reading the old table.
2. After a short grace (a feeder that read the store before the mark finishes its
   package), the rows are copied. The last package applied is read before the copy
   and again, under the store's exchange cursor lock, when the old table is marked
   retired in the shared-store database; had a package slipped in, the copy is made
   again. A feeder still holding the old store finds its table retired (the guard
   ``Writers.current`` under which every package is applied) and writes nothing.
3. The store's row takes the new table and sealing at once (with its audit entry);
   after another grace for reads already under way, the old table is dropped.

Interrupted anywhere, running it again finishes the work: before step 2 ends it
copies again; after it, it only switches the store and drops the old table.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
from sqlalchemy import Column, Engine, Index, MetaData, Table, func, insert, inspect, select
from sqlalchemy import tuple_ as tuple_of
from sqlalchemy.orm import Session, lazyload, sessionmaker

from govshare.config import Settings
from govshare.db import session_scope, utcnow
from govshare.errors import Conflict
from govshare.node.target import applied_seq_query, cursor_table, target_column
from govshare.security import audit
from govshare.security.audit import Actor
from govshare.security.fieldseal import FieldSealer, arrow_type, key_ages, type_name
from govshare.sharing.errors import StoreNotFound
from govshare.sharing.models import SharedStore
from govshare.sharing.store import SharedDatabase, make_table, retired_tables, sealed_items

BATCH = 5000
# How many times the copy is made again when packages keep slipping in before the switch.
ATTEMPTS = 3


class ResealRefused(Conflict):
    code = "reseal_refused"


@dataclass(frozen=True, slots=True)
class Pending:
    """What resealing would change in a store: items to seal, items to open, and
    whether the items it keeps sealed move to the newest field key (``rekey``)."""

    seal: list[str]
    open: list[str]
    rekey: bool = False

    def __bool__(self) -> bool:
        return bool(self.seal or self.open or self.rekey)


@dataclass(frozen=True, slots=True)
class Resealed:
    store_id: int
    old_table: str
    table: str
    rows: int
    sealed: list[str]
    opened: list[str]
    key: int | None  # the field key's generation the store seals under now


def newest_key(settings: Settings) -> int | None:
    """The newest field key's generation (None: encryption at rest off, or no key made
    yet, which the first store to seal will make). Read without the secret."""
    if not settings.field_sealing:
        return None
    return max((g for g, _ in key_ages(settings.data_dir)), default=None)


def planned_items(store: SharedStore, settings: Settings) -> dict[str, str]:
    """The items ``store`` should keep sealed now (the catalog's sensitive items it
    keeps, none with encryption at rest off), each with the type already recorded (a
    base database keeps every value as text)."""
    if not settings.field_sealing:
        return {}
    now = store.sealed_items or {}
    wanted = sealed_items(store.resource, store.mapping.values()) or {}
    fresh = "string" if store.source_task_id is None else ""
    return {item: now.get(item, fresh) for item in wanted}


def pending(store: SharedStore, settings: Settings, newest: int | None = None) -> Pending:
    """What resealing ``store`` (a base database's too) would change. ``newest``: the
    newest field key (``newest_key``)."""
    now, wanted = set(store.sealed_items or {}), set(planned_items(store, settings))
    kept = now & wanted
    rekey = bool(kept) and newest is not None and (store.seal_key or 1) != newest
    return Pending(sorted(wanted - now), sorted(now - wanted), rekey)


def next_table_name(name: str) -> str:
    """``ss_12`` → ``ss_12_r2`` → ``ss_12_r3``: never a name a store had before."""
    found = re.fullmatch(r"(.+)_r(\d+)", name)
    return f"{found.group(1)}_r{int(found.group(2)) + 1}" if found else f"{name}_r2"


def reseal(
    factory: sessionmaker[Session],
    db: SharedDatabase,
    settings: Settings,
    store_id: int,
    actor: Actor,
    *,
    progress: Callable[[int, int], None] | None = None,
    grace: float = 2.0,
) -> Resealed | None:
    """Bring the store's sealing in line with the catalog (module docstring); None when
    nothing changes. ``progress(done, total)`` is told the rows copied."""
    with session_scope(factory) as session:
        store = locked_store(session, store_id)
        if store is None:
            raise StoreNotFound(f"没有编号为 {store_id} 的共享信息库")
        if store.source_task_id is None:
            raise ResealRefused("基础库由其组装重新加密 (basedata.reseal)")
        target = mark(store, db, settings)
        if target is None:
            return None
        old, before = store.table_name, dict(store.sealed_items or {})
        old_key = store.seal_key or 1
    new, after = str(target["table"]), dict(target["items"])
    new_key = int(target.get("key") or 1)
    retired = retired_tables(MetaData())
    make_table(db.engine, retired)
    already = _is_retired(db.engine, retired, old)
    if not already:
        time.sleep(grace)
    copy = StoreCopy(
        db, store_id, old, new, Sealing(before, old_key), Sealing(after, new_key), retired
    )
    rows = copy.rows() if already else copy.run(progress)
    with session_scope(factory) as session:
        store = locked_store(session, store_id)
        if store is None:
            raise StoreNotFound(f"没有编号为 {store_id} 的共享信息库")
        store.table_name = new
        store.sealed_items = copy.after.items or None
        store.seal_key = new_key if copy.after.items else None
        store.reseal_to = None
        store.row_count = rows
        audit.record(
            session,
            actor,
            "sharing.store.reseal",
            object_type="shared_store",
            object_id=store_id,
            before={"table": old, "sealed_items": sorted(before), "key": old_key},
            after={
                "table": new,
                "sealed_items": sorted(copy.after.items),
                "key": new_key,
                "rows": rows,
            },
        )
    time.sleep(grace)  # reads that took the old table just before the switch
    drop_table(db, old)
    return Resealed(
        store_id,
        old,
        new,
        rows,
        sorted(set(after) - set(before)),
        sorted(set(before) - set(after)),
        new_key if copy.after.items else None,
    )


def mark(store: SharedStore, db: SharedDatabase, settings: Settings) -> dict[str, Any] | None:
    """Mark ``store`` (locked) for resealing unless marked already; its mark (the items
    it will keep sealed, its next table, the key), None when nothing would change."""
    if store.reseal_to is None:
        newest = db.sealer.newest() if settings.field_sealing else None
        if not pending(store, settings, newest):
            return None
        store.reseal_to = {
            "items": planned_items(store, settings),
            "table": next_table_name(store.table_name),
            "key": newest,
        }
    return dict(store.reseal_to)


@dataclass(slots=True)
class Sealing:
    """How a store keeps its columns: the sealed items (with their types) and the key
    generation they are sealed under."""

    items: dict[str, str]
    key: int

    def form(self, name: str) -> int:
        """0 for a column in the clear, else the generation its cells are sealed under."""
        return self.key if name in self.items else 0


def recoded(sealer: FieldSealer, was: int, will: int, cells: list[Any]) -> list[Any]:
    """Text cells kept in form ``was`` given in form ``will`` (0: in the clear, else the
    key generation sealing them; ``sealer`` opens any and seals under ``will``)."""
    if was == will:
        return cells
    if was and will:
        return sealer.seal_texts(sealer.open_texts(cells))
    return sealer.open_texts(cells) if was else sealer.seal_texts(cells)


def copy_rows(
    engine: Engine,
    source: Table,
    target: Table,
    convert: Callable[[dict[str, list[Any]]], None],
    progress: Callable[[int], None] | None = None,
    *,
    skip: tuple[str, ...] = (),
) -> int:
    """Every row of ``source`` into ``target`` in key order, a batch at a time, each
    batch's columns (name → values) given to ``convert`` to change in place first;
    the ``skip`` columns are left for ``target`` to number. ``progress(rows)`` after each
    batch; returns the rows copied."""
    order = list(source.primary_key.columns) or list(source.columns)
    names = [str(c.name) for c in source.columns]
    kept = [n for n in names if n not in skip]
    done = 0
    last: tuple[Any, ...] | None = None
    while True:
        q = select(*source.columns).order_by(*order).limit(BATCH)
        if last is not None:
            q = q.where(
                tuple_of(*order) > tuple_of(*last) if len(order) > 1 else order[0] > last[0]
            )
        with engine.connect() as conn:
            rows = conn.execute(q).all()
        if not rows:
            break
        columns = {n: [r[i] for r in rows] for i, n in enumerate(names)}
        last = tuple(columns[str(c.name)][-1] for c in order)
        convert(columns)
        with engine.begin() as conn:
            conn.execute(
                insert(target), [{n: columns[n][i] for n in kept} for i in range(len(rows))]
            )
        done += len(rows)
        if progress is not None:
            progress(done)
        if len(rows) < BATCH:
            break
    return done


def count_rows(engine: Engine, table: Table) -> int:
    with engine.connect() as conn:
        return int(conn.scalar(select(func.count()).select_from(table)) or 0)


class StoreCopy:
    """The old table's rows in a new table, the changed columns sealed or opened."""

    def __init__(
        self,
        db: SharedDatabase,
        store_id: int,
        old: str,
        new: str,
        before: Sealing,
        after: Sealing,
        retired: Table,
    ) -> None:
        self.db, self.engine = db, db.engine
        self.store_id, self.old, self.new = store_id, old, new
        self.before, self.after = before, after
        self.retired = retired
        self.cursor = cursor_table(MetaData())
        self._sealer: FieldSealer | None = None

    @property
    def sealer(self) -> FieldSealer:
        """Opens any cell, seals under the new key."""
        if self._sealer is None:
            self._sealer = self.db.sealer.under(self.after.key)
        return self._sealer

    def rows(self) -> int:
        """Rows in the new table (the copy was made by an earlier, interrupted run)."""
        if not inspect(self.engine).has_table(self.new):
            return 0  # the store had no table: its first package makes the new one
        return count_rows(self.engine, Table(self.new, MetaData(), autoload_with=self.engine))

    def run(self, progress: Callable[[int, int], None] | None) -> int:
        for _ in range(ATTEMPTS):
            seq = self._applied_seq()
            # A store no package reached yet has no table: nothing to copy.
            rows = self._copy(progress) if inspect(self.engine).has_table(self.old) else 0
            if self._retire_unless_moved(seq):
                return rows
        raise ResealRefused(
            f"复制共享信息库表 {self.old} 时仍有数据包写入 ({ATTEMPTS} 次), 请稍后再试"
        )

    def _applied_seq(self) -> int | None:
        with self.engine.connect() as conn:
            if not inspect(conn).has_table(self.cursor.name):
                return None
            return conn.scalar(
                select(self.cursor.c.last_seq).where(self.cursor.c.task_id == self.store_id)
            )

    def _retire_unless_moved(self, seq: int | None) -> bool:
        """Mark the old table retired, unless a package was applied since ``seq`` was
        read (then nothing is marked and the copy is made again)."""
        with self.engine.begin() as conn:
            # The write first: on SQLite it takes the database's write lock, so the cursor
            # read next is what stays until commit. Elsewhere the cursor is read under the
            # exchange cursor lock a package is applied under.
            conn.execute(insert(self.retired).values(table_name=self.old, retired_at=utcnow()))
            now = (
                conn.scalar(applied_seq_query(self.cursor, self.store_id, conn.dialect.name))
                if inspect(conn).has_table(self.cursor.name)
                else None
            )
            if now != seq:
                conn.rollback()
                return False
        return True

    def _copy(self, progress: Callable[[int, int], None] | None) -> int:
        source = Table(self.old, MetaData(), autoload_with=self.engine)
        drop_table(self.db, self.new)  # a copy an interrupted run left
        target = self._target(source)
        target.create(self.engine)
        key_item = self._key_item(source)
        total = count_rows(self.engine, source)

        def convert(columns: dict[str, list[Any]]) -> None:
            for name, values in columns.items():
                columns[name] = self._converted(name, values)

        done = copy_rows(
            self.engine,
            source,
            target,
            convert,
            None if progress is None else (lambda n: progress(n, total)),
        )
        if key_item is not None:
            Index(f"ix_{self.new}_key", target.c[key_item]).create(self.engine, checkfirst=True)
        return done

    def _key_item(self, source: Table) -> str | None:
        indexed = [ix for ix in source.indexes if ix.name == f"ix_{self.old}_key"]
        return str(next(iter(indexed[0].columns)).name) if indexed else None

    def _target(self, source: Table) -> Table:
        key = [str(c.name) for c in source.primary_key.columns]
        cols: list[Column[Any]] = []
        for col in source.columns:
            name = str(col.name)
            if self.after.form(name) and not self.before.form(name):
                cols.append(target_column(name, pa.string(), key))
            elif self.before.form(name) and not self.after.form(name):
                kind = self.before.items[name]
                cols.append(target_column(name, arrow_type(kind) if kind else pa.string(), key))
            else:
                cols.append(
                    Column(
                        name,
                        col.type,
                        primary_key=col.primary_key,
                        nullable=col.nullable,
                        autoincrement=False,
                    )
                )
        return Table(self.new, MetaData(), *cols, mysql_charset="utf8mb4")

    def _converted(self, name: str, values: list[Any]) -> list[Any]:
        was, will = self.before.form(name), self.after.form(name)
        if was == will:
            return values
        if was:
            cells = pa.array([None if v is None else str(v) for v in values], pa.string())
            if will:  # another key: the cells' text opened and sealed again
                return recoded(self.sealer, was, will, cells.to_pylist())
            return self.sealer.open_array(cells, self.before.items[name] or None).to_pylist()
        array = pa.array(values)
        if not self.after.items[name] and array.type != pa.null():
            self.after.items[name] = type_name(array.type)
        return self.sealer.seal_array(array).to_pylist()


def locked_store(session: Session, store_id: int) -> SharedStore | None:
    """The store's row, locked until the transaction ends (its resource read after, not
    joined: PostgreSQL locks no row of an outer join's nullable side)."""
    return session.scalar(
        select(SharedStore)
        .where(SharedStore.id == store_id)
        .options(lazyload(SharedStore.resource))
        .with_for_update()
    )


def _is_retired(engine: Engine, retired: Table, name: str) -> bool:
    with engine.connect() as conn:
        found = conn.scalar(select(retired.c.table_name).where(retired.c.table_name == name))
    return found is not None


def drop_table(db: SharedDatabase, name: str) -> None:
    if inspect(db.engine).has_table(name):
        Table(name, MetaData(), autoload_with=db.engine).drop(db.engine)
    db.forget(name)
