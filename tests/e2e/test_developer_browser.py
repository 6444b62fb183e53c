"""The developer centre in a real browser against a real hub process: a developer
registers, opens the confirmation link from the outbox, signs in, creates an API key
(shown once), calls the row API with it, and sees the call in the usage chart. Every
page runs under the Content-Security-Policy without a script error."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.test_compare_browser import ProcessHub, hub
from tests.e2e.test_console_browser import CSP_LISTENER, browser, page
from tests.factories import World, unique
from tests.opendata.dev_builders import DEV_PASSWORD, confirmation_link
from tests.opendata.portal_builders import PortalScene, portal_scene

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("portal")]
__all__ = ["browser", "hub", "page"]  # fixtures shared with the other browser scenarios


@pytest.fixture(scope="module")
def scene(hub: ProcessHub) -> PortalScene:
    return portal_scene(World(hub))  # type: ignore[arg-type]  # a LiveHub in all the builders use


def test_register_confirm_create_a_key_and_call_the_row_api(
    hub: ProcessHub, scene: PortalScene, page: Any, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    url = hub.base_url
    email = f"{unique('browser').lower()}@example.cn"
    page.context.add_init_script(CSP_LISTENER)
    problems: list[str] = []
    page.on("pageerror", lambda e: problems.append(f"pageerror: {e}"))
    page.on(
        "console",
        lambda m: problems.append(f"{m.type}: {m.text}") if m.type == "error" else None,
    )

    page.goto(f"{url}/open/")
    page.get_by_role("link", name="开发者中心").click()
    page.wait_for_url(f"{url}/open/developer")
    form = page.locator("#register-form")
    form.get_by_label("邮箱").fill(email)
    form.get_by_label("密码（至少 8 位）").fill(DEV_PASSWORD)
    form.get_by_role("button", name="注 册").click()
    expect(page.locator("#developer-notice")).to_contain_text("确认邮件已发出")

    page.goto(confirmation_link(hub, email))  # type: ignore[arg-type]
    expect(page.locator("#developer-notice")).to_contain_text("邮箱已确认")
    login = page.locator("#login-form")
    expect(login.get_by_label("邮箱")).to_have_value(email)
    login.get_by_label("密码").fill(DEV_PASSWORD)
    login.get_by_role("button", name="登 录").click()
    expect(page.locator("#developer-email")).to_have_text(email)

    page.get_by_label("密钥名称").fill("浏览器测试")
    page.get_by_role("button", name="新建密钥").click()
    secret = page.locator("#new-secret").inner_text()
    assert re.fullmatch(r"od_[\w-]{40}", secret)
    expect(page.locator("#key-table tbody tr")).to_have_count(1)

    slug = scene.scene.open_plain["slug"]
    answer = page.request.get(
        f"{url}/open/datasets/{slug}/rows.json?_size=3", headers={"X-Api-Key": secret}
    )
    assert answer.status == 200
    body = answer.json()
    assert body["ok"] is True
    assert len(body["rows"]) == 3
    refused = page.request.get(
        f"{url}/open/datasets/{slug}/rows.json", headers={"X-Api-Key": "od_" + "x" * 40}
    )
    assert refused.status == 401

    page.goto(f"{url}/open/developer")
    expect(page.locator("#new-secret")).to_have_count(0)  # shown once
    expect(page.locator("#key-table tbody tr").first.locator("td").nth(3)).to_have_text("1")
    expect(page.locator("[data-series-chart='usage-chart'] svg").first).to_be_attached()
    page.screenshot(path=str(tmp_path / "developer.png"), full_page=True)

    page.get_by_role("button", name="退出登录").click()
    expect(page.locator("#register-form")).to_be_visible()
    problems.extend(page.evaluate("window.__cspViolations"))
    assert problems == []
