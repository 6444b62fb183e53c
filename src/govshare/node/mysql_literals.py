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


def value_rows(literals: list[pa.Array]) -> pa.Array:
    """``(v1,v2,…)`` for each row of the columns' literals (``literal_column``)."""
    joined = pc.binary_join_element_wise(*literals, ",")
    return pc.binary_join_element_wise("(", joined, ")", "")


def statements(
    prefix: str, rows: pa.Array, postfix: str, *, limit: int = STATEMENT_BYTES
) -> Iterator[str]:
    """``prefix`` + rows joined with commas + ``postfix``, as few statements as keep each
    within ``limit`` bytes (a row longer than that is a statement of its own)."""
    budget = limit - len(prefix.encode()) - len(postfix.encode())
    lengths = pc.binary_length(rows).to_pylist()
    start, size = 0, -1  # n rows take n - 1 commas
    for i, length in enumerate(lengths):
        if i > start and size + 1 + length > budget:
            yield prefix + ",".join(rows.slice(start, i - start).to_pylist()) + postfix
            start, size = i, -1
        size += 1 + length
    if start < len(lengths):
        yield prefix + ",".join(rows.slice(start).to_pylist()) + postfix
