"""The 应用接入 console pages over real HTTP: an API client's secret is shown once and
signs data-service calls; rotating it refuses the old one, disabling refuses all; rate
and quota are checked with Chinese messages; the page charts the client's daily calls
and lists its latest ones; every change reaches the auditor with a Chinese label."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from govshare.errors import NotFound
from govshare.ids import MAX_SEQ
from govshare.rules.clock import fixed_today
from govshare.security import service
from govshare.security.audit import SYSTEM
from govshare.security.models import ApiClient, AuditEntry
from govshare.security.roles import Permission, Role
from govshare.sharing.models import CallStat
from tests.catalog.console import csrf_of, signed_in
from tests.factories import PASSWORD, Dept, World
from tests.live import LiveHub
from tests.sharing.builders import application_payload
from tests.sharing.test_data import Client

# A fixed day (as the data-service tests use) so grants and the chart's window are those
# of one known day, whatever the date the suite runs on.
DAY = date(2026, 9, 30)


@pytest.fixture(autouse=True)
def _on_a_fixed_day() -> Iterator[None]:
    with fixed_today(DAY):
        yield


def _secret_of(page: httpx.Response) -> str:
    found = re.search(r"<code class=\"mono\" data-secret>([^<]+)</code>", page.text)
    assert found, page.text
    return found.group(1)


def _client_id_of(page: httpx.Response) -> int:
    found = re.search(r'action="/admin/clients/(\d+)/rotate"', page.text)
    assert found, page.text
    return int(found.group(1))


def _app_key(world: World, client_id: int) -> str:
    with world.hub.db() as s:
        client = s.get(ApiClient, client_id)
        assert client is not None
        return client.app_key


def _register(c: httpx.Client, dept: Dept, name: str = "不动产登记系统", **form: str) -> Any:
    return c.post(
        "/admin/clients",
        data={"csrf_token": csrf_of(c), "name": name, "department_id": str(dept.id)} | form,
    )


def _lookup(world: World, app_key: str, secret: str, code: str) -> Any:
    """A signed data-service lookup; without a grant a verified caller is told so."""
    return Client(world.hub, app_key, secret).post(f"/{code}/lookup", {"keys": ["x" * 18]})


def _error(r: Any) -> str:
    return str(r.json()["error"]["code"])


def test_the_secret_is_shown_once_signs_calls_and_rotating_or_disabling_refuses_it(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    provider, consumer = world.department("提供局"), world.department("使用局")
    code = world.published(provider)["code"]
    caplog.set_level(logging.DEBUG)
    with signed_in(world, world.admin) as c:
        created = _register(c, consumer)
        assert created.status_code == 200, created.text
        assert "密钥只在此显示这一次" in created.text
        assert created.headers["cache-control"] == "no-store"
        secret, client_id = _secret_of(created), _client_id_of(created)
        app_key = _app_key(world, client_id)
        assert app_key in created.text

        again = c.get(f"/admin/clients/{client_id}")
        assert again.status_code == 200
        assert app_key in again.text
        assert secret not in again.text
        assert "data-secret" not in again.text
        listing = c.get("/admin/clients")
        assert "不动产登记系统" in listing.text
        assert secret not in listing.text

        # The shown secret signs a data-service call: the hub checks the signature and
        # answers about the grant; any other secret is a bad signature.
        assert _error(_lookup(world, app_key, secret, code)) == "no_grant"
        assert _error(_lookup(world, app_key, "not-the-secret", code)) == "bad_signature"

        rotated = c.post(f"/admin/clients/{client_id}/rotate", data={"csrf_token": csrf_of(c)})
        assert rotated.status_code == 200
        assert "密钥只在此显示这一次" in rotated.text
        new_secret = _secret_of(rotated)
        assert new_secret != secret
        assert secret not in c.get(f"/admin/clients/{client_id}").text
        assert new_secret not in c.get(f"/admin/clients/{client_id}").text
        assert _error(_lookup(world, app_key, secret, code)) == "bad_signature"
        assert _error(_lookup(world, app_key, new_secret, code)) == "no_grant"

        disabled = c.post(f"/admin/clients/{client_id}/disable", data={"csrf_token": csrf_of(c)})
        assert disabled.status_code == 303
        page = c.get(disabled.headers["location"])
        assert "接入应用已停用" in page.text
        assert "已停用" in page.text
        assert _error(_lookup(world, app_key, new_secret, code)) == "bad_signature"
        enabled = c.post(f"/admin/clients/{client_id}/enable", data={"csrf_token": csrf_of(c)})
        assert enabled.status_code == 303
        assert _error(_lookup(world, app_key, new_secret, code)) == "no_grant"

        # Forms without the CSRF token change nothing.
        assert c.post(f"/admin/clients/{client_id}/disable").status_code == 403
        assert c.post(f"/admin/clients/{client_id}/rotate").status_code == 403
        assert (
            c.post("/admin/clients", data={"name": "跨站登记", "department_id": "1"}).status_code
            == 403
        )

    with world.hub.db() as s:
        sealed = s.scalar(select(ApiClient.secret_sealed).where(ApiClient.id == client_id))
        entries = list(
            s.scalars(
                select(AuditEntry).where(AuditEntry.object_id == app_key).order_by(AuditEntry.seq)
            )
        )
    assert sealed
    assert secret not in sealed
    assert new_secret not in sealed
    assert [e.action for e in entries] == [
        "api_client.add",
        "api_client.rotate_secret",
        "api_client.disable",
        "api_client.enable",
    ]
    written = json.dumps([(e.before, e.after) for e in entries]) + caplog.text
    assert secret not in written
    assert new_secret not in written

    # The auditor reads the changes under their Chinese names.
    with signed_in(world, world.auditor) as c:
        log = c.get("/audit", params={"object_type": "api_client", "object_id": app_key})
    assert log.status_code == 200
    for label in ("登记接入应用", "重置接入应用密钥", "停用接入应用", "启用接入应用"):
        assert label in log.text


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("rate_per_second", "abc", "每秒调用上限应为数字，如 50 或 0.5"),
        ("rate_per_second", "nan", "每秒调用上限应为数字，如 50 或 0.5"),
        ("rate_per_second", "0", "每秒调用上限应大于 0 且不超过 100000"),
        ("rate_per_second", "100001", "每秒调用上限应大于 0 且不超过 100000"),
        ("daily_quota", "1.5", "每日额度应为正整数（键数），如 100000"),
        ("daily_quota", "-3", "每日额度应为正整数（键数），如 100000"),
        ("daily_quota", "0", f"每日额度应在 1 至 {MAX_SEQ} 之间"),
        ("daily_quota", str(MAX_SEQ + 1), f"每日额度应在 1 至 {MAX_SEQ} 之间"),
    ],
)
def test_bad_rates_and_quotas_are_refused_in_chinese_on_both_forms(
    world: World, field: str, value: str, message: str
) -> None:
    dept = world.department()
    with signed_in(world, world.admin) as c:
        refused = _register(c, dept, name="社保核验系统", **{field: value})
        assert refused.status_code == 422
        assert message in refused.text
        assert f'value="{value}"' in refused.text  # the form comes back as typed
        assert "社保核验系统" in refused.text

        created = _register(c, dept, name="社保核验系统")
        client_id = _client_id_of(created)
        limits = c.post(
            f"/admin/clients/{client_id}/limits", data={"csrf_token": csrf_of(c), field: value}
        )
        assert limits.status_code == 422
        assert message in limits.text
        assert f'value="{value}"' in limits.text
    with world.hub.db() as s:
        client = s.get(ApiClient, client_id)
        assert client is not None
        assert (client.rate_per_second, client.daily_quota) == (None, None)


def test_limits_are_saved_audited_and_cleared_back_to_the_platform_defaults(
    world: World,
) -> None:
    dept = world.department()
    with signed_in(world, world.admin) as c:
        client_id = _client_id_of(_register(c, dept, rate_per_second="5", daily_quota="200"))
        r = c.post(
            f"/admin/clients/{client_id}/limits",
            data={"csrf_token": csrf_of(c), "rate_per_second": "0.5", "daily_quota": "1000"},
        )
        assert r.status_code == 303
        assert "调用限额已保存" in c.get(r.headers["location"]).text
        with world.hub.db() as s:
            client = s.get(ApiClient, client_id)
            assert client is not None
            assert (client.rate_per_second, client.daily_quota) == (0.5, 1000)
        blank = {"csrf_token": csrf_of(c), "rate_per_second": "", "daily_quota": ""}
        assert c.post(f"/admin/clients/{client_id}/limits", data=blank).status_code == 303
        listing = c.get("/admin/clients").text
    app_key = _app_key(world, client_id)
    with world.hub.db() as s:
        client = s.get(ApiClient, client_id)
        assert client is not None
        assert (client.rate_per_second, client.daily_quota) == (None, None)
        entries = list(
            s.scalars(
                select(AuditEntry)
                .where(
                    AuditEntry.object_id == app_key, AuditEntry.action == "api_client.set_limits"
                )
                .order_by(AuditEntry.seq)
            )
        )
    assert [(e.before, e.after) for e in entries] == [
        (
            {"rate_per_second": 5.0, "daily_quota": 200},
            {"rate_per_second": 0.5, "daily_quota": 1000},
        ),
        (
            {"rate_per_second": 0.5, "daily_quota": 1000},
            {"rate_per_second": None, "daily_quota": None},
        ),
    ]
    assert "平台缺省" in listing
    with signed_in(world, world.auditor) as c:
        log = c.get("/audit", params={"object_type": "api_client", "object_id": app_key})
    assert "设置接入应用调用限额" in log.text


def test_allowed_networks_are_entered_a_line_each_checked_and_audited(world: World) -> None:
    dept = world.department()
    with signed_in(world, world.admin) as c:
        client_id = _client_id_of(_register(c, dept))
        here = f"/admin/clients/{client_id}"
        assert "未设置：任何地址都可调用" in c.get(here).text
        bad = c.post(
            f"{here}/networks",
            data={"csrf_token": csrf_of(c), "allowed_networks": "10.1.0.0/16\n10.2.0.300\n"},
        )
        assert bad.status_code == 422
        assert "第2行不是 IP 地址或网段: 10.2.0.300" in bad.text
        assert "10.2.0.300</textarea>" in bad.text  # what was typed stays in the form
        good = c.post(
            f"{here}/networks",
            data={"csrf_token": csrf_of(c), "allowed_networks": " 10.1.2.3/16 \n\n192.0.2.9\n"},
        )
        assert good.status_code == 303
        page = c.get(good.headers["location"]).text
        assert "允许调用的网络已保存" in page
        assert "10.1.0.0/16\n192.0.2.9/32</textarea>" in page  # normalised
    app_key = _app_key(world, client_id)
    with world.hub.db() as s:
        entry = s.scalars(
            select(AuditEntry).where(
                AuditEntry.object_id == app_key, AuditEntry.action == "api_client.set_networks"
            )
        ).one()
    assert entry.before == {"allowed_networks": []}
    assert entry.after == {"allowed_networks": ["10.1.0.0/16", "192.0.2.9/32"]}


REQUEST_ID = re.compile(r"请求编号 <code>[^<]*</code>")


def test_people_without_user_admin_get_the_same_refusal_for_any_client(world: World) -> None:
    """The API manages clients with ``user.admin``; so do the pages. A department's
    resource administrator holds no such permission: its own department's client and a
    client that does not exist are refused alike, and nothing changes."""
    dept = world.department()
    with signed_in(world, world.admin) as c:
        client_id = _client_id_of(_register(c, dept))
    with signed_in(world, dept.resource_admin) as c:
        home = c.get("/").text
        assert 'href="/admin/clients"' not in home
        mine, missing = c.get(f"/admin/clients/{client_id}"), c.get("/admin/clients/999999999")
        assert (mine.status_code, missing.status_code) == (403, 403)

        # Alike but for the address and the request id each error page shows.
        def told(r: httpx.Response, path: str) -> str:
            return REQUEST_ID.sub("", r.text.replace(path, ""))

        assert told(mine, f"/admin/clients/{client_id}") == told(
            missing, "/admin/clients/999999999"
        )
        assert c.get("/admin/clients").status_code == 403
        r = c.post(f"/admin/clients/{client_id}/disable", data={"csrf_token": csrf_of(c)})
        assert r.status_code == 403
    with world.hub.db() as s:
        client = s.get(ApiClient, client_id)
        assert client is not None
        assert client.is_active
    with signed_in(world, world.admin) as c:
        assert 'href="/admin/clients"' in c.get("/").text
        assert c.get("/admin/clients/999999999").status_code == 404


def test_a_department_scoped_manager_sees_its_own_clients_only(world: World) -> None:
    """Should ``user.admin`` ever be held outside the platform admin, the holder manages
    its own department's clients only, and another's is answered as a missing one."""
    mine, other = world.department(), world.department()
    manager = service.Principal(
        kind="user",
        name="manager",
        department_id=mine.id,
        permissions=frozenset({Permission.USER_ADMIN}),
    )
    with world.hub.db() as s:
        settings = world.hub.settings
        own, _ = service.add_api_client(
            s, settings, SYSTEM, name="本部门系统", department_id=mine.id
        )
        theirs, _ = service.add_api_client(
            s, settings, SYSTEM, name="其他部门系统", department_id=other.id
        )
        s.flush()
        assert service.get_api_client(s, manager, own.id) is own
        with pytest.raises(NotFound) as found:
            service.get_api_client(s, manager, theirs.id)
        with pytest.raises(NotFound) as absent:
            service.get_api_client(s, manager, 999_999_999)
        assert found.value.message.replace(str(theirs.id), "N") == absent.value.message.replace(
            "999999999", "N"
        )
        listed = {u.client.id for u in service.list_api_clients(s, manager, today=DAY)}
        assert own.id in listed
        assert theirs.id not in listed


def _grant(world: World, provider: Dept, consumer: Dept, resource_id: int) -> int:
    with world.api(consumer.resource_admin) as c:
        r = c.post("/api/v1/sharing/applications", json=application_payload(resource_id))
        assert r.status_code == 201, r.text
    with world.api(provider.resource_admin) as c:
        r = c.post(
            f"/api/v1/sharing/applications/{r.json()['id']}/approve",
            json={"masking": {}, "reason": "同意"},
        )
        assert r.status_code == 200, r.text
        return int(r.json()["grant_id"])


def test_the_client_page_charts_daily_calls_and_lists_the_latest(world: World) -> None:
    provider, consumer = world.department("提供局"), world.department("使用局")
    resource = world.published(provider)
    with signed_in(world, world.admin) as c:
        created = _register(c, consumer)
        secret, client_id = _secret_of(created), _client_id_of(created)
        app_key = _app_key(world, client_id)
        quiet = c.get(f"/admin/clients/{client_id}").text
        assert "近30天没有数据服务调用" in quiet
        assert "data-series-chart" not in quiet
        assert "还没有调用记录" in quiet

        assert _error(_lookup(world, app_key, secret, resource["code"])) == "no_grant"
        grant_id = _grant(world, provider, consumer, resource["id"])
        # The call journal's daily counts, as it keeps them for quotas and statistics.
        with world.hub.db() as s:
            s.add(
                CallStat(day=DAY, client_id=client_id, grant_id=grant_id, calls=7, keys=9, rows=3)
            )
            s.add(
                CallStat(
                    day=DAY - timedelta(days=2),
                    client_id=client_id,
                    grant_id=grant_id,
                    calls=4,
                    keys=4,
                    rows=4,
                )
            )
            s.add(  # outside the 30 days drawn
                CallStat(
                    day=DAY - timedelta(days=40),
                    client_id=client_id,
                    grant_id=grant_id,
                    calls=99,
                    keys=99,
                    rows=99,
                )
            )
        page = c.get(f"/admin/clients/{client_id}").text
        listing = c.get("/admin/clients").text

    spec = re.search(
        r'<script type="application/json" id="chart-client-calls">(.*?)</script>', page, re.S
    )
    assert spec, page
    chart = json.loads(spec.group(1))
    assert len(chart["labels"]) == 30
    assert chart["labels"][-1] == "09-30"
    calls = dict(zip(chart["labels"], chart["series"][0]["values"], strict=True))
    assert (calls["09-30"], calls["09-28"], sum(calls.values())) == (7, 4, 11)
    assert chart["series"][1]["values"][-1] == 9
    # The refused call, from the audit log, with why it was refused.
    recent = page.split('id="recent-calls"')[1]
    assert "数据服务调用被拒" in recent
    assert "没有有效授权" in recent
    assert "/audit?actor=" not in page  # the platform admin may not read the audit log
    row = re.search(rf'<a href="/admin/clients/{client_id}">.*?</tr>', listing, re.S)
    assert row, listing
    assert '<td class="num">7</td>' in row.group(0)  # today's calls
    assert "从未调用" not in row.group(0)  # its refused call was a use


def test_whoever_may_read_the_audit_log_gets_links_to_it(world: World) -> None:
    dept = world.department()
    both = f"admin_auditor_{dept.id}"
    with world.hub.db() as s:
        service.add_user(
            s,
            SYSTEM,
            username=both,
            password=PASSWORD,
            display_name="兼任审计",
            department_id=dept.id,
            roles=[Role.PLATFORM_ADMIN, Role.AUDITOR],
        )
    with signed_in(world, both) as c:
        created = _register(c, dept)
        client_id = _client_id_of(created)
        app_key = _app_key(world, client_id)
        page = c.get(f"/admin/clients/{client_id}").text
        assert f'href="/audit?actor={app_key}"' in page
        assert c.get(f"/audit?actor={app_key}").status_code == 200


CHROMIUM = Path("/usr/bin/chromium")


@pytest.mark.browser
def test_in_the_browser_the_secret_shows_once_and_rotating_asks_first(
    world: World, hub: LiveHub
) -> None:
    if hub.backend != "sqlite":
        pytest.skip("the pages are the same on either database")
    if not CHROMIUM.exists():
        pytest.skip("Debian chromium is not installed")
    sync_api = pytest.importorskip("playwright.sync_api")
    from tests.e2e.test_console_browser import CHROMIUM_ARGS

    dept = world.department("浏览器局")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_context(locale="zh-CN").new_page()
            page.set_default_timeout(60_000)
            page.goto(f"{hub.base_url}/login")
            page.get_by_label("用户名").fill(world.admin)
            page.get_by_label("密码").fill(PASSWORD)
            page.get_by_role("button", name="登 录").click()
            page.wait_for_url(f"{hub.base_url}/")
            page.get_by_role("link", name="应用接入").click()
            page.get_by_label("接入系统名称").fill("公积金核验系统")
            page.get_by_label("所属部门").select_option(str(dept.id))
            page.get_by_label("每秒调用上限").fill("0")
            page.get_by_role("button", name="登记并生成密钥").click()
            sync_api.expect(page.locator(".field-error")).to_have_text(
                "每秒调用上限应大于 0 且不超过 100000"
            )
            page.get_by_label("每秒调用上限").fill("10")
            page.get_by_role("button", name="登记并生成密钥").click()
            box = page.locator("#client-secret")
            sync_api.expect(box).to_contain_text("密钥只在此显示这一次")
            first = page.locator("[data-secret]").inner_text()

            asked: list[str] = []

            def accept(dialog: Any) -> None:
                asked.append(dialog.message)
                dialog.accept()

            page.on("dialog", accept)
            page.get_by_role("button", name="重置密钥").click()
            sync_api.expect(box).to_contain_text("密钥只在此显示这一次")
            assert asked == ["重置后原密钥立即失效，使用它的系统将无法调用，确定重置？"]
            second = page.locator("[data-secret]").inner_text()
            assert second != first

            page.get_by_role("link", name="应用接入", exact=True).first.click()
            page.get_by_role("link", name="公积金核验系统").click()
            sync_api.expect(page.locator("#calls-chart")).to_contain_text("没有数据服务调用")
            sync_api.expect(page.locator("#client-secret")).to_have_count(0)
            assert second not in page.content()
        finally:
            browser.close()


def test_every_refusal_the_data_services_journal_has_a_chinese_reason() -> None:
    """A ``data.denied`` entry keeps the refusal's error code; the client page names it."""
    from govshare.errors import UnstorableValue
    from govshare.security.pages import DENIED_REASONS
    from govshare.sharing import errors

    refusals = [
        errors.NoGrant,
        errors.StoreNotFound,
        errors.RateLimited,
        errors.QuotaExceeded,
        errors.InvalidApplication,
        UnstorableValue,
    ]
    assert sorted({r.code for r in refusals} - DENIED_REASONS.keys()) == []
