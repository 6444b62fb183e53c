"""Real processes for end-to-end exchange tests: a hub (``govshare serve``), front-end
nodes (``govshare node run``), their databases, and the setup that binds them."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import httpx

from govshare import db
from govshare.catalog import service as catalog
from govshare.catalog.schemas import ItemIn, ResourceIn
from govshare.config import Settings
from govshare.exchange import service as exchange
from govshare.exchange.models import TaskKind, TaskState
from govshare.exchange.schemas import TaskCreate
from govshare.security.audit import SYSTEM
from govshare.security.roles import Role, permissions_for
from govshare.security.service import Principal, add_department, add_user
from tests.conftest import TEST_SECRET, make_settings, migrated
from tests.factories import PASSWORD, valid_credit_code
from tests.pg import free_port

ADMIN = Principal(
    kind="user",
    name="setup",
    department_id=None,
    permissions=permissions_for([Role.PLATFORM_ADMIN]),
    roles=(Role.PLATFORM_ADMIN.value,),
)
REVIEWER = replace(ADMIN, name="setup_reviewer")


@dataclass
class Proc:
    name: str
    args: list[str]
    env: dict[str, str]
    log: Path
    popen: subprocess.Popen[bytes] | None = None
    restarts: int = 0

    def start(self) -> None:
        out = self.log.open("ab")
        self.popen = subprocess.Popen(self.args, env=self.env, stdout=out, stderr=subprocess.STDOUT)
        out.close()

    def kill9(self) -> None:
        if self.popen and self.popen.poll() is None:
            os.kill(self.popen.pid, signal.SIGKILL)
            self.popen.wait(timeout=10)

    def stop(self) -> None:
        if self.popen and self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill9()

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def death(self) -> str:
        """Why the process is gone, for an assertion message: its exit code and log's end
        (CI keeps no temporary files, so the log must travel in the message)."""
        code = self.popen.returncode if self.popen else None
        tail = self.log.read_text(errors="replace")[-4000:] if self.log.exists() else ""
        return f"{self.name} died (exit {code}); the end of {self.log}:\n{tail}"


@dataclass
class HubEnv:
    """A hub and two nodes (provider, consumer) as separate OS processes."""

    tmp: Path
    settings: Settings
    port: int
    source_url: str
    target_url: str
    node_ids: dict[str, int] = field(default_factory=dict)
    task_ids: dict[str, int] = field(default_factory=dict)
    procs: dict[str, Proc] = field(default_factory=dict)
    admin: str = "crash_admin"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def api(self) -> httpx.Client:
        token = httpx.post(
            f"{self.base_url}/api/v1/auth/token",
            json={"username": self.admin, "password": PASSWORD},
            timeout=30,
        ).json()["access_token"]
        return httpx.Client(
            base_url=self.base_url, headers={"Authorization": f"Bearer {token}"}, timeout=60
        )

    def wait_healthy(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        # One client: ``httpx.get`` makes a client and an SSL context per call (20 ms of
        # CPU each), which slowed the very start it waits for.
        with httpx.Client(timeout=2) as client:
            while time.monotonic() < deadline:
                try:
                    if client.get(f"{self.base_url}/healthz").status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                time.sleep(0.1)
        raise RuntimeError("hub did not become healthy; see " + str(self.procs["hub"].log))

    def start_all(self) -> None:
        """Start the hub and both nodes; return once the hub answers."""
        for p in self.procs.values():
            p.start()
        self.wait_healthy()

    def kill9_and_restart(self, victim: str, rng: random.Random) -> None:
        """``kill -9`` one process, start it again after up to half a second, and wait
        for the hub to answer again when it was the hub."""
        self.procs[victim].kill9()
        time.sleep(rng.uniform(0.0, 0.5))
        self.procs[victim].start()
        if victim == "hub":
            self.wait_healthy()

    def wait_until(self, done: Callable[[], bool], what: str, timeout: float = 300) -> None:
        """Poll ``done`` each second until it holds; every process must stay alive."""
        deadline = time.monotonic() + timeout
        while not done():
            assert time.monotonic() < deadline, f"{what}: not within {timeout:.0f} s"
            for p in self.procs.values():
                assert p.alive(), p.death()
            time.sleep(1)

    def reconcile(self, timeout: float = 120) -> dict[str, Any]:
        """Ask the hub to reconcile the provider task and wait for the outcome."""
        with self.api() as c:
            task = self.task_ids["provider"]
            rec = c.post(f"/api/v1/exchange/tasks/{task}/reconcile").json()[0]
            deadline = time.monotonic() + timeout
            while True:
                done: dict[str, Any] = next(
                    r
                    for r in c.get("/api/v1/exchange/reconciliations").json()
                    if r["id"] == rec["id"]
                )
                if done["outcome"] != "pending":
                    return done
                assert time.monotonic() < deadline, "reconciliation never completed"
                time.sleep(0.5)

    def stop_all(self) -> None:
        for p in self.procs.values():
            p.stop()


def setup_hub(
    tmp: Path,
    *,
    source_url: str,
    target_url: str,
    provider_config: dict[str, Any],
    database_url: str | None = None,
    extra_env: dict[str, str] | None = None,
    items: list[ItemIn] | None = None,
    node_toml: str = "",
    seal_stores: bool = True,
) -> HubEnv:
    """Migrate a hub database, create departments, a published resource, two nodes and
    a provider→subscriber pair of running tasks, then write the nodes' node.toml.

    ``items`` describe the resource's columns (the five-column person table by default);
    ``node_toml`` is added to both nodes' node.toml (top-level keys, one per line);
    ``seal_stores`` gives each node a secret, so its local store is sealed at rest.
    """
    settings = migrated(make_settings(tmp / "hub", database_url))
    engine = db.make_engine(settings)
    factory = db.make_session_factory(engine, settings)
    with db.session_scope(factory) as s:
        bureau = add_department(
            s,
            SYSTEM,
            name="青岛市大数据局(测试)",
            short_name="大数据局",
            credit_code=valid_credit_code(),
            division_code="370200",
        )
        police = add_department(
            s,
            SYSTEM,
            name="青岛市公安局(测试)",
            short_name="公安",
            credit_code=valid_credit_code(),
            division_code="370200",
        )
        hr = add_department(
            s,
            SYSTEM,
            name="青岛市人社局(测试)",
            short_name="人社",
            credit_code=valid_credit_code(),
            division_code="370200",
        )
        add_user(
            s,
            SYSTEM,
            username="crash_admin",
            password=PASSWORD,
            display_name="管理员",
            department_id=bureau.id,
            roles=[Role.PLATFORM_ADMIN],
        )
        admin = ADMIN
        items = items or [
            ItemIn(name="编号", code="id", data_type="I", length=10, is_key=True),
            ItemIn(name="公民身份号码", code="sfzhm", data_type="C", length=18),
            ItemIn(name="姓名", code="xm", data_type="C", length=50),
            ItemIn(name="性别", code="xb", data_type="C", length=1),
            ItemIn(name="行版本", code="version", data_type="I", length=10),
        ]
        res = catalog.add_resource(
            s,
            admin,
            ResourceIn(
                classification_code="101001",
                name="人口基本信息",
                abstract="交换测试",
                format="database",
                sharing_type="1",
                sharing_modes=["table"],
                update_cycle="realtime",
                provider_department_id=police.id,
                items=items,
            ),
        )
        for step in ["submit", "approve", "request_publication", "publish"]:
            # 职责分离: the steps that judge are taken by another admin.
            who = REVIEWER if step in ("approve", "publish") else admin
            catalog.transition(s, who, res.id, step)
        tokens = {}
        for label, dept in [("provider", police), ("consumer", hr)]:
            node, token = exchange.enroll_node(
                s, settings, admin, name=f"{label}-node", department_id=dept.id
            )
            tokens[label] = (node.id, token)
        ptask = exchange.create_task(
            s,
            admin,
            TaskCreate(
                name="人口发送",
                kind=TaskKind.PROVIDER,
                node_id=tokens["provider"][0],
                resource_id=res.id,
                config=provider_config,
            ),
        )
        stask = exchange.create_task(
            s,
            admin,
            TaskCreate(
                name="人口接收",
                kind=TaskKind.SUBSCRIBER,
                node_id=tokens["consumer"][0],
                resource_id=res.id,
                source_task_id=ptask.id,
                config={
                    "target": "dst",
                    "table": "person_copy",
                    "schedule": {"interval_seconds": 0.2},
                },
            ),
        )
        for t in (ptask, stask):
            exchange.set_task_state(s, admin, t.id, TaskState.RUNNING)
        task_ids = {"provider": ptask.id, "consumer": stask.id}
    engine.dispose()
    port = free_port()
    env_base = {k: v for k, v in os.environ.items() if not k.startswith("GOVSHARE_")}
    env_base["PYTHONUNBUFFERED"] = "1"  # a killed process loses no buffered line of its log
    hub_env = {
        **env_base,
        "GOVSHARE_SECRET_KEY": TEST_SECRET,
        "GOVSHARE_MONITOR_INTERVAL_SECONDS": "2",
        **({"GOVSHARE_DATABASE_URL": database_url} if database_url else {}),
        **(extra_env or {}),
    }
    env = HubEnv(
        tmp=tmp,
        settings=settings,
        port=port,
        source_url=source_url,
        target_url=target_url,
        node_ids={k: v[0] for k, v in tokens.items()},
        task_ids=task_ids,
    )
    env.procs["hub"] = Proc(
        "hub",
        [
            sys.executable,
            "-m",
            "govshare.cli",
            "serve",
            "--data-dir",
            str(settings.data_dir),
            "--port",
            str(port),
        ],
        hub_env,
        tmp / "hub.log",
    )
    for label, (node_id, token) in tokens.items():
        toml = tmp / f"{label}.toml"
        # Stores sealed at rest by default, so the kill -9 scenarios cover the sealing.
        secret = ""
        if seal_stores:
            (tmp / f"{label}.secret").write_text(f"secret-of-the-{label}-node-for-tests")
            secret = f'secret_file = "{label}.secret"\n'
        toml.write_text(
            f'hub_url = "{env.base_url}"\nnode_id = {node_id}\nenrollment_token = "{token}"\n'
            f'store = "store-{label}"\n{secret}'
            f"heartbeat_seconds = 1\ntick_seconds = 0.1\n"
            "request_timeout_seconds = 20\n"
            f"{node_toml}"
            f'[sources.biz]\nurl = "{source_url}"\n[targets.dst]\nurl = "{target_url}"\n',
            encoding="utf-8",
        )
        env.procs[label] = Proc(
            label,
            [sys.executable, "-m", "govshare.cli", "node", "run", "--config", str(toml)],
            env_base,
            tmp / f"{label}.log",
        )
    return env
