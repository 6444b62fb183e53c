"""/readyz: each check fails for a real cause, and the hub says which and why."""

from __future__ import annotations

import shutil
from datetime import date
from typing import Any

import httpx

from govshare.rules.clock import fixed_today
from tests.conftest import StartHub

# 2026's holidays are in the bundled calendar; 45 days from 2 March stay in 2026.
KNOWN_DAY = date(2026, 3, 2)


def _ready(base_url: str) -> tuple[int, dict[str, Any]]:
    r = httpx.get(f"{base_url}/readyz", timeout=30)
    return r.status_code, r.json()


def _checks(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in body["checks"]}


def test_ready_when_every_check_passes(start_hub: StartHub) -> None:
    hub = start_hub(ready_min_free_mb=1, ready_calendar_days=45)
    with fixed_today(KNOWN_DAY):
        status, body = _ready(hub.base_url)
    assert status == 200, body
    assert body["status"] == "ok"
    checks = _checks(body)
    assert list(checks) == ["database", "bus", "shared_stores", "disk", "calendar"]
    assert all(c["status"] == "ok" for c in checks.values())
    assert checks["database"]["message"] == f"可以查询 ({hub.backend} answers)"
    assert "2026-04-16" in checks["calendar"]["message"]


def test_not_ready_when_the_disk_has_less_free_space_than_required(
    start_hub: StartHub,
) -> None:
    free_mb = shutil.disk_usage(start_hub(ready_min_free_mb=1).settings.data_dir).free // 2**20
    hub = start_hub(ready_min_free_mb=free_mb + 1_000_000)
    with fixed_today(KNOWN_DAY):
        status, body = _ready(hub.base_url)
    assert status == 503
    assert body["status"] == "fail"
    checks = _checks(body)
    assert checks["disk"]["status"] == "fail"
    assert f"at least {free_mb + 1_000_000} MiB required" in checks["disk"]["message"]
    assert [n for n, c in checks.items() if c["status"] == "fail"] == ["disk"]


def test_not_ready_when_the_shared_stores_cannot_be_opened(start_hub: StartHub) -> None:
    missing = start_hub(ready_min_free_mb=1).settings.data_dir / "no-such-dir" / "shared.db"
    hub = start_hub(ready_min_free_mb=1, shared_store_url=f"sqlite:///{missing}")
    with fixed_today(KNOWN_DAY):
        status, body = _ready(hub.base_url)
    assert status == 503
    checks = _checks(body)
    assert checks["shared_stores"]["status"] == "fail"
    assert "OperationalError" in checks["shared_stores"]["message"]
    assert checks["database"]["status"] == "ok"


def test_a_calendar_lacking_the_coming_year_warns_but_the_hub_stays_ready(
    start_hub: StartHub,
) -> None:
    hub = start_hub(ready_min_free_mb=1, ready_calendar_days=45)
    # 45 days from 20 December 2099 reach 2100, which no calendar knows. Deadlines are
    # then provisional (counted by weekends), which stops no request: a warning.
    with fixed_today(date(2099, 12, 20)):
        status, body = _ready(hub.base_url)
    assert status == 200
    calendar = _checks(body)["calendar"]
    assert calendar["status"] == "warn"
    assert "2099、2100" in calendar["message"]
    with fixed_today(KNOWN_DAY):
        assert _ready(hub.base_url)[0] == 200
