"""Start-up benchmark: how soon a hub and a front-end node work after a (re)start.

Builds a hub with ``tests/e2e/hubenv.py``'s ``setup_hub`` (two enrolled nodes and a
provider → subscriber task pair over a ``person`` table), adds the demo departments and
entries and ``--rows`` generated catalog entries (``bench/catalog_search.py``'s
generator, indexed for search), and gives the provider ``--rows`` business rows, which
the nodes move through the hub while the hub is killed and restarted. Then measures:

* the floor: a minimal FastAPI app under uvicorn answering ``/healthz`` (what any Python
  web process of this stack needs: interpreter, FastAPI, uvicorn, bind, first answer);
* the hub, cold: ``govshare serve`` from process start to its first ``/healthz`` 200,
  after a clean stop (``--rounds`` times);
* the node: ``govshare node run`` from process start until the hub sees its first
  heartbeat (the node's ``last_seen_at`` in ``GET /api/v1/exchange/nodes/{id}`` moving
  past the start): once for its first start (registration), then ``--rounds`` times
  after ``kill -9`` of both nodes while their tasks run;
* the hub after ``kill -9``: both nodes running and moving rows, the hub killed and
  started again, ``--rounds`` times; to ``/healthz`` and until both nodes heartbeat
  again.

The last line is machine-readable (medians; ``hub_start_s`` is the slower of cold and
after-kill-9)::

    hub_start_s=… node_start_s=… floor_s=… ratio=…

Usage: ``.venv/bin/python bench/startup.py`` (10,000 entries, 5 rounds, about two
minutes), ``--rows 100000`` for a catalogue of the size ``catalog_search.py`` uses,
``--keep DIR`` keeps the hub and the logs, ``--profile DIR`` runs each hub and node start
under ``py-spy record`` (one file of collapsed stacks each).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for extra in (ROOT, ROOT / "bench"):
    if str(extra) not in sys.path:
        sys.path.insert(0, str(extra))  # tests/e2e/hubenv.py, bench/catalog_search.py

import httpx  # noqa: E402
from catalog_search import generate  # noqa: E402
from tests.e2e.hubenv import HubEnv, Proc, setup_hub  # noqa: E402
from tests.factories import PASSWORD  # noqa: E402
from tests.pg import free_port  # noqa: E402

from govshare import db, demo  # noqa: E402

FLOOR_APP = """\
from fastapi import FastAPI

app = FastAPI()


@app.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}
"""


def load() -> str:
    return Path("/proc/loadavg").read_text().split()[0]


def build(work: Path, rows: int) -> HubEnv:
    """The hub, its catalogue and the provider's business table."""
    source, target = work / "business.db", work / "consumer.db"
    biz = sqlite3.connect(source)
    biz.execute("PRAGMA journal_mode=WAL")
    biz.execute(
        "CREATE TABLE person (id INTEGER PRIMARY KEY, sfzhm TEXT NOT NULL, xm TEXT NOT NULL, "
        "xb TEXT NOT NULL, version INTEGER NOT NULL)"
    )
    biz.execute("CREATE INDEX ix_person_version ON person (version, id)")
    with biz:
        biz.executemany(
            "INSERT INTO person VALUES (?, ?, ?, ?, ?)",
            (
                (i, f"370202{19500101 + i % 500000:08d}{i % 1000:03d}X", f"姓名{i}", "12"[i % 2], i)
                for i in range(1, rows + 1)
            ),
        )
    biz.close()
    env = setup_hub(
        work,
        source_url=f"sqlite:///{source}",
        target_url=f"sqlite:///{target}",
        provider_config={
            "source": "biz",
            "table": "person",
            "key": ["id"],
            "cursor_column": "version",
            "batch_rows": 2000,
            "schedule": {"interval_seconds": 0.5},
        },
        extra_env={"GOVSHARE_MONITOR_INTERVAL_SECONDS": "10"},
    )
    engine = db.make_engine(env.settings)
    factory = db.make_session_factory(engine, env.settings)
    started = time.perf_counter()
    with db.session_scope(factory) as session:
        counts = demo.load_demo(session, PASSWORD)
    with db.session_scope(factory) as session:
        listed = generate(session, rows)
    with engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    engine.dispose()
    print(
        f"平台: 演示 {counts['resources']} 条 + 生成 {rows:,} 条目录 ({listed:,} 条已发布), "
        f"业务表 {rows:,} 行; 用时 {time.perf_counter() - started:.1f} s",
        flush=True,
    )
    return env


def wait_for(check: Callable[[], bool], proc: Proc, what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if not proc.alive():
            raise SystemExit(f"{proc.name} exited while {what}; see {proc.log}")
        if time.monotonic() > deadline:
            raise SystemExit(f"{what}: nothing after {timeout:.0f} s; see {proc.log}")
        time.sleep(0.02)


# One client for all polling: ``httpx.get`` builds a client, and with it an SSL context,
# on every call, which costs 20 ms of CPU: polling every 20 ms that way took half a core
# from the process being timed.
_POLL = httpx.Client(timeout=2)


def healthy(base_url: str) -> bool:
    try:
        return _POLL.get(f"{base_url}/healthz").status_code == 200
    except httpx.TransportError:
        return False


def time_healthz(proc: Proc, base_url: str) -> float:
    """Start ``proc``; seconds until ``/healthz`` answers 200."""
    t0 = time.perf_counter()
    proc.start()
    wait_for(lambda: healthy(base_url), proc, "starting")
    return time.perf_counter() - t0


def profiled(proc: Proc, directory: Path | None, label: str) -> Proc:
    args = proc.args[proc.args.index("--") + 1 :] if proc.args[0].endswith("py-spy") else proc.args
    if directory is None:
        return Proc(proc.name, args, proc.env, proc.log)
    spy = Path(sys.executable).with_name("py-spy")
    out = directory / f"{label}.txt"
    record = [str(spy), "record", "--format", "raw", "-r", "100", "-s", "-o", str(out), "--"]
    return Proc(proc.name, [*record, *args], proc.env, proc.log)


def kill9(proc: Proc) -> None:
    """``kill -9`` of the server process (under py-spy: of py-spy's child, so that py-spy
    writes its file)."""
    if proc.popen is None or not proc.alive():
        return
    if proc.args[0].endswith("py-spy"):
        pid = proc.popen.pid
        for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
            os.kill(int(child), signal.SIGKILL)
        proc.popen.wait(timeout=30)
    else:
        proc.kill9()


def stop(proc: Proc) -> None:
    """A clean stop (SIGINT, as Ctrl-C, so that py-spy too writes its file)."""
    if proc.popen is not None and proc.alive():
        proc.popen.send_signal(signal.SIGINT)
        try:
            proc.popen.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill9()


class Hub:
    def __init__(self, env: HubEnv) -> None:
        self.env = env
        self._client: httpx.Client | None = None

    @property
    def api(self) -> httpx.Client:
        if self._client is None:
            self._client = self.env.api()
        return self._client

    def last_seen(self, node_id: int) -> datetime | None:
        try:
            seen = self.api.get(f"/api/v1/exchange/nodes/{node_id}").raise_for_status()
        except httpx.HTTPError:
            self._client = None  # the hub restarted: sign in again
            return None
        value = seen.json()["last_seen_at"]
        return None if value is None else datetime.fromisoformat(value)

    def heartbeat_after(self, node_id: int, since: datetime) -> bool:
        seen = self.last_seen(node_id)
        return seen is not None and seen > since


def time_nodes(hub: Hub, procs: list[Proc], directory: Path | None, label: str) -> list[float]:
    """Start ``procs`` together; seconds until the hub sees each one's heartbeat."""
    env = hub.env
    since = datetime.now(UTC)
    t0 = time.perf_counter()
    for p in procs:
        run = profiled(p, directory, f"{label}-{p.name}")
        run.start()
        p.popen, p.args = run.popen, run.args
    waiting = {p.name: p for p in procs}
    took: dict[str, float] = {}
    while waiting:
        for name, p in list(waiting.items()):
            if hub.heartbeat_after(env.node_ids[name], since):
                took[name] = time.perf_counter() - t0
                del waiting[name]
            elif not p.alive():
                raise SystemExit(f"{name} exited; see {p.log}")
        if time.perf_counter() - t0 > 120:
            raise SystemExit(f"no heartbeat from {sorted(waiting)} after 120 s")
        time.sleep(0.02)
    return [took[p.name] for p in procs]


def run(work: Path, rows: int, rounds: int, profile: Path | None) -> tuple[float, float, float]:
    if profile is not None:
        profile.mkdir(parents=True, exist_ok=True)
    env = build(work, rows)
    hub, nodes = Hub(env), [env.procs["provider"], env.procs["consumer"]]
    python = [sys.executable]

    (work / "floorapp.py").write_text(FLOOR_APP, encoding="utf-8")
    floor: list[float] = []
    for _ in range(rounds):
        port = free_port()
        proc = Proc(
            "floor",
            [*python, "-m", "uvicorn", "--app-dir", str(work), "floorapp:app", "--port", str(port)],
            {k: v for k, v in os.environ.items() if not k.startswith("GOVSHARE_")},
            work / "floor.log",
        )
        floor.append(time_healthz(proc, f"http://127.0.0.1:{port}"))
        proc.kill9()
    print(f"参照 (最小 FastAPI + uvicorn 进程): {_fmt(floor)}  负载 {load()}", flush=True)

    cold: list[float] = []
    for r in range(rounds):
        proc = profiled(env.procs["hub"], profile, f"hub-cold-{r}")
        cold.append(time_healthz(proc, env.base_url))
        stop(proc)
    print(f"平台冷启动 (正常停止后) 至 /healthz: {_fmt(cold)}  负载 {load()}", flush=True)

    hub_proc = env.procs["hub"]
    hub_proc.start()
    wait_for(lambda: healthy(env.base_url), hub_proc, "starting")
    first = time_nodes(hub, nodes, profile, "node-first")
    print(f"前置机首次启动 (含注册) 至首次心跳: {_fmt(first)}  负载 {load()}", flush=True)
    node_restart: list[float] = []
    for r in range(rounds):
        time.sleep(1.0)  # the tasks run meanwhile
        for p in nodes:
            kill9(p)
        node_restart += time_nodes(hub, nodes, profile, f"node-kill9-{r}")
    print(
        f"前置机 kill -9 后重启至首次心跳 (两节点同时): {_fmt(node_restart)}  负载 {load()}",
        flush=True,
    )

    after_kill: list[float] = []
    back: list[float] = []
    for r in range(rounds):
        time.sleep(1.0)  # the nodes move rows through the hub meanwhile
        kill9(hub_proc)
        since = datetime.now(UTC)
        proc = profiled(env.procs["hub"], profile, f"hub-kill9-{r}")
        t0 = time.perf_counter()
        after_kill.append(time_healthz(proc, env.base_url))
        hub_proc.popen, hub_proc.args = proc.popen, proc.args
        wait_for(
            lambda since=since: all(  # type: ignore[misc]
                hub.heartbeat_after(env.node_ids[p.name], since) for p in nodes
            ),
            hub_proc,
            "waiting for the nodes",
        )
        back.append(time.perf_counter() - t0)
    print(f"平台 kill -9 后重启至 /healthz: {_fmt(after_kill)}  负载 {load()}", flush=True)
    print(f"平台 kill -9 后重启至两节点再次心跳: {_fmt(back)}", flush=True)
    moved = _rows(work / "consumer.db")
    print(f"期间订阅方已收到 {moved:,} / {rows:,} 行", flush=True)
    for p in [*nodes, hub_proc]:
        stop(p)
    hub_s = max(statistics.median(cold), statistics.median(after_kill))
    return hub_s, statistics.median(node_restart), statistics.median(floor)


def _rows(path: Path) -> int:
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            return int(conn.execute("SELECT count(*) FROM person_copy").fetchone()[0])
        finally:
            conn.close()
    except sqlite3.Error:
        return 0


def _fmt(values: list[float]) -> str:
    each = " ".join(f"{v:.2f}" for v in values)
    return f"中位数 {statistics.median(values):.2f} s  ({each})"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--rows",
        type=int,
        default=10_000,
        help="generated catalog entries, and rows in the provider's business table",
    )
    parser.add_argument("--rounds", type=int, default=5, help="starts measured of each kind")
    parser.add_argument("--keep", type=Path, help="work in this directory and keep it")
    parser.add_argument(
        "--profile", type=Path, help="run each start under py-spy; stacks go to this directory"
    )
    args = parser.parse_args(argv)
    if args.keep:
        shutil.rmtree(args.keep, ignore_errors=True)
        args.keep.mkdir(parents=True)
        work = args.keep
    else:
        work = Path(tempfile.mkdtemp(prefix="govshare-bench-startup-"))
    print(f"== {args.rows:,} 条目录, {args.rounds} 轮  (负载 {load()})", flush=True)
    try:
        hub_s, node_s, floor_s = run(work, args.rows, args.rounds, args.profile)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print(
        f"hub_start_s={hub_s:.2f} node_start_s={node_s:.2f} floor_s={floor_s:.2f} "
        f"ratio={hub_s / floor_s:.2f}"
    )


if __name__ == "__main__":
    main()
