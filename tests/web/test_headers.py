"""Security headers over real HTTP, and templates that keep to the CSP."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from govshare.web.headers import CONTENT_SECURITY_POLICY
from tests.catalog.console import signed_in
from tests.factories import PASSWORD, World

TEMPLATES = Path(__file__).parents[2] / "src" / "govshare" / "templates"


def directives(policy: str) -> dict[str, list[str]]:
    out = {}
    for part in policy.split(";"):
        name, *values = part.split()
        out[name] = values
    return out


def assert_secured(r: httpx.Response, *, https: bool = False) -> None:
    policy = directives(r.headers["content-security-policy"])
    assert policy["script-src"] == ["'self'"], r.url
    assert policy["style-src"] == ["'self'"]  # no inline <style>; style="" attributes only
    assert policy["style-src-attr"] == ["'unsafe-inline'"]
    assert policy["default-src"] == ["'self'"]
    assert policy["object-src"] == ["'none'"]
    assert policy["frame-ancestors"] == ["'none'"]
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["x-frame-options"] == "DENY"
    assert r.headers["referrer-policy"] == "same-origin"
    assert ("strict-transport-security" in r.headers) is https


def test_pages_static_files_and_api_answers_carry_the_headers(world: World) -> None:
    dept = world.department()
    with world.hub.client(follow_redirects=False) as anon:
        for path in ["/login", "/static/app.js", "/healthz", "/no-such-page", "/api/v1/me"]:
            assert_secured(anon.get(path))
        assert anon.get("/no-such-page").status_code == 404
        assert anon.get("/api/v1/me").status_code == 401
    with signed_in(world, dept.registrar) as console:
        for path in ["/", "/catalog", "/catalog/resources/new", "/sharing/stats", "/exchange"]:
            r = console.get(path)
            assert r.status_code in (200, 403), (path, r.status_code)
            assert_secured(r)
    with world.api(dept.registrar) as api:
        assert_secured(api.get("/api/v1/catalog/resources"))


def test_the_api_docs_may_not_be_framed(world: World) -> None:
    with world.hub.client() as c:
        r = c.get("/docs")
    assert r.headers["content-security-policy"] == "frame-ancestors 'none'"
    assert r.headers["x-content-type-options"] == "nosniff"


def test_https_through_a_trusted_proxy_adds_hsts_and_secure_cookies(world: World) -> None:
    """uvicorn believes X-Forwarded-Proto from loopback (GOVSHARE_FORWARDED_ALLOW_IPS)."""
    dept = world.department()
    with world.hub.client(follow_redirects=False) as plain:
        page = plain.get("/login")
        assert_secured(page)
        assert "secure" not in page.headers["set-cookie"].lower()
    via_https = {"X-Forwarded-Proto": "https"}
    with world.hub.client(follow_redirects=False, headers=via_https) as c:
        page = c.get("/login")
        assert_secured(page, https=True)
        assert page.headers["strict-transport-security"] == "max-age=31536000"
        assert "; secure" in page.headers["set-cookie"].lower()
        token = re.search(r'name="login_token" value="([^"]+)"', page.text)
        assert token
        # The Secure cookie is not sent back over plain HTTP: hand it over by hand.
        r = c.post(
            "/login",
            data={"username": dept.registrar, "password": PASSWORD, "login_token": token.group(1)},
            headers={"Cookie": f"govshare_login={token.group(1)}"},
        )
        assert r.status_code == 303, r.text
        session_cookie = next(
            v for k, v in r.headers.multi_items() if k == "set-cookie" and "govshare_session" in v
        )
        assert "; secure" in session_cookie.lower()
        assert_secured(r, https=True)


INLINE_SHEET = re.compile(r"<style[\s>]")
# Data blocks are not scripts: chart data (application/json) and the portal's schema.org
# description for search engines (application/ld+json) are never run by a browser.
INLINE_SCRIPT = re.compile(
    r"<script(?![^>]*\bsrc=)(?![^>]*type=\"application/(?:ld\+)?json\")[^>]*>"
)
INLINE_HANDLER = re.compile(r"\son[a-z]+\s*=", re.IGNORECASE)


@pytest.mark.parametrize(
    "template", sorted(p.relative_to(TEMPLATES).as_posix() for p in TEMPLATES.rglob("*.html"))
)
def test_templates_have_no_inline_scripts_or_handlers(template: str) -> None:
    text = (TEMPLATES / template).read_text(encoding="utf-8")
    assert not INLINE_SCRIPT.findall(text), "inline <script>: move it to /static"
    assert not INLINE_HANDLER.findall(text), "inline event handler: use app.js"
    assert not INLINE_SHEET.findall(text), "inline <style>: move it to app.css"
    assert "javascript:" not in text


def test_the_policy_allows_no_inline_script_no_eval_and_no_inline_sheet() -> None:
    policy = directives(CONTENT_SECURITY_POLICY)
    assert "'unsafe-inline'" not in policy["script-src"]
    assert "'unsafe-eval'" not in policy["script-src"]
    assert "'unsafe-inline'" not in policy["style-src"]


def test_a_download_is_named_in_chinese_with_a_plain_ascii_fallback() -> None:
    from urllib.parse import unquote

    from govshare.web.headers import attachment

    value = attachment('compare-7"; x=.csv', "比对线索-死亡/冒领.csv")["Content-Disposition"]
    plain, encoded = value.split("; filename*=UTF-8''")
    # The fallback cannot close its quotes or add a parameter; the real name survives whole.
    assert plain == 'attachment; filename="compare-7___x_.csv"'
    assert "/" not in encoded
    assert " " not in encoded
    assert unquote(encoded) == "比对线索-死亡/冒领.csv"


def test_a_header_the_route_set_is_kept_whatever_its_case() -> None:
    """``add_missing`` (both answer middlewares): a header the answer carries already,
    in any case, is neither replaced nor repeated; the others are appended once."""
    from govshare.web.headers import add_missing

    message = {
        "type": "http.response.start",
        "status": 200,
        "headers": ((b"X-Frame-Options", b"SAMEORIGIN"), (b"content-type", b"text/plain")),
    }
    add_missing(message, [(b"x-frame-options", b"DENY"), (b"referrer-policy", b"same-origin")])
    assert message["headers"] == [
        (b"X-Frame-Options", b"SAMEORIGIN"),
        (b"content-type", b"text/plain"),
        (b"referrer-policy", b"same-origin"),
    ]
