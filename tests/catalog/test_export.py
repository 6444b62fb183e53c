"""Exports are safe to open in a spreadsheet program: no cell becomes a formula."""

from __future__ import annotations

import csv
import io

from openpyxl import load_workbook

from tests.catalog.test_import import _import
from tests.factories import World, resource_payload, unique

HOSTILE = {
    "format_detail": '=HYPERLINK("http://evil.example/","点击")',
    "sharing_conditions": "@SUM(1+1)*cmd|' /C calc'!A0",
    "open_conditions": "+1+cmd|' /C calc'!A0",
}
ITEM_DESCRIPTION = "-2+3+cmd|' /C calc'!A0"
TAB_DESCRIPTION = "\t=1+1"


def _entry(world: World) -> tuple[str, str]:
    dept = world.department()
    marker = unique("注入")
    payload = resource_payload(name=f"{marker}信息", **HOSTILE)
    payload["items"][0]["description"] = ITEM_DESCRIPTION
    payload["items"][1]["description"] = TAB_DESCRIPTION
    world.add_resource(
        dept, **{k: v for k, v in payload.items() if k != "items"}, items=payload["items"]
    )
    return dept.registrar, marker


def _export(world: World, user: str, marker: str, fmt: str) -> bytes:
    with world.api(user) as c:
        r = c.get(
            "/api/v1/catalog/resources/export", params={"q": marker, "scope": "mine", "as": fmt}
        )
    assert r.status_code == 200, r.text
    return r.content


def test_csv_export_quotes_formula_cells(world: World) -> None:
    user, marker = _entry(world)
    rows = list(csv.reader(io.StringIO(_export(world, user, marker, "csv").decode("utf-8-sig"))))
    cells = [cell for row in rows[1:] for cell in row]
    assert cells, rows
    assert not [c for c in cells if c[:1] in ("=", "+", "-", "@", "\t", "\r")], cells
    for value in [*HOSTILE.values(), ITEM_DESCRIPTION, TAB_DESCRIPTION]:
        assert "'" + value in cells


def test_xlsx_export_writes_formula_cells_as_text(world: World) -> None:
    user, marker = _entry(world)
    ws = load_workbook(io.BytesIO(_export(world, user, marker, "xlsx"))).worksheets[0]
    cells = [cell for row in ws.iter_rows(min_row=2) for cell in row]
    assert not [c.coordinate for c in cells if c.data_type == "f"]
    by_value = {c.value: c for c in cells}
    for value in [*HOSTILE.values(), ITEM_DESCRIPTION, TAB_DESCRIPTION]:
        assert by_value[value].data_type == "s"
        assert by_value[value].quotePrefix, value


def test_exported_csv_imports_back_unchanged(world: World) -> None:
    user, marker = _entry(world)
    exported = _export(world, user, marker, "csv")
    r = _import(world, user, "again.csv", exported, confirm_duplicates="true")  # knowingly
    assert r.ok, r.text
    with world.api(user) as c:
        again = c.get(f"/api/v1/catalog/resources/{r.resource_ids[0]}").json()
    for field, value in HOSTILE.items():
        assert again[field] == value
    assert again["items"][0]["description"] == ITEM_DESCRIPTION
