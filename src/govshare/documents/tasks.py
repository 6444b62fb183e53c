"""催办: every few minutes each hub process reminds the departments that have neither
signed for nor returned a document in time (reminding twice within the interval is
impossible: the row's ``reminded_at`` moves on, only from the value read, in the same
transaction that counts, audits and mails the reminder)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from govshare.config import Settings
from govshare.db import session_scope, update_if_unchanged, utcnow
from govshare.documents.models import Document, DocumentReceipt, DocumentRecipient, Urgency
from govshare.periodic import Periodic
from govshare.rules.clock import CHINA
from govshare.security import audit
from govshare.security.audit import SYSTEM
from govshare.security.models import Department
from govshare.security.roles import Role
from govshare.security.service import mailable_holders, queue_mail

log = structlog.get_logger()
INTERVAL_SECONDS = 300.0
# 特急 and 加急 are reminded sooner than a 平件.
REMIND_FACTOR = {Urgency.NORMAL: 1.0, Urgency.URGENT: 1 / 3, Urgency.EXTRA_URGENT: 1 / 12}


def remind_unanswered(session: Session, settings: Settings, now: datetime) -> int:
    """催办: each addressed department that has neither signed for nor returned a
    document within its urgency's interval (``documents_remind_hours``, again every as
    long) is reminded — counted on its row, audited — and one alert (告警, mailed to
    ``alert_mail_to`` when set) lists what stays unanswered; resolved once nothing
    does. Returns the reminders sent."""
    from govshare.exchange import alerts
    from govshare.exchange.models import AlertKind

    hours = settings.documents_remind_hours
    rows = session.execute(
        select(DocumentRecipient, Document)
        .join(Document, Document.id == DocumentRecipient.document_id)
        .outerjoin(
            DocumentReceipt,
            (DocumentReceipt.document_id == DocumentRecipient.document_id)
            & (DocumentReceipt.department_id == DocumentRecipient.department_id),
        )
        .where(DocumentReceipt.id.is_(None))
    ).all()
    sent = 0
    overdue: list[tuple[DocumentRecipient, Document]] = []
    due = [
        (recipient, document)
        for recipient, document in rows
        if now - (recipient.reminded_at or document.sent_at)
        >= timedelta(hours=hours * REMIND_FACTOR[Urgency(document.urgency)])
    ]
    clerks = mailable_holders(session, {r.department_id for r, _ in due}, Role.DOCUMENT_CLERK)
    for recipient, document in due:
        if not update_if_unchanged(
            session,
            recipient,
            "reminded_at",
            recipient.reminded_at,
            reminders=recipient.reminders + 1,
            reminded_at=now,
        ):
            continue  # another hub process reminded it meanwhile
        sent += 1
        mailed = queue_mail(session, clerks[recipient.department_id], *_reminder_text(document))
        audit.record(
            session,
            SYSTEM,
            "document.remind",
            object_type="document",
            object_id=document.id,
            after={
                "department_id": recipient.department_id,
                "reminders": recipient.reminders,
                "mailed": mailed,
            },
            at=now,
        )
    for recipient, document in rows:
        if recipient.reminders:
            overdue.append((recipient, document))
    if not overdue:
        alerts.resolve_alerts(session, AlertKind.DOCUMENT_UNANSWERED)
        return sent
    if sent:
        names = {d.id: d.short_name for d in session.scalars(select(Department))}
        lines = [
            f"{names.get(r.department_id, r.department_id)}: {d.doc_number}《{d.title[:30]}》"
            for r, d in overdue[:20]
        ]
        alerts.raise_alert(
            session,
            AlertKind.DOCUMENT_UNANSWERED,
            f"{len(overdue)} 份公文超时未签收: " + "；".join(lines),
            details={
                "documents": sorted({d.id for _, d in overdue}),
                "recipients": [[d.id, r.department_id] for r, d in overdue],
            },
            webhook_url=settings.alert_webhook_url,
        )
    return sent


def _reminder_text(document: Document) -> tuple[str, str]:
    urgency = Urgency(document.urgency)
    subject = f"[govshare 公文催办] {document.doc_number}《{document.title[:60]}》尚未签收"
    body = "\n".join(
        [
            "本部门收到的以下公文尚未签收或退回，请尽快处理：",
            "",
            f"文号: {document.doc_number}",
            f"标题: {document.title}",
            f"紧急程度: {urgency.label}",
            f"发出时间: {document.sent_at.astimezone(CHINA):%Y-%m-%d %H:%M}（北京时间）",
            "",
            f"请在控制台 电子公文 → 收文 签收（/documents/{document.id}）。",
        ]
    )
    return subject, body


class Reminder(Periodic):
    """``remind_unanswered`` every ``interval`` seconds on a thread of its own."""

    def __init__(
        self,
        settings: Settings,
        factory: sessionmaker[Session],
        *,
        interval: float = INTERVAL_SECONDS,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        super().__init__("document-reminders", interval, self.run_once)
        self.settings = settings
        self.factory = factory
        self.clock = clock

    def run_once(self) -> int:
        with session_scope(self.factory) as session:
            sent = remind_unanswered(session, self.settings, self.clock())
        if sent:
            log.info("document reminders", sent=sent)
        return sent
