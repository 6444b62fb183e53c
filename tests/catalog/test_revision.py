"""目录修订号: on SQLite every write to a table an open-data search reads, and every
write to the search index, raises the catalog's revision in the writer's transaction;
where that is not so (PostgreSQL, or a SQLite database whose triggers are gone) there is
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


def test_sqlite_counts_every_write_to_the_tables_a_search_reads(
    session: Session, backend: str
) -> None:
    if backend != "sqlite":
        assert revision.current(session) is None
        return
    listed = text("SELECT name, tbl_name FROM sqlite_master WHERE type = 'trigger'")
    triggers = {str(name): str(table) for name, table in session.execute(listed)}
    for table in revision.TRACKED:
        for event in revision.EVENTS:
            assert triggers.get(f"catalog_revision_{table}_{event}") == table
    url, generation, before = revision.current(session) or ("", "", -1)
    assert url.endswith("govshare.db")
    assert len(generation) == 32
    changed = session.execute(text("UPDATE classification SET name = name")).rowcount
    assert changed > 0
    assert _n(session) == before + changed
    write_documents(session, [(10**9, "标题", "信息项", "正文", "")])
    assert _n(session) == before + changed + 1


def test_a_database_without_its_triggers_has_no_revision(session: Session, backend: str) -> None:
    if backend != "sqlite":
        pytest.skip("PostgreSQL has no revision to lose")
    assert revision.current(session) is not None
    session.execute(text("DROP TRIGGER catalog_revision_resource_update"))
    # The engine was seen with its triggers; a new engine on the same file looks again.
    session.commit()
    other = create_engine(session.get_bind().url)
    try:
        with Session(other) as fresh:
            assert revision.current(fresh) is None
    finally:
        other.dispose()
