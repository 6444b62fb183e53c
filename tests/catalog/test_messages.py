"""Every field of the catalog says in Chinese what it expects: API, import and console."""

from __future__ import annotations

import re
from typing import Any

from tests.catalog.console import csrf_of, resource_form, signed_in
from tests.catalog.test_import import _csv, _import, _row
from tests.factories import World, resource_payload, unique

CJK = re.compile(r"[\u4e00-\u9fff]")
EXPECTED = {
    "classification_code": "信息资源分类须为分类代码 (1 至 20 位数字，如 101001)",
    "name": "信息资源名称须为 2 至 200 个字符",
    "sharing_type": "共享类型须为 1 (无条件共享)、2 (有条件共享) 或 3 (不予共享)",
    "is_open": "是否向社会开放须为 是/否 (true/false)",
    "format_detail": "格式说明不能超过 100 个字符",
    "items[0].code": "信息项代码须以英文字母或下划线开头，只含英文字母、数字和下划线，不超过 60 位",
    "items[0].length": "数据长度须为 1 至 65535 之间的整数",
    "items[1].data_type": "数据类型须为 C/N/Y/D/T/L/M/G/B/I/F 之一",
    "items[2].name": "信息项名称必填，不超过 100 个字符",
}


def _bad_payload(marker: str) -> dict[str, Any]:
    payload = resource_payload(
        classification_code="10a",
        name="a",
        sharing_type="9",
        is_open="也许",
        format_detail="格" * 101,
    )
    payload["abstract"] = marker
    payload["items"][0].update(code="1sfzhm", length=0)
    payload["items"][1].update(data_type="XYZ")
    payload["items"][2].update(name="")
    return payload


def test_api_details_name_what_each_field_expects(world: World) -> None:
    dept = world.department()
    with world.api(dept.registrar) as c:
        r = c.post("/api/v1/catalog/resources", json=_bad_payload(unique("接口")))
    assert r.status_code == 422, r.text
    details = r.json()["error"]["details"]
    assert {d["field"]: d["message"] for d in details} == EXPECTED, details


def test_api_refuses_control_characters_without_a_500(world: World) -> None:
    dept = world.department()
    payload = resource_payload(name="人口\x00信息", extensions={"备注": "a\x01b"})
    payload["items"][0]["description"] = "描\x00述"
    with world.api(dept.registrar) as c:
        r = c.post("/api/v1/catalog/resources", json=payload)
    assert r.status_code == 422, r.text
    fields = {d["field"]: d["message"] for d in r.json()["error"]["details"]}
    assert set(fields) == {"name", "extensions", "items[0].description"}, fields
    assert all("控制字符" in m for m in fields.values()), fields


def test_import_report_names_what_each_cell_expects(world: World) -> None:
    dept = world.department()
    marker = unique("导入提示")
    rows = [_row("1", f"{marker}表", "姓名", "1xm", 信息资源分类="10a", 格式说明="格" * 101)]
    r = _import(world, dept.registrar, "msg.csv", _csv(rows))
    assert r.error, r.text
    found = {(d["column"], d["message"]) for d in r.error["details"]}
    assert found == {
        ("信息资源分类", EXPECTED["classification_code"]),
        ("格式说明", EXPECTED["format_detail"]),
        ("信息项代码", EXPECTED["items[0].code"]),
    }, found


def test_console_form_shows_what_each_field_expects(world: World) -> None:
    dept = world.department()
    with signed_in(world, dept.registrar) as client:
        form = resource_form(csrf_of(client), name="a", format_detail="格" * 101)
        form["item_code"] = ["1sfzhm", "xm", "jzdz", "djrq"]
        r = client.post("/catalog/resources/new", data=form)
    assert r.status_code == 422, r.text
    for field in ("name", "format_detail", "items[0].code"):
        assert EXPECTED[field] in r.text, field
    assert "should" not in r.text
    assert CJK.search(EXPECTED["name"])


def test_api_missing_and_unknown_fields_are_named_in_chinese(world: World) -> None:
    dept = world.department()
    payload = resource_payload(colour="红")
    del payload["name"], payload["items"][0]["code"]
    with world.api(dept.registrar) as c:
        r = c.post("/api/v1/catalog/resources", json=payload)
    assert r.status_code == 422, r.text
    fields = {d["field"]: d["message"] for d in r.json()["error"]["details"]}
    assert fields == {
        "name": "必填 (field required)",
        "items[0].code": "必填 (field required)",
        "colour": "不允许的字段 (extra field not permitted)",
    }
