"""Builders for the document exchange tests: departments with a 公文收发员, real PDF
bytes, and a sent document over the live hub's API."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

from govshare.security.audit import SYSTEM
from govshare.security.roles import Role
from govshare.security.service import add_user
from tests.factories import PASSWORD, World
from tests.live import LiveHub

FROZEN = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
_numbers = itertools.count(1)


@dataclass(frozen=True)
class Office:
    """A department with its 公文收发员 (``clerk``) and a registrar without document rights."""

    id: int
    name: str
    clerk: str
    registrar: str


def office(world: World, short: str = "测试局") -> Office:
    dept = world.department(short)
    clerk = f"doc_{dept.id}"
    with world.hub.db() as s:
        add_user(
            s,
            SYSTEM,
            username=clerk,
            password=PASSWORD,
            display_name=f"{short}收发员",
            department_id=dept.id,
            roles=[Role.DOCUMENT_CLERK],
        )
    return Office(id=dept.id, name=dept.name, clerk=clerk, registrar=dept.registrar)


def pdf(text: str = "关于开展数据共享工作的通知") -> bytes:
    """A small, well-formed PDF (header, one page, trailer, %%EOF)."""
    body = (
        "%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n"
        "2 0 obj << /Type /Pages /Kids [3 0 R] /Count 1 >> endobj\n"
        "3 0 obj << /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] >> endobj\n"
        f"% {text}\ntrailer << /Root 1 0 R >>\n%%EOF\n"
    )
    return body.encode()


def doc_number(prefix: str = "青数发") -> str:
    return f"{prefix}〔2026〕{next(_numbers)}号"


def form(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "title": "关于报送2026年度政务数据共享情况的通知",
        "doc_number": doc_number(),
        "secrecy": "internal",
        "urgency": "normal",
    }
    data.update(overrides)
    return data


def send(
    client: httpx.Client,
    recipients: list[int],
    *,
    pdf_bytes: bytes | None = None,
    attachments: list[tuple[str, bytes]] = (),  # type: ignore[assignment]
    **overrides: Any,
) -> httpx.Response:
    files: list[tuple[str, tuple[str, bytes, str]]] = [
        ("pdf", ("正文.pdf", pdf() if pdf_bytes is None else pdf_bytes, "application/pdf"))
    ]
    files += [("attachments", (n, b, "application/octet-stream")) for n, b in attachments]
    data = form(**overrides)
    data["recipients"] = [str(r) for r in recipients]
    return client.post("/api/v1/documents", data=data, files=files)


@contextmanager
def frozen(hub: LiveHub, at: datetime = FROZEN) -> Iterator[list[datetime]]:
    """The hub's document clock stopped at ``at``; set ``[0]`` of the yielded list to move it."""
    now = [at]
    app = hub.server.config.app
    app.state.document_clock = lambda: now[0]
    try:
        yield now
    finally:
        app.state.document_clock = None


def error(r: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == code, body
    found: dict[str, Any] = body["error"]
    return found
