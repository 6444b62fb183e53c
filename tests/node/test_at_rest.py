"""前置机本地库静态加密: with a secret kept outside the store, the node's private keys,
the hub's transport key and the packages waiting in the outbox are stored sealed, so a
copy of the store directory neither signs as the node nor reads the rows waiting to
leave. A store kept in the clear before is sealed in place at the first start with a
secret; a missing, short or wrong secret is told before anything runs and leaves the
store as it was."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from govshare.cli import app
from govshare.exchange.package import PackageError, parse
from govshare.node.agent import NodeAgent
from govshare.node.client import HubRefused
from govshare.node.config import NodeConfigError, load
from govshare.node.store import LocalStore
from govshare.security.atrest import HEAD_MAGIC, AtRestCipher, is_sealed, sealed_with
from tests.exchange.scenario import Scene, Source, make_scene, target_rows
from tests.factories import World

SECRET = "node-secret-for-tests-0123456789"


@pytest.fixture
def scene(world: World, tmp_path: Path) -> Iterator[Scene]:
    s = make_scene(world, tmp_path, rows=250)
    yield s
    s.close()


def _secret_file(scene: Scene, text: str = SECRET, name: str = "node.secret") -> Path:
    path = scene.tmp / name
    path.write_text(text + "\n", encoding="utf-8")
    return path


def _node_toml(path: Path, hub_url: str, node_id: int, store: Path | str, extra: str = "") -> Path:
    """A node.toml for the command line, with ``extra`` lines."""
    path.write_text(
        f'hub_url = "{hub_url}"\nnode_id = {node_id}\nstore = "{store}"\n{extra}',
        encoding="utf-8",
    )
    return path


def _sealed_with_packages_waiting(scene: Scene, secret: Path) -> NodeAgent:
    """The provider node, sealed with ``secret``, with its three packages queued."""
    provider = scene.node("provider", secret_file=secret)
    scene.node("consumer")
    scene.create_tasks(batch_rows=100)
    assert _queue_packages(provider, scene) == 3
    return provider


def _provider_toml(scene: Scene, provider: NodeAgent, secret: Path) -> Path:
    """The provider's node.toml for the command line, naming ``secret``."""
    return _node_toml(
        scene.tmp / "node.toml",
        scene.world.hub.base_url,
        scene.node_ids["provider"],
        provider.config.store,
        f'secret_file = "{secret}"\n',
    )


def _queue_packages(agent: NodeAgent, scene: Scene) -> int:
    """Extract every batch of the provider task without sending one (the hub
    "unreachable"); the number of packages waiting.

    The node takes its tasks from a heartbeat's answer but leaves its commands: the
    reconciliation the hub asks for as a task starts would catch up and upload first,
    and under load it was already in the answer (a CI run found the outbox empty). The
    hub sends an unanswered command again at the next heartbeat."""
    answer = agent.client.heartbeat(agent.report())
    agent.hub_opens_data_keys = bool(answer.get("data_keys"))
    agent.apply_assignments(answer["tasks"])
    rt = agent.tasks[scene.provider_task["id"]]
    while agent.extract_batch(rt):
        pass
    return agent.store.pending_counts()[rt.id][0]


def _raw_outbox(agent: NodeAgent) -> list[bytes]:
    """The outbox as a thief with a copy of the store file reads it."""
    with sqlite3.connect(agent.store.path) as db:
        return [blob for (blob,) in db.execute("SELECT blob FROM outbox ORDER BY seq")]


def _file_bytes(agent: NodeAgent) -> bytes:
    """Every byte of the store on disk: the database and its write-ahead log."""
    path = agent.store.path
    wal = path.with_name(path.name + "-wal")
    return path.read_bytes() + (wal.read_bytes() if wal.exists() else b"")


def _secrets_of(agent: NodeAgent) -> list[str]:
    names = ("sm2.private", "ed25519.private", "cipher_key")
    return [v for n in names if (v := agent.store.get(n))]


def _assert_sealed(agent: NodeAgent) -> None:
    on_disk = _file_bytes(agent)
    kept = _secrets_of(agent)
    assert len(kept) >= 2  # both private keys, and the transport key when the hub gave one
    for secret in kept:
        assert secret.encode() not in on_disk
    blobs = _raw_outbox(agent)
    assert blobs
    for blob in blobs:
        assert is_sealed(blob)
        with pytest.raises(PackageError):
            parse(blob)


def test_a_sealed_store_keeps_no_key_and_no_package_in_the_clear(scene: Scene) -> None:
    provider = _sealed_with_packages_waiting(scene, _secret_file(scene))
    _assert_sealed(provider)
    # The node itself opens them: each waiting package is a signed package again.
    raw = _raw_outbox(provider)
    for (_, _, blob), stored in zip(provider.store.pending(), raw, strict=True):
        pkg = parse(blob)
        assert pkg.signed_by(provider.store.get("sm2.public") or "")
        # Its body is under a data key of its own, wrapped under the transport key; the
        # store seals the package's head (the wrapped key with it), not the body again.
        assert stored.startswith(HEAD_MAGIC)
        assert pkg.envelope["wrap"]["key"] not in stored
        assert pkg.body in stored
    scene.run_until(scene.in_sync)


def test_a_store_kept_in_the_clear_is_sealed_at_the_first_start_with_a_secret(
    scene: Scene,
) -> None:
    provider = scene.node("provider")
    scene.node("consumer")
    scene.create_tasks(batch_rows=100)
    assert _queue_packages(provider, scene) == 3
    private = provider.store.get("sm2.private") or ""
    assert private.encode() in _file_bytes(provider)  # what this change is about
    assert not any(is_sealed(b) for b in _raw_outbox(provider))
    provider.close()

    again = scene.node("provider", secret_file=_secret_file(scene))
    assert again.store.get("sm2.private") == private
    assert again.store.pending_counts()[scene.provider_task["id"]][0] == 3
    _assert_sealed(again)  # no page of the old file keeps the clear text either
    scene.run_until(scene.in_sync)


def _store_alerts(scene: Scene) -> list[dict[str, object]]:
    with scene.world.api(scene.world.admin) as c:
        alerts = c.get("/api/v1/exchange/alerts", params={"open_only": True}).json()
    node_id = scene.node_ids["provider"]
    return [a for a in alerts if a["kind"] == "node_store_unsealed" and a["node_id"] == node_id]


def _reported_sealing(scene: Scene) -> tuple[object, object]:
    with scene.world.api(scene.world.admin) as c:
        report = c.get(f"/api/v1/exchange/nodes/{scene.node_ids['provider']}").json()["report"]
    return report.get("store_sealed"), report.get("store_cipher")


def test_the_hub_alerts_on_a_node_whose_store_is_kept_in_the_clear(scene: Scene) -> None:
    provider = scene.node("provider")
    provider.heartbeat()
    provider.heartbeat()  # one alert, counted again, not two
    assert _reported_sealing(scene) == (False, None)
    [alert] = _store_alerts(scene)
    assert "本地库未加密" in alert["message"]
    assert alert["count"] == 2
    with scene.world.api(scene.world.admin) as c:
        page = c.get(f"/exchange/nodes/{scene.node_ids['provider']}").text
    assert '<strong class="field-error">未加密</strong>' in page
    provider.close()

    sealed = scene.node("provider", secret_file=_secret_file(scene))
    sealed.heartbeat()
    assert _reported_sealing(scene) == (True, "sm4")
    assert _store_alerts(scene) == []
    with scene.world.api(scene.world.admin) as c:
        page = c.get(f"/exchange/nodes/{scene.node_ids['provider']}").text
    assert '已静态加密（<span class="mono">SM4</span>）' in page


def test_a_missing_short_or_wrong_secret_is_told_and_the_store_kept(
    scene: Scene, monkeypatch: pytest.MonkeyPatch
) -> None:
    provider = _sealed_with_packages_waiting(scene, _secret_file(scene))
    config = provider.config
    provider.close()
    before = _raw_outbox(provider)

    with pytest.raises(NodeConfigError, match="已加密保存, 但未给出口令"):
        NodeAgent(config.model_copy(update={"secret_file": None}))
    wrong = _secret_file(scene, "another-secret-of-enough-length", "other.secret")
    with pytest.raises(NodeConfigError, match="无法用 前置机口令"):
        NodeAgent(config.model_copy(update={"secret_file": wrong}))
    short = _secret_file(scene, "short", "short.secret")
    with pytest.raises(NodeConfigError, match="口令太短"):
        NodeAgent(config.model_copy(update={"secret_file": short}))
    with pytest.raises(NodeConfigError, match="不存在"):
        NodeAgent(config.model_copy(update={"secret_file": scene.tmp / "gone.secret"}))
    # The environment's secret comes first: a wrong one there is told even when the
    # file holds the right one.
    monkeypatch.setenv("GOVSHARE_NODE_SECRET", "another-secret-of-enough-length")
    with pytest.raises(NodeConfigError, match="无法用 前置机口令"):
        NodeAgent(config)
    monkeypatch.setenv("GOVSHARE_NODE_SECRET", SECRET)
    again = NodeAgent(config.model_copy(update={"secret_file": None}))
    again.ensure_registered()
    assert _raw_outbox(again) == before
    again.close()
    monkeypatch.delenv("GOVSHARE_NODE_SECRET")

    scene.node("provider", secret_file=config.secret_file)
    scene.run_until(scene.in_sync)


def test_a_secret_file_inside_the_store_directory_is_refused(tmp_path: Path) -> None:
    def toml(extra: str) -> Path:
        return _node_toml(tmp_path / "node.toml", "http://127.0.0.1:9", 1, "store", extra)

    with pytest.raises(NodeConfigError, match="secret_file: 口令文件不能放在本地库目录"):
        load(toml('secret_file = "store/node.secret"\n'))
    with pytest.raises(NodeConfigError, match="at_rest_cipher"):
        load(toml('secret_file = "node.secret"\nat_rest_cipher = "des"\n'))
    assert load(toml('secret_file = "node.secret"\n')).secret_file == tmp_path / "node.secret"


def test_the_node_command_tells_a_wrong_secret_and_exits_2(scene: Scene) -> None:
    provider = scene.node("provider", secret_file=_secret_file(scene))
    provider.close()
    wrong = _secret_file(scene, "another-secret-of-enough-length", "other.secret")
    toml = _provider_toml(scene, provider, wrong)
    result = CliRunner().invoke(app, ["node", "run", "--config", str(toml)])
    assert result.exit_code == 2
    assert "无法用 前置机口令" in result.output


def test_a_node_killed_before_its_store_was_marked_sealed_or_with_its_key_file_lost(
    scene: Scene,
) -> None:
    secret = _secret_file(scene)
    provider = _sealed_with_packages_waiting(scene, secret)
    config = provider.config
    provider.close()
    # Killed after the sealing committed, before the store was marked: its sealed
    # values still tell a start without the secret that it needs one.
    with sqlite3.connect(config.store / "node-store.db") as db:
        db.execute("DELETE FROM identity WHERE name = 'at_rest'")
    with pytest.raises(NodeConfigError, match="已加密保存, 但未给出口令"):
        NodeAgent(config.model_copy(update={"secret_file": None}))
    again = NodeAgent(config)  # with the secret it finishes the sealing
    assert again.store.get("at_rest") == "sealed"
    _assert_sealed(again)
    again.close()

    # A lost key file is told at the start, not at the first package.
    keys = config.store / "keys" / "at-rest.json"
    kept = keys.read_bytes()
    keys.unlink()
    with pytest.raises(NodeConfigError, match=r"密钥文件 .* 不存在"):
        NodeAgent(config)
    assert not keys.exists()  # no new key was made in its place
    keys.write_bytes(kept)
    scene.node("provider", secret_file=secret)
    scene.run_until(scene.in_sync)


def test_the_store_key_is_rotated_while_packages_wait(scene: Scene) -> None:
    secret = _secret_file(scene)
    provider = _sealed_with_packages_waiting(scene, secret)
    private = provider.store.get("sm2.private")
    toml = _provider_toml(scene, provider, secret)
    result = CliRunner().invoke(app, ["node", "rotate-store-key", "--config", str(toml)])
    assert result.exit_code == 0, result.output
    keys = orjson.loads((provider.config.store / "keys" / "at-rest.json").read_bytes())["keys"]
    old, new = keys[0]["id"], keys[1]["id"]
    assert new in result.output
    with sqlite3.connect(provider.store.path) as db:
        sealed = dict(db.execute("SELECT name, value FROM identity WHERE value LIKE 'sealed:%'"))
    assert set(sealed) >= {"sm2.private", "ed25519.private", "cipher_key"}
    for value in sealed.values():  # sealed again under the new key: MAGIC, then the key id
        assert bytes.fromhex(value.removeprefix("sealed:"))[5:13].decode() == new
    assert {sealed_with(blob) for blob in _raw_outbox(provider)} == {old}
    # The running node sees the rotation by itself: it opens its secrets under the new
    # key, and the packages sealed before under the old one leave as they are.
    assert provider.store.get("sm2.private") == private
    scene.run_until(scene.in_sync)

    unsealed = _node_toml(
        scene.tmp / "unsealed.toml", scene.world.hub.base_url, 99, scene.tmp / "plain"
    )
    result = CliRunner().invoke(app, ["node", "rotate-store-key", "--config", str(unsealed)])
    assert result.exit_code == 2
    assert "未配置口令" in result.output


def test_a_hub_that_requires_sealing_refuses_a_node_in_the_clear_until_it_is_sealed(
    scene: Scene, monkeypatch: pytest.MonkeyPatch
) -> None:
    """GOVSHARE_NODE_STORE_SEALING_REQUIRED: an unsealed node is told why at every
    heartbeat, its packages and deliveries are refused, and what it queued waits in its
    outbox; sealed, the same node exchanges everything."""
    provider = scene.node("provider")
    scene.node("consumer", secret_file=_secret_file(scene, name="consumer.secret"))
    scene.create_tasks(batch_rows=100)
    assert _queue_packages(provider, scene) == 3  # queued while the hub still allowed it
    monkeypatch.setattr(scene.world.hub.settings, "node_store_sealing_required", True)

    with pytest.raises(HubRefused) as refused:
        provider.heartbeat()
    assert refused.value.status == 403
    assert refused.value.code == "node_store_unsealed"
    assert "本地库未加密" in str(refused.value)
    assert _reported_sealing(scene) == (False, None)  # the report and alert are kept
    assert len(_store_alerts(scene)) == 1
    assert provider.upload_pending() == 0  # refused, and kept
    assert provider.store.pending_counts()[scene.provider_task["id"]][0] == 3
    with scene.world.api(scene.world.admin) as c:
        alerts = c.get("/api/v1/exchange/alerts", params={"open_only": True}).json()
    assert any(a["kind"] == "package_rejected" and "本地库未加密" in a["message"] for a in alerts)
    provider.close()

    sealed = scene.node("provider", secret_file=_secret_file(scene))
    sealed.heartbeat()
    assert _reported_sealing(scene) == (True, "sm4")
    scene.run_until(scene.in_sync)


# 公民身份号码 as the task's key: what a thief must not read from the key mirror.
_KEYED_BY_ID_NUMBER: dict[str, object] = {"key": ["sfzhm"], "keyset_every_seconds": 1}
_CAPTURE = {
    "incremental": {"mode": "incremental", "cursor_column": "version"},
    "snapshot": {"mode": "snapshot", "cursor_column": None},
}


def _id_numbers(scene: Scene) -> list[str]:
    with sqlite3.connect(scene.source_url.removeprefix("sqlite:///")) as db:
        return [n for (n,) in db.execute("SELECT sfzhm FROM person")]


def _mirror(agent: NodeAgent) -> list[tuple[str, bytes | None]]:
    with sqlite3.connect(agent.store.path) as db:
        return list(db.execute("SELECT key, sealed_key FROM mirror"))


def _assert_no_key_in_the_clear(agent: NodeAgent, id_numbers: list[str]) -> None:
    mirror = _mirror(agent)
    assert len(mirror) == len(id_numbers)
    assert all(len(tag) == 32 and sealed for tag, sealed in mirror)
    on_disk = _file_bytes(agent)
    assert not [n for n in id_numbers if n.encode() in on_disk]


def _delete_and_update(scene: Scene) -> None:
    """Rows a keyed mirror must find again: two gone at the source, one changed."""
    source = Source(scene.source_url)
    source.delete([3, 5])
    source.update([7], "改名")


@pytest.mark.parametrize("capture", sorted(_CAPTURE))
def test_a_sealed_store_keeps_the_keys_it_sent_as_tags_and_still_finds_them(
    scene: Scene, capture: str
) -> None:
    """The key mirror (which keys were sent, with their row hash) holds a keyed tag and
    a sealed copy of each key, not the key: deletes are still found and sent (the
    sealed copy opened), updates still go as updates."""
    scene.node("provider", secret_file=_secret_file(scene))
    scene.node("consumer")
    scene.create_tasks(batch_rows=100, **_KEYED_BY_ID_NUMBER, **_CAPTURE[capture])
    scene.run_until(scene.in_sync)
    sent = _id_numbers(scene)
    _assert_no_key_in_the_clear(scene.nodes["provider"], sent)

    _delete_and_update(scene)
    scene.run_until(scene.in_sync)
    assert len(target_rows(scene.target_url)) == len(sent) - 2
    _assert_no_key_in_the_clear(scene.nodes["provider"], _id_numbers(scene))


def test_a_key_mirror_kept_in_the_clear_is_sealed_at_the_first_start_with_a_secret(
    scene: Scene,
) -> None:
    provider = scene.node("provider")
    scene.node("consumer")
    scene.create_tasks(batch_rows=100, **_KEYED_BY_ID_NUMBER, **_CAPTURE["snapshot"])
    scene.run_until(scene.in_sync)
    sent = _id_numbers(scene)
    assert {key for key, _ in _mirror(provider)} == set(sent)  # what this change is about
    provider.close()

    secret = _secret_file(scene)
    again = scene.node("provider", secret_file=secret)
    assert again.store.get("mirror_sealed") == "sealed"
    _assert_no_key_in_the_clear(again, sent)
    # Killed after the mirror was converted, before the file was rewritten: the next
    # start only rewrites it (converting again would take the tags for keys).
    again.close()
    with sqlite3.connect(again.store.path) as db:
        db.execute("UPDATE identity SET value = 'rewrite' WHERE name = 'mirror_sealed'")
    again = scene.node("provider", secret_file=secret)
    assert again.store.get("mirror_sealed") == "sealed"
    _assert_no_key_in_the_clear(again, sent)
    _delete_and_update(scene)
    scene.run_until(scene.in_sync)
    assert len(target_rows(scene.target_url)) == len(sent) - 2


def test_a_sealed_store_keeps_row_numbers_as_they_are_and_tags_every_other_key(
    tmp_path: Path,
) -> None:
    """A key of at most ten digits is a row number and is kept as it is (tags are random,
    and a mirror of random keys is written several times slower); anything longer or
    not all digits — 公民身份号码, credit codes, mobile numbers, composite keys — is kept
    as its tag, and the keys the source no longer has come back as they were."""
    store = LocalStore(tmp_path / "store", AtRestCipher(tmp_path / "store", SECRET, "sm4"))
    keys = ["1", "42", "9999999999", "13800138000", "37020219900101001X", "3\x1f7", "", "-5"]
    with store.transaction() as conn:
        assert store.existing_keys(conn, 1, keys) == {}
        store.add_keys(conn, 1, keys, list(range(len(keys))))
        assert store.existing_keys(conn, 1, keys) == dict(zip(keys, range(len(keys)), strict=True))
    with sqlite3.connect(store.path) as db:
        kept = dict(db.execute("SELECT key, sealed_key FROM mirror"))
    assert {k for k, c in kept.items() if c is None} == {"1", "42", "9999999999"}
    assert all(len(k) == 32 for k, c in kept.items() if c is not None)
    assert sorted(store.missing_keys(1, ["42"])) == sorted(k for k in keys if k != "42")
    store.close()
