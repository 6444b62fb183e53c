"""目录修订号: how a reader knows the catalog has not changed since it last looked.

SQLite triggers (migration 0042) raise ``catalog_revision.n`` in the writing transaction
at every insert, update and delete of the tables an open-data search reads; the search
index, a virtual table triggers cannot watch, raises it through ``bump``. A reader that
reads the revision *before* anything else it computes may keep the result under that
revision: a result computed later reflects that revision or a newer one, and a newer one
is never read back as the older.

On PostgreSQL there are no triggers and ``current`` answers None (see
``CatalogRevision``): readers compute every time. A SQLite database whose triggers are
missing (a later migration that rebuilt a table drops its triggers) answers None too,
rather than a number that no longer moves.
"""

from __future__ import annotations

from weakref import WeakSet

from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session

TRACKED = ("resource", "resource_version", "resource_transition", "department", "classification")
EVENTS = ("insert", "update", "delete")

# Databases whose triggers were found; a missing one is looked for again at the next call
# (a database read before its migration ran must not stay untracked).
_TRACKED_ENGINES: WeakSet[Engine] = WeakSet()


def trigger_names() -> list[str]:
    return [f"catalog_revision_{table}_{event}" for table in TRACKED for event in EVENTS]


def _engine(bind: Session | Connection) -> Engine | None:
    connection = bind.connection() if isinstance(bind, Session) else bind
    engine = connection.engine
    if engine.dialect.name != "sqlite":
        return None
    if engine in _TRACKED_ENGINES:
        return engine
    names = set(trigger_names())
    found = {
        name
        for (name,) in connection.execute(
            text("SELECT name FROM sqlite_master WHERE type = 'trigger'")
        )
    }
    if not names <= found:
        return None
    _TRACKED_ENGINES.add(engine)
    return engine


def current(session: Session) -> tuple[str, str, int] | None:
    """(database, generation, n) of the catalog as this session now reads it, or None
    when its changes are not counted."""
    engine = _engine(session)
    if engine is None:
        return None
    row = session.execute(text("SELECT generation, n FROM catalog_revision WHERE id = 1")).one()
    return (str(engine.url), str(row.generation), int(row.n))


def bump(bind: Session | Connection) -> None:
    """Count a change the triggers do not see (the search index), in the caller's
    transaction."""
    if _engine(bind) is not None:
        bind.execute(text("UPDATE catalog_revision SET n = n + 1 WHERE id = 1"))
