"""Data-service benchmark: key lookups through the hub's API against Datasette.

Builds, in a temporary directory, a freshly migrated hub (SQLite) and a shared store
(共享信息库) of ``--rows`` persons, then measures three real processes: the hub
(``govshare serve``), Datasette (``datasette serve``) and a load generator (this script
again, ``--load``), all on this machine.

Setup, done with the service functions directly (no HTTP): departments (公安 provides,
人社 consumes), the published 有条件共享 resource 人口基本信息 with bench/exchange.py's 15
columns as its items, a provider node and task (never started), the shared store on
that task (``sharing.store.create_store``: key item 公民身份号码 ``sfzhm``, a status rule
for 核验), an application by 人社 approved by 公安 (items sfzhm, xm, xb, csrq, hjdz,
lxdh; 姓名, 户籍地址 and 联系电话 masked), and an API client of 人社 with a rate and a
daily quota far above what the bench uses. The store's table is filled directly, not
through the exchange: the rows of bench/exchange.py's generator (same seed) are copied
into ``ss_{resource_id}`` in ``shared.db`` with the layout ``TargetWriter`` creates (the
source key ``id`` as primary key, one column per item, an index on the key item), and
the store's ``applied_seq``/``row_count`` are set as the feed would. The exchange feed
itself is benchmarked by bench/exchange.py. Datasette serves a copy of the same table
from its own SQLite file, with the same index on ``sfzhm``.

Measured (``--seconds`` each after ``--warmup`` seconds, ``--concurrency`` connections,
HTTP/1.1 keep-alive, one key per request, keys drawn at random from 20,000 present and
2,000 absent ID numbers):

* the load generator's own ceiling, against a trivial server (a separate process that
  answers every request with ``{}``): the most requests/s this client can make here;
* hub: ``POST /api/v1/data/{code}/lookup`` {"keys": [k]}, every request signed
  (HMAC-SHA256 over method, path, timestamp, a fresh nonce and the body's digest):
  signature check, grant in force read from the database, rate limit and quota,
  lookup, masking, and the call journalled (nonce spent, audit entry with the hashed
  key, usage counts) before the answer;
* Datasette: ``GET /datasette/person.json?sfzhm=k`` with the same six columns
  (``_col``), ``_shape=array``, and its row count and facet suggestions switched off
  (``_nocount``, ``_nofacet``, ``_nosuggest``): its cheapest way to answer a row lookup
  on an indexed column;
* bulk verification: ``POST …/verify`` with 10,000 keys per call (90 % present), two
  calls at a time; keys per second.

The last line is machine-readable::

    rps=… datasette_rps=… ratio=… p99_ms=… verify_keys_per_s=… sealed=0|1

``ratio`` is ``rps / datasette_rps``; ``p99_ms`` is the hub's. Targets: ratio ≥ 1,
p99 under 50 ms, verification at least 50,000 keys/s.

Usage: ``.venv/bin/python bench/query_api.py`` (1,000,000 persons, about 2 minutes),
``--rows 100000`` for a quicker run, ``--workers N`` for ``govshare serve --workers``,
``--sealed`` to keep 公民身份号码, 姓名 and 联系电话 sealed in the store (字段加密: every
lookup seals the key asked for and opens the answer; Datasette's copy stays in the
clear), ``--keep DIR`` to keep the databases and logs, ``--profile DIR`` to record the hub
under py-spy during its lookup phase (the figures of a profiled run are lower).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import hashlib
import hmac
import json
import os
import random
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
SECRET = "bench-query-api-secret-key-0123456789abcdef"
KEYS_PRESENT = 20_000
KEYS_ABSENT = 2_000
VERIFY_KEYS = 10_000
ITEMS = ["sfzhm", "xm", "xb", "csrq", "hjdz", "lxdh"]
MASKING = {"xm": "name", "hjdz": "address", "lxdh": "phone"}


# -- the load generator (runs as its own process) -----------------------------------------


class Conn:
    """One keep-alive HTTP/1.1 connection, spoken directly over asyncio streams: a few
    microseconds a request, so the client is not what is measured."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, head: bytes, body: bytes = b"") -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        self.writer.write(head + body)
        raw = await self.reader.readuntil(b"\r\n\r\n")
        status = int(raw[9:12])
        headers = raw.lower()
        at = headers.find(b"\r\ncontent-length:")
        if at >= 0:
            end = headers.index(b"\r\n", at + 2)
            data = await self.reader.readexactly(int(headers[at + 17 : end]))
        elif b"\r\ntransfer-encoding: chunked" in headers:
            parts = []
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
                chunk = await self.reader.readexactly(size + 2)
                if size == 0:
                    break
                parts.append(chunk[:-2])
            data = b"".join(parts)
        else:
            raise RuntimeError(f"response without length: {raw[:200]!r}")
        return status, data


def _hub_request(spec: dict[str, Any], path: str, body: bytes) -> bytes:
    ts = str(int(time.time()))
    nonce = os.urandom(12).hex()
    signed = "\n".join(["POST", path, ts, nonce, hashlib.sha256(body).hexdigest()]).encode()
    sig = hmac.new(spec["secret"].encode(), signed, hashlib.sha256).hexdigest()
    return (
        f"POST {path} HTTP/1.1\r\nHost: {spec['host']}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nX-App-Key: {spec['app_key']}\r\nX-Timestamp: {ts}\r\n"
        f"X-Nonce: {nonce}\r\nX-Signature: {sig}\r\n\r\n"
    ).encode()


def _make_request(spec: dict[str, Any], rng: random.Random, keys: list[str]) -> tuple[bytes, bytes]:
    kind = spec["kind"]
    if kind == "trivial":
        return f"GET / HTTP/1.1\r\nHost: {spec['host']}\r\n\r\n".encode(), b""
    if kind == "datasette":
        cols = "".join(f"&_col={c}" for c in ITEMS if c != "sfzhm")
        target = (
            f"/datasette/person.json?sfzhm={rng.choice(keys)}&_shape=array"
            f"&_nocount=1&_nofacet=1&_nosuggest=1{cols}"
        )
        return f"GET {target} HTTP/1.1\r\nHost: {spec['host']}\r\n\r\n".encode(), b""
    if kind == "lookup":
        body = json.dumps({"keys": [rng.choice(keys)]}).encode()
        return _hub_request(spec, f"/api/v1/data/{spec['code']}/lookup", body), body
    if kind == "verify":
        body = json.dumps({"keys": rng.sample(keys, VERIFY_KEYS)}).encode()
        return _hub_request(spec, f"/api/v1/data/{spec['code']}/verify", body), body
    raise ValueError(kind)


async def _load(spec: dict[str, Any]) -> dict[str, Any]:
    keys: list[str] = json.loads(Path(spec["keys_file"]).read_text())
    started = time.perf_counter()
    measure_from = started + spec["warmup"]
    stop_at = measure_from + spec["seconds"]
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    sample: list[bytes] = []
    done_in_window = 0

    async def worker(n: int) -> None:
        nonlocal done_in_window
        rng = random.Random(n)
        conn = Conn(spec["host"], spec["port"])
        while True:
            head, body = _make_request(spec, rng, keys)
            t0 = time.perf_counter()
            if t0 >= stop_at:
                return
            status, data = await conn.request(head, body)
            t1 = time.perf_counter()
            if t0 >= measure_from and t1 <= stop_at:
                latencies.append(t1 - t0)
                statuses[status] = statuses.get(status, 0) + 1
                if status == 200:
                    done_in_window += 1
                if len(sample) < 3 or (status != 200 and len(sample) < 6):
                    sample.append(data[:600])

    await asyncio.gather(*(worker(n) for n in range(spec["concurrency"])))
    return {
        "ok": done_in_window,
        "seconds": spec["seconds"],
        "latencies": latencies,
        "statuses": {str(k): v for k, v in statuses.items()},
        "sample": [s.decode("utf-8", "replace") for s in sample],
    }


def load_main(spec_path: Path) -> None:
    spec = json.loads(spec_path.read_text())
    result = asyncio.run(_load(spec))
    Path(spec["out"]).write_text(json.dumps(result))


async def _trivial(port: int) -> None:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                await reader.readuntil(b"\r\n\r\n")
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", port)
    async with server:
        await server.serve_forever()


# -- setup ----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Built:
    hub_dir: Path
    datasette_db: Path
    code: str
    app_key: str
    secret: str
    keys_file: Path
    verify_keys_file: Path


SEALED = ("sfzhm", "xm", "lxdh")  # marked sensitive with --sealed (字段加密)


def _seal_table(settings: Any, table_name: str, rows: int) -> None:
    """The sensitive columns sealed in place, as the feed would have stored them."""
    from govshare.sharing.shared_db import field_sealer

    sealer = field_sealer(settings)
    conn = sqlite3.connect(settings.data_dir / "shared.db")
    step = 50_000
    with conn:
        for low in range(0, rows, step):
            got = conn.execute(
                f"SELECT id, {', '.join(SEALED)} FROM {table_name} WHERE id > ? AND id <= ?",
                (low, low + step),
            ).fetchall()
            columns = [sealer.seal_texts([r[i + 1] for r in got]) for i in range(len(SEALED))]
            conn.executemany(
                f"UPDATE {table_name} SET {', '.join(f'{c} = ?' for c in SEALED)} WHERE id = ?",
                [(*(col[j] for col in columns), r[0]) for j, r in enumerate(got)],
            )
    conn.close()


def build(work: Path, rows: int, sealed: bool = False) -> Built:
    sys.path.insert(0, str(HERE))
    sys.path.insert(0, str(ROOT))
    from tests.factories import valid_credit_code

    from exchange import COLUMNS, NAMES, TABLE, make_source  # type: ignore[import-not-found]
    from govshare import db
    from govshare.catalog import service as catalog
    from govshare.catalog.schemas import ItemIn, ResourceIn
    from govshare.catalog.service import seed_reference_data
    from govshare.config import Settings
    from govshare.exchange import service as exchange
    from govshare.exchange.models import TaskKind
    from govshare.exchange.schemas import TaskCreate
    from govshare.rules.clock import china_today
    from govshare.security.audit import SYSTEM
    from govshare.security.roles import Role, permissions_for
    from govshare.security.service import Principal, add_api_client, add_department
    from govshare.sharing import service as sharing
    from govshare.sharing import store as shared
    from govshare.sharing.models import SharedStore
    from govshare.sharing.schemas import ApplicationCreate, ApproveIn, StoreCreate

    started = time.perf_counter()
    source = work / "business.db"
    make_source(source, rows)
    print(f"源数据: {rows:,} 人, 生成用时 {time.perf_counter() - started:.1f} s", flush=True)

    settings = Settings(data_dir=work / "hub", secret_key=SECRET, demo=False)  # type: ignore[call-arg]
    db.upgrade(settings)
    engine = db.make_engine(settings)
    factory = db.make_session_factory(engine, settings)

    def user(dept_id: int | None, role: Role) -> Principal:
        return Principal(
            kind="user",
            name=f"bench_{role.value}_{dept_id}",
            department_id=dept_id,
            permissions=permissions_for([role]),
            roles=(role.value,),
        )

    admin = user(None, Role.PLATFORM_ADMIN)
    with db.session_scope(factory) as s:
        seed_reference_data(s)
        police = add_department(
            s,
            SYSTEM,
            name="青岛市公安局",
            short_name="公安",
            credit_code=valid_credit_code(),
            division_code="370200",
        )
        hr = add_department(
            s,
            SYSTEM,
            name="青岛市人力资源和社会保障局",
            short_name="人社",
            credit_code=valid_credit_code(),
            division_code="370200",
        )
        res = catalog.add_resource(
            s,
            admin,
            ResourceIn(
                classification_code="101001",
                name="人口基本信息",
                abstract="全市户籍人口基本信息",
                format="database",
                sharing_type="2",
                sharing_conditions="用于社会保障业务办理, 须经公安局审核",
                sharing_modes=["table"],
                update_cycle="realtime",
                provider_department_id=police.id,
                items=[
                    ItemIn(
                        name=label,
                        code=name,
                        data_type=kind,
                        length=length,
                        is_key=name == "id",
                        sensitive=sealed and name in SEALED,
                    )
                    for name, label, kind, length, _ in COLUMNS
                ],
            ),
        )
        reviewer = user(police.id, Role.CATALOG_REVIEWER)
        publisher = dataclasses.replace(admin, name="bench_publisher")
        judges = {"approve": reviewer, "publish": publisher}
        for step in ["submit", "approve", "request_publication", "publish"]:
            # 职责分离: whoever submits a step never judges it.
            catalog.transition(s, judges.get(step, admin), res.id, step)
        node, _token = exchange.enroll_node(
            s, settings, admin, name="公安前置机", department_id=police.id
        )
        task = exchange.create_task(
            s,
            admin,
            TaskCreate(
                name="人口发送",
                kind=TaskKind.PROVIDER,
                node_id=node.id,
                resource_id=res.id,
                config={
                    "source": "biz",
                    "table": TABLE,
                    "key": ["id"],
                    "cursor_column": "version",
                    "schedule": {"interval_seconds": 60},
                },
            ),
        )
        store = shared.create_store(
            s,
            admin,
            StoreCreate(
                resource_id=res.id,
                source_task_id=task.id,
                key_item="sfzhm",
                mapping={n: n for n in NAMES},
                verify_rules=[
                    {
                        "name": "gender",
                        "kind": "status",
                        "item": "xb",
                        "values": {"1": "男", "2": "女"},
                    }
                ],
            ),
        )
        application = sharing.apply(
            s,
            settings,
            user(hr.id, Role.RESOURCE_ADMIN),
            ApplicationCreate(
                resource_id=res.id,
                purpose="社会保险待遇资格认证",
                legal_basis="《社会保险法》第八十二条",
                items=ITEMS,
                row_scope="全市户籍人口",
                mode="query",
                users="人社局社保经办系统",
                end_date=china_today() + timedelta(days=365),
            ),
        )
        sharing.approve(
            s,
            settings,
            user(police.id, Role.RESOURCE_ADMIN),
            application,
            ApproveIn(masking=MASKING, reason="同意"),
        )
        client, secret = add_api_client(
            s,
            settings,
            SYSTEM,
            name="人社社保经办系统",
            department_id=hr.id,
            rate_per_second=100_000,  # the most a client may be given; far above the load
            daily_quota=10**12,
        )
        code, table_name, store_id, app_key = res.code, store.table_name, store.id, client.app_key
        assert sorted(store.sealed_items or {}) == (sorted(SEALED) if sealed else [])
    engine.dispose()

    # The store's table as TargetWriter lays it out, filled straight from the source.
    started = time.perf_counter()
    types = {"I": "BIGINT"}
    cols = ", ".join(
        "id INTEGER NOT NULL PRIMARY KEY" if name == "id" else f"{name} {types.get(kind, 'TEXT')}"
        for name, _label, kind, _length, _ in COLUMNS
    )
    conn = sqlite3.connect(settings.data_dir / "shared.db")
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"ATTACH DATABASE '{source}' AS src")
    with conn:
        conn.execute(f"CREATE TABLE {table_name} ({cols})")
        conn.execute(f"INSERT INTO {table_name} SELECT {', '.join(NAMES)} FROM src.{TABLE}")
        conn.execute(f"CREATE INDEX ix_{table_name}_key ON {table_name} (sfzhm)")
    conn.execute("DETACH DATABASE src")
    conn.close()
    engine = db.make_engine(settings)
    with db.session_scope(db.make_session_factory(engine, settings)) as s:
        kept = s.get(SharedStore, store_id)
        assert kept is not None
        kept.applied_seq, kept.row_count = 1, rows
    engine.dispose()

    datasette_db = work / "datasette.db"
    conn = sqlite3.connect(datasette_db)
    conn.execute(f"ATTACH DATABASE '{settings.data_dir / 'shared.db'}' AS hub")
    with conn:
        conn.execute(f"CREATE TABLE person ({cols})")
        conn.execute(f"INSERT INTO person SELECT * FROM hub.{table_name}")
        conn.execute("CREATE INDEX ix_person_sfzhm ON person (sfzhm)")
    conn.execute("DETACH DATABASE hub")
    if sealed:  # after Datasette's copy, which stays in the clear
        _seal_table(settings, table_name, rows)
        engine = db.make_engine(settings)
        with db.session_scope(db.make_session_factory(engine, settings)) as s:
            kept = s.get(SharedStore, store_id)
            assert kept is not None
            kept.sealed_items = dict.fromkeys(SEALED, "string")
        engine.dispose()
    rng = random.Random(rows)
    ids = rng.sample(range(1, rows + 1), min(rows, KEYS_PRESENT))
    present = [
        r[0]
        for r in conn.execute(
            "SELECT sfzhm FROM person WHERE id IN (SELECT value FROM json_each(?))",
            (json.dumps(ids),),
        )
    ]
    conn.close()
    absent = [f"1101011990{i:07d}X"[-18:] for i in range(KEYS_ABSENT)]  # no 110101 in 青岛
    keys_file = work / "keys.json"
    keys_file.write_text(json.dumps(present + absent))
    verify_keys_file = work / "verify-keys.json"
    verify_keys_file.write_text(
        json.dumps((present * (VERIFY_KEYS // len(present) + 1))[: VERIFY_KEYS * 9 // 10] + absent)
    )
    print(
        f"共享信息库与 Datasette 库: 各 {rows:,} 行, 用时 {time.perf_counter() - started:.1f} s; "
        f"shared.db {(settings.data_dir / 'shared.db').stat().st_size / 2**20:.0f} MiB",
        flush=True,
    )
    return Built(
        settings.data_dir, datasette_db, code, app_key, secret, keys_file, verify_keys_file
    )


# -- running --------------------------------------------------------------------------------


class Server:
    def __init__(self, name: str, args: list[str], log: Path, env: dict[str, str]) -> None:
        self.name = name
        out = log.open("ab")
        self.popen = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env)
        out.close()
        self.log = log

    def wait_ready(self, port: int, path: str, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                raise SystemExit(f"{self.name} exited; see {self.log}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                    s.sendall(
                        f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()
                    )
                    if s.recv(64).startswith(b"HTTP/1.1 200"):
                        return
            except OSError:
                pass
            time.sleep(0.2)
        raise SystemExit(f"{self.name} did not come up; see {self.log}")

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()


@dataclass
class Phase:
    name: str
    ok: int
    seconds: float
    latencies: list[float]
    statuses: dict[str, int]
    sample: list[str]

    @property
    def rps(self) -> float:
        return self.ok / self.seconds

    def pct(self, q: float) -> float:
        """Percentile in ms, interpolating between ranks (numpy's default)."""
        data = sorted(self.latencies)
        if not data:
            return float("nan")
        pos = (len(data) - 1) * q / 100
        lo = int(pos)
        hi = min(lo + 1, len(data) - 1)
        return (data[lo] + (data[hi] - data[lo]) * (pos - lo)) * 1000


def run_load(work: Path, name: str, spec: dict[str, Any]) -> Phase:
    spec_path, out = work / f"load-{name}.json", work / f"result-{name}.json"
    spec_path.write_text(json.dumps({**spec, "out": str(out), "host": "127.0.0.1"}))
    subprocess.run([sys.executable, __file__, "--load", str(spec_path)], check=True)
    got = json.loads(out.read_text())
    phase = Phase(name, got["ok"], got["seconds"], got["latencies"], got["statuses"], got["sample"])
    bad = {k: v for k, v in phase.statuses.items() if k != "200"}
    print(
        f"  {name:10s} {phase.rps:8,.0f} 请求/秒  p50 {phase.pct(50):6.2f} ms  "
        f"p99 {phase.pct(99):6.2f} ms  max {phase.pct(100):7.2f} ms"
        + (f"  非200: {bad}" if bad else ""),
        flush=True,
    )
    if bad:
        print(f"    例: {phase.sample[-1][:300]}", flush=True)
    return phase


def cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tree_cpu(pid: int) -> float:
    """CPU seconds of a process and its children (uvicorn workers)."""
    total = cpu_seconds(pid)
    children = Path(f"/proc/{pid}/task/{pid}/children")
    try:
        kids = children.read_text().split()
    except OSError:
        kids = []
    return total + sum(tree_cpu(int(k)) for k in kids)


def check_answers(hub: Phase, datasette: Phase) -> None:
    """The hub's answers are masked; Datasette's carry the same rows unmasked."""
    for text in hub.sample[:3]:
        body = json.loads(text) if text.endswith("}") else None
        if body is None:
            continue
        for rec in body["records"]:
            assert rec["xm"][1:] == "*" * (len(rec["xm"]) - 1), rec
            assert rec["lxdh"][3:7] == "****", rec
            assert set(rec) == set(ITEMS), rec
    assert any(t.startswith("[{") for t in datasette.sample), datasette.sample


def run(args: argparse.Namespace, work: Path) -> None:
    built = build(work, args.rows, args.sealed)
    hub_port, ds_port, triv_port = free_port(), free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOVSHARE_")}
    env |= {"GOVSHARE_SECRET_KEY": SECRET, "GOVSHARE_DATA_DIR": str(built.hub_dir)}
    serve = [sys.executable, "-m", "govshare.cli", "serve", "--port", str(hub_port)]
    if args.workers:
        serve += ["--workers", str(args.workers)]
    datasette = Path(sys.executable).with_name("datasette")
    if not datasette.exists():
        raise SystemExit("datasette is missing: uv sync (it is in the bench dependency group)")
    servers = {
        "hub": Server("hub", serve, work / "hub.log", env),
        "datasette": Server(
            "datasette",
            [str(datasette), "serve", str(built.datasette_db), "--port", str(ds_port)],
            work / "datasette.log",
            env,
        ),
        "trivial": Server(
            "trivial",
            [sys.executable, __file__, "--trivial-server", str(triv_port)],
            work / "trivial.log",
            env,
        ),
    }
    spy: subprocess.Popen[bytes] | None = None
    try:
        servers["hub"].wait_ready(hub_port, "/healthz")
        servers["datasette"].wait_ready(ds_port, "/-/versions.json")
        servers["trivial"].wait_ready(triv_port, "/")
        base = {
            "concurrency": args.concurrency,
            "warmup": args.warmup,
            "seconds": args.seconds,
            "keys_file": str(built.keys_file),
        }
        print(
            f"并发 {args.concurrency}, 每项预热 {args.warmup:g} s + 计时 {args.seconds:g} s "
            f"(负载 {os.getloadavg()[0]:.2f}, {os.cpu_count()} 核)",
            flush=True,
        )
        trivial = run_load(work, "trivial", base | {"kind": "trivial", "port": triv_port})
        servers["trivial"].stop()
        if args.profile:
            args.profile.mkdir(parents=True, exist_ok=True)
            spy = subprocess.Popen(
                [
                    str(Path(sys.executable).with_name("py-spy")),
                    "record",
                    "--pid",
                    str(servers["hub"].popen.pid),
                    "--subprocesses",
                    "--nonblocking",
                    "--gil",
                    "--format",
                    "raw",
                    "-r",
                    "100",
                    "-d",
                    str(int(args.warmup + args.seconds + 2)),
                    "-o",
                    str(args.profile / "hub-lookup.txt"),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        hub_pid = servers["hub"].popen.pid
        cpu0 = tree_cpu(hub_pid)
        hub = run_load(
            work,
            "hub",
            base
            | {
                "kind": "lookup",
                "port": hub_port,
                "code": built.code,
                "app_key": built.app_key,
                "secret": built.secret,
            },
        )
        hub_cpu = tree_cpu(hub_pid) - cpu0
        if spy is not None:
            spy.wait()
        ds_pid = servers["datasette"].popen.pid
        cpu0 = tree_cpu(ds_pid)
        ds = run_load(work, "datasette", base | {"kind": "datasette", "port": ds_port})
        ds_cpu = tree_cpu(ds_pid) - cpu0
        check_answers(hub, ds)
        verify = run_load(
            work,
            "verify",
            base
            | {
                "kind": "verify",
                "concurrency": 2,
                "keys_file": str(built.verify_keys_file),
                "port": hub_port,
                "code": built.code,
                "app_key": built.app_key,
                "secret": built.secret,
            },
        )
        verify_kps = verify.ok * VERIFY_KEYS / verify.seconds
        print(
            f"核验: {verify.ok} 次 × {VERIFY_KEYS:,} 键, {verify_kps:,.0f} 键/秒, "
            f"每次 p50 {verify.pct(50):.0f} ms",
            flush=True,
        )
        wall = args.warmup + args.seconds
        per_hub = hub_cpu / max(1, len(hub.latencies)) * 1e3 * args.seconds / wall
        per_ds = ds_cpu / max(1, len(ds.latencies)) * 1e3 * args.seconds / wall
        print(
            f"服务端 CPU (预热+计时 {wall:g} s): hub {hub_cpu:.1f} s, datasette {ds_cpu:.1f} s; "
            f"每请求 hub {per_hub:.2f} ms, datasette {per_ds:.2f} ms",
            flush=True,
        )
        print(
            f"负载端上限 (空响应服务): {trivial.rps:,.0f} 请求/秒; "
            f"负载 (1 分钟平均, 结束时) {os.getloadavg()[0]:.2f}",
            flush=True,
        )
    finally:
        if spy is not None and spy.poll() is None:
            spy.terminate()
        for server in servers.values():
            server.stop()
    ratio = hub.rps / ds.rps if ds.rps else 0.0
    print(
        f"rps={hub.rps:.0f} datasette_rps={ds.rps:.0f} ratio={ratio:.2f} "
        f"p99_ms={hub.pct(99):.1f} verify_keys_per_s={verify_kps:.0f} sealed={int(args.sealed)}"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000, help="persons in the shared store")
    parser.add_argument(
        "--sealed",
        action="store_true",
        help="mark 公民身份号码, 姓名 and 联系电话 sensitive: kept sealed in the store (字段加密)",
    )
    parser.add_argument("--concurrency", type=int, default=32, help="connections of the load")
    parser.add_argument("--seconds", type=float, default=10, help="timed seconds of each phase")
    parser.add_argument("--warmup", type=float, default=2, help="untimed seconds before each")
    parser.add_argument("--workers", type=int, default=0, help="govshare serve --workers N")
    parser.add_argument("--keep", type=Path, help="work in this directory and keep it")
    parser.add_argument("--profile", type=Path, help="py-spy the hub's lookup phase into DIR")
    parser.add_argument("--load", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--trivial-server", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.load:
        load_main(args.load)
        return
    if args.trivial_server:
        asyncio.run(_trivial(args.trivial_server))
        return
    if args.keep:
        work = args.keep
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
    else:
        work = Path(tempfile.mkdtemp(prefix="govshare-bench-query-"))
    print(f"== {args.rows:,} 人  (负载 {os.getloadavg()[0]:.2f})", flush=True)
    try:
        run(args, work)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
