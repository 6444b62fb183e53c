"""Hubs of their own for the operations tests: each test sets what it checks."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from govshare.config import Settings
from tests.live import LiveHub, start_live_hub

StartHub = Callable[..., LiveHub]


@pytest.fixture
def start_hub(fresh_settings: Settings) -> Iterator[StartHub]:
    """Start a live hub on the test's fresh database with some settings changed."""
    started: list[LiveHub] = []

    def start(**changes: object) -> LiveHub:
        settings = fresh_settings.model_copy(update=changes)
        hub = start_live_hub(settings)
        started.append(hub)
        return hub

    yield start
    for hub in started:
        hub.stop()
