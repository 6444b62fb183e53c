"""PostgreSQL's column types read by the node and written into the targets."""

from __future__ import annotations

import datetime as dt
import itertools
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, MetaData, Table, create_engine, select, text

from govshare.exchange.package import decode_columns, encode_rows
from govshare.node.source import SourceReader
from govshare.node.target import TargetWriter
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


def _exchange(source: Engine, target: Engine) -> list[tuple[Any, ...]]:
    """The table ``t`` read by the node, packaged, and applied to ``target``."""
    reader = SourceReader(source, {"table": "t", "key": ["id"], "mode": "snapshot"})
    rows, _ = next(reader.batches(None, 100))
    data = decode_columns(encode_rows(reader.columns, ["I"] * len(rows), rows))
    writer = TargetWriter(target, 1, {"table": "t_copy"}, ["id"])
    writer.apply(1, data)
    with target.connect() as conn:
        copy = Table("t_copy", MetaData(), autoload_with=conn)
        return [tuple(r) for r in conn.execute(select(copy).order_by(copy.c.id))]


def test_zones_times_intervals_json_and_uuids_reach_postgresql_and_sqlite(
    postgres: PostgresServer, tmp_path: Path
) -> None:
    source = create_engine(_database(postgres, tmp_path, "src_types"))
    targets = {
        "postgresql": create_engine(_database(postgres, tmp_path, "dst_types")),
        "sqlite": create_engine(f"sqlite:///{tmp_path / 'types.db'}"),
    }
    try:
        with source.begin() as conn:
            conn.execute(
                text(
                    "CREATE TABLE t (id int PRIMARY KEY, at timestamptz, local timestamp, "
                    "hm time, hmz timetz, iv interval, u uuid, j jsonb, tags text[])"
                )
            )
            conn.execute(
                text(
                    "INSERT INTO t VALUES (1, '2026-01-02 03:04:05.123456+08', "
                    "'2026-01-02 03:04:05', '12:34:56.789', '12:34:56+08', '1 day 2 hours', "
                    "'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{\"子女\": [1, \"乙\"]}', "
                    "'{甲,乙}'), (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)"
                )
            )
        instant = dt.datetime(2026, 1, 1, 19, 4, 5, 123456, tzinfo=dt.UTC)
        common = (
            dt.datetime(2026, 1, 2, 3, 4, 5),
            dt.time(12, 34, 56, 789000),
            "12:34:56+08:00",
        )
        tail = ("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", '{"子女":[1,"乙"]}', '["甲","乙"]')
        nulls = (2, *[None] * 8)

        on_pg = _exchange(source, targets["postgresql"])
        assert on_pg[0] == (1, instant, *common, dt.timedelta(days=1, hours=2), *tail)
        assert on_pg[1] == nulls

        on_sqlite = _exchange(source, targets["sqlite"])
        # SQLite keeps the instant as UTC without a zone, the interval as its text.
        utc = instant.replace(tzinfo=None)
        assert on_sqlite[0] == (1, utc, *common, "1 day, 2:00:00", *tail)
        assert on_sqlite[1] == nulls
    finally:
        source.dispose()
        for engine in targets.values():
            engine.dispose()
