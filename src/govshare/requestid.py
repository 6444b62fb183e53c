"""The request id (请求编号) of the request being served: one per HTTP request, returned
as ``X-Request-ID``, carried by every log line, the error envelope and the audit entries
written while serving it, so an operator can go from a user's error to the log line and
the audit row.

Plumbing below every domain: ``govshare.ops.middleware`` sets it, the audit log and the
error handlers read it.
"""

from __future__ import annotations

import re
import secrets
from contextvars import ContextVar

HEADER = "X-Request-ID"
# An incoming id is kept when it is short and plain (a proxy's or a client's id);
# anything else is replaced, so logs and audit rows never carry an attacker's text.
_SANE = re.compile(r"[A-Za-z0-9._:-]{8,64}")

_current: ContextVar[str | None] = ContextVar("govshare_request_id", default=None)


def new_request_id() -> str:
    """A fresh id: 24 hex characters."""
    return secrets.token_hex(12)


def accept(incoming: str | None) -> str:
    """``incoming`` when it is a sane id (8–64 of ``A-Z a-z 0-9 . _ : -``), else a new one."""
    if incoming and _SANE.fullmatch(incoming):
        return incoming
    return new_request_id()


def current_request_id() -> str | None:
    """The id of the request being served in this context; None outside a request."""
    return _current.get()


def set_request_id(value: str | None) -> object:
    """Bind ``value`` in this context; returns the token for ``reset_request_id``."""
    return _current.set(value)


def reset_request_id(token: object) -> None:
    _current.reset(token)  # type: ignore[arg-type]
