"""静态加密: the hub keeps the packages of its exchange log sealed with the data dir's
at-rest key (the rows in them are in the clear once the provider's signature is
checked); subscribers still get every package, across a key rotation, and packages
logged before sealing existed are still served. Real nodes, real HTTP, both backends."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select, update

from govshare.config import Settings
from govshare.exchange import package, service
from govshare.exchange.models import ExchangeNode, ExchangePackage
from govshare.exchange.package import PackageError, parse
from govshare.exchange.store import hub_store, keep
from govshare.security import atrest, crypto
from govshare.security.atrest import AtRestCipher, AtRestKeyError
from tests.clirun import hub_cli
from tests.exchange.scenario import Scene, Source, make_scene
from tests.factories import World


@pytest.fixture
def scene(world: World, tmp_path: Path) -> Iterator[Scene]:
    s = make_scene(world, tmp_path, rows=700)
    s.node("provider")
    s.node("consumer")
    s.create_tasks()
    yield s
    s.close()


def _payloads(scene: Scene) -> dict[int, bytes]:
    with scene.world.hub.session_factory() as s:
        rows = s.execute(
            select(ExchangePackage.seq, ExchangePackage.payload).where(
                ExchangePackage.task_id == scene.provider_task["id"]
            )
        )
        return {seq: bytes(payload) for seq, payload in rows}


def _key_id(blob: bytes) -> str:
    key_id = atrest.sealed_with(blob)
    assert key_id is not None
    return key_id


def _cipher(settings: Settings) -> AtRestCipher:
    return AtRestCipher(settings.data_dir, settings.secret_key, "sm4")


def test_packages_are_sealed_at_rest_and_still_delivered(scene: Scene) -> None:
    scene.run_until(scene.in_sync)
    settings = scene.world.hub.settings
    payloads = _payloads(scene)
    assert sorted(payloads) == [1, 2]  # 700 rows in batches of 500
    cipher = _cipher(settings)
    for blob in payloads.values():
        assert atrest.is_sealed(blob)
        with pytest.raises(PackageError):
            parse(blob)  # not a package any more: its rows are not readable
        opened = parse(cipher.open(blob))  # the provider's package, its signature intact
        assert opened.seq in payloads
        # Its body is kept under a data key of its own; that key is only in the sealed head.
        data_key = opened.envelope["data_key"]
        assert data_key.encode() not in blob
        assert bytes.fromhex(data_key) not in blob
        plain = opened.plaintext()
        assert plain[-256:] not in blob
        assert opened.body in blob  # the body as it is kept, not sealed a second time
    key_file = atrest.key_path(settings.data_dir)
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert settings.secret_key not in key_file.read_text()


def test_after_a_rotation_old_and_new_packages_are_served(scene: Scene) -> None:
    scene.run_until(scene.in_sync)
    settings = scene.world.hub.settings
    first = _payloads(scene)
    run = hub_cli(settings, "keys", "rotate", "at-rest", "--alg", "aes")
    assert run.returncode == 0, run.stderr
    assert "已轮换静态加密密钥" in run.stdout
    newest = atrest.read_keys(settings.data_dir)[-1]
    assert newest.alg == "aes"

    Source(scene.source_url).update([5, 6, 7], "改名")
    scene.run_until(scene.in_sync)  # the running hub seals with the new key, unrestarted
    now = _payloads(scene)
    added = [seq for seq in now if seq not in first]
    assert added
    assert {_key_id(now[seq]) for seq in added} == {newest.id}
    assert {_key_id(first[seq]) for seq in first} != {newest.id}

    # A subscriber starting over (resync) is served every package from the first one.
    store = hub_store(settings)
    with scene.world.hub.session_factory() as s:
        node = s.get(ExchangeNode, scene.node_ids["consumer"])
        assert node is not None
        after, served = 0, []
        while (
            found := service.next_package(
                s, settings, store, node, scene.subscriber_task["id"], after
            )
        ) is not None:
            after = found[2].seq
            served.append(after)
    assert served == sorted(now)


def test_a_node_that_opens_wrapped_keys_gets_the_body_as_kept(scene: Scene) -> None:
    """数据密钥: a provider's body comes under a data key of its own, and the hub keeps
    and passes it on as it came; only the key is wrapped again. A node of an older
    version (no ``wrapped``) gets the body encrypted under its own transport key."""
    scene.run_until(scene.in_sync)
    settings = scene.world.hub.settings
    cipher = _cipher(settings)
    kept = parse(cipher.open(_payloads(scene)[1]))
    store = hub_store(settings)
    with scene.world.hub.session_factory() as s:
        consumer = s.get(ExchangeNode, scene.node_ids["consumer"])
        assert consumer is not None
        consumer_key = service.node_cipher_key(settings, consumer)
        task = scene.subscriber_task["id"]
        found = service.next_package(s, settings, store, consumer, task, 0, wrap=True)
        assert found is not None
        wrapped, provider_key, _ = found
        found = service.next_package(s, settings, store, consumer, task, 0)
        assert found is not None
        reencrypted = found[0]
    sent = parse(wrapped)
    assert sent.body == kept.body
    assert "data_key" not in sent.envelope
    assert kept.envelope["data_key"].encode() not in wrapped
    old = parse(reencrypted)
    assert "wrap" not in old.envelope
    assert old.body != kept.body
    # Both open, with the node's own key only, to the provider's signed rows.
    assert sent.open(provider_key, consumer_key) == old.open(provider_key, consumer_key)
    with pytest.raises(PackageError, match="unwrapped"):
        sent.open(provider_key, "00" * 16)


@pytest.mark.parametrize("layout", ["before sealing", "sealed whole"])
def test_a_package_logged_in_an_earlier_layout_is_served(scene: Scene, layout: str) -> None:
    """Packages logged before sealing existed (opened, in the clear) or before data keys
    (opened, then sealed whole) are served as before, to nodes of either version."""
    scene.run_until(scene.in_sync)
    settings = scene.world.hub.settings
    cipher = _cipher(settings)
    kept = parse(cipher.open(_payloads(scene)[1]))
    opened = kept.reseal(kept.plaintext(), cipher="none", cipher_key=None)
    earlier = opened if layout == "before sealing" else cipher.seal(opened)
    with scene.world.hub.session_factory.begin() as s:
        s.execute(
            update(ExchangePackage)
            .where(ExchangePackage.task_id == scene.provider_task["id"], ExchangePackage.seq == 1)
            .values(payload=earlier)
        )
    store = hub_store(settings)
    with scene.world.hub.session_factory() as s:
        row = s.scalar(
            select(ExchangePackage).where(
                ExchangePackage.task_id == scene.provider_task["id"], ExchangePackage.seq == 1
            )
        )
        assert row is not None
        assert store.get(s, row) == opened
        consumer = s.get(ExchangeNode, scene.node_ids["consumer"])
        assert consumer is not None
        key = service.node_cipher_key(settings, consumer)
        for wrap in (True, False):
            found = service.next_package(
                s, settings, store, consumer, scene.subscriber_task["id"], 0, wrap=wrap
            )
            assert found is not None
            assert parse(found[0]).open(found[1], key) == kept.plaintext()


@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_wrong_secret_a_lost_key_and_a_changed_byte_are_told(
    fresh_settings: Settings,
) -> None:
    cipher = _cipher(fresh_settings)
    sealed = cipher.seal(b"GSPK rows of people")
    assert cipher.open(sealed) == b"GSPK rows of people"
    assert atrest.key_path(fresh_settings.data_dir).exists()

    other = AtRestCipher(fresh_settings.data_dir, "another-secret-" + "x" * 40, "sm4")
    with pytest.raises(AtRestKeyError, match="GOVSHARE_SECRET_KEY"):
        other.open(sealed)

    changed = sealed[:-1] + bytes([sealed[-1] ^ 1])
    with pytest.raises(AtRestKeyError, match="内容被改动"):
        cipher.open(changed)

    headed = cipher.seal_head(b"GSPK head with its key", b"ciphertext already")
    assert cipher.open(headed) == b"GSPK head with its key" + b"ciphertext already"
    assert atrest.is_sealed(headed)
    with pytest.raises(AtRestKeyError, match="截断"):
        cipher.open(headed[: len(atrest.HEAD_MAGIC) + 2])
    with pytest.raises(AtRestKeyError, match="截断"):
        cipher.open(headed[: len(atrest.HEAD_MAGIC) + 12])
    at_head = len(atrest.HEAD_MAGIC) + 4 + len(atrest.MAGIC) + 8 + 12
    with pytest.raises(AtRestKeyError, match="内容被改动"):
        cipher.open(headed[:at_head] + bytes([headed[at_head] ^ 1]) + headed[at_head + 1 :])

    lost = atrest.MAGIC + b"deadbeef" + sealed[len(atrest.MAGIC) + 8 :]
    with pytest.raises(AtRestKeyError, match="deadbeef") as told:
        cipher.open(lost)
    assert told.value.status == 503


@pytest.mark.parametrize("backend", ["sqlite"])
def test_the_setting_none_stores_new_packages_unsealed_and_still_opens_sealed_ones(
    fresh_settings: Settings,
) -> None:
    sealed = _cipher(fresh_settings).seal(b"GSPK sealed before")
    plain_store = hub_store(fresh_settings.model_copy(update={"at_rest_cipher": "none"}))
    row = ExchangePackage(task_id=1, seq=1)
    plain_store.put(None, row, b"GSPK stored plain")  # type: ignore[arg-type]
    assert row.payload == b"GSPK stored plain"
    row.payload = sealed
    assert plain_store.get(None, row) == b"GSPK sealed before"  # type: ignore[arg-type]


@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_package_is_kept_under_its_data_key_with_only_its_head_sealed(
    fresh_settings: Settings,
) -> None:
    private, public = crypto.generate_signing_key("sm2")
    hop = crypto.generate_cipher_key("sm4")
    body = package.encode_rows(["id", "xm"], ["I"], [(1, "张三")])

    def sent(*, wrap: bool) -> package.Package:
        return parse(
            package.build(
                package.Signer(1, "sm2", private),
                task_id=1,
                seq=1,
                columns=["id", "xm"],
                key=["id"],
                body=body,
                counts={"I": 1},
                cipher="sm4",
                cipher_key=hop,
                wrap=wrap,
            )
        )

    wrapped = sent(wrap=True)
    plaintext, data_key = wrapped.open_keyed(public, hop)
    assert plaintext == body
    assert data_key is not None
    assert data_key != hop
    row = ExchangePackage(task_id=1, seq=1)
    sealing = hub_store(fresh_settings)
    keep(sealing, None, row, wrapped, plaintext, data_key)  # type: ignore[arg-type]
    assert row.payload is not None
    assert row.payload.startswith(atrest.HEAD_MAGIC)
    kept = parse(sealing.get(None, row))  # type: ignore[arg-type]
    assert kept.body == wrapped.body  # as it came: no pass over the body
    assert kept.open(public) == body

    # A package that came under the transport key itself gets a data key of its own.
    direct = sent(wrap=False)
    plaintext, data_key = direct.open_keyed(public, hop)
    assert data_key is None
    keep(sealing, None, row, direct, plaintext, None)  # type: ignore[arg-type]
    kept = parse(sealing.get(None, row))  # type: ignore[arg-type]
    assert kept.envelope["data_key"] != hop
    assert kept.open(public) == body

    # With sealing off, packages are kept opened, as they always were.
    unsealed = hub_store(fresh_settings.model_copy(update={"at_rest_cipher": "none"}))
    keep(unsealed, None, row, wrapped, body, wrapped.data_key(hop))  # type: ignore[arg-type]
    assert row.payload is not None
    assert parse(row.payload).envelope == {"enc": "none"}
    assert parse(row.payload).open(public) == body
