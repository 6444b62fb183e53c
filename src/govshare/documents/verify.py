"""核验 (verification) of a stored document, years after it was sent.

In order: the signing key the document names is one of the hub's document keys
(``keys``); the signature over the stored manifest; the manifest's digest; the stored
metadata against the manifest, field by field (so a changed title, 文号, 密级, receiver
or file list is named with its signed and its present value); each file decrypted
(AES-GCM authenticates the stored bytes) and digested against the manifest; each
receipt's signature over the document digest, the department, the user, the time and
the answer. Nothing is changed; every failure is a ``Check`` with its precise reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import select
from sqlalchemy.orm import Session

from govshare.documents import keys
from govshare.documents.errors import DocumentNotFound
from govshare.documents.models import Document, DocumentReceipt
from govshare.documents.service import canonical, manifest_of, receipt_manifest, views
from govshare.security import audit
from govshare.security.crypto import digest, verify_signature
from govshare.security.models import Department
from govshare.security.service import Principal


@dataclass(frozen=True, slots=True)
class Check:
    """One thing verified: what, whether it holds, and why not."""

    subject: str
    ok: bool
    reason: str = ""


@dataclass
class VerifyReport:
    document_id: int
    checks: list[Check]

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    @property
    def failures(self) -> list[Check]:
        return [c for c in self.checks if not c.ok]


FIELD_LABELS = {
    "id": "编号",
    "sender": "发文部门",
    "title": "标题",
    "doc_number": "文号",
    "secrecy": "密级",
    "urgency": "紧急程度",
    "sent_by": "发文人",
    "sent_at": "发文时间",
    "recipients": "收文部门",
    "files": "文件清单",
    "digest_alg": "摘要算法",
    "sig_alg": "签名算法",
    "key_id": "签名密钥",
    "v": "格式版本",
}


def verify_document(
    session: Session, data_dir: Path, secret_key: str, document_id: int
) -> VerifyReport:
    """Check everything of a stored document, years after: its signature, its manifest
    against the stored metadata, each file against its digest, each receipt's signature.
    Reads only; never raises for what it finds (a report), only for a missing id."""
    try:
        document = session.get(Document, document_id)
        if document is None:
            raise DocumentNotFound(f"公文 {document_id} 不存在 (document not found)")
        (view,) = views(session, [document], with_files=True)
    except LookupError as exc:  # a value of a StrEnum column none of ours: altered
        session.rollback()
        reason = f"数据库中的公文或回执含有无效的取值，已被改动: {exc}"
        return VerifyReport(document_id, [Check("存储的记录", False, reason)])
    checks: list[Check] = []
    manifest = document.manifest.encode()
    try:
        signer = keys.find_key(data_dir, document.key_id)
    except keys.DocumentKeyError as exc:
        signer = None
        checks.append(Check("签名密钥", False, str(exc)))
    else:
        if signer is None or signer.alg != document.sig_alg:
            checks.append(
                Check(
                    "签名密钥",
                    False,
                    f"签名密钥 {document.key_id}（{document.sig_alg}）不在平台的公文密钥文件中",
                )
            )
        else:
            checks.append(Check("签名密钥", True))
    if signer is not None:
        good = verify_signature(signer.alg, signer.public, manifest, _hex(document.signature))
        checks.append(
            Check(
                "公文签名",
                good,
                "" if good else "签名与签名清单不符：清单或签名被改动",
            )
        )
    known_alg = document.digest_alg in ("sm3", "sha256")
    signed_digest = digest(document.digest_alg, manifest) if known_alg else ""
    same = signed_digest == document.package_digest
    checks.append(
        Check(
            "清单摘要",
            same,
            ""
            if same
            else f"签名清单的摘要 {signed_digest[:16]}… 与存储的 "
            f"{document.package_digest[:16]}… 不符",
        )
    )
    try:
        signed: dict[str, Any] = orjson.loads(manifest)
    except orjson.JSONDecodeError:
        signed = {}
        checks.append(Check("元数据", False, "签名清单不是有效的 JSON"))
    current = manifest_of(
        document, view.sender, [a.department for a in view.addressees], view.files
    )
    if signed:
        changed = [k for k in sorted(set(signed) | set(current)) if signed.get(k) != current.get(k)]
        reasons = [
            f"{FIELD_LABELS.get(k, k)}被改动：签名时为 {_short(signed.get(k))}，"
            f"现为 {_short(current.get(k))}"
            for k in changed
        ]
        checks.append(Check("元数据", not changed, "；".join(reasons)))
    signed_files = {int(f["position"]): f for f in signed.get("files", [])}
    for f in view.files:
        label = "正文" if f.position == 0 else f"附件{f.position}"
        subject = f"{label} {f.name}"
        try:
            data = keys.decrypt_file(secret_key, document_id, f.position, f.nonce, f.content)
        except ValueError:
            checks.append(
                Check(subject, False, "密文无法通过认证：存储的内容被改动，或平台密钥与加密时不同")
            )
            continue
        actual = digest(document.digest_alg, data)
        expected = signed_files.get(f.position, {}).get("digest")
        if actual != expected:
            checks.append(
                Check(
                    subject, False, f"内容摘要 {actual[:16]}… 与签名时的 {str(expected)[:16]}… 不符"
                )
            )
        else:
            checks.append(Check(subject, True))
    for position in sorted(set(signed_files) - {f.position for f in view.files}):
        checks.append(
            Check(f"文件 {signed_files[position].get('name')}", False, "签名时的文件已不在平台中")
        )
    for a in view.addressees:
        if a.receipt is not None:
            checks.append(_check_receipt(data_dir, document, a.department, a.receipt))
    stray = session.scalars(
        select(DocumentReceipt).where(
            DocumentReceipt.document_id == document_id,
            DocumentReceipt.department_id.not_in([a.department.id for a in view.addressees]),
        )
    ).all()
    for r in stray:
        checks.append(Check(f"回执 #{r.id}", False, f"部门 {r.department_id} 不是该公文的收文部门"))
    return VerifyReport(document_id, checks)


def _check_receipt(
    data_dir: Path, document: Document, department: Department, receipt: DocumentReceipt
) -> Check:
    subject = f"{department.name}的回执（{receipt.kind.label}）"
    if receipt.package_digest != document.package_digest:
        return Check(subject, False, "回执所签的公文摘要与该公文不符")
    try:
        signer = keys.find_key(data_dir, receipt.key_id)
    except keys.DocumentKeyError as exc:
        return Check(subject, False, str(exc))
    if signer is None or signer.alg != receipt.sig_alg:
        return Check(subject, False, f"签名密钥 {receipt.key_id} 不在平台的公文密钥文件中")
    signed = canonical(receipt_manifest(receipt, department))
    if not verify_signature(signer.alg, signer.public, signed, _hex(receipt.signature)):
        return Check(subject, False, "回执签名无效：签收部门、签收人、时间、结论或理由与签名不符")
    return Check(subject, True)


def _hex(text: str) -> bytes:
    try:
        return bytes.fromhex(text)
    except ValueError:
        return b""


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else orjson.dumps(value).decode()
    return f"“{text[:80]}{'…' if len(text) > 80 else ''}”"


def record_verification(
    session: Session, caller: Principal, report: VerifyReport, *, now: datetime
) -> None:
    audit.record(
        session,
        caller.actor,
        "document.verify",
        object_type="document",
        object_id=report.document_id,
        after={"ok": report.ok, "failures": [c.subject for c in report.failures]},
        at=now,
    )
