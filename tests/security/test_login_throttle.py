"""Login throttling per client address, beside the per-account lockout, and unlocking.

The hub sits behind a trusted proxy in these tests (uvicorn trusts ``X-Forwarded-For``
from loopback), so each test signs in from addresses of its own.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import httpx
from sqlalchemy import select

from govshare.security.models import AuditEntry, LoginFailure, User
from tests.catalog.console import csrf_of, signed_in
from tests.factories import PASSWORD, World

_rng = random.Random()


def new_address() -> str:
    return f"10.{_rng.randrange(256)}.{_rng.randrange(256)}.{_rng.randrange(1, 255)}"


def token_login(c: httpx.Client, username: str, password: str, addr: str) -> httpx.Response:
    return c.post(
        "/api/v1/auth/token",
        json={"username": username, "password": password},
        headers={"X-Forwarded-For": addr},
    )


@contextmanager
def console_from(world: World, addr: str) -> Iterator[httpx.Client]:
    with world.hub.client(follow_redirects=False, headers={"X-Forwarded-For": addr}) as c:
        yield c


def console_login(c: httpx.Client, username: str, password: str) -> httpx.Response:
    page = c.get("/login")
    token = re.search(r'name="login_token" value="([^"]+)"', page.text)
    assert token, page.text
    return c.post(
        "/login",
        data={"username": username, "password": password, "login_token": token.group(1)},
    )


def user_state(world: World, username: str) -> tuple[int, int, bool]:
    with world.hub.db() as s:
        user = s.scalars(select(User).where(User.username == username)).one()
        return user.id, user.failed_logins, user.locked_until is not None


def test_an_address_over_its_limit_is_refused_without_touching_accounts(world: World) -> None:
    settings = world.hub.settings
    limit, threshold = settings.login_address_limit, settings.lockout_threshold
    window = settings.login_address_window_minutes * 60
    victim = world.department().reviewer
    fuzzer = new_address()
    with world.api() as c:
        guesses = [
            token_login(c, f"guess_{i}_{fuzzer}", "bad-password", fuzzer).status_code
            for i in range(limit)
        ]
        assert guesses == [401] * limit
        refused = [token_login(c, victim, "bad-password", fuzzer) for _ in range(threshold + 1)]
        refused.append(token_login(c, victim, PASSWORD, fuzzer))
        for r in refused:
            assert r.status_code == 429
            assert r.json()["error"]["code"] == "login_throttled"
            assert "登录失败次数过多" in r.json()["error"]["message"]
            assert 0 < int(r.headers["retry-after"]) <= window
        # The victim's account never saw those guesses: it signs in from elsewhere.
        assert user_state(world, victim)[1:] == (0, False)
        assert token_login(c, victim, PASSWORD, new_address()).status_code == 200
    with world.hub.db() as s:
        throttled = s.scalars(
            select(AuditEntry).where(
                AuditEntry.action == "auth.address_throttled", AuditEntry.object_id == fuzzer
            )
        ).all()
    assert len(throttled) == 1
    assert throttled[0].remote_addr == fuzzer


def test_an_address_may_sign_in_again_once_the_window_has_passed(world: World) -> None:
    settings = world.hub.settings
    dept = world.department()
    addr = new_address()
    with world.api() as c:
        for i in range(settings.login_address_limit):
            token_login(c, f"nobody_{i}_{addr}", "bad-password", addr)
        assert token_login(c, dept.registrar, PASSWORD, addr).status_code == 429
        with world.hub.db() as s:  # as if the window had passed since those failures
            for failure in s.scalars(select(LoginFailure).where(LoginFailure.remote_addr == addr)):
                failure.at -= timedelta(minutes=settings.login_address_window_minutes)
        assert token_login(c, dept.registrar, PASSWORD, addr).status_code == 200


def test_the_console_counts_and_refuses_by_address_in_chinese(world: World) -> None:
    settings = world.hub.settings
    dept = world.department()
    addr = new_address()
    with console_from(world, addr) as c:
        codes = [
            console_login(c, f"nobody_{i}_{addr}", "bad-password").status_code
            for i in range(settings.login_address_limit)
        ]
        assert codes == [401] * settings.login_address_limit
        r = console_login(c, dept.registrar, PASSWORD)
    assert r.status_code == 429
    assert "该地址登录失败次数过多" in r.text
    assert int(r.headers["retry-after"]) > 0
    assert "govshare_session" not in r.cookies


def lock(world: World, username: str) -> int:
    addr = new_address()
    with world.api() as c:
        for _ in range(world.hub.settings.lockout_threshold):
            token_login(c, username, "bad-password", addr)
        assert token_login(c, username, PASSWORD, addr).status_code == 423
    user_id, _, locked = user_state(world, username)
    assert locked
    return user_id


def test_an_admin_unlocks_an_account_through_the_api(world: World) -> None:
    dept = world.department()
    user_id = lock(world, dept.reviewer)
    with world.api(dept.resource_admin) as c:
        denied = c.post(f"/api/v1/users/{user_id}/unlock")
    assert denied.status_code == 403
    with world.api(world.admin) as c:
        r = c.post(f"/api/v1/users/{user_id}/unlock")
        missing = c.post("/api/v1/users/999999999/unlock")
    assert r.status_code == 200, r.text
    assert r.json()["locked_until"] is None
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "user_not_found"
    with world.api() as c:
        assert token_login(c, dept.reviewer, PASSWORD, new_address()).status_code == 200
    with world.hub.db() as s:
        entry = s.scalars(
            select(AuditEntry).where(
                AuditEntry.action == "user.unlock", AuditEntry.object_id == str(user_id)
            )
        ).one()
    assert entry.actor == world.admin
    assert entry.before is not None
    assert entry.before["locked_until"] is not None


def test_an_admin_unlocks_an_account_in_the_console(world: World) -> None:
    dept = world.department()
    user_id = lock(world, dept.registrar)
    with signed_in(world, world.admin) as admin:
        page = admin.get(f"/admin/users?department_id={dept.id}")
        assert f'action="/admin/users/{user_id}/unlock"' in page.text
        r = admin.post(f"/admin/users/{user_id}/unlock", data={"csrf_token": csrf_of(admin)})
        assert r.status_code == 303
        assert r.headers["location"] == "/admin/users?done=user_unlocked"
        assert "账号已解除锁定" in admin.get(r.headers["location"]).text
        assert admin.post(f"/admin/users/{user_id}/unlock").status_code == 403  # no CSRF token
    assert user_state(world, dept.registrar)[1:] == (0, False)
