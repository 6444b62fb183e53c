"""The platform's error family. Each carries its HTTP status and a stable code.

Domain packages subclass these (``catalog/errors.py``); one handler in ``app.py`` turns
them into the JSON envelope ``{"error": {"code", "message", "details", "request_id"}}`` for the API
and into an error page for the console.
"""

from __future__ import annotations

import re
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field

# Messages read "中文说明 (English)": the API's clients get both, the console only the
# Chinese (its readers are not developers).
_ENGLISH_GLOSS = re.compile(r"\s*[(（][\x20-\x7e]*[A-Za-z][\x20-\x7e]*[)）]\s*$")


def console_text(message: str) -> str:
    """``message`` without its trailing English gloss, for the console."""
    return _ENGLISH_GLOSS.sub("", message) or message


class GovshareError(Exception):
    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, details: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or []

    @classmethod
    def about(cls, message: str, field: str, detail: str) -> Self:
        """The error with one detail: what is wrong with ``field``."""
        return cls(message, details=[{"field": field, "message": detail}])

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


class UnstorableValue(InvalidInput):
    """Input the database refuses although it passed validation: a NUL character or a
    lone surrogate in a text, a number or text beyond the column (DataError)."""

    code = "unstorable_value"

    def __init__(self) -> None:
        super().__init__(
            "输入含有数据库无法保存的内容：NUL 字符、不成对的代理字符、超长或超出范围的值 "
            "(value the database cannot store)"
        )


class ErrorDetail(BaseModel):
    """One problem: the field (or spreadsheet row and column) and what was expected."""

    model_config = ConfigDict(extra="allow")

    message: str
    field: str | None = None


class ErrorBody(BaseModel):
    code: str = Field(description="stable error code, e.g. invalid_input, resource_not_found")
    message: str = Field(description="中文说明 (English)")
    details: list[ErrorDetail]
    request_id: str | None = Field(
        default=None,
        description="请求编号: the X-Request-ID of the request, also in the hub's log lines "
        "and audit entries",
    )


class ErrorEnvelope(BaseModel):
    """What every API error answers (``tests/test_error_shape.py``)."""

    error: ErrorBody
