"""The node's 达梦 DM statements compiled by DM's own SQLAlchemy dialect, where it loads.

dmSQLAlchemy imports the native driver dmPython when loaded, and its 2.0.17 does not
load under SQLAlchemy 2.1 (it imports ``sqlalchemy.util.await_fallback``, gone in 2.1),
which this project's lock resolves to: in the project's environment this module is
skipped and tests/node/test_dialect_*.py stand Oracle's compiler in for DM's. It runs in
an environment with SQLAlchemy 2.0.x, dmPython and dmSQLAlchemy installed (it passed
with SQLAlchemy 2.0.58, dmPython 2.6.1, dmSQLAlchemy 2.0.17); still no server.
"""

from __future__ import annotations

import pyarrow as pa
import pytest
from sqlalchemy import Column, DateTime, Integer, MetaData, String, Table
from sqlalchemy.engine import Dialect
from sqlalchemy.schema import CreateTable

from govshare.exchange.package import OP_COLUMN
from govshare.node.source import SourceReader
from govshare.node.target import MergeUpsert, target_table
from tests.node.dialects import params, sql, unconnected


@pytest.fixture(scope="module")
def dm() -> Dialect:
    pytest.importorskip("dmPython", reason="DM's native driver dmPython is not installed")
    try:
        from dmSQLAlchemy.dmpython import DMDialect_dmPython  # type: ignore[import-not-found]
    except ImportError as exc:  # dmSQLAlchemy missing, or under SQLAlchemy 2.1
        pytest.skip(f"DM's SQLAlchemy dialect does not load here: {exc}")
    dialect: Dialect = DMDialect_dmPython()
    return dialect


def test_dm_pages_with_fetch_first_and_the_spelled_out_keyset_condition(dm: Dialect) -> None:
    table = Table(
        "人员",
        MetaData(),
        Column("编号", String(20), primary_key=True),
        Column("updated", DateTime),
        Column("level", Integer),
    )
    config = {"table": "人员", "key": ["编号"], "mode": "incremental", "cursor_column": "updated"}
    page = SourceReader(unconnected(dm), config, table=table).page(["2024-05-01T08:30:00", "A1"], 5)
    assert sql(page, dm) == (
        'SELECT "人员"."编号", "人员".updated, "人员"."level" FROM "人员" '
        'WHERE "人员".updated >= :param_1 AND ("人员".updated > :param_1 '
        'OR "人员".updated = :param_1 AND "人员"."编号" > :param_2) '
        'ORDER BY "人员".updated, "人员"."编号" FETCH FIRST :param_3 ROWS ONLY'
    )
    assert params(page, dm)["param_3"] == 5


def test_dm_creates_the_documented_types_and_merges_by_key(dm: Dialect) -> None:
    schema = pa.schema(
        [
            ("编号", pa.string()),
            ("姓名", pa.string()),
            ("amount", pa.decimal128(18, 2)),
            ("score", pa.float64()),
            ("updated", pa.timestamp("us")),
            (OP_COLUMN, pa.string()),
        ]
    )
    table = target_table(MetaData(), "人员", schema, ["编号"], {})
    assert sql(CreateTable(table), dm) == (
        'CREATE TABLE "人员" ( "编号" VARCHAR2(200 CHAR) NOT NULL, "姓名" CLOB, '
        'amount DECIMAL(38, 2), score DOUBLE, updated TIMESTAMP, PRIMARY KEY ("编号") )'
    )
    assert sql(MergeUpsert(table, ["编号", "姓名"], ["编号"]), dm) == (
        'MERGE INTO "人员" t USING DUAL ON (t."编号" = :编号) '
        'WHEN MATCHED THEN UPDATE SET t."姓名" = :姓名 '
        'WHEN NOT MATCHED THEN INSERT ("编号", "姓名") VALUES (:编号, :姓名)'
    )
