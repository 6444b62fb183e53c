"""A provider task made for a grant reads only the granted rows and masks the columns
the grant masks, before anything is packaged."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from govshare.exchange.schemas import ProviderConfig
from govshare.node.source import SourceReader, make_engine


@pytest.fixture
def source(tmp_path: Path) -> str:
    path = tmp_path / "biz.db"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE person (id INTEGER PRIMARY KEY, xm TEXT, xb TEXT, qx TEXT, v INT)")
    db.executemany(
        "INSERT INTO person VALUES (?, ?, ?, ?, ?)",
        [
            (1, "张三", "1", "370202", 1),
            (2, "李四", "2", "370202", 2),
            (3, "欧阳修", "1", "370203", 3),
            (4, "王五", "1", "370211", 4),
        ],
    )
    db.commit()
    db.close()
    return f"sqlite:///{path}"


def _reader(url: str, **config: Any) -> SourceReader:
    base = {"source": "biz", "table": "person", "key": ["id"], "cursor_column": "v"}
    checked = ProviderConfig.model_validate(base | config).model_dump()
    return SourceReader(make_engine(url), checked)


def _all(reader: SourceReader) -> list[tuple[Any, ...]]:
    return [row for rows, _ in reader.batches(None, 2) for row in rows]


def test_only_rows_inside_the_row_filter_are_read_or_counted_as_live(source: str) -> None:
    reader = _reader(
        source,
        columns=["id", "v", "xm"],
        row_filter=[
            {"column": "xb", "op": "eq", "value": "1"},
            {"column": "qx", "op": "in", "value": ["370202", "370203"]},
        ],
    )
    assert _all(reader) == [(1, 1, "张三"), (3, 3, "欧阳修")]
    # The deletion check sees the same scope: a row leaving it is deleted downstream.
    assert list(reader.live_key_strings()) == ["1", "3"]
    assert reader.checksum()[0] == 2


def test_a_prefix_condition_matches_the_start_of_the_text_only(source: str) -> None:
    reader = _reader(source, row_filter=[{"column": "qx", "op": "prefix", "value": "37021"}])
    assert [row[0] for row in _all(reader)] == [4]


def test_masked_columns_leave_the_reader_masked_and_the_cursor_is_unaffected(
    source: str,
) -> None:
    reader = _reader(source, columns=["id", "v", "xm"], masking={"xm": "name"})
    batches = list(reader.batches(None, 2))
    assert [row for rows, _ in batches for row in rows] == [
        (1, 1, "张*"),
        (2, 2, "李*"),
        (3, 3, "欧**"),
        (4, 4, "王*"),
    ]
    assert [cursor for _, cursor in batches] == [[2, 2], [4, 4]]


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"masking": {"id": "name"}}, "主键列不能脱敏"),
        ({"columns": ["id", "v"], "masking": {"xm": "name"}}, "脱敏的列不在交换的列中"),
        ({"row_filter": [{"column": "xb", "op": "in", "value": "1"}]}, "in 条件的取值须为列表"),
        ({"row_filter": [{"column": "x; drop", "value": "1"}]}, "String should match pattern"),
        ({"masking": {"xm": "rot13"}}, "Input should be"),
    ],
)
def test_a_bad_scope_is_refused_with_a_precise_message(
    config: dict[str, Any], message: str
) -> None:
    base = {"source": "biz", "table": "person", "key": ["id"], "cursor_column": "v"}
    with pytest.raises(ValidationError, match=message):
        ProviderConfig.model_validate(base | config)


def test_a_row_filter_on_a_column_the_source_lacks_is_refused(source: str) -> None:
    with pytest.raises(ValueError, match="row filter columns not in the source"):
        _reader(source, row_filter=[{"column": "nope", "value": "1"}])


def test_a_row_whose_soft_delete_mark_is_null_is_live_in_the_key_scan_too(source: str) -> None:
    """The batch reader sends a row with no mark (NULL) as live; the key scan behind the
    reconciliation counted it as deleted (``qx != '370203'`` is not true for NULL), so
    source and target disagreed on every such row."""
    db = sqlite3.connect(source.removeprefix("sqlite:///"))
    db.execute("UPDATE person SET qx = NULL WHERE id = 4")
    db.commit()
    db.close()
    reader = _reader(
        source, delete_detection="soft_delete", soft_delete_column="qx", soft_delete_value="370203"
    )
    rows = [row for batch, _ in reader.batches(None, 10) for row in batch]
    live = sorted(row[0] for row in rows if not reader.is_soft_deleted(row))
    assert live == [1, 2, 4]
    assert sorted(key for (key,) in reader.live_keys()) == live
