"""The console in a real browser against a real hub process.

A registrar compiles an entry (fixing an inline validation error on the way) and submits
it, the department reviewer approves it, the registrar asks for publication, the
platform admin publishes it, and a Chinese query on the search page finds it.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PASSWORD = "e2e-console-pass-2024"
ENTRY_NAME = "养犬登记免疫信息"
QUERY = "养犬免疫"


# Each demo hub's data directory, by its URL: where its nodes' own databases are.
DATA_DIRS: dict[str, Path] = {}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_healthy(url: str, proc: subprocess.Popen[bytes], timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"hub exited early with code {proc.returncode}")
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=2) as resp:  # noqa: S310 (loopback)
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError("hub did not become healthy in time")


@pytest.fixture(scope="module")
def demo_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``govshare serve --demo`` on a free loopback port with a temporary data dir."""
    data_dir = tmp_path_factory.mktemp("hub-data")
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOVSHARE_")}
    env["GOVSHARE_ADMIN_PASSWORD"] = PASSWORD
    cli = Path(sys.executable).parent / "govshare"
    log = (data_dir / "hub.log").open("wb")
    proc = subprocess.Popen(
        [
            str(cli),
            "serve",
            "--demo",
            "--data-dir",
            str(data_dir),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    DATA_DIRS[url] = data_dir
    try:
        _wait_healthy(url, proc)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.skip("Debian chromium is not installed")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(locale="zh-CN", viewport={"width": 1440, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(60_000)  # CI runs two workers on two cores beside the nodes
    try:
        yield page
    finally:
        context.close()


def sign_in(page: Any, hub: str, username: str) -> None:
    from playwright.sync_api import expect

    page.goto(f"{hub}/login")
    page.get_by_label("用户名").fill(username)
    page.get_by_label("密码").fill(PASSWORD)
    page.get_by_role("button", name="登 录").click()
    page.wait_for_url(f"{hub}/")
    expect(page.locator(".who-name")).to_be_visible()


def sign_out(page: Any, hub: str) -> None:
    page.get_by_role("button", name="退出").click()
    page.wait_for_url(re.compile(r"/login\?done=logged_out$"))


def take_step(page: Any, label: str, status_label: str) -> None:
    from playwright.sync_api import expect

    page.get_by_role("button", name=label, exact=True).click()
    expect(page.get_by_role("status")).to_contain_text("操作已完成")
    expect(page.locator(".page-head .tag")).to_have_text(status_label)


def fill_item(page: Any, row: int, name: str, code: str, data_type: str, length: str = "") -> None:
    cells = page.locator("#item-rows tr").nth(row)
    cells.locator("input[name=item_name]").fill(name)
    cells.locator("input[name=item_code]").fill(code)
    cells.locator("select[name=item_data_type]").select_option(data_type)
    cells.locator("input[name=item_length]").fill(length)


def test_register_review_publish_and_find(demo_hub: str, page: Any, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    hub = demo_hub
    # The registrar compiles the entry; the first save misses a length and is refused.
    sign_in(page, hub, "gaj_reg")
    page.get_by_role("link", name="编制目录").click()
    page.get_by_label("信息资源分类").select_option("101001")
    page.get_by_label("信息资源名称").fill(ENTRY_NAME)
    page.get_by_label("信息资源摘要").fill(
        "城区养犬登记与狂犬病免疫接种信息，用于犬只管理与公共卫生防疫。"
    )
    page.get_by_label("信息资源格式").select_option("database")
    page.get_by_label("更新周期").select_option("daily")
    page.get_by_label("有条件共享").check()
    page.get_by_label("共享条件").fill("仅限卫生健康、城市管理部门依职能使用")
    page.get_by_label("接口调用").check()
    fill_item(page, 0, "犬主公民身份号码", "qzgmsfhm", "C", "18")
    page.locator("#item-rows tr").nth(0).locator("select[name=item_is_key]").select_option("1")
    fill_item(page, 1, "犬只编号", "qzbh", "C", "")
    page.get_by_role("button", name="＋ 添加信息项").click()
    fill_item(page, 3, "免疫日期", "myrq", "D")
    page.get_by_role("button", name="保存草稿").click()

    expect(page.locator(".notice-error")).to_contain_text("目录信息不符合编制要求")
    row = page.locator("#item-rows tr").nth(1)
    expect(row.locator(".field-error")).to_contain_text("结构化信息项必须注明数据长度")
    expect(page.locator("#item-rows tr")).to_have_count(3)  # the empty row was dropped
    row.locator("input[name=item_length]").fill("20")
    page.get_by_role("button", name="保存草稿").click()

    page.wait_for_url(re.compile(r"/catalog/resources/\d+\?done=created$"))
    resource_url = page.url.split("?")[0]
    expect(page.get_by_role("heading", level=1)).to_have_text(ENTRY_NAME)
    expect(page.locator("table").filter(has_text="qzbh")).to_be_visible()
    take_step(page, "提交注册", "待注册审核")
    sign_out(page, hub)

    # The department reviewer finds it in the registration queue and approves it.
    sign_in(page, hub, "gaj_rev")
    page.get_by_role("link", name="目录审核").click()
    page.get_by_role("link", name=ENTRY_NAME).click()
    take_step(page, "注册审核通过", "已注册")
    sign_out(page, hub)

    # The registrar asks for publication.
    sign_in(page, hub, "gaj_reg")
    page.goto(resource_url)
    take_step(page, "提交发布", "待发布审核")
    sign_out(page, hub)

    # The platform admin publishes it from the publication queue.
    sign_in(page, hub, "admin")
    page.goto(f"{hub}/catalog/review?queue=publication")
    page.get_by_role("link", name=ENTRY_NAME).click()
    take_step(page, "发布审核通过", "已发布")

    # Anyone reading the sharing catalog now finds it with a Chinese query.
    page.get_by_role("link", name="目录检索").click()
    page.locator("#catalog-q").fill(QUERY)
    page.locator("#catalog-q").press("Enter")
    results = page.locator("ol.results")
    expect(results.locator("li.result").first).to_contain_text(ENTRY_NAME)
    expect(results.locator("mark").first).to_be_visible()
    expect(page).to_have_url(re.compile(r"/catalog\?q="))
    expect(page.locator("[data-facet=department]")).to_contain_text("公安")
    # Facets narrow the results in place (htmx) and show as removable chips.
    page.locator("[data-facet=sharing_type]").get_by_role(
        "link", name=re.compile("有条件共享")
    ).click()
    expect(page.locator(".chips")).to_contain_text("共享类型：有条件共享")
    expect(page).to_have_url(re.compile(r"sharing_type=2"))
    expect(results.locator("li.result").first).to_contain_text(ENTRY_NAME)
    shot = tmp_path / "catalog-search.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000

    # The dashboard draws its charts from the vendored ECharts.
    page.goto(f"{hub}/")
    expect(page.locator(".chart svg").first).to_be_visible()
    page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)


# Reported into the page by an init script (which the page's CSP does not govern).
CSP_LISTENER = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", function (e) {
  window.__cspViolations.push(e.violatedDirective + " " + (e.blockedURI || "inline")
    + " at " + e.sourceFile + ":" + e.lineNumber);
});
"""


def test_pages_run_under_the_content_security_policy(demo_hub: str, browser: Any) -> None:
    """Every console page draws its charts and runs htmx with the CSP on, and the
    browser reports no violation and no script error."""
    from playwright.sync_api import expect

    hub = demo_hub
    context = browser.new_context(locale="zh-CN", viewport={"width": 1440, "height": 1000})
    context.add_init_script(CSP_LISTENER)
    page = context.new_page()
    page.set_default_timeout(60_000)
    problems: list[str] = []
    page.on(
        "console",
        lambda m: (
            problems.append(f"{m.type}: {m.text}") if m.type in ("error", "warning") else None
        ),
    )
    page.on("pageerror", lambda e: problems.append(f"pageerror: {e}"))

    def visit(path: str) -> None:
        response = page.goto(f"{hub}{path}")
        assert response is not None
        assert response.status == 200, path
        assert "script-src 'self'" in response.headers["content-security-policy"]
        # Each chart is drawn, or says it has no data (app.js draws no axis for zeros).
        charts = page.locator(".chart")
        for i in range(charts.count()):
            chart = charts.nth(i)
            expect(chart).to_have_attribute("data-chart-ready", "1")
            if "chart-empty" not in (chart.get_attribute("class") or ""):
                expect(chart.locator("svg").first).to_be_attached()
        problems.extend(f"{path}: {v}" for v in page.evaluate("window.__cspViolations"))

    try:
        visit("/login")
        sign_in(page, hub, "admin")
        visit("/")
        assert page.locator(".chart svg").count() >= 1
        # ECharts' tooltips write their own HTML and styles when the pointer moves in.
        chart = page.locator(".chart").first
        box = chart.bounding_box()
        assert box
        for fx in (0.3, 0.5, 0.7):
            page.mouse.move(box["x"] + box["width"] * fx, box["y"] + box["height"] * 0.4)
            page.wait_for_timeout(300)
        problems.extend(f"/ (tooltip): {v}" for v in page.evaluate("window.__cspViolations"))
        for path in ["/catalog", "/exchange", "/exchange/tasks", "/sharing/stats", "/admin/users"]:
            visit(path)
        page.goto(f"{hub}/exchange/tasks")
        task = page.locator("a[href^='/exchange/tasks/']").first.get_attribute("href")
        assert task
        visit(task)
        # htmx under the CSP: the auditor's chain check swaps its report in place.
        sign_out(page, hub)
        sign_in(page, hub, "auditor")
        visit("/audit")
        page.get_by_role("button", name="校验哈希链").click()
        expect(page.locator("#chain-report")).to_contain_text("哈希链完整")
        expect(page).to_have_url(f"{hub}/audit")  # swapped in place, not a page post
        problems.extend(f"/audit: {v}" for v in page.evaluate("window.__cspViolations"))
    finally:
        context.close()
    assert problems == []


def _api_get(hub: str, username: str, path: str, *, method: str = "GET", body: Any = None) -> Any:
    import json

    credentials = json.dumps({"username": username, "password": PASSWORD}).encode()
    req = urllib.request.Request(  # noqa: S310 (loopback)
        f"{hub}/api/v1/auth/token",
        data=credentials,
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310
        token = json.load(resp)["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    if body is not None:
        headers["Content-Type"] = "application/json"
    req = urllib.request.Request(  # noqa: S310
        f"{hub}{path}",
        data=None if body is None else json.dumps(body).encode(),
        headers=headers,
        method=method,
    )
    with urllib.request.urlopen(req, timeout=60) as resp:  # noqa: S310
        return json.load(resp)


def _filled_base(hub: str, name: str, rows: int, conflicts: int) -> dict[str, Any]:
    """The demo base of that name once it holds ``rows`` records and ``conflicts``
    conflicts (the demo nodes feed its sources in the first seconds)."""
    deadline = time.monotonic() + 180
    while True:
        bases = {b["resource_name"]: b for b in _api_get(hub, "admin", "/api/v1/base-databases")}
        base = bases.get(name)
        if (
            base is not None
            and base["row_count"] == rows
            and sum(base["conflicts"].values()) == conflicts
        ):
            return base
        assert time.monotonic() < deadline, f"the demo base did not fill: {base}"
        time.sleep(2)


def test_officers_work_the_demo_base_database_and_its_quality(
    demo_hub: str, page: Any, tmp_path: Path
) -> None:
    """The demo's 人口库 fills from the demo nodes with exactly its planted conflicts;
    公安's officer confirms one of its own; 人社's officer scans its insurance store and
    downloads the failing rows, the planted invalid ID numbers among them."""
    from openpyxl import load_workbook
    from playwright.sync_api import expect

    from govshare.demo_basedata import BASE_NAME, PLANTED

    hub = demo_hub
    expected = PLANTED["name_conflicts"] + PLANTED["death_conflicts"] + PLANTED["birth_conflicts"]
    base = _filled_base(hub, BASE_NAME, 3000 + PLANTED["invalid_ids"], expected)
    assert base["conflicts"]["open"] == expected

    # 公安 owns the name conflicts (人社 is the evidence) and the birth-date ones (卫健's
    # certificates); it confirms one with a reason.
    police = PLANTED["name_conflicts"] + PLANTED["birth_conflicts"]
    sign_in(page, hub, "gaj_res")
    page.get_by_role("link", name="本部门基础库冲突").click()
    rows = page.locator("#conflicts tbody tr")
    expect(rows).to_have_count(police)
    rows.first.get_by_role("link").click()
    page.get_by_role("button", name="确认本部门的值").click()
    expect(page.locator(".notice-error, .error-summary").first).to_contain_text("理由")
    page.get_by_label("理由或说明").fill("经户籍档案核实，本部门登记无误")
    page.get_by_role("button", name="确认本部门的值").click()
    expect(page.get_by_role("status")).to_contain_text("已确认本部门的值")
    expect(page.locator(".page-head .tag")).to_have_text("已确认本部门值")
    page.get_by_role("link", name="返回列表").click()
    expect(rows).to_have_count(police - 1)
    sign_out(page, hub)

    # 人社 scans its insurance store and downloads what failed.
    sign_in(page, hub, "rsj_res")
    page.get_by_role("link", name="数据质量").click()
    page.get_by_role("link", name="社会保险参保信息").first.click()
    page.get_by_role("button", name="立即检测").click()
    expect(page.locator("#scores")).to_be_visible()
    with page.expect_download() as download:
        page.get_by_role("link", name="下载问题数据（XLSX）").click()
    path = tmp_path / "problems.xlsx"
    download.value.save_as(path)
    # A read-only workbook keeps its file open until closed (a ResourceWarning that
    # pytest pins on whichever test runs next on the worker).
    book = load_workbook(path, read_only=True)
    try:
        sheet = book.active
        assert sheet is not None
        text = "\n".join(
            " ".join(str(c) for c in row if c is not None)
            for row in sheet.iter_rows(values_only=True)
        )
    finally:
        book.close()
    assert text.count("校验位") >= PLANTED["invalid_ids"]
    assert "人口基础信息库" in text  # the name conflicts, as 一致性 problems


def test_the_demo_legal_entity_base_has_exactly_its_planted_defects(demo_hub: str) -> None:
    """The demo's 法人库 fills from 市场监管's and 税务's nodes with exactly the planted
    name conflicts, all 市场监管's; 税务's scan of its register finds exactly the planted
    invalid 统一社会信用代码 and, as 一致性 problems, the names that conflict."""
    from govshare.demo_legalbase import BASE_NAME, ENTERPRISES, PLANTED
    from govshare.rules.validators import credit_code_problem

    hub = demo_hub
    names = PLANTED["name_conflicts"]
    invalid = PLANTED["invalid_codes"]
    base = _filled_base(hub, BASE_NAME, ENTERPRISES + invalid, names)
    assert base["conflicts"]["open"] == names

    page = _api_get(hub, "scj_res", f"/api/v1/base-conflicts?base_id={base['id']}&limit=500")
    mine = page["items"]
    assert len(mine) == names
    assert {c["item"] for c in mine} == {"qymc"}
    # The mistyped codes: 市场监管 has no name for them, 税务 has.
    unknown = sorted(c["record_key"] for c in mine if c["value"] is None)
    assert len(unknown) == invalid
    assert all("校验位" in (credit_code_problem(k) or "") for k in unknown)
    assert _api_get(hub, "swj_res", "/api/v1/base-conflicts?limit=500")["items"] == []

    tax = next(
        r
        for r in _api_get(hub, "swj_res", "/api/v1/quality/resources")
        if r["resource_name"] == "税务登记信息"
    )
    scan = _api_get(
        hub, "swj_res", f"/api/v1/quality/resources/{tax['resource_id']}/scans", method="POST"
    )
    assert scan["validity_failed"] == invalid
    assert scan["consistency_failed"] == names
    problems = _api_get(
        hub, "swj_res", f"/api/v1/quality/scans/{scan['id']}/problems?dimension=validity"
    )["items"]
    assert sorted(p["row_key"] for p in problems) == unknown
    assert {p["item_code"] for p in problems} == {"tyshxydm"}


def test_a_user_switches_on_a_one_time_code_and_signs_in_with_it(demo_hub: str, page: Any) -> None:
    """动态口令 in the browser: the enrolment shows its QR code under the CSP, and from
    then on the sign-in wants the code beside the password."""
    from datetime import timedelta

    from playwright.sync_api import expect

    from govshare.db import utcnow
    from govshare.security import totp

    hub, user = demo_hub, "mzj_reg"  # no other test here signs in as 民政's registrar
    blocked: list[str] = []
    page.on("console", lambda m: blocked.append(m.text) if "Content Security" in m.text else None)
    sign_in(page, hub, user)
    page.goto(f"{hub}/login/totp")
    page.get_by_label("密码").fill(PASSWORD)
    page.get_by_role("button", name="下一步").click()
    expect(page.locator("#totp-qr svg")).to_be_visible()
    secret = page.locator("#totp-secret").inner_text().replace(" ", "")
    page.get_by_label("动态口令").fill(totp.code_at(secret, utcnow()))
    page.get_by_role("button", name="启 用").click()
    expect(page.get_by_role("status")).to_contain_text("动态口令已启用")
    expect(page.locator("#recovery-codes li")).to_have_count(totp.RECOVERY_CODES)
    page.get_by_role("link", name="我已保存恢复码，继续").click()
    page.wait_for_url(f"{hub}/?done=totp_enabled")
    assert blocked == []

    page.context.clear_cookies()
    page.goto(f"{hub}/login")
    page.get_by_label("用户名").fill(user)
    page.get_by_label("密码").fill(PASSWORD)
    page.get_by_role("button", name="登 录").click()
    expect(page.get_by_role("alert")).to_contain_text("请输入动态口令")
    page.get_by_label("用户名").fill(user)
    page.get_by_label("密码").fill(PASSWORD)
    # A step after the enrolment's: each code is good once.
    page.get_by_label("动态口令").fill(totp.code_at(secret, utcnow() + timedelta(seconds=30)))
    page.get_by_role("button", name="登 录").click()
    page.wait_for_url(f"{hub}/")
    expect(page.locator(".who-name")).to_be_visible()


def _delivered(data_dir: Path) -> dict[str, str]:
    """人社's own database in the demo: the cases delivered to it, 身份号码 → 核查状态."""
    import sqlite3

    from govshare.demo_compare import DELIVERY_TABLE

    path = data_dir / "demo-exchange" / "rsj-local.db"
    if not path.exists():
        return {}
    with contextlib.closing(sqlite3.connect(path)) as conn:
        try:
            rows = conn.execute(f"SELECT sfzhm, case_state FROM {DELIVERY_TABLE}").fetchall()
        except sqlite3.OperationalError:  # not received yet
            return {}
    return dict(rows)


def test_the_demo_delivers_its_pension_cases_into_the_departments_database(
    demo_hub: str,
) -> None:
    """交付 in the demo: 人社 runs its 死亡人员仍领取养老金 job; the bureau's node reads the
    cases from the hub's shared-store database and 人社's node writes them into 人社's
    own database; a follow-up step taken on the hub arrives there as well."""
    from govshare.demo_compare import PLANTED

    hub, planted = demo_hub, PLANTED["dead_pension"]
    jobs = {j["template"]: j for j in _api_get(hub, "rsj_res", "/api/v1/compare/jobs")}
    job = jobs["dead_pension"]
    assert job["deliver"]
    deadline = time.monotonic() + 180
    while True:  # the nodes feed the job's stores in the demo's first seconds
        run = _api_get(hub, "rsj_res", f"/api/v1/compare/jobs/{job['id']}/runs", method="POST")
        while run["status"] in ("queued", "running"):
            time.sleep(0.5)
            run = _api_get(hub, "rsj_res", f"/api/v1/compare/runs/{run['id']}")
        assert run["status"] == "succeeded", run
        if run["hits"] == planted:
            break
        assert time.monotonic() < deadline, f"the demo's stores did not fill: {run}"
        time.sleep(3)
    wait_until = time.monotonic() + 120
    while len(_delivered(DATA_DIRS[hub])) < planted:
        assert time.monotonic() < wait_until, _delivered(DATA_DIRS[hub])
        time.sleep(1)
    received = _delivered(DATA_DIRS[hub])
    assert set(received.values()) == {"pending"}
    cases = _api_get(hub, "rsj_res", f"/api/v1/compare/jobs/{job['id']}/cases?limit=100")
    assert {c["values"]["pay.sfzhm"] for c in cases["items"]} == set(received)
    first = cases["items"][0]
    _api_get(
        hub,
        "rsj_res",
        f"/api/v1/compare/cases/{first['id']}/steps",
        method="POST",
        body={"state": "checking", "note": "已转经办窗口核查"},
    )
    number = first["values"]["pay.sfzhm"]
    while _delivered(DATA_DIRS[hub]).get(number) != "checking":
        assert time.monotonic() < wait_until, _delivered(DATA_DIRS[hub])
        time.sleep(1)
