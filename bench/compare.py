"""Cross-department comparison benchmark (issue 12, 比对): "deceased but still paid".

``--rows N`` persons (default 10,000,000) in 公安's people store and N/10 rows in 人社's
pension store, both tables in the hub's shared-store database (a SQLite file, as the
embedded hub keeps it), written with plain ``sqlite3``:

* 公安 人口 (``sfzhm`` primary key, ``xm``, ``swrq``): 2 % of people have a 死亡日期 in
  2025;
* 人社 养老金发放 (``rid``, ``sfzhm``, ``xm``, ``ffrq``, ``ffje``): N/10 payments. Planted:
  ``max(10, N/10,000)`` deceased recipients with two payments after their death each
  (the cases); as many deceased decoys paid before death and on the day of death (not
  cases); every other row one payment to a living person.

The hub is built in-process, without a web server: a migrated hub database in a
temporary data dir, the departments 公安 and 人社, both catalog entries (added with
``catalog.service.add_resource``, then marked published and listed directly), a shared
store row per entry and a grant (查询) from 公安 to 人社 of ``sfzhm`` and ``swrq``.

Measured (``job_s``): the job ``dead_pension`` of ``tests/compare/builders.py`` (link on
the ID with the width/trim/upper/15→18 normalisation, ``pay.ffrq > ppl.swrq``, cases by
person with the amount summed) end to end through the job runner, as the hub's runner
thread runs it: ``compare.service.create_job`` (planning against catalog, stores and
grants), ``runner.queue_run`` and ``runner.execute`` — the worker process is started,
exports both stores to Parquet in one read transaction of the shared-store database,
runs the compiled DuckDB query, and the runner stores the cases with the run's counts.
The run's phases are timed from its progress messages (``on_progress``) and printed.

The reference (``duckdb_s``), in the same run: the same question hand-written in DuckDB
in this process over the run's own snapshot files (``runner.execute(keep_files=True)``):
join on the ID, ``ffrq > swrq`` as dates, group by person, sum the amount. Same threads
and memory limit as the worker. No export, no normalisation of the keys, no process, no
cases stored: the floor. For the split, the plan's own SQL is also run in this process
over the same files (printed, not in the last line; ``--no-replay`` skips it).

The last line::

    job_s=… duckdb_s=… ratio=… max_rss_mb=… cases=…

``ratio`` is ``duckdb_s / job_s``; ``max_rss_mb`` the larger peak resident memory of the
worker process (``RUSAGE_CHILDREN``) and of this process before the reference ran
(building the stores, the runner's part); ``cases`` the run's hits, which must equal the
planted count (else a FAIL line and exit status 1). Targets (issue 12) on the 2-core
machine at 10,000,000 rows: ratio ≥ 0.8, peak RSS < 2 GB.

Usage: ``.venv/bin/python bench/compare.py --rows 200000``.
"""

from __future__ import annotations

import argparse
import functools
import resource
import sqlite3
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
from sqlalchemy import select

from govshare import db as hub
from govshare.catalog.codes import ResourceStatus
from govshare.catalog.models import Resource
from govshare.catalog.service import add_resource, seed_reference_data
from govshare.compare import runner, service
from govshare.compare.models import CompareCase, CompareRun
from govshare.compare.plan import plan
from govshare.compare.schemas import Definition, JobCreate, RunStatus
from govshare.compare.sql import macros, view_sql
from govshare.config import Settings
from govshare.demo import Entry, _resource_in, credit_code_for, it
from govshare.security.atrest import cipher_for, open_document
from govshare.security.audit import SYSTEM
from govshare.security.models import DepartmentLevel
from govshare.security.roles import Role, permissions_for
from govshare.security.service import Principal, add_department
from govshare.sharing.models import SharedStore, SharingGrant
from govshare.sharing.store import SharedDatabase

TODAY = date(2026, 6, 15)
_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK = "10X98765432"
_BORN = date(1940, 1, 1)
# The last three digits (顺序码) of an ID number and their share of the check sum.
_SEQ = [
    (f"{n:03d}", sum(int(d) * w for d, w in zip(f"{n:03d}", _WEIGHTS[14:], strict=True)))
    for n in range(1000)
]
DEAD_EVERY = 50  # 2 % of people have a 死亡日期
LIVING_PAY_DATE = "2025-10-15"


def err(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@functools.lru_cache(maxsize=4096)
def _prefix(day: int) -> tuple[str, int]:
    """The first 14 digits (region, birth date) of persons ``1000 * day``… and their
    share of the check sum."""
    prefix = f"370202{_BORN + timedelta(days=day):%Y%m%d}"
    return prefix, sum(int(d) * w for d, w in zip(prefix, _WEIGHTS, strict=False))


def one_id(i: int) -> str:
    """A well-formed 18-digit 公民身份号码 of person ``i``, ascending with ``i``."""
    prefix, base = _prefix(i // 1000)
    seq, part = _SEQ[i % 1000]
    return prefix + seq + _CHECK[(base + part) % 11]


def death(i: int) -> tuple[int, int] | None:
    """(month, day) in 2025 of person ``i``'s death, or None: days 10–28 of January to
    September, so a payment on the 5th of the month is before it."""
    if i % DEAD_EVERY:
        return None
    k = i // DEAD_EVERY
    return 1 + k % 9, 10 + k % 19


def amount(i: int) -> str:
    return f"{2000 + i % 3000}.{i % 100:02d}"


def plant(rows: int) -> tuple[list[int], list[int]]:
    """The deceased persons paid after death (the cases) and the deceased decoys."""
    planted = max(10, rows // 10_000)
    dead = rows // DEAD_EVERY
    gap = dead // (2 * planted)
    chosen = [q * gap * DEAD_EVERY for q in range(2 * planted)]
    return chosen[0::2], chosen[1::2]


def pension_rows(rows: int, cases: list[int], decoys: list[int]) -> Iterator[tuple[Any, ...]]:
    """N/10 payments: two after death per case, before and on the day of death per decoy,
    one to a living person (odd-numbered, never dead) for every other row."""
    special: list[tuple[int, str]] = []
    for i in cases:
        m, _d = death(i) or (0, 0)
        special += [(i, f"2025-{m + 1:02d}-05"), (i, f"2025-{m + 2:02d}-05")]
    for i in decoys:
        m, d = death(i) or (0, 0)
        special += [(i, f"2025-{m:02d}-05"), (i, f"2025-{m:02d}-{d:02d}")]
    total = rows // 10
    living = total - len(special)
    every = max(1, living // len(special))
    rid = 0
    queue = iter(special)
    for j in range(living):
        if j % every == 0 and (s := next(queue, None)) is not None:
            rid += 1
            yield rid, one_id(s[0]), f"居民{s[0]}", s[1], amount(s[0])
        i = 10 * j + 1
        rid += 1
        yield rid, one_id(i), f"居民{i}", LIVING_PAY_DATE, amount(i)
    for s in queue:
        rid += 1
        yield rid, one_id(s[0]), f"居民{s[0]}", s[1], amount(s[0])


def build_stores(path: Path, rows: int, people: str, pension: str) -> tuple[list[int], float]:
    """Both store tables, straight into the shared-store database. Returns the planted
    persons and the amount they were paid after death."""
    cases, decoys = plant(rows)
    con = sqlite3.connect(path)
    con.executescript(
        f"""
        PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;
        CREATE TABLE {people} (sfzhm TEXT PRIMARY KEY, xm TEXT, swrq TEXT);
        CREATE TABLE {pension} (rid INTEGER PRIMARY KEY, sfzhm TEXT, xm TEXT, ffrq TEXT,
                                ffje TEXT);
        """
    )
    step = 500_000
    for start in range(0, rows, step):
        stop = min(rows, start + step)
        con.executemany(
            f"INSERT INTO {people} VALUES (?, ?, ?)",
            (
                (one_id(i), f"居民{i}", f"2025-{d[0]:02d}-{d[1]:02d}" if (d := death(i)) else None)
                for i in range(start, stop)
            ),
        )
        con.commit()
        if stop % 2_000_000 == 0 and stop < rows:
            err(f"  人口 {stop:,} / {rows:,}")
    con.executemany(
        f"INSERT INTO {pension} VALUES (?, ?, ?, ?, ?)", pension_rows(rows, cases, decoys)
    )
    con.commit()
    con.close()
    return cases, sum(2 * float(amount(i)) for i in cases)


def build_hub(settings: Settings, rows: int) -> tuple[Principal, dict[str, Any]]:
    """Departments, published entries, store rows and the grant; returns the admin
    principal and the job's definition (``dead_pension`` of tests/compare/builders.py)."""
    hub.upgrade(settings)
    engine = hub.make_engine(settings)
    factory = hub.make_session_factory(engine, settings)
    with factory() as session:
        seed_reference_data(session)
        police = add_department(
            session,
            SYSTEM,
            name="青岛市公安局",
            short_name="公安",
            credit_code=credit_code_for(1),
            division_code="370200",
            level=DepartmentLevel.CITY,
        )
        social = add_department(
            session,
            SYSTEM,
            name="青岛市人力资源和社会保障局",
            short_name="人社",
            credit_code=credit_code_for(2),
            division_code="370200",
            level=DepartmentLevel.CITY,
        )
        admin = Principal(
            kind="user",
            name="admin",
            department_id=social.id,
            roles=(Role.PLATFORM_ADMIN.value,),
            permissions=permissions_for([Role.PLATFORM_ADMIN]),
        )
        entries = {
            "ppl": (
                police.id,
                Entry(
                    "gaj",
                    "101001",
                    "人口基本信息",
                    "基准测试的人口信息，含死亡日期。",
                    [
                        it("公民身份号码", "sfzhm", "C", 18),
                        it("姓名", "xm", "C", 50),
                        it("死亡日期", "swrq", "D"),
                    ],
                ),
            ),
            "pay": (
                social.id,
                Entry(
                    "rsj",
                    "101004",
                    "养老金发放信息",
                    "基准测试的养老金发放记录。",
                    [
                        it("公民身份号码", "sfzhm", "C", 18),
                        it("姓名", "xm", "C", 50),
                        it("发放日期", "ffrq", "D"),
                        it("发放金额", "ffje", "Y", 12),
                    ],
                ),
            ),
        }
        codes: dict[str, str] = {}
        tables: dict[str, str] = {}
        now = datetime.now(UTC)
        for alias, (dept_id, entry) in entries.items():
            res: Resource = add_resource(
                session, admin, _resource_in(entry, entry.classification, dept_id, None)
            )
            # Published as the lifecycle would leave it (submit, approve, publish).
            res.status = ResourceStatus.PUBLISHED
            res.listed = True
            res.published_version = res.version
            res.publish_date = TODAY
            session.add(
                SharedStore(
                    resource_id=res.id,
                    source_task_id=None,
                    key_item="sfzhm",
                    mapping={},
                    verify_rules=[],
                    table_name=f"ss_{res.id}",
                    applied_seq=1,
                    applied_at=now,
                    row_count=rows if alias == "ppl" else rows // 10,
                    created_by="bench",
                )
            )
            codes[alias], tables[alias] = res.code, f"ss_{res.id}"
            if alias == "ppl":
                session.add(
                    SharingGrant(
                        resource_id=res.id,
                        provider_department_id=police.id,
                        consumer_department_id=social.id,
                        items=["sfzhm", "swrq"],
                        modes=["query"],
                        purpose="比对基准测试",
                        expires_on=date(2099, 12, 31),
                        created_by="bench",
                    )
                )
        session.commit()
        social_id = social.id
    engine.dispose()
    job = {
        "name": "死亡人员仍领取养老金",
        "department_id": social_id,
        "inputs": [
            {"alias": "pay", "resource": codes["pay"], "items": ["sfzhm", "xm", "ffrq", "ffje"]},
            {"alias": "ppl", "resource": codes["ppl"], "items": ["sfzhm", "swrq"]},
        ],
        "links": [
            {
                "input": "ppl",
                "on": [{"left": "pay.sfzhm", "right": "sfzhm"}],
                "normalize": ["width", "trim", "upper", "id18"],
            }
        ],
        "conditions": [{"left": "pay.ffrq", "op": ">", "right": "ppl.swrq"}],
        "output": ["ppl.sfzhm", "pay.xm", "ppl.swrq"],
        "case_key": ["ppl.sfzhm"],
        "amount": "pay.ffje",
    }
    return admin, {"job": job, "tables": tables}


class Phases:
    """When each phase of the run was first reported, from the runner's progress calls."""

    def __init__(self, started: float) -> None:
        self.started = started
        self.seen: dict[str, float] = {}
        self.last_print = 0.0

    def __call__(self, run: CompareRun) -> None:
        now = time.perf_counter()
        phase = run.phase.split(":")[0]
        if phase not in self.seen:
            self.seen[phase] = now
            err(f"  {now - self.started:7.2f} s  {run.phase}  ({run.progress:.0%})")
            self.last_print = now
        elif now - self.last_print > 5:
            err(f"  {now - self.started:7.2f} s  {run.phase}  ({run.progress:.0%})")
            self.last_print = now


REFERENCE = """
SELECT p.sfzhm, min(pay.xm) AS xm, min(p.swrq) AS swrq, sum(CAST(pay.ffje AS DOUBLE)) AS amt,
       count(*) AS n
FROM read_parquet(?) AS pay JOIN read_parquet(?) AS p ON pay.sfzhm = p.sfzhm
WHERE CAST(pay.ffrq AS DATE) > CAST(p.swrq AS DATE)
GROUP BY p.sfzhm ORDER BY p.sfzhm
"""


def duck(settings: Settings) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(config={"memory_limit": f"{settings.compare_memory_mb}MB"})
    con.execute(f"SET threads = {settings.compare_threads}")
    return con


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000, help="persons (default 10,000,000)")
    parser.add_argument("--keep", type=Path, help="build the hub in this (empty) directory")
    parser.add_argument(
        "--no-replay",
        action="store_true",
        help="skip running the plan's own SQL in this process (as long as the run's DuckDB phase)",
    )
    args = parser.parse_args()
    rows: int = args.rows
    if rows < 10_000:
        parser.error("--rows must be at least 10,000")
    workdir = args.keep or Path(tempfile.mkdtemp(prefix="compare-"))
    workdir.mkdir(parents=True, exist_ok=True)
    settings = Settings(data_dir=workdir / "data", secret_key="c" * 40, demo=False)  # type: ignore[call-arg]
    settings.data_dir.mkdir(parents=True, exist_ok=True)

    t = time.perf_counter()
    admin, built = build_hub(settings, rows)
    shared = Path(settings.resolved_shared_store_url.removeprefix("sqlite:///"))
    planted, planted_amount = build_stores(
        shared, rows, built["tables"]["ppl"], built["tables"]["pay"]
    )
    err(
        f"建库: 人口 {rows:,} 行, 养老金发放 {rows // 10:,} 行, 预置死亡后领取 {len(planted)} 人"
        f" ({time.perf_counter() - t:.1f} s, {shared.stat().st_size / 2**20:,.0f} MiB)"
    )

    engine = hub.make_engine(settings)
    factory = hub.make_session_factory(engine, settings)
    db = SharedDatabase.of(settings)
    started = time.perf_counter()
    phases = Phases(started)
    with factory() as session:
        data = JobCreate.model_validate(built["job"])
        job = service.create_job(session, db, admin, data, TODAY)
        run_id = runner.queue_run(session, job, admin.actor).id
        job_id = job.id
        session.commit()
    queued = time.perf_counter()
    done = runner.execute(
        settings, factory, db, run_id, today=TODAY, on_progress=phases, keep_files=True
    )
    job_s = time.perf_counter() - started
    assert done is not None
    own_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    worker_rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    if done.status is not RunStatus.SUCCEEDED:
        print(f"FAIL: run {done.status}: {done.error}")
        return 1
    seen = phases.seen
    marks = [
        ("建任务+排队", started, queued),
        ("规划+启动进程", queued, seen.get("导出快照", queued)),
        ("导出快照", seen.get("导出快照", queued), seen.get("比对", queued)),
        ("DuckDB 比对", seen.get("比对", queued), seen.get("保存结果", queued)),
        ("保存线索", seen.get("保存结果", queued), started + job_s),
    ]
    err(
        f"比对任务: {job_s:.2f} s = "
        + ", ".join(f"{name} {b - a:.2f}" for name, a, b in marks)
        + f"; 输入 {done.inputs}; 线索 {done.hits}, 金额 {done.amount:,.2f}"
        + f"; 峰值内存 worker {worker_rss:,.0f} MB, runner {own_rss:,.0f} MB"
    )
    with factory() as session:
        cipher = cipher_for(settings)  # a case's values are sealed at rest
        found = {
            open_document(cipher, c.values)["ppl.sfzhm"]
            for c in session.scalars(select(CompareCase).where(CompareCase.job_id == job_id))
        }
        fields = set(Definition.model_fields)
        definition = Definition.model_validate(data.model_dump(include=fields))
        the_plan = plan(session, db, definition, data.department_id, TODAY)
    db.close()
    engine.dispose()

    folder = settings.data_dir / "compare" / f"run-{run_id}" / "snapshot"
    files = {a: str(folder / f"{a}.parquet") for a in ("pay", "ppl")}
    con = duck(settings)
    t = time.perf_counter()
    ref = con.sql(REFERENCE, params=[files["pay"], files["ppl"]]).to_arrow_table()
    duckdb_s = time.perf_counter() - t
    con.close()
    err(f"参照 (手写 DuckDB, 同一快照文件): {duckdb_s:.3f} s, {ref.num_rows} 人")

    same = None
    if not args.no_replay:
        con = duck(settings)
        con.execute("SET preserve_insertion_order = false")
        for statement in macros():
            con.execute(statement)
        for i in the_plan.inputs:
            con.execute(view_sql(i, files[i.alias]))
        t = time.perf_counter()
        same = con.sql(the_plan.sql, params=the_plan.params).to_arrow_table()
        plan_s = time.perf_counter() - t
        con.close()
        err(f"任务自己的 SQL (本进程, 同一快照文件): {plan_s:.3f} s, {same.num_rows} 人")

    expected = {one_id(i) for i in planted}
    problems = []
    if done.hits != len(planted) or found != expected:
        problems.append(f"job found {done.hits} cases, planted {len(planted)}")
    if abs((done.amount or 0) - planted_amount) > 0.01:
        problems.append(f"job amount {done.amount} != planted {planted_amount}")
    if set(ref.column("sfzhm").to_pylist()) != expected:
        problems.append(f"reference found {ref.num_rows}, planted {len(planted)}")
    if same is not None and same.num_rows != len(planted):
        problems.append(f"plan SQL found {same.num_rows}, planted {len(planted)}")
    max_rss = max(own_rss, worker_rss)
    line = (
        f"job_s={job_s:.2f} duckdb_s={duckdb_s:.3f} ratio={duckdb_s / job_s:.3f} "
        f"max_rss_mb={max_rss:.0f} cases={done.hits}"
    )
    if problems:
        print("FAIL: " + "; ".join(problems))
        print(line)
        return 1
    print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
