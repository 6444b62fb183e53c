"""PostgreSQL log-based capture: the replication slot read by the node, against a real
server started with wal_level=logical."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text

from govshare.node.capture import CaptureError
from govshare.node.pglog import PostgresChangeLog, lsn_number, parse_tuple
from tests.pg import PostgresServer

_names = itertools.count()


def test_decoded_tuples_are_read_with_quotes_nulls_and_old_keys() -> None:
    old, new = parse_tuple(
        "id[integer]:7 \"名 称\"[text]:'O''Brien 说: \"你好\"' note[text]:null ok[boolean]:true"
    )
    assert old == {}
    assert new == {"id": "7", "名 称": 'O\'Brien 说: "你好"', "note": None, "ok": "true"}
    old, new = parse_tuple(
        "old-key: id[integer]:1 new-tuple: id[integer]:2 t[timestamp without time zone]:"
        "'2026-01-02 03:04:05'"
    )
    assert old == {"id": "1"}
    assert new == {"id": "2", "t": "2026-01-02 03:04:05"}
    assert parse_tuple("(no-tuple-data)") == ({}, {})


def test_log_positions_compare_as_numbers() -> None:
    assert lsn_number("0/16B3748") < lsn_number("0/16B3750") < lsn_number("1/0")
    assert lsn_number("A/0") == 10 << 32


@pytest.fixture
def business(postgres: PostgresServer) -> Iterator[Engine]:
    url = postgres.create_database(f"biz_log_{next(_names)}_{abs(hash(Path.cwd())) % 1000}")
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE person (id integer PRIMARY KEY, xm text, note text)"))
        conn.execute(text("CREATE TABLE other (id integer PRIMARY KEY)"))
        conn.execute(text("INSERT INTO person VALUES (1, '甲', NULL), (2, '乙', 'x')"))
    yield engine
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(
            text(
                "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                "WHERE database = current_database()"
            )
        )
    engine.dispose()


def _run(engine: Engine, *statements: str) -> None:
    with engine.begin() as conn:
        # The suite's server commits asynchronously; decoding reads only flushed log.
        conn.execute(text("SET LOCAL synchronous_commit = on"))
        for statement in statements:
            conn.execute(text(statement))


def test_changes_come_in_commit_order_with_deletes_and_key_changes(business: Engine) -> None:
    log = PostgresChangeLog(business, "person", ["id"], "govshare_test_order")
    log.check()
    start = log.start()
    _run(business, "INSERT INTO person VALUES (3, '丙', NULL)", "UPDATE person SET xm = '甲2'")
    _run(business, "DELETE FROM person WHERE id = 2", "INSERT INTO other VALUES (1)")
    _run(business, "UPDATE person SET id = 30 WHERE id = 3")
    with business.connect() as conn:  # rolled back: never in the log
        conn.execute(text("INSERT INTO person VALUES (99, '撤', NULL)"))
        conn.rollback()
    batch = log.read(start, 1000)
    assert batch.changes == [
        ("I", ("3",)),
        ("U", ("1",)),
        ("U", ("2",)),
        ("U", ("3",)),
        ("D", ("2",)),
        ("D", ("3",)),
        ("U", ("30",)),
    ]
    assert not batch.truncated
    assert not batch.more
    assert lsn_number(batch.position) > lsn_number(start)
    # Read from the position returned: only what was committed later.
    assert log.read(batch.position, 1000).changes == []
    _run(business, "UPDATE person SET note = 'n' WHERE id = 1")
    assert log.read(batch.position, 1000).changes == [("U", ("1",))]


def test_a_limit_ends_the_batch_at_a_transaction_boundary(business: Engine) -> None:
    log = PostgresChangeLog(business, "person", ["id"], "govshare_test_limit")
    start = log.start()
    for i in range(10, 16):
        _run(business, f"INSERT INTO person VALUES ({i}, 'a', NULL), ({i + 100}, 'b', NULL)")
    first = log.read(start, 3)
    assert [k for _, (k,) in first.changes] == ["10", "110", "11", "111"]
    assert first.more
    rest = log.read(first.position, 1000)
    assert [k for _, (k,) in rest.changes] == ["12", "112", "13", "113", "14", "114", "15", "115"]
    assert not rest.more


def test_truncate_is_flagged_and_confirm_advances_the_slot(business: Engine) -> None:
    log = PostgresChangeLog(business, "person", ["id"], "govshare_test_confirm")
    start = log.start()
    _run(business, "TRUNCATE person")
    batch = log.read(start, 1000)
    assert batch.truncated

    def confirmed() -> int:
        with business.connect() as conn:
            value = conn.execute(
                text(
                    "SELECT confirmed_flush_lsn::text FROM pg_replication_slots "
                    "WHERE slot_name = 'govshare_test_confirm'"
                )
            ).scalar_one()
        return lsn_number(str(value))

    assert confirmed() < lsn_number(batch.position)
    log.confirm(batch.position)
    assert confirmed() == lsn_number(batch.position)
    log.confirm(start)  # an older position is no error and moves nothing back
    assert confirmed() == lsn_number(batch.position)
    log.drop()
    with pytest.raises(CaptureError, match="重新同步"):
        log.read(batch.position, 10)


def test_checks_name_the_privilege_or_key_a_dba_must_give(business: Engine) -> None:
    _run(
        business,
        "DROP ROLE IF EXISTS reader",
        "CREATE ROLE reader LOGIN",
        "GRANT SELECT ON person TO reader",
        "CREATE TABLE nokey (a integer)",
    )
    reader_url = business.url.set(username="reader")
    reader = create_engine(reader_url)
    try:
        with pytest.raises(CaptureError, match='ALTER ROLE "reader" REPLICATION'):
            PostgresChangeLog(reader, "person", ["id"], "x").check()
        _run(business, "ALTER ROLE reader REPLICATION")
        with pytest.raises(CaptureError, match="GRANT SELECT ON other"):
            PostgresChangeLog(reader, "other", ["id"], "x").check()
        PostgresChangeLog(reader, "person", ["id"], "x").check()
    finally:
        reader.dispose()
    with pytest.raises(CaptureError, match="REPLICA IDENTITY FULL"):
        PostgresChangeLog(business, "nokey", ["a"], "x").check()
    with pytest.raises(CaptureError, match="不存在"):
        PostgresChangeLog(business, "missing", ["a"], "x")
