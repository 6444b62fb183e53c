"""The row API of open datasets (数据行接口): a page of a 无条件开放 dataset's rows at a
time, with Datasette's conventions — ``_size``, ``_sort`` / ``_sort_desc``, ``_next``
keyset cursors, filters ``col__exact`` / ``col__gt`` / ``col__lt`` / ``col__contains``
(plain ``col=v`` is exact), ``_shape=objects|arrays`` — and a time limit per query.
Items published masked (开放脱敏) are served masked and cannot be filtered or sorted on.

What is open, and which columns, is decided as for downloads: the dataset through
:func:`govshare.opendata.datasets.get_dataset`, its rows and published columns through
:func:`govshare.opendata.download.open_table`. Only those columns can be read, sorted
or filtered on; the store's key is used to break ties and to page, never shown unless
it is a published item.

A ``_next`` cursor is sealed with the hub's :class:`~govshare.cursors.CursorCodec` for
one dataset, sort column and direction, so it cannot be forged, edited or carried over
to another dataset or another sort.
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import orjson
from sqlalchemy import Column, Connection, Engine, String, Text, and_, cast, or_, select, tuple_
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from govshare.cursors import CursorCodec, InvalidCursor, Scalar
from govshare.opendata import datasets as ds
from govshare.opendata import download
from govshare.opendata.errors import QueryTimedOut, RowsError, RowsNotFound
from govshare.sharing.store import SharedDatabase

DEFAULT_SIZE = 100
MAX_SIZE = 1000
MAX_FILTERS = 20
MAX_VALUE_CHARS = 1000
OPERATORS = ("exact", "gt", "lt", "contains")
SHAPES = ("objects", "arrays")
# SQLite calls the progress handler every this many virtual-machine steps: often enough
# to stop within a millisecond or so, rarely enough to cost nothing measurable.
PROGRESS_STEPS = 1000
POSTGRES_QUERY_CANCELED = "57014"
PARAMETERS = ("_size", "_sort", "_sort_desc", "_next", "_shape")


@dataclass(frozen=True)
class RowFilter:
    """One filter: ``column`` compared by ``op`` with ``value`` (already of the column's
    type, except for ``contains``, which is always text)."""

    parameter: str
    column: str
    op: str
    value: Any


@dataclass(frozen=True)
class RowQuery:
    """A parsed call: page size, sort, filters, where to resume, and the shape."""

    size: int = DEFAULT_SIZE
    sort: str | None = None
    descending: bool = False
    filters: tuple[RowFilter, ...] = ()
    after: tuple[Any, ...] | None = None  # the sort value (when sorted) and the key
    shape: str = "objects"


@dataclass(frozen=True)
class RowPage:
    """The rows of one page (published columns only) and the cursor for the next one."""

    table: download.OpenTable
    query: RowQuery
    rows: list[tuple[Any, ...]]
    next: str | None

    def body(self, next_url: str | None) -> bytes:
        """The JSON answer, in Datasette's shape."""
        names = self.table.names
        rows: list[Any] = (
            [dict(zip(names, r, strict=True)) for r in self.rows]
            if self.query.shape == "objects"
            else [list(r) for r in self.rows]
        )
        return orjson.dumps(
            {"ok": True, "rows": rows, "columns": names, "next": self.next, "next_url": next_url},
            default=str,
        )

    def csv(self) -> bytes:
        """A header of item codes and the page's rows, formula cells made safe as in
        downloads (no BOM: pages are read by programs, and may be joined)."""
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(self.table.names)
        writer.writerows(download.safe_cells(r) for r in self.rows)
        return out.getvalue().encode("utf-8")


def open_rows(
    session: Session, shared: SharedDatabase, slug: str, granted: frozenset[int] = frozenset()
) -> download.OpenTable:
    """The dataset's readable rows; :class:`RowsNotFound` (saying why, never repeating
    the name asked for) when the dataset is not 无条件开放 — nor a 有条件开放 one among
    ``granted`` (the resource ids the caller's key was approved for) — or has no rows."""
    found = ds.get_dataset(session, slug)
    if found is None:
        raise RowsNotFound("没有这个开放数据集，或它已不再开放")
    allowed = found.resource_id in granted
    reason = download.rows_withheld_reason(found, granted=allowed)
    if reason is not None:
        raise RowsNotFound(reason)
    table = download.open_table(session, shared, found, granted=allowed)
    if table is None:
        raise RowsNotFound("该数据集暂无数据（共享信息库尚未建立或尚未收到数据）")
    return table


# -- parameters ----------------------------------------------------------------------------


def _cursor_scope(t: download.OpenTable, sort: str | None, descending: bool) -> str:
    return f"open-rows:{t.dataset.resource_id}:{sort or ''}:{'desc' if descending else 'asc'}"


def _python_type(col: Column[Any]) -> type:
    try:
        return col.type.python_type
    except NotImplementedError:
        return str


def _coerce(col: Column[Any], raw: str, parameter: str) -> Any:
    """``raw`` as a value of the column's type; :class:`RowsError` naming the parameter
    when it is not one."""
    kind = _python_type(col)
    try:
        if kind is bool:
            if raw.lower() in ("true", "1"):
                return True
            if raw.lower() in ("false", "0"):
                return False
            raise ValueError(raw)
        if kind is int:
            number = int(raw)
            if not -(2**63) <= number < 2**63:
                raise ValueError(raw)
            return number
        if kind is float:
            return float(raw)
        if kind is Decimal:
            value = Decimal(raw)
            if not value.is_finite():
                raise ValueError(raw)
            return value
        if kind is datetime:
            return datetime.fromisoformat(raw)
        if kind is date:
            return date.fromisoformat(raw)
    except (ValueError, InvalidOperation):
        expected = {
            bool: "true 或 false",
            int: "整数",
            float: "数字",
            Decimal: "数字",
            datetime: "日期时间（如 2024-01-02T08:30:00）",
            date: "日期（如 2024-01-02）",
        }[kind]
        raise RowsError(
            f"参数 {parameter} 的值不正确：列 {col.name} 须为{expected}", parameter=parameter
        ) from None
    return raw


def _to_cursor(value: Any) -> Scalar:
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)


def _from_cursor(col: Column[Any], value: Scalar) -> Any:
    if isinstance(value, str) and _python_type(col) is not str:
        return _coerce(col, value, "_next")
    return value


def _single(key: str, values: list[str]) -> str:
    if len(values) > 1:
        raise RowsError(f"参数 {key} 只能给一次", parameter=key)
    return values[0]


def _size(raw: str) -> int:
    if raw == "max":
        return MAX_SIZE
    if raw.isascii() and raw.isdigit() and 1 <= int(raw) <= MAX_SIZE:
        return int(raw)
    raise RowsError(
        f"参数 _size 须为 1 至 {MAX_SIZE} 的整数，或 max（即 {MAX_SIZE}）", parameter="_size"
    )


def _column(t: download.OpenTable, parameter: str, name: str) -> Column[Any]:
    """The column a filter or a sort names. A masked one (开放脱敏) is refused: comparing
    with its values in clear would tell them one answer at a time."""
    if name not in t.names:
        raise RowsError(
            f"参数 {parameter}：没有名为 {name} 的列，可用的列：{'、'.join(t.names)}",
            parameter=parameter,
        )
    if name in t.masked_names:
        raise RowsError(
            f"参数 {parameter}：列 {name} 的值脱敏发布，不能用于筛选或排序", parameter=parameter
        )
    return t.table.c[name]


def parse_query(
    t: download.OpenTable, codec: CursorCodec, params: Sequence[tuple[str, str]]
) -> RowQuery:
    """The call's query string read against the dataset's published columns;
    :class:`RowsError` naming the parameter for anything it cannot use."""
    special: dict[str, list[str]] = {}
    filters: list[RowFilter] = []
    for key, raw in params:
        if key.startswith("_"):
            if key not in PARAMETERS:
                raise RowsError(
                    f"不支持的参数 {key}，可用的参数：{'、'.join(PARAMETERS)} 和列筛选",
                    parameter=key,
                )
            special.setdefault(key, []).append(raw)
            continue
        if len(raw) > MAX_VALUE_CHARS:
            raise RowsError(f"参数 {key} 的值超过 {MAX_VALUE_CHARS} 个字符", parameter=key)
        if "\x00" in raw:
            raise RowsError(f"参数 {key} 的值含有空字符 (NUL)", parameter=key)
        name, op = key, "exact"
        if key not in t.names and "__" in key:
            name, _, op = key.rpartition("__")
            if op not in OPERATORS:
                raise RowsError(
                    f"参数 {key}：不支持的筛选方式 {op}，可用 {'、'.join(OPERATORS)}",
                    parameter=key,
                )
        col = _column(t, key, name)
        value = raw if op == "contains" else _coerce(col, raw, key)
        filters.append(RowFilter(key, name, op, value))
    if len(filters) > MAX_FILTERS:
        raise RowsError(f"筛选条件最多 {MAX_FILTERS} 个", parameter=filters[MAX_FILTERS].parameter)
    size = _size(_single("_size", special["_size"])) if "_size" in special else DEFAULT_SIZE
    shape = _single("_shape", special["_shape"]) if "_shape" in special else "objects"
    if shape not in SHAPES:
        raise RowsError("参数 _shape 只能是 objects 或 arrays", parameter="_shape")
    if "_sort" in special and "_sort_desc" in special:
        raise RowsError("参数 _sort 和 _sort_desc 只能给一个", parameter="_sort_desc")
    sort: str | None = None
    descending = "_sort_desc" in special
    for key in ("_sort", "_sort_desc"):
        if key in special:
            sort = _single(key, special[key])
            _column(t, key, sort)
    after: tuple[Any, ...] | None = None
    if "_next" in special:
        after = _decode_cursor(t, codec, _single("_next", special["_next"]), sort, descending)
    return RowQuery(size, sort, descending, tuple(filters), after, shape)


def _decode_cursor(
    t: download.OpenTable, codec: CursorCodec, cursor: str, sort: str | None, descending: bool
) -> tuple[Any, ...]:
    ordered = ([t.table.c[sort]] if sort else []) + list(t.key)
    try:
        values = codec.decode(
            _cursor_scope(t, sort, descending), cursor, width=len(ordered), field="_next"
        )
    except InvalidCursor:
        raise RowsError(
            "参数 _next 不是本平台为该数据集和该排序签发的游标：请使用上一页返回的 next",
            parameter="_next",
        ) from None
    return tuple(_from_cursor(c, v) for c, v in zip(ordered, values, strict=True))


# -- the query -----------------------------------------------------------------------------


def _filter_clause(t: download.OpenTable, f: RowFilter) -> Any:
    col = t.table.c[f.column]
    if f.op == "contains":
        text: Any = col if isinstance(col.type, String) else cast(col, Text)
        return text.icontains(f.value, autoescape=True)
    if f.op == "gt":
        return col > f.value
    if f.op == "lt":
        return col < f.value
    return col == f.value


def _key_beyond(key: Sequence[Column[Any]], values: Sequence[Any], descending: bool) -> Any:
    left: Any = tuple_(*key) if len(key) > 1 else key[0]
    right: Any = tuple_(*values) if len(key) > 1 else values[0]
    return left < right if descending else left > right


def _resume_clause(t: download.OpenTable, q: RowQuery) -> Any:
    """The rows after the cursor's row in the page order: by the sort column with NULLs
    last (first when descending, the exact reverse), ties by the store key."""
    assert q.after is not None
    if q.sort is None:
        return _key_beyond(t.key, q.after, q.descending)
    col = t.table.c[q.sort]
    value, key = q.after[0], q.after[1:]
    beyond = _key_beyond(t.key, key, q.descending)
    if q.descending:
        if value is None:
            return or_(col.is_not(None), and_(col.is_(None), beyond))
        return or_(col < value, and_(col == value, beyond))
    if value is None:
        return and_(col.is_(None), beyond)
    return or_(col > value, and_(col == value, beyond), col.is_(None))


def page_statement(t: download.OpenTable, q: RowQuery) -> Any:
    """The page's select: the published columns, then the sort value and the key (for the
    next cursor), one row more than the page to tell whether another page follows."""
    sort_col = t.table.c[q.sort] if q.sort else None
    ordered: list[Column[Any]] = ([sort_col] if sort_col is not None else []) + list(t.key)
    stmt = select(*t.columns, *[c.label(f"_cursor{i}") for i, c in enumerate(ordered)])
    for f in q.filters:
        stmt = stmt.where(_filter_clause(t, f))
    if q.after is not None:
        stmt = stmt.where(_resume_clause(t, q))
    order: list[Any] = []
    if sort_col is not None:
        order = [sort_col.is_(None), sort_col]
    order += list(t.key)
    if q.descending:
        order = [o.desc() for o in order]
    return stmt.order_by(*order).limit(q.size + 1)


@contextmanager
def time_limited(engine: Engine, limit_ms: int) -> Iterator[Connection]:
    """A connection whose statements are stopped after ``limit_ms`` milliseconds:
    SQLite's progress handler on this connection (removed before it returns to the
    pool), PostgreSQL's ``statement_timeout`` for this transaction only. A stopped
    statement raises :class:`QueryTimedOut`."""
    try:
        with engine.connect() as conn:
            if conn.dialect.name == "sqlite":
                raw: Any = conn.connection.dbapi_connection
                deadline = time.monotonic() + limit_ms / 1000

                def past_deadline() -> int:
                    return int(time.monotonic() > deadline)

                raw.set_progress_handler(past_deadline, PROGRESS_STEPS)
                try:
                    yield conn
                finally:
                    raw.set_progress_handler(None, PROGRESS_STEPS)
            else:
                with conn.begin():
                    conn.exec_driver_sql(f"SET LOCAL statement_timeout = {int(limit_ms)}")
                    yield conn
    except DBAPIError as exc:
        if _timed_out(exc):
            raise QueryTimedOut(
                f"查询超时：超过了 {limit_ms} 毫秒的时间限制，请缩小筛选范围"
                "（如用 __exact 代替 __contains）或减小 _size"
            ) from None
        raise


def _timed_out(exc: DBAPIError) -> bool:
    orig = exc.orig
    if getattr(orig, "sqlstate", None) == POSTGRES_QUERY_CANCELED:
        return True
    return orig.__class__.__module__ == "sqlite3" and str(orig) == "interrupted"


def fetch_page(
    engine: Engine, t: download.OpenTable, q: RowQuery, codec: CursorCodec, *, time_limit_ms: int
) -> RowPage:
    """One page of rows, within the time limit, and the cursor of the next page (None
    on the last)."""
    stmt = page_statement(t, q)
    with time_limited(engine, time_limit_ms) as conn:
        fetched = [tuple(r) for r in conn.execute(stmt).all()]
    width = len(t.columns)
    more = len(fetched) > q.size
    fetched = fetched[: q.size]
    cursor = None
    if more and fetched:
        last = [_to_cursor(v) for v in fetched[-1][width:]]
        cursor = codec.encode(_cursor_scope(t, q.sort, q.descending), last)
    return RowPage(t, q, t.masked([r[:width] for r in fetched]), cursor)
