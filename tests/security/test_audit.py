"""The audit log is a hash chain: any edited, deleted or inserted entry is found."""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import delete, func, select, text, update

from govshare import db
from govshare.config import Settings
from govshare.security import audit
from govshare.security.anchor import read_checkpoints, read_key
from govshare.security.audit import Actor
from govshare.security.crypto import digest, keyed_digest
from govshare.security.models import AuditEntry, AuditHead


def _write(settings: Settings, n: int) -> None:
    engine = db.make_engine(settings)
    with db.session_scope(db.make_session_factory(engine, settings)) as s:
        for i in range(n):
            audit.record(
                s,
                Actor(name="tester", department_id=1),
                "test.action",
                object_type="thing",
                object_id=i,
                before={"v": i},
                after={"v": i + 1, "名称": "人口"},
            )
    engine.dispose()


def _verify(settings: Settings) -> audit.ChainReport:
    engine = db.make_engine(settings)
    with db.session_scope(db.make_session_factory(engine, settings)) as s:
        report = audit.verify_chain(s)
    engine.dispose()
    return report


def _tamper(settings: Settings, stmt: object) -> None:
    engine = db.make_engine(settings)
    with engine.begin() as conn:
        conn.execute(stmt)  # type: ignore[arg-type]
    engine.dispose()


def test_untouched_chain_verifies(fresh_settings: Settings) -> None:
    _write(fresh_settings, 20)
    report = _verify(fresh_settings)
    assert report.intact
    assert report.entries >= 20


def test_edited_entry_is_detected(fresh_settings: Settings) -> None:
    _write(fresh_settings, 10)
    _tamper(
        fresh_settings, update(AuditEntry).where(AuditEntry.seq == 5).values(actor="someone-else")
    )
    report = _verify(fresh_settings)
    assert not report.intact
    assert [p.seq for p in report.problems] == [5]


def test_deleted_entry_is_detected(fresh_settings: Settings) -> None:
    _write(fresh_settings, 10)
    _tamper(fresh_settings, delete(AuditEntry).where(AuditEntry.seq == 4))
    report = _verify(fresh_settings)
    assert not report.intact
    assert report.problems[0].seq == 4


def test_deleted_tail_is_detected(fresh_settings: Settings) -> None:
    _write(fresh_settings, 10)
    _tamper(fresh_settings, delete(AuditEntry).where(AuditEntry.seq == 10))
    assert not _verify(fresh_settings).intact


def test_inserted_entry_is_detected(fresh_settings: Settings) -> None:
    _write(fresh_settings, 6)
    # Shift later entries up and forge one in the gap, copying a neighbour's hashes.
    engine = db.make_engine(fresh_settings)
    with engine.begin() as conn:
        row = conn.execute(select(AuditEntry.__table__).where(AuditEntry.seq == 3)).mappings().one()
        top = conn.execute(select(func.max(AuditEntry.seq))).scalar_one()
        for seq in range(top, 3, -1):
            conn.execute(update(AuditEntry).where(AuditEntry.seq == seq).values(seq=seq + 1))
        conn.execute(AuditEntry.__table__.insert().values({**row, "seq": 4, "action": "forged"}))
    engine.dispose()
    report = _verify(fresh_settings)
    assert not report.intact
    assert 4 in [p.seq for p in report.problems]


def test_sha256_chains_verify_too(tmp_path: Path) -> None:
    from tests.conftest import make_settings, migrated

    settings = migrated(make_settings(tmp_path, audit_digest="sha256"))
    _write(settings, 3)
    assert _verify(settings).intact
    engine = db.make_engine(settings)
    with engine.connect() as conn:
        algs = set(conn.execute(text("SELECT DISTINCT alg FROM audit_entry")).scalars())
    engine.dispose()
    assert algs == {"hmac-sha256"}


@pytest.mark.parametrize("backend", ["sqlite"])
def test_cli_verify_exit_codes(fresh_settings: Settings) -> None:
    _write(fresh_settings, 5)
    env = {"GOVSHARE_SECRET_KEY": fresh_settings.secret_key, "PATH": "/usr/bin:/bin"}
    cmd = [
        sys.executable,
        "-m",
        "govshare.cli",
        "audit",
        "verify",
        "--data-dir",
        str(fresh_settings.data_dir),
    ]
    ok = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    assert ok.returncode == 0, ok.stderr
    assert "审计日志完整" in ok.stdout
    _tamper(fresh_settings, update(AuditEntry).where(AuditEntry.seq == 2).values(after={"v": 999}))
    bad = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    assert bad.returncode == 1
    assert "edited" in bad.stdout


def test_auditor_verifies_over_the_api(world: World) -> None:
    with world.api(world.auditor) as c:
        r = c.get("/api/v1/audit/verify")
    assert r.status_code == 200
    assert r.json()["intact"] is True
    with world.api(world.admin) as c:
        assert c.get("/api/v1/audit/verify").status_code == 403


from tests.factories import World  # noqa: E402

# -- rewriting the whole chain ----------------------------------------------------------


def _rechain_from(settings: Settings, seq: int, *, mac_key: bytes | None = None) -> None:
    """What an attacker with write access to the database does: change entry ``seq``,
    recompute every later hash with the project's own functions, and move the head.
    Without the data dir's key (``mac_key`` None) the best they can do is the plain
    digest; with it, a keyed chain indistinguishable row by row from the real one."""
    engine = db.make_engine(settings)
    table = AuditEntry.__table__
    with engine.begin() as conn:
        rows = [
            dict(r)
            for r in conn.execute(
                select(table).where(AuditEntry.seq >= seq).order_by(AuditEntry.seq)
            ).mappings()
        ]
        rows[0]["actor"] = "someone-else"
        prev_hash = rows[0]["prev_hash"]
        for row in rows:
            base = row["alg"].removeprefix(audit.KEYED)
            row["alg"] = audit.KEYED + base if mac_key else base
            row["prev_hash"] = prev_hash
            data = audit._canonical_row(row)
            row["hash"] = prev_hash = (
                keyed_digest(base, mac_key, data) if mac_key else digest(base, data)
            )
            conn.execute(
                update(table)
                .where(AuditEntry.seq == row["seq"])
                .values(
                    actor=row["actor"], alg=row["alg"], prev_hash=row["prev_hash"], hash=row["hash"]
                )
            )
        conn.execute(update(AuditHead).where(AuditHead.id == 1).values(hash=prev_hash))
    engine.dispose()


def test_rewrite_and_rechain_without_the_key_is_detected(fresh_settings: Settings) -> None:
    _write(fresh_settings, 8)
    _rechain_from(fresh_settings, 3)
    report = _verify(fresh_settings)
    assert not report.intact
    assert report.problems[0].seq == 3
    assert "not keyed" in report.problems[0].problem


def test_rewrite_with_the_key_is_caught_by_a_signed_checkpoint(fresh_settings: Settings) -> None:
    _write(fresh_settings, 5)
    _checkpoint(fresh_settings)
    _write(fresh_settings, 3)
    key = read_key(fresh_settings.data_dir)
    assert key is not None
    _rechain_from(fresh_settings, 2, mac_key=key.mac_key)
    report = _verify(fresh_settings)
    assert not report.intact
    assert [(p.seq, "rewritten" in p.problem) for p in report.problems] == [(5, True)]


def test_truncating_below_a_checkpoint_is_detected(fresh_settings: Settings) -> None:
    _write(fresh_settings, 6)
    _checkpoint(fresh_settings)
    engine = db.make_engine(fresh_settings)
    with engine.begin() as conn:
        conn.execute(delete(AuditEntry).where(AuditEntry.seq > 3))
        row = conn.execute(select(AuditEntry.hash).where(AuditEntry.seq == 3)).scalar_one()
        conn.execute(update(AuditHead).where(AuditHead.id == 1).values(seq=3, hash=row))
    engine.dispose()
    report = _verify(fresh_settings)
    assert [p.problem for p in report.problems if "truncated" in p.problem]


def test_a_forged_checkpoint_line_is_reported(fresh_settings: Settings) -> None:
    _write(fresh_settings, 3)
    _checkpoint(fresh_settings)
    key = read_key(fresh_settings.data_dir)
    assert key is not None
    line = key.checkpoints_path.read_text().replace('"seq":3', '"seq":2')
    key.checkpoints_path.write_text(line)
    report = _verify(fresh_settings)
    assert [p.problem for p in report.problems] == ["checkpoint line 1 has no valid signature"]


def test_a_forged_row_with_seq_zero_is_reported(fresh_settings: Settings) -> None:
    _write(fresh_settings, 3)
    engine = db.make_engine(fresh_settings)
    with engine.begin() as conn:
        row = conn.execute(select(AuditEntry.__table__).where(AuditEntry.seq == 1)).mappings().one()
        conn.execute(AuditEntry.__table__.insert().values({**row, "seq": 0, "action": "forged"}))
    engine.dispose()
    report = _verify(fresh_settings)
    assert not report.intact
    assert [p.seq for p in report.problems] == [0]


def test_entries_before_the_key_verify_by_the_old_rule(tmp_path: Path) -> None:
    """A hub upgraded from unkeyed chains: its old entries stay verifiable, and they are
    anchored by a first checkpoint made with the key."""
    from tests.conftest import make_settings, migrated

    settings = migrated(make_settings(tmp_path / "data"))
    _write(settings, 4)
    # Back to the state before keys existed: plain entries and no key file.
    _rechain_from(settings, 1)
    key_dir = settings.data_dir / "audit"
    for f in key_dir.iterdir():
        f.unlink()
    _write(settings, 2)  # the key is made now, anchoring entries 1..4
    key = read_key(settings.data_dir)
    assert key is not None
    assert key.legacy_until == 4
    assert [(c.seq, c.valid) for c in read_checkpoints(key)] == [(4, True)]
    assert _verify(settings).intact
    _tamper(settings, update(AuditEntry).where(AuditEntry.seq == 2).values(action="x"))
    assert [p.seq for p in _verify(settings).problems] == [2]


def _checkpoint(settings: Settings) -> None:
    engine = db.make_engine(settings)
    with db.session_scope(db.make_session_factory(engine, settings)) as s:
        key = s.info["audit_key"]
        assert audit.checkpoint(s, key, datetime(2026, 1, 5, 8, 0, tzinfo=UTC)) is not None
    engine.dispose()


# -- the command line, with nothing but the data dir ------------------------------------


def _cli(
    settings: Settings, *args: str, secret: str | None = None
) -> subprocess.CompletedProcess[str]:
    """``govshare …`` with no secret key (unless given): an auditor holds the data dir."""
    env = {"PATH": "/usr/bin:/bin"}
    if secret:
        env["GOVSHARE_SECRET_KEY"] = secret
    if not settings.is_sqlite:
        env["GOVSHARE_DATABASE_URL"] = settings.resolved_database_url
    cmd = [sys.executable, "-m", "govshare.cli", *args, "--data-dir", str(settings.data_dir)]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, check=False, timeout=120)


def test_cli_verify_needs_only_the_data_dir(fresh_settings: Settings) -> None:
    _write(fresh_settings, 4)
    ok = _cli(fresh_settings, "audit", "verify")
    assert ok.returncode == 0, ok.stderr
    assert "审计日志完整" in ok.stdout
    _rechain_from(fresh_settings, 2)
    bad = _cli(fresh_settings, "audit", "verify")
    assert bad.returncode == 1
    assert "not keyed" in bad.stdout


def test_cli_checkpoints_sign_list_and_catch_a_rewrite(fresh_settings: Settings) -> None:
    _write(fresh_settings, 3)
    signed = _cli(fresh_settings, "audit", "checkpoint")
    assert signed.returncode == 0, signed.stderr
    assert "第 3 条" in signed.stdout
    listed = _cli(fresh_settings, "audit", "checkpoints")
    assert listed.returncode == 0, listed.stderr
    assert "有效" in listed.stdout
    key = read_key(fresh_settings.data_dir)
    assert key is not None
    _rechain_from(fresh_settings, 1, mac_key=key.mac_key)
    bad = _cli(fresh_settings, "audit", "verify")
    assert bad.returncode == 1
    assert "rewritten" in bad.stdout


def test_cli_verify_refuses_a_data_dir_without_a_hub(tmp_path: Path) -> None:
    from tests.conftest import make_settings

    settings = make_settings(tmp_path / "nothing-here")
    r = _cli(settings, "audit", "verify")
    assert r.returncode == 2
    assert "没有平台数据库" in r.stderr
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "nothing-here").exists()


def test_the_hub_signs_checkpoints_periodically(fresh_settings: Settings) -> None:
    from govshare.security.tasks import Checkpointer

    _write(fresh_settings, 2)
    engine = db.make_engine(fresh_settings)
    checkpointer = Checkpointer(db.make_session_factory(engine, fresh_settings), 0.05)
    checkpointer.start()
    try:
        key = checkpointer.key
        deadline = time.monotonic() + 30
        while not read_checkpoints(key):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        _write(fresh_settings, 1)
        while [c.seq for c in read_checkpoints(key)] != [2, 3]:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        checkpointer.stop()
        engine.dispose()
    assert all(c.valid for c in read_checkpoints(key))


def test_a_damaged_key_file_is_named_not_a_traceback(fresh_settings: Settings) -> None:
    key_file = fresh_settings.data_dir / "audit" / "key.json"
    key_file.write_text("{not json")
    for args in (("audit", "verify"), ("db", "upgrade")):
        r = _cli(fresh_settings, *args, secret=fresh_settings.secret_key)
        assert r.returncode == 2, (args, r.stderr)
        assert "key.json" in r.stderr
        assert "Traceback" not in r.stderr
    assert key_file.read_text() == "{not json"


def test_a_chain_verifies_whatever_time_zone_the_database_reports_in(
    fresh_settings: Settings, backend: str
) -> None:
    """A PostgreSQL server in China is likely set to Asia/Shanghai: it hands timestamps
    back in +08:00, while every entry's time was hashed in UTC."""
    if backend != "postgresql":
        pytest.skip("SQLite stores and returns times without a zone")
    _write(fresh_settings, 5)
    engine = db.make_engine(fresh_settings)
    with engine.begin() as conn:
        name = conn.execute(text("SELECT current_database()")).scalar_one()
        conn.execute(text(f"ALTER DATABASE \"{name}\" SET timezone TO 'Asia/Shanghai'"))
    engine.dispose()
    engine = db.make_engine(fresh_settings)
    with engine.connect() as conn:
        assert conn.execute(text("SHOW timezone")).scalar_one() == "Asia/Shanghai"
    engine.dispose()
    report = _verify(fresh_settings)
    assert report.intact, report.problems
    assert report.entries >= 5


def test_a_walk_by_several_processes_finds_what_one_walk_finds(fresh_settings: Settings) -> None:
    """``audit verify`` walks the live table in segments, one process each: a break at
    a segment's edge or inside one is reported as one walk reports it."""
    _write(fresh_settings, 60)
    _checkpoint(fresh_settings)
    _write(fresh_settings, 5)
    engine = db.make_engine(fresh_settings)
    with engine.begin() as conn:
        top = conn.execute(select(func.max(AuditEntry.seq))).scalar_one()
        forged = conn.execute(select(AuditEntry.__table__).where(AuditEntry.seq == 3)).mappings()
        conn.execute(AuditEntry.__table__.insert().values({**forged.one(), "seq": 0}))
        conn.execute(update(AuditEntry).where(AuditEntry.seq == 7).values(actor="someone-else"))
        # Entries 20 and 21 are gone: 20 is the last seq of the second segment of ten.
        conn.execute(delete(AuditEntry).where(AuditEntry.seq.in_([20, 21])))
        conn.execute(update(AuditEntry).where(AuditEntry.seq == 45).values(hash="f" * 64))
        conn.execute(update(AuditEntry).where(AuditEntry.seq == top - 2).values(action="x"))
    engine.dispose()
    engine = db.make_engine(fresh_settings)
    with db.session_scope(db.make_session_factory(engine, fresh_settings)) as s:
        one = audit.verify_chain(s)
        many = audit.verify_chain(s, workers=2, segment_entries=10)
    engine.dispose()
    assert many == one
    assert {p.seq for p in one.problems} == {0, 7, 20, 22, 45, 46, top - 2}
    assert one.entries == top - 1  # 0 to top, less the two deleted
