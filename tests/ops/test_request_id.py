"""Request ids: from a user's error to the log line and the audit row."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import httpx
import pytest
import structlog
from sqlalchemy import select

from govshare.ops.logging import configure_logging, resolve_format
from govshare.requestid import accept
from govshare.security.audit import verify_chain
from govshare.security.models import AuditEntry
from tests.factories import PASSWORD, World


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    configure_logging("json", stream=stream)
    yield stream
    structlog.reset_defaults()
    root = logging.getLogger()
    for handler in [h for h in root.handlers if getattr(h, "_govshare", False)]:
        root.removeHandler(handler)


def _lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.startswith("{")]


def test_an_error_leads_to_its_log_line_and_audit_row(world: World, json_log: io.StringIO) -> None:
    r = httpx.post(
        f"{world.hub.base_url}/api/v1/auth/token",
        json={"username": world.admin, "password": PASSWORD + "wrong"},
        timeout=30,
    )
    assert r.status_code == 401
    rid = r.json()["error"]["request_id"]
    assert r.headers["X-Request-ID"] == rid
    assert len(rid) == 24

    logged = [line for line in _lines(json_log) if line.get("request_id") == rid]
    assert len(logged) == 1
    assert logged[0]["status"] == 401
    assert logged[0]["route"] == "/api/v1/auth/token"
    assert logged[0]["level"] == "info"

    with world.hub.db() as s:
        rows = s.scalars(select(AuditEntry).where(AuditEntry.request_id == rid)).all()
        assert [e.action for e in rows] == ["auth.login_failed"]
        # The id is part of the entry's hash, and the chain still verifies.
        assert verify_chain(s).intact


def test_a_changed_request_id_breaks_the_chain(world: World) -> None:
    r = httpx.post(
        f"{world.hub.base_url}/api/v1/auth/token",
        json={"username": world.admin, "password": PASSWORD + "wrong"},
        headers={"X-Request-ID": "proxy-id-0001"},
        timeout=30,
    )
    assert r.json()["error"]["request_id"] == "proxy-id-0001"
    with world.hub.db() as s:
        entry = s.scalars(select(AuditEntry).where(AuditEntry.request_id == "proxy-id-0001")).one()
        entry.request_id = "proxy-id-0002"
        s.flush()
        report = verify_chain(s)
        assert any(p.seq == entry.seq for p in report.problems)
        s.rollback()


def test_a_sane_incoming_id_is_kept_and_anything_else_replaced(world: World) -> None:
    url = f"{world.hub.base_url}/healthz"
    kept = httpx.get(url, headers={"X-Request-ID": "lb-7f3a.2026:01_x"}, timeout=30)
    assert kept.headers["X-Request-ID"] == "lb-7f3a.2026:01_x"
    for bad in ["short", "x" * 65, "has space in it", "<script>alert(1)</script>"]:
        got = httpx.get(url, headers={"X-Request-ID": bad}, timeout=30).headers["X-Request-ID"]
        assert got != bad
        assert len(got) == 24


def test_accept() -> None:
    assert accept("abcdefgh") == "abcdefgh"
    assert accept(None) != accept(None)
    assert accept("abc\ndefgh") != "abc\ndefgh"


def test_log_format() -> None:
    assert resolve_format("auto", demo=False) == "json"
    assert resolve_format("auto", demo=True) == "console"
    assert resolve_format("console", demo=False) == "console"
    assert resolve_format("json", demo=True) == "json"
