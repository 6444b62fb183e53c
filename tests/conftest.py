"""Fixtures: real PostgreSQL and MariaDB servers, hubs on SQLite and PostgreSQL served over
loopback HTTP, and builders for departments, users and catalog entries."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path

import pytest

from govshare import db
from govshare.catalog.service import seed_reference_data
from govshare.config import Settings
from govshare.rules.clock import fixed_today
from tests.factories import World
from tests.live import LiveHub, start_live_hub
from tests.mail import Inbox, smtp_server
from tests.mariadb import MariaDBServer, install_db_path, mariadbd_path, start_mariadb
from tests.pg import PostgresServer, pg_bin_dir, start_postgres

TEST_SECRET = "test-secret-key-with-at-least-32-characters!"


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    if pg_bin_dir() is None and not os.environ.get("CI"):
        pytest.skip("PostgreSQL is not installed here (CI installs it and never skips)")
    server = start_postgres()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def mariadb() -> Iterator[MariaDBServer]:
    if (mariadbd_path() is None or install_db_path() is None) and not os.environ.get("CI"):
        pytest.skip("MariaDB is not installed here (CI installs it and never skips)")
    server = start_mariadb()
    yield server
    server.stop()


def make_settings(data_dir: Path, database_url: str | None = None, **kw: object) -> Settings:
    # The shared live hubs serve many tests' anonymous open-data calls from one address
    # within a minute; tests of the limits themselves set it low.
    kw.setdefault("open_anonymous_per_minute", 100_000_000)
    kw.setdefault("open_auth_attempts_per_hour", 100_000_000)
    # The hubs' watchers look at the real disk, which on a fuller machine made a
    # 磁盘空间不足 alert part of what tests see. Tests of the disk rule set their own
    # thresholds.
    kw.setdefault("disk_free_alert_percent", 0.1)
    return Settings(
        data_dir=data_dir,
        database_url=database_url,
        secret_key=TEST_SECRET,
        demo=False,
        **kw,  # type: ignore[arg-type]
    )


def migrated(settings: Settings) -> Settings:
    db.upgrade(settings)
    engine = db.make_engine(settings)
    with db.session_scope(db.make_session_factory(engine, settings)) as session:
        seed_reference_data(session)
    engine.dispose()
    return settings


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def fresh_settings(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Settings:
    """A newly migrated, empty hub database on the given backend (one per test)."""
    url = None
    if backend == "postgresql":
        server: PostgresServer = request.getfixturevalue("postgres")
        url = server.create_database(f"t_{abs(hash(request.node.nodeid)) % 10**10}")
    return migrated(make_settings(tmp_path / "data", url))


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def hub(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveHub]:
    """A live hub shared by a session's API tests; tests create their own departments."""
    url = None
    if request.param == "postgresql":
        server: PostgresServer = request.getfixturevalue("postgres")
        url = server.create_database("govshare_api")
    settings = migrated(
        make_settings(
            tmp_path_factory.mktemp(f"hub-{request.param}"), url, compare_poll_seconds=0.3
        )
    )
    live = start_live_hub(settings)
    yield live
    live.stop()


@pytest.fixture
def world(hub: LiveHub) -> World:
    return World(hub)


StartHub = Callable[..., LiveHub]


@pytest.fixture
def start_hub(fresh_settings: Settings) -> Iterator[StartHub]:
    """Start live hubs on the test's fresh database, each with some settings changed."""
    started: list[LiveHub] = []

    def start(**changes: object) -> LiveHub:
        hub = start_live_hub(fresh_settings.model_copy(update=changes))
        started.append(hub)
        return hub

    yield start
    for hub in started:
        hub.stop()


@pytest.fixture
def calendar_covered_today() -> Iterator[None]:
    """Today is a day whose coming weeks the working-day calendar covers. For tests that
    count every alert a live hub sends: late in a real year the calendar lacks the next
    one, and the hub's own tick raises and mails 节假日历缺失 beside the test's alert
    (it did on 2026-12-06, under CI load)."""
    with fixed_today(date(2026, 6, 1)):
        yield


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    """A real SMTP server on loopback and what it received."""
    with smtp_server() as server:
        yield server
