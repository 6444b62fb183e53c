"""``govshare evaluation``: run a month with a progress bar, refuse a bad month with
exit code 1, export the workbook and the report from the stored run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import TEST_SECRET
from tests.factories import World


def _cli(world: World, *args: str) -> subprocess.CompletedProcess[str]:
    settings = world.hub.settings
    env = {**os.environ, "GOVSHARE_SECRET_KEY": TEST_SECRET, "COLUMNS": "200"}
    env.pop("GOVSHARE_DEMO", None)
    if settings.database_url:
        env["GOVSHARE_DATABASE_URL"] = settings.database_url
    return subprocess.run(
        [sys.executable, "-m", "govshare.cli", *args, "--data-dir", str(settings.data_dir)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )


def test_run_and_export_from_the_command_line(world: World, tmp_path: Path) -> None:
    # A month long over whatever day the suite runs on (the CLI reads the real clock).
    bad = _cli(world, "evaluation", "run", "2020-13")
    assert bad.returncode == 1
    assert "格式不正确" in bad.stderr
    ran = _cli(world, "evaluation", "run", "2020-05")
    assert ran.returncode == 0, ran.stderr + ran.stdout
    assert "2020-05 考核完成" in ran.stdout
    out = tmp_path / "out"
    exported = _cli(world, "evaluation", "export", "2020-05", "--out", str(out))
    assert exported.returncode == 0, exported.stderr
    assert (out / "evaluation-2020-05.xlsx").stat().st_size > 0
    assert (out / "evaluation-2020-05.pdf").read_bytes().startswith(b"%PDF")
    missing = _cli(world, "evaluation", "export", "2020-04")
    assert missing.returncode == 1
    assert "尚未考核" in missing.stderr
