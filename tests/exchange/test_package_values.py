"""What a package body holds for the types business databases have beyond numbers, text
and dates: every target can store it, and it means what the source meant."""

from __future__ import annotations

import datetime as dt
import json
import uuid

from govshare.exchange.package import decode_rows, encode_rows


def _roundtrip(values: list[object]) -> list[object]:
    rows = [(i, v) for i, v in enumerate(values)]
    table = decode_rows(encode_rows(["id", "v"], ["I"] * len(rows), rows))
    return table.column("v").to_pylist()


def test_json_documents_and_arrays_travel_as_json_text() -> None:
    got = _roundtrip([{"姓名": "张三", "子女": [1, None]}, None, {"a": dt.date(2026, 1, 2)}])
    assert json.loads(str(got[0])) == {"姓名": "张三", "子女": [1, None]}
    assert got[1] is None
    assert json.loads(str(got[2])) == {"a": "2026-01-02"}
    assert _roundtrip([[1, 2], [3]]) == ["[1,2]", "[3]"]


def test_uuids_and_zoned_times_of_day_travel_as_text() -> None:
    u = uuid.UUID("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11")
    assert _roundtrip([u, None]) == [str(u), None]
    eight = dt.timezone(dt.timedelta(hours=8))
    assert _roundtrip([dt.time(12, 34, 56, tzinfo=eight)]) == ["12:34:56+08:00"]
    # A time of day without a zone stays a time.
    assert _roundtrip([dt.time(12, 34, 56, 789000)]) == [dt.time(12, 34, 56, 789000)]
