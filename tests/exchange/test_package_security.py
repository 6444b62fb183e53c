"""The hub trusts nothing it cannot verify: tampered, forged, replayed or skipped
packages are refused, alerted and audited, and nothing of them is applied."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from govshare.exchange import package
from govshare.node.client import HubRefused
from govshare.security import crypto
from tests.exchange.scenario import Scene, make_scene, target_rows
from tests.factories import World


@pytest.fixture
def scene(world: World, tmp_path: Path) -> Any:
    s = make_scene(world, tmp_path, rows=10)
    s.node("provider")
    s.node("consumer")
    s.create_tasks()
    yield s
    s.close()


def _build(
    scene: Scene,
    seq: int,
    *,
    rows: list[tuple[Any, ...]] | None = None,
    signer: package.Signer | None = None,
    cipher: bool = True,
    wrap: bool = False,
) -> bytes:
    agent = scene.nodes["provider"]
    rows = rows or [(1, "370202199001010011", "伪造", "1", 1)]
    body = package.encode_rows(["id", "sfzhm", "xm", "xb", "version"], ["I"] * len(rows), rows)
    return package.build(
        signer or agent.signer,
        task_id=scene.provider_task["id"],
        seq=seq,  # type: ignore[arg-type]
        columns=["id", "sfzhm", "xm", "xb", "version"],
        key=["id"],
        body=body,
        counts={"I": len(rows)},
        cipher=agent.cipher if cipher else "none",
        cipher_key=agent.cipher_key if cipher else None,
        wrap=wrap,
    )


def _upload(scene: Scene, blob: bytes) -> HubRefused:
    with pytest.raises(HubRefused) as info:
        scene.nodes["provider"].client.upload(blob)
    return info.value


def _state(scene: Scene) -> tuple[int, list[dict[str, Any]], list[dict[str, Any]]]:
    with scene.world.api(scene.world.admin) as c:
        task = c.get(f"/api/v1/exchange/tasks/{scene.provider_task['id']}").json()
        alerts = c.get("/api/v1/exchange/alerts", params={"open_only": True}).json()
    with scene.world.api(scene.world.auditor) as c:
        audit = c.get("/api/v1/audit", params={"action": "exchange.package.reject"}).json()["items"]
    return task["last_seq"], [a for a in alerts if a["kind"] == "package_rejected"], audit


def test_flipped_byte_is_refused_and_alerted(scene: Scene) -> None:
    blob = bytearray(_build(scene, 1))
    blob[-40] ^= 0x01
    err = _upload(scene, bytes(blob))
    assert err.status == 422
    assert err.code == "package_rejected"
    last_seq, alerts, audit = _state(scene)
    assert last_seq == 0
    assert any(a["node_id"] == scene.node_ids["provider"] for a in alerts)
    assert audit[0]["after"]["seq"] == 1


def test_flipped_byte_in_plaintext_body_fails_the_digest(scene: Scene) -> None:
    blob = bytearray(_build(scene, 1, cipher=False))
    blob[-40] ^= 0x01
    err = _upload(scene, bytes(blob))
    assert "digest" in str(err) or "Arrow" in str(err) or "校验" in str(err)


def test_signature_by_another_key_is_refused(scene: Scene) -> None:
    private, _ = crypto.generate_signing_key("sm2")
    forged = package.Signer(scene.node_ids["provider"], "sm2", private)
    err = _upload(scene, _build(scene, 1, signer=forged))
    assert err.code == "package_rejected"
    assert "signature" in str(err)
    assert _state(scene)[0] == 0


def test_unsigned_and_garbage_packages_are_refused(scene: Scene) -> None:
    good = package.parse(_build(scene, 1))
    unsigned = package.assemble(good.header_bytes, b"", good.body, cipher="none", cipher_key=None)
    assert _upload(scene, unsigned).code == "package_rejected"
    assert _upload(scene, b"not a package at all").code == "package_rejected"


def test_replayed_and_skipped_sequence_numbers_are_refused(scene: Scene) -> None:
    first = _build(scene, 1)
    assert scene.nodes["provider"].client.upload(first)["status"] == "accepted"
    # The same package again is a harmless resend …
    assert scene.nodes["provider"].client.upload(first)["status"] == "duplicate"
    # … but other content under a used number is a replay.
    replay = _upload(scene, _build(scene, 1, rows=[(2, "x", "重放", "1", 2)]))
    assert replay.status == 409
    assert replay.code == "sequence_conflict"
    skipped = _upload(scene, _build(scene, 3))
    assert skipped.code == "sequence_conflict"
    assert "out of order" in str(skipped)
    last_seq, alerts, _ = _state(scene)
    assert last_seq == 1
    assert alerts


def test_package_for_another_nodes_task_is_refused(scene: Scene) -> None:
    # The consumer's node signs a package for the provider's task.
    consumer = scene.nodes["consumer"]
    blob = _build(scene, 1, signer=consumer.signer, cipher=False)
    with pytest.raises(HubRefused) as info:
        consumer.client.upload(blob)
    assert info.value.code == "package_rejected"


def test_nothing_refused_reaches_the_subscriber(scene: Scene) -> None:
    blob = bytearray(_build(scene, 1))
    blob[-10] ^= 0xFF
    _upload(scene, bytes(blob))
    for _ in range(5):
        scene.nodes["consumer"].tick()
    assert target_rows(scene.target_url) == []


def test_subscriber_verifies_the_provider_signature_end_to_end(scene: Scene) -> None:
    scene.run_until(scene.in_sync)
    agent = scene.nodes["consumer"]
    got = agent.client.next_package(scene.subscriber_task["id"], 0)
    assert got is not None
    blob, provider_key = got
    parsed = package.parse(blob)
    assert parsed.open(provider_key, agent.cipher_key)
    _, other_public = crypto.generate_signing_key("sm2")
    with pytest.raises(package.PackageError, match="signature"):
        parsed.open(other_public, agent.cipher_key)


def _with_envelope(blob: bytes, **changes: Any) -> bytes:
    pkg = package.parse(blob)
    return package.head_bytes(pkg.header_bytes, pkg.signature, {**pkg.envelope, **changes}) + (
        pkg.body
    )


def test_a_body_under_a_wrapped_data_key_is_accepted_and_delivered(scene: Scene) -> None:
    blob = _build(scene, 1, wrap=True)
    assert "wrap" in package.parse(blob).envelope
    assert scene.nodes["provider"].client.upload(blob)["status"] == "accepted"
    scene.run_until(lambda: bool(target_rows(scene.target_url)))
    assert [r[2] for r in target_rows(scene.target_url)] == ["伪造"]


@pytest.mark.parametrize("where", ["body", "wrapped key", "wrapping nonce"])
def test_a_wrapped_package_changed_anywhere_is_refused(scene: Scene, where: str) -> None:
    blob = _build(scene, 1, wrap=True)
    wrap = dict(package.parse(blob).envelope["wrap"])
    if where == "body":
        changed = bytearray(blob)
        changed[-40] ^= 0x01
        blob = bytes(changed)
    else:
        field = "key" if where == "wrapped key" else "nonce"
        wrap[field] = bytes([wrap[field][0] ^ 0x01]) + wrap[field][1:]
        blob = _with_envelope(blob, wrap=wrap)
    err = _upload(scene, blob)
    assert err.code == "package_rejected"
    assert _state(scene)[0] == 0


def test_a_data_key_wrapped_under_another_key_or_sent_in_the_clear_is_refused(
    scene: Scene,
) -> None:
    agent = scene.nodes["provider"]
    blob = _build(scene, 1, wrap=True)
    pkg = package.parse(blob)
    data_key = pkg.data_key(agent.cipher_key)
    assert data_key is not None
    other = package.wrapped_key(data_key, agent.cipher, crypto.generate_cipher_key(agent.cipher))
    err = _upload(scene, _with_envelope(blob, wrap=other))
    assert "unwrapped" in str(err)
    # The hub's kept form (the key beside the body) is never taken from the wire.
    bare = {"enc": pkg.envelope["enc"], "nonce": pkg.envelope["nonce"], "data_key": data_key}
    clear = package.head_bytes(pkg.header_bytes, pkg.signature, bare) + pkg.body
    assert "in the clear" in str(_upload(scene, clear))
    assert _state(scene)[0] == 0


@pytest.mark.parametrize(
    "wrap", [{"enc": "sm4"}, ["not", "a", "map"], {"enc": "rot13", "nonce": b"x", "key": b"y"}]
)
def test_a_malformed_wrapping_is_refused_not_failed(scene: Scene, wrap: Any) -> None:
    err = _upload(scene, _with_envelope(_build(scene, 1, wrap=True), wrap=wrap))
    assert err.status == 422
    assert err.code == "package_rejected"
