"""核验 after the fact: a document and its receipts verify; any change to the stored
metadata, the encrypted content, the signed manifest or a receipt is found and named —
through the API and through ``govshare documents verify`` with its exit codes."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import orjson
import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from govshare.documents.models import (
    Document,
    DocumentFile,
    DocumentReceipt,
    ReceiptKind,
)
from govshare.security.crypto import digest
from tests.catalog.console import csrf_of, signed_in
from tests.clirun import hub_cli
from tests.conftest import TEST_SECRET
from tests.documents.builders import Office, error, office, send
from tests.factories import World
from tests.live import LiveHub


@pytest.fixture
def sent(world: World) -> tuple[World, Office, Office, Office, int]:
    """A document from 大数据局 to 公安局 (signed for) and 民政局 (not yet answered)."""
    sender, police, civil = (
        office(world, "大数据局"),
        office(world, "公安局"),
        office(world, "民政局"),
    )
    with world.api(sender.clerk) as c:
        r = send(c, [police.id, civil.id], attachments=[("附件.pdf", b"%PDF-1.7 attachment")])
        assert r.status_code == 201, r.text
    doc_id = int(r.json()["id"])
    with world.api(police.clerk) as c:
        assert c.post(f"/api/v1/documents/{doc_id}/receipt").status_code == 201
    return world, sender, police, civil, doc_id


def cli(hub: LiveHub, *args: str, secret: str = TEST_SECRET) -> subprocess.CompletedProcess[str]:
    return hub_cli(hub.settings, "documents", "verify", *args, secret=secret)


def verify_api(world: World, who: Office, doc_id: int) -> dict[str, Any]:
    with world.api(who.clerk) as c:
        r = c.post(f"/api/v1/documents/{doc_id}/verify")
    assert r.status_code == 200, r.text
    found: dict[str, Any] = r.json()
    return found


def failures(report: dict[str, Any]) -> dict[str, str]:
    return {c["subject"]: c["reason"] for c in report["checks"] if not c["ok"]}


def tamper(hub: LiveHub, change: Callable[[Session], None]) -> None:
    with hub.db() as s:
        change(s)


def test_an_untouched_document_verifies_with_exit_code_0(
    sent: tuple[World, Office, Office, Office, int],
) -> None:
    world, _, police, _, doc_id = sent
    report = verify_api(world, police, doc_id)
    assert report["ok"] is True
    subjects = [c["subject"] for c in report["checks"]]
    assert subjects[:4] == ["签名密钥", "公文签名", "清单摘要", "元数据"]
    assert "正文 正文.pdf" in subjects
    assert "附件1 附件.pdf" in subjects
    assert any("回执" in s for s in subjects)
    run = cli(world.hub, str(doc_id))
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"公文 {doc_id} 核验通过" in run.stdout


def test_changed_metadata_is_named_field_by_field(
    sent: tuple[World, Office, Office, Office, int],
) -> None:
    world, sender, _, _, doc_id = sent

    def change(s: Session) -> None:
        doc = s.get(Document, doc_id)
        assert doc is not None
        doc.title = "关于另一件事的通知"
        doc.secrecy = "public"  # type: ignore[assignment]

    tamper(world.hub, change)
    found = failures(verify_api(world, sender, doc_id))
    assert set(found) == {"元数据"}
    assert "标题被改动" in found["元数据"]
    assert "关于另一件事的通知" in found["元数据"]
    assert "密级被改动" in found["元数据"]
    run = cli(world.hub, str(doc_id))
    assert run.returncode == 1
    assert "标题被改动" in run.stdout
    assert "1 项不符" in run.stderr


def test_changed_content_fails_authentication_and_is_not_served(
    sent: tuple[World, Office, Office, Office, int],
) -> None:
    world, sender, police, _, doc_id = sent

    def change(s: Session) -> None:
        f = s.scalar(
            select(DocumentFile).where(
                DocumentFile.document_id == doc_id, DocumentFile.position == 1
            )
        )
        assert f is not None
        f.content = bytes([f.content[0] ^ 1]) + f.content[1:]

    tamper(world.hub, change)
    found = failures(verify_api(world, sender, doc_id))
    assert set(found) == {"附件1 附件.pdf"}
    assert "密文无法通过认证" in found["附件1 附件.pdf"]
    with world.api(police.clerk) as c:
        error(c.get(f"/api/v1/documents/{doc_id}/files/1"), 503, "document_key_unavailable")
        assert c.get(f"/api/v1/documents/{doc_id}/files/0").status_code == 200
    run = cli(world.hub, str(doc_id))
    assert run.returncode == 1
    assert "密文无法通过认证" in run.stdout


def test_a_rewritten_manifest_with_its_digest_fails_the_signature(
    sent: tuple[World, Office, Office, Office, int],
) -> None:
    world, sender, _, _, doc_id = sent

    def change(s: Session) -> None:
        doc = s.get(Document, doc_id)
        assert doc is not None
        manifest = orjson.loads(doc.manifest)
        manifest["title"] = doc.title = "改过的标题"
        doc.manifest = orjson.dumps(manifest, option=orjson.OPT_SORT_KEYS).decode()
        doc.package_digest = digest(doc.digest_alg, doc.manifest.encode())

    tamper(world.hub, change)
    found = failures(verify_api(world, sender, doc_id))
    assert "签名清单不符" in found.pop("公文签名")
    # The receipt signed the document's original digest, not the rewritten one.
    ((subject, reason),) = found.items()
    assert "回执" in subject
    assert "公文摘要与该公文不符" in reason


def test_a_changed_or_forged_receipt_is_found(
    sent: tuple[World, Office, Office, Office, int],
) -> None:
    world, sender, police, civil, doc_id = sent

    def change(s: Session) -> None:
        receipt = s.scalar(
            select(DocumentReceipt).where(
                DocumentReceipt.document_id == doc_id, DocumentReceipt.department_id == police.id
            )
        )
        assert receipt is not None
        receipt.acted_at = receipt.acted_at - timedelta(days=1)
        # A receipt for 民政局, which never signed: a forgery with a made-up signature.
        s.add(
            DocumentReceipt(
                document_id=doc_id,
                department_id=civil.id,
                kind=ReceiptKind.SIGNED,
                reason="",
                acted_by=civil.clerk,
                acted_by_name="伪造",
                acted_at=receipt.acted_at,
                package_digest=receipt.package_digest,
                sig_alg=receipt.sig_alg,
                key_id=receipt.key_id,
                signature=receipt.signature,
            )
        )

    tamper(world.hub, change)
    found = failures(verify_api(world, sender, doc_id))
    assert len(found) == 2
    assert all("回执签名无效" in reason for reason in found.values())
    assert any(police.name in subject for subject in found)
    assert any(civil.name in subject for subject in found)


def test_the_database_keeps_one_receipt_per_department(
    sent: tuple[World, Office, Office, Office, int],
) -> None:
    world, _, _, _, doc_id = sent
    with world.hub.db() as s:
        first = s.scalar(select(DocumentReceipt).where(DocumentReceipt.document_id == doc_id))
        assert first is not None
        columns = [c.name for c in DocumentReceipt.__table__.columns if c.name != "id"]
        s.add(DocumentReceipt(**{c: getattr(first, c) for c in columns}))
        with pytest.raises(IntegrityError):
            s.flush()
        s.rollback()


def test_the_cli_without_the_secret_key_or_with_a_bad_id(
    sent: tuple[World, Office, Office, Office, int],
) -> None:
    world, _, _, _, doc_id = sent
    other = cli(world.hub, str(doc_id), secret="another-secret-key-with-at-least-32-chars!!")
    assert other.returncode == 1
    assert "平台密钥与加密时不同" in other.stdout
    missing = cli(world.hub, "999999999")
    assert missing.returncode == 2
    assert "不存在" in missing.stderr
    bad = cli(world.hub, "abc")
    assert bad.returncode == 2
    assert "正整数" in bad.stderr


def test_a_value_none_of_ours_is_reported_not_a_server_error(
    sent: tuple[World, Office, Office, Office, int],
) -> None:
    world, sender, police, _, doc_id = sent
    with world.hub.db() as s:
        s.execute(
            text("UPDATE document SET secrecy = 'top-secret-ish' WHERE id = :id"), {"id": doc_id}
        )
    report = verify_api(world, sender, doc_id)
    assert report["ok"] is False
    assert "存储的记录" in failures(report)
    with world.api(police.clerk) as c:
        body = error(c.get(f"/api/v1/documents/{doc_id}"), 409, "document_corrupted")
        assert f"govshare documents verify {doc_id}" in body["message"]
    with signed_in(world, sender.clerk) as c:
        page = c.post(f"/documents/{doc_id}/verify", data={"csrf_token": csrf_of(c)})
        assert page.status_code == 409
        assert "存储的记录" in page.text
    run = cli(world.hub, str(doc_id))
    assert run.returncode == 1
    assert "无效的取值" in run.stdout
