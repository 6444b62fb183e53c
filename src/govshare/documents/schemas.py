"""Document exchange API shapes: a document with its files and receivers' receipts, a
receipt, a return, a verification report."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from govshare.documents.models import ReceiptKind, Secrecy, Urgency
from govshare.documents.service import DocumentView
from govshare.documents.verify import VerifyReport
from govshare.rules.fields import Expect


class ReturnCreate(BaseModel):
    """退回: why the document goes back to its sender."""

    model_config = ConfigDict(extra="forbid")

    reason: Annotated[str, Expect("退回理由为 1 至 500 个字", min_length=1, max_length=500)]


class FilePublic(BaseModel):
    position: int = Field(description="0: the PDF (正文); 1…: attachments (附件)")
    name: str
    media_type: str
    size: int
    digest: str


class ReceiptPublic(BaseModel):
    """回执 of one receiving department."""

    department_id: int
    department_name: str
    kind: ReceiptKind | None = Field(description="signed (签收), returned (退回), null: not yet")
    reason: str = ""
    acted_by: str | None = None
    acted_by_name: str | None = None
    acted_at: datetime | None = None
    signature: str | None = Field(default=None, description="hex, by the hub's document key")
    reminders: int = Field(description="催办 reminders sent while unanswered")


class DocumentPublic(BaseModel):
    id: int
    sender_department_id: int
    sender_department_name: str
    title: str
    doc_number: str = Field(description="文号")
    secrecy: Secrecy = Field(description="密级")
    urgency: Urgency = Field(description="紧急程度")
    sent_by: str
    sent_at: datetime
    digest_alg: str
    sig_alg: str
    key_id: str
    package_digest: str
    signature: str
    files: list[FilePublic]
    receipts: list[ReceiptPublic]

    @classmethod
    def of(cls, view: DocumentView) -> DocumentPublic:
        d = view.document
        return cls(
            id=d.id,
            sender_department_id=view.sender.id,
            sender_department_name=view.sender.name,
            title=d.title,
            doc_number=d.doc_number,
            secrecy=d.secrecy,
            urgency=d.urgency,
            sent_by=d.sent_by,
            sent_at=d.sent_at,
            digest_alg=d.digest_alg,
            sig_alg=d.sig_alg,
            key_id=d.key_id,
            package_digest=d.package_digest,
            signature=d.signature,
            files=[
                FilePublic(
                    position=f.position,
                    name=f.name,
                    media_type=f.media_type,
                    size=f.size,
                    digest=f.digest,
                )
                for f in view.files
            ],
            receipts=[
                ReceiptPublic(
                    department_id=a.department.id,
                    department_name=a.department.name,
                    kind=a.receipt.kind if a.receipt else None,
                    reason=a.receipt.reason if a.receipt else "",
                    acted_by=a.receipt.acted_by if a.receipt else None,
                    acted_by_name=a.receipt.acted_by_name if a.receipt else None,
                    acted_at=a.receipt.acted_at if a.receipt else None,
                    signature=a.receipt.signature if a.receipt else None,
                    reminders=a.recipient.reminders,
                )
                for a in view.addressees
            ],
        )


class CheckPublic(BaseModel):
    subject: str
    ok: bool
    reason: str


class VerifyPublic(BaseModel):
    """核验结果: ok only when every check holds."""

    document_id: int
    ok: bool
    checks: list[CheckPublic]

    @classmethod
    def of(cls, report: VerifyReport) -> VerifyPublic:
        return cls(
            document_id=report.document_id,
            ok=report.ok,
            checks=[
                CheckPublic(subject=c.subject, ok=c.ok, reason=c.reason) for c in report.checks
            ],
        )
