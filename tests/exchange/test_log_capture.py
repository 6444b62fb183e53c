"""A provider task in log mode (日志捕获) on a real PostgreSQL business database: the
first load, then every insert, update and delete from the replication slot, with no
change column and no key-set scan; the slot is advanced only once the hub has the
packages, and a node that dies between packaging and sending repeats nothing."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text

from govshare.node.pglog import lsn_number
from tests.exchange.scenario import (
    Scene,
    Source,
    drop_replication_slots,
    make_pg_source,
    make_scene,
    target_rows,
)
from tests.factories import World
from tests.pg import PostgresServer

_names = itertools.count()


@pytest.fixture
def business_url(postgres: PostgresServer, tmp_path: Path) -> Iterator[str]:
    suffix = f"{next(_names)}_{abs(hash(str(tmp_path))) % 10**6}"
    url = postgres.create_database(f"biz_capture_{suffix}")
    make_pg_source(url, 2500)
    yield url
    drop_replication_slots(url)


def _slot_confirmed(engine: Engine) -> int:
    with engine.connect() as conn:
        value = conn.execute(
            text(
                "SELECT confirmed_flush_lsn::text FROM pg_replication_slots "
                "WHERE database = current_database()"
            )
        ).scalar_one()
    return lsn_number(str(value))


def _wait_for(done: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, "never happened"
        time.sleep(0.05)


def _log_scene(world: World, tmp_path: Path, business_url: str) -> Scene:
    scene = make_scene(world, tmp_path, source_url=business_url)
    scene.node("provider")
    scene.node("consumer")
    scene.create_tasks(mode="log", cursor_column=None, delete_detection="none", batch_rows=1000)
    return scene


def test_inserts_updates_and_deletes_arrive_from_the_log(
    world: World, tmp_path: Path, business_url: str
) -> None:
    scene = _log_scene(world, tmp_path, business_url)
    try:
        scene.run_until(scene.in_sync)
        source = Source(business_url)
        source.update([10, 20], "更新")
        source.insert([5001, 5002])
        source.delete([30, 31, 5002])
        with source.engine.begin() as conn:  # the key itself changes
            conn.execute(text("UPDATE person SET id = 9000 WHERE id = 40"))
        scene.run_until(scene.in_sync)
        rows = target_rows(scene.target_url)
        assert len(rows) == 2500 + 2 - 3
        assert {r[0] for r in rows} >= {5001, 9000}
        assert not {30, 31, 40, 5002} & {r[0] for r in rows}
    finally:
        scene.close()


def test_the_slot_moves_only_after_the_hub_has_the_package(
    world: World, tmp_path: Path, business_url: str
) -> None:
    scene = _log_scene(world, tmp_path, business_url)
    provider = scene.nodes["provider"]
    task = scene.provider_task["id"]
    engine = create_engine(business_url)
    try:
        scene.run_until(scene.in_sync)
        Source(business_url).update([7], "未送达")
        rt = provider.tasks[task]

        def packaged() -> bool:
            provider.extract_batch(rt)
            return bool(provider.store.pending_counts().get(task))

        _wait_for(packaged)  # the node extracts; nothing is sent
        cursor, _, _ = provider.store.state(task)
        assert cursor is not None
        assert cursor[0] == "log"
        assert _slot_confirmed(engine) < lsn_number(cursor[1])

        # The node dies here, the package still in its outbox: a new process on the same
        # store sends it; nothing is read from the log twice.
        provider.close()
        again = scene.node("provider")
        scene.run_until(scene.in_sync)
        scene.run_until(lambda: _slot_confirmed(engine) >= lsn_number(cursor[1]))
        assert again.store.state(task)[1] == provider_seq_after(scene, task)
    finally:
        engine.dispose()
        scene.close()


def provider_seq_after(scene: Scene, task: int) -> int:
    """The hub's last package of the task: every package the node made reached it once."""
    with scene.world.api(scene.world.admin) as c:
        packages = c.get(f"/api/v1/exchange/tasks/{task}/packages").json()
    seqs = [p["seq"] for p in packages]
    assert sorted(seqs) == sorted(set(seqs)), "a package was received twice"
    return max(seqs)


def test_log_mode_needs_a_table_not_a_query(world: World, tmp_path: Path) -> None:
    scene = make_scene(world, tmp_path, rows=1)
    try:
        with world.api(world.admin) as c:
            r = c.post(
                "/api/v1/exchange/tasks",
                json={
                    "name": "日志捕获",
                    "kind": "provider",
                    "node_id": scene.node_ids["provider"],
                    "resource_id": scene.resource["id"],
                    "config": {
                        "source": "biz",
                        "query": "SELECT * FROM person",
                        "key": ["id"],
                        "mode": "log",
                    },
                },
            )
        assert r.status_code == 422
        assert "日志捕获模式须指定源表" in r.text
    finally:
        scene.close()


def test_a_source_that_cannot_be_read_by_log_is_alerted(world: World, tmp_path: Path) -> None:
    scene = make_scene(world, tmp_path, rows=10)  # SQLite has no change log to read
    try:
        provider = scene.node("provider")
        scene.create_tasks(mode="log", cursor_column=None)
        rt = None

        def failed() -> bool:
            nonlocal rt
            provider.tick()
            rt = provider.tasks.get(scene.provider_task["id"])
            return rt is not None and rt.failures > 0

        _wait_for(failed)
        assert rt is not None
        assert "sqlite 数据库不支持日志捕获" in rt.error
    finally:
        scene.close()


def test_a_task_withdrawn_from_the_node_releases_its_slot(
    world: World, tmp_path: Path, business_url: str
) -> None:
    scene = _log_scene(world, tmp_path, business_url)
    provider = scene.nodes["provider"]
    task = scene.provider_task["id"]
    engine = create_engine(business_url)
    try:
        scene.run_until(scene.in_sync)
        with engine.connect() as conn:
            count = "SELECT count(*) FROM pg_replication_slots WHERE database = current_database()"
            assert conn.execute(text(count)).scalar_one() == 1
        provider.apply_assignments([])  # the hub no longer gives the node this task
        with engine.connect() as conn:
            assert conn.execute(text(count)).scalar_one() == 0
        assert provider.store.state(task)[0] is None  # assigned again: a fresh load
    finally:
        engine.dispose()
        scene.close()
