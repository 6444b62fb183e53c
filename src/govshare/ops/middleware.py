"""One ASGI middleware for what every request carries: its request id (accepted from a
sane ``X-Request-ID`` or made here, returned in the same header, bound for the log
lines, the error envelope and the audit entries) and its latency, observed per route
template — never the raw path, whose ids would make a label value per object."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from typing import Any

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from govshare import requestid, telemetry
from govshare.web.headers import add_missing

log = structlog.get_logger("govshare.request")
_HEADER = requestid.HEADER.lower().encode("latin-1")


def _templates(routes: Iterable[Any], prefix: str = "") -> Iterator[tuple[int, str]]:
    """(id of the route object, its full path template) for every route, following
    included routers: newer FastAPI keeps them nested and puts the included (unprefixed)
    route in ``scope["route"]``."""
    for route in routes:
        inner = getattr(route, "original_router", None)
        if inner is not None:
            context = getattr(route, "include_context", None)
            yield from _templates(inner.routes, prefix + (getattr(context, "prefix", "") or ""))
        elif isinstance(path := getattr(route, "path", None), str):
            yield id(route), prefix + path


class _Templates:
    """The route table's templates, read once per application (after start-up, when
    every router has been included)."""

    def __init__(self) -> None:
        self._by_app: dict[int, dict[int, str]] = {}

    def of(self, scope: Scope) -> str:
        route = scope.get("route")
        if route is None:
            return "unmatched"
        app = scope.get("app")
        found = self._by_app.get(id(app))
        if found is None:
            found = {}
            for key, template in _templates(getattr(app, "routes", [])):
                found.setdefault(key, template)
            self._by_app[id(app)] = found
        path = found.get(id(route)) or getattr(route, "path", None)
        return path if isinstance(path, str) and path else "unmatched"


class RequestContext:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.templates = _Templates()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = next((v for k, v in scope["headers"] if k == _HEADER), None)
        rid = requestid.accept(incoming.decode("latin-1") if incoming is not None else None)
        # Left bound when the request fails: the 500 handler outside this middleware
        # still answers with the id. Each request runs in a task (a context) of its own.
        requestid.set_request_id(rid)
        structlog.contextvars.bind_contextvars(request_id=rid)
        status = 500
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                add_missing(message, [(_HEADER, rid.encode("latin-1"))])
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            route = self.templates.of(scope)
            telemetry.HTTP_SECONDS.labels(scope["method"], route, str(status)).observe(elapsed)
            if status >= 400:
                (log.error if status >= 500 else log.info)(
                    "request answered with an error",
                    method=scope["method"],
                    route=route,
                    path=scope["path"],
                    status=status,
                    ms=round(elapsed * 1000, 1),
                )
