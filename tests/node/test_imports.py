"""The node is deployed on its own and restarted after every fault: it imports only the
neutral rules and the exchange's wire format, never the hub's domains, the hub's
database plumbing or its settings (each of which cost seconds of start-up)."""

from __future__ import annotations

import json
import subprocess
import sys

HUB_ONLY = (
    "govshare.catalog",
    "govshare.sharing",
    "govshare.db",
    "govshare.config",
    "govshare.security.service",
    "govshare.security.models",
    "sqlalchemy.orm",
    "psycopg",
    "pydantic_settings",
)


def _imported_after(code: str) -> list[str]:
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120
    )
    return list(json.loads(out.stdout.splitlines()[-1]))


def _hub_modules(modules: list[str]) -> list[str]:
    return [m for m in modules if m.startswith(HUB_ONLY)]


def test_node_agent_imports_no_hub_domain() -> None:
    assert _hub_modules(_imported_after("import govshare.node.agent")) == []


def test_node_run_command_imports_no_hub_settings() -> None:
    # What ``govshare node run`` loads before it starts the agent.
    code = "import govshare.cli\nimport govshare.node.agent\nimport govshare.node.config"
    assert _hub_modules(_imported_after(code)) == []
