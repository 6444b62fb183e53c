"""Failures along the way lose nothing: an unreachable subscriber database is retried
with back-off and alerted; sources and targets may be PostgreSQL; gatekeeper files."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx

from govshare.node.agent import NodeAgent
from govshare.node.config import Database, NodeConfig
from tests.conftest import TEST_SECRET
from tests.exchange.scenario import Source, make_pg_source, make_scene, target_rows
from tests.factories import World
from tests.pg import PostgresServer, free_port


def test_subscriber_database_down_is_retried_and_alerted(world: World, tmp_path: Path) -> None:
    missing_dir = tmp_path / "not-yet"
    scene = make_scene(
        world, tmp_path, rows=800, target_url=f"sqlite:///{missing_dir / 'consumer.db'}"
    )
    try:
        scene.node("provider")
        consumer = scene.node("consumer")
        scene.create_tasks()
        deadline = time.monotonic() + 20
        rt = None
        while time.monotonic() < deadline:
            for agent in scene.nodes.values():
                agent.tick()
            rt = consumer.tasks.get(scene.subscriber_task["id"])
            if rt is not None and rt.failures >= 2:
                break
            time.sleep(0.05)
        assert rt is not None
        assert rt.failures >= 2
        assert rt.next_run > time.monotonic()  # backing off
        with world.api(world.admin) as c:
            alerts = c.get("/api/v1/exchange/alerts", params={"open_only": True}).json()
        assert any(
            a["kind"] == "database_error" and a["task_id"] == scene.subscriber_task["id"]
            for a in alerts
        )
        Source(scene.source_url).update([1, 2], "宕机期间修改")
        missing_dir.mkdir()  # the database comes back
        scene.run_until(scene.in_sync)
        with world.api(world.admin) as c:
            alerts = c.get("/api/v1/exchange/alerts", params={"open_only": True}).json()
        assert not any(
            a["kind"] == "database_error" and a["task_id"] == scene.subscriber_task["id"]
            for a in alerts
        )
    finally:
        scene.close()


def test_postgresql_source_and_target(
    world: World, tmp_path: Path, postgres: PostgresServer
) -> None:
    suffix = abs(hash(str(tmp_path))) % 10**8
    source_url = postgres.create_database(f"src_{suffix}")
    target_url = postgres.create_database(f"dst_{suffix}")
    make_pg_source(source_url, 3000)
    scene = make_scene(world, tmp_path, source_url=source_url, target_url=target_url)
    try:
        scene.node("provider")
        scene.node("consumer")
        scene.create_tasks(batch_rows=1000)
        scene.run_until(scene.in_sync)
        src = Source(source_url)
        src.update([10, 20], "更新")
        src.delete([30, 31])
        scene.nodes["provider"].detect_deletions(
            scene.nodes["provider"].tasks[scene.provider_task["id"]]
        )
        scene.run_until(scene.in_sync)
        assert len(target_rows(target_url)) == 2998
    finally:
        scene.close()


def _cli(*args: str, data_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {"GOVSHARE_SECRET_KEY": TEST_SECRET, "PATH": "/usr/bin:/bin"}
    return subprocess.run(
        [sys.executable, "-m", "govshare.cli", *args, "--data-dir", str(data_dir)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def _node_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "govshare.cli", "node", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def test_gatekeeper_folders_carry_packages_both_ways(world: World, tmp_path: Path) -> None:
    if world.hub.backend != "sqlite":
        return  # the hub CLI below works on the data dir; the PostgreSQL hub is covered online
    scene = make_scene(world, tmp_path, rows=700)
    try:
        scene.node("provider")
        scene.node("consumer")
        scene.create_tasks()
        # Both nodes learn their tasks online once; afterwards only files cross.
        for agent in scene.nodes.values():
            agent.heartbeat()
        provider = scene.nodes["provider"]
        rt = provider.tasks[scene.provider_task["id"]]
        while provider.extract_batch(rt):
            pass
        outgoing = tmp_path / "ferry-out"
        assert provider.export_packages(outgoing) == 2
        # One file is damaged on the way: it is refused, the other is accepted.
        files = sorted(outgoing.glob("*.gspkg"))
        damaged = bytearray(files[1].read_bytes())
        damaged[-20] ^= 0x01
        files[1].write_bytes(bytes(damaged))
        result = _cli(
            "exchange", "import-packages", str(outgoing), data_dir=world.hub.settings.data_dir
        )
        assert result.returncode == 1
        assert "拒收" in result.stderr
        assert files[1].exists()
        assert not files[0].exists()
        incoming = tmp_path / "ferry-in"
        result = _cli(
            "exchange",
            "export-packages",
            str(incoming),
            "--node",
            str(scene.node_ids["consumer"]),
            data_dir=world.hub.settings.data_dir,
        )
        assert result.returncode == 0, result.stderr
        consumer = scene.nodes["consumer"]
        assert consumer.import_packages(incoming) == 1
        assert len(target_rows(scene.target_url)) == 500
        assert (
            _cli(
                "exchange", "import-packages", str(incoming), data_dir=world.hub.settings.data_dir
            ).returncode
            == 0
        )
        with world.api(world.admin) as c:
            task = c.get(f"/api/v1/exchange/tasks/{scene.subscriber_task['id']}").json()
        assert task["acked_seq"] == 1
    finally:
        scene.close()


def test_node_cli_reports_bad_config(tmp_path: Path) -> None:
    bad = tmp_path / "node.toml"
    bad.write_text('hub_url = "http://127.0.0.1:1"\nnode_id = "x"\n', encoding="utf-8")
    result = _node_cli("run", "--config", str(bad))
    assert result.returncode == 2
    assert "node_id" in result.stderr
    missing = _node_cli("run", "--config", str(tmp_path / "nope.toml"))
    assert "配置文件不存在" in missing.stderr


def test_schema_collection_feeds_a_catalog_draft(world: World, tmp_path: Path) -> None:
    scene = make_scene(world, tmp_path, rows=5)
    try:
        agent = scene.node("provider")
        with world.api(world.admin) as c:
            c.post(
                f"/api/v1/exchange/nodes/{scene.node_ids['provider']}/commands",
                json={"command": "collect_schema"},
            ).raise_for_status()
        agent.heartbeat()
        with world.api(world.admin) as c:
            schemas = c.get(f"/api/v1/exchange/nodes/{scene.node_ids['provider']}/schemas").json()
        person = schemas["biz"]["person"]
        assert [col["name"] for col in person["columns"]] == ["id", "sfzhm", "xm", "xb", "version"]
        assert person["key"] == ["id"]
        with world.api(scene.provider.registrar) as c:
            r = c.post(
                "/api/v1/exchange/resources/from-table",
                json={
                    "node_id": scene.node_ids["provider"],
                    "source": "biz",
                    "table": "person",
                    "classification_code": "101001",
                    "name": "人口表(自动编目)",
                    "abstract": "由前置机采集的表结构生成",
                },
            )
        assert r.status_code == 201, r.text
        items = {i["code"]: i for i in r.json()["items"]}
        assert items["id"]["data_type"] == "I"
        assert items["id"]["is_key"] is True
        assert items["xm"]["data_type"] == "C"
    finally:
        scene.close()


def test_folder_transport_node_never_calls_the_hub(tmp_path: Path) -> None:
    config = NodeConfig(
        hub_url="http://127.0.0.1:9",
        node_id=1,
        store=tmp_path / "s",
        transport="folder",
        sources={"biz": Database(url="sqlite://")},
    )
    agent = NodeAgent(config)
    agent.tick()  # no heartbeat, no upload: nothing to connect to, nothing raised
    agent.close()


def test_tasks_resume_as_soon_as_the_hub_answers_again(world: World, tmp_path: Path) -> None:
    scene = make_scene(world, tmp_path, rows=50)
    try:
        consumer = scene.node("consumer")
        scene.create_tasks()
        consumer.tick()  # learns its task
        rt = consumer.tasks[scene.subscriber_task["id"]]
        hub = consumer.client.http.base_url
        # The hub goes away (nothing listens on that port) long enough for the task's
        # back-off to grow past what a restarting hub needs.
        consumer.client.http.base_url = httpx.URL(f"http://127.0.0.1:{free_port()}")
        while rt.failures < 6:
            rt.next_run = 0.0
            consumer.tick()
        assert rt.next_run - time.monotonic() > 10
        consumer.client.http.base_url = hub  # the hub is back
        consumer.next_heartbeat = 0.0
        consumer.tick()
        assert rt.failures == 0, rt.error  # ran in this very tick, not 16-30 s later
    finally:
        scene.close()
