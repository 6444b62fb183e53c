"""A hub killed (SIGKILL) in the middle of assembling a base database loses nothing and
doubles nothing: the next run merges again what the killed one had not recorded as
merged, and every record, history row and conflict is there exactly once.

The assembly runs in a separate OS process on the same hub and shared-store databases
(SQLite files, or PostgreSQL), and is killed once some of its batches have committed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, text, update

from govshare import db
from govshare.basedata import assembly, service
from govshare.basedata.models import BaseConflict, BaseDatabase, BaseSource, ConflictStatus
from govshare.config import Settings
from govshare.db import utcnow
from govshare.exchange.store import hub_store
from govshare.sharing.models import SharedStore
from govshare.sharing.store import SharedDatabase
from tests.basedata.test_flow import base_entry
from tests.conftest import make_settings, migrated
from tests.factories import World
from tests.live import LiveHub, start_live_hub
from tests.pg import PostgresServer
from tests.quality.builders import citizen_id, person, store_with_rows

ROOT = Path(__file__).resolve().parents[2]
PERSONS = 12_000
BATCH = 2000  # six batches, in both processes
PLANTED = 7  # 民政 spells these persons' names otherwise
NOW = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)
LATER = datetime(2026, 6, 2, 8, 0, tzinfo=UTC)

# The killed process: the hub's own assembly step, as the feeder runs it.
ASSEMBLE = """
import sys
from datetime import datetime
from govshare import db
from govshare import db
from govshare.basedata import assembly, service
from govshare.exchange.store import hub_store
from govshare.sharing.store import SharedDatabase
from tests.conftest import make_settings
assembly.BATCH = int(sys.argv[4])
settings = make_settings(__import__("pathlib").Path(sys.argv[1]), sys.argv[2] or None)
factory = db.make_session_factory(db.make_engine(settings), settings)
shared = SharedDatabase.of(settings)
with factory() as session:
    service.assemble_due(
        session, shared, hub_store(settings), datetime.fromisoformat(sys.argv[3])
    )
"""


@pytest.fixture(params=["sqlite", "postgresql"])
def quiet_hub(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[LiveHub, str | None]]:
    """A hub of its own whose feeder does not assemble by itself during the test."""
    url = None
    if request.param == "postgresql":
        server: PostgresServer = request.getfixturevalue("postgres")
        url = server.create_database(f"crash_{abs(hash(request.node.nodeid)) % 10**10}")
    settings = migrated(make_settings(tmp_path / "hub", url, shared_feed_interval_seconds=3600))
    hub = start_live_hub(settings)
    yield hub, url
    hub.stop()


def _assemble_here(
    settings: Settings, now: datetime, clock: Callable[[], datetime] = utcnow
) -> list[service.RunResult]:
    engine = db.make_engine(settings)
    shared = SharedDatabase.of(settings)
    try:
        with db.make_session_factory(engine, settings)() as session:
            return service.assemble_due(session, shared, hub_store(settings), now, clock=clock)
    finally:
        shared.close()
        engine.dispose()


def _count(shared: SharedDatabase, sql: str) -> int:
    with shared.engine.connect() as conn:
        return int(conn.execute(text(sql)).scalar_one())


def test_a_kill_mid_assembly_loses_and_doubles_nothing(
    quiet_hub: tuple[LiveHub, str | None], monkeypatch: pytest.MonkeyPatch
) -> None:
    hub, url = quiet_hub
    monkeypatch.setattr(assembly, "BATCH", BATCH)
    world = World(hub)
    # Distinct keys: the birth date varies too (a citizen_id has 1,000 serials a day).
    people = [
        person(
            sfzhm=citizen_id(i, birth=f"{date(1950, 1, 1) + timedelta(i // 1000):%Y%m%d}"),
            xm=f"居民{i}",
        )
        for i in range(PERSONS)
    ]
    police = store_with_rows(world, world.department("公安局"), people)
    others = [dict(p) for p in people[:500]]
    for p in others[:PLANTED]:
        p["xm"] = "另" + p["xm"]
    civil = store_with_rows(world, world.department("民政局"), others)
    owner = world.department("大数据局")
    resource = base_entry(world, owner, "人口基础信息(断电)")
    with world.api(world.admin) as c:
        r = c.post(
            "/api/v1/base-databases",
            json={
                "resource_id": resource["id"],
                "key_item": "sfzhm",
                "items": [
                    {
                        "item": "xm",
                        "source": {"store_id": police.store_id, "column": "xm"},
                        "evidence": [{"store_id": civil.store_id, "column": "xm"}],
                    }
                ],
            },
        )
        assert r.status_code == 201, r.text
        base_id, table = r.json()["id"], r.json()["table_name"]
    _assemble_here(hub.settings, NOW)  # the first assembly, set-based
    shared = SharedDatabase.of(hub.settings)
    try:
        assert _count(shared, f"SELECT count(*) FROM {table}") == PERSONS
        # 公安 renames everyone; the store applies a package whose keys the log no longer
        # has, so the next run merges every key again, batch by batch.
        with shared.engine.begin() as conn:
            conn.execute(text(f"UPDATE {police.table_name} SET xm = xm || '新'"))
        with hub.db() as s:
            s.execute(
                update(SharedStore)
                .where(SharedStore.id == police.store_id)
                .values(applied_seq=SharedStore.applied_seq + 1)
            )
        proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                ASSEMBLE,
                str(hub.settings.data_dir),
                url or "",
                LATER.isoformat(),
                str(BATCH),
            ],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}"},
        )
        history = f"SELECT count(*) FROM {table}_hist"
        deadline = time.monotonic() + 120
        while _count(shared, history) < BATCH:
            assert proc.poll() is None, "the assembly ended before it could be killed"
            assert time.monotonic() < deadline
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        part = _count(shared, history)
        assert BATCH <= part < PERSONS, "killed mid-way, some batches committed"
        with hub.db() as s:
            assert (
                s.scalar(
                    select(func.max(BaseSource.merged_seq)).where(
                        BaseSource.base_id == base_id, BaseSource.store_id == police.store_id
                    )
                )
                == 1
            )  # the killed run recorded nothing as merged

        # The dead process still holds the base for a while: nobody merges over it.
        assert _assemble_here(hub.settings, LATER) == []
        with world.api(world.admin) as c:
            busy = c.post(f"/api/v1/base-databases/{base_id}/assemble")
        assert busy.status_code == 409, busy.text
        assert busy.json()["error"]["code"] == "base_database_busy"
        assert _count(shared, history) == part
        # Once its lease has lapsed, the restarted hub's next run takes over.
        lapsed = _assemble_here(hub.settings, LATER, lambda: utcnow() + 2 * service.LEASE)
        assert [r.full for r in lapsed] == [True]

        assert _count(shared, f"SELECT count(*) FROM {table}") == PERSONS
        assert _count(shared, f"SELECT count(*) FROM {table} WHERE xm NOT LIKE '%新'") == 0
        # One history row per renamed person: batches merged twice wrote theirs once.
        assert _count(shared, history) == PERSONS
        assert _count(shared, f"SELECT count(DISTINCT record_key) FROM {table}_hist") == PERSONS
        with hub.db() as s:
            conflicts = s.scalars(select(BaseConflict).where(BaseConflict.base_id == base_id)).all()
            base = s.get(BaseDatabase, base_id)
            assert base is not None
            assert base.last_error == ""
        # Every evidence value now differs from 公安's renamed one (民政 still has the old
        # names): one open conflict per person 民政 holds, none twice.
        keys = [c.record_key for c in conflicts if c.status is ConflictStatus.OPEN]
        assert len(keys) == len(set(keys)) == len(others)
    finally:
        shared.close()
