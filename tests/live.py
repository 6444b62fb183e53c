"""A live hub for tests: the real app served by uvicorn on a loopback port."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.orm import Session, sessionmaker

from govshare.app import create_app
from govshare.config import Settings
from govshare.db import session_scope
from tests.pg import free_port


@dataclass
class LiveHub:
    settings: Settings
    base_url: str
    session_factory: sessionmaker[Session]
    server: uvicorn.Server
    thread: threading.Thread
    _tokens: dict[str, str] = field(default_factory=dict)

    @property
    def backend(self) -> str:
        return "sqlite" if self.settings.is_sqlite else "postgresql"

    def client(
        self, token: str | None = None, headers: dict[str, str] | None = None, **kw: Any
    ) -> httpx.Client:
        sent = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(
            base_url=self.base_url, headers=sent | (headers or {}), timeout=30, **kw
        )

    def token(self, username: str, password: str) -> str:
        if username not in self._tokens:
            with self.client() as c:
                r = c.post("/api/v1/auth/token", json={"username": username, "password": password})
                r.raise_for_status()
                self._tokens[username] = r.json()["access_token"]
        return self._tokens[username]

    def shared_rows(self, sql: str, **params: Any) -> list[tuple[Any, ...]]:
        """Rows of the shared-store database as anyone with a copy of it would see them."""
        engine = create_engine(self.settings.resolved_shared_store_url)
        try:
            with engine.connect() as conn:
                return [tuple(r) for r in conn.execute(text(sql), params)]
        finally:
            engine.dispose()

    def shared_tables(self) -> set[str]:
        """The tables of the shared-store database."""
        engine = create_engine(self.settings.resolved_shared_store_url)
        try:
            return set(inspect(engine).get_table_names())
        finally:
            engine.dispose()

    @contextmanager
    def db(self) -> Iterator[Session]:
        with session_scope(self.session_factory) as s:
            yield s

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def start_live_hub(settings: Settings) -> LiveHub:
    app = create_app(settings)
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 20
    while not server.started:
        if time.time() > deadline:
            raise RuntimeError("hub did not start")
        time.sleep(0.02)
    return LiveHub(
        settings=settings,
        base_url=f"http://127.0.0.1:{port}",
        session_factory=app.state.session_factory,
        server=server,
        thread=thread,
    )


@dataclass
class ServedHub:
    """``govshare serve --workers N`` as a real process tree on a loopback port."""

    process: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_ready(self, timeout: float = 90) -> None:
        """Until ``/healthz`` answers; fails with the log's tail if the tree dies."""
        deadline = time.time() + timeout
        while True:
            try:
                if httpx.get(f"{self.base_url}/healthz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            assert self.process.poll() is None, self.log.read_text(errors="replace")
            assert time.time() < deadline, "hub did not start"
            time.sleep(0.2)


@contextmanager
def serve_workers(data_dir: Path, workers: int = 2) -> Iterator[ServedHub]:
    """A hub served by ``workers`` processes (uvicorn's supervisor), its output in a log
    beside ``data_dir``; interrupted, and killed if it does not stop, afterwards."""
    from tests.conftest import TEST_SECRET

    port = free_port()
    env = {
        **os.environ,
        "GOVSHARE_SECRET_KEY": TEST_SECRET,
        "GOVSHARE_DATA_DIR": str(data_dir),
        "GOVSHARE_LOG_FORMAT": "console",
        "GOVSHARE_READY_MIN_FREE_MB": "0",
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    log = data_dir.parent / "serve.log"
    command = ["serve", "--workers", str(workers), "--port", str(port)]
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "govshare.cli", *command],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its workers with it, for the group kill below
        )
    try:
        yield ServedHub(process, port, log)
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        # A supervisor killed, or gone before its workers, leaves them running on as
        # orphans (found still serving after a CI run): end whatever is left of the group.
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
