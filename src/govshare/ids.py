"""Bounded integers for ids and counters that arrive from outside (编号的取值范围).

Every id in a path, a query or a request body is ``Id``: a positive integer that fits
the databases' 64-bit columns. Without the bound a 30-digit id reaches SQLite's driver
as an ``OverflowError`` (a 500) instead of a 422 naming the field. Sequence numbers
compared with stored ones are ``Seq`` (from 0); counts kept in 32-bit columns are
``Count``.

Plain pydantic constraints, so request schemas, FastAPI path/query parameters and the
node's own models use the same types without importing the web layer.
"""

from __future__ import annotations

from typing import Annotated

from annotated_types import Ge, Le

MAX_ID = 2**63 - 1
"""The largest value a signed 64-bit column (SQLite INTEGER, PostgreSQL BIGINT) holds."""

MAX_COUNT = 2**31 - 1
"""The largest value a 32-bit INTEGER column (PostgreSQL) holds: counts and sort orders."""

Id = Annotated[int, Ge(1), Le(MAX_ID)]
Seq = Annotated[int, Ge(0), Le(MAX_ID)]
Count = Annotated[int, Ge(0), Le(MAX_COUNT)]


def parse_id(value: str) -> int | None:
    """A console query or form value as an id: digits within ``Id``'s range, else None."""
    value = value.strip()
    if not value.isascii() or not value.isdigit():
        return None
    number = int(value)
    return number if 1 <= number <= MAX_ID else None
