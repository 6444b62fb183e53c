"""A node's one-time registration survives the node being killed half way: when the hub
has taken the token but the node never kept the answer, the restarted node gets the same
answer again by proving it holds the registered key; the token alone gets nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from govshare.exchange import service
from govshare.node.agent import NodeAgent
from govshare.node.client import HubRefused
from govshare.node.config import Database, NodeConfig
from govshare.security import crypto
from tests.exchange.scenario import Scene, make_scene
from tests.factories import World


def _config(scene: Scene, label: str) -> NodeConfig:
    return NodeConfig(
        hub_url=scene.world.hub.base_url,
        node_id=scene.node_ids[label],
        enrollment_token=scene.tokens[label],
        store=scene.tmp / f"store-{label}",
        sources={"biz": Database(url=scene.source_url)},
        targets={"dst": Database(url=scene.target_url)},
    )


def test_node_killed_after_the_hub_took_its_registration_registers_on_restart(
    world: World, tmp_path: Path
) -> None:
    scene = make_scene(world, tmp_path, rows=5)
    config = _config(scene, "provider")
    first = NodeAgent(config)
    # The hub commits the registration; the node dies before keeping the answer.
    told = first.client.register(config.enrollment_token or "", first.ensure_keys())
    first.close()

    again = NodeAgent(config)
    again.ensure_registered()
    assert again.store.get("sig_alg") == told["sig_alg"]
    assert again.store.get("cipher") == told["cipher"]
    assert (again.store.get("cipher_key") or None) == told["cipher_key"]
    again.heartbeat()  # signed with the registered key: the hub knows the node
    with world.hub.db() as s:
        node = service.get_node(s, scene.node_ids["provider"])
        assert node.online
    again.close()


def test_the_spent_token_alone_learns_nothing(world: World, tmp_path: Path) -> None:
    scene = make_scene(world, tmp_path, rows=5)
    config = _config(scene, "provider")
    agent = NodeAgent(config)
    agent.ensure_registered()
    public = {alg: agent.store.get(f"{alg}.public") or "" for alg in ("sm2", "ed25519")}
    with pytest.raises(HubRefused) as refused:
        agent.client.register(config.enrollment_token or "", public)
    assert refused.value.status == 401

    # Someone with the token and the (public) keys but another private key is refused
    # the recovery too, and the node is not told anything.
    stranger = NodeAgent(_config(scene, "provider").model_copy(update={"store": tmp_path / "x"}))
    private, _ = crypto.generate_signing_key(agent.store.get("sig_alg") or "sm2")
    stranger.client.use_key(agent.store.get("sig_alg") or "sm2", private)
    with pytest.raises(HubRefused) as refused:
        stranger.client.recover_registration()
    assert refused.value.status == 401
    with pytest.raises(HubRefused):
        stranger.ensure_registered()
    assert stranger.store.get("sig_alg") is None
    agent.close()
    stranger.close()
