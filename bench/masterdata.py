"""Base-database benchmark (issue 11): assembling a 人口库 from four source stores.

``--rows N`` persons (default 2,000,000) in the shared-store database (a SQLite file,
as the embedded hub keeps it):

* 公安 户籍 (every person): 姓名, 性别, 出生日期, 户籍地址 — authoritative;
* 卫健 死亡医学证明 (2 %): 死亡日期 — authoritative;
* 人社 社保 (60 %): 参保状态 — authoritative;
* 民政 婚姻/殡葬 (30 %): 婚姻状况 — authoritative; 火化日期 as evidence for 死亡日期
  and 性别 (as 男/女 words) as evidence for 性别 — one in a thousand disagree.

Measured with the code the hub runs (``govshare.basedata.assembly``):

(a) the initial assembly (one set-based ``INSERT … SELECT``) and the search for
    evidence disagreements over the whole base;
(b) an incremental re-merge after 10,000 source changes (姓名 changed at 公安), the
    keys given (the hub reads them from the packages; decoding them is not timed);

and, in the same run, the reference: the same assembly written by hand as one SQL
statement in the same SQLite database (``INSERT … SELECT`` over the union of keys with
``LEFT JOIN`` per store — no provenance, no history, no conflicts).

(c) a full quality scan of the base database (``govshare.quality.scan``, the rules
    its catalog items seed: ID number, sex code, dates, lengths, uniqueness), one
    person in 10,000 with a wrong check digit;

and, in the same run, the references: the assembly written by hand as one SQL statement
in the same SQLite database (``INSERT … SELECT`` over the union of keys with a ``LEFT
JOIN`` per store — no provenance, no history, no conflicts), and the scan's checks as
one hand-written DuckDB query over the same rows (loaded into DuckDB untimed).

The last line::

    rows=… assemble_rows_per_s=… ref_assemble_rows_per_s=… incr_10k_s=… conflicts=…
    scan_rows_per_s=… duckdb_scan_rows_per_s=… scan_ratio=… ratio=… max_rss_mb=… bench_rss_mb=…

``max_rss_mb`` is the process's peak before the DuckDB reference runs (building the
sources, assembly, scan), ``bench_rss_mb`` the peak with it. ``ratio`` is our assembly
rate over the hand-written SQL's, ``scan_ratio`` our scan rate over DuckDB's. Targets
(issue 11): assembly ≥ 200,000 rows/s, incremental 10,000 changes < 2 s, scan ratio
≥ 0.8, peak RSS < 1.5 GB at 10,000,000 rows. Needs the
``bench`` dependency group (``uv sync --group dev --group bench``: duckdb).

Usage: ``.venv/bin/python bench/masterdata.py --rows 200000``.
"""

from __future__ import annotations

import argparse
import random
import resource
import shutil
import sqlite3
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from govshare.basedata import assembly
from govshare.basedata.assembly import ItemPlan, Plan, SourcePlan
from govshare.sharing.store import SharedDatabase

PLAN = Plan(
    base_id=1,
    table_name="bd_1",
    key_item="sfzhm",
    items=(
        ItemPlan("xm", 1, "xm"),
        ItemPlan("xb", 1, "xb", evidence=((4, "xb"),), codes={"男": "1", "女": "2"}),
        ItemPlan("csrq", 1, "csrq", is_date=True),
        ItemPlan("hjdz", 1, "hjdz"),
        ItemPlan("swrq", 2, "swrq", evidence=((4, "hhrq"),), is_date=True),
        ItemPlan("cbzt", 3, "cbzt"),
        ItemPlan("hyzk", 4, "hyzk"),
    ),
    sources={
        1: SourcePlan(1, "ss_1", "sfzhm", 1),
        2: SourcePlan(2, "ss_2", "sfzhm", 2),
        3: SourcePlan(3, "ss_3", "sfzhm", 3),
        4: SourcePlan(4, "ss_4", "sfzhm", 4),
    },
)


_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_BORN = date(1950, 1, 1)
# One person in INVALID_EVERY has a wrong check digit: the scan's finds.
INVALID_EVERY = 10_000


def peak() -> str:
    """The process's peak resident memory so far, for the stage lines."""
    return f"  (峰值内存 {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MB)"


def key(i: int) -> str:
    """A well-formed 公民身份号码 (GB 11643) of person ``i``, distinct for every i."""
    body = f"370202{_BORN + timedelta(days=i // 1000):%Y%m%d}{i % 1000:03d}"
    check = "10X98765432"[sum(int(d) * w for d, w in zip(body, _WEIGHTS, strict=True)) % 11]
    if i % INVALID_EVERY == INVALID_EVERY - 1:
        check = "0" if check != "0" else "1"
    return body + check


def build(path: Path, rows: int, rng: random.Random) -> None:
    con = sqlite3.connect(path)
    con.executescript(
        """
        PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;
        CREATE TABLE ss_1 (sfzhm TEXT PRIMARY KEY, xm TEXT, xb TEXT, csrq TEXT, hjdz TEXT);
        CREATE TABLE ss_2 (sfzhm TEXT PRIMARY KEY, swrq TEXT);
        CREATE TABLE ss_3 (sfzhm TEXT PRIMARY KEY, cbzt TEXT);
        CREATE TABLE ss_4 (sfzhm TEXT PRIMARY KEY, hyzk TEXT, hhrq TEXT, xb TEXT);
        """
    )
    step = 100_000
    for start in range(0, rows, step):
        part = range(start, min(rows, start + step))
        keys = {i: key(i) for i in part}
        con.executemany(
            "INSERT INTO ss_1 VALUES (?, ?, ?, ?, ?)",
            (
                (
                    keys[i],
                    f"居民{i}",
                    "1" if i % 2 else "2",
                    f"19{50 + i % 50}-0{1 + i % 9}-1{i % 9}",
                    f"青岛市市南区香港中路{i % 999}号",
                )
                for i in part
            ),
        )
        con.executemany(
            "INSERT INTO ss_2 VALUES (?, ?)",
            ((keys[i], f"2025-0{1 + i % 9}-2{i % 9}") for i in part if i % 50 == 0),
        )
        con.executemany(
            "INSERT INTO ss_3 VALUES (?, ?)",
            ((keys[i], "1" if i % 7 else "2") for i in part if i % 5 < 3),
        )
        con.executemany(
            "INSERT INTO ss_4 VALUES (?, ?, ?, ?)",
            (
                (
                    keys[i],
                    "20" if i % 3 else "10",
                    f"2025-0{1 + i % 9}-2{i % 9}" if i % 50 == 0 else None,
                    ("男" if i % 2 else "女") if rng.random() > 0.001 else "未知",
                )
                for i in part
                if i % 10 < 3
            ),
        )
        con.commit()
    con.close()


def reference(path: Path) -> float:
    """The assembly as one hand-written statement: union of keys, a LEFT JOIN per store."""
    con = sqlite3.connect(path)
    started = time.perf_counter()
    con.executescript(
        """
        CREATE TABLE ref AS
        WITH k AS (SELECT sfzhm FROM ss_1 UNION SELECT sfzhm FROM ss_2
                   UNION SELECT sfzhm FROM ss_3 UNION SELECT sfzhm FROM ss_4)
        SELECT k.sfzhm, a.xm, a.xb, a.csrq, a.hjdz, d.swrq, s.cbzt, m.hyzk
        FROM k LEFT JOIN ss_1 a USING (sfzhm) LEFT JOIN ss_2 d USING (sfzhm)
        LEFT JOIN ss_3 s USING (sfzhm) LEFT JOIN ss_4 m USING (sfzhm);
        """
    )
    con.commit()
    elapsed = time.perf_counter() - started
    con.close()
    return elapsed


def scan(shared_url: str, workdir: Path, rows: int) -> tuple[float, int, int]:
    """(c) The hub's quality scan (``govshare.quality.scan``) of the base database, as the
    feeder runs it: the base's catalog entry and store rows in a hub database of its own,
    its rules seeded from the items. Returns seconds, rows scanned, invalid values."""
    from govshare import db as hub
    from govshare.catalog.service import add_resource, seed_reference_data
    from govshare.config import Settings
    from govshare.demo import Entry, _resource_in, credit_code_for, it
    from govshare.quality.scan import scan_store
    from govshare.security.audit import SYSTEM
    from govshare.security.models import DepartmentLevel
    from govshare.security.roles import Role, permissions_for
    from govshare.security.service import Principal, add_department
    from govshare.sharing.models import SharedStore

    settings = Settings(data_dir=workdir / "hub", secret_key="b" * 40, demo=False)  # type: ignore[call-arg]
    hub.upgrade(settings)
    engine = hub.make_engine(settings)
    factory = hub.make_session_factory(engine, settings)
    now = datetime(2026, 12, 2, tzinfo=UTC)
    with factory() as session:
        seed_reference_data(session)
        dept = add_department(
            session,
            SYSTEM,
            name="青岛市大数据发展管理局",
            short_name="大数据局",
            credit_code=credit_code_for(1),
            division_code="370200",
            level=DepartmentLevel.CITY,
        )
        admin = Principal(
            kind="user",
            name="admin",
            department_id=dept.id,
            roles=(Role.PLATFORM_ADMIN.value,),
            permissions=permissions_for([Role.PLATFORM_ADMIN]),
        )
        entry = Entry(
            "dsj",
            "101001",
            "人口基础信息库",
            "基准测试的人口库。",
            [
                it("公民身份号码", "sfzhm", "C", 18),
                it("姓名", "xm", "C", 50),
                it("性别", "xb", "C", 1),
                it("出生日期", "csrq", "D"),
                it("户籍地址", "hjdz", "C", 200),
                it("死亡日期", "swrq", "D"),
                it("参保状态", "cbzt", "C", 2),
                it("婚姻状况", "hyzk", "C", 2),
            ],
        )
        resource = add_resource(session, admin, _resource_in(entry, "101001", dept.id, None))
        store = SharedStore(
            resource_id=resource.id,
            source_task_id=None,
            key_item="sfzhm",
            mapping={},
            verify_rules=[],
            table_name=PLAN.table_name,
            applied_seq=1,
            applied_at=now,
            row_count=rows,
            created_by="bench",
        )
        session.add(store)
        session.commit()
        db = SharedDatabase(shared_url)
        t = time.perf_counter()
        found = scan_store(session, db, store, now=now, trigger="manual", commit=True)
        elapsed = time.perf_counter() - t
        db.close()
        out = (elapsed, found.rows_scanned, found.validity_failed)
    engine.dispose()
    return out


DUCKDB_SCAN = """
SELECT count(*) AS rows_scanned,
  count(*) FILTER (WHERE NOT (
      regexp_full_match(sfzhm, '[0-9]{17}[0-9X]')
      AND substr('10X98765432', (
          (CAST(sfzhm[1] AS INT) * 7 + CAST(sfzhm[2] AS INT) * 9 + CAST(sfzhm[3] AS INT) * 10
         + CAST(sfzhm[4] AS INT) * 5 + CAST(sfzhm[5] AS INT) * 8 + CAST(sfzhm[6] AS INT) * 4
         + CAST(sfzhm[7] AS INT) * 2 + CAST(sfzhm[8] AS INT) * 1 + CAST(sfzhm[9] AS INT) * 6
         + CAST(sfzhm[10] AS INT) * 3 + CAST(sfzhm[11] AS INT) * 7 + CAST(sfzhm[12] AS INT) * 9
         + CAST(sfzhm[13] AS INT) * 10 + CAST(sfzhm[14] AS INT) * 5
         + CAST(sfzhm[15] AS INT) * 8 + CAST(sfzhm[16] AS INT) * 4
         + CAST(sfzhm[17] AS INT) * 2) % 11) + 1, 1) = sfzhm[18]
      AND try_strptime(substr(sfzhm, 7, 8), '%Y%m%d') IS NOT NULL
      AND substr(sfzhm, 1, 6) IN (SELECT code FROM divisions))) AS bad_ids,
  count(*) FILTER (WHERE xb IS NOT NULL AND xb NOT IN ('0', '1', '2', '9')) AS bad_sex,
  count(*) FILTER (WHERE csrq IS NOT NULL AND try_strptime(csrq, '%Y-%m-%d') IS NULL)
    AS bad_birth,
  count(*) FILTER (WHERE swrq IS NOT NULL AND try_strptime(swrq, '%Y-%m-%d') IS NULL)
    AS bad_death,
  count(*) FILTER (WHERE length(xm) > 50 OR length(hjdz) > 200 OR length(cbzt) > 2
                   OR length(hyzk) > 2) AS too_long,
  count(*) - count(DISTINCT sfzhm) AS duplicates
FROM base
"""


def duckdb_scan(path: Path) -> tuple[float, int]:
    """The same checks as one hand-written DuckDB query over the base's rows, loaded into
    DuckDB beforehand (the load is not timed: the reference is the query)."""
    import duckdb
    import pyarrow as pa

    from govshare.rules.validators import division_name

    con = sqlite3.connect(path)
    cur = con.execute("SELECT sfzhm, xm, xb, csrq, hjdz, swrq, cbzt, hyzk FROM bd_1")
    names = [d[0] for d in cur.description]
    batches = []
    while part := cur.fetchmany(200_000):
        batches.append(
            pa.RecordBatch.from_arrays(
                [pa.array([r[j] for r in part], pa.string()) for j in range(len(names))],
                names=names,
            )
        )
    con.close()
    base = pa.Table.from_batches(batches)
    codes = {k[:6] for k in base.column("sfzhm").to_pylist()[:1000]}
    divisions = pa.table({"code": [c for c in sorted(codes) if division_name(c)]})
    duck = duckdb.connect()
    duck.register("base", base)
    duck.register("divisions", divisions)
    t = time.perf_counter()
    result = duck.execute(DUCKDB_SCAN).fetchone()
    elapsed = time.perf_counter() - t
    assert result is not None
    return elapsed, int(result[1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=2_000_000, help="persons (default 2,000,000)")
    parser.add_argument("--keep", type=Path, help="keep the shared database in this directory")
    args = parser.parse_args()
    rows: int = args.rows
    workdir = args.keep or Path(tempfile.mkdtemp(prefix="masterdata-"))
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "shared.db"
    path.unlink(missing_ok=True)
    shutil.rmtree(workdir / "hub", ignore_errors=True)
    rng = random.Random(11)
    t = time.perf_counter()
    build(path, rows, rng)
    print(f"四个来源库 {rows:,} 人: {time.perf_counter() - t:.1f} s{peak()}", flush=True)

    db = SharedDatabase(f"sqlite:///{path}")
    assembly.ensure_tables(db, PLAN)
    now = datetime(2026, 12, 1, tzinfo=UTC)
    t = time.perf_counter()
    seqs = dict.fromkeys(PLAN.sources, 1)
    written = assembly.assemble_empty(db, PLAN, seqs, now)
    conflicts = sum(len(part) for part in assembly.disagreements(db, PLAN, seqs))
    assemble_s = time.perf_counter() - t
    assert written == rows, (written, rows)
    print(
        f"(a) 初次归集: {assemble_s:.2f} s, {rows / assemble_s:,.0f} 条/秒, 冲突 {conflicts}"
        f"{peak()}",
        flush=True,
    )

    changed = sorted(rng.sample(range(rows), min(10_000, rows)))
    con = sqlite3.connect(path)
    con.executemany(
        "UPDATE ss_1 SET xm = ? WHERE sfzhm = ?", ((f"更名{i}", key(i)) for i in changed)
    )
    con.commit()
    con.close()
    keys = [key(i) for i in changed]
    later = datetime(2026, 12, 2, tzinfo=UTC)
    t = time.perf_counter()
    updated = 0
    for batch in assembly.batched(keys, assembly.BATCH):
        updated += assembly.merge(db, PLAN, batch, lambda _s, _k: 2, later).updated
    incr_s = time.perf_counter() - t
    assert updated == len(keys), (updated, len(keys))
    print(f"(b) 增量归集 {len(keys):,} 条变更: {incr_s:.3f} s{peak()}", flush=True)
    db.close()

    scan_s, scanned, invalid = scan(f"sqlite:///{path}", workdir, rows)
    print(
        f"(c) 质量检测: {scan_s:.2f} s, {scanned / scan_s:,.0f} 条/秒, 不合规 {invalid}{peak()}",
        flush=True,
    )
    # The platform's own peak, before the DuckDB reference loads every row into Arrow.
    own_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    duck_s, duck_bad = duckdb_scan(path)
    print(
        f"参照 (手写 DuckDB 查询): {duck_s:.3f} s, {rows / duck_s:,.0f} 条/秒, "
        f"身份号码不合规 {duck_bad}",
        flush=True,
    )
    ref_s = reference(path)
    print(f"参照 (手写 SQL): {ref_s:.2f} s, {rows / ref_s:,.0f} 条/秒", flush=True)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"rows={rows} assemble_rows_per_s={rows / assemble_s:.0f} "
        f"ref_assemble_rows_per_s={rows / ref_s:.0f} incr_10k_s={incr_s:.3f} "
        f"conflicts={conflicts} scan_rows_per_s={scanned / scan_s:.0f} "
        f"duckdb_scan_rows_per_s={rows / duck_s:.0f} scan_ratio={duck_s / scan_s:.3f} "
        f"ratio={ref_s / assemble_s:.2f} max_rss_mb={own_rss:.0f} bench_rss_mb={rss:.0f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
