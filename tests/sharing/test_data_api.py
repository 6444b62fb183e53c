"""The lean data routes parse bodies before any signature check: whatever arrives,
the answer is a 4xx in the envelope, never a 500."""

from __future__ import annotations

import pytest

from tests.live import LiveHub

DATA = "/api/v1/data/101001/000001"
SIGNED_HEADERS = {
    "Content-Type": "application/json",
    "X-App-Key": "ak_nobody",
    "X-Timestamp": "0",
    "X-Nonce": "n" * 24,
    "X-Signature": "0" * 64,
}


@pytest.mark.parametrize("action", ["lookup", "query", "verify"])
@pytest.mark.parametrize(
    "body",
    [
        b'{"keys": ["\xff\xfe\xfa"]}',  # not UTF-8
        b"\xc3\x28",  # a broken two-byte sequence, and nothing else
        b"[" * 100_000 + b"]" * 100_000,  # nested past the parser's recursion limit
        b'{"keys": ' + b"[" * 50_000 + b"]" * 50_000 + b"}",
    ],
    ids=["latin", "broken-utf8", "nested-array", "nested-in-field"],
)
def test_undecodable_bodies_are_422_before_the_signature(
    hub: LiveHub, action: str, body: bytes
) -> None:
    with hub.client() as c:
        r = c.post(f"{DATA}/{action}", content=body, headers=SIGNED_HEADERS)
    assert r.status_code == 422, r.text[:300]
    error = r.json()["error"]
    assert error["code"] == "invalid_input"
    assert error["details"][0]["message"] == "JSON decode error"


def test_deep_nesting_on_a_fastapi_route_is_a_client_error(hub: LiveHub) -> None:
    with hub.client() as c:
        r = c.post(
            "/api/v1/auth/token",
            content=b"[" * 100_000 + b"]" * 100_000,
            headers={"Content-Type": "application/json"},
        )
    assert 400 <= r.status_code < 500
    assert set(r.json()) == {"error"}
