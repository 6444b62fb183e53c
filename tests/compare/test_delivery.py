"""交付: a job's cases reach the owning department's own database through the ordinary
subscription path, on both backends.

The hub keeps a copy of a delivering job's cases in the shared-store database, with a
record version that only a changed case's row gets; the bureau's front-end node reads
it by that version like any business table, and the department subscribes to it."""

from __future__ import annotations

import io
import threading
from dataclasses import asdict
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import MetaData, Table, create_engine, select, text, update
from sqlalchemy.pool import NullPool

from govshare.catalog.models import InformationItem
from govshare.compare import delivery, service
from govshare.compare.models import CompareJob
from govshare.compare.schemas import CaseState, JobCreate
from govshare.node.config import Database
from govshare.security.atrest import cipher_for
from govshare.sharing.store import SharedDatabase
from tests.basedata.test_flow import _wait
from tests.basedata.test_return import _Agent, _node
from tests.catalog.console import signed_in
from tests.compare.builders import (
    TODAY,
    PensionScene,
    admin_of,
    cases,
    dead_pension,
    grant,
    granted_pension_scene,
    run,
    save,
)
from tests.factories import World

pytestmark = pytest.mark.xdist_group("compare")


@pytest.fixture
def scene(world: World) -> PensionScene:
    return granted_pension_scene(world)


@pytest.fixture
def shared(world: World) -> Any:
    db = SharedDatabase.of(world.hub.settings)
    yield db
    db.close()


def _sync(world: World, shared: SharedDatabase, job_id: int) -> int:
    with world.hub.db() as s:
        job = s.get(CompareJob, job_id)
        assert job is not None
        return delivery.sync(s, shared.engine, job, cipher=cipher_for(world.hub.settings))


def _copy(shared: SharedDatabase, job_id: int) -> dict[str, dict[str, Any]]:
    table = Table(delivery.table_name(job_id), MetaData(), autoload_with=shared.engine)
    with shared.engine.connect() as conn:
        return {row.sfzhm: row._asdict() for row in conn.execute(select(table))}


def _step(scene: PensionScene, case_id: int, state: CaseState, note: str = "") -> None:
    with scene.world.hub.db() as s:
        service.step_case(s, admin_of(scene.social), case_id, state, note)


def test_output_columns_are_the_item_codes_unless_two_inputs_show_the_same() -> None:
    assert delivery.output_columns(["ppl.sfzhm", "pay.xm", "ppl.swrq"]) == {
        "ppl.sfzhm": "sfzhm",
        "pay.xm": "xm",
        "ppl.swrq": "swrq",
    }
    assert delivery.output_columns(["pay.xm", "ppl.xm", "ppl.case_note"]) == {
        "pay.xm": "pay_xm",
        "ppl.xm": "ppl_xm",
        "ppl.case_note": "ppl_case_note",
    }


def test_the_copy_holds_every_case_with_its_state_and_outputs(
    scene: PensionScene, shared: SharedDatabase
) -> None:
    job_id = save(scene.world, scene.social, dead_pension(scene))
    run(scene.world, scene.social, job_id)
    assert _sync(scene.world, shared, job_id) == 3
    copy = _copy(shared, job_id)
    assert set(copy) == set(scene.expected)
    by_id = {c.id: c for c in cases(scene.world, job_id)}
    for row in copy.values():
        case = by_id[row["case_id"]]
        assert row["xm"] == case.values["pay.xm"]
        assert row["swrq"] == case.values["ppl.swrq"]
        assert row["case_amount"] == pytest.approx(case.amount)
        assert (row["case_state"], row["case_state_label"]) == ("pending", "待核查")
        assert (row["case_presence"], row["case_presence_label"]) == ("new", "新发现")
        assert row["case_rows"] == case.rows
        assert row[delivery.VERSION] == 1


def test_only_a_changed_case_gets_a_new_version(
    scene: PensionScene, shared: SharedDatabase
) -> None:
    job_id = save(scene.world, scene.social, dead_pension(scene))
    run(scene.world, scene.social, job_id)
    _sync(scene.world, shared, job_id)
    assert _sync(scene.world, shared, job_id) == 0  # nothing changed, nothing written
    first = next(iter(scene.expected))
    case_id = _copy(shared, job_id)[first]["case_id"]
    _step(scene, case_id, CaseState.CHECKING)
    assert _sync(scene.world, shared, job_id) == 1
    versions = {k: (r[delivery.VERSION], r["case_state"]) for k, r in _copy(shared, job_id).items()}
    assert versions.pop(first) == (2, "checking")
    assert set(versions.values()) == {(1, "pending")}
    # A repeated run changes every case's presence (新发现 → 仍存在): all rewritten once.
    run(scene.world, scene.social, job_id)
    assert _sync(scene.world, shared, job_id) == 3
    assert {r["case_presence"] for r in _copy(shared, job_id).values()} == {"still"}
    # A run that changes nothing a case shows leaves the cases' times, and the copy, alone.
    stamps = {c.id: c.updated_at for c in cases(scene.world, job_id)}
    run(scene.world, scene.social, job_id)
    assert {c.id: c.updated_at for c in cases(scene.world, job_id)} == stamps
    assert _sync(scene.world, shared, job_id) == 0


def test_a_sync_since_a_time_compares_only_the_cases_changed_after_it(
    scene: PensionScene, shared: SharedDatabase
) -> None:
    job_id = save(scene.world, scene.social, dead_pension(scene))
    run(scene.world, scene.social, job_id)
    _sync(scene.world, shared, job_id)
    first, second = list(scene.expected)[:2]
    by_key = _copy(shared, job_id)
    _step(scene, by_key[first]["case_id"], CaseState.CHECKING)
    stepped = max(c.updated_at for c in cases(scene.world, job_id))
    _step(scene, by_key[second]["case_id"], CaseState.CHECKING)
    with scene.world.hub.db() as s:
        job = s.get(CompareJob, job_id)
        assert job is not None
        # Only the second step is after ``stepped`` (strictly): the first stays behind.
        later = stepped + timedelta(microseconds=1)
        cipher = cipher_for(scene.world.hub.settings)
        assert delivery.sync(s, shared.engine, job, since=later, cipher=cipher) == 1
    states = {k: r["case_state"] for k, r in _copy(shared, job_id).items()}
    assert (states[first], states[second]) == ("pending", "checking")
    assert _sync(scene.world, shared, job_id) == 1  # the whole comparison finds the first


def test_a_definition_showing_more_items_adds_their_columns(
    scene: PensionScene, shared: SharedDatabase
) -> None:
    job = dead_pension(scene)
    job_id = save(scene.world, scene.social, job)
    run(scene.world, scene.social, job_id)
    _sync(scene.world, shared, job_id)
    wider = JobCreate.model_validate({**job, "output": [*job["output"], "pay.ffrq"]})
    with scene.world.hub.db() as s:
        service.update_job(s, shared, admin_of(scene.social), job_id, wider, TODAY)
    assert "ffrq" not in next(iter(_copy(shared, job_id).values()))
    run(scene.world, scene.social, job_id)
    assert _sync(scene.world, shared, job_id) == 3
    dates = {r["ffrq"] for r in _copy(shared, job_id).values()}
    assert dates == {"2025-03-15"}  # the first payment after each death


def test_processes_syncing_at_once_take_turns(scene: PensionScene, shared: SharedDatabase) -> None:
    job_id = save(scene.world, scene.social, dead_pension(scene))
    run(scene.world, scene.social, job_id)
    written: list[int] = []
    errors: list[BaseException] = []

    def sync() -> None:
        try:
            written.append(_sync(scene.world, shared, job_id))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=sync) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    # The first to take its turn created the table and wrote the cases; the others found
    # them there.
    assert sorted(written) == [0, 0, 0, 3]
    assert {r[delivery.VERSION] for r in _copy(shared, job_id).values()} == {1}


def test_the_runner_syncs_a_delivering_job_only_when_its_cases_changed(
    scene: PensionScene, shared: SharedDatabase
) -> None:
    job_id = save(scene.world, scene.social, dead_pension(scene, deliver=True))
    run(scene.world, scene.social, job_id)
    deliveries = delivery.Deliveries(
        shared.engine, cipher_for(scene.world.hub.settings), every_seconds=0
    )
    with scene.world.hub.db() as s:
        assert deliveries.run_once(s) >= 1
    with scene.world.hub.db() as s:
        assert deliveries.run_once(s) == 0
    first = next(iter(scene.expected))
    _step(scene, _copy(shared, job_id)[first]["case_id"], CaseState.CHECKING)
    with scene.world.hub.db() as s:
        assert deliveries.run_once(s) == 1
    assert _copy(shared, job_id)[first]["case_state"] == "checking"


def test_a_delivering_job_names_its_table(scene: PensionScene) -> None:
    plain = save(scene.world, scene.social, dead_pension(scene))
    delivering = save(scene.world, scene.social, dead_pension(scene, deliver=True))
    with scene.world.api(scene.social.resource_admin) as c:
        shown = {
            j["id"]: (j["deliver"], j["delivery_table"], j["version_column"])
            for j in c.get("/api/v1/compare/jobs").json()
        }
    assert shown[plain] == (False, None, None)
    assert shown[delivering] == (True, f"compare_cases_{delivering}", "__rev")
    with scene.world.api(scene.social.resource_admin) as c:
        assert c.get(f"/api/v1/compare/jobs/{plain}").json()["delivery_items"] is None
        items = c.get(f"/api/v1/compare/jobs/{delivering}").json()["delivery_items"]
    with scene.world.hub.db() as s:
        job = s.get(CompareJob, delivering)
        assert job is not None
        columns = {
            c.name
            for c in delivery.case_table(
                job.id, delivery.output_columns(job.definition["output"]).values()
            ).columns
        } - {delivery.VERSION}
    # Every column of the copy but its version, named as the catalog names the items.
    assert {i["code"] for i in items} == columns
    assert [i["code"] for i in items if i["is_key"]] == ["case_id"]
    named = {i["code"]: i["name"] for i in items}
    assert named["case_state"] == "核查状态"
    assert named["sfzhm"] == "公民身份号码"
    assert named["swrq"] == "死亡日期"


def _received(url: str) -> dict[str, tuple[str, str]]:
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            if not engine.dialect.has_table(conn, "xs_copy"):
                return {}
            rows = conn.execute(text("SELECT sfzhm, case_state, case_note FROM xs_copy"))
            return {r.sfzhm: (r.case_state, r.case_note) for r in rows}
    finally:
        engine.dispose()


def test_the_department_receives_its_cases_and_their_follow_up(
    scene: PensionScene, tmp_path: Path
) -> None:
    w = scene.world
    job_id = save(w, scene.social, dead_pension(scene, deliver=True))
    run(w, scene.social, job_id)
    bureau = w.department("大数据局")
    with w.hub.db() as s:
        job = s.get(CompareJob, job_id)
        assert job is not None
        items = [asdict(i) for i in delivery.catalog_items(s, job.definition)]
    # The job's own description of its columns is what the bureau registers.
    entry = w.published(bureau, name="死亡人员仍领取养老金线索", items=items)
    shared = Database(url=w.hub.settings.resolved_shared_store_url)
    reader = _node(w, bureau, tmp_path, "bureau", sources={"shared": shared})
    target_url = f"sqlite:///{tmp_path / 'rsj.db'}"
    receiver = _node(w, scene.social, tmp_path, "rsj", targets={"local": Database(url=target_url)})
    try:
        with w.api(w.admin) as c:
            r = c.post(
                "/api/v1/exchange/tasks",
                json={
                    "name": "比对线索交付",
                    "kind": "provider",
                    "node_id": reader.config.node_id,
                    "resource_id": entry["id"],
                    "config": {
                        "source": "shared",
                        "table": delivery.table_name(job_id),
                        "key": ["case_id"],
                        "cursor_column": delivery.VERSION,
                        "schedule": {"interval_seconds": 0.2},
                    },
                },
            )
            assert r.status_code == 201, r.text
            task_id = r.json()["id"]
            assert c.post(f"/api/v1/exchange/tasks/{task_id}/start").status_code == 200
        grant_id = grant(
            w,
            bureau,
            scene.social,
            entry["id"],
            [i["code"] for i in items],
            modes=["subscription"],
        )
        with w.api(scene.social.resource_admin) as c:
            r = c.post(
                f"/api/v1/sharing/grants/{grant_id}/subscription",
                json={
                    "node_id": receiver.config.node_id,
                    "source_task_id": task_id,
                    "config": {
                        "target": "local",
                        "table": "xs_copy",
                        "schedule": {"interval_seconds": 0.2},
                    },
                },
            )
            assert r.status_code == 201, r.text
        nodes = [_Agent(reader), _Agent(receiver)]
        pending = dict.fromkeys(scene.expected, ("pending", ""))
        _wait(w, nodes, lambda: _received(target_url) == pending)
        # 人社 concludes a case on the hub: the conclusion reaches its own database.
        first = next(iter(scene.expected))
        case_id = next(c.id for c in cases(w, job_id) if c.values["ppl.sfzhm"] == first)
        _step(scene, case_id, CaseState.CHECKING)
        _step(scene, case_id, CaseState.CONFIRMED, "已核实，停发")
        confirmed = pending | {first: ("confirmed", "已核实，停发")}
        _wait(w, nodes, lambda: _received(target_url) == confirmed)
    finally:
        reader.close()
        receiver.close()


def test_the_bureau_imports_the_entry_for_the_copy_from_the_jobs_workbook(
    scene: PensionScene,
) -> None:
    """The job's page offers the catalog entry for its copy as an import workbook: the
    bureau's registrar fills in the classification, imports it, and has a draft whose
    items are the copy's columns."""
    from openpyxl import load_workbook

    from tests.catalog.test_import import _import

    w = scene.world
    # The pension's 姓名 is marked 敏感: the copy's column from it is marked too.
    with w.hub.db() as s:
        s.execute(
            update(InformationItem)
            .where(InformationItem.resource_id == scene.pension.resource_id)
            .where(InformationItem.code == "xm")
            .values(sensitive=True)
        )
    plain = save(w, scene.social, dead_pension(scene))
    job_id = save(w, scene.social, dead_pension(scene, deliver=True))
    with signed_in(w, scene.social.resource_admin) as c:
        assert c.get(f"/compare/jobs/{plain}/delivery-entry.xlsx").status_code == 404
        r = c.get(f"/compare/jobs/{job_id}/delivery-entry.xlsx")
        assert r.status_code == 200
        assert "attachment" in r.headers["content-disposition"]
        assert (
            f'href="/compare/jobs/{job_id}/delivery-entry.xlsx"'
            in c.get(f"/compare/jobs/{job_id}").text
        )
    # Another department's user is refused the workbook as it is refused the job.
    with signed_in(w, scene.police.resource_admin) as c:
        refused = c.get(f"/compare/jobs/{job_id}").status_code
        assert refused in (403, 404)
        assert c.get(f"/compare/jobs/{job_id}/delivery-entry.xlsx").status_code == refused
    book = load_workbook(io.BytesIO(r.content))
    sheet = book["目录"]
    headers = [cell.value for cell in sheet[1]]
    classification = headers.index("信息资源分类") + 1
    sheet.cell(row=2, column=classification, value="101001")
    filled = io.BytesIO()
    book.save(filled)
    bureau = w.department("大数据局")
    done = _import(w, bureau.registrar, "交付目录.xlsx", filled.getvalue())
    assert done.job is not None, done.text
    assert done.job["status"] == "done", done.text
    [entry_id] = done.resource_ids
    with w.hub.db() as s:
        job = s.get(CompareJob, job_id)
        assert job is not None
        expected = [
            (i.code, i.name, i.is_key, i.sensitive)
            for i in delivery.catalog_items(s, job.definition)
        ]
    assert [code for code, *_, sensitive in expected if sensitive] == ["xm"]
    with w.api(bureau.registrar) as c:
        entry = c.get(f"/api/v1/catalog/resources/{entry_id}").json()
    assert [(i["code"], i["name"], i["is_key"], i["sensitive"]) for i in entry["items"]] == expected
    assert entry["sharing_type"] == "2"
    assert entry["name"] == f"{job.name}比对线索"
