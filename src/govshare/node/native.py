"""Reading a source page straight into Arrow (connectorx), beside the Python path.

PyMySQL decodes every value in Python, and turning a page of Python tuples into the
package's Arrow columns costs as much again: together about 12 of the provider's
17 CPU-seconds per million rows of the bench's table on MariaDB. connectorx reads the
same page with a native client into Arrow in a fifth of the time, and the package is
encoded from its columns as they are.

It is taken only where both paths give the same package: a plain table (no query, no
row filter, no masking), a database it speaks to (PostgreSQL through psycopg, MySQL and
MariaDB through PyMySQL, plain host/port URLs; a SQLite file by plain path), integer
order columns (so the page's SQL can carry its cursor as literals), and columns whose
values are integers, text, doubles or booleans (not booleans on SQLite, which keeps
them as the integers the Python path sends). Anything else, including a type that
only shows in the result (MySQL's ``BIGINT UNSIGNED``, ``FLOAT``), and any failure of
the native client, sends the task back to the Python path for good, with the reason
logged. Dates and timestamps without a zone come natively from PostgreSQL and MySQL
(both paths give ``date32`` and ``timestamp[us]``). A value Python cannot hold
(PostgreSQL's ``infinity``, a date BC or after 9999) or one with no calendar date
behind it (MySQL's 0000-00-00, on which connectorx panics) sends the source back to
the Python path, which refuses it by name as before. Times of day stay on the Python
path (PostgreSQL's 24:00, MySQL's negative times), and so do MySQL's TIMESTAMP
columns (shown in the session's zone). DECIMAL columns come natively where
connectorx gives their values exactly (``exact_decimal``), in the column's declared
precision (the Python path's package infers the precision from the batch's values; the
values and their scale are the same).

A SQLite file is read by connectorx in a process of its own (:class:`SqliteWorker`):
connectorx brings its own SQLite library, and two SQLite libraries with the same file
open in one process break each other's locks (POSIX locks belong to the process, and
each library closing its descriptor drops the other's). Pages go to the Python path
until that process is up, so starting it costs the first batch nothing.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import datetime as dt
import decimal
import functools
import importlib.util
import os
import select
import struct
import subprocess
import sys
import threading
import weakref
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pyarrow as pa
import pyarrow.compute as pc
import structlog
from sqlalchemy import Engine, Float, Numeric
from sqlalchemy.dialects import mysql
from sqlalchemy.sql import Select

log = structlog.get_logger()

# The Python kinds of the columns both paths give alike; floats only as doubles, which
# the result check below tells apart from MySQL's FLOAT and PostgreSQL's REAL.
_KINDS: tuple[type, ...] = (int, str, float, bool)
_INTEGERS = (pa.int8(), pa.int16(), pa.int32(), pa.int64(), pa.uint8(), pa.uint16(), pa.uint32())
_SAME = (pa.string(), pa.float64(), pa.bool_(), pa.null())
# What Python's date and datetime can hold, as Arrow's days and microseconds since 1970.
_DATES = (pa.date32(), pa.timestamp("us"))
_FIRST_DAY, _LAST_DAY = dt.date(1, 1, 1), dt.date(9999, 12, 31)
_FIRST_INSTANT, _LAST_INSTANT = dt.datetime(1, 1, 1), dt.datetime(9999, 12, 31, 23, 59, 59, 999999)
_DATED = ("postgresql", "mysql", "mariadb")  # whose dates come natively (not SQLite's text)
_SCHEMES = {"postgresql": ("psycopg", "postgresql"), "mysql": ("pymysql", "mysql")}


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim``, or None where the C library has none (musl, macOS)."""
    try:
        trim: Callable[[int], int] = ctypes.CDLL(ctypes.util.find_library("c")).malloc_trim
    except (OSError, AttributeError, TypeError):
        return None
    return trim


def available() -> bool:
    return importlib.util.find_spec("connectorx") is not None


def native_url(engine: Engine) -> str | None:
    """The source's URL as connectorx takes it, or None when it has no reader for it."""
    if engine.dialect.name == "sqlite":
        return _sqlite_url(engine)
    family = "mysql" if engine.dialect.name in ("mysql", "mariadb") else engine.dialect.name
    driver, scheme = _SCHEMES.get(family, ("", ""))
    if engine.dialect.driver != driver:
        return None
    url = engine.url
    if not url.host:
        return None
    # Anything beyond the character set (TLS files, unix sockets, options) is what the
    # Python driver was told and connectorx would not be.
    if set(url.query) - ({"charset"} if family == "mysql" else set()):
        return None
    return url.set(drivername=scheme, query={}).render_as_string(hide_password=False)


def _sqlite_url(engine: Engine) -> str | None:
    """A SQLite file named plainly (no URI options, not in memory), as an absolute
    path: the worker process need not share the node's working directory."""
    url = engine.url
    database = url.database
    if engine.dialect.driver != "pysqlite" or not database or database == ":memory:":
        return None
    if url.query:
        return None
    return "sqlite://" + quote(str(Path(database).resolve()))


def exact_decimal(col: Any) -> pa.DataType | None:
    """The Arrow type a DECIMAL column's values are given in natively, or None when
    connectorx cannot give them exactly. It reads every decimal as 10 places (more are
    cut off without a word) and at most 28 digits (more fail), so only columns declared
    within both come natively, cast back to their declared precision and scale."""
    if not isinstance(col.type, Numeric) or isinstance(col.type, Float) or not col.type.asdecimal:
        return None
    precision, scale = col.type.precision, col.type.scale
    if precision is None or scale is None or not 0 <= scale <= 10 or precision > 28:
        return None
    return pa.decimal128(precision, scale)


def eligible(columns: Sequence[Any], order: Sequence[Any], *, dialect: str) -> bool:
    """Whether a page of these columns, ordered by ``order``, may be read natively from
    a database of ``dialect``. SQLite keeps a BOOLEAN as the integer the Python path
    sends, where connectorx would read a boolean, so such a column keeps the page on the
    Python path, and its dates are text, which the Python path's column types convert."""

    def kind(col: Any) -> type | None:
        try:
            python_type: type = col.type.python_type
        except NotImplementedError:
            return None
        return python_type

    def alike(col: Any) -> bool:
        k = kind(col)
        if k is float:
            return isinstance(col.type, Float)
        if k in (dt.date, dt.datetime):
            # MySQL's TIMESTAMP is shown in the session's zone, which each client's
            # session may set otherwise.
            zoned = getattr(col.type, "timezone", False) or isinstance(col.type, mysql.TIMESTAMP)
            return dialect in _DATED and not zoned
        if k is decimal.Decimal:
            return dialect in _DATED and exact_decimal(col) is not None
        return k in ((int, str, float) if dialect == "sqlite" else _KINDS)

    return all(kind(c) is int for c in order) and all(alike(c) for c in columns)


class NativeReader:
    """One source's pages through connectorx; ``read`` gives None once it has given up."""

    def __init__(
        self, url: str, engine: Engine, decimals: dict[str, pa.DataType] | None = None
    ) -> None:
        """``decimals``: the declared type (``exact_decimal``) of each DECIMAL column."""
        self.url = url
        self.engine = engine
        self.decimals = decimals or {}
        self.gave_up: str | None = None
        # Started by the first page asked for natively (a batch's or a key scan's).
        self.worker: SqliteWorker | None = None

    def close(self) -> None:
        if self.worker is not None:
            self.worker.close()

    def read(self, stmt: Select[Any], cursor: Sequence[Any] | None) -> pa.Table | None:
        """The page ``stmt`` selects, as an Arrow table in the Python path's types; None
        when it is not to be read natively (the caller reads it with the Python path)."""
        sql = self._sql(stmt, cursor)
        if sql is None:
            return None
        if self.engine.dialect.name == "sqlite":
            if self.worker is None:
                self.worker = SqliteWorker()
            if not self.worker.ready():
                return None  # still starting: this page goes the Python way
            table, failure = self.worker.read(self.url, sql)
        else:
            table, failure = read_arrow(self.url, sql)
        if failure is not None:
            # Given up for good, an unreachable server included: connectorx's pool
            # retries a refused connection for 30 s, which the node's loop must not wait
            # out at every page; the Python path reports the outage as it always has.
            if password := self.engine.url.password:
                failure = failure.replace(str(password), "***")
            self._give_up(f"connectorx 出错: {failure[:250]}")
            return None
        assert table is not None
        return self._as_python_path_would(table)

    def _sql(self, stmt: Select[Any], cursor: Sequence[Any] | None) -> str | None:
        if self.gave_up is not None:
            return None
        if cursor is not None and any(type(v) is not int for v in cursor):
            return None  # only integers go into the SQL as literals
        sql = str(stmt.compile(dialect=self.engine.dialect, compile_kwargs={"literal_binds": True}))
        if self.engine.dialect.paramstyle in ("format", "pyformat"):
            # Compiled for a driver that reads % as a parameter's mark (PyMySQL, psycopg),
            # every % came out doubled, a prefix filter's LIKE pattern among them;
            # connectorx sends the text as it is. (Values with a % of their own never get
            # here: see ``source._plain_filter_values``.)
            sql = sql.replace("%%", "%")
        return sql

    def _as_python_path_would(self, table: pa.Table) -> pa.Table | None:
        """Integers widened to int64 (what ``pa.array`` makes of Python ints); any other
        type than the Python path's gives up."""
        fields, arrays = [], []
        for field, chunked in zip(table.schema, table.columns, strict=True):
            array = chunked.combine_chunks()
            if field.type in _INTEGERS:
                array = array.cast(pa.int64())
            elif field.type == pa.large_string():
                array = array.cast(pa.string())
            elif field.type in _DATES:
                if not _within_python(array):
                    self._give_up(f"列 {field.name} 有超出 0001-9999 年的值")
                    return None
            elif pa.types.is_decimal(field.type) and field.name in self.decimals:
                try:
                    array = array.cast(self.decimals[field.name])
                except pa.ArrowInvalid as exc:
                    self._give_up(f"列 {field.name} 的值超出声明的精度: {exc}")
                    return None
            elif field.type not in _SAME:
                self._give_up(f"列 {field.name} 读出的类型为 {field.type}, 与逐行读取不同")
                return None
            fields.append(pa.field(field.name, array.type))
            arrays.append(array)
        return pa.Table.from_arrays(arrays, schema=pa.schema(fields))

    def _give_up(self, reason: str) -> None:
        self.gave_up = reason
        log.warning("native reader off for this source; the Python path reads it", reason=reason)


def _within_python(array: pa.Array) -> bool:
    """Whether every date or timestamp of ``array`` is one Python can hold."""
    low, high = pc.min_max(array).values()
    if not low.is_valid:
        return True  # nothing but NULLs
    first, last = (
        (_FIRST_DAY, _LAST_DAY) if array.type == pa.date32() else (_FIRST_INSTANT, _LAST_INSTANT)
    )
    return bool(
        pc.greater_equal(low, pa.scalar(first, array.type)).as_py()
        and pc.less_equal(high, pa.scalar(last, array.type)).as_py()
    )


def read_arrow(url: str, sql: str) -> tuple[pa.Table | None, str | None]:
    """connectorx's Arrow table of ``sql``, or the reason it could not give one."""
    import connectorx  # 57 MB: loaded when first used

    # The last page's buffers came from connectorx's threads, each with a malloc
    # arena of its own that keeps what was freed: given back, the node's memory stays
    # flat (measured: 300 MB after 6 million rows, against 400 MB and climbing).
    if (trim := _malloc_trim()) is not None:
        trim(0)
    try:
        return connectorx.read_sql(url, sql, return_type="arrow"), None
    except BaseException as exc:
        # A Rust panic (a value its client cannot convert) arrives as pyo3's
        # PanicException, which derives from BaseException.
        if not isinstance(exc, Exception) and type(exc).__name__ != "PanicException":
            raise
        return None, f"{type(exc).__name__}: {exc}"


class SqliteWorker:
    """connectorx over a SQLite file, in a process of its own (see the module's text).

    The process is a plain ``python -c`` of :func:`serve`, talking over its standard
    input and output: it imports nothing of the node but this module, and it ends when
    its input does, which is also when the node dies, a kill -9 included (the kernel
    closes the node's end of the pipe). ``ready`` says whether it is up yet; ``read``
    waits for a page."""

    def __init__(self) -> None:
        home = str(Path(__file__).resolve().parents[2])  # the directory holding govshare
        path = os.environ.get("PYTHONPATH")
        self._proc = subprocess.Popen(
            [sys.executable, "-c", "from govshare.node.native import serve; serve()"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": home + (os.pathsep + path if path else "")},
        )
        self._lock = threading.Lock()
        self._up = False  # its first byte can be read
        self._greeted = False  # ... and has been
        # A reader dropped without ``close`` (a task's reader replaced, a test's) still
        # ends its process.
        self._ended = weakref.finalize(self, _end, self._proc)

    def ready(self) -> bool:
        """Up (or dead, which ``read`` then tells): its first byte has come."""
        if not self._up:
            assert self._proc.stdout is not None
            self._up = bool(select.select([self._proc.stdout], [], [], 0)[0])
        return self._up

    def read(self, url: str, sql: str) -> tuple[pa.Table | None, str | None]:
        with self._lock:
            try:
                self._send(f"{url}\0{sql}")
                return self._receive()
            except (OSError, EOFError, ValueError) as exc:
                return None, f"读取进程出错: {exc}"

    def _send(self, request: str) -> None:
        stdin, stdout = self._proc.stdin, self._proc.stdout
        assert stdin is not None
        assert stdout is not None
        if not self._greeted:
            if stdout.read(1) != b"R":
                raise EOFError("进程未能启动")
            self._up = self._greeted = True
        body = request.encode()
        stdin.write(struct.pack(">Q", len(body)) + body)
        stdin.flush()

    def _receive(self) -> tuple[pa.Table | None, str | None]:
        stdout = self._proc.stdout
        assert stdout is not None
        head = stdout.read(9)
        if len(head) != 9:
            raise EOFError("进程已退出")
        size = struct.unpack(">Q", head[1:])[0]
        body = stdout.read(size)
        if len(body) != size:
            raise EOFError("进程已退出")
        if head[:1] == b"E":
            return None, body.decode()
        return pa.ipc.open_stream(pa.py_buffer(body)).read_all(), None

    def close(self) -> None:
        self._ended()


def _end(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(OSError):
        if proc.stdin is not None:
            proc.stdin.close()  # its input ends: it leaves
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    if proc.stdout is not None:
        proc.stdout.close()


def serve() -> None:
    """The worker process: ``<u64 length><url NUL sql>`` in, ``T|E <u64 length><Arrow
    stream | reason>`` out, until its input ends. Its standard output is the node's
    channel alone: anything printed goes to standard error instead."""
    import connectorx  # noqa: F401  (loaded while the node still reads the Python way)

    channel = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    requests = sys.stdin.buffer
    channel.write(b"R")
    channel.flush()
    while len(head := requests.read(8)) == 8:
        url, _, sql = requests.read(struct.unpack(">Q", head)[0]).decode().partition("\0")
        table, failure = read_arrow(url, sql)
        body: pa.Buffer | bytes
        if table is not None:
            sink = pa.BufferOutputStream()
            with pa.ipc.new_stream(sink, table.schema) as writer:
                writer.write_table(table)
            status, body = b"T", sink.getvalue()
        else:
            status, body = b"E", (failure or "").encode()
        channel.write(status + struct.pack(">Q", len(body)))
        channel.write(body)  # an Arrow buffer is written as it is, uncopied
        channel.flush()
