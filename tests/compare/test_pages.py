"""The comparison console over real HTTP on the live hub, both backends: a job created
through the form (with Chinese messages for bad JSON, a bad definition and an ungranted
input), run, its cases listed, filtered, downloaded and worked; who sees what; crafted
ids; the template picker when the templates module is there."""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass
from typing import Any

import pytest
from openpyxl import load_workbook
from sqlalchemy import MetaData, Table, select, update

from govshare.compare import pages, runner
from govshare.compare.models import CompareCase, CompareRun
from govshare.compare.schemas import JobCreate, RunStatus
from govshare.compare.templates import Template
from govshare.security.models import AuditEntry
from govshare.sharing.store import SharedDatabase
from tests.catalog.console import csrf_of, signed_in
from tests.compare.builders import (
    PEOPLE_ITEMS,
    PensionScene,
    dead_pension,
    grant,
    pension_scene,
    resource_code,
    run,
    save,
)
from tests.factories import World
from tests.quality.builders import citizen_id, store_with_rows

pytestmark = pytest.mark.xdist_group("compare")

FORMULA = "=1+2"  # a 姓名 a spreadsheet program would run as a formula


@pytest.fixture
def scene(world: World) -> PensionScene:
    """The dead-pension scene, 人社 granted 公安's people; the first person paid after
    death is named ``=1+2`` in 人社's payments."""
    s = pension_scene(world)
    grant(world, s.police, s.social, s.people.resource_id, ["sfzhm", "swrq"])
    db = SharedDatabase.of(world.hub.settings)
    try:
        table = Table(s.pension.table_name, MetaData(), autoload_with=db.engine)
        with db.engine.begin() as conn:
            conn.execute(
                update(table).where(table.c.sfzhm == next(iter(s.expected))).values(xm=FORMULA)
            )
    finally:
        db.close()
    return s


def definition(scene: PensionScene) -> dict[str, Any]:
    """The dead-pension job without the form's own fields, as one pastes it."""
    job = dead_pension(scene)
    for key in ("name", "department_id"):
        job.pop(key)
    return job


def job_form(csrf: str, body: Any, **fields: str) -> dict[str, str]:
    text = body if isinstance(body, str) else json.dumps(body, ensure_ascii=False, indent=2)
    return {"csrf_token": csrf, "name": "死亡人员仍领取养老金", "definition": text, **fields}


def rows_of(page: str) -> list[int]:
    return [int(n) for n in re.findall(r'<tr id="case-(\d+)">', page)]


def last_run_id(world: World, job_id: int) -> int:
    with world.hub.db() as s:
        q = select(CompareRun.id).where(CompareRun.job_id == job_id)
        found = s.scalar(q.order_by(CompareRun.id.desc()))
        assert found is not None
        return found


def test_create_through_the_form_with_chinese_errors(world: World, scene: PensionScene) -> None:
    # 民政's people: a published store 人社 holds no grant for.
    civil = world.department("民政")
    ungranted = store_with_rows(
        world, civil, [{"sfzhm": citizen_id(1), "xm": "甲"}], items=PEOPLE_ITEMS
    )
    with signed_in(world, scene.social.resource_admin) as c:
        listing = c.get("/compare")
        assert listing.status_code == 200
        assert 'href="/compare"' in listing.text  # in the navigation
        assert "死亡人员仍领取养老金" in listing.text  # the built-in templates
        form = c.get("/compare/new")
        assert form.status_code == 200
        assert scene.social.name in form.text  # the own department, fixed
        csrf = csrf_of(c)

        r = c.post("/compare/new", data=job_form(csrf, '{\n  "inputs": [}'))
        assert r.status_code == 422
        assert "比对定义不是有效的 JSON" in r.text
        assert "第 2 行第 14 列：缺少值" in r.text
        assert "[}" in r.text  # what was typed is kept

        for hostile in ["[" * 50_000, '{"amount": ' + "9" * 5_000 + "}"]:
            r = c.post("/compare/new", data=job_form(csrf, hostile))
            assert r.status_code == 422
            assert "嵌套过深或数字过长" in r.text

        r = c.post("/compare/new", data=job_form(csrf, "[1, 2]"))
        assert r.status_code == 422
        assert "应为一个 JSON 对象" in r.text

        short = {**definition(scene), "inputs": definition(scene)["inputs"][:1]}
        r = c.post("/compare/new", data=job_form(csrf, short, name=""))
        assert r.status_code == 422
        assert "任务名称：不能为空" in r.text
        assert "inputs：至少需要 2 项" in r.text

        stranger = definition(scene)
        stranger["inputs"][1]["resource"] = resource_code(world, ungranted.resource_id)
        r = c.post("/compare/new", data=job_form(csrf, stranger))
        assert r.status_code == 422
        assert "负责部门未获得目录「" in r.text
        assert "的查询或订阅授权，不能用于比对" in r.text
        assert "inputs[1]：无有效授权" in r.text

        r = c.post("/compare/new", data=job_form(csrf, definition(scene), schedule="每天"))
        assert r.status_code == 422
        assert "运行计划须是 cron 表达式" in r.text

        # A whole job pasted (name and department inside the JSON) is taken as well.
        whole = dead_pension(scene, department_id=scene.police.id)
        r = c.post("/compare/new", data=job_form(csrf, whole, name=""))
        assert r.status_code == 303, r.text
        job_url = r.headers["location"].split("?")[0]
        page = c.get(r.headers["location"])
        assert "比对任务已保存" in page.text
        assert page.text.count('role="status"') == 1  # not the catalog's notice as well
        assert "死亡人员仍领取养老金" in page.text
        assert "存在匹配" in page.text
        assert "15 位身份证号升 18 位" in page.text
        assert scene.social.name in page.text  # 公安 in the JSON was not the caller's to pick
        assert "尚未运行" in page.text

        edit = c.get(job_url + "/edit")
        assert edit.status_code == 200
        assert "&#34;case_key&#34;" in edit.text  # the definition as JSON in the textarea
        r = c.post(job_url + "/edit", data=job_form(csrf, definition(scene), schedule="0 2 * * *"))
        assert r.status_code == 303, r.text
        page = c.get(job_url).text
        assert "0 2 * * *" in page
        assert 'id="delivery"' not in page
        assert 'name="deliver" value="1">' in c.get(job_url + "/edit").text  # not checked

        # 交付: the page names the table the bureau's node reads; the form keeps the box.
        r = c.post(job_url + "/edit", data=job_form(csrf, definition(scene), deliver="1"))
        assert r.status_code == 303, r.text
        job_id = job_url.rsplit("/", 1)[1]
        page = c.get(job_url).text
        assert f"compare_cases_{job_id}" in page
        # ...and lists its columns as the items the bureau registers for it.
        items = page.split('id="delivery-items"', 1)[1].split("</details>", 1)[0]
        assert '<td class="mono">case_id <span class="tag">主键</span></td>' in items
        assert "<td>核查状态</td>" in items
        assert 'name="deliver" value="1" checked>' in c.get(job_url + "/edit").text


def test_run_list_download_and_work_cases(
    world: World, scene: PensionScene, monkeypatch: pytest.MonkeyPatch
) -> None:
    from govshare.compare import pages

    with signed_in(world, scene.social.resource_admin) as c:
        csrf = csrf_of(c)
        r = c.post("/compare/new", data=job_form(csrf, definition(scene)))
        assert r.status_code == 303, r.text
        job_url = r.headers["location"].split("?")[0]
        job_id = int(job_url.rsplit("/", 1)[1])

        r = c.post(f"{job_url}/run", data={"csrf_token": csrf})
        assert r.status_code == 303, r.text
        run_id = last_run_id(world, job_id)
        queued = c.get(r.headers["location"])
        if 'id="current-run"' in queued.text:  # the runner may be done already
            assert f'data-run-progress="/compare/runs/{run_id}/progress"' in queued.text
        done = runner.wait(world.hub.session_factory, run_id)
        assert done.status is RunStatus.SUCCEEDED, done.error
        progress = c.get(f"/compare/runs/{run_id}/progress").json()
        assert progress | {"phase": ""} == {
            "id": run_id,
            "status": "succeeded",
            "label": "已完成",
            "finished": True,
            "progress": 1.0,
            "phase": "",
            "hits": 3,
        }
        page = c.get(job_url)
        assert f'<tr id="run-{run_id}">' in page.text
        assert 'id="current-run"' not in page.text
        assert '<span class="stat-value" id="count-pending">3</span>' in page.text
        assert 'data-series-chart="chart-compare-hits"' in page.text
        assert 'data-chart="chart-compare-states"' in page.text
        assert "9,001.50" in page.text  # the run's amount: three payments after death
        # A second run while none is open is fine; cancelling a finished one is refused.
        r = c.post(f"/compare/runs/{run_id}/cancel", data={"csrf_token": csrf})
        assert r.status_code == 409
        assert "不能取消" in r.text

        cases_url = f"{job_url}/cases"
        listing = c.get(cases_url)
        assert listing.status_code == 200
        assert len(rows_of(listing.text)) == 3
        assert "流动人口居住登记信息·姓名" in listing.text  # the output's label
        assert FORMULA in listing.text
        assert rows_of(c.get(cases_url, params={"state": "checking"}).text) == []
        assert len(rows_of(c.get(cases_url, params={"presence": "new"}).text)) == 3
        assert rows_of(c.get(cases_url, params={"presence": "gone"}).text) == []
        monkeypatch.setattr(pages, "CASES_PAGE", 2)  # the hub runs in this process
        first = c.get(cases_url)
        ids = rows_of(first.text)
        assert len(ids) == 2
        after = re.search(r'href="\?after_id=(\d+)"', first.text)
        assert after
        assert int(after.group(1)) == ids[-1]
        rest = c.get(cases_url, params={"after_id": after.group(1)})
        assert len(rows_of(rest.text)) == 1
        assert "第一页" in rest.text
        monkeypatch.undo()

        csv_file = c.get(f"{cases_url}.csv")
        assert csv_file.status_code == 200
        assert "attachment" in csv_file.headers["content-disposition"]
        table = list(csv.reader(io.StringIO(csv_file.content.decode("utf-8-sig"))))
        assert table[0][:2] == ["线索编号", "流动人口居住登记信息·公民身份号码"]
        cells = [cell for row in table[1:] for cell in row]
        assert set(scene.expected) <= set(cells)
        assert "'" + FORMULA in cells
        assert FORMULA not in cells
        xlsx = c.get(f"{cases_url}.xlsx", params={"state": "pending"})
        assert xlsx.status_code == 200
        sheet = load_workbook(io.BytesIO(xlsx.content)).worksheets[0]
        found = [cell for row in sheet.iter_rows(min_row=2) for cell in row]
        assert not [cell.coordinate for cell in found if cell.data_type == "f"]
        by_value = {cell.value: cell for cell in found}
        assert set(scene.expected) <= set(by_value)
        assert by_value[FORMULA].data_type == "s"
        assert by_value[FORMULA].quotePrefix
        with world.hub.db() as s:
            exports = s.scalars(
                select(AuditEntry).where(
                    AuditEntry.action == "compare.case.export", AuditEntry.object_id == str(job_id)
                )
            ).all()
            assert len(exports) == 2

        case_id = rows_of(listing.text)[0]
        case_url = f"/compare/cases/{case_id}"
        page = c.get(case_url)
        assert page.status_code == 200
        assert f"运行 #{run_id}" in page.text
        assert "尚未核查" in page.text
        r = c.post(case_url, data={"csrf_token": csrf, "state": "confirmed", "note": "x"})
        assert r.status_code == 409
        assert "线索当前为「待核查」，不能改为「属实」" in r.text
        r = c.post(case_url, data={"csrf_token": csrf, "state": "checking"})
        assert r.status_code == 303, r.text
        page = c.get(r.headers["location"])
        assert "线索状态已更新" in page.text
        assert 'id="case-state">核查中</span>' in page.text
        r = c.post(case_url, data={"csrf_token": csrf, "state": "confirmed", "note": "  "})
        assert r.status_code == 422
        assert "认定属实或不属实须填写核查说明" in r.text
        assert re.search(r'id="f-note".*?class="field-error" role="alert">为空<', r.text, re.S)
        r = c.post(
            case_url, data={"csrf_token": csrf, "state": "confirmed", "note": "经核实死亡后冒领"}
        )
        assert r.status_code == 303, r.text
        page = c.get(case_url)
        assert 'id="case-state">属实</span>' in page.text
        assert "经核实死亡后冒领" in page.text

        dashboard = c.get(job_url).text
        assert '<span class="stat-value" id="count-pending">2</span>' in dashboard
        assert '<span class="stat-value" id="count-confirmed">1</span>' in dashboard
        assert '<span class="stat-value" id="confirmed-rate">100.0%</span>' in dashboard
        assert '<span class="stat-value" id="amount-confirmed">3,000.50</span>' in dashboard
        assert '<span class="stat-value" id="amount-open">6,001.00</span>' in dashboard
        assert len(rows_of(c.get(cases_url, params={"state": "confirmed"}).text)) == 1


@dataclass
class RunJob:
    job_id: int
    run_id: int
    case_id: int


@pytest.fixture
def ran(world: World, scene: PensionScene) -> RunJob:
    job_id = save(world, scene.social, dead_pension(scene))
    done = run(world, scene.social, job_id)
    assert done.status is RunStatus.SUCCEEDED, done.error
    with world.hub.db() as s:
        case_id = s.scalar(select(CompareCase.id).where(CompareCase.job_id == job_id))
    assert case_id is not None
    return RunJob(job_id, done.id, case_id)


def _pages(j: RunJob) -> list[str]:
    return [
        f"/compare/jobs/{j.job_id}",
        f"/compare/jobs/{j.job_id}/cases",
        f"/compare/jobs/{j.job_id}/cases.csv",
        f"/compare/jobs/{j.job_id}/cases.xlsx",
        f"/compare/jobs/{j.job_id}/edit",
        f"/compare/runs/{j.run_id}/progress",
        f"/compare/cases/{j.case_id}",
    ]


def _posts(j: RunJob) -> list[tuple[str, dict[str, str]]]:
    return [
        (f"/compare/jobs/{j.job_id}/run", {}),
        (f"/compare/runs/{j.run_id}/cancel", {}),
        (f"/compare/cases/{j.case_id}", {"state": "checking"}),
    ]


def test_another_department_sees_none_of_it(world: World, ran: RunJob) -> None:
    other = world.department("卫健")
    with signed_in(world, other.resource_admin) as c:
        listing = c.get("/compare")
        assert listing.status_code == 200
        assert f'id="job-{ran.job_id}"' not in listing.text
        for url in _pages(ran):
            r = c.get(url)
            assert r.status_code == 403, url
            assert "负责部门" in r.text, url
        csrf = csrf_of(c)
        for url, data in _posts(ran):
            assert c.post(url, data={"csrf_token": csrf, **data}).status_code == 403, url


def test_the_platform_admin_sees_but_does_not_work_cases(
    world: World, scene: PensionScene, ran: RunJob
) -> None:
    with signed_in(world, world.admin) as c:
        # The admin picks the owning department; the grants are that department's.
        form = c.get("/compare/new")
        assert f'<option value="{scene.social.id}">{scene.social.name}</option>' in form.text
        fields = job_form(csrf_of(c), definition(scene))
        r = c.post("/compare/new", data=fields)
        assert r.status_code == 422
        assert "负责部门：必填" in r.text
        r = c.post("/compare/new", data={**fields, "department_id": str(scene.police.id)})
        assert r.status_code == 422
        # 公安 reads its own people freely, but not 人社's payments.
        assert "inputs[0]：无有效授权" in r.text
        assert "inputs[1]" not in r.text
        r = c.post("/compare/new", data={**fields, "department_id": str(scene.social.id)})
        assert r.status_code == 303, r.text
        assert scene.social.name in c.get(r.headers["location"]).text
        assert f'id="job-{ran.job_id}"' in c.get("/compare").text
        for url in _pages(ran):
            assert c.get(url).status_code == 200, url
        page = c.get(f"/compare/cases/{ran.case_id}")
        assert "只有负责部门可以核查线索" in page.text
        assert 'name="state"' not in page.text
        r = c.post(
            f"/compare/cases/{ran.case_id}", data={"csrf_token": csrf_of(c), "state": "checking"}
        )
        assert r.status_code == 403
        assert "只有负责部门可以核查线索" in r.text


def test_an_auditor_has_no_access(world: World, ran: RunJob) -> None:
    with signed_in(world, world.auditor) as c:
        assert 'href="/compare"' not in c.get("/").text
        for url in ["/compare", "/compare/new", *_pages(ran)]:
            assert c.get(url).status_code == 403, url


@pytest.mark.parametrize(
    "url",
    [
        "/compare/jobs/²",
        "/compare/jobs/-1",
        "/compare/jobs/0",
        "/compare/jobs/99999999999999999999999",
        "/compare/jobs/2147483648/cases",
        "/compare/cases/１",
        "/compare/runs/%C2%B2/progress",
        "/compare/jobs/1/cases?after_id=²",
        "/compare/jobs/1/cases?after_id=-5",
        "/compare/jobs/1?before=99999999999999",
        "/compare/new?department_id=²",
    ],
)
def test_crafted_ids_are_refused_not_a_server_error(world: World, url: str) -> None:
    dept = world.department("审计局")
    with signed_in(world, dept.resource_admin) as c:
        r = c.get(url)
        assert r.status_code == 422, (url, r.status_code)
        assert "请求参数不正确" in r.text


def test_ids_in_range_that_do_not_exist_are_not_found(world: World) -> None:
    dept = world.department("审计局")
    with signed_in(world, dept.resource_admin) as c:
        for url in [
            "/compare/jobs/2147483647",
            "/compare/cases/2147483647",
            "/compare/runs/2147483647/progress",
            "/compare/new?template=nope",
        ]:
            r = c.get(url)
            assert r.status_code == 404, url
            assert "不存在" in r.text


def test_the_template_picker_uses_the_templates_module(
    world: World, scene: PensionScene, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A template (stood in for: the built-in ones name the demo's entries) is listed
    with its description, and instantiated into the form."""

    made: list[int | None] = []

    def instantiate(_session: Any, code: str, department_id: int | None) -> JobCreate:
        made.append(department_id)
        return JobCreate.model_validate(
            {**dead_pension(scene), "name": "模板：死亡冒领", "template": code}
        )

    shown = [Template("dead_pension", "死亡人员仍领取养老金", "比对死亡与发放", "人社", {})]
    monkeypatch.setattr(pages.builtin, "TEMPLATES", shown)  # the hub runs in this process
    monkeypatch.setattr(pages.builtin, "instantiate", instantiate)
    with signed_in(world, scene.social.resource_admin) as c:
        listing = c.get("/compare")
        assert "比对死亡与发放" in listing.text
        assert 'href="/compare/new?template=dead_pension"' in listing.text
        form = c.get("/compare/new", params={"template": "dead_pension"})
        assert form.status_code == 200
        assert 'value="模板：死亡冒领"' in form.text
        assert 'name="template" value="dead_pension"' in form.text
        assert made == [scene.social.id]
        assert c.get("/compare/new", params={"template": "other"}).status_code == 404
        fields = {
            "csrf_token": csrf_of(c),
            "name": "模板：死亡冒领",
            "template": "dead_pension",
            "definition": json.dumps(definition(scene), ensure_ascii=False),
        }
        r = c.post("/compare/new", data=fields)
        assert r.status_code == 303, r.text
        assert "dead_pension" in c.get(r.headers["location"]).text
