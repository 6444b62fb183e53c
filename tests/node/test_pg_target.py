"""A PostgreSQL target takes a large package by COPY into a staging table and one
INSERT … ON CONFLICT: the same rows, types and upsert semantics as row by row."""

from __future__ import annotations

import datetime as dt
import itertools
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from govshare.exchange.package import decode_columns, encode_rows
from govshare.node.target import COPY_THRESHOLD, TargetRefused, TargetWriter
from tests.pg import PostgresServer

_names = itertools.count()
COLUMNS = ["编号", "姓名", "金额", "生日", "更新", "照片", "order"]


def _row(i: int, name: str) -> tuple[Any, ...]:
    return (
        i,
        None if i % 5 == 0 else f"{name}{i}·𠀀'\"\\\t\n",
        Decimal(i) / 100 if i % 3 else None,
        dt.date(2000, 1 + i % 12, 1 + i % 28),
        dt.datetime(2026, 1, 2, 3, 4, 5, i),
        bytes([0, 255, i % 256]) if i % 4 else None,
        i * 2,
    )


def _package(rows: list[tuple[Any, ...]], ops: list[str]) -> Any:
    return decode_columns(encode_rows(COLUMNS, ops, rows))


def _target(url: str) -> list[tuple[Any, ...]]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(text('SELECT * FROM "人口" ORDER BY "编号"'))]
    finally:
        engine.dispose()


def test_large_packages_are_copied_and_merged(postgres: PostgresServer, tmp_path: Path) -> None:
    url = postgres.create_database(f"dst_copy_{next(_names)}_{abs(hash(str(tmp_path))) % 10**6}")
    engine = create_engine(url)
    writer = TargetWriter(engine, 7, {"table": "人口"}, ["编号"])
    n = COPY_THRESHOLD + 500
    first = [_row(i, "甲") for i in range(1, n + 1)]
    assert writer.apply(1, _package(first, ["I"] * n)) == {
        "inserted": n,
        "updated": 0,
        "deleted": 0,
    }
    assert _target(url) == first

    # Every row again, changed, one key given twice (a query source may): the last of
    # the two stands, as it would row by row.
    again = [_row(i, "乙") for i in range(2, n + 1)] + [_row(1, "乙"), _row(1, "丙")]
    writer.apply(2, _package(again, ["U"] * len(again)))
    expected = {r[0]: r for r in first} | {r[0]: r for r in again}
    assert _target(url) == [expected[k] for k in sorted(expected)]
    assert writer.apply(2, _package(again, ["U"] * len(again))) is None  # applied before
    assert writer.applied_seq() == 2
    engine.dispose()


@pytest.mark.parametrize("case", ["resync", "key twice", "unique index"])
def test_new_keys_the_target_already_has_are_merged_not_doubled(
    postgres: PostgresServer, tmp_path: Path, case: str
) -> None:
    """Keys the provider never sent (every row an insert) are copied straight into a
    target keyed by them. Where one is there after all — the task re-synced into a filled
    table, a query source giving a key twice — the package is merged as any other; so is
    a target whose key is a unique index rather than its primary key."""
    url = postgres.create_database(f"dst_fresh_{next(_names)}_{abs(hash(str(tmp_path))) % 10**6}")
    engine = create_engine(url)
    try:
        if case == "unique index":
            with engine.begin() as conn:
                conn.execute(
                    text(
                        'CREATE TABLE "人口" ("编号" BIGINT NOT NULL UNIQUE, "姓名" TEXT, '
                        '"金额" NUMERIC, "生日" DATE, "更新" TIMESTAMP, "照片" BYTEA, '
                        '"order" BIGINT)'
                    )
                )
        writer = TargetWriter(engine, 7, {"table": "人口"}, ["编号"])
        n = COPY_THRESHOLD + 10
        first = [_row(i, "甲") for i in range(1, n + 1)]
        writer.apply(1, _package(first, ["I"] * n))
        expected = {r[0]: r for r in first}
        if case == "resync":
            writer.reset()  # the hub sends the whole table again from sequence 1
            again = [_row(i, "乙") for i in range(n // 2, n + COPY_THRESHOLD)]
            writer.apply(1, _package(again, ["I"] * len(again)))
        else:
            again = [_row(i, "乙") for i in range(n + 1, 2 * n)] + [_row(n + 1, "丙")]
            writer.apply(2, _package(again, ["I"] * len(again)))
        expected |= {r[0]: r for r in again}
        assert _target(url) == [expected[k] for k in sorted(expected)]
    finally:
        engine.dispose()


@pytest.mark.parametrize("rows", [3, COPY_THRESHOLD + 1])
def test_a_value_the_target_column_cannot_hold_refuses_the_package_whole(
    postgres: PostgresServer, tmp_path: Path, rows: int
) -> None:
    """A department's own narrower column: row by row and by COPY (whose error context
    quotes the row), the refusal says which column and why in Chinese, never the value."""
    url = postgres.create_database(f"dst_narrow_{rows}_{abs(hash(str(tmp_path))) % 10**6}")
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(text('CREATE TABLE "人口" ("编号" INT PRIMARY KEY, "姓名" VARCHAR(4))'))
        writer = TargetWriter(engine, 7, {"table": "人口"}, ["编号"])
        names = [f"张{i % 100}" for i in range(1, rows + 1)]
        names[-1] = "欧阳娜娜丽莎"
        package = decode_columns(
            encode_rows(["编号", "姓名"], ["I"] * rows, list(enumerate(names, start=1)))
        )
        with pytest.raises(TargetRefused) as caught:
            writer.apply(1, package)
        message = str(caught.value)
        assert message.startswith("目标库拒收第 1 号包: 值超过目标列的长度")
        assert "22001" in message
        assert "欧阳" not in message
        assert writer.applied_seq() == 0
        with engine.connect() as conn:
            assert conn.execute(text('SELECT count(*) FROM "人口"')).scalar() == 0
    finally:
        engine.dispose()
