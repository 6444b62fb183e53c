"""A node waits at the hub for a change to its tasks (``GET /node/wake``, long poll): a
task started, stopped or reconfigured in the console, or a command issued, reaches it
within a second instead of at its next heartbeat."""

from __future__ import annotations

import http.server
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from govshare.node.agent import NodeAgent
from govshare.node.client import HubClient, HubRefused
from tests.exchange.scenario import Scene, make_scene
from tests.factories import World


@pytest.fixture
def scene(world: World, tmp_path: Path) -> Iterator[Scene]:
    s = make_scene(world, tmp_path, rows=50)
    s.node("provider")
    s.node("consumer")
    s.create_tasks()
    yield s
    s.close()


def _set_state(scene: Scene, state: str) -> None:
    verb = "start" if state == "running" else "stop"
    with scene.world.api(scene.world.admin) as c:
        r = c.post(f"/api/v1/exchange/tasks/{scene.provider_task['id']}/{verb}")
        assert r.status_code == 200, r.text


def _stopped_and_heard(scene: Scene) -> NodeAgent:
    """The provider's task is stopped and its node has heard so at a heartbeat."""
    _set_state(scene, "stopped")
    provider = scene.nodes["provider"]
    provider.heartbeat()
    assert not provider.tasks[scene.provider_task["id"]].running
    assert provider.assignment_mark
    return provider


def test_a_waiting_node_hears_its_task_started_at_once(scene: Scene) -> None:
    provider = _stopped_and_heard(scene)
    provider.config = provider.config.model_copy(update={"heartbeat_seconds": 30})
    provider.next_heartbeat = time.monotonic() + 60  # the heartbeat would be far off
    with ThreadPoolExecutor(max_workers=1) as pool:
        started = time.monotonic()
        waiting = pool.submit(provider.wait_for_assignments)
        time.sleep(0.5)
        assert not waiting.done()  # nothing changed: the node waits at the hub
        _set_state(scene, "running")
        waiting.result(timeout=10)
    # Heard well before its own wait (LONG_POLL_SECONDS, 5 s) was over.
    assert time.monotonic() - started < 3
    assert provider.next_heartbeat == 0.0
    provider.tick()  # the heartbeat is due at once and brings the started task
    assert provider.tasks[scene.provider_task["id"]].running
    # Its report said "stopped"; the next one, within a second rather than 30 s, says
    # "running", so the console shows the start at once too.
    assert provider.next_heartbeat - time.monotonic() <= 1.0
    while time.monotonic() < provider.next_heartbeat:
        time.sleep(0.05)
    provider.tick()
    with scene.world.api(scene.world.admin) as c:
        node = c.get(f"/api/v1/exchange/nodes/{scene.node_ids['provider']}").json()
    assert node["report"]["tasks"][str(scene.provider_task["id"])]["state"] == "running"
    assert provider.next_heartbeat - time.monotonic() > 20  # and then its own pace again


def test_a_subscriber_waiting_for_packages_hears_a_command_at_once(scene: Scene) -> None:
    consumer = scene.nodes["consumer"]
    consumer.heartbeat()
    rt = consumer.tasks[scene.subscriber_task["id"]]
    consumer.next_heartbeat = time.monotonic() + 60
    with ThreadPoolExecutor(max_workers=1) as pool:
        started = time.monotonic()
        # Nothing has been sent yet: it waits at the hub for the first package.
        waiting = pool.submit(consumer.run_subscriber, rt)
        time.sleep(0.5)
        assert not waiting.done()
        with scene.world.api(scene.world.admin) as c:
            r = c.post(
                f"/api/v1/exchange/nodes/{scene.node_ids['consumer']}/commands",
                json={"command": "collect_schema"},
            )
            assert r.status_code == 201, r.text
        waiting.result(timeout=10)
    assert time.monotonic() - started < 3  # not its 5 s wait
    assert consumer.next_heartbeat == 0.0


def test_the_wait_ends_with_the_same_mark_when_nothing_changes(scene: Scene) -> None:
    provider = _stopped_and_heard(scene)
    started = time.monotonic()
    assert provider.client.wake(provider.assignment_mark, wait=0.6) == provider.assignment_mark
    assert time.monotonic() - started >= 0.6
    # So the node keeps to its heartbeat.
    provider.next_heartbeat = due = time.monotonic() + 0.8
    provider.wait_for_assignments()
    assert provider.next_heartbeat == due


def test_a_mark_the_hub_does_not_have_is_answered_at_once(scene: Scene) -> None:
    provider = _stopped_and_heard(scene)
    started = time.monotonic()
    mark = provider.client.wake("0" * 24, wait=20)
    assert time.monotonic() - started < 5
    assert mark == provider.assignment_mark


def test_a_command_wakes_the_node_once(scene: Scene) -> None:
    provider = _stopped_and_heard(scene)
    before = provider.assignment_mark
    with scene.world.api(scene.world.admin) as c:
        r = c.post(
            f"/api/v1/exchange/nodes/{scene.node_ids['provider']}/commands",
            json={"command": "collect_schema"},
        )
        assert r.status_code == 201, r.text
    assert provider.client.wake(before, wait=20) != before
    provider.heartbeat()  # the command is delivered: nothing waits any more
    assert provider.assignment_mark == before
    started = time.monotonic()
    assert provider.client.wake(provider.assignment_mark, wait=0.4) == before
    assert time.monotonic() - started >= 0.4


def test_a_reconfigured_task_changes_the_mark(scene: Scene) -> None:
    provider = _stopped_and_heard(scene)
    before = provider.assignment_mark
    task = scene.provider_task
    with scene.world.api(scene.world.admin) as c:
        r = c.put(
            f"/api/v1/exchange/tasks/{task['id']}",
            json={"name": task["name"], "config": task["config"] | {"batch_rows": 100}},
        )
        assert r.status_code == 200, r.text
    assert provider.client.wake(before, wait=20) != before


@pytest.mark.parametrize(
    ("params", "field"),
    [({"known": "x" * 65}, "known"), ({"wait": "31"}, "wait"), ({"wait": "-1"}, "wait")],
)
def test_bad_parameters_are_refused_with_the_error_envelope(
    scene: Scene, params: dict[str, str], field: str
) -> None:
    with pytest.raises(HubRefused) as refused:
        scene.nodes["provider"].client._send("GET", "/api/v1/exchange/node/wake", params=params)
    assert refused.value.status == 422
    assert refused.value.code == "invalid_input"
    assert field in str(refused.value.body)


def test_only_a_node_may_wait(scene: Scene) -> None:
    with scene.world.api(scene.world.admin) as c:
        r = c.get("/api/v1/exchange/node/wake")
    assert r.status_code == 403, r.text
    assert "error" in r.json()


class _OlderHub(http.server.BaseHTTPRequestHandler):
    """A hub from before ``/node/wake`` (404), or a proxy in the way: the call fails."""

    def do_GET(self) -> None:
        body = b'{"error": {"code": "not_found", "message": "Not Found"}}'
        self.send_response(404)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


def test_a_hub_that_refuses_the_call_leaves_the_node_to_its_heartbeats(scene: Scene) -> None:
    provider = _stopped_and_heard(scene)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _OlderHub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    own = provider.client
    try:
        provider.client = HubClient(f"http://127.0.0.1:{server.server_port}", own.node_id)
        assert own.sig_alg
        assert own.private_key
        provider.client.use_key(own.sig_alg, own.private_key)
        provider.next_heartbeat = due = time.monotonic() + 30
        provider.wait_for_assignments()
        assert provider.assignment_mark == ""  # asks no more until a hub gives a mark
        assert provider.next_heartbeat == due
    finally:
        provider.client.close()
        provider.client = own
        server.shutdown()
        server.server_close()
    provider.heartbeat()  # a heartbeat answer with a mark: the node waits at the hub again
    assert provider.assignment_mark
