"""Quality scans of real shared stores on both backends: every planted defect is found
and nothing else, in bounded batches; timeliness against the update cycle with an
injected clock; the cap on kept failures; the consistency hook; what is due."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from govshare.catalog.models import Resource
from govshare.quality import scan as scanning
from govshare.quality import service
from govshare.quality.models import ItemFormat, QualityProblem, QualityScan, ScanStatus
from govshare.sharing.models import SharedStore
from govshare.sharing.store import SharedDatabase
from tests.factories import World
from tests.quality.builders import StoreScene, planted, store_with_rows
from tests.sharing.builders import principal

NOW = datetime(2026, 6, 15, 9, 0, tzinfo=UTC)


@pytest.fixture
def shared(world: World) -> Iterator[SharedDatabase]:
    db = SharedDatabase.of(world.hub.settings)
    yield db
    db.close()


def _scan(scene: StoreScene, db: SharedDatabase, **kw: Any) -> tuple[QualityScan, list[Any]]:
    with scene.world.hub.db() as s:
        store = s.get(SharedStore, scene.store_id)
        assert store is not None
        scan = scanning.scan_store(s, db, store, now=kw.pop("now", NOW), **kw)
        s.flush()
        problems = [
            (p.dimension, p.item_code, p.value, p.row_key, p.rule, p.message)
            for p in s.scalars(
                select(QualityProblem)
                .where(QualityProblem.scan_id == scan.id)
                .order_by(QualityProblem.id)
            )
        ]
        s.expunge(scan)
    return scan, problems


def _norm(value: Any) -> Any:
    return None if value is None else str(value)


@pytest.mark.parametrize("batch_rows", [5, 1000])
def test_every_planted_defect_is_found_and_nothing_else(
    world: World, shared: SharedDatabase, batch_rows: int
) -> None:
    provider = world.department("公安局")
    p = planted()
    scene = store_with_rows(world, provider, p.rows, applied_at=NOW - timedelta(hours=5))
    scan, problems = _scan(scene, shared, batch_rows=batch_rows)

    found = Counter((d, item, _norm(v)) for d, item, v, *_ in problems)
    assert found == Counter((d, item, _norm(v)) for d, item, v in p.expected)
    assert scan.rows_scanned == len(p.rows) == 36
    assert (scan.completeness_checked, scan.completeness_failed) == (36, 2)
    # Seven items with a type or format rule; the two blank keys are not checked.
    assert (scan.validity_checked, scan.validity_failed) == (36 * 7 - 2, 9)
    assert (scan.uniqueness_checked, scan.uniqueness_failed) == (34, 3)
    assert scan.completeness_score == round(100 * 34 / 36, 2)
    assert scan.validity_score == round(100 * 241 / 250, 2)
    assert scan.uniqueness_score == round(100 * 31 / 34, 2)
    assert (scan.late, scan.timeliness_score) == (False, 100.0)
    assert scan.consistency_score is None  # nobody provides the authoritative values
    scores = [
        scan.completeness_score,
        scan.validity_score,
        scan.uniqueness_score,
        scan.timeliness_score,
    ]
    assert scan.overall_score == round(sum(scores) / 4, 2)  # type: ignore[arg-type]
    assert (scan.problems_kept, scan.problems_dropped) == (14, 0)

    messages = {(d, item): msg for d, item, _v, _k, _r, msg in problems}
    assert messages[("validity", "xzqh")] == "行政区划代码 999999 不在 GB/T 2260 代码表中"
    assert messages[("validity", "csrq")].endswith(
        "不是有效日期（如 2024-01-31、20240131、2024/1/31）"
    )
    assert messages[("completeness", "sfzhm")] == "必填项为空"
    # A row without its key is named by its record number instead.
    blank_keys = [k for d, item, _v, k, _r, _m in problems if d == "completeness"]
    assert all(k.isdigit() and int(k) <= 36 for k in blank_keys)


def test_the_cap_keeps_the_first_failures_and_counts_the_rest(
    world: World, shared: SharedDatabase
) -> None:
    scene = store_with_rows(world, world.department("公安局"), planted().rows, applied_at=NOW)
    full, _ = _scan(scene, shared)
    capped, problems = _scan(scene, shared, problem_cap=4)
    assert len(problems) == 4
    assert (capped.problems_kept, capped.problems_dropped) == (4, 10)
    assert capped.overall_score == full.overall_score  # the scores count every failure


def test_a_rule_edited_by_the_provider_changes_the_next_scan(
    world: World, shared: SharedDatabase
) -> None:
    provider = world.department("公安局")
    rows = planted().rows
    rows[0]["xm"] = ""
    scene = store_with_rows(world, provider, rows, applied_at=NOW)
    before, _ = _scan(scene, shared)
    with world.hub.db() as s:
        resource = s.get(Resource, scene.resource_id)
        assert resource is not None
        resource_rules = {i.code: spec for i, spec, _ in service.rules_of(s, resource)}
        assert resource_rules["sfzhm"].format is ItemFormat.CITIZEN_ID
        assert resource_rules["xb"].format is ItemFormat.SEX
        assert resource_rules["csrq"].format is ItemFormat.DATE
        assert resource_rules["xzqh"].format is ItemFormat.DIVISION
        assert resource_rules["lxdh"].format is ItemFormat.PHONE
        assert resource_rules["tyshxydm"].format is ItemFormat.CREDIT_CODE
        assert resource_rules["sfzhm"].required
        assert not resource_rules["xm"].required
        assert resource_rules["sfzhm"].max_length == 18
        service.update_rule(
            s,
            principal(provider.resource_admin, provider.id),
            resource_id=scene.resource_id,
            item_code="xm",
            spec=replace(resource_rules["xm"], required=True),
        )
    after, problems = _scan(scene, shared)
    assert after.completeness_failed == before.completeness_failed + 1
    assert ("completeness", "xm") in {(d, i) for d, i, *_ in problems}


@pytest.mark.parametrize(
    ("silent", "late"),
    [
        (timedelta(days=1), False),
        (timedelta(days=2, hours=23), False),
        (timedelta(days=3), True),
        (timedelta(days=10), True),
    ],
)
def test_a_daily_resource_silent_for_three_days_is_late(
    world: World, shared: SharedDatabase, silent: timedelta, late: bool
) -> None:
    scene = store_with_rows(
        world, world.department("公安局"), planted().rows[:3], applied_at=NOW - silent
    )
    scan, _ = _scan(scene, shared)
    assert scan.late is late
    assert scan.timeliness_score == (0.0 if late else 100.0)
    assert scan.silent_days == round(silent.total_seconds() / 86400, 2)


def test_timeliness_by_update_cycle() -> None:
    t = scanning.timeliness
    assert t("weekly", NOW - timedelta(days=8), NOW).late is False
    assert t("weekly", NOW - timedelta(days=9), NOW).late is True
    assert t("realtime", NOW - timedelta(hours=23), NOW).late is False
    assert t("monthly", NOW - timedelta(days=40), NOW).late is True
    assert t("adhoc", NOW - timedelta(days=400), NOW) == scanning.Timeliness(400.0, None, None)


def test_the_consistency_hook_scores_what_the_authoritative_source_disputes(
    world: World, shared: SharedDatabase
) -> None:
    rows = planted().rows
    rows[3]["xm"] = "李四"
    rows[7]["xm"] = "李四"
    scene = store_with_rows(world, world.department("公安局"), rows, applied_at=NOW)
    seen: list[int] = []

    def check(batch: Sequence[Mapping[str, Any]]) -> tuple[int, list[scanning.Finding]]:
        seen.append(len(batch))
        return len(batch), [
            scanning.Finding(str(r["sfzhm"]), "xm", r["xm"], "与人口库权威值“张三”不一致")
            for r in batch
            if r["xm"] == "李四"
        ]

    def provider(_s: Any, _db: Any, store: SharedStore) -> scanning.ConsistencyCheck | None:
        return check if store.id == scene.store_id else None

    scan, problems = _scan(scene, shared, batch_rows=10, consistency=provider)
    assert seen == [10, 10, 10, 6]
    assert (scan.consistency_checked, scan.consistency_failed) == (36, 2)
    assert scan.consistency_score == round(100 * 34 / 36, 2)
    assert [(d, i, v) for d, i, v, *_ in problems if d == "consistency"] == [
        ("consistency", "xm", "李四"),
        ("consistency", "xm", "李四"),
    ]


def test_due_stores_are_the_changed_and_the_stale(world: World, shared: SharedDatabase) -> None:
    scene = store_with_rows(world, world.department("公安局"), planted().rows[:5], applied_at=NOW)
    with world.hub.db() as s:
        first = scanning.run_due_scans(s, shared, NOW)
        assert scene.store_id in {x.store_id for x in first}
        assert scene.store_id not in scanning.due_stores(s, NOW + timedelta(hours=1))
        assert scene.store_id in scanning.due_stores(s, NOW + timedelta(hours=24))
        store = s.get(SharedStore, scene.store_id)
        assert store is not None
        store.applied_seq += 1  # a package arrived
        s.commit()
        again = scanning.run_due_scans(s, shared, NOW + timedelta(hours=1))
        mine = [x for x in again if x.store_id == scene.store_id]
        assert [x.trigger for x in mine] == ["feed"]
        assert scene.store_id not in scanning.due_stores(s, NOW + timedelta(hours=2))


def test_a_scan_that_fails_is_kept_as_failed_and_the_store_is_not_left_running(
    world: World, shared: SharedDatabase
) -> None:
    scene = store_with_rows(world, world.department("公安局"), planted().rows[:5], applied_at=NOW)
    assert shared.table(scene.table_name) is not None  # reflected, then taken away
    with shared.engine.begin() as conn:
        conn.exec_driver_sql(f"DROP TABLE {scene.table_name}")
    with world.hub.db() as s:
        store = s.get(SharedStore, scene.store_id)
        assert store is not None
        scan = scanning.scan_now(s, shared, store, NOW, world.hub.settings)
        assert scan.status is ScanStatus.FAILED
        assert scan.error
        assert scan.finished_at == NOW
        assert scene.store_id not in scanning.due_stores(s, NOW + timedelta(hours=1))
        assert scene.store_id in scanning.due_stores(s, NOW + timedelta(hours=24))


def test_a_running_scan_keeps_other_processes_off_until_it_is_stale(
    world: World, shared: SharedDatabase
) -> None:
    scene = store_with_rows(world, world.department("公安局"), planted().rows[:5], applied_at=NOW)
    with world.hub.db() as s:
        store = s.get(SharedStore, scene.store_id)
        assert store is not None
        s.add(
            QualityScan(
                store_id=store.id,
                resource_id=store.resource_id,
                department_id=scene.provider.id,
                trigger="schedule",
                status=ScanStatus.RUNNING,
                started_at=NOW,
                applied_seq=store.applied_seq - 1,  # behind the store: due but for the claim
            )
        )
        s.commit()
        assert scene.store_id not in scanning.due_stores(s, NOW + timedelta(minutes=30))
        assert scene.store_id in scanning.due_stores(s, NOW + timedelta(hours=2))


@pytest.mark.parametrize(
    ("message", "value", "shown", "expected"),
    [
        (
            "手机号码 1381234567 应为11位数字",
            "1381234567",
            "138****4567",
            "手机号码 138****4567 应为11位数字",
        ),
        ("1 不是有效日期", "1", "****", "**** 不是有效日期"),
        # only whole words: the code table's name keeps its "1"
        (
            "性别代码 1 不在 GB/T 2261.1 中（应为 0、1、2、9）",
            "1",
            "*",
            "性别代码 * 不在 GB/T 2261.1 中（应为 0、1、2、9）",
        ),
        ("山东省 青岛市 不是有效地址", "山东省 青岛市", "山东省****", "山东省**** 不是有效地址"),
        ("缺少必填值", None, None, "缺少必填值"),
    ],
)
def test_a_masked_value_is_masked_in_its_message_too(
    message: str, value: str | None, shown: str | None, expected: str
) -> None:
    assert service._message_masked(message, value, shown) == expected
