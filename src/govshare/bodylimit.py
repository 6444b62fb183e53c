"""Request-body size limit (请求体大小限制), enforced while the body streams in.

A pure ASGI middleware: a declared ``Content-Length`` over the limit is refused before
the application sees the request; a body without one (chunked) is counted as it is
received, and the read that passes the limit raises ``BodyTooLarge``, which the app's
error handlers answer with 413 in the usual envelope (or error page). Nothing beyond
the limit is ever buffered.
"""

from __future__ import annotations

from collections.abc import Mapping

import orjson
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

MESSAGE = "请求体过大 (request body too large)"


class BodyTooLarge(HTTPException):
    """Raised from ``receive`` (an HTTPException, so FastAPI's body parsing passes it on
    instead of turning it into a 400)."""

    code = "body_too_large"

    def __init__(self, limit: int) -> None:
        super().__init__(status_code=413, detail=MESSAGE)
        self.limit = limit

    @property
    def details(self) -> list[dict[str, str]]:
        return [
            {"field": "body", "message": f"at most {self.limit} bytes (最多 {self.limit} 字节)"}
        ]


class BodyLimit:
    """``limit`` bytes for every request, ``overrides`` for exact paths that need more
    (catalog imports, node packages)."""

    def __init__(self, app: ASGIApp, *, limit: int, overrides: Mapping[str, int]) -> None:
        self.app = app
        self.limit = limit
        self.overrides = dict(overrides)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.overrides.get(scope["path"], self.limit)
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await _refuse(scope, send, limit)
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        await self.app(scope, counted, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            text = value.decode("latin-1").strip()
            return int(text) if text.isdigit() and len(text) < 20 else None
    return None


async def _refuse(scope: Scope, send: Send, limit: int) -> None:
    error = BodyTooLarge(limit)
    if scope["path"].startswith("/api/"):
        body = orjson.dumps(
            {"error": {"code": error.code, "message": MESSAGE, "details": error.details}}
        )
        content_type = b"application/json"
    else:
        body = f"<!doctype html><meta charset=utf-8><title>413</title><p>{MESSAGE}</p>".encode()
        content_type = b"text/html; charset=utf-8"
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", content_type),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
