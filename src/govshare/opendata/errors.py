"""Errors of the open-data API, in CKAN's terms: each carries the HTTP status and the
``error.__type`` CKAN answers with, so CKAN clients (ckanapi) map them to their own
exceptions (NotFound, ValidationError, SearchQueryError)."""

from __future__ import annotations

from typing import Any


class CkanError(Exception):
    """An action refused; rendered as ``{"success": false, "error": {"__type": …}}``."""

    status = 400
    type = "Bad request"

    def __init__(self, message: str, fields: dict[str, list[str]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.fields = fields or {}

    def error(self) -> dict[str, Any]:
        return {"__type": self.type, "message": self.message, **self.fields}


class NotFound(CkanError):
    """404: no open dataset, organization, group or resource has that id."""

    status = 404
    type = "Not Found Error"


class ValidationFailed(CkanError):
    """409: a parameter CKAN would refuse (rows beyond 1000, a start that is no number,
    an unknown sort or facet field); ``fields`` name each with its messages."""

    status = 409
    type = "Validation Error"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}", {field: [message]})


class SearchQueryFailed(CkanError):
    """409: an ``fq`` (or ``q``) the search cannot read, as CKAN's Solr errors answer."""

    status = 409
    type = "Search Query Error"


class UnknownAction(CkanError):
    """400: an action this API does not offer (CKAN answers 400 too)."""

    status = 400
    type = "Bad request - Action Error"


class RowsError(Exception):
    """A refused call of the row API (数据行接口), in Datasette's shape:
    ``{"ok": false, "error": …, "status": …, "title": …}``; ``parameter`` names the
    query parameter at fault, when one is."""

    status = 400
    title = "Invalid request"

    def __init__(self, message: str, *, parameter: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.parameter = parameter

    @property
    def headers(self) -> dict[str, str]:
        """HTTP headers the answer carries besides the body."""
        return {}

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "ok": False,
            "error": self.message,
            "status": self.status,
            "title": self.title,
        }
        if self.parameter is not None:
            out["parameter"] = self.parameter
        return out


class RowsNotFound(RowsError):
    """404: no 无条件开放 dataset with rows by that name."""

    status = 404
    title = "Not found"


class QueryTimedOut(RowsError):
    """400: the query ran past the hub's time limit (Datasette answers 400 too: the
    same call would run out of time again; a narrower filter is the remedy)."""

    status = 400
    title = "Query timed out"


class CkanRefused(CkanError):
    """A call the gate refused (:class:`govshare.opendata.gate.Refused`): 401 for a key
    that is not valid (CKAN's ``Authorization Error``), 429 for a limit."""

    def __init__(self, status: int, message: str, *, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.type = "Authorization Error" if status in (401, 403) else "Rate Limit Error"
        self.retry_after = retry_after


class RowsRefused(RowsError):
    """A call the gate refused, in the row API's shape: 401 or 429 (with Retry-After)."""

    def __init__(self, status: int, message: str, *, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.title = "Unauthorized" if status == 401 else "Too many requests"
        self.retry_after = retry_after

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)} if self.retry_after is not None else {}
