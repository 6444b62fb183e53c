"""前置机签名密钥轮换 (threat model T26): a node replaces its signing key with a request
signed by its current one. Packages signed before keep verifying, at the hub and at
every subscriber, for good; requests signed with the replaced key are accepted only for
GOVSHARE_NODE_KEY_OVERLAP_HOURS; a bad key changes nothing."""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from govshare.exchange import gatekeeper, service
from govshare.exchange.models import ExchangeNode, ExchangePackage
from govshare.exchange.package import parse
from govshare.exchange.store import PackageStore
from govshare.node.client import HubClient, HubRefused
from govshare.ops import watch
from govshare.security import crypto
from govshare.security.crypto import string_to_sign
from govshare.security.errors import BadSignature
from govshare.security.models import AuditEntry
from tests.catalog.console import csrf_of, signed_in
from tests.exchange.scenario import Scene, Source, make_scene, target_rows
from tests.factories import World


@pytest.fixture
def scene(world: World, tmp_path: Path) -> Iterator[Scene]:
    s = make_scene(world, tmp_path, rows=250)
    s.node("provider")
    s.node("consumer")
    s.create_tasks(batch_rows=100)
    yield s
    s.close()


def _node(scene: Scene, label: str = "provider") -> dict[str, Any]:
    with scene.world.hub.db() as s:
        node = service.get_node(s, scene.node_ids[label])
        return {
            "public_key": node.public_key,
            "retired_keys": list(node.retired_keys),
            "key_rotated_at": node.key_rotated_at,
        }


def age_rotation(scene: Scene, hours: float, label: str = "provider") -> None:
    """Move the node's rotations ``hours`` into the past: the hub's clock, not today's
    date, decides whether the overlap has passed."""
    with scene.world.hub.db() as s:
        node = service.get_node(s, scene.node_ids[label])
        shift = timedelta(hours=hours)
        assert node.key_rotated_at is not None
        node.key_rotated_at -= shift
        node.retired_keys = [
            {**e, "retired_at": (datetime.fromisoformat(e["retired_at"]) - shift).isoformat()}
            for e in node.retired_keys
        ]


def _old_client(scene: Scene, private: str) -> HubClient:
    client = HubClient(scene.world.hub.base_url, scene.node_ids["provider"])
    client.use_key("sm2", private)
    return client


def _hub_store(scene: Scene) -> PackageStore:
    """The package store the live hub serves from."""
    store: PackageStore = scene.world.hub.server.config.app.state.package_store
    return store


def _rotations(scene: Scene, label: str = "provider") -> list[AuditEntry]:
    with scene.world.hub.db() as s:
        return list(
            s.scalars(
                select(AuditEntry).where(
                    AuditEntry.action == "exchange.node.rotate_key",
                    AuditEntry.object_id == str(scene.node_ids[label]),
                )
            )
        )


def test_rotation_then_packages_flow_signed_with_the_new_key(scene: Scene) -> None:
    scene.run_until(scene.in_sync)
    provider = scene.nodes["provider"]
    old_public = provider.store.get("sm2.public")
    new_public = provider.rotate_key()

    assert provider.store.get("sm2.public") == new_public != old_public
    assert provider.store.get("sm2.next_private") is None
    hub = _node(scene)
    assert hub["public_key"] == new_public
    assert [e["public_key"] for e in hub["retired_keys"]] == [old_public]
    assert hub["key_rotated_at"] is not None
    (entry,) = _rotations(scene)
    assert entry.actor == f"node:{scene.node_ids['provider']}"
    assert entry.before == {"public_key": old_public}
    assert entry.after is not None
    assert entry.after["public_key"] == new_public

    with scene.world.api(scene.world.admin) as c:
        shown = c.get(f"/api/v1/exchange/nodes/{scene.node_ids['provider']}").json()
    assert datetime.fromisoformat(shown["key_rotated_at"]) == hub["key_rotated_at"]

    Source(scene.source_url).update([1, 2, 3], "轮换后")
    Source(scene.source_url).insert([901])
    scene.run_until(scene.in_sync)
    with scene.world.hub.db() as s:
        newest = s.scalars(select(ExchangePackage).order_by(ExchangePackage.id.desc())).first()
        assert newest is not None
        assert parse(_hub_store(scene).get(s, newest)).signed_by(new_public)


def _hub_last_seq(scene: Scene) -> int:
    with scene.world.hub.db() as s:
        return service.get_task(s, scene.provider_task["id"]).last_seq


def test_packages_signed_before_rotations_verify_at_hub_and_subscriber_after_them(
    scene: Scene, tmp_path: Path
) -> None:
    # The provider's packages reach the hub's log, signed with its first key; the
    # subscriber takes none of them yet.
    provider = scene.nodes["provider"]
    scene.run_until(lambda: _hub_last_seq(scene) >= 3, nodes=["provider"])
    first = provider.store.get("sm2.public")
    second = provider.rotate_key()
    Source(scene.source_url).update([4, 5], "第二把密钥")
    scene.run_until(lambda: _hub_last_seq(scene) >= 4, nodes=["provider"])
    third = provider.rotate_key()
    Source(scene.source_url).update([6], "第三把密钥")
    # Long after both rotations: the replaced keys no longer sign requests.
    age_rotation(scene, scene.world.hub.settings.node_key_overlap_hours * 3 + 1)

    # The subscriber verifies every package with the key the hub names for it.
    scene.run_until(scene.in_sync)
    rows = target_rows(scene.target_url)
    assert (rows[3][2], rows[5][2]) == ("第二把密钥", "第三把密钥")

    signers = set()
    with scene.world.hub.db() as s:
        node = service.get_node(s, scene.node_ids["provider"])
        store = _hub_store(scene)
        for row in s.scalars(
            select(ExchangePackage).where(ExchangePackage.task_id == scene.provider_task["id"])
        ):
            stored = parse(store.get(s, row))
            key = service.package_key(node, stored)
            stored.open(key)  # raises when the key does not verify it
            signers.add(key)
    assert signers == {first, second, third}

    # Gatekeeper mode hands the subscriber the verifying key with each package too.
    with scene.world.hub.db() as s:
        service.get_task(s, scene.subscriber_task["id"]).acked_seq = 0
    out = tmp_path / "ferry"
    count = gatekeeper.export_directory(
        scene.world.hub.settings, scene.world.hub.session_factory, out, scene.node_ids["consumer"]
    )
    assert count == _hub_last_seq(scene) >= 5
    for meta_path in sorted(out.glob("to-node*.json")):
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        pkg = parse(meta_path.with_suffix(".gspkg").read_bytes())
        pkg.open(meta["provider_key"], scene.nodes["consumer"].cipher_key)


def test_a_request_signed_with_the_replaced_key_works_within_the_overlap_only(
    scene: Scene,
) -> None:
    provider = scene.nodes["provider"]
    old_private = provider.store.get("sm2.private") or ""
    provider.rotate_key()
    old = _old_client(scene, old_private)
    try:
        # A process that has not switched yet keeps working during the overlap ...
        old.heartbeat(provider.report())
        # ... but a stolen old key cannot rotate the node to a key of its own.
        _, stranger_public = crypto.generate_signing_key("sm2")
        with pytest.raises(HubRefused) as refused:
            old.rotate_key(stranger_public)
        assert refused.value.status == 403
        age_rotation(scene, scene.world.hub.settings.node_key_overlap_hours + 0.1)
        with pytest.raises(HubRefused) as refused:
            old.heartbeat(provider.report())
        assert refused.value.status == 401
        provider.heartbeat()  # the new key still works
    finally:
        old.close()
    assert len(_rotations(scene)) == 1


def test_the_overlap_is_measured_on_an_injected_clock(scene: Scene) -> None:
    provider = scene.nodes["provider"]
    old_private = provider.store.get("sm2.private") or ""
    provider.rotate_key()
    settings = scene.world.hub.settings
    rotated = _node(scene)["key_rotated_at"]
    assert rotated is not None

    def verify(private: str, at: datetime) -> str:
        ts, nonce = str(int(at.timestamp())), secrets.token_hex(16)
        signed = string_to_sign("POST", "/x", ts, nonce, hashlib.sha256(b"").hexdigest())
        with scene.world.hub.db() as s:
            principal = service.principal_from_node_signature(
                s,
                settings,
                node_id=str(scene.node_ids["provider"]),
                timestamp=ts,
                nonce=nonce,
                signature=crypto.sign("sm2", private, signed).hex(),
                signed=signed,
                remote_addr=None,
                now=at,
            )
            return principal.extra["node_key"]

    overlap = timedelta(hours=settings.node_key_overlap_hours)
    new_private = provider.store.get("sm2.private") or ""
    assert verify(old_private, rotated + overlap - timedelta(minutes=1)) == service.RETIRED_KEY
    assert verify(new_private, rotated + overlap - timedelta(minutes=1)) == service.CURRENT_KEY
    with pytest.raises(BadSignature):
        verify(old_private, rotated + overlap + timedelta(minutes=1))
    assert verify(new_private, rotated + overlap * 100) == service.CURRENT_KEY


def _bad_keys(current: str, retired: str) -> list[tuple[Any, int, str]]:
    _, ed_public = crypto.generate_signing_key("ed25519")
    return [
        ("zz" * 64, 422, "invalid_input"),  # not hex
        (ed_public, 422, "invalid_input"),  # the wrong length for SM2
        ("ab" * 65, 422, "invalid_input"),
        ("00" * 64, 422, "invalid_input"),  # hex of the right length, not a curve point
        ("", 422, "invalid_input"),
        ("a" * 600, 422, "invalid_input"),
        (12345, 422, "invalid_input"),
        (None, 422, "invalid_input"),
        (current, 409, "node_key_already_current"),
        (current.upper(), 409, "node_key_already_current"),
        (retired, 422, "invalid_input"),  # a replaced key is never taken back
    ]


def test_bad_keys_are_refused_and_nothing_changes(scene: Scene) -> None:
    provider = scene.nodes["provider"]
    retired = provider.store.get("sm2.public") or ""
    provider.rotate_key()
    before = _node(scene)
    client = provider.client
    for key, status, code in _bad_keys(before["public_key"], retired):
        with pytest.raises(HubRefused) as refused:
            client._json("POST", "/api/v1/exchange/node/key", {"public_key": key})
        assert refused.value.status == status, (key, refused.value.body)
        assert refused.value.code == code, (key, refused.value.body)
        assert refused.value.body["error"]["message"]
    with pytest.raises(HubRefused) as refused:
        client._json("POST", "/api/v1/exchange/node/key", {})
    assert refused.value.status == 422
    assert _node(scene) == before
    assert len(_rotations(scene)) == 1
    provider.heartbeat()


def test_keys_list_counts_a_rotated_node_key_from_its_rotation(scene: Scene) -> None:
    scene.nodes["provider"].rotate_key()
    rotated = _node(scene)["key_rotated_at"]
    settings = scene.world.hub.settings
    with scene.world.hub.db() as s:
        name = service.get_node(s, scene.node_ids["provider"]).name
        (key,) = [k for k in watch.hub_keys(s, settings) if k.name == f"前置机 {name} 的签名密钥"]
    assert key.due == rotated + timedelta(days=settings.key_max_age_days)


def test_only_the_calling_nodes_key_changes(scene: Scene) -> None:
    consumer_before = _node(scene, "consumer")
    scene.nodes["provider"].rotate_key()
    assert _node(scene, "consumer") == consumer_before
    with scene.world.hub.db() as s:
        assert s.get(ExchangeNode, scene.node_ids["consumer"]) is not None


def test_an_administrator_ends_the_overlap_of_a_replaced_key_at_once(scene: Scene) -> None:
    """停用旧密钥: a key replaced because it may be stolen should not sign for another
    day. Ended, it is refused at once; what it signed before still verifies."""
    provider = scene.nodes["provider"]
    node_id = scene.node_ids["provider"]
    scene.run_until(lambda: _hub_last_seq(scene) >= 2, nodes=["provider"])
    first_private = provider.store.get("sm2.private") or ""
    first = provider.store.get("sm2.public") or ""
    second = provider.rotate_key()
    old = _old_client(scene, first_private)
    try:
        old.heartbeat(provider.report())  # within the overlap
        with signed_in(scene.world, scene.world.admin) as admin:
            page = admin.get(f"/exchange/nodes/{node_id}")
            assert 'id="old-keys"' in page.text
            assert first[:16] in page.text
            ended = admin.post(
                f"/exchange/nodes/{node_id}/key/end-overlap", data={"csrf_token": csrf_of(admin)}
            )
            assert ended.status_code == 303
            shown = admin.get(ended.headers["location"])
            assert "旧签名密钥已停用" in shown.text
            assert 'id="old-keys"' not in shown.text
        with pytest.raises(HubRefused) as refused:
            old.heartbeat(provider.report())
        assert refused.value.status == 401
        provider.heartbeat()  # the current key is untouched
    finally:
        old.close()

    # Over the API, for the next rotation; with nothing left to end it answers 409.
    provider.rotate_key()
    with scene.world.api(scene.world.admin) as c:
        done = c.post(f"/api/v1/exchange/nodes/{node_id}/key/end-overlap")
        assert done.status_code == 200, done.text
        assert done.json()["ended_keys"] == [second]
        again = c.post(f"/api/v1/exchange/nodes/{node_id}/key/end-overlap")
        assert again.status_code == 409
        assert again.json()["error"]["code"] == "no_key_in_overlap"
    with scene.world.api(scene.world.department("旁观局").registrar) as c:
        assert c.post(f"/api/v1/exchange/nodes/{node_id}/key/end-overlap").status_code == 403

    with scene.world.hub.db() as s:
        ends = list(
            s.scalars(
                select(AuditEntry)
                .where(
                    AuditEntry.action == "exchange.node.end_key_overlap",
                    AuditEntry.object_type == "exchange_node",
                    AuditEntry.object_id == str(node_id),
                )
                .order_by(AuditEntry.seq)
            )
        )
        assert [e.before for e in ends] == [{"public_keys": [first]}, {"public_keys": [second]}]
        node = service.get_node(s, node_id)
        signers = {
            service.package_key(node, parse(_hub_store(scene).get(s, row)))
            for row in s.scalars(
                select(ExchangePackage).where(ExchangePackage.task_id == scene.provider_task["id"])
            )
        }
    assert first in signers  # packages it signed before are still verified by it
    scene.run_until(scene.in_sync)
