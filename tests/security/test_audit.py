"""The audit log is a hash chain: any edited, deleted or inserted entry is found."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import delete, func, select, text, update

from govshare import db
from govshare.config import Settings
from govshare.security import audit
from govshare.security.audit import Actor
from govshare.security.models import AuditEntry


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
    assert algs == {"sha256"}


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
