"""``db.WriteTurns``: on SQLite the hub's worker processes take turns at case steps. A
process wanting to write a step waits on a file lock until the one writing has
committed (instead of SQLite's busy handler sleeping in growing steps), and goes on as
soon as it is let go."""

from __future__ import annotations

import multiprocessing
import time
from multiprocessing.synchronize import Event
from pathlib import Path

from govshare.db import WriteTurns


def _step_in_another_process(path: Path, inside: Event) -> None:
    writes = WriteTurns()
    writes.path = path
    with writes:
        inside.set()


def test_a_second_process_writes_a_step_only_once_the_first_has_let_go(tmp_path: Path) -> None:
    lock = tmp_path / "locks" / "collab-cases.lock"
    writes = WriteTurns()
    writes.path = lock
    context = multiprocessing.get_context("spawn")
    inside = context.Event()
    with writes:
        other = context.Process(target=_step_in_another_process, args=(lock, inside))
        other.start()
        # The other process is started and waiting; it must not get in meanwhile.
        assert not inside.wait(2.0)
        let_go = time.monotonic()
    assert inside.wait(30)
    waited = time.monotonic() - let_go
    other.join(30)
    assert other.exitcode == 0
    assert waited < 1.0  # woken when let go, not after a sleep of its own

    # Without a path (PostgreSQL), only this process's threads are ordered.
    unordered = WriteTurns()
    inside = context.Event()
    with unordered:
        other = context.Process(target=_step_in_another_process, args=(None, inside))
        other.start()
        assert inside.wait(30)
    other.join(30)
