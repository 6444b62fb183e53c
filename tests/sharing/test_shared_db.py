"""The shared-store database's engine: whole-store work reads without the memory map."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Connection, Engine, text

from govshare.sharing.shared_db import shared_engine, unmapped

MAPPED = 1 << 20


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = shared_engine(f"sqlite:///{tmp_path / 'shared.db'}", pool_size=1, mmap_bytes=MAPPED)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (k TEXT PRIMARY KEY)"))
    yield engine
    engine.dispose()


def _mmap(conn: Connection) -> int:
    return int(conn.exec_driver_sql("PRAGMA mmap_size").scalar() or 0)


def test_an_unmapped_connection_reads_through_the_page_cache_and_is_mapped_again_after(
    engine: Engine,
) -> None:
    with unmapped(engine) as conn:
        assert _mmap(conn) == 0
    with engine.connect() as conn:  # the pool's one connection, back from unmapped
        assert _mmap(conn) == MAPPED


def test_an_unmapped_transaction_commits_its_writes(engine: Engine) -> None:
    with unmapped(engine, begin=True) as conn:
        assert _mmap(conn) == 0
        conn.execute(text("INSERT INTO t VALUES ('a')"))
    with engine.connect() as conn:
        assert conn.execute(text("SELECT k FROM t")).scalars().all() == ["a"]
        assert _mmap(conn) == MAPPED


def test_a_failed_unmapped_transaction_writes_nothing_and_restores_the_map(engine: Engine) -> None:
    def fail_half_way() -> None:
        with unmapped(engine, begin=True) as conn:
            conn.execute(text("INSERT INTO t VALUES ('a')"))
            raise RuntimeError("the assembly failed half way")

    with pytest.raises(RuntimeError):
        fail_half_way()
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM t")).scalar() == 0
        assert _mmap(conn) == MAPPED
