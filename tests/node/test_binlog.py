"""MySQL/MariaDB log capture: the node reads the real server's binary log as a replica.

Each test has a database of its own on the suite's MariaDB server (binlog on, ROW format,
FULL row images and metadata, as docs/log-capture.md asks of a department's DBA), marks
the log with ``start``, changes the table, and reads what the log says changed.
"""

from __future__ import annotations

import datetime as dt
import itertools
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.pool import NullPool

from govshare.node.binlog import (
    SERVER_ID_CEILING,
    SERVER_ID_FLOOR,
    MySQLChangeLog,
    server_id_for,
)
from govshare.node.capture import CaptureError, LogBatch, slot_name
from tests.exchange.scenario import Source, make_scene, target_rows
from tests.factories import World
from tests.mariadb import USER, MariaDBServer, start_mariadb

pytestmark = [pytest.mark.mariadb, pytest.mark.xdist_group("mariadb")]

_names = itertools.count(1)


@pytest.fixture
def db(mariadb: MariaDBServer) -> Iterator[Engine]:
    """A database of the test's own with a table ``person`` (key ``id``)."""
    engine = create_engine(mariadb.create_database(f"binlog_{next(_names)}"), poolclass=NullPool)
    run(engine, "CREATE TABLE person (id INT PRIMARY KEY, name VARCHAR(50))")
    yield engine
    engine.dispose()


def run(engine: Engine, *statements: str) -> None:
    """The statements as one transaction."""
    with engine.begin() as conn:
        for statement in statements:
            conn.execute(text(statement))


def capture(
    engine: Engine, table: str = "person", key: tuple[str, ...] = ("id",)
) -> MySQLChangeLog:
    return MySQLChangeLog(engine, table, list(key), slot_name(1, next(_names)))


def read_all(log: MySQLChangeLog, after: str) -> LogBatch:
    return log.read(after, 1_000_000)


# -- through the node and the hub --------------------------------------------------------


def test_a_log_mode_task_delivers_every_change_of_a_mariadb_table(
    world: World, tmp_path: Path, mariadb: MariaDBServer
) -> None:
    """Provider node → hub → consumer node, the provider reading the binlog: the first
    load, then inserts, updates, deletes, a changed key and a TRUNCATE."""
    url = mariadb.create_database(f"binlog_{next(_names)}")
    engine = create_engine(url, poolclass=NullPool)
    run(
        engine,
        "CREATE TABLE person (id INT PRIMARY KEY, sfzhm VARCHAR(18), xm VARCHAR(50), "
        "xb CHAR(1), version INT NOT NULL)",
    )
    with engine.begin() as conn:
        conn.execute(
            text("INSERT INTO person VALUES (:i, :s, :x, '1', :i)"),
            [{"i": i, "s": f"3702021990{i:08d}", "x": f"姓名{i}"} for i in range(1, 2501)],
        )
    scene = make_scene(world, tmp_path, source_url=url)
    try:
        scene.node("provider")
        scene.node("consumer")
        scene.create_tasks(mode="log", cursor_column=None, delete_detection="none", batch_rows=1000)
        scene.run_until(scene.in_sync)
        source = Source(url)
        source.update([10, 20], "更新")
        source.insert([5001, 5002])
        source.delete([30, 31, 5002])
        run(engine, "UPDATE person SET id = 9000 WHERE id = 40")
        scene.run_until(scene.in_sync)

        assert target_rows(scene.target_url) == source.rows()
        assert len(source.rows()) == 2500 + 2 - 3

        run(engine, "TRUNCATE TABLE person")
        source.insert([1, 2])
        scene.run_until(scene.in_sync)

        assert target_rows(scene.target_url) == source.rows()
        assert [r[0] for r in source.rows()] == [1, 2]
    finally:
        scene.close()
        engine.dispose()


# -- what the log says -------------------------------------------------------------------


def test_inserts_updates_and_deletes_come_by_key_in_commit_order(db: Engine) -> None:
    log = capture(db)
    start = log.start()
    run(db, "INSERT INTO person VALUES (1, '张三'), (2, '李四'), (3, '王五')")
    run(db, "UPDATE person SET name = '李四四' WHERE id = 2")
    run(db, "DELETE FROM person WHERE id = 3", "INSERT INTO person VALUES (4, '赵六')")

    batch = read_all(log, start)

    assert batch.changes == [
        ("I", ("1",)),
        ("I", ("2",)),
        ("I", ("3",)),
        ("U", ("2",)),
        ("D", ("3",)),
        ("I", ("4",)),
    ]
    assert batch.position != start
    assert not batch.truncated
    assert not batch.more


def test_an_update_of_the_key_is_a_deletion_of_the_old_key_and_an_update_of_the_new(
    db: Engine,
) -> None:
    run(db, "INSERT INTO person VALUES (1, '张三')")
    log = capture(db)
    start = log.start()
    run(db, "UPDATE person SET id = 10 WHERE id = 1")
    run(db, "UPDATE person SET name = '张三丰' WHERE id = 10")

    assert read_all(log, start).changes == [("D", ("1",)), ("U", ("10",)), ("U", ("10",))]


def test_keys_are_the_text_the_node_writes_of_the_values_it_reads(db: Engine) -> None:
    """Every kind of key column a department uses, in the task's key order (not the
    table's): the log's key text is ``str`` of the value the node reads from the table."""
    run(
        db,
        "CREATE TABLE permit (code VARCHAR(20), seq INT, amount DECIMAL(12,2), "
        "issued DATE, stamped DATETIME(6), PRIMARY KEY (code, seq, amount, issued, stamped))",
    )
    key = ("stamped", "code", "amount", "issued", "seq")
    log = capture(db, "permit", key)
    start = log.start()
    rows = [
        ("粤B𠀀-001", 1, Decimal("5.00"), dt.date(2024, 2, 29), dt.datetime(2024, 3, 1, 8, 0)),
        ("x", -7, Decimal("-0.50"), dt.date(1900, 1, 1), dt.datetime(2024, 3, 1, 8, 0, 0, 1)),
    ]
    with db.begin() as conn:
        for row in rows:
            conn.execute(
                text("INSERT INTO permit VALUES (:c, :s, :a, :i, :t)"),
                dict(zip("csait", row, strict=True)),
            )
    with db.connect() as conn:
        read_back = conn.execute(text(f"SELECT {', '.join(key)} FROM permit ORDER BY seq DESC"))
        expected = [("I", tuple(str(v) for v in row)) for row in read_back]

    assert read_all(log, start).changes == expected


def test_a_rolled_back_transaction_yields_nothing(db: Engine) -> None:
    log = capture(db)
    start = log.start()
    with db.connect() as conn:
        conn.execute(text("INSERT INTO person VALUES (1, '张三')"))
        conn.rollback()
    run(db, "INSERT INTO person VALUES (2, '李四')")

    assert read_all(log, start).changes == [("I", ("2",))]


def test_other_tables_and_the_same_table_in_other_databases_are_not_read(
    db: Engine, mariadb: MariaDBServer
) -> None:
    other_db = create_engine(mariadb.create_database(f"binlog_{next(_names)}"), poolclass=NullPool)
    run(other_db, "CREATE TABLE person (id INT PRIMARY KEY, name VARCHAR(50))")
    run(db, "CREATE TABLE pet (id INT PRIMARY KEY)")
    log = capture(db)
    start = log.start()
    run(other_db, "INSERT INTO person VALUES (1, '别库的人')")
    run(db, "INSERT INTO pet VALUES (1)", "INSERT INTO person VALUES (2, '李四')")
    run(db, "INSERT INTO pet VALUES (2)")
    run(other_db, "TRUNCATE person")
    run(db, "TRUNCATE pet")
    end = log.start()

    batch = read_all(log, start)
    other_db.dispose()

    assert batch.changes == [("I", ("2",))]
    assert not batch.truncated
    # The position moved over the other tables' transactions too.
    assert located(batch.position) >= located(end)


def test_truncate_is_reported_as_such(db: Engine) -> None:
    """TRUNCATE logs no row: the batch says the table was emptied, so the node compares
    key sets to find what went."""
    log = capture(db)
    start = log.start()
    run(db, "INSERT INTO person VALUES (1, '张三')")
    with db.connect() as conn:
        conn.execute(text("TRUNCATE TABLE person"))
    run(db, "INSERT INTO person VALUES (2, '李四')")

    batch = read_all(log, start)

    assert batch.truncated
    assert batch.changes == [("I", ("1",)), ("I", ("2",))]


def test_a_change_logged_as_a_statement_stops_capture(db: Engine) -> None:
    """A session still on STATEMENT format logs SQL, not rows: which rows it changed is
    unknowable, and capture stops with the DBA's remedy instead of missing them."""
    log = capture(db)
    start = log.start()
    with db.connect() as conn:
        conn.execute(text("SET SESSION binlog_format = 'STATEMENT'"))
        conn.execute(text("INSERT INTO person VALUES (1, '张三')"))
        conn.commit()

    with pytest.raises(CaptureError, match=r"STATEMENT 或 MIXED.*重新同步"):
        read_all(log, start)


def test_a_row_logged_without_column_names_stops_capture(
    db: Engine, mariadb: MariaDBServer
) -> None:
    log = capture(db)
    start = log.start()
    with global_setting(mariadb, "binlog_row_metadata", "MINIMAL"):
        run(db, "INSERT INTO person VALUES (1, '张三')")

    with pytest.raises(CaptureError, match=r"没有列名.*binlog_row_metadata = 'FULL'"):
        read_all(log, start)


def test_a_compressed_event_stops_capture(db: Engine, mariadb: MariaDBServer) -> None:
    """The reader cannot open a compressed event, nor tell whose rows it holds: capture
    stops rather than pass it by."""
    log = capture(db)
    start = log.start()
    with global_setting(mariadb, "log_bin_compress", "ON"):
        # A statement beyond the size from which MariaDB compresses (256 bytes).
        columns = ", ".join(f"c{i} INT" for i in range(80))
        run(db, f"CREATE TABLE wide (id INT PRIMARY KEY, {columns})")

    with pytest.raises(CaptureError, match=r"压缩的.*log_bin_compress = OFF"):
        read_all(log, start)


# -- positions ---------------------------------------------------------------------------


def test_start_is_where_the_log_ends_now(db: Engine) -> None:
    run(db, "INSERT INTO person VALUES (1, '张三')")
    log = capture(db)
    start = log.start()

    file, _, offset = start.rpartition(":")
    assert file.startswith("binlog.")
    assert int(offset) > 4
    nothing = read_all(log, start)
    assert nothing.changes == []
    assert located(nothing.position) >= located(start)


def test_a_limited_read_stops_after_whole_transactions_and_the_next_goes_on_from_there(
    db: Engine,
) -> None:
    log = capture(db)
    start = log.start()
    for t in range(4):
        run(db, *(f"INSERT INTO person VALUES ({3 * t + i}, 'x')" for i in range(3)))
    whole = read_all(log, start)

    first = log.read(start, 4)
    second = log.read(first.position, 1000)

    assert len(first.changes) == 6  # two whole transactions: 4 changes were asked for
    assert first.more
    assert not second.more
    assert first.changes + second.changes == whole.changes
    assert located(second.position) >= located(whole.position)


def test_a_read_from_a_returned_position_gives_only_later_changes(db: Engine) -> None:
    log = capture(db)
    start = log.start()
    run(db, "INSERT INTO person VALUES (1, '张三')")
    earlier = read_all(log, start)
    run(db, "UPDATE person SET name = '张三丰' WHERE id = 1")

    later = read_all(log, earlier.position)
    nothing = read_all(log, later.position)

    assert later.changes == [("U", ("1",))]
    assert nothing.changes == []
    assert located(nothing.position) >= located(later.position)


def test_reading_follows_the_log_into_its_next_file(db: Engine) -> None:
    """A read crosses into the next binlog file; once past, the position is in the new
    file, so the old one may be purged without the task missing anything."""
    log = capture(db)
    start = log.start()
    run(db, "INSERT INTO person VALUES (1, '张三')")
    run(db, "FLUSH BINARY LOGS")
    run(db, "INSERT INTO person VALUES (2, '李四')")
    run(db, "FLUSH BINARY LOGS")
    end = log.start()

    batch = read_all(log, start)

    assert batch.changes == [("I", ("1",)), ("I", ("2",))]
    assert located(batch.position)[0] == located(end)[0] != located(start)[0]  # the newest file
    assert located(batch.position) >= located(end)


def test_a_position_in_a_purged_file_asks_for_a_resync(db: Engine, mariadb: MariaDBServer) -> None:
    log = capture(db)
    start = log.start()
    run(db, "INSERT INTO person VALUES (1, '张三')")
    purge_all_but_the_current_file(mariadb)

    with pytest.raises(CaptureError, match=r"已被清理.*重新同步"):
        log.read(start, 1000)


def test_reads_leave_no_connection_open(db: Engine, mariadb: MariaDBServer) -> None:
    log = capture(db)
    start = log.start()
    for i in range(3):
        run(db, f"INSERT INTO person VALUES ({i}, 'x')")
    before = connections(mariadb)

    log.read(start, 1)  # stops with more to read
    read_all(log, start)  # reads to the end
    log.check()
    purge_all_but_the_current_file(mariadb)
    with pytest.raises(CaptureError):
        log.read(start, 1)  # fails

    assert settled(lambda: connections(mariadb) == before)


def test_the_server_id_is_the_tasks_own_and_above_those_of_servers() -> None:
    ids = {server_id_for(slot_name(node, task)) for node in range(1, 30) for task in range(30)}

    assert server_id_for(slot_name(3, 7)) == server_id_for(slot_name(3, 7))
    assert len(ids) == 29 * 30
    assert all(SERVER_ID_FLOOR <= i < SERVER_ID_CEILING for i in ids)


# -- check: what the DBA is asked to do ----------------------------------------------------


def test_check_passes_on_a_server_set_up_as_documented(db: Engine) -> None:
    capture(db).check()


def test_check_accepts_row_images_that_log_every_key_column(
    db: Engine, mariadb: MariaDBServer
) -> None:
    """NOBLOB leaves out unchanged BLOB/TEXT columns, never a key column."""
    log = capture(db)
    with global_setting(mariadb, "binlog_row_image", "NOBLOB"):
        log.check()
        start = log.start()
        run(db, "INSERT INTO person VALUES (1, '张三')", "UPDATE person SET id = 2")

        assert read_all(log, start).changes == [("I", ("1",)), ("D", ("1",)), ("U", ("2",))]


def test_check_without_the_binary_log() -> None:
    server = start_mariadb(binlog=False)
    try:
        engine = create_engine(server.create_database("nolog"), poolclass=NullPool)
        run(engine, "CREATE TABLE person (id INT PRIMARY KEY)")
        log = capture(engine)
        with pytest.raises(CaptureError, match=r"(?s)log_bin = OFF.*log_bin = mysql-bin.*重启"):
            log.check()
        with pytest.raises(CaptureError, match="log_bin = OFF"):
            log.start()
        engine.dispose()
    finally:
        server.stop()


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("binlog_format", "MIXED", "binlog_format 为 MIXED.*SET GLOBAL binlog_format = 'ROW';"),
        ("binlog_format", "STATEMENT", "binlog_format 为 STATEMENT.*重新连接"),
        (
            "binlog_row_image",
            "MINIMAL",
            "binlog_row_image 为 MINIMAL.*默认值的主键列.*SET GLOBAL binlog_row_image = 'FULL';",
        ),
        (
            "binlog_row_metadata",
            "MINIMAL",
            "binlog_row_metadata 为 MINIMAL.*SET GLOBAL binlog_row_metadata = 'FULL';",
        ),
        ("log_bin_compress", "ON", "压缩的.*SET GLOBAL log_bin_compress = OFF;"),
    ],
)
def test_check_names_the_setting_to_change(
    db: Engine, mariadb: MariaDBServer, name: str, value: str, message: str
) -> None:
    log = capture(db)
    with global_setting(mariadb, name, value), pytest.raises(CaptureError, match=message):
        log.check()


def test_check_names_the_privileges_to_grant_and_granting_them_is_enough(
    db: Engine, mariadb: MariaDBServer
) -> None:
    with user(mariadb, db, "GRANT SELECT ON {db}.person TO {user}") as (engine, grantee):
        log = capture(engine)
        with pytest.raises(CaptureError) as refused:
            log.check()
        message = str(refused.value)
        assert f"数据库用户 {grantee} 缺少读取二进制日志的权限" in message
        assert f"GRANT REPLICATION SLAVE, BINLOG MONITOR ON *.* TO {grantee};" in message
        with pytest.raises(CaptureError, match="BINLOG MONITOR"):
            log.start()

        as_dba(mariadb, the_statement_in(message))

        log.check()
        assert log.start()


@pytest.mark.parametrize(
    ("granted", "missing"),
    [("REPLICATION SLAVE", "BINLOG MONITOR"), ("BINLOG MONITOR", "REPLICATION SLAVE")],
)
def test_check_names_only_the_privilege_missing(
    db: Engine, mariadb: MariaDBServer, granted: str, missing: str
) -> None:
    with user(
        mariadb, db, "GRANT SELECT ON {db}.person TO {user}", f"GRANT {granted} ON *.* TO {{user}}"
    ) as (engine, grantee):
        with pytest.raises(CaptureError) as refused:
            capture(engine).check()
        assert f"GRANT {missing} ON *.* TO {grantee};" in str(refused.value)


def test_check_names_the_table_privilege_to_grant(db: Engine, mariadb: MariaDBServer) -> None:
    """The DBA granted SELECT on another table of the database, not on the task's."""
    run(db, "CREATE TABLE pet (id INT PRIMARY KEY)")
    grants = (
        "GRANT REPLICATION SLAVE, BINLOG MONITOR ON *.* TO {user}",
        "GRANT SELECT ON {db}.pet TO {user}",
    )
    with user(mariadb, db, *grants) as (engine, grantee):
        log = capture(engine)
        with pytest.raises(CaptureError) as refused:
            log.check()
        message = str(refused.value)
        schema = engine.url.database
        assert f"GRANT SELECT ON `{schema}`.`person` TO {grantee};" in message

        as_dba(mariadb, the_statement_in(message))

        log.check()


def test_check_asks_for_a_primary_key(db: Engine) -> None:
    run(db, "CREATE TABLE visit (person_id INT NOT NULL, note TEXT)")

    with pytest.raises(CaptureError, match=r"没有主键.*ADD PRIMARY KEY \(`person_id`\);"):
        capture(db, "visit", ("person_id",)).check()


# -- helpers -----------------------------------------------------------------------------


@contextmanager
def global_setting(mariadb: MariaDBServer, name: str, value: str) -> Iterator[None]:
    """A server setting changed for the block (and back after it, whatever happens)."""
    with mariadb.root() as conn, conn.cursor() as cur:
        cur.execute(f"SELECT @@GLOBAL.{name}")
        (before,) = cur.fetchone()  # type: ignore[misc]
        cur.execute(f"SET GLOBAL {name} = %s", (value,))
        try:
            yield
        finally:
            cur.execute(f"SET GLOBAL {name} = %s", (before,))


@contextmanager
def user(mariadb: MariaDBServer, db: Engine, *grants: str) -> Iterator[tuple[Engine, str]]:
    """A user of the database with only the given grants (``{db}``, ``{user}`` filled in),
    and an engine connecting as it."""
    name = f"node{next(_names)}"
    grantee = f"'{name}'@'127.0.0.1'"
    with mariadb.root() as conn, conn.cursor() as cur:
        cur.execute(f"CREATE USER {grantee} IDENTIFIED BY 'pw'")
        for grant in grants:
            cur.execute(grant.format(db=f"`{db.url.database}`", user=grantee))
    url = db.url.set(username=name, password="pw")
    engine = create_engine(url, poolclass=NullPool)
    try:
        yield engine, grantee
    finally:
        engine.dispose()
        with mariadb.root() as conn, conn.cursor() as cur:
            cur.execute(f"DROP USER {grantee}")


def located(position: str) -> tuple[str, int]:
    """A position as (file, offset), to compare: the server may write a few bookkeeping
    events (a binlog checkpoint after a new file) at any moment, so a later position is
    not always an equal one."""
    file, _, offset = position.rpartition(":")
    return file, int(offset)


def the_statement_in(message: str) -> str:
    """The SQL a check's message asks the DBA to run."""
    found = re.search(r"(GRANT [^;]+);", message)
    assert found, message
    return found.group(1)


def as_dba(mariadb: MariaDBServer, statement: str) -> None:
    with mariadb.root() as conn, conn.cursor() as cur:
        cur.execute(statement)


def purge_all_but_the_current_file(mariadb: MariaDBServer) -> None:
    """Start a new binlog file and purge the ones before it, as the server's retention
    does. MariaDB keeps a file until InnoDB has made its commits durable (its binlog
    checkpoint), which with this suite's lazy flushing takes up to a second."""
    with mariadb.root() as conn, conn.cursor() as cur:
        cur.execute("FLUSH BINARY LOGS")
        cur.execute("SHOW MASTER STATUS")
        current = cur.fetchone()[0]  # type: ignore[index]

        def purged() -> bool:
            cur.execute(f"PURGE BINARY LOGS TO '{current}'")
            cur.execute("SHOW BINARY LOGS")
            return [row[0] for row in cur.fetchall()] == [current]

        assert settled(purged)


def connections(mariadb: MariaDBServer) -> list[tuple[str, str]]:
    """The suite user's connections to the server (but the one asking), by command."""
    with mariadb.root() as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT COMMAND, COALESCE(DB, '') FROM information_schema.PROCESSLIST "
            "WHERE USER = %s ORDER BY 1, 2",
            (USER,),
        )
        return [(str(c), str(d)) for c, d in cur.fetchall()]


def settled(condition: Callable[[], bool], seconds: float = 5.0) -> bool:
    """Whether ``condition()`` comes true within ``seconds`` (the server notices a closed
    connection, or makes a checkpoint, a moment later)."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True
