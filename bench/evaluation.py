"""Department evaluation benchmark (issue 16, 考核评估): one month for 100 departments over
``--rows`` catalog, sharing and exchange records (default 1,000,000).

The hub is built in-process, without a web server: a migrated SQLite hub database in a
temporary data dir with the reference data, ``--departments`` departments (default 100)
and, spread over them in bulk (SQLAlchemy Core, batches of 10,000), of ``--rows``:

* 20 % catalog entries (90 % registered or published, 1 in 7 without its abstract, 1 in 3
  modified more than a year ago, 1 in 2 from one of the department's information
  systems) and 20 % information items, one per entry (1 in 9 character items without a length);
* 25 % sharing applications, answer deadlines spread over 2026 (so about 1/12 fall in
  the month), 1 in 5 answered late, 1 in 20 never, 1 in 10 refused, provide deadlines
  for the approved;
* 5 % objections, deadlines spread over 2026, 1 in 4 answered late;
* 20 % exchange packages over provider tasks (one per 10 entries), received over 2026,
  so some tasks are silent at the month's end;
* 5.5 % data-service call statistics (a day, a grant) over 2026, and the grants;
* 1 % declared duties (1 in 20 withdrawn in June), 1 % duty–entry links (one entry of
  the department for four duties in five), 0.5 % changes of duties and systems over
  2026 (deadline 21 days later), 2 % entry versions over 2026.

Measured:

* ``run_s``: ``evaluation.service.run_month`` for 2026-11 end to end in one transaction
  (every indicator's facts inserted with INSERT … SELECT, the tallies grouped by the
  database, scores and ranks of every department, the audit entry) and the commit;
* ``pdf_s``: the month's printable report (ranking of every department, platform
  indicators, the server-drawn SVG bar chart) rendered by WeasyPrint from the stored run,
  plus one department's report with its indicators.

The last line::

    run_s=… pdf_s=… max_rss_mb=… facts=…

``max_rss_mb`` is this process's peak resident memory (building included). Targets
(issue 16) on the 2-core machine at 1,000,000 rows: ``run_s`` < 30, ``pdf_s`` < 10.

Usage: ``.venv/bin/python bench/evaluation.py --rows 100000``.
"""

from __future__ import annotations

import argparse
import random
import resource
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Table, select

from govshare import db as hub
from govshare.catalog.models import (
    CatalogChangeEvent,
    Classification,
    DepartmentDuty,
    DutyResource,
    InformationItem,
    InformationSystem,
    Resource,
    ResourceVersion,
)
from govshare.catalog.service import seed_reference_data
from govshare.config import Settings
from govshare.evaluation import export, service
from govshare.evaluation.indicators import Month
from govshare.evaluation.models import EvaluationResult
from govshare.exchange.models import ExchangeNode, ExchangePackage, ExchangeTask
from govshare.security.audit import SYSTEM
from govshare.security.models import ApiClient, Department
from govshare.security.roles import Permission
from govshare.security.service import Principal
from govshare.sharing.models import CallStat, Objection, SharingApplication, SharingGrant

MONTH = Month(2026, 11)
TODAY = date(2026, 12, 5)
YEAR_START = datetime(2026, 1, 1, tzinfo=UTC)
BATCH = 10_000
CYCLES = ("daily", "weekly", "monthly", "quarterly", "irregular")


def err(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _table(model: Any) -> Table:
    table = model.__table__
    assert isinstance(table, Table)
    return table


def _bulk(conn: Connection, model: Any, rows: Iterator[dict[str, Any]]) -> int:
    table = _table(model)
    n = 0
    batch: list[dict[str, Any]] = []
    for row in rows:
        batch.append(row)
        if len(batch) == BATCH:
            conn.execute(table.insert(), batch)
            n += len(batch)
            batch = []
    if batch:
        conn.execute(table.insert(), batch)
        n += len(batch)
    return n


def _day(rng: random.Random) -> date:
    return date(2026, 1, 1) + timedelta(days=rng.randrange(365))


def _duties(
    conn: Connection,
    rng: random.Random,
    rows: int,
    departments: int,
    systems_per: int,
    n_res: int,
) -> dict[str, int]:
    """职责清单: duties, their links to entries, changes and the entries' versions."""
    n_duties = rows // 100
    counts = {
        "duties": _bulk(
            conn,
            DepartmentDuty,
            (
                {
                    "id": d,
                    "department_id": 1 + d % departments,
                    "code": f"ZZ-{d:06d}",
                    "name": f"职责事项{d}",
                    "declared_on": date(2025, 1, 1),
                    "withdrawn_on": date(2026, 6, 1) if d % 20 == 0 else None,
                }
                for d in range(1, n_duties + 1)
            ),
        )
    }
    # The entries r with r % departments == d % departments are duty d's department's.
    counts["duty_links"] = _bulk(
        conn,
        DutyResource,
        (
            {"duty_id": d, "resource_id": d % departments + departments, "linked_at": YEAR_START}
            for d in range(1, n_duties + 1)
            if d % 5 and d % departments + departments <= n_res
        ),
    )

    def changes() -> Iterator[dict[str, Any]]:
        for e in range(1, rows // 200 + 1):
            dept = 1 + e % departments
            changed = date(2026, 1, 1) + timedelta(days=rng.randrange(320))
            yield {
                "id": e,
                "department_id": dept,
                "kind": "duty" if e % 2 else "system",
                "duty_id": e if e % 2 else None,
                "system_id": None if e % 2 else (dept - 1) * systems_per + 1 + e % systems_per,
                "changed_on": changed,
                "catalog_due": changed + timedelta(days=21),
                "description": "三定方案调整",
                "recorded_by": "bench",
            }

    counts["changes"] = _bulk(conn, CatalogChangeEvent, changes())
    counts["versions"] = _bulk(
        conn,
        ResourceVersion,
        (
            {
                "resource_id": 1 + rng.randrange(n_res),
                "version": v,
                "snapshot": {},
                "created_by": "bench",
                "created_at": YEAR_START + timedelta(minutes=rng.randrange(365 * 1440)),
            }
            for v in range(1, rows * 2 // 100 + 1)
        ),
    )
    return counts


def build(settings: Settings, rows: int, departments: int) -> dict[str, int]:
    hub.upgrade(settings)
    engine = hub.make_engine(settings)
    factory = hub.make_session_factory(engine, settings)
    with hub.session_scope(factory) as s:
        seed_reference_data(s)
    rng = random.Random(16)
    counts: dict[str, int] = {}
    with engine.begin() as conn:
        cls_id = conn.execute(
            select(Classification.id).where(Classification.code == "101001")
        ).scalar_one()
        long_ago = datetime(2024, 1, 1, tzinfo=UTC)
        counts["departments"] = _bulk(
            conn,
            Department,
            (
                {
                    "id": d,
                    "name": f"青岛市第{d}考核局",
                    "short_name": f"考核{d}局",
                    "credit_code": f"11370200MB{d:08d}",
                    "division_code": "370200",
                    "level": "city",
                    "created_at": long_ago,
                }
                for d in range(1, departments + 1)
            ),
        )
        systems_per = 5
        counts["systems"] = _bulk(
            conn,
            InformationSystem,
            (
                {
                    "id": i,
                    "department_id": 1 + (i - 1) // systems_per,
                    "name": f"业务系统{i}",
                    "usage_frequency": "daily",
                    "network": "egov",
                    "created_at": long_ago,
                    "updated_at": long_ago,
                }
                for i in range(1, departments * systems_per + 1)
            ),
        )
        n_res = rows * 20 // 100
        statuses = ["published"] * 7 + ["registered", "withdrawn", "draft"]

        def resources() -> Iterator[dict[str, Any]]:
            for i in range(1, n_res + 1):
                dept = 1 + i % departments
                status = statuses[i % 10]
                yield {
                    "id": i,
                    "code": f"101001/B{i:08d}",
                    "sequence": i,
                    "classification_id": cls_id,
                    "kind": "base",
                    "name": f"目录{i}",
                    "provider_department_id": dept,
                    "abstract": "" if i % 7 == 0 else "摘要",
                    "format": "database",
                    "sharing_type": "2" if i % 3 else "1",
                    "sharing_conditions": "法定职责",
                    "sharing_modes": ["api"],
                    "update_cycle": CYCLES[i % len(CYCLES)],
                    "source_system_id": (dept - 1) * systems_per + 1 + i % systems_per
                    if i % 2
                    else None,
                    "status": status,
                    "listed": status == "published",
                    "created_by": "bench",
                    "created_at": long_ago,
                    "updated_at": datetime(2025, 6, 1, tzinfo=UTC)
                    if i % 3 == 0
                    else datetime(2026, 6, 1, tzinfo=UTC),
                }

        counts["resources"] = _bulk(conn, Resource, resources())
        counts["items"] = _bulk(
            conn,
            InformationItem,
            (
                {
                    "resource_id": i,
                    "position": 0,
                    "name": "公民身份号码",
                    "code": "sfzhm",
                    "data_type": "C",
                    "length": None if i % 9 == 0 else 18,
                }
                for i in range(1, n_res + 1)
            ),
        )
        n_grants = max(departments, rows // 1000)
        counts["grants"] = _bulk(
            conn,
            SharingGrant,
            (
                {
                    "id": g,
                    "resource_id": 1 + g % n_res,
                    "provider_department_id": 1 + (1 + g % n_res) % departments,
                    "consumer_department_id": 1 + (g * 7) % departments,
                    "modes": ["query"],
                    "purpose": "办事",
                    "expires_on": date(2027, 12, 31),
                    "created_by": "bench",
                    "created_at": long_ago,
                }
                for g in range(1, n_grants + 1)
            ),
        )

        def applications() -> Iterator[dict[str, Any]]:
            for i in range(rows * 25 // 100):
                r = 1 + rng.randrange(n_res)
                due = _day(rng)
                roll = i % 20
                answered = (
                    None
                    if roll == 0
                    else due + timedelta(days=2)
                    if roll < 5
                    else due - timedelta(days=1)
                )
                refused = i % 10 == 7
                yield {
                    "resource_id": r,
                    "provider_department_id": 1 + r % departments,
                    "consumer_department_id": 1 + (r * 7) % departments,
                    "applicant": "bench",
                    "purpose": "办事",
                    "legal_basis": "法规",
                    "items": ["sfzhm"],
                    "mode": "query",
                    "users": "窗口",
                    "end_date": date(2027, 12, 31),
                    "status": "submitted"
                    if answered is None
                    else "refused"
                    if refused
                    else "provided",
                    "submitted_at": long_ago,
                    "submitted_on": due - timedelta(days=14),
                    "answer_due": due,
                    "answered_on": answered,
                    "provide_due": None if refused or answered is None else due + timedelta(days=7),
                    "provided_on": None
                    if refused or answered is None
                    else due + timedelta(days=5 + i % 5),
                }

        counts["applications"] = _bulk(conn, SharingApplication, applications())

        def objections() -> Iterator[dict[str, Any]]:
            for i in range(rows * 5 // 100):
                r = 1 + rng.randrange(n_res)
                due = _day(rng)
                yield {
                    "resource_id": r,
                    "consumer_department_id": 1 + (r * 7) % departments,
                    "provider_department_id": 1 + r % departments,
                    "record_key": "370202199001010011",
                    "evidence": "证据",
                    "status": "rejected",
                    "raised_by": "bench",
                    "raised_at": long_ago,
                    "raised_on": due - timedelta(days=7),
                    "answer_due": due,
                    "answered_on": due + timedelta(days=1) if i % 4 == 0 else due,
                }

        counts["objections"] = _bulk(conn, Objection, objections())
        counts["nodes"] = _bulk(
            conn,
            ExchangeNode,
            (
                {
                    "id": d,
                    "name": f"节点{d}",
                    "department_id": d,
                    "status": "active",
                    "sig_alg": "ed25519",
                    "cipher": "aes-gcm",
                    "created_at": long_ago,
                }
                for d in range(1, departments + 1)
            ),
        )
        n_tasks = n_res // 10
        counts["tasks"] = _bulk(
            conn,
            ExchangeTask,
            (
                {
                    "id": t,
                    "name": f"发送{t}",
                    "kind": "provider",
                    "node_id": 1 + (t * 10) % departments,
                    "resource_id": t * 10,
                    "state": "running",
                    "created_by": "bench",
                    "created_at": long_ago,
                    "updated_at": long_ago,
                }
                for t in range(1, n_tasks + 1)
            ),
        )

        def packages() -> Iterator[dict[str, Any]]:
            for i in range(rows * 20 // 100):
                task = 1 + rng.randrange(n_tasks)
                # Four tasks in five send all year; the rest fell silent in the summer.
                days = 365 if task % 5 else 200
                at = YEAR_START + timedelta(minutes=rng.randrange(days * 1440))
                yield {
                    "task_id": task,
                    "seq": i + 1,
                    "digest": "0" * 64,
                    "size": 1024,
                    "rows": 100,
                    "created_at": at,
                    "received_at": at,
                }

        counts["packages"] = _bulk(conn, ExchangePackage, packages())
        conn.execute(
            _table(ApiClient).insert(),
            [
                {
                    "id": 1,
                    "app_key": "bench",
                    "secret_sealed": "x",
                    "name": "bench",
                    "department_id": 1,
                    "permissions": ["data.service"],
                    "created_at": long_ago,
                }
            ],
        )
        counts |= _duties(conn, rng, rows, departments, systems_per, n_res)
        n_calls = rows * 55 // 1000
        pairs = sorted({(rng.randrange(365), 1 + rng.randrange(n_grants)) for _ in range(n_calls)})
        counts["call_stats"] = _bulk(
            conn,
            CallStat,
            (
                {
                    "day": date(2026, 1, 1) + timedelta(days=d),
                    "client_id": 1,
                    "grant_id": g,
                    "calls": 10 + g % 50,
                    "keys": 10,
                    "rows": 3 * (10 + g % 50),
                }
                for d, g in pairs
            ),
        )
    engine.dispose()
    return counts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="records (default 1,000,000)")
    parser.add_argument("--departments", type=int, default=100, help="departments (default 100)")
    parser.add_argument("--keep", type=Path, help="build the hub in this (empty) directory")
    args = parser.parse_args()
    if args.rows < 1000:
        parser.error("--rows must be at least 1,000")
    workdir = args.keep or Path(tempfile.mkdtemp(prefix="evaluation-"))
    workdir.mkdir(parents=True, exist_ok=True)
    settings = Settings(data_dir=workdir / "data", secret_key="e" * 40, demo=False)  # type: ignore[call-arg]
    settings.data_dir.mkdir(parents=True, exist_ok=True)

    t = time.perf_counter()
    counts = build(settings, args.rows, args.departments)
    total = sum(v for k, v in counts.items() if k not in ("departments", "nodes"))
    err(
        "建库: "
        + ", ".join(f"{k} {v:,}" for k, v in counts.items())
        + f" (合计 {total:,} 条记录, {time.perf_counter() - t:.1f} s)"
    )

    engine = hub.make_engine(settings)
    factory = hub.make_session_factory(engine, settings)

    def progress(done: int, steps: int, label: str) -> None:
        err(f"  [{done:>2}/{steps}] {label}  {time.perf_counter() - started:.2f} s")

    started = time.perf_counter()
    with hub.session_scope(factory) as session:
        run = service.run_month(session, SYSTEM, MONTH, today=TODAY, on_progress=progress)
        month = run.month
    run_s = time.perf_counter() - started

    bureau = Principal(
        kind="system", name="bench", department_id=None, permissions=frozenset(Permission)
    )
    started = time.perf_counter()
    with factory() as session:
        run = service.get_run(session, month)
        report = export.pdf(session, bureau, run)
        first = service.ranking(session, run)[0]
        dept_report = export.pdf(session, bureau, run, first.department_id)
        results = session.query(EvaluationResult).filter_by(run_id=run.id).count()
        facts = run.facts
        top = (first.department_name, first.score)
    pdf_s = time.perf_counter() - started
    (workdir / "report.pdf").write_bytes(report)
    (workdir / "department.pdf").write_bytes(dept_report)
    engine.dispose()

    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    err(
        f"考核 {month}: 部门 {results}, 计入记录 {facts:,} 条, 第一名 {top[0]} {top[1]}; "
        f"报告 {len(report) / 1024:,.0f} KiB + 部门报告 {len(dept_report) / 1024:,.0f} KiB "
        f"({workdir})"
    )
    ok = run_s < 30 and pdf_s < 10
    if not ok:
        err("目标: run_s < 30, pdf_s < 10 — 未达到")
    print(f"run_s={run_s:.2f} pdf_s={pdf_s:.2f} max_rss_mb={rss:.0f} facts={facts}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
