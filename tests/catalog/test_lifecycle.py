"""The catalog lifecycle over the API: every step, who may take it, and what it leaves."""

from __future__ import annotations

from govshare.security.audit import SYSTEM
from govshare.security.roles import Role
from govshare.security.service import add_user
from tests.factories import PASSWORD, World, resource_payload, unique


def test_new_entry_is_a_draft_with_a_classification_code(world: World) -> None:
    dept = world.department()
    res = world.add_resource(dept)
    assert res["status"] == "draft"
    assert res["code"].startswith("101001/")
    assert len(res["code"].split("/")[1]) == 6
    assert res["provider_department_id"] == dept.id
    assert res["kind"] == "base"
    assert [i["code"] for i in res["items"]] == ["sfzhm", "xm", "jzdz", "djrq"]


def test_codes_are_unique_and_sequential_within_a_classification(world: World) -> None:
    dept = world.department()
    a = world.add_resource(dept, classification_code="102003")
    b = world.add_resource(dept, classification_code="102003")
    seq_a, seq_b = int(a["code"].split("/")[1]), int(b["code"].split("/")[1])
    assert seq_b == seq_a + 1


def test_full_lifecycle_to_publication(world: World) -> None:
    dept = world.department()
    res = world.add_resource(dept)
    assert world.step(dept.registrar, res["id"], "submit")["status"] == "pending_registration"
    assert world.step(dept.reviewer, res["id"], "approve")["status"] == "registered"
    assert (
        world.step(dept.registrar, res["id"], "request_publication")["status"]
        == "pending_publication"
    )
    published = world.step(world.admin, res["id"], "publish")
    assert published["status"] == "published"
    assert published["published_version"] == 1
    assert published["publish_date"] is not None
    with world.api(dept.registrar) as c:
        history = c.get(f"/api/v1/catalog/resources/{res['id']}/history").json()
    assert [h["action"] for h in history] == ["publish", "request_publication", "approve", "submit"]
    assert history[0]["actor"] == world.admin


def test_registrar_cannot_review_and_reviewer_cannot_publish(world: World) -> None:
    dept = world.department()
    res = world.add_resource(dept)
    world.step(dept.registrar, res["id"], "submit")
    denied = world.step(dept.registrar, res["id"], "approve", expect=403)
    assert denied["error"]["code"] == "permission_denied"
    world.step(dept.reviewer, res["id"], "approve")
    world.step(dept.registrar, res["id"], "request_publication")
    world.step(dept.reviewer, res["id"], "publish", expect=403)


def test_reviewer_of_another_department_cannot_approve(world: World) -> None:
    dept, other = world.department(), world.department("其他局")
    res = world.add_resource(dept)
    world.step(dept.registrar, res["id"], "submit")
    # Another department's unpublished entry is, to it, no entry at all.
    body = world.step(other.reviewer, res["id"], "approve", expect=404)
    assert body["error"]["code"] == "resource_not_found"
    # A published one it knows, and may still not touch.
    published = world.published(dept, name="已发布的目录")
    body = world.step(other.registrar, published["id"], "withdraw", reason="x", expect=403)
    assert body["error"]["code"] == "not_your_department"


def test_return_and_reject_need_a_reason(world: World) -> None:
    dept = world.department()
    res = world.add_resource(dept)
    world.step(dept.registrar, res["id"], "submit")
    missing = world.step(dept.reviewer, res["id"], "return", expect=422)
    assert missing["error"]["details"][0]["field"] == "reason"
    returned = world.step(dept.reviewer, res["id"], "return", reason="摘要过于简略")
    assert returned["status"] == "returned"
    # A returned entry is edited and submitted again.
    with world.api(dept.registrar) as c:
        r = c.put(
            f"/api/v1/catalog/resources/{res['id']}",
            json=resource_payload(abstract="补充后的详细摘要说明"),
        )
        assert r.status_code == 200, r.text
        assert r.json()["version"] == 2
    assert world.step(dept.registrar, res["id"], "submit")["status"] == "pending_registration"
    rejected = world.step(dept.reviewer, res["id"], "reject", reason="与已有目录重复")
    assert rejected["status"] == "registration_rejected"
    world.step(dept.registrar, res["id"], "submit", expect=409)


def test_publication_rejection_returns_entry_for_editing(world: World) -> None:
    dept = world.department()
    res = world.add_resource(dept)
    for who, step in [
        (dept.registrar, "submit"),
        (dept.reviewer, "approve"),
        (dept.registrar, "request_publication"),
    ]:
        world.step(who, res["id"], step)
    world.step(world.admin, res["id"], "reject_publication", expect=422)
    rejected = world.step(world.admin, res["id"], "reject_publication", reason="信息项描述不规范")
    assert rejected["status"] == "publication_rejected"
    with world.api(dept.registrar) as c:
        r = c.put(
            f"/api/v1/catalog/resources/{res['id']}",
            json=resource_payload(name="流动人口居住登记信息(修订)"),
        )
        assert r.json()["status"] == "draft"


def test_steps_out_of_order_are_refused(world: World) -> None:
    dept = world.department()
    res = world.add_resource(dept)
    body = world.step(dept.reviewer, res["id"], "approve", expect=409)
    assert body["error"]["code"] == "transition_not_allowed"
    world.step(world.admin, res["id"], "publish", expect=409)
    world.step(dept.registrar, res["id"], "withdraw", reason="x", expect=409)
    world.step(dept.registrar, res["id"], "fly", expect=409)


def test_change_of_published_entry_keeps_published_version_visible(world: World) -> None:
    dept, reader = world.department(), world.department("读者局")
    res = world.published(dept)
    changed = resource_payload(
        name="流动人口居住登记信息",
        abstract="新版摘要：增加了居住证有效期。",
        items=[
            *resource_payload()["items"],
            {"name": "居住证有效期至", "code": "yxqz", "data_type": "D"},
        ],
    )
    with world.api(dept.registrar) as c:
        no_reason = c.put(f"/api/v1/catalog/resources/{res['id']}", json=changed)
        assert no_reason.status_code == 422
        assert no_reason.json()["error"]["details"][0]["field"] == "reason"
        r = c.put(
            f"/api/v1/catalog/resources/{res['id']}", json={**changed, "reason": "新增信息项"}
        )
        assert r.status_code == 200
        assert r.json()["status"] == "draft"
        assert r.json()["version"] == 2
        assert r.json()["published_version"] == 1
    with world.api(reader.registrar) as c:
        seen = c.get(f"/api/v1/catalog/resources/{res['id']}").json()
    assert seen["status"] == "published"
    assert seen["version"] == 1
    assert seen["abstract"] == resource_payload()["abstract"]
    assert "yxqz" not in [i["code"] for i in seen["items"]]
    # After the change is published, readers see version 2.
    world.step(dept.registrar, res["id"], "submit")
    world.step(dept.reviewer, res["id"], "approve")
    world.step(dept.registrar, res["id"], "request_publication")
    world.step(world.admin, res["id"], "publish")
    with world.api(reader.registrar) as c:
        seen = c.get(f"/api/v1/catalog/resources/{res['id']}").json()
    assert seen["version"] == 2
    assert "yxqz" in [i["code"] for i in seen["items"]]


def test_every_version_is_kept_and_diffed_field_by_field(world: World) -> None:
    dept = world.department()
    res = world.add_resource(dept)
    edited = resource_payload(
        update_cycle="weekly",
        items=[
            {
                "name": "公民身份号码",
                "code": "sfzhm",
                "data_type": "C",
                "length": 18,
                "is_key": True,
            },
            {"name": "姓名", "code": "xm", "data_type": "C", "length": 100},
            {"name": "登记日期", "code": "djrq", "data_type": "D"},
            {"name": "联系电话", "code": "lxdh", "data_type": "C", "length": 20},
        ],
    )
    with world.api(dept.registrar) as c:
        c.put(f"/api/v1/catalog/resources/{res['id']}", json=edited).raise_for_status()
        versions = c.get(f"/api/v1/catalog/resources/{res['id']}/versions").json()
        diff = c.get(
            f"/api/v1/catalog/resources/{res['id']}/diff", params={"from": 1, "to": 2}
        ).json()
        v1 = c.get(f"/api/v1/catalog/resources/{res['id']}/versions/1").json()
    assert [v["version"] for v in versions] == [2, 1]
    changes = {ch["field"]: (ch["before"], ch["after"]) for ch in diff["changes"]}
    assert changes["update_cycle"] == ("daily", "weekly")
    assert changes["items.xm.length"] == (50, 100)
    assert changes["items.jzdz"][1] is None
    assert changes["items.lxdh"][0] is None
    assert "name" not in changes
    assert v1["update_cycle"] == "daily"


def test_unchanged_save_makes_no_new_version(world: World) -> None:
    dept = world.department()
    res = world.add_resource(dept)
    with world.api(dept.registrar) as c:
        r = c.put(f"/api/v1/catalog/resources/{res['id']}", json=resource_payload())
        assert r.json()["version"] == 1


def test_withdraw_hides_entry_from_other_departments(world: World) -> None:
    dept, reader = world.department(), world.department("读者局")
    res = world.published(dept)
    with world.api(reader.registrar) as c:
        assert c.get(f"/api/v1/catalog/resources/{res['id']}").status_code == 200
    world.step(dept.registrar, res["id"], "withdraw", expect=422)
    assert (
        world.step(dept.registrar, res["id"], "withdraw", reason="职能调整")["status"]
        == "withdrawn"
    )
    with world.api(reader.registrar) as c:
        r = c.get(f"/api/v1/catalog/resources/{res['id']}")
        assert r.status_code == 404


def test_drafts_are_invisible_outside_the_department(world: World) -> None:
    dept, other = world.department(), world.department("其他局")
    res = world.add_resource(dept)
    with world.api(other.registrar) as c:
        assert c.get(f"/api/v1/catalog/resources/{res['id']}").status_code == 404
        assert c.get(f"/api/v1/catalog/resources/{res['id']}/versions").status_code == 404
        r = c.put(f"/api/v1/catalog/resources/{res['id']}", json=resource_payload())
        assert r.status_code == 404
    with world.api(world.admin) as c:
        assert c.get(f"/api/v1/catalog/resources/{res['id']}").json()["status"] == "draft"


def test_only_unpublished_drafts_can_be_deleted(world: World) -> None:
    dept = world.department()
    draft = world.add_resource(dept)
    published = world.published(dept)
    with world.api(dept.registrar) as c:
        assert c.delete(f"/api/v1/catalog/resources/{published['id']}").status_code == 409
        assert c.delete(f"/api/v1/catalog/resources/{draft['id']}").status_code == 204
        assert c.get(f"/api/v1/catalog/resources/{draft['id']}").status_code == 404


def test_review_queues_show_each_reviewer_their_work(world: World) -> None:
    dept, other = world.department(), world.department("其他局")
    mine = world.add_resource(dept)
    theirs = world.add_resource(other)
    world.step(dept.registrar, mine["id"], "submit")
    world.step(other.registrar, theirs["id"], "submit")
    with world.api(dept.reviewer) as c:
        queue = [r["id"] for r in c.get("/api/v1/catalog/review/registration").json()]
        assert c.get("/api/v1/catalog/review/publication").status_code == 403
    assert mine["id"] in queue
    assert theirs["id"] not in queue
    world.step(dept.reviewer, mine["id"], "approve")
    world.step(dept.registrar, mine["id"], "request_publication")
    with world.api(world.admin) as c:
        assert mine["id"] in [r["id"] for r in c.get("/api/v1/catalog/review/publication").json()]


def test_auditor_reads_no_catalog(world: World) -> None:
    with world.api(world.auditor) as c:
        r = c.get("/api/v1/catalog/resources")
    assert r.status_code == 403


def test_lifecycle_steps_are_audited(world: World) -> None:
    dept = world.department()
    res = world.published(dept)
    with world.api(world.auditor) as c:
        entries = c.get(
            "/api/v1/audit", params={"object_type": "resource", "object_id": res["code"]}
        ).json()["items"]
    actions = [e["action"] for e in entries]
    assert actions == [
        "catalog.resource.publish",
        "catalog.resource.request_publication",
        "catalog.resource.approve",
        "catalog.resource.submit",
        "catalog.resource.add",
    ]
    assert entries[0]["actor"] == world.admin
    assert entries[-1]["after"]["name"] == resource_payload()["name"]


def test_nobody_reviews_their_own_submission_whatever_roles_they_hold(world: World) -> None:
    # 职责分离 (GB/T 39477): one person holding both the registrar's and the reviewer's
    # role, or the platform admin acting for its own department, submits but never judges.
    dept = world.department("一身两职局")
    both = f"both_{dept.id}"
    with world.hub.db() as s:
        add_user(
            s,
            SYSTEM,
            username=both,
            password=PASSWORD,
            display_name="编目兼审核",
            department_id=dept.id,
            roles=[Role.CATALOG_REGISTRAR, Role.CATALOG_REVIEWER],
        )
    res = world.add_resource(dept)
    world.step(both, res["id"], "submit")
    for step in ("approve", "return", "reject"):
        denied = world.step(both, res["id"], step, reason="自己审自己", expect=403)
        assert denied["error"]["code"] == "separation_of_duties"
        assert "本人提交" in denied["error"]["message"]
    world.step(dept.reviewer, res["id"], "approve")
    # The one who asked for publication is not the one who publishes it.
    world.step(world.admin, res["id"], "request_publication")
    for step in ("publish", "reject_publication"):
        denied = world.step(world.admin, res["id"], step, reason="自己审自己", expect=403)
        assert denied["error"]["code"] == "separation_of_duties"
    with world.api(both) as c:
        assert c.get(f"/api/v1/catalog/resources/{res['id']}").json()["status"] == (
            "pending_publication"
        )


def test_another_departments_draft_answers_as_a_missing_id(world: World) -> None:
    # Nothing tells a prober whether an id is another department's unpublished draft.
    dept, other = world.department(), world.department("其他局")
    draft = world.add_resource(dept)
    missing = draft["id"] + 10_000_000
    with world.api(other.registrar) as c:
        for rid in (draft["id"], missing):
            answers = [
                c.get(f"/api/v1/catalog/resources/{rid}"),
                c.get(f"/api/v1/catalog/resources/{rid}/versions"),
                c.post(
                    f"/api/v1/catalog/resources/{rid}/transitions/withdraw", json={"reason": "x"}
                ),
            ]
            assert [(r.status_code, r.json()["error"]["code"]) for r in answers] == [
                (404, "resource_not_found")
            ] * 3
            assert [r.json()["error"]["message"] for r in answers] == [
                f"目录 {rid} 不存在或未发布"
            ] * 3


def test_the_open_catalog_flag_follows_the_published_version(world: World) -> None:
    """``open_listed`` (what the open catalog's index narrows by) says whether the
    published version is open and listed: a change in review does not move it, its
    publication does, and so does withdrawal."""
    from govshare.catalog.models import Resource

    dept = world.department()
    res = world.published(dept, name=unique("开放标志"), is_open=True)

    def flag() -> bool:
        with world.hub.db() as s:
            found = s.get(Resource, res["id"])
            assert found is not None
            return bool(found.open_listed)

    def publish_change(**fields: object) -> None:
        with world.api(dept.registrar) as c:
            body = {**resource_payload(name=res["name"], **fields), "reason": "调整开放属性"}
            c.put(f"/api/v1/catalog/resources/{res['id']}", json=body).raise_for_status()
        assert flag() is not fields.get("is_open", True)  # the change alone moves nothing
        world.step(dept.registrar, res["id"], "submit")
        world.step(dept.reviewer, res["id"], "approve")
        world.step(dept.registrar, res["id"], "request_publication")
        world.step(world.admin, res["id"], "publish")

    assert flag() is True
    publish_change(is_open=False)
    assert flag() is False
    publish_change(is_open=True)
    assert flag() is True
    world.step(dept.registrar, res["id"], "withdraw", reason="职能调整")
    assert flag() is False
