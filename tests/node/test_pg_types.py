"""PostgreSQL's column types read by the node and written into the targets."""

from __future__ import annotations

import itertools
from decimal import Decimal
from pathlib import Path

from sqlalchemy import create_engine, text

from govshare.node.source import SourceReader
from tests.pg import PostgresServer

_names = itertools.count()


def _database(postgres: PostgresServer, tmp_path: Path, prefix: str) -> str:
    return postgres.create_database(f"{prefix}_{next(_names)}_{abs(hash(str(tmp_path))) % 10**6}")


def test_a_numeric_column_is_read_as_decimals(postgres: PostgresServer, tmp_path: Path) -> None:
    engine = create_engine(_database(postgres, tmp_path, "src_numeric"))
    try:
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE 账户 (id int PRIMARY KEY, 余额 numeric(18, 2))"))
            conn.execute(text("INSERT INTO 账户 VALUES (1, 12345678901234.56), (2, NULL)"))
        reader = SourceReader(engine, {"table": "账户", "key": ["id"], "mode": "snapshot"})
        rows, _ = next(reader.batches(None, 10))
        assert rows == [(1, Decimal("12345678901234.56")), (2, None)]
    finally:
        engine.dispose()
