"""The demand catalog (需求目录) and the information-system inventory (信息系统普查)."""

from __future__ import annotations

from tests.factories import World


def test_demand_answered_with_a_published_resource(world: World) -> None:
    needer, provider = world.department("需求局"), world.department("提供局")
    with world.api(needer.resource_admin) as c:
        r = c.post(
            "/api/v1/catalog/demands",
            json={
                "title": "流动人口居住证信息",
                "description": "核查就业人员居住证办理情况",
                "wanted_items": "公民身份号码、居住证号",
                "purpose": "就业服务",
            },
        )
        assert r.status_code == 201
        demand = r.json()
    assert demand["status"] == "open"
    draft = world.add_resource(provider)
    published = world.published(provider)
    with world.api(provider.registrar) as c:
        not_yet = c.post(
            f"/api/v1/catalog/demands/{demand['id']}/responses",
            json={"resource_code": draft["code"], "note": "草稿"},
        )
        assert not_yet.status_code == 422
        r = c.post(
            f"/api/v1/catalog/demands/{demand['id']}/responses",
            json={"resource_code": published["code"], "note": "可通过库表交换获取"},
        )
        assert r.status_code == 201
    answered = r.json()
    assert answered["status"] == "answered"
    assert answered["responses"][0]["resource_code"] == published["code"]
    with world.api(provider.resource_admin) as c:
        assert c.post(f"/api/v1/catalog/demands/{demand['id']}/close").status_code == 403
    with world.api(needer.resource_admin) as c:
        assert c.post(f"/api/v1/catalog/demands/{demand['id']}/close").json()["status"] == "closed"


def test_cannot_answer_with_another_departments_resource(world: World) -> None:
    needer, provider, third = (
        world.department("需求局"),
        world.department("提供局"),
        world.department("第三局"),
    )
    with world.api(needer.resource_admin) as c:
        demand = c.post(
            "/api/v1/catalog/demands", json={"title": "某数据", "description": "说明"}
        ).json()
    published = world.published(provider)
    with world.api(third.registrar) as c:
        r = c.post(
            f"/api/v1/catalog/demands/{demand['id']}/responses",
            json={"resource_code": published["code"]},
        )
    assert r.status_code == 403


def test_system_inventory_counts_resources(world: World) -> None:
    dept = world.department()
    with world.api(dept.registrar) as c:
        r = c.post(
            "/api/v1/catalog/systems",
            json={
                "name": "人口信息管理系统",
                "function": "户籍业务",
                "usage_frequency": "daily",
                "network": "egov_extranet",
            },
        )
        assert r.status_code == 201, r.text
        system = r.json()
        dup = c.post(
            "/api/v1/catalog/systems",
            json={
                "name": "人口信息管理系统",
                "usage_frequency": "daily",
                "network": "egov_extranet",
            },
        )
        assert dup.status_code == 409
        bad = c.post(
            "/api/v1/catalog/systems",
            json={"name": "旧系统", "usage_frequency": "sometimes", "network": "x"},
        )
        assert {d["field"] for d in bad.json()["error"]["details"]} == {
            "usage_frequency",
            "network",
        }
    world.add_resource(dept, source_system_id=system["id"])
    world.add_resource(dept, source_system_id=system["id"])
    with world.api(dept.registrar) as c:
        listed = c.get("/api/v1/catalog/systems", params={"department_id": dept.id}).json()
    assert [(s["name"], s["resource_count"]) for s in listed] == [("人口信息管理系统", 2)]


def test_renaming_a_system_to_a_taken_name_is_a_conflict(world: World) -> None:
    dept = world.department()
    body = {"usage_frequency": "daily", "network": "egov_extranet"}
    with world.api(dept.registrar) as c:
        first = c.post("/api/v1/catalog/systems", json={"name": "社保系统", **body}).json()
        second = c.post("/api/v1/catalog/systems", json={"name": "医保系统", **body}).json()
        r = c.put(f"/api/v1/catalog/systems/{second['id']}", json={"name": "社保系统", **body})
        assert r.status_code == 409, r.text
        error = r.json()["error"]
        assert error["code"] == "information_system_name_taken"
        assert error["details"] == [
            {"field": "name", "message": "本部门已有同名信息系统，请换一个名称"}
        ]
        kept = c.put(
            f"/api/v1/catalog/systems/{first['id']}",
            json={"name": "社保系统", "function": "参保登记", **body},
        )
        assert kept.status_code == 200, kept.text
        listed = c.get("/api/v1/catalog/systems", params={"department_id": dept.id}).json()
    assert sorted(s["name"] for s in listed) == ["医保系统", "社保系统"]
    # Another department may use the name.
    other = world.department("另一局")
    with world.api(other.registrar) as c:
        r = c.post("/api/v1/catalog/systems", json={"name": "医保系统", **body})
    assert r.status_code == 201, r.text


def test_classification_tree_and_code_tables(world: World) -> None:
    dept = world.department()
    with world.api(dept.registrar) as c:
        tree = {n["code"]: n for n in c.get("/api/v1/catalog/classifications").json()}
        assert tree["101001"]["level"] == 3
        assert tree["101"]["level"] == 2
        assert (
            c.post(
                "/api/v1/catalog/classifications", json={"code": "101099", "name": "x"}
            ).status_code
            == 403
        )
        tables = c.get("/api/v1/catalog/code-tables").json()
    assert [e["code"] for e in tables["data_type"]] == list("CNYDTLMGBIF")
    assert len(tables["format"]) == 7
    code = "1010" + str(len(tree) % 90 + 10)
    with world.api(world.admin) as c:
        orphan = c.post(
            "/api/v1/catalog/classifications", json={"code": "109001", "name": "无上级"}
        )
        assert orphan.status_code == 422
        added = c.post("/api/v1/catalog/classifications", json={"code": code, "name": "人口专题"})
        assert added.status_code in (201, 409)
        put = c.put(
            "/api/v1/catalog/code-tables/update_cycle/hourly",
            json={"code": "hourly", "label": "每小时"},
        )
        assert put.status_code == 200
    # The new code is usable at once.
    assert world.add_resource(dept, update_cycle="hourly")["update_cycle"] == "hourly"
