"""目录修订号: how a reader knows the catalog has not changed since it last looked.

On SQLite, triggers (migration 0042) raise ``catalog_revision.n`` in the writing
transaction at every insert, update and delete of the tables an open-data search reads.
On PostgreSQL, statement triggers (migration 0044) add a row to ``catalog_change`` in
the writing transaction instead, and the revision is the sum of the rows' weights a
reader sees (``CatalogChange``): no row is written by two transactions, so writers
never wait on each other. The search index, which triggers cannot watch on SQLite (a
virtual table), raises it through ``bump``.

A reader that reads the revision *before* anything else it computes may keep the result
under that revision: a result computed later reflects that revision or a newer one,
and a newer one is never read back as the older. A database whose triggers are missing
(a later migration that rebuilt a table drops its triggers) answers None, rather than a
number that no longer moves; readers then compute every time.
"""

from __future__ import annotations

from weakref import WeakSet

from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session

TRACKED = ("resource", "resource_version", "resource_transition", "department", "classification")
EVENTS = ("insert", "update", "delete")
# Change-log rows beyond this many are folded into one (the sum stays the same).
COMPACT_AFTER = 256

# Databases whose triggers were found; a missing one is looked for again at the next call
# (a database read before its migration ran must not stay untracked).
_TRACKED_ENGINES: WeakSet[Engine] = WeakSet()


def trigger_names(dialect: str = "sqlite") -> list[str]:
    if dialect == "postgresql":
        return [f"catalog_revision_{table}" for table in TRACKED]
    return [f"catalog_revision_{table}_{event}" for table in TRACKED for event in EVENTS]


_LISTED = {
    "sqlite": "SELECT name FROM sqlite_master WHERE type = 'trigger'",
    "postgresql": "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal",
}


def _engine(bind: Session | Connection) -> Engine | None:
    connection = bind.connection() if isinstance(bind, Session) else bind
    engine = connection.engine
    listed = _LISTED.get(engine.dialect.name)
    if listed is None:
        return None
    if engine in _TRACKED_ENGINES:
        return engine
    found = {str(name) for (name,) in connection.execute(text(listed))}
    if not set(trigger_names(engine.dialect.name)) <= found:
        return None
    _TRACKED_ENGINES.add(engine)
    return engine


def current(session: Session) -> tuple[str, str, int] | None:
    """(database, generation, n) of the catalog as this session now reads it, or None
    when its changes are not counted."""
    engine = _engine(session)
    if engine is None:
        return None
    if engine.dialect.name == "postgresql":
        # One statement: the generation and the sum from one snapshot.
        row = session.execute(
            text(
                "SELECT generation, (SELECT coalesce(sum(weight), 0) FROM catalog_change) AS n,"
                " (SELECT count(*) FROM catalog_change) AS rows"
                " FROM catalog_revision WHERE id = 1"
            )
        ).one()
        if int(row.rows) > COMPACT_AFTER:
            compact(engine)
    else:
        row = session.execute(text("SELECT generation, n FROM catalog_revision WHERE id = 1")).one()
    return (str(engine.url), str(row.generation), int(row.n))


def compact(engine: Engine) -> None:
    """Fold the change log's rows into one of their summed weight, in a transaction of
    its own: readers see the old rows or the new one, of the same sum. Rows of writers
    still in flight are not seen and stay; a compaction running at the same time finds
    the rows already gone (it waits on their locks) and folds nothing twice."""
    with engine.begin() as conn:
        conn.execute(
            text(
                "WITH gone AS (DELETE FROM catalog_change RETURNING weight) "
                "INSERT INTO catalog_change (weight) "
                "SELECT sum(weight) FROM gone HAVING count(*) > 0"
            )
        )


def bump(bind: Session | Connection) -> None:
    """Count a change the triggers do not see (the search index), in the caller's
    transaction."""
    engine = _engine(bind)
    if engine is None:
        return
    if engine.dialect.name == "postgresql":
        bind.execute(text("INSERT INTO catalog_change DEFAULT VALUES"))
    else:
        bind.execute(text("UPDATE catalog_revision SET n = n + 1 WHERE id = 1"))
