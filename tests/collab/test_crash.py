"""Kill -9 of the hub in the middle of parallel fan-outs: every case that exists
afterwards has exactly the tasks its stored workflow is waiting on — none lost, none
made twice — and goes on to closure after the restart."""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from govshare import db
from govshare.collab import engine
from govshare.collab.models import Case, CaseTask, ProcessDefinition, TaskStatus
from tests.collab.scenery import Scenery, application, build, forms, upload
from tests.conftest import TEST_SECRET, make_settings, migrated
from tests.e2e.hubenv import Proc
from tests.factories import PASSWORD
from tests.pg import free_port


def _wait_healthy(base: str, proc: Proc, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=2) as c:
        while time.monotonic() < deadline:
            assert proc.alive(), proc.death()
            try:
                if c.get(f"{base}/healthz").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
    raise AssertionError("hub did not start: " + proc.death())


def _client(base: str, username: str) -> httpx.Client:
    token = httpx.post(
        f"{base}/api/v1/auth/token", json={"username": username, "password": PASSWORD}, timeout=30
    ).json()["access_token"]
    return httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=30)


def _check_consistent(factory: Any) -> tuple[int, int]:
    """Every case's task rows are exactly the user tasks its workflow waits on or
    finished; returns (cases, open tasks)."""
    cases = open_tasks = 0
    with db.session_scope(factory) as s:
        for case in s.scalars(select(Case)):
            cases += 1
            rows = list(s.scalars(select(CaseTask).where(CaseTask.case_id == case.id)))
            ids = [r.engine_id for r in rows]
            assert len(ids) == len(set(ids)), f"case {case.number}: a task made twice"
            d = s.get(ProcessDefinition, case.definition_id)
            assert d is not None
            spec = engine.cached_spec(d.sha256, d.bpmn_xml, d.process_key)
            workflow = engine.load(case.state, engine.script_engine(lambda *_: "no"), spec)
            waiting = {str(t.id) for t in engine.ready_user_tasks(workflow)}
            open_rows = {r.engine_id for r in rows if r.status is not TaskStatus.DONE}
            assert waiting == open_rows, (
                f"case {case.number}: tasks {open_rows} vs engine {waiting}"
            )
            assert len(rows) == 3, f"case {case.number}: {len(rows)} tasks"
            open_tasks += len(open_rows)
    return cases, open_tasks


@pytest.mark.slow
def test_kill9_mid_fan_out_loses_and_duplicates_no_task(tmp_path: Path) -> None:
    settings = migrated(make_settings(tmp_path / "hub"))
    eng = db.make_engine(settings)
    factory = db.make_session_factory(eng, settings)
    with db.session_scope(factory) as s:
        scenery: Scenery = build(s)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOVSHARE_")}
    env |= {"PYTHONUNBUFFERED": "1", "GOVSHARE_SECRET_KEY": TEST_SECRET}
    hub = Proc(
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
        env,
        tmp_path / "hub.log",
    )
    hub.start()
    try:
        _wait_healthy(base, hub)
        with _client(base, scenery.users["admin"]) as c:
            r = upload(c, scenery.bpmn(), forms())
            assert r.status_code == 201, r.text
            definition_id = r.json()["id"]
        stop = threading.Event()
        answered: list[int] = []

        def accept(c: httpx.Client) -> None:
            with c:
                while not stop.is_set():
                    try:
                        r = c.post("/api/v1/collab/cases", json=application(definition_id))
                    except httpx.TransportError:
                        return
                    if r.status_code == 201:
                        answered.append(r.json()["id"])

        def decide(c: httpx.Client) -> None:
            with c:
                while not stop.is_set():
                    try:
                        for t in c.get("/api/v1/collab/tasks").json()[:3]:
                            c.post(
                                f"/api/v1/collab/tasks/{t['id']}/complete",
                                json={"decision": "approve"},
                            )
                    except (httpx.TransportError, ValueError):
                        return

        # Signed in before any thread starts: a thread still asking for its token when
        # the hub is killed would fail outside the loop that expects the kill.
        windows = [_client(base, scenery.users["window"]) for _ in range(3)]
        handlers = [_client(base, scenery.users[k]) for k in ("mz", "cl")]
        threads = [threading.Thread(target=accept, args=(c,)) for c in windows]
        threads += [threading.Thread(target=decide, args=(c,)) for c in handlers]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 60
        while len(answered) < 15:
            assert time.monotonic() < deadline, hub.death()
            time.sleep(0.05)
        hub.kill9()  # requests in flight: cases being fanned out, tasks being decided
        stop.set()
        for t in threads:
            t.join(timeout=30)
        cases, _ = _check_consistent(factory)
        assert cases >= len(answered)  # every answered case survived

        hub.start()
        _wait_healthy(base, hub)
        # After the restart every department works its queue to the end.
        for key in ("mz", "cl", "zj"):
            with _client(base, scenery.users[key]) as c:
                for t in c.get("/api/v1/collab/tasks").json():
                    r = c.post(
                        f"/api/v1/collab/tasks/{t['id']}/complete", json={"decision": "approve"}
                    )
                    assert r.status_code == 200, r.text
        cases_after, open_after = _check_consistent(factory)
        assert cases_after == cases
        assert open_after == 0
        with db.session_scope(factory) as s:
            still_open = s.scalar(
                select(func.count()).select_from(Case).where(Case.status == "open")
            )
        assert still_open == 0
    finally:
        hub.stop()
        eng.dispose()
