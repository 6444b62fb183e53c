"""The public open-data portal in a real browser against a real hub process: nobody
signs in; the visitor opens the home page, searches, opens a dataset, reads its preview
and charts, and downloads its CSV. Every portal page runs under the
Content-Security-Policy without a script error and speaks Chinese."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.test_compare_browser import ProcessHub, hub
from tests.e2e.test_console_browser import CSP_LISTENER, browser, page
from tests.e2e.test_page_sweep import VISIBLE_TEXT, latin_words
from tests.factories import World
from tests.opendata.portal_builders import ITEMS, PortalScene, portal_scene

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("portal")]
__all__ = ["browser", "hub", "page"]  # fixtures shared with the other browser scenarios


@pytest.fixture(scope="module")
def scene(hub: ProcessHub) -> PortalScene:
    return portal_scene(World(hub))  # type: ignore[arg-type]  # a LiveHub in all the builders use


def test_search_open_preview_and_download_csv(
    hub: ProcessHub, scene: PortalScene, page: Any, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    url = hub.base_url
    plain = scene.scene.open_plain
    page.context.add_init_script(CSP_LISTENER)
    problems: list[str] = []
    page.on("pageerror", lambda e: problems.append(f"pageerror: {e}"))
    page.on(
        "console",
        lambda m: problems.append(f"{m.type}: {m.text}") if m.type == "error" else None,
    )

    def chinese_only() -> None:
        # The preview shows the store's rows: data, not what the portal says.
        page.evaluate("() => document.querySelectorAll('#preview').forEach((e) => e.remove())")
        # The scenery's names carry unique suffixes (tests.factories.unique: 12x345678).
        text = re.sub(r"\d+x\d+", "", page.evaluate(VISIBLE_TEXT))
        words = latin_words(text)
        if words:
            problems.append(f"{page.url}: Latin-letter words {words}")

    page.goto(f"{url}/open/")
    expect(page.get_by_role("heading", level=1)).to_have_text("公共数据开放平台")
    expect(page.locator("nav.sidebar")).to_have_count(0)
    expect(page.locator("#total-datasets")).not_to_have_text("0")
    chinese_only()

    page.get_by_label("检索数据集").fill(scene.scene.marker)
    page.get_by_role("button", name="检索").click()
    page.wait_for_url(re.compile(r"/open/datasets\?q="))
    expect(page.locator("#result-count")).to_contain_text("共找到 3 个数据集")
    chinese_only()
    page.locator("#facet-open_type").get_by_role("link", name="无条件开放").click()
    expect(page.locator("#result-count")).to_contain_text("共找到 2 个数据集")
    page.get_by_role("link", name=plain["name"]).click()
    page.wait_for_url(f"{url}/open/datasets/{plain['slug']}")

    expect(page.locator("#dataset-title")).to_have_text(plain["name"])
    expect(page.locator("#preview tbody tr")).to_have_count(10)
    expect(page.locator("#preview tbody tr").first).to_contain_text("公开1")
    expect(page.locator("[data-chart='chart-nulls'] svg").first).to_be_attached()
    expect(page.locator("#api")).to_contain_text("package_show")
    page.screenshot(path=str(tmp_path / "dataset.png"), full_page=True)
    chinese_only()

    with page.expect_download() as info:
        page.get_by_role("link", name="下载 CSV").click()
    saved = tmp_path / "download.csv"
    info.value.save_as(saved)
    rows = list(csv.reader(io.StringIO(saved.read_text(encoding="utf-8-sig"))))
    assert rows[0] == list(ITEMS)
    assert len(rows) == 1 + len(scene.visible_rows)
    assert rows[1] == [str(scene.visible_rows[0][i]) for i in ITEMS]

    page.goto(f"{url}/open/datasets/{scene.scene.open_conditional['slug']}")
    expect(page.locator("#rows-withheld")).to_contain_text("实名注册开发者申请")
    expect(page.locator("#preview")).to_have_count(0)
    chinese_only()
    page.goto(f"{url}/open/organizations")
    expect(page.locator("#organizations tbody tr").first).to_be_visible()
    chinese_only()
    response = page.goto(f"{url}/open/datasets/{scene.scene.closed['slug']}")
    assert response is not None
    assert response.status == 404
    expect(page.locator("#error-message")).to_contain_text("没有这个开放数据集")
    page.screenshot(path=str(tmp_path / "portal.png"), full_page=True)
    problems.extend(page.evaluate("window.__cspViolations"))
    problems = [p for p in problems if "status of 404" not in p]
    assert problems == []
