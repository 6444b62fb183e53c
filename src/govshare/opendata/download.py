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
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import orjson
from sqlalchemy import (
    Column,
    Engine,
    String,
    Table,
    Text,
    bindparam,
    cast,
    event,
    func,
    literal,
    select,
    tuple_,
)
from sqlalchemy.orm import Session

from govshare.db import Prepared
from govshare.opendata.datasets import TABULAR_FORMATS, XLSX_MAX_ROWS, Dataset, OpenType
from govshare.rules.masking import MaskingRule, row_masker
from govshare.rules.spreadsheet import FORMULA_PREFIXES, UTF8_BOM, csv_cell, xlsx_row
from govshare.sharing.models import SharedStore
from govshare.sharing.shared_db import shared_engine
from govshare.sharing.store import SharedDatabase

BATCH_ROWS = 1000
# The most rows offered as XLSX. A sheet holds 1,048,575 below its header, but openpyxl
# writes a few thousand rows a second and the file must be complete before its first
# byte is sent: beyond this the visitor would wait minutes, so larger datasets are
# offered as CSV and JSON only.
MEDIA_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "json": "application/json",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}
_FORMULA_FIRST = frozenset(FORMULA_PREFIXES)
# A CR inside a line is caught by counting line ends, so it needs no search of its own.
_FORMULA_IN_LINE = tuple(p for p in FORMULA_PREFIXES if p != "\r")


@dataclass(frozen=True)
class OpenTable:
    """The readable part of an open dataset's shared store."""

    dataset: Dataset
    table: Table
    key: tuple[Column[Any], ...]  # the store's primary key: the order rows are read in
    columns: tuple[Column[Any], ...]  # the published items the table holds, in item order
    row_count: int  # as the feed last counted it
    masking: tuple[MaskingRule, ...] = ()  # each column's 开放脱敏 rule (none when empty)

    @property
    def formats(self) -> list[str]:
        """The download formats offered (XLSX only up to :data:`XLSX_MAX_ROWS` rows)."""
        fmts = [d.format for d in self.dataset.distributions]
        return [f for f in fmts if f != "XLSX" or self.row_count <= XLSX_MAX_ROWS]

    @property
    def names(self) -> list[str]:
        return [str(c.name) for c in self.columns]

    @property
    def labels(self) -> list[str]:
        by_code = {i.code: i.name for i in self.dataset.items}
        return [by_code[n] for n in self.names]

    @property
    def masked_names(self) -> frozenset[str]:
        """The columns whose values the portal masks (开放脱敏): shown masked, never
        filtered, sorted or counted by value."""
        return frozenset(
            str(c.name)
            for c, rule in zip(self.columns, self.masking, strict=False)
            if rule is not MaskingRule.NONE
        )

    @cached_property
    def mask(self) -> Callable[[Sequence[Any]], tuple[Any, ...]] | None:
        """Masks a row of :attr:`columns` by the items' rules; None when no column is
        masked (rows then go out as the database gives them, the fast paths included)."""
        return row_masker(self.masking)

    def masked(self, rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        """``rows`` of :attr:`columns` as the public may see them."""
        mask = self.mask
        return rows if mask is None else [mask(r) for r in rows]


def rows_withheld_reason(dataset: Dataset, *, granted: bool = False) -> str | None:
    """Why the dataset's rows are not served (in Chinese), or None when they may be.
    ``granted``: the caller's API key holds an approved application for the dataset
    (有条件开放), see :mod:`govshare.opendata.developers`."""
    if dataset.open_type is OpenType.CONDITIONAL and not granted:
        return "该数据集为有条件开放，数据须经开发者申请并获批准后方可获取"
    if dataset.catalog_format not in TABULAR_FORMATS:
        return "该数据集不是表格数据，以部门上传的文件提供"
    return None


def open_table(
    session: Session, shared: SharedDatabase, dataset: Dataset, *, granted: bool = False
) -> OpenTable | None:
    """The dataset's store table, or None when it has no rows to serve (see
    :func:`rows_withheld_reason`, or no store, or a store not yet fed)."""
    if rows_withheld_reason(dataset, granted=granted) is not None:
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
    # A sealed item (字段加密) was sensitive when the store was set up: never opened to
    # the public, even if the catalog no longer marks it so.
    sealed = store.sealed_items or {}
    items = [i for i in dataset.items if i.code in table.c and i.code not in sealed]
    columns = tuple(table.c[i.code] for i in items)
    if not key or not columns:
        return None
    masking = tuple(i.masking for i in items)
    return OpenTable(dataset, table, key, columns, int(store.row_count or 0), masking)


def download_engine(url: str) -> Engine:
    """An engine of the shared-store database for reading stores from end to end: no
    memory mapping and a small page cache per connection (SQLite), so that a download
    of any size leaves the hub's resident memory where it was."""
    engine = shared_engine(url, pool_size=4, mmap_bytes=0)
    if engine.dialect.name == "sqlite":

        def small_cache(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.execute("PRAGMA cache_size=-4096")

        event.listen(engine, "connect", small_cache)
    return engine


def _after(key: Sequence[Column[Any]], prefix: str, op: str) -> Any:
    binds: list[Any] = [bindparam(f"{prefix}{i}") for i in range(len(key))]
    left: Any = tuple_(*key) if len(key) > 1 else key[0]
    right: Any = tuple_(*binds) if len(key) > 1 else binds[0]
    return left > right if op == ">" else left <= right


@dataclass(frozen=True)
class Span:
    """The rows after ``low`` up to and including ``high`` (either None: no bound)."""

    low: tuple[Any, ...] | None
    high: tuple[Any, ...] | None

    def params(self) -> dict[str, Any]:
        out = {f"lo{i}": v for i, v in enumerate(self.low or ())}
        return out | {f"hi{i}": v for i, v in enumerate(self.high or ())}


class Ranges:
    """Keyset batches of a store table: the key of every ``size``-th row is found on the
    key's index alone, then a batch is the rows of one span between two such keys, in
    key order. The key itself is not fetched with the rows, so they need no reshaping in
    Python; a connection is held only while one statement runs."""

    def __init__(self, engine: Engine, t: OpenTable, size: int | None = None) -> None:
        self.engine, self.t, self.size = engine, t, size or BATCH_ROWS
        self._cache: dict[tuple[Any, ...], Prepared] = {}

    def _run(self, stmt: Prepared, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        raw = self.engine.raw_connection()
        try:
            return stmt.rows(raw.dbapi_connection, params)
        finally:
            raw.close()

    def _edge(self, low: bool) -> Prepared:
        wanted = ("edge", low)
        if wanted not in self._cache:
            key = self.t.key
            stmt = select(*key).order_by(*key).offset(self.size - 1).limit(1)
            if low:
                stmt = stmt.where(_after(key, "lo", ">"))
            self._cache[wanted] = Prepared(stmt, self.engine.dialect)
        return self._cache[wanted]

    def _rows(self, what: Sequence[Any], low: bool, high: bool) -> Prepared:
        wanted = ("rows", tuple(id(w) for w in what), low, high)
        if wanted not in self._cache:
            key = self.t.key
            stmt = select(*what).order_by(*key)
            if low:
                stmt = stmt.where(_after(key, "lo", ">"))
            if high:
                stmt = stmt.where(_after(key, "hi", "<="))
            self._cache[wanted] = Prepared(stmt, self.engine.dialect)
        return self._cache[wanted]

    def spans(self) -> Iterator[Span]:
        low: tuple[Any, ...] | None = None
        while True:
            edge = self._run(self._edge(low is not None), Span(low, None).params())
            high = edge[0] if edge else None
            yield Span(low, high)
            if high is None:
                return
            low = high

    def fetch(self, span: Span, what: Sequence[Any]) -> list[tuple[Any, ...]]:
        stmt = self._rows(what, span.low is not None, span.high is not None)
        return self._run(stmt, span.params())


def batches(
    engine: Engine,
    t: OpenTable,
    *,
    size: int | None = None,
    limit: int | None = None,
) -> Iterator[list[tuple[Any, ...]]]:
    """The published columns of the store's rows, ``size`` at a time in key order, at
    most ``limit`` rows, masked where the items say so."""
    ranges = Ranges(engine, t, size)
    served = 0
    for span in ranges.spans():
        rows = t.masked(ranges.fetch(span, t.columns))
        if not rows:
            continue
        if limit is not None and served + len(rows) >= limit:
            yield rows[: limit - served]
            return
        served += len(rows)
        yield rows


def preview(engine: Engine, t: OpenTable, rows: int = 10) -> list[tuple[Any, ...]]:
    """The first ``rows`` rows in key order."""
    return next(batches(engine, t, size=rows, limit=rows), [])


# -- statistics --------------------------------------------------------------------------

STATS_SAMPLE = 10_000
TOP_VALUES = 8
TOP_COLUMNS = 12


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


def column_stats(engine: Engine, t: OpenTable) -> list[ColumnStats]:
    """Blank share and distinct values of each published column, and the most frequent
    values of the unmasked columns whose values repeat (at most :data:`TOP_COLUMNS`), over
    a sample (the first rows in key order) so a page costs the same at any size: one
    statement for the counts, one per column with repeating values."""
    sample = select(*t.columns).order_by(*t.key).limit(STATS_SAMPLE).subquery("sample")
    figures: list[Any] = [func.count()]
    for col in t.columns:
        c = sample.c[col.name]
        blank: Any = c.is_(None)
        if isinstance(col.type, String):
            blank = blank | (func.trim(c) == "")
        figures += [func.count().filter(blank), func.count(func.distinct(c))]
    out: list[ColumnStats] = []
    with engine.connect() as conn:
        counts = [int(v or 0) for v in conn.execute(select(*figures).select_from(sample)).one()]
        sampled = counts[0]
        charted = 0
        for i, (col, label) in enumerate(zip(t.columns, t.labels, strict=True)):
            nulls, distinct = counts[1 + 2 * i], counts[2 + 2 * i]
            top: list[tuple[str, int]] = []
            repeats = distinct and 2 * distinct <= sampled - nulls
            # A masked column's most frequent values would be its values in clear.
            if repeats and col.name not in t.masked_names and charted < TOP_COLUMNS:
                c = sample.c[col.name]
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
                charted += 1
            out.append(ColumnStats(str(col.name), label, sampled, nulls, distinct, top))
    return out


# -- writers -----------------------------------------------------------------------------


def safe_cells(row: Sequence[Any]) -> list[Any]:
    """The row's cells, those a spreadsheet would run as a formula made safe."""
    return [csv_cell(v) if v.__class__ is str and v[:1] in _FORMULA_FIRST else v for v in row]


def _formula_cell(text: str) -> bool:
    """Whether a cell of ``text`` may begin with a formula character: ``text`` holds
    unquoted cells only and CR LF only at line ends (the caller checked). Substring
    searches, a few milliseconds a batch, where checking cell by cell takes far longer."""
    if text[:1] in _FORMULA_FIRST:
        return True
    return any(p in text and ("," + p in text or "\n" + p in text) for p in FORMULA_PREFIXES[:5])


def _as_text(c: Column[Any]) -> Any:
    return func.coalesce(c if isinstance(c.type, String) else cast(c, Text), "")


def csv_chunks(engine: Engine, t: OpenTable) -> Iterator[bytes]:
    """UTF-8 CSV with BOM (Excel reads it as UTF-8): a header of item codes, then rows.

    The database joins each row's cells with commas (NULL as empty, as the csv module
    writes it); a batch in which a cell holds a comma, a quote or a line break, or may
    begin with a formula character, is read again cell by cell and written by the csv
    module with the cells made safe. Both give the same CSV for the same cells. A
    dataset with masked items (开放脱敏) takes the second way for every batch: its cells
    are masked in Python."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(t.names)
    yield (UTF8_BOM + out.getvalue()).encode("utf-8")
    width = len(t.columns)
    parts: list[Any] = []
    for c in t.columns:
        parts += [_as_text(c), literal(",")]
    joined = _concat(parts[:-1])
    ranges = Ranges(engine, t)
    for span in ranges.spans():
        if t.mask is not None:
            out.seek(0)
            out.truncate()
            writer.writerows(safe_cells(r) for r in t.masked(ranges.fetch(span, t.columns)))
            yield out.getvalue().encode("utf-8")
            continue
        lines = [r[0] for r in ranges.fetch(span, [joined])]
        if not lines:
            continue
        text = "\r\n".join(lines) + "\r\n"
        n = len(lines)
        if (
            text.count(",") != n * (width - 1)
            or text.count("\n") != n
            or text.count("\r") != n
            or '"' in text
            or _formula_cell(text)
        ):
            out.seek(0)
            out.truncate()
            writer.writerows(safe_cells(r) for r in ranges.fetch(span, t.columns))
            text = out.getvalue()
        yield text.encode("utf-8")


def _concat(parts: Sequence[Any]) -> Any:
    expr = parts[0]
    for p in parts[1:]:
        expr = expr.op("||")(p)
    return expr


def _json_object(engine: Engine, t: OpenTable) -> Any | None:
    """Each row as a JSON object made by the database, where it can."""
    pairs: list[Any] = []
    for c in t.columns:
        pairs += [literal(str(c.name)), c]
    if engine.dialect.name == "sqlite":
        return func.json_object(*pairs)
    if engine.dialect.name == "postgresql":
        return cast(func.json_build_object(*pairs), Text)
    return None


def json_chunks(engine: Engine, t: OpenTable) -> Iterator[bytes]:
    """A JSON array of objects keyed by item code, written a batch at a time (by the
    database where it can, unless cells must be masked)."""
    made = _json_object(engine, t) if t.mask is None else None
    yield b"["
    sep = ""
    if made is not None:
        ranges = Ranges(engine, t)
        for span in ranges.spans():
            rows = ranges.fetch(span, [made])
            if rows:
                yield (sep + ",".join([r[0] for r in rows])).encode("utf-8")
                sep = ","
    else:
        names = t.names
        for rows in batches(engine, t):
            body = orjson.dumps([dict(zip(names, r, strict=True)) for r in rows], default=str)
            yield sep.encode() + body[1:-1]
            sep = ","
    yield b"]\n"


def xlsx_file(engine: Engine, t: OpenTable, directory: str | None = None) -> str:
    """The rows as an XLSX workbook in a temporary file (openpyxl's write-only mode keeps
    one row in memory at a time); the caller streams the file and removes it."""
    from openpyxl import Workbook

    wb = Workbook(write_only=True)
    ws = wb.create_sheet(title="数据")
    ws.append(t.names)
    for rows in batches(engine, t, limit=XLSX_MAX_ROWS):
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
