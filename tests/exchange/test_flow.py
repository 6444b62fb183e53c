"""Data moves from a provider's table through its node and the hub into a subscriber's
table: full load, incremental changes, deletions, reconciliation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.exchange.scenario import Scene, Source, make_scene, target_rows
from tests.factories import World


@pytest.fixture
def scene(world: World, tmp_path: Path) -> Any:
    s = make_scene(world, tmp_path, rows=1200)
    s.node("provider")
    s.node("consumer")
    s.create_tasks()
    yield s
    s.close()


def _task(scene: Scene, task_id: int) -> dict[str, Any]:
    with scene.world.api(scene.world.admin) as c:
        return c.get(f"/api/v1/exchange/tasks/{task_id}").json()


def test_full_load_then_changes_arrive(scene: Scene) -> None:
    scene.run_until(scene.in_sync)
    assert len(target_rows(scene.target_url)) == 1200
    provider = _task(scene, scene.provider_task["id"])
    assert provider["last_seq"] == 3  # 1200 rows in batches of 500
    src = Source(scene.source_url)
    src.update([5, 6, 7], "改名")
    src.insert([5001, 5002])
    scene.run_until(scene.in_sync)
    with scene.world.api(scene.world.admin) as c:
        packages = c.get(f"/api/v1/exchange/tasks/{scene.provider_task['id']}/packages").json()
    newest = packages[0]
    assert (newest["inserted"], newest["updated"], newest["deleted"]) == (2, 3, 0)


def test_deletions_found_by_keyset_comparison(scene: Scene) -> None:
    scene.run_until(scene.in_sync)
    Source(scene.source_url).delete([1, 2, 3, 100])
    with scene.world.api(scene.world.admin) as c:
        r = c.post(
            f"/api/v1/exchange/nodes/{scene.node_ids['provider']}/commands",
            json={"command": "keyset", "task_id": scene.provider_task["id"]},
        )
        assert r.status_code == 201
    scene.run_until(scene.in_sync)
    ids = [r[0] for r in target_rows(scene.target_url)]
    assert not {1, 2, 3, 100} & set(ids)
    assert len(ids) == 1196


def test_the_first_keyset_comparison_comes_a_period_after_the_initial_load(
    scene: Scene, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once the initial load has caught up, the keys it sent are the source's of moments
    ago: the node does not read them all again at once, but one period later (this
    scene's task: 3600 s), when the comparison finds what was deleted meanwhile."""
    provider, task_id = scene.nodes["provider"], scene.provider_task["id"]
    compared: list[int] = []
    detect = provider.detect_deletions

    def watched(rt: Any, keys: Any = None) -> int:
        compared.append(rt.id)
        return detect(rt, keys)

    monkeypatch.setattr(provider, "detect_deletions", watched)
    scene.run_until(scene.in_sync)
    _, _, period_from = provider.store.state(task_id)
    assert period_from > 0  # the period runs from the load's catching up
    assert compared == []
    Source(scene.source_url).delete([1, 2])
    for _ in range(5):
        provider.tick()
    assert compared == []  # within the period
    provider.store.set_keyset_time(task_id, period_from - 3600)  # the period has passed
    scene.run_until(scene.in_sync)
    assert compared == [task_id]
    assert len(target_rows(scene.target_url)) == 1198


def test_reconciliation_matches_then_detects_drift(scene: Scene) -> None:
    scene.run_until(scene.in_sync)
    with scene.world.api(scene.world.admin) as c:
        rec = c.post(f"/api/v1/exchange/tasks/{scene.provider_task['id']}/reconcile").json()[0]

    def outcome() -> str:
        with scene.world.api(scene.world.admin) as c:
            recs = c.get(
                "/api/v1/exchange/reconciliations", params={"task_id": scene.provider_task["id"]}
            ).json()
        return next(r for r in recs if r["id"] == rec["id"])["outcome"]

    scene.run_until(lambda: outcome() != "pending")
    with scene.world.api(scene.world.admin) as c:
        done = next(
            r for r in c.get("/api/v1/exchange/reconciliations").json() if r["id"] == rec["id"]
        )
    assert done["outcome"] == "match", done["detail"]
    assert done["source"]["count"] == done["target"]["count"] == 1200
    assert done["sent"] == done["received"] == {"inserted": 1200, "updated": 0, "deleted": 0}

    # Someone edits the target behind the exchange's back: the next check says so.
    from sqlalchemy import create_engine, text

    engine = create_engine(scene.target_url)
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM person_copy WHERE id = 42"))
    engine.dispose()
    with scene.world.api(scene.world.admin) as c:
        rec = c.post(f"/api/v1/exchange/tasks/{scene.provider_task['id']}/reconcile").json()[0]
    scene.run_until(lambda: outcome() != "pending")
    with scene.world.api(scene.world.admin) as c:
        done = next(
            r for r in c.get("/api/v1/exchange/reconciliations").json() if r["id"] == rec["id"]
        )
        alerts = c.get("/api/v1/exchange/alerts", params={"open_only": True}).json()
    assert done["outcome"] == "mismatch"
    assert "1199" in done["detail"]
    assert any(
        a["kind"] == "reconciliation_mismatch" and a["task_id"] == scene.subscriber_task["id"]
        for a in alerts
    )


def test_node_offline_catches_up(scene: Scene) -> None:
    scene.run_until(scene.in_sync)
    src = Source(scene.source_url)
    # The provider's node is down while the business system keeps working.
    src.insert(list(range(10_000, 60_000)))
    src.update(list(range(1, 1000)), "离线期间修改")
    assert not scene.in_sync()
    scene.run_until(scene.in_sync, timeout=120)
    assert len(target_rows(scene.target_url)) == 51_200


def test_monitor_shows_nodes_and_lag(scene: Scene) -> None:
    scene.run_until(
        lambda: _task(scene, scene.provider_task["id"])["last_seq"] >= 1, nodes=["provider"]
    )
    with scene.world.api(scene.world.admin) as c:
        summary = c.get("/api/v1/exchange/monitor").json()
    lag = next(x for x in summary["lag"] if x["task_id"] == scene.subscriber_task["id"])
    assert lag["packages_behind"] >= 1
    assert lag["rows_behind"] >= 500
    scene.run_until(scene.in_sync)
    with scene.world.api(scene.world.admin) as c:
        summary = c.get("/api/v1/exchange/monitor").json()
    lag = next(x for x in summary["lag"] if x["task_id"] == scene.subscriber_task["id"])
    assert lag["packages_behind"] == 0
    assert sum(summary["rows_received"]) >= 1200
    assert {n["id"] for n in summary["nodes"] if n["online"]} >= set(scene.node_ids.values())
