"""Writing packages into a subscriber's database: mapping, code conversion, upsert and
delete by key, and the applied sequence number in the same transaction."""

from __future__ import annotations

import datetime as dt
import decimal
from collections.abc import Iterator
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
    event,
    inspect,
    select,
)
from sqlalchemy.dialects import mysql
from sqlalchemy.dialects.mysql import insert as mysql_insert
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError, IntegrityError

from govshare.exchange.package import OP_COLUMN
from govshare.node.source import keyset_checksum, plain_results, stream_batches

CURSOR_TABLE = "govshare_exchange_cursor"


MYSQL = ("mysql", "mariadb")
# From this many rows a PostgreSQL package is copied in bulk rather than upserted row by row.
COPY_THRESHOLD = 1000


def _sql_type(arrow_type: pa.DataType) -> Any:
    """The column type a created target table gets for a package column. MySQL's plain
    FLOAT, DATETIME, TEXT and BLOB would lose what the other engines keep (FLOAT is
    single precision, DATETIME drops microseconds, TEXT and BLOB stop at 64 KiB), so it
    gets DOUBLE, DATETIME(6), LONGTEXT and LONGBLOB."""
    if pa.types.is_boolean(arrow_type):
        return Boolean()
    if pa.types.is_integer(arrow_type):
        return BigInteger()
    if pa.types.is_floating(arrow_type):
        return Float().with_variant(mysql.DOUBLE(), *MYSQL)
    if pa.types.is_decimal(arrow_type):
        return Numeric(38, arrow_type.scale)
    if pa.types.is_timestamp(arrow_type):
        return DateTime().with_variant(mysql.DATETIME(fsp=6), *MYSQL)
    if pa.types.is_date(arrow_type):
        return Date()
    if pa.types.is_binary(arrow_type):
        return LargeBinary().with_variant(mysql.LONGBLOB(), *MYSQL)
    return Text().with_variant(mysql.LONGTEXT(), *MYSQL)


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
            Column("task_id", Integer, primary_key=True, autoincrement=False),
            Column("last_seq", BigInteger, nullable=False),
        )
        if engine.dialect.name == "sqlite" and not event.contains(engine, "connect", _sqlite_wal):
            event.listen(engine, "connect", _sqlite_wal)
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
            value_type = f.type.value_type if pa.types.is_dictionary(f.type) else f.type
            sql_type = _sql_type(value_type)
            if is_key and isinstance(sql_type, Text):
                sql_type = String(200)
            if is_key and len(self.key) == 1 and isinstance(sql_type, BigInteger):
                # SQLite: INTEGER PRIMARY KEY is the row id itself, not a second index.
                sql_type = BigInteger().with_variant(Integer(), "sqlite")
            cols.append(
                Column(name, sql_type, primary_key=is_key, nullable=not is_key, autoincrement=False)
            )
        # utf8mb4 whatever the MySQL database's default: Chinese names outside the BMP.
        self.table = Table(self.table_name, self.metadata, *cols, mysql_charset="utf8mb4")
        self.table.create(self.engine, checkfirst=True)
        return self.table

    def _rows(self, data: pa.Table) -> tuple[list[str], list[list[Any]], list[str]]:
        names = [n for n in data.column_names if n != OP_COLUMN]
        values: list[list[Any]] = []
        for name in names:
            col = _values(data.column(name))
            if name in self.code_maps:
                table = self.code_maps[name]
                col = [table.get(str(v), v) if v is not None else None for v in col]
            values.append(col)
        ops = _values(data.column(OP_COLUMN))
        return [self.mapping.get(n, n) for n in names], values, ops

    def apply(self, seq: int, data: pa.Table) -> dict[str, int] | None:
        """Apply package ``seq``; None when it was applied before (nothing changes)."""
        table = self._ensure_table(data.schema)
        names, columns, ops = self._rows(data)
        known = [n for n in names if n in table.c]
        idx = [names.index(n) for n in known]
        inserted, deleted = ops.count("I"), ops.count("D")
        counts = {
            "inserted": inserted,
            "updated": len(ops) - inserted - deleted,
            "deleted": deleted,
        }
        upserts = [columns[j] for j in idx]  # column by column
        deletes = []
        if deleted:
            keep = [i for i, op in enumerate(ops) if op != "D"]
            upserts = [[col[i] for i in keep] for col in upserts]
            deletes = [
                {f"k_{k}": _coerce(table.c[k], columns[names.index(k)][i]) for k in self.key}
                for i, op in enumerate(ops)
                if op == "D"
            ]
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
            if len(ops) > deleted:
                self._upsert(conn, table, known, upserts, fresh=inserted == len(ops))
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

    def _upsert(
        self,
        conn: Connection,
        table: Table,
        names: list[str],
        columns: list[list[Any]],
        *,
        fresh: bool = False,
    ) -> None:
        """Insert or update by key: one statement, executed for every row.

        ``fresh``: every row is an insert (keys the provider never sent before). On SQLite
        a plain INSERT is tried first, about a sixth cheaper; should a key be there after
        all (a re-sync), the failed statement alone is undone and the upsert follows in
        the same transaction, rewriting any row the INSERT had added with the same values.
        """
        if conn.dialect.name == "mysql":
            self._write(conn, table, self._mysql_upsert(table, names), names, columns)
            return
        if (
            conn.dialect.name == "postgresql"
            and conn.dialect.driver == "psycopg"
            and len(columns[0]) >= COPY_THRESHOLD
        ):
            self._pg_copy_upsert(conn, table, names, columns)
            return
        insert = sqlite_insert if conn.dialect.name == "sqlite" else pg_insert
        if fresh and conn.dialect.name == "sqlite":
            try:
                self._write(conn, table, insert(table), names, columns)
            except IntegrityError:
                pass
            else:
                return
        stmt = insert(table)
        cols = [c for c in names if c not in self.key]
        if cols:
            stmt = stmt.on_conflict_do_update(
                index_elements=self.key, set_={c: stmt.excluded[c] for c in cols}
            )
        else:
            stmt = stmt.on_conflict_do_nothing(index_elements=self.key)
        self._write(conn, table, stmt, names, columns)

    def _pg_copy_upsert(
        self, conn: Connection, table: Table, names: list[str], columns: list[list[Any]]
    ) -> None:
        """PostgreSQL's bulk path: the rows are copied (``COPY … FROM STDIN``) into a
        temporary table shaped like the target, then merged with one ``INSERT … SELECT …
        ON CONFLICT``: a few statements per package instead of one per row."""
        preparer = conn.dialect.identifier_preparer
        target = preparer.format_table(table)
        staging = preparer.quote(f"govshare_stage_{self.task_id}")
        listed = ", ".join(preparer.quote(n) for n in names)
        cursor = conn.connection.cursor()
        try:
            cursor.execute(
                f"CREATE TEMP TABLE IF NOT EXISTS {staging} "
                f"(LIKE {target} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
            )
            values = [
                _bound(table.c[n], conn.dialect, col) for n, col in zip(names, columns, strict=True)
            ]
            rows: Any = zip(*values, strict=True)
            key_at = [names.index(k) for k in self.key if k in names]
            keys = list(zip(*[values[i] for i in key_at], strict=True))
            if len(set(keys)) < len(keys):
                # A query source may give a key twice; one INSERT … ON CONFLICT cannot
                # touch a row twice, so the last of them stands, as row by row.
                rows = list(dict(zip(keys, rows, strict=True)).values())
            with cursor.copy(f"COPY {staging} ({listed}) FROM STDIN") as copy:  # type: ignore[attr-defined]
                for row in rows:
                    copy.write_row(row)
            updates = [n for n in names if n not in self.key]
            conflict = ", ".join(preparer.quote(k) for k in self.key)
            action = (
                "DO UPDATE SET "
                + ", ".join(f"{preparer.quote(n)} = EXCLUDED.{preparer.quote(n)}" for n in updates)
                if updates
                else "DO NOTHING"
            )
            cursor.execute(
                f"INSERT INTO {target} ({listed}) SELECT {listed} FROM {staging} "
                f"ON CONFLICT ({conflict}) {action}"
            )
        except conn.dialect.loaded_dbapi.Error as exc:
            raise DBAPIError.instance("COPY", None, exc, conn.dialect.loaded_dbapi.Error) from exc
        finally:
            cursor.close()

    def _mysql_upsert(self, table: Table, names: list[str]) -> Any:
        """``INSERT … ON DUPLICATE KEY UPDATE``: PyMySQL sends the rows of one such
        statement as multi-row INSERTs, so a batch costs a few round trips."""
        stmt = mysql_insert(table)
        cols = [c for c in names if c not in self.key] or self.key[:1]
        return stmt.on_duplicate_key_update({c: stmt.inserted[c] for c in cols})

    def _write(
        self, conn: Connection, table: Table, stmt: Any, names: list[str], columns: list[list[Any]]
    ) -> None:
        dialect = conn.dialect
        if dialect.positional:
            # The driver's executemany straight from the columns: SQLAlchemy would build
            # and walk a dict per row for the same statement and the same bind processing.
            compiled = stmt.compile(dialect=dialect, column_keys=names)
            if compiled.positiontup == names:
                try:
                    values = [
                        _bound(table.c[n], dialect, col)
                        for n, col in zip(names, columns, strict=True)
                    ]
                except (TypeError, ValueError):
                    pass  # let SQLAlchemy raise its own error for the value below
                else:
                    rows: Iterator[tuple[Any, ...]] | list[tuple[Any, ...]] = zip(
                        *values, strict=True
                    )
                    if dialect.name != "sqlite":  # PEP 249 asks for a sequence
                        rows = list(rows)
                    _executemany(conn, compiled.string, rows)
                    return
        conn.execute(
            stmt, [dict(zip(names, row, strict=True)) for row in zip(*columns, strict=True)]
        )

    def checksum(self) -> tuple[int, str]:
        if self.table is None:
            return 0, f"{0:016x}"
        keys = [self.table.c[k] for k in self.key]
        raw = plain_results(self.engine, keys)
        with self.engine.connect() as conn:
            return keyset_checksum(
                stream_batches(conn, select(*keys), 50_000, raw=raw), len(self.key)
            )


def _values(column: pa.ChunkedArray) -> list[Any]:
    """A column's Python values; a dictionary-encoded one from its few distinct values
    (each value object made once and shared, not once per row)."""
    out: list[Any] = []
    for chunk in column.chunks:
        if not pa.types.is_dictionary(chunk.type):
            out += chunk.to_pylist()
            continue
        distinct = chunk.dictionary.to_pylist()
        indices = chunk.indices.to_pylist()
        if chunk.null_count:
            out += [None if i is None else distinct[i] for i in indices]
        else:
            out += map(distinct.__getitem__, indices)
    return out


def _sqlite_wal(dbapi_conn: Any, _record: Any) -> None:
    """A subscriber's SQLite database in WAL mode: its readers never hold up our writes,
    and ``synchronous=NORMAL`` is safe there (a power cut may only undo the last commits,
    which the applied sequence number undoes with them)."""
    cursor = dbapi_conn.cursor()
    try:
        mode = cursor.execute("PRAGMA journal_mode=WAL").fetchone()
        if mode and str(mode[0]).lower() == "wal":
            cursor.execute("PRAGMA synchronous=NORMAL")
    finally:
        cursor.close()


def _executemany(
    conn: Connection, sql: str, rows: Iterator[tuple[Any, ...]] | list[tuple[Any, ...]]
) -> None:
    """The driver's executemany in the connection's transaction (sqlite3 takes the rows
    as they are made); driver errors surface as SQLAlchemy's, as from ``execute``."""
    dbapi_error = conn.dialect.loaded_dbapi.Error
    cursor = conn.connection.cursor()
    try:
        cursor.executemany(sql, rows)  # type: ignore[arg-type]
    except dbapi_error as exc:
        raise DBAPIError.instance(sql, None, exc, dbapi_error) from exc
    finally:
        cursor.close()


def _bound(col: Column[Any], dialect: Any, values: list[Any]) -> list[Any]:
    """``values`` as SQLAlchemy would bind them for ``col`` (its type's bind processor)."""
    process = col.type.dialect_impl(dialect).bind_processor(dialect)
    return values if process is None else [process(v) for v in values]


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
