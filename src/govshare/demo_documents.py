"""Demo data of the document exchange (电子公文交换): a 公文收发员 at the 大数据局, 公安
and 民政 (``dsj_doc``, ``gaj_doc``, ``mzj_doc``, the admin's password), and three
documents the 大数据局 sent — one signed for by both, one returned by 民政, one still
waiting — so the outbox, the inbox and a document's page show real receipts."""

from __future__ import annotations

import io
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from govshare.config import Settings
from govshare.documents import service
from govshare.documents.models import ReceiptKind
from govshare.security import audit
from govshare.security.audit import SYSTEM
from govshare.security.models import Department, User
from govshare.security.roles import Role, permissions_for
from govshare.security.service import Principal

CLERKS = {"dsj": "大数据局收发员", "gaj": "公安收发员", "mzj": "民政收发员"}


def demo_pdf(title: str) -> bytes:
    """A one-page PDF that names the document (enough for a viewer to open)."""
    return (
        "%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n"
        "2 0 obj << /Type /Pages /Kids [3 0 R] /Count 1 >> endobj\n"
        "3 0 obj << /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] >> endobj\n"
        f"% {title}\ntrailer << /Root 1 0 R >>\n%%EOF\n"
    ).encode()


def _clerk(user: User) -> Principal:
    return Principal(
        kind="user",
        name=user.username,
        department_id=user.department_id,
        permissions=permissions_for([Role.DOCUMENT_CLERK]),
        roles=(Role.DOCUMENT_CLERK.value,),
        display_name=user.display_name,
    )


def seed_documents(
    session: Session,
    settings: Settings,
    *,
    departments: dict[str, Department],
    password_hash: str,
    now: datetime,
) -> int:
    """Add the clerks and the documents; returns the number of documents."""
    users = {
        abbr: User(
            username=f"{abbr}_doc",
            display_name=name,
            password_hash=password_hash,
            department_id=departments[abbr].id,
            roles=[Role.DOCUMENT_CLERK.value],
        )
        for abbr, name in CLERKS.items()
    }
    session.add_all(users.values())
    session.flush()
    audit.record(session, SYSTEM, "demo.users", object_type="user", after={"count": len(users)})
    sender = _clerk(users["dsj"])
    to = [departments["gaj"].id, departments["mzj"].id]
    sent = []
    for i, (title, urgency) in enumerate(
        [
            ("关于开展2026年度政务信息资源目录更新工作的通知", "normal"),
            ("关于报送社会救助家庭经济状况核对数据需求的函", "urgent"),
            ("关于做好数据共享交换平台节前安全检查的紧急通知", "extra_urgent"),
        ],
        start=1,
    ):
        sent.append(
            service.send_document(
                session,
                settings,
                sender,
                title=title,
                doc_number=f"青数发〔2026〕{i}号",
                secrecy="internal",
                urgency=urgency,
                recipient_ids=to,
                pdf=service.Upload(f"{title}.pdf", io.BytesIO(demo_pdf(title))),
                now=now - timedelta(days=3 - i),
            )
        )
    first, second, _ = sent
    for abbr in ("gaj", "mzj"):
        service.answer_document(
            session,
            settings,
            _clerk(users[abbr]),
            first.id,
            kind=ReceiptKind.SIGNED,
            now=now - timedelta(days=1),
        )
    service.answer_document(
        session, settings, _clerk(users["gaj"]), second.id, kind=ReceiptKind.SIGNED, now=now
    )
    service.answer_document(
        session,
        settings,
        _clerk(users["mzj"]),
        second.id,
        kind=ReceiptKind.RETURNED,
        reason="该事项由市社会救助服务中心办理，请改发该中心",
        now=now,
    )
    return len(sent)
