"""Spreadsheet import: every bad row reported with row, column and reason; all or nothing."""

from __future__ import annotations

import csv
import io
import time
from dataclasses import dataclass
from typing import Any

from openpyxl import Workbook, load_workbook

from govshare.catalog.spreadsheet import HEADERS
from tests.catalog.console import csrf_of, error_rows, follow_import, resource_form, signed_in
from tests.factories import World, unique

ITEM_COLUMNS = {
    "资源序号",
    "信息项名称",
    "信息项代码",
    "数据类型",
    "数据长度",
    "信息项描述",
    "代码表",
    "是否主键",
}


def _row(key: str, name: str, item: str, code: str, *, more: bool = False, **kw: str) -> list[str]:
    """One spreadsheet row; ``more`` marks a further item row of the same entry."""
    values = {
        "资源序号": key,
        "信息资源名称": name,
        "信息资源分类": "101001",
        "信息资源摘要": "导入测试摘要",
        "信息资源格式": "数据库",
        "共享类型": "有条件共享",
        "共享条件": "仅用于法定职责",
        "共享方式": "库表交换、接口调用",
        "是否向社会开放": "否",
        "更新周期": "每日",
        "信息项名称": item,
        "信息项代码": code,
        "数据类型": "C",
        "数据长度": "18",
        "是否主键": "否",
    }
    if more:
        values = {k: v for k, v in values.items() if k in ITEM_COLUMNS}
    values.update(kw)
    return [values.get(h, "") for h in HEADERS]


def _csv(rows: list[list[str]]) -> bytes:
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(HEADERS)
    w.writerows(rows)
    return out.getvalue().encode("utf-8")


def _xlsx(rows: list[list[str]]) -> bytes:
    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.append(HEADERS)
    for r in rows:
        ws.append(r)
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


@dataclass
class Imported:
    """An upload followed to its end: the finished import job, or the refusal of the
    upload itself (a file that is no spreadsheet at all)."""

    job: dict[str, Any] | None
    refused: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        return self.job is not None and self.job["status"] == "done"

    @property
    def error(self) -> dict[str, Any] | None:
        return self.refused or (self.job or {}).get("error")

    @property
    def resource_ids(self) -> list[int]:
        return list((self.job or {}).get("resource_ids", []))

    @property
    def text(self) -> str:
        return repr(self.job or self.refused)[:2000]


def exported_column(world: World, resource_id: int, header: str) -> dict[str, Any]:
    """The entry's items in the catalog's export workbook: item code → the cell of the
    column ``header``."""
    from govshare.catalog import spreadsheet
    from govshare.catalog.models import Resource
    from govshare.catalog.service import CodeTables

    with world.hub.db() as s:
        resource = s.get(Resource, resource_id)
        assert resource is not None
        exported = spreadsheet.export_xlsx([resource], CodeTables(s))
    sheet = list(
        load_workbook(io.BytesIO(exported), read_only=True)["目录"].iter_rows(values_only=True)
    )
    column, code_column = sheet[0].index(header), sheet[0].index("信息项代码")
    return {r[code_column]: r[column] for r in sheet[1:] if r[code_column]}


def _import(world: World, user: str, filename: str, content: bytes, **params: str) -> Imported:
    """Upload a file and wait for its import job to finish."""
    with world.api(user) as c:
        r = c.post("/api/v1/catalog/import", files={"file": (filename, content)}, params=params)
        if r.status_code not in (200, 202):
            assert r.status_code == 422, r.text
            return Imported(None, r.json()["error"])
        job = r.json()
        deadline = time.monotonic() + 120
        while job["status"] not in ("done", "failed"):
            assert time.monotonic() < deadline, job
            time.sleep(0.05)
            job = c.get(f"/api/v1/catalog/import/jobs/{job['id']}").json()
        return Imported(job)


def _count_mine(world: World, user: str, q: str) -> int:
    with world.api(user) as c:
        return int(
            c.get("/api/v1/catalog/resources", params={"q": q, "scope": "mine"}).json()["total"]
        )


def test_good_file_imports_every_entry_as_draft(world: World) -> None:
    dept = world.department()
    marker = unique("导入")
    rows = [
        _row("1", f"{marker}人口", "公民身份号码", "sfzhm", 是否主键="是"),
        _row("1", "", "姓名", "xm", more=True, 数据长度="50"),
        _row(
            "2",
            f"{marker}法人",
            "统一社会信用代码",
            "tyshxydm",
            信息资源分类="102001",
            共享类型="无条件共享",
            共享条件="",
        ),
    ]
    for filename, content in [("a.csv", _csv(rows)), ("a.xlsx", _xlsx(rows))]:
        # The second file repeats the first's entries: knowingly, so confirmed.
        r = _import(world, dept.registrar, filename, content, confirm_duplicates="true")
        assert r.ok, r.text
        with world.api(dept.registrar) as c:
            created = [c.get(f"/api/v1/catalog/resources/{i}").json() for i in r.resource_ids]
        assert [c["status"] for c in created] == ["draft", "draft"]
        assert created[1]["sharing_type"] == "1"
    assert _count_mine(world, dept.registrar, marker) == 4
    with world.api(dept.registrar) as c:
        first = c.get(f"/api/v1/catalog/resources/{created[0]['id']}").json()
    assert [i["code"] for i in first["items"]] == ["sfzhm", "xm"]
    assert first["items"][0]["is_key"] is True
    assert first["sharing_modes"] == ["table", "api"]


def test_mixed_file_reports_every_bad_row_and_stores_nothing(world: World) -> None:
    dept = world.department()
    marker = unique("坏行")
    rows = [
        _row("1", f"{marker}好", "公民身份号码", "sfzhm"),
        _row("2", f"{marker}坏一", "金额", "je", 数据类型="Q"),  # row 3
        _row(
            "3",
            f"{marker}坏二",
            "姓名",
            "xm",
            更新周期="每两小时",
            共享类型="有条件共享",
            共享条件="",
        ),  # row 4
        _row("3", "", "年龄", "nl", more=True, 数据长度="十二"),  # row 5
        _row("4", f"{marker}坏三", "日期", "rq", 信息资源分类="999"),  # row 6
        _row("", f"{marker}无序号", "姓名", "xm"),  # row 7
        _row("5", f"{marker}坏四", "姓名", "xm", 是否向社会开放="也许"),  # row 8
        _row("5", "", "性别", "xb", more=True, 信息资源名称=f"{marker}名称不一致"),  # row 9
    ]
    for filename, content in [("mixed.csv", _csv(rows)), ("mixed.xlsx", _xlsx(rows))]:
        r = _import(world, dept.registrar, filename, content)
        assert r.error, r.text
        err = r.error
        assert err["code"] == "import_rejected"
        found = {(d["row"], d["column"]) for d in err["details"]}
        assert found == {
            (3, "数据类型"),
            (4, "更新周期"),
            (4, "共享条件"),
            (5, "数据长度"),
            (6, "信息资源分类"),
            (7, "资源序号"),
            (8, "是否向社会开放"),
            (9, "信息资源名称"),
        }, err["details"]
        assert all(d["message"] for d in err["details"])
    assert _count_mine(world, dept.registrar, marker) == 0


def test_missing_required_columns_are_named(world: World) -> None:
    dept = world.department()
    content = "资源序号,信息资源名称\n1,测试\n".encode()
    err = _import(world, dept.registrar, "x.csv", content).error
    assert err["code"] == "import_rejected"
    assert "信息资源分类" in err["message"]


def test_unsupported_and_damaged_files_are_refused(world: World) -> None:
    dept = world.department()
    assert _import(world, dept.registrar, "x.pdf", b"%PDF").error["code"] == "import_rejected"
    assert _import(world, dept.registrar, "x.xlsx", b"not a zip").error
    assert _import(world, dept.registrar, "x.csv", b"\xff\xfe\x00bad").error
    assert _import(world, dept.registrar, "x.csv", ",".join(HEADERS).encode()).error


def test_csv_the_csv_module_cannot_parse_is_refused_with_its_line(world: World) -> None:
    dept = world.department()
    huge_field = _csv([_row("1", "超长摘要", "姓名", "xm", 信息资源摘要="长" * 140_000)])
    r = _import(world, dept.registrar, "x.csv", huge_field)  # over the csv module's field limit
    assert r.error, r.text
    assert r.error["code"] == "import_rejected"
    assert "第 2 行无法解析" in r.error["message"]


def test_gb18030_csv_from_excel_is_read(world: World) -> None:
    dept = world.department()
    marker = unique("国标")
    content = _csv([_row("1", f"{marker}编码", "姓名", "xm")]).decode().encode("gb18030")
    assert _import(world, dept.registrar, "gbk.csv", content).ok


def test_template_round_trips(world: World) -> None:
    dept = world.department()
    with world.api(dept.registrar) as c:
        xlsx = c.get("/api/v1/catalog/import/template", params={"format": "xlsx"}).content
        csv_t = c.get("/api/v1/catalog/import/template", params={"format": "csv"}).content
    wb = load_workbook(io.BytesIO(xlsx))
    assert [c.value for c in wb["目录"][1]] == HEADERS
    assert "填写说明" in wb.sheetnames
    # The template's example rows are themselves importable.
    assert _import(world, dept.registrar, "template.xlsx", xlsx).ok
    again = _import(world, dept.registrar, "template.csv", csv_t, confirm_duplicates="true")
    assert again.ok, again.text


def test_import_is_audited(world: World) -> None:
    dept = world.department()
    marker = unique("审计")
    _import(world, dept.registrar, "audit.csv", _csv([_row("1", f"{marker}", "姓名", "xm")]))
    with world.api(world.auditor) as c:
        entries = c.get(
            "/api/v1/audit", params={"action": "catalog.import", "actor": dept.registrar}
        ).json()
    assert entries["items"][0]["after"] == {"entries": 1, "rows": 1}


def test_unusual_digits_in_data_length_are_reported_not_crashed(world: World) -> None:
    dept = world.department()
    marker = unique("长度")
    bad = ["²", "①", "-5", "0", "18.5", "七", "1e3", "99999999"]
    rows = [_row("1", f"{marker}表", "字段0", "f0")]
    rows += [
        _row("1", "", f"字段{i}", f"f{i}", more=True, 数据长度=v) for i, v in enumerate(bad, 1)
    ]
    for filename, content in [("len.csv", _csv(rows)), ("len.xlsx", _xlsx(rows))]:
        r = _import(world, dept.registrar, filename, content)
        assert r.error, r.text
        details = r.error["details"]
        assert {(d["row"], d["column"]) for d in details} == {
            (i + 2, "数据长度") for i in range(1, len(bad) + 1)
        }, details
        for row, value in enumerate(bad, start=3):
            assert any(
                d["row"] == row and value in d["message"] and "1 至 65535" in d["message"]
                for d in details
            ), (value, details)
    assert _count_mine(world, dept.registrar, marker) == 0


def test_unusual_digits_in_the_console_import_and_form(world: World) -> None:
    dept = world.department()
    marker = unique("控制台长度")
    with signed_in(world, dept.registrar) as client:
        content = _csv([_row("1", f"{marker}表", "姓名", "xm", 数据长度="²")])
        r = client.post(
            "/catalog/import",
            data={"csrf_token": csrf_of(client)},
            files={"file": ("sup.csv", content, "text/csv")},
        )
        page = follow_import(client, r)
        assert any(row == 2 and col == "数据长度" for row, col, _ in error_rows(page.text)), (
            page.text
        )
        form = resource_form(csrf_of(client), name=f"{marker}表单")
        form["item_length"] = ["①", "50", "200", ""]
        r = client.post("/catalog/resources/new", data=form)
        assert r.status_code == 422, r.text
        assert "信息项第1行 · 数据长度" in r.text
    assert _count_mine(world, dept.registrar, marker) == 0


HOSTILE_CELLS = ["²", "①", "a\x00b", "🙂" * 3, "x" * 5000, "  ", "None", "'=1+1"]


def test_any_cell_value_is_answered_with_a_report_or_an_import(world: World) -> None:
    """Each column of an otherwise good row gets an odd value; never a 500."""
    dept = world.department()
    for value in HOSTILE_CELLS:
        marker = unique("怪值")
        rows = []
        for i, header in enumerate(HEADERS):
            if header == "资源序号":
                continue
            rows.append(_row(str(i), f"{marker}{i}", "姓名", f"xm{i}", **{header: value}))
        r = _import(world, dept.registrar, "odd.csv", _csv(rows))
        assert r.ok or (r.error or {}).get("code") == "import_rejected", (repr(value), r.text)
        if "\x00" in value:
            details = r.error["details"]
            assert {d["row"] for d in details if "控制字符" in d["message"]} == {
                i + 2 for i in range(len(rows))
            }
        if r.error:
            for d in r.error["details"]:
                assert d["row"] >= 2
                assert d["column"] in HEADERS, d
                assert d["message"], d


def test_every_error_of_a_file_is_reported_once_in_one_pass(world: World) -> None:
    dept = world.department()
    marker = unique("一次")
    rows = [
        # an item error (code pattern) beside entry errors (classification, conditions)
        _row("1", f"{marker}一", "姓名", "1xm", 信息资源分类="999", 共享条件=""),  # row 2
        # an empty required column, an unknown code-table value, an unreadable length
        _row("2", "", "金额", "je", 更新周期="每两小时"),  # row 3
        _row("2", "", "数量", "sl", more=True, 数据长度="①"),  # row 4
        # an item error on a later row, an entry error on the first
        _row("3", f"{marker}三", "日期", "rq", 信息资源格式="纸质"),  # row 5
        _row("3", "", "备注", "bz", more=True, 数据类型="Q"),  # row 6
        # no key: its item cells are still checked
        _row("", "", "附注", "9fz", more=True, 数据长度="²"),  # row 7
    ]
    for filename, content in [("once.csv", _csv(rows)), ("once.xlsx", _xlsx(rows))]:
        r = _import(world, dept.registrar, filename, content)
        assert r.error, r.text
        details = r.error["details"]
        cells = [(d["row"], d["column"]) for d in details]
        assert sorted(cells) == sorted(
            [
                (2, "信息项代码"),
                (2, "信息资源分类"),
                (2, "共享条件"),
                (3, "信息资源名称"),
                (3, "更新周期"),
                (4, "数据长度"),
                (5, "信息资源格式"),
                (6, "数据类型"),
                (7, "资源序号"),
                (7, "信息项代码"),
                (7, "数据长度"),
            ]
        ), details
    assert _count_mine(world, dept.registrar, marker) == 0
