"""Unstructured resources: folders exchanged in chunks with per-chunk digests, resumable;
and snapshot mode for tables without a change column."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from govshare.exchange import package
from govshare.node.files import safe_relative
from tests.exchange.scenario import Scene, Source, make_scene, target_rows
from tests.factories import World


def _files(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in root.rglob("*")
        if p.is_file() and ".partial" not in p.parts
    }


def _folder_scene(world: World, tmp_path: Path) -> Scene:
    scene = make_scene(world, tmp_path, rows=1)
    src, dst = tmp_path / "outgoing", tmp_path / "incoming"
    (src / "证照").mkdir(parents=True)
    (src / "营业执照.pdf").write_bytes(os.urandom(300_000))
    (src / "证照" / "说明.txt").write_text("电子证照说明", encoding="utf-8")
    (src / "empty.dat").write_bytes(b"")
    scene.node("provider", folders={"docs": src})
    scene.node("consumer", folders={"docs": dst})
    with world.api(world.admin) as c:
        p = c.post(
            "/api/v1/exchange/tasks",
            json={
                "name": "证照文件发送",
                "kind": "provider",
                "node_id": scene.node_ids["provider"],
                "resource_id": scene.resource["id"],
                "config": {
                    "folder": "docs",
                    "chunk_bytes": 65536,
                    "schedule": {"interval_seconds": 0.2},
                },
            },
        )
        assert p.status_code == 201, p.text
        s = c.post(
            "/api/v1/exchange/tasks",
            json={
                "name": "证照文件接收",
                "kind": "subscriber",
                "node_id": scene.node_ids["consumer"],
                "resource_id": scene.resource["id"],
                "source_task_id": p.json()["id"],
                "config": {"folder": "docs", "schedule": {"interval_seconds": 0.2}},
            },
        )
        assert s.status_code == 201, s.text
        for t in (p.json(), s.json()):
            c.post(f"/api/v1/exchange/tasks/{t['id']}/start").raise_for_status()
    scene.provider_task, scene.subscriber_task = p.json(), s.json()
    return scene


def test_folder_is_mirrored_with_changes_and_deletions(world: World, tmp_path: Path) -> None:
    scene = _folder_scene(world, tmp_path)
    src, dst = tmp_path / "outgoing", tmp_path / "incoming"
    try:
        scene.run_until(lambda: _files(src) == _files(dst))
        with world.api(world.admin) as c:
            packages = c.get(f"/api/v1/exchange/tasks/{scene.provider_task['id']}/packages").json()
        assert len(packages) == 5 + 1 + 1  # 300,000 bytes in 64 KiB chunks, and two small files
        (src / "证照" / "说明.txt").write_text("电子证照说明(修订)", encoding="utf-8")
        (src / "empty.dat").unlink()
        scene.run_until(lambda: _files(src) == _files(dst))
        assert not (dst / "empty.dat").exists()
        assert (dst / "证照" / "说明.txt").read_text(encoding="utf-8") == "电子证照说明(修订)"
    finally:
        scene.close()


def test_interrupted_transfer_resumes_at_the_next_chunk(world: World, tmp_path: Path) -> None:
    scene = _folder_scene(world, tmp_path)
    src, dst = tmp_path / "outgoing", tmp_path / "incoming"
    try:
        provider = scene.nodes["provider"]
        provider.heartbeat()
        rt = provider.tasks[scene.provider_task["id"]]
        from govshare.node import files

        files.run_file_provider(provider, rt, budget_seconds=0)  # stops after the first chunk
        with world.api(world.admin) as c:
            sent = c.get(f"/api/v1/exchange/tasks/{scene.provider_task['id']}/packages").json()
        assert len(sent) == 1
        provider.close()
        # The node restarts with its local store: the transfer continues where it was.
        restarted = scene.node("provider", folders={"docs": src})
        scene.nodes["provider"] = restarted
        scene.run_until(lambda: _files(src) == _files(dst))
        with world.api(world.admin) as c:
            packages = c.get(f"/api/v1/exchange/tasks/{scene.provider_task['id']}/packages").json()
        assert len(packages) == 7  # no chunk sent twice
    finally:
        scene.close()


def test_paths_that_leave_the_folder_are_refused() -> None:
    for bad in ["../etc/passwd", "/etc/passwd", "a/../../b", "a\\..\\b", ""]:
        with pytest.raises(package.PackageError):
            safe_relative(bad)
    assert str(safe_relative("证照/说明.txt")) == "证照/说明.txt"


@pytest.fixture
def snapshot_scene(world: World, tmp_path: Path) -> Any:
    s = make_scene(world, tmp_path, rows=300)
    s.node("provider")
    s.node("consumer")
    s.create_tasks(
        mode="snapshot", cursor_column=None, delete_detection="keyset", keyset_every_seconds=1
    )
    yield s
    s.close()


def test_snapshot_mode_sends_only_changed_rows(snapshot_scene: Scene) -> None:
    scene = snapshot_scene
    scene.run_until(scene.in_sync)
    from sqlalchemy import create_engine, text

    engine = create_engine(scene.source_url)
    with engine.begin() as conn:  # a table without a change column: version stays put
        conn.execute(text("UPDATE person SET xm = '快照修改' WHERE id IN (7, 8)"))
    engine.dispose()
    scene.run_until(scene.in_sync)
    Source(scene.source_url).delete([9])
    scene.run_until(scene.in_sync)
    with scene.world.api(scene.world.admin) as c:
        packages = c.get(f"/api/v1/exchange/tasks/{scene.provider_task['id']}/packages").json()
    changes = [(p["inserted"], p["updated"], p["deleted"]) for p in reversed(packages) if p["rows"]]
    assert changes[0] == (300, 0, 0)
    assert (0, 2, 0) in changes
    assert (0, 0, 1) in changes
    assert sum(p["rows"] for p in packages) == 303
    assert len(target_rows(scene.target_url)) == 299
