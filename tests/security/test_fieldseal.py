"""字段加密: a sealed cell hides its value, equal values seal equal (so lookups and joins
work on sealed cells), a changed cell or another key fails to open instead of giving
another value, and values come back as the type they had."""

from __future__ import annotations

import os
import stat
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest

from govshare.security.fieldseal import FieldSealer, FieldSealError, key_path, type_name

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
