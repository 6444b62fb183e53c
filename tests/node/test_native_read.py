"""The provider's native read (connectorx straight into Arrow) gives the very packages
the Python path gives, on a real MariaDB and a real PostgreSQL; it is taken only where
it can, and gives the source back to the Python path when a result surprises it."""

from __future__ import annotations

import datetime as dt
import itertools
import os
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.exc import DataError
from sqlalchemy.pool import NullPool

from govshare.exchange.package import decode_rows, encode_rows
from govshare.node import native
from govshare.node import source as source_module
from govshare.node import target as target_module
from govshare.node.agent import NodeAgent, TaskRuntime
from govshare.node.config import Database, NodeConfig
from govshare.node.source import SourceReader, ZeroDateError, keyset_checksum, make_engine
from govshare.node.target import TargetWriter, target_engine
from tests.mariadb import MariaDBServer
from tests.node.native_pages import pages_read
from tests.pg import PostgresServer, free_port

pytestmark = [
    # connectorx comes with the dev group, so CI has it and never skips.
    pytest.mark.skipif(
        not native.available() and not os.environ.get("CI"), reason="connectorx not installed"
    ),
    pytest.mark.mariadb,
    pytest.mark.xdist_group("mariadb"),
]

_names = itertools.count(1)

TRICKY = ["张三·𠀀𝄞", 'O\'Brien "引号" \\ 反斜杠', "", "%s %(x)s _%", "行\n回车\r\tZ\x1a", None]

# Per server: the column types of the table below, and the URL of a fresh database.
DDL = {
    "mariadb": "id BIGINT PRIMARY KEY, version INT NOT NULL, name VARCHAR(60), note LONGTEXT, "
    "score DOUBLE, code CHAR(3), small SMALLINT, flag TINYINT(1)",
    "postgresql": "id BIGINT PRIMARY KEY, version INT NOT NULL, name VARCHAR(60), note TEXT, "
    "score DOUBLE PRECISION, code CHAR(3), small SMALLINT, flag BOOLEAN",
}


def _row(i: int, server: str) -> tuple[Any, ...]:
    flag = None if i % 5 == 0 else i % 2 == 0
    return (
        i * 7,  # keys with gaps
        i % 40,  # versions repeat: the cursor is (version, id)
        TRICKY[i % len(TRICKY)],
        None if i % 9 == 0 else f"第{i}条·{TRICKY[i % 5]}" * (1 + i % 3),
        None if i % 11 == 0 else [0.1, -0.0, 1e300, 5e-324, 123456789.123456789][i % 5] * i,
        None if i % 4 == 0 else "ab",
        (-1) ** i * (i % 32767),
        flag if server == "postgresql" or flag is None else int(flag),
    )


@pytest.fixture(params=["mariadb", "postgresql"])
def source(request: pytest.FixtureRequest) -> tuple[str, str]:
    """(server, URL) of a fresh database on a real server of each kind."""
    server: MariaDBServer | PostgresServer = request.getfixturevalue(
        "mariadb" if request.param == "mariadb" else "postgres"
    )
    return request.param, server.create_database(f"native_{next(_names)}")


def _create(url: str, server: str, rows: int, ddl: str | None = None) -> None:
    engine = create_engine(url, poolclass=NullPool)
    with engine.begin() as conn:
        conn.execute(text(f"CREATE TABLE person ({ddl or DDL[server]})"))
        if rows:
            marks = ", ".join(f":c{i}" for i in range(8))
            conn.execute(
                text(f"INSERT INTO person VALUES ({marks})"),
                [{f"c{i}": v for i, v in enumerate(_row(n, server))} for n in range(1, rows + 1)],
            )
    engine.dispose()


CONFIG = {"table": "person", "key": ["id"], "mode": "incremental", "cursor_column": "version"}


def _packages(reader: SourceReader, batch_rows: int) -> list[tuple[pa.Table, list[Any]]]:
    """Every batch as the node would package it (decoded again), with its next cursor."""
    out, cursor = [], None
    while (found := reader.next_batch(cursor, batch_rows, columnar=True)) is not None:
        rows, cursor = found
        out.append((decode_rows(encode_rows(reader.columns, ["I"] * len(rows), rows)), cursor))
        if len(rows) < batch_rows:
            break
    return out


def test_the_native_read_packages_what_the_python_path_packages(source: tuple[str, str]) -> None:
    server, url = source
    _create(url, server, 2500)
    engine = make_engine(url)
    try:
        fast = SourceReader(engine, CONFIG)
        slow = SourceReader(engine, CONFIG, fast_read=False)
        assert fast.native is not None
        assert slow.native is None
        native_packages = _packages(fast, 400)
        python_packages = _packages(slow, 400)
        assert fast.native.gave_up is None  # every page came through connectorx
        assert len(native_packages) == len(python_packages) == 7
        for (got, got_cursor), (want, want_cursor) in zip(
            native_packages, python_packages, strict=True
        ):
            assert got.schema == want.schema
            assert got.to_pylist() == want.to_pylist()
            assert got_cursor == want_cursor
        keys = [k for table, _ in native_packages for k in table.column("id").to_pylist()]
        assert sorted(keys) == [i * 7 for i in range(1, 2501)]  # none lost or doubled
        first = native_packages[0][0].to_pylist()
        assert {r["name"] for r in first} >= set(TRICKY)
    finally:
        engine.dispose()


@pytest.mark.parametrize("key", [["id"], ["small", "id"]])
def test_a_native_key_scan_gives_the_keys_the_python_path_gives(
    source: tuple[str, str], key: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The deletion check's and the reconciliation's scan of every key, a page at a time
    through connectorx: the same key strings (negative numbers, two columns joined), each
    key once across the pages' edges."""
    server, url = source
    _create(url, server, 2500)
    monkeypatch.setattr(source_module, "KEY_PAGE_ROWS", 300)
    engine = make_engine(url)
    try:
        fast = SourceReader(engine, {**CONFIG, "key": key})
        slow = SourceReader(engine, {**CONFIG, "key": key}, fast_read=False)
        assert fast.native is not None
        pages = pages_read(fast.native, monkeypatch)
        got = list(fast.live_key_strings())
        assert pages == [True] * 9  # 2,500 keys in pages of 300, each read natively
        want = list(slow.live_key_strings())
        assert sorted(got) == sorted(want)
        assert len(set(got)) == 2500
        assert "\x1f".join(("-1", "7")) in got if key != ["id"] else "7" in got
        assert fast.checksum() == slow.checksum()
    finally:
        engine.dispose()


def test_a_subscribers_checksum_reads_its_keys_natively(
    source: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reconciliation's (核对) checksum of a target table on a server database: its
    keys read a page at a time through connectorx, every page natively, giving the
    figure the Python path gives (negative keys, gaps, each key once across pages)."""
    _, url = source
    monkeypatch.setattr(target_module, "KEY_PAGE_ROWS", 300)
    keys = [i * 7 - 700 for i in range(1, 2501)]
    engine = target_engine(url)
    try:
        fast = TargetWriter(engine, 1, {"table": "copy"}, ["id"], fast_read=True)
        package = pa.table(
            {"id": keys, "name": [f"第{k}号" for k in keys], "__op": ["I"] * len(keys)}
        )
        assert fast.apply(1, package) is not None
        want = keyset_checksum([[(k,) for k in keys]], 1)
        assert fast.checksum() == want
        assert fast.native is not None
        pages = pages_read(fast.native, monkeypatch)
        assert fast.checksum() == want
        assert pages == [True] * 9  # 2,500 keys in pages of 300
        slow = TargetWriter(engine, 1, {"table": "copy"}, ["id"])
        assert slow.checksum() == want
        assert slow.native is None
    finally:
        engine.dispose()


def test_a_checksum_over_a_table_not_keyed_by_its_primary_key_stays_on_the_python_path(
    source: tuple[str, str],
) -> None:
    """A department's own target table whose key has no index of its own (here: no
    primary key at all) would be sorted once per page: its keys are streamed the Python
    way, with the same figure."""
    _, url = source
    engine = target_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE own (id BIGINT, name VARCHAR(20))"))
            conn.execute(text("INSERT INTO own VALUES (3, 'a'), (-1, 'b'), (8, NULL)"))
        writer = TargetWriter(engine, 1, {"table": "own"}, ["id"], fast_read=True)
        assert writer.checksum() == keyset_checksum([[(3,), (-1,), (8,)]], 1)
        assert writer.native is None
    finally:
        engine.dispose()


GRANTED = {
    # A task made for a grant: two of the codes, by equality and by a list, and masks.
    "row_filter": [
        {"column": "code", "op": "eq", "value": "ab"},
        {"column": "version", "op": "in", "value": ["1", "2", "3", "8", "13", "21", "34"]},
    ],
    "masking": {"name": "name", "note": "hide", "score": "address"},
}


def _granted_readers(
    engine: Engine, grant: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> tuple[SourceReader, SourceReader, list[bool]]:
    """Readers of a task made for ``grant``, native and the Python way, and the list of
    the native one's pages (True: read natively)."""
    fast = SourceReader(engine, {**CONFIG, **grant})
    slow = SourceReader(engine, {**CONFIG, **grant}, fast_read=False)
    assert fast.native is not None
    return fast, slow, pages_read(fast.native, monkeypatch)


def test_a_grants_rows_and_masks_come_natively_as_the_python_path_gives_them(
    source: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    server, url = source
    _create(url, server, 2500)
    monkeypatch.setattr(source_module, "KEY_PAGE_ROWS", 100)
    engine = make_engine(url)
    try:
        fast, slow, pages = _granted_readers(engine, GRANTED, monkeypatch)
        native_packages = _packages(fast, 50)
        python_packages = _packages(slow, 50)
        assert pages
        assert all(pages)
        assert len(native_packages) == len(python_packages) > 2
        for (got, got_cursor), (want, want_cursor) in zip(
            native_packages, python_packages, strict=True
        ):
            assert got.schema == want.schema
            assert got.to_pylist() == want.to_pylist()
            assert got_cursor == want_cursor
        rows = [r for table, _ in native_packages for r in table.to_pylist()]
        assert {r["code"].rstrip() for r in rows} == {"ab"}  # CHAR(3) pads on PostgreSQL
        assert {r["version"] for r in rows} <= {1, 2, 3, 8, 13, 21, 34}
        names = [r["name"] for r in rows if r["name"]]
        assert names
        assert "张三·𠀀𝄞" not in names  # masked, not as stored
        assert all(r["note"] is None or set(r["note"]) == {"*"} for r in rows)
        # The key scan sees the same rows: those leaving the grant's scope are deleted.
        assert sorted(fast.live_key_strings()) == sorted(slow.live_key_strings())
        assert sorted(fast.live_key_strings()) == sorted(str(r["id"]) for r in rows)
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    ("prefix", "count"),
    [
        ("第1", 100),  # 第1条…, 第10条…, 第100条… (not every ninth: no note), 第1_条
        ("第1_", 1),  # "_" is the character itself, not LIKE's any one character
    ],
)
def test_a_grants_prefix_filter_comes_natively_as_the_python_path_gives_it(
    source: tuple[str, str], prefix: str, count: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A prefix filter (a district's division code, say) is read natively: its ``LIKE``
    pattern's ``%`` came out doubled for the server's driver, which sent every page of
    such a grant's task the Python way."""
    server, url = source
    _create(url, server, 500)
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO person (id, version, note) VALUES (9999, 1, '第1_条')"))
    scoped = {"row_filter": [{"column": "note", "op": "prefix", "value": prefix}]}
    try:
        fast, slow, pages = _granted_readers(engine, scoped, monkeypatch)
        native_packages = _packages(fast, 50)
        python_packages = _packages(slow, 50)
        assert pages
        assert all(pages)  # every page came through connectorx
        assert [t.to_pylist() for t, _ in native_packages] == [
            t.to_pylist() for t, _ in python_packages
        ]
        notes = [r["note"] for t, _ in native_packages for r in t.to_pylist()]
        assert len(notes) == count
        assert all(n.startswith(prefix) for n in notes)
        assert sorted(fast.live_key_strings()) == sorted(slow.live_key_strings())
        assert all(pages)  # the key scan's pages too
    finally:
        engine.dispose()


def test_a_grants_list_filter_reaches_the_python_paths_key_scan(source: tuple[str, str]) -> None:
    """The key scan of a task made for a grant with an ``in`` row filter, the Python
    way (psycopg's server-side cursor, PyMySQL's unbuffered one): it failed with the
    list left as SQLAlchemy's placeholder (``__[POSTCOMPILE_…]``), so such a task could
    neither find deletions nor answer a reconciliation."""
    server, url = source
    _create(url, server, 300)
    engine = make_engine(url)
    try:
        slow = SourceReader(engine, {**CONFIG, **GRANTED}, fast_read=False)
        keys = sorted(slow.live_key_strings())
        expected = sorted(
            str(i * 7)
            for i in range(1, 301)
            if i % 4 and i % 40 in {1, 2, 3, 8, 13, 21, 34}  # code 'ab', listed versions
        )
        assert keys == expected
        assert slow.checksum()[0] == len(expected)
    finally:
        engine.dispose()


def _reader(url: str, **config: Any) -> SourceReader:
    return SourceReader(make_engine(url), {**CONFIG, **config})


def test_what_the_native_read_is_not_taken_for(mariadb: MariaDBServer) -> None:
    url = mariadb.create_database(f"native_{next(_names)}")
    _create(url, "mariadb", 10)
    assert _reader(url).native is not None
    # A grant's row filter whose values are more than letters, digits and a few marks:
    # the values would go into the SQL as literals.
    for value in ("a'b", "a\\b", 'a"b', "a%", ["ab", "c;d"]):
        scoped = {"row_filter": [{"column": "code", "op": "in", "value": value}]}
        assert _reader(url, **scoped).native is None, value
    # A query: its columns' types are not known before it runs.
    query = {"table": None, "query": "SELECT id, version, name FROM person"}
    assert _reader(url, **query).native is None
    # A text cursor column would go into the SQL as a literal.
    assert _reader(url, cursor_column="name").native is None
    # A URL option connectorx would not be told (here: the server's socket file).
    assert native.native_url(make_engine(f"{url}&unix_socket=/tmp/none.sock")) is None
    assert native.native_url(make_engine(url)) is not None
    # The source's own switch in node.toml.
    assert not SourceReader(make_engine(url), CONFIG, fast_read=False).native
    # Times of day (MySQL's may be negative or past 24 hours); TIMESTAMP, which is
    # shown in each session's own zone.
    for ddl in ("at TIME", "stamped TIMESTAMP NULL"):
        other = mariadb.create_database(f"native_{next(_names)}")
        _create(other, "mariadb", 0, ddl=f"id INT PRIMARY KEY, version INT, {ddl}")
        assert _reader(other).native is None, ddl


def test_a_type_only_the_result_shows_sends_the_source_back_to_the_python_path(
    mariadb: MariaDBServer,
) -> None:
    """MySQL's BIGINT UNSIGNED reflects as an integer but comes as uint64, which the
    Python path's packages never hold: the batch is read again by the Python path, and
    so is every later one."""
    url = mariadb.create_database(f"native_{next(_names)}")
    ddl = "id INT PRIMARY KEY, version INT NOT NULL, big BIGINT UNSIGNED"
    _create(url, "mariadb", 0, ddl=ddl)
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO person VALUES (1, 1, 18446744073709551615), (2, 1, 0)"))
        reader = SourceReader(engine, CONFIG)
        assert reader.native is not None
        found = reader.next_batch(None, 10, columnar=True)
        assert found is not None
        rows, cursor = found
        assert rows == [(1, 1, 18446744073709551615), (2, 1, 0)]
        assert cursor == [1, 2]
        assert reader.native.gave_up == "列 big 读出的类型为 uint64, 与逐行读取不同"
        assert reader.native.read(reader.page(None, 10), None) is None
    finally:
        engine.dispose()


def test_a_password_with_reserved_characters_reaches_connectorx(
    mariadb: MariaDBServer,
) -> None:
    url = mariadb.create_database(f"native_{next(_names)}")
    _create(url, "mariadb", 3)
    password = "p@ss:w/rd%?#"
    with mariadb.root() as conn, conn.cursor() as cur:
        cur.execute("CREATE USER IF NOT EXISTS 'odd'@'127.0.0.1' IDENTIFIED BY %s", (password,))
        database = url.rsplit("/", 1)[1].split("?")[0]
        cur.execute(f"GRANT SELECT ON `{database}`.* TO 'odd'@'127.0.0.1'")
    engine = make_engine(url)
    odd = engine.url.set(username="odd", password=password)
    odd_engine = make_engine(odd.render_as_string(hide_password=False))
    try:
        reader = SourceReader(odd_engine, CONFIG)
        found = reader.next_batch(None, 10, columnar=True)
        assert reader.native is not None
        assert reader.native.gave_up is None
        assert found is not None
        assert isinstance(found[0], pa.Table)
        assert found[0].column("id").to_pylist() == [7, 14, 21]
    finally:
        odd_engine.dispose()
        engine.dispose()


@pytest.mark.parametrize("fast_read", [True, False])
def test_the_node_toml_switch_decides_for_the_agent_s_reader(
    mariadb: MariaDBServer, tmp_path: Path, fast_read: bool
) -> None:
    url = mariadb.create_database(f"native_{next(_names)}")
    _create(url, "mariadb", 3)
    config = NodeConfig(
        hub_url="http://127.0.0.1:9",
        node_id=1,
        store=tmp_path / "store",
        sources={"biz": Database(url=url, fast_read=fast_read)},
        targets={"out": Database(url=url, fast_read=fast_read)},
    )
    agent = NodeAgent(config)
    try:
        spec = {"id": 1, "config": {**CONFIG, "source": "biz"}, "config_version": 1}
        runtime = TaskRuntime(spec={**spec, "kind": "provider", "state": "running"})
        reader = agent._reader(runtime)
        assert (reader.native is not None) is fast_read
        subscriber = TaskRuntime(
            spec={
                "id": 2,
                "kind": "subscriber",
                "config": {"table": "copy", "target": "out"},
                "config_version": 1,
                "source_key": ["id"],
            }
        )
        assert agent._writer(subscriber).fast_read is fast_read
        agent.tasks[1] = runtime
        told = agent.report()["tasks"]["1"]
        assert told["read_path"] == ("native" if fast_read else "driver")
        if fast_read:  # what the task page shows once the native read has given up
            assert reader.native is not None
            reader.native.gave_up = "列 big 读出的类型为 uint64, 与逐行读取不同"
            told = agent.report()["tasks"]["1"]
            assert told["read_path"] == "driver"
            assert told["read_path_note"] == "列 big 读出的类型为 uint64, 与逐行读取不同"
    finally:
        agent.close()


def test_an_unreachable_server_is_waited_for_once_then_read_by_the_python_path(
    mariadb: MariaDBServer,
) -> None:
    """connectorx's pool retries a refused connection for about 30 s: waited once, not at
    every page."""
    url = mariadb.create_database(f"native_{next(_names)}")
    _create(url, "mariadb", 3)
    engine = make_engine(url)
    try:
        reader = SourceReader(engine, CONFIG)
        assert reader.native is not None
        dead = engine.url.set(port=free_port(), password="s3cret-pw")
        reader.native.url = dead.set(drivername="mysql", query={}).render_as_string(
            hide_password=False
        )
        reader.native.engine = make_engine(dead.render_as_string(hide_password=False))
        found = reader.next_batch(None, 10, columnar=True)
        assert found is not None  # the Python path read the page meanwhile
        assert found[0] == [tuple(r) for r in found[0]]  # rows, not an Arrow table
        assert reader.native.gave_up is not None
        assert reader.native.gave_up.startswith("connectorx 出错: RuntimeError")
        assert reader.native.read(reader.page(None, 10), None) is None  # no second wait
    finally:
        engine.dispose()


def test_a_reason_naming_the_connection_string_is_told_without_its_password(
    mariadb: MariaDBServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No connectorx error seen so far repeats the URL; should one, the reason logged and
    shown on the task page still carries no password."""
    import connectorx

    url = mariadb.create_database(f"native_{next(_names)}")
    _create(url, "mariadb", 3)
    engine = make_engine(url)
    try:
        reader = SourceReader(engine, CONFIG)
        assert reader.native is not None

        def refuse(conn: str, *_: Any, **__: Any) -> None:
            raise RuntimeError(f"cannot use {conn}")

        monkeypatch.setattr(connectorx, "read_sql", refuse)
        assert reader.native.read(reader.page(None, 10), None) is None
        password = str(engine.url.password)
        assert reader.native.gave_up is not None
        assert password not in reader.native.gave_up
        assert "cannot use mysql://govshare:***@127.0.0.1" in reader.native.gave_up
    finally:
        engine.dispose()


DATED = {
    "postgresql": "id BIGINT PRIMARY KEY, version INT NOT NULL, born DATE, seen TIMESTAMP(6)",
    "mariadb": "id BIGINT PRIMARY KEY, version INT NOT NULL, born DATE, seen DATETIME(6)",
}


def test_dates_and_timestamps_come_natively_as_the_python_path_gives_them(
    source: tuple[str, str],
) -> None:
    server, url = source
    _create(url, server, 0, ddl=DATED[server])
    earliest = "0001-01-01" if server == "postgresql" else "1000-01-01"
    values = [
        (1, 1, "2024-02-29", "2024-02-29 23:59:59.999999"),
        (2, 1, earliest, f"{earliest} 00:00:00"),
        (3, 2, "9999-12-31", "9999-12-31 23:59:59.999999"),
        (4, 2, None, None),
        (5, 3, "1970-01-01", "1969-12-31 23:59:59.000001"),
    ]
    native_packages, python_packages = _both_ways(url, values)
    assert [(t.schema, t.to_pylist(), c) for t, c in native_packages] == [
        (t.schema, t.to_pylist(), c) for t, c in python_packages
    ]
    first = native_packages[0][0]
    assert first.schema.field("born").type == pa.date32()
    assert first.column("seen")[0].as_py() == dt.datetime(2024, 2, 29, 23, 59, 59, 999999)


def _both_ways(
    url: str, values: list[tuple[Any, ...]]
) -> tuple[list[tuple[pa.Table, list[Any]]], list[tuple[pa.Table, list[Any]]]]:
    """``values`` put into the table, then its packages of 2 rows read natively (every
    page: the reader never gives up) and by the Python path."""
    engine = make_engine(url)
    try:
        marks = ", ".join(f":c{i}" for i in range(len(values[0])))
        with engine.begin() as conn:
            conn.execute(
                text(f"INSERT INTO person VALUES ({marks})"),
                [{f"c{i}": v for i, v in enumerate(row)} for row in values],
            )
        fast = SourceReader(engine, CONFIG)
        slow = SourceReader(engine, CONFIG, fast_read=False)
        assert fast.native is not None
        both = _packages(fast, 2), _packages(slow, 2)
        assert fast.native.gave_up is None
        return both
    finally:
        engine.dispose()


@pytest.mark.parametrize("zero", ["0000-00-00", "2024-02-00"])
def test_a_mysql_zero_date_is_refused_by_name_as_before(mariadb: MariaDBServer, zero: str) -> None:
    """connectorx panics (in Rust) on a date with no calendar date behind it, which
    reaches Python as a BaseException: the reader gives up instead of crashing, and the
    Python path refuses the batch naming the table, column and row."""
    url = mariadb.create_database(f"native_{next(_names)}")
    _create(url, "mariadb", 0, ddl=DATED["mariadb"])
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(text("SET SESSION sql_mode = ''"))
            conn.execute(
                text("INSERT INTO person VALUES (1, 1, '2024-01-01', NULL), (2, 1, :d, NULL)"),
                {"d": zero},
            )
        reader = SourceReader(engine, CONFIG)
        assert reader.native is not None
        with pytest.raises(ZeroDateError, match="born") as refused:
            reader.next_batch(None, 10, columnar=True)
        assert "id=2" in str(refused.value)
        assert (reader.native.gave_up or "").startswith("connectorx 出错: PanicException")
    finally:
        engine.dispose()


@pytest.mark.parametrize("value", ["infinity", "-infinity", "0044-03-15 BC", "12000-01-01"])
def test_a_date_python_cannot_hold_is_refused_by_name_as_before(
    postgres: PostgresServer, value: str
) -> None:
    """connectorx reads PostgreSQL's infinity and dates outside years 1-9999, which no
    Python value holds: the source goes back to the Python path, whose refusal names
    the value, as it did before dates were read natively."""
    url = postgres.create_database(f"native_{next(_names)}")
    _create(url, "postgresql", 0, ddl=DATED["postgresql"])
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(
                text("INSERT INTO person VALUES (1, 1, '2024-01-01', NULL), (2, 1, :d, NULL)"),
                {"d": value},
            )
        reader = SourceReader(engine, CONFIG)
        assert reader.native is not None
        # A database error of the task, as the agent files it (before: a bare driver
        # error that escaped the agent's handling of a task's failures).
        with pytest.raises(DataError, match=r"date too (large|small)"):
            reader.next_batch(None, 10, columnar=True)
        assert reader.native.gave_up == "列 born 有超出 0001-9999 年的值"
    finally:
        engine.dispose()


def test_what_stays_on_the_python_path_on_postgresql(postgres: PostgresServer) -> None:
    """Timestamps with a zone (the Python path gives the session's zone), times of day
    (PostgreSQL's 24:00) and numerics without a declared scale are read by the Python
    path."""
    for ddl in ("seen TIMESTAMPTZ", "at TIME", "amount NUMERIC"):
        url = postgres.create_database(f"native_{next(_names)}")
        _create(url, "postgresql", 0, ddl=f"id BIGINT PRIMARY KEY, version INT NOT NULL, {ddl}")
        engine = make_engine(url)
        try:
            assert SourceReader(engine, CONFIG).native is None, ddl
        finally:
            engine.dispose()


def test_decimals_come_natively_with_their_values_and_scale(source: tuple[str, str]) -> None:
    server, url = source
    ddl = "id BIGINT PRIMARY KEY, version INT NOT NULL, amount DECIMAL(12, 2), rate DECIMAL(5, 5)"
    _create(url, server, 0, ddl=ddl)
    values = [
        (1, 1, "-1234567890.25", "0.12345"),
        (2, 1, "0", "0"),
        (3, 2, None, None),
        (4, 2, "9999999999.99", "-0.99999"),
        (5, 3, "0.01", "0.00001"),
    ]
    native_packages, python_packages = _both_ways(url, values)
    got = [(t.to_pylist(), c) for t, c in native_packages]
    assert got == [(t.to_pylist(), c) for t, c in python_packages]
    amounts = [row["amount"] for table, _ in got for row in table]
    assert [str(a) for a in amounts] == [
        "-1234567890.25", "0.00", "None", "9999999999.99", "0.01"
    ]  # fmt: skip
    # The declared type (the Python path infers its precision from each batch).
    assert native_packages[0][0].schema.field("amount").type == pa.decimal128(12, 2)
    for (table, _), (want, _) in zip(native_packages, python_packages, strict=True):
        for name in ("amount", "rate"):
            if want.schema.field(name).type != pa.null():
                assert table.schema.field(name).type.scale == want.schema.field(name).type.scale


@pytest.mark.parametrize(
    "ddl",
    [
        "d DECIMAL(20, 12)",  # connectorx keeps 10 places and would cut the rest off
        "d DECIMAL(38, 0)",  # more digits than connectorx's decimals hold
    ],
)
def test_decimals_connectorx_cannot_give_exactly_stay_on_the_python_path(
    source: tuple[str, str], ddl: str
) -> None:
    server, url = source
    _create(url, server, 0, ddl=f"id BIGINT PRIMARY KEY, version INT NOT NULL, {ddl}")
    engine = make_engine(url)
    try:
        assert SourceReader(engine, CONFIG).native is None
    finally:
        engine.dispose()
