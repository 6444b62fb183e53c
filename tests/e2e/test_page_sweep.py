"""Every console page, as every demo role, in a real browser.

The list of pages comes from the application's own route table, so a page added later
is swept without touching this test. Each page must answer without a server error, run
without a script or console error, carry a title, and speak Chinese: Latin-letter words
in the visible text are codes and units from a short allow-list, or data the user
entered (shown in ``<code>``), or the page fails.
"""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from govshare.app import create_app
from tests.conftest import make_settings
from tests.e2e.test_console_browser import (
    CHROMIUM,
    CHROMIUM_ARGS,
    PASSWORD,
    _free_port,
    _wait_healthy,
    sign_in,
)
from tests.test_route_permissions import api_routes

pytestmark = pytest.mark.browser

# One of each demo role: platform admin, auditor, and a department's registrar,
# reviewer and resource admin (src/govshare/demo.py), and its 公文收发员 (demo_documents.py).
ROLES = ["admin", "auditor", "gaj_reg", "gaj_rev", "gaj_res", "gaj_doc"]
# The demo runs no catalog import, so an import job's page has no id to visit.
WITHOUT_DEMO_IDS = {
    "/catalog/import/jobs/{job_id}",
    # Conflicts open once the demo nodes have fed the base databases' stores, which
    # may be after the ids are read.
    "/basedata/conflicts/{conflict_id}",
    # The demo's comparison jobs (one per template) are run by people, not at start.
    "/compare/runs/{run_id}/progress",
    "/compare/cases/{case_id}",
}

# Console GET routes that are not pages a user reads.
NOT_PAGES = {"/login", "/healthz", "/openapi.json", "/docs", "/docs/oauth2-redirect"}
# Downloads, not pages (tests/compare/test_pages.py fetches them as each role).
NOT_PAGES |= {
    "/compare/jobs/{compare_job_id}/cases.csv",
    "/compare/jobs/{compare_job_id}/cases.xlsx",
    "/compare/jobs/{compare_job_id}/delivery-entry.xlsx",  # tests/compare/test_delivery.py
    "/documents/{document_id}/download",  # tests/documents/test_pages.py
}

# Words in Latin letters a Chinese page may show: codes, standards and units.
ALLOWED_WORDS = {
    "API",
    "ID",
    "CSV",
    "XLSX",
    "JSON",
    "SM2",
    "SM3",
    "SM4",
    "HMAC",
    "URL",
    "GB",  # national standards: GB 11643, GB/T 2261.1
    "GB/T",
    "DCAT",
    "PDF",
    "SQL",
    "IP",
    "HTTP",
    "HTTPS",
    "Excel",  # the spreadsheet the catalog imports and exports
    "GB18030",  # the CSV encodings the import reads
    "UTF",
    "RESTful",  # a sharing mode's name in the demo's code table
    "Prometheus",  # the monitoring system whose format /metrics speaks
}
# Login names of the demo accounts and the departments' codes (data, not prose).
ALLOWED_PATTERNS = [
    re.compile(r"^(admin|auditor|[a-z]{2,4}_(reg|rev|res|doc))$"),
    re.compile(r"^v\d+(\.\d+)*$"),  # version strings
    re.compile(r"^[A-Z](/[A-Z])*$"),  # data type codes of GB/T 21063 (字符型C)
]
# Removed before the words are read: what the user entered or the system names.
DATA_PATTERNS = [
    re.compile(r"[\w.+-]+@[\w-]+(\.[\w-]+)+"),  # e-mail addresses
    re.compile(r"\b[a-z][a-z0-9+.-]*://\S+"),  # URLs
    re.compile(r"\d\s*(B|KB|MB|GB|KiB|MiB|GiB|ms|s|min|px)\b"),  # numbers with units
]
WORD = re.compile(r"[A-Za-z][A-Za-z0-9_]*(?:[/.][A-Za-z0-9_]+)*")

VISIBLE_TEXT = """() => {
  // Data values (codes of tables and columns, hashes, tokens, paths) are shown in
  // monospace; they are what was entered or computed, not what the console says.
  for (const el of document.querySelectorAll("code, pre, kbd, samp, .mono")) el.remove();
  return document.body ? document.body.innerText : "";
}"""


# Charts: one with no data says so (暂无数据) instead of drawing an axis from 0 to 1.
CHARTS = """() => {
  const out = [];
  for (const el of document.querySelectorAll("[data-chart], [data-series-chart]")) {
    const id = el.getAttribute("data-chart") || el.getAttribute("data-series-chart");
    const spec = JSON.parse(document.getElementById(id).textContent);
    const series = spec.series ? spec.series.map((s) => s.values) : [spec.values];
    const empty = series.every((v) => !v.length || v.every((x) => !x));
    if (empty && (el.querySelector("svg") || !el.innerText.includes("暂无数据")))
      out.push(`chart ${id} has no data but does not say 暂无数据`);
    if (!empty && !el.querySelector("svg")) out.push(`chart ${id} is not drawn`);
  }
  return out;
}"""

# Sections of a page do not touch: each block of the main column keeps a gap to the next.
SPACING = """() => {
  const kids = [...document.querySelectorAll("#main > *")].filter(
    (e) => e.getBoundingClientRect().height > 0);
  const out = [];
  for (let i = 1; i < kids.length; i++) {
    const a = kids[i - 1].getBoundingClientRect(), b = kids[i].getBoundingClientRect();
    if (b.top - a.bottom < 4) {
      const name = (e) => e.tagName.toLowerCase() + (e.className ? "." + e.className : "");
      out.push(`no space between ${name(kids[i - 1])} and ${name(kids[i])}`);
    }
  }
  return out;
}"""


@dataclass(frozen=True)
class Problem:
    role: str
    url: str
    problem: str

    def __str__(self) -> str:
        return f"{self.role:8} {self.url}: {self.problem}"


def console_get_routes(tmp: Path) -> list[str]:
    """The console's GET paths, from the application's route table."""
    app = create_app(make_settings(tmp))
    try:
        paths = sorted(
            path
            for path, route in api_routes(app.routes)
            if "GET" in route.methods
            # The public open-data portal has no console layout and no roles; its pages
            # are swept by tests/opendata (test_portal.py, test_portal_browser.py).
            and not path.startswith(("/api/", "/static", "/open/"))
            and path not in NOT_PAGES
        )
    finally:
        app.state.engine.dispose()
    return paths


def _ids(db: Path) -> dict[str, list[int]]:
    """Real ids for each path parameter: one resource per status, the first of the
    rest. An empty list means the demo has none (the page is skipped and reported)."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:

        def first(sql: str) -> list[int]:
            return [int(r[0]) for r in con.execute(sql).fetchall()]

        return {
            "resource_id": first("SELECT MIN(id) FROM resource GROUP BY status ORDER BY 1"),
            "job_id": first("SELECT id FROM catalog_import_job ORDER BY id LIMIT 1"),
            "node_id": first("SELECT id FROM exchange_node ORDER BY id LIMIT 1"),
            "task_id": first("SELECT id FROM exchange_task ORDER BY id LIMIT 1"),
            "application_id": first(
                "SELECT MIN(id) FROM sharing_application GROUP BY status ORDER BY 1"
            ),
            "objection_id": first("SELECT id FROM sharing_objection ORDER BY id LIMIT 1"),
            "client_id": first("SELECT id FROM api_client ORDER BY id LIMIT 1"),
            "conflict_id": first("SELECT id FROM base_conflict ORDER BY id LIMIT 1"),
            "compare_job_id": first("SELECT id FROM compare_job ORDER BY id LIMIT 1"),
            "run_id": first("SELECT id FROM compare_run ORDER BY id LIMIT 1"),
            "case_id": first("SELECT id FROM compare_case ORDER BY id LIMIT 1"),
            "collab_case_id": first("SELECT id FROM collab_case ORDER BY id LIMIT 1"),
            "department_id": first("SELECT id FROM department ORDER BY id LIMIT 1"),
            "demand_id": first("SELECT MIN(id) FROM open_demand GROUP BY department_id ORDER BY 1"),
            "document_id": first("SELECT id FROM document ORDER BY id LIMIT 1"),
        }
    finally:
        con.close()


def expand(paths: list[str], ids: dict[str, list[int]]) -> tuple[list[str], list[str]]:
    """Concrete URLs for the route paths, and the paths left out for want of an id."""
    urls: list[str] = []
    missing: list[str] = []
    for path in paths:
        params = re.findall(r"\{(\w+)\}", path)
        if not params:
            urls.append(path)
            continue
        (param,) = params  # every console page has at most one
        if not ids.get(param):
            missing.append(path)
        for value in ids.get(param, []):
            urls.append(path.replace("{" + param + "}", str(value)))
    # Query-selected views of the same pages.
    urls += [
        "/catalog/review?queue=publication",
        "/sharing/usage?side=provider",
        "/sharing/stats?side=provider",
        "/no-such-page",  # the 404 page passes the same checks
    ]
    return urls, missing


def latin_words(text: str) -> list[str]:
    for pattern in DATA_PATTERNS:
        text = pattern.sub(" ", text)
    found = []
    for word in WORD.findall(text):
        if word in ALLOWED_WORDS or any(p.match(word) for p in ALLOWED_PATTERNS):
            continue
        found.append(word)
    return sorted(set(found))


def test_latin_words_keeps_codes_and_drops_prose() -> None:
    text = "下载 CSV 模板（API 1.2.3，5 MB）gaj_reg a@b.cn https://x.cn/y not found"
    assert latin_words(text) == ["found", "not"]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """``govshare serve --demo`` and its data directory (to read real ids from)."""
    data_dir = tmp_path_factory.mktemp("sweep-hub")
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOVSHARE_")}
    env["GOVSHARE_ADMIN_PASSWORD"] = PASSWORD
    # Its watcher looks at the real disk: below 10 % free (CI machines, this one at
    # times) a 磁盘空间不足 alert naming the data directory's path reached /exchange.
    env["GOVSHARE_DISK_FREE_ALERT_PERCENT"] = "0.1"
    cli = Path(sys.executable).parent / "govshare"
    log = (data_dir / "hub.log").open("wb")
    args = ["serve", "--demo", "--data-dir", str(data_dir), "--host", "127.0.0.1"]
    proc = subprocess.Popen(
        [str(cli), *args, "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, proc)
        yield url, data_dir
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


class InFlight:
    """The page's requests not yet answered. Waiting until there are none is what
    Playwright's ``networkidle`` does, less its fixed half second of quiet per page:
    over every page as every role that half second was most of the sweep's time."""

    def __init__(self, page: Any) -> None:
        self.requests: set[Any] = set()
        # Functions of our own: Playwright reads its handlers' signatures, which the
        # set's built-in methods lack.
        page.on("request", lambda r: self.requests.add(r))
        page.on("requestfinished", lambda r: self.requests.discard(r))
        page.on("requestfailed", lambda r: self.requests.discard(r))

    def settle(self, page: Any, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        while self.requests and time.monotonic() < deadline:
            page.wait_for_timeout(10)  # lets Playwright deliver the events


def check_page(
    page: Any, hub: str, role: str, url: str, errors: list[str], in_flight: InFlight
) -> list[Problem]:
    problems: list[Problem] = []

    def add(what: str) -> None:
        problems.append(Problem(role, url, what))

    errors.clear()
    response = page.goto(hub + url, wait_until="load")
    in_flight.settle(page)
    status = response.status if response else 0
    if status >= 500 or status == 0 or status not in (200, 403, 404, 409):
        add(f"HTTP {status}")
    ctype = response.headers.get("content-type", "") if response else ""
    if "text/html" not in ctype:
        return problems  # a download, not a page
    title = page.title().strip()
    if not title or not title.split("·")[0].strip():
        add(f"no title ({title!r})")
    if status in (403, 404) and not page.locator("nav.sidebar").count():
        add(f"the {status} page lost the console's layout")
    problems += [Problem(role, url, e) for e in errors]
    problems += [Problem(role, url, p) for p in page.evaluate(CHARTS)]
    problems += [Problem(role, url, p) for p in page.evaluate(SPACING)]
    words = latin_words(page.evaluate(VISIBLE_TEXT))
    if words:
        add("Latin-letter words: " + " ".join(words))
    return problems


def test_every_console_page_as_every_role(
    demo: tuple[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if not CHROMIUM.exists():
        pytest.skip("Debian chromium is not installed")
    sync_api = pytest.importorskip("playwright.sync_api")
    hub, data_dir = demo
    urls, missing = expand(console_get_routes(tmp_path), _ids(data_dir / "govshare.db"))
    assert len(urls) > 30
    problems: list[Problem] = []
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            for role in ROLES:
                context = browser.new_context(
                    locale="zh-CN", viewport={"width": 1440, "height": 1000}
                )
                page = context.new_page()
                page.set_default_timeout(60_000)
                errors: list[str] = []
                in_flight = InFlight(page)
                page.on("pageerror", lambda e, errors=errors: errors.append(f"script error: {e}"))
                page.on(
                    "console",
                    lambda m, errors=errors: (
                        errors.append(f"console {m.type}: {m.text}")
                        if m.type == "error" and not re.search(r"status of 4\d\d", m.text)
                        else None
                    ),
                )
                page.on(
                    "response",
                    lambda r, errors=errors: (
                        errors.append(f"HTTP {r.status} for {r.url}") if r.status >= 500 else None
                    ),
                )
                try:
                    sign_in(page, hub, role)
                    for url in urls:
                        problems += check_page(page, hub, role, url, errors, in_flight)
                finally:
                    context.close()
        finally:
            browser.close()
    with capsys.disabled():
        if missing:
            print("\nno demo ids for:", ", ".join(missing))
    assert not problems, f"{len(problems)} problems:\n" + "\n".join(map(str, problems))
    # A new page whose ids the demo lacks goes unvisited: it must say so here, on purpose.
    assert set(missing) <= WITHOUT_DEMO_IDS, f"pages without demo ids: {missing}"
