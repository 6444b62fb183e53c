"""MySQL/MariaDB business databases, read and written by the front-end node through PyMySQL.

The provider's source is a real MariaDB table with the types departments use (DECIMAL
with scale, DATE, DATETIME with microseconds, DOUBLE, long Chinese text with characters
outside the BMP, large BLOBs, NULLs); it travels provider node → hub → subscriber node
into a MariaDB target and into a SQLite target, and comes out value for value.
"""

from __future__ import annotations

import datetime as dt
import itertools
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import MetaData, Table, create_engine, select
from sqlalchemy.pool import NullPool
from sqlalchemy.sql import text

from govshare.exchange.package import decode_columns, encode_rows
from govshare.node.binlog import MySQLChangeLog
from govshare.node.capture import open_change_log
from govshare.node.source import SourceReader, ZeroDateError, describe, make_engine
from govshare.node.target import TargetRefused, TargetWriter, target_engine
from tests.exchange.scenario import make_scene
from tests.factories import World
from tests.mariadb import MariaDBServer

# Together on one xdist worker: one MariaDB server for the lot, not one per worker.
pytestmark = [pytest.mark.mariadb, pytest.mark.xdist_group("mariadb")]

_names = itertools.count(1)

COLUMNS = "id, amount, ratio, birth, updated_at, note, photo"
BASE = dt.datetime(2024, 3, 1, 8, 30, 0, 123456)
LONG_NOTE = "长文本𠀀" * 20_000  # 100,000 characters, 340,000 bytes: beyond TEXT's 64 KiB
BIG_PHOTO = bytes(range(256)) * 400  # 102,400 bytes: beyond BLOB's 64 KiB


def _row(i: int) -> tuple[Any, ...]:
    """Row ``i`` of the source, every few rows with a NULL or an extreme value."""
    amounts = [
        Decimal("12345678901234.5678"),
        Decimal("-0.0001"),
        Decimal("0.0000"),
        Decimal("99999999999999.9999"),
        None,
    ]
    return (
        i,
        amounts[i % 5],
        None if i % 7 == 0 else 0.1 + 0.2 * i,
        None if i % 6 == 0 else dt.date(1900 + i % 200, 1 + i % 12, 1 + i % 28),
        BASE + dt.timedelta(seconds=i, microseconds=i),
        None if i % 4 == 0 else (LONG_NOTE if i == 3 else f"张三{i}·𠀀𝄞 «»'\"\\%_"),
        None if i % 3 == 0 else (BIG_PHOTO if i == 5 else bytes([0, 255, i % 256, 0])),
    )


def _create_source(url: str, rows: int) -> None:
    engine = create_engine(url, poolclass=NullPool)
    with engine.begin() as conn:
        conn.execute(
            text(
                "CREATE TABLE person (id INT PRIMARY KEY, amount DECIMAL(18,4), ratio DOUBLE, "
                "birth DATE, updated_at DATETIME(6) NOT NULL, note LONGTEXT, "
                "photo MEDIUMBLOB, KEY ix_person_updated (updated_at, id)) "
                "CHARACTER SET utf8mb4"
            )
        )
        _insert(conn, [_row(i) for i in range(1, rows + 1)])
    engine.dispose()


def _insert(conn: Any, rows: list[tuple[Any, ...]]) -> None:
    conn.execute(
        text(
            "INSERT INTO person (id, amount, ratio, birth, updated_at, note, photo) "
            "VALUES (:id, :amount, :ratio, :birth, :updated_at, :note, :photo)"
        ),
        [dict(zip(COLUMNS.split(", "), row, strict=True)) for row in rows],
    )


def _rows(url: str, table: str) -> list[tuple[Any, ...]]:
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            if not engine.dialect.has_table(conn, table):
                return []
            # Through the reflected table, so that SQLite's dates come back as dates.
            t = Table(table, MetaData(), autoload_with=conn)
            t.c.ratio.type.asdecimal = False  # MySQL's DOUBLE reflects as Decimal-returning
            stmt = select(*[t.c[c] for c in COLUMNS.split(", ")]).order_by(t.c.id)
            return [tuple(r) for r in conn.execute(stmt)]
    finally:
        engine.dispose()


def _comparable(rows: list[tuple[Any, ...]], target: str) -> list[tuple[Any, ...]]:
    """Rows as the target can hold them. SQLite keeps NUMERIC in a double, so a DECIMAL
    with more than 15 significant digits comes back rounded (99999999999999.9999 as
    100000000000000.0000); for the SQLite target decimals are compared as doubles, every
    other value exactly. The MariaDB target is compared exactly, decimals included."""
    if target != "sqlite":
        return rows
    return [tuple(float(v) if isinstance(v, Decimal) else v for v in row) for row in rows]


# One hub backend is enough here: what is under test is the node's databases.
@pytest.mark.parametrize("hub", ["sqlite"], indirect=True)
@pytest.mark.parametrize("target", ["mariadb", "sqlite"])
def test_mariadb_source_exchanged_full_then_incrementally(
    world: World, tmp_path: Path, mariadb: MariaDBServer, target: str
) -> None:
    n = next(_names)
    source_url = mariadb.create_database(f"src_{n}")
    target_url = (
        mariadb.create_database(f"dst_{n}")
        if target == "mariadb"
        else f"sqlite:///{tmp_path / 'consumer.db'}"
    )
    _create_source(source_url, 250)
    scene = make_scene(world, tmp_path, source_url=source_url, target_url=target_url)

    def in_sync() -> bool:
        return _comparable(_rows(source_url, "person"), target) == _comparable(
            _rows(target_url, "person_copy"), target
        )

    try:
        scene.node("provider")
        scene.node("consumer")
        scene.create_tasks(cursor_column="updated_at", batch_rows=100)
        scene.run_until(in_sync)
        copied = _rows(target_url, "person_copy")
        assert len(copied) == 250
        if target == "mariadb":  # exactly, type for type
            assert copied == _rows(source_url, "person")
        assert copied[2][5] == LONG_NOTE
        assert copied[4][6] == BIG_PHOTO
        assert copied[0][5] == "张三1·𠀀𝄞 «»'\"\\%_"

        # The business system changes rows, adds some and deletes others.
        later = BASE + dt.timedelta(days=1)
        engine = make_engine(source_url)
        with engine.begin() as conn:
            conn.execute(
                text(
                    "UPDATE person SET amount = -amount, note = '已更新𠀀', birth = NULL, "
                    "updated_at = :t WHERE id IN (10, 20, 30)"
                ),
                {"t": later},
            )
            _insert(
                conn,
                [
                    (*_row(i)[:4], later + dt.timedelta(microseconds=i), *_row(i)[5:])
                    for i in (251, 252)
                ],
            )
            conn.execute(text("DELETE FROM person WHERE id IN (40, 41)"))
        engine.dispose()
        provider = scene.nodes["provider"]
        provider.detect_deletions(provider.tasks[scene.provider_task["id"]])
        scene.run_until(in_sync)
        copied = _rows(target_url, "person_copy")
        ids = [r[0] for r in copied]
        assert len(copied) == 250
        assert 40 not in ids
        assert 41 not in ids
        assert 252 in ids
        assert copied[ids.index(10)][5] == "已更新𠀀"
        if target == "mariadb":
            assert copied == _rows(source_url, "person")
    finally:
        scene.close()


def test_zero_dates_are_refused_naming_table_column_and_key(mariadb: MariaDBServer) -> None:
    url = mariadb.create_database(f"zero_{next(_names)}")
    _create_source(url, 3)
    engine = make_engine(url)
    with engine.begin() as conn:
        # MySQL's non-strict modes store what a business system sends as 0000-00-00.
        conn.execute(text("SET SESSION sql_mode = ''"))
        conn.execute(text("UPDATE person SET birth = '0000-00-00' WHERE id = 2"))
    reader = SourceReader(
        engine,
        {"table": "person", "key": ["id"], "mode": "incremental", "cursor_column": "updated_at"},
    )
    with pytest.raises(ZeroDateError) as caught:
        next(reader.batches(None, 100))
    message = str(caught.value)
    assert "person" in message
    assert "birth" in message
    assert "id=2" in message
    assert "0000-00-00" in message
    # The way out the message names: a query that maps zero dates to NULL.
    query = SourceReader(
        engine,
        {
            "query": "SELECT id, NULLIF(birth, '0000-00-00') AS birth, updated_at FROM person",
            "key": ["id"],
            "mode": "incremental",
            "cursor_column": "updated_at",
        },
    )
    rows, _ = next(query.batches(None, 100))
    assert [(r[0], r[1]) for r in rows] == [(1, _row(1)[3]), (2, None), (3, _row(3)[3])]
    engine.dispose()


def _the_alert(world: World, scene: Any, task: str) -> dict[str, Any]:
    """Both nodes started, the tasks created and run until ``task`` ("provider" or
    "subscriber") has an open alert on the hub: that alert, the only one."""
    scene.node("provider")
    scene.node("consumer")
    scene.create_tasks(cursor_column="updated_at", batch_rows=100)
    task_id = getattr(scene, f"{task}_task")["id"]
    task_alerts: list[dict[str, Any]] = []

    def alerted() -> bool:
        with world.api(world.admin) as c:
            alerts = c.get("/api/v1/exchange/alerts", params={"open_only": True}).json()
        task_alerts[:] = [a for a in alerts if a["task_id"] == task_id]
        return bool(task_alerts)

    scene.run_until(alerted, timeout=30)
    (alert,) = task_alerts
    return alert


@pytest.mark.parametrize("hub", ["sqlite"], indirect=True)
def test_a_zero_date_stops_the_task_with_an_alert_on_the_hub(
    world: World, tmp_path: Path, mariadb: MariaDBServer
) -> None:
    n = next(_names)
    source_url = mariadb.create_database(f"src_{n}")
    target_url = mariadb.create_database(f"dst_{n}")
    _create_source(source_url, 5)
    engine = make_engine(source_url)
    with engine.begin() as conn:
        conn.execute(text("SET SESSION sql_mode = ''"))
        conn.execute(text("UPDATE person SET updated_at = '0000-00-00 00:00:00' WHERE id = 4"))
    engine.dispose()
    scene = make_scene(world, tmp_path, source_url=source_url, target_url=target_url)
    try:
        alert = _the_alert(world, scene, "provider")
        assert alert["kind"] == "send_failed"
        assert "updated_at" in alert["message"]
        assert "id=4" in alert["message"]
        assert "0000-00-00 00:00:00" in alert["message"]
        # The refused batch was not packaged: no sequence number was used.
        provider = scene.nodes["provider"]
        _, last_seq, _ = provider.store.state(scene.provider_task["id"])
        assert last_seq == 0
    finally:
        scene.close()


def test_describe_gives_the_kinds_of_mysql_columns(mariadb: MariaDBServer) -> None:
    url = mariadb.create_database(f"describe_{next(_names)}")
    _create_source(url, 1)
    engine = make_engine(url)
    described = describe(engine)["person"]
    engine.dispose()
    kinds = {c["name"]: c["kind"] for c in described["columns"]}
    assert kinds == {
        "id": "int",
        "amount": "decimal",
        "ratio": "float",  # DOUBLE, though SQLAlchemy reflects it as returning Decimal
        "birth": "date",
        "updated_at": "datetime",
        "note": "str",
        "photo": "bytes",
    }
    assert described["key"] == ["id"]


def test_a_mariadb_url_is_read_and_written_as_mysql(mariadb: MariaDBServer) -> None:
    """``mariadb+pymysql://`` names the dialect "mariadb": the MySQL paths still apply."""
    url = mariadb.create_database(f"family_{next(_names)}").replace("mysql+", "mariadb+")
    _create_source(url, 2)
    engine = make_engine(url)
    try:
        assert engine.dialect.name == "mariadb"
        with engine.begin() as conn:
            conn.execute(text("SET SESSION sql_mode = ''"))
            conn.execute(text("UPDATE person SET birth = '0000-00-00' WHERE id = 2"))
        reader = SourceReader(engine, {"table": "person", "key": ["id"], "mode": "snapshot"})
        with pytest.raises(ZeroDateError):
            next(reader.batches(None, 100))
        writer = TargetWriter(engine, 1, {"table": "copy"}, ["id"])
        for seq, name in [(1, "甲"), (2, "乙")]:
            writer.apply(seq, decode_columns(encode_rows(["id", "xm"], ["U"], [(1, name)])))
        with engine.connect() as conn:
            assert conn.execute(text("SELECT id, xm FROM copy")).all() == [(1, "乙")]
        assert isinstance(open_change_log(engine, "person", ["id"], "family"), MySQLChangeLog)
    finally:
        engine.dispose()


def test_chinese_text_in_a_gbk_table_is_read_as_unicode(mariadb: MariaDBServer) -> None:
    """Older department systems keep GBK tables: the node's utf8mb4 connection has the
    server convert them, and the text arrives as the characters the table holds (a value
    GBK cannot hold never reaches the table, so none can be lost on the way out)."""
    url = mariadb.create_database(f"gbk_{next(_names)}")
    engine = make_engine(url)
    names = ["张三", "欧阳娜娜", "龘", "〇·—", None]
    try:
        with engine.begin() as conn:
            conn.execute(
                text("CREATE TABLE 人员 (id INT PRIMARY KEY, 姓名 VARCHAR(50)) CHARACTER SET gbk")
            )
            conn.execute(
                text("INSERT INTO 人员 VALUES (:i, :n)"),
                [{"i": i, "n": n} for i, n in enumerate(names)],
            )
            charset = conn.execute(
                text(
                    "SELECT character_set_name FROM information_schema.columns "
                    "WHERE table_name = '人员' AND column_name = '姓名'"
                )
            ).scalar_one()
        assert charset == "gbk"
        reader = SourceReader(engine, {"table": "人员", "key": ["id"], "mode": "snapshot"})
        rows, _ = next(reader.batches(None, 100))
        assert [r[1] for r in rows] == names
    finally:
        engine.dispose()


@pytest.mark.parametrize("positional", [True, False])
def test_a_key_scan_streams_every_key_in_scope_once(
    mariadb: MariaDBServer, positional: bool
) -> None:
    """Keys read from PyMySQL's unbuffered cursor, with the node's positional parameters
    or SQLAlchemy's named ones, a bound row filter (a LIKE prefix) and batch edges."""
    url = mariadb.create_database(f"scan_{next(_names)}")
    _create_source(url, 250)
    engine = make_engine(url) if positional else create_engine(url, poolclass=NullPool)
    assert engine.dialect.positional is positional
    try:
        reader = SourceReader(
            engine,
            {
                "table": "person",
                "key": ["id"],
                "mode": "snapshot",
                "row_filter": [{"column": "id", "op": "prefix", "value": "1"}],
            },
        )
        batches = list(reader.live_key_batches(size=40))
        keys = sorted(row[0] for batch in batches for row in batch)
        assert keys == [i for i in range(1, 251) if str(i).startswith("1")]
        assert max(len(b) for b in batches) == 40
    finally:
        engine.dispose()


def test_a_target_in_lenient_mode_refuses_what_its_columns_cannot_hold(
    mariadb: MariaDBServer,
) -> None:
    """A server whose sessions start without strict mode (``sql_mode = ''`` here, as older
    installations have it) would store 王? for 王𠀀 in a GBK table, cut a name to the
    column's length and clip a number to its range. The node's target sessions are strict:
    the package is refused whole, with a message naming the column and not the value."""
    lenient = "&init_command=SET%20SESSION%20sql_mode%3D%27%27"
    url = mariadb.create_database(f"lenient_{next(_names)}") + lenient
    engine = target_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(
                text(
                    "CREATE TABLE copy (id INT PRIMARY KEY, xm VARCHAR(5), n DECIMAL(4, 1)) "
                    "CHARACTER SET gbk"
                )
            )
        writer = TargetWriter(engine, 1, {"table": "copy"}, ["id"])
        columns = ["id", "xm", "n"]
        first = [(1, "张三", Decimal("1.5"))]
        writer.apply(1, decode_columns(encode_rows(columns, ["I"], first)))
        refused = {  # name: error code, the message's words, the column named
            "王𠀀": ("1366", "字符集", "xm"),
            "一二三四五六七": ("1406", "长度", "xm"),
            "李四": ("1264", "范围", "n"),
        }
        for name, (code, words, column) in refused.items():
            number = 123456 if code == "1264" else 2
            package = encode_rows(columns, ["I"], [(2, name, number)])
            with pytest.raises(TargetRefused) as caught:
                writer.apply(2, decode_columns(package))
            message = str(caught.value)
            assert message.startswith("目标库拒收第 2 号包")
            assert words in message
            assert f"{code} " in message
            assert re.search(rf"column \S*{column}\W", message)
            assert "\\xF0" not in message
            assert name not in message
            assert "123456" not in message
        with engine.connect() as conn:
            assert "STRICT_ALL_TABLES" in conn.execute(text("SELECT @@SESSION.sql_mode")).scalar()
            assert conn.execute(text("SELECT id, xm, n FROM copy")).all() == first
        assert writer.applied_seq() == 1
    finally:
        engine.dispose()


@pytest.mark.parametrize("hub", ["sqlite"], indirect=True)
def test_a_refused_package_is_alerted_and_arrives_once_the_table_can_hold_it(
    world: World, tmp_path: Path, mariadb: MariaDBServer
) -> None:
    """The department's own target table is GBK, on a server in lenient mode: the rows'
    rare characters (𠀀) are refused rather than stored as '?', the hub is told in
    Chinese without the data, and once the DBA converts the table the package arrives."""
    n = next(_names)
    source_url = mariadb.create_database(f"src_{n}")
    lenient = "&init_command=SET%20SESSION%20sql_mode%3D%27%27"
    target_url = mariadb.create_database(f"dst_{n}") + lenient
    _create_source(source_url, 5)
    target = make_engine(target_url)
    with target.begin() as conn:
        conn.execute(
            text(
                "CREATE TABLE person_copy (id INT PRIMARY KEY, amount DECIMAL(18,4), "
                "ratio DOUBLE, birth DATE, updated_at DATETIME(6), note LONGTEXT, "
                "photo MEDIUMBLOB) CHARACTER SET gbk"
            )
        )
    scene = make_scene(world, tmp_path, source_url=source_url, target_url=target_url)
    try:
        alert = _the_alert(world, scene, "subscriber")
        assert alert["kind"] == "database_error"
        assert "目标库拒收第 1 号包: 值不合目标列的类型或字符集" in alert["message"]
        assert "note" in alert["message"]
        assert "张三" not in alert["message"]
        assert "\\xF0" not in alert["message"]
        with target.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM person_copy")).scalar() == 0

        with target.begin() as conn:
            conn.execute(text("ALTER TABLE person_copy CONVERT TO CHARACTER SET utf8mb4"))
        scene.run_until(lambda: _rows(target_url, "person_copy") == _rows(source_url, "person"))
        assert _rows(target_url, "person_copy")[0][5] == "张三1·𠀀𝄞 «»'\"\\%_"
    finally:
        scene.close()
        target.dispose()
