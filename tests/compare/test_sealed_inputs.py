"""Comparison runs over shared stores that keep their sensitive items sealed (字段加密),
both backends: the same job finds the same cases — the same people, amounts and shown
values — as over the same rows in the clear, though the key it joins on (under its
15-digit and full-width forms), the dates it compares and the names it shows are
sealed cells in the database; and a grant's row filter on sealed items (equality, a
list, a prefix) still lets the job read exactly the rows it let it read before."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pytest
from sqlalchemy import MetaData, Table, delete, insert, select

from govshare.catalog.models import Resource
from govshare.compare.models import CompareCase, CompareRun
from govshare.compare.schemas import Presence, RunStatus
from govshare.sharing.models import SharedStore
from govshare.sharing.store import SharedDatabase, seal_columns
from tests.compare.builders import (
    PensionScene,
    cases,
    dead_pension,
    grant,
    pension_scene,
    run,
    save,
)
from tests.factories import World
from tests.quality.builders import StoreScene

pytestmark = pytest.mark.xdist_group("compare")

# What the catalog marks sensitive, and the stores therefore keep sealed.
PEOPLE_SEALED = ["sfzhm", "xm", "swrq", "xzqh"]
PENSION_SEALED = ["sfzhm", "xm", "ffje"]


def seal_store(world: World, store: StoreScene, items: list[str]) -> None:
    """Mark ``items`` sensitive in the catalog and seal them in the store's table, as a
    store set up with sealing holds them after its packages (``seal_columns``)."""
    db = SharedDatabase.of(world.hub.settings)
    try:
        table = Table(store.table_name, MetaData(), autoload_with=db.engine)
        with world.hub.db() as s, db.engine.begin() as conn:
            resource = s.get(Resource, store.resource_id)
            stored = s.get(SharedStore, store.store_id)
            assert resource is not None
            assert stored is not None
            for item in resource.items:
                item.sensitive = item.code in items
            stored.sealed_items = dict.fromkeys(items, "")
            rows = [dict(r) for r in conn.execute(select(table)).mappings()]
            data = pa.Table.from_pylist(rows)
            sealer = db.sealer.under(stored.seal_key)
            data = seal_columns(sealer, stored, data, {c: c for c in items})
            conn.execute(delete(table))
            conn.execute(insert(table), data.to_pylist())
        with db.engine.connect() as conn:
            cells = [v for r in conn.execute(select(*(table.c[i] for i in items))) for v in r]
    finally:
        db.close()
    # Only sealed cells are left of the sensitive items.
    assert all(v is None or v.startswith("~") for v in cells)
    assert any(v is not None for v in cells)


def seal_scene(scene: PensionScene) -> None:
    seal_store(scene.world, scene.people, PEOPLE_SEALED)
    seal_store(scene.world, scene.pension, PENSION_SEALED)


def shown(found: list[CompareCase]) -> dict[str, tuple[dict[str, Any], float | None, int]]:
    """The cases by the person's ID number: what they show, their amount and rows."""
    return {c.values["ppl.sfzhm"]: (c.values, c.amount, c.rows) for c in found}


def read_rows(done: CompareRun) -> dict[str, int]:
    return {i["alias"]: i["rows"] for i in done.inputs}


def test_a_job_over_sealed_stores_finds_the_cases_it_found_in_the_clear(world: World) -> None:
    s = pension_scene(world)
    grant(world, s.police, s.social, s.people.resource_id, ["sfzhm", "swrq"])
    # 人社's names and amounts and 公安's date of death shown, summed and compared.
    job_id = save(world, s.social, dead_pension(s, output=["ppl.sfzhm", "pay.xm", "ppl.swrq"]))
    plain = run(world, s.social, job_id)
    assert plain.status is RunStatus.SUCCEEDED, plain.error
    before = shown(cases(world, job_id))
    assert set(before) == set(s.expected)

    seal_scene(s)
    sealed = run(world, s.social, job_id)
    assert sealed.status is RunStatus.SUCCEEDED, sealed.error
    # The same people (the cases' keyed hashes of the opened ID numbers match), nothing
    # new, nothing gone; the same values shown, amounts and rows.
    assert (sealed.hits, sealed.new_cases, sealed.gone_cases) == (3, 0, 0)
    after = cases(world, job_id)
    assert {c.presence for c in after} == {Presence.STILL}
    assert shown(after) == before
    assert {c.values["ppl.swrq"] for c in after} == {"2025-02-01", "2025-02-10", "2025-02-20"}
    assert all(c.values["pay.xm"].startswith("居民") for c in after)
    assert sealed.amount == pytest.approx(plain.amount)
    assert read_rows(sealed) == read_rows(plain)
    # The snapshot files held the opened values only while the run did.
    assert not (world.hub.settings.data_dir / "compare" / f"run-{sealed.id}").exists()

    # A job saved over the sealed stores finds the same from its first run.
    fresh = save(world, s.social, dead_pension(s, name="死亡人员仍领取养老金 (加密)"))
    first = run(world, s.social, fresh)
    assert first.status is RunStatus.SUCCEEDED, first.error
    assert {c.values["ppl.sfzhm"]: c.amount for c in cases(world, fresh)} == s.expected


# People i = 0..19 are named 居民i and live in 370202 (odd i) or 370203 (even i); the
# first five have a date of death, and of them 0, 1 and 2 were paid after it.
ROW_FILTERS: list[tuple[str, list[dict[str, Any]], list[int], int]] = [
    ("equal", [{"item": "xzqh", "op": "=", "value": "370203"}], [0, 2], 3),
    ("in", [{"item": "xzqh", "op": "in", "value": ["370202"]}], [1], 2),
    ("prefix", [{"item": "xm", "op": "prefix", "value": "居民1"}], [1], 1),
    (
        "in and prefix",
        [
            {"item": "xzqh", "op": "in", "value": ["370202", "370203"]},
            {"item": "xm", "op": "prefix", "value": "居民2"},
        ],
        [2],
        1,
    ),
]


@pytest.mark.parametrize(
    ("row_filter", "people", "rows"),
    [pytest.param(f, p, r, id=name) for name, f, p, r in ROW_FILTERS],
)
def test_a_row_filter_on_sealed_items_reads_the_rows_it_read_in_the_clear(
    world: World, row_filter: list[dict[str, Any]], people: list[int], rows: int
) -> None:
    s = pension_scene(world)
    grant(world, s.police, s.social, s.people.resource_id, ["sfzhm", "swrq"], row_filter=row_filter)
    job_id = save(world, s.social, dead_pension(s))
    dead = list(s.expected)
    plain = run(world, s.social, job_id)
    assert plain.status is RunStatus.SUCCEEDED, plain.error
    assert {c.values["ppl.sfzhm"] for c in cases(world, job_id)} == {dead[i] for i in people}
    assert read_rows(plain)["ppl"] == rows

    seal_scene(s)
    sealed = run(world, s.social, job_id)
    assert sealed.status is RunStatus.SUCCEEDED, sealed.error
    assert (sealed.hits, sealed.new_cases, sealed.gone_cases) == (len(people), 0, 0)
    assert {c.values["ppl.sfzhm"] for c in cases(world, job_id)} == {dead[i] for i in people}
    assert read_rows(sealed) == read_rows(plain)
