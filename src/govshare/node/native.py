"""Reading a source page straight into Arrow (connectorx), beside the Python path.

PyMySQL decodes every value in Python, and turning a page of Python tuples into the
package's Arrow columns costs as much again: together about 12 of the provider's
17 CPU-seconds per million rows of the bench's table on MariaDB. connectorx reads the
same page with a native client into Arrow in a fifth of the time, and the package is
encoded from its columns as they are.

It is taken only where both paths give the same package: a plain table (no query, no
row filter, no masking), a server it speaks to (PostgreSQL through psycopg, MySQL and
MariaDB through PyMySQL, plain host/port URLs), integer order columns (so the page's
SQL can carry its cursor as literals), and columns whose values are integers, text,
doubles or booleans. Anything else, including a type that only shows in the result
(MySQL's ``BIGINT UNSIGNED``, ``FLOAT``), and any failure of the native client, sends
the task back to the Python path for good, with the reason logged; dates stay on the
Python path because only it refuses MySQL's zero dates by name.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import importlib.util
from collections.abc import Callable, Sequence
from typing import Any

import pyarrow as pa
import structlog
from sqlalchemy import Engine, Float
from sqlalchemy.sql import Select

log = structlog.get_logger()

# The Python kinds of the columns both paths give alike; floats only as doubles, which
# the result check below tells apart from MySQL's FLOAT and PostgreSQL's REAL.
_KINDS: tuple[type, ...] = (int, str, float, bool)
_INTEGERS = (pa.int8(), pa.int16(), pa.int32(), pa.int64(), pa.uint8(), pa.uint16(), pa.uint32())
_SAME = (pa.string(), pa.float64(), pa.bool_(), pa.null())
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


def eligible(columns: Sequence[Any], order: Sequence[Any]) -> bool:
    """Whether a page of these columns, ordered by ``order``, may be read natively."""

    def kind(col: Any) -> type | None:
        try:
            python_type: type = col.type.python_type
        except NotImplementedError:
            return None
        return python_type

    if any(kind(c) is not int for c in order):
        return False
    return all(
        kind(c) in _KINDS and (kind(c) is not float or isinstance(c.type, Float)) for c in columns
    )


class NativeReader:
    """One source's pages through connectorx; ``read`` gives None once it has given up."""

    def __init__(self, url: str, engine: Engine) -> None:
        self.url = url
        self.engine = engine
        self.gave_up: str | None = None

    def read(self, stmt: Select[Any], cursor: Sequence[Any] | None) -> pa.Table | None:
        """The page ``stmt`` selects, as an Arrow table in the Python path's types; None
        when it is not to be read natively (the caller reads it with the Python path)."""
        if self.gave_up is not None:
            return None
        if cursor is not None and any(type(v) is not int for v in cursor):
            return None  # only integers go into the SQL as literals
        sql = str(stmt.compile(dialect=self.engine.dialect, compile_kwargs={"literal_binds": True}))
        if "%" in sql:
            return None  # PyMySQL's dialect doubles % for its parameters; connectorx would not
        import connectorx  # 57 MB: loaded when first used

        # The last page's buffers came from connectorx's threads, each with a malloc
        # arena of its own that keeps what was freed: given back, the node's memory stays
        # flat (measured: 300 MB after 6 million rows, against 400 MB and climbing).
        if (trim := _malloc_trim()) is not None:
            trim(0)

        try:
            table: pa.Table = connectorx.read_sql(self.url, sql, return_type="arrow")
        except BaseException as exc:
            # A Rust panic (a value its client cannot convert) arrives as pyo3's
            # PanicException, which derives from BaseException.
            if not isinstance(exc, Exception) and type(exc).__name__ != "PanicException":
                raise
            # Given up for good, an unreachable server included: connectorx's pool
            # retries a refused connection for 30 s, which the node's loop must not wait
            # out at every page; the Python path reports the outage as it always has.
            told = str(exc)
            if password := self.engine.url.password:
                told = told.replace(str(password), "***")
            self._give_up(f"connectorx 出错: {type(exc).__name__}: {told[:200]}")
            return None
        return self._as_python_path_would(table)

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
            elif field.type not in _SAME:
                self._give_up(f"列 {field.name} 读出的类型为 {field.type}, 与逐行读取不同")
                return None
            fields.append(pa.field(field.name, array.type))
            arrays.append(array)
        return pa.Table.from_arrays(arrays, schema=pa.schema(fields))

    def _give_up(self, reason: str) -> None:
        self.gave_up = reason
        log.warning("native reader off for this source; the Python path reads it", reason=reason)
