"""Security headers on every answer: pages, static files and the API.

A pure ASGI middleware (no per-request task or body buffering), so the busy data
routes pay only for a few header lines. A header a route sets itself is kept.
"""

from __future__ import annotations

import re
from urllib.parse import quote

from starlette.types import ASGIApp, Message, Receive, Scope, Send

_UNSAFE_IN_FALLBACK = re.compile(r"[^A-Za-z0-9._-]")


def attachment(fallback: str, name: str) -> dict[str, str]:
    """The header of a download saved as ``name`` (Chinese welcome: RFC 6266's
    ``filename*``), with an ASCII ``fallback`` for clients that read only ``filename``
    (anything but letters, digits, dot, dash and underscore becomes ``_``)."""
    plain = _UNSAFE_IN_FALLBACK.sub("_", fallback)
    return {
        "Content-Disposition": f'attachment; filename="{plain}"; '
        f"filename*=UTF-8''{quote(name, safe='')}"
    }


# No inline scripts anywhere: pages load /static/*.js and read their data from
# <script type="application/json"> blocks and data-* attributes. No inline <style>
# sheets either (htmx's indicator styles are in app.css); style="" attributes stay
# allowed, as ECharts' tooltips write them into their HTML.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "style-src-attr 'unsafe-inline'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
# The OpenAPI page is FastAPI's Swagger UI (an inline script and a CDN): it may not be
# framed, and nothing more.
DOCS_POLICY = "frame-ancestors 'none'"
DOCS_PATHS = frozenset({"/docs", "/docs/oauth2-redirect"})
HSTS = "max-age=31536000"


def security_headers(path: str, *, https: bool) -> list[tuple[str, str]]:
    """The headers an answer to ``path`` carries; HSTS only over HTTPS."""
    headers = [
        ("Content-Security-Policy", DOCS_POLICY if path in DOCS_PATHS else CONTENT_SECURITY_POLICY),
        ("X-Content-Type-Options", "nosniff"),
        ("X-Frame-Options", "DENY"),
        ("Referrer-Policy", "same-origin"),
    ]
    if https:
        headers.append(("Strict-Transport-Security", HSTS))
    return headers


class SecurityHeadersMiddleware:
    """Adds :func:`security_headers` to every HTTP answer.

    Whether the request came over HTTPS is the scheme the server reports, which
    uvicorn takes from ``X-Forwarded-Proto`` only when the proxy's address is trusted
    (``GOVSHARE_FORWARDED_ALLOW_IPS``).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        # Encoded once per kind of answer (the docs or not, HTTPS or not): the data
        # services answer over a thousand requests a second through here.
        self._raw: dict[tuple[bool, bool], list[tuple[bytes, bytes]]] = {}

    def _extra(self, path: str, https: bool) -> list[tuple[bytes, bytes]]:
        kind = (path in DOCS_PATHS, https)
        raw = self._raw.get(kind)
        if raw is None:
            raw = self._raw[kind] = [
                (name.lower().encode("latin-1"), value.encode("latin-1"))
                for name, value in security_headers(path, https=https)
            ]
        return raw

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = self._extra(scope["path"], scope.get("scheme") == "https")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                add_missing(message, extra)
            await send(message)

        await self.app(scope, receive, send_with_headers)


def add_missing(message: Message, headers: list[tuple[bytes, bytes]]) -> None:
    """Append to an ``http.response.start`` message the ``headers`` (lower-case names)
    it does not carry yet, as ``MutableHeaders`` would, in one pass over its headers."""
    raw = message["headers"] = list(message.get("headers", ()))
    present = {name.lower() for name, _ in raw}
    raw.extend(h for h in headers if h[0] not in present)
