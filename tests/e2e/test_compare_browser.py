"""A comparison job in a real browser against a real hub process (``govshare serve``).

人社's officer pastes the dead-pension definition into the console form, runs it and
watches the progress bar until the run ends, opens a case, marks it 核查中 and then 属实
(first without the required note), and reads the changed counts on the job page; the
pages draw their charts under the Content-Security-Policy without a script error.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.orm import Session, sessionmaker

from govshare import db
from govshare.config import Settings
from tests.compare.builders import PensionScene, dead_pension, grant, pension_scene
from tests.conftest import TEST_SECRET, make_settings, migrated
from tests.e2e.test_console_browser import (
    CSP_LISTENER,
    _free_port,
    _wait_healthy,
    browser,
    page,
)
from tests.factories import PASSWORD, World

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("compare")]
__all__ = ["browser", "page"]  # fixtures shared with the console scenario


@dataclass
class ProcessHub:
    """What the test builders need of a hub (``tests.live.LiveHub``), for a hub that
    runs as its own process: its database, and API tokens over HTTP."""

    settings: Settings
    base_url: str
    session_factory: sessionmaker[Session]
    _tokens: dict[str, str] = field(default_factory=dict)

    def client(self, token: str | None = None, **kw: Any) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.base_url, headers=headers, timeout=30, **kw)

    def token(self, username: str, password: str) -> str:
        if username not in self._tokens:
            with self.client() as c:
                r = c.post("/api/v1/auth/token", json={"username": username, "password": password})
                r.raise_for_status()
                self._tokens[username] = r.json()["access_token"]
        return self._tokens[username]

    @contextmanager
    def db(self) -> Iterator[Session]:
        with db.session_scope(self.session_factory) as s:
            yield s


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProcessHub]:
    """``govshare serve`` on a migrated SQLite data dir, its runner looking every half
    second for queued runs."""
    tmp = tmp_path_factory.mktemp("compare-hub")
    settings = migrated(make_settings(tmp / "data"))
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOVSHARE_")}
    env |= {"GOVSHARE_SECRET_KEY": TEST_SECRET, "GOVSHARE_COMPARE_POLL_SECONDS": "0.5"}
    args = ["serve", "--data-dir", str(settings.data_dir), "--host", "127.0.0.1"]
    log = (tmp / "hub.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "govshare.cli", *args, "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    engine = db.make_engine(settings)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, proc)
        yield ProcessHub(settings, url, db.make_session_factory(engine, settings))
    finally:
        engine.dispose()
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.fixture(scope="module")
def scene(hub: ProcessHub) -> PensionScene:
    world = World(hub)  # type: ignore[arg-type]  # a LiveHub in all the builders use
    s = pension_scene(world)
    grant(world, s.police, s.social, s.people.resource_id, ["sfzhm", "swrq"])
    return s


def sign_in(page: Any, hub: str, username: str) -> None:
    from playwright.sync_api import expect

    page.goto(f"{hub}/login")
    page.get_by_label("用户名").fill(username)
    page.get_by_label("密码").fill(PASSWORD)
    page.get_by_role("button", name="登 录").click()
    page.wait_for_url(f"{hub}/")
    expect(page.locator(".who-name")).to_be_visible()


def test_create_run_and_work_a_case_in_the_browser(
    hub: ProcessHub, scene: PensionScene, page: Any, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    url = hub.base_url
    page.context.add_init_script(CSP_LISTENER)
    problems: list[str] = []
    page.on("pageerror", lambda e: problems.append(f"pageerror: {e}"))
    page.on(
        "console",
        lambda m: (
            problems.append(f"{m.type}: {m.text}")
            if m.type == "error" and not re.search(r"status of 4\d\d", m.text)  # a refused form
            else None
        ),
    )
    definition = dead_pension(scene)
    for key in ("name", "department_id"):
        definition.pop(key)

    sign_in(page, url, scene.social.resource_admin)
    page.get_by_role("link", name="比对任务").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("比对任务")
    page.get_by_role("link", name="新建任务").click()
    page.get_by_label("任务名称").fill("死亡人员仍领取养老金")
    page.get_by_label("比对定义（JSON）").fill('{"inputs": [')
    page.get_by_role("button", name="保存任务").click()
    definition_field = page.locator(".field").filter(has=page.get_by_label("比对定义（JSON）"))
    expect(definition_field.locator(".field-error")).to_contain_text("第 1 行第 13 列")
    page.get_by_label("比对定义（JSON）").fill(json.dumps(definition, ensure_ascii=False, indent=2))
    page.get_by_role("button", name="保存任务").click()
    page.wait_for_url(re.compile(r"/compare/jobs/\d+\?done=job_saved$"))
    job_url = page.url.split("?")[0]
    expect(page.get_by_role("status")).to_contain_text("比对任务已保存")
    expect(page.locator("#inputs")).to_contain_text("公民身份号码")

    # The run: the page shows it queued or running, follows it, and loads again at its end.
    page.get_by_role("button", name="立即运行").click()
    page.wait_for_url(re.compile(r"done=queued$"))
    expect(page.locator("#current-run progress")).to_be_attached()
    page.wait_for_url(re.compile(r"done=finished$"))
    expect(page.get_by_role("status")).to_contain_text("运行已结束")
    expect(page.locator("#current-run")).to_have_count(0)
    expect(page.locator("#run-rows tbody tr").first).to_contain_text("已完成")
    expect(page.locator("#count-pending")).to_have_text("3")
    expect(page.locator("[data-series-chart='chart-compare-hits'] svg").first).to_be_attached()
    expect(page.locator("[data-chart='chart-compare-states'] svg").first).to_be_attached()

    # A case, worked through to 属实.
    page.get_by_role("link", name="线索", exact=True).click()
    expect(page.locator("#cases tbody tr")).to_have_count(3)
    page.locator("#cases tbody tr").first.get_by_role("link").click()
    expect(page.locator("#case-state")).to_have_text("待核查")
    page.get_by_label("改为").select_option(label="核查中")
    page.get_by_role("button", name="更新状态").click()
    expect(page.get_by_role("status")).to_contain_text("线索状态已更新")
    expect(page.locator("#case-state")).to_have_text("核查中")
    page.get_by_label("改为").select_option(label="属实")
    page.get_by_role("button", name="更新状态").click()
    note_field = page.locator(".field").filter(has=page.get_by_label("核查说明"))
    expect(note_field.locator(".field-error")).to_be_visible()
    expect(page.locator(".notice-error")).to_contain_text("须填写核查说明")
    page.get_by_label("改为").select_option(label="属实")
    page.get_by_label("核查说明").fill("经社区核实，该人员已死亡，养老金被冒领")
    page.get_by_role("button", name="更新状态").click()
    expect(page.locator("#case-state")).to_have_text("属实")
    expect(page.locator("#history")).to_contain_text("经社区核实")

    page.goto(job_url)
    expect(page.locator("#count-pending")).to_have_text("2")
    expect(page.locator("#count-confirmed")).to_have_text("1")
    expect(page.locator("#confirmed-rate")).to_have_text("100.0%")
    expect(page.locator("#amount-confirmed")).to_have_text("3,000.50")
    page.screenshot(path=str(tmp_path / "compare-job.png"), full_page=True)
    problems.extend(page.evaluate("window.__cspViolations"))
    assert problems == []


def test_a_job_from_a_built_in_template(hub: ProcessHub, page: Any) -> None:
    """人社 picks 死亡人员仍领取养老金 from the templates: the form comes filled in with
    the entries the template names, resolved to this hub's codes; saved and run, it
    finds the planted cases, and one is marked 属实."""
    from playwright.sync_api import expect

    world = World(hub)  # type: ignore[arg-type]
    s = pension_scene(world, as_template=True)
    grant(world, s.police, s.social, s.people.resource_id, ["sfzhm", "swrq"])
    url = hub.base_url
    sign_in(page, url, s.social.resource_admin)
    page.goto(f"{url}/compare")
    page.get_by_role("link", name="从模板新建").click()
    row = page.locator("#templates tr").filter(has_text="死亡人员仍领取养老金")
    row.get_by_role("link", name="使用此模板").click()
    expect(page.get_by_label("任务名称")).to_have_value("死亡人员仍领取养老金")
    expect(page.get_by_label("比对定义（JSON）")).to_contain_text('"id18"')
    page.get_by_role("button", name="保存任务").click()
    page.wait_for_url(re.compile(r"/compare/jobs/\d+\?done=job_saved$"))
    expect(page.locator("#inputs")).to_contain_text("养老金发放信息")
    page.get_by_role("button", name="立即运行").click()
    page.wait_for_url(re.compile(r"done=finished$"))
    expect(page.locator("#count-pending")).to_have_text("3")
    page.get_by_role("link", name="线索", exact=True).click()
    page.locator("#cases tbody tr").first.get_by_role("link").click()
    page.get_by_label("改为").select_option(label="核查中")
    page.get_by_role("button", name="更新状态").click()
    expect(page.locator("#case-state")).to_have_text("核查中")
    page.get_by_label("改为").select_option(label="属实")
    page.get_by_label("核查说明").fill("死亡后仍发放，已停发并追回")
    page.get_by_role("button", name="更新状态").click()
    expect(page.locator("#case-state")).to_have_text("属实")
