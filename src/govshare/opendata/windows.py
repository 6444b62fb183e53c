"""Rate-limit windows shared by the hub's worker processes (限流计数).

With ``GOVSHARE_WORKERS=N`` each worker is a process of its own; a limit counted in
memory lets an address make N times its calls. The counts are kept instead in a small
SQLite file in the data directory, which every worker of the hub opens: one UPSERT per
counted event, taken only while the window's count is under the limit, so the check
and the count are one atomic step across processes.

The file is scratch: it is not backed up, it is written without waiting for the disk
(a crash forgets at most the current windows), and ended windows are deleted as they
pass. When the file cannot be used (a read-only or full disk) the process falls back to
counting in memory and says so once in its log, rather than refusing callers.

Hub processes on several machines (the scale-out deployment, on PostgreSQL) count in the
hub database instead (``DatabaseWindows``, table ``open_rate_window``): the same atomic
UPSERT, one short transaction per counted event (about 1 ms over loopback).
``GOVSHARE_OPEN_LIMIT_WINDOWS`` chooses (``auto``: the database when the hub's database
is not SQLite).
"""

from __future__ import annotations

import functools
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Protocol, cast

import structlog
from sqlalchemy import Engine, Table, bindparam
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.exc import SQLAlchemyError

from govshare import db
from govshare.config import Settings
from govshare.opendata.models import OpenRateWindow

log = structlog.get_logger()

DIRECTORY = "limits"
FILE = "open-limits.db"
PRUNE_EVERY_SECONDS = 60
MAX_IN_MEMORY = 50_000

SCHEMA = """
CREATE TABLE IF NOT EXISTS rate_window (
    bucket TEXT NOT NULL,
    who TEXT NOT NULL,
    window INTEGER NOT NULL,
    ends_at REAL NOT NULL,
    used INTEGER NOT NULL,
    PRIMARY KEY (bucket, who, window)
) WITHOUT ROWID
"""

# Counted only while under the limit: an UPSERT whose update is refused returns no row.
TAKE = """
INSERT INTO rate_window (bucket, who, window, ends_at, used) VALUES (?, ?, ?, ?, 1)
ON CONFLICT (bucket, who, window) DO UPDATE SET used = used + 1 WHERE used < ?
RETURNING used
"""


def default_path(data_dir: Path) -> Path:
    return data_dir / DIRECTORY / FILE


class Windows(Protocol):
    def take(self, bucket: str, who: str, window: int, ends_at: float, limit: int) -> bool: ...

    def close(self) -> None: ...


def windows_for(settings: Settings, engine: Engine | None = None) -> Windows:
    """Where this hub counts: the windows file of its machine, or its database (``engine``,
    or one made from the settings) when processes on several machines serve it."""
    mode = settings.open_limit_windows
    if mode == "database" or (mode == "auto" and not settings.is_sqlite):
        if engine is None:
            return DatabaseWindows(db.make_engine(settings), owns_engine=True)
        return DatabaseWindows(engine)
    return SharedWindows(default_path(settings.data_dir))


class _InMemory:
    """Counts of this process alone: the fallback when the shared windows fail."""

    def __init__(self) -> None:
        self._counts: dict[tuple[str, str, int], int] = {}

    def take(self, slot: tuple[str, str, int], limit: int) -> bool:
        if len(self._counts) > MAX_IN_MEMORY:
            self._counts = {k: v for k, v in self._counts.items() if k[2] >= slot[2]}
        used = self._counts.get(slot, 0)
        if used >= limit:
            return False
        self._counts[slot] = used + 1
        return True


class SharedWindows:
    """Fixed-window counters every process of the hub sees."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        self._pid = 0
        self._pruned_at = 0.0
        self._broken = False
        self._memory = _InMemory()

    def take(self, bucket: str, who: str, window: int, ends_at: float, limit: int) -> bool:
        """Count one event of ``who`` in ``bucket``'s ``window`` (ending at the Unix time
        ``ends_at``) unless ``limit`` events were counted there already; True when
        counted."""
        if limit <= 0:
            return False
        with self._lock:
            db = self._connection()
            if db is not None:
                try:
                    self._prune(db, ends_at)
                    return (
                        db.execute(TAKE, (bucket, who, window, ends_at, limit)).fetchone()
                        is not None
                    )
                except sqlite3.Error as exc:
                    self._give_up(exc)
            return self._memory.take((bucket, who, window), limit)

    def _connection(self) -> sqlite3.Connection | None:
        if self._broken:
            return None
        if self._db is not None and self._pid == os.getpid():
            return self._db
        try:  # opened in each process that counts (never inherited across a fork)
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            db = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=5
            )
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=OFF")
            db.execute(SCHEMA)
        except (sqlite3.Error, OSError) as exc:
            self._give_up(exc)
            return None
        self._db, self._pid = db, os.getpid()
        return db

    def _prune(self, db: sqlite3.Connection, now: float) -> None:
        # ``now`` is a window's end, so a window is deleted only once a later one is used.
        if time.monotonic() - self._pruned_at >= PRUNE_EVERY_SECONDS:
            self._pruned_at = time.monotonic()
            db.execute("DELETE FROM rate_window WHERE ends_at < ?", (now - 3600,))

    def _give_up(self, exc: Exception) -> None:
        if not self._broken:
            log.warning(
                "rate windows counted in this process only", path=str(self.path), error=str(exc)
            )
        self._broken = True

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None


@functools.cache
def _take_in_table(dialect: str) -> Any:
    """The windows file's UPSERT over ``open_rate_window``, for ``dialect``."""
    table = cast(Table, OpenRateWindow.__table__)
    insert = postgresql.insert if dialect == "postgresql" else sqlite_dialect.insert
    stmt = insert(table)
    return stmt.on_conflict_do_update(
        index_elements=[table.c.bucket, table.c.who, table.c.window_no],
        set_={"used": table.c.used + 1},
        where=table.c.used < bindparam("limit"),
    ).returning(table.c.used)


class DatabaseWindows:
    """Fixed-window counters in the hub database, seen by hub processes on every machine.
    A database error counts the event in this process alone (logged), as the windows
    file does when it cannot be written."""

    def __init__(self, engine: Engine, *, owns_engine: bool = False) -> None:
        self.engine = engine
        self._owns_engine = owns_engine
        self._lock = threading.Lock()
        self._pruned_at = 0.0
        self._warned_at = -float(PRUNE_EVERY_SECONDS)
        self._memory = _InMemory()

    def take(self, bucket: str, who: str, window: int, ends_at: float, limit: int) -> bool:
        """As ``SharedWindows.take``."""
        if limit <= 0:
            return False
        values = {
            "bucket": bucket,
            "who": who[:100],
            "window_no": window,
            "ends_at": ends_at,
            "used": 1,
            "limit": limit,
        }
        try:
            with self.engine.begin() as conn:
                self._prune(conn, ends_at)
                stmt = _take_in_table(conn.dialect.name)
                return conn.execute(stmt, values).first() is not None
        except SQLAlchemyError as exc:
            with self._lock:
                if time.monotonic() - self._warned_at >= PRUNE_EVERY_SECONDS:
                    self._warned_at = time.monotonic()
                    log.warning("rate windows counted in this process only", error=str(exc))
                return self._memory.take((bucket, who, window), limit)

    def _prune(self, conn: Any, now: float) -> None:
        with self._lock:
            due = time.monotonic() - self._pruned_at >= PRUNE_EVERY_SECONDS
            if due:
                self._pruned_at = time.monotonic()
        if due:
            table = cast(Table, OpenRateWindow.__table__)
            conn.execute(table.delete().where(table.c.ends_at < now - 3600))

    def close(self) -> None:
        if self._owns_engine:
            self.engine.dispose()
