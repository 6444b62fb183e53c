"""Log-based change capture (日志捕获): a provider task that reads what changed from the
business database's own change log instead of a change column or a full rescan.

The log says which rows changed, by key, in commit order; the node then reads those rows
as they are now, through the task's ``SourceReader`` (so row filters, masking and type
mapping are the same as for every other mode). A key the table no longer has is a
deletion. Reading the current row rather than the logged image means a row changed
twice is sent once, as it is, and a package never carries a state the table has left.

The position in the log is the task's cursor, kept in the node's local store in the same
transaction as the package it produced; the database is told it may discard the log
before a position (``confirm``) only once the hub has every package up to it.

Start-up is a consistent snapshot followed by the log: ``start`` marks the log's current
position first, the table is then read whole, and the log is read from the mark. A row
changed while the table was being read is read twice (by the scan and from the log) and
applied twice as the same upsert: nothing is missed and nothing is doubled in the target.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from sqlalchemy import Engine


class CaptureError(ValueError):
    """The database cannot be read by log: a setting, privilege or lost log position,
    described for the department's DBA (in Chinese)."""


@dataclass
class LogBatch:
    """Changes read from the log: ``changes`` as (op, key values as text) in commit
    order, op one of "I", "U", "D"; ``position`` is the log position after the last
    whole transaction read (the next read starts there)."""

    changes: list[tuple[str, tuple[str | None, ...]]] = field(default_factory=list)
    position: str = ""
    # The table was emptied (TRUNCATE) in this stretch of log: the keys are not logged,
    # so the node compares key sets to find what went.
    truncated: bool = False
    # More log is waiting beyond ``position`` (the read stopped at its limit).
    more: bool = False


class ChangeLog(Protocol):
    """One provider task's view of a database's change log."""

    def check(self) -> None:
        """Raise ``CaptureError`` naming the missing setting or privilege, if any."""

    def start(self) -> str:
        """Begin capture afresh (dropping any earlier position of this task) and return
        the log position from which changes after this moment will be read."""

    def read(self, after: str, limit: int) -> LogBatch:
        """The table's changes committed after ``after``: whole transactions, stopping
        once at least ``limit`` changes were read."""

    def confirm(self, position: str) -> None:
        """The hub has every change up to ``position``: the database may let the log
        before it go."""

    def drop(self) -> None:
        """Stop capture for good and release what the database keeps for it."""


def slot_name(node_id: int, task_id: int) -> str:
    """The name a task's capture goes by in the database (a PostgreSQL replication slot,
    a MySQL replica's server id is derived from the same pair)."""
    return f"govshare_node{node_id}_task{task_id}"


def open_change_log(engine: Engine, table: str, key: list[str], name: str) -> ChangeLog:
    """The change log of the engine's database, checked (settings and privileges)."""
    log: ChangeLog
    if engine.dialect.name == "postgresql":
        from govshare.node.pglog import PostgresChangeLog

        log = PostgresChangeLog(engine, table, key, name)
    elif engine.dialect.name in ("mysql", "mariadb"):
        from govshare.node.binlog import MySQLChangeLog  # type: ignore[import-not-found,unused-ignore]

        log = MySQLChangeLog(engine, table, key, name)
    else:
        raise CaptureError(
            f"{engine.dialect.name} 数据库不支持日志捕获: 日志捕获只用于 PostgreSQL (及兼容库) "
            "与 MySQL/MariaDB, 其他数据库请用增量 (游标列) 或全量快照方式"
        )
    log.check()
    return log
