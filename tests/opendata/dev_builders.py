"""Developers for the developer-centre tests, made through the portal's own pages over
HTTP (register, the confirmation link from the outbox, sign-in, a key), and a gate with
chosen limits and a clock the test moves."""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select

from govshare.opendata.developers import key_hash
from govshare.opendata.gate import Gate
from govshare.opendata.models import DeveloperMail, OpenApiKey, OpenApplication
from govshare.opendata.windows import FILE, SharedWindows
from tests.factories import PASSWORD, unique
from tests.live import LiveHub

DEV_PASSWORD = "Open-Data-Dev-7"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
SECRET = re.compile(r'<code id="new-secret">([^<]+)</code>')
LINK = re.compile(r"(https?://\S+/open/developer/confirm\?token=[\w-]+)")


def csrf_of(page: str) -> str:
    found = CSRF.search(page)
    assert found is not None, page[:2000]
    return found.group(1)


def confirmation_link(hub: LiveHub, email: str) -> str:
    """The link of the newest confirmation mail to ``email`` in the outbox."""
    with hub.db() as s:
        body = s.scalars(
            select(DeveloperMail.body)
            .where(DeveloperMail.to == email)
            .order_by(DeveloperMail.id.desc())
        ).first()
    assert body is not None, f"no mail to {email}"
    found = LINK.search(body)
    assert found is not None, body
    return found.group(1)


@dataclass
class Developer:
    email: str
    client: httpx.Client  # holds the developer's session cookie

    def page(self) -> str:
        r = self.client.get("/open/developer")
        assert r.status_code == 200, r.text[:500]
        return r.text

    def post(self, url: str, **data: str) -> httpx.Response:
        return self.client.post(url, data={"csrf_token": csrf_of(self.page()), **data})

    def create_key(self, name: str = "测试密钥") -> str:
        r = self.post("/open/developer/keys", name=name)
        assert r.status_code == 200, r.text[:1000]
        found = SECRET.search(r.text)
        assert found is not None
        return found.group(1)


def register(client: httpx.Client, email: str, password: str = DEV_PASSWORD) -> httpx.Response:
    token = csrf_of(client.get("/open/developer").text)
    return client.post(
        "/open/developer/register",
        data={"csrf_token": token, "email": email, "password": password},
    )


def login(client: httpx.Client, email: str, password: str = DEV_PASSWORD) -> httpx.Response:
    token = csrf_of(client.get("/open/developer").text)
    return client.post(
        "/open/developer/login",
        data={"csrf_token": token, "email": email, "password": password},
    )


def developer(hub: LiveHub, email: str | None = None) -> Developer:
    """A registered, confirmed and signed-in developer (close its client when done)."""
    address = email or f"{unique('dev').lower()}@example.cn"
    client = hub.client(follow_redirects=False)
    assert register(client, address).status_code == 200
    assert client.get(confirmation_link(hub, address)).status_code == 200
    r = login(client, address)
    assert r.status_code == 303, r.text[:500]
    return Developer(address, client)


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: Any) -> None:
        self.now += timedelta(**delta)


START = datetime(2026, 3, 10, 2, 0, 30, tzinfo=UTC)  # 10:00:30 in China, a Tuesday


@contextmanager
def gate(hub: LiveHub, start: datetime = START, **limits: int) -> Iterator[Clock]:
    """The hub's gate replaced, for the block, by one with ``limits`` (settings names)
    and a clock standing at ``start``."""
    app = hub.server.config.app
    before = app.state.open_gate
    clock = Clock(start)
    # Windows of its own: every such block's clock starts at the same minute.
    windows = SharedWindows(Path(tempfile.mkdtemp(prefix="gate-")) / FILE)
    app.state.open_gate = Gate(hub.settings.model_copy(update=limits), clock, windows)
    try:
        yield clock
    finally:
        app.state.open_gate = before
        windows.close()
        shutil.rmtree(windows.path.parent, ignore_errors=True)


@contextmanager
def console(hub: LiveHub, username: str) -> Iterator[httpx.Client]:
    """A staff member signed in to the console (cookie session, CSRF in forms)."""
    with hub.client(follow_redirects=False) as c:
        page = c.get("/login").text
        token = csrf_of(page.replace('name="login_token"', 'name="csrf_token"'))
        r = c.post(
            "/login", data={"username": username, "password": PASSWORD, "login_token": token}
        )
        assert r.status_code == 303, r.text[:500]
        yield c


def console_post(c: httpx.Client, url: str, **data: str) -> httpx.Response:
    page = c.get("/opendata/applications").text
    return c.post(url, data={"csrf_token": csrf_of(page), **data})


def key_id_of(hub: LiveHub, secret: str) -> int:
    with hub.db() as s:
        found = s.scalar(
            select(OpenApiKey.id).where(OpenApiKey.secret_hash == key_hash(hub.settings, secret))
        )
    assert found is not None
    return int(found)


def apply_for(d: Developer, slug: str, key_id: int) -> httpx.Response:
    """The developer applies for a 有条件开放 dataset's rows for one key."""
    page = d.client.get("/open/developer/apply", params={"dataset": slug}).text
    assert 'id="apply-form"' in page, page[:1000]
    return d.client.post(
        "/open/developer/applications",
        data={
            "csrf_token": csrf_of(page),
            "dataset": slug,
            "key_id": str(key_id),
            "purpose": "公交线路优化研究，仅用于统计分析",
        },
    )


def approve_latest(hub: LiveHub, resource_admin: str, key_id: int) -> int:
    """The providing department's resource admin approves the key's newest application."""
    with hub.db() as s:
        app_id = s.scalars(
            select(OpenApplication.id)
            .where(OpenApplication.key_id == key_id)
            .order_by(OpenApplication.id.desc())
        ).first()
    assert app_id is not None
    with console(hub, resource_admin) as c:
        r = console_post(
            c, f"/opendata/applications/{app_id}/decide", decision="approve", reason="同意"
        )
        assert r.status_code == 303, r.text[:500]
    return int(app_id)
