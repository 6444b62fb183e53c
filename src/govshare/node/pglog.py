"""PostgreSQL change capture by logical decoding (逻辑复制槽).

A logical replication slot per task, decoded with ``test_decoding`` (shipped with every
PostgreSQL, and with Kingbase and openGauss), read through the SQL functions
``pg_logical_slot_peek_changes`` and ``pg_replication_slot_advance``: an ordinary
connection of a role with the REPLICATION attribute, no replication protocol and no
extension to install. Peeking does not consume: the slot keeps the log until
``confirm`` advances it, which the node does only once the hub has the packages.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from govshare.node.capture import CaptureError, LogBatch

OPTIONS = "'include-xids', '0', 'skip-empty-xacts', '1'"

# One column of a decoded tuple: name[type]:value. Names needing quotes are quoted "…";
# text values are quoted '…' with '' inside; numbers, booleans and null are bare.
_COLUMN = re.compile(
    r"""\s*(?P<name>"(?:[^"]|"")+"|[^\s\[]+)\[(?P<type>[^\]]+(?:\[\])*)\]:"""
    r"""(?P<value>'(?:[^']|'')*'|\S+)"""
)
_MARKER = re.compile(r"\s*(old-key|new-tuple):")


def lsn_number(lsn: str) -> int:
    """A ``pg_lsn`` text (``16/B374D848``) as the number it stands for, to compare."""
    high, _, low = lsn.partition("/")
    return (int(high, 16) << 32) + int(low, 16)


def parse_tuple(text_: str) -> tuple[dict[str, str | None], dict[str, str | None]]:
    """The columns of a decoded change, as (old key, new tuple): an UPDATE that changed
    the key logs ``old-key: … new-tuple: …``; every other change one tuple (the new row,
    or for DELETE the old key), returned as the second with an empty first."""
    old: dict[str, str | None] = {}
    new: dict[str, str | None] = {}
    into = new
    pos = 0
    while pos < len(text_):
        marker = _MARKER.match(text_, pos)
        if marker:
            into = old if marker.group(1) == "old-key" else new
            pos = marker.end()
            continue
        found = _COLUMN.match(text_, pos)
        if found is None:
            break  # "(no-tuple-data)" or a trailing blank
        name, value = found.group("name"), found.group("value")
        if name.startswith('"'):
            name = name[1:-1].replace('""', '"')
        into[name] = (
            None
            if value == "null"
            else value[1:-1].replace("''", "'")
            if value.startswith("'")
            else value
        )
        pos = found.end()
    return old, new


class PostgresChangeLog:
    """One task's replication slot on the business database."""

    def __init__(self, engine: Engine, table: str, key: list[str], name: str) -> None:
        self.engine = engine
        self.table = table
        self.key = key
        self.slot = name
        with engine.connect() as conn:
            qualified = conn.execute(
                text(
                    "SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname) "
                    "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                    "WHERE c.oid = to_regclass(:t)"
                ),
                {"t": table},
            ).scalar()
        if qualified is None:
            raise CaptureError(f"源表 {table} 不存在, 或当前数据库用户无权看到它")
        # test_decoding names each change "table <schema>.<name>: <OP>: …".
        self.prefix = f"table {qualified}: "

    def check(self) -> None:
        with self.engine.connect() as conn:
            level = conn.execute(text("SHOW wal_level")).scalar()
            if level != "logical":
                raise CaptureError(
                    f"PostgreSQL 的 wal_level 为 {level}, 日志捕获需要 logical: 请 DBA 在 "
                    "postgresql.conf 中设置 wal_level = logical (并确认 max_replication_slots "
                    "有空余), 然后重启数据库。"
                )
            user, may_replicate = conn.execute(
                text(
                    "SELECT current_user, rolreplication OR rolsuper FROM pg_roles "
                    "WHERE rolname = current_user"
                )
            ).one()
            if not may_replicate:
                raise CaptureError(
                    f"数据库用户 {user} 没有 REPLICATION 权限, 不能读取逻辑复制槽: 请 DBA 执行 "
                    f'ALTER ROLE "{user}" REPLICATION;'
                )
            if not conn.execute(
                text("SELECT has_table_privilege(:t, 'SELECT')"), {"t": self.table}
            ).scalar():
                raise CaptureError(
                    f"数据库用户 {user} 没有源表 {self.table} 的 SELECT 权限: 请 DBA 执行 "
                    f'GRANT SELECT ON {self.table} TO "{user}";'
                )
            identity = conn.execute(
                text(
                    "SELECT c.relreplident, EXISTS (SELECT 1 FROM pg_index i "
                    "WHERE i.indrelid = c.oid AND i.indisprimary) "
                    "FROM pg_class c WHERE c.oid = to_regclass(:t)"
                ),
                {"t": self.table},
            ).one()
            if identity[0] == "n" or (identity[0] == "d" and not identity[1]):
                raise CaptureError(
                    f"源表 {self.table} 没有主键, 删除与修改无法从日志中识别是哪一行: 请为它加"
                    f"主键, 或由 DBA 执行 ALTER TABLE {self.table} REPLICA IDENTITY FULL;"
                )

    def start(self) -> str:
        self.drop()
        with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            try:
                lsn = conn.execute(
                    text(
                        "SELECT lsn::text FROM pg_create_logical_replication_slot("
                        ":slot, 'test_decoding')"
                    ),
                    {"slot": self.slot},
                ).scalar_one()
            except DBAPIError as exc:
                raise CaptureError(
                    f"无法创建逻辑复制槽 {self.slot}: {_first_line(exc)} "
                    "(若为 max_replication_slots 已满, 请 DBA 调大它或删除不用的复制槽)"
                ) from exc
        return str(lsn)

    def read(self, after: str, limit: int) -> LogBatch:
        floor = lsn_number(after)
        batch = LogBatch(position=after)
        wanted = max(limit, 1000)
        while True:
            rows = self._peek(wanted)
            pending: list[tuple[str, tuple[str | None, ...]]] = []
            truncated = False
            for lsn, data in rows:
                if data == "BEGIN" or data.startswith("BEGIN "):
                    pending, truncated = [], False
                elif data == "COMMIT" or data.startswith("COMMIT "):
                    if lsn_number(lsn) <= floor:
                        continue  # sent before: the slot keeps it until confirmed
                    batch.changes.extend(pending)
                    batch.truncated = batch.truncated or truncated
                    batch.position = lsn
                    if len(batch.changes) >= limit:
                        batch.more = True
                        return batch
                elif data.startswith(self.prefix):
                    op, _, body = data[len(self.prefix) :].partition(": ")
                    truncated = truncated or op == "TRUNCATE"
                    pending.extend(self._changes(op, body))
            if len(rows) < wanted or batch.position != after:
                # The log is read to its end, or some of it is new: what was read is the
                # batch (more may follow; the next read starts after it).
                batch.more = len(rows) >= wanted
                return batch
            # Every transaction peeked was sent already (not yet confirmed): look further.
            wanted *= 4

    def _peek(self, n: int) -> list[tuple[str, str]]:
        with self.engine.connect() as conn:
            try:
                return [
                    (str(lsn), str(data))
                    for lsn, data in conn.execute(
                        text(
                            "SELECT lsn::text, data FROM pg_logical_slot_peek_changes("
                            f":slot, NULL, :n, {OPTIONS})"
                        ),
                        {"slot": self.slot, "n": n},
                    )
                ]
            except DBAPIError as exc:
                raise CaptureError(
                    f"读取逻辑复制槽 {self.slot} 失败: {_first_line(exc)}。复制槽丢失或失效时,"
                    " 请在平台上对该任务执行重新同步 (resync)。"
                ) from exc

    def _changes(self, op: str, body: str) -> list[tuple[str, tuple[str | None, ...]]]:
        if op not in ("INSERT", "UPDATE", "DELETE"):
            return []
        old, new = parse_tuple(body)
        key = self._key_of(new)
        if op == "DELETE":
            return [("D", key)]
        changes: list[tuple[str, tuple[str | None, ...]]] = []
        if old and (old_key := self._key_of(old)) != key:
            changes.append(("D", old_key))
        changes.append(("I" if op == "INSERT" else "U", key))
        return changes

    def _key_of(self, values: dict[str, str | None]) -> tuple[str | None, ...]:
        try:
            return tuple(values[k] for k in self.key)
        except KeyError as exc:
            raise CaptureError(
                f"逻辑日志中 {self.table} 的变更缺少主键列 {exc.args[0]}: 任务的主键须为表的主键"
                " (或表的 REPLICA IDENTITY 须包含它)"
            ) from exc

    def confirm(self, position: str) -> None:
        with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            confirmed = conn.execute(
                text(
                    "SELECT confirmed_flush_lsn::text FROM pg_replication_slots "
                    "WHERE slot_name = :slot"
                ),
                {"slot": self.slot},
            ).scalar()
            if confirmed is None or lsn_number(str(confirmed)) >= lsn_number(position):
                return
            conn.execute(
                text("SELECT pg_replication_slot_advance(:slot, CAST(:lsn AS pg_lsn))"),
                {"slot": self.slot, "lsn": position},
            )

    def drop(self) -> None:
        with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(
                text(
                    "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                    "WHERE slot_name = :slot"
                ),
                {"slot": self.slot},
            )


def _first_line(exc: Any) -> str:
    return str(getattr(exc, "orig", exc)).strip().splitlines()[0]
