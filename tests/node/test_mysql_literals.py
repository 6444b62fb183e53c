"""A MySQL/MariaDB subscriber writes a package's rows as statement text built in Arrow
(``mysql_literals``): the same text PyMySQL would send, and the same rows in the table."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pymysql.converters
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from govshare.exchange.package import decode_columns, encode_rows
from govshare.node import mysql_literals
from govshare.node.source import make_engine
from govshare.node.target import TargetWriter
from tests.mariadb import MariaDBServer

_names = itertools.count(1)

STRINGS = [
    "张三·𠀀𝄞😀",
    "O'Brien",
    'say "hi"',
    "C:\\temp\\new",
    "nul\0byte",
    "line\nbreak\rreturn",
    "ctrl-z\x1a",
    "%s %(name)s 100%",
    "",
    "\\'",
    None,
]
DOUBLES = [0.1, -0.0, 1e300, 5e-324, 123456789.12345679, -2.5e-10, 3.0, None]
INTEGERS = [0, -1, 2**63 - 1, -(2**63), 42, None]


def _escaped_by_pymysql(values: list[Any]) -> list[str]:
    """What PyMySQL's ``executemany`` writes for each value (its own escaping)."""
    return [pymysql.converters.escape_item(v, "utf8mb4") for v in values]


@pytest.mark.parametrize(
    "values",
    [STRINGS, INTEGERS, [True, False, None], [None, None]],
    ids=["text", "integers", "booleans", "nulls"],
)
def test_a_column_is_written_as_pymysql_writes_it(values: list[Any]) -> None:
    got = mysql_literals.literal_column(pa.array(values))
    assert got is not None
    want = _escaped_by_pymysql(values)
    if pa.array(values).type == pa.bool_():
        want = ["1", "0", "NULL"]  # PyMySQL: True → 1 (escape_bool), as MySQL stores it
    assert got.to_pylist() == want


def test_doubles_are_written_as_double_literals_that_read_back_the_same() -> None:
    got = mysql_literals.literal_column(pa.array(DOUBLES))
    assert got is not None
    texts = got.to_pylist()
    assert texts[-1] == "NULL"
    for value, literal in zip(DOUBLES[:-1], texts[:-1], strict=True):
        assert "e" in literal  # a double literal, not a DECIMAL one
        assert float(literal) == value
        assert str(float(literal)) == str(value)


def test_a_dictionary_column_is_escaped_once_per_distinct_value() -> None:
    values = ["O'Brien", None, "C:\\x", "O'Brien"] * 20
    encoded = pa.array(values).dictionary_encode()
    got = mysql_literals.literal_column(encoded)
    assert got is not None
    assert got.to_pylist() == _escaped_by_pymysql(values)


def test_what_is_left_to_the_driver() -> None:
    """Types the text is not built for here, and doubles MySQL cannot hold."""
    assert mysql_literals.literal_column(pa.array([b"\x00"])) is None
    assert mysql_literals.literal_column(pa.array([1.5], type=pa.float32())) is None
    assert mysql_literals.literal_column(pa.array([float("nan")])) is None
    assert mysql_literals.literal_column(pa.array([float("inf"), None])) is None
    dates = pa.array(["2024-01-01"]).cast(pa.date32())
    assert mysql_literals.literal_column(dates) is None


def test_statements_stay_under_their_size_and_keep_every_row_once() -> None:
    literals = [
        pa.array([str(i) for i in range(1000)]),
        pa.array(["'" + "x" * (i % 50) + "'" for i in range(1000)]),
    ]
    rows = mysql_literals.value_rows(literals)
    sql = list(mysql_literals.statements("INSERT INTO t VALUES ", rows, " ;", limit=2000))
    assert len(sql) > 10
    assert all(isinstance(s, bytes) and len(s) <= 2000 for s in sql)
    assert all(s.startswith(b"INSERT INTO t VALUES (") and s.endswith(b") ;") for s in sql)
    split = [s.decode()[len("INSERT INTO t VALUES (") : -3].split("),(") for s in sql]
    written = [row for rows_of_one in split for row in rows_of_one]
    assert written == [f"{i},'{'x' * (i % 50)}'" for i in range(1000)]  # each once, in order
    # As full as the limit allows: the next statement's first row would not have fitted.
    for statement, following in zip(sql, split[1:], strict=False):
        assert len(statement) + len(",(" + following[0] + ")") > 2000
    huge = mysql_literals.value_rows([pa.array(["y" * 5000, "1", "中文"])])
    alone = list(mysql_literals.statements("P ", huge, "", limit=2000))
    # A long row is a statement of its own; the text is UTF-8.
    assert alone == [b"P (" + b"y" * 5000 + b")", "P (1),(中文)".encode()]
    assert list(mysql_literals.statements("P ", huge.slice(1), "", limit=2000)) == [
        "P (1),(中文)".encode()
    ]


def _package(rows: list[tuple[Any, ...]], ops: str | None = None) -> pa.Table:
    columns = ["id", "name", "score", "n", "flag"]
    return decode_columns(encode_rows(columns, list(ops or "I" * len(rows)), rows))


def _table_rows(engine: Any, table: str) -> list[tuple[Any, ...]]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(f"SELECT * FROM {table} ORDER BY id"))]


def _rows() -> list[tuple[Any, ...]]:
    return [
        (
            i,
            STRINGS[i % len(STRINGS)],
            DOUBLES[i % len(DOUBLES)],
            INTEGERS[i % len(INTEGERS)],
            None if i % 3 == 0 else i % 2 == 0,
        )
        for i in range(1, 300)
    ]


@pytest.mark.mariadb
@pytest.mark.xdist_group("mariadb")
@pytest.mark.parametrize("sql_mode", ["", "NO_BACKSLASH_ESCAPES"])
def test_the_rows_arrive_exactly_whichever_way_the_server_reads_backslashes(
    mariadb: MariaDBServer, sql_mode: str
) -> None:
    """With ``NO_BACKSLASH_ESCAPES`` a backslash is an ordinary character and quotes are
    doubled: the text built here would be wrong, so the driver writes those rows."""
    url = mariadb.create_database(f"literal_{next(_names)}")
    with mariadb.root() as conn, conn.cursor() as cur:
        cur.execute("SET GLOBAL sql_mode = %s", (sql_mode,))
    engine = make_engine(url)
    try:
        writer = TargetWriter(engine, 1, {"table": "copy"}, ["id"])
        rows = _rows()
        assert writer.apply(1, _package(rows)) == {"inserted": 299, "updated": 0, "deleted": 0}
        assert writer.table is not None
        assert writer._literal_rows(writer.table, _package(rows)) is not None
        with engine.connect() as conn:
            escapes = mysql_literals.escapes_backslashes(conn.connection.driver_connection)
        assert escapes is (sql_mode == "")  # which way this run wrote its rows
        # Updates by key in a second package, one key twice (the last one stands).
        changed = [
            (5, "改过'\\", 0.5, 7, True),
            (6, None, None, None, None),
            (5, "再改", 1.0, 8, False),
        ]
        assert writer.apply(2, _package(changed, "UUU")) is not None
        want = {row[0]: row for row in rows}
        want[5], want[6] = changed[2], changed[1]
        got = _table_rows(engine, "copy")
        assert [tuple(r[:4]) for r in got] == [tuple(want[k][:4]) for k in sorted(want)]
        assert [None if r[4] is None else bool(r[4]) for r in got] == [
            want[k][4] for k in sorted(want)
        ]
    finally:
        with mariadb.root() as conn, conn.cursor() as cur:
            cur.execute("SET GLOBAL sql_mode = DEFAULT")
        engine.dispose()


@pytest.mark.mariadb
@pytest.mark.xdist_group("mariadb")
def test_packages_with_deletions_or_code_maps_take_the_driver_s_path(
    mariadb: MariaDBServer,
) -> None:
    url = mariadb.create_database(f"literal_{next(_names)}")
    engine = make_engine(url)
    try:
        coded = TargetWriter(
            engine, 1, {"table": "coded", "code_maps": {"name": {"a": "甲"}}}, ["id"]
        )
        table = coded._ensure_table(_package([(1, "a", 0.1, 1, True)]).schema)
        assert coded._literal_rows(table, _package([(1, "a", 0.1, 1, True)])) is None
        coded.apply(1, _package([(1, "a", 0.1, 1, True), (2, "b", 0.2, 2, False)]))
        assert [r[1] for r in _table_rows(engine, "coded")] == ["甲", "b"]
        plain = TargetWriter(engine, 2, {"table": "plain"}, ["id"])
        plain.apply(1, _package([(1, "a", 0.1, 1, True), (2, "b", 0.2, 2, False)]))
        assert plain.table is not None
        assert plain._literal_rows(plain.table, _package([(1, "x", 0.1, 1, True)])) is not None
        assert plain.apply(2, _package([(1, "a", 0.1, 1, True), (2, "b", 0.2, 2, False)], "DU"))
        assert [r[:2] for r in _table_rows(engine, "plain")] == [(2, "b")]
    finally:
        engine.dispose()


@pytest.mark.mariadb
@pytest.mark.xdist_group("mariadb")
def test_a_session_in_gbk_is_given_its_statements_as_text_it_encodes_itself(
    mariadb: MariaDBServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The statements are built as UTF-8 bytes; an engine whose sessions speak GBK (not
    one of ``make_engine``'s, which always ask for utf8mb4) gets them as text, which
    PyMySQL encodes in GBK (UTF-8 bytes would arrive garbled)."""
    url = mariadb.create_database(f"literal_{next(_names)}").replace("utf8mb4", "gbk")
    engine = create_engine(url, poolclass=NullPool, paramstyle="format")
    try:
        with engine.connect() as conn:
            assert not mysql_literals.speaks_utf8(conn.connection.driver_connection)
        built: list[bytes] = []
        statements = mysql_literals.statements

        def watched(*args: Any, **kwargs: Any) -> Iterator[bytes]:
            for sql in statements(*args, **kwargs):
                built.append(sql)
                yield sql

        monkeypatch.setattr(mysql_literals, "statements", watched)
        writer = TargetWriter(engine, 1, {"table": "copy"}, ["id"])
        rows = [(1, "张三", 0.5, 1, True), (2, "O'Brien\\ 李四", None, None, None)]
        assert writer.apply(1, _package(rows)) == {"inserted": 2, "updated": 0, "deleted": 0}
        assert writer.table is not None
        assert writer._literal_rows(writer.table, _package(rows)) is not None
        assert [r[:2] for r in _table_rows(engine, "copy")] == [(1, "张三"), (2, "O'Brien\\ 李四")]
        assert len(built) == 1  # the rows went as the statement built here
    finally:
        engine.dispose()
