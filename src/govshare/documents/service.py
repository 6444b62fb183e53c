"""The rules of the document exchange (电子公文交换).

Sending (发文): the fields are checked (each problem named), a 密级 above
``documents_max_secrecy`` is refused before anything is stored, the PDF must be a PDF
and every attachment what its name says. The hub then writes the document's canonical
manifest — metadata, the addressed departments, each file's name, size and digest — signs
it with its document key (SM2 or Ed25519, ``documents_signature``), stores the manifest,
its digest and the signature, and each file encrypted (AES-256-GCM, ``keys``).

Receiving (收文): a user of an addressed department with ``document.receive`` signs for
(签收) or returns (退回, with a reason) the document once; the hub signs the receipt
over the document's digest, the department, the user, the time and the answer. The
database keeps one receipt per (document, department); the service checks first so the
second answer gets a clear refusal.

Verifying (核验): the manifest's signature and digest, the stored metadata against the
manifest (field by field), each file decrypted and digested against the manifest, and
each receipt's signature — every failure with its precise reason.

Only the sender and the addressed departments see a document; every step, every
download and every verification is audited.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

import orjson
from sqlalchemy import select
from sqlalchemy.orm import Session, defer

from govshare.config import Settings
from govshare.documents import keys
from govshare.documents.errors import (
    AlreadyAnswered,
    DocumentCorrupted,
    DocumentFileNotFound,
    DocumentKeyUnavailable,
    DocumentNotFound,
    DocumentTooLarge,
    InvalidDocument,
    NotAddressed,
    NotYourDocument,
    SecrecyRefused,
)
from govshare.documents.models import (
    SECRECY_LABELS,
    URGENCY_LABELS,
    Document,
    DocumentFile,
    DocumentReceipt,
    DocumentRecipient,
    ReceiptKind,
    Secrecy,
    Urgency,
)
from govshare.rules.fields import has_control_characters
from govshare.security import audit
from govshare.security.crypto import digest, sign
from govshare.security.models import Department
from govshare.security.service import Principal

MAX_TITLE = 200
MAX_DOC_NUMBER = 60
MAX_REASON = 500
MAX_RECIPIENTS = 200
MAX_ATTACHMENTS = 20
MAX_NAME = 200
MANIFEST_VERSION = 1
# 文号 (GB/T 9704): 机关代字〔年份〕序号号, e.g. 青数发〔2026〕12号.
DOC_NUMBER = re.compile(r"^[^\s〔〕\[\]]{1,40}〔(19|20)\d{2}〕[1-9]\d{0,5}号$")
DOC_NUMBER_HINT = "格式应为“机关代字〔年份〕序号号”，如 青数发〔2026〕12号"
PDF_MAGIC = b"%PDF-"
PDF_END = b"%%EOF"

_ZIP = (b"PK\x03\x04",)
_OLE = (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1",)
# Attachments a 公文 carries: what its name says it is, its content must start with.
ATTACHMENT_KINDS: dict[str, tuple[str, tuple[bytes, ...]]] = {
    "pdf": ("application/pdf", (PDF_MAGIC,)),
    "ofd": ("application/ofd", _ZIP),
    "docx": ("application/vnd.openxmlformats-officedocument.wordprocessingml.document", _ZIP),
    "xlsx": ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", _ZIP),
    "doc": ("application/msword", _OLE),
    "xls": ("application/vnd.ms-excel", _OLE),
    "zip": ("application/zip", _ZIP),
    "jpg": ("image/jpeg", (b"\xff\xd8\xff",)),
    "png": ("image/png", (b"\x89PNG\r\n\x1a\n",)),
}


@dataclass(frozen=True, slots=True)
class Upload:
    """A file as received: its name and a readable stream."""

    name: str
    source: BinaryIO


@dataclass(frozen=True, slots=True)
class _File:
    position: int
    name: str
    media_type: str
    data: bytes


# -- reading what was sent --------------------------------------------------------------


def _read_limited(upload: Upload, limit: int, field_name: str) -> bytes:
    data = upload.source.read(limit + 1)
    if len(data) > limit:
        raise DocumentTooLarge(
            f"{upload.name} 超过 {limit // (1 << 20)} MiB 上限 (file too large)",
            details=[{"field": field_name, "message": f"最多 {limit} 字节"}],
        )
    return data


def _clean_name(name: str) -> str:
    return name.replace("\\", "/").rsplit("/", 1)[-1].strip()


def _check_pdf(data: bytes, problems: list[dict[str, str]], name: str) -> None:
    if not data:
        problems.append({"field": "pdf", "message": f"{name} 是空文件"})
    elif not data.startswith(PDF_MAGIC):
        problems.append({"field": "pdf", "message": f"{name} 不是 PDF 文件（文件头应为 %PDF-）"})
    elif PDF_END not in data[-2048:]:
        problems.append(
            {"field": "pdf", "message": f"{name} 不是完整的 PDF 文件（缺少结束标记 %%EOF）"}
        )


def _check_attachment(
    upload_name: str, data: bytes, index: int, problems: list[dict[str, str]]
) -> str:
    """The attachment's media type; its problems appended."""
    where = f"attachments[{index}]"
    name = _clean_name(upload_name)
    if not name or len(name) > MAX_NAME or has_control_characters(name):
        problems.append({"field": where, "message": f"文件名应为 1 至 {MAX_NAME} 个字符"})
        return ""
    ext = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    if ext not in ATTACHMENT_KINDS:
        allowed = "、".join(ATTACHMENT_KINDS)
        problems.append({"field": where, "message": f"{name}: 附件类型应为 {allowed}"})
        return ""
    media_type, magic = ATTACHMENT_KINDS[ext]
    if not data:
        problems.append({"field": where, "message": f"{name} 是空文件"})
    elif not data.startswith(magic):
        problems.append(
            {"field": where, "message": f"{name} 的内容不是 {ext.upper()} 文件（与扩展名不符）"}
        )
    return media_type


def parse_secrecy(value: str) -> Secrecy | None:
    """A 密级 by its code or its Chinese name; None when it is neither."""
    value = value.strip()
    for level in Secrecy:
        if value in (level.value, level.label):
            return level
    return None


def parse_urgency(value: str) -> Urgency | None:
    value = value.strip()
    for level in Urgency:
        if value in (level.value, level.label):
            return level
    return None


def allowed_secrecy(settings: Settings) -> list[Secrecy]:
    top = Secrecy(settings.documents_max_secrecy)
    return [s for s in Secrecy if s.rank <= top.rank]


def check_secrecy(settings: Settings, secrecy: Secrecy) -> None:
    """Refuse a 密级 above the platform's; 涉密 levels are above every allowed one."""
    top = Secrecy(settings.documents_max_secrecy)
    if secrecy.rank > top.rank:
        raise SecrecyRefused.about(
            f"密级“{secrecy.label}”高于本平台允许的“{top.label}”，不得上传；涉密公文须按"
            "涉密载体管理规定另行传递 (secrecy level above the platform's limit)",
            "secrecy",
            f"本平台只传递{'、'.join(s.label for s in allowed_secrecy(settings))}公文",
        )


# -- the canonical manifest and its signature -------------------------------------------


def _stamp(at: datetime) -> str:
    return at.astimezone(UTC).isoformat()


def canonical(doc: dict[str, Any]) -> bytes:
    return orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)


def manifest_of(
    document: Document,
    sender: Department,
    recipients: Sequence[Department],
    files: Sequence[DocumentFile],
) -> dict[str, Any]:
    """What the hub signs of a document, from its stored rows."""
    return {
        "v": MANIFEST_VERSION,
        "id": document.id,
        "sender": {"id": sender.id, "credit_code": sender.credit_code},
        "title": document.title,
        "doc_number": document.doc_number,
        "secrecy": str(document.secrecy),
        "urgency": str(document.urgency),
        "sent_by": document.sent_by,
        "sent_at": _stamp(document.sent_at),
        "recipients": sorted(
            ({"id": d.id, "credit_code": d.credit_code} for d in recipients),
            key=lambda r: int(r["id"]),
        ),
        "files": [
            {
                "position": f.position,
                "name": f.name,
                "media_type": f.media_type,
                "size": f.size,
                "digest": f.digest,
            }
            for f in sorted(files, key=lambda f: f.position)
        ],
        "digest_alg": document.digest_alg,
        "sig_alg": document.sig_alg,
        "key_id": document.key_id,
    }


def receipt_manifest(receipt: DocumentReceipt, department: Department) -> dict[str, Any]:
    """What the hub signs of a receipt: the document's digest, the receiving department,
    who answered when, and the answer."""
    return {
        "v": MANIFEST_VERSION,
        "document": receipt.document_id,
        "package_digest": receipt.package_digest,
        "department": {"id": department.id, "credit_code": department.credit_code},
        "kind": str(receipt.kind),
        "reason": receipt.reason,
        "acted_by": receipt.acted_by,
        "acted_at": _stamp(receipt.acted_at),
        "sig_alg": receipt.sig_alg,
        "key_id": receipt.key_id,
    }


_signers: dict[tuple[Path, str, str], tuple[keys.SigningKey, str]] = {}


def _signer(settings: Settings) -> tuple[keys.SigningKey, str]:
    """The key pair documents are signed with now (read and unsealed once a process)."""
    cache = (settings.data_dir.resolve(), settings.documents_signature, settings.secret_key)
    if (found := _signers.get(cache)) is not None and keys.key_path(settings.data_dir).exists():
        return found
    try:
        key = keys.signing_key(settings.data_dir, settings.secret_key, settings.documents_signature)
        _signers[cache] = (key, key.private(settings.secret_key))
        return _signers[cache]
    except keys.DocumentKeyError as exc:
        raise DocumentKeyUnavailable(f"{exc} (document signing key unavailable)") from exc


# -- sending ----------------------------------------------------------------------------


def _own_department(caller: Principal) -> int:
    if caller.department_id is None:
        raise NotYourDocument("只有部门用户可以收发公文 (department users only)")
    return caller.department_id


def send_document(
    session: Session,
    settings: Settings,
    caller: Principal,
    *,
    title: str,
    doc_number: str,
    secrecy: str,
    urgency: str,
    recipient_ids: Sequence[int | str],
    pdf: Upload | None,
    attachments: Sequence[Upload] = (),
    now: datetime,
) -> Document:
    """发文: check, sign, encrypt and store a document addressed to ``recipient_ids``
    (audited). Refused with nothing stored on any problem."""
    sender_id = _own_department(caller)
    problems: list[dict[str, str]] = []
    level = parse_secrecy(secrecy)
    if level is not None:
        check_secrecy(settings, level)  # before anything else: never kept, never read
    else:
        allowed = "、".join(s.label for s in allowed_secrecy(settings))
        problems.append({"field": "secrecy", "message": f"必填，取值为 {allowed}"})
    title = title.strip()
    if not title or len(title) > MAX_TITLE or has_control_characters(title):
        problems.append({"field": "title", "message": f"必填，1 至 {MAX_TITLE} 个字，不含控制字符"})
    doc_number = doc_number.strip()
    if not doc_number:
        problems.append({"field": "doc_number", "message": f"必填，{DOC_NUMBER_HINT}"})
    elif len(doc_number) > MAX_DOC_NUMBER or not DOC_NUMBER.match(doc_number):
        problems.append({"field": "doc_number", "message": DOC_NUMBER_HINT})
    elif session.scalar(
        select(Document.id).where(
            Document.sender_department_id == sender_id, Document.doc_number == doc_number
        )
    ):
        problems.append(
            {"field": "doc_number", "message": f"本部门已发出文号为 {doc_number} 的公文"}
        )
    level_u = parse_urgency(urgency)
    if level_u is None:
        problems.append(
            {"field": "urgency", "message": "必填，取值为 " + "、".join(URGENCY_LABELS.values())}
        )
    departments = _recipients(session, sender_id, recipient_ids, problems)
    limit = settings.documents_max_bytes
    files: list[_File] = []
    if pdf is None or not pdf.name:
        problems.append({"field": "pdf", "message": "请选择公文正文 PDF 文件"})
    else:
        data = _read_limited(pdf, limit, "pdf")
        name = _clean_name(pdf.name) or "正文.pdf"
        _check_pdf(data, problems, name)
        files.append(_File(0, name[:MAX_NAME], "application/pdf", data))
    if len(attachments) > MAX_ATTACHMENTS:
        problems.append({"field": "attachments", "message": f"附件不能超过 {MAX_ATTACHMENTS} 个"})
    for i, upload in enumerate(attachments[:MAX_ATTACHMENTS]):
        data = _read_limited(upload, limit, f"attachments[{i}]")
        media_type = _check_attachment(upload.name, data, i, problems)
        files.append(_File(i + 1, _clean_name(upload.name), media_type, data))
    if problems or level is None or level_u is None:
        raise InvalidDocument("公文信息不完整或有误 (invalid document)", details=problems)
    key, private = _signer(settings)
    alg = settings.documents_digest
    document = Document(
        sender_department_id=sender_id,
        title=title,
        doc_number=doc_number,
        secrecy=level,
        urgency=level_u,
        sent_by=caller.name,
        sent_by_name=(caller.display_name or caller.name)[:50],
        sent_at=now.astimezone(UTC).replace(microsecond=0),
        digest_alg=alg,
        sig_alg=key.alg,
        key_id=key.id,
        package_digest="",
        signature="",
        manifest="",
    )
    session.add(document)
    session.flush()
    rows: list[DocumentFile] = []
    for f in files:
        nonce, box = keys.encrypt_file(settings.secret_key, document.id, f.position, f.data)
        rows.append(
            DocumentFile(
                document_id=document.id,
                position=f.position,
                name=f.name,
                media_type=f.media_type,
                size=len(f.data),
                digest=digest(alg, f.data),
                nonce=nonce,
                content=box,
            )
        )
    session.add_all(rows)
    session.add_all(
        DocumentRecipient(document_id=document.id, department_id=d.id) for d in departments
    )
    sender = session.get(Department, sender_id)
    assert sender is not None
    manifest = canonical(manifest_of(document, sender, departments, rows))
    document.manifest = manifest.decode()
    document.package_digest = digest(alg, manifest)
    document.signature = sign(key.alg, private, manifest).hex()
    session.flush()
    audit.record(
        session,
        caller.actor,
        "document.send",
        object_type="document",
        object_id=document.id,
        after={
            "title": title,
            "doc_number": doc_number,
            "secrecy": str(level),
            "urgency": str(level_u),
            "recipients": [d.id for d in departments],
            "files": len(rows),
            "package_digest": document.package_digest,
        },
        at=now,
    )
    return document


def _recipients(
    session: Session,
    sender_id: int,
    recipient_ids: Sequence[int | str],
    problems: list[dict[str, str]],
) -> list[Department]:
    if not recipient_ids:
        problems.append({"field": "recipients", "message": "请至少选择一个收文部门"})
        return []
    if len(recipient_ids) > MAX_RECIPIENTS:
        problems.append({"field": "recipients", "message": f"收文部门不能超过 {MAX_RECIPIENTS} 个"})
        return []
    found: list[Department] = []
    seen: set[int] = set()
    for i, raw in enumerate(recipient_ids):
        where = f"recipients[{i}]"
        try:
            dept_id = int(raw)
        except (TypeError, ValueError):
            problems.append({"field": where, "message": f"“{raw}”不是部门编号"})
            continue
        dept = session.get(Department, dept_id) if 0 < dept_id < 2**31 else None
        if dept is None:
            problems.append({"field": where, "message": f"部门 {dept_id} 不存在"})
        elif dept_id == sender_id:
            problems.append({"field": where, "message": "不能发给本部门自己"})
        elif dept_id in seen:
            problems.append({"field": where, "message": f"部门“{dept.name}”重复"})
        else:
            seen.add(dept_id)
            found.append(dept)
    return found


# -- reading ----------------------------------------------------------------------------


@dataclass
class Addressee:
    """A receiving department of a document with its receipt, if any."""

    department: Department
    recipient: DocumentRecipient
    receipt: DocumentReceipt | None


@dataclass
class DocumentView:
    document: Document
    sender: Department
    addressees: list[Addressee]
    files: list[DocumentFile] = field(default_factory=list)

    def addressee(self, department_id: int | None) -> Addressee | None:
        return next((a for a in self.addressees if a.department.id == department_id), None)

    @property
    def answered(self) -> int:
        return sum(a.receipt is not None for a in self.addressees)

    @property
    def secrecy_label(self) -> str:
        return SECRECY_LABELS[Secrecy(self.document.secrecy)]

    @property
    def urgency_label(self) -> str:
        return URGENCY_LABELS[Urgency(self.document.urgency)]


def views(
    session: Session, documents: Sequence[Document], *, with_files: bool
) -> list[DocumentView]:
    if not documents:
        return []
    ids = [d.id for d in documents]
    recips: dict[int, list[DocumentRecipient]] = {}
    for r in session.scalars(
        select(DocumentRecipient).where(DocumentRecipient.document_id.in_(ids))
    ):
        recips.setdefault(r.document_id, []).append(r)
    wanted = {d.sender_department_id for d in documents}
    wanted |= {r.department_id for rs in recips.values() for r in rs}
    depts = {d.id: d for d in session.scalars(select(Department).where(Department.id.in_(wanted)))}
    receipts = {
        (r.document_id, r.department_id): r
        for r in session.scalars(
            select(DocumentReceipt).where(DocumentReceipt.document_id.in_(ids))
        )
    }
    files: dict[int, list[DocumentFile]] = {}
    if with_files:
        # The encrypted content is read only by what decrypts it (a download, 核验).
        for f in session.scalars(
            select(DocumentFile)
            .options(defer(DocumentFile.content))
            .where(DocumentFile.document_id.in_(ids))
            .order_by(DocumentFile.position)
        ):
            files.setdefault(f.document_id, []).append(f)
    return [
        DocumentView(
            document=d,
            sender=depts[d.sender_department_id],
            addressees=[
                Addressee(depts[r.department_id], r, receipts.get((d.id, r.department_id)))
                for r in sorted(recips.get(d.id, []), key=lambda r: r.department_id)
            ],
            files=files.get(d.id, []),
        )
        for d in documents
    ]


def list_outbox(session: Session, caller: Principal, *, limit: int = 200) -> list[DocumentView]:
    """发文: the documents the caller's department sent, newest first, with receipts."""
    dept = _own_department(caller)
    docs = session.scalars(
        select(Document)
        .where(Document.sender_department_id == dept)
        .order_by(Document.sent_at.desc(), Document.id.desc())
        .limit(limit)
    ).all()
    return views(session, docs, with_files=False)


def list_inbox(session: Session, caller: Principal, *, limit: int = 200) -> list[DocumentView]:
    """收文: the documents addressed to the caller's department, newest first."""
    dept = _own_department(caller)
    docs = session.scalars(
        select(Document)
        .join(DocumentRecipient, DocumentRecipient.document_id == Document.id)
        .where(DocumentRecipient.department_id == dept)
        .order_by(Document.sent_at.desc(), Document.id.desc())
        .limit(limit)
    ).all()
    return views(session, docs, with_files=False)


def get_document(
    session: Session, caller: Principal, document_id: int, *, with_files: bool = True
) -> DocumentView:
    """One document as the sender or an addressed department sees it."""
    check_visible(session, caller, document_id)
    try:
        document = session.get(Document, document_id)
        assert document is not None
        (view,) = views(session, [document], with_files=with_files)
    except LookupError:  # a 密级, 紧急程度 or answer no longer one of ours: altered
        session.rollback()
        raise DocumentCorrupted(
            f"公文 {document_id} 的存储记录含有无效的取值，已被改动；请核验 "
            f"(govshare documents verify {document_id}) (stored record altered)"
        ) from None
    return view


def check_visible(session: Session, caller: Principal, document_id: int) -> None:
    """Refuse anyone but the sender and the addressed departments (reads only the ids,
    so an altered record is still told apart from someone else's document)."""
    dept = _own_department(caller)
    sender = session.scalar(select(Document.sender_department_id).where(Document.id == document_id))
    if sender is None:
        raise DocumentNotFound(f"公文 {document_id} 不存在 (document not found)")
    if sender != dept and not session.scalar(
        select(DocumentRecipient.id).where(
            DocumentRecipient.document_id == document_id,
            DocumentRecipient.department_id == dept,
        )
    ):
        raise NotYourDocument("只有发文部门和收文部门可以查看该公文 (not your document)")


def read_file(
    session: Session,
    settings: Settings,
    caller: Principal,
    document_id: int,
    position: int,
    *,
    now: datetime,
) -> tuple[DocumentFile, bytes]:
    """A file of a visible document, decrypted and checked against its digest; the
    download is audited."""
    view = get_document(session, caller, document_id)
    found = next((f for f in view.files if f.position == position), None)
    if found is None:
        raise DocumentFileNotFound(f"公文 {document_id} 没有第 {position} 个文件 (file not found)")
    try:
        data = keys.decrypt_file(
            settings.secret_key, document_id, position, found.nonce, found.content
        )
    except ValueError:
        raise DocumentKeyUnavailable(
            f"{found.name} 无法解密：存储的密文被改动或平台密钥不符，请执行核验 "
            "(stored content failed authentication)"
        ) from None
    if digest(view.document.digest_alg, data) != found.digest:
        raise DocumentKeyUnavailable(
            f"{found.name} 的摘要与签名时不符，请执行核验 (digest mismatch)"
        )
    audit.record(
        session,
        caller.actor,
        "document.download",
        object_type="document",
        object_id=document_id,
        after={"position": position, "name": found.name, "size": found.size},
        at=now,
    )
    return found, data


# -- receiving --------------------------------------------------------------------------


def answer_document(
    session: Session,
    settings: Settings,
    caller: Principal,
    document_id: int,
    *,
    kind: ReceiptKind,
    reason: str = "",
    now: datetime,
) -> DocumentReceipt:
    """签收 or 退回 for the caller's department: once, signed by the hub (audited)."""
    view = get_document(session, caller, document_id, with_files=False)
    addressee = view.addressee(caller.department_id)
    if addressee is None:
        raise NotAddressed(
            "只有收文部门可以签收或退回公文 (only an addressed department may answer)"
        )
    reason = reason.strip()
    if kind is ReceiptKind.RETURNED and (
        not reason or len(reason) > MAX_REASON or has_control_characters(reason)
    ):
        raise InvalidDocument.about(
            "退回须说明理由 (a return needs a reason)",
            "reason",
            f"必填，1 至 {MAX_REASON} 个字",
        )
    if kind is ReceiptKind.SIGNED:
        reason = ""
    if addressee.receipt is not None:
        raise AlreadyAnswered(
            f"本部门已于 {addressee.receipt.acted_at.astimezone().strftime('%Y-%m-%d %H:%M')}"
            f"{addressee.receipt.kind.label[1:]}该公文，不能重复办理 (already answered)"
        )
    key, private = _signer(settings)
    receipt = DocumentReceipt(
        document_id=document_id,
        department_id=addressee.department.id,
        kind=kind,
        reason=reason,
        acted_by=caller.name,
        acted_by_name=(caller.display_name or caller.name)[:50],
        acted_at=now.astimezone(UTC).replace(microsecond=0),
        package_digest=view.document.package_digest,
        sig_alg=key.alg,
        key_id=key.id,
        signature="",
    )
    receipt.signature = sign(
        key.alg, private, canonical(receipt_manifest(receipt, addressee.department))
    ).hex()
    session.add(receipt)
    session.flush()  # the unique constraint refuses a racing second answer here
    audit.record(
        session,
        caller.actor,
        "document.sign" if kind is ReceiptKind.SIGNED else "document.return",
        object_type="document",
        object_id=document_id,
        after={"department_id": addressee.department.id, "reason": reason},
        at=now,
    )
    return receipt
