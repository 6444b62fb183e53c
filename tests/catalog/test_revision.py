"""目录修订号: every write to a table an open-data search reads, and every write to the
search index, raises the catalog's revision in the writer's transaction — on SQLite a
counter raised by row triggers, on PostgreSQL the sum of a change log written by
statement triggers; where that is not so (a database whose triggers are gone) there is
no revision, so nothing is kept on the strength of one."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session

from govshare import db
from govshare.catalog import revision
from govshare.catalog.search import write_documents
from govshare.config import Settings


@pytest.fixture
def session(fresh_settings: Settings) -> Iterator[Session]:
    engine = db.make_engine(fresh_settings)
    try:
        with db.session_scope(db.make_session_factory(engine, fresh_settings)) as s:
            yield s
    finally:
        engine.dispose()


def _n(session: Session) -> int:
    found = revision.current(session)
    assert found is not None
    return found[2]


def test_every_write_to_the_tables_a_search_reads_raises_the_revision(
    session: Session, backend: str
) -> None:
    if backend == "sqlite":
        listed = text("SELECT name, tbl_name FROM sqlite_master WHERE type = 'trigger'")
        names = [f"catalog_revision_{t}_{e}" for t in revision.TRACKED for e in revision.EVENTS]
    else:
        listed = text(
            "SELECT tgname, tgrelid::regclass::text FROM pg_trigger WHERE NOT tgisinternal"
        )
        names = [f"catalog_revision_{t}" for t in revision.TRACKED]
    triggers = {str(name): str(table) for name, table in session.execute(listed)}
    for name in names:
        assert triggers.get(name) in revision.TRACKED
        assert name.startswith(f"catalog_revision_{triggers[name]}")
    url, generation, before = revision.current(session) or ("", "", -1)
    assert url.endswith("govshare.db") if backend == "sqlite" else url.startswith("postgresql")
    assert len(generation) == 32
    changed = session.execute(text("UPDATE classification SET name = name")).rowcount
    assert changed > 0
    # A row per written row on SQLite, a row per statement on PostgreSQL.
    after = before + (changed if backend == "sqlite" else 1)
    assert _n(session) == after
    revision.bump(session)  # what the triggers cannot see
    assert _n(session) == after + 1
    if backend == "sqlite":  # the search index is a virtual table there; it counts itself
        write_documents(session, [(10**9, "标题", "信息项", "正文", "")])
        assert _n(session) == after + 2


def test_postgresql_folds_its_change_log_without_moving_the_revision(
    session: Session, backend: str
) -> None:
    if backend != "postgresql":
        pytest.skip("SQLite keeps one counter row")
    for _ in range(revision.COMPACT_AFTER + 5):
        session.execute(text("UPDATE department SET name = name WHERE false"))
    session.commit()
    rows = text("SELECT count(*) FROM catalog_change")
    assert (session.scalar(rows) or 0) > revision.COMPACT_AFTER
    before = _n(session)  # reads the sum, then folds the rows in a transaction of its own
    session.commit()
    assert session.scalar(rows) == 1
    assert _n(session) == before
    session.execute(text("UPDATE department SET name = name WHERE false"))
    assert _n(session) == before + 1


def test_a_database_without_its_triggers_has_no_revision(session: Session, backend: str) -> None:
    assert revision.current(session) is not None
    dropped = {
        "sqlite": "DROP TRIGGER catalog_revision_resource_update",
        "postgresql": "DROP TRIGGER catalog_revision_resource ON resource",
    }
    session.execute(text(dropped[backend]))
    # The engine was seen with its triggers; a new engine on the same file looks again.
    session.commit()
    other = create_engine(session.get_bind().url)
    try:
        with Session(other) as fresh:
            assert revision.current(fresh) is None
    finally:
        other.dispose()
