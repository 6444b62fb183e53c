"""Watching which pages a source reader's native read gave (for the native read's tests)."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pytest

from govshare.node import native


def pages_read(reader: native.NativeReader, monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """A list that grows with each page asked of ``reader``: True where it read the page,
    False where it left it to the Python path."""
    read, pages = reader.read, []

    def counted(stmt: Any, cursor: Any) -> pa.Table | None:
        table = read(stmt, cursor)
        pages.append(table is not None)
        return table

    monkeypatch.setattr(reader, "read", counted)
    return pages
