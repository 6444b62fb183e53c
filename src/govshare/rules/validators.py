"""Normalisation shared by every check that compares values from different sources."""

from __future__ import annotations

import re
import unicodedata
from datetime import date

_BLANKS = re.compile(r"\s+")
_DATE = re.compile(r"^(\d{4})[-/.年]?(\d{1,2})[-/.月]?(\d{1,2})日?$")


def normalize_text(value: str) -> str:
    """Full-width forms to half-width (NFKC), blanks trimmed and collapsed."""
    return _BLANKS.sub(" ", unicodedata.normalize("NFKC", value)).strip()


def normalize_date(value: str) -> str | None:
    """A date written 2024-01-31, 20240131, 2024/1/31 or 2024年1月31日 in ISO form; None
    when it is not a date (2023-02-30 is not)."""
    m = _DATE.match(normalize_text(value).split("T")[0].split(" ")[0])
    if m is None:
        return None
    try:
        return date(int(m[1]), int(m[2]), int(m[3])).isoformat()
    except ValueError:
        return None
