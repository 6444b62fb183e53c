"""The rows of an open dataset (开放数据下载): its shared store read in key order, a batch
at a time, and written as CSV, XLSX or JSON with flat memory.

Only a 无条件开放 dataset of a tabular format whose resource has a shared store with a
table gets rows, and only the columns of its *published* information items
(:attr:`Dataset.items`, which :mod:`govshare.opendata.datasets` decides); the store's
own key column is never shown unless it is one of those items. Every read goes through
:func:`open_table`, so the pages' preview and statistics and the downloads agree on what
is open.

Cells that a spreadsheet would run as a formula are neutralised in CSV and XLSX
(:mod:`govshare.rules.spreadsheet`); JSON carries the values as they are.
"""

from __future__ import annotations

import csv
import io
import os
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Column, String, Table, bindparam, func, select, tuple_
from sqlalchemy.orm import Session

from govshare.db import Prepared
from govshare.opendata.datasets import TABULAR_FORMATS, Dataset, OpenType
from govshare.rules.spreadsheet import FORMULA_PREFIXES, UTF8_BOM, csv_cell, xlsx_row
from govshare.sharing.models import SharedStore
from govshare.sharing.store import SharedDatabase

BATCH_ROWS = 5000
# The most data rows an XLSX sheet holds (1,048,576 rows less the header).
XLSX_MAX_ROWS = 1_048_575
MEDIA_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "json": "application/json",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}
_FORMULA_FIRST = frozenset(FORMULA_PREFIXES)


@dataclass(frozen=True)
class OpenTable:
    """The readable part of an open dataset's shared store."""

    dataset: Dataset
    table: Table
    key: tuple[Column[Any], ...]  # the store's primary key: the order rows are read in
    columns: tuple[Column[Any], ...]  # the published items the table holds, in item order
    row_count: int  # as the feed last counted it

    @property
    def names(self) -> list[str]:
        return [str(c.name) for c in self.columns]

    @property
    def labels(self) -> list[str]:
        by_code = {i.code: i.name for i in self.dataset.items}
        return [by_code[n] for n in self.names]


def rows_withheld_reason(dataset: Dataset) -> str | None:
    """Why the dataset's rows are not served (in Chinese), or None when they may be."""
    if dataset.open_type is OpenType.CONDITIONAL:
        return "该数据集为有条件开放，数据须经开发者申请并获批准后方可获取"
    if dataset.catalog_format not in TABULAR_FORMATS:
        return "该数据集不是表格数据，以部门上传的文件提供"
    return None


def open_table(session: Session, shared: SharedDatabase, dataset: Dataset) -> OpenTable | None:
    """The dataset's store table, or None when it has no rows to serve (see
    :func:`rows_withheld_reason`, or no store, or a store not yet fed)."""
    if rows_withheld_reason(dataset) is not None:
        return None
    store = session.scalar(
        select(SharedStore).where(SharedStore.resource_id == dataset.resource_id)
    )
    if store is None:
        return None
    table = shared.table(store.table_name)
    if table is None:
        return None
    key = tuple(table.primary_key.columns)
    columns = tuple(table.c[i.code] for i in dataset.items if i.code in table.c)
    if not key or not columns:
        return None
    return OpenTable(dataset, table, key, columns, int(store.row_count or 0))


def _statements(t: OpenTable, shared: SharedDatabase, size: int) -> tuple[Prepared, Prepared]:
    dialect = shared.engine.dialect
    head = select(*t.key, *t.columns).order_by(*t.key).limit(size)
    after: list[Any] = [bindparam(f"k{i}") for i in range(len(t.key))]
    cond = tuple_(*t.key) > tuple_(*after) if len(t.key) > 1 else t.key[0] > after[0]
    return Prepared(head, dialect), Prepared(head.where(cond), dialect)


def batches(
    shared: SharedDatabase, t: OpenTable, *, size: int = BATCH_ROWS, limit: int | None = None
) -> Iterator[list[tuple[Any, ...]]]:
    """The published columns of the store's rows, ``size`` at a time in key order (keyset
    paging: each batch is one indexed range read, on a connection held only for it)."""
    first, more = _statements(t, shared, size)
    width = len(t.key)
    last: Sequence[Any] | None = None
    served = 0
    while limit is None or served < limit:
        raw = shared.engine.raw_connection()
        try:
            if last is None:
                rows = first.rows(raw.dbapi_connection, {})
            else:
                rows = more.rows(raw.dbapi_connection, {f"k{i}": v for i, v in enumerate(last)})
        finally:
            raw.close()
        if not rows:
            return
        last = rows[-1][:width]
        if limit is not None:
            rows = rows[: limit - served]
        served += len(rows)
        yield [r[width:] for r in rows]
        if len(rows) < size:
            return


def preview(shared: SharedDatabase, t: OpenTable, rows: int = 10) -> list[tuple[Any, ...]]:
    """The first ``rows`` rows in key order."""
    return next(batches(shared, t, size=rows, limit=rows), [])


# -- statistics --------------------------------------------------------------------------

STATS_SAMPLE = 10_000
TOP_VALUES = 8


@dataclass(frozen=True)
class ColumnStats:
    """Per-column figures over the first :data:`STATS_SAMPLE` rows."""

    code: str
    name: str
    sampled: int
    nulls: int  # NULL or empty text
    distinct: int
    top: list[tuple[str, int]]  # most frequent values, when values repeat

    @property
    def null_share(self) -> float:
        return self.nulls / self.sampled if self.sampled else 0.0


def column_stats(shared: SharedDatabase, t: OpenTable) -> list[ColumnStats]:
    """Null share, distinct values and the most frequent values of each published column,
    over a sample (the first rows in key order) so a page costs the same at any size."""
    sample = select(*t.columns).order_by(*t.key).limit(STATS_SAMPLE).subquery("sample")
    out: list[ColumnStats] = []
    with shared.engine.connect() as conn:
        sampled = int(conn.scalar(select(func.count()).select_from(sample)) or 0)
        for col, label in zip(t.columns, t.labels, strict=True):
            c = sample.c[col.name]
            blank: Any = c.is_(None)
            if isinstance(col.type, String):
                blank = blank | (func.trim(c) == "")
            nulls, distinct = conn.execute(
                select(func.count().filter(blank), func.count(func.distinct(c)))
            ).one()
            top: list[tuple[str, int]] = []
            if distinct and distinct < sampled - int(nulls):  # some value repeats
                top = [
                    (str(v), int(n))
                    for v, n in conn.execute(
                        select(c, func.count().label("n"))
                        .where(c.is_not(None))
                        .group_by(c)
                        .order_by(func.count().desc(), c)
                        .limit(TOP_VALUES)
                    )
                ]
            out.append(
                ColumnStats(str(col.name), label, sampled, int(nulls), int(distinct or 0), top)
            )
    return out


# -- writers -----------------------------------------------------------------------------


def _safe(row: Sequence[Any]) -> list[Any]:
    return [csv_cell(v) if v.__class__ is str and v[:1] in _FORMULA_FIRST else v for v in row]


def csv_chunks(shared: SharedDatabase, t: OpenTable) -> Iterator[bytes]:
    """UTF-8 CSV with BOM (Excel reads it as UTF-8): a header of item codes, then rows."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(t.names)
    yield (UTF8_BOM + out.getvalue()).encode("utf-8")
    for rows in batches(shared, t):
        out.seek(0)
        out.truncate()
        writer.writerows(_safe(r) for r in rows)
        yield out.getvalue().encode("utf-8")


def json_chunks(shared: SharedDatabase, t: OpenTable) -> Iterator[bytes]:
    """A JSON array of objects keyed by item code, written a batch at a time."""
    names = t.names
    yield b"["
    sep = b""
    for rows in batches(shared, t):
        body = orjson.dumps([dict(zip(names, r, strict=True)) for r in rows], default=str)
        yield sep + body[1:-1]
        sep = b","
    yield b"]\n"


def xlsx_file(shared: SharedDatabase, t: OpenTable, directory: str | None = None) -> str:
    """The rows as an XLSX workbook in a temporary file (openpyxl's write-only mode keeps
    one row in memory at a time); the caller streams the file and removes it."""
    from openpyxl import Workbook

    wb = Workbook(write_only=True)
    ws = wb.create_sheet(title="数据")
    ws.append(t.names)
    for rows in batches(shared, t, limit=XLSX_MAX_ROWS):
        for r in rows:
            ws.append(xlsx_row(ws, r))
    fd, path = tempfile.mkstemp(prefix="govshare-open-", suffix=".xlsx", dir=directory)
    os.close(fd)
    try:
        wb.save(path)
    except BaseException:
        os.unlink(path)
        raise
    return path


def file_chunks(path: str, size: int = 1 << 16) -> Iterator[bytes]:
    """A file's bytes in chunks; the file is removed once read (or abandoned)."""
    try:
        with open(path, "rb") as f:
            while chunk := f.read(size):
                yield chunk
    finally:
        os.unlink(path)
