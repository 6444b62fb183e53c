"""The shared-store database's engine and a grant's row filter as SQL, on their own so
that a process which only reads stores (a comparison run's worker) need not import the
rest of the sharing package."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, Table, create_engine, event, false


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA cache_size=-65536")
    cur.execute("PRAGMA mmap_size=1073741824")
    cur.close()


def shared_engine(url: str, *, pool_size: int = 48) -> Engine:
    """Statement parameters stay out of errors and logs: they are people's data, and a
    feed error is shown to the store's administrators as ``last_error``."""
    if url.startswith("sqlite"):
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30},
            pool_size=pool_size,
            max_overflow=16,
            hide_parameters=True,
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(
        url, pool_size=20, max_overflow=20, pool_pre_ping=True, hide_parameters=True
    )


def row_conditions(table: Table, row_filter: list[dict[str, Any]] | None) -> list[Any]:
    """A grant's structured row filter (all conditions hold) as SQL conditions."""
    conds: list[Any] = []
    for cond in row_filter or []:
        col = table.c.get(cond["item"])
        if col is None:
            # The filter names an item the store does not keep: no row can qualify.
            conds.append(false())
            continue
        value = cond["value"]
        if cond.get("op") == "in":
            conds.append(col.in_(list(value) if isinstance(value, list) else [value]))
        elif cond.get("op") == "prefix":
            conds.append(col.startswith(str(value), autoescape=True))
        else:
            conds.append(col == value)
    return conds
