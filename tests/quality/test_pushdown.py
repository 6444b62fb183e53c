"""The database's share of a quality scan (``quality.pushdown``) never changes its
result, on both backends: a value the database settles as passing is one the Python
checks accept, ordinary values are settled there, and a scan with the shortcuts comes
out exactly as one without them — numbers, failing values and their order — over
more rows than a batch, read in concurrent ranges, with duplicates across batches and
ranges, an overflowing memo, a problem cap and a consistency check."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from govshare.catalog.models import Resource
from govshare.quality import pushdown
from govshare.quality import scan as scanning
from govshare.quality.service import code_tables, rule_specs
from govshare.rules import validators as v
from govshare.sharing.models import SharedStore
from govshare.sharing.store import SharedDatabase
from tests.factories import World
from tests.quality.builders import (
    BLANKS,
    TRICKY,
    citizen_id,
    credit_code,
    messy,
    person,
    store_with_rows,
)
from tests.quality.test_scan import NOW, _scan


@pytest.fixture
def shared(world: World) -> Iterator[SharedDatabase]:
    db = SharedDatabase.of(world.hub.settings)
    yield db
    db.close()


ORDINARY = {
    "sfzhm": citizen_id(77),
    "xm": "张三",
    "xb": "2",
    "csrq": "1990-12-31",
    "xzqh": "370202",
    "lxdh": "13812345678",
    "tyshxydm": credit_code(77),
}


def test_a_value_the_database_settles_is_one_the_python_checks_accept(
    world: World, shared: SharedDatabase
) -> None:
    longest = max(len(values) for values in TRICKY.values()) + len(BLANKS)
    rows = [
        {c: (TRICKY[c] + BLANKS)[i % (len(TRICKY[c]) + len(BLANKS))] for c in TRICKY}
        for i in range(longest)
    ]
    rows.append(dict(ORDINARY))
    if shared.engine.dialect.name == "sqlite":  # PostgreSQL's text holds no NUL
        rows.append({c: v + "\x00" for c, v in ORDINARY.items()})
        rows.append(
            dict.fromkeys(ORDINARY)
            | {"xm": "x" * 40 + "\x00" + "居" * 20, "lxdh": "1381234567\x00"}
        )
    scene = store_with_rows(world, world.department("公安局"), rows, applied_at=NOW)
    table = shared.table(scene.table_name)
    assert table is not None
    with world.hub.db() as s:
        resource = s.get(Resource, scene.resource_id)
        assert resource is not None
        specs = rule_specs(s, resource)
        tables = code_tables(s, {"GB/T 2261.1"})
    checks = [
        scanning._Check(spec, tables.get(spec.code_table or "GB/T 2261.1", {}), "代码表")
        for spec in specs
    ]
    plan = scanning._Pushdown.of(shared, table, checks, None)
    with shared.engine.connect() as conn:
        found = conn.execute(
            select(*(table.c[c.spec.item_code] for c in checks), *plan.flags)
        ).all()
    settled = 0
    for row in found:
        for i, c in enumerate(checks):
            value, flag = row[i], row[len(checks) + i]
            if flag:
                settled += 1
                assert not v.is_blank(value), (c.spec.item_code, value)
                assert c.problem(value) is None, (c.spec.item_code, value)
            elif value == ORDINARY[c.spec.item_code]:
                pytest.fail(f"{c.spec.item_code} {value!r} is left to Python")
    assert settled > len(checks)


def _everything(scene: Any, db: SharedDatabase, **kw: Any) -> tuple[dict[str, Any], list[Any]]:
    scan, problems = _scan(scene, db, **kw)
    numbers = {
        k: getattr(scan, k)
        for k in (
            "rows_scanned",
            "completeness_checked",
            "completeness_failed",
            "validity_checked",
            "validity_failed",
            "uniqueness_checked",
            "uniqueness_failed",
            "consistency_checked",
            "consistency_failed",
            "overall_score",
            "problems_kept",
            "problems_dropped",
        )
    }
    return numbers, problems


@pytest.mark.parametrize(
    ("batch_rows", "problem_cap", "memo", "with_consistency"),
    [(7, 100_000, 3, False), (1000, 100_000, 20_000, False), (50, 40, 3, True)],
)
def test_the_shortcuts_change_nothing(
    world: World,
    shared: SharedDatabase,
    monkeypatch: pytest.MonkeyPatch,
    batch_rows: int,
    problem_cap: int,
    memo: int,
    with_consistency: bool,
) -> None:
    rows = messy(400) + [person() for _ in range(100)]
    scene = store_with_rows(
        world, world.department("公安局"), rows, applied_at=NOW - timedelta(hours=1)
    )
    monkeypatch.setattr(scanning, "MEMO", memo)
    batches: list[int] = []

    def check(batch: Sequence[Mapping[str, Any]]) -> tuple[int, list[scanning.Finding]]:
        batches.append(len(batch))
        return len(batch), [
            scanning.Finding(str(r["sfzhm"]), "xm", r["xm"], "与人口库权威值不一致")
            for r in batch
            if r["xm"] == "张三" and r["xb"] == "2"
        ]

    def provider(_s: Any, _db: Any, store: SharedStore) -> scanning.ConsistencyCheck | None:
        return check if with_consistency and store.id == scene.store_id else None

    kw = {"batch_rows": batch_rows, "problem_cap": problem_cap, "consistency": provider}
    # Three readers of primary-key ranges at once (a large table's way) …
    monkeypatch.setattr(scanning, "RANGES", 3)
    monkeypatch.setattr(scanning, "RANGE_MIN_ROWS", 10)
    fast = _everything(scene, shared, **kw)
    fast_batches, batches[:] = list(batches), []
    # … against one reader, every value to Python.
    monkeypatch.setattr(scanning, "RANGES", 1)
    monkeypatch.setattr(pushdown, "DIALECTS", frozenset())
    slow = _everything(scene, shared, **kw)
    assert fast == slow
    assert fast_batches == batches
    numbers, problems = fast
    assert numbers["rows_scanned"] == 500
    assert numbers["uniqueness_failed"] > 0
    assert numbers["validity_failed"] > 0
    if with_consistency:
        assert batches == [50] * 10
        assert numbers["problems_dropped"] > 0
    else:
        assert {d for d, *_ in problems} == {"completeness", "validity", "uniqueness"}
