"""The hub's commands reach a node until it answers; the node answers each command id once
and keeps an answer the hub cannot take yet in its local store, across restarts."""

from __future__ import annotations

from pathlib import Path

from govshare.exchange import service
from govshare.exchange.schemas import HeartbeatIn
from govshare.node.agent import NodeAgent
from govshare.node.client import HubClient
from tests.exchange.scenario import Scene, make_scene
from tests.factories import World
from tests.pg import free_port


def _unreachable(agent: NodeAgent) -> None:
    """Point the node at a port nothing listens on, as when the hub is down."""
    agent.client.close()
    agent.client = HubClient(f"http://127.0.0.1:{free_port()}", agent.config.node_id, timeout=2)
    agent.ensure_registered()


def test_answer_kept_until_the_hub_takes_it_and_given_once(world: World, tmp_path: Path) -> None:
    scene: Scene = make_scene(world, tmp_path, rows=5)
    try:
        agent = scene.node("provider")
        with world.api(world.admin) as c:
            r = c.post(
                f"/api/v1/exchange/nodes/{scene.node_ids['provider']}/commands",
                json={"command": "collect_schema"},
            )
            assert r.status_code == 201, r.text
            command_id = r.json()["id"]
        with world.hub.db() as s:
            node = service.get_node(s, scene.node_ids["provider"])
            heartbeat = service.heartbeat(s, node, HeartbeatIn())
        cmd = next(c for c in heartbeat["commands"] if c["id"] == command_id)

        _unreachable(agent)
        agent.execute(cmd)
        agent.execute(cmd)  # delivered twice: answered once
        assert [a[0] for a in agent.store.answers()] == [command_id]
        agent.close()

        # Restarted, the node still has the answer and does not carry the command out again.
        again = NodeAgent(agent.config)
        again.ensure_registered()
        assert [a[0] for a in again.store.answers()] == [command_id]
        with world.hub.db() as s:
            node = service.get_node(s, scene.node_ids["provider"])
            resent = service.heartbeat(s, node, HeartbeatIn())
        assert [c["id"] for c in resent["commands"]] == [command_id]  # still unanswered
        again.heartbeat()
        again.send_answers()
        assert again.store.answers() == []
        with world.hub.db() as s:
            node = service.get_node(s, scene.node_ids["provider"])
            assert service.heartbeat(s, node, HeartbeatIn())["commands"] == []
            assert "biz" in node.schemas
        scene.nodes["provider"] = again
    finally:
        scene.close()
