"""催办 with a frozen clock: an unanswered document's receivers are reminded after their
urgency's interval and again every as long, listed in one alert; answering ends it."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from govshare import db
from govshare.config import Settings
from govshare.documents import service
from govshare.documents.models import DocumentRecipient, ReceiptKind
from govshare.documents.tasks import Reminder
from govshare.exchange.models import Alert, AlertKind
from govshare.security.audit import SYSTEM
from govshare.security.models import AuditEntry, UserMail
from govshare.security.roles import Role, permissions_for
from govshare.security.service import Principal, add_department, add_user
from tests.documents.builders import FROZEN, doc_number, pdf
from tests.factories import unique, valid_credit_code


def clerk(department_id: int) -> Principal:
    return Principal(
        kind="user",
        name=f"doc_{department_id}",
        department_id=department_id,
        permissions=permissions_for([Role.DOCUMENT_CLERK]),
        roles=(Role.DOCUMENT_CLERK.value,),
    )


@pytest.fixture
def factory(fresh_settings: Settings) -> Iterator[sessionmaker[Session]]:
    engine = db.make_engine(fresh_settings)
    yield db.make_session_factory(engine, fresh_settings)
    engine.dispose()


def _departments(factory: sessionmaker[Session], *shorts: str) -> list[int]:
    with db.session_scope(factory) as s:
        return [
            add_department(
                s,
                SYSTEM,
                name=unique(f"青岛市{short}"),
                short_name=short,
                credit_code=valid_credit_code(),
                division_code="370200",
            ).id
            for short in shorts
        ]


def _send(
    factory: sessionmaker[Session], settings: Settings, sender: int, to: list[int], urgency: str
) -> int:
    with db.session_scope(factory) as s:
        return service.send_document(
            s,
            settings,
            clerk(sender),
            title="关于按时报送数据的通知",
            doc_number=doc_number(),
            secrecy="internal",
            urgency=urgency,
            recipient_ids=to,
            pdf=service.Upload("正文.pdf", io.BytesIO(pdf())),
            now=FROZEN,
        ).id


def _open_alert(factory: sessionmaker[Session]) -> Alert | None:
    with db.session_scope(factory) as s:
        found = s.scalar(
            select(Alert).where(
                Alert.kind == AlertKind.DOCUMENT_UNANSWERED, Alert.resolved_at.is_(None)
            )
        )
        if found is not None:
            s.expunge(found)
        return found


def test_reminders_follow_urgency_and_stop_once_answered(
    fresh_settings: Settings, factory: sessionmaker[Session]
) -> None:
    sender, police, civil = _departments(factory, "大数据局", "公安局", "民政局")
    normal = _send(factory, fresh_settings, sender, [police, civil], "normal")
    urgent = _send(factory, fresh_settings, sender, [police], "urgent")
    # 公安局's clerk has an address and is mailed each 催办; its registrar (another role)
    # and 民政局's clerk (no address) are not.
    with db.session_scope(factory) as s:
        people = {
            key: add_user(
                s,
                SYSTEM,
                username=unique(key),
                password="Doc-clerk-pass-1",
                display_name=key,
                department_id=dept,
                roles=[role],
                email=address,
            ).id
            for key, dept, role, address in [
                ("police_doc", police, Role.DOCUMENT_CLERK, "doc@police.example.cn"),
                ("police_reg", police, Role.CATALOG_REGISTRAR, "reg@police.example.cn"),
                ("civil_doc", civil, Role.DOCUMENT_CLERK, None),
            ]
        }

    def mails() -> list[tuple[int, str, str]]:
        with db.session_scope(factory) as s:
            rows = s.scalars(select(UserMail).order_by(UserMail.id))
            return [(m.user_id, m.to, m.subject) for m in rows]

    at = [FROZEN]
    reminder = Reminder(fresh_settings, factory, clock=lambda: at[0])

    at[0] = FROZEN + timedelta(hours=7, minutes=59)
    assert reminder.run_once() == 0
    assert _open_alert(factory) is None
    at[0] = FROZEN + timedelta(hours=8)  # 加急: a third of 24 hours
    assert reminder.run_once() == 1
    alert = _open_alert(factory)
    assert alert is not None
    assert "1 份公文超时未签收" in alert.message
    assert alert.details["documents"] == [urgent]
    [(user_id, to, subject)] = mails()
    assert (user_id, to) == (people["police_doc"], "doc@police.example.cn")
    assert subject.startswith("[govshare 公文催办]")
    assert subject.endswith("尚未签收")

    at[0] = FROZEN + timedelta(hours=24)  # the 平件 to both, and the 加急 again
    assert reminder.run_once() == 3
    alert = _open_alert(factory)
    assert alert is not None
    assert "3 份公文超时未签收" in alert.message
    with db.session_scope(factory) as s:
        counts = {
            (r.document_id, r.department_id): r.reminders
            for r in s.scalars(select(DocumentRecipient))
        }
        assert counts == {(normal, police): 1, (normal, civil): 1, (urgent, police): 2}
        reminded = s.scalars(
            select(AuditEntry.object_id).where(AuditEntry.action == "document.remind")
        ).all()
        assert sorted(reminded) == sorted([str(urgent), str(urgent), str(normal), str(normal)])
    assert reminder.run_once() == 0  # not again within the interval
    assert [m[0] for m in mails()] == [people["police_doc"]] * 3  # 民政局 has nobody to mail

    with db.session_scope(factory) as s:
        for doc, dept in [(normal, police), (normal, civil), (urgent, police)]:
            service.answer_document(
                s,
                fresh_settings,
                clerk(dept),
                doc,
                kind=ReceiptKind.SIGNED,
                now=at[0],
            )
    at[0] = FROZEN + timedelta(days=3)
    assert reminder.run_once() == 0
    assert _open_alert(factory) is None


def test_a_reminder_counted_meanwhile_by_another_process_is_not_counted_again(
    fresh_settings: Settings, factory: sessionmaker[Session]
) -> None:
    from govshare.db import update_if_unchanged

    def _claim_reminder(session: Session, recipient: DocumentRecipient, at: Any) -> bool:
        return update_if_unchanged(
            session,
            recipient,
            "reminded_at",
            recipient.reminded_at,
            reminders=recipient.reminders + 1,
            reminded_at=at,
        )

    sender, police = _departments(factory, "大数据局", "公安局")
    document = _send(factory, fresh_settings, sender, [police], "urgent")
    at = FROZEN + timedelta(hours=8)
    # Two hub processes in the same round: the one that counts second finds the row
    # moved on since it read it, and neither counts, audits nor mails it again.
    with db.session_scope(factory) as first:
        recipient = first.scalars(
            select(DocumentRecipient).where(DocumentRecipient.document_id == document)
        ).one()
        with db.session_scope(factory) as second:
            assert _claim_reminder(second, second.get_one(DocumentRecipient, recipient.id), at)
        assert not _claim_reminder(first, recipient, at)
    with db.session_scope(factory) as s:
        again = s.get_one(DocumentRecipient, recipient.id)
        assert (again.reminders, again.reminded_at) == (1, at)
