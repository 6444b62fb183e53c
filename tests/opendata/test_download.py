"""The download writers on a store table of awkward cells: the CSV written by the
database's fast path is exactly what the csv module writes with every cell made safe,
batches meet at every boundary, and JSON carries the values unchanged."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, insert

from govshare.opendata import download
from govshare.rules.spreadsheet import csv_text
from govshare.sharing.store import SharedDatabase

NAMES = ["a", "b", "c"]
AWKWARD = [
    "plain",
    "含中文，逗号",
    "with,comma",
    'with "quote"',
    "two\nlines",
    "cr\ronly",
    "=SUM(A1:A2)",
    "+86 532",
    "-12.5",
    "@cmd",
    "\tTAB",
    "end-with-dash-",
    "",
    None,
    "1990-01-01",
]


class _Item:
    def __init__(self, code: str) -> None:
        self.code = code
        self.name = code.upper()


class _Dataset:
    items = tuple(_Item(n) for n in NAMES)


def _table(tmp_path: Path, rows: list[tuple[Any, ...]]) -> tuple[Any, download.OpenTable]:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    db = SharedDatabase(url)
    table = Table(
        "ss_1",
        MetaData(),
        Column("rid", Integer, primary_key=True, autoincrement=False),
        *[Column(n, String(200)) for n in NAMES],
    )
    table.create(db.engine)
    if rows:
        with db.engine.begin() as conn:
            conn.execute(
                insert(table),
                [{"rid": i + 1, **dict(zip(NAMES, r, strict=True))} for i, r in enumerate(rows)],
            )
    db.close()
    engine = download.download_engine(url)
    key = (table.c.rid,)
    t = download.OpenTable(_Dataset, table, key, tuple(table.c[n] for n in NAMES), len(rows))  # type: ignore[arg-type]
    return engine, t


def _rows(n: int, awkward_every: int) -> list[tuple[Any, ...]]:
    out = []
    for i in range(n):
        if awkward_every and i % awkward_every == 0:
            v = AWKWARD[(i // awkward_every) % len(AWKWARD)]
            out.append((f"r{i}", v, None if i % 2 else "x"))
        else:
            out.append((f"r{i}", f"值{i}", "1990-01-01"))
    return out


@pytest.mark.parametrize(("n", "awkward_every"), [(0, 0), (1, 0), (2500, 0), (2500, 97), (40, 1)])
def test_csv_is_the_csv_modules_with_safe_cells(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, n: int, awkward_every: int
) -> None:
    monkeypatch.setattr(download, "BATCH_ROWS", 7 if n < 100 else 1000)
    rows = _rows(n, awkward_every)
    engine, t = _table(tmp_path, rows)
    try:
        got = b"".join(download.csv_chunks(engine, t)).decode("utf-8")
        body = b"".join(download.json_chunks(engine, t))
    finally:
        engine.dispose()
    assert got == csv_text(NAMES, rows)
    read = list(csv.reader(io.StringIO(got[1:])))
    assert len(read) == 1 + n
    assert json.loads(body) == [dict(zip(NAMES, r, strict=True)) for r in rows]


def test_batches_and_preview_keep_key_order_and_limits(tmp_path: Path) -> None:
    rows = _rows(25, 0)
    engine, t = _table(tmp_path, rows)
    try:
        got = [r for b in download.batches(engine, t, size=4) for r in b]
        assert got == rows
        assert [r for b in download.batches(engine, t, size=4, limit=9) for r in b] == rows[:9]
        assert download.preview(engine, t, 10) == rows[:10]
    finally:
        engine.dispose()


def test_column_stats_count_blanks_distinct_and_repeating_values(tmp_path: Path) -> None:
    rows = [(f"r{i}", "甲" if i % 3 else "乙", None if i % 4 == 0 else " ") for i in range(12)]
    engine, t = _table(tmp_path, rows)
    try:
        a, b, c = download.column_stats(engine, t)
    finally:
        engine.dispose()
    assert (a.sampled, a.nulls, a.distinct, a.top) == (12, 0, 12, [])  # every value once
    assert (b.nulls, b.distinct) == (0, 2)
    assert b.top == [("甲", 8), ("乙", 4)]
    assert c.nulls == 12  # NULL and blank text alike
    assert c.null_share == 1.0
