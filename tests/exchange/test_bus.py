"""The exchange log on NATS JetStream: real nats-server processes, one server for the
store's contract, a three-node cluster that loses a server, and a hub that moves data
with its packages on the bus."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from nats.aio.client import Client
from nats.js.api import RawStreamMsg, StreamInfo
from sqlalchemy import func, select

from govshare.exchange.bus import STREAM, BusUnavailable, NatsStore, parse_bus_url
from govshare.exchange.models import ExchangePackage
from govshare.node.client import HubUnavailable
from tests.conftest import make_settings, migrated
from tests.exchange.scenario import Source, make_scene, target_rows
from tests.factories import World
from tests.live import start_live_hub
from tests.nats import NatsCluster, NatsServer, start_cluster, start_nats

_task_ids = itertools.count(1000)
MiB = 1024 * 1024


def package(task_id: int, seq: int, blob: bytes) -> ExchangePackage:
    """An exchange-log row as receive_package builds it (no id before the flush)."""
    return ExchangePackage(task_id=task_id, seq=seq, digest="0" * 64, size=len(blob), rows=1)


def _servers(url: str) -> list[str]:
    return parse_bus_url(url).servers


def stream_info(url: str) -> StreamInfo:
    async def go() -> StreamInfo:
        nc = Client()
        await nc.connect(_servers(url))
        try:
            return await nc.jetstream().stream_info(STREAM)
        finally:
            await nc.close()

    return asyncio.run(go())


def raw_message(url: str, seq: int) -> RawStreamMsg:
    async def go() -> RawStreamMsg:
        nc = Client()
        await nc.connect(_servers(url))
        try:
            return await nc.jetstream().get_msg(STREAM, seq=seq)
        finally:
            await nc.close()

    return asyncio.run(go())


@pytest.fixture(scope="module")
def shared_nats(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    server = start_nats(tmp_path_factory.mktemp("nats"))
    yield server
    server.stop()


@pytest.fixture
def store(shared_nats: NatsServer) -> Iterator[NatsStore]:
    s = NatsStore(shared_nats.url, timeout=5)
    yield s
    s.close()


# -- the bus URL --------------------------------------------------------------------------


def test_bus_url_lists_a_cluster_with_options() -> None:
    config = parse_bus_url("nats://10.0.0.1:4222, nats://10.0.0.2:4222,10.0.0.3:4222?timeout=3")
    assert config.servers == [
        "nats://10.0.0.1:4222",
        "nats://10.0.0.2:4222",
        "nats://10.0.0.3:4222",
    ]
    assert (config.replicas, config.timeout, config.stream) == (3, 3.0, STREAM)
    assert parse_bus_url("nats://h:4222").replicas == 1
    assert parse_bus_url("nats://a:1,nats://b:2?replicas=1&stream=X").stream == "X"
    with pytest.raises(ValueError, match="unknown option"):
        parse_bus_url("nats://h:4222?replica=3")
    with pytest.raises(ValueError, match="no NATS server"):
        parse_bus_url(" , ")


# -- one server: the store's contract -----------------------------------------------------


def test_package_goes_to_the_task_subject_with_its_message_id(
    store: NatsStore, shared_nats: NatsServer
) -> None:
    task_id, blob = next(_task_ids), os.urandom(10_000)
    row = package(task_id, 1, blob)
    row.payload = b"stale"
    store.put(None, row, blob)  # type: ignore[arg-type]
    assert row.payload is None
    assert row.bus_seq is not None
    assert store.get(None, row) == blob  # type: ignore[arg-type]
    msg = raw_message(shared_nats.url, row.bus_seq)
    assert msg.subject == f"govshare.exchange.task.{task_id}"
    assert msg.headers is not None
    assert msg.headers["Nats-Msg-Id"] == f"{task_id}-1"
    assert msg.data == blob
    info = stream_info(shared_nats.url)
    assert info.config.subjects == ["govshare.exchange.>"]
    assert info.config.storage == "file"
    assert info.config.allow_direct


@pytest.mark.parametrize("size", [5 * MiB, 64 * MiB])
def test_large_package_travels_in_parts(
    store: NatsStore, shared_nats: NatsServer, size: int
) -> None:
    task_id, blob = next(_task_ids), os.urandom(size)
    row = package(task_id, 7, blob)
    store.put(None, row, blob)  # type: ignore[arg-type]
    assert row.bus_seq is not None
    assert store.get(None, row) == blob  # type: ignore[arg-type]
    manifest = raw_message(shared_nats.url, row.bus_seq)
    assert manifest.subject == f"govshare.exchange.task.{task_id}"
    assert manifest.headers is not None
    parts = int(manifest.headers["Govshare-Parts"])
    assert parts == -(-size // (MiB - 4096))  # default 1 MiB max_payload, less header room
    assert len((manifest.data or b"").split(b",")) == parts


def test_resent_package_is_stored_once(store: NatsStore, shared_nats: NatsServer) -> None:
    task_id = next(_task_ids)
    small, large = os.urandom(1000), os.urandom(3 * MiB)
    first = [package(task_id, 1, small), package(task_id, 2, large)]
    for row, blob in zip(first, [small, large], strict=True):
        store.put(None, row, blob)  # type: ignore[arg-type]
    before = stream_info(shared_nats.url).state.messages
    again = [package(task_id, 1, small), package(task_id, 2, large)]
    for row, blob in zip(again, [small, large], strict=True):
        store.put(None, row, blob)  # type: ignore[arg-type]
    assert [r.bus_seq for r in again] == [r.bus_seq for r in first]
    assert stream_info(shared_nats.url).state.messages == before
    assert store.get(None, again[1]) == large  # type: ignore[arg-type]


def test_other_content_under_a_used_message_id_is_refused(store: NatsStore) -> None:
    task_id = next(_task_ids)
    store.put(None, package(task_id, 1, b"first version"), b"first version")  # type: ignore[arg-type]
    with pytest.raises(BusUnavailable, match="内容不同"):
        store.put(None, package(task_id, 1, b"other version"), b"other version")  # type: ignore[arg-type]


def test_get_refuses_a_message_of_another_package(store: NatsStore) -> None:
    task_id = next(_task_ids)
    row = package(task_id, 1, b"one")
    store.put(None, row, b"one")  # type: ignore[arg-type]
    wrong = package(task_id, 2, b"two")
    wrong.bus_seq = row.bus_seq  # as after the stream was recreated and sequences reused
    with pytest.raises(LookupError, match="not package"):
        store.get(None, wrong)  # type: ignore[arg-type]
    gone = package(task_id, 3, b"three")
    gone.bus_seq = 10**9
    with pytest.raises(LookupError, match="not in stream"):
        store.get(None, gone)  # type: ignore[arg-type]


def test_rows_logged_before_the_bus_keep_their_payload(store: NatsStore) -> None:
    row = package(next(_task_ids), 1, b"in the database")
    row.payload = b"in the database"
    assert store.get(None, row) == b"in the database"  # type: ignore[arg-type]


def test_many_threads_share_one_store(store: NatsStore) -> None:
    task_id = next(_task_ids)
    blobs = {seq: os.urandom(1000 + seq * 50_000) for seq in range(1, 41)}

    def put_then_get(seq: int) -> bytes:
        row = package(task_id, seq, blobs[seq])
        store.put(None, row, blobs[seq])  # type: ignore[arg-type]
        return store.get(None, row)  # type: ignore[arg-type]

    with ThreadPoolExecutor(16) as pool:
        got = dict(zip(blobs, pool.map(put_then_get, blobs), strict=True))
    assert got == blobs


def test_a_pruned_package_leaves_the_stream_with_its_parts(
    store: NatsStore, shared_nats: NatsServer
) -> None:
    task_id = next(_task_ids)
    small, large = package(task_id, 1, os.urandom(2_000)), package(task_id, 2, os.urandom(3 * MiB))
    keep = package(task_id, 3, os.urandom(2_000))
    for row, blob in ((small, os.urandom(2_000)), (large, os.urandom(3 * MiB)), (keep, b"kept")):
        store.put(None, row, blob)  # type: ignore[arg-type]
    before = stream_info(shared_nats.url).state.messages
    parts = [
        int(s) for s in (raw_message(shared_nats.url, large.bus_seq or 0).data or b"").split(b",")
    ]
    assert len(parts) == 4

    store.discard(None, small)  # type: ignore[arg-type]
    store.discard(None, large)  # type: ignore[arg-type]
    store.discard(None, large)  # type: ignore[arg-type]  # again: already gone, no error

    assert stream_info(shared_nats.url).state.messages == before - 1 - (1 + len(parts))
    for row in (small, large):
        with pytest.raises(LookupError):
            store.get(None, row)  # type: ignore[arg-type]
    assert store.get(None, keep) == b"kept"  # type: ignore[arg-type]


def test_small_server_max_payload_means_smaller_parts(tmp_path: Path) -> None:
    server = start_nats(tmp_path, max_payload=64 * 1024)
    store = NatsStore(server.url, timeout=5)
    try:
        blob = os.urandom(MiB)
        row = package(next(_task_ids), 1, blob)
        store.put(None, row, blob)  # type: ignore[arg-type]
        assert store.get(None, row) == blob  # type: ignore[arg-type]
        assert row.bus_seq is not None
        headers = raw_message(server.url, row.bus_seq).headers or {}
        assert int(headers["Govshare-Parts"]) == -(-MiB // (64 * 1024 - 4096))
    finally:
        store.close()
        server.stop()


def test_stopped_server_refuses_then_store_reconnects(tmp_path: Path) -> None:
    server = start_nats(tmp_path)
    store = NatsStore(server.url, timeout=2)
    try:
        task_id = next(_task_ids)
        kept = package(task_id, 1, b"kept")
        store.put(None, kept, b"kept")  # type: ignore[arg-type]
        server.stop()
        started = time.monotonic()
        refused = package(task_id, 2, b"refused")
        with pytest.raises(BusUnavailable, match="未能写入交换总线"):
            store.put(None, refused, b"refused")  # type: ignore[arg-type]
        assert time.monotonic() - started < 10
        assert refused.bus_seq is None
        with pytest.raises(BusUnavailable, match="未能从交换总线读取"):
            store.get(None, kept)  # type: ignore[arg-type]

        server.start().wait_healthy()  # same port and store directory
        later = package(task_id, 2, b"refused")
        deadline = time.monotonic() + 20
        while True:  # the client reconnects on its own schedule
            try:
                store.put(None, later, b"refused")  # type: ignore[arg-type]
                break
            except BusUnavailable:
                assert time.monotonic() < deadline
        assert store.get(None, kept) == b"kept"  # type: ignore[arg-type]
        assert store.get(None, later) == b"refused"  # type: ignore[arg-type]
    finally:
        store.close()
        server.stop()


def test_no_server_at_all_refuses_in_time(tmp_path: Path) -> None:
    server = NatsServer("unused", "n0", tmp_path)  # its port was never opened
    store = NatsStore(server.url, timeout=1)
    try:
        with pytest.raises(BusUnavailable):
            store.put(None, package(1, 1, b"x"), b"x")  # type: ignore[arg-type]
    finally:
        store.close()
    with pytest.raises(BusUnavailable, match="closed"):
        store.put(None, package(1, 1, b"x"), b"x")  # type: ignore[arg-type]


# -- a cluster of three ---------------------------------------------------------------------


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[NatsCluster]:
    c = start_cluster(tmp_path)
    yield c
    c.stop()


def _put_retrying(store: NatsStore, row: ExchangePackage, blob: bytes, seconds: float) -> None:
    """A node resends until accepted; so does this loop (elections take seconds)."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            store.put(None, row, blob)  # type: ignore[arg-type]
            return
        except BusUnavailable:
            assert time.monotonic() < deadline, "cluster did not take the package"


def test_cluster_survives_losing_a_server(cluster: NatsCluster) -> None:
    store = NatsStore(cluster.url, timeout=15)
    try:
        task_id = next(_task_ids)
        blobs = {seq: os.urandom(seq * 700_000) for seq in range(1, 7)}
        rows = {seq: package(task_id, seq, blob) for seq, blob in blobs.items()}
        for seq in (1, 2, 3):
            store.put(None, rows[seq], blobs[seq])  # type: ignore[arg-type]
        info = stream_info(cluster.url)
        assert info.config.num_replicas == 3
        assert info.cluster is not None
        leader = cluster.by_name(str(info.cluster.leader))

        leader.kill()  # the stream's leader crashes
        _put_retrying(store, rows[4], blobs[4], 60)
        for seq in (1, 2, 3, 4):
            assert store.get(None, rows[seq]) == blobs[seq]  # type: ignore[arg-type]

        # It comes back and catches up; then the server this client uses goes away.
        leader.start()
        cluster.wait_healthy()
        nc = store._nc
        assert nc is not None
        assert nc.connected_url is not None
        connected = next(s for s in cluster.servers if s.port == nc.connected_url.port)
        connected.kill()
        _put_retrying(store, rows[5], blobs[5], 60)
        _put_retrying(store, rows[6], blobs[6], 60)
        for seq, blob in blobs.items():
            assert store.get(None, rows[seq]) == blob  # type: ignore[arg-type]
    finally:
        store.close()


# -- a hub whose exchange log is on the bus ---------------------------------------------------


@pytest.fixture
def bus_nats(tmp_path: Path) -> Iterator[NatsServer]:
    server = start_nats(tmp_path / "nats")
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def bus_world(
    request: pytest.FixtureRequest, tmp_path: Path, bus_nats: NatsServer
) -> Iterator[World]:
    url = None
    if request.param == "postgresql":
        url = request.getfixturevalue("postgres").create_database(f"bus_{next(_task_ids)}")
    settings = migrated(make_settings(tmp_path / "hub", url, bus_url=f"{bus_nats.url}?timeout=2"))
    live = start_live_hub(settings)
    yield World(live)
    live.stop()


@pytest.fixture
def bus_scene(bus_world: World, tmp_path: Path) -> Iterator[Any]:
    scene = make_scene(bus_world, tmp_path, rows=1200)
    scene.node("provider")
    scene.node("consumer")
    scene.create_tasks()
    yield scene
    scene.close()


def _tick(scene: Any) -> None:
    for agent in scene.nodes.values():
        agent.tick()


def test_hub_moves_packages_through_the_bus(bus_scene: Any, bus_nats: NatsServer) -> None:
    scene = bus_scene
    scene.run_until(scene.in_sync)
    assert len(target_rows(scene.target_url)) == 1200
    with scene.world.hub.db() as s:
        rows = s.scalars(
            select(ExchangePackage).where(ExchangePackage.task_id == scene.provider_task["id"])
        ).all()
        assert len(rows) == 3  # 1200 rows in batches of 500
        assert all(r.payload is None and r.bus_seq is not None for r in rows)
        seqs = [r.bus_seq for r in rows]
    for seq in seqs:
        msg = raw_message(bus_nats.url, seq)
        assert msg.subject == f"govshare.exchange.task.{scene.provider_task['id']}"

    # The bus goes down: packages are refused (503), not lost; they wait in the outbox.
    bus_nats.stop()
    src = Source(scene.source_url)
    src.insert([5001, 5002])
    src.update([5, 6], "总线中断期间修改")
    provider = scene.nodes["provider"]
    provider.last_error = ""
    deadline = time.monotonic() + 30
    # The node keeps running through the outage; the refusal is its last error.
    while "bus_unavailable" not in provider.last_error or not list(provider.store.pending()):
        assert time.monotonic() < deadline, "the hub never refused the package"
        _tick(scene)
        time.sleep(0.05)
    assert not scene.in_sync()
    with scene.world.hub.db() as s:
        newest = s.scalar(
            select(func.max(ExchangePackage.seq)).where(
                ExchangePackage.task_id == scene.provider_task["id"]
            )
        )
    assert newest == 3

    bus_nats.start().wait_healthy()
    deadline = time.monotonic() + 90
    while not scene.in_sync():
        assert time.monotonic() < deadline, "exchange did not recover after the bus returned"
        with contextlib.suppress(HubUnavailable):  # until the hub has reconnected
            _tick(scene)
        time.sleep(0.05)
    with scene.world.hub.db() as s:
        rows = s.scalars(
            select(ExchangePackage).where(ExchangePackage.task_id == scene.provider_task["id"])
        ).all()
    assert len(rows) == 4
    assert all(r.payload is None and r.bus_seq is not None for r in rows)
