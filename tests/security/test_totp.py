"""动态口令 (TOTP): enrolment in the console, the code on every sign-in (console and
API) once it is on, each code good once, wrong codes counted like wrong passwords, the
administrator's reset, and roles that must use it."""

from __future__ import annotations

import re
import subprocess
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import select, update

from govshare.db import utcnow
from govshare.security import totp
from govshare.security.models import AuditEntry, User
from govshare.security.roles import Role
from tests.catalog.console import csrf_of, signed_in
from tests.clirun import hub_cli
from tests.conftest import StartHub
from tests.factories import PASSWORD, World
from tests.live import LiveHub

AT = datetime(2026, 3, 2, 9, 0, 0, tzinfo=UTC)
SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"


def test_a_code_is_good_within_a_step_either_side_and_only_once() -> None:
    step = int(AT.timestamp()) // 30
    now = totp.code_at(SECRET, AT)
    assert totp.matching_step(SECRET, now, now=AT, last_step=None) == step
    before = totp.code_at(SECRET, AT - timedelta(seconds=30))
    after = totp.code_at(SECRET, AT + timedelta(seconds=30))
    assert totp.matching_step(SECRET, before, now=AT, last_step=None) == step - 1
    assert totp.matching_step(SECRET, after, now=AT, last_step=None) == step + 1
    far = totp.code_at(SECRET, AT + timedelta(seconds=90))
    if far not in (before, now, after):
        assert totp.matching_step(SECRET, far, now=AT, last_step=None) is None
    # Used once: the same step, or an earlier one, is refused.
    assert totp.matching_step(SECRET, now, now=AT, last_step=step) is None
    assert totp.matching_step(SECRET, before, now=AT, last_step=step) is None
    assert totp.matching_step(SECRET, after, now=AT, last_step=step) == step + 1
    for bad in ("", "12345", "1234567", "abcdef", "１２３４５６", " 12 34 "):
        assert totp.matching_step(SECRET, bad, now=AT, last_step=None) is None


def test_an_enrolment_token_is_sealed_and_short_lived() -> None:
    token = totp.enrolment_token("k" * 32, 7, SECRET)
    assert SECRET not in token
    assert totp.open_enrolment("k" * 32, token) == totp.Enrolment(7, SECRET)
    with pytest.raises(totp.EnrolmentExpired):
        totp.open_enrolment("x" * 32, token)
    with pytest.raises(totp.EnrolmentExpired):
        totp.open_enrolment("k" * 32, token[:-4] + "AAAA")


def _form_token(page: str) -> str:
    found = re.search(r'name="login_token" value="([^"]+)"', page)
    assert found, page
    return found.group(1)


def _enrol(c: httpx.Client, username: str) -> str:
    """Enrol through the console as a person would; the secret the page showed."""
    return _enrol_with_codes(c, username)[0]


def _enrol_with_codes(c: httpx.Client, username: str) -> tuple[str, list[str]]:
    """``_enrol``, with the recovery codes the last page showed (once)."""
    start = c.get("/login/totp")
    assert start.status_code == 200
    shown = c.post(
        "/login/totp",
        data={
            "step": "start",
            "username": username,
            "password": PASSWORD,
            "login_token": _form_token(start.text),
        },
    )
    assert shown.status_code == 200, shown.text
    assert "<svg" in shown.text  # the QR code, inline
    secret = re.search(r'id="totp-secret">([A-Z2-7 ]+)<', shown.text)
    enrolment = re.search(r'name="enrolment" value="([^"]+)"', shown.text)
    assert secret, shown.text
    assert enrolment, shown.text
    plain = secret.group(1).replace(" ", "")
    wrong = c.post(
        "/login/totp",
        data={
            "step": "confirm",
            "enrolment": enrolment.group(1),
            "totp": _not_a_code(plain),
            "login_token": _form_token(shown.text),
        },
    )
    assert wrong.status_code == 422
    assert "动态口令不正确" in wrong.text
    done = c.post(
        "/login/totp",
        data={
            "step": "confirm",
            "enrolment": enrolment.group(1),
            "totp": totp.code_at(plain, utcnow()),
            "login_token": _form_token(wrong.text),
        },
    )
    assert done.status_code == 200, done.text
    assert done.headers["cache-control"] == "no-store"
    assert 'href="/login?done=totp_enabled"' in done.text
    codes = re.findall(r"<li><code>([a-z0-9-]+)</code></li>", done.text)
    assert len(codes) == totp.RECOVERY_CODES
    assert len(set(codes)) == len(codes)
    return plain, codes


def _not_a_code(secret: str) -> str:
    now = utcnow()
    valid = {totp.code_at(secret, now + timedelta(seconds=30 * k)) for k in range(-2, 3)}
    return next(c for c in ("000000", "111111", "222222") if c not in valid)


def _token(c: httpx.Client, username: str, code: str | None = None) -> httpx.Response:
    body = {"username": username, "password": PASSWORD} | ({"totp": code} if code else {})
    return c.post("/api/v1/auth/token", json=body)


def _actions(world: World, username: str) -> list[str]:
    with world.hub.db() as s:
        user_id = s.scalar(select(User.id).where(User.username == username))
        return list(
            s.scalars(
                select(AuditEntry.action)
                .where(AuditEntry.object_type == "user", AuditEntry.object_id == str(user_id))
                .order_by(AuditEntry.seq)
            )
        )


def _rewind(world: World, username: str) -> None:
    """As if a minute had passed since the last code: the next step is free again."""
    with world.hub.db() as s:
        s.execute(
            update(User)
            .where(User.username == username)
            .values(totp_last_step=User.totp_last_step - 3)
        )
        s.commit()


def test_once_enrolled_every_sign_in_asks_for_a_fresh_code(world: World) -> None:
    user = world.department("动态口令局").registrar
    with world.hub.client() as c:
        secret = _enrol(c, user)
        missing = _token(c, user)
        assert missing.status_code == 401
        assert missing.json()["error"]["code"] == "totp_required"
        # A step ahead of the one the enrolment used (a phone's clock a little fast).
        code = totp.code_at(secret, utcnow() + timedelta(seconds=30))
        assert _token(c, user, code).status_code == 200
        replayed = _token(c, user, code)
        assert replayed.status_code == 401
        assert "动态口令错误或已使用过" in replayed.text
        assert _token(c, user, _not_a_code(secret)).status_code == 401
        malformed = _token(c, user, "12ab56")
        assert malformed.status_code == 422
    with world.hub.db() as s:
        failures = s.scalar(select(User.failed_logins).where(User.username == user))
    assert failures == 2  # the replayed code and the wrong one, like wrong passwords
    actions = _actions(world, user)
    assert actions.count("auth.totp_enabled") == 1
    assert actions.count("auth.totp_failed") == 2
    # The console asks for the code too.
    _rewind(world, user)
    with world.hub.client() as c:
        page = c.get("/login")
        without = c.post(
            "/login",
            data={"username": user, "password": PASSWORD, "login_token": _form_token(page.text)},
        )
        assert without.status_code == 401
        assert "请输入动态口令" in without.text
        signed = c.post(
            "/login",
            data={
                "username": user,
                "password": PASSWORD,
                "totp": totp.code_at(secret, utcnow()),
                "login_token": _form_token(without.text),
            },
        )
        assert signed.status_code == 303, signed.text
        again = c.get("/login/totp")
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', again.text)
        assert csrf, again.text
        enrolled = c.post(
            "/login/totp",
            data={
                "step": "start",
                "password": PASSWORD,
                "login_token": _form_token(again.text),
                "csrf_token": csrf.group(1),
            },
        )
        assert "该账号已启用动态口令" in enrolled.text


def test_the_administrator_resets_a_lost_phone_from_the_command_line(world: World) -> None:
    user = world.department("动态口令局").registrar
    with world.hub.client() as c:
        _enrol(c, user)
        assert _token(c, user).status_code == 401
    reset = _cli(world.hub, "users", "reset-totp", user)
    assert reset.returncode == 0, reset.stderr
    assert "已重置" in reset.stdout
    with world.hub.client() as c:
        assert _token(c, user).status_code == 200
    twice = _cli(world.hub, "users", "reset-totp", user)
    assert twice.returncode == 1
    assert "没有启用动态口令" in twice.stderr
    assert "auth.totp_reset" in _actions(world, user)


def _cli(hub: LiveHub, *args: str) -> subprocess.CompletedProcess[str]:
    return hub_cli(hub.settings, *args)


def test_a_role_that_must_use_a_code_enrols_before_its_first_sign_in(
    start_hub: StartHub,
) -> None:
    strict = start_hub(totp_required_roles="auditor")
    world = World(strict)
    dept = world.department("审计局")
    auditor = world.auditor
    with strict.client() as c:
        refused = _token(c, auditor)
        assert refused.status_code == 403
        assert refused.json()["error"]["code"] == "totp_enrolment_required"
        page = c.get("/login")
        sent = c.post(
            "/login",
            data={"username": auditor, "password": PASSWORD, "login_token": _form_token(page.text)},
        )
        assert sent.status_code == 303
        assert sent.headers["location"].startswith("/login/totp?required=1")
        assert "请先启用动态口令" in c.get(sent.headers["location"]).text
        secret = _enrol(c, auditor)
        code = totp.code_at(secret, utcnow() + timedelta(seconds=30))
        assert _token(c, auditor, code).status_code == 200
        # Other roles are not asked.
        assert _token(c, dept.registrar).status_code == 200


def test_a_recovery_code_stands_in_for_a_code_once_and_a_wrong_one_counts(
    world: World,
) -> None:
    user = world.department("恢复码局").registrar
    with world.hub.client() as c:
        _, codes = _enrol_with_codes(c, user)
        first, second = codes[0], codes[1]
        assert _token(c, user, first).status_code == 200
        again = _token(c, user, first)
        assert again.status_code == 401
        assert again.json()["error"]["message"] == "恢复码错误或已使用过"
        # Typed in capitals, it is the same code.
        assert _token(c, user, second.upper()).status_code == 200
        made_up = "zzzzz-zzzzz" if "zzzzz-zzzzz" not in codes else "yyyyy-yyyyy"
        assert _token(c, user, made_up).status_code == 401
    with world.hub.db() as s:
        stored = s.scalar(select(User.totp_recovery).where(User.username == user))
        failed = s.scalar(select(User.failed_logins).where(User.username == user))
    assert stored is not None
    assert len(stored) == totp.RECOVERY_CODES - 2
    assert first not in str(stored)  # only keyed hashes are kept
    assert failed == 1  # the made-up code
    actions = _actions(world, user)
    assert actions.count("auth.totp_recovery_used") == 2
    assert actions.count("auth.totp_failed") == 2


def test_the_administrator_resets_a_lost_phone_in_the_console_and_over_the_api(
    world: World,
) -> None:
    dept = world.department("动态口令局")
    with world.hub.client() as c:
        _enrol(c, dept.registrar)
        _enrol(c, dept.reviewer)
    with world.hub.db() as s:
        ids = dict(s.execute(select(User.username, User.id)).all())
    with signed_in(world, world.admin) as admin:
        listed = admin.get("/admin/users", params={"department_id": dept.id})
        assert f'action="/admin/users/{ids[dept.registrar]}/reset-totp"' in listed.text
        assert f'action="/admin/users/{ids[dept.resource_admin]}/reset-totp"' not in listed.text
        reset = admin.post(
            f"/admin/users/{ids[dept.registrar]}/reset-totp", data={"csrf_token": csrf_of(admin)}
        )
        assert reset.status_code == 303
        assert admin.get(reset.headers["location"]).text.count("动态口令已重置") == 1
        again = admin.post(
            f"/admin/users/{ids[dept.registrar]}/reset-totp", data={"csrf_token": csrf_of(admin)}
        )
        assert "该账号未启用动态口令" in admin.get(again.headers["location"]).text
    with world.hub.client() as c:
        assert _token(c, dept.registrar).status_code == 200  # the password alone, again
        assert _token(c, dept.reviewer).status_code == 401  # untouched
    with world.api(world.admin) as api:
        done = api.post(f"/api/v1/users/{ids[dept.reviewer]}/reset-totp")
        assert done.status_code == 200, done.text
        assert done.json()["totp_enabled"] is False
        twice = api.post(f"/api/v1/users/{ids[dept.reviewer]}/reset-totp")
        assert twice.status_code == 409
        assert twice.json()["error"]["code"] == "totp_not_enabled"
        with world.api(dept.registrar) as registrar:
            refused = registrar.post(f"/api/v1/users/{ids[dept.resource_admin]}/reset-totp")
            assert refused.status_code == 403
    assert _actions(world, dept.registrar).count("auth.totp_reset") == 1
    assert _actions(world, dept.reviewer).count("auth.totp_reset") == 1


def test_an_administrator_cannot_reset_their_own_second_factor(world: World) -> None:
    """Whoever has an administrator's password alone must not be able to take the one-time
    code off that very account."""
    dept = world.department("动态口令局")
    admin = world.person(dept, f"padm_{dept.id}", Role.PLATFORM_ADMIN)
    with world.hub.db() as s:
        own = s.scalar(select(User.id).where(User.username == admin))
    with world.hub.client() as c:
        secret = _enrol(c, admin)
        token = _token(c, admin, totp.code_at(secret, utcnow() + timedelta(seconds=30)))
        assert token.status_code == 200, token.text
        c.headers["Authorization"] = f"Bearer {token.json()['access_token']}"
        refused = c.post(f"/api/v1/users/{own}/reset-totp")
        assert refused.status_code == 403
        assert refused.json()["error"]["code"] == "separation_of_duties"
        assert "不能重置自己的动态口令" in refused.json()["error"]["message"]
        listed = c.get("/api/v1/users", params={"department_id": dept.id})
        assert {u["id"]: u["totp_enabled"] for u in listed.json()}[own] is True
    assert "auth.totp_reset" not in _actions(world, admin)
