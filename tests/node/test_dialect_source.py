"""What a provider node sends to an Oracle, 达梦 DM or SQL Server business database: the
keyset-ordered page, the row filter and the key scan, compiled by each engine's
SQLAlchemy dialect (no server: see tests/node/dialects.py)."""

from __future__ import annotations

import datetime as dt
import decimal
from typing import Any

import pytest
from sqlalchemy import Column, Date, DateTime, Integer, MetaData, Numeric, String, Table
from sqlalchemy.engine import Dialect

from govshare.node.source import SourceReader, columns_probe
from tests.node.dialects import (
    dm_as_oracle,
    oracle_11g,
    oracle_19c,
    params,
    sql,
    sql_server_2019,
    unconnected,
)


def person() -> Table:
    """A source table with a Chinese name, a Chinese key and a column named like an
    Oracle keyword (LEVEL)."""
    return Table(
        "人员",
        MetaData(),
        Column("编号", String(20), primary_key=True),
        Column("updated", DateTime),
        Column("level", Integer),
        Column("qx", String(12)),
    )


def reader(dialect: Dialect, **config: Any) -> SourceReader:
    base = {"table": "人员", "key": ["编号"], "mode": "incremental", "cursor_column": "updated"}
    return SourceReader(unconnected(dialect), base | config, table=person())


COLUMNS_ORACLE = '"人员"."编号", "人员".updated, "人员"."level", "人员".qx'
AFTER_ORACLE = (
    '"人员".updated >= :param_1 AND ("人员".updated > :param_1 '
    'OR "人员".updated = :param_1 AND "人员"."编号" > :param_2)'
)


# -- keyset paging ----------------------------------------------------------------------


def test_oracle_pages_with_fetch_first_and_spells_out_the_row_comparison() -> None:
    # Oracle has no (a, b) > (x, y): the condition is written column by column, behind a
    # leading `updated >= x` that an index on (updated, 编号) can seek.
    page = reader(oracle_19c()).page(["2024-05-01T08:30:00", "A1"], 500)
    assert sql(page, oracle_19c()) == (
        f'SELECT {COLUMNS_ORACLE} FROM "人员" WHERE {AFTER_ORACLE} '
        'ORDER BY "人员".updated, "人员"."编号" FETCH FIRST 500 ROWS ONLY'
    )


def test_the_cursor_kept_as_json_is_bound_as_the_columns_own_types() -> None:
    # The node keeps the cursor as JSON, with the timestamp as ISO text. Bound as text,
    # Oracle would read it with the session's NLS_DATE_FORMAT and fail (ORA-01861).
    page = reader(oracle_19c()).page(["2024-05-01T08:30:00.123456", "A1"], 500)
    assert params(page, oracle_19c()) == {
        "param_1": dt.datetime(2024, 5, 1, 8, 30, 0, 123456),
        "param_2": "A1",
    }


def test_decimal_and_date_cursor_values_are_typed_again_too() -> None:
    table = Table(
        "ledger",
        MetaData(),
        Column("day", Date),
        Column("amount", Numeric(18, 2), primary_key=True),
    )
    config = {"table": "ledger", "key": ["amount"], "mode": "incremental", "cursor_column": "day"}
    page = SourceReader(unconnected(oracle_19c()), config, table=table).page(
        ["2024-05-01", "12.50"], 10
    )
    assert params(page, oracle_19c()) == {
        "param_1": dt.date(2024, 5, 1),
        "param_2": decimal.Decimal("12.50"),
    }


def test_the_first_page_has_no_cursor_condition() -> None:
    assert sql(reader(oracle_19c()).page(None, 500), oracle_19c()) == (
        f'SELECT {COLUMNS_ORACLE} FROM "人员" '
        'ORDER BY "人员".updated, "人员"."编号" FETCH FIRST 500 ROWS ONLY'
    )


def test_oracle_11g_without_fetch_first_pages_with_rownum_outside_the_ordered_query() -> None:
    # ROWNUM is counted before ORDER BY in the same query block: SQLAlchemy wraps the
    # ordered query, so the 500 rows are the first 500 in keyset order.
    page = reader(oracle_11g()).page(["2024-05-01T08:30:00", "A1"], 500)
    assert sql(page, oracle_11g()) == (
        'SELECT anon_1."编号", anon_1.updated, anon_1."level", anon_1.qx FROM '
        '(SELECT "人员"."编号" AS "编号", "人员".updated AS updated, "人员"."level" AS "level", '
        f'"人员".qx AS qx FROM "人员" WHERE {AFTER_ORACLE} '
        'ORDER BY "人员".updated, "人员"."编号") anon_1 WHERE ROWNUM <= 500'
    )


def test_dm_pages_as_oracle_does() -> None:
    page = reader(dm_as_oracle()).page(["2024-05-01T08:30:00", "A1"], 500)
    assert sql(page, dm_as_oracle()) == (
        f'SELECT {COLUMNS_ORACLE} FROM "人员" WHERE {AFTER_ORACLE} '
        'ORDER BY "人员".updated, "人员"."编号" FETCH FIRST 500 ROWS ONLY'
    )


def test_sql_server_pages_with_top_and_an_order_by_in_the_same_query() -> None:
    # TOP without ORDER BY would take any 500 rows; with it, the first 500 in keyset order.
    page = reader(sql_server_2019()).page(["2024-05-01T08:30:00", "A1"], 500)
    assert sql(page, sql_server_2019()) == (
        "SELECT TOP 500 [人员].[编号], [人员].updated, [人员].level, [人员].qx FROM [人员] "
        "WHERE [人员].updated >= ? AND ([人员].updated > ? OR [人员].updated = ? "
        "AND [人员].[编号] > ?) ORDER BY [人员].updated, [人员].[编号]"
    )


def test_a_null_in_the_cursor_is_compared_not_turned_into_is_null() -> None:
    # (a, b) > (NULL, x) is unknown in SQL; `a = NULL` keeps it so, `a IS NULL` would
    # read the NULL rows again and again.
    page = reader(sql_server_2019()).page([None, "A1"], 10)
    assert "IS NULL" not in sql(page, sql_server_2019())
    assert params(page, sql_server_2019()) == {"param_2": None, "param_3": "A1"}


def test_a_snapshot_reader_pages_by_key_alone_with_a_plain_comparison() -> None:
    page = reader(oracle_19c(), mode="snapshot").page(["A1"], 100)
    assert sql(page, oracle_19c()) == (
        f'SELECT {COLUMNS_ORACLE} FROM "人员" WHERE "人员"."编号" > :param_1 '
        'ORDER BY "人员"."编号" FETCH FIRST 100 ROWS ONLY'
    )


# -- row filters ------------------------------------------------------------------------


def test_oracle_row_filters_compare_as_bounded_varchar2() -> None:
    # CAST … AS VARCHAR2 without a length is a syntax error on Oracle.
    page = reader(
        oracle_19c(),
        row_filter=[
            {"column": "qx", "op": "prefix", "value": "3702"},
            {"column": "level", "op": "in", "value": ["1", "2"]},
        ],
    ).page(None, 10)
    assert sql(page, oracle_19c()) == (
        f'SELECT {COLUMNS_ORACLE} FROM "人员" WHERE '
        """(CAST("人员".qx AS VARCHAR2(4000 CHAR)) LIKE :param_1 || '%' ESCAPE '/') AND """
        'CAST("人员"."level" AS VARCHAR2(4000 CHAR)) IN (:param_2_1, :param_2_2) '
        'ORDER BY "人员".updated, "人员"."编号" FETCH FIRST 10 ROWS ONLY'
    )


def test_sql_server_row_filters_compare_as_nvarchar_so_chinese_values_survive() -> None:
    page = reader(sql_server_2019(), row_filter=[{"column": "qx", "op": "eq", "value": "市南区"}])
    assert "CAST([人员].qx AS NVARCHAR(max)) = ?" in sql(page.page(None, 10), sql_server_2019())


def test_sql_server_prefix_filters_escape_brackets_which_its_like_reads_as_sets() -> None:
    page = reader(
        sql_server_2019(), row_filter=[{"column": "qx", "op": "prefix", "value": "37_[0]2%"}]
    ).page(None, 10)
    assert "LIKE ? + '%' ESCAPE '/'" in sql(page, sql_server_2019())
    assert params(page, sql_server_2019())["param_2"] == "37/_/[0]2/%"


# -- key scans --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dialect", "expected"),
    [
        (
            oracle_19c(),
            """SELECT "人员"."编号" FROM "人员" WHERE "人员".qx IS NULL OR "人员".qx != :qx_1""",
        ),
        (
            dm_as_oracle(),
            """SELECT "人员"."编号" FROM "人员" WHERE "人员".qx IS NULL OR "人员".qx != :qx_1""",
        ),
        (
            sql_server_2019(),
            "SELECT [人员].[编号] FROM [人员] WHERE [人员].qx IS NULL OR [人员].qx != ?",
        ),
    ],
    ids=["oracle", "dm", "mssql"],
)
def test_the_key_scan_reads_the_live_keys_only(dialect: Dialect, expected: str) -> None:
    scan = reader(
        dialect, delete_detection="soft_delete", soft_delete_column="qx", soft_delete_value="D"
    ).live_keys_query()
    assert sql(scan, dialect) == expected


# -- query sources ----------------------------------------------------------------------


def test_a_query_sources_columns_are_probed_without_limit_on_oracle_dm_and_sql_server() -> None:
    query = "SELECT xm, sfzh FROM rk"
    assert columns_probe("oracle", query) == "SELECT * FROM (SELECT xm, sfzh FROM rk) q WHERE 1 = 0"
    assert columns_probe("dm", query) == columns_probe("oracle", query)
    assert columns_probe("mssql", query) == columns_probe("oracle", query)
    # Unchanged where LIMIT 0 was already understood.
    assert columns_probe("postgresql", query) == (
        "SELECT * FROM (SELECT xm, sfzh FROM rk) AS q LIMIT 0"
    )
