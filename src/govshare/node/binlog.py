"""MySQL/MariaDB change capture from the binary log (binlog, 行格式).

The node reads the binlog the way a replica does: a ``COM_BINLOG_DUMP`` from a file and
position, through ``pymysqlreplication``, without blocking (the server sends what it has
and then end-of-file). Only the task's table's row events and the events that end a
transaction are decoded; the rest of the log goes by as it arrives.

The position is ``"<binlog file>:<offset>"``, the offset after the last whole transaction
read. File and offset are enough, and GTIDs are not used: the node always reads the one
server its source URL names, on which a file and offset mean exactly one place in its
history, and they resume the same on MySQL and MariaDB (whose GTIDs differ in form and
in how a dump is asked for them). What they do not survive is the log moving to another
server (a failover to a replica, a server rebuilt from a backup): there the same file
name means other events, so the task must be resynchronised, as it must be when the file
was purged (``read`` says so).

Nothing is kept on the server for the task: a replica that reads the binlog holds no
claim on it, and the server deletes old files by its own retention
(``binlog_expire_logs_seconds``, ``expire_logs_days`` before MySQL 8.0). That is why
``confirm`` and ``drop`` do nothing, and why the DBA must keep the binlog longer than the
longest time the node could be kept from the hub (see docs/log-capture.md).
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Iterator
from typing import Any

import pymysql
from pymysqlreplication import BinLogStreamReader
from pymysqlreplication.constants import NONE_SOURCE
from pymysqlreplication.event import NotImplementedEvent, QueryEvent, RotateEvent, XidEvent
from pymysqlreplication.row_event import (
    DeleteRowsEvent,
    PartialUpdateRowsEvent,
    UpdateRowsEvent,
    WriteRowsEvent,
)
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError

from govshare.node.capture import CaptureError, LogBatch

Key = tuple[str | None, ...]

# A replica's server id must differ from every other server and replica of the source
# (the server ends an older dump of the same id when a new one starts). DBAs number their
# servers from 1 upwards; the node's ids are above a million, and below 2^31 because
# some tools read the id as a signed 32-bit number.
SERVER_ID_FLOOR = 1_000_000
SERVER_ID_CEILING = 2**31

# A read stops after this many transactions even if few were the task's: a database busy
# with other tables then moves the task's position in steps, not in one read of hours.
MAX_TRANSACTIONS_PER_READ = 20_000

# binlog_row_image values that log every key column in every image. MINIMAL does not: an
# INSERT logs only the columns it named, so a key column that took its DEFAULT is absent.
ROW_IMAGES = ("FULL", "NOBLOB", "FULL_NODUP")

# Events the reader cannot decode: MySQL's compressed transactions (TRANSACTION_PAYLOAD,
# binlog_transaction_compression) and MariaDB's compressed events (log_bin_compress).
# Whose rows they hold is unknown, so reading past one could miss the table's changes.
COMPRESSED_EVENTS = frozenset({40, *range(165, 172)})

# Server error codes the dump answers with.
ER_PARSE_ERROR = 1064
ER_NO_SUCH_TABLE = 1146
ER_TABLEACCESS_DENIED = 1142
ER_SPECIFIC_ACCESS_DENIED = 1227
ER_MASTER_FATAL_ERROR_READING_BINLOG = 1236

# An identifier in a statement, perhaps qualified by its database: `a`.`b`, a.b, b.
_NAME = r"(?:`(?:[^`]|``)+`|[\w$]+)"
_REFERENCE = re.compile(rf"(?:(?P<schema>{_NAME})\s*\.\s*)?(?P<table>{_NAME})")
_DDL = ("TRUNCATE", "ALTER", "DROP", "RENAME", "CREATE")
_DML = ("INSERT", "REPLACE", "UPDATE", "DELETE", "LOAD")

_RESYNC = "请在平台上对该任务执行重新同步 (resync), 从当前数据重新开始。"


def server_id_for(name: str) -> int:
    """The replica server id the task's reads go by: stable for the task (its ``name``,
    from ``capture.slot_name``), distinct between tasks but for a one-in-millions chance."""
    digest = hashlib.blake2b(name.encode(), digest_size=8).digest()
    return SERVER_ID_FLOOR + int.from_bytes(digest, "big") % (SERVER_ID_CEILING - SERVER_ID_FLOOR)


def parse_position(position: str) -> tuple[str, int]:
    """``"binlog.000042:1234"`` as ("binlog.000042", 1234)."""
    file, sep, offset = position.rpartition(":")
    if not sep or not file or not offset.isdigit():
        raise CaptureError(f"binlog 位置 {position!r} 无效 (应为 文件名:偏移量)。{_RESYNC}")
    return file, int(offset)


def _log_bin_off() -> CaptureError:
    return CaptureError(
        "数据库没有开启二进制日志 (log_bin = OFF), 无法按日志捕获。请 DBA 在配置文件 "
        "(my.cnf 的 [mysqld] 段) 中加入:\n"
        "log_bin = mysql-bin\nserver_id = 1\nbinlog_format = ROW\n"
        "binlog_row_image = FULL\nbinlog_row_metadata = FULL\n"
        "(server_id 取本库在复制环境中唯一的编号), 然后重启数据库。"
    )


def _compressed(setting: str) -> CaptureError:
    return CaptureError(
        f"二进制日志是压缩的 ({setting} = ON), 节点读不了压缩的事件。请 DBA 执行 "
        f"SET GLOBAL {setting} = OFF; 并在配置文件中写入 {setting} = OFF; 已写入的压缩日志"
        "无法读取, 之后" + _RESYNC
    )


def _unquote(name: str) -> str:
    return name[1:-1].replace("``", "`") if name.startswith("`") else name


def _error_code(exc: BaseException) -> int | None:
    orig = getattr(exc, "orig", exc)
    args: tuple[Any, ...] = getattr(orig, "args", ())
    return args[0] if args and isinstance(args[0], int) else None


def _first_line(exc: BaseException) -> str:
    orig = getattr(exc, "orig", exc)
    args: tuple[Any, ...] = getattr(orig, "args", ())
    message = args[1] if len(args) > 1 else str(orig)
    return str(message).strip().splitlines()[0]


class MySQLChangeLog:
    """One provider task's view of a MySQL or MariaDB server's binary log."""

    def __init__(self, engine: Engine, table: str, key: list[str], name: str) -> None:
        self.engine = engine
        self.table = table
        self.key = list(key)
        self.name = name
        self.server_id = server_id_for(name)

    # -- the server ----------------------------------------------------------------------

    @functools.cached_property
    def schema(self) -> str:
        """The database the table is in: the one the source URL connects to."""
        with self.engine.connect() as conn:
            schema = conn.execute(text("SELECT DATABASE()")).scalar()
        if not schema:
            raise CaptureError("数据源连接串没有指定数据库名, 日志捕获需要知道源表所在的库")
        return str(schema)

    @functools.cached_property
    def mariadb(self) -> bool:
        with self.engine.connect() as conn:
            return "mariadb" in str(conn.execute(text("SELECT VERSION()")).scalar()).lower()

    def _grantee(self, conn: Connection) -> str:
        """The account the node logs in as, as a GRANT statement names it: 'user'@'host'."""
        user, _, host = str(conn.execute(text("SELECT CURRENT_USER()")).scalar()).rpartition("@")
        return f"'{user}'@'{host}'"

    def _qualified(self) -> str:
        return f"`{self.schema.replace('`', '``')}`.`{self.table.replace('`', '``')}`"

    def _status(self, conn: Connection) -> tuple[str, int] | None:
        """The binlog's current file and offset, None when the server keeps no binlog.
        MySQL 8.2 renamed ``SHOW MASTER STATUS`` (and 8.4 removed it) to ``SHOW BINARY
        LOG STATUS``; MariaDB 10.5.2 added ``SHOW BINLOG STATUS``; older servers know only
        the first name. A statement the server does not know is a parse error: try the
        next."""
        statements = ["SHOW MASTER STATUS"]
        statements.insert(0, "SHOW BINLOG STATUS" if self.mariadb else "SHOW BINARY LOG STATUS")
        for statement in statements:
            try:
                row = conn.execute(text(statement)).first()
            except DBAPIError as exc:
                if _error_code(exc) == ER_PARSE_ERROR and statement != statements[-1]:
                    continue
                raise
            return None if row is None else (str(row[0]), int(row[1]))
        return None  # pragma: no cover - the loop returns or raises

    def _settings(self) -> dict[str, Any]:
        """PyMySQL connection arguments for the dump, from the engine's URL (host, port,
        user, password, SSL options). A fresh dict each time: the reader changes it."""
        _, kwargs = self.engine.dialect.create_connect_args(self.engine.url)
        settings = dict(kwargs)
        # The dump needs no database (and the second connection has its own).
        settings.pop("database", None)
        settings.pop("db", None)
        settings.setdefault("charset", "utf8mb4")
        settings.setdefault("connect_timeout", 10)
        # A dump that stops sending (a half-open connection) must not hold the node's task
        # thread forever; a non-blocking dump of a live server is never silent this long.
        settings.setdefault("read_timeout", 120)
        return settings

    def _stream(self, file: str, offset: int) -> BinLogStreamReader:
        settings = self._settings()
        return BinLogStreamReader(
            connection_settings=settings,
            # Its second connection reads server variables from information_schema; named
            # as ``database`` here, since the ``db`` the reader sets is deprecated in PyMySQL.
            ctl_connection_settings={**settings, "database": "information_schema"},
            server_id=self.server_id,
            resume_stream=True,
            log_file=file,
            log_pos=offset,
            blocking=False,
            only_schemas=[self.schema],
            only_tables=[self.table],
            only_events=[
                WriteRowsEvent,
                UpdateRowsEvent,
                PartialUpdateRowsEvent,  # MySQL's binlog_row_value_options = PARTIAL_JSON
                DeleteRowsEvent,
                XidEvent,  # the commit of a transaction on InnoDB (every other engine's
                QueryEvent,  # is a COMMIT query), and DDL such as TRUNCATE
                RotateEvent,  # the log moves on to its next file
                NotImplementedEvent,  # to notice compressed events (and pass the rest)
            ],
            filter_non_implemented_events=False,
            enable_logging=False,
        )

    # -- ChangeLog -----------------------------------------------------------------------

    def check(self) -> None:
        with self.engine.connect() as conn:
            settings = {
                str(name).lower(): str(value)
                for name, value in conn.execute(
                    text(
                        "SHOW GLOBAL VARIABLES WHERE Variable_name IN ('log_bin', "
                        "'binlog_format', 'binlog_row_image', 'binlog_row_metadata', "
                        "'log_bin_compress', 'binlog_transaction_compression', 'version')"
                    )
                )
            }
            self._check_settings(settings)
            self._check_privileges(conn)
            self._check_table(conn)

    def _check_settings(self, settings: dict[str, str]) -> None:
        if settings.get("log_bin", "OFF").upper() not in ("ON", "1"):
            raise _log_bin_off()
        fmt = settings.get("binlog_format", "").upper()
        if fmt != "ROW":
            raise CaptureError(
                f"binlog_format 为 {fmt}, 日志捕获需要 ROW: STATEMENT 与 MIXED 格式的日志记录的"
                "是 SQL 语句, 看不出改了哪些行。请 DBA 执行 SET GLOBAL binlog_format = 'ROW'; "
                "并在配置文件中写入 binlog_format = ROW (重启后仍生效)。已连接的会话仍沿用原格式,"
                " 业务应用须重新连接 (如重启应用) 后, 其修改才按行记录。"
            )
        image = settings.get("binlog_row_image", "").upper()
        if image not in ROW_IMAGES:
            raise CaptureError(
                f"binlog_row_image 为 {image}, 日志捕获需要 FULL: MINIMAL 只记录语句给出的列, "
                "新增行时取默认值的主键列不会写进日志, 无法知道是哪一行。请 DBA 执行 "
                "SET GLOBAL binlog_row_image = 'FULL'; 并在配置文件中写入 "
                "binlog_row_image = FULL。"
            )
        metadata = settings.get("binlog_row_metadata")
        if metadata is None:
            raise CaptureError(
                f"数据库版本 {settings.get('version', '')} 的二进制日志不记录列名, 无法从中取出"
                "主键: 日志捕获需要 MySQL 8.0 或 MariaDB 10.5 及以上版本。请升级数据库, 或改用"
                "增量 (游标列) 或全量快照方式。"
            )
        if metadata.upper() != "FULL":
            raise CaptureError(
                f"binlog_row_metadata 为 {metadata}, 二进制日志中没有列名, 无法从中取出主键。"
                "请 DBA 执行 SET GLOBAL binlog_row_metadata = 'FULL'; 并在配置文件中写入 "
                "binlog_row_metadata = FULL。"
            )
        for compression in ("log_bin_compress", "binlog_transaction_compression"):
            if settings.get(compression, "OFF").upper() in ("ON", "1"):
                raise _compressed(compression)

    def _check_privileges(self, conn: Connection) -> None:
        """Tried, not read from ``SHOW GRANTS``: privileges also come by roles, by ALL
        PRIVILEGES or SUPER, under other names on other versions; trying is what counts."""
        missing: list[str] = []
        position: tuple[str, int] | None = None
        try:
            position = self._status(conn)
        except DBAPIError as exc:
            if _error_code(exc) != ER_SPECIFIC_ACCESS_DENIED:
                raise
            # MariaDB 10.5.2 split BINLOG MONITOR out of REPLICATION CLIENT (which is now
            # its alias); MySQL still calls it REPLICATION CLIENT.
            missing.append("BINLOG MONITOR" if self.mariadb else "REPLICATION CLIENT")
        if position is None and not missing:
            raise _log_bin_off()
        # The dump is asked for where the log ends now, and read until the server has sent
        # what it has. Without the monitor privilege the position is unknown: a file that
        # does not exist is asked for, which the server refuses (for a lack of privilege
        # first, else for the file).
        stream = self._stream(*(position or ("govshare-privilege-probe", 4)))
        try:
            stream.fetchone()
        except pymysql.MySQLError as exc:
            code = _error_code(exc)
            if code == ER_SPECIFIC_ACCESS_DENIED:
                missing.insert(0, "REPLICATION SLAVE")
            elif not (position is None and code == ER_MASTER_FATAL_ERROR_READING_BINLOG):
                raise self._dump_error(exc) from exc
        finally:
            _close(stream)
        if missing:
            raise CaptureError(
                f"数据库用户 {self._grantee(conn)} 缺少读取二进制日志的权限 ({', '.join(missing)})"
                f": 请 DBA 执行 GRANT {', '.join(missing)} ON *.* TO {self._grantee(conn)};"
            )

    def _check_table(self, conn: Connection) -> None:
        try:
            conn.execute(text(f"SELECT 1 FROM {self._qualified()} LIMIT 0"))
        except DBAPIError as exc:
            code = _error_code(exc)
            if code == ER_NO_SUCH_TABLE:
                raise CaptureError(f"源表 {self._qualified()} 不存在") from exc
            if code != ER_TABLEACCESS_DENIED:
                raise
            raise CaptureError(
                f"数据库用户 {self._grantee(conn)} 没有源表 {self._qualified()} 的 SELECT 权限: "
                f"请 DBA 执行 GRANT SELECT ON {self._qualified()} TO {self._grantee(conn)};"
            ) from exc
        primary = conn.execute(
            text(
                "SELECT COUNT(*) FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = :s "
                "AND TABLE_NAME = :t AND INDEX_NAME = 'PRIMARY'"
            ),
            {"s": self.schema, "t": self.table},
        ).scalar()
        if not primary:
            columns = ", ".join(f"`{k.replace('`', '``')}`" for k in self.key)
            raise CaptureError(
                f"源表 {self._qualified()} 没有主键: 日志捕获以主键识别变更的行。请为它加主键, "
                f"如 ALTER TABLE {self._qualified()} ADD PRIMARY KEY ({columns});"
            )

    def start(self) -> str:
        """The position where the log ends now; nothing is created on the server."""
        with self.engine.connect() as conn:
            try:
                position = self._status(conn)
            except DBAPIError as exc:
                if _error_code(exc) == ER_SPECIFIC_ACCESS_DENIED:
                    self._check_privileges(conn)  # raises, naming what to grant
                raise
        if position is None:
            raise _log_bin_off()
        return f"{position[0]}:{position[1]}"

    def read(self, after: str, limit: int) -> LogBatch:
        file, offset = parse_position(after)
        batch = LogBatch(position=after)
        pending: list[tuple[str, Key]] = []
        transactions = 0
        stream = self._stream(file, offset)
        try:
            for event in _events(stream):
                if isinstance(event, WriteRowsEvent | UpdateRowsEvent | DeleteRowsEvent):
                    pending.extend(self._changes(event))
                    continue
                if isinstance(event, NotImplementedEvent):
                    if event.event_type in COMPRESSED_EVENTS:
                        raise _compressed(
                            "log_bin_compress" if self.mariadb else "binlog_transaction_compression"
                        )
                    continue
                if isinstance(event, RotateEvent):
                    # The server moves to the next file only between transactions: reading
                    # on starts there (and the file before may then be purged).
                    if not pending:
                        batch.position = f"{event.next_binlog}:{event.position}"
                    continue
                if isinstance(event, QueryEvent) and not self._ends_transaction(event, batch):
                    continue
                # The end of a transaction (or a statement that is one by itself, as DDL is):
                # its changes count, and the next read starts after it.
                batch.changes.extend(pending)
                pending = []
                batch.position = f"{stream.log_file}:{event.packet.log_pos}"
                transactions += 1
                if len(batch.changes) >= limit or transactions >= MAX_TRANSACTIONS_PER_READ:
                    batch.more = True
                    break
            else:
                # The server sent all it has, which ends with a whole transaction: what
                # followed the last one (a new file's header) need not be read again.
                if not pending and stream.log_pos:
                    batch.position = f"{stream.log_file}:{stream.log_pos}"
        except pymysql.MySQLError as exc:
            raise self._dump_error(exc, after) from exc
        finally:
            _close(stream)
        return batch

    def confirm(self, position: str) -> None:
        """Nothing to release: the server keeps its binlog for its retention period
        (``binlog_expire_logs_seconds``; ``expire_logs_days`` before MySQL 8.0), whoever
        has read it. That period must be longer than the longest time the node may be
        without the hub, or the position's file is purged and the task must resync."""

    def drop(self) -> None:
        """Nothing to drop: a binlog reader leaves nothing on the server."""

    # -- events --------------------------------------------------------------------------

    def _ends_transaction(self, event: QueryEvent, batch: LogBatch) -> bool:
        """Whether a query event ends a transaction, noting what it did to the table.
        BEGIN opens one (MySQL logs it; MariaDB's GTID event stands for it); COMMIT ends
        one whose tables are not InnoDB's; ROLLBACK ends one that changed a table that
        cannot roll back (its row events are real, and the rows are read as they are);
        DDL commits on its own."""
        query = event.query.strip()
        head = query.split(None, 1)[0].upper() if query else ""
        if head in ("BEGIN", "SAVEPOINT", "XA") or query.upper().startswith("ROLLBACK TO"):
            return False  # inside a transaction: resuming there would miss its table map
        if head in _DDL and self._names_table(event, query):
            # TRUNCATE, a dropped or truncated partition, a table dropped or replaced:
            # rows went without a row event each; the node compares key sets.
            batch.truncated = True
        elif head in _DML and self._names_table(event, query):
            raise CaptureError(
                f"源表 {self._qualified()} 的修改以 SQL 语句 (而非行) 记入了二进制日志: 有会话"
                "仍在使用 STATEMENT 或 MIXED 格式, 改了哪些行无从得知。请 DBA 确认 "
                "binlog_format = ROW, 并让业务应用重新连接数据库, 然后" + _RESYNC
            )
        return True

    def _names_table(self, event: QueryEvent, query: str) -> bool:
        """Whether the statement names the task's table. A statement naming it in passing
        (a foreign key, a string) counts too: for TRUNCATE that costs a key comparison,
        which is cheaper than a deletion missed. Names compare without regard to case, as
        they do on Windows and macOS servers."""
        current = event.schema.decode() if isinstance(event.schema, bytes) else event.schema
        for found in _REFERENCE.finditer(query):
            if _unquote(found["table"]).lower() != self.table.lower():
                continue
            schema = _unquote(found["schema"]) if found["schema"] else current
            if (schema or "").lower() == self.schema.lower():
                return True
        return False

    def _changes(self, event: Any) -> list[tuple[str, Key]]:
        """The (op, key) of each row of a row event. An UPDATE that changed the key is a
        deletion of the old key and an update of the new one."""
        changes: list[tuple[str, Key]] = []
        for row in event.rows:
            if isinstance(event, UpdateRowsEvent):
                old = self._key(row["before_values"], row["before_none_sources"])
                new = self._key(row["after_values"], row["after_none_sources"], old)
                if new != old:
                    changes.append(("D", old))
                changes.append(("U", new))
            else:
                op = "I" if isinstance(event, WriteRowsEvent) else "D"
                changes.append((op, self._key(row["values"], row["none_sources"])))
        return changes

    def _key(self, values: dict[str, Any], unlogged: dict[str, str], before: Key = ()) -> Key:
        """The key columns' values as text, as the node writes a key (``str``, None kept).
        A column the image leaves out (an UPDATE's after-image under NOBLOB or
        FULL_NODUP logs only what changed) is taken from the before-image."""
        key: list[str | None] = []
        for i, name in enumerate(self.key):
            if name not in values:
                raise CaptureError(
                    f"二进制日志中 {self._qualified()} 的行没有列名 (写入时 binlog_row_metadata "
                    f"不是 FULL), 取不到主键列 {name}。请 DBA 执行 "
                    "SET GLOBAL binlog_row_metadata = 'FULL'; 然后" + _RESYNC
                )
            if unlogged.get(name) == NONE_SOURCE.COLS_BITMAP:
                if i >= len(before):
                    raise CaptureError(
                        f"二进制日志中 {self._qualified()} 的行缺少主键列 {name} "
                        "(binlog_row_image 不是 FULL)。请 DBA 执行 "
                        "SET GLOBAL binlog_row_image = 'FULL'; 然后" + _RESYNC
                    )
                key.append(before[i])
                continue
            value = values[name]
            key.append(None if value is None else str(value))
        return tuple(key)

    def _dump_error(self, exc: pymysql.MySQLError, after: str | None = None) -> Exception:
        """The dump's failure as the node reports it: a lost position or a missing privilege
        for the DBA, anything else as the database error it is."""
        code = _error_code(exc)
        if code == ER_MASTER_FATAL_ERROR_READING_BINLOG and after is not None:
            return CaptureError(
                f"二进制日志中已没有任务的读取位置 {after} ({_first_line(exc)}): 日志文件已被"
                "清理 (保留期短于节点与中心断开的时间), 或数据库已换成另一台服务器。" + _RESYNC
            )
        if code == ER_SPECIFIC_ACCESS_DENIED:
            return CaptureError(
                f"读取二进制日志被拒绝 ({_first_line(exc)}): 请 DBA 执行 "
                "GRANT REPLICATION SLAVE ON *.* TO 节点所用的数据库用户;"
            )
        return DBAPIError.instance(
            "COM_BINLOG_DUMP", None, exc, pymysql.Error, dialect=self.engine.dialect
        )


def _events(stream: BinLogStreamReader) -> Iterator[Any]:
    while (event := stream.fetchone()) is not None:
        yield event


def _close(stream: BinLogStreamReader) -> None:
    """Close both of the reader's connections, also when it failed half-way through
    opening them (then its own ``close`` does not know they are open)."""
    stream.close()
    for attribute in ("_stream_connection", "_ctl_connection"):
        conn = getattr(stream, attribute, None)
        if conn is not None and conn.open:
            conn.close()
