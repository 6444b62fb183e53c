"""An information item marked 不予开放 never leaves the portal: not its name or code on
the dataset page, not its column in the preview, downloads, row API, CKAN or DCAT —
while the entry's other items are published as before. Both backends."""

from __future__ import annotations

import io
from typing import Any

import pytest
from openpyxl import load_workbook

from tests.catalog.test_import import _import, _row, _xlsx, exported_column
from tests.factories import World, resource_payload, unique
from tests.live import LiveHub
from tests.opendata.portal_builders import attach_store, person

pytestmark = pytest.mark.xdist_group("opendata")
WITHHELD = "jzdz"  # 居住地址


def _items() -> list[dict[str, Any]]:
    items = resource_payload()["items"]
    return [{**it, "open_withheld": it["code"] == WITHHELD} for it in items]


def test_a_withheld_item_is_in_no_public_output(hub: LiveHub) -> None:
    world = World(hub)
    dept = world.department("开放局")
    marker = unique("留存")
    entry = world.published(dept, is_open=True, name=f"{marker}网格人员", items=_items())
    rows = [person(n, "公开", jzdz=f"{marker}保密地址{n}") for n in range(1, 6)]
    attach_store(world, dept, entry["id"], rows)
    slug = entry["code"].lower().replace("/", "-")
    # The department sees the mark in its own catalog.
    with world.api(dept.registrar) as c:
        own = c.get(f"/api/v1/catalog/resources/{entry['id']}").json()
        page = c.get(f"/catalog/resources/{entry['id']}").text
    assert {it["code"]: it["open_withheld"] for it in own["items"]}[WITHHELD] is True
    assert "不予开放" in page
    public = [
        f"/open/datasets/{slug}",
        f"/open/datasets/{slug}/download.csv",
        f"/open/datasets/{slug}/download.json",
        f"/open/datasets/{slug}/rows.json",
        f"/open/datasets/{slug}/rows.csv",
        f"/open/datasets/{slug}.ttl",
        f"/open/datasets/{slug}.jsonld",
        f"/api/3/action/package_show?id={slug}",
    ]
    with hub.client() as c:
        answers = {url: c.get(url) for url in public}
        xlsx = c.get(f"/open/datasets/{slug}/download.xlsx")
    for url, r in answers.items():
        assert r.status_code == 200, (url, r.text[:300])
        assert WITHHELD not in r.text, url
        assert "居住地址" not in r.text, url
        assert f"{marker}保密地址" not in r.text, url
        assert "公开1" in r.text or url.endswith((".ttl", ".jsonld")) or "package_show" in url
    # The other items are still published.
    assert "公民身份号码" in answers[f"/open/datasets/{slug}"].text
    assert "xm" in answers[f"/open/datasets/{slug}/rows.json"].text
    cells = [
        str(v)
        for row in load_workbook(io.BytesIO(xlsx.content), read_only=True).active.iter_rows(
            values_only=True
        )
        for v in row
    ]
    assert "xm" in cells or "姓名" in cells
    assert not any(WITHHELD in v or "保密地址" in v for v in cells)


def test_the_mark_is_validated_and_round_trips_the_spreadsheet(hub: LiveHub) -> None:
    world = World(hub)
    dept = world.department("开放局")
    with world.api(dept.registrar) as c:
        bad = c.post(
            "/api/v1/catalog/resources",
            json=resource_payload(items=[{**_items()[0], "open_withheld": "也许"}]),
        )
    assert bad.status_code == 422
    assert "不予开放" in bad.text
    name = unique("导入留存")
    rows = [
        _row("1", name, "公民身份号码", "sfzhm", 是否主键="是"),
        _row("1", name, "居住地址", WITHHELD, more=True, 不予开放="是"),
    ]
    done = _import(world, dept.registrar, "c.xlsx", _xlsx(rows))
    assert done.ok, done.text
    (resource_id,) = done.resource_ids
    with world.api(dept.registrar) as c:
        items = c.get(f"/api/v1/catalog/resources/{resource_id}").json()["items"]
    assert {it["code"]: it["open_withheld"] for it in items} == {"sfzhm": False, WITHHELD: True}
    wrong = _import(
        world,
        dept.registrar,
        "d.xlsx",
        _xlsx([_row("1", unique("导入留存"), "姓名", "xm", 不予开放="也许")]),
    )
    assert not wrong.ok
    assert "不予开放应填“是”或“否”" in wrong.text
    assert exported_column(world, resource_id, "不予开放") == {"sfzhm": "否", WITHHELD: "是"}


def test_a_withheld_item_finds_its_entry_in_the_sharing_catalog_never_on_the_portal(
    hub: LiveHub,
) -> None:
    world = World(hub)
    dept, reader = world.department("开放局"), world.department("查阅局")
    hidden, shown = unique("mjzd"), unique("gkzd")
    items = [
        {**it, "description": f"{hidden}备注" if it["open_withheld"] else f"{shown}备注"}
        for it in _items()
    ]
    entry = world.published(dept, is_open=True, name=unique("留存检索"), items=items)
    slug = entry["code"].lower().replace("/", "-")
    with world.api(reader.registrar) as c:
        found = c.get("/api/v1/catalog/resources", params={"q": hidden}).json()
    assert [r["id"] for r in found["items"]] == [entry["id"]]
    with hub.client() as c:
        for word, expected in ((shown, 1), (hidden, 0)):
            r = c.get("/api/3/action/package_search", params={"q": word})
            assert r.json()["result"]["count"] == expected, word
            page = c.get("/open/datasets", params={"q": word}).text
            assert (slug in page) is bool(expected), word
