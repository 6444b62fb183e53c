"""Password policy (口令策略): complexity, history and expiry, on every path that sets a
password or signs in, and API clients' allowed networks' input checks."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import select, update

from govshare.security.models import ApiClient, AuditEntry, User
from govshare.security.passwords import PasswordPolicy, character_classes, generate
from tests.factories import PASSWORD, World

NOW = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)


def test_every_broken_rule_is_named_at_once() -> None:
    policy = PasswordPolicy(min_length=10, min_classes=3)
    assert policy.problems("zhang", username="zhang") == [
        "密码至少10位",
        "密码应包含小写字母、大写字母、数字、其他符号中的至少3类",
        "密码不得包含用户名",
    ]
    assert policy.problems("Zhangsan-2026", username="lisi") == []
    assert character_classes("abc") == 1
    assert character_classes("abcDEF") == 2
    assert character_classes("abc DEF 1") == 4  # the space is an "other"
    assert character_classes("密码Ab1") == 4  # so is a Chinese character


def test_generated_passwords_meet_the_strictest_policy() -> None:
    strict = PasswordPolicy(min_length=16, min_classes=4)
    for _ in range(300):
        assert strict.problems(generate()) == []


def test_expiry_counts_whole_days_and_zero_turns_it_off() -> None:
    policy = PasswordPolicy(max_age_days=90)
    assert not policy.expired(NOW - timedelta(days=89, hours=23), NOW)
    assert policy.expired(NOW - timedelta(days=90), NOW)
    assert not PasswordPolicy(max_age_days=0).expired(NOW - timedelta(days=3650), NOW)


def test_remembered_hashes_are_bounded_by_the_history() -> None:
    assert PasswordPolicy(history=2).remembered("h3", ["h2", "h1"]) == ["h3", "h2"]
    assert PasswordPolicy(history=0).remembered("h3", ["h2"]) == []


def _change(c: httpx.Client, username: str, old: str, new: str) -> httpx.Response:
    return c.post(
        "/api/v1/auth/password",
        json={"username": username, "old_password": old, "new_password": new},
    )


def _actions(world: World, username: str, since: int) -> list[str]:
    with world.hub.db() as s:
        user_id = s.scalars(select(User.id).where(User.username == username)).one()
        return list(
            s.scalars(
                select(AuditEntry.action)
                .where(AuditEntry.seq > since, AuditEntry.object_id == str(user_id))
                .order_by(AuditEntry.seq)
            )
        )


def _last_seq(world: World) -> int:
    with world.hub.db() as s:
        return int(s.scalar(select(AuditEntry.seq).order_by(AuditEntry.seq.desc()).limit(1)) or 0)


def test_a_weak_password_is_refused_when_a_user_is_added(world: World) -> None:
    dept = world.department()
    with world.api(world.admin) as c:
        r = c.post(
            "/api/v1/users",
            json={
                "username": "weak_user_" + str(dept.id),
                "password": "weakpassword",
                "display_name": "弱口令",
                "department_id": dept.id,
                "roles": ["catalog_registrar"],
            },
        )
    assert r.status_code == 422, r.text
    messages = [d["message"] for d in r.json()["error"]["details"]]
    assert messages == ["密码应包含小写字母、大写字母、数字、其他符号中的至少3类"]
    with world.hub.db() as s:
        assert s.scalar(select(User.id).where(User.username == f"weak_user_{dept.id}")) is None


def test_changing_a_password_checks_the_old_one_and_refuses_reuse(world: World) -> None:
    user = world.department().registrar
    since = _last_seq(world)
    with world.api() as c:
        wrong = _change(c, user, "Not-the-password-1", "Brand-new-pass-1")
        assert wrong.status_code == 401
        assert wrong.json()["error"]["code"] == "bad_credentials"
        same = _change(c, user, PASSWORD, PASSWORD)
        assert same.status_code == 422
        assert "不得与当前密码" in same.json()["error"]["message"]
        assert same.json()["error"]["details"][0]["field"] == "new_password"
        assert _change(c, user, PASSWORD, "Second-pass-2").status_code == 204
        assert _change(c, user, "Second-pass-2", "Third-pass-3").status_code == 204
        # The first password is remembered: it may not come back yet.
        back = _change(c, user, "Third-pass-3", PASSWORD)
        assert back.status_code == 422, back.text
        token = c.post("/api/v1/auth/token", json={"username": user, "password": PASSWORD})
        assert token.status_code == 401
        token = c.post("/api/v1/auth/token", json={"username": user, "password": "Third-pass-3"})
        assert token.status_code == 200
    actions = _actions(world, user, since)
    assert actions.count("user.set_password") == 2
    assert "auth.login_failed" in actions  # the wrong old password counted as a failure
    with world.hub.db() as s:
        row = s.scalars(select(User).where(User.username == user)).one()
        assert len(row.password_history) == 2
        assert "Second-pass-2" not in str(row.password_history)


def _expire(world: World, username: str) -> None:
    with world.hub.db() as s:
        s.execute(
            update(User)
            .where(User.username == username)
            .values(password_changed_at=datetime.now(UTC) - timedelta(days=91))
        )
        s.commit()


def test_an_expired_password_must_be_changed_before_any_token(world: World) -> None:
    user = world.department().reviewer
    _expire(world, user)
    since = _last_seq(world)
    with world.api() as c:
        r = c.post("/api/v1/auth/token", json={"username": user, "password": PASSWORD})
        assert r.status_code == 403
        assert r.json()["error"]["code"] == "password_expired"
        assert "access_token" not in r.text
        assert _change(c, user, PASSWORD, "Fresh-pass-91").status_code == 204
        r = c.post("/api/v1/auth/token", json={"username": user, "password": "Fresh-pass-91"})
        assert r.status_code == 200, r.text
    assert _actions(world, user, since)[:1] == ["auth.password_expired"]


def _form_token(page: httpx.Response) -> str:
    found = re.search(r'name="login_token" value="([^"]+)"', page.text)
    assert found, page.text
    return found.group(1)


def test_the_console_sends_an_expired_password_to_the_change_form(world: World) -> None:
    user = world.department().resource_admin
    _expire(world, user)
    with world.hub.client(follow_redirects=False) as c:
        token = _form_token(c.get("/login"))
        r = c.post("/login", data={"username": user, "password": PASSWORD, "login_token": token})
        assert r.status_code == 303
        assert r.headers["location"] == f"/login/password?expired=1&username={user}"
        assert "govshare_session" not in r.headers.get("set-cookie", "")
        form = c.get(r.headers["location"])
        assert "密码已过期" in form.text
        fields = {
            "username": user,
            "old_password": PASSWORD,
            "new_password": "short",
            "new_password2": "short",
            "login_token": _form_token(form),
            "expired": "1",
        }
        weak = c.post("/login/password", data=fields)
        assert weak.status_code == 422
        assert "密码至少8位" in weak.text
        # Each answered form carries a fresh token (and its cookie), as the sign-in form does.
        fields["login_token"] = _form_token(weak)
        mismatch = c.post(
            "/login/password",
            data=fields | {"new_password": "Console-pass-1", "new_password2": "Console-pass-2"},
        )
        assert "两次输入的新密码不一致" in mismatch.text
        fields["login_token"] = _form_token(mismatch)
        done = c.post(
            "/login/password",
            data=fields | {"new_password": "Console-pass-1", "new_password2": "Console-pass-1"},
        )
        assert done.status_code == 303
        assert done.headers["location"] == "/login?done=password_changed"
        token = _form_token(c.get("/login"))
        r = c.post(
            "/login", data={"username": user, "password": "Console-pass-1", "login_token": token}
        )
        assert r.status_code == 303
        assert r.headers["location"] == "/"


def test_the_change_form_refuses_a_post_without_its_token(world: World) -> None:
    user = world.department().registrar
    with world.hub.client(follow_redirects=False) as c:
        r = c.post(
            "/login/password",
            data={
                "username": user,
                "old_password": PASSWORD,
                "new_password": "Forged-pass-1",
                "new_password2": "Forged-pass-1",
            },
        )
    assert r.status_code == 422
    assert "页面已过期" in r.text
    with world.api() as c:
        ok = c.post("/api/v1/auth/token", json={"username": user, "password": PASSWORD})
        assert ok.status_code == 200


@pytest.mark.parametrize(
    ("networks", "message"),
    [
        (["10.0.0.0/33"], "第1行不是 IP 地址或网段"),
        (["", "not-an-address"], "第2行不是 IP 地址或网段"),
        ([f"10.0.{i}.0/24" for i in range(51)], ""),  # the schema's bound
    ],
)
def test_bad_allowed_networks_are_refused_with_their_line(
    world: World, networks: list[str], message: str
) -> None:
    dept = world.department()
    with world.api(world.admin) as c:
        r = c.post(
            "/api/v1/api-clients",
            json={"name": "白名单测试", "department_id": dept.id, "allowed_networks": networks},
        )
    assert r.status_code == 422, r.text
    details = r.json()["error"]["details"]
    assert all(
        d["field"].startswith(("allowed_networks", "body.allowed_networks")) for d in details
    )
    assert any(message in d["message"] for d in details), r.text
    with world.hub.db() as s:
        assert s.scalar(select(ApiClient.id).where(ApiClient.department_id == dept.id)) is None
