"""The comparison API as its users meet it: a definition is refused with the field
that is wrong before anything is saved; who sees, runs and works what; YAML; the
download; crafted ids."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest

from govshare.compare import runner
from tests.compare.builders import PensionScene, dead_pension, grant, pension_scene
from tests.factories import World
from tests.live import LiveHub

pytestmark = pytest.mark.xdist_group("compare")


@pytest.fixture(scope="module")
def checked(hub: LiveHub) -> PensionScene:
    """A scene the definition checks share (they save nothing)."""
    world = World(hub)
    s = pension_scene(world)
    grant(world, s.police, s.social, s.people.resource_id, ["sfzhm", "swrq", "xzqh"])
    return s


@pytest.fixture
def scene(world: World) -> PensionScene:
    s = pension_scene(world)
    grant(world, s.police, s.social, s.people.resource_id, ["sfzhm", "swrq", "xzqh"])
    return s


def _refused(world: World, user: str, job: dict[str, Any]) -> dict[str, Any]:
    with world.api(user) as c:
        r = c.post("/api/v1/compare/jobs", json=job)
        assert r.status_code == 422, r.text
        listed = c.get("/api/v1/compare/jobs")
        assert all(j["name"] != job["name"] for j in listed.json())  # nothing saved
    error: dict[str, Any] = r.json()["error"]
    assert error["code"] == "invalid_compare_job"
    return error


def _with(job: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """``job`` with one value replaced at a dotted path (list indexes as numbers)."""
    import copy

    out = copy.deepcopy(job)
    *parents, last = path.split(".")
    node: Any = out
    for p in parents:
        node = node[int(p)] if p.isdigit() else node[p]
    node[int(last) if last.isdigit() else last] = value
    return out


@pytest.mark.parametrize(
    ("path", "value", "field", "message"),
    [
        ("inputs.1.resource", "NO-SUCH-CODE", "inputs[1].resource", "比对输入须是已发布的目录"),
        ("inputs.1.items", ["sfzhm", "nope"], "inputs[1].items", "目录「"),
        ("links.0.on.0.left", "pay.ffje", "links[0].on[0]", "关联键两侧类型不一致"),
        ("links.0.on.0.right", "swrq", "links[0].on[0].right", "不是查询键也没有索引"),
        ("links.0.input", "pay", "links[0].input", "第一个输入以外"),
        ("conditions.0.right", "pay.xm", "conditions[0]", "条件两侧类型不一致"),
        ("conditions.0.op", "is_null", "conditions[0]", "is_null / not_null 不带比较对象"),
        ("output.0", "zzz.sfzhm", "output[0]", "引用了未定义的输入"),
        ("amount", "pay.xm", "amount", "涉及金额须是数值型信息项"),
        (
            "conditions.0",
            {"left": "pay.ffje", "op": ">", "value": 10**400},
            "conditions[0].value",
            "常量不是数值型的值",
        ),
        ("schedule", "every day", "schedule", "cron"),
        ("schedule", "0 0 31 2 *", "schedule", "cron"),  # valid, but no such day
    ],
)
def test_a_wrong_definition_is_refused_with_its_field(
    checked: PensionScene, path: str, value: Any, field: str, message: str
) -> None:
    job = _with(dead_pension(checked), path, value)
    error = _refused(checked.world, checked.social.resource_admin, job)
    assert message in error["message"] + str(error["details"])
    assert error["details"][0]["field"] == field


def test_an_absent_input_has_no_values_to_show(checked: PensionScene) -> None:
    job = dead_pension(checked, conditions=[])
    job["links"][0]["match"] = "absent"
    error = _refused(checked.world, checked.social.resource_admin, job)
    assert error["details"][0]["field"] == "output[0]"
    assert "absent" in error["message"]


def test_an_input_without_a_grant_is_refused(world: World) -> None:
    s = pension_scene(world)  # 人社 holds no grant on 公安's people
    error = _refused(world, s.social.resource_admin, dead_pension(s))
    assert "未获得目录" in error["message"]
    assert error["details"] == [{"field": "inputs[1]", "message": "无有效授权"}]
    # A grant for verification only is not one for reading rows.
    grant(
        world, s.police, s.social, s.people.resource_id, ["sfzhm", "swrq"], modes=["verification"]
    )
    error = _refused(world, s.social.resource_admin, dead_pension(s))
    assert error["details"][0]["message"] == "授权仅限核验"
    # A grant short of an item names the item.
    grant(world, s.police, s.social, s.people.resource_id, ["sfzhm"])
    error = _refused(world, s.social.resource_admin, dead_pension(s))
    assert error["details"] == [{"field": "inputs[1].items", "message": "swrq"}]


def test_a_department_defines_jobs_only_for_itself(checked: PensionScene) -> None:
    job = dead_pension(checked)
    with checked.world.api(checked.police.resource_admin) as c:
        r = c.post("/api/v1/compare/jobs", json=job)
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "not_your_compare_job"


def test_check_names_the_outputs_and_the_grants_without_saving(scene: PensionScene) -> None:
    with scene.world.api(scene.social.resource_admin) as c:
        r = c.post("/api/v1/compare/jobs/check", json=dead_pension(scene))
        assert r.status_code == 200, r.text
        assert c.get("/api/v1/compare/jobs").json() == []
    body = r.json()
    assert body["labels"]["pay.xm"].endswith("·姓名")
    assert [i["grant_id"] is None for i in body["inputs"]] == [True, False]


def test_yaml_definitions_and_their_mistakes(scene: PensionScene) -> None:
    import yaml

    text = yaml.safe_dump(dead_pension(scene), allow_unicode=True)
    with scene.world.api(scene.social.resource_admin) as c:
        bad = c.post(
            "/api/v1/compare/jobs.yaml",
            content=b"name: x\ninputs: [\n  - oops",
            headers={"Content-Type": "application/yaml"},
        )
        assert bad.status_code == 422
        assert bad.json()["error"]["details"][0]["message"].startswith("第 ")
        wrong = c.post("/api/v1/compare/jobs.yaml", content=b"- 1\n- 2")
        assert wrong.status_code == 422
        missing = c.post("/api/v1/compare/jobs.yaml", content=b"name: only a name")
        assert missing.status_code == 422
        assert {d["field"] for d in missing.json()["error"]["details"]} >= {"inputs", "output"}
        r = c.post(
            "/api/v1/compare/jobs.yaml",
            content=text.encode(),
            headers={"Content-Type": "application/yaml"},
        )
        assert r.status_code == 201, r.text
        assert r.json()["inputs"][1]["items"] == ["sfzhm", "swrq"]


def test_runs_cases_and_their_follow_up_by_role(scene: PensionScene) -> None:
    world = scene.world
    other = world.department("民政")
    with world.api(scene.social.resource_admin) as c:
        job = c.post("/api/v1/compare/jobs", json=dead_pension(scene)).json()
        started = c.post(f"/api/v1/compare/jobs/{job['id']}/runs")
        assert started.status_code == 202
        busy = c.post(f"/api/v1/compare/jobs/{job['id']}/runs")
        assert busy.status_code == 409  # while the first is queued or running
        assert busy.json()["error"]["code"] == "compare_run_busy"
        done = runner.wait(world.hub.session_factory, started.json()["id"])
        assert done.hits == 3
        page = c.get(f"/api/v1/compare/jobs/{job['id']}/cases", params={"limit": 2}).json()
        assert (len(page["items"]), page["total"]) == (2, 3)
        rest = c.get(
            f"/api/v1/compare/jobs/{job['id']}/cases",
            params={"limit": 2, "after_id": page["next_after_id"]},
        ).json()
        assert len(rest["items"]) == 1
        case_id = page["items"][0]["id"]
        step = f"/api/v1/compare/cases/{case_id}/steps"
        jump = c.post(step, json={"state": "confirmed", "note": "已核实"})
        assert jump.status_code == 409  # 待核查 goes to 核查中 first
        assert c.post(step, json={"state": "checking"}).status_code == 200
        blank = c.post(step, json={"state": "confirmed", "note": "  "})
        assert blank.status_code == 422
        ok = c.post(step, json={"state": "confirmed", "note": "死亡后冒领，已追回"})
        assert ok.status_code == 200
        assert [h["state"] for h in ok.json()["history"]] == ["checking", "confirmed"]
        confirmed = c.get(
            f"/api/v1/compare/jobs/{job['id']}/cases", params={"state": "confirmed"}
        ).json()
        assert [i["id"] for i in confirmed["items"]] == [case_id]
        sheet = c.get(f"/api/v1/compare/jobs/{job['id']}/cases/export", params={"format": "csv"})
        assert sheet.status_code == 200
        rows = list(csv.reader(io.StringIO(sheet.text.lstrip("\ufeff"))))
        assert rows[0][0] == "线索编号"
        assert len(rows) == 4
        state = rows[0].index("核查状态")
        assert {r[state] for r in rows[1:]} == {"属实", "待核查"}
        xlsx = c.get(f"/api/v1/compare/jobs/{job['id']}/cases/export")
        assert xlsx.content[:2] == b"PK"
        figures = c.get(f"/api/v1/compare/jobs/{job['id']}/figures").json()
        assert figures["by_state"] == {"pending": 2, "checking": 0, "confirmed": 1, "refuted": 0}
        assert (figures["open_cases"], figures["confirmed_rate"]) == (2, 1.0)
        assert figures["amount_confirmed"] == pytest.approx(3000.5)
    with world.api(world.admin) as c:
        assert c.get(f"/api/v1/compare/jobs/{job['id']}").status_code == 200
        admin_step = c.post(f"/api/v1/compare/cases/{case_id}/steps", json={"state": "checking"})
        assert admin_step.status_code == 403
    with world.api(other.resource_admin) as c:
        assert c.get(f"/api/v1/compare/jobs/{job['id']}").status_code == 403
        assert c.get(f"/api/v1/compare/cases/{case_id}").status_code == 403
        assert c.get(f"/api/v1/compare/jobs/{job['id']}/figures").status_code == 403
        assert c.get("/api/v1/compare/jobs").json() == []
    with world.api(world.auditor) as c:
        assert c.get(f"/api/v1/compare/jobs/{job['id']}").status_code == 403


@pytest.mark.parametrize("bad", ["0", "-1", "²", "99999999999999999999", "1e3"])
def test_crafted_ids_are_answered_not_crashed_on(checked: PensionScene, bad: str) -> None:
    with checked.world.api(checked.social.resource_admin) as c:
        for path in (f"jobs/{bad}", f"runs/{bad}", f"cases/{bad}", f"jobs/{bad}/cases"):
            r = c.get(f"/api/v1/compare/{path}")
            assert r.status_code in (404, 422), (path, r.status_code)
        r = c.get("/api/v1/compare/jobs/1/cases", params={"after_id": bad})
        assert r.status_code in (403, 404, 422)
        assert c.get("/api/v1/compare/jobs/999999/runs").status_code == 404


def test_a_hand_written_yaml_link_keeps_its_on_key() -> None:
    """YAML 1.1 reads ``on`` as a boolean; the definition is read as YAML 1.2 is."""
    from govshare.compare.api import parse_yaml

    text = """
name: 交付测试
department_id: 1
deliver: true
inputs:
  - {alias: pay, resource: "370200-RS-00012", items: [sfzhm]}
  - {alias: ppl, resource: "370200-DSJ-00001", items: [sfzhm]}
links:
  - input: ppl
    on: [{left: pay.sfzhm, right: sfzhm}]
output: [ppl.sfzhm]
"""
    job = parse_yaml(text.encode())
    assert job.deliver is True
    assert job.links[0].on[0].right == "sfzhm"
