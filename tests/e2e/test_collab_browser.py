"""A one-window case in a real browser against the demo hub: the window officer
accepts an application, three departments each claim and decide their task — one of
them with an earlier task past its deadline, flagged in its queue and alerted — the
case closes with one combined answer, and the applicant looks it up without logging
in."""

from __future__ import annotations

import random
import re
from typing import Any

import pytest

from govshare.demo_sharing import id_number
from tests.e2e.test_console_browser import browser, demo_hub, page, sign_in, sign_out

pytestmark = pytest.mark.browser
__all__ = ["browser", "demo_hub", "page"]


def _decide(pg: Any, hub: str, username: str, task_name: str, button: str) -> None:
    from playwright.sync_api import expect

    sign_in(pg, hub, username)
    pg.get_by_role("link", name="本部门待办").click()
    row = pg.locator("#queue tr").filter(has_text=task_name).filter(has_text="赵六")
    row.get_by_role("link").click()
    task = pg.locator("#tasks tr").filter(has_text=task_name)
    task.get_by_role("button", name="认领").click()
    expect(pg.get_by_role("status")).to_contain_text("已认领")
    task = pg.locator("#tasks tr").filter(has_text=task_name)
    task.get_by_label("意见说明").fill("经审核，符合条件" if button == "同意" else "不符合条件")
    task.get_by_role("button", name=button, exact=True).click()
    expect(pg.get_by_role("status")).to_contain_text("已办理")
    sign_out(pg, hub)


def test_one_window_case_across_three_departments(demo_hub: str, page: Any) -> None:
    from playwright.sync_api import expect

    hub, pg = demo_hub, page
    applicant = id_number(random.Random(2024))
    sign_in(pg, hub, "dsj_window")
    pg.get_by_role("link", name="窗口受理").click()
    form = pg.locator("#apply-assistance_one_window")
    form.get_by_label("申请人姓名").fill("赵六")
    form.get_by_label("公民身份号码", exact=True).fill("370202199001011235")  # wrong check digit
    form.get_by_label("最低生活保障").check()
    form.get_by_role("button", name="受理并分送").click()
    expect(pg.locator(".notice-error")).to_contain_text("申请信息不正确")
    form = pg.locator("#apply-assistance_one_window")
    form.get_by_label("公民身份号码", exact=True).fill(applicant)
    form.get_by_label("最低生活保障").check()
    form.get_by_label("公共租赁住房").check()
    form.get_by_role("button", name="受理并分送").click()
    pg.wait_for_url(re.compile(r"/collab/cases/\d+\?done=accepted$"))
    number = pg.locator("h1 .mono").inner_text().strip()
    expect(pg.locator("#tasks tr")).to_have_count(4)  # header and three departments
    sign_out(pg, hub)

    # 残联's queue also holds the demo's earlier case, whose time is up.
    sign_in(pg, hub, "cl_case")
    pg.get_by_role("link", name="本部门待办").click()
    expect(pg.locator("#queue .overdue")).to_have_count(1)
    expect(pg.locator("#queue .overdue")).to_contain_text("已超期")
    sign_out(pg, hub)

    _decide(pg, hub, "mzj_case", "民政审核", "同意")
    _decide(pg, hub, "cl_case", "残联审核", "同意")
    _decide(pg, hub, "zjj_case", "住建审核", "不同意")

    sign_in(pg, hub, "admin")
    pg.get_by_role("link", name="告警", exact=True).click()
    expect(pg.locator("body")).to_contain_text("协同任务超期")
    pg.get_by_role("link", name="协同办件").click()
    pg.get_by_role("link", name=number).click()
    expect(pg.locator(".page-head")).to_contain_text("部分同意")
    expect(pg.locator("#steps")).to_contain_text("办结")
    sign_out(pg, hub)

    pg.goto(f"{hub}/case-lookup")
    pg.get_by_label("办件编号").fill(number)
    pg.get_by_label("公民身份号码", exact=True).fill(applicant)
    pg.get_by_role("button", name="查 询").click()
    result = pg.locator("#lookup-result")
    expect(result).to_contain_text("已办结")
    expect(result).to_contain_text("住建审核")
    expect(result).not_to_contain_text("赵六")
    expect(result).not_to_contain_text(applicant)
