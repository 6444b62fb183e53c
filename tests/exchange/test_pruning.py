"""交换日志清理: packages every consumer has lose their bytes once old enough, their
rows (and with them order, acknowledgements and reconciliation) stay; a package some
subscriber still lacks is kept; a subscription made after the log was pruned gets the
provider's whole table as a snapshot. Real nodes, real HTTP, both backends; "old
enough" is an injected clock forty days on, never today's date."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from govshare import db
from govshare.exchange.models import ExchangePackage, NodeCommand
from govshare.exchange.pruning import BATCH
from govshare.exchange.store import hub_store
from govshare.node.agent import NodeAgent
from govshare.node.config import Database, NodeConfig
from govshare.ops.logpruning import PackagePruner, prune_log
from govshare.security.models import AuditEntry
from tests.exchange.scenario import Scene, Source, make_scene, target_rows
from tests.factories import World

LATER = timedelta(days=40)  # past the default 30 days


@pytest.fixture
def scene(world: World, tmp_path: Path) -> Iterator[Scene]:
    s = make_scene(world, tmp_path, rows=1200)
    s.node("provider")
    s.node("consumer")
    s.create_tasks()
    yield s
    s.close()


def _packages(scene: Scene) -> list[ExchangePackage]:
    with scene.world.hub.session_factory() as s:
        return list(
            s.scalars(
                select(ExchangePackage)
                .where(ExchangePackage.task_id == scene.provider_task["id"])
                .order_by(ExchangePackage.seq)
            )
        )


def _prune(scene: Scene, now: datetime) -> list[int]:
    """Prune the hub's log (other tests' tasks too: the hub is shared) batch after
    batch; this scene's packages pruned by now."""
    settings = scene.world.hub.settings
    store = hub_store(settings)
    try:
        while True:
            with db.session_scope(scene.world.hub.session_factory) as s:
                removed = prune_log(s, store, now=now, keep_days=settings.package_log_keep_days)
            if removed < BATCH:
                break
    finally:
        store.close()
    return _pruned(scene)


def _pruned(scene: Scene) -> list[int]:
    return [p.seq for p in _packages(scene) if p.pruned_at is not None]


def test_what_every_subscriber_has_is_pruned_and_what_one_lacks_is_kept(scene: Scene) -> None:
    scene.run_until(lambda: len(_packages(scene)) == 3, nodes=["provider"])
    later = datetime.now(UTC) + LATER
    assert _prune(scene, later) == []  # the consumer has none of them yet

    scene.run_until(scene.in_sync)
    assert _prune(scene, datetime.now(UTC)) == []  # everybody has them, but they are new
    assert _prune(scene, later) == [1, 2, 3]
    packages = _packages(scene)
    assert [p.seq for p in packages] == [1, 2, 3]  # the rows stay
    assert all(p.payload is None and p.pruned_at is not None for p in packages)
    assert sum(p.inserted for p in packages) == 1200  # what reconciliation sums

    # The exchange goes on after the pruned range.
    Source(scene.source_url).update([5, 6, 7], "改名")
    scene.run_until(scene.in_sync)
    assert [p.seq for p in _packages(scene) if p.pruned_at is None] == [4]


def test_the_scheduled_pruner_keeps_everything_when_the_setting_is_zero(scene: Scene) -> None:
    scene.run_until(scene.in_sync)
    settings = scene.world.hub.settings
    store = hub_store(settings)
    try:
        keep_all = PackagePruner(
            settings.model_copy(update={"package_log_keep_days": 0}),
            scene.world.hub.session_factory,
            store,
        )
        assert keep_all.run_once(datetime.now(UTC) + timedelta(days=3650)) == 0
        assert _pruned(scene) == []
        pruner = PackagePruner(settings, scene.world.hub.session_factory, store)
        assert pruner.run_once(datetime.now(UTC) + LATER) >= 3
    finally:
        store.close()
    assert _pruned(scene) == [1, 2, 3]


def _late_subscriber(scene: Scene, tmp_path: Path) -> tuple[NodeAgent, str]:
    """A third department subscribes to the same task after the log was pruned."""
    late_dept = scene.world.department("民政")
    scene.enroll("late", late_dept)
    target = f"sqlite:///{tmp_path / 'late.db'}"
    agent = NodeAgent(
        NodeConfig(
            hub_url=scene.world.hub.base_url,
            node_id=scene.node_ids["late"],
            enrollment_token=scene.tokens["late"],
            store=tmp_path / "store-late",
            sources={},
            targets={"dst": Database(url=target)},
            heartbeat_seconds=0.2,
            tick_seconds=0.05,
        )
    )
    agent.ensure_registered()
    scene.nodes["late"] = agent
    with scene.world.api(scene.world.admin) as c:
        r = c.post(
            "/api/v1/exchange/tasks",
            json={
                "name": "人口信息接收（民政）",
                "kind": "subscriber",
                "node_id": scene.node_ids["late"],
                "resource_id": scene.resource["id"],
                "source_task_id": scene.provider_task["id"],
                "config": {
                    "target": "dst",
                    "table": "person_copy",
                    "schedule": {"interval_seconds": 0.2},
                },
            },
        )
        assert r.status_code == 201, r.text
        task: dict[str, Any] = r.json()
        assert c.post(f"/api/v1/exchange/tasks/{task['id']}/start").status_code == 200
    return agent, target


def test_a_subscription_made_after_pruning_gets_a_snapshot(scene: Scene, tmp_path: Path) -> None:
    scene.run_until(scene.in_sync)
    Source(scene.source_url).delete([1, 2])
    Source(scene.source_url).update([10], "改名")
    with scene.world.api(scene.world.admin) as c:  # the deletions go out too
        r = c.post(
            f"/api/v1/exchange/nodes/{scene.node_ids['provider']}/commands",
            json={"command": "keyset", "task_id": scene.provider_task["id"]},
        )
        assert r.status_code == 201
    scene.run_until(scene.in_sync)
    assert len(_prune(scene, datetime.now(UTC) + LATER)) == len(_packages(scene))

    _, target = _late_subscriber(scene, tmp_path / "late")
    source = Source(scene.source_url)
    scene.run_until(lambda: target_rows(target) == source.rows(), timeout=90)

    assert len(target_rows(target)) == 1198
    assert scene.in_sync()  # the first subscriber took the snapshot's rows as upserts
    with scene.world.hub.session_factory() as s:
        asked = list(
            s.scalars(
                select(NodeCommand).where(
                    NodeCommand.task_id == scene.provider_task["id"],
                    NodeCommand.command == "snapshot",
                )
            )
        )
        audited = s.scalar(
            select(AuditEntry).where(
                AuditEntry.action == "exchange.snapshot",
                AuditEntry.object_id == str(scene.provider_task["id"]),
            )
        )
    assert [c.status for c in asked] == ["done"]  # asked once, carried out
    assert audited is not None


def test_a_stopped_subscription_does_not_hold_the_log_and_resumes_from_a_snapshot(
    scene: Scene,
) -> None:
    with scene.world.api(scene.world.admin) as c:
        stopped = c.post(f"/api/v1/exchange/tasks/{scene.subscriber_task['id']}/stop")
        assert stopped.status_code == 200, stopped.text
    scene.run_until(lambda: len(_packages(scene)) == 3, nodes=["provider"])
    assert _prune(scene, datetime.now(UTC) + LATER) == [1, 2, 3]

    with scene.world.api(scene.world.admin) as c:
        started = c.post(f"/api/v1/exchange/tasks/{scene.subscriber_task['id']}/start")
        assert started.status_code == 200, started.text
    scene.run_until(scene.in_sync, timeout=90)
    assert len(target_rows(scene.target_url)) == 1200
    # The subscription resumed after package 3; the snapshot came as the packages after.
    assert [p.seq for p in _packages(scene) if p.pruned_at is None] == [4, 5, 6]
