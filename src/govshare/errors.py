"""The platform's error family. Each carries its HTTP status and a stable code.

Domain packages subclass these (``catalog/errors.py``); one handler in ``app.py`` turns
them into the JSON envelope ``{"error": {"code", "message", "details"}}`` for the API
and into an error page for the console.
"""

from __future__ import annotations

from typing import Any


class GovshareError(Exception):
    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, details: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or []

    @property
    def headers(self) -> dict[str, str]:
        """HTTP headers the answer carries besides the envelope."""
        return {}

    def to_dict(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, "details": self.details}}


class InvalidInput(GovshareError):
    status = 422
    code = "invalid_input"


class NotFound(GovshareError):
    status = 404
    code = "not_found"


class Conflict(GovshareError):
    status = 409
    code = "conflict"


class NotAuthenticated(GovshareError):
    status = 401
    code = "not_authenticated"


class Forbidden(GovshareError):
    status = 403
    code = "forbidden"


class SeparationOfDuties(Forbidden):
    """职责分离: whoever took a step never reviews, approves or decides on it, whatever
    roles they hold (GB/T 39477)."""

    code = "separation_of_duties"


class Locked(GovshareError):
    status = 423
    code = "account_locked"


class TooManyRequests(GovshareError):
    status = 429
    code = "too_many_requests"

    def __init__(
        self,
        message: str,
        *,
        details: list[dict[str, Any]] | None = None,
        retry_after: int | None = None,
    ) -> None:
        super().__init__(message, details=details)
        self.retry_after = retry_after

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)} if self.retry_after is not None else {}
