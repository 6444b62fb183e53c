"""Cells that are safe to open in a spreadsheet program (公式注入防护).

A text cell that begins with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is
read by Excel, WPS and LibreOffice as a formula (OWASP "CSV injection"): a catalog
entry named ``=HYPERLINK(...)`` or a shared record holding ``@SUM(...)`` would run in
the reader's spreadsheet. Every CSV and XLSX the platform writes goes through this
module:

- CSV: such a cell is written with a leading single quote ``'`` (OWASP's advice);
  :func:`restore_text` takes it off again when the platform reads its own export back.
- XLSX: such a cell is written as a text cell with Excel's quote prefix (what Excel
  stores for a typed ``'=…``), never as a formula; its value is unchanged.

Numbers are not formulas: ints and floats, and texts that are plainly a number
(``-12.5``, ``+86``), are written as they are, so a data export keeps its values.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # openpyxl takes half a second to import: only when a workbook is made
    from openpyxl.worksheet._write_only import WriteOnlyWorksheet
    from openpyxl.worksheet.worksheet import Worksheet

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
QUOTE = "'"
_PLAIN_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
UTF8_BOM = "\ufeff"


def is_formula_like(text: str) -> bool:
    """Would a spreadsheet program take this text cell for a formula?"""
    return text.startswith(FORMULA_PREFIXES) and not _PLAIN_NUMBER.fullmatch(text)


def _needs_quote(text: str) -> bool:
    # A text that already begins with quotes before a formula character gets one more,
    # so that restore_text gives back exactly what was written.
    return is_formula_like(text.lstrip(QUOTE))


def csv_cell(value: Any) -> Any:
    """A value for a CSV cell: formula-like text gets a leading ``'``."""
    if isinstance(value, str) and _needs_quote(value):
        return QUOTE + value
    return value


def restore_text(text: str) -> str:
    """Undo :func:`csv_cell` on a cell read back from a CSV the platform wrote."""
    if text.startswith(QUOTE) and _needs_quote(text[1:]):
        return text[1:]
    return text


def xlsx_cell(ws: Worksheet | WriteOnlyWorksheet, value: Any) -> Any:
    """A value for ``ws.append``: formula-like text becomes a quoted text cell."""
    if isinstance(value, str) and (value.startswith("=") or is_formula_like(value)):
        from openpyxl.cell import WriteOnlyCell

        cell = WriteOnlyCell(ws, value=value)
        cell.data_type = "s"  # openpyxl would otherwise store "=…" as a formula
        cell.quotePrefix = True
        return cell
    return value


def xlsx_row(ws: Worksheet | WriteOnlyWorksheet, values: Iterable[Any]) -> list[Any]:
    """A row for ``ws.append`` with every cell made safe."""
    return [xlsx_cell(ws, v) for v in values]


def csv_bytes(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> bytes:
    """A UTF-8 CSV (with BOM, so Excel reads it as UTF-8) with every cell made safe."""
    return csv_text(header, rows).encode("utf-8")


def csv_text(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([csv_cell(h) for h in header])
    writer.writerows([csv_cell(v) for v in row] for row in rows)
    return UTF8_BOM + out.getvalue()


def csv_records_text(fields: Sequence[str], records: Iterable[Mapping[str, Any]]) -> str:
    """Records (dicts) as CSV text with BOM, columns ``fields``, every cell made safe."""
    return csv_text(fields, ([r.get(f, "") for f in fields] for r in records))
