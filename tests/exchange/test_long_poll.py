"""A subscriber may wait at the hub for its next package (long poll): the hub answers as
soon as the provider's package is accepted, or with 204 when the wait is over."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from govshare.exchange import package
from tests.exchange.scenario import Scene, make_scene
from tests.factories import World


@pytest.fixture
def scene(world: World, tmp_path: Path) -> Any:
    s = make_scene(world, tmp_path, rows=300)
    s.node("provider")
    s.node("consumer")
    s.create_tasks()
    yield s
    s.close()


def test_waiting_subscriber_gets_the_package_as_it_arrives(scene: Scene) -> None:
    consumer = scene.nodes["consumer"]
    consumer.tick()  # learns its task
    task_id = scene.subscriber_task["id"]
    with ThreadPoolExecutor(max_workers=1) as pool:
        started = time.monotonic()
        waiting = pool.submit(consumer.client.next_package, task_id, 0, wait=20)
        time.sleep(0.3)
        assert not waiting.done()
        scene.run_until(lambda: waiting.done(), nodes=["provider"], timeout=15)
        got = waiting.result()
    assert got is not None
    assert time.monotonic() - started < 15
    pkg = package.parse(got[0])
    assert pkg.seq == 1
    assert package.decode_rows(pkg.open(got[1], consumer.cipher_key)).num_rows == 300


def test_wait_ends_with_no_content(scene: Scene) -> None:
    consumer = scene.nodes["consumer"]
    consumer.tick()
    started = time.monotonic()
    assert consumer.client.next_package(scene.subscriber_task["id"], 0, wait=0.4) is None
    assert time.monotonic() - started >= 0.4


def test_subscriber_waits_no_longer_than_its_next_heartbeat(scene: Scene) -> None:
    consumer = scene.nodes["consumer"]
    consumer.tick()
    rt = consumer.tasks[scene.subscriber_task["id"]]
    consumer.next_heartbeat = time.monotonic() + 0.15
    assert 0 < consumer._poll_wait(rt) <= 0.15
    consumer.next_heartbeat = time.monotonic() - 1
    assert consumer._poll_wait(rt) == 0
