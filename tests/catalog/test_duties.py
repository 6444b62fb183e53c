"""The duty register (部门职责 / 权责清单) and the change events that start the catalog's
update deadline, over the API of a live hub on SQLite and PostgreSQL.

Every test stands on a fixed day (``fixed_today``) around 国庆 2026, whose official
schedule the calendar knows: 10-01 to 10-07 off, Saturday 10-10 worked."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from govshare.catalog.models import CatalogChangeEvent, DepartmentDuty
from govshare.rules.clock import fixed_today
from govshare.security.models import AuditEntry
from tests.factories import Dept, World

TODAY = date(2026, 10, 9)
SYSTEM = {"usage_frequency": "daily", "network": "egov_extranet"}


@pytest.fixture(autouse=True)
def _fixed_day() -> Iterator[None]:
    with fixed_today(TODAY):
        yield


def declare(c: httpx.Client, **overrides: Any) -> httpx.Response:
    body = {
        "code": "ZZ-001",
        "name": "户籍管理",
        "basis": "三定方案第三条",
        "declared_on": "2026-09-30",
        **overrides,
    }
    return c.post("/api/v1/catalog/duties", json=body)


def declared(world: World, dept: Dept, **overrides: Any) -> dict[str, Any]:
    with world.api(dept.registrar) as c:
        r = declare(c, **overrides)
    assert r.status_code == 201, r.text
    return r.json()


def events(world: World, username: str, **params: Any) -> list[dict[str, Any]]:
    with world.api(username) as c:
        r = c.get("/api/v1/catalog/duties/events", params=params)
    assert r.status_code == 200, r.text
    return list(r.json()["items"])


def audit_actions(world: World, object_type: str, object_id: int) -> list[str]:
    with world.hub.db() as s:
        return list(
            s.scalars(
                select(AuditEntry.action)
                .where(
                    AuditEntry.object_type == object_type,
                    AuditEntry.object_id == str(object_id),
                )
                .order_by(AuditEntry.seq)
            )
        )


def test_declaring_a_duty_starts_the_catalog_deadline_across_the_national_day(
    world: World,
) -> None:
    dept = world.department("公安局")
    duty = declared(world, dept)
    assert (duty["code"], duty["name"], duty["in_force"]) == ("ZZ-001", "户籍管理", True)
    assert duty["department_id"] == dept.id
    [event] = events(world, dept.registrar)
    assert (event["kind"], event["kind_label"], event["duty_id"]) == (
        "duty",
        "职责调整",
        duty["id"],
    )
    assert event["changed_on"] == "2026-09-30"
    # 15 working days after 09-30: 10-08, 10-09, 10-10 (调休上班), 10-12 … 10-27; counting
    # weekdays alone would say 10-21.
    assert event["catalog_due"] == "2026-10-27"
    assert event["catalog_due_provisional"] is False
    assert event["recorded_by"] == dept.registrar
    with world.hub.db() as s:
        stored = s.scalars(
            select(CatalogChangeEvent).where(CatalogChangeEvent.duty_id == duty["id"])
        ).one()
        assert stored.catalog_due == date(2026, 10, 27)
    assert audit_actions(world, "department_duty", duty["id"]) == ["catalog.duty.declare"]


def test_change_and_withdraw_record_events_and_keep_the_duty(world: World) -> None:
    dept = world.department("市场监管局")
    duty = declared(world, dept, code="SC.01", name="市场主体登记注册", declared_on="2026-09-01")
    with world.api(dept.registrar) as c:
        same = c.put(
            f"/api/v1/catalog/duties/{duty['id']}",
            json={
                "name": "市场主体登记注册",
                "basis": "三定方案第三条",
                "changed_on": "2026-10-08",
                "reason": "无",
            },
        )
        assert same.status_code == 422, same.text
        changed = c.put(
            f"/api/v1/catalog/duties/{duty['id']}",
            json={
                "name": "经营主体登记注册",
                "basis": "2026年三定方案调整",
                "changed_on": "2026-10-08",
                "reason": "机构改革后职责名称调整",
            },
        )
        assert changed.status_code == 200, changed.text
        assert changed.json()["name"] == "经营主体登记注册"
        withdrawn = c.post(
            f"/api/v1/catalog/duties/{duty['id']}/withdraw",
            json={"withdrawn_on": "2026-10-09", "reason": "划转至行政审批服务局"},
        )
        assert withdrawn.status_code == 200, withdrawn.text
        assert withdrawn.json()["in_force"] is False
        again = c.post(
            f"/api/v1/catalog/duties/{duty['id']}/withdraw",
            json={"withdrawn_on": "2026-10-09", "reason": "重复"},
        )
        assert again.status_code == 409, again.text
        listed = c.get("/api/v1/catalog/duties").json()
        in_force = c.get("/api/v1/catalog/duties", params={"in_force": "true"}).json()
    assert [d["code"] for d in listed["items"]] == ["SC.01"]
    assert listed["total"] == 1
    assert in_force == {"items": [], "total": 0}
    found = events(world, dept.registrar, duty_id=duty["id"])
    assert [(e["changed_on"], e["catalog_due"]) for e in found] == [
        ("2026-10-09", "2026-10-29"),
        ("2026-10-08", "2026-10-28"),
        # Sunday 09-20 is worked (调休上班) before the National Day.
        ("2026-09-01", "2026-09-21"),
    ]
    assert found[0]["description"] == "取消职责：划转至行政审批服务局"
    assert found[1]["description"] == "调整职责：机构改革后职责名称调整"
    assert audit_actions(world, "department_duty", duty["id"]) == [
        "catalog.duty.declare",
        "catalog.duty.change",
        "catalog.duty.withdraw",
    ]


def test_refusals_name_the_field(world: World) -> None:
    dept = world.department()
    duty = declared(world, dept, declared_on="2026-10-08")
    with world.api(dept.registrar) as c:
        future = declare(c, code="ZZ-002", declared_on="2026-10-10")
        dup = declare(c, name="另一个名称")
        bad_code = declare(c, code="户籍/01")
        long_name = declare(c, code="ZZ-003", name="名" * 201)
        bad_date = declare(c, code="ZZ-004", declared_on="2026-02-30")
        before_declared = c.put(
            f"/api/v1/catalog/duties/{duty['id']}",
            json={"name": "新名", "changed_on": "2026-10-07", "reason": "调整"},
        )
    assert future.status_code == 422
    assert future.json()["error"]["code"] == "invalid_duty"
    assert future.json()["error"]["details"][0]["field"] == "declared_on"
    assert "晚于今天" in future.json()["error"]["message"]
    assert dup.status_code == 409
    assert dup.json()["error"]["code"] == "duty_code_taken"
    assert bad_code.status_code == 422
    assert bad_code.json()["error"]["details"][0]["message"] == (
        "职责编码须为 1 至 50 个字母、数字或 - _ . 字符"
    )
    assert long_name.status_code == 422
    assert long_name.json()["error"]["details"][0]["message"] == "职责名称必填，不超过 200 个字符"
    assert bad_date.status_code == 422
    assert before_declared.status_code == 422
    assert before_declared.json()["error"]["details"][0]["field"] == "changed_on"
    # Nothing of the refused requests was stored.
    with world.hub.db() as s:
        codes = s.scalars(
            select(DepartmentDuty.code).where(DepartmentDuty.department_id == dept.id)
        ).all()
    assert codes == ["ZZ-001"]
    assert len(events(world, dept.registrar)) == 1


def test_links_only_the_departments_own_entries(world: World) -> None:
    dept, other = world.department("公安局"), world.department("民政局")
    own = world.add_resource(dept)
    foreign = world.add_resource(other)
    duty = declared(world, dept)
    url = f"/api/v1/catalog/duties/{duty['id']}/resources"
    with world.api(dept.registrar) as c:
        refused = c.put(f"{url}/{foreign['id']}")
        missing = c.put(f"{url}/{2**31 - 1}")
        linked = c.put(f"{url}/{own['id']}")
        twice = c.put(f"{url}/{own['id']}")
    assert refused.status_code == 422, refused.text
    assert refused.json()["error"]["details"][0]["field"] == "resource_id"
    assert missing.status_code == 404
    assert linked.status_code == 200, linked.text
    assert [r["code"] for r in linked.json()["resources"]] == [own["code"]]
    assert twice.json()["resources"] == linked.json()["resources"]
    with world.api(other.registrar) as c:
        assert c.put(f"{url}/{foreign['id']}").status_code == 403
        assert c.delete(f"{url}/{own['id']}").status_code == 403
    with world.api(dept.registrar) as c:
        unlinked = c.delete(f"{url}/{own['id']}")
        not_linked = c.delete(f"{url}/{own['id']}")
    assert unlinked.status_code == 200
    assert unlinked.json()["resources"] == []
    assert not_linked.status_code == 422
    assert audit_actions(world, "department_duty", duty["id"]) == [
        "catalog.duty.declare",
        "catalog.duty.link",
        "catalog.duty.unlink",
    ]


def test_who_reads_and_who_writes(world: World) -> None:
    dept, other = world.department("公安局"), world.department("税务局")
    duty = declared(world, dept)
    with world.api(other.registrar) as c:
        assert c.get(f"/api/v1/catalog/duties/{duty['id']}").status_code == 403
        assert c.get("/api/v1/catalog/duties", params={"department_id": dept.id}).status_code == 403
        assert (
            c.get("/api/v1/catalog/duties/events", params={"department_id": dept.id}).status_code
            == 403
        )
        change = c.put(
            f"/api/v1/catalog/duties/{duty['id']}",
            json={"name": "改名", "changed_on": "2026-10-08", "reason": "越权"},
        )
        assert change.status_code == 403
        assert c.get("/api/v1/catalog/duties").json()["total"] == 0  # their own: none
    with world.api(dept.reviewer) as c:
        assert c.get(f"/api/v1/catalog/duties/{duty['id']}").status_code == 200
        assert declare(c, code="R-1").status_code == 403
    with world.api(world.auditor) as c:
        read = c.get("/api/v1/catalog/duties", params={"department_id": dept.id})
        assert read.status_code == 200
        assert read.json()["items"][0]["id"] == duty["id"]
        assert declare(c, code="A-1").status_code == 403
    with world.api(world.admin) as c:
        r = declare(c, code="ADM-1", department_id=other.id)
        assert r.status_code == 201, r.text
        assert r.json()["department_id"] == other.id
    with world.api() as c:
        assert c.get("/api/v1/catalog/duties").status_code == 401


def test_system_change_is_recorded_with_its_deadline(world: World) -> None:
    dept, other = world.department("人社局"), world.department("卫健委")
    with world.api(dept.registrar) as c:
        system = c.post(
            "/api/v1/catalog/systems", json={"name": "社会保险信息系统", **SYSTEM}
        ).json()
        r = c.post(
            f"/api/v1/catalog/systems/{system['id']}/changes",
            json={"changed_on": "2026-09-30", "description": "新增灵活就业参保模块"},
        )
        assert r.status_code == 201, r.text
        future = c.post(
            f"/api/v1/catalog/systems/{system['id']}/changes",
            json={"changed_on": "2026-10-10", "description": "未来"},
        )
        listed = c.get(f"/api/v1/catalog/systems/{system['id']}/changes").json()
    event = r.json()
    assert (event["kind"], event["kind_label"], event["system_name"]) == (
        "system",
        "系统变更",
        "社会保险信息系统",
    )
    assert event["catalog_due"] == "2026-10-27"
    assert future.status_code == 422
    assert future.json()["error"]["details"][0]["field"] == "changed_on"
    assert [e["id"] for e in listed["items"]] == [event["id"]]
    with world.api(other.registrar) as c:
        foreign = c.post(
            f"/api/v1/catalog/systems/{system['id']}/changes",
            json={"changed_on": "2026-09-30", "description": "越权"},
        )
        assert foreign.status_code == 403
        assert c.get(f"/api/v1/catalog/systems/{system['id']}/changes").status_code == 403
        assert (
            c.post(
                f"/api/v1/catalog/systems/{2**31 - 1}/changes",
                json={"changed_on": "2026-09-30", "description": "x"},
            ).status_code
            == 404
        )
    assert audit_actions(world, "information_system", system["id"]) == [
        "catalog.system.add",
        "catalog.system.change",
    ]


def test_a_provisional_deadline_is_recounted_when_the_year_is_entered(world: World) -> None:
    # 2090's holidays are known to nobody: the deadline is counted Monday to Friday and
    # marked 预计 until the platform admin enters the year.
    dept = world.department()
    with fixed_today(date(2090, 6, 2)):
        duty = declared(world, dept, declared_on="2090-06-01")
        [before] = events(world, dept.registrar, duty_id=duty["id"])
        assert (before["catalog_due"], before["catalog_due_provisional"]) == ("2090-06-22", True)
        with world.api(world.admin) as c:
            entered = c.put(
                "/api/v1/sharing/calendar/2090",
                json={"holidays": ["2090-06-05~2090-06-09"], "workdays": []},
            )
            assert entered.status_code == 200, entered.text
            try:
                [after] = events(world, dept.registrar, duty_id=duty["id"])
            finally:
                assert c.delete("/api/v1/sharing/calendar/2090").status_code == 200
        [restored] = events(world, dept.registrar, duty_id=duty["id"])
    # 06-02, then 06-12 … 06-29 around the week off.
    assert (after["catalog_due"], after["catalog_due_provisional"]) == ("2090-06-29", False)
    assert (restored["catalog_due"], restored["catalog_due_provisional"]) == ("2090-06-22", True)
    assert after["changed_on"] == before["changed_on"]
    assert after["description"] == before["description"]
    assert "sharing.deadline.recount" in audit_actions(world, "catalog_change_event", after["id"])
