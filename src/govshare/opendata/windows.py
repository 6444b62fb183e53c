"""Rate-limit windows shared by the hub's worker processes (限流计数).

With ``GOVSHARE_WORKERS=N`` each worker is a process of its own; a limit counted in
memory lets an address make N times its calls. The counts are kept instead in a small
SQLite file in the data directory, which every worker of the hub opens: one UPSERT per
counted event, taken only while the window's count is under the limit, so the check
and the count are one atomic step across processes.

The file is scratch: it is not backed up, it is written without waiting for the disk
(a crash forgets at most the current windows), and ended windows are deleted as they
pass. Hub processes on several machines (the scale-out deployment) each count on their
own machine. When the file cannot be used (a read-only or full disk) the process falls
back to counting in memory and says so once in its log, rather than refusing callers.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from pathlib import Path

import structlog

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


class SharedWindows:
    """Fixed-window counters every process of the hub sees."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        self._pid = 0
        self._pruned_at = 0.0
        self._broken = False
        self._memory: dict[tuple[str, str, int], int] = {}

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
            return self._take_in_memory((bucket, who, window), limit)

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

    def _take_in_memory(self, slot: tuple[str, str, int], limit: int) -> bool:
        if len(self._memory) > MAX_IN_MEMORY:
            self._memory = {k: v for k, v in self._memory.items() if k[2] >= slot[2]}
        used = self._memory.get(slot, 0)
        if used >= limit:
            return False
        self._memory[slot] = used + 1
        return True

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None
