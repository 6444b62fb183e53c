"""``govshare`` as a real subprocess against a test hub's data dir and database, with
none of the caller's own ``GOVSHARE_*`` settings leaking in."""

from __future__ import annotations

import os
import subprocess
import sys

from govshare.config import Settings


def hub_cli(
    settings: Settings, *args: str, secret: str | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run ``govshare ARGS`` on ``settings``' hub (``secret`` replaces its secret key)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOVSHARE_")}
    env |= {
        "GOVSHARE_SECRET_KEY": secret if secret is not None else settings.secret_key,
        "GOVSHARE_DATA_DIR": str(settings.data_dir),
        "COLUMNS": "250",
    }
    if settings.database_url:
        env["GOVSHARE_DATABASE_URL"] = settings.database_url
    return subprocess.run(
        [sys.executable, "-m", "govshare.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
    )
