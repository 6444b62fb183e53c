"""Options a deployment or a task chooses: algorithms, soft deletes, column mapping and
code conversion, exchange domains."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from tests.conftest import make_settings, migrated
from tests.exchange.scenario import Scene, Source, make_scene, target_rows
from tests.factories import World
from tests.live import start_live_hub


@pytest.fixture
def intl_world(tmp_path: Path) -> Iterator[World]:
    """A hub deployed with international algorithms instead of the national ones."""
    settings = migrated(
        make_settings(
            tmp_path / "hub",
            exchange_signature="ed25519",
            exchange_digest="sha256",
            exchange_cipher="aes",
        )
    )
    live = start_live_hub(settings)
    yield World(live)
    live.stop()


def test_international_algorithms_are_a_deployment_setting(
    intl_world: World, tmp_path: Path
) -> None:
    scene = make_scene(intl_world, tmp_path, rows=600)
    try:
        provider = scene.node("provider")
        scene.node("consumer")
        scene.create_tasks()
        assert provider.signer is not None
        assert (provider.signer.sig_alg, provider.signer.digest_alg, provider.cipher) == (
            "ed25519",
            "sha256",
            "aes",
        )
        scene.run_until(scene.in_sync)
        from govshare.exchange import package

        blob = scene.nodes["consumer"].client.next_package(scene.subscriber_task["id"], 0)
        assert blob is not None
        parsed = package.parse(blob[0])
        assert parsed.header["sig_alg"] == "ed25519"
        assert parsed.header["digest_alg"] == "sha256"
        assert parsed.envelope["enc"] == "aes"
    finally:
        scene.close()


@pytest.fixture
def soft_scene(world: World, tmp_path: Path) -> Iterator[Scene]:
    scene = make_scene(world, tmp_path, rows=200)
    engine = create_engine(scene.source_url)
    with engine.begin() as conn:
        conn.execute(text("ALTER TABLE person ADD COLUMN deleted INTEGER NOT NULL DEFAULT 0"))
    engine.dispose()
    scene.node("provider")
    scene.node("consumer")
    scene.create_tasks(
        delete_detection="soft_delete", soft_delete_column="deleted", soft_delete_value="1"
    )
    yield scene
    scene.close()


def test_soft_deleted_rows_are_deleted_downstream(soft_scene: Scene) -> None:
    scene = soft_scene

    def live_rows() -> list[tuple[Any, ...]]:
        return list(Source(scene.source_url).rows())

    scene.run_until(lambda: len(target_rows(scene.target_url)) == 200)
    engine = create_engine(scene.source_url)
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE person SET deleted = 1, version = 1000 + id WHERE id IN (3, 4, 5)")
        )
    engine.dispose()
    scene.run_until(lambda: len(target_rows(scene.target_url)) == 197)
    ids = {r[0] for r in target_rows(scene.target_url)}
    assert not ids & {3, 4, 5}
    assert len(live_rows()) == 200  # the business row stays, marked deleted


def test_mapping_and_code_conversion(world: World, tmp_path: Path) -> None:
    scene = make_scene(world, tmp_path, rows=50)
    try:
        scene.node("provider")
        scene.node("consumer")
        with world.api(world.admin) as c:
            p = c.post(
                "/api/v1/exchange/tasks",
                json={
                    "name": "人口发送",
                    "kind": "provider",
                    "node_id": scene.node_ids["provider"],
                    "resource_id": scene.resource["id"],
                    "config": {
                        "source": "biz",
                        "table": "person",
                        "key": ["id"],
                        "cursor_column": "version",
                        "columns": ["id", "sfzhm", "xm", "xb", "version"],
                        "schedule": {"interval_seconds": 0.2},
                    },
                },
            ).json()
            s = c.post(
                "/api/v1/exchange/tasks",
                json={
                    "name": "人口接收",
                    "kind": "subscriber",
                    "node_id": scene.node_ids["consumer"],
                    "resource_id": scene.resource["id"],
                    "source_task_id": p["id"],
                    "config": {
                        "target": "dst",
                        "table": "rk",
                        "mapping": {"id": "bh", "sfzhm": "gmsfhm", "xb": "xbmc"},
                        "code_maps": {"xb": {"1": "男", "2": "女"}},
                        "schedule": {"interval_seconds": 0.2},
                    },
                },
            ).json()
            for t in (p, s):
                c.post(f"/api/v1/exchange/tasks/{t['id']}/start").raise_for_status()

        def arrived() -> bool:
            engine = create_engine(scene.target_url)
            try:
                with engine.connect() as conn:
                    if not engine.dialect.has_table(conn, "rk"):
                        return False
                    return conn.execute(text("SELECT count(*) FROM rk")).scalar_one() == 50
            finally:
                engine.dispose()

        scene.run_until(arrived)
        engine = create_engine(scene.target_url)
        with engine.connect() as conn:
            rows = conn.execute(
                text("SELECT bh, gmsfhm, xm, xbmc FROM rk ORDER BY bh LIMIT 2")
            ).all()
        engine.dispose()
        assert [tuple(r) for r in rows] == [
            (1, "370202199001010001", "姓名1", "男"),
            (2, "370202199001010002", "姓名2", "女"),
        ]
    finally:
        scene.close()


def test_exchange_domains(world: World) -> None:
    a, b = world.department("市场监管"), world.department("卫健")
    with world.api(world.admin) as c:
        r = c.post(
            "/api/v1/exchange/domains",
            json={
                "name": f"食品安全交换域{a.id}",
                "description": "食品安全主题",
                "department_ids": [a.id, b.id],
            },
        )
        assert r.status_code == 201
        assert sorted(r.json()["department_ids"]) == sorted([a.id, b.id])
        dup = c.post("/api/v1/exchange/domains", json={"name": f"食品安全交换域{a.id}"})
        assert dup.status_code == 422
        bad = c.post("/api/v1/exchange/domains", json={"name": "坏域", "department_ids": [999999]})
        assert bad.json()["error"]["details"][0]["field"] == "department_ids"
    with world.api(a.registrar) as c:
        assert c.post("/api/v1/exchange/domains", json={"name": "越权域"}).status_code == 403
