"""Writing packages into a subscriber's database: mapping, code conversion, upsert and
delete by key, and the applied sequence number in the same transaction."""

from __future__ import annotations

import datetime as dt
import decimal
import itertools
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
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
    Interval,
    LargeBinary,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
    Time,
    bindparam,
    cast,
    delete,
    event,
    inspect,
    select,
)
from sqlalchemy import types as sqltypes
from sqlalchemy.dialects import mssql, mysql, oracle
from sqlalchemy.dialects.mysql import insert as mysql_insert
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection
from sqlalchemy.exc import CompileError, DBAPIError, IntegrityError
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql import ClauseElement, Delete, Executable, Select
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.types import TypeEngine

from govshare.exchange.package import OP_COLUMN
from govshare.node import mysql_literals, native
from govshare.node.source import (
    KEY_PAGE_ROWS,
    MYSQL,
    KeyTally,
    keyset_checksum,
    make_engine,
    paged_key_strings,
    plain_results,
    stream_batches,
)

CURSOR_TABLE = "govshare_exchange_cursor"

# Engines without INSERT … ON CONFLICT or ON DUPLICATE KEY: rows are upserted with MERGE.
MERGE_ENGINES = ("oracle", "dm", "mssql")
# A text key column's length: its index needs a bound.
KEY_TEXT_LENGTH = 200
# From this many rows a PostgreSQL package is copied in bulk rather than upserted row by row.
COPY_THRESHOLD = 1000


def _sql_type(arrow_type: pa.DataType) -> Any:
    """The column type a created target table gets for a package column: the portable
    choice, with Oracle's, DM's and SQL Server's own where theirs would lose something."""
    sql_type = _portable_type(arrow_type)
    for name, specific in (("oracle", _oracle_type), ("dm", _dm_type), ("mssql", _mssql_type)):
        chosen = specific(arrow_type)
        if chosen is not None:
            sql_type = sql_type.with_variant(chosen, name)
    return sql_type


def _portable_type(arrow_type: pa.DataType) -> Any:
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
        # With a zone: PostgreSQL's timestamptz keeps the instant; the others store it as
        # UTC (``_target_values``).
        return DateTime(timezone=arrow_type.tz is not None).with_variant(
            mysql.DATETIME(fsp=6), *MYSQL
        )
    if pa.types.is_date(arrow_type):
        return Date()
    if pa.types.is_time(arrow_type):
        return Time().with_variant(mysql.TIME(fsp=6), *MYSQL)
    if pa.types.is_duration(arrow_type):
        # An interval type only PostgreSQL and Oracle have: elsewhere its text.
        return (
            Interval()
            .with_variant(Text(), "sqlite", "mssql", "dm")
            .with_variant(mysql.LONGTEXT(), *MYSQL)
        )
    if pa.types.is_binary(arrow_type):
        return LargeBinary().with_variant(mysql.LONGBLOB(), *MYSQL)
    return Text().with_variant(mysql.LONGTEXT(), *MYSQL)


def _target_values(arrow_type: pa.DataType, engine: str, values: list[Any]) -> list[Any]:
    """A column's values as the target's column (``_sql_type``) takes them: instants as
    UTC without a zone where the column has none, durations as text where there is no
    interval type, times of day as text on Oracle and DM (no TIME type)."""
    if pa.types.is_timestamp(arrow_type) and arrow_type.tz is not None and engine != "postgresql":
        return [None if v is None else v.astimezone(dt.UTC).replace(tzinfo=None) for v in values]
    if (pa.types.is_duration(arrow_type) and engine not in ("postgresql", "oracle")) or (
        pa.types.is_time(arrow_type) and engine in ("oracle", "dm")
    ):
        return [None if v is None else str(v) for v in values]
    return values


def _is_text(arrow_type: pa.DataType) -> bool:
    """Whether a package column becomes a text column (strings, and any type the portable
    mapping has no other column type for)."""
    return isinstance(_portable_type(arrow_type), Text)


def _oracle_type(arrow_type: pa.DataType) -> TypeEngine[Any] | None:
    """Oracle's column where SQLAlchemy's would lose something: its DATE keeps no
    fractions of a second (TIMESTAMP does), its FLOAT is a decimal NUMBER (BINARY_DOUBLE
    is the double the package holds), and CLOB is in the database character set, often
    ZHS16GBK, which lacks rare characters of names (NCLOB's national character set is
    Unicode). Integers (NUMBER(19)), dates, binary (BLOB) and booleans (SMALLINT, BOOLEAN
    from 23ai) are left to SQLAlchemy."""
    if pa.types.is_floating(arrow_type):
        return oracle.BINARY_DOUBLE()
    if pa.types.is_decimal(arrow_type):
        return oracle.NUMBER(38, arrow_type.scale)
    if pa.types.is_timestamp(arrow_type):
        return oracle.TIMESTAMP()
    if pa.types.is_time(arrow_type):
        return oracle.NVARCHAR2(32)  # no TIME type: the time of day as text
    if _is_text(arrow_type):
        return oracle.NCLOB()
    return None


def _dm_type(arrow_type: pa.DataType) -> TypeEngine[Any] | None:
    """达梦 DM's column, in the types its manual documents (Oracle-compatible names):
    TIMESTAMP, DOUBLE, DECIMAL(38, s) and CLOB. DM's character set (GB18030 or UTF-8,
    fixed when the database is initialised) holds every Chinese character, so no N
    types. Integers (BIGINT), DATE (a date only, unlike Oracle's) and BLOB are left to
    the dialect."""
    if pa.types.is_floating(arrow_type):
        return sqltypes.DOUBLE()
    if pa.types.is_decimal(arrow_type):
        return sqltypes.DECIMAL(38, arrow_type.scale)
    if pa.types.is_timestamp(arrow_type):
        return sqltypes.TIMESTAMP()
    if pa.types.is_time(arrow_type):
        return String(32)  # Oracle-compatible: the time of day as text
    if _is_text(arrow_type):
        return sqltypes.CLOB()
    return None


def _mssql_type(arrow_type: pa.DataType) -> TypeEngine[Any] | None:
    """SQL Server's column: SQLAlchemy's choices depend on the server version it has not
    seen yet when a table is created, and some lose data: DATETIME keeps 1/300 s
    (DATETIME2(6) keeps microseconds), TEXT and IMAGE are deprecated, and VARCHAR holds
    only the database's code page (NVARCHAR holds every character). Integers (BIGINT),
    doubles (FLOAT), decimals (NUMERIC(38, s)) and booleans (BIT) are left to SQLAlchemy."""
    if pa.types.is_timestamp(arrow_type):
        return mssql.DATETIME2(precision=6)
    if pa.types.is_date(arrow_type):
        return mssql.DATE()
    if pa.types.is_binary(arrow_type):
        return mssql.VARBINARY("max")
    if _is_text(arrow_type):
        return mssql.NVARCHAR()
    return None


def _key_text_type() -> Any:
    """A text key column: bounded, for its index, and Unicode where the engine's plain
    text is not (NVARCHAR2 on Oracle, NVARCHAR on SQL Server). On DM, String's
    VARCHAR2(n CHAR) counts characters, not bytes."""
    return (
        String(KEY_TEXT_LENGTH)
        .with_variant(oracle.NVARCHAR2(KEY_TEXT_LENGTH), "oracle")
        .with_variant(mssql.NVARCHAR(KEY_TEXT_LENGTH), "mssql")
    )


def cursor_table(metadata: MetaData) -> Table:
    """The bookkeeping table: per subscriber task, the last package applied."""
    return Table(
        CURSOR_TABLE,
        metadata,
        Column("task_id", Integer, primary_key=True, autoincrement=False),
        Column("last_seq", BigInteger, nullable=False),
    )


def target_table(
    metadata: MetaData, name: str, schema: pa.Schema, key: list[str], mapping: dict[str, str]
) -> Table:
    """The table created for packages of ``schema`` (columns renamed by ``mapping``)."""
    cols = [
        target_column(mapping.get(f.name, f.name), f.type, key)
        for f in schema
        if f.name != OP_COLUMN
    ]
    # utf8mb4 whatever the MySQL database's default: Chinese names outside the BMP.
    return Table(name, metadata, *cols, mysql_charset="utf8mb4")


def target_column(name: str, arrow_type: pa.DataType, key: list[str]) -> Column[Any]:
    """The column a created target table gets for values of ``arrow_type``."""
    is_key = name in key
    value_type = arrow_type.value_type if pa.types.is_dictionary(arrow_type) else arrow_type
    sql_type = _sql_type(value_type)
    if is_key and isinstance(sql_type, Text):
        sql_type = _key_text_type()
    if is_key and len(key) == 1 and isinstance(sql_type, BigInteger):
        # SQLite: INTEGER PRIMARY KEY is the row id itself, not a second index.
        sql_type = BigInteger().with_variant(Integer(), "sqlite")
    return Column(name, sql_type, primary_key=is_key, nullable=not is_key, autoincrement=False)


def key_delete(table: Table, key: list[str]) -> Delete:
    """Delete by key, executed with one ``k_<column>`` parameter set per deleted row."""
    return delete(table).where(*[table.c[k] == bindparam(f"k_{k}") for k in key])


def applied_seq_query(cursor: Table, task_id: int, dialect: str) -> Select[Any]:
    """The task's last applied package, locked until the package's transaction ends, so
    that two writers of one task cannot both apply the next package. SQLAlchemy writes
    no FOR UPDATE for SQL Server: its UPDLOCK table hint takes the same lock there.
    SQLite locks the whole database for the writing transaction anyway."""
    stmt = select(cursor.c.last_seq).where(cursor.c.task_id == task_id)
    if dialect == "sqlite":
        return stmt
    return stmt.with_for_update().with_hint(cursor, "WITH (UPDLOCK, ROWLOCK)", "mssql")


class MergeUpsert(Executable, ClauseElement):
    """Insert or update one row by key with MERGE, for the engines that have neither
    INSERT … ON CONFLICT nor ON DUPLICATE KEY (Oracle, DM, SQL Server). Executed once per
    row (executemany) with parameters named after the columns and typed as the columns,
    so that the driver binds a long text as the LOB it is written to."""

    inherit_cache = False  # compiled per package: a few statements, not worth a cache key

    def __init__(self, table: Table, names: list[str], key: list[str]) -> None:
        self.table = table
        self.names = names
        self.key = key
        self.updated = [n for n in names if n not in key]
        self.binds = {n: bindparam(n, type_=table.c[n].type, required=True) for n in names}


@compiles(MergeUpsert)
def _merge_unsupported(_element: MergeUpsert, compiler: SQLCompiler, **_kw: Any) -> str:
    raise CompileError(f"no MERGE upsert for {compiler.dialect.name}")


@compiles(MergeUpsert, "oracle")
@compiles(MergeUpsert, "dm")
def _oracle_merge(element: MergeUpsert, compiler: SQLCompiler, **kw: Any) -> str:
    """``MERGE INTO t USING DUAL ON (t.k = :k) …``: the parameters stand where the values
    go (INSERT and UPDATE SET), not in a ``SELECT :v … FROM DUAL`` list, where Oracle
    would take a text longer than 4000 bytes for a VARCHAR2 and refuse it."""
    quote = compiler.preparer.quote

    def bound(name: str) -> str:
        return compiler.process(element.binds[name], **kw)

    on = " AND ".join(f"t.{quote(k)} = {bound(k)}" for k in element.key)
    sql = f"MERGE INTO {compiler.preparer.format_table(element.table)} t USING DUAL ON ({on})"
    if element.updated:
        sets = ", ".join(f"t.{quote(n)} = {bound(n)}" for n in element.updated)
        sql += f" WHEN MATCHED THEN UPDATE SET {sets}"
    columns = ", ".join(quote(n) for n in element.names)
    values = ", ".join(bound(n) for n in element.names)
    return sql + f" WHEN NOT MATCHED THEN INSERT ({columns}) VALUES ({values})"


@compiles(MergeUpsert, "mssql")
def _mssql_merge(element: MergeUpsert, compiler: SQLCompiler, **kw: Any) -> str:
    """``MERGE INTO t WITH (HOLDLOCK) AS t USING (SELECT CAST(? AS type) AS c, …) AS s``.
    Each parameter is cast to its column's type: the driver types a NULL as text, which
    SQL Server would not convert to VARBINARY. HOLDLOCK keeps the key range locked
    between the match and the insert (MERGE alone can race into a duplicate key).
    SQL Server requires the closing semicolon."""
    quote = compiler.preparer.quote
    source = ", ".join(
        f"{compiler.process(cast(element.binds[n], element.table.c[n].type), **kw)} AS {quote(n)}"
        for n in element.names
    )
    on = " AND ".join(f"t.{quote(k)} = s.{quote(k)}" for k in element.key)
    sql = (
        f"MERGE INTO {compiler.preparer.format_table(element.table)} WITH (HOLDLOCK) AS t "
        f"USING (SELECT {source}) AS s ON {on}"
    )
    if element.updated:
        sets = ", ".join(f"{quote(n)} = s.{quote(n)}" for n in element.updated)
        sql += f" WHEN MATCHED THEN UPDATE SET {sets}"
    columns = ", ".join(quote(n) for n in element.names)
    values = ", ".join(f"s.{quote(n)}" for n in element.names)
    return sql + f" WHEN NOT MATCHED THEN INSERT ({columns}) VALUES ({values});"


class TargetWriter:
    """Applies one subscriber task's packages to its target table.

    The engine is used as it comes: whoever makes it sets its connections up
    (``target_engine`` for a node's SQLite target in WAL mode; the hub's shared-store
    engine sets its own pragmas). Adding a listener here raced other threads of the hub
    connecting through the same engine, which iterate its listeners ("deque mutated
    during iteration")."""

    def __init__(
        self,
        engine: Engine,
        task_id: int,
        config: dict[str, Any],
        source_key: list[str],
        *,
        fast_read: bool = False,
    ) -> None:
        """``fast_read``: the checksum (核对) may read the table's keys through
        connectorx where ``_native_keys`` allows it (the node's target databases)."""
        self.engine = engine
        self.fast_read = fast_read
        self.native: native.NativeReader | None = None
        self._keys_not_native = False  # the table, once found unfit for the native scan
        self.task_id = task_id
        self.table_name: str = config["table"]
        self.mapping: dict[str, str] = dict(config.get("mapping") or {})
        self.code_maps: dict[str, dict[str, str]] = dict(config.get("code_maps") or {})
        self.key = [self.mapping.get(k, k) for k in source_key]
        self.metadata = MetaData()
        self.cursor = cursor_table(self.metadata)
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
        self.table = target_table(self.metadata, self.table_name, schema, self.key, self.mapping)
        self.table.create(self.engine, checkfirst=True)
        return self.table

    def _rows(self, data: pa.Table) -> tuple[list[str], list[list[Any]], list[str]]:
        names = [n for n in data.column_names if n != OP_COLUMN]
        values: list[list[Any]] = []
        engine = self.engine.dialect.name
        for name in names:
            col = _target_values(data.schema.field(name).type, engine, _values(data.column(name)))
            if name in self.code_maps:
                table = self.code_maps[name]
                col = [table.get(str(v), v) if v is not None else None for v in col]
            values.append(col)
        ops = _values(data.column(OP_COLUMN))
        return [self.mapping.get(n, n) for n in names], values, ops

    def apply(
        self, seq: int, data: pa.Table, guard: Callable[[Connection], None] | None = None
    ) -> dict[str, int] | None:
        """Apply package ``seq``; None when it was applied before (nothing changes).
        ``guard`` runs in the package's transaction once it holds the task's cursor; what
        it raises undoes the package (the hub's check that the table is still current)."""
        table = self._ensure_table(data.schema)
        ops = _values(data.column(OP_COLUMN))
        inserted, deleted = ops.count("I"), ops.count("D")
        counts = {
            "inserted": inserted,
            "updated": len(ops) - inserted - deleted,
            "deleted": deleted,
        }
        literal_rows = self._literal_rows(table, data) if not deleted else None
        rows = self._python_rows(table, data, ops) if literal_rows is None else None
        # The refusal is told once the transaction is rolled back: nothing of it stays.
        with _refusals_told(seq), self.engine.begin() as conn:
            current = conn.scalar(applied_seq_query(self.cursor, self.task_id, conn.dialect.name))
            if current is not None and seq <= current:
                return None
            if guard is not None:
                guard(conn)
            if literal_rows is not None and not self._literal_upsert(conn, table, literal_rows):
                # The session reads backslashes literally: the driver escapes the rows.
                rows = self._python_rows(table, data, ops)
            known, upserts, deletes = rows or ([], [], [])
            if rows is not None and len(ops) > deleted:
                self._upsert(conn, table, known, upserts, fresh=inserted == len(ops))
            if deletes:
                conn.execute(key_delete(table, self.key), deletes)
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
        if conn.dialect.name in MYSQL:
            self._write(conn, table, self._mysql_upsert(table, names), names, columns)
            return
        if conn.dialect.name in MERGE_ENGINES:
            self._write(conn, table, MergeUpsert(table, names, self.key), names, columns)
            return
        if (
            conn.dialect.name == "postgresql"
            and conn.dialect.driver == "psycopg"
            and len(columns[0]) >= COPY_THRESHOLD
        ):
            self._pg_copy_upsert(conn, table, names, columns, fresh=fresh)
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
        self,
        conn: Connection,
        table: Table,
        names: list[str],
        columns: list[list[Any]],
        *,
        fresh: bool = False,
    ) -> None:
        """PostgreSQL's bulk path: the rows are copied (``COPY … FROM STDIN``) into a
        temporary table shaped like the target, then merged with one ``INSERT … SELECT …
        ON CONFLICT``: a few statements per package instead of one per row.

        ``fresh`` (keys the provider never sent before) into a table whose primary key is
        the task's key: copied straight into the target, which costs the database about
        half as much; should a key be there after all (a re-sync, a key given twice), the
        copy alone is undone (a savepoint) and the merge follows."""
        preparer = conn.dialect.identifier_preparer
        target = preparer.format_table(table)
        staging = preparer.quote(f"govshare_stage_{self.task_id}")
        listed = ", ".join(preparer.quote(n) for n in names)
        cursor = conn.connection.cursor()
        values = [
            _bound(table.c[n], conn.dialect, col) for n, col in zip(names, columns, strict=True)
        ]
        try:
            keyed = {c.name for c in table.primary_key.columns} == set(self.key)
            if fresh and keyed and _copied_unless_present(cursor, target, listed, values):
                return
            cursor.execute(
                f"CREATE TEMP TABLE IF NOT EXISTS {staging} "
                f"(LIKE {target} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
            )
            rows: Any = zip(*values, strict=True)
            key_at = [names.index(k) for k in self.key if k in names]
            keys = list(zip(*[values[i] for i in key_at], strict=True))
            if len(set(keys)) < len(keys):
                # A query source may give a key twice; one INSERT … ON CONFLICT cannot
                # touch a row twice, so the last of them stands, as row by row.
                rows = list(dict(zip(keys, rows, strict=True)).values())
            _copy_rows(cursor, staging, listed, rows)
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

    def _python_rows(
        self, table: Table, data: pa.Table, ops: list[str]
    ) -> tuple[list[str], list[list[Any]], list[dict[str, Any]]]:
        """The package as Python values: the target's columns it fills, their values for
        the rows to insert or update (column by column), and the keys to delete."""
        names, columns, _ = self._rows(data)
        known = [n for n in names if n in table.c]
        upserts = [columns[names.index(n)] for n in known]
        deletes: list[dict[str, Any]] = []
        if "D" in ops:
            keep = [i for i, op in enumerate(ops) if op != "D"]
            upserts = [[col[i] for i in keep] for col in upserts]
            deletes = [
                {f"k_{k}": _coerce(table.c[k], columns[names.index(k)][i]) for k in self.key}
                for i, op in enumerate(ops)
                if op == "D"
            ]
        return known, upserts, deletes

    def _literal_rows(self, table: Table, data: pa.Table) -> dict[str, pa.Array] | None:
        """Each target column's values as SQL literal text (``mysql_literals``), on a
        MySQL target through PyMySQL, for a package of inserts and updates whose columns
        it handles and that converts no codes; else None."""
        dialect = self.engine.dialect
        if dialect.name not in MYSQL or dialect.driver != "pymysql":
            return None
        names = [n for n in data.column_names if n != OP_COLUMN]
        if any(n in self.code_maps for n in names):
            return None
        literals: dict[str, pa.Array] = {}
        for name in names:
            if self.mapping.get(name, name) not in table.c:
                continue
            literal = mysql_literals.literal_column(data.column(name).combine_chunks())
            if literal is None:
                return None
            literals[self.mapping.get(name, name)] = literal
        return literals or None

    def _literal_upsert(
        self, conn: Connection, table: Table, literals: dict[str, pa.Array]
    ) -> bool:
        """``INSERT … ON DUPLICATE KEY UPDATE`` with the rows written out, a statement
        per megabyte, split where PyMySQL's ``executemany`` splits its own; False
        (nothing written) when the session does not read backslashes as escapes. The
        statements are UTF-8 bytes, which PyMySQL sends as they are; a session in another
        character set (an engine not made by ``make_engine``, which asks for utf8mb4) is
        given them as text, which PyMySQL encodes in its own."""
        from pymysql.cursors import RE_INSERT_VALUES

        driver = conn.connection.driver_connection
        if not mysql_literals.escapes_backslashes(driver):
            return False
        utf8 = mysql_literals.speaks_utf8(driver)
        names = list(literals)
        compiled = self._mysql_upsert(table, names).compile(dialect=conn.dialect, column_keys=names)
        order = list(compiled.positiontup or ())
        parts = RE_INSERT_VALUES.match(compiled.string)
        if sorted(order) != sorted(names) or parts is None or "%" in parts[1] + parts[3]:
            return False
        rows = mysql_literals.value_rows([literals[n] for n in order])
        cursor = conn.connection.cursor()
        dbapi_error = conn.dialect.loaded_dbapi.Error
        try:
            for sql in mysql_literals.statements(parts[1], rows, parts[3]):
                cursor.execute(sql if utf8 else sql.decode())
        except dbapi_error as exc:
            raise DBAPIError.instance(compiled.string, None, exc, dbapi_error) from exc
        finally:
            cursor.close()
        return True

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
        reader = self._native_keys(keys)
        if reader is not None:
            pages = paged_key_strings(reader, select(*keys), keys, KEY_PAGE_ROWS, self._fetch)
            return KeyTally.of(itertools.chain.from_iterable(pages))
        raw = plain_results(self.engine, keys)
        with self.engine.connect() as conn:
            return keyset_checksum(
                stream_batches(conn, select(*keys), 50_000, raw=raw), len(self.key)
            )

    def _native_keys(self, keys: list[Column[Any]]) -> native.NativeReader | None:
        """connectorx for the checksum's key scan, on a server database (PyMySQL decodes
        each key of a million-row table in Python: about 2 CPU-seconds) whose table is
        keyed by integer columns that are its primary key, so that each page is a range
        of that index. Not on a SQLite file: connectorx would read it in a process of its
        own, and the Python path reads SQLite about as fast."""
        if not self.fast_read or self.engine.dialect.name == "sqlite" or not native.available():
            return None
        if self.native is None and not self._keys_not_native:
            assert self.table is not None
            primary = [c.name for c in self.table.primary_key.columns]
            url = native.native_url(self.engine)
            if (
                url is None
                or primary != [k.name for k in keys]
                or not native.eligible(keys, keys, dialect=self.engine.dialect.name)
            ):
                self._keys_not_native = True
                return None
            self.native = native.NativeReader(url, self.engine)
        return self.native

    def _fetch(self, stmt: Select[Any]) -> list[tuple[Any, ...]]:
        with self.engine.connect() as conn:
            return [tuple(row) for row in conn.execute(stmt)]


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


def _copied_unless_present(cursor: Any, target: str, listed: str, values: list[list[Any]]) -> bool:
    """COPY the rows straight into ``target``; False (and nothing of it kept) when one
    of their keys is already there."""
    import psycopg.errors

    cursor.execute("SAVEPOINT govshare_fresh")
    try:
        _copy_rows(cursor, target, listed, zip(*values, strict=True))
    except psycopg.errors.UniqueViolation:
        cursor.execute("ROLLBACK TO SAVEPOINT govshare_fresh")
        return False
    cursor.execute("RELEASE SAVEPOINT govshare_fresh")
    return True


def _copy_rows(cursor: Any, table: str, listed: str, rows: Iterable[Sequence[Any]]) -> None:
    """``COPY table (listed) FROM STDIN`` of ``rows`` through psycopg's cursor."""
    with cursor.copy(f"COPY {table} ({listed}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


def target_engine(url: str) -> Engine:
    """A subscriber's target database: a SQLite file in WAL mode (``_sqlite_wal``), a
    MySQL session in strict mode (``_mysql_strict``), set up before any thread can
    connect through it."""
    engine = make_engine(url)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_wal)
    elif engine.dialect.name in MYSQL:
        event.listen(engine, "connect", _mysql_strict)
    return engine


def _mysql_strict(dbapi_conn: Any, _record: Any) -> None:
    """A MySQL target refuses what its columns cannot hold. A server in the lenient mode
    (``sql_mode`` without STRICT_*, as older installations and many my.cnf files have
    it) would write 王? for 王𠀀 into a GBK table, cut a value to its column's length and
    clip a number to its column's range, each with only a warning that nobody reads."""
    cursor = dbapi_conn.cursor()
    try:
        cursor.execute(
            "SET SESSION sql_mode = "
            "CONCAT_WS(',', NULLIF(@@SESSION.sql_mode, ''), 'STRICT_ALL_TABLES')"
        )
    finally:
        cursor.close()


class TargetRefused(ValueError):
    """The target database refused a package's values (too long, out of range, not in
    its character set): the package is not applied and is asked for again later."""


# MySQL's errors for a value its column cannot hold (strict mode) and PostgreSQL's
# SQLSTATEs of the same (class 22, data exception), with what they mean to an operator.
_MYSQL_REFUSALS = {
    1264: "数值超出目标列的范围",
    1265: "值被截断, 不合目标列的类型",
    1292: "值不合目标列的类型",
    1366: "值不合目标列的类型或字符集 (如 GBK 表收不下生僻字)",
    1406: "值超过目标列的长度",
}
_PG_REFUSALS = {
    "22001": "值超过目标列的长度",
    "22003": "数值超出目标列的范围",
    "22P05": "目标库的字符集容纳不了其中的字符",
    "22021": "目标库的字符集容纳不了其中的字符",
}


@contextmanager
def _refusals_told(seq: int) -> Iterator[None]:
    """A database's refusal of package ``seq``'s values raised as ``TargetRefused``."""
    try:
        yield
    except DBAPIError as exc:
        reason = refusal(exc)
        if reason is None:
            raise
        raise TargetRefused(
            f"目标库拒收第 {seq} 号包: {reason}。整包未写入, 调整目标表后自动重收"
        ) from exc


def refusal(exc: DBAPIError) -> str | None:
    """What the database said about a value it would not store, in Chinese, with its
    own words after it, the value itself left out (it is someone's data, and the message
    goes to the hub and the console); None for any other error."""
    orig = exc.orig
    args = getattr(orig, "args", ())
    if args and isinstance(args[0], int) and args[0] in _MYSQL_REFUSALS:
        said = str(args[1]) if len(args) > 1 else ""
        said = re.sub(r"value: '.*' for column", "value for column", said, flags=re.S)
        return f"{_MYSQL_REFUSALS[args[0]]} (数据库原文: {args[0]} {said})"
    sqlstate = getattr(orig, "sqlstate", None)
    if isinstance(sqlstate, str) and sqlstate.startswith("22"):
        diag = getattr(orig, "diag", None)
        said = str(getattr(diag, "message_primary", None) or "")
        said = re.sub(r"byte sequence [0-9a-fx ]+", "byte sequence …", said)
        column = re.search(r'column "?([^":]+)"?:', str(getattr(diag, "context", None) or ""))
        where = f", 列 {column.group(1)}" if column else ""
        lead = _PG_REFUSALS.get(sqlstate, "目标库拒收其中的值")
        return f"{lead}{where} (数据库原文: {sqlstate} {said})"
    return None


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
