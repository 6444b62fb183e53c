"""A live hub for tests: the real app served by uvicorn on a loopback port."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import uvicorn
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
