"""Reading a department's business database: table structures, changed rows, keys.

The business database is only ever read (SELECT); the node never writes to a source.
"""

from __future__ import annotations

import collections
import contextlib
import datetime as dt
import decimal
import functools
import hashlib
import itertools
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from operator import itemgetter
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import structlog
from sqlalchemy import (
    Engine,
    Float,
    MetaData,
    String,
    Table,
    and_,
    cast,
    column,
    create_engine,
    inspect,
    literal,
    or_,
    select,
    text,
    tuple_,
)
from sqlalchemy.dialects import mssql, oracle
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql import ColumnElement, Select

from govshare.node import native
from govshare.rules.masking import MaskingRule, mask, mask_column

log = structlog.get_logger()

KEY_SEPARATOR = "\x1f"
# Keys a page of a native key scan reads: each page is a query (and, for connectorx, a
# connection) of its own, and a million integer keys are 8 MB.
KEY_PAGE_ROWS = 200_000
# SQLAlchemy's names of the MySQL family: a ``mariadb+pymysql://`` URL says "mariadb".
MYSQL = ("mysql", "mariadb")


class ZeroDateError(ValueError):
    """A MySQL zero date (0000-00-00, or a date with a zero month or day) in a source row:
    no calendar date to send, so the batch is refused, naming where it is."""


# MySQL's result type codes of DATE, DATETIME, TIMESTAMP and NEWDATE columns.
MYSQL_DATE_TYPES = frozenset({7, 10, 12, 14})

# Engines whose SQL has no row-value comparison (``(a, b) > (x, y)``): Oracle, 达梦 DM
# (dialect name "dm") and SQL Server. Their keyset conditions are spelled out.
NO_ROW_VALUES = ("oracle", "dm", "mssql")


def make_engine(url: str) -> Engine:
    kwargs: dict[str, Any] = {"pool_pre_ping": True}
    if url.startswith("sqlite"):
        kwargs["connect_args"] = {"timeout": 30}
    if url.startswith(("mysql", "mariadb")):
        # Without it the connection speaks latin1 or 3-byte utf8 on many servers, and a
        # name written with a character outside the BMP (𠀀, common in rare given names)
        # is refused or turned into '?'.
        kwargs["connect_args"] = {"charset": "utf8mb4"}
        if "+pymysql" in url:
            # Positional %s parameters: a target's rows go to PyMySQL's executemany as
            # tuples (which it sends as multi-row INSERTs) instead of a dict per row
            # that SQLAlchemy builds and PyMySQL walks value by value.
            kwargs["paramstyle"] = "format"
    return create_engine(url, **kwargs)


def _kind(python_type: type | None) -> str:
    if python_type is None:
        return "str"
    if issubclass(python_type, bool):
        return "bool"
    if issubclass(python_type, int):
        return "int"
    if issubclass(python_type, float):
        return "float"
    if issubclass(python_type, decimal.Decimal):
        return "decimal"
    if issubclass(python_type, dt.datetime):
        return "datetime"
    if issubclass(python_type, dt.date):
        return "date"
    if issubclass(python_type, bytes):
        return "bytes"
    return "str"


def describe(engine: Engine) -> dict[str, Any]:
    """Every table's columns (name, kind, length, nullable, comment) and primary key."""
    insp = inspect(engine)
    out: dict[str, Any] = {}
    for name in insp.get_table_names():
        cols = []
        for c in insp.get_columns(name):
            try:
                py = float if isinstance(c["type"], Float) else c["type"].python_type
            except NotImplementedError:
                py = None
            cols.append(
                {
                    "name": c["name"],
                    "type": str(c["type"]),
                    "kind": _kind(py),
                    "length": getattr(c["type"], "length", None),
                    "nullable": bool(c.get("nullable", True)),
                    "comment": c.get("comment") or "",
                }
            )
        out[name] = {
            "columns": cols,
            "key": insp.get_pk_constraint(name).get("constrained_columns", []),
        }
    return out


def key_string(values: tuple[Any, ...] | list[Any]) -> str:
    return KEY_SEPARATOR.join("" if v is None else str(v) for v in values)


def key_strings(rows: Sequence[Sequence[Any]], key_idx: Sequence[int]) -> list[str]:
    """``key_string`` of each row's key columns (at ``key_idx``), for a whole batch."""
    if len(key_idx) == 1:
        # One key column (the usual case): the join of one value is that value's text.
        return ["" if v is None else str(v) for v in map(itemgetter(key_idx[0]), rows)]
    return [key_string([row[i] for i in key_idx]) for row in rows]


def row_hash(values: tuple[Any, ...]) -> int:
    """A signed 64-bit hash of a whole row (fits SQLite's INTEGER), for snapshot mode."""
    digest = hashlib.blake2b(repr(values).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def key_hash(values: tuple[Any, ...] | list[Any]) -> int:
    return _key_string_hash(key_string(values))


def _key_string_hash(key: str) -> int:
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big")


def _key_hash_sum(keys: Iterable[str]) -> int:
    """The sum of the keys' ``_key_string_hash`` (not reduced), without a Python call
    per key: the same figure in about 60 % of the time."""
    blake2b, from_bytes = hashlib.blake2b, int.from_bytes
    return sum(from_bytes(blake2b(k.encode(), digest_size=8).digest(), "big") for k in keys)


def stream_batches(
    conn: Connection, stmt: Select[Any], size: int, *, raw: bool
) -> Iterator[Sequence[Sequence[Any]]]:
    """The rows of ``stmt``, ``size`` at a time, streamed. ``raw``: no selected column's
    type converts results, so on SQLite (whose cursor steps as rows are fetched) the
    driver's own rows are given, without SQLAlchemy building a Row for each."""
    if raw and conn.dialect.name == "sqlite":
        result = conn.execute(stmt)
        with driver_errors_told(conn):
            while batch := result.cursor.fetchmany(size):
                yield batch
        result.close()
        return
    if raw and conn.dialect.name == "postgresql" and conn.dialect.driver == "psycopg":
        with driver_errors_told(conn):
            yield from _pg_server_side(conn, stmt, size)
        return
    if raw and conn.dialect.name in MYSQL and conn.dialect.driver == "pymysql":
        with driver_errors_told(conn):
            yield from _mysql_unbuffered(conn, stmt, size)
        return
    result = conn.execution_options(stream_results=True, yield_per=size).execute(stmt)
    yield from result.partitions(size)


@contextlib.contextmanager
def driver_errors_told(conn: Connection) -> Iterator[None]:
    """The driver's own errors, from its cursor used directly, raised as SQLAlchemy
    raises them through its own (``DBAPIError``, e.g. ``DataError``): the node's agent
    files those as the task's database error, where a bare driver error escaped it."""
    error = conn.dialect.loaded_dbapi.Error
    try:
        yield
    except error as exc:
        raise DBAPIError.instance(None, None, exc, error) from exc


def _pg_server_side(
    conn: Connection, stmt: Select[Any], size: int
) -> Iterator[Sequence[Sequence[Any]]]:
    """A PostgreSQL server-side cursor of psycopg's own, fetched ``size`` rows at a time:
    SQLAlchemy's streamed rows cost about six times as much per key in a key scan. (Not
    SQLAlchemy's cursor fetched directly: it has read ahead the rows it buffers.)"""
    compiled = _for_driver(stmt, conn)
    driver = conn.connection.driver_connection
    assert driver is not None
    with driver.cursor(name=f"govshare_scan_{id(stmt):x}") as cursor:
        cursor.itersize = size
        cursor.execute(compiled.string, compiled.params)
        while batch := cursor.fetchmany(size):
            yield batch


def _mysql_unbuffered(
    conn: Connection, stmt: Select[Any], size: int
) -> Iterator[Sequence[Sequence[Any]]]:
    """PyMySQL's unbuffered cursor, rows as the driver gives them (what SQLAlchemy's
    streamed rows would hold, at a fraction of the cost per key)."""
    import pymysql.cursors

    compiled = _for_driver(stmt, conn)
    params: Any = (
        tuple(compiled.params[name] for name in compiled.positiontup or ())
        if conn.dialect.positional
        else compiled.params
    )
    driver = conn.connection.driver_connection
    assert driver is not None
    cursor = driver.cursor(pymysql.cursors.SSCursor)
    try:
        cursor.execute(compiled.string, params)
        while batch := cursor.fetchmany(size):
            yield batch
    finally:
        cursor.close()


def _for_driver(stmt: Select[Any], conn: Connection) -> Any:
    """``stmt`` compiled for the driver's own cursor: a list parameter (a grant's
    ``in`` row filter) written out as one parameter per value, which SQLAlchemy's own
    execution does when it runs a statement and a bare compile leaves to it."""
    return stmt.compile(dialect=conn.dialect, compile_kwargs={"render_postcompile": True})


def plain_results(engine: Engine, columns: Iterable[Any]) -> bool:
    """True when SQLAlchemy would hand these columns' values over as the driver gives them."""
    dialect = engine.dialect
    try:
        return all(
            c.type.dialect_impl(dialect).result_processor(dialect, None) is None for c in columns
        )
    except TypeError:
        # PostgreSQL's NUMERIC asks for the driver's type code, only known from a result:
        # SQLAlchemy's rows then, which convert as the column's type says.
        return False


class KeyTally:
    """Passes key strings through while counting them and summing their ``key_hash``
    (mod 2^64): the key-set checksum of whatever was read, from a scan made for
    something else (the deletion check)."""

    def __init__(self, keys: Iterable[str]) -> None:
        self._keys = iter(keys)
        self.count = 0
        self.total = 0

    def __iter__(self) -> Iterator[str]:
        while chunk := list(itertools.islice(self._keys, 50_000)):
            self.count += len(chunk)
            self.total = (self.total + _key_hash_sum(chunk)) % (1 << 64)
            yield from chunk

    def checksum(self) -> tuple[int, str]:
        return self.count, f"{self.total:016x}"

    @classmethod
    def of(cls, keys: Iterable[str]) -> tuple[int, str]:
        """The key-set checksum of ``keys``, read through for it alone."""
        tally = cls(keys)
        collections.deque(tally, maxlen=0)
        return tally.checksum()


def _arrow_key_strings(table: pa.Table) -> list[str]:
    """``key_string`` of each row of a page of integer key columns read into Arrow."""
    # A NULL in a key column is written as nothing, as ``key_string`` writes it.
    texts = [pc.fill_null(pc.cast(column, pa.string()), "") for column in table.columns]
    joined = texts[0] if len(texts) == 1 else pc.binary_join_element_wise(*texts, KEY_SEPARATOR)
    strings: list[str] = joined.to_pylist()
    return strings


def keyset_checksum(batches: Iterable[Sequence[Sequence[Any]]], width: int) -> tuple[int, str]:
    """Row count and order-independent checksum (the sum of every key's ``key_hash``,
    mod 2^64) of keys ``width`` columns wide, read a batch at a time."""
    count, total = 0, 0
    positions = range(width)
    for batch in batches:
        count += len(batch)
        total = (total + _key_hash_sum(key_strings(batch, positions))) % (1 << 64)
    return count, f"{total:016x}"


class SourceReader:
    """Reads one provider task's table or query in keyset-ordered batches."""

    def __init__(
        self,
        engine: Engine,
        config: dict[str, Any],
        *,
        table: Table | None = None,
        fast_read: bool = True,
    ) -> None:
        """``table``: the source table's columns and types when they are known already
        (a test compiling the reader's SQL for a server it cannot reach); otherwise the
        table named in ``config`` is reflected from the database. ``fast_read``: plain
        batches may be read straight into Arrow where ``native`` allows it."""
        self.engine = engine
        self.config = config
        self.key: list[str] = list(config["key"])
        if config.get("table"):
            reflected = (
                table
                if table is not None
                else Table(config["table"], MetaData(), autoload_with=engine)
            )
            for c in reflected.columns:
                if isinstance(c.type, Float):
                    # MySQL's DOUBLE and FLOAT reflect as Decimal-returning types, which
                    # round 0.1 + 0.2 to ten places: the driver's float is the value.
                    c.type.asdecimal = False
            every = [c.name for c in reflected.columns]
            self.relation: Any = reflected
        else:
            query = config["query"]
            with engine.connect() as conn:
                every = list(conn.execute(text(columns_probe(engine.dialect.name, query))).keys())
            self.relation = text(query).columns(*[column(n) for n in every]).subquery("q")
        names = config.get("columns") or every
        missing = [k for k in self.key if k not in names]
        if missing:
            raise ValueError(f"key columns not among the columns: {missing}")
        unknown = [c["column"] for c in config.get("row_filter") or [] if c["column"] not in every]
        if unknown:
            raise ValueError(f"row filter columns not in the source: {unknown}")
        self.columns: list[str] = list(names)
        # A task made for a grant: only the granted rows are read, and masked columns
        # leave the node masked (a key scan sees the same rows, so rows leaving the
        # scope are found and deleted like rows deleted at the source).
        self.scope: list[ColumnElement[bool]] = [
            _condition(self._col(c["column"]), c["op"], c["value"], engine.dialect.name)
            for c in config.get("row_filter") or []
        ]
        self.masks: list[tuple[int, MaskingRule, Callable[[Any], Any]]] = [
            (self.columns.index(name), MaskingRule(rule), functools.partial(mask, rule))
            for name, rule in (config.get("masking") or {}).items()
        ]
        self.cursor_column: str | None = (
            config.get("cursor_column") if config.get("mode") == "incremental" else None
        )
        self.soft_column: str | None = (
            config.get("soft_delete_column")
            if config.get("delete_detection") == "soft_delete"
            else None
        )
        # The driver's own rows are what SQLAlchemy would give us when no column type
        # converts its results (SQLite's DATE/DATETIME/NUMERIC do): skip its Row objects.
        self.raw_rows = plain_results(engine, [self._col(c) for c in self.columns])
        self.raw_keys = plain_results(engine, [self._col(k) for k in self.key])
        url = native.native_url(engine) if fast_read and native.available() else None
        self.native: native.NativeReader | None = (
            native.NativeReader(
                url,
                engine,
                {
                    c: typed
                    for c in self.columns
                    if (typed := native.exact_decimal(self._col(c))) is not None
                },
            )
            if url is not None
            and config.get("table")
            and _plain_filter_values(config.get("row_filter") or [])
            and native.eligible(
                [self._col(c) for c in self.columns],
                self._order(),
                dialect=engine.dialect.name,
            )
            else None
        )
        if self.native is not None:
            log.info("native reader on for this source (connectorx)", table=config["table"])

    def close(self) -> None:
        """Stop the native reader's process, if it has one (a SQLite source)."""
        if self.native is not None:
            self.native.close()

    def _col(self, name: str) -> Any:
        return self.relation.c[name]

    def _order(self) -> list[Any]:
        lead = [self._col(self.cursor_column)] if self.cursor_column else []
        return lead + [self._col(k) for k in self.key]

    def batches(
        self, cursor: list[Any] | None, batch_rows: int
    ) -> Iterator[tuple[list[tuple[Any, ...]], list[Any]]]:
        """Rows after ``cursor`` in (cursor column, key) order, a batch at a time, each
        with the cursor value that follows it."""
        idx = [self.columns.index(c.name) for c in self._order()]
        while True:
            rows = self._fetch(self.page(cursor, batch_rows))
            if not rows:
                return
            cursor = [rows[-1][i] for i in idx]
            if self.masks:
                rows = [self._masked(row) for row in rows]
            yield rows, _jsonable(cursor)
            if len(rows) < batch_rows:
                return

    def next_batch(
        self, cursor: list[Any] | None, batch_rows: int, *, columnar: bool = False
    ) -> tuple[list[tuple[Any, ...]] | pa.Table, list[Any]] | None:
        """The first of ``batches``; ``columnar``: the caller takes an Arrow table too (a
        plain batch, sent as read), which the native reader gives when it can."""
        if columnar and self.native is not None:
            table = self.native.read(self.page(cursor, batch_rows), cursor)
            if table is not None:
                if not len(table):
                    return None
                after = [table.column(c.name)[-1].as_py() for c in self._order()]
                return (self._masked_table(table) if self.masks else table), after
        return next(self.batches(cursor, batch_rows), None)

    def _masked_table(self, table: pa.Table) -> pa.Table:
        """A native page with the grant's masks applied, column by column: the values
        and the Arrow types the Python path's masked rows give (in Arrow's kernels where
        ``mask_column`` can, else value by value)."""
        for i, rule, fn in self.masks:
            name = self.columns[i]
            column = table.column(name).combine_chunks()
            masked = mask_column(rule, column)
            if masked is None:
                masked = pa.array([fn(v) for v in column.to_pylist()])
            table = table.set_column(table.schema.get_field_index(name), name, masked)
        return table

    def batch_column(self, rows: list[tuple[Any, ...]] | pa.Table, name: str) -> list[Any]:
        """One column's values of a batch, as Python values, whichever form it came in."""
        if isinstance(rows, pa.Table):
            values: list[Any] = rows.column(name).to_pylist()
            return values
        return list(map(itemgetter(self.columns.index(name)), rows))

    def batch_keys(self, rows: list[tuple[Any, ...]] | pa.Table) -> list[str]:
        """``key_string`` of each row of a batch."""
        if not isinstance(rows, pa.Table):
            return key_strings(rows, [self.columns.index(k) for k in self.key])
        keys = list(zip(*[self.batch_column(rows, k) for k in self.key], strict=True))
        return key_strings(keys, range(len(self.key)))

    def page(self, cursor: list[Any] | None, batch_rows: int) -> Select[Any]:
        """The statement reading the ``batch_rows`` rows after ``cursor``: in scope, in
        (cursor column, key) order, so that the next page starts where this one ends."""
        order = self._order()
        stmt: Select[Any] = (
            select(*[self._col(c) for c in self.columns])
            .where(*self.scope)
            .order_by(*order)
            .limit(batch_rows)
        )
        if cursor is not None:
            stmt = stmt.where(keyset_after(self.engine.dialect.name, order, cursor))
        return stmt

    def rows_for_keys(
        self, keys: Sequence[tuple[str | None, ...]], chunk: int = 2000
    ) -> list[tuple[Any, ...]]:
        """The rows (in scope, masked) whose key is one of ``keys``, given as text as a
        change log writes them; a key the table no longer has is simply not among them."""
        cols = [self._col(k) for k in self.key]
        values = [self._typed(key) for key in keys]
        rows: list[tuple[Any, ...]] = []
        for start in range(0, len(values), chunk):
            part = values[start : start + chunk]
            match = cols[0].in_([v[0] for v in part]) if len(cols) == 1 else tuple_(*cols).in_(part)
            rows += self._fetch(
                select(*[self._col(c) for c in self.columns]).where(*self.scope, match)
            )
        return [self._masked(row) for row in rows] if self.masks else rows

    def _typed(self, key: tuple[str | None, ...]) -> tuple[Any, ...]:
        """A logged key's text as the key columns' Python values, so the database
        compares it with the column as it is (and uses the key's index)."""
        return tuple(
            _from_text(self._key_kinds[name], value)
            for name, value in zip(self.key, key, strict=True)
        )

    @functools.cached_property
    def _key_kinds(self) -> dict[str, type | None]:
        return {name: _python_type(self._col(name)) for name in self.key}

    def _fetch(self, stmt: Select[Any]) -> list[tuple[Any, ...]]:
        with self.engine.connect() as conn:
            result = conn.execute(stmt)
            dates = self._mysql_date_positions(result)
            rows: list[tuple[Any, ...]]
            if self.raw_rows:
                with driver_errors_told(conn):
                    rows = list(result.cursor.fetchall())
                result.close()
            else:
                rows = [tuple(r) for r in result]
        if dates:
            self._refuse_zero_dates(rows, dates)
        return rows

    def _mysql_date_positions(self, result: Any) -> list[int]:
        """Positions of the DATE/DATETIME/TIMESTAMP columns of a MySQL result (from the
        driver's description, so a query's columns are known as well as a table's)."""
        if self.engine.dialect.name not in MYSQL or result.cursor is None:
            return []
        return [
            i for i, d in enumerate(result.cursor.description or ()) if d[1] in MYSQL_DATE_TYPES
        ]

    def _refuse_zero_dates(self, rows: list[tuple[Any, ...]], positions: list[int]) -> None:
        """MySQL stores 0000-00-00 (and dates with a zero month or day) where a business
        system sent no date; PyMySQL gives them as text. No calendar date stands behind
        them, and guessing one (or NULL) would change the department's data unseen, so
        the batch is refused, naming the table, column and row, for the department to
        correct; a task may instead read through a query that maps them to NULL."""
        key_idx = [self.columns.index(k) for k in self.key]
        for row in rows:
            for i in positions:
                value = row[i]
                if isinstance(value, str):
                    where = ", ".join(
                        f"{k}={row[j]}" for k, j in zip(self.key, key_idx, strict=True)
                    )
                    source = self.config.get("table") or "查询 (query)"
                    raise ZeroDateError(
                        f"源表 {source} 的列 {self.columns[i]} 在主键 {where} 的行中是 MySQL "
                        f"零日期 {value!r}, 没有对应的日历日期, 本批未发送。请在业务库中改正"
                        f"该值, 或改用查询并以 NULLIF({self.columns[i]}, '{value}') 把它转为 NULL。"
                    )

    def _masked(self, row: tuple[Any, ...]) -> tuple[Any, ...]:
        values = list(row)
        for i, _, fn in self.masks:
            values[i] = fn(values[i])
        return tuple(values)

    def live_keys_query(self) -> Select[Any]:
        """The key scan: the keys of every live row (in scope, not soft-deleted)."""
        stmt = select(*[self._col(k) for k in self.key]).where(*self.scope)
        if self.soft_column:
            # A row without a mark (NULL) is live, as ``is_soft_deleted`` reads it; a bare
            # ``!=`` is not true for NULL and would leave it out of the reconciliation.
            mark = self._col(self.soft_column)
            stmt = stmt.where(
                or_(mark.is_(None), mark != self.config.get("soft_delete_value", "1"))
            )
        return stmt

    def live_key_batches(self, size: int = 50_000) -> Iterator[Sequence[Sequence[Any]]]:
        """The keys of every live row, ``size`` rows at a time (streamed)."""
        with self.engine.connect() as conn:
            yield from stream_batches(conn, self.live_keys_query(), size, raw=self.raw_keys)

    def live_keys(self) -> Iterator[tuple[Any, ...]]:
        for batch in self.live_key_batches():
            yield from map(tuple, batch)

    def live_key_strings(self) -> Iterator[str]:
        """``key_string`` of every live row's key."""
        if self.native is not None and self.soft_column is None:
            for strings in self._paged_key_strings(KEY_PAGE_ROWS):
                yield from strings
            return
        positions = range(len(self.key))
        for batch in self.live_key_batches():
            yield from key_strings(batch, positions)

    def _paged_key_strings(self, size: int) -> Iterator[list[str]]:
        assert self.native is not None
        yield from paged_key_strings(
            self.native, self.live_keys_query(), [self._col(k) for k in self.key], size, self._fetch
        )

    def is_soft_deleted(self, row: tuple[Any, ...]) -> bool:
        if self.soft_column is None:
            return False
        return str(row[self.columns.index(self.soft_column)]) == str(
            self.config.get("soft_delete_value", "1")
        )

    def checksum(self) -> tuple[int, str]:
        """Row count and order-independent key-hash checksum (mod 2^64) of the live rows."""
        return KeyTally.of(self.live_key_strings())


def columns_probe(dialect: str, query: str) -> str:
    """A statement giving a query source's column names and no rows. Oracle and DM know
    no ``LIMIT`` and no ``AS`` before a table alias, SQL Server no ``LIMIT``; a false
    condition is understood by all three (and the planner does not run the query)."""
    if dialect in NO_ROW_VALUES:
        return f"SELECT * FROM ({query}) q WHERE 1 = 0"
    return f"SELECT * FROM ({query}) AS q LIMIT 0"


# The text a row-filter column is compared as. SQLAlchemy's plain String is VARCHAR(max)
# on SQL Server, which turns Chinese outside the database's code page into '?': there it
# is NVARCHAR(max). Oracle's CAST needs a length, which SQLAlchemy 2.0's Oracle dialect
# leaves out (2.1's adds 4000): it is given.
FILTER_TEXT = (
    String().with_variant(mssql.NVARCHAR(), "mssql").with_variant(oracle.VARCHAR2(4000), "oracle")
)


def _plain_filter_values(row_filter: Sequence[dict[str, Any]]) -> bool:
    """Whether a grant's row filter may go into the native read's SQL, where values are
    written out as literals: only values of letters, digits and a few marks (division
    codes, names of districts, status codes) — anything else, a quote or a backslash
    among them, leaves the source on the Python path, which binds them as parameters."""
    for condition in row_filter:
        value = condition.get("value")
        for v in value if isinstance(value, list) else [value]:
            if not isinstance(v, str) or not _PLAIN_VALUE.fullmatch(v):
                return False
    return True


_PLAIN_VALUE = re.compile(r"[\w.:· -]*")


def _condition(col: Any, op: str, value: str | list[str], dialect: str = "") -> ColumnElement[bool]:
    """A row-filter condition; values are compared as text, as the catalog states them."""
    as_text = cast(col, FILTER_TEXT)
    if op == "in":
        return as_text.in_(list(value))
    if op == "prefix":
        if dialect == "mssql":
            return _mssql_prefix(as_text, str(value))
        return as_text.startswith(str(value), autoescape=True)
    return as_text == str(value)


def _mssql_prefix(as_text: ColumnElement[Any], prefix: str) -> ColumnElement[bool]:
    """``LIKE 'prefix%'`` on SQL Server, whose LIKE also reads ``[…]`` as a set of
    characters: ``[`` is escaped too, besides ``%``, ``_`` and the escape character."""
    escaped = "".join(f"/{ch}" if ch in "/%_[" else ch for ch in prefix)
    return as_text.startswith(escaped, escape="/")


def keyset_after(dialect: str, order: list[Any], cursor: list[Any]) -> ColumnElement[bool]:
    """``(order columns) > (cursor)``, in a form a database of ``dialect`` can seek an
    index with.

    SQLite compares row values correctly but filters its index range slowly with
    them, and MariaDB does not seek an index with them at all; there the comparison
    is spelled out (``a > x OR (a = x AND b > y)``, the same rows for a cursor without
    NULLs) behind a leading ``a >= x`` for the index.

    Oracle, DM and SQL Server have no row-value ``>`` at all: there it is always
    spelled out (see ``_after_without_row_values``).
    """
    if dialect in NO_ROW_VALUES:
        return _after_without_row_values(order, cursor)
    if dialect not in ("sqlite", *MYSQL) or len(order) == 1 or any(v is None for v in cursor):
        return tuple_(*order) > tuple_(*cursor)
    return _spelled_out(order, cursor)


def paged_key_strings(
    reader: native.NativeReader,
    keys: Select[Any],
    order: list[Any],
    size: int,
    fetch: Callable[[Select[Any]], list[tuple[Any, ...]]],
) -> Iterator[list[str]]:
    """The ``key_string`` of every row ``keys`` selects (its columns: the key, ``order``),
    a page of ``size`` at a time in key order, each page read natively where ``reader``
    can (its integers made text by Arrow, not a Python object per key) and through
    ``fetch`` (the Python path) where it cannot. A row that is there throughout the scan
    is in exactly one page, as in one streamed statement; rows added or removed
    meanwhile may or may not be, as there."""
    dialect = reader.engine.dialect.name
    cursor: list[Any] | None = None
    while True:
        stmt = keys.order_by(*order).limit(size)
        if cursor is not None:
            stmt = stmt.where(keyset_after(dialect, order, cursor))
        table = reader.read(stmt, cursor)
        if table is not None:
            found = len(table)
            strings = _arrow_key_strings(table) if found else []
            cursor = [table.column(i)[-1].as_py() for i in range(len(order))] if found else None
        else:
            rows = fetch(stmt)
            found = len(rows)
            strings = key_strings(rows, range(len(order)))
            cursor = list(rows[-1]) if found else None
        if strings:
            yield strings
        if found < size:
            return


def _spelled_out(order: list[Any], cursor: list[Any]) -> ColumnElement[bool]:
    """``(order) > (cursor)`` as ``a >= x AND (a > x OR (a = x AND b > y) …)``."""
    alternatives = [
        and_(*[c == v for c, v in zip(order[:i], cursor, strict=False)], order[i] > cursor[i])
        for i in range(len(order))
    ]
    return and_(order[0] >= cursor[0], or_(*alternatives))


def _after_without_row_values(order: list[Any], cursor: list[Any]) -> ColumnElement[bool]:
    """The keyset condition for Oracle, DM and SQL Server, which have no row values.

    The cursor comes back from the node's store as JSON (dates and decimals as text):
    each value is given its column's Python type again, for the driver binds a text
    as text and Oracle would then read it with NLS_DATE_FORMAT. Each is bound as a
    parameter, a NULL one too (``a = NULL`` is unknown, as in the row comparison, where
    SQLAlchemy would write ``a IS NULL`` for a plain None). One column: ``a > x``."""
    values = [
        literal(_from_text(_python_type(c), v), c.type) for c, v in zip(order, cursor, strict=True)
    ]
    if len(order) == 1:
        return order[0] > values[0]
    return _spelled_out(order, values)


def _python_type(col: Any) -> type | None:
    try:
        kind: type = col.type.python_type
    except NotImplementedError:
        return None
    return kind


def _from_text(kind: type | None, value: Any) -> Any:
    """A value kept as text (a change log's key, a JSON cursor's date or decimal) as a
    value of the column's Python type ``kind``; anything else is given as it is."""
    if not isinstance(value, str) or kind is None:
        return value
    if kind is int:
        return int(value)
    if kind is decimal.Decimal:
        return decimal.Decimal(value)
    if kind is dt.datetime:
        return dt.datetime.fromisoformat(value)
    if kind is dt.date:
        return dt.date.fromisoformat(value)
    return value


def _jsonable(values: list[Any]) -> list[Any]:
    out = []
    for v in values:
        if isinstance(v, dt.datetime | dt.date):
            out.append(v.isoformat())
        elif isinstance(v, decimal.Decimal):
            out.append(str(v))
        else:
            out.append(v)
    return out
