"""An information item published masked (开放脱敏) reaches the public only masked — on
the preview, in every download and in the row API — is never filtered, sorted or
charted by its values in clear, and says so on the dataset page. Both backends."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from openpyxl import load_workbook

from tests.catalog.test_import import _import, _row, _xlsx
from tests.factories import World, resource_payload, unique
from tests.live import LiveHub
from tests.opendata.portal_builders import attach_store, person

pytestmark = pytest.mark.xdist_group("opendata")
MASKING = {"sfzhm": "id_number", "xm": "name"}


def _items() -> list[dict[str, Any]]:
    return [
        {**it, "open_masking": MASKING.get(it["code"], "none")}
        for it in resource_payload()["items"]
    ]


def test_masked_items_are_served_masked_and_never_compared(hub: LiveHub) -> None:
    world = World(hub)
    dept = world.department("脱敏局")
    entry = world.published(dept, is_open=True, name=unique("脱敏开放"), items=_items())
    # Every row has the same name, so before masking its value topped the column chart.
    rows = [person(n, "公开", xm="欧阳明月") for n in range(1, 6)]
    attach_store(world, dept, entry["id"], rows)
    slug = entry["code"].lower().replace("/", "-")
    clear = [r["sfzhm"] for r in rows] + ["欧阳明月"]
    with hub.client() as c:
        answers = {
            url: c.get(f"/open/datasets/{slug}{url}")
            for url in ("", "/download.csv", "/download.json", "/rows.json", "/rows.csv")
        }
        xlsx = c.get(f"/open/datasets/{slug}/download.xlsx")
        refused = {
            (name, value): c.get(f"/open/datasets/{slug}/rows.json", params={name: value})
            for name, value in (
                ("sfzhm", rows[0]["sfzhm"]),
                ("sfzhm__gt", "3"),
                ("xm__contains", "欧阳"),
                ("_sort", "xm"),
                ("_sort_desc", "sfzhm"),
            )
        }
        by_address = c.get(
            f"/open/datasets/{slug}/rows.json", params={"jzdz__contains": "公开路3号"}
        )
        package = c.get("/api/3/action/package_show", params={"id": slug}).json()["result"]
        turtle = c.get(f"/open/datasets/{slug}.ttl").text
    for url, r in answers.items():
        assert r.status_code == 200, (url, r.text[:300])
        for value in clear:
            # Charts carry their labels as JSON, non-ASCII escaped.
            assert value not in r.text, (url, value)
            assert json.dumps(value)[1:-1] not in r.text, (url, value)
    assert "脱敏：证件号码" in answers[""].text
    assert "脱敏：姓名" in answers[""].text
    for url in ("/download.csv", "/download.json", "/rows.json", "/rows.csv"):
        assert "370202********0001" in answers[url].text, url
        assert "欧***" in answers[url].text, url
        assert "青岛市市南区公开路1号" in answers[url].text, url  # not masked
    cells = [
        str(v)
        for row in load_workbook(io.BytesIO(xlsx.content), read_only=True).active.iter_rows(
            values_only=True
        )
        for v in row
    ]
    assert "370202********0001" in cells
    assert not any(value in cells for value in clear)
    for params, r in refused.items():
        assert r.status_code == 400, (params, r.text[:300])
        assert "脱敏发布，不能用于筛选或排序" in r.text, params
    extras = {e["key"]: e["value"] for e in package["extras"]}
    items = {it["code"]: it["masking"] for it in json.loads(extras["items"])}
    assert items == {"sfzhm": "id_number", "xm": "name", "jzdz": "none", "djrq": "none"}
    assert "该信息项的值脱敏发布（证件号码）" in turtle
    assert by_address.status_code == 200
    (found,) = by_address.json()["rows"]
    assert found["sfzhm"] == "370202********0003"


def test_the_masking_is_validated_and_round_trips_the_spreadsheet(hub: LiveHub) -> None:
    world = World(hub)
    dept = world.department("脱敏局")
    with world.api(dept.registrar) as c:
        bad = c.post(
            "/api/v1/catalog/resources",
            json=resource_payload(items=[{**_items()[0], "open_masking": "blur"}]),
        )
    assert bad.status_code == 422
    assert "开放脱敏规则须为" in bad.text
    name = unique("导入脱敏")
    rows = [
        _row("1", name, "公民身份号码", "sfzhm", 是否主键="是", 开放脱敏="证件号码"),
        _row("1", name, "姓名", "xm", more=True, 开放脱敏="name"),
        _row("1", name, "居住地址", "jzdz", more=True),
    ]
    done = _import(world, dept.registrar, "m.xlsx", _xlsx(rows))
    assert done.ok, done.text
    (resource_id,) = done.resource_ids
    with world.api(dept.registrar) as c:
        items = c.get(f"/api/v1/catalog/resources/{resource_id}").json()["items"]
        exported = c.get("/api/v1/catalog/resources/export", params={"scope": "mine", "q": name})
    assert {it["code"]: it["open_masking"] for it in items} == {
        "sfzhm": "id_number",
        "xm": "name",
        "jzdz": "none",
    }
    sheet = list(
        load_workbook(io.BytesIO(exported.content), read_only=True)["目录"].iter_rows(
            values_only=True
        )
    )
    column, code_column = sheet[0].index("开放脱敏"), sheet[0].index("信息项代码")
    assert {r[code_column]: r[column] for r in sheet[1:] if r[code_column]} == {
        "sfzhm": "证件号码",
        "xm": "姓名",
        "jzdz": "不脱敏",
    }
    wrong = _import(
        world,
        dept.registrar,
        "w.xlsx",
        _xlsx([_row("1", unique("导入脱敏"), "姓名", "xm", 开放脱敏="模糊")]),
    )
    assert not wrong.ok
    assert (
        "开放脱敏应填 不脱敏、证件号码、电话号码、姓名、地址、完全遮蔽 之一，或留空" in wrong.text
    )


def test_a_sealed_item_is_never_opened_to_the_public(hub: LiveHub) -> None:
    """An item sealed in the store (字段加密: sensitive when the store was set up) is left
    out of every public answer, even though the catalog entry publishes it now: neither
    its sealed cells nor its values go out."""
    world = World(hub)
    dept = world.department("加密局")
    entry = world.published(dept, is_open=True, name=unique("加密开放"), items=_items())
    rows = [person(n, "公开", xm=f"诸葛{n}") for n in range(1, 6)]
    attach_store(world, dept, entry["id"], rows, sealed=("xm",))
    slug = entry["code"].lower().replace("/", "-")
    with hub.client() as c:
        answers = {
            url: c.get(f"/open/datasets/{slug}{url}")
            for url in ("", "/download.csv", "/download.json", "/rows.json")
        }
    for url, r in answers.items():
        assert r.status_code == 200, (url, r.text[:300])
        assert "诸葛" not in r.text, url
        assert "~" not in r.text.replace("&#126;", ""), url
    records = answers["/download.json"].json()
    assert records
    assert all("xm" not in rec for rec in records)
    assert {rec["jzdz"] for rec in records} == {r["jzdz"] for r in rows}
