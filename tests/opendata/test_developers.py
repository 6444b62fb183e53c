"""The developer centre over a live hub (SQLite and PostgreSQL): registration with a
confirmation link from the outbox, sign-in with a session of its own, CSRF, the
per-address limit on attempts; API keys shown once and stored as keyed hashes; the
per-minute limit, the daily quota and the anonymous limit refused with 429 and
Retry-After in each interface's shape (clock injected); usage per key and day; and
applications for 有条件开放 datasets approved, refused and revoked in the console."""

from __future__ import annotations

import csv
import io
import json
import re
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from govshare.opendata import developers as dev
from govshare.opendata.models import (
    ApplicationStatus,
    DeveloperMail,
    OpenApiKey,
    OpenApplication,
    OpenDeveloper,
    OpenKeyUsage,
)
from govshare.rules.clock import china_date
from govshare.security.models import AuditEntry
from tests.factories import World, unique
from tests.live import LiveHub
from tests.opendata.dev_builders import (
    DEV_PASSWORD,
    START,
    apply_for,
    confirmation_link,
    console,
    console_post,
    csrf_of,
    developer,
    gate,
    key_id_of,
    login,
    register,
)
from tests.opendata.portal_builders import PortalScene, portal_scene

pytestmark = pytest.mark.xdist_group("opendata")
CKANAPI = str(Path(sys.executable).parent / "ckanapi")


@pytest.fixture(scope="module")
def scene(hub: LiveHub) -> PortalScene:
    return portal_scene(World(hub))


def _rows(hub: LiveHub, slug: str, key: str | None = None, **headers: str) -> httpx.Response:
    sent = {"X-Api-Key": key} if key else {}
    with hub.client(headers=sent | headers) as c:
        return c.get(f"/open/datasets/{slug}/rows.json", params={"_size": "5"})


def _ckan(hub: LiveHub, key: str | None = None) -> httpx.Response:
    sent = {"X-Api-Key": key} if key else {}
    with hub.client(headers=sent) as c:
        return c.get("/api/3/action/package_list")


def _audit_actions(hub: LiveHub, object_type: str, object_id: int) -> list[str]:
    with hub.db() as s:
        return list(
            s.scalars(
                select(AuditEntry.action)
                .where(
                    AuditEntry.object_type == object_type, AuditEntry.object_id == str(object_id)
                )
                .order_by(AuditEntry.seq)
            )
        )


# -- accounts ------------------------------------------------------------------------------


def test_register_confirm_sign_in_and_out(hub: LiveHub) -> None:
    email = f"{unique('reg').lower()}@example.cn"
    with hub.client(follow_redirects=False) as c:
        r = register(c, email.upper())  # addresses are kept in lower case
        assert r.status_code == 200
        assert "确认邮件已发出" in r.text
        with hub.db() as s:
            found = s.scalar(select(OpenDeveloper).where(OpenDeveloper.email == email))
            assert found is not None
            assert found.confirmed_at is None
            assert found.password_hash.startswith("$argon2")
            assert DEV_PASSWORD not in found.password_hash
        # Not before the address is confirmed.
        r = login(c, email)
        assert r.status_code == 403
        assert "尚未确认" in r.text
        assert "govshare_dev" not in c.cookies
        link = confirmation_link(hub, email)
        assert c.get(link).status_code == 200
        # The link works once.
        r = c.get(link)
        assert r.status_code == 404
        assert "已使用" in r.text
        # A second registration of the address answers as the first did (the form tells
        # nobody the address has an account), keeps the account and its password, and
        # tells the mailbox's owner by mail.
        r = register(c, email, "another-password")
        assert r.status_code == 200
        assert "确认邮件已发出" in r.text
        with hub.db() as s:
            mails = s.scalars(
                select(DeveloperMail.subject)
                .where(DeveloperMail.to == email)
                .order_by(DeveloperMail.id)
            ).all()
        assert mails[-1] == "您的邮箱已在公共数据开放平台注册"
        assert login(c, email, "another-password").status_code == 401
        # A wrong password is refused.
        r = login(c, email, "not-the-password")
        assert r.status_code == 401
        assert "govshare_dev" not in c.cookies
        r = login(c, email)
        assert r.status_code == 303
        assert "govshare_dev" in c.cookies
        assert "govshare_session" not in c.cookies
        page = c.get("/open/developer").text
        assert email in page
        assert "API 密钥" in page
        # The developer's session is no console session.
        assert c.get("/catalog").status_code == 303
        assert (
            c.post("/open/developer/logout", data={"csrf_token": csrf_of(page)}).status_code == 303
        )
        assert 'id="register-form"' in c.get("/open/developer").text
    with hub.db() as s:
        dev_id = s.scalar(select(OpenDeveloper.id).where(OpenDeveloper.email == email))
    assert dev_id is not None
    actions = _audit_actions(hub, "open_developer", dev_id)
    assert actions[:2] == ["open.developer_registered", "open.developer_confirmed"]
    assert "open.developer_login" in actions


def test_registering_an_unconfirmed_address_again_sends_a_fresh_link(hub: LiveHub) -> None:
    """The way back for a developer whose first mail never arrived."""
    email = f"{unique('again').lower()}@example.cn"
    with hub.client(follow_redirects=False) as c:
        assert register(c, email).status_code == 200
        first = confirmation_link(hub, email)
        assert register(c, email).status_code == 200
        second = confirmation_link(hub, email)
        assert second != first
        assert c.get(second).status_code == 200
        assert login(c, email).status_code == 303
    with hub.db() as s:
        assert len(s.scalars(select(OpenDeveloper).where(OpenDeveloper.email == email)).all()) == 1


def test_forms_need_their_csrf_token(hub: LiveHub) -> None:
    email = f"{unique('csrf').lower()}@example.cn"
    with hub.client(follow_redirects=False) as c:
        c.get("/open/developer")
        r = c.post(
            "/open/developer/register",
            data={"csrf_token": "forged", "email": email, "password": DEV_PASSWORD},
        )
        assert r.status_code == 400
    with hub.db() as s:
        assert s.scalar(select(OpenDeveloper).where(OpenDeveloper.email == email)) is None
    d = developer(hub)
    try:
        r = d.client.post("/open/developer/keys", data={"csrf_token": "forged", "name": "k"})
        assert r.status_code == 400
        with hub.db() as s:
            dev_id = s.scalar(select(OpenDeveloper.id).where(OpenDeveloper.email == d.email))
            assert dev.list_keys(s, int(dev_id or 0)) == []
    finally:
        d.client.close()


def test_registrations_and_sign_ins_are_limited_per_address(hub: LiveHub) -> None:
    with gate(hub, open_auth_attempts_per_hour=3) as clock, hub.client() as c:
        for n in range(3):
            assert login(c, f"nobody{n}@example.cn").status_code == 401
        r = register(c, f"{unique('lim').lower()}@example.cn")
        assert r.status_code == 429
        assert 0 < int(r.headers["Retry-After"]) <= 3600
        clock.advance(hours=1)
        assert login(c, "nobody@example.cn").status_code == 401


# -- keys ----------------------------------------------------------------------------------


def test_a_key_is_shown_once_stored_hashed_and_opens_the_row_api(
    hub: LiveHub, scene: PortalScene
) -> None:
    slug = scene.scene.open_plain["slug"]
    d = developer(hub)
    try:
        with gate(hub) as clock:
            secret = d.create_key("公交小程序")
            assert secret.startswith("od_")
            assert len(secret) > 40
            assert secret not in d.page()  # shown once
            with hub.db() as s:
                key = s.scalar(select(OpenApiKey).where(OpenApiKey.name == "公交小程序"))
                assert key is not None
                assert key.secret_hash == dev.key_hash(hub.settings, secret)
                assert secret not in (key.secret_hash, key.prefix, key.name)
                assert secret.startswith(key.prefix)
            assert _rows(hub, slug, secret).status_code == 200
            r = _rows(hub, slug, Authorization=f"Bearer {secret}")
            assert r.status_code == 200
            assert len(r.json()["rows"]) == 5
            assert _ckan(hub, secret).json()["success"] is True
            with hub.client(headers={"X-Api-Key": secret}) as c:
                r = c.get(f"/open/datasets/{slug}/download.csv")
            assert r.status_code == 200
            with hub.db() as s:
                used = s.get(OpenKeyUsage, (key.id, china_date(clock())))
                assert used is not None
                assert (used.calls, used.rows) == (4, 5 + 5 + len(scene.visible_rows))
            chart = re.search(
                r'<script type="application/json" id="usage-chart">(.*?)</script>', d.page()
            )
            assert chart is not None
            series = json.loads(chart.group(1))["series"]
            assert [x["name"] for x in series] == ["调用次数", "返回行数"]
            assert series[0]["values"][-1] == 4  # today, the last of 30 days
            # Revoked: refused in each interface's shape, never served as anonymous.
            key_id = key.id
            assert d.post(f"/open/developer/keys/{key_id}/revoke").status_code == 200
            r = _rows(hub, slug, secret)
            assert r.status_code == 401
            assert r.json()["ok"] is False
            r = _ckan(hub, secret)
            assert r.status_code == 401
            assert r.json()["success"] is False
            assert r.json()["error"]["__type"] == "Authorization Error"
            assert _rows(hub, slug, "od_made-up").status_code == 401
        assert _audit_actions(hub, "open_api_key", key_id) == [
            "open.key_created",
            "open.key_revoked",
        ]
    finally:
        d.client.close()


def _set_limits(hub: LiveHub, world: World, key_id: int, **limits: int | None) -> httpx.Response:
    with world.api(world.admin) as c:
        return c.put(f"/api/v1/open/keys/{key_id}/limits", json=limits)


def test_a_keys_per_minute_limit_holds_across_the_hubs_processes(
    hub: LiveHub, scene: PortalScene
) -> None:
    """Each hub process (``--workers N``) has its own gate: a fresh gate at the same
    minute stands for another process. It counts what the first one recorded, so the
    key gets its limit once for the hub, not once per process."""
    world = World(hub)
    slug = scene.scene.open_plain["slug"]
    d = developer(hub)
    try:
        secret = d.create_key()
        key_id = key_id_of(hub, secret)
        assert _set_limits(hub, world, key_id, per_minute=3).status_code == 200
        with gate(hub) as clock:
            assert _rows(hub, slug, secret).status_code == 200
            assert _ckan(hub, secret).status_code == 200
        with gate(hub, start=clock()):
            assert _rows(hub, slug, secret).status_code == 200
            r = _rows(hub, slug, secret)
            assert r.status_code == 429, r.text
            assert int(r.headers["Retry-After"]) == 30
        with gate(hub, start=clock()) as third:
            assert _ckan(hub, secret).status_code == 429
            third.advance(seconds=30)  # the next minute starts the count again
            assert _ckan(hub, secret).status_code == 200
        with hub.db() as s:
            used = s.get(OpenKeyUsage, (key_id, china_date(clock())))
            assert used is not None
            assert (used.calls, used.minute_calls) == (4, 1)
    finally:
        d.client.close()


def test_per_minute_limit_and_daily_quota_are_refused_with_retry_after(
    hub: LiveHub, scene: PortalScene
) -> None:
    world = World(hub)
    slug = scene.scene.open_plain["slug"]
    d = developer(hub)
    try:
        secret = d.create_key()
        key_id = key_id_of(hub, secret)
        # Only the bureau sets a key's limits.
        dept = world.department("限额局")
        with world.api(dept.resource_admin) as c:
            r = c.put(f"/api/v1/open/keys/{key_id}/limits", json={"per_minute": 1000})
            assert r.status_code == 403
        r = _set_limits(hub, world, key_id, per_minute=3, daily_quota=5)
        assert r.status_code == 200, r.text
        assert (r.json()["per_minute"], r.json()["daily_quota"]) == (3, 5)
        with gate(hub) as clock:
            for _ in range(3):
                assert _rows(hub, slug, secret).status_code == 200
            r = _rows(hub, slug, secret)
            assert r.status_code == 429
            assert r.json()["ok"] is False
            assert r.json()["title"] == "Too many requests"
            # The clock stands 30 s into its minute (START): the window ends in 30 s.
            assert int(r.headers["Retry-After"]) == 30
            r = _ckan(hub, secret)
            assert r.status_code == 429
            assert r.json()["success"] is False
            assert r.json()["error"]["__type"] == "Rate Limit Error"
            assert "Retry-After" in r.headers
            clock.advance(seconds=int(r.headers["Retry-After"]))
            # A new minute: two more calls, then the day's quota of 5 is used up.
            assert _ckan(hub, secret).status_code == 200
            assert _rows(hub, slug, secret).status_code == 200
            r = _rows(hub, slug, secret)
            assert r.status_code == 429
            assert "额度" in r.json()["error"]
            midnight_wait = int(r.headers["Retry-After"])
            assert midnight_wait > 60  # until midnight in China, not the next minute
            clock.advance(minutes=5)
            r = _ckan(hub, secret)
            assert r.status_code == 429
            assert r.json()["error"]["__type"] == "Rate Limit Error"
            with hub.client(headers={"X-Api-Key": secret}) as c:
                r = c.get(f"/open/datasets/{slug}/download.json")
            assert r.status_code == 429
            assert r.json()["ok"] is False
            # The next day in China the quota starts again.
            clock.advance(seconds=midnight_wait)
            assert _rows(hub, slug, secret).status_code == 200
        # The default again when the bureau clears the key's own limits.
        r = _set_limits(hub, world, key_id, per_minute=None, daily_quota=None)
        assert r.json()["per_minute"] is None
        assert _audit_actions(hub, "open_api_key", key_id).count("open.key_limits_set") == 2
    finally:
        d.client.close()


def test_anonymous_calls_have_a_lower_limit_per_address(hub: LiveHub, scene: PortalScene) -> None:
    slug = scene.scene.open_plain["slug"]
    d = developer(hub)
    try:
        secret = d.create_key()
        with gate(hub, open_anonymous_per_minute=2) as clock:
            assert _rows(hub, slug).status_code == 200
            assert _ckan(hub).status_code == 200
            r = _rows(hub, slug)
            assert r.status_code == 429
            assert "Retry-After" in r.headers
            r = _ckan(hub)
            assert r.status_code == 429
            assert r.json()["error"]["__type"] == "Rate Limit Error"
            with hub.client() as c:
                assert c.get(f"/open/datasets/{slug}/download.csv").status_code == 429
                # The portal's pages are not limited.
                assert c.get(f"/open/datasets/{slug}").status_code == 200
            # A key is counted on its own.
            assert _rows(hub, slug, secret).status_code == 200
            clock.advance(minutes=1)
            assert _rows(hub, slug).status_code == 200
    finally:
        d.client.close()


# -- applications for 有条件开放 datasets ---------------------------------------------------------


def _application(hub: LiveHub, key_id: int) -> OpenApplication:
    with hub.db() as s:
        found = s.scalars(
            select(OpenApplication)
            .where(OpenApplication.key_id == key_id)
            .order_by(OpenApplication.id.desc())
        ).first()
        assert found is not None
        s.expunge(found)
        return found


def test_conditional_rows_need_an_approved_application(hub: LiveHub, scene: PortalScene) -> None:
    world = World(hub)
    s = scene.scene
    slug = s.open_conditional["slug"]
    other = world.department("他局")
    d = developer(hub)
    try:
        secret = d.create_key("研究")
        spare = d.create_key("备用")
        key_id, spare_id = key_id_of(hub, secret), key_id_of(hub, spare)
        assert _rows(hub, slug, secret).status_code == 404
        # The dataset page leads to the form.
        with hub.client() as c:
            assert "/open/developer/apply?dataset=" in c.get(f"/open/datasets/{slug}").text
        r = apply_for(d, slug, key_id)
        assert r.status_code == 200
        assert "申请已提交" in r.text
        application = _application(hub, key_id)
        assert application.status is ApplicationStatus.PENDING
        assert application.department_id == s.dept.id
        assert application.due > china_date(application.created_at)
        # A second open application for the same key and dataset is refused.
        assert apply_for(d, slug, key_id).status_code == 409
        # Only the providing department's resource admin answers.
        with console(hub, other.resource_admin) as c:
            assert f"application-{application.id}" not in c.get("/opendata/applications").text
            r = console_post(
                c,
                f"/opendata/applications/{application.id}/decide",
                decision="approve",
                reason="同意",
            )
            assert r.status_code == 403
        with console(hub, s.dept.registrar) as c:
            r = c.get("/opendata/applications")
            assert r.status_code == 403
        assert _rows(hub, slug, secret).status_code == 404
        with console(hub, s.dept.resource_admin) as c:
            assert f"application-{application.id}" in c.get("/opendata/applications").text
            r = console_post(
                c, f"/opendata/applications/{application.id}/decide", decision="approve", reason=""
            )
            assert r.status_code == 422  # a reason is required
            r = console_post(
                c,
                f"/opendata/applications/{application.id}/decide",
                decision="approve",
                reason="用途符合开放条件",
            )
            assert r.status_code == 303
        r = _rows(hub, slug, secret)
        assert r.status_code == 200, r.text
        assert any("有条件值" in str(v) for row in r.json()["rows"] for v in row.values())
        with hub.client(headers={"Authorization": f"Bearer {secret}"}) as c:
            r = c.get(f"/open/datasets/{slug}/download.csv")
        assert r.status_code == 200
        assert len(list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"))))) == 4
        # Nobody else: anonymous, the developer's other key.
        assert _rows(hub, slug).status_code == 404
        assert _rows(hub, slug, spare).status_code == 404
        page = d.page()
        assert "已批准" in page
        assert "用途符合开放条件" in page
        # Revoked: the key no longer reaches the rows.
        with console(hub, s.dept.resource_admin) as c:
            r = console_post(
                c, f"/opendata/applications/{application.id}/revoke", reason="超出用途使用"
            )
            assert r.status_code == 303
        assert _rows(hub, slug, secret).status_code == 404
        # A refusal leaves the key outside too.
        assert apply_for(d, slug, spare_id).status_code == 200
        refused = _application(hub, spare_id)
        with console(hub, s.dept.resource_admin) as c:
            r = console_post(
                c,
                f"/opendata/applications/{refused.id}/decide",
                decision="refuse",
                reason="用途不明",
            )
            assert r.status_code == 303
            # Answered once only.
            r = console_post(
                c, f"/opendata/applications/{refused.id}/decide", decision="approve", reason="改批"
            )
            assert r.status_code == 409
        assert _application(hub, spare_id).status is ApplicationStatus.REFUSED
        assert _rows(hub, slug, spare).status_code == 404
        # An unconditional dataset cannot be applied for.
        r = d.client.get("/open/developer/apply", params={"dataset": s.open_plain["slug"]})
        assert r.status_code == 404
    finally:
        d.client.close()
    assert _audit_actions(hub, "open_application", application.id) == [
        "open.application_submitted",
        "open.application_approved",
        "open.application_revoked",
    ]
    assert _audit_actions(hub, "open_application", refused.id)[-1] == "open.application_refused"


def test_deadline_counts_working_days(hub: LiveHub, scene: PortalScene) -> None:
    """Applied on a Friday in China: ten working days later is two weeks on (no
    holiday in those weeks of 2026)."""
    d = developer(hub)
    try:
        friday = START.replace(day=13)  # 2026-03-13 10:00 in China
        with gate(hub, start=friday):
            secret = d.create_key()
            assert (
                apply_for(
                    d, scene.scene.open_conditional["slug"], key_id_of(hub, secret)
                ).status_code
                == 200
            )
        application = _application(hub, key_id_of(hub, secret))
        assert application.due == china_date(friday) + timedelta(days=14)
    finally:
        d.client.close()


def test_the_ckanapi_client_sends_a_key(hub: LiveHub, scene: PortalScene) -> None:
    """``ckanapi -a KEY`` (X-CKAN-API-Key and a bare Authorization header), as a real
    subprocess: counted against the key; a revoked key reaches it as NotAuthorized."""
    d = developer(hub)
    try:
        secret = d.create_key()
        key_id = key_id_of(hub, secret)

        def ckanapi(key: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [CKANAPI, "action", "package_list", "-r", hub.base_url, "-a", key],
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )

        with gate(hub) as clock:
            done = ckanapi(secret)
            assert done.returncode == 0, done.stderr
            assert scene.scene.open_plain["slug"] in json.loads(done.stdout)
            with hub.db() as s:
                used = s.get(OpenKeyUsage, (key_id, china_date(clock())))
                assert used is not None
                assert used.calls == 1
            assert d.post(f"/open/developer/keys/{key_id}/revoke").status_code == 200
            done = ckanapi(secret)
            assert done.returncode != 0
            assert "NotAuthorized" in done.stdout + done.stderr
    finally:
        d.client.close()
