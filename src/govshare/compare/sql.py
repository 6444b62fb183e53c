"""The SQL a comparison run executes in DuckDB, and what its worker needs to know of each
input: kept apart from the planner so that the worker process imports only this, the
snapshot and the database driver (a run's start-up is paid on every run).

Every value is read through a typed view of its input's Parquet file (numbers as
numbers, dates however a department writes them), and join keys are folded by macros
that leave the common case — plain ASCII, an 18-digit number — untouched at the cost of
a length comparison.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Normalisation steps of a join key (``schemas.Normalize``), applied in this order.
STEPS = (("width", "gs_width"), ("trim", "trim"), ("upper", "upper"), ("id18", "gs_id18"))

_FULL = "".join(chr(c) for c in range(0xFF01, 0xFF5F)) + "\u3000"
_HALF = "".join(chr(c) for c in range(0x21, 0x7F)) + " "
_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


@dataclass(frozen=True)
class InputPlan:
    """One input as the run reads it."""

    alias: str
    store_id: int
    resource_code: str
    resource_name: str
    table_name: str
    key_item: str
    columns: list[str]
    kinds: dict[str, str]
    names: dict[str, str]
    row_filter: list[dict[str, Any]] | None
    masking: dict[str, str]
    grant_id: int | None
    # Where the store's position is read: a base database's record version column, or
    # None for a fed store (the exchange's bookkeeping table holds its last package).
    version_column: str | None = None
    rows_hint: int = 0  # the store's row count as the hub last saw it (for progress)
    # Columns no hit can have empty (compared by a condition of a joined input): rows
    # without them are left out of the snapshot.
    required: tuple[str, ...] = ()
    # 字段加密: the store's sealed items with the Arrow type their values had (see
    # ``SharedStore.sealed_items``); the snapshot opens them, so the query compares,
    # checks and shows values, never cells.
    sealed: dict[str, str] = field(default_factory=dict)
    seal_key: int = 1  # the generation of the field key they are sealed under


def macros() -> list[str]:
    """Functions the queries use: lenient dates, width folding, ID 15 → 18 digits."""
    check = " + ".join(
        f"CAST(substr(b, {i + 1}, 1) AS INTEGER) * {w}" for i, w in enumerate(_WEIGHTS)
    )
    return [
        "CREATE OR REPLACE MACRO gs_date(s) AS COALESCE(TRY_CAST(s AS DATE), "
        "TRY_CAST(TRY_CAST(s AS TIMESTAMP) AS DATE), "
        "CAST(try_strptime(s, '%Y年%m月%d日') AS DATE), "
        "CAST(try_strptime(s, '%Y/%m/%d') AS DATE), CAST(try_strptime(s, '%Y%m%d') AS DATE))",
        "CREATE OR REPLACE MACRO gs_ts(s) AS COALESCE(TRY_CAST(s AS TIMESTAMP), "
        "CAST(gs_date(s) AS TIMESTAMP))",
        # Bytes equal to characters: plain ASCII, nothing to fold (most keys).
        "CREATE OR REPLACE MACRO gs_width(s) AS CASE WHEN strlen(s) = length(s) THEN s "
        f"ELSE translate(s, '{_FULL}', '{sql_text(_HALF)}') END",
        "CREATE OR REPLACE MACRO gs_id18b(b) AS "
        f"b || substr('10X98765432', (({check}) % 11) + 1, 1)",
        "CREATE OR REPLACE MACRO gs_id18(s) AS CASE WHEN length(s) = 15 "
        "AND regexp_full_match(s, '[0-9]{15}') "
        "THEN gs_id18b(substr(s, 1, 6) || '19' || substr(s, 7, 9)) ELSE s END",
    ]


def sql_text(text: str) -> str:
    return text.replace("'", "''")


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _typed(kind: str, column: str) -> str:
    raw = f"CAST({quote(column)} AS VARCHAR)"
    if kind == "number":
        return f"TRY_CAST({quote(column)} AS DOUBLE)"
    if kind == "date":
        return f"gs_date({raw})"
    if kind == "datetime":
        return f"gs_ts({raw})"
    return raw


def view_sql(i: InputPlan, path: str) -> str:
    cols = ", ".join(f"{_typed(i.kinds[c], c)} AS {quote(c)}" for c in i.columns)
    return (
        f"CREATE OR REPLACE VIEW {quote('in_' + i.alias)} AS SELECT {cols} "
        f"FROM read_parquet('{sql_text(path)}')"
    )


def normalised(expr: str, steps: list[str]) -> str:
    wanted = {str(s) for s in steps}
    for step, fn in STEPS:
        if step in wanted:
            expr = f"{fn}({expr})"
    return expr
