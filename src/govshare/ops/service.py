"""The operations domain's rules: backups recorded and audited, their age watched."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from govshare.config import Settings
from govshare.db import session_scope, utcnow
from govshare.exchange import alertrules
from govshare.exchange.alerts import raise_alert, resolve_alerts
from govshare.exchange.models import AlertKind
from govshare.ops import backup
from govshare.ops.models import BackupRun, BackupStatus
from govshare.security import audit
from govshare.security.audit import Actor


def take_backup(
    settings: Settings,
    factory: sessionmaker[Session],
    dest: Path,
    *,
    key: bytes,
    actor: Actor,
    trigger: str = "manual",
    now: datetime | None = None,
    progress: backup.Progress | None = None,
) -> backup.BackupResult:
    """Take a backup (``backup.create_backup``) and keep its record: a ``backup_run``
    row, running before the snapshot and finished after, and an audit entry. A failed
    backup is recorded as failed and its error raised again."""
    began = time.monotonic()

    def finished() -> datetime:
        return now + timedelta(seconds=time.monotonic() - began) if now else utcnow()

    with session_scope(factory) as session:
        run = BackupRun(
            trigger=trigger, dest=str(dest), status=BackupStatus.RUNNING, started_at=now or utcnow()
        )
        session.add(run)
        session.flush()
        run_id = run.id
    try:
        result = backup.create_backup(
            settings, dest, key=key, now=now, progress=progress or (lambda _n, _l: None)
        )
    except BaseException as exc:
        with session_scope(factory) as session:
            failed = session.get_one(BackupRun, run_id)
            failed.status = BackupStatus.FAILED
            failed.finished_at = finished()
            failed.message = str(exc)[:2000] or type(exc).__name__
            audit.record(
                session,
                actor,
                "ops.backup",
                object_type="backup_run",
                object_id=run_id,
                after={"dest": str(dest), "status": "failed", "error": failed.message},
            )
        raise
    with session_scope(factory) as session:
        done = session.get_one(BackupRun, run_id)
        done.status = BackupStatus.SUCCEEDED
        done.finished_at = finished()
        done.items = result.items
        done.bytes = result.bytes
        done.audit_seq = result.audit_seq
        audit.record(
            session,
            actor,
            "ops.backup",
            object_type="backup_run",
            object_id=run_id,
            after={
                "dest": str(result.dest),
                "status": "succeeded",
                "items": result.items,
                "bytes": result.bytes,
                "audit_seq": result.audit_seq,
            },
        )
    return result


def last_good(session: Session) -> BackupRun | None:
    """The newest backup that succeeded."""
    return session.scalar(
        select(BackupRun)
        .where(BackupRun.status == BackupStatus.SUCCEEDED)
        .order_by(BackupRun.finished_at.desc(), BackupRun.id.desc())
        .limit(1)
    )


def last_run(session: Session) -> BackupRun | None:
    return session.scalar(select(BackupRun).order_by(BackupRun.id.desc()).limit(1))


@dataclass(frozen=True, slots=True)
class BackupAge:
    """How old the last good backup is; ``stale`` when the alert should be open."""

    last: datetime | None
    age: timedelta | None
    stale: bool


def backup_age(session: Session, settings: Settings, now: datetime) -> BackupAge:
    """The 备份过期 rule's hours (``backup_max_age_hours`` unless edited; off when 0 or
    disabled) against the last good backup."""
    good = last_good(session)
    rule = alertrules.effective(session, settings, AlertKind.BACKUP_STALE)
    hours = rule.threshold or 0
    watched = (
        rule.enabled
        and hours > 0
        and (settings.backup_dir is not None or last_run(session) is not None)
    )
    if good is None or good.finished_at is None:
        return BackupAge(None, None, watched)
    age = now - good.finished_at
    limit = timedelta(hours=hours)
    return BackupAge(good.finished_at, age, watched and age > limit)


def check_backup_age(session: Session, settings: Settings, now: datetime) -> BackupAge:
    """Raise the 备份过期 alert while the last good backup is too old (or there is none
    though backups are expected); resolve it once a fresh one exists."""
    found = backup_age(session, settings, now)
    hours = alertrules.effective(session, settings, AlertKind.BACKUP_STALE).threshold or 0
    if found.stale:
        if found.last is None:
            message = "还没有成功的备份"
        else:
            hours = found.age.total_seconds() / 3600 if found.age else 0
            message = f"最近一次成功备份在 {hours:.0f} 小时前, 超过 {hours:g} 小时"
        raise_alert(
            session,
            AlertKind.BACKUP_STALE,
            message,
            details={"last": found.last.isoformat() if found.last else None},
            webhook_url=settings.alert_webhook_url,
        )
    else:
        resolve_alerts(session, AlertKind.BACKUP_STALE)
    return found
