"""Duplicate resource names within a department: reported, refused unless confirmed."""

from __future__ import annotations

from typing import Any

from tests.catalog.console import csrf_of, error_rows, follow_import, resource_form, signed_in
from tests.catalog.test_import import _count_mine, _csv, _import, _row
from tests.factories import World, resource_payload, unique


def _post(world: World, user: str, name: str, **params: str) -> Any:
    with world.api(user) as c:
        return c.post("/api/v1/catalog/resources", json=resource_payload(name=name), params=params)


def test_api_refuses_a_name_the_department_uses_unless_confirmed(world: World) -> None:
    dept, other = world.department(), world.department()
    name = unique("重名人口信息")
    first = _post(world, dept.registrar, name)
    assert first.status_code == 201, first.text
    # the same name, also with other white space and full-width letters
    full_width = name.translate({c: c + 0xFEE0 for c in range(0x21, 0x7F)}).upper()
    for again in (name, f" {name[:2]} {name[2:]}", full_width):
        r = _post(world, dept.registrar, again)
        assert r.status_code == 422, (again, r.text)
        err = r.json()["error"]
        assert err["code"] == "duplicate_resource_name"
        assert [d["field"] for d in err["details"]] == ["name"]
        assert first.json()["code"] in err["details"][0]["message"]
    assert _post(world, other.registrar, name).status_code == 201  # another department
    assert _post(world, dept.registrar, name, confirm_duplicates="true").status_code == 201
    assert _count_mine(world, dept.registrar, name) == 2


def test_api_rename_to_a_used_name_is_refused_unless_confirmed(world: World) -> None:
    dept = world.department()
    taken, mine = unique("已用名称"), unique("我的名称")
    assert _post(world, dept.registrar, taken).status_code == 201
    res = _post(world, dept.registrar, mine).json()
    with world.api(dept.registrar) as c:
        path = f"/api/v1/catalog/resources/{res['id']}"
        # keeping its own name is no duplicate
        assert c.put(path, json=resource_payload(name=mine, abstract="改摘要")).status_code == 200
        r = c.put(path, json=resource_payload(name=taken))
        assert r.status_code == 422, r.text
        assert r.json()["error"]["code"] == "duplicate_resource_name"
        r = c.put(path, json=resource_payload(name=taken), params={"confirm_duplicates": "true"})
        assert r.status_code == 200, r.text


def test_import_reports_names_repeated_in_the_file_or_already_used(world: World) -> None:
    dept = world.department()
    marker = unique("导入重名")
    assert _post(world, dept.registrar, f"{marker}已有").status_code == 201
    rows = [
        _row("1", f"{marker}甲", "姓名", "xm"),  # row 2
        _row("2", f"{marker}已有", "姓名", "xm"),  # row 3: like an existing entry
        _row("3", f"{marker} 甲", "姓名", "xm"),  # row 4: like row 2
        _row("4", f"{marker}乙", "姓名", "xm"),  # row 5
    ]
    r = _import(world, dept.registrar, "dup.csv", _csv(rows))
    assert r.error, r.text
    details = r.error["details"]
    assert [(d["row"], d["column"]) for d in details] == [(3, "信息资源名称"), (4, "信息资源名称")]
    assert "本部门已有同名目录" in details[0]["message"]
    assert "第2行" in details[1]["message"]
    assert _count_mine(world, dept.registrar, marker) == 1
    r = _import(world, dept.registrar, "dup.csv", _csv(rows), confirm_duplicates="true")
    assert r.ok, r.text
    assert _count_mine(world, dept.registrar, marker) == 5


def test_console_form_and_import_ask_to_confirm_a_duplicate_name(world: World) -> None:
    dept = world.department()
    name = unique("控制台重名")
    assert _post(world, dept.registrar, name).status_code == 201
    with signed_in(world, dept.registrar) as client:
        form = resource_form(csrf_of(client), name=name)
        r = client.post("/catalog/resources/new", data=form)
        assert r.status_code == 422, r.text
        assert "本部门已有同名目录" in r.text
        assert 'name="confirm_duplicates"' in r.text
        r = client.post("/catalog/resources/new", data={**form, "confirm_duplicates": "1"})
        assert r.status_code == 303, r.text

        content = _csv([_row("1", name, "姓名", "xm")])
        r = client.post(
            "/catalog/import",
            data={"csrf_token": csrf_of(client)},
            files={"file": ("dup.csv", content, "text/csv")},
        )
        page = follow_import(client, r)
        assert {(row, col) for row, col, _ in error_rows(page.text)} == {(2, "信息资源名称")}
        r = client.post(
            "/catalog/import",
            data={"csrf_token": csrf_of(client), "confirm_duplicates": "1"},
            files={"file": ("dup.csv", content, "text/csv")},
        )
        assert 'data-status="done"' in follow_import(client, r).text
    assert _count_mine(world, dept.registrar, name) == 3
