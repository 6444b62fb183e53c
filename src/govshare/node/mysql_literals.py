"""A package's rows as the text of multi-row ``INSERT … VALUES`` for MySQL and MariaDB,
built column by column in Arrow.

PyMySQL's ``executemany`` writes the same statements, but escapes every value in Python:
about three quarters of a MariaDB subscriber's time (2.2 of 2.9 CPU-seconds for 200,000
rows of the bench's table). Here each column is escaped, quoted and joined with Arrow's
compute functions, and only whole statements reach Python.

The text is what PyMySQL would send: strings quoted with ``'`` and escaped as its
``escape_string`` does (backslash, NUL, newline, carriage return, Ctrl-Z and both
quotes get a backslash), integers in decimal, NULL for a missing value. It is taken only
for columns of those types and doubles (integers, text, doubles, booleans, all-NULL), on
connections that read backslashes as escapes (not ``NO_BACKSLASH_ESCAPES``); anything
else is left to the driver.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

# PyMySQL's escape table (``pymysql.converters._escape_table``), backslash first so the
# backslashes added for the others are not doubled.
_ESCAPES = (
    ("\\", "\\\\"),
    ("\0", "\\0"),
    ("\n", "\\n"),
    ("\r", "\\r"),
    ("\x1a", "\\Z"),
    ('"', '\\"'),
    ("'", "\\'"),
)
# The server's status flag for sql_mode NO_BACKSLASH_ESCAPES (MySQL's SERVER_STATUS_*).
_NO_BACKSLASH_ESCAPES = 512
# Statements up to about PyMySQL's own limit for one multi-row INSERT.
STATEMENT_BYTES = 1 << 20


def literal_column(array: pa.Array) -> pa.Array | None:
    """Each value of ``array`` as SQL literal text, or None for a type not handled here."""
    kind = array.type
    if pa.types.is_dictionary(kind):
        if not pa.types.is_string(kind.value_type):
            return None
        # Escape the few distinct values once, then spread them over the rows.
        escaped = literal_column(array.dictionary)
        if escaped is None:
            return None
        return pc.fill_null(pc.take(escaped, array.indices), "NULL")
    if pa.types.is_null(kind):
        return pa.array(["NULL"] * len(array), type=pa.string())
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        text = array.cast(pa.string())
        for plain, escaped in _ESCAPES:
            text = pc.replace_substring(text, plain, escaped)
        quoted = pc.binary_join_element_wise("'", text, "'", "")
        return pc.fill_null(quoted, "NULL")
    if pa.types.is_boolean(kind):
        return pc.fill_null(array.cast(pa.int8()).cast(pa.string()), "NULL")
    if pa.types.is_integer(kind):
        return pc.fill_null(array.cast(pa.string()), "NULL")
    if pa.types.is_float64(kind):
        values = pc.fill_null(array, 0.0)
        if pc.any(pc.is_nan(values)).as_py() or pc.any(pc.is_inf(values)).as_py():
            return None  # MySQL has no NaN or infinity: the driver refuses them by name
        # Arrow writes the shortest text that reads back as the same double; "e0" makes it
        # a double literal, as PyMySQL's (not a DECIMAL one).
        text = array.cast(pa.string())
        exponent = pc.binary_join_element_wise(text, "e0", "")
        text = pc.if_else(pc.match_substring(text, "e"), text, exponent)
        return pc.fill_null(text, "NULL")
    return None


def escapes_backslashes(driver_connection: Any) -> bool:
    """Whether the server reads ``\\`` in a string literal as an escape (the default)."""
    return not (int(getattr(driver_connection, "server_status", 0)) & _NO_BACKSLASH_ESCAPES)


def speaks_utf8(driver_connection: Any) -> bool:
    """Whether PyMySQL encodes this session's statements in UTF-8 (``utf8mb4``, ``utf8``),
    as on every engine ``make_engine`` makes; another engine's may speak GBK, say."""
    return str(getattr(driver_connection, "encoding", "")).replace("-", "").lower() == "utf8"


def value_rows(literals: list[pa.Array]) -> pa.Array:
    """``(v1,v2,…),`` for each row of the columns' literals (``literal_column``): the
    comma that follows a row in a statement is written with it, so that the rows of a
    statement are one stretch of the array's data (``statements``)."""
    joined = pc.binary_join_element_wise(*literals, ",")
    rows: pa.Array = pc.binary_join_element_wise("(", joined, "),", "")
    return rows.cast(pa.large_string())  # 64-bit offsets, whatever a package holds


def statements(
    prefix: str, rows: pa.Array, postfix: str, *, limit: int = STATEMENT_BYTES
) -> Iterator[bytes]:
    """``prefix`` + rows (``value_rows``) + ``postfix`` in UTF-8, as few statements as
    keep each within ``limit`` bytes (a row longer than that is a statement of its own).

    Each statement is cut straight from the rows' data buffer, its last comma left out:
    no Python string per row, nor one per statement to be encoded again."""
    rows = rows.cast(pa.large_string())
    if rows.null_count:
        raise ValueError("a row of literals is missing")
    head, tail = prefix.encode(), postfix.encode()
    budget = limit - len(head) - len(tail)
    _, offset_buffer, data_buffer = rows.buffers()
    offsets = memoryview(offset_buffer).cast("q")[rows.offset : rows.offset + len(rows) + 1]
    data = memoryview(data_buffer) if data_buffer is not None else memoryview(b"")
    start = 0
    while start < len(rows):
        # The last row whose end (its comma dropped) keeps the statement within budget.
        end = bisect.bisect_right(offsets, offsets[start] + budget + 1, lo=start + 1) - 1
        end = max(end, start + 1)
        yield b"".join((head, data[offsets[start] : offsets[end] - 1], tail))
        start = end
