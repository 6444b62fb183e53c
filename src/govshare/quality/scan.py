"""质量检测: a scan of a shared store (共享信息库) measuring completeness, validity,
uniqueness, timeliness and consistency, and the entry point that scans the stores that
are due.

The database settles the values that surely pass (:mod:`govshare.quality.pushdown`):
one pass counts each item's non-NULL values, and only the rows with a value it leaves
unsure are read back, in primary-key order, a batch at a time (keyset paging), for the
Python checks; memory stays bounded whatever the table's size. Duplicate keys are found
by the database (GROUP BY … HAVING) and streamed. Failing values are kept up to a cap per
scan; those beyond it are counted (``problems_dropped``) and still lower the scores.

Scores are 0–100: for completeness, validity and uniqueness the share of checked
values that passed; timeliness is 100 on time and 0 late; consistency comes from a
provider the base-database side registers (None while nobody provides it). The overall
score is the mean of the dimensions that apply.
"""

from __future__ import annotations

import itertools
import queue
import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from functools import partial
from typing import Any, Generic, Protocol, TypeVar

import pyarrow as pa
import structlog
from sqlalchemy import (
    ColumnElement,
    Label,
    RowMapping,
    String,
    Table,
    and_,
    case,
    false,
    func,
    insert,
    literal,
    or_,
    select,
    tuple_,
)
from sqlalchemy.orm import Session

from govshare.catalog.models import Resource
from govshare.config import Settings
from govshare.quality.models import (
    Dimension,
    ItemFormat,
    QualityProblem,
    QualityScan,
    ScanStatus,
)
from govshare.quality.pushdown import Conditions
from govshare.quality.service import (
    RuleSpec,
    code_tables,
    hidden_message,
    rule_specs,
    sealed_masking,
)
from govshare.rules import validators as v
from govshare.rules.masking import MaskingRule, mask
from govshare.sharing.models import SharedStore
from govshare.sharing.shared_db import unmapped
from govshare.sharing.store import SharedDatabase

log = structlog.get_logger()

PROBLEM_CAP = 100_000
BATCH_ROWS = 5000
# Readers of one scan's rows at once, each a primary-key range of the table (tables of
# at least RANGE_MIN_ROWS rows per range): the checks run in the database, a core each.
RANGES = 2
RANGE_MIN_ROWS = 50_000
MAX_AGE = timedelta(hours=24)
# A scan still running after this long was cut short (its process died).
RUNNING_STALE = timedelta(hours=1)

# Days without a package after which a resource is late (滞后), by declared update
# cycle (更新周期): the cycle itself and two days' grace, so a 每日 resource silent for
# three days is late and one silent for a day is not. 不定期 resources are never late.
LATE_AFTER_DAYS: dict[str, int] = {
    "realtime": 1,
    "daily": 3,
    "weekly": 9,
    "monthly": 33,
    "quarterly": 94,
    "semiannual": 185,
    "yearly": 368,
}


# -- consistency (一致性), provided by the base databases -----------------------------------


@dataclass(frozen=True, slots=True)
class Finding:
    """A value that disagrees with the authoritative source (多元校核)."""

    row_key: str
    item_code: str
    value: Any
    message: str
    rule: str = "consistency"


class ConsistencyCheck(Protocol):
    """Compares one batch of a store's rows (item code → value, sealed items opened)
    with the authoritative sources; returns how many values it compared and those that
    disagree. A finding on a sealed item is kept masked (its key too, when the store's
    key is sealed)."""

    def __call__(self, rows: Sequence[Mapping[str, Any]]) -> tuple[int, list[Finding]]: ...


ConsistencyProvider = Callable[[Session, SharedDatabase, SharedStore], ConsistencyCheck | None]
"""Given a store (and the database of the shared stores), the check of its batches, or
None when no authoritative source covers it (its consistency score is then None,
shown as —)."""

_providers: list[ConsistencyProvider] = []


def register_consistency(provider: ConsistencyProvider) -> None:
    """Called once at start-up by the domain that knows the authoritative sources (the
    base databases), so quality need not import it."""
    if provider not in _providers:
        _providers.append(provider)


def _consistency_check(
    session: Session, db: SharedDatabase, store: SharedStore, given: ConsistencyProvider | None
) -> ConsistencyCheck | None:
    for provider in [given] if given is not None else list(_providers):
        check = provider(session, db, store)
        if check is not None:
            return check
    return None


# -- timeliness (及时性) --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Timeliness:
    silent_days: float | None
    late: bool | None
    score: float | None


def timeliness(update_cycle: str, last_package: datetime | None, now: datetime) -> Timeliness:
    """How long the store has gone without a package against the resource's update
    cycle. ``now`` is given, never read from the clock here."""
    if last_package is None:
        return Timeliness(None, None, None)
    silent = (now - last_package).total_seconds() / 86400
    limit = LATE_AFTER_DAYS.get(update_cycle)
    if limit is None:
        return Timeliness(round(silent, 2), None, None)
    late = silent >= limit
    return Timeliness(round(silent, 2), late, 0.0 if late else 100.0)


# -- one scan ---------------------------------------------------------------------------------


def _text(value: Any) -> str:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return format(value, "f")
    return str(value)


MEMO = 20_000
_UNSEEN = object()


@dataclass
class _Check:
    """A rule ready to run on one column: the validity checks in order."""

    spec: RuleSpec
    codes: Mapping[str, str]
    table_title: str
    _memo: dict[tuple[type, Any], Any] = field(default_factory=dict)

    @property
    def validates(self) -> bool:
        return bool(self.spec.data_type) or self.spec.format is not ItemFormat.NONE

    def problem(self, value: Any) -> tuple[str, str] | None:
        """(rule, message) of the first check the non-blank value fails. The checks are
        pure, and most columns repeat a few values (codes, dates, statuses): answers are
        remembered, up to ``MEMO`` distinct values per column."""
        memo_key = (type(value), value)
        found = self._memo.get(memo_key, _UNSEEN)
        if found is _UNSEEN:
            found = self._problem(value)
            if len(self._memo) < MEMO:
                self._memo[memo_key] = found
        return found  # type: ignore[return-value]

    def _problem(self, value: Any) -> tuple[str, str] | None:
        spec = self.spec
        if spec.data_type:
            found = v.type_problem(value, spec.data_type, spec.max_length)
            if found:
                return "type", found
        text = v.normalize_text(_text(value))
        fmt = spec.format
        found = None
        if fmt is ItemFormat.CITIZEN_ID:
            found = v.citizen_id_problem(text)
        elif fmt is ItemFormat.CREDIT_CODE:
            found = v.credit_code_problem(text)
        elif fmt is ItemFormat.DIVISION:
            found = v.division_code_problem(text)
        elif fmt is ItemFormat.SEX:
            found = v.sex_code_problem(text, self.codes or v.SEX_CODES)
        elif fmt is ItemFormat.CODE_TABLE:
            found = v.code_problem(text, self.codes, table=self.table_title)
        elif fmt is ItemFormat.DATE:
            found = v.date_range_problem(value, earliest=spec.date_min, latest=spec.date_max)
        elif fmt is ItemFormat.DATETIME:
            found = v.datetime_problem(value)
            if found is None and (spec.date_min or spec.date_max):
                found = v.date_range_problem(value, earliest=spec.date_min, latest=spec.date_max)
        elif fmt is ItemFormat.PHONE:
            found = v.phone_problem(text)
        return (fmt.value, found) if found else None


@dataclass
class _Tally:
    checked: int = 0
    failed: int = 0

    def score(self) -> float | None:
        if not self.checked:
            return None
        return round(100.0 * (self.checked - self.failed) / self.checked, 2)


def _hidden(hidden: Mapping[str, MaskingRule], column: str, value: Any) -> str:
    """A value's text as a problem row keeps it: masked when its column is sealed."""
    text = _text(value)
    rule = hidden.get(column)
    return text if rule is None or v.is_blank(text) else str(mask(rule, text))


@dataclass
class _Problems:
    """Failing values of one scan, written a batch at a time up to the cap.

    ``hidden`` holds the store's sealed items (字段加密) with the rule their values are
    masked by: a failing value of one is kept masked, its message too, never in the
    clear (nor as its sealed cell) in the hub database. Blanks are kept as they are."""

    session: Session
    scan_id: int
    cap: int
    commit: bool = False
    hidden: Mapping[str, MaskingRule] = field(default_factory=dict)
    kept: int = 0
    dropped: int = 0
    pending: list[dict[str, Any]] = field(default_factory=list)

    def add(
        self, dimension: Dimension, row_key: str, item: str, value: Any, rule: str, message: str
    ) -> None:
        """Keep a failing value; ``row_key`` as :func:`_row_key` gives it (masked
        already), ``value`` and ``message`` as found."""
        if self.kept >= self.cap:
            self.dropped += 1
            return
        self.kept += 1
        if value is not None and item in self.hidden:
            text = _text(value)
            shown = _hidden(self.hidden, item, value)
            if shown != text:
                # The validators word the value as read, stripped, normalised or as
                # the date it states.
                forms = [text, str(value).strip(), v.normalize_text(text)]
                forms.append(v.normalize_date(value) or "")
                message = hidden_message(message, forms, shown)
                value = shown
        self.pending.append(
            {
                "scan_id": self.scan_id,
                "dimension": dimension.value,
                "row_key": row_key[:200],
                "item_code": item[:60],
                "value": None if value is None else _text(value)[:2000],
                "rule": rule[:20],
                "message": message[:300],
            }
        )

    def flush(self) -> None:
        if self.pending:
            self.session.execute(insert(QualityProblem), self.pending)
            self.pending = []
            if self.commit:
                # Batch by batch: on SQLite a scan must not hold the hub's write lock
                # for its whole length.
                self.session.commit()


def _batches(
    db: SharedDatabase,
    table: Table,
    columns: Sequence[ColumnElement[Any]],
    conds: Sequence[ColumnElement[bool]],
    size: int,
    sealed: Mapping[str, str] | None = None,
) -> Iterator[Sequence[Mapping[Any, Any]]]:
    """The table's rows (``columns`` of them, the primary key among them) that meet
    ``conds``, in primary-key order, ``size`` at a time (keyset paging: each batch is
    its own short query, so no read transaction stays open across the scan); the
    columns of ``sealed`` (column → the type its values had) opened."""
    order = list(table.primary_key.columns)
    if not order:
        with unmapped(db.engine) as conn:
            result = conn.execution_options(stream_results=True, yield_per=size).execute(
                select(*columns).where(*conds)
            )
            for part in result.partitions(size):
                yield _opened(db, sealed, [r._mapping for r in part])
        return
    last: tuple[Any, ...] | None = None
    while True:
        q = select(*columns).where(*conds).order_by(*order).limit(size)
        if last is not None:
            q = q.where(tuple_(*order) > tuple_(*last) if len(order) > 1 else order[0] > last[0])
        with unmapped(db.engine) as conn:
            rows = [r._mapping for r in conn.execute(q).all()]
        if not rows:
            return
        last = tuple(rows[-1][c.name] for c in order)  # as stored: sealed cells stay so
        yield _opened(db, sealed, rows)
        if len(rows) < size:
            return


def _opened(
    db: SharedDatabase, sealed: Mapping[str, str] | None, rows: list[RowMapping]
) -> Sequence[Mapping[Any, Any]]:
    """The rows with their sealed columns opened, a column at a time (字段加密)."""
    names = [n for n in sealed or {} if rows and n in rows[0]]
    if not sealed or not names:
        return rows
    sealer = db.sealer
    out = [dict(r) for r in rows]
    for name in names:
        cells = pa.array([r[name] for r in rows], pa.string())
        values = sealer.open_array(cells, sealed[name]).to_pylist()
        for row, value in zip(out, values, strict=True):
            row[name] = value
    return out


def _ranges(db: SharedDatabase, table: Table, parts: int) -> list[list[ColumnElement[bool]]]:
    """The table cut into ``parts`` consecutive primary-key ranges of about as many
    rows (one range for a small table or one without a primary key)."""
    order = list(table.primary_key.columns)
    if parts < 2 or not order:
        return [[]]
    key = tuple_(*order) if len(order) > 1 else order[0]
    bounds: list[Any] = []
    with unmapped(db.engine) as conn:
        total = conn.execute(select(func.count()).select_from(table)).scalar_one()
        if total < parts * RANGE_MIN_ROWS:
            return [[]]
        for j in range(1, parts):
            q = select(*order).order_by(*order).offset(total * j // parts).limit(1)
            found = conn.execute(q).first()
            if found is not None:
                bounds.append(tuple_(*found) if len(order) > 1 else found[0])
    out: list[list[ColumnElement[bool]]] = []
    for j in range(len(bounds) + 1):
        conds = []
        if j > 0:
            conds.append(key >= bounds[j - 1])
        if j < len(bounds):
            conds.append(key < bounds[j])
        out.append(conds)
    return out


_T = TypeVar("_T")


class _Ahead(Generic[_T]):
    """Runs an iterator in a thread of its own from the moment it is made, at most
    ``depth`` items ahead of its reader (so memory stays bounded). Several started
    together read the database at once: with the checks in the database a scan is
    its queries, and SQLite and psycopg let other threads run while they wait."""

    _END = object()

    def __init__(self, produce: Callable[[], Iterator[_T]], depth: int = 2) -> None:
        self._queue: queue.Queue[tuple[object, Any]] = queue.Queue(depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(produce,), daemon=True)
        self._thread.start()

    def _put(self, item: tuple[object, Any]) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self, produce: Callable[[], Iterator[_T]]) -> None:
        try:
            items = produce()
            try:
                for item in items:
                    if not self._put((None, item)):
                        return
            finally:
                close = getattr(items, "close", None)
                if close is not None:
                    close()
        except BaseException as exc:  # handed to the reader, raised there
            self._put((self._END, exc))
            return
        self._put((self._END, None))

    def __iter__(self) -> Iterator[_T]:
        try:
            while True:
                tag, item = self._queue.get()
                if tag is self._END:
                    if item is not None:
                        raise item
                    return
                yield item
        finally:
            self._stop.set()

    def close(self) -> None:
        """Stops the thread (a reader that gives up early)."""
        self._stop.set()
        self._thread.join()


def _row_key(
    row: Mapping[Any, Any],
    key_item: str,
    pk: Sequence[str],
    hidden: Mapping[str, MaskingRule] | None = None,
) -> str:
    """The record's key as a problem row names it (the primary key when the key is
    blank); sealed columns' values (``hidden``) masked."""
    hidden = hidden or {}
    value = row.get(key_item)
    if not v.is_blank(value):
        return _hidden(hidden, key_item, value)
    return "|".join(_hidden(hidden, c, row[c]) for c in pk)


@dataclass
class _Pushdown:
    """What the database settles in a scan (see :mod:`govshare.quality.pushdown`).

    ``flags`` read 1 where a row's value surely passes its item's checks (the items
    that can count or fail, ``active``, in order; then the key's presence, when the
    store has its key column); ``unsure`` holds for the rows that need Python: a value
    not surely passing, other than an optional item's NULL (nothing to check). The
    other rows are never read: their passing values are the non-NULL ones, counted
    with ``count(column)``."""

    flags: list[Label[int]]
    unsure: ColumnElement[bool] | None  # None: every row

    @classmethod
    def of(
        cls,
        db: SharedDatabase,
        table: Table,
        active: Sequence[_Check],
        key_item: str | None,
        sealed: Collection[str] = (),
    ) -> _Pushdown:
        """``sealed``: the columns holding sealed cells (字段加密). The database sees
        only ``~…`` text there, so none of their values is settled in it (each is read
        back and opened); only NULL, which stays NULL, is known."""
        conditions = Conditions(db.engine.dialect)
        accepted: list[ColumnElement[bool] | None] = []
        settled: list[ColumnElement[bool] | None] = []
        for c in active:
            col = table.c[c.spec.item_code]
            ok = (
                None
                if c.spec.item_code in sealed
                else conditions.accepted(c.spec, c.codes, col, c.problem)
            )
            accepted.append(ok)
            if c.spec.required:
                settled.append(ok)
            else:
                settled.append(col.is_(None) if ok is None else or_(col.is_(None), ok))
        if key_item is not None:
            key = table.c[key_item]
            present = None
            if conditions.supported and isinstance(key.type, String) and key_item not in sealed:
                present = conditions.present(key)
            accepted.append(present)
            as_item = [
                ok for c, ok in zip(active, accepted, strict=False) if c.spec.item_code == key_item
            ]
            if not (as_item and as_item[0] is not None):
                settled.append(key.is_(None) if present is None else or_(key.is_(None), present))
            # else the key's own rule settles it already: a value it accepts is present.
        flags = [
            (literal(0) if ok is None else case((ok, 1), else_=0)).label(f"_quality_{i}")
            for i, ok in enumerate(accepted)
        ]
        unsure: ColumnElement[bool] | None
        if not settled:
            unsure = false()
        elif any(s is None for s in settled):
            unsure = None
        else:
            # A CASE, so a condition that comes out NULL counts as unsure.
            unsure = case((and_(*settled), 1), else_=0) == 0  # type: ignore[arg-type]
        return cls(flags, unsure)


@dataclass
class _RowCheck:
    """The Python checks of the values the database left unsure, and the tallies.

    ``present`` starts as the non-NULL values of each active item (then of the key)
    in the whole table; every non-NULL value checked here is taken off, so what is
    left are the values that passed in the database."""

    active: Sequence[_Check]
    key_item: str
    has_key: bool
    pk: Sequence[str]
    problems: _Problems
    complete: _Tally
    valid: _Tally
    unique: _Tally
    present: list[int]

    def __call__(self, row: Mapping[Any, Any], flags: Sequence[int]) -> None:
        key: str | None = None
        if self.has_key and not flags[-1]:
            value = row[self.key_item]
            if value is not None:
                self.present[-1] -= 1
            if not v.is_blank(value):
                self.unique.checked += 1
        for i, c in enumerate(self.active):
            if flags[i]:
                continue
            code = c.spec.item_code
            value = row[code]
            if value is not None:
                self.present[i] -= 1
            if v.is_blank(value):
                if c.spec.required:
                    self.complete.checked += 1
                    self.complete.failed += 1
                    key = key or _row_key(row, self.key_item, self.pk, self.problems.hidden)
                    self.problems.add(
                        Dimension.COMPLETENESS, key, code, value, "required", "必填项为空"
                    )
                continue
            if c.spec.required:
                self.complete.checked += 1
            if not c.validates:
                continue
            self.valid.checked += 1
            found = c.problem(value)
            if found:
                self.valid.failed += 1
                key = key or _row_key(row, self.key_item, self.pk, self.problems.hidden)
                self.problems.add(Dimension.VALIDITY, key, code, value, *found)

    def count_settled(self) -> None:
        """Adds the values that passed in the database (call after the last row)."""
        for c, passed in zip(self.active, self.present, strict=False):
            if c.spec.required:
                self.complete.checked += passed
            if c.validates:
                self.valid.checked += passed
        if self.has_key:
            self.unique.checked += self.present[-1]


def _present(db: SharedDatabase, table: Table, columns: Sequence[str]) -> tuple[int, list[int]]:
    """The table's rows and the non-NULL values of each column, in one cheap pass."""
    with unmapped(db.engine) as conn:
        total, *counts = conn.execute(
            select(func.count(), *(func.count(table.c[c]) for c in columns)).select_from(table)
        ).one()
    return int(total), [int(n) for n in counts]


def _duplicate_rows(
    db: SharedDatabase, table: Table, key_item: str, kind: str | None = None
) -> Iterator[list[tuple[Any, int, bool]]]:
    """Rows whose key is also another row's, a batch at a time: (key, rows holding
    it, whether this row is a copy: every one after the first of its key, in
    primary-key order — the first is presumed the record).

    A sealed key (``kind``: the type its values had) is grouped as its cells, equal
    values sealing equal; its keys are given back opened, and a key that opens to
    spaces only is left out, as the database leaves out such a key in the clear."""
    key = table.c[key_item]
    present: list[ColumnElement[bool]] = [key.isnot(None)]
    if isinstance(key.type, String):
        present.append(func.trim(key) != "")
    dup = (
        select(key.label("k"), func.count().label("n"))
        .where(*present)
        .group_by(key)
        .having(func.count() > 1)
        .subquery()
    )
    order = list(table.primary_key.columns)
    q = select(key, dup.c.n, *order).join(dup, dup.c.k == key).order_by(key, *order)
    previous: Any = object()
    sealer = db.sealer if kind is not None else None
    opened: tuple[Any, Any] = (object(), None)  # the last cell and its value: one open a key
    with unmapped(db.engine) as conn:
        result = conn.execution_options(stream_results=True, yield_per=BATCH_ROWS).execute(q)
        for part in result.partitions(BATCH_ROWS):
            out = []
            for row in part:
                value = row[0]
                if sealer is not None:
                    if opened[0] != value:
                        opened = (value, sealer.open_value(value, kind))
                    value = opened[1]
                if not (isinstance(value, str) and value.strip(" ") == ""):
                    out.append((value, row[1], row[0] == previous))
                previous = row[0]
            yield out


def _duplicates(
    rows: Iterable[list[tuple[Any, int, bool]]],
    key_item: str,
    problems: _Problems,
    tally: _Tally,
) -> None:
    for part in rows:
        for value, n, copy in part:
            if copy:
                tally.failed += 1
                problems.add(
                    Dimension.UNIQUENESS,
                    _hidden(problems.hidden, key_item, value),
                    key_item,
                    value,
                    "unique",
                    f"查询键 {_text(value)} 在共享信息库中出现 {n} 次",
                )
        problems.flush()


def scan_store(
    session: Session,
    db: SharedDatabase,
    store: SharedStore,
    *,
    now: datetime,
    trigger: str = "manual",
    batch_rows: int = BATCH_ROWS,
    problem_cap: int = PROBLEM_CAP,
    consistency: ConsistencyProvider | None = None,
    commit: bool = False,
) -> QualityScan:
    """Scan one store and keep the scan with its failing values. In the caller's
    transaction, or with ``commit`` in several: the running scan first (so other hub
    processes leave the store alone), then each batch's failing values, then the
    result; a scan that fails is then kept as failed, with its error, and re-raised."""
    resource = session.get(Resource, store.resource_id)
    assert resource is not None  # a store's resource is never deleted (foreign key)
    scan = QualityScan(
        store_id=store.id,
        resource_id=resource.id,
        department_id=resource.provider_department_id,
        trigger=trigger,
        status=ScanStatus.RUNNING,
        started_at=now,
        applied_seq=store.applied_seq,
        applied_at=store.applied_at,
        update_cycle=resource.update_cycle,
    )
    session.add(scan)
    session.flush()
    scan_id = scan.id
    if commit:
        session.commit()  # the claim: other hub processes see the scan running
    try:
        _measure(
            session,
            db,
            store,
            resource,
            scan,
            now=now,
            batch_rows=batch_rows,
            problem_cap=problem_cap,
            consistency=consistency,
            commit=commit,
        )
    except Exception as exc:
        if not commit:
            raise
        session.rollback()
        failed = session.get(QualityScan, scan_id)
        if failed is not None:
            failed.status = ScanStatus.FAILED
            failed.error = f"{type(exc).__name__}: {exc}"[:2000]
            failed.finished_at = now
            session.commit()
        raise
    session.flush()
    if commit:
        session.commit()
    return scan


def _measure(
    session: Session,
    db: SharedDatabase,
    store: SharedStore,
    resource: Resource,
    scan: QualityScan,
    *,
    now: datetime,
    batch_rows: int,
    problem_cap: int,
    consistency: ConsistencyProvider | None,
    commit: bool,
) -> None:
    began = time.monotonic()
    problems = _Problems(session, scan.id, problem_cap, commit=commit)
    complete, valid, unique, consistent = _Tally(), _Tally(), _Tally(), _Tally()
    rows = 0
    table = db.table(store.table_name)
    check = _consistency_check(session, db, store, consistency)
    if table is not None:
        specs = [s for s in rule_specs(session, resource) if s.item_code in table.c]
        tables = code_tables(
            session,
            {s.code_table for s in specs if s.format is ItemFormat.CODE_TABLE and s.code_table}
            | ({"GB/T 2261.1"} if any(s.format is ItemFormat.SEX for s in specs) else set()),
        )
        checks = [
            _Check(
                s,
                tables.get(
                    s.code_table or ("GB/T 2261.1" if s.format is ItemFormat.SEX else ""), {}
                ),
                f"代码表 {s.code_table}",
            )
            for s in specs
        ]
        pk = [c.name for c in table.primary_key.columns]
        has_key = store.key_item in table.c
        # 字段加密: the columns holding sealed cells, each with the type its values had.
        sealed = {n: kind for n, kind in (store.sealed_items or {}).items() if n in table.c}
        problems.hidden = sealed_masking(resource, specs, sealed)
        # Items that can count or fail: a blank optional item without a type or format
        # rule is nobody's business.
        active = [c for c in checks if c.spec.required or c.validates]
        plan = _Pushdown.of(db, table, active, store.key_item if has_key else None, sealed)
        counted = [c.spec.item_code for c in active] + ([store.key_item] if has_key else [])
        # The counts, the duplicate keys and (with no consistency check, which wants
        # its batches as ever) each range of rows are read at once, each by its own
        # thread; their results are taken in the scan's order.
        counting = _Ahead(lambda: iter([_present(db, table, counted)]), depth=1)
        ahead: list[_Ahead[Any]] = [counting]
        duplicates = None
        if has_key:
            duplicates = _Ahead(
                lambda: _duplicate_rows(db, table, store.key_item, sealed.get(store.key_item))
            )
            ahead.append(duplicates)
        try:
            # Only the values the database left unsure are read back, unless a consistency
            # check wants every row (in the same batches as ever).
            columns: list[ColumnElement[Any]]
            if check is None:
                columns = [
                    *table.primary_key.columns,
                    *([table.c[store.key_item]] if has_key else []),
                    *(table.c[c.spec.item_code] for c in active),
                ]
                where = [] if plan.unsure is None else [plan.unsure]
                ranges = _ranges(db, table, RANGES)
            else:
                columns, where, ranges = list(table.c), [], [[]]
            columns = [*{c.name: c for c in columns}.values(), *plan.flags]
            readers = [
                _Ahead(partial(_batches, db, table, columns, [*where, *r], batch_rows, sealed))
                for r in ranges
            ]
            ahead.extend(readers)
            [(rows, present)] = list(counting)
            row_check = _RowCheck(
                active, store.key_item, has_key, pk, problems, complete, valid, unique, present
            )
            for batch in itertools.chain.from_iterable(readers):
                for row in batch:
                    flags = [row[f.name] for f in plan.flags]
                    if not all(flags):
                        row_check(row, flags)
                if check is not None:
                    names = [c.name for c in table.c]
                    compared, findings = check([{n: r[n] for n in names} for r in batch])
                    consistent.checked += compared
                    consistent.failed += len(findings)
                    for f in findings:
                        problems.add(
                            Dimension.CONSISTENCY,
                            _hidden(problems.hidden, store.key_item, f.row_key),
                            f.item_code,
                            f.value,
                            f.rule,
                            f.message,
                        )
                problems.flush()
            row_check.count_settled()
            if duplicates is not None:
                _duplicates(duplicates, store.key_item, problems, unique)
        finally:
            # A scan that failed leaves no reader behind.
            for reader in ahead:
                reader.close()
    # A store that never received a package has been silent since it was set up.
    timely = timeliness(resource.update_cycle, store.applied_at or store.created_at, now)
    scan.rows_scanned = rows
    scan.completeness_checked, scan.completeness_failed = complete.checked, complete.failed
    scan.completeness_score = complete.score()
    scan.validity_checked, scan.validity_failed = valid.checked, valid.failed
    scan.validity_score = valid.score()
    scan.uniqueness_checked, scan.uniqueness_failed = unique.checked, unique.failed
    scan.uniqueness_score = unique.score()
    scan.silent_days, scan.late, scan.timeliness_score = (
        timely.silent_days,
        timely.late,
        timely.score,
    )
    scan.consistency_checked, scan.consistency_failed = consistent.checked, consistent.failed
    scan.consistency_score = consistent.score() if check is not None else None
    scores = [
        s
        for s in (
            scan.completeness_score,
            scan.validity_score,
            scan.uniqueness_score,
            scan.timeliness_score,
            scan.consistency_score,
        )
        if s is not None
    ]
    scan.overall_score = round(sum(scores) / len(scores), 2) if scores else None
    scan.problems_kept, scan.problems_dropped = problems.kept, problems.dropped
    scan.status = ScanStatus.DONE
    # The scan's own clock is ``now``; its duration is real time, measured.
    scan.finished_at = now + timedelta(seconds=time.monotonic() - began)


# -- what is due -------------------------------------------------------------------------------


def due_stores(session: Session, now: datetime, *, max_age: timedelta = MAX_AGE) -> list[int]:
    """Stores whose data changed since their last scan (a package was applied), or
    whose last scan is older than ``max_age``, or that were never scanned; not those
    another process is scanning now."""
    newest = (
        select(QualityScan.store_id, func.max(QualityScan.id).label("id"))
        .group_by(QualityScan.store_id)
        .subquery()
    )
    last = {
        scan.store_id: scan
        for scan in session.scalars(select(QualityScan).join(newest, newest.c.id == QualityScan.id))
    }
    due = []
    for store_id, seq in session.execute(
        select(SharedStore.id, SharedStore.applied_seq).order_by(SharedStore.id)
    ):
        scan = last.get(store_id)
        if scan is None:
            due.append(store_id)
        elif scan.status is ScanStatus.RUNNING and now - scan.started_at < RUNNING_STALE:
            continue  # another hub process is scanning it
        elif scan.applied_seq != seq or now - scan.started_at >= max_age:
            due.append(store_id)
        elif scan.status is ScanStatus.RUNNING:
            due.append(store_id)  # a scan cut short (the process died): start again
    return due


def run_due_scans(
    session: Session,
    shared_db: SharedDatabase,
    now: datetime,
    *,
    max_age: timedelta = MAX_AGE,
    batch_rows: int = BATCH_ROWS,
    problem_cap: int = PROBLEM_CAP,
    consistency: ConsistencyProvider | None = None,
) -> list[QualityScan]:
    """Scan every store that is due (see :func:`due_stores`), committing after each so
    a long run keeps what it did; a scan that fails is kept as failed with its error
    and the others go on. The hub's background worker calls this after feeding."""
    done = []
    for store_id in due_stores(session, now, max_age=max_age):
        store = session.get(SharedStore, store_id)
        if store is None:
            continue
        last_seq = session.scalar(
            select(QualityScan.applied_seq)
            .where(QualityScan.store_id == store_id)
            .order_by(QualityScan.id.desc())
            .limit(1)
        )
        trigger = "feed" if last_seq is not None and last_seq != store.applied_seq else "schedule"
        try:
            scan = scan_store(
                session,
                shared_db,
                store,
                now=now,
                trigger=trigger,
                batch_rows=batch_rows,
                problem_cap=problem_cap,
                consistency=consistency,
                commit=True,
            )
        except Exception:
            # scan_store kept it as failed with its error; the other stores go on.
            log.exception("quality scan failed", store_id=store_id)
            session.rollback()
            failed = session.scalars(
                select(QualityScan)
                .where(QualityScan.store_id == store_id)
                .order_by(QualityScan.id.desc())
                .limit(1)
            ).first()
            if failed is not None:
                done.append(failed)
            continue
        done.append(scan)
    return done


def run_due_scans_by_settings(
    session: Session, shared_db: SharedDatabase, now: datetime, settings: Settings
) -> list[QualityScan]:
    """:func:`run_due_scans` with the limits of the hub's settings."""
    return run_due_scans(
        session,
        shared_db,
        now,
        max_age=timedelta(hours=settings.quality_scan_max_age_hours),
        batch_rows=settings.quality_batch_rows,
        problem_cap=settings.quality_problem_cap,
    )


def scan_now(
    session: Session,
    shared_db: SharedDatabase,
    store: SharedStore,
    now: datetime,
    settings: Settings,
) -> QualityScan:
    """A scan asked for in the console or the API (立即检测): committed as it goes; a
    scan that fails is answered as the failed scan it is kept as, not as an error."""
    try:
        return scan_store(
            session,
            shared_db,
            store,
            now=now,
            trigger="manual",
            batch_rows=settings.quality_batch_rows,
            problem_cap=settings.quality_problem_cap,
            commit=True,
        )
    except Exception:
        log.exception("quality scan failed", store_id=store.id)
        session.rollback()
        failed = session.scalars(
            select(QualityScan)
            .where(QualityScan.store_id == store.id, QualityScan.status == ScanStatus.FAILED)
            .order_by(QualityScan.id.desc())
            .limit(1)
        ).first()
        if failed is None:
            raise
        return failed
