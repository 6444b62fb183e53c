"""Comparison runs on the live hub, both backends: the planted cases found and nothing
else, across 15/18-digit and full-width keys; grants decide what may be read and how it
is shown; runs repeated, changed and cancelled."""

from __future__ import annotations

import time
from typing import Any

import pytest
from sqlalchemy import MetaData, Table, delete, insert, select, update

from govshare.compare import runner
from govshare.compare.models import CompareCase, CompareRun
from govshare.compare.schemas import CaseState, Presence, RunStatus
from govshare.security.atrest import SEALED_DOCUMENT
from govshare.sharing.store import SharedDatabase
from tests.compare.builders import (
    PensionScene,
    admin_of,
    cases,
    dead_pension,
    grant,
    granted_pension_scene,
    pension_scene,
    run,
    save,
)
from tests.factories import World

pytestmark = pytest.mark.xdist_group("compare")


@pytest.fixture
def scene(world: World) -> PensionScene:
    return granted_pension_scene(world)


def test_every_planted_case_is_found_and_nothing_else(scene: PensionScene) -> None:
    job_id = save(scene.world, scene.social, dead_pension(scene))
    done = run(scene.world, scene.social, job_id)
    assert done.status is RunStatus.SUCCEEDED, done.error
    found = cases(scene.world, job_id)
    assert {c.values["ppl.sfzhm"]: c.amount for c in found} == scene.expected
    assert all(c.presence is Presence.NEW and c.state is CaseState.PENDING for c in found)
    assert (done.hits, done.new_cases, done.gone_cases) == (3, 3, 0)
    assert done.amount == pytest.approx(sum(scene.expected.values()))
    # The snapshot is recorded: each input's store, where it stood and its rows.
    by_alias = {i["alias"]: i for i in done.inputs}
    assert by_alias["pay"]["rows"] == len(scene.pension_rows)
    # Only people with a date of death can be paid after it: the others stay out of
    # the snapshot (5 of 20).
    assert by_alias["ppl"]["rows"] == 5
    assert {c.values["ppl.swrq"] for c in found} == {"2025-02-01", "2025-02-10", "2025-02-20"}


def test_a_repeated_run_marks_nothing_new_and_a_stopped_payment_gone(
    scene: PensionScene,
) -> None:
    job_id = save(scene.world, scene.social, dead_pension(scene))
    first = run(scene.world, scene.social, job_id)
    again = run(scene.world, scene.social, job_id)
    assert again.status is RunStatus.SUCCEEDED, again.error
    assert (again.hits, again.new_cases, again.gone_cases) == (3, 0, 0)
    before = {c.id: c.values for c in cases(scene.world, job_id)}
    after = cases(scene.world, job_id)
    assert {c.id: c.values for c in after} == before
    assert {c.presence for c in after} == {Presence.STILL}
    assert {c.first_run_id for c in after} == {first.id}
    # 人社 stops the payments of the first dead person: the case is gone, not deleted.
    db = SharedDatabase.of(scene.world.hub.settings)
    try:
        table = Table(scene.pension.table_name, MetaData(), autoload_with=db.engine)
        gone_id = next(iter(scene.expected))
        with db.engine.begin() as conn:
            conn.execute(delete(table).where(table.c.sfzhm == gone_id))
    finally:
        db.close()
    third = run(scene.world, scene.social, job_id)
    assert (third.hits, third.new_cases, third.gone_cases) == (2, 0, 1)
    presence = {c.values["ppl.sfzhm"]: c.presence for c in cases(scene.world, job_id)}
    assert presence.pop(gone_id) is Presence.GONE
    assert set(presence.values()) == {Presence.STILL}


def test_outputs_are_masked_as_the_grant_says(world: World) -> None:
    s = pension_scene(world)
    grant(
        world,
        s.police,
        s.social,
        s.people.resource_id,
        ["sfzhm", "swrq"],
        masking={"sfzhm": "id_number", "swrq": "hide"},
    )
    job_id = save(world, s.social, dead_pension(s))
    assert run(world, s.social, job_id).status is RunStatus.SUCCEEDED
    found = cases(world, job_id)
    shown = sorted(c.values["ppl.sfzhm"] for c in found)
    assert shown == sorted(k[:6] + "********" + k[-4:] for k in s.expected)
    assert {c.values["ppl.swrq"] for c in found} == {"****"}
    # 人社's own items are its own: not masked.
    assert all(c.values["pay.xm"].startswith("居民") for c in found)


def test_a_grant_row_filter_limits_what_the_job_reads(world: World) -> None:
    s = pension_scene(world)
    grant(
        world,
        s.police,
        s.social,
        s.people.resource_id,
        ["sfzhm", "swrq"],
        row_filter=[{"item": "xzqh", "op": "=", "value": "370203"}],
    )
    job_id = save(world, s.social, dead_pension(s))
    done = run(world, s.social, job_id)
    # Only even-numbered people live in 370203: the first and third dead persons.
    assert {c.values["ppl.sfzhm"] for c in cases(world, job_id)} == set(list(s.expected)[0::2])
    # Of the 10 people of 370203, the 3 with a date of death are read.
    assert {i["alias"]: i["rows"] for i in done.inputs}["ppl"] == 3


def test_a_revoked_grant_fails_the_next_run_and_keeps_the_cases(scene: PensionScene) -> None:
    world = scene.world
    job_id = save(world, scene.social, dead_pension(scene))
    assert run(world, scene.social, job_id).status is RunStatus.SUCCEEDED
    from sqlalchemy import update

    from govshare.sharing.models import SharingGrant

    with world.hub.db() as s:
        s.execute(
            update(SharingGrant)
            .where(SharingGrant.consumer_department_id == scene.social.id)
            .values(revoked=True)
        )
    failed = run(world, scene.social, job_id)
    assert failed.status is RunStatus.FAILED
    assert "授权" in failed.error
    assert len(cases(world, job_id)) == 3


def test_a_cancelled_run_leaves_the_previous_cases(scene: PensionScene) -> None:
    world = scene.world
    job_id = save(world, scene.social, dead_pension(scene))
    assert run(world, scene.social, job_id).status is RunStatus.SUCCEEDED
    before = {c.id: (c.values, c.presence, c.last_run_id) for c in cases(world, job_id)}
    # Enough payments that the snapshot takes a few seconds.
    db = SharedDatabase.of(world.hub.settings)
    try:
        table = Table(scene.pension.table_name, MetaData(), autoload_with=db.engine)
        with db.engine.begin() as conn:
            conn.execute(
                insert(table),
                [
                    {
                        "rid": 10_000 + i,
                        "sfzhm": f"X{i}",
                        "xm": "某",
                        "ffrq": "2025-03-01",
                        "ffje": "1",
                    }
                    for i in range(300_000)
                ],
            )
    finally:
        db.close()
    from govshare.compare import service

    with world.hub.db() as s:
        run_id = service.start_run(s, admin_of(scene.social), job_id).id
    deadline = time.monotonic() + 30
    while True:
        with world.hub.db() as s:
            current = s.get(CompareRun, run_id)
            assert current is not None
            if current.status is RunStatus.RUNNING and current.phase.startswith("导出快照"):
                service.cancel_run(s, admin_of(scene.social), run_id)
                break
            assert not current.status.finished, current.error
        assert time.monotonic() < deadline
        time.sleep(0.05)
    ended = runner.wait(world.hub.session_factory, run_id, timeout=30)
    assert ended.status is RunStatus.CANCELLED
    assert {c.id: (c.values, c.presence, c.last_run_id) for c in cases(world, job_id)} == before
    assert not (world.hub.settings.data_dir / "compare" / f"run-{run_id}").exists()


@pytest.mark.parametrize(("normalize", "expected"), [(["id18"], 1), (["trim"], 0)])
def test_a_count_across_an_input_finds_keys_held_by_several_rows(
    scene: PensionScene, normalize: list[str], expected: int
) -> None:
    """Pensions paid three times or more to one person: one person's third payment is
    written under the 15-digit form of the number, so only folding ID numbers sees it."""
    job = dead_pension(scene, conditions=[], amount=None, case_key=["pay.sfzhm"])
    job["inputs"][1] = {**job["inputs"][0], "alias": "again", "items": ["sfzhm"]}
    job["links"] = [
        {
            "input": "again",
            "on": [{"left": "pay.sfzhm", "right": "sfzhm"}],
            "normalize": normalize,
            "count": {"op": ">=", "value": 3},
        }
    ]
    job["output"] = ["pay.sfzhm", "pay.xm"]
    job_id = save(scene.world, scene.social, job)
    done = run(scene.world, scene.social, job_id)
    assert done.status is RunStatus.SUCCEEDED, done.error
    found = cases(scene.world, job_id)
    assert len(found) == expected
    if expected:
        assert found[0].rows == 3  # the three payments, grouped as one case


def test_a_cases_values_are_kept_sealed_and_shown_opened(scene: PensionScene) -> None:
    """The persons a job finds are sealed at rest in the hub database (静态加密); the API,
    the console and the downloads show them opened. Cases stored in the clear by an
    earlier version are sealed by the job's next run without counting as changed."""
    job_id = save(scene.world, scene.social, dead_pension(scene))
    run(scene.world, scene.social, job_id)

    def stored() -> dict[int, Any]:
        with scene.world.hub.db() as s:
            rows = s.execute(
                select(CompareCase.id, CompareCase.values, CompareCase.updated_at).where(
                    CompareCase.job_id == job_id
                )
            ).all()
        return {i: (v, at) for i, v, at in rows}

    kept = stored()
    assert len(kept) == len(scene.expected)
    for values, _ in kept.values():
        assert list(values) == [SEALED_DOCUMENT]
        assert not any(number in str(values) for number in scene.expected)
    with scene.world.api(scene.social.resource_admin) as c:
        page = c.get(f"/api/v1/compare/jobs/{job_id}/cases").json()["items"]
        assert {i["values"]["ppl.sfzhm"] for i in page} == set(scene.expected)
        first = page[0]
        html = c.get(f"/compare/cases/{first['id']}").text
        assert first["values"]["ppl.sfzhm"] in html
        listed = c.get(f"/compare/jobs/{job_id}/cases").text
        assert all(number in listed for number in scene.expected)
        csv = c.get(f"/compare/jobs/{job_id}/cases.csv").content.decode("utf-8-sig")
        assert all(number in csv for number in scene.expected)
    run(scene.world, scene.social, job_id)  # found again: 仍存在
    # As an earlier version left them: in the clear.
    clear = {c.id: c.values for c in cases(scene.world, job_id)}
    with scene.world.hub.db() as s:
        for case_id, values in clear.items():
            s.execute(update(CompareCase).where(CompareCase.id == case_id).values(values=values))
    before = stored()
    assert all(SEALED_DOCUMENT not in v for v, _ in before.values())
    again = run(scene.world, scene.social, job_id)
    assert (again.hits, again.new_cases) == (len(scene.expected), 0)
    after = stored()
    for case_id, (values, at) in after.items():
        assert list(values) == [SEALED_DOCUMENT]
        assert at == before[case_id][1]  # what the case shows did not change
    assert {c.id: c.values for c in cases(scene.world, job_id)} == clear
