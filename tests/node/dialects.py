"""SQLAlchemy dialects of servers the suite has no copy of (Oracle, 达梦 DM, SQL Server),
set as connecting to a real server would leave them, for compiling a node's SQL.

No driver is imported: a dialect compiles without one. What these tests check is the
SQL text and its parameters, not how a server takes them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Engine
from sqlalchemy.dialects.mssql import pyodbc
from sqlalchemy.dialects.oracle import oracledb
from sqlalchemy.engine import Dialect


def oracle_19c() -> Dialect:
    """python-oracledb's dialect after connecting to Oracle 19c: FETCH FIRST (12c on),
    no BOOLEAN in SQL (23ai on)."""
    dialect = oracledb.dialect()
    dialect.server_version_info = (19, 0)
    dialect.supports_native_boolean = False
    return dialect


def oracle_11g() -> Dialect:
    """The same after connecting to 11g, which has no FETCH FIRST: SQLAlchemy pages with
    ROWNUM around the ordered query."""
    dialect = oracle_19c()
    dialect.server_version_info = (11, 2)
    dialect._supports_offset_fetch = False  # type: ignore[attr-defined]
    return dialect


def dm_as_oracle() -> Dialect:
    """达梦 DM, stood in for by Oracle's compiler under DM's dialect name ("dm").

    DM's own dialect (dmSQLAlchemy) imports its native driver dmPython when loaded and,
    as of 2.0.17, does not load under SQLAlchemy 2.1 at all; DM's SQL is Oracle-compatible
    for what the node sends (FETCH FIRST, double-quoted identifiers, MERGE … USING DUAL).
    The name makes the node choose DM's column types and MERGE; the text is Oracle's."""
    dialect = oracle_19c()
    dialect.name = "dm"
    return dialect


def sql_server_2019() -> Dialect:
    """pyodbc's dialect after connecting to SQL Server 2019 (qmark parameters, as
    pyodbc takes them)."""
    dialect: Any = pyodbc.dialect(paramstyle="qmark")
    dialect.server_version_info = (15, 0)
    dialect._setup_version_attributes()
    return cast(Dialect, dialect)


@dataclass
class Unconnected:
    """An engine of ``dialect`` that never connects: a reader built on it (with its
    table given) compiles its statements, and running one would fail loudly."""

    dialect: Dialect

    def connect(self) -> Any:
        raise AssertionError("this engine is for compiling SQL, not running it")


def unconnected(dialect: Dialect) -> Engine:
    return cast(Engine, Unconnected(dialect))


def sql(statement: Any, dialect: Dialect) -> str:
    """The statement's text as sent to the server, on one line (LIMIT values, which
    SQLAlchemy renders into the text at execution, rendered too)."""
    compiled = statement.compile(dialect=dialect, compile_kwargs={"render_postcompile": True})
    return " ".join(str(compiled).split())


def params(statement: Any, dialect: Dialect) -> dict[str, Any]:
    compiled = statement.compile(dialect=dialect, compile_kwargs={"render_postcompile": True})
    return dict(compiled.params)
