"""One ASGI middleware for what every request carries: its request id (accepted from a
sane ``X-Request-ID`` or made here, returned in the same header, bound for the log
lines, the error envelope and the audit entries) and its latency, observed per route
template — never the raw path, whose ids would make a label value per object."""

from __future__ import annotations

import time

import structlog
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from govshare import requestid, telemetry

log = structlog.get_logger("govshare.request")
_HEADER = requestid.HEADER.lower().encode("latin-1")


def _route(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) and path else "unmatched"


class RequestContext:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

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
                headers = MutableHeaders(scope=message)
                if requestid.HEADER not in headers:
                    headers.append(requestid.HEADER, rid)
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            route = _route(scope)
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
