"""Backups (备份与恢复): taken while the hub writes, restored into an empty data dir,
compared with the source as of the backup point; tampering, a wrong key and a non-empty
target refused with a clear message; retention and the 备份过期 alert."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from govshare.config import Settings
from govshare.db import session_scope
from govshare.exchange.models import Alert, AlertKind
from govshare.ops import backup, service
from govshare.ops.models import BackupRun, BackupStatus
from govshare.ops.tasks import BackupScheduler
from govshare.rules.clock import CHINA
from govshare.security import audit
from govshare.security.audit import SYSTEM, Actor
from govshare.security.models import AuditEntry
from tests.conftest import TEST_SECRET, make_settings, migrated
from tests.live import LiveHub, start_live_hub

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))
STORE = "store_people"
# Tables the hub's own background work (calendar, monitor) may add rows to at any time.
BACKGROUND = frozenset({"alert", "notification"})


def _hub(tmp_path: Path, **kw: Any) -> Settings:
    settings = migrated(make_settings(tmp_path / "data", **kw))
    files = settings.data_dir / "open-files" / "ab"
    files.mkdir(parents=True)
    (files / ("ab" + "0" * 62)).write_bytes(os.urandom(300_000))  # an uploaded file
    with sqlite3.connect(settings.data_dir / "shared.db") as conn:
        conn.execute(f"CREATE TABLE IF NOT EXISTS {STORE} (id INTEGER PRIMARY KEY, name TEXT)")
        conn.executemany(
            f"INSERT INTO {STORE} (name) VALUES (?)", [(f"人员{i}",) for i in range(1000)]
        )
    return settings


def _rows(path: Path, table: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(path) as conn:
        return conn.execute(f'SELECT * FROM "{table}" ORDER BY 1').fetchall()


def _tables(path: Path) -> list[str]:
    with sqlite3.connect(path) as conn:
        return [
            r[0]
            for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
            )
        ]


def _files(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and ("open-files" in p.parts or p.name == "key.json")
    }


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "GOVSHARE_SECRET_KEY": TEST_SECRET, **(env or {})}
    full.pop("GOVSHARE_DEMO", None)
    return subprocess.run(
        [sys.executable, "-m", "govshare.cli", *args],
        env=full,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )


@pytest.mark.parametrize("cipher", ["sm4", "aes"])
def test_restore_while_the_hub_writes_gives_the_source_as_of_the_backup_point(
    tmp_path: Path, cipher: str
) -> None:
    # Checkpoints signed every second while the writer runs: the backup must hold none
    # beyond its own chain, or the restored chain would not verify (truncated).
    settings = _hub(tmp_path, backup_cipher=cipher, audit_checkpoint_seconds=1)
    hub = start_live_hub(settings)
    stop = threading.Event()
    written = {"audit": 0, "store": 0, "http": 0}

    def write() -> None:
        shared = sqlite3.connect(settings.data_dir / "shared.db", timeout=10)
        with httpx.Client(base_url=hub.base_url, timeout=30) as client:
            while not stop.is_set():
                with hub.db() as s:
                    audit.record(s, Actor(name="writer"), "catalog.update", object_type="x")
                written["audit"] += 1
                with shared:
                    shared.execute(f"INSERT INTO {STORE} (name) VALUES ('新增')")
                written["store"] += 1
                assert client.get("/healthz").status_code == 200
                written["http"] += 1
        shared.close()

    writer = threading.Thread(target=write)
    writer.start()
    try:
        checkpoints = settings.data_dir / "audit" / "checkpoints.jsonl"
        while written["audit"] < 20 or not checkpoints.exists():
            time.sleep(0.01)
        before = dict(written)
        result = service.take_backup(
            settings, hub.session_factory, tmp_path / "backup", key=KEY, actor=SYSTEM
        )
        time.sleep(0.3)  # the hub goes on writing after the backup point
    finally:
        stop.set()
        writer.join()
        hub.stop()
    assert written["audit"] > before["audit"]
    assert result.audit_seq is not None
    assert result.audit_seq >= before["audit"]

    report = backup.verify_backup(tmp_path / "backup", key=KEY)
    assert report.intact, report.problems
    assert report.manifest.cipher == cipher

    restored = tmp_path / "restored"
    backup.restore_backup(tmp_path / "backup", restored, key=KEY)

    # Every table as the source had it at the backup point: the audit chain and the
    # store are the source's prefix up to it; every row of every other table is the
    # source's row unchanged (the hub's background work may add rows afterwards, and
    # counts an open alert up), but for the backup's own record and the chain's head.
    src_db, copy_db = settings.data_dir / "govshare.db", restored / "govshare.db"
    assert _tables(copy_db) == _tables(src_db)
    for table in _tables(src_db):
        source, copy = _rows(src_db, table), _rows(copy_db, table)
        if table == "audit_entry":
            assert len(copy) == result.audit_seq
            assert copy == source[: len(copy)]
        elif table == "backup_run":
            assert [(r[0], r[3]) for r in copy] == [(1, "running")]
        elif table == "audit_head":
            assert copy[0][1] == result.audit_seq
        elif table == "alert":
            assert {r[:2] for r in copy} <= {r[:2] for r in source}
        else:
            assert set(copy) <= set(source), table
            assert len(copy) == len(source) or table in BACKGROUND, table
    src_shared, copy_shared = settings.data_dir / "shared.db", restored / "shared.db"
    assert _tables(copy_shared) == _tables(src_shared)
    people = _rows(copy_shared, STORE)
    assert 1000 + before["store"] <= len(people) < len(_rows(src_shared, STORE))
    assert people == _rows(src_shared, STORE)[: len(people)]
    assert _files(restored) == _files(settings.data_dir)
    assert (restored / "audit" / "key.json").stat().st_mode & 0o777 == 0o600
    assert (restored / "audit" / "checkpoints.jsonl").read_bytes()
    assert checkpoints.read_bytes().startswith(
        (restored / "audit" / "checkpoints.jsonl").read_bytes()
    )

    # The restored chain verifies, with the same command an auditor runs.
    verified = _cli("audit", "verify", "--data-dir", str(restored))
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert f"{result.audit_seq} 条记录" in verified.stdout

    # A hub starts on the copy and serves it.
    copy_hub: LiveHub = start_live_hub(make_settings(restored))
    try:
        assert httpx.get(f"{copy_hub.base_url}/healthz", timeout=30).status_code == 200
        with copy_hub.db() as s:
            assert audit.head(s)[0] >= result.audit_seq
    finally:
        copy_hub.stop()


def test_an_altered_or_cut_item_fails_verify_and_restore_leaves_nothing(tmp_path: Path) -> None:
    settings = _hub(tmp_path)
    backup.create_backup(settings, tmp_path / "b", key=KEY)
    assert backup.verify_backup(tmp_path / "b", key=KEY).intact
    items = sorted((tmp_path / "b" / "items").iterdir())
    biggest = max(items, key=lambda p: p.stat().st_size)
    data = bytearray(biggest.read_bytes())
    data[len(data) // 2] ^= 1
    biggest.write_bytes(bytes(data))
    report = backup.verify_backup(tmp_path / "b", key=KEY)
    assert len(report.problems) == 1
    assert "未通过认证" in report.problems[0]

    target = tmp_path / "restored"
    with pytest.raises(backup.BackupError, match="未通过认证"):
        backup.restore_backup(tmp_path / "b", target, key=KEY)
    assert not target.exists()

    # Cut at a chunk boundary: the last chunk is missing, which the tag tells.
    biggest.write_bytes(b"")
    assert any("大小不符" in p for p in backup.verify_backup(tmp_path / "b", key=KEY).problems)


def test_an_edited_manifest_is_refused(tmp_path: Path) -> None:
    """Sizes or digests in the manifest made to fit an altered item cannot pass: the
    manifest's MAC no longer holds."""
    settings = _hub(tmp_path)
    backup.create_backup(settings, tmp_path / "b", key=KEY)
    manifest = tmp_path / "b" / "manifest.json"
    manifest.write_text(manifest.read_text().replace('"size": ', '"size": 1'))
    with pytest.raises(backup.BackupError, match="清单未通过认证"):
        backup.verify_backup(tmp_path / "b", key=KEY)


def test_the_wrong_key_is_told_and_nothing_is_restored(tmp_path: Path) -> None:
    settings = _hub(tmp_path)
    backup.create_backup(settings, tmp_path / "b", key=KEY)
    with pytest.raises(backup.BackupError, match="密钥不对"):
        backup.restore_backup(tmp_path / "b", tmp_path / "r", key=OTHER_KEY)
    assert not (tmp_path / "r").exists()


def test_cli_backup_verify_and_restore_refusing_a_non_empty_dir(tmp_path: Path) -> None:
    settings = _hub(tmp_path)
    key_file = tmp_path / "backup.key"
    made = _cli("backup", "keygen", str(key_file))
    assert made.returncode == 0, made.stderr
    assert key_file.stat().st_mode & 0o777 == 0o600
    again = _cli("backup", "keygen", str(key_file))
    assert again.returncode == 2
    assert "不会覆盖" in again.stderr

    env = {"GOVSHARE_BACKUP_KEY_FILE": str(key_file)}
    taken = _cli("backup", str(tmp_path / "b"), "--data-dir", str(settings.data_dir), env=env)
    assert taken.returncode == 0, taken.stderr
    assert "备份完成" in taken.stdout
    checked = _cli("backup", "verify", str(tmp_path / "b"), env=env)
    assert checked.returncode == 0, checked.stderr
    assert "备份完整" in checked.stdout

    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "something").write_text("x")
    refused = _cli("restore", str(tmp_path / "b"), "--data-dir", str(busy), env=env)
    assert refused.returncode == 1
    assert "不是空目录" in refused.stderr
    assert (busy / "something").read_text() == "x"
    assert sorted(p.name for p in busy.iterdir()) == ["something"]

    no_key = _cli("backup", "verify", str(tmp_path / "b"))
    assert no_key.returncode == 2
    assert "没有备份密钥" in no_key.stderr

    done = _cli("restore", str(tmp_path / "b"), "--data-dir", str(tmp_path / "r"), env=env)
    assert done.returncode == 0, done.stderr
    assert _rows(tmp_path / "r" / "shared.db", STORE) == _rows(
        settings.data_dir / "shared.db", STORE
    )
    with session_scope(_factory(settings)) as s:
        runs = list(s.scalars(select(BackupRun)))
        assert [(r.status, r.trigger) for r in runs] == [(BackupStatus.SUCCEEDED, "manual")]
        entry = s.scalars(select(AuditEntry).where(AuditEntry.action == "ops.backup")).one()
        assert entry.after is not None
        assert entry.after["status"] == "succeeded"


def test_a_backup_inside_the_data_dir_or_into_a_used_dir_is_refused(tmp_path: Path) -> None:
    settings = _hub(tmp_path)
    with pytest.raises(backup.BackupError, match="不能在数据目录之内"):
        backup.create_backup(settings, settings.data_dir / "b", key=KEY)
    used = tmp_path / "used"
    used.mkdir()
    (used / "x").write_text("x")
    with pytest.raises(backup.BackupError, match="不是空目录"):
        backup.create_backup(settings, used, key=KEY)


def test_retention_keeps_the_newest_of_recent_days_and_months() -> None:
    start = datetime(2026, 1, 1, 18, 30, tzinfo=UTC)  # 02:30 China time the next day
    created = {}
    for day in range(100):  # the newest on 11 April, China time
        for hour in (0, 6):
            at = start + timedelta(days=day, hours=hour)
            created[backup.backup_name(at)] = at
    kept = backup.keep(created, daily=3, monthly=2, tz=CHINA)
    newest = max(created.values())
    days = sorted({created[n].astimezone(CHINA).date() for n in kept})
    # three newest days, plus the newest of the month before (two months)
    assert len(kept) == 4
    assert backup.backup_name(newest) in kept
    assert days[-3:] == [newest.astimezone(CHINA).date() - timedelta(days=i) for i in (2, 1, 0)]
    assert days[0].month == days[-1].month - 1
    assert days[0] == max(
        d
        for d in (v.astimezone(CHINA).date() for v in created.values())
        if d.month == days[0].month
    )
    assert backup.keep(created, daily=0, monthly=0) == {backup.backup_name(newest)}


def _factory(settings: Settings) -> Any:
    from govshare import db

    return db.make_session_factory(db.make_engine(settings), settings)


def test_scheduled_backups_prune_and_alert_when_the_last_good_one_is_old(tmp_path: Path) -> None:
    key_file = tmp_path / "backup.key"
    backup.write_key_file(key_file)
    settings = _hub(
        tmp_path,
        backup_dir=tmp_path / "backups",
        backup_key_file=key_file,
        backup_schedule="30 2 * * *",
        backup_keep_daily=2,
        backup_keep_monthly=0,
        backup_max_age_hours=30,
    )
    factory = _factory(settings)
    now = [datetime(2026, 3, 1, 12, 0, tzinfo=UTC)]
    scheduler = BackupScheduler(settings, factory, clock=lambda: now[0])

    def open_alert() -> Alert | None:
        with session_scope(factory) as s:
            return s.scalar(
                select(Alert).where(
                    Alert.kind == AlertKind.BACKUP_STALE, Alert.resolved_at.is_(None)
                )
            )

    assert scheduler.run_once() is None  # not due yet; scheduled but none taken: alert
    alert = open_alert()
    assert alert is not None
    assert "还没有成功的备份" in alert.message
    taken = []
    for day in range(3):
        now[0] = datetime(2026, 3, 1 + day, 18, 31, tzinfo=UTC)  # 02:31 China time
        name = scheduler.run_once()
        assert name is not None
        taken.append(name)
        assert scheduler.run_once() is None  # not due again the same night
    assert open_alert() is None  # resolved by a fresh backup
    assert sorted(p.name for p in (tmp_path / "backups").iterdir()) == taken[1:]

    # Backups stop (the key is gone); a day and a half later the alert opens.
    key_file.unlink()
    now[0] = datetime(2026, 3, 5, 6, 0, tzinfo=UTC)
    with pytest.raises(backup.BackupError):
        scheduler.run_once()
    now[0] = datetime(2026, 3, 5, 6, 0, tzinfo=UTC)
    with session_scope(factory) as s:
        found = service.check_backup_age(s, settings, now[0])
    assert found.stale
    alert = open_alert()
    assert alert is not None
    assert "小时前" in alert.message


def test_a_postgresql_hub_is_dumped_and_restored_into_an_empty_database(
    tmp_path: Path, postgres: Any
) -> None:
    source_url = postgres.create_database("backup_source")
    settings = migrated(make_settings(tmp_path / "data", source_url))
    factory = _factory(settings)
    for i in range(50):
        with session_scope(factory) as s:
            audit.record(s, Actor(name="writer"), "catalog.update", object_type="x", object_id=i)
    result = service.take_backup(settings, factory, tmp_path / "b", key=KEY, actor=SYSTEM)
    manifest = backup.verify_backup(tmp_path / "b", key=KEY).manifest
    assert [i.kind for i in manifest.items if i.kind == "pgdump"] == ["pgdump"]

    target_url = postgres.create_database("backup_target")
    with pytest.raises(backup.BackupError, match="--database-url"):
        backup.restore_backup(tmp_path / "b", tmp_path / "r", key=KEY)
    with pytest.raises(backup.BackupError, match="目标数据库不是空的"):
        backup.restore_backup(tmp_path / "b", tmp_path / "r", key=KEY, database_url=source_url)
    assert not (tmp_path / "r").exists()
    backup.restore_backup(tmp_path / "b", tmp_path / "r", key=KEY, database_url=target_url)

    verified = _cli(
        "audit",
        "verify",
        "--data-dir",
        str(tmp_path / "r"),
        env={"GOVSHARE_DATABASE_URL": target_url},
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert f"{result.audit_seq} 条记录" in verified.stdout
    from sqlalchemy import create_engine, inspect, text

    source, copy = create_engine(source_url), create_engine(target_url)
    try:
        tables = inspect(source).get_table_names()
        assert sorted(inspect(copy).get_table_names()) == sorted(tables)
        for table in tables:
            if table in ("backup_run", "audit_entry", "audit_head"):
                continue  # the backup's own record and audit entry came after the dump
            order = "ORDER BY 1" if table != "alembic_version" else ""
            with source.connect() as a, copy.connect() as b:
                query = text(f'SELECT * FROM "{table}" {order}')
                assert b.execute(query).all() == a.execute(query).all(), table
        with source.connect() as a, copy.connect() as b:
            query = text("SELECT * FROM audit_entry WHERE seq <= :n ORDER BY seq")
            got = b.execute(query, {"n": result.audit_seq}).all()
            assert len(got) == result.audit_seq
            assert got == a.execute(query, {"n": result.audit_seq}).all()
    finally:
        source.dispose()
        copy.dispose()
        factory.kw["bind"].dispose()


def test_a_failed_backup_leaves_no_directory_and_is_recorded_as_failed(tmp_path: Path) -> None:
    settings = _hub(tmp_path)
    # The shared stores' database cannot be opened: the backup fails half-way.
    broken = settings.model_copy(
        update={"shared_store_url": f"sqlite:///{tmp_path / 'nowhere' / 'shared.db'}"}
    )
    factory = _factory(settings)
    with pytest.raises(backup.BackupError, match="无法读取或写入"):
        service.take_backup(broken, factory, tmp_path / "b", key=KEY, actor=SYSTEM)
    assert not (tmp_path / "b").exists()
    with session_scope(factory) as s:
        run = s.scalars(select(BackupRun)).one()
        assert run.status == BackupStatus.FAILED
        assert "无法读取或写入" in run.message
        assert service.last_good(s) is None
        entry = s.scalars(select(AuditEntry).where(AuditEntry.action == "ops.backup")).one()
        assert entry.after is not None
        assert entry.after["status"] == "failed"


def _manifest_items(dest: Path) -> dict[str, backup.Item]:
    return {i.path: i for i in backup.read_manifest(dest, KEY).items}


def test_chunks_are_packed_when_that_makes_them_smaller_and_restore_the_same_bytes(
    tmp_path: Path,
) -> None:
    """Database pages shrink several times under zstd, so a backup seals (and stores) a
    fraction of the bytes; an uploaded file of random bytes is sealed as it is."""
    settings = _hub(tmp_path)
    with sqlite3.connect(settings.data_dir / "shared.db") as conn:
        conn.executemany(
            f"INSERT INTO {STORE} (name) VALUES (?)", [(f"人员{i:08d}",) for i in range(200_000)]
        )
    backup.create_backup(settings, tmp_path / "b", key=KEY)
    items = _manifest_items(tmp_path / "b")
    shared = items["shared.db"]
    assert shared.stored_size < shared.size / 3
    upload = next(i for path, i in items.items() if path.startswith("open-files/"))
    assert upload.size <= upload.stored_size <= upload.size + 64
    target = tmp_path / "restored"
    backup.restore_backup(tmp_path / "b", target, key=KEY)
    assert _rows(target / "shared.db", STORE) == _rows(settings.data_dir / "shared.db", STORE)
    assert _files(target / "open-files") == _files(settings.data_dir / "open-files")


def test_a_backup_of_the_first_format_still_verifies_and_restores(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Backups taken before chunks were packed (format 1) stay restorable."""
    settings = _hub(tmp_path)
    with monkeypatch.context() as older:
        older.setattr(backup, "FORMAT", backup.PLAIN_FORMAT)
        backup.create_backup(settings, tmp_path / "b", key=KEY)
    manifest = backup.read_manifest(tmp_path / "b", KEY)
    assert manifest.box.packed is False
    assert all(i.stored_size >= i.size for i in manifest.items)
    assert backup.verify_backup(tmp_path / "b", key=KEY).intact
    target = tmp_path / "restored"
    backup.restore_backup(tmp_path / "b", target, key=KEY)
    assert _rows(target / "shared.db", STORE) == _rows(settings.data_dir / "shared.db", STORE)
    assert _files(target / "open-files") == _files(settings.data_dir / "open-files")
