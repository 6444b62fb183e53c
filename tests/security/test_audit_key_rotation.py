"""Rotating the audit key (``govshare keys rotate audit``) while the hub runs: every
entry, checkpoint, archive and signed export made before the rotation still verifies;
every entry after it — written by processes that started with the old key, through the
ORM and through the data services' call journal — is sealed with the new key; and the
retired key, if stolen, can neither seal nor sign anything after the rotation. Clocks
are injected; the rotation is a real subprocess on real SQLite and PostgreSQL hubs."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from govshare import db
from govshare.config import Settings
from govshare.security import anchor, archive, audit, audit_search
from govshare.security.anchor import AuditKey
from govshare.security.audit import Actor, Pending
from govshare.security.crypto import keyed_digest
from govshare.security.models import AuditEntry, AuditHead
from tests.clirun import hub_cli
from tests.security.test_archive import _setup_two_archives

AFTER = datetime(2025, 7, 1, 9, 0, tzinfo=UTC)
CLERK = Actor(name="zhang", department_id=1)


@pytest.fixture
def factory(fresh_settings: Settings) -> Iterator[sessionmaker[Session]]:
    """A running hub process's sessions: its key was read when it started."""
    engine = db.make_engine(fresh_settings)
    yield db.make_session_factory(engine, fresh_settings)
    engine.dispose()


def _rows(factory: sessionmaker[Session]) -> dict[int, dict[str, object]]:
    with factory() as s:
        return {row["seq"]: row for row in audit.decoded(s.execute(audit.select_rows()).mappings())}


def _only(key: AuditKey) -> AuditKey:
    """The key as if it were the only one (no retired keys to fall back on)."""
    return dataclasses.replace(key, retired=())


def _verify(settings: Settings) -> audit.ChainReport:
    """What a freshly started process (``audit verify``) finds."""
    engine = db.make_engine(settings)
    try:
        with db.make_session_factory(engine, settings)() as s:
            return audit.verify_chain(s)
    finally:
        engine.dispose()


def _rotate(settings: Settings) -> AuditKey:
    run = hub_cli(settings, "keys", "rotate", "audit")
    assert run.returncode == 0, run.stderr
    assert "已轮换审计密钥" in run.stdout
    key = anchor.read_key(settings.data_dir)
    assert key is not None
    return key


def test_rotation_keeps_the_past_verifying_and_seals_what_follows_with_the_new_key(
    fresh_settings: Settings, factory: sessionmaker[Session], tmp_path: Path
) -> None:
    _setup_two_archives(factory)  # archives of entries 1..17, live entries after them
    old: AuditKey = factory.kw["info"]["audit_key"]
    export = tmp_path / "检索结果.xlsx"
    export.write_bytes(b"PK\x03\x04 an export signed before the rotation")
    audit_search.sign_file(old, export, now=AFTER)
    with factory() as s:
        head_before = audit.head(s)[0]
    # A journal appender made before the rotation, as a running data service holds one.
    engine = factory.kw["bind"]
    appender = audit.ChainAppender(engine.dialect, fresh_settings.audit_digest, old)

    new = _rotate(fresh_settings)

    assert new.generation == 2
    assert new.mac_key != old.mac_key
    assert new.public != old.public
    assert [(r.generation, r.until_seq, r.public) for r in new.retired] == [
        (1, head_before, old.public)
    ]
    # Both old-key processes write after the rotation without being restarted.
    with db.session_scope(factory) as s:
        audit.record(s, CLERK, "catalog.update", object_type="catalog", object_id=7, at=AFTER)
    raw = engine.raw_connection()
    try:
        appender.append(raw, [Pending(CLERK, "data.call", "grant", 3, request_id=None)], AFTER)
        raw.commit()
    finally:
        raw.close()

    rows = _rows(factory)
    rotation = rows[head_before + 1]
    assert rotation["action"] == "keys.rotate"
    assert rotation["object_type"] == "audit_key"
    after_rotation = [seq for seq in rows if seq > head_before]
    assert len(after_rotation) == 3
    for seq in after_rotation:  # sealed by the new key, not the old one
        assert audit.row_problem(rows[seq], _only(new)) is None
        assert audit.row_problem(rows[seq], _only(old)) is not None
    for seq in (s for s in rows if s <= head_before):  # and the past by the old key
        assert audit.row_problem(rows[seq], _only(old)) is None
        assert audit.row_problem(rows[seq], _only(new)) is not None

    report = _verify(fresh_settings)
    assert report.problems == []
    assert report.archives == 2
    assert report.entries == head_before + 3
    checkpoints = anchor.read_checkpoints(new)
    assert checkpoints
    assert all(cp.valid for cp in checkpoints)
    # The old key's last checkpoint anchors the head it handed over; the new key's
    # first one the rotation entry.
    assert {head_before, head_before + 1} <= {cp.seq for cp in checkpoints}
    checked = hub_cli(fresh_settings, "audit", "verify-signature", str(export))
    assert checked.returncode == 0, checked.stderr
    assert old.public in checked.stdout


def test_a_stolen_retired_key_can_neither_seal_nor_sign_after_the_rotation(
    fresh_settings: Settings, factory: sessionmaker[Session]
) -> None:
    with db.session_scope(factory) as s:
        for n in range(3):
            audit.record(s, CLERK, "catalog.update", object_type="catalog", object_id=n, at=AFTER)
    stolen: AuditKey = factory.kw["info"]["audit_key"]
    new = _rotate(fresh_settings)
    with db.session_scope(factory) as s:
        audit.record(s, CLERK, "catalog.update", object_type="catalog", object_id=9, at=AFTER)
        last_seq, last_hash = audit.head(s)
    assert _verify(fresh_settings).problems == []

    # The thief signs a checkpoint of the head with the retired key...
    anchor.append_checkpoint(_only(stolen), seq=last_seq, hash=last_hash, at=AFTER)
    # ...and reseals the newest entry, edited, with it (the head moved along).
    row = _rows(factory)[last_seq]
    row["object_id"] = "forged"
    alg = str(row["alg"]).removeprefix(audit.KEYED)
    forged = keyed_digest(alg, stolen.mac_key, audit._canonical_row(row))
    with db.session_scope(factory) as s:
        s.execute(
            update(AuditEntry)
            .where(AuditEntry.seq == last_seq)
            .values(object_id="forged", hash=forged)
        )
        s.execute(update(AuditHead).where(AuditHead.id == 1).values(hash=forged))

    problems = {(p.seq, p.problem) for p in _verify(fresh_settings).problems}
    assert (last_seq, "content does not match its hash (edited)") in problems
    assert any(seq == last_seq and "no valid signature" in text for seq, text in problems)
    assert [cp.valid for cp in anchor.read_checkpoints(new)][-1] is False


def test_rotating_twice_keeps_every_generation_verifying(
    fresh_settings: Settings, factory: sessionmaker[Session]
) -> None:
    with db.session_scope(factory) as s:
        audit.record(s, CLERK, "catalog.update", object_type="catalog", object_id=1, at=AFTER)
    _rotate(fresh_settings)
    with db.session_scope(factory) as s:
        audit.record(s, CLERK, "catalog.update", object_type="catalog", object_id=2, at=AFTER)
    third = _rotate(fresh_settings)
    with db.session_scope(factory) as s:
        audit.record(s, CLERK, "catalog.update", object_type="catalog", object_id=3, at=AFTER)
        actions = list(s.scalars(select(AuditEntry.action).order_by(AuditEntry.seq)))
    assert third.generation == 3
    assert [r.generation for r in third.retired] == [1, 2]
    assert actions.count("keys.rotate") == 2
    assert _verify(fresh_settings).problems == []
    doc = orjson.loads((anchor.audit_dir(fresh_settings.data_dir) / anchor.KEY_FILE).read_bytes())
    assert doc["generation"] == 3
    assert doc["legacy_until"] == 0


@pytest.mark.parametrize("backend", ["sqlite"])
def test_an_archive_written_after_the_rotation_covers_old_entries_and_verifies(
    fresh_settings: Settings, factory: sessionmaker[Session]
) -> None:
    """The new key may vouch for entries the old one sealed (never the other way)."""
    with db.session_scope(factory) as s:
        for n in range(4):
            audit.record(
                s,
                CLERK,
                "catalog.update",
                object_type="catalog",
                object_id=n,
                at=datetime(2015, 1, 2, tzinfo=UTC),
            )
    new = _rotate(fresh_settings)
    with db.session_scope(factory) as s:
        audit.record(s, CLERK, "catalog.update", object_type="catalog", object_id=5, at=AFTER)
    with factory() as s:
        done = archive.archive_due(s, new, now=AFTER, years=5)
    assert isinstance(done, archive.ArchiveResult), done
    assert done.last_seq >= 4
    assert _verify(fresh_settings).problems == []
