"""``db.LoopConnections``: the data services' reads on the event loop keep one
connection per loop thread between calls, without ever reading a stale snapshot."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import create_engine, event
from sqlalchemy.pool import PoolProxiedConnection

from govshare.db import LoopConnections


def _engine(path: Path) -> tuple[LoopConnections[PoolProxiedConnection], list[int]]:
    engine = create_engine(f"sqlite:///{path}", connect_args={"check_same_thread": False})
    with engine.begin() as conn:
        conn.exec_driver_sql("PRAGMA journal_mode=WAL")
        conn.exec_driver_sql("CREATE TABLE grant_ (id INTEGER PRIMARY KEY, revoked INTEGER)")
        conn.exec_driver_sql("INSERT INTO grant_ VALUES (1, 0)")
    checkouts: list[int] = []
    event.listen(engine, "checkout", lambda dbapi, _rec, _proxy: checkouts.append(id(dbapi)))
    return LoopConnections(engine.raw_connection), checkouts


def _revoked(conn: PoolProxiedConnection) -> int:
    cur = conn.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        return int(cur.execute("SELECT revoked FROM grant_ WHERE id = 1").fetchall()[0][0])
    finally:
        cur.close()


def test_on_a_loop_one_connection_serves_every_call_and_sees_each_commit(
    tmp_path: Path,
) -> None:
    reads, checkouts = _engine(tmp_path / "hub.db")
    writer = sqlite3.connect(tmp_path / "hub.db")

    async def calls() -> list[int]:
        seen = []
        with reads.use() as conn:
            seen.append(_revoked(conn))
        writer.execute("UPDATE grant_ SET revoked = 1 WHERE id = 1")
        writer.commit()
        with reads.use() as conn:
            seen.append(_revoked(conn))  # the revocation, at once: no snapshot kept
        return seen

    try:
        assert asyncio.run(calls()) == [0, 1]
        assert len(checkouts) == 1  # checked out once, kept between the calls
    finally:
        reads.close()
        writer.close()


def test_a_use_that_fails_drops_its_connection(tmp_path: Path) -> None:
    reads, checkouts = _engine(tmp_path / "hub.db")

    async def calls() -> None:
        with pytest.raises(sqlite3.OperationalError), reads.use() as conn:
            conn.dbapi_connection.cursor().execute("SELECT * FROM no_such_table")  # type: ignore[union-attr]
        with reads.use() as conn:
            assert _revoked(conn) == 0

    try:
        asyncio.run(calls())
        assert len(checkouts) == 2
    finally:
        reads.close()


def test_off_a_loop_each_use_checks_a_connection_out_and_back(tmp_path: Path) -> None:
    reads, checkouts = _engine(tmp_path / "hub.db")
    for _ in range(3):
        with reads.use() as conn:
            assert _revoked(conn) == 0
    assert len(checkouts) == 3
    reads.close()
