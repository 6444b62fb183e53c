"""Signing in: passwords, lockout, tokens, and signed API-client requests."""

from __future__ import annotations

import hashlib
import secrets
import time

import httpx

from govshare.security.crypto import hmac_sha256, string_to_sign
from tests.factories import PASSWORD, World


def test_token_for_correct_password(world: World) -> None:
    dept = world.department()
    with world.api() as c:
        r = c.post("/api/v1/auth/token", json={"username": dept.registrar, "password": PASSWORD})
    assert r.status_code == 200
    body = r.json()
    assert body["token_type"] == "bearer"
    with world.hub.client(body["access_token"]) as c:
        me = c.get("/api/v1/me").json()
    assert me["name"] == dept.registrar
    assert me["department_id"] == dept.id
    assert "catalog.write" in me["permissions"]
    assert "catalog.publish" not in me["permissions"]


def test_wrong_password_and_unknown_user_answer_alike(world: World) -> None:
    dept = world.department()
    with world.api() as c:
        wrong = c.post(
            "/api/v1/auth/token", json={"username": dept.registrar, "password": "nope-nope"}
        )
        unknown = c.post(
            "/api/v1/auth/token", json={"username": "no_such_user", "password": "nope-nope"}
        )
    assert wrong.status_code == unknown.status_code == 401
    # Alike but for the request id each answer carries (for the operator, not a tell).
    told = [
        {k: v for k, v in r.json()["error"].items() if k != "request_id"} for r in (wrong, unknown)
    ]
    assert told[0] == told[1]
    assert wrong.json()["error"]["request_id"] != unknown.json()["error"]["request_id"]


def test_account_locks_after_repeated_failures(world: World) -> None:
    dept = world.department()
    threshold = world.hub.settings.lockout_threshold
    with world.api() as c:
        codes = [
            c.post(
                "/api/v1/auth/token", json={"username": dept.reviewer, "password": "bad-password"}
            ).status_code
            for _ in range(threshold)
        ]
        locked = c.post(
            "/api/v1/auth/token", json={"username": dept.reviewer, "password": PASSWORD}
        )
    assert codes == [401] * (threshold - 1) + [423]
    assert locked.status_code == 423
    assert locked.json()["error"]["code"] == "account_locked"


def test_missing_bad_and_revoked_tokens_are_refused(world: World) -> None:
    dept = world.department()
    with world.api() as c:
        assert c.get("/api/v1/me").status_code == 401
    with world.hub.client("not-a-token") as c:
        assert c.get("/api/v1/me").json()["error"]["code"] == "not_authenticated"
    with world.api() as c:
        token = c.post(
            "/api/v1/auth/token", json={"username": dept.resource_admin, "password": PASSWORD}
        ).json()["access_token"]
    with world.hub.client(token) as c:
        assert c.get("/api/v1/me").status_code == 200
        assert c.post("/api/v1/auth/revoke").status_code == 204
        assert c.get("/api/v1/me").status_code == 401


def _client(world: World) -> tuple[str, str, int]:
    dept = world.department()
    with world.api(world.admin) as c:
        r = c.post("/api/v1/api-clients", json={"name": "人口业务系统", "department_id": dept.id})
    assert r.status_code == 201, r.text
    return r.json()["app_key"], r.json()["secret"], dept.id


def _signed(
    app_key: str,
    secret: str,
    method: str,
    path: str,
    body: bytes = b"",
    *,
    ts: int | None = None,
    nonce: str | None = None,
) -> dict[str, str]:
    ts_s = str(ts if ts is not None else int(time.time()))
    nonce = nonce or secrets.token_hex(12)
    sig = hmac_sha256(
        secret, string_to_sign(method, path, ts_s, nonce, hashlib.sha256(body).hexdigest())
    )
    return {"X-App-Key": app_key, "X-Timestamp": ts_s, "X-Nonce": nonce, "X-Signature": sig}


def test_signed_client_request_is_accepted(world: World) -> None:
    app_key, secret, dept_id = _client(world)
    with world.api() as c:
        r = c.get("/api/v1/me", headers=_signed(app_key, secret, "GET", "/api/v1/me"))
        assert r.status_code == 200, r.text
        assert r.json()["kind"] == "client"
        assert r.json()["department_id"] == dept_id
        path = "/api/v1/catalog/resources?q=%E4%BA%BA%E5%8F%A3&limit=5"
        assert c.get(path, headers=_signed(app_key, secret, "GET", path)).status_code == 200


def test_replayed_stale_and_forged_signatures_are_refused(world: World) -> None:
    app_key, secret, _ = _client(world)
    with world.api() as c:
        headers = _signed(app_key, secret, "GET", "/api/v1/me")
        assert c.get("/api/v1/me", headers=headers).status_code == 200
        replay = c.get("/api/v1/me", headers=headers)
        assert replay.status_code == 401
        assert replay.json()["error"]["code"] == "replayed_request"
        stale = c.get(
            "/api/v1/me",
            headers=_signed(app_key, secret, "GET", "/api/v1/me", ts=int(time.time()) - 3600),
        )
        assert stale.json()["error"]["code"] == "bad_signature"
        forged = c.get("/api/v1/me", headers=_signed(app_key, "wrong-secret", "GET", "/api/v1/me"))
        assert forged.json()["error"]["code"] == "bad_signature"
        other_path = c.get(
            "/api/v1/departments", headers=_signed(app_key, secret, "GET", "/api/v1/me")
        )
        assert other_path.status_code == 401


def test_signature_covers_the_body(world: World) -> None:
    app_key, secret, _ = _client(world)
    headers = _signed(app_key, secret, "POST", "/api/v1/catalog/demands", b'{"title":"a"}')
    with world.api() as c:
        r = c.post(
            "/api/v1/catalog/demands",
            content=b'{"title":"b"}',
            headers={**headers, "content-type": "application/json"},
        )
    assert r.status_code == 401


def test_client_cannot_hold_admin_permissions(world: World) -> None:
    dept = world.department()
    with world.api(world.admin) as c:
        r = c.post(
            "/api/v1/api-clients",
            json={
                "name": "越权系统",
                "department_id": dept.id,
                "permissions": ["user.admin", "catalog.read", "audit.read"],
            },
        )
    assert r.status_code == 422
    # Named as the permissions are written, never as Python reprs of them.
    assert r.json()["error"]["details"] == [
        {"field": "permissions", "message": "不允许: audit.read、user.admin"}
    ]


def test_client_secret_is_not_stored_in_clear(world: World) -> None:
    app_key, secret, _ = _client(world)
    from sqlalchemy import select

    from govshare.security.models import ApiClient

    with world.hub.db() as s:
        sealed = s.scalar(select(ApiClient.secret_sealed).where(ApiClient.app_key == app_key))
    assert sealed is not None
    assert secret not in sealed


def test_only_admins_manage_users_and_departments(world: World) -> None:
    dept = world.department()
    with world.api(dept.registrar) as c:
        assert c.get("/api/v1/users").status_code == 403
        r = c.post(
            "/api/v1/departments",
            json={"name": "越权部门", "credit_code": "x" * 18, "division_code": "370200"},
        )
        assert r.status_code == 403


def test_department_codes_are_validated(world: World) -> None:
    with world.api(world.admin) as c:
        r = c.post(
            "/api/v1/departments",
            json={
                "name": "青岛市测试委员会",
                "credit_code": "11370200MB0000001X",
                "division_code": "999999",
            },
        )
    assert r.status_code == 422
    fields = {d["field"]: d["message"] for d in r.json()["error"]["details"]}
    assert "校验位" in fields["credit_code"]
    assert "GB/T 2260" in fields["division_code"]


def test_console_post_without_csrf_token_is_refused(world: World) -> None:
    dept = world.department()
    with world.api() as c:
        token = c.post(
            "/api/v1/auth/token", json={"username": dept.registrar, "password": PASSWORD}
        ).json()["access_token"]
    # A bearer token is not a console session; make a real console session instead.
    from govshare.security.models import SessionKind
    from govshare.security.service import get_user_by_username, open_session

    with world.hub.db() as s:
        cookie, _ = open_session(
            s, world.hub.settings, get_user_by_username(s, dept.registrar), SessionKind.CONSOLE
        )
    with httpx.Client(base_url=world.hub.base_url, cookies={"govshare_session": cookie}) as c:
        assert c.get("/api/v1/me").status_code == 200
        r = c.post("/api/v1/catalog/demands", json={"title": "需要数据", "description": "说明"})
        assert r.status_code == 403
        assert r.json()["error"]["code"] == "csrf_failed"
    assert token


def test_a_user_sets_their_own_email_and_an_api_client_has_none(world: World) -> None:
    dept = world.department()
    with world.api(dept.registrar) as c:
        r = c.put("/api/v1/me/email", json={"email": "Reg@Example.gov.cn"})
        assert r.status_code == 200, r.text
        assert r.json()["email"] == "reg@example.gov.cn"
        r = c.put("/api/v1/me/email", json={"email": "no at sign"})
        assert r.status_code == 422
        assert r.json()["error"]["details"][0]["field"] == "email"
        # Another user's address is the user administrator's to set.
        assert c.put("/api/v1/users/1/email", json={"email": None}).status_code == 403
    with world.api(world.admin) as c:
        mine = [u for u in c.get("/api/v1/users").json() if u["username"] == dept.registrar]
    assert [u["email"] for u in mine] == ["reg@example.gov.cn"]

    app_key, secret, _ = _client(world)
    body = b'{"email": "app@example.gov.cn"}'
    with world.api() as c:
        r = c.put(
            "/api/v1/me/email",
            content=body,
            headers={
                **_signed(app_key, secret, "PUT", "/api/v1/me/email", body),
                "content-type": "application/json",
            },
        )
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "forbidden"
