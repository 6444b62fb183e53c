"""bench/exchange.py's command line: a row count it cannot measure is refused up front."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("rows", ["0", "-5", "many"])
def test_a_row_count_below_one_is_refused_before_anything_starts(rows: str) -> None:
    """``--rows 0`` built an empty source, started a hub and two nodes, and then failed
    with ``no such table: person_copy`` (the subscriber makes its table with the first
    package, and none came)."""
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "exchange.py"), "--rows", rows],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert done.returncode == 2
    assert "argument --rows" in done.stderr
    assert "Traceback" not in done.stderr
