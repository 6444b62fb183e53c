"""An information item marked 敏感 (personal or otherwise sensitive information): the
mark is validated, kept in each version and in the import workbook, shown on the entry,
and the portal never publishes the item, whatever 不予开放 says. Both backends."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from govshare.catalog.models import ResourceVersion
from tests.catalog.test_import import _import, _row, _xlsx, exported_column
from tests.factories import World, resource_payload, unique
from tests.live import LiveHub
from tests.opendata.portal_builders import attach_store, person

pytestmark = pytest.mark.xdist_group("opendata")
SENSITIVE = "jzdz"  # 居住地址


def _items() -> list[dict[str, Any]]:
    return [{**it, "sensitive": it["code"] == SENSITIVE} for it in resource_payload()["items"]]


def test_the_mark_is_validated_kept_and_round_trips_the_spreadsheet(hub: LiveHub) -> None:
    world = World(hub)
    dept = world.department("敏感局")
    with world.api(dept.registrar) as c:
        bad = c.post(
            "/api/v1/catalog/resources",
            json=resource_payload(items=[{**_items()[0], "sensitive": "也许"}]),
        )
    assert bad.status_code == 422
    assert "敏感信息项须为 是/否" in bad.text
    entry = world.published(dept, items=_items())
    with world.api(dept.registrar) as c:
        own = c.get(f"/api/v1/catalog/resources/{entry['id']}").json()
        page = c.get(f"/catalog/resources/{entry['id']}").text
    assert {it["code"]: it["sensitive"] for it in own["items"]} == {
        "sfzhm": False,
        "xm": False,
        SENSITIVE: True,
        "djrq": False,
    }
    assert ">敏感</span>" in page
    with hub.db() as s:
        snapshot = s.scalars(
            select(ResourceVersion.snapshot)
            .where(ResourceVersion.resource_id == entry["id"])
            .order_by(ResourceVersion.version.desc())
        ).first()
    assert snapshot is not None
    assert [it["code"] for it in snapshot["items"] if it.get("sensitive")] == [SENSITIVE]

    name = unique("导入敏感")
    rows = [
        _row("1", name, "公民身份号码", "sfzhm", 是否主键="是"),
        _row("1", name, "居住地址", SENSITIVE, more=True, 敏感信息项="是"),
    ]
    done = _import(world, dept.registrar, "s.xlsx", _xlsx(rows))
    assert done.ok, done.text
    (resource_id,) = done.resource_ids
    with world.api(dept.registrar) as c:
        items = c.get(f"/api/v1/catalog/resources/{resource_id}").json()["items"]
    assert {it["code"]: it["sensitive"] for it in items} == {"sfzhm": False, SENSITIVE: True}
    wrong = _import(
        world,
        dept.registrar,
        "w.xlsx",
        _xlsx([_row("1", unique("导入敏感"), "姓名", "xm", 敏感信息项="也许")]),
    )
    assert not wrong.ok
    assert "敏感信息项应填“是”或“否”" in wrong.text
    assert exported_column(world, resource_id, "敏感信息项") == {"sfzhm": "否", SENSITIVE: "是"}


def test_the_portal_never_publishes_a_sensitive_item(hub: LiveHub) -> None:
    world = World(hub)
    dept = world.department("敏感局")
    marker, hidden = unique("敏感"), unique("mgsm")
    items = [{**it, "description": hidden} if it["sensitive"] else it for it in _items()]
    # 不予开放 is left 否: the sensitive mark alone keeps the item off the portal.
    entry = world.published(dept, is_open=True, name=f"{marker}网格人员", items=items)
    rows = [person(n, "公开", jzdz=f"{marker}住处{n}") for n in range(1, 4)]
    attach_store(world, dept, entry["id"], rows)
    slug = entry["code"].lower().replace("/", "-")
    public = [
        f"/open/datasets/{slug}",
        f"/open/datasets/{slug}/download.csv",
        f"/open/datasets/{slug}/rows.json",
        f"/open/datasets/{slug}.jsonld",
        f"/api/3/action/package_show?id={slug}",
    ]
    with hub.client() as c:
        answers = {url: c.get(url) for url in public}
        found = c.get("/api/3/action/package_search", params={"q": hidden}).json()
    for url, r in answers.items():
        assert r.status_code == 200, (url, r.text[:300])
        assert SENSITIVE not in r.text, url
        assert "居住地址" not in r.text, url
        assert f"{marker}住处" not in r.text, url
    assert "公开1" in answers[f"/open/datasets/{slug}/rows.json"].text
    assert found["result"]["count"] == 0
