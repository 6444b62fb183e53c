"""A background chore survives a failing step and stops when asked."""

from __future__ import annotations

import threading

from govshare.periodic import Periodic


def test_a_failing_step_is_logged_and_the_next_one_runs() -> None:
    calls: list[int] = []
    twice = threading.Event()

    def step() -> None:
        calls.append(len(calls))
        if len(calls) == 1:
            raise RuntimeError("the first step fails")
        twice.set()

    chore = Periodic("test-chore", 0.01, step)
    chore.start()
    try:
        assert twice.wait(10), "the step after a failure never ran"
    finally:
        chore.stop()
    seen = len(calls)
    assert not chore._thread.is_alive()
    assert len(calls) == seen  # nothing runs after stop
