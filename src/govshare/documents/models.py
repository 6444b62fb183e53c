"""Tables of the document exchange (电子公文交换).

A ``document`` holds the metadata the hub signed (title, 文号, 密级, 紧急程度, who sent it
when), the package digest and the signature; ``document_file`` the PDF (position 0)
and its attachments, each encrypted at rest with the digest of its plain bytes;
``document_recipient`` the departments it was sent to (with the reminders they got);
``document_receipt`` each receiver's one signed answer — 签收 or 退回 — kept unique per
(document, department) by the database.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import (
    BigInteger,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from govshare.db import Base, str_enum


class Secrecy(StrEnum):
    """密级. 秘密, 机密 and 绝密 are 涉密: never accepted by this platform."""

    PUBLIC = "public"
    INTERNAL = "internal"
    SECRET = "secret"  # noqa: S105 - a secrecy level, not a password
    CONFIDENTIAL = "confidential"
    TOP_SECRET = "top_secret"  # noqa: S105

    @property
    def label(self) -> str:
        return SECRECY_LABELS[self]

    @property
    def rank(self) -> int:
        return list(Secrecy).index(self)


SECRECY_LABELS: dict[Secrecy, str] = {
    Secrecy.PUBLIC: "公开",
    Secrecy.INTERNAL: "内部",
    Secrecy.SECRET: "秘密",
    Secrecy.CONFIDENTIAL: "机密",
    Secrecy.TOP_SECRET: "绝密",
}


class Urgency(StrEnum):
    """紧急程度 (GB/T 9704): 平件, 加急, 特急."""

    NORMAL = "normal"
    URGENT = "urgent"
    EXTRA_URGENT = "extra_urgent"

    @property
    def label(self) -> str:
        return URGENCY_LABELS[self]


URGENCY_LABELS: dict[Urgency, str] = {
    Urgency.NORMAL: "平件",
    Urgency.URGENT: "加急",
    Urgency.EXTRA_URGENT: "特急",
}


class ReceiptKind(StrEnum):
    """收文处理: 签收 or 退回."""

    SIGNED = "signed"
    RETURNED = "returned"

    @property
    def label(self) -> str:
        return {"signed": "已签收", "returned": "已退回"}[self.value]


class Document(Base):
    """公文: the signed metadata of one sent document."""

    __tablename__ = "document"

    id: Mapped[int] = mapped_column(primary_key=True)
    sender_department_id: Mapped[int] = mapped_column(ForeignKey("department.id"))
    title: Mapped[str] = mapped_column(String(200))
    doc_number: Mapped[str] = mapped_column(String(60))  # 文号
    secrecy: Mapped[Secrecy] = mapped_column(str_enum(Secrecy, 20))
    urgency: Mapped[Urgency] = mapped_column(str_enum(Urgency, 20))
    sent_by: Mapped[str] = mapped_column(String(50))  # username
    sent_by_name: Mapped[str] = mapped_column(String(50))  # display name
    sent_at: Mapped[datetime] = mapped_column()
    digest_alg: Mapped[str] = mapped_column(String(10))
    sig_alg: Mapped[str] = mapped_column(String(10))
    key_id: Mapped[str] = mapped_column(String(32))
    package_digest: Mapped[str] = mapped_column(String(64))
    signature: Mapped[str] = mapped_column(String(200))  # hex, over ``manifest``
    manifest: Mapped[str] = mapped_column(Text)  # the signed canonical JSON

    __table_args__ = (
        UniqueConstraint(
            "sender_department_id", "doc_number", name="uq_document_sender_doc_number"
        ),
        Index("ix_document_sender_sent", "sender_department_id", "sent_at"),
    )


class DocumentFile(Base):
    """The PDF (position 0) or an attachment (1, 2 …), encrypted (AES-256-GCM)."""

    __tablename__ = "document_file"

    id: Mapped[int] = mapped_column(primary_key=True)
    document_id: Mapped[int] = mapped_column(ForeignKey("document.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(200))
    media_type: Mapped[str] = mapped_column(String(100))
    size: Mapped[int] = mapped_column(BigInteger)
    digest: Mapped[str] = mapped_column(String(64))  # of the plain bytes
    nonce: Mapped[bytes] = mapped_column(LargeBinary)
    content: Mapped[bytes] = mapped_column(LargeBinary)  # ciphertext with tag

    __table_args__ = (
        UniqueConstraint("document_id", "position", name="uq_document_file_position"),
    )


class DocumentRecipient(Base):
    """主送/抄送 department of a document, with the reminders sent while it is unanswered."""

    __tablename__ = "document_recipient"

    id: Mapped[int] = mapped_column(primary_key=True)
    document_id: Mapped[int] = mapped_column(ForeignKey("document.id", ondelete="CASCADE"))
    department_id: Mapped[int] = mapped_column(ForeignKey("department.id"))
    reminders: Mapped[int] = mapped_column(Integer, default=0)
    reminded_at: Mapped[datetime | None] = mapped_column()

    __table_args__ = (
        UniqueConstraint("document_id", "department_id", name="uq_document_recipient"),
        Index("ix_document_recipient_department", "department_id"),
    )


class DocumentReceipt(Base):
    """回执: one receiving department's signed 签收 or 退回 (one per department)."""

    __tablename__ = "document_receipt"

    id: Mapped[int] = mapped_column(primary_key=True)
    document_id: Mapped[int] = mapped_column(ForeignKey("document.id", ondelete="CASCADE"))
    department_id: Mapped[int] = mapped_column(ForeignKey("department.id"))
    kind: Mapped[ReceiptKind] = mapped_column(str_enum(ReceiptKind, 10))
    reason: Mapped[str] = mapped_column(Text, default="")
    acted_by: Mapped[str] = mapped_column(String(50))
    acted_by_name: Mapped[str] = mapped_column(String(50))
    acted_at: Mapped[datetime] = mapped_column()
    package_digest: Mapped[str] = mapped_column(String(64))
    sig_alg: Mapped[str] = mapped_column(String(10))
    key_id: Mapped[str] = mapped_column(String(32))
    signature: Mapped[str] = mapped_column(String(200))

    __table_args__ = (UniqueConstraint("document_id", "department_id", name="uq_document_receipt"),)
