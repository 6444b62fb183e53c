"""Exchange benchmark: a population table moved end to end through real processes.

Builds a provider's business database (SQLite) with ``--rows`` rows of a 15-column
population table (人口基本信息), then starts a hub (``govshare serve``) and two front-end
nodes (``govshare node run``: the police bureau's provider node and the human-resources
bureau's subscriber node) with ``tests/e2e/hubenv.py``'s ``setup_hub``. Packages are
signed, digested and encrypted with the hub's defaults (SM2, SM3, SM4).

Measured, in order:

* the reference: the same table copied with ``sqlite3`` ``ATTACH`` + ``INSERT … SELECT``
  into a fresh database (what a raw local copy costs on this machine);
* the full load: the nodes are started with the provider task stopped; once both have
  registered and report their tasks, the task is started and the clock runs until the
  subscriber's table has every row, equal to the source (row count and sum of versions
  while polling, then a CRC of every column of every row). The time including the
  nodes' start-up is printed beside it;
* CPU time of each process during the full load (``/proc/PID/stat``);
* peak memory (``VmHWM``) of the hub and both nodes, and their resident memory when
  25 %, 50 %, 75 % and 100 % of the rows had arrived; by default a 200,000-row run
  comes first and the peaks of the two sizes are compared, to show memory stays flat
  as the table grows;
* an incremental batch: 10,000 rows updated (new version) after the full load, timed
  until all 10,000 changes are visible in the target.

The last line of output is machine-readable (figures of the largest run)::

    rows_per_s=… raw_rows_per_s=… ratio=… max_rss_mb=… incr_10k_s=…

Usage: ``.venv/bin/python bench/exchange.py`` (1,000,000 rows after 200,000; about a
minute), ``--rows 200000`` for one quicker run, ``--keep DIR`` keeps the
databases and the process logs, ``--profile DIR`` runs the three processes under py-spy.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import zlib
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # tests/e2e/hubenv.py holds the process setup

import httpx  # noqa: E402
from faker import Faker  # noqa: E402
from tests.e2e.hubenv import HubEnv, setup_hub  # noqa: E402

from govshare.catalog.schemas import ItemIn  # noqa: E402

TABLE = "person"
TARGET_TABLE = "person_copy"  # what setup_hub's subscriber task writes
INCREMENT = 10_000

# (column, 数据项名称, catalog type, length, SQLite type)
COLUMNS = [
    ("id", "编号", "I", 10, "INTEGER PRIMARY KEY"),
    ("sfzhm", "公民身份号码", "C", 18, "TEXT NOT NULL"),
    ("xm", "姓名", "C", 50, "TEXT NOT NULL"),
    ("xb", "性别", "C", 1, "TEXT NOT NULL"),
    ("mz", "民族", "C", 2, "TEXT"),
    ("csrq", "出生日期", "C", 10, "TEXT"),
    ("hjdz", "户籍地址", "C", 200, "TEXT"),
    ("xzqhdm", "行政区划代码", "C", 6, "TEXT"),
    ("hyzk", "婚姻状况", "C", 2, "TEXT"),
    ("whcd", "文化程度", "C", 2, "TEXT"),
    ("zy", "职业", "C", 100, "TEXT"),
    ("lxdh", "联系电话", "C", 20, "TEXT"),
    ("djrq", "登记日期", "C", 10, "TEXT"),
    ("version", "行版本(更新序号)", "I", 12, "INTEGER NOT NULL"),
    ("bz", "备注", "C", 200, "TEXT"),
]
NAMES = [c[0] for c in COLUMNS]

# 青岛市 districts: code, name (GB/T 2260).
DISTRICTS = [
    ("370202", "市南区"),
    ("370203", "市北区"),
    ("370211", "黄岛区"),
    ("370212", "崂山区"),
    ("370213", "李沧区"),
    ("370214", "城阳区"),
    ("370215", "即墨区"),
    ("370281", "胶州市"),
    ("370283", "平度市"),
    ("370285", "莱西市"),
]
# GB/T 3304 民族 (汉族 most of the time), GB/T 2261.2 婚姻状况, GB/T 4658 文化程度.
NATIONS = ["01"] * 40 + ["02", "03", "04", "05", "08", "11", "15"]
MARRIAGE = ["10"] * 3 + ["20"] * 6 + ["21", "22", "23", "30", "40", "90"]
EDUCATION = ["10", "20", "20", "20", "30", "30", "60", "60", "70", "70", "80", "90"]
PHONE_PREFIX = ["138", "139", "150", "151", "158", "186", "187", "133", "153", "177", "199"]
REMARKS = [None] * 12 + ["户口迁入", "户口迁出待核", "集体户", "曾用名已登记", "信息已核验"]
ID_WEIGHTS = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
ID_CHECK = "10X98765432"


def _weighted(digits: str, offset: int) -> int:
    return sum(int(d) * ID_WEIGHTS[offset + i] for i, d in enumerate(digits))


@dataclass
class Pools:
    """Small pools of realistic values (Faker zh_CN); rows are drawn from them."""

    names: list[str]
    jobs: list[str]
    streets: list[str]
    dates: list[str]  # YYYYMMDD
    region_w: list[int] = field(default_factory=list)
    date_w: list[int] = field(default_factory=list)
    seq_w: list[int] = field(default_factory=list)

    @classmethod
    def make(cls, seed: int) -> Pools:
        fake = Faker("zh_CN")
        fake.seed_instance(seed)
        first = date(1940, 1, 1)
        dates = [(first + timedelta(days=d)).strftime("%Y%m%d") for d in range(0, 365 * 68, 3)]
        pools = cls(
            names=list(dict.fromkeys(fake.name() for _ in range(6000))),
            jobs=list(dict.fromkeys(fake.job() for _ in range(600))),
            streets=list(dict.fromkeys(fake.street_name() for _ in range(800))),
            dates=dates,
        )
        # The ID number's check digit is a weighted sum: precompute each part's share.
        pools.region_w = [_weighted(code, 0) for code, _ in DISTRICTS]
        pools.date_w = [_weighted(d, 6) for d in dates]
        pools.seq_w = [_weighted(f"{q:03d}", 14) for q in range(1000)]
        return pools


def person_rows(
    pools: Pools, rng: random.Random, first_id: int, count: int, first_version: int
) -> list[tuple[object, ...]]:
    """``count`` rows, drawn column by column (``random.choices``), not row by row."""
    ids = range(first_id, first_id + count)
    regions = rng.choices(range(len(DISTRICTS)), k=count)
    births = rng.choices(range(len(pools.dates)), k=count)
    seqs = rng.choices(range(1000), k=count)
    sfzhm = [
        f"{DISTRICTS[r][0]}{pools.dates[b]}{q:03d}"
        f"{ID_CHECK[(pools.region_w[r] + pools.date_w[b] + pools.seq_w[q]) % 11]}"
        for r, b, q in zip(regions, births, seqs, strict=True)
    ]
    xb = ["1" if q % 2 else "2" for q in seqs]
    csrq = [f"{d[:4]}-{d[4:6]}-{d[6:]}" for d in (pools.dates[b] for b in births)]
    streets = rng.choices(pools.streets, k=count)
    numbers = rng.choices(range(1, 400), k=count)
    rooms = rng.choices(range(101, 2800), k=count)
    hjdz = [
        f"山东省青岛市{DISTRICTS[r][1]}{s}{n}号{m // 100}单元{m}户"
        for r, s, n, m in zip(regions, streets, numbers, rooms, strict=True)
    ]
    xzqhdm = [DISTRICTS[r][0] for r in regions]
    phones = [
        f"{p}{x:08d}"
        for p, x in zip(
            rng.choices(PHONE_PREFIX, k=count),
            rng.choices(range(100_000_000), k=count),
            strict=True,
        )
    ]
    registered = rng.choices(range(0, 365 * 20), k=count)
    djrq = [(date(2004, 1, 1) + timedelta(days=d)).isoformat() for d in registered]
    versions = range(first_version, first_version + count)
    return list(
        zip(
            ids,
            sfzhm,
            rng.choices(pools.names, k=count),
            xb,
            rng.choices(NATIONS, k=count),
            csrq,
            hjdz,
            xzqhdm,
            rng.choices(MARRIAGE, k=count),
            rng.choices(EDUCATION, k=count),
            rng.choices(pools.jobs, k=count),
            phones,
            djrq,
            versions,
            rng.choices(REMARKS, k=count),
            strict=True,
        )
    )


def make_source(path: Path, rows: int, *, seed: int = 20241121, chunk: int = 100_000) -> None:
    pools = Pools.make(seed)
    rng = random.Random(seed)
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute(f"CREATE TABLE {TABLE} ({', '.join(f'{c[0]} {c[4]}' for c in COLUMNS)})")
    db.execute(f"CREATE INDEX ix_{TABLE}_version ON {TABLE} (version, id)")
    marks = ", ".join("?" * len(COLUMNS))
    for start in range(1, rows + 1, chunk):
        count = min(chunk, rows + 1 - start)
        with db:
            db.executemany(
                f"INSERT INTO {TABLE} VALUES ({marks})",
                person_rows(pools, rng, start, count, start),
            )
    db.close()


def raw_copy(source: Path, dest: Path) -> float:
    """The reference: the whole table copied by SQLite itself; returns seconds."""
    started = time.perf_counter()
    db = sqlite3.connect(dest)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute(f"ATTACH DATABASE '{source}' AS src")
    with db:
        db.execute(f"CREATE TABLE {TABLE} ({', '.join(f'{c[0]} {c[4]}' for c in COLUMNS)})")
        db.execute(f"INSERT INTO {TABLE} SELECT * FROM src.{TABLE}")
    db.execute("DETACH DATABASE src")
    db.close()
    return time.perf_counter() - started


def _crc(*values: object) -> int:
    return zlib.crc32("\x1f".join("" if v is None else str(v) for v in values).encode())


def table_checksum(path: Path, table: str) -> tuple[int, int]:
    """Row count and the sum of a CRC-32 of every row's columns (order-independent)."""
    db = sqlite3.connect(path, timeout=60)
    db.create_function("rowcrc", len(NAMES), _crc, deterministic=True)
    try:
        count, total = db.execute(
            f"SELECT count(*), coalesce(sum(rowcrc({', '.join(NAMES)})), 0) FROM {table}"
        ).fetchone()
    finally:
        db.close()
    return int(count), int(total)


class Target:
    """Read-only polling of the subscriber's table (cheap queries while it is written)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.db: sqlite3.Connection | None = None

    def _conn(self) -> sqlite3.Connection | None:
        if self.db is None and self.path.exists():
            self.db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=60)
        return self.db

    def progress(self) -> int:
        """The highest id arrived: during the full load rows come in id order (the
        version column starts equal to id), and this costs one index step, where
        ``count(*)`` would read the whole table each time."""
        db = self._conn()
        if db is None:
            return 0
        try:
            return int(db.execute(f"SELECT coalesce(max(id), 0) FROM {TARGET_TABLE}").fetchone()[0])
        except sqlite3.OperationalError:  # not created yet
            return 0

    def count_and_version_sum(self) -> tuple[int, int]:
        db = self._conn()
        assert db is not None
        count, total = db.execute(
            f"SELECT count(*), coalesce(sum(version), 0) FROM {TARGET_TABLE}"
        ).fetchone()
        return int(count), int(total)

    def version_of(self, row_id: int) -> int | None:
        db = self._conn()
        assert db is not None
        row = db.execute(f"SELECT version FROM {TARGET_TABLE} WHERE id = ?", (row_id,)).fetchone()
        return None if row is None else int(row[0])

    def changed(self, ids_json: str, above: int) -> int:
        db = self._conn()
        assert db is not None
        return int(
            db.execute(
                f"SELECT count(*) FROM {TARGET_TABLE} WHERE id IN "
                "(SELECT value FROM json_each(?)) AND version > ?",
                (ids_json, above),
            ).fetchone()[0]
        )

    def close(self) -> None:
        if self.db is not None:
            self.db.close()


def proc_status(pid: int, field_name: str) -> float:
    """A memory figure from /proc/PID/status, in MiB (0 when the process is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (/proc/PID/stat)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pids(env: HubEnv, *, profiled: bool = False) -> dict[str, int]:
    """The Python process of each of hub, provider, consumer (under py-spy: its child)."""
    out = {}
    for name, p in env.procs.items():
        assert p.popen is not None
        pid = p.popen.pid
        if profiled:
            children = Path(f"/proc/{pid}/task/{pid}/children")
            deadline = time.monotonic() + 10
            while not children.read_text().split() and time.monotonic() < deadline:
                time.sleep(0.05)
            pid = int(children.read_text().split()[0])
        out[name] = pid
    return out


def wait_nodes_ready(env: HubEnv, api: httpx.Client, timeout: float = 120) -> None:
    """Both nodes registered and heartbeating, each reporting its task."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        check_alive(env)
        nodes = api.get("/api/v1/exchange/nodes").raise_for_status().json()
        ready = {n["id"] for n in nodes if n["online"] and n["report"].get("tasks")}
        if set(env.node_ids.values()) <= ready:
            return
        time.sleep(0.1)
    raise SystemExit("the nodes did not come up; see their logs in the work directory")


def check_alive(env: HubEnv) -> None:
    for p in env.procs.values():
        if not p.alive():
            raise SystemExit(f"{p.name} exited; see {p.log}")


@dataclass
class Result:
    rows: int
    load_s: float
    first_row_s: float
    raw_s: float
    hwm: dict[str, float]
    cpu: dict[str, float]
    rss_by_progress: dict[str, list[float]]
    incr_s: float

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.load_s

    @property
    def raw_rows_per_s(self) -> float:
        return self.rows / self.raw_s


def profiled(env: HubEnv, directory: Path) -> None:
    """Run every process under ``py-spy record`` (collapsed stacks, one file each)."""
    spy = Path(sys.executable).with_name("py-spy")
    directory.mkdir(parents=True, exist_ok=True)
    for name, proc in env.procs.items():
        out = directory / f"{name}.txt"
        record = [str(spy), "record", "--format", "raw", "-r", "50", "-o", str(out), "--"]
        proc.args = [*record, *proc.args]


def run(
    work: Path, rows: int, *, batch_rows: int, interval: float, profile: Path | None = None
) -> Result:
    source, reference, target = work / "business.db", work / "reference.db", work / "consumer.db"
    started = time.perf_counter()
    make_source(source, rows)
    print(
        f"源库: {rows:,} 行 × {len(COLUMNS)} 列, {source.stat().st_size / 2**20:.0f} MiB, "
        f"生成用时 {time.perf_counter() - started:.1f} s",
        flush=True,
    )
    raw_s = raw_copy(source, reference)
    print(f"参照 (ATTACH + INSERT … SELECT): {raw_s:.2f} s, {rows / raw_s:,.0f} 行/秒", flush=True)
    source_sum = table_checksum(source, TABLE)

    items = [
        ItemIn(name=label, code=name, data_type=kind, length=length, is_key=name == "id")
        for name, label, kind, length, _ in COLUMNS
    ]
    env = setup_hub(
        work,
        source_url=f"sqlite:///{source}",
        target_url=f"sqlite:///{target}",
        provider_config={
            "source": "biz",
            "table": TABLE,
            "key": ["id"],
            "cursor_column": "version",
            "delete_detection": "keyset",
            "batch_rows": batch_rows,
            "schedule": {"interval_seconds": interval},
        },
        items=items,
        # The hub's own monitor interval (setup_hub shortens it for the tests): its first
        # tick asks for the day's reconciliation, which the provider answers mid-load.
        extra_env={"GOVSHARE_MONITOR_INTERVAL_SECONDS": "10"},
    )
    if profile is not None:
        profiled(env, profile)
    poll = Target(target)
    provider_task = env.task_ids["provider"]
    try:
        env.procs["hub"].start()
        env.wait_healthy()
        with env.api() as api:
            # The nodes start (interpreter, registration, first heartbeat) with the
            # provider task stopped; the clock starts when the task is started.
            api.post(f"/api/v1/exchange/tasks/{provider_task}/stop").raise_for_status()
            launched = time.perf_counter()
            env.procs["provider"].start()
            env.procs["consumer"].start()
            ids = pids(env, profiled=profile is not None)
            wait_nodes_ready(env, api)
            cpu_before = {name: cpu_seconds(pid) for name, pid in ids.items()}
            t0 = time.perf_counter()
            api.post(f"/api/v1/exchange/tasks/{provider_task}/start").raise_for_status()
        print(f"节点进程启动并就绪: {t0 - launched:.2f} s", flush=True)
        marks = [rows * q // 4 for q in (1, 2, 3, 4)]
        rss_by_progress: dict[str, list[float]] = {name: [] for name in ids}
        first_row_s = 0.0
        last_report = t0
        expected = (rows, rows * (rows + 1) // 2)  # row count, sum of versions
        while True:
            check_alive(env)
            n = poll.progress()
            now = time.perf_counter()
            if n and not first_row_s:
                first_row_s = now - t0
            while marks and n >= marks[0]:
                marks.pop(0)
                for name, pid in ids.items():
                    rss_by_progress[name].append(proc_status(pid, "VmRSS"))
            if n >= rows and poll.count_and_version_sum() == expected:
                break
            if now - last_report > 5:
                print(f"  {now - t0:5.1f} s: {n:,} 行", flush=True)
                last_report = now
            if now - t0 > 3600:
                raise SystemExit("the full load did not finish within an hour")
            time.sleep(0.1)
        load_s = time.perf_counter() - t0
        cpu = {name: cpu_seconds(pid) - cpu_before[name] for name, pid in ids.items()}
        print(
            f"全量 (自启动任务): {load_s:.2f} s, {rows / load_s:,.0f} 行/秒; 首行到达 "
            f"{first_row_s:.2f} s; 含节点进程启动 {t0 - launched + load_s:.2f} s, "
            f"{rows / (t0 - launched + load_s):,.0f} 行/秒",
            flush=True,
        )
        got = table_checksum(target, TARGET_TABLE)
        if got != source_sum:
            raise SystemExit(f"target differs from source: {got} != {source_sum}")
        print(f"校验: {got[0]:,} 行, 逐行 CRC 之和 {got[1]} 与源库一致", flush=True)

        incr_s = incremental(env, source, poll, rows)
        print(f"增量: {INCREMENT:,} 行变更 {incr_s:.2f} s 后全部可见", flush=True)
        hwm = {name: proc_status(pid, "VmHWM") for name, pid in ids.items()}
    finally:
        poll.close()
        if profile is not None:  # end the profiled processes so py-spy writes its file
            for proc in env.procs.values():
                if proc.popen is not None and proc.alive():
                    children = Path(f"/proc/{proc.popen.pid}/task/{proc.popen.pid}/children")
                    for child in children.read_text().split():
                        os.kill(int(child), signal.SIGTERM)
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        proc.popen.wait(timeout=30)
        env.stop_all()
    return Result(rows, load_s, first_row_s, raw_s, hwm, cpu, rss_by_progress, incr_s)


def incremental(env: HubEnv, source: Path, poll: Target, rows: int) -> float:
    """Update 10,000 rows (each gets a new version); seconds until all are in the target."""
    rng = random.Random(rows)
    ids = sorted(rng.sample(range(1, rows + 1), min(INCREMENT, rows)))
    db = sqlite3.connect(source, timeout=60)
    above = int(db.execute(f"SELECT max(version) FROM {TABLE}").fetchone()[0])
    t0 = time.perf_counter()
    with db:
        db.executemany(
            f"UPDATE {TABLE} SET version = ?, hyzk = '20', bz = ? WHERE id = ?",
            [(above + 1 + n, f"增量变更 {n}", i) for n, i in enumerate(ids)],
        )
    db.close()
    ids_json = "[" + ",".join(map(str, ids)) + "]"
    last, last_version = ids[-1], above + len(ids)
    while poll.version_of(last) != last_version or poll.changed(ids_json, above) < len(ids):
        check_alive(env)
        if time.perf_counter() - t0 > 600:
            raise SystemExit("the incremental batch did not arrive within 10 minutes")
        time.sleep(0.01)
    return time.perf_counter() - t0


def report(result: Result) -> None:
    print(
        "全量期间 CPU 时间: "
        + ", ".join(
            f"{name} {result.cpu.get(name, 0):.1f} s" for name in ("hub", "provider", "consumer")
        )
        + f" (墙钟 {result.load_s:.1f} s, {os.cpu_count()} 核)"
    )
    print(f"负载 (1 分钟平均, 结束时): {os.getloadavg()[0]:.2f}")
    print(f"峰值内存 (VmHWM, {result.rows:,} 行):")
    for name in ("hub", "provider", "consumer"):
        steps = " → ".join(f"{v:.0f}" for v in result.rss_by_progress.get(name, []))
        print(
            f"  {name:9s} 峰值 {result.hwm.get(name, 0):6.0f} MiB;  "
            f"到达 25/50/75/100 % 时 VmRSS {steps} MiB"
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows in the source table")
    parser.add_argument(
        "--compare-rows",
        type=int,
        default=200_000,
        help="first run a smaller table of this many rows (when smaller than --rows) and "
        "compare each process's peak memory; 0 to skip",
    )
    parser.add_argument("--batch-rows", type=int, default=50_000, help="provider batch size")
    parser.add_argument(
        "--interval",
        type=float,
        default=0.2,
        help="the provider task's schedule interval in seconds (the subscriber task polls "
        "every 0.2 s, as setup_hub configures it)",
    )
    parser.add_argument("--keep", type=Path, help="work in this directory and keep it")
    parser.add_argument(
        "--profile", type=Path, help="run the processes under py-spy; stacks go to this directory"
    )
    args = parser.parse_args(argv)

    sizes = ([args.compare_rows] if 0 < args.compare_rows < args.rows else []) + [args.rows]
    results = []
    for rows in sizes:
        if args.keep:
            work = args.keep / f"rows-{rows}"
            shutil.rmtree(work, ignore_errors=True)
            work.mkdir(parents=True)
        else:
            work = Path(tempfile.mkdtemp(prefix="govshare-bench-exchange-"))
        print(f"== {rows:,} 行  (负载 {os.getloadavg()[0]:.2f})", flush=True)
        try:
            result = run(
                work,
                rows,
                batch_rows=args.batch_rows,
                interval=args.interval,
                profile=args.profile / f"rows-{rows}" if args.profile else None,
            )
        finally:
            if not args.keep:
                shutil.rmtree(work, ignore_errors=True)
        report(result)
        results.append(result)
    if len(results) == 2:
        small, large = results
        print(f"内存随表增长 ({small.rows:,} → {large.rows:,} 行, 峰值 MiB):")
        for name in ("hub", "provider", "consumer"):
            a, b = small.hwm.get(name, 0), large.hwm.get(name, 0)
            print(f"  {name:9s} {a:6.0f} → {b:6.0f}  ({(b - a) / a * 100 if a else 0:+.0f} %)")
    r = results[-1]
    print(
        f"rows_per_s={r.rows_per_s:.0f} raw_rows_per_s={r.raw_rows_per_s:.0f} "
        f"ratio={r.rows_per_s / r.raw_rows_per_s:.3f} max_rss_mb={max(r.hwm.values()):.0f} "
        f"incr_10k_s={r.incr_s:.2f}"
    )


if __name__ == "__main__":
    main()
