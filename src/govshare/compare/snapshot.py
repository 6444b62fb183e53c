"""Consistent snapshots of shared stores as Parquet files.

Every input of a run is read in one read transaction of the shared-store database, so
all of them show the same moment: no package applied halfway through the export is
seen by one input and not by another. Each input's snapshot records where its store
stood — the last package applied (fed stores) or the highest record version (base
databases) — and how many rows it holds. Only the columns the job uses are written, and
only the rows the department's grant lets it read.

Sealed items (字段加密) are opened batch by batch as they are written: the query checks
formats, ranges and dates and shows values, which a sealed cell is not. The snapshot
files therefore hold the values in the clear, like the run's result; they live in the
run's folder only while the run does (``runner._clear``).
"""

from __future__ import annotations

import functools
import gc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from sqlalchemy import Connection, Engine, MetaData, Select, Table, func, inspect, select, types

from govshare.compare.sql import InputPlan
from govshare.security.fieldseal import FieldSealer, FieldSealError
from govshare.sharing.shared_db import row_conditions, sealed_prefixes

BATCH_ROWS = 100_000


@contextmanager
def no_collection() -> Iterator[None]:
    """The cyclic garbage collector paused: an export allocates millions of tuples,
    none of them in a cycle, and every 700 of them set off a collection (those of the
    older generations walk every object alive) — more than half of the export's time at
    2,000,000 rows. The worker process exports and nothing else."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


@contextmanager
def read_snapshot(engine: Engine) -> Iterator[Connection]:
    """A connection whose reads all see one moment of the shared-store database."""
    with engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            # pysqlite opens transactions only before writes; WAL keeps this one's
            # snapshot from its first read on.
            conn.exec_driver_sql("BEGIN")
        else:
            conn = conn.execution_options(isolation_level="REPEATABLE READ")
        try:
            yield conn
        finally:
            conn.rollback()


def _arrow_type(column: Any) -> pa.DataType:
    sql = column.type
    if isinstance(sql, types.Boolean):
        return pa.bool_()
    if isinstance(sql, types.Integer):
        return pa.int64()
    if isinstance(sql, types.Float | types.Numeric):
        return pa.float64()
    if isinstance(sql, types.DateTime):
        return pa.timestamp("us")
    if isinstance(sql, types.Date):
        return pa.date32()
    return pa.string()


def _array(values: tuple[Any, ...], kind: pa.DataType) -> pa.Array:
    try:
        return pa.array(values, type=kind)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError):
        # SQLite keeps whatever it was given; a value its column's type cannot hold
        # is exported as missing, as the query's typed view would read it anyway.
        return pa.array([_one(v, kind) for v in values], type=kind)


def _one(value: Any, kind: pa.DataType) -> Any:
    try:
        return pa.scalar(value, type=kind).as_py()
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError):
        return str(value) if kind == pa.string() else None


def _batches(conn: Connection, stmt: Select[Any]) -> Iterator[list[tuple[Any, ...]]]:
    """The rows of ``stmt`` in batches of ``BATCH_ROWS``, each as one tuple of values per
    column, converted as SQLAlchemy converts them (dates, numbers, booleans).

    On SQLite the batches are read from the DBAPI cursor of the same connection (same
    read transaction): pysqlite fetches lazily, and building a ``Row`` per record, then
    taking the rows apart again, cost more than pysqlite's own reading (bench/README.md,
    ``compare.py``). Elsewhere SQLAlchemy streams them (a server-side cursor)."""
    if conn.dialect.name != "sqlite":
        result = conn.execution_options(yield_per=BATCH_ROWS).execute(stmt)
        for part in result.partitions():
            yield list(zip(*part, strict=True))
        return
    dialect = conn.dialect
    processors = [
        c.type.dialect_impl(dialect).result_processor(dialect, None) for c in stmt.selected_columns
    ]
    result = conn.execute(stmt)  # no prefetching strategy: the cursor holds every row
    try:
        cursor = result.cursor
        while part := cursor.fetchmany(BATCH_ROWS):
            columns = list(zip(*part, strict=True))
            yield [
                values if process is None else tuple(map(process, values))
                for values, process in zip(columns, processors, strict=True)
            ]
    finally:
        result.close()


def _reflect(conn: Connection, name: str) -> Table | None:
    if not inspect(conn).has_table(name):
        return None
    return Table(name, MetaData(), autoload_with=conn)


def position(conn: Connection, table: Table, plan: InputPlan, cursor_table: str) -> int:
    """Where the store stood in this snapshot: the last package applied (fed stores) or
    the highest record version (base databases); 0 when it has no such bookkeeping."""
    if plan.version_column is not None:
        if plan.version_column not in table.c:
            return 0
        top = func.coalesce(func.max(table.c[plan.version_column]), 0)
        return int(conn.scalar(select(top)) or 0)
    cursor = _reflect(conn, cursor_table)
    if cursor is None:
        return 0
    return int(conn.scalar(select(cursor.c.last_seq).where(cursor.c.task_id == plan.store_id)) or 0)


class _Opening:
    """How one input's sealed columns are opened: each column's opened type, and the
    prefixes of the row filter on sealed items, which only the opened text can meet."""

    def __init__(self, sealer: FieldSealer, plan: InputPlan, read: list[str]) -> None:
        self.sealer = sealer
        # Opening no cell gives the type the opened values take (text when unknown).
        empty = pa.array([], pa.string())
        self.types = {
            c: sealer.open_array(empty, k).type for c, k in plan.sealed.items() if c in read
        }
        self.at = {c: n for n, c in enumerate(read)}
        self.checks = [
            (item, prefix)
            for item, prefix in sealed_prefixes(plan.row_filter, plan.sealed)
            if item in self.types
        ]

    def batch(self, arrays: list[pa.Array]) -> list[pa.Array]:
        """The read columns with the sealed ones opened and, where the grant's row filter
        has a prefix on a sealed item, only the rows whose opened text starts with it (as
        the data services check it: on the text the value was sealed as)."""
        texts = {c: self.sealer.open_array(arrays[self.at[c]], None) for c in self.types}
        for c, text in texts.items():
            kind = self.types[c]
            arrays[self.at[c]] = text if kind == pa.string() else pc.cast(text, kind)
        if not self.checks:
            return arrays
        hits = [pc.fill_null(pc.starts_with(texts[i], p), False) for i, p in self.checks]
        keep = functools.reduce(pc.and_, hits)
        return [pc.filter(a, keep) for a in arrays]


def export(
    engine: Engine,
    inputs: list[InputPlan],
    folder: Path,
    cursor_table: str,
    progress: Callable[[str, int, int], None] = lambda _a, _done, _total: None,
    sealer: FieldSealer | None = None,
) -> list[dict[str, Any]]:
    """Write each input to ``folder/<alias>.parquet``; returns per input its alias,
    store, sequence number and rows. ``cursor_table`` is the exchange's bookkeeping
    table, where a fed store's last applied package is kept; ``sealer`` opens the
    sealed items of the inputs that have them."""
    folder.mkdir(parents=True, exist_ok=True)
    taken: list[dict[str, Any]] = []
    with read_snapshot(engine) as conn:
        for plan in inputs:
            table = _reflect(conn, plan.table_name)
            path = folder / f"{plan.alias}.parquet"
            if table is None:
                # No package has arrived yet: an empty input of the right columns.
                schema = pa.schema([(c, pa.string()) for c in plan.columns])
                pq.write_table(schema.empty_table(), path)
                taken.append({"alias": plan.alias, "store_id": plan.store_id, "seq": 0, "rows": 0})
                continue
            if plan.sealed and sealer is None:
                raise FieldSealError(
                    f"共享信息库「{plan.resource_name}」的敏感信息项已加密保存, "
                    "但比对进程没有字段加密密钥"
                )
            seq = position(conn, table, plan, cursor_table)
            sealed = plan.sealed or None
            seal = sealer.under(plan.seal_key).seal_value if sealer is not None and sealed else None
            conds = row_conditions(table, plan.row_filter, sealed, seal, prefixes_opened=True)
            conds += [table.c[c].is_not(None) for c in plan.required]
            # Items a prefix on a sealed item needs, read for the check, not written.
            checked = [i for i, _ in sealed_prefixes(plan.row_filter, sealed) if i in table.c]
            read = plan.columns + [i for i in dict.fromkeys(checked) if i not in plan.columns]
            opening = _Opening(sealer, plan, read) if sealer is not None and sealed else None
            kinds = [_arrow_type(table.c[c]) for c in read]
            if opening is not None:
                kinds = [opening.types.get(c, k) for c, k in zip(read, kinds, strict=True)]
            schema = pa.schema(list(zip(plan.columns, kinds[: len(plan.columns)], strict=True)))
            total = plan.rows_hint
            rows = 0
            cols = [table.c[c] for c in read]
            stmt = select(*cols).where(*conds) if conds else select(*cols)
            with pq.ParquetWriter(path, schema, compression="zstd") as writer, no_collection():
                for part in _batches(conn, stmt):
                    arrays = [
                        # A sealed column is read as the text of its cells, then opened.
                        _array(values, pa.string() if c in plan.sealed else kind)
                        for values, c, kind in zip(part, read, kinds, strict=True)
                    ]
                    if opening is not None:
                        arrays = opening.batch(arrays)
                    batch = pa.RecordBatch.from_arrays(arrays[: len(plan.columns)], schema=schema)
                    writer.write_batch(batch)
                    rows += batch.num_rows
                    progress(plan.alias, rows, total)
            taken.append({"alias": plan.alias, "store_id": plan.store_id, "seq": seq, "rows": rows})
    return taken
