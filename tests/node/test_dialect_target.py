"""What a subscriber node sends to an Oracle, 达梦 DM or SQL Server target database: the
table it creates for a package, the upsert and delete by key, and its bookkeeping table,
compiled by each engine's SQLAlchemy dialect (no server: see tests/node/dialects.py)."""

from __future__ import annotations

from typing import cast

import pyarrow as pa
import pytest
from sqlalchemy import MetaData, Table
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import CompileError
from sqlalchemy.schema import CreateTable
from sqlalchemy.sql.compiler import SQLCompiler

from govshare.exchange.package import OP_COLUMN
from govshare.node.target import (
    MergeUpsert,
    applied_seq_query,
    cursor_table,
    key_delete,
    target_table,
)
from tests.node.dialects import dm_as_oracle, oracle_19c, sql, sql_server_2019

# One column of each kind a package carries; the key is Chinese text, one column is
# named like an Oracle keyword (LEVEL).
PACKAGE = pa.schema(
    [
        ("编号", pa.string()),
        ("姓名", pa.string()),
        ("level", pa.int64()),
        ("amount", pa.decimal128(18, 2)),
        ("score", pa.float64()),
        ("active", pa.bool_()),
        ("born", pa.date32()),
        ("updated", pa.timestamp("us")),
        ("photo", pa.binary()),
        ("district", pa.dictionary(pa.int32(), pa.string())),
        (OP_COLUMN, pa.string()),
    ]
)


def created(dialect: Dialect) -> str:
    table = target_table(MetaData(), "人员", PACKAGE, ["编号"], {"district": "区划"})
    return sql(CreateTable(table), dialect)


def person() -> Table:
    return target_table(MetaData(), "人员", PACKAGE, ["编号"], {})


# -- tables created for a package -------------------------------------------------------


def test_oracle_gets_timestamp_binary_double_number_38_nclob_and_nvarchar2_keys() -> None:
    assert created(oracle_19c()) == (
        'CREATE TABLE "人员" ( '
        '"编号" NVARCHAR2(200) NOT NULL, '  # a key needs a bound; N for the national set
        '"姓名" NCLOB, '  # Unicode even where the database character set is ZHS16GBK
        '"level" NUMBER(19), '  # LEVEL is reserved: quoted
        "amount NUMBER(38, 2), "
        "score BINARY_DOUBLE, "  # Oracle's FLOAT is a decimal NUMBER
        "active SMALLINT, "  # no BOOLEAN in SQL before 23ai
        "born DATE, "
        "updated TIMESTAMP, "  # DATE would drop the microseconds
        "photo BLOB, "
        '"区划" NCLOB, '  # a dictionary column is its values' type, renamed by the mapping
        'PRIMARY KEY ("编号") )'
    )


def test_dm_gets_the_types_its_manual_documents() -> None:
    assert created(dm_as_oracle()) == (
        'CREATE TABLE "人员" ( '
        '"编号" VARCHAR2(200 CHAR) NOT NULL, '  # characters, not bytes
        '"姓名" CLOB, '  # DM's GB18030 or UTF-8 holds every character: no N types
        '"level" NUMBER(19), '
        "amount DECIMAL(38, 2), "
        "score DOUBLE, "
        "active SMALLINT, "
        "born DATE, "
        "updated TIMESTAMP, "
        "photo BLOB, "
        '"区划" CLOB, '
        'PRIMARY KEY ("编号") )'
    )


def test_sql_server_gets_datetime2_nvarchar_max_and_varbinary_max() -> None:
    assert created(sql_server_2019()) == (
        "CREATE TABLE [人员] ( "
        "[编号] NVARCHAR(200) NOT NULL, "
        "[姓名] NVARCHAR(max) NULL, "  # VARCHAR would hold only the code page's characters
        "level BIGINT NULL, "
        "amount NUMERIC(38, 2) NULL, "
        "score FLOAT NULL, "  # FLOAT(53): a double
        "active BIT NULL, "
        "born DATE NULL, "
        "updated DATETIME2(6) NULL, "  # DATETIME keeps only 1/300 s
        "photo VARBINARY(max) NULL, "  # not the deprecated IMAGE
        "[区划] NVARCHAR(max) NULL, "
        "PRIMARY KEY ([编号]) )"
    )


def test_a_composite_integer_key_is_not_made_an_identity_column() -> None:
    schema = pa.schema([("year", pa.int64()), ("seq", pa.int64()), ("v", pa.string())])
    table = target_table(MetaData(), "t", schema, ["year", "seq"], {})
    assert "IDENTITY" not in sql(CreateTable(table), sql_server_2019())
    assert sql(CreateTable(table), sql_server_2019()).endswith("PRIMARY KEY (year, seq) )")


# -- upsert by key ----------------------------------------------------------------------


def test_oracle_upserts_with_merge_using_dual_and_the_values_bound_where_they_go() -> None:
    merge = MergeUpsert(person(), ["编号", "姓名", "level"], ["编号"])
    assert sql(merge, oracle_19c()) == (
        'MERGE INTO "人员" t USING DUAL ON (t."编号" = :"编号") '
        'WHEN MATCHED THEN UPDATE SET t."姓名" = :"姓名", t."level" = :"level" '
        'WHEN NOT MATCHED THEN INSERT ("编号", "姓名", "level") '
        'VALUES (:"编号", :"姓名", :"level")'
    )


def test_dm_upserts_with_the_same_merge() -> None:
    merge = MergeUpsert(person(), ["编号", "姓名", "level"], ["编号"])
    assert sql(merge, dm_as_oracle()) == sql(merge, oracle_19c())


def test_sql_server_upserts_with_merge_holdlock_and_typed_parameters() -> None:
    merge = MergeUpsert(person(), ["编号", "姓名", "photo"], ["编号"])
    assert sql(merge, sql_server_2019()) == (
        "MERGE INTO [人员] WITH (HOLDLOCK) AS t USING (SELECT "
        "CAST(? AS NVARCHAR(200)) AS [编号], CAST(? AS NVARCHAR(max)) AS [姓名], "
        "CAST(? AS VARBINARY(max)) AS photo) AS s ON t.[编号] = s.[编号] "
        "WHEN MATCHED THEN UPDATE SET [姓名] = s.[姓名], photo = s.photo "
        "WHEN NOT MATCHED THEN INSERT ([编号], [姓名], photo) "
        "VALUES (s.[编号], s.[姓名], s.photo);"
    )


def test_sql_server_merge_parameters_follow_the_package_columns() -> None:
    # The writer hands pyodbc the package's columns as they are when the statement's
    # parameters come in the columns' order (no dict per row).
    merge = MergeUpsert(person(), ["编号", "姓名", "photo"], ["编号"])
    compiled = cast(SQLCompiler, merge.compile(dialect=sql_server_2019()))
    assert compiled.positiontup == ["编号", "姓名", "photo"]


def test_a_package_of_key_columns_only_inserts_what_is_missing() -> None:
    schema = pa.schema([("year", pa.int64()), ("seq", pa.int64())])
    table = target_table(MetaData(), "ledger", schema, ["year", "seq"], {})
    merge = MergeUpsert(table, ["year", "seq"], ["year", "seq"])
    assert sql(merge, oracle_19c()) == (
        "MERGE INTO ledger t USING DUAL ON (t.year = :year AND t.seq = :seq) "
        "WHEN NOT MATCHED THEN INSERT (year, seq) VALUES (:year, :seq)"
    )
    assert "WHEN MATCHED" not in sql(merge, sql_server_2019())


def test_merge_is_not_compiled_for_engines_that_upsert_otherwise() -> None:
    from sqlalchemy.dialects import postgresql

    with pytest.raises(CompileError, match="no MERGE upsert for postgresql"):
        MergeUpsert(person(), ["编号"], ["编号"]).compile(dialect=postgresql.dialect())


# -- delete by key ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dialect", "expected"),
    [
        (oracle_19c(), 'DELETE FROM "人员" WHERE "人员"."编号" = :"k_编号"'),
        (dm_as_oracle(), 'DELETE FROM "人员" WHERE "人员"."编号" = :"k_编号"'),
        (sql_server_2019(), "DELETE FROM [人员] WHERE [人员].[编号] = ?"),
    ],
    ids=["oracle", "dm", "mssql"],
)
def test_rows_are_deleted_by_key(dialect: Dialect, expected: str) -> None:
    assert sql(key_delete(person(), ["编号"]), dialect) == expected


# -- applied sequence bookkeeping -------------------------------------------------------


@pytest.mark.parametrize(
    ("dialect", "expected"),
    [
        (
            oracle_19c(),
            "CREATE TABLE govshare_exchange_cursor ( task_id INTEGER NOT NULL, "
            "last_seq NUMBER(19) NOT NULL, PRIMARY KEY (task_id) )",
        ),
        (
            sql_server_2019(),
            "CREATE TABLE govshare_exchange_cursor ( task_id INTEGER NOT NULL, "
            "last_seq BIGINT NOT NULL, PRIMARY KEY (task_id) )",
        ),
    ],
    ids=["oracle", "mssql"],
)
def test_the_bookkeeping_table(dialect: Dialect, expected: str) -> None:
    assert sql(CreateTable(cursor_table(MetaData())), dialect) == expected


def test_oracle_and_dm_lock_the_tasks_applied_seq_with_for_update() -> None:
    query = applied_seq_query(cursor_table(MetaData()), 7, "oracle")
    expected = (
        "SELECT govshare_exchange_cursor.last_seq FROM govshare_exchange_cursor "
        "WHERE govshare_exchange_cursor.task_id = :task_id_1 FOR UPDATE"
    )
    assert sql(query, oracle_19c()) == expected
    assert sql(applied_seq_query(cursor_table(MetaData()), 7, "dm"), dm_as_oracle()) == expected


def test_sql_server_locks_it_with_an_updlock_hint() -> None:
    # SQLAlchemy writes no FOR UPDATE for SQL Server; without the hint two writers of one
    # task could both read seq 6 and both apply package 7.
    query = applied_seq_query(cursor_table(MetaData()), 7, "mssql")
    assert sql(query, sql_server_2019()) == (
        "SELECT govshare_exchange_cursor.last_seq FROM govshare_exchange_cursor "
        "WITH (UPDLOCK, ROWLOCK) WHERE govshare_exchange_cursor.task_id = ?"
    )


def test_the_hint_is_for_sql_server_only() -> None:
    query = applied_seq_query(cursor_table(MetaData()), 7, "oracle")
    assert "UPDLOCK" not in sql(query, oracle_19c())
