"""The operations domain's scheduled work: backups on a schedule, pruned by retention,
and the 备份过期 alert when the last good one is old; the disk and key watches."""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Callable
from datetime import UTC, datetime

import structlog
from croniter import croniter
from sqlalchemy.orm import Session, sessionmaker

from govshare.config import Settings
from govshare.db import session_scope, utcnow
from govshare.ops import backup, service, watch
from govshare.periodic import Periodic
from govshare.rules.clock import CHINA
from govshare.security.audit import SYSTEM

log = structlog.get_logger()
LOCK_FILE = "backup.lock"
WATCH_INTERVAL_SECONDS = 60.0


def watcher(
    settings: Settings,
    factory: sessionmaker[Session],
    *,
    interval: float = WATCH_INTERVAL_SECONDS,
    clock: Callable[[], datetime] = utcnow,
) -> Periodic:
    """磁盘空间不足 and 密钥即将到期 checked every ``interval`` seconds."""

    def step() -> None:
        with session_scope(factory) as session:
            watch.watch(session, settings, clock())

    return Periodic("ops-watch", interval, step)


def next_due(schedule: str, after: datetime) -> datetime:
    """The first time the cron ``schedule`` (China time) fires after ``after``."""
    found: datetime = croniter(schedule, after.astimezone(CHINA)).get_next(datetime)
    return found.astimezone(UTC)


class BackupScheduler:
    """A daemon thread: every ``interval`` seconds it checks the backup age (alert), and
    when ``backup_schedule`` has fired since the last scheduled backup it takes one into
    ``backup_dir`` and prunes the old ones. Of several hub processes only the one holding
    ``DATA_DIR/backup.lock`` backs up."""

    def __init__(
        self,
        settings: Settings,
        factory: sessionmaker[Session],
        *,
        interval: float = 60,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.settings = settings
        self.factory = factory
        self.interval = interval
        self.clock = clock
        self._due: datetime | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="backup-scheduler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def run_once(self) -> str | None:
        """Back up when due; check the age. The new backup's name, if one was taken."""
        now = self.clock()
        taken = None
        if self.settings.backup_dir is not None:
            if self._due is None:
                self._due = next_due(self.settings.backup_schedule, now)
            if now >= self._due:
                taken = self._backup(now)
                self._due = next_due(self.settings.backup_schedule, now)
        with session_scope(self.factory) as session:
            service.check_backup_age(session, self.settings, self.clock())
        return taken

    def _backup(self, now: datetime) -> str | None:
        root = self.settings.backup_dir
        assert root is not None
        root.mkdir(parents=True, exist_ok=True)
        self.settings.data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.settings.data_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return None  # another hub process is backing up
            name = backup.backup_name(now)
            if (root / name).exists():
                return None
            key = backup.load_key(self.settings)
            service.take_backup(
                self.settings,
                self.factory,
                root / name,
                key=key,
                actor=SYSTEM,
                trigger="schedule",
                now=now,
            )
            gone = backup.prune(
                root,
                daily=self.settings.backup_keep_daily,
                monthly=self.settings.backup_keep_monthly,
                tz=CHINA,
            )
            log.info("scheduled backup taken", backup=name, pruned=gone)
            return name
        finally:
            os.close(fd)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.run_once()
            except Exception:
                log.exception("scheduled backup failed")
