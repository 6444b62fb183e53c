"""Database plumbing: engine, sessions, the declarative base and migrations."""

from __future__ import annotations

import asyncio
import fcntl
import functools
import json
import os
import re
import sqlite3
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

import orjson
from sqlalchemy import (
    DateTime,
    Enum,
    MetaData,
    Table,
    bindparam,
    create_engine,
    event,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect, Engine
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.pool import NullPool
from sqlalchemy.sql.selectable import ReturnsRows
from sqlalchemy.types import TypeDecorator

from govshare.config import Settings

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Timestamps stored as UTC and always returned timezone-aware, on SQLite too."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, _dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given where UTC was expected")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, _dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


def str_enum(cls: type[StrEnum], length: int) -> Enum:
    """A StrEnum stored as its value in a plain VARCHAR (no native enum to migrate)."""
    return Enum(
        cls,
        native_enum=False,
        create_constraint=False,
        length=length,
        values_callable=lambda e: [m.value for m in e],
        validate_strings=True,
    )


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime()}  # noqa: RUF012


def utcnow() -> datetime:
    return datetime.now(UTC)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.close()


def _json_loads(text_value: str | bytes) -> Any:
    """JSON columns read with orjson, several times faster than the standard library on
    the catalog's snapshots; what orjson refuses (NaN, integers past 64 bits) still reads."""
    try:
        return orjson.loads(text_value)
    except orjson.JSONDecodeError:
        return json.loads(text_value)


def make_engine(settings: Settings) -> Engine:
    """The hub database. Statement parameters are kept out of error messages and logs:
    they may be ID numbers, names or secrets."""
    url = settings.resolved_database_url
    if url.startswith("sqlite"):
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False},
            pool_size=8,
            hide_parameters=True,
            json_deserializer=_json_loads,
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(
        url,
        pool_size=10,
        max_overflow=10,
        pool_pre_ping=True,
        hide_parameters=True,
        json_deserializer=_json_loads,
    )


def make_session_factory(engine: Engine, settings: Settings) -> sessionmaker[Session]:
    """Sessions that append to the audit chain with the deployment's digest and the
    data directory's audit key (made on first use: ``security.anchor``)."""
    from govshare.cursors import SESSION_INFO_KEY, CursorCodec
    from govshare.security import passwords
    from govshare.security.anchor import ensure_key

    def head() -> tuple[int, str]:
        try:
            with engine.connect() as conn:
                row = conn.execute(text("SELECT seq, hash FROM audit_head WHERE id = 1")).first()
        except DBAPIError:  # not migrated yet: no entries to keep
            return 0, "0" * 64
        return (int(row[0]), str(row[1])) if row else (0, "0" * 64)

    key = ensure_key(settings.data_dir, head)
    return sessionmaker(
        engine,
        expire_on_commit=False,
        info={
            "audit_alg": settings.audit_digest,
            "audit_key": key,
            SESSION_INFO_KEY: CursorCodec(settings.secret_key),
            passwords.SESSION_KEY: passwords.PasswordPolicy.from_settings(settings),
        },
    )


@contextmanager
def session_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A unit of work: commit on success, roll back on any error."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def alembic_config(url: str) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


_REVISION = re.compile(r"^(down_revision|revision)\b[^=\n]*=\s*(.+?)\s*$", re.MULTILINE)


def script_heads() -> frozenset[str]:
    """The newest revisions of the migration scripts, read from their ``revision`` and
    ``down_revision`` lines, as alembic's ``ScriptDirectory.get_heads`` finds them, but
    without importing alembic and running every script (half a second of each start)."""
    import ast

    revisions: set[str] = set()
    parents: set[str] = set()
    for path in (MIGRATIONS_DIR / "versions").glob("*.py"):
        for name, value in _REVISION.findall(path.read_text(encoding="utf-8")):
            found = ast.literal_eval(value)
            names = set(found) if isinstance(found, tuple | list) else {found} - {None}
            (revisions if name == "revision" else parents).update(names)
    return frozenset(revisions - parents)


def stored_revisions(engine: Engine) -> frozenset[str] | None:
    """The revisions the database says it is at (None before its first migration)."""
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT version_num FROM alembic_version")).scalars()
            return frozenset(rows)
    except DBAPIError:
        return None


def upgrade(settings: Settings, revision: str = "head") -> None:
    """Bring the hub database to the newest schema (``govshare db upgrade``). A database
    already at the scripts' heads is left alone without starting alembic: every hub
    start runs this."""
    if settings.is_sqlite:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    if revision == "head":
        engine = create_engine(settings.resolved_database_url, poolclass=NullPool)
        try:
            if stored_revisions(engine) == script_heads():
                return
        finally:
            engine.dispose()
    from alembic import command

    command.upgrade(alembic_config(settings.resolved_database_url), revision)


class Prepared:
    """A statement compiled once for one dialect and run on the DBAPI connection: the
    same SQL and the same bind and result conversions SQLAlchemy applies, without its
    per-call execution machinery, which costs more than an indexed lookup.

    ``rows`` runs a select (or DML with RETURNING) and converts what it returns; ``run``
    runs DML without RETURNING and answers the driver's row count."""

    def __init__(self, stmt: ReturnsRows, dialect: Dialect) -> None:
        compiled = stmt.compile(dialect=dialect)
        self.sql = compiled.string
        columns = list(stmt.exported_columns)
        self.names = [str(c.key) for c in columns]
        self._order = compiled.positiontup
        self._binds = {
            name: (bind.value, bind.type.dialect_impl(dialect).bind_processor(dialect))
            for name, bind in ((compiled.bind_names[b], b) for b in compiled.binds.values())
        }
        self._results = [_result_processor(c.type, dialect) for c in columns]
        self._data_error: type[Exception] = dialect.loaded_dbapi.DataError

    def _execute(self, cursor: Any, params: Mapping[str, Any]) -> None:
        values = {}
        for name, (default, process) in self._binds.items():
            value = params.get(name, default)
            values[name] = process(value) if process is not None else value
        try:
            cursor.execute(
                self.sql, values if self._order is None else [values[n] for n in self._order]
            )
        except self._data_error as exc:
            # As SQLAlchemy raises it, so that one ``except DataError`` covers both paths
            # without importing the driver (psycopg) on a hub that runs on SQLite.
            raise DataError(self.sql, None, exc, hide_parameters=True) from exc

    def fetch(self, dbapi_conn: Any, params: Mapping[str, Any]) -> list[Any]:
        """The rows as the driver returns them, without SQLAlchemy's result conversions
        (SQLite's times stay text, for instance), for a caller that converts them itself."""
        cursor = dbapi_conn.cursor()
        try:
            self._execute(cursor, params)
            return cursor.fetchall()  # type: ignore[no-any-return]
        finally:
            cursor.close()

    def rows(self, dbapi_conn: Any, params: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        fetched = self.fetch(dbapi_conn, params)
        results = self._results
        if not any(results):
            return [tuple(r) for r in fetched]
        return [
            tuple(v if p is None else p(v) for p, v in zip(results, r, strict=True))
            for r in fetched
        ]

    def run(self, dbapi_conn: Any, params: Mapping[str, Any]) -> int:
        cursor = dbapi_conn.cursor()
        try:
            self._execute(cursor, params)
            return int(cursor.rowcount)
        finally:
            cursor.close()


class _Closable(Protocol):
    def rollback(self) -> None: ...
    def close(self) -> None: ...


C = TypeVar("C", bound=_Closable)


class LoopConnections(Generic[C]):
    """Connections for short reads run on an event loop (the data services' key
    lookups on SQLite), one kept per loop thread from one use to the next: checking a
    connection out of the pool and back, with its reset, cost more than the reads.

    Off a loop (worker threads) every use checks a connection out (``connect``) and
    closes it, as before. A kept connection holds nothing open between uses: each use
    ends with a rollback (no transaction, so no stale snapshot: the next read sees
    every commit, a revoked grant included), and a use that raised closes it instead."""

    def __init__(self, connect: Callable[[], C]) -> None:
        self._connect = connect
        self._kept: dict[int, C] = {}

    @contextmanager
    def use(self) -> Iterator[C]:
        if asyncio._get_running_loop() is None:
            conn = self._connect()
            try:
                yield conn
            finally:
                conn.close()
            return
        ident = threading.get_ident()
        # Taken out while in use: a nested use on this thread gets a connection of its own.
        conn = self._kept.pop(ident, None) or self._connect()
        try:
            yield conn
            conn.rollback()
        except BaseException:
            conn.close()
            raise
        self._kept[ident] = conn

    def close(self) -> None:
        while self._kept:
            _, conn = self._kept.popitem()
            conn.close()


def update_if_unchanged(
    session: Session, row: Any, column: str, before: Any, **values: Any
) -> bool:
    """Write ``values`` to the mapped ``row`` only if its ``column`` still holds
    ``before``, the value this session read: of two processes doing the same, the
    second (on PostgreSQL it waits for the first's commit) matches no row and gets
    False. ``values`` are plain values (computed from what was read, which the guard
    keeps true); on success the row's loaded attributes take them."""
    from sqlalchemy.orm.attributes import set_committed_value

    model = type(row)
    current = getattr(model, column)
    claimed = session.execute(
        update(model)
        .where(
            model.id == row.id,
            current.is_(None) if before is None else current == before,
        )
        .values(**values)
        .execution_options(synchronize_session=False)
    ).rowcount  # type: ignore[attr-defined]
    if claimed != 1:
        return False
    for name, value in values.items():
        set_committed_value(row, name, value)
    return True


def dialect_insert(table: Table, dialect: Dialect) -> sqlite.Insert | postgresql.Insert:
    """``INSERT`` with the dialect's ``ON CONFLICT`` clauses (SQLite or PostgreSQL)."""
    return (sqlite.insert if dialect.name == "sqlite" else postgresql.insert)(table)


P = TypeVar("P")


class PerDialect(Generic[P]):
    """Something compiled for a database dialect (a ``Prepared`` statement, a
    ``RowsInsert``), made on first use and kept per dialect name: the hub's database is
    of one kind, so this is made once per process. Two threads meeting at the first use
    both compile; one result is kept, and either is right."""

    def __init__(self, make: Callable[[Dialect], P]) -> None:
        self._make = make
        self._made: dict[str, P] = {}

    def __call__(self, dialect: Dialect) -> P:
        found = self._made.get(dialect.name)
        if found is None:
            found = self._made.setdefault(dialect.name, self._make(dialect))
        return found


class RowsInsert:
    """An INSERT of many rows as one statement (multi-row ``VALUES``), compiled once
    per row count: one database call for a batch, where ``executemany`` makes one per
    row and each of them lets other threads take the GIL for a while.

    ``finish`` adds the clauses (``ON CONFLICT …``, ``RETURNING …``) to the dialect's
    insert, which has the rows' values already."""

    def __init__(
        self,
        table: Table,
        dialect: Dialect,
        columns: Sequence[str],
        finish: Callable[[Any], ReturnsRows] = lambda ins: ins,
    ) -> None:
        self.table = table
        self.dialect = dialect
        self.columns = list(columns)
        self.finish = finish
        self._prepared = functools.lru_cache(maxsize=64)(self._compile)

    def _compile(self, n: int) -> Prepared:
        t = self.table
        values = [
            {c: bindparam(f"{c}_{i}", type_=t.c[c].type) for c in self.columns} for i in range(n)
        ]
        return Prepared(self.finish(dialect_insert(t, self.dialect).values(values)), self.dialect)

    def _params(self, rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        return {f"{c}_{i}": row[c] for i, row in enumerate(rows) for c in self.columns}

    def rows(self, dbapi_conn: Any, rows: Sequence[Mapping[str, Any]]) -> list[tuple[Any, ...]]:
        """Insert ``rows``; what ``RETURNING`` gives back."""
        return self._prepared(len(rows)).rows(dbapi_conn, self._params(rows))

    def run(self, dbapi_conn: Any, rows: Sequence[Mapping[str, Any]]) -> int:
        """Insert ``rows``; the driver's count of rows written."""
        return self._prepared(len(rows)).run(dbapi_conn, self._params(rows))


def _result_processor(type_: Any, dialect: Dialect) -> Any:
    try:
        return type_.dialect_impl(dialect).result_processor(dialect, None)
    except TypeError:
        # psycopg's numeric processors need the column's type oid, known only from a
        # cursor; the driver already returns float/Decimal as the column is declared.
        return None


UNSTORABLE_ERRORS: tuple[type[Exception], ...] = (
    DataError,  # NUL in a PostgreSQL text, a value beyond the column (also ``Prepared``)
    sqlite3.DataError,
    UnicodeEncodeError,  # a lone surrogate: neither database can encode it
)
"""What the databases raise for a value they cannot hold, however it got past validation."""

_SQLITE_COLUMNS = re.compile(r"(?:UNIQUE|NOT NULL) constraint failed: (.+)$")


def integrity_fields(exc: IntegrityError) -> tuple[str, list[str]]:
    """What an ``IntegrityError`` tripped over, for the person who must fix the input:
    ``("unique" | "foreign_key" | "not_null" | "check" | "integrity", [columns])``.

    PostgreSQL names the constraint (looked up in the models' metadata); SQLite lists
    the columns in its message. Columns that only scope a unique name (``*_id``) are
    left out when others remain: the department is not what the user must change."""
    orig = exc.orig
    diag = getattr(orig, "diag", None)
    message = str(orig)
    kind = "integrity"
    columns: list[str] = []
    sqlstate = getattr(orig, "sqlstate", None)
    if sqlstate == "23505" or "UNIQUE constraint failed" in message:
        kind = "unique"
    elif sqlstate == "23503" or "FOREIGN KEY constraint failed" in message:
        kind = "foreign_key"
    elif sqlstate == "23502" or "NOT NULL constraint failed" in message:
        kind = "not_null"
    elif sqlstate == "23514" or "CHECK constraint failed" in message:
        kind = "check"
    constraint = getattr(diag, "constraint_name", None)
    if constraint:
        for table in Base.metadata.tables.values():
            for c in table.constraints:
                if c.name == constraint:
                    columns = [col.name for col in getattr(c, "columns", [])]
            for index in table.indexes:
                if index.name == constraint:
                    columns = [col.name for col in index.columns]
    elif column := getattr(diag, "column_name", None):
        columns = [str(column)]
    elif m := _SQLITE_COLUMNS.search(message):
        columns = [part.strip().rsplit(".", 1)[-1] for part in m.group(1).split(",")]
    named = [c for c in columns if not c.endswith("_id") and c != "id"]
    return kind, named or columns


class WriteTurns:
    """Writers of one kind take turns, each holding its turn until it has committed: a
    thread lock orders this process's writers, and with a ``path`` a file lock orders
    the hub's worker processes too, waking the next writer as soon as one lets go —
    where SQLite's busy handler would have it sleep in growing steps. (On PostgreSQL
    row locks order writers; no path is given there.)"""

    def __init__(self) -> None:
        self._thread = threading.Lock()
        self.path: Path | None = None
        self._fd: int | None = None
        self._pid = 0

    def __enter__(self) -> None:
        self._thread.acquire()
        if self.path is not None:
            try:
                fcntl.flock(self._file(self.path), fcntl.LOCK_EX)
            except OSError:  # no lock file (a read-only disk): the busy handler still orders
                self._fd = None

    def __exit__(self, *_: object) -> None:
        try:
            if self._fd is not None:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            self._thread.release()

    def _file(self, path: Path) -> int:
        if self._fd is None or self._pid != os.getpid():
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            self._fd, self._pid = os.open(path, os.O_RDWR | os.O_CREAT, 0o600), os.getpid()
        return self._fd
