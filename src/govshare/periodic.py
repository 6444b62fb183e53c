"""A hub's background chores: a daemon thread that runs one step every few seconds
(first after one interval, so a hub starting up does no extra work), logs a step that
fails and carries on, and stops within a step's time when the hub shuts down."""

from __future__ import annotations

import threading
from collections.abc import Callable

import structlog

log = structlog.get_logger()


class Periodic:
    def __init__(self, name: str, interval: float, step: Callable[[], object]) -> None:
        self.name = name
        self.interval = interval
        self.step = step
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.step()
            except Exception:
                log.exception("background step failed", chore=self.name)
