"""Sharing over the live API, on SQLite and PostgreSQL: applications answered within
working-day deadlines, grants, disputes, revocation, usage feedback, the permission
matrix and the audit trail."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from govshare.rules.clock import china_today, fixed_today
from govshare.rules.workdays import add_working_days
from govshare.security.audit import SYSTEM
from govshare.security.models import AuditEntry, User
from govshare.security.roles import Role
from govshare.security.service import add_user
from govshare.sharing import service
from tests.factories import PASSWORD, Dept, World, resource_payload
from tests.sharing.builders import NOT_SHARED_BASIS, application_payload

# The clock is fixed (a Wednesday before National Day) so deadlines, grant validity and
# the calendar are those of one known day, whatever the date the suite runs on.
DAY = date(2026, 9, 30)


@pytest.fixture(autouse=True)
def _on_a_fixed_day() -> Iterator[None]:
    with fixed_today(DAY):
        yield


def _apply(world: World, consumer: Dept, resource_id: int, **kw: Any) -> dict[str, Any]:
    with world.api(consumer.resource_admin) as c:
        r = c.post("/api/v1/sharing/applications", json=application_payload(resource_id, **kw))
        assert r.status_code == 201, r.text
        return r.json()


def _post(world: World, user: str, path: str, body: dict[str, Any], expect: int = 200) -> Any:
    with world.api(user) as c:
        r = c.post(f"/api/v1/sharing{path}", json=body)
        assert r.status_code == expect, r.text
        return r.json()


def _get(world: World, user: str, path: str, expect: int = 200) -> Any:
    with world.api(user) as c:
        r = c.get(f"/api/v1/sharing{path}")
        assert r.status_code == expect, r.text
        return r.json()


def _actions(world: World, object_type: str, object_id: int) -> list[str]:
    with world.hub.db() as s:
        return list(
            s.scalars(
                select(AuditEntry.action)
                .where(AuditEntry.object_type == object_type)
                .where(AuditEntry.object_id == str(object_id))
                .order_by(AuditEntry.seq)
            )
        )


def test_approval_grants_the_chosen_items_until_the_end_date(world: World) -> None:
    provider, consumer = world.department("公安局"), world.department("人社局")
    res = world.published(provider)
    app = _apply(world, consumer, res["id"])
    today = china_today()
    assert (app["status"], app["status_label"]) == ("submitted", "待答复")
    assert app["answer_due"] == add_working_days(today, 10).isoformat()
    assert app["grant_id"] is None
    assert [
        a["id"] for a in _get(world, provider.resource_admin, "/applications?side=provider")
    ] == [app["id"]]

    approved = _post(
        world,
        provider.resource_admin,
        f"/applications/{app['id']}/approve",
        {"items": ["xm"], "masking": {"xm": "name"}, "reason": "同意，仅限姓名"},
    )
    assert (approved["status"], approved["status_label"]) == ("approved", "已同意")
    assert approved["provide_due"] == add_working_days(today, 5).isoformat()
    [grant] = _get(world, consumer.resource_admin, "/grants?side=mine")
    assert grant["id"] == approved["grant_id"]
    assert (grant["items"], grant["masking"], grant["modes"]) == (["xm"], {"xm": "name"}, ["query"])
    assert grant["expires_on"] == app["end_date"]
    assert grant["active"] is True
    assert grant["row_filter"] == [{"item": "jzdz", "op": "prefix", "value": "青岛市"}]
    assert _get(world, provider.resource_admin, "/grants?side=provider")[0]["id"] == grant["id"]

    with world.hub.db() as s:
        found = service.active_grant(s, consumer.id, res["id"], "query", today)
        assert found is not None
        assert found.id == grant["id"]
        assert service.active_grant(s, consumer.id, res["id"], "subscription", today) is None

    provided = _post(world, provider.resource_admin, f"/applications/{app['id']}/provide", {})
    assert provided["status_label"] == "已提供"
    assert _actions(world, "sharing_application", app["id"]) == [
        "sharing.application.submit",
        "sharing.application.approve",
        "sharing.application.provide",
    ]
    assert _actions(world, "sharing_grant", grant["id"]) == ["sharing.grant.create"]


def test_approval_cannot_widen_the_application(world: World) -> None:
    provider, consumer = world.department("公安局"), world.department("人社局")
    app = _apply(world, consumer, world.published(provider)["id"])
    err = _post(
        world,
        provider.resource_admin,
        f"/applications/{app['id']}/approve",
        {"items": ["xm", "jzdz"]},
        expect=422,
    )["error"]
    assert err["details"] == [{"field": "items[1]", "message": "jzdz 不在申请的信息项中"}]


def test_application_items_must_belong_to_the_resource(world: World) -> None:
    provider, consumer = world.department("公安局"), world.department("人社局")
    res = world.published(provider)
    with world.api(consumer.resource_admin) as c:
        r = c.post(
            "/api/v1/sharing/applications",
            json=application_payload(res["id"], items=["xm", "income"]),
        )
    assert r.status_code == 422
    assert r.json()["error"]["details"] == [
        {"field": "items[1]", "message": "目录没有信息项 income"}
    ]


def test_applications_are_judged_by_the_published_catalog_not_a_pending_change(
    world: World,
) -> None:
    provider, consumer = world.department("公安局"), world.department("人社局")
    res = world.published(provider)
    pending = resource_payload(
        sharing_type="1",  # to become 无条件共享 …
        items=[
            *resource_payload()["items"],
            {"name": "居住证有效期至", "code": "yxqz", "data_type": "D"},
        ],
        reason="改为无条件共享并新增信息项",
    )
    with world.api(provider.registrar) as c:
        r = c.put(f"/api/v1/catalog/resources/{res['id']}", json=pending)
        assert r.status_code == 200, r.text
        assert r.json()["published_version"] == 1  # … once this change is published

    app = _apply(world, consumer, res["id"])
    assert app["status"] == "submitted"  # still 有条件共享: the provider must answer
    assert app["grant_id"] is None
    with world.api(consumer.resource_admin) as c:
        r = c.post(
            "/api/v1/sharing/applications",
            json=application_payload(res["id"], items=["sfzhm", "yxqz"]),
        )
    assert r.status_code == 422, r.text
    assert r.json()["error"]["details"] == [{"field": "items[1]", "message": "目录没有信息项 yxqz"}]


def test_not_shared_resource_cannot_be_applied_for(world: World) -> None:
    provider, consumer = world.department("税务局"), world.department("人社局")
    res = world.published(
        provider, sharing_type="3", sharing_conditions="", not_shared_basis=NOT_SHARED_BASIS
    )
    with world.api(consumer.resource_admin) as c:
        r = c.post("/api/v1/sharing/applications", json=application_payload(res["id"]))
    assert r.status_code == 422
    err = r.json()["error"]
    assert err["code"] == "not_shareable"
    assert NOT_SHARED_BASIS in err["message"]
    assert _get(world, consumer.resource_admin, "/applications?side=mine") == []


def test_unconditional_resource_is_granted_at_once(world: World) -> None:
    provider, consumer = world.department("市场监管局"), world.department("人社局")
    res = world.published(provider, sharing_type="1", sharing_conditions="")
    app = _apply(world, consumer, res["id"], mode="verification")
    assert (app["status"], app["unconditional"], app["answer_due"]) == ("approved", True, None)
    assert app["grant_id"] is not None
    with world.hub.db() as s:
        grant = service.active_grant(s, consumer.id, res["id"], "verification", china_today())
        assert grant is not None
        assert grant.id == app["grant_id"]
    assert _actions(world, "sharing_grant", app["grant_id"]) == ["sharing.grant.create"]


def test_refusal_needs_a_reason_and_a_dispute_is_decided_by_the_platform(world: World) -> None:
    provider, consumer = world.department("公安局"), world.department("人社局")
    res = world.published(provider)
    app = _apply(world, consumer, res["id"])
    path = f"/applications/{app['id']}"

    err = _post(world, provider.resource_admin, f"{path}/refuse", {"reason": " "}, 422)["error"]
    assert err["details"][0]["field"] == "reason"
    refused = _post(world, provider.resource_admin, f"{path}/refuse", {"reason": "用途超出职责"})
    assert (refused["status_label"], refused["answer_reason"]) == ("已拒绝", "用途超出职责")
    assert refused["grant_id"] is None

    # Only the applicant disputes; only the platform decides.
    _post(world, provider.resource_admin, f"{path}/dispute", {"reason": "x"}, 403)
    disputed = _post(world, consumer.resource_admin, f"{path}/dispute", {"reason": "属法定职责"})
    assert disputed["status_label"] == "争议待裁决"
    body = {"outcome": "overturned", "reason": "申请用途属于法定职责"}
    _post(world, provider.resource_admin, f"{path}/decision", body, 403)
    _post(world, consumer.resource_admin, f"{path}/decision", body, 403)
    decided = _post(world, world.admin, f"{path}/decision", body)
    assert (decided["status"], decided["dispute_outcome"]) == ("approved", "overturned")
    assert decided["provide_due"] == add_working_days(china_today(), 5).isoformat()
    assert decided["grant_id"] is not None

    # The outcome is visible to both parties.
    seen = _get(world, consumer.resource_admin, path)
    assert (seen["dispute_decision"], seen["dispute_decided_by"]) == (
        "申请用途属于法定职责",
        world.admin,
    )
    assert _actions(world, "sharing_application", app["id"]) == [
        "sharing.application.submit",
        "sharing.application.refuse",
        "sharing.application.dispute",
        "sharing.dispute.decide",
    ]

    second = _apply(world, consumer, res["id"])
    _post(world, provider.resource_admin, f"/applications/{second['id']}/refuse", {"reason": "r"})
    _post(world, consumer.resource_admin, f"/applications/{second['id']}/dispute", {"reason": "d"})
    upheld = _post(
        world,
        world.admin,
        f"/applications/{second['id']}/decision",
        {"outcome": "upheld", "reason": "拒绝理由成立"},
    )
    assert (upheld["status_label"], upheld["grant_id"]) == ("裁决维持拒绝", None)


def test_permission_matrix(world: World) -> None:
    provider, consumer, other = (
        world.department("公安局"),
        world.department("人社局"),
        world.department("民政局"),
    )
    res = world.published(provider)
    app = _apply(world, consumer, res["id"])
    approve = f"/applications/{app['id']}/approve"

    # Neither the applicant nor a third department can answer.
    err = _post(world, consumer.resource_admin, approve, {}, 403)["error"]
    assert err["code"] == "not_your_department"
    _post(world, other.resource_admin, approve, {}, 404)
    assert _get(world, other.resource_admin, "/applications") == []
    _get(world, other.resource_admin, f"/applications/{app['id']}", 404)

    # A registrar holds no sharing permission.
    with world.api(provider.registrar) as c:
        r = c.post("/api/v1/sharing/applications", json=application_payload(res["id"]))
        assert r.status_code == 403
        assert "sharing.apply" in r.json()["error"]["message"]
    _post(world, provider.registrar, approve, {}, 403)
    _get(world, provider.registrar, "/applications", 403)

    # The auditor reads logs, never sharing data.
    for path in ["/applications", f"/applications/{app['id']}", "/grants", "/usage", "/reminders"]:
        _get(world, world.auditor, path, 403)

    # A department cannot apply for its own resource; anonymous callers are refused.
    _post(world, provider.resource_admin, "/applications", application_payload(res["id"]), 422)
    with world.api() as c:
        assert c.get("/api/v1/sharing/applications").status_code == 401


def test_revocation_and_expiry_take_effect_at_once(world: World) -> None:
    provider, consumer = world.department("公安局"), world.department("人社局")
    res = world.published(provider)
    end = china_today() + timedelta(days=30)
    app = _apply(world, consumer, res["id"], end_date=end.isoformat())
    grant_id = _post(world, provider.resource_admin, f"/applications/{app['id']}/approve", {})[
        "grant_id"
    ]
    with world.hub.db() as s:
        assert service.active_grant(s, consumer.id, res["id"], "query", end) is not None
        assert service.active_grant(s, consumer.id, res["id"], "query", end + timedelta(1)) is None

    _post(world, consumer.resource_admin, f"/grants/{grant_id}/revoke", {"reason": "x"}, 403)
    _post(world, provider.resource_admin, f"/grants/{grant_id}/revoke", {"reason": ""}, 422)
    revoked = _post(
        world, provider.resource_admin, f"/grants/{grant_id}/revoke", {"reason": "职责调整"}
    )
    assert (revoked["revoked"], revoked["active"], revoked["revoke_reason"]) == (
        True,
        False,
        "职责调整",
    )
    with world.hub.db() as s:
        assert service.active_grant(s, consumer.id, res["id"], "query", china_today()) is None
    _post(world, world.admin, f"/grants/{grant_id}/revoke", {"reason": "again"}, 409)
    assert _actions(world, "sharing_grant", grant_id) == [
        "sharing.grant.create",
        "sharing.grant.revoke",
    ]


def test_platform_admin_can_revoke(world: World) -> None:
    provider, consumer = world.department("公安局"), world.department("人社局")
    res = world.published(provider, sharing_type="1", sharing_conditions="")
    grant_id = _apply(world, consumer, res["id"])["grant_id"]
    assert _post(world, world.admin, f"/grants/{grant_id}/revoke", {"reason": "安全事件"})[
        "revoked"
    ]


def test_usage_feedback_shows_providers_who_used_what(world: World) -> None:
    provider, consumer, other = (
        world.department("公安局"),
        world.department("人社局"),
        world.department("民政局"),
    )
    res = world.published(provider, sharing_type="1", sharing_conditions="")
    grant_id = _apply(world, consumer, res["id"])["grant_id"]
    body = {"grant_id": grant_id, "text": "核验积分落户申请人身份", "count": 120}
    _post(world, other.resource_admin, "/usage", body, 403)
    report = _post(world, consumer.resource_admin, "/usage", body, 201)
    assert (report["department_name"], report["count"]) == (consumer.name, 120)
    [seen] = _get(world, provider.resource_admin, "/usage?side=provider")
    assert (seen["department_id"], seen["resource_name"], seen["text"]) == (
        consumer.id,
        res["name"],
        "核验积分落户申请人身份",
    )
    assert _get(world, other.resource_admin, "/usage") == []
    assert _actions(world, "sharing_usage_report", report["id"]) == ["sharing.usage.report"]


def test_end_date_must_be_in_the_future(world: World) -> None:
    provider, consumer = world.department("公安局"), world.department("人社局")
    res = world.published(provider)
    body = application_payload(res["id"], end_date=date(2020, 1, 1).isoformat())
    err = _post(world, consumer.resource_admin, "/applications", body, 422)["error"]
    assert err["details"][0]["field"] == "end_date"


def test_the_platform_admin_who_applied_does_not_decide_the_dispute(world: World) -> None:
    # 职责分离: the data bureau applies for another department's data like any consumer;
    # the admin who applied (and disputed the refusal) cannot be its judge.
    provider = world.department("公安局")
    res = world.published(provider)
    app = _apply(world, Dept(0, "", "", "", world.admin), res["id"])
    path = f"/applications/{app['id']}"
    _post(world, provider.resource_admin, f"{path}/refuse", {"reason": "用途不明"})
    _post(world, world.admin, f"{path}/dispute", {"reason": "属法定职责"})
    body = {"outcome": "overturned", "reason": "本人裁决本人的申请"}
    denied = _post(world, world.admin, f"{path}/decision", body, 403)["error"]
    assert denied["code"] == "separation_of_duties"
    assert _get(world, world.admin, path)["status"] == "disputed"

    other_admin = f"arbiter_{app['id']}"
    with world.hub.db() as s:
        admin_user = s.scalar(select(User).where(User.username == world.admin))
        assert admin_user is not None
        add_user(
            s,
            SYSTEM,
            username=other_admin,
            password=PASSWORD,
            display_name="另一位平台管理员",
            department_id=admin_user.department_id,
            roles=[Role.PLATFORM_ADMIN],
        )
    decided = _post(world, other_admin, f"{path}/decision", body)
    assert (decided["status"], decided["dispute_decided_by"]) == ("approved", other_admin)
