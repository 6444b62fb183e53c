"""Catalog import and duplicate names in a real browser against a real hub process.

A registrar of 公安 compiles an entry named like one the department already has, is
told so beside the name and confirms it; then uploads a spreadsheet whose entry is
also named so, reads the error report (row, column, reason) and imports it confirmed.
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path
from typing import Any

import pytest

from govshare.catalog.spreadsheet import HEADERS
from tests.e2e.test_console_browser import browser, demo_hub, fill_item, page, sign_in

pytestmark = pytest.mark.browser
__all__ = ["browser", "demo_hub", "page"]  # fixtures shared with the console scenario

TAKEN = "居住证办理信息"  # a demo entry of 公安


def _import_file(path: Path) -> Path:
    row = dict.fromkeys(HEADERS, "")
    row.update(
        {
            "资源序号": "1",
            "信息资源名称": TAKEN,
            "信息资源分类": "101001",
            "信息资源摘要": "浏览器导入测试",
            "信息资源格式": "数据库",
            "共享类型": "无条件共享",
            "共享方式": "接口调用",
            "更新周期": "每日",
            "信息项名称": "公民身份号码",
            "信息项代码": "sfzhm",
            "数据类型": "C",
            "数据长度": "18",
        }
    )
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(HEADERS)
    writer.writerow([row[h] for h in HEADERS])
    path.write_text(out.getvalue(), encoding="utf-8")
    return path


def test_duplicate_name_is_confirmed_on_the_form_and_the_import(
    demo_hub: str, page: Any, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    hub = demo_hub
    sign_in(page, hub, "gaj_reg")
    page.goto(f"{hub}/catalog/resources/new")
    page.get_by_label("信息资源分类").select_option("101001")
    page.get_by_label("信息资源名称").fill(TAKEN)
    page.get_by_label("信息资源摘要").fill("同名但内容不同的居住证信息，用于浏览器测试。")
    page.get_by_label("信息资源格式").select_option("database")
    page.get_by_label("更新周期").select_option("daily")
    page.get_by_label("无条件共享").check()
    page.get_by_label("接口调用").check()
    fill_item(page, 0, "公民身份号码", "sfzhm", "C", "18")
    page.get_by_role("button", name="保存草稿").click()

    name_field = page.locator(".field").filter(has=page.get_by_label("信息资源名称"))
    expect(name_field.locator(".field-error")).to_contain_text("本部门已有同名目录")
    page.get_by_label(re.compile("确认重名")).check()
    page.get_by_role("button", name="保存草稿").click()
    page.wait_for_url(re.compile(r"/catalog/resources/\d+\?done=created$"))

    page.goto(f"{hub}/catalog/import")
    page.get_by_label("XLSX 或 CSV 文件").set_input_files(str(_import_file(tmp_path / "dup.csv")))
    page.get_by_role("button", name="校验并导入").click()
    report = page.locator("#import-errors")
    expect(report).to_contain_text("信息资源名称")
    expect(report).to_contain_text("本部门已有同名目录")
    page.get_by_label("XLSX 或 CSV 文件").set_input_files(str(tmp_path / "dup.csv"))
    page.get_by_label(re.compile("确认重名")).check()
    page.get_by_role("button", name="校验并导入").click()
    page.wait_for_url(re.compile(r"/catalog/mine\?status=draft&done=imported$"))
