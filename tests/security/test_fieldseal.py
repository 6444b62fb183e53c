"""字段加密: a sealed cell hides its value, equal values seal equal (so lookups and joins
work on sealed cells), a changed cell or another key fails to open instead of giving
another value, and values come back as the type they had."""

from __future__ import annotations

import os
import stat
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import orjson
import pyarrow as pa
import pytest

from govshare.security.atrest import FindableSeal
from govshare.security.crypto import seal
from govshare.security.fieldseal import (
    FieldSealer,
    FieldSealError,
    generation_of,
    key_ages,
    key_path,
    rotate,
    type_name,
)

SECRET = "s" * 40


@pytest.fixture(params=["sm4", "aes"])
def sealer(request: pytest.FixtureRequest, tmp_path: Path) -> FieldSealer:
    return FieldSealer(tmp_path, SECRET, request.param)


def test_a_cell_hides_its_value_and_opens_to_it(sealer: FieldSealer) -> None:
    cell = sealer.seal("370202199001010012")
    assert cell.startswith("~")
    assert cell.isascii()
    assert "370202199001010012" not in cell
    assert "1990" not in cell
    assert sealer.open(cell) == "370202199001010012"
    assert sealer.open(sealer.seal("张三")) == "张三"
    assert sealer.open(sealer.seal("")) == ""


def test_equal_values_seal_equal_and_different_ones_differ(sealer: FieldSealer) -> None:
    assert sealer.seal("张三") == sealer.seal("张三")
    assert sealer.seal("张三") != sealer.seal("张四")
    # A value given as a number seals to the cell its column's text holds.
    assert sealer.seal_value(42) == sealer.seal_array(pa.array([42]))[0].as_py()


def test_the_key_is_kept_outside_the_database_sealed_and_private(tmp_path: Path) -> None:
    first = FieldSealer(tmp_path, SECRET).seal("110101199001011234")
    path = key_path(tmp_path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert b"110101" not in path.read_bytes()
    # Another process, same data dir and secret: the same key, the same cells.
    assert FieldSealer(tmp_path, SECRET).seal("110101199001011234") == first


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda c: c[:-2] + ("AB" if c[-2:] != "AB" else "CD"), id="ciphertext"),
        pytest.param(lambda c: c[:3] + ("x" if c[3] != "x" else "y") + c[4:], id="tag"),
        pytest.param(lambda c: c[1:], id="no-mark"),
        pytest.param(lambda _: "~" + "!" * 30, id="not-base64"),
        pytest.param(lambda c: c[:8], id="too-short"),
        pytest.param(lambda _: "110101199001011234", id="written-in-the-clear"),
    ],
)
def test_a_changed_cell_fails_to_open(sealer: FieldSealer, tamper: object) -> None:
    cell = sealer.seal("110101199001011234")
    with pytest.raises(FieldSealError):
        sealer.open(tamper(cell))  # type: ignore[operator]


def test_another_secret_opens_nothing(tmp_path: Path) -> None:
    cell = FieldSealer(tmp_path, SECRET).seal("张三")
    with pytest.raises(FieldSealError, match="GOVSHARE_SECRET_KEY"):
        FieldSealer(tmp_path, "t" * 40).open(cell)
    other_dir = tmp_path / "other"
    with pytest.raises(FieldSealError):
        FieldSealer(other_dir, SECRET).open(cell)  # another key altogether


def test_a_damaged_key_file_is_told_plainly(tmp_path: Path) -> None:
    FieldSealer(tmp_path, SECRET).seal("x")
    key_path(tmp_path).write_text("{not json")
    with pytest.raises(FieldSealError, match=r"field-seal\.json"):
        FieldSealer(tmp_path, SECRET).seal("x")


@pytest.mark.parametrize(
    "values",
    [
        pytest.param(pa.array(["a", None, "张三"]), id="text"),
        pytest.param(pa.array([1, None, -7], pa.int64()), id="int"),
        pytest.param(pa.array([1.5, None, -0.25]), id="float"),
        pytest.param(pa.array([date(1990, 1, 2), None]), id="date"),
        pytest.param(pa.array([datetime(2026, 9, 30, 8, 30, 1, 5)], pa.timestamp("us")), id="ts"),
        pytest.param(pa.array([Decimal("12.30"), None], pa.decimal128(10, 2)), id="decimal"),
        pytest.param(pa.array([True, False, None]), id="bool"),
    ],
)
def test_values_come_back_as_the_type_they_had(sealer: FieldSealer, values: pa.Array) -> None:
    cells = sealer.seal_array(values)
    assert cells.type == pa.string()
    assert cells.null_count == values.null_count
    kind = type_name(values.type)
    assert sealer.open_array(cells, kind).to_pylist() == values.to_pylist()
    assert [sealer.open_value(c, kind) for c in cells.to_pylist()] == values.to_pylist()


def test_a_rotation_adds_a_key_and_every_cell_still_opens(sealer: FieldSealer) -> None:
    first = sealer.under(1).seal("110101199001011234")
    assert sealer.newest() == 1
    assert rotate(sealer.data_dir, SECRET, sealer.alg) == 2
    assert [g for g, _ in key_ages(sealer.data_dir)] == [1, 2]
    # A store still on the first key seals as before; one resealed seals under the new.
    assert sealer.under(1).seal("110101199001011234") == first
    second = sealer.under(2).seal("110101199001011234")
    assert second.startswith("~2.")
    assert second != first
    assert "110101" not in second
    assert (generation_of(first), generation_of(second)) == (1, 2)
    # Any sealer opens both, in one column or apart, whichever key it seals under.
    for opener in (sealer, sealer.under(1), FieldSealer(sealer.data_dir, SECRET, sealer.alg)):
        assert opener.open_texts([second, None, first]) == [
            "110101199001011234",
            None,
            "110101199001011234",
        ]
    # A cell's generation is part of what is checked: moved to another, it fails.
    with pytest.raises(FieldSealError):
        sealer.open("~2." + first[1:])
    with pytest.raises(FieldSealError, match="第 7 代"):
        sealer.open("~7." + second[3:])
    for bad in ("~x." + second[3:], "~0." + second[3:], "~1." + second[3:]):
        with pytest.raises(FieldSealError):
            sealer.open(bad)


def test_a_key_file_of_the_first_form_is_generation_one_and_rotates(tmp_path: Path) -> None:
    """A hub that sealed before rotations existed kept one key in the file's first form:
    it is generation 1, and its cells still open after a rotation."""
    key = FindableSeal.new_key("sm4")
    path = key_path(tmp_path)
    path.parent.mkdir(parents=True)
    record = {"version": 1, "key": seal(SECRET, key), "created_at": "2026-12-01T00:00:00+00:00"}
    path.write_bytes(orjson.dumps(record))
    cell = FieldSealer(tmp_path, SECRET).seal("张三")
    assert generation_of(cell) == 1
    assert rotate(tmp_path, SECRET, "sm4") == 2
    assert FieldSealer(tmp_path, SECRET).open(cell) == "张三"
    assert FieldSealer(tmp_path, SECRET).under(1).seal("张三") == cell
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    with pytest.raises(FieldSealError, match="GOVSHARE_SECRET_KEY"):
        rotate(tmp_path, "t" * 40, "sm4")  # another secret adds no key it could not open
    assert [g for g, _ in key_ages(tmp_path)] == [1, 2]
