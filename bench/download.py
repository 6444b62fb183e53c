"""Open-data download benchmark: a large 无条件开放 dataset downloaded through the portal.

Builds, in a temporary directory, a freshly migrated SQLite hub with one department and
one published, open (无条件开放) resource of six information items, and a shared store
(共享信息库) for it whose table ``ss_{resource_id}`` holds ``--rows`` generated persons
(filled directly with ``sqlite3``, in the layout ``TargetWriter`` creates: the source key
``rid`` as primary key, one column per item). Then starts a real hub
(``govshare serve``) and downloads, over HTTP on loopback, one after the other:

* ``GET /open/datasets/{slug}/download.csv``
* ``GET /open/datasets/{slug}/download.json``

counting the rows received, while a thread samples the hub process's resident memory
(``VmRSS`` in ``/proc/PID/status``) every 20 ms. The reference, in the same run, is the
``sqlite3`` command-line shell writing the same six columns of the same table, in the
same key order, to a CSV file (``.mode csv``), timed from its start to its exit.

The last line is machine-readable::

    csv_rows_per_s=… json_rows_per_s=… ref_rows_per_s=… ratio=… max_rss_mb=…

``ratio`` is ``csv_rows_per_s / ref_rows_per_s``; ``max_rss_mb`` is the most the hub's
resident memory grew above its level just before the first download. Targets: CSV at
least 300,000 rows/s, RSS growth under 100 MB.

Usage: ``.venv/bin/python bench/download.py`` (1,000,000 rows), ``--rows 200000`` for a
quick run, ``--keep DIR`` to keep the hub's data directory and log.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
SECRET = "bench-download-secret-key-0123456789abcdef"
ITEMS = [
    ("sfzhm", "公民身份号码", "C", 18),
    ("xm", "姓名", "C", 50),
    ("xb", "性别", "C", 1),
    ("csrq", "出生日期", "D", None),
    ("jzdz", "居住地址", "C", 200),
    ("lxdh", "联系电话", "C", 20),
]
NAMES = [code for code, *_ in ITEMS]


@dataclasses.dataclass
class Built:
    data_dir: Path
    slug: str
    shared_db: Path
    table: str


def build(work: Path, rows: int) -> Built:
    sys.path.insert(0, str(ROOT))
    from tests.factories import valid_credit_code

    from govshare import db
    from govshare.catalog import service as catalog
    from govshare.catalog.schemas import ItemIn, ResourceIn
    from govshare.catalog.service import seed_reference_data
    from govshare.config import Settings
    from govshare.exchange.models import ExchangeNode, ExchangeTask, TaskKind
    from govshare.opendata.datasets import slug_of
    from govshare.security.audit import SYSTEM
    from govshare.security.roles import Role, permissions_for
    from govshare.security.service import Principal, add_department
    from govshare.sharing.models import SharedStore

    settings = Settings(data_dir=work / "hub", secret_key=SECRET, demo=False)  # type: ignore[call-arg]
    db.upgrade(settings)
    engine = db.make_engine(settings)
    factory = db.make_session_factory(engine, settings)
    admin = Principal(
        kind="user",
        name="bench_admin",
        department_id=None,
        permissions=permissions_for([Role.PLATFORM_ADMIN]),
        roles=(Role.PLATFORM_ADMIN.value,),
    )
    with db.session_scope(factory) as s:
        seed_reference_data(s)
        dept = add_department(
            s,
            SYSTEM,
            name="青岛市公安局",
            short_name="公安",
            credit_code=valid_credit_code(),
            division_code="370200",
        )
        res = catalog.add_resource(
            s,
            admin,
            ResourceIn(
                classification_code="101001",
                name="户籍人口示例数据",
                abstract="用于下载基准测试的生成数据",
                format="database",
                sharing_type="1",
                sharing_modes=["table"],
                update_cycle="daily",
                is_open=True,
                open_conditions="",
                provider_department_id=dept.id,
                items=[
                    ItemIn(
                        name=label, code=code, data_type=kind, length=length, is_key=code == "sfzhm"
                    )
                    for code, label, kind, length in ITEMS
                ],
            ),
        )
        reviewer = Principal(
            kind="user",
            name="bench_reviewer",
            department_id=dept.id,
            permissions=permissions_for([Role.CATALOG_REVIEWER]),
            roles=(Role.CATALOG_REVIEWER.value,),
        )
        publisher = dataclasses.replace(admin, name="bench_publisher")
        judges = {"approve": reviewer, "publish": publisher}
        for step in ["submit", "approve", "request_publication", "publish"]:
            catalog.transition(s, judges.get(step, admin), res.id, step)
        node = ExchangeNode(
            name="公安前置机", department_id=dept.id, sig_alg="ed25519", cipher="aes-gcm"
        )
        s.add(node)
        s.flush()
        task = ExchangeTask(
            name="人口发送",
            kind=TaskKind.PROVIDER,
            node_id=node.id,
            resource_id=res.id,
            config={"key": ["rid"]},
            created_by="bench",
        )
        s.add(task)
        s.flush()
        store = SharedStore(
            resource_id=res.id,
            source_task_id=task.id,
            key_item="sfzhm",
            mapping={n: n for n in NAMES},
            table_name=f"ss_{res.id}",
            applied_seq=1,
            row_count=rows,
            created_by="bench",
        )
        s.add(store)
        s.flush()
        slug, table = slug_of(res.code), store.table_name
    engine.dispose()

    started = time.perf_counter()
    shared = settings.data_dir / "shared.db"
    conn = sqlite3.connect(shared)
    conn.execute("PRAGMA journal_mode=WAL")
    cols = ", ".join(f"{n} TEXT" for n in NAMES)
    with conn:
        conn.execute(f"CREATE TABLE {table} (rid INTEGER NOT NULL PRIMARY KEY, {cols})")
        conn.execute(
            f"""
            WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)
            INSERT INTO {table}
            SELECT i,
                   printf('370202%04d%02d%02d%04d',
                          1950 + i % 60, 1 + i % 12, 1 + i % 28, i % 10000),
                   '居民' || i,
                   CASE i % 2 WHEN 0 THEN '2' ELSE '1' END,
                   printf('%04d-%02d-%02d', 1950 + i % 60, 1 + i % 12, 1 + i % 28),
                   '青岛市'
                       || CASE i % 3 WHEN 0 THEN '市南区' WHEN 1 THEN '市北区' ELSE '崂山区' END
                       || '某某路' || (i % 500) || '号',
                   printf('1%010d', i)
            FROM n
            """,
            (rows,),
        )
        conn.execute(f"CREATE INDEX ix_{table}_key ON {table} (sfzhm)")
    conn.close()
    size = shared.stat().st_size / 2**20
    print(
        f"共享信息库: {rows:,} 行, 生成 {time.perf_counter() - started:.1f} s, {size:.0f} MiB",
        flush=True,
    )
    return Built(settings.data_dir, slug, shared, table)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def settle(pid: int, timeout: float = 60) -> float:
    """The process's resident memory once it has changed by less than 1 MB in 3 s."""
    deadline = time.monotonic() + timeout
    last = rss_mb(pid)
    while time.monotonic() < deadline:
        time.sleep(3)
        now = rss_mb(pid)
        if abs(now - last) < 1:
            return now
        last = now
    return last


class RssWatch:
    """The highest resident memory of a process while running, sampled every 20 ms."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = rss_mb(pid)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, rss_mb(self.pid))

    def __enter__(self) -> RssWatch:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def download(url: str, marker: bytes) -> tuple[int, float, int]:
    """(rows, seconds, bytes) of one download; rows are counted by ``marker``."""
    count = size = 0
    started = time.perf_counter()
    with httpx.Client(timeout=600) as client, client.stream("GET", url) as r:
        r.raise_for_status()
        for chunk in r.iter_raw(1 << 16):
            count += chunk.count(marker)
            size += len(chunk)
    return count, time.perf_counter() - started, size


def reference(built: Built, out: Path) -> float:
    """Seconds for the ``sqlite3`` shell to write the same rows to a CSV file."""
    query = f"SELECT {', '.join(NAMES)} FROM {built.table} ORDER BY rid;"
    sql = f".headers on\n.mode csv\n.output {out}\n{query}\n"
    started = time.perf_counter()
    subprocess.run(["sqlite3", str(built.shared_db)], input=sql.encode(), check=True)
    return time.perf_counter() - started


def run(args: argparse.Namespace, work: Path) -> None:
    built = build(work, args.rows)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOVSHARE_")}
    env |= {"GOVSHARE_SECRET_KEY": SECRET, "GOVSHARE_DATA_DIR": str(built.data_dir)}
    env["PYTHONPATH"] = str(ROOT / "src") + os.pathsep + env.get("PYTHONPATH", "")
    log = (work / "hub.log").open("wb")
    hub = subprocess.Popen(
        [sys.executable, "-m", "govshare.cli", "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if hub.poll() is not None:
                raise SystemExit(f"the hub exited; see {work / 'hub.log'}")
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("the hub did not come up")
            time.sleep(0.2)
        # A search (it loads the word segmenter's dictionary, about 100 MB, which the hub
        # otherwise loads in the background a few seconds after its start) and the
        # dataset's page (templates, the store's table reflected); then the hub's memory
        # is left to settle before the baseline is read.
        httpx.get(f"{base}/open/datasets", params={"q": "人口"}, timeout=60).raise_for_status()
        httpx.get(f"{base}/open/datasets/{built.slug}", timeout=60).raise_for_status()
        baseline = settle(hub.pid)
        url = f"{base}/open/datasets/{built.slug}/download"
        with RssWatch(hub.pid) as watch:
            csv_lines, csv_s, csv_bytes = download(f"{url}.csv", b"\n")
            csv_peak = watch.peak
            json_rows, json_s, json_bytes = download(f"{url}.json", b"{")
        csv_rows = csv_lines - 1  # the header
        if csv_rows != args.rows or json_rows != args.rows:
            raise SystemExit(f"rows received: csv {csv_rows:,}, json {json_rows:,}")
        ref_s = reference(built, work / "reference.csv")
        ref_lines = sum(1 for _ in (work / "reference.csv").open("rb")) - 1
        assert ref_lines == args.rows, ref_lines
    finally:
        hub.terminate()
        try:
            hub.wait(timeout=15)
        except subprocess.TimeoutExpired:
            hub.kill()
            hub.wait()
        log.close()
    csv_rate, json_rate, ref_rate = args.rows / csv_s, args.rows / json_s, args.rows / ref_s
    growth = max(0.0, watch.peak - baseline)
    print(
        f"CSV:  {csv_rows:,} 行, {csv_bytes / 2**20:.0f} MiB, {csv_s:.2f} s, {csv_rate:,.0f} 行/s"
    )
    print(
        f"JSON: {json_rows:,} 行, {json_bytes / 2**20:.0f} MiB, {json_s:.2f} s, "
        f"{json_rate:,.0f} 行/s"
    )
    print(f"参照 (sqlite3 .mode csv): {ref_s:.2f} s, {ref_rate:,.0f} 行/s")
    print(
        f"中心进程内存: 下载前 {baseline:.0f} MiB, CSV 期间峰值 {csv_peak:.0f} MiB, "
        f"全程峰值 {watch.peak:.0f} MiB; 负载 {os.getloadavg()[0]:.2f}"
    )
    print(
        f"csv_rows_per_s={csv_rate:.0f} json_rows_per_s={json_rate:.0f} "
        f"ref_rows_per_s={ref_rate:.0f} ratio={csv_rate / ref_rate:.2f} max_rss_mb={growth:.1f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--keep", type=Path, help="build in this directory and keep it")
    args = parser.parse_args()
    if shutil.which("sqlite3") is None:
        raise SystemExit("the sqlite3 shell is missing (apt-get install sqlite3)")
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
        run(args, args.keep)
        return
    with tempfile.TemporaryDirectory(prefix="govshare-bench-download-") as tmp:
        run(args, Path(tmp))


if __name__ == "__main__":
    main()
