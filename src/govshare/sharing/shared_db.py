"""The shared-store database's engine and a grant's row filter as SQL, on their own so
that a process which only reads stores (a comparison run's worker) need not import the
rest of the sharing package."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, Table, create_engine, event, false, or_

from govshare.config import Settings
from govshare.security.fieldseal import FieldSealer


def _sqlite_pragmas(mmap_bytes: int) -> Callable[[Any, Any], None]:
    def set_pragmas(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA cache_size=-65536")
        cur.execute(f"PRAGMA mmap_size={int(mmap_bytes)}")
        cur.close()

    return set_pragmas


def shared_engine(url: str, *, pool_size: int = 48, mmap_bytes: int = 1 << 30) -> Engine:
    """Statement parameters stay out of errors and logs: they are people's data, and a
    feed error is shown to the store's administrators as ``last_error``.

    ``mmap_bytes``: how much of a SQLite file is read through memory mapping (the
    lookups' fast path); a process that reads a store once from end to end (a
    comparison's snapshot) maps nothing, or every page it touched would stay counted in
    its resident memory."""
    if url.startswith("sqlite"):
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30},
            pool_size=pool_size,
            max_overflow=16,
            hide_parameters=True,
        )
        event.listen(engine, "connect", _sqlite_pragmas(mmap_bytes))
        return engine
    return create_engine(
        url, pool_size=20, max_overflow=20, pool_pre_ping=True, hide_parameters=True
    )


@contextmanager
def unmapped(engine: Engine, *, begin: bool = False) -> Iterator[Connection]:
    """A connection (in a transaction with ``begin``) that reads the file without the
    memory map, for work that walks whole stores (a quality scan, a base's first
    assembly): every page a mapped connection touches stays counted in the process's
    resident memory, while unmapped reads go through SQLite's bounded page cache. The
    connection's map is restored before it returns to the pool, for the lookups' sake."""
    with engine.connect() as conn:
        sqlite = conn.dialect.name == "sqlite"
        mapped = 0
        if sqlite:
            mapped = int(conn.exec_driver_sql("PRAGMA mmap_size").scalar() or 0)
            conn.exec_driver_sql("PRAGMA mmap_size=0")
            conn.commit()  # the pragmas' implicit transaction, so ``begin`` can start one
        try:
            if begin:
                with conn.begin():
                    yield conn
            else:
                yield conn
        finally:
            if sqlite:
                conn.rollback()
                conn.exec_driver_sql(f"PRAGMA mmap_size={mapped}")


def row_conditions(
    table: Table,
    row_filter: list[dict[str, Any]] | None,
    sealed: Mapping[str, str] | None = None,
    seal: Callable[[Any], str] | None = None,
    *,
    prefixes_opened: bool = False,
) -> list[Any]:
    """A grant's structured row filter (all conditions hold) as SQL conditions.

    On a ``sealed`` item (字段加密) the values compared are sealed with ``seal`` first:
    equal values seal equal. A prefix cannot be matched on sealed cells: it is left
    out when the caller checks it on the opened records (``prefixes_opened``, see
    :func:`sealed_prefixes`), and otherwise lets no row through."""
    conds: list[Any] = []
    for cond in row_filter or []:
        col = table.c.get(cond["item"])
        if col is None:
            # The filter names an item the store does not keep: no row can qualify.
            conds.append(false())
            continue
        value = cond["value"]
        hidden = sealed is not None and cond["item"] in sealed
        if hidden and cond.get("op") == "prefix" and prefixes_opened:
            continue
        if hidden and (seal is None or cond.get("op") == "prefix"):
            conds.append(false())
            continue
        if cond.get("op") == "in":
            values = list(value) if isinstance(value, list) else [value]
            compared = [seal(v) for v in values] if hidden and seal else values
            # Equalities, not IN: a list rendered only at execution (SQLAlchemy's
            # "expanding" IN) cannot go into a statement compiled once (``Prepared``).
            conds.append(or_(*[col == v for v in compared]) if compared else false())
        elif cond.get("op") == "prefix":
            conds.append(col.startswith(str(value), autoescape=True))
        else:
            conds.append(col == (seal(value) if hidden and seal else value))
    return conds


def sealed_prefixes(
    row_filter: list[dict[str, Any]] | None, sealed: Mapping[str, str] | None
) -> list[tuple[str, str]]:
    """The row filter's prefix conditions on sealed items, as (item, prefix): checked
    on the opened records, since the database sees only sealed cells."""
    return [
        (str(c["item"]), str(c["value"]))
        for c in row_filter or []
        if c.get("op") == "prefix" and sealed and c["item"] in sealed
    ]


def field_sealer(settings: Settings) -> FieldSealer:
    """The hub's field sealer (字段加密), its key under ``data_dir``."""
    alg = settings.at_rest_cipher if settings.at_rest_cipher != "none" else "sm4"
    return FieldSealer(settings.data_dir, settings.secret_key, alg)


_sealers: dict[tuple[Path, str, str], FieldSealer] = {}


def hub_field_sealer(settings: Settings) -> FieldSealer:
    """The process's field sealer for these settings (its keys read once), for the hub
    database's own records of personal data; it opens whatever was sealed, even with
    sealing turned off since."""
    alg = settings.at_rest_cipher if settings.at_rest_cipher != "none" else "sm4"
    key = (settings.data_dir, settings.secret_key, alg)
    if (found := _sealers.get(key)) is None:
        found = _sealers[key] = field_sealer(settings)
    return found
