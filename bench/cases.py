"""Business-collaboration benchmark (issue 14, 业务协同): ``--rows`` one-window cases
(default 2,000) through the API of a real hub process.

A migrated SQLite hub in a temporary data dir gets the built-in 综合救助一窗受理 process
(three verification service tasks, a parallel fan-out to three departments) and runs
as ``govshare serve``. Each case is accepted by a window officer (``POST
/api/v1/collab/cases``: the three verifications and the fan-out in one transaction),
then each of the three departments decides its task (``POST …/tasks/{id}/complete``);
the last decision closes the case. ``--concurrency`` cases are in flight at once.

Measured in the same run, the reference: the raw SpiffWorkflow engine running the same
process in memory (parse once; per case a new workflow, the engine steps with stub
services, three tasks completed) — no HTTP, no database, no audit.

The last line::

    cases=… cases_per_s=… p95_step_ms=… max_rss_mb=… reference_cases_per_s=… ratio=…

``p95_step_ms`` is the 95th percentile of every API step (acceptance and decisions);
``max_rss_mb`` is the hub process's peak resident memory; ``ratio`` is the platform's
cases/s over the reference's. Target (issue 14): ≥ 50 cases/s, p95 step < 100 ms.

Usage: ``.venv/bin/python bench/cases.py --rows 200``.
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
from stdnum.cn import ric

from govshare import db as hub
from govshare.catalog.service import seed_reference_data
from govshare.collab import engine
from govshare.config import Settings
from govshare.security.audit import SYSTEM
from govshare.security.roles import Role
from govshare.security.service import add_department, add_user

BUILTIN = Path(__file__).parents[1] / "src/govshare/collab/builtin"
PASSWORD = "Bench-Password-14"
SECRET = "bench-secret-key-0123456789abcdef0123456789"
DEPARTMENTS = {"政务服务": "window", "民政": "mz", "残联": "cl", "住建": "zj"}
_rng = random.Random(14)


def id_number() -> str:
    born = date(1950, 1, 1) + timedelta(days=_rng.randrange(365 * 55))
    body = f"370202{born:%Y%m%d}{_rng.randrange(1000):03d}"
    return body + ric.calc_check_digit(body + "?")


def credit_code(i: int) -> str:
    from stdnum.cn import uscc

    body = f"11370200MB{i:07d}"
    return body + uscc.calc_check_digit(body)


def build(settings: Settings) -> None:
    hub.upgrade(settings)
    eng = hub.make_engine(settings)
    factory = hub.make_session_factory(eng, settings)
    with hub.session_scope(factory) as s:
        seed_reference_data(s)
        for i, (short, user) in enumerate(DEPARTMENTS.items(), start=1):
            d = add_department(
                s,
                SYSTEM,
                name=f"青岛市{short}",
                short_name=short,
                credit_code=credit_code(i),
                division_code="370200",
            )
            roles = [Role.PLATFORM_ADMIN] if user == "window" else [Role.CASE_HANDLER]
            add_user(
                s,
                SYSTEM,
                username=f"{user}_user",
                password=PASSWORD,
                display_name=user,
                department_id=d.id,
                roles=roles,
            )
            if user == "window":
                add_user(
                    s,
                    SYSTEM,
                    username="window_officer",
                    password=PASSWORD,
                    display_name="窗口",
                    department_id=d.id,
                    roles=[Role.WINDOW_OFFICER],
                )
    eng.dispose()


def client(base: str, username: str) -> httpx.Client:
    token = httpx.post(
        f"{base}/api/v1/auth/token", json={"username": username, "password": PASSWORD}, timeout=30
    ).json()["access_token"]
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    return httpx.Client(
        base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=60, limits=limits
    )


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def children(pid: int) -> list[int]:
    found = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in found.read_text().split()] if found.exists() else []


def reference(rows: int) -> float:
    """Cases per second of the raw engine on the same process, in memory."""
    data = (BUILTIN / "assistance.bpmn").read_bytes()
    spec = engine.spec_of(data, "assistance_one_window")
    start = time.perf_counter()
    for _ in range(rows):
        wf = engine.new_workflow(
            spec, {"applicant_id": id_number()}, engine.script_engine(lambda *_: "no")
        )
        wf.do_engine_steps()
        for task in engine.ready_user_tasks(wf):
            task.data[f"{task.task_spec.bpmn_id}_decision"] = "approve"
            task.run()
            wf.do_engine_steps()
        assert engine.is_completed(wf)
    return rows / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description="业务协同基准: 一窗受理办件经 API 办结")
    parser.add_argument("--rows", type=int, default=2000, help="办件数 (默认 2000)")
    parser.add_argument("--concurrency", type=int, default=8, help="同时办理的办件数")
    parser.add_argument("--port", type=int, default=18914)
    parser.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        help="hub 工作进程数 (默认: CPU 核数, 如生产部署 govshare serve --workers N)",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp), secret_key=SECRET, demo=False)
        build(settings)
        env = {k: v for k, v in os.environ.items() if not k.startswith("GOVSHARE_")}
        env |= {"GOVSHARE_SECRET_KEY": SECRET, "GOVSHARE_LOG_LEVEL": "warning"}
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "govshare.cli",
                "serve",
                "--data-dir",
                tmp,
                "--port",
                str(args.port),
                "--workers",
                str(args.workers),
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        base = f"http://127.0.0.1:{args.port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise SystemExit("hub did not start")
                time.sleep(0.2)
            clients = {k: client(base, f"{k}_user") for k in ("window", "mz", "cl", "zj")}
            officer = client(base, "window_officer")
            r = clients["window"].post(
                "/api/v1/collab/definitions",
                files={"file": ("a.bpmn", (BUILTIN / "assistance.bpmn").read_bytes())},
                data={"forms": (BUILTIN / "assistance.forms.json").read_text(encoding="utf-8")},
            )
            assert r.status_code == 201, r.text
            definition_id = r.json()["id"]
            by_element = {"review_mz": "mz", "review_cl": "cl", "review_zj": "zj"}
            steps: list[float] = []

            def one_case(_: int) -> None:
                t0 = time.perf_counter()
                r = officer.post(
                    "/api/v1/collab/cases",
                    json={
                        "definition_id": definition_id,
                        "applicant_name": "张三",
                        "applicant_id": id_number(),
                        "help_kinds": ["最低生活保障", "残疾人两项补贴", "公共租赁住房"],
                        "household": [],
                    },
                )
                steps.append(time.perf_counter() - t0)
                assert r.status_code == 201, r.text
                case: dict[str, Any] = r.json()
                for task in case["tasks"]:
                    t0 = time.perf_counter()
                    d = clients[by_element[task["element_id"]]].post(
                        f"/api/v1/collab/tasks/{task['id']}/complete",
                        json={"decision": "approve"},
                    )
                    steps.append(time.perf_counter() - t0)
                    assert d.status_code == 200, d.text

            start = time.perf_counter()
            with ThreadPoolExecutor(args.concurrency) as pool:
                list(pool.map(one_case, range(args.rows)))
            elapsed = time.perf_counter() - start
            closed = clients["window"].get("/api/v1/collab/cases").json()
            assert all(c["status"] == "closed" for c in closed)
            rss = peak_rss_mb(proc.pid) + sum(peak_rss_mb(p) for p in children(proc.pid))
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    ref = reference(args.rows)
    steps.sort()
    p95 = steps[int(0.95 * (len(steps) - 1))] * 1000
    rate = args.rows / elapsed
    print(
        f"platform: {args.rows} cases in {elapsed:.2f}s, {len(steps)} steps, "
        f"{args.workers} hub worker(s), {args.concurrency} in flight"
    )
    print(f"reference (raw SpiffWorkflow in memory): {ref:.1f} cases/s")
    print(
        f"cases={args.rows} cases_per_s={rate:.1f} p95_step_ms={p95:.1f} "
        f"max_rss_mb={rss:.0f} reference_cases_per_s={ref:.1f} ratio={rate / ref:.3f}"
    )


if __name__ == "__main__":
    main()
