"""Kill -9 the hub, the provider's node or the subscriber's node while a reconciliation's
checksum is being taken: the reconciliation still completes (or times out, fails with an
alert and is retried until one completes) and none is left pending."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.hubenv import HubEnv, setup_hub
from tests.exchange.scenario import make_source
from tests.pg import PostgresServer

ROWS = 300
DELAY = 3.0  # seconds each checksum takes (the nodes' test-only checksum_delay_seconds)
TIMEOUT = 40  # the hub's reconciliation_timeout_seconds


def _taking_checksum(log: Path, role: str) -> bool:
    if not log.exists():
        return False
    for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
        if "taking checksum" in line and (f"role={role}" in line or f'"role": "{role}"' in line):
            return True
    return False


def _checksums_taken(log: Path) -> list[str]:
    """The command ids of every checksum the node started, in order."""
    return re.findall(r"taking checksum\s+command=(\d+)", log.read_text(encoding="utf-8"))


def _wait_for(what: str, cond: Any, env: HubEnv, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        for p in env.procs.values():
            assert p.alive(), p.death()
        time.sleep(0.2)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("victim", "watched", "role", "backend"),
    [
        ("hub", "provider", "source", "sqlite"),
        ("hub", "provider", "source", "postgresql"),
        ("provider", "provider", "source", "sqlite"),
        ("consumer", "consumer", "target", "sqlite"),
    ],
)
def test_kill9_while_a_checksum_is_taken(
    tmp_path: Path,
    request: pytest.FixtureRequest,
    victim: str,
    watched: str,
    role: str,
    backend: str,
) -> None:
    database_url = None
    if backend == "postgresql":
        server: PostgresServer = request.getfixturevalue("postgres")
        database_url = server.create_database(f"reconcile_{victim}")
    source, target = tmp_path / "business.db", tmp_path / "consumer.db"
    make_source(source, ROWS)
    env = setup_hub(
        tmp_path,
        source_url=f"sqlite:///{source}",
        target_url=f"sqlite:///{target}",
        provider_config={
            "source": "biz",
            "table": "person",
            "key": ["id"],
            "cursor_column": "version",
            "schedule": {"interval_seconds": 0.5},
        },
        database_url=database_url,
        extra_env={"GOVSHARE_RECONCILIATION_TIMEOUT_SECONDS": str(TIMEOUT)},
        node_toml=f"checksum_delay_seconds = {DELAY}\n",
    )
    try:
        env.start_all()
        # The hub's monitor requests the day's reconciliation at once; catch its checksum.
        log = env.procs[watched].log
        _wait_for(f"{watched} taking the {role} checksum", lambda: _taking_checksum(log, role), env)
        env.procs[victim].kill9()
        if victim == "hub":
            time.sleep(DELAY + 1)  # the node finishes its checksum while the hub is down
        env.procs[victim].start()
        if victim == "hub":
            env.wait_healthy()

        recs: list[dict[str, Any]] = []

        def settled() -> bool:
            nonlocal recs
            with env.api() as c:
                recs = c.get("/api/v1/exchange/reconciliations").json()
            return bool(recs) and all(r["outcome"] != "pending" for r in recs)

        _wait_for("every reconciliation to settle", settled, env, timeout=TIMEOUT * 4 + 60)
        latest = max(recs, key=lambda r: r["id"])
        assert latest["outcome"] == "match", recs
        assert latest["source"]["count"] == latest["target"]["count"] == ROWS
        assert {r["outcome"] for r in recs} <= {"match", "failed"}, recs
        if victim == "hub":
            # The answer the hub could not take was kept and re-sent, not taken again.
            taken = _checksums_taken(env.procs["provider"].log)
            assert len(taken) == len(set(taken)), taken
    finally:
        env.stop_all()
