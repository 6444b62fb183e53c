"""The six built-in scenarios on the demo's data, on both hub backends: each template,
instantiated for its department and run through the runner, finds every planted case
and nothing else (precision and recall 100 %).

The demo's stores are filled here straight from the nodes' business tables, as the
exchange would fill them (every row of each provider task's table, its columns mapped
to the store's items), and the base databases assembled from them: the nodes are not
started, which keeps the test to the comparison."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pyarrow as pa
import pytest
from sqlalchemy import Index, event, select
from sqlalchemy.orm import Session, sessionmaker

from govshare import db, demo_exchange
from govshare.basedata import service as basedata
from govshare.basedata.models import BaseDatabase
from govshare.compare import runner, service
from govshare.compare.models import CompareCase, CompareRun
from govshare.compare.schemas import Definition, RunStatus
from govshare.compare.templates import TEMPLATES, instantiate
from govshare.config import Settings
from govshare.db import utcnow
from govshare.demo import load_demo
from govshare.demo_compare import PLANTED, expected_cases, normal_key
from govshare.exchange.models import ExchangeNode, ExchangeTask
from govshare.exchange.package import OP_COLUMN
from govshare.exchange.store import make_store
from govshare.node.target import TargetWriter
from govshare.security.atrest import cipher_for, open_document
from govshare.security.audit import SYSTEM
from govshare.security.models import Department
from govshare.security.roles import Role
from govshare.sharing.models import SharedStore
from govshare.sharing.store import SharedDatabase, seal_columns
from tests.conftest import make_settings, migrated
from tests.pg import PostgresServer
from tests.sharing.builders import principal

pytestmark = pytest.mark.xdist_group("compare-scenarios")
TODAY = date(2026, 6, 15)


@dataclass
class DemoHub:
    settings: Settings
    factory: sessionmaker[Session]
    shared: SharedDatabase

    @property
    def sources(self) -> Path:
        return self.settings.data_dir.resolve() / "demo-exchange"


def _fill_stores(session: Session, hub: DemoHub) -> None:
    labels = {n.label: n.abbr for n in demo_exchange.NODES}
    for store in session.scalars(select(SharedStore).where(SharedStore.source_task_id.isnot(None))):
        task = session.get(ExchangeTask, store.source_task_id)
        assert task is not None
        node = session.get(ExchangeNode, task.node_id)
        assert node is not None
        file = demo_exchange.NODE_SOURCES[labels[node.name]][task.config["source"]]
        key = [str(k) for k in task.config.get("key") or []]
        keep = key + [c for c in store.mapping if c not in key]
        with sqlite3.connect(hub.sources / file) as conn:
            rows = conn.execute(f"SELECT {', '.join(keep)} FROM {task.config['table']}").fetchall()
        data = pa.table({c: [r[i] for r in rows] for i, c in enumerate(keep)})
        data = data.append_column(OP_COLUMN, pa.array(["I"] * len(rows)))
        # As the feed writes it: the store's sensitive items sealed (字段加密).
        data = seal_columns(hub.shared.sealer, store, data, store.mapping)
        writer = TargetWriter(
            hub.shared.engine,
            store.id,
            {"table": store.table_name, "mapping": store.mapping},
            key,
        )
        writer.apply(1, data)
        table = hub.shared.table(store.table_name)
        assert table is not None
        Index(f"ix_{store.table_name}_key", table.c[store.key_item]).create(
            hub.shared.engine, checkfirst=True
        )
        store.applied_seq = 1
        store.row_count = len(rows)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def demo(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DemoHub]:
    url = None
    if request.param == "postgresql":
        server: PostgresServer = request.getfixturevalue("postgres")
        url = server.create_database("compare_scenarios")
    settings = migrated(make_settings(tmp_path_factory.mktemp("scenarios") / "data", url))
    engine = db.make_engine(settings)
    factory = db.make_session_factory(engine, settings)
    hub = DemoHub(settings, factory, SharedDatabase.of(settings))
    with db.session_scope(factory) as s:
        load_demo(s, "demo-password-1", settings=settings)
    with db.session_scope(factory) as s:
        demo_exchange.setup(s, settings, "http://127.0.0.1:9")
    with db.session_scope(factory) as s:
        _fill_stores(s, hub)
    packages = make_store(None)
    with factory() as s:
        for base in list(s.scalars(select(BaseDatabase))):
            basedata.assemble(s, hub.shared, packages, base, utcnow(), full=True)
    yield hub
    hub.shared.close()
    engine.dispose()


def _queued_run(demo: DemoHub, code: str, username: str) -> tuple[int, int]:
    """The template ``code`` saved as a job of its department by ``username`` (a
    resource administrator there), and a run of it queued: (job id, run id)."""
    template = next(t for t in TEMPLATES if t.code == code)
    with db.session_scope(demo.factory) as s:
        dept = s.scalar(select(Department).where(Department.short_name == template.department))
        assert dept is not None
        who = principal(username, dept.id, Role.RESOURCE_ADMIN)
        job = service.create_job(s, demo.shared, who, instantiate(s, code, dept.id), TODAY)
        s.flush()
        return job.id, runner.queue_run(s, job, SYSTEM).id


@pytest.mark.parametrize("code", list(PLANTED))
def test_each_template_finds_its_planted_cases_and_nothing_else(demo: DemoHub, code: str) -> None:
    template = next(t for t in TEMPLATES if t.code == code)
    job_id, run_id = _queued_run(demo, code, f"compare-{code}")
    done = runner.execute(demo.settings, demo.factory, demo.shared, run_id, today=TODAY)
    assert done is not None
    assert done.status is RunStatus.SUCCEEDED, done.error
    key = Definition.model_validate(template.definition).case_key[0]
    id18 = any("id18" in link.get("normalize", []) for link in template.definition["links"])
    with demo.factory() as s:
        found = [
            normal_key(str(open_document(cipher_for(demo.settings), c.values)[key]), id18=id18)
            for c in s.scalars(select(CompareCase).where(CompareCase.job_id == job_id))
        ]
    expected = expected_cases(demo.sources)[code]
    assert len(found) == len(set(found))  # one case per key
    assert set(found) == expected
    assert len(expected) == PLANTED[code]
    assert done.hits == PLANTED[code]
    # Each input's snapshot says where its store stood: the package the exchange applied
    # last (1 here), or for a base database its highest record version.
    with demo.factory() as s:
        bases = {b.store_id for b in s.scalars(select(BaseDatabase))}
    for taken in done.inputs:
        assert taken["seq"] >= 1, taken
        if taken["store_id"] not in bases:
            assert taken["seq"] == 1, taken


def test_a_run_is_seen_ended_only_once_its_working_files_are_gone(demo: DemoHub) -> None:
    """Whoever reads a run's final state finds its snapshot and result files removed
    already (the runner once committed the state first, and a cancelled run's folder
    was still there when the waiting test looked)."""
    code = next(iter(PLANTED))
    _job_id, run_id = _queued_run(demo, code, f"compare-files-{code}")
    folder = demo.settings.data_dir / "compare" / f"run-{run_id}"
    left_at_the_end: list[bool] = []

    def on_commit(session: Session) -> None:
        for obj in list(session.identity_map.values()):
            if isinstance(obj, CompareRun) and obj.id == run_id and obj.status.finished:
                left_at_the_end.append(folder.exists())

    event.listen(demo.factory, "before_commit", on_commit)
    try:
        done = runner.execute(demo.settings, demo.factory, demo.shared, run_id, today=TODAY)
    finally:
        event.remove(demo.factory, "before_commit", on_commit)
    assert done is not None
    assert done.status is RunStatus.SUCCEEDED, done.error
    assert left_at_the_end == [False]
