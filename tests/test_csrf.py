"""CSRF on the console over real HTTP: only a valid bearer token replaces the cookie path.

A console cookie plus any other ``Authorization`` header (Basic, a stray scheme) is
still the cookie session and needs the CSRF token; an invalid bearer token is refused.
"""

from __future__ import annotations

import pytest

from tests.catalog.console import csrf_of, signed_in
from tests.factories import PASSWORD, World, resource_payload


@pytest.mark.parametrize(
    "authorization",
    ["Basic YWRtaW46YWRtaW4=", "Digest username=x", "Token abc", "bearer", "Bearer"],
)
def test_cookie_with_a_non_bearer_authorization_still_needs_csrf(
    world: World, authorization: str
) -> None:
    dept = world.department()
    with signed_in(world, dept.registrar) as client:
        r = client.post(
            "/api/v1/catalog/resources",
            json=resource_payload(name="跨站伪造的目录"),
            headers={"Authorization": authorization},
        )
        assert r.status_code == 403, r.text
        assert r.json()["error"]["code"] == "csrf_failed"
        # The console's own form post with the same header and no token: refused too.
        logout = client.post("/logout", headers={"Authorization": authorization})
        assert logout.status_code == 403
        assert "CSRF" in logout.text
        assert client.get("/api/v1/me").status_code == 200  # still signed in


def test_cookie_with_a_non_bearer_authorization_and_the_csrf_token_passes(world: World) -> None:
    dept = world.department()
    with signed_in(world, dept.registrar) as client:
        r = client.post(
            "/logout",
            headers={"Authorization": "Basic YWRtaW46YWRtaW4=", "X-CSRF-Token": csrf_of(client)},
        )
        assert r.status_code == 303
        assert client.get("/api/v1/me").status_code == 401


def test_cookie_with_an_invalid_bearer_token_is_refused(world: World) -> None:
    dept = world.department()
    with signed_in(world, dept.registrar) as client:
        r = client.post("/logout", headers={"Authorization": "Bearer not-a-real-token"})
        assert r.status_code == 303  # refused: the console answers 401 with the login page
        assert r.headers["location"].startswith("/login?next=")
        assert client.get("/api/v1/me").status_code == 200
        api = client.post(
            "/api/v1/auth/revoke", headers={"Authorization": "Bearer not-a-real-token"}
        )
        assert api.status_code == 401
        assert api.json()["error"]["code"] == "not_authenticated"


def test_a_valid_bearer_token_needs_no_csrf_token(world: World) -> None:
    dept = world.department()
    with signed_in(world, dept.registrar) as client:
        token = world.hub.token(dept.resource_admin, PASSWORD)
        r = client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
        assert r.json()["name"] == dept.resource_admin  # the token, not the cookie, decides
        r = client.post("/api/v1/auth/revoke", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 204
