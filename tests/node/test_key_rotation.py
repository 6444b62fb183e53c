"""The node's side of 前置机签名密钥轮换: the new private key is used only once the hub has
taken the new public key; a node killed in between keeps working with the old key and
finishes the rotation when it starts again, even after the overlap; packages waiting
in the outbox are signed again; a running node picks up a rotation made by the
``govshare node rotate-key`` command."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from govshare.cli import app
from govshare.exchange import service
from govshare.exchange.package import parse
from govshare.node.client import HubRefused
from govshare.security import crypto
from tests.exchange.scenario import Scene, Source, make_scene
from tests.exchange.test_key_rotation import age_rotation
from tests.factories import World


@pytest.fixture
def scene(world: World, tmp_path: Path) -> Iterator[Scene]:
    s = make_scene(world, tmp_path, rows=250)
    s.node("provider")
    s.node("consumer")
    s.create_tasks(batch_rows=100)
    yield s
    s.close()


def _hub_key(scene: Scene) -> str | None:
    with scene.world.hub.db() as s:
        return service.get_node(s, scene.node_ids["provider"]).public_key


def _killed_after_the_hub_took_the_key(scene: Scene) -> tuple[str, str]:
    """Step 1 and 2 of a rotation, then the process dies: the next key is kept, the hub
    has taken it, the node never switched."""
    agent = scene.nodes.pop("provider")
    old = agent.store.get("sm2.public") or ""
    private, public = crypto.generate_signing_key("sm2")
    agent.store.put("sm2.next_private", private)
    agent.store.put("sm2.next_public", public)
    agent.client.rotate_key(public)
    agent.close()
    assert _hub_key(scene) == public
    return old, public


@pytest.mark.parametrize("late", [False, True], ids=["within-overlap", "after-overlap"])
def test_a_node_killed_before_keeping_the_hubs_answer_finishes_on_restart(
    scene: Scene, late: bool
) -> None:
    old, new = _killed_after_the_hub_took_the_key(scene)
    if late:
        age_rotation(scene, scene.world.hub.settings.node_key_overlap_hours + 1)
    again = scene.node("provider")  # ensure_registered finishes the rotation
    assert again.store.get("sm2.public") == new
    assert again.store.get("sm2.next_private") is None
    again.heartbeat()
    assert _hub_key(scene) == new
    scene.run_until(scene.in_sync)
    with scene.world.hub.db() as s:
        retired = service.get_node(s, scene.node_ids["provider"]).retired_keys
    assert [e["public_key"] for e in retired] == [old]  # rotated once, not twice


def test_a_refused_rotation_leaves_the_old_key_in_use(scene: Scene) -> None:
    agent = scene.nodes["provider"]
    old_private = agent.store.get("sm2.private")
    with scene.world.hub.db() as s:  # the hub refuses a disabled node
        node = service.get_node(s, scene.node_ids["provider"])
        node.status = service.NodeStatus.DISABLED
    with pytest.raises(HubRefused):
        agent.rotate_key()
    assert agent.store.get("sm2.private") == old_private
    assert agent.client.private_key == old_private
    with scene.world.hub.db() as s:
        service.get_node(s, scene.node_ids["provider"]).status = service.NodeStatus.ACTIVE
    agent.heartbeat()


def test_waiting_packages_are_signed_again_and_accepted_after_the_overlap(
    scene: Scene,
) -> None:
    agent = scene.nodes["provider"]
    agent.heartbeat()  # learn the tasks
    rt = agent.tasks[scene.provider_task["id"]]
    while agent.extract_batch(rt):  # queued, not sent: the hub is "unreachable"
        pass
    assert agent.store.pending_counts()[rt.id][0] == 3
    new = agent.rotate_key()
    for _, _, blob in agent.store.pending():
        assert parse(blob).signed_by(new)
    age_rotation(scene, scene.world.hub.settings.node_key_overlap_hours + 1)
    assert agent.upload_pending() == 3
    scene.run_until(scene.in_sync)


def test_a_running_node_switches_to_a_key_rotated_by_the_command(
    scene: Scene, tmp_path: Path
) -> None:
    running = scene.nodes["provider"]
    running.heartbeat()
    rt = running.tasks[scene.provider_task["id"]]
    config = tmp_path / "node.toml"
    config.write_text(
        f'hub_url = "{scene.world.hub.base_url}"\n'
        f"node_id = {scene.node_ids['provider']}\n"
        f'store = "{tmp_path / "store-provider"}"\n',
        encoding="utf-8",
    )
    # The running process queues a package with its old key after the command
    # committed the new one (it has not looked at the store yet).
    result = CliRunner().invoke(app, ["node", "rotate-key", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert "签名密钥已轮换" in result.output
    new = running.store.get("sm2.public") or ""
    assert _hub_key(scene) == new
    # New rows, so there is a batch to queue even when the heartbeat's reconciliation
    # (the hub's monitor may ask for one at any time) has moved the table already.
    Source(scene.source_url).insert(list(range(1001, 1011)))
    running.extract_batch(rt)
    *_, (_, _, blob) = running.store.pending()
    assert not parse(blob).signed_by(new)

    running.heartbeat()  # picks the new key up and signs the waiting package again
    assert running.client.private_key == running.store.get("sm2.private")
    for _, _, blob in running.store.pending():
        assert parse(blob).signed_by(new)
    age_rotation(scene, scene.world.hub.settings.node_key_overlap_hours + 1)
    scene.run_until(scene.in_sync)


def test_the_command_on_an_unregistered_node_says_so(tmp_path: Path) -> None:
    config = tmp_path / "node.toml"
    config.write_text(
        f'hub_url = "http://127.0.0.1:9"\nnode_id = 1\nstore = "{tmp_path / "s"}"\n',
        encoding="utf-8",
    )
    result = CliRunner().invoke(app, ["node", "rotate-key", "--config", str(config)])
    assert result.exit_code == 1
    assert "尚未注册" in result.output


def test_a_package_queued_with_the_old_key_by_a_process_killed_after_the_rotation(
    scene: Scene,
) -> None:
    running = scene.nodes.pop("provider")
    running.heartbeat()
    rt = running.tasks[scene.provider_task["id"]]
    other = scene.node("provider")  # as the command does, from another process
    new = other.rotate_key()
    assert running.extract_batch(rt)  # still the old key in memory ...
    running.close()  # ... and killed before it looked at the store again
    scene.nodes.pop("provider").close()

    again = scene.node("provider")
    for _, _, blob in again.store.pending():
        assert parse(blob).signed_by(new)
    age_rotation(scene, scene.world.hub.settings.node_key_overlap_hours + 1)
    scene.run_until(scene.in_sync)
