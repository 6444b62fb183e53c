"""Writing packages into a subscriber's database: mapping, code conversion, upsert and
delete by key, and the applied sequence number in the same transaction."""

from __future__ import annotations

import datetime as dt
import decimal
from typing import Any

import pyarrow as pa
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Engine,
    Float,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
    bindparam,
    delete,
    inspect,
    select,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection

from govshare.exchange.package import OP_COLUMN
from govshare.node.source import key_hash

CURSOR_TABLE = "govshare_exchange_cursor"


def _sql_type(arrow_type: pa.DataType) -> Any:
    if pa.types.is_boolean(arrow_type):
        return Boolean()
    if pa.types.is_integer(arrow_type):
        return BigInteger()
    if pa.types.is_floating(arrow_type):
        return Float()
    if pa.types.is_decimal(arrow_type):
        return Numeric(38, arrow_type.scale)
    if pa.types.is_timestamp(arrow_type):
        return DateTime()
    if pa.types.is_date(arrow_type):
        return Date()
    if pa.types.is_binary(arrow_type):
        return LargeBinary()
    return Text()


class TargetWriter:
    """Applies one subscriber task's packages to its target table."""

    def __init__(
        self, engine: Engine, task_id: int, config: dict[str, Any], source_key: list[str]
    ) -> None:
        self.engine = engine
        self.task_id = task_id
        self.table_name: str = config["table"]
        self.mapping: dict[str, str] = dict(config.get("mapping") or {})
        self.code_maps: dict[str, dict[str, str]] = dict(config.get("code_maps") or {})
        self.key = [self.mapping.get(k, k) for k in source_key]
        self.metadata = MetaData()
        self.cursor = Table(
            CURSOR_TABLE,
            self.metadata,
            Column("task_id", Integer, primary_key=True),
            Column("last_seq", BigInteger, nullable=False),
        )
        self.cursor.create(engine, checkfirst=True)
        self.table: Table | None = None
        if inspect(engine).has_table(self.table_name):
            self.table = Table(self.table_name, self.metadata, autoload_with=engine)

    def applied_seq(self) -> int:
        with self.engine.connect() as conn:
            seq = conn.scalar(
                select(self.cursor.c.last_seq).where(self.cursor.c.task_id == self.task_id)
            )
        return int(seq or 0)

    def reset(self) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(self.cursor).where(self.cursor.c.task_id == self.task_id))

    def _ensure_table(self, schema: pa.Schema) -> Table:
        if self.table is not None:
            return self.table
        cols = []
        for f in schema:
            if f.name == OP_COLUMN:
                continue
            name = self.mapping.get(f.name, f.name)
            is_key = name in self.key
            sql_type = (
                String(200) if is_key and _sql_type(f.type).__class__ is Text else _sql_type(f.type)
            )
            cols.append(Column(name, sql_type, primary_key=is_key, nullable=not is_key))
        self.table = Table(self.table_name, self.metadata, *cols)
        self.table.create(self.engine, checkfirst=True)
        return self.table

    def _rows(self, data: pa.Table) -> tuple[list[str], list[list[Any]], list[str]]:
        names = [n for n in data.column_names if n != OP_COLUMN]
        values: list[list[Any]] = []
        for name in names:
            col = data.column(name).to_pylist()
            if name in self.code_maps:
                table = self.code_maps[name]
                col = [table.get(str(v), v) if v is not None else None for v in col]
            values.append(col)
        ops = data.column(OP_COLUMN).to_pylist()
        return [self.mapping.get(n, n) for n in names], values, ops

    def apply(self, seq: int, data: pa.Table) -> dict[str, int] | None:
        """Apply package ``seq``; None when it was applied before (nothing changes)."""
        table = self._ensure_table(data.schema)
        names, columns, ops = self._rows(data)
        known = [n for n in names if n in table.c]
        idx = [names.index(n) for n in known]
        upserts, deletes = [], []
        counts = {"inserted": 0, "updated": 0, "deleted": 0}
        for i, op in enumerate(ops):
            if op == "D":
                deletes.append(
                    {f"k_{k}": _coerce(table.c[k], columns[names.index(k)][i]) for k in self.key}
                )
                counts["deleted"] += 1
            else:
                upserts.append({n: columns[j][i] for n, j in zip(known, idx, strict=True)})
                counts["inserted" if op == "I" else "updated"] += 1
        with self.engine.begin() as conn:
            current = conn.scalar(
                select(self.cursor.c.last_seq)
                .where(self.cursor.c.task_id == self.task_id)
                .with_for_update()
                if conn.dialect.name != "sqlite"
                else select(self.cursor.c.last_seq).where(self.cursor.c.task_id == self.task_id)
            )
            if current is not None and seq <= current:
                return None
            if upserts:
                self._upsert(conn, table, upserts)
            if deletes:
                where = [table.c[k] == bindparam(f"k_{k}") for k in self.key]
                conn.execute(delete(table).where(*where), deletes)
            if current is None:
                conn.execute(self.cursor.insert().values(task_id=self.task_id, last_seq=seq))
            else:
                conn.execute(
                    self.cursor.update()
                    .where(self.cursor.c.task_id == self.task_id)
                    .values(last_seq=seq)
                )
        return counts

    def _upsert(self, conn: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
        insert = sqlite_insert if conn.dialect.name == "sqlite" else pg_insert
        stmt = insert(table)
        cols = [c for c in rows[0] if c not in self.key]
        if cols:
            stmt = stmt.on_conflict_do_update(
                index_elements=self.key, set_={c: stmt.excluded[c] for c in cols}
            )
        else:
            stmt = stmt.on_conflict_do_nothing(index_elements=self.key)
        conn.execute(stmt, rows)

    def checksum(self) -> tuple[int, str]:
        if self.table is None:
            return 0, f"{0:016x}"
        count, total = 0, 0
        with self.engine.connect() as conn:
            result = conn.execution_options(stream_results=True, yield_per=50_000).execute(
                select(*[self.table.c[k] for k in self.key])
            )
            for row in result:
                count += 1
                total = (total + key_hash(tuple(row))) % (1 << 64)
        return count, f"{total:016x}"


def _coerce(col: Column[Any], value: Any) -> Any:
    """Keys of key-set deletions travel as text; give them the column's own type."""
    if not isinstance(value, str):
        return value
    try:
        py = col.type.python_type
    except NotImplementedError:
        return value
    if py is str:
        return value
    try:
        if py in (int, float):
            return py(value)
        if py is dt.date:
            return dt.date.fromisoformat(value)
        if py is dt.datetime:
            return dt.datetime.fromisoformat(value)
        if py is decimal.Decimal:
            return decimal.Decimal(value)
    except ValueError:
        return value
    return value
