"""The shared spreadsheet-cell rules, and every CSV writer that must use them."""

from __future__ import annotations

import csv
import io

import pytest
from openpyxl import Workbook, load_workbook

from govshare.rules import spreadsheet as cells
from govshare.sharing import data_api

FORMULAS = ["=1+1", "+1+cmd|' /C calc'!A0", "-2+3", "@SUM(A1)", "\t=1", "\r=1", "=", "-"]
SAFE = ["姓名", "a=b", "", "'plain", "-12.5", "+86", "3e5", "1-2"]


@pytest.mark.parametrize("value", FORMULAS)
def test_formula_like_text_is_quoted_and_restored(value: str) -> None:
    assert cells.csv_cell(value) == "'" + value
    assert cells.restore_text(cells.csv_cell(value)) == value


@pytest.mark.parametrize("value", [*SAFE, "'=1", "''-x"])
def test_every_text_round_trips(value: str) -> None:
    assert cells.restore_text(cells.csv_cell(value)) == value


@pytest.mark.parametrize("value", SAFE)
def test_plain_text_and_numbers_are_left_alone(value: str) -> None:
    assert cells.csv_cell(value) == value


def test_non_text_values_pass_through() -> None:
    assert [cells.csv_cell(v) for v in (-3, 1.5, None, True)] == [-3, 1.5, None, True]


def test_xlsx_cells_are_text_never_formulas() -> None:
    for write_only in (True, False):
        wb = Workbook(write_only=write_only)
        ws = wb.create_sheet("x") if write_only else wb.active
        assert ws is not None
        ws.append(cells.xlsx_row(ws, [*FORMULAS, *SAFE, -3]))
        buf = io.BytesIO()
        wb.save(buf)
        row = next(load_workbook(buf).worksheets[0].iter_rows())
        assert not [c.value for c in row if c.data_type == "f"]
        # openpyxl's own XML writer keeps no bare CR ("\r=1" reads back as "\n=1"); with
        # lxml installed (SpiffWorkflow brings it) the CR survives. Text either way.
        read = [str(c.value).replace("\r", "\n") for c in row[: len(FORMULAS)]]
        assert read == [v.replace("\r", "\n") for v in FORMULAS]
        assert all(c.quotePrefix for c in row[: len(FORMULAS)])
        assert row[-1].value == -3


def test_data_service_csv_quotes_formula_cells() -> None:
    response = data_api._csv(["xm", "n"], [{"xm": '=HYPERLINK("x")', "n": -5}, {"xm": "@A1"}])
    rows = list(csv.reader(io.StringIO(bytes(response.body).decode("utf-8-sig"))))
    assert rows == [["xm", "n"], ['\'=HYPERLINK("x")', "-5"], ["'@A1", ""]]
