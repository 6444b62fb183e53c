"""Bounded integers for ids and counters that arrive from outside (编号的取值范围).

Every id in a path, a query or a request body is ``Id``: a positive integer that fits
the id columns, which are INTEGER: 64-bit on SQLite but 32-bit on PostgreSQL. Without
the bound a 30-digit id reaches SQLite's driver as an ``OverflowError`` and a 10-digit
one PostgreSQL as "integer out of range" (both a 500) instead of a 422 naming the
field. Package and audit sequence numbers live in 64-bit columns and are ``Seq``
(from 0); counts kept in 32-bit columns are ``Count``.

Plain pydantic constraints, so request schemas, FastAPI path/query parameters and the
node's own models use the same types without importing the web layer.
"""

from __future__ import annotations

from typing import Annotated

from annotated_types import Ge, Le

MAX_ID = 2**31 - 1
"""The largest value an INTEGER column holds on PostgreSQL: ids, counts, sort orders."""

MAX_SEQ = 2**63 - 1
"""The largest value a BIGINT column holds: package and audit sequence numbers."""

Id = Annotated[int, Ge(1), Le(MAX_ID)]
Seq = Annotated[int, Ge(0), Le(MAX_SEQ)]
Count = Annotated[int, Ge(0), Le(MAX_ID)]


def parse_id(value: str) -> int | None:
    """A console query or form value as an id: digits within ``Id``'s range, else None."""
    return _parse(value, 1, MAX_ID)


def parse_seq(value: str) -> int | None:
    """A console query value as a sequence number within ``Seq``'s range, else None."""
    return _parse(value, 0, MAX_SEQ)


def _parse(value: str, low: int, high: int) -> int | None:
    value = value.strip()
    if not value.isascii() or not value.isdigit() or len(value) > 19:
        return None
    number = int(value)
    return number if low <= number <= high else None
