"""交付: a comparison job's cases delivered into the owning department's own database.

Nothing here sends anything. A job marked ``deliver`` keeps a copy of its cases in the
shared-store database, one table per job (``compare_cases_<job id>``), with a record
version (``__rev``) that every change of a case raises. The bureau's front-end node
reads that table like any business table with a cursor column, as a provider task of a
catalog entry for the job's cases, and the owning department receives it through the
ordinary grant and subscription path: signed, encrypted packages, exactly-once apply,
reconciliation — everything the exchange already guarantees (docs/compare.md).

The copy is brought up to the cases by the hub's comparison runner a few seconds after
they change (a run's result, a follow-up step): one transaction that rewrites only the
cases that differ, under one new version. It is idempotent, so several hub processes
may each do it; they take turns (SQLite's write lock, a PostgreSQL advisory lock), so
versions rise in commit order and a reader's cursor never skips a change."""

from __future__ import annotations

import math
import time
import zlib
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson
import structlog
from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Engine,
    Float,
    Index,
    MetaData,
    String,
    Table,
    Text,
    func,
    inspect,
    select,
)
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from govshare.catalog.models import Resource
from govshare.compare.models import CompareCase, CompareJob
from govshare.compare.sql import quote
from govshare.security.atrest import AtRestCipher, open_document

log = structlog.get_logger()

VERSION = "__rev"
# The case's own columns, in the table's order, before the job's output items.
CASE_COLUMNS = (
    "case_state",
    "case_state_label",
    "case_presence",
    "case_presence_label",
    "case_rows",
    "case_amount",
    "case_note",
    "case_updated_at",
)
KEY = "case_id"
_LONGEST = 60  # a column name every supported database takes
# How far back before the newest change already synced the next sync looks again: a
# change is stamped before its transaction commits, so another process's step may
# become visible after a later-stamped one was synced.
_LATE = timedelta(seconds=60)
_BATCH = 500


# The copy's own columns as the 信息项 of the catalog entry the bureau registers for it:
# code, name, data type, length, description.
_CASE_ITEMS: tuple[tuple[str, str, str, int, str], ...] = (
    (KEY, "线索编号", "I", 18, "比对线索的编号 (主键)"),
    (
        "case_state",
        "核查状态",
        "C",
        12,
        "pending 待核查,checking 核查中,confirmed 属实,refuted 不属实",
    ),
    ("case_state_label", "核查状态名称", "C", 12, ""),
    ("case_presence", "本次比对情况", "C", 8, "new 新发现、still 仍存在、gone 已消失"),
    ("case_presence_label", "本次比对情况名称", "C", 8, ""),
    ("case_rows", "涉及行数", "I", 18, ""),
    ("case_amount", "涉及金额", "F", 18, ""),
    ("case_note", "核查说明", "C", 2000, ""),
    ("case_updated_at", "线索更新时间", "C", 32, "UTC, ISO 8601"),
)
# An output value is kept as text; its item's own length where the catalog gives one.
_OUTPUT_LENGTH = 2000


@dataclass(frozen=True)
class DeliveryItem:
    """One column of the copy, described as a catalog 信息项."""

    code: str
    name: str
    data_type: str
    length: int
    description: str = ""
    is_key: bool = False
    # Carried over from the output's catalog item: a copy is as sensitive as its source.
    sensitive: bool = False


def table_name(job_id: int) -> str:
    return f"compare_cases_{job_id}"


def output_columns(output: list[str]) -> dict[str, str]:
    """Each output item's column: the item's own code (``sfzhm``), or ``alias_item``
    where two inputs show an item of the same code or the code is one of the case's."""
    codes = Counter(ref.split(".", 1)[1] for ref in output)
    taken = {KEY, VERSION, *CASE_COLUMNS}
    columns: dict[str, str] = {}
    for n, ref in enumerate(output):
        alias, item = ref.split(".", 1)
        name = item if codes[item] == 1 and item not in taken else f"{alias}_{item}"
        if name in taken or len(name) > _LONGEST:
            name = f"output_{n + 1}"
        taken.add(name)
        columns[ref] = name
    return columns


def catalog_items(session: Session, definition: dict[str, Any]) -> list[DeliveryItem]:
    """The copy's columns, all but the record version, as the 信息项 of the catalog entry
    the bureau registers to deliver it: the case's own, then each output item under its
    catalog name (with the input's alias where two inputs show the same code)."""
    items = [
        DeliveryItem(code, name, kind, length, note, is_key=code == KEY)
        for code, name, kind, length, note in _CASE_ITEMS
    ]
    refs = [str(ref) for ref in definition.get("output") or []]
    codes = {str(i.get("alias")): str(i.get("resource")) for i in definition.get("inputs") or []}
    resources = {
        r.code: r
        for r in session.scalars(select(Resource).where(Resource.code.in_(set(codes.values()))))
    }
    for ref, column in output_columns(refs).items():
        alias, item = ref.split(".", 1)
        resource = resources.get(codes.get(alias, ""))
        found = next((i for i in resource.items if i.code == item), None) if resource else None
        name = found.name if found is not None else item
        length = found.length if found is not None and found.length else _OUTPUT_LENGTH
        items.append(
            DeliveryItem(
                column,
                name if column == item else f"{name} ({alias})",
                "C",
                length,
                f"{resource.name}·{name}" if resource is not None else ref,
                sensitive=found is not None and found.sensitive,
            )
        )
    return items


def entry_name(job: CompareJob) -> str:
    """The name of the catalog entry for the job's copy."""
    return f"{job.name}比对线索"


def entry_abstract(job: CompareJob) -> str:
    return (
        f"比对任务「{job.name}」的线索及其核查状态，交付{job.department.name}"
        "本部门数据库，供其业务系统跟进核查。"
    )


def catalog_rows(job: CompareJob, items: list[DeliveryItem]) -> list[dict[str, Any]]:
    """The entry for the copy as rows of the catalog's import workbook (field → value),
    one per item: shared on condition, by table exchange, as often as cases change. The
    classification is left for the bureau to fill in, as its own catalog files it."""
    entry = {
        "key": 1,
        "name": entry_name(job),
        "abstract": entry_abstract(job),
        "format": "数据库",
        "format_detail": f"共享库表 {table_name(job.id)}，版本列 {VERSION}",
        "sharing_type": "有条件共享",
        "sharing_conditions": f"仅向{job.department.name}共享：副本只含该部门的比对线索",
        "sharing_modes": "库表交换",
        "is_open": "否",
        "update_cycle": "实时",
        "secrecy": "非涉密",
    }
    return [
        {
            **(entry if n == 0 else {"key": 1}),
            "item_name": item.name,
            "item_code": item.code,
            "data_type": item.data_type,
            "length": item.length,
            "description": item.description,
            "is_key": "是" if item.is_key else "否",
            "sensitive": "是" if item.sensitive else "否",
        }
        for n, item in enumerate(items)
    ]


def case_table(job_id: int, outputs: Iterable[str]) -> Table:
    name = table_name(job_id)
    return Table(
        name,
        MetaData(),
        Column(KEY, BigInteger, primary_key=True, autoincrement=False),
        Column("case_state", String(12), nullable=False),
        Column("case_state_label", String(12)),
        Column("case_presence", String(8)),
        Column("case_presence_label", String(8)),
        Column("case_rows", BigInteger),
        Column("case_amount", Float),
        Column("case_note", Text),
        Column("case_updated_at", String(32)),
        *(Column(c, Text) for c in outputs),
        Column(VERSION, BigInteger, nullable=False, server_default="0"),
        # The reading node's keyset: the version, then the key.
        Index(f"ix_{name}_rev", VERSION, KEY),
    )


def _text(value: Any) -> str | None:
    """An output value as the copy keeps it: text as it is, anything else as JSON."""
    if value is None or isinstance(value, str):
        return value
    return orjson.dumps(value).decode()


def _desired(
    session: Session,
    job_id: int,
    refs: list[str],
    since: datetime | None,
    cipher: AtRestCipher,
) -> dict[int, tuple[Any, ...]]:
    q = select(
        CompareCase.id,
        CompareCase.state,
        CompareCase.presence,
        CompareCase.rows,
        CompareCase.amount,
        CompareCase.note,
        CompareCase.updated_at,
        CompareCase.values,
    ).where(CompareCase.job_id == job_id)
    if since is not None:
        q = q.where(CompareCase.updated_at >= since)
    return {
        case_id: (
            str(state),
            state.label,
            str(presence),
            presence.label,
            int(n),
            None if amount is None else float(amount),
            note,
            updated_at.isoformat(timespec="microseconds"),
            *(_text(shown.get(ref)) for ref in refs),
        )
        for case_id, state, presence, n, amount, note, updated_at, values in session.execute(q)
        for shown in [open_document(cipher, values)]
    }


def _take_turn(conn: Connection, name: str) -> None:
    """Start the transaction holding the copy's write turn until it commits."""
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql("BEGIN IMMEDIATE")
    elif conn.dialect.name == "postgresql":
        conn.execute(select(func.pg_advisory_xact_lock(zlib.crc32(name.encode()))))
    # Other databases hold the shared stores only in tests of their own; the table's
    # primary key still keeps one row per case there.


def sync(
    session: Session,
    engine: Engine,
    job: CompareJob,
    *,
    since: datetime | None = None,
    cipher: AtRestCipher,
) -> int:
    """Bring the job's copy up to its cases; the number of rows written or removed.

    ``since``: only the cases changed at or after it (by their ``updated_at``) are
    compared, and none is removed; without it every case is, and a copy's row whose case
    is gone is removed."""
    refs = [str(ref) for ref in job.definition.get("output") or []]  # checked when saved
    outputs = output_columns(refs)
    desired = _desired(session, job.id, refs, since, cipher)
    table = case_table(job.id, outputs.values())
    names = [*CASE_COLUMNS, *outputs.values()]
    chosen = select(table.c[KEY], *(table.c[n] for n in names))
    with engine.connect() as conn:
        _take_turn(conn, table.name)
        table.create(conn, checkfirst=True)
        present = {c["name"] for c in inspect(conn).get_columns(table.name)}
        for missing in [n for n in outputs.values() if n not in present]:
            # A definition changed to show more items: the earlier ones stay, unfilled.
            conn.exec_driver_sql(
                f"ALTER TABLE {quote(table.name)} ADD COLUMN {quote(missing)} TEXT"
            )
        if since is None:
            current = {row[0]: tuple(row[1:]) for row in conn.execute(chosen)}
        else:
            ids = list(desired)
            current = {
                row[0]: tuple(row[1:])
                for at in range(0, len(ids), _BATCH)
                for row in conn.execute(chosen.where(table.c[KEY].in_(ids[at : at + _BATCH])))
            }
        changed = [k for k, v in desired.items() if current.get(k) != v]
        removed = [k for k in current if k not in desired] if since is None else []
        if changed or removed:
            version = int(conn.scalar(select(func.max(table.c[VERSION]))) or 0) + 1
            stale = changed + removed
            for at in range(0, len(stale), _BATCH):
                conn.execute(table.delete().where(table.c[KEY].in_(stale[at : at + _BATCH])))
            for at in range(0, len(changed), _BATCH):
                conn.execute(
                    table.insert(),
                    [
                        {KEY: k, VERSION: version, **dict(zip(names, desired[k], strict=True))}
                        for k in changed[at : at + _BATCH]
                    ],
                )
        conn.commit()
    return len(changed) + len(removed)


@dataclass
class _Synced:
    mark: tuple[Any, ...]  # what the job's cases looked like when last synced
    through: datetime | None  # the newest case change that sync saw
    full_at: float  # when every case was last compared (time.monotonic)


class Deliveries:
    """The runner's side of delivery: which jobs' cases changed since this process last
    brought their copies up (one grouped query), and only those synced: the cases
    changed since a minute before the newest change the last sync saw; every case on a
    job's first sync in this process, after its definition changed, and every
    ``full_every_seconds`` (a hub process on a machine whose clock runs behind may stamp
    a change earlier than that)."""

    def __init__(
        self,
        engine: Engine,
        cipher: AtRestCipher,
        every_seconds: float = 5.0,
        full_every_seconds: float = 600.0,
    ) -> None:
        self.engine = engine
        self.cipher = cipher  # opens the cases' values sealed at rest
        self.every_seconds = every_seconds
        self.full_every_seconds = full_every_seconds
        self._synced: dict[int, _Synced] = {}
        self._last = -math.inf

    def due(self) -> bool:
        return time.monotonic() - self._last >= self.every_seconds

    def run_once(self, session: Session) -> int:
        """Sync every delivering job whose cases changed; the jobs synced."""
        self._last = time.monotonic()
        jobs = list(session.scalars(select(CompareJob).where(CompareJob.deliver)))
        if not jobs:
            return 0
        ids = [job.id for job in jobs]
        cases = {
            job_id: (count, newest)
            for job_id, count, newest in session.execute(
                select(CompareCase.job_id, func.count(), func.max(CompareCase.updated_at))
                .where(CompareCase.job_id.in_(ids))
                .group_by(CompareCase.job_id)
            )
        }
        synced = 0
        for job in jobs:
            count, newest = cases.get(job.id, (0, None))
            mark = (job.updated_at, count, newest)
            before = self._synced.get(job.id)
            if before is not None and before.mark == mark:
                continue
            full = (
                before is None
                or job.updated_at != before.mark[0]  # outputs may have changed
                or self._last - before.full_at >= self.full_every_seconds
            )
            since = (
                None if full or before is None or before.through is None else before.through - _LATE
            )
            try:
                written = sync(session, self.engine, job, since=since, cipher=self.cipher)
            except SQLAlchemyError:
                log.exception("delivering comparison cases failed", job_id=job.id)
                continue
            full_at = self._last if full or before is None else before.full_at
            self._synced[job.id] = _Synced(mark, newest, full_at)
            synced += 1
            if written:
                log.info("comparison cases delivered", job_id=job.id, rows=written)
        return synced
