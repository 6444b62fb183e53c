"""The open interfaces' per-address limits hold for the whole hub: every worker process
counts in the same windows file, and a window's last call goes to one process only.
Hub processes on several machines count in the hub database instead. A windows file
that cannot be written, or a database that fails, leaves each process counting alone
rather than refusing callers; windows long past are deleted."""

from __future__ import annotations

import multiprocessing
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from govshare import db
from govshare.config import Settings
from govshare.opendata import windows as shared
from govshare.opendata.gate import Gate, Refused
from govshare.opendata.windows import DatabaseWindows, SharedWindows, default_path, windows_for
from tests.conftest import make_settings, migrated
from tests.pg import PostgresServer

AT = datetime(2026, 3, 10, 2, 0, 30, tzinfo=UTC)


def _calls(settings: Settings, at: datetime, address: str, n: int) -> int:
    """``n`` anonymous calls from ``address`` through a gate of this process; how many
    were admitted (every refusal is a 429 telling the 30 s left of the minute)."""
    gate = Gate(settings, lambda: at)
    refusals = []
    for _ in range(n):
        try:
            gate.admit(None, {}, address)  # type: ignore[arg-type]  # anonymous: no session used
        except Refused as refused:
            refusals.append((refused.status, refused.retry_after))
    gate.windows.close()
    if set(refusals) - {(429, 30)}:
        raise AssertionError(f"unexpected refusals: {set(refusals)}")
    return n - len(refusals)


def _in_processes(
    settings: Settings, at: datetime, address: str, per_process: list[int]
) -> list[int]:
    """``_calls`` in processes of their own, as the hub's workers are, at once."""
    with multiprocessing.get_context("spawn").Pool(len(per_process)) as pool:
        return pool.starmap(_calls, [(settings, at, address, n) for n in per_process])


def test_an_anonymous_limit_holds_across_the_hubs_processes(tmp_path: Path) -> None:
    settings = make_settings(tmp_path).model_copy(update={"open_anonymous_per_minute": 5})
    assert _calls(settings, AT, "10.0.0.1", 3) == 3
    # Another process of the same hub gets the rest of the minute, and no more.
    assert _in_processes(settings, AT, "10.0.0.1", [4]) == [2]
    assert _calls(settings, AT, "10.0.0.1", 1) == 0
    # Another address, and the next minute, start again.
    assert _calls(settings, AT, "10.0.0.2", 1) == 1
    assert _calls(settings, AT + timedelta(minutes=1), "10.0.0.1", 5) == 5


def test_processes_racing_for_a_window_take_exactly_the_limit(tmp_path: Path) -> None:
    settings = make_settings(tmp_path).model_copy(update={"open_anonymous_per_minute": 40})
    admitted = _in_processes(settings, AT, "10.0.0.9", [60, 60])
    assert sum(admitted) == 40
    with sqlite3.connect(default_path(settings.data_dir)) as db:
        assert db.execute("SELECT used FROM rate_window WHERE who = '10.0.0.9'").fetchall() == [
            (40,)
        ]


def test_an_unwritable_windows_file_leaves_the_process_counting_alone(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("not a directory")
    windows = SharedWindows(tmp_path / "a-file" / "open-limits.db")
    settings = make_settings(tmp_path).model_copy(update={"open_anonymous_per_minute": 2})
    gate = Gate(settings, lambda: AT, windows)
    gate.admit(None, {}, "10.0.0.3")  # type: ignore[arg-type]
    gate.admit(None, {}, "10.0.0.3")  # type: ignore[arg-type]
    with pytest.raises(Refused) as refused:
        gate.admit(None, {}, "10.0.0.3")  # type: ignore[arg-type]
    assert refused.value.status == 429


def test_windows_long_past_are_deleted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shared, "PRUNE_EVERY_SECONDS", 0)
    windows = SharedWindows(tmp_path / "open-limits.db")
    start = AT.timestamp()
    assert windows.take("anon", "a", 1, start, 5)
    assert windows.take("auth", "a", 1, start + 3000, 5)  # an hour's window, still open
    assert windows.take("anon", "b", 70, start + 3660, 5)  # an hour and a minute later
    with sqlite3.connect(windows.path) as db:
        kept = db.execute("SELECT bucket, who FROM rate_window ORDER BY who, bucket").fetchall()
    assert kept == [("auth", "a"), ("anon", "b")]
    windows.close()
    assert not windows.take("anon", "c", 1, start, 0)  # a limit of 0 admits nobody


def test_an_anonymous_limit_holds_across_machines_sharing_the_database(
    postgres: PostgresServer, tmp_path: Path
) -> None:
    """Two hub machines (two data directories, no file in common) on one PostgreSQL
    database: an address gets its limit once, not once per machine, even when both race
    for the last calls of a window."""
    url = postgres.create_database("t_open_windows")
    limits = {"open_anonymous_per_minute": 5}
    first = migrated(make_settings(tmp_path / "first", url)).model_copy(update=limits)
    second = make_settings(tmp_path / "second", url).model_copy(update=limits)
    assert isinstance(windows_for(first), DatabaseWindows)  # auto: not SQLite
    assert _calls(first, AT, "10.0.1.1", 3) == 3
    assert _in_processes(second, AT, "10.0.1.1", [4]) == [2]
    assert _calls(first, AT, "10.0.1.1", 1) == 0
    assert _calls(second, AT + timedelta(minutes=1), "10.0.1.1", 5) == 5
    assert not (tmp_path / "second" / "limits").exists()

    racing = second.model_copy(update={"open_anonymous_per_minute": 40})
    assert sum(_in_processes(racing, AT, "10.0.1.9", [60, 60])) == 40
    engine = db.make_engine(first)
    try:
        with engine.connect() as conn:
            used = conn.execute(
                text("SELECT used FROM open_rate_window WHERE who = '10.0.1.9'")
            ).all()
    finally:
        engine.dispose()
    assert [tuple(r) for r in used] == [(40,)]


def test_where_a_hub_counts_follows_the_setting(tmp_path: Path) -> None:
    settings = migrated(make_settings(tmp_path))
    assert isinstance(windows_for(settings), SharedWindows)  # auto on SQLite: the file
    chosen = settings.model_copy(
        update={"open_limit_windows": "database", "open_anonymous_per_minute": 2}
    )
    windows = windows_for(chosen)
    assert isinstance(windows, DatabaseWindows)
    gate = Gate(chosen, lambda: AT, windows)
    for _ in range(2):
        gate.admit(None, {}, "10.0.2.1")  # type: ignore[arg-type]
    with pytest.raises(Refused):
        gate.admit(None, {}, "10.0.2.1")  # type: ignore[arg-type]
    windows.close()
    assert not default_path(settings.data_dir).exists()


def test_a_failing_database_leaves_the_process_counting_alone(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'no-tables.db'}")  # never migrated
    settings = make_settings(tmp_path).model_copy(update={"open_anonymous_per_minute": 2})
    gate = Gate(settings, lambda: AT, DatabaseWindows(engine))
    gate.admit(None, {}, "10.0.2.2")  # type: ignore[arg-type]
    gate.admit(None, {}, "10.0.2.2")  # type: ignore[arg-type]
    with pytest.raises(Refused) as refused:
        gate.admit(None, {}, "10.0.2.2")  # type: ignore[arg-type]
    assert refused.value.status == 429
    engine.dispose()
