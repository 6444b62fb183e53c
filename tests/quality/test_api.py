"""The quality API over a live hub on both backends: who may see and change what, the
error envelope, masking for the viewer, paging, and the XLSX of failing values."""

from __future__ import annotations

import io
from typing import Any

import pytest
from openpyxl import load_workbook
from sqlalchemy import select

from govshare.db import utcnow
from govshare.rules.masking import STARS
from govshare.security.models import AuditEntry
from tests.factories import Dept, World
from tests.quality.builders import ITEMS, StoreScene, planted, store_with_rows


@pytest.fixture
def scene(world: World) -> StoreScene:
    return store_with_rows(world, world.department("公安局"), planted().rows, applied_at=utcnow())


def _scan(world: World, scene: StoreScene, username: str) -> dict[str, Any]:
    with world.api(username) as c:
        r = c.post(f"/api/v1/quality/resources/{scene.resource_id}/scans")
    assert r.status_code == 201, r.text
    return r.json()


def _error(r: Any, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == code
    return body["error"]


def test_rules_are_seeded_and_the_provider_edits_them_audited(
    world: World, scene: StoreScene
) -> None:
    url = f"/api/v1/quality/resources/{scene.resource_id}/rules"
    with world.api(scene.provider.resource_admin) as c:
        rules = {r["item_code"]: r for r in c.get(url).json()}
        assert rules["sfzhm"]["format"] == "citizen_id"
        assert rules["sfzhm"]["required"] is True
        assert rules["csrq"]["format"] == "date"
        assert not any(r["stored"] for r in rules.values())
        r = c.put(
            f"{url}/csrq",
            json={"required": True, "data_type": "D", "format": "date", "date_min": "1900-01-01"},
        )
        assert r.status_code == 200, r.text
        assert r.json()["stored"] is True
        assert r.json()["date_min"] == "1900-01-01"
    with world.hub.db() as s:
        entry = s.scalars(
            select(AuditEntry)
            .where(
                AuditEntry.action == "quality.rule.update",
                AuditEntry.object_id == f"{scene.resource_id}:csrq",
            )
            .order_by(AuditEntry.seq.desc())
        ).first()
        assert entry is not None
        assert entry.actor == scene.provider.resource_admin
        assert entry.before is not None
        assert entry.before["required"] is False
        assert entry.after is not None
        assert entry.after["required"] is True


def test_another_department_may_not_edit_or_see_the_rules(world: World, scene: StoreScene) -> None:
    other = world.department("民政局")
    url = f"/api/v1/quality/resources/{scene.resource_id}/rules"
    with world.api(other.resource_admin) as c:
        r = c.put(f"{url}/xm", json={"required": True, "data_type": "C", "format": "none"})
        _error(r, 403, "not_your_resource")
        _error(c.get(url), 403, "not_your_resource")
        _error(
            c.get(f"/api/v1/quality/resources/{scene.resource_id}/scans"), 403, "not_your_resource"
        )
        assert scene.resource_id not in {
            q["resource_id"] for q in c.get("/api/v1/quality/resources").json()
        }
    # Nothing was stored for the refused edit.
    with world.api(scene.provider.resource_admin) as c:
        assert not next(r for r in c.get(url).json() if r["item_code"] == "xm")["stored"]
    # The auditor reads logs, never data.
    with world.api(world.auditor) as c:
        _error(c.get("/api/v1/quality/resources"), 403, "permission_denied")


def test_bad_rules_are_refused_naming_the_field(world: World, scene: StoreScene) -> None:
    url = f"/api/v1/quality/resources/{scene.resource_id}/rules"
    with world.api(scene.provider.resource_admin) as c:
        error = _error(
            c.put(f"{url}/xb", json={"format": "code_table"}), 422, "invalid_quality_rule"
        )
        assert [d["field"] for d in error["details"]] == ["code_table"]
        error = _error(c.put(f"{url}/xb", json={"data_type": "ZZ"}), 422, "invalid_input")
        assert [d["field"] for d in error["details"]] == ["data_type"]
        error = _error(
            c.put(
                f"{url}/csrq",
                json={"format": "date", "date_min": "2020-01-01", "date_max": "2019-01-01"},
            ),
            422,
            "invalid_quality_rule",
        )
        assert [d["field"] for d in error["details"]] == ["date_max"]
        error = _error(c.put(f"{url}/nope", json={}), 422, "invalid_quality_rule")
        assert error["details"][0]["field"] == "item_code"


def _problems(world: World, username: str, scan_id: int, **params: Any) -> dict[str, Any]:
    with world.api(username) as c:
        r = c.get(f"/api/v1/quality/scans/{scan_id}/problems", params=params)
    assert r.status_code == 200, r.text
    return r.json()


def test_an_item_marked_sensitive_is_masked_for_the_platform_admin(world: World) -> None:
    # 户籍地行政区划代码 is no personal identifier by its name or format; the catalog's
    # 敏感 mark alone hides its failing values from a supervising admin.
    items = [dict(i, sensitive=True) if i["code"] == "xzqh" else i for i in ITEMS]
    scene = store_with_rows(
        world, world.department("公安局"), planted().rows, applied_at=utcnow(), items=items
    )
    scan = _scan(world, scene, scene.provider.resource_admin)
    own = _problems(world, scene.provider.resource_admin, scan["id"], dimension="validity")
    admin = _problems(world, world.admin, scan["id"], dimension="validity")
    assert {p["value"] for p in own["items"] if p["item_code"] == "xzqh"} == {"999999"}
    assert {p["value"] for p in admin["items"] if p["item_code"] == "xzqh"} == {STARS}
    # The message names the value too (行政区划代码 999999 不在…): masked alike.
    assert all("999999" in p["message"] for p in own["items"] if p["item_code"] == "xzqh")
    shown = [p["message"] for p in admin["items"] if p["item_code"] == "xzqh"]
    assert shown
    assert all("999999" not in m and STARS in m for m in shown)


def test_failing_values_are_masked_for_the_platform_admin_only(
    world: World, scene: StoreScene
) -> None:
    scan = _scan(world, scene, scene.provider.resource_admin)
    assert scan["validity_failed"] == 9
    own = _problems(world, scene.provider.resource_admin, scan["id"], dimension="validity")
    admin = _problems(world, world.admin, scan["id"], dimension="validity")
    ids = [p for p in own["items"] if p["item_code"] == "sfzhm"]
    masked = [p for p in admin["items"] if p["item_code"] == "sfzhm"]
    assert len(ids) == len(masked) == 3
    for raw, shown in zip(ids, masked, strict=True):
        assert raw["value"] == raw["row_key"]
        assert shown["value"] == raw["value"][:6] + "********" + raw["value"][-4:]
        assert shown["row_key"] == shown["value"]
    # Items that are not personal identifiers are shown as they are.
    assert {p["value"] for p in admin["items"] if p["item_code"] == "xzqh"} == {"999999"}
    # Another department sees nothing of it.
    with world.api(world.department("民政局").resource_admin) as c:
        _error(c.get(f"/api/v1/quality/scans/{scan['id']}/problems"), 404, "quality_scan_not_found")
        _error(c.get(f"/api/v1/quality/scans/{scan['id']}"), 404, "quality_scan_not_found")


def test_pages_of_failing_values_and_scans(world: World, scene: StoreScene) -> None:
    first = _scan(world, scene, scene.provider.resource_admin)
    second = _scan(world, scene, world.admin)
    seen: list[int] = []
    after = None
    while True:
        page = _problems(
            world,
            scene.provider.resource_admin,
            first["id"],
            limit=4,
            **({"after_id": after} if after else {}),
        )
        seen += [p["id"] for p in page["items"]]
        after = page["next_after_id"]
        if after is None:
            break
    assert len(seen) == len(set(seen)) == first["problems_kept"] == 14
    url = f"/api/v1/quality/resources/{scene.resource_id}/scans"
    with world.api(scene.provider.resource_admin) as c:
        page = c.get(url, params={"limit": 1}).json()
        assert [s["id"] for s in page["items"]] == [second["id"]]
        rest = c.get(url, params={"limit": 1, "before_id": page["next_before_id"]}).json()
        assert [s["id"] for s in rest["items"]] == [first["id"]]
        assert rest["next_before_id"] is None
        overview = {q["resource_id"]: q for q in c.get("/api/v1/quality/resources").json()}
        assert overview[scene.resource_id]["latest"]["id"] == second["id"]
        _error(c.get(url, params={"limit": 0}), 422, "invalid_input")
        _error(c.get("/api/v1/quality/scans/99999999999"), 422, "invalid_input")


def test_the_xlsx_holds_every_failing_value_and_no_formula(world: World, scene: StoreScene) -> None:
    scan = _scan(world, scene, scene.provider.resource_admin)
    with world.api(scene.provider.resource_admin) as c:
        r = c.get(f"/api/v1/quality/scans/{scan['id']}/problems.xlsx")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/vnd.openxmlformats")
    ws = load_workbook(io.BytesIO(r.content)).active
    assert ws is not None
    rows = list(ws.iter_rows(values_only=True))
    assert rows[0] == ("记录键", "信息项", "信息项代码", "值", "质量维度", "规则", "问题说明")
    assert len(rows) == 1 + 14
    cells = [cell for row in ws.iter_rows() for cell in row]
    assert not [c.coordinate for c in cells if c.data_type == "f"]
    planted_formula = [row for row in rows if row[2] == "lxdh"]
    assert planted_formula[0][3] == '=HYPERLINK("http://x")'  # kept as text, not run
    assert {row[4] for row in rows[1:]} == {"完整性", "有效性", "唯一性"}


def _dept(world: World) -> Dept:
    return world.department("卫健委")


def test_a_resource_without_a_store_cannot_be_scanned(world: World) -> None:
    dept = _dept(world)
    res = world.published(dept)
    with world.api(dept.resource_admin) as c:
        _error(c.post(f"/api/v1/quality/resources/{res['id']}/scans"), 404, "quality_no_store")
