from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.collab.scenery import Scenery, build
from tests.conftest import make_settings, migrated
from tests.factories import PASSWORD
from tests.live import LiveHub, start_live_hub
from tests.pg import PostgresServer


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def collab_hub(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveHub]:
    """A live hub on a real SQLite file or PostgreSQL database, shared by a module's
    tests."""
    url = None
    if request.param == "postgresql":
        server: PostgresServer = request.getfixturevalue("postgres")
        url = server.create_database(f"collab_{abs(hash(request.node.nodeid)) % 10**8}")
    settings = migrated(make_settings(Path(tmp_path_factory.mktemp("collab")), url))
    hub = start_live_hub(settings)
    yield hub
    hub.stop()


@pytest.fixture
def scenery(collab_hub: LiveHub) -> Scenery:
    with collab_hub.db() as s:
        return build(s)


class Clients:
    def __init__(self, hub: LiveHub, scenery: Scenery) -> None:
        self.hub, self.scenery = hub, scenery

    def __getitem__(self, key: str):  # type: ignore[no-untyped-def]
        return self.hub.client(self.hub.token(self.scenery.users[key], PASSWORD))


@pytest.fixture
def as_(collab_hub: LiveHub, scenery: Scenery) -> Clients:
    return Clients(collab_hub, scenery)
