"""A node's signature headers, crafted: every malformed one is refused as a bad
signature (401, the error envelope), never handed to the database or to arithmetic."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.factories import World

NOW = "now"  # the request's own time, filled in when it is sent


@pytest.mark.parametrize(
    ("node_id", "timestamp", "signature"),
    [
        pytest.param("99999999999999999999", NOW, "00", id="id-beyond-any-column"),
        pytest.param("-1", NOW, "00", id="negative-id"),
        pytest.param("٣", NOW, "00", id="non-ascii-digit"),
        pytest.param("1", "9" * 400, "00", id="timestamp-no-float-holds"),
        pytest.param("1", "-5", "00", id="negative-timestamp"),
        pytest.param("1", NOW, "zz", id="signature-not-hex"),
    ],
)
def test_a_crafted_header_is_a_bad_signature(
    world: World, node_id: str, timestamp: str, signature: str
) -> None:
    if timestamp == NOW:
        timestamp = str(int(time.time()))
    sent = {"X-Node-Id": node_id, "X-Timestamp": timestamp, "X-Nonce": "n" * 32}
    headers = {k: v.encode() for k, v in (sent | {"X-Signature": signature}).items()}
    for path in ("/api/v1/exchange/node/wake", "/api/v1/exchange/node/heartbeat"):
        method = "GET" if path.endswith("wake") else "POST"
        r = httpx.request(method, world.hub.base_url + path, headers=headers, json={})
        assert r.status_code == 401, r.text
        assert r.json()["error"]["code"] == "bad_signature"
