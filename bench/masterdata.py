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

The last line::

    rows=… assemble_rows_per_s=… ref_assemble_rows_per_s=… incr_10k_s=… conflicts=…
    ratio=… max_rss_mb=…

``ratio`` is our assembly rate over the hand-written SQL's. Targets (issue 11):
assembly ≥ 200,000 rows/s, incremental 10,000 changes < 2 s, peak RSS < 1.5 GB at
10,000,000 rows. The quality-scan figures of the issue's line come with the quality
scans (``govshare.quality``), measured separately.

Usage: ``.venv/bin/python bench/masterdata.py --rows 200000``.
"""

from __future__ import annotations

import argparse
import random
import resource
import sqlite3
import sys
import tempfile
import time
from datetime import UTC, datetime
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


def key(i: int) -> str:
    return f"37020219{i:010d}"


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
        con.executemany(
            "INSERT INTO ss_1 VALUES (?, ?, ?, ?, ?)",
            (
                (
                    key(i),
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
            ((key(i), f"2025-0{1 + i % 9}-2{i % 9}") for i in part if i % 50 == 0),
        )
        con.executemany(
            "INSERT INTO ss_3 VALUES (?, ?)",
            ((key(i), "参保" if i % 7 else "停保") for i in part if i % 5 < 3),
        )
        con.executemany(
            "INSERT INTO ss_4 VALUES (?, ?, ?, ?)",
            (
                (
                    key(i),
                    "已婚" if i % 3 else "未婚",
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
    rng = random.Random(11)
    t = time.perf_counter()
    build(path, rows, rng)
    print(f"四个来源库 {rows:,} 人: {time.perf_counter() - t:.1f} s", flush=True)

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
        f"(a) 初次归集: {assemble_s:.2f} s, {rows / assemble_s:,.0f} 条/秒, 冲突 {conflicts}",
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
    print(f"(b) 增量归集 {len(keys):,} 条变更: {incr_s:.3f} s", flush=True)
    db.close()

    ref_s = reference(path)
    print(f"参照 (手写 SQL): {ref_s:.2f} s, {rows / ref_s:,.0f} 条/秒", flush=True)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"rows={rows} assemble_rows_per_s={rows / assemble_s:.0f} "
        f"ref_assemble_rows_per_s={rows / ref_s:.0f} incr_10k_s={incr_s:.3f} "
        f"conflicts={conflicts} ratio={ref_s / assemble_s:.2f} max_rss_mb={rss:.0f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
