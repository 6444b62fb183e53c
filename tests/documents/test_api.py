"""The document exchange API over a live hub on both backends: sending, receipts, who
sees what, and every refusal with its precise error."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from govshare.documents.models import Document, DocumentFile
from govshare.security.models import AuditEntry
from tests.conftest import StartHub
from tests.documents.builders import FROZEN, Office, error, frozen, office, pdf, send
from tests.factories import World


@pytest.fixture
def offices(world: World) -> tuple[Office, Office, Office]:
    return office(world, "大数据局"), office(world, "公安局"), office(world, "民政局")


def _count_documents(world: World, sender: Office) -> int:
    with world.hub.db() as s:
        return (
            s.scalar(
                select(func.count())
                .select_from(Document)
                .where(Document.sender_department_id == sender.id)
            )
            or 0
        )


def test_send_sign_for_return_and_the_sender_sees_every_receipt(
    world: World, offices: tuple[Office, Office, Office]
) -> None:
    sender, police, civil = offices
    attachment = b"PK\x03\x04" + b"\x00" * 40
    with frozen(world.hub) as now:
        with world.api(sender.clerk) as c:
            r = send(
                c,
                [police.id, civil.id],
                urgency="特急",
                attachments=[("附件1 名单.xlsx", attachment)],
            )
        assert r.status_code == 201, r.text
        sent = r.json()
        assert sent["sent_at"].startswith("2026-03-02T09:30:00")
        assert sent["urgency"] == "extra_urgent"
        assert sent["secrecy"] == "internal"
        assert [f["position"] for f in sent["files"]] == [0, 1]
        assert sent["sig_alg"] == "sm2"
        assert len(sent["signature"]) == 128
        assert {x["kind"] for x in sent["receipts"]} == {None}
        doc_id = sent["id"]

        now[0] = FROZEN.replace(hour=10, minute=0)
        with world.api(police.clerk) as c:
            inbox = c.get("/api/v1/documents", params={"box": "inbox"}).json()
            assert [d["id"] for d in inbox][:1] == [doc_id]
            got = c.get(f"/api/v1/documents/{doc_id}/files/0")
            assert got.status_code == 200
            assert got.content == pdf()
            assert c.get(f"/api/v1/documents/{doc_id}/files/1").content == attachment
            r = c.post(f"/api/v1/documents/{doc_id}/receipt")
        assert r.status_code == 201, r.text
        assert r.json()["kind"] == "signed"
        assert r.json()["acted_at"].startswith("2026-03-02T10:00:00")

        now[0] = FROZEN.replace(hour=11, minute=0)
        with world.api(civil.clerk) as c:
            r = c.post(f"/api/v1/documents/{doc_id}/return", json={"reason": "不属本部门职责"})
        assert r.status_code == 201, r.text

    with world.api(sender.clerk) as c:
        outbox = c.get("/api/v1/documents", params={"box": "outbox"}).json()
        mine = next(d for d in outbox if d["id"] == doc_id)
        receipts = {x["department_id"]: x for x in mine["receipts"]}
        assert receipts[police.id]["kind"] == "signed"
        assert receipts[police.id]["acted_by"] == police.clerk
        assert receipts[civil.id]["kind"] == "returned"
        assert receipts[civil.id]["reason"] == "不属本部门职责"
        assert receipts[civil.id]["acted_at"].startswith("2026-03-02T11:00:00")
        assert all(len(x["signature"]) == 128 for x in receipts.values())
        report = c.post(f"/api/v1/documents/{doc_id}/verify").json()
        assert report["ok"] is True, report
    with world.hub.db() as s:
        actions = [
            (e.action, e.actor)
            for e in s.scalars(
                select(AuditEntry)
                .where(AuditEntry.object_type == "document", AuditEntry.object_id == str(doc_id))
                .order_by(AuditEntry.seq)
            )
        ]
    assert actions == [
        ("document.send", sender.clerk),
        ("document.download", police.clerk),
        ("document.download", police.clerk),
        ("document.sign", police.clerk),
        ("document.return", civil.clerk),
        ("document.verify", sender.clerk),
    ]


def test_stored_content_is_encrypted(world: World, offices: tuple[Office, Office, Office]) -> None:
    sender, police, _ = offices
    marker = "独一无二的明文标记"
    with world.api(sender.clerk) as c:
        r = send(c, [police.id], pdf_bytes=pdf(marker))
    assert r.status_code == 201, r.text
    with world.hub.db() as s:
        stored = s.scalar(
            select(DocumentFile).where(
                DocumentFile.document_id == r.json()["id"], DocumentFile.position == 0
            )
        )
        assert stored is not None
        assert marker.encode() not in stored.content
        assert b"%PDF" not in stored.content


@pytest.mark.parametrize(
    ("pdf_bytes", "attachments", "field", "words"),
    [
        (b"PK\x03\x04 a zip, not a pdf", [], "pdf", "不是 PDF 文件"),
        (b"", [], "pdf", "空文件"),
        (pdf()[:-8], [], "pdf", "%%EOF"),
        (None, [("名单.xlsx", b"%PDF-1.4 not a spreadsheet")], "attachments[0]", "与扩展名不符"),
        (None, [("脚本.exe", b"MZ")], "attachments[0]", "附件类型应为"),
    ],
)
def test_what_is_not_a_pdf_or_not_its_kind_is_refused(
    world: World,
    offices: tuple[Office, Office, Office],
    pdf_bytes: bytes | None,
    attachments: list[tuple[str, bytes]],
    field: str,
    words: str,
) -> None:
    sender, police, _ = offices
    with world.api(sender.clerk) as c:
        r = send(c, [police.id], pdf_bytes=pdf_bytes, attachments=attachments)
    body = error(r, 422, "invalid_document")
    assert [d["field"] for d in body["details"]] == [field]
    assert words in body["details"][0]["message"]
    assert _count_documents(world, sender) == 0


def test_metadata_is_checked_field_by_field(
    world: World, offices: tuple[Office, Office, Office]
) -> None:
    sender, police, _ = offices
    with world.api(sender.clerk) as c:
        r = send(
            c,
            [police.id, 999_999, sender.id, police.id, "x"],  # type: ignore[list-item]
            title="",
            doc_number="青数发2026第12号",
            urgency="很急",
        )
    body = error(r, 422, "invalid_document")
    fields = {d["field"]: d["message"] for d in body["details"]}
    assert set(fields) == {
        "title",
        "doc_number",
        "urgency",
        "recipients[1]",
        "recipients[2]",
        "recipients[3]",
        "recipients[4]",
    }
    assert "〔年份〕" in fields["doc_number"]
    assert "999999 不存在" in fields["recipients[1]"]
    assert "本部门" in fields["recipients[2]"]
    assert "重复" in fields["recipients[3]"]
    with world.api(sender.clerk) as c:
        error(send(c, []), 422, "invalid_document")
        first = send(c, [police.id], doc_number="青数发〔2026〕9001号")
        assert first.status_code == 201, first.text
        again = error(
            send(c, [police.id], doc_number="青数发〔2026〕9001号"), 422, "invalid_document"
        )
        assert again["details"][0]["field"] == "doc_number"
        assert "已发出" in again["details"][0]["message"]
    assert _count_documents(world, sender) == 1


@pytest.mark.parametrize("level", ["secret", "机密", "top_secret"])
def test_classified_documents_are_refused_at_upload(
    world: World, offices: tuple[Office, Office, Office], level: str
) -> None:
    sender, police, _ = offices
    with world.api(sender.clerk) as c:
        body = error(send(c, [police.id], secrecy=level), 422, "document_secrecy_refused")
    assert "不得上传" in body["message"]
    assert body["details"][0]["field"] == "secrecy"
    assert _count_documents(world, sender) == 0


def test_the_limits_are_settings(start_hub: StartHub) -> None:
    hub = start_hub(documents_max_bytes=64 * 1024, documents_max_secrecy="public")
    world = World(hub)
    sender, police = office(world, "大数据局"), office(world, "公安局")
    with world.api(sender.clerk) as c:
        big = pdf() + b"0" * (80 * 1024)
        body = error(send(c, [police.id], pdf_bytes=big), 413, "body_too_large")
        assert "65536" in body["details"][0]["message"]
        refused = error(send(c, [police.id], secrecy="内部"), 422, "document_secrecy_refused")
        assert "“公开”" in refused["message"]
        assert send(c, [police.id], secrecy="公开").status_code == 201


def test_a_receipt_is_given_once_and_only_by_an_addressed_department(
    world: World, offices: tuple[Office, Office, Office]
) -> None:
    sender, police, civil = offices
    with world.api(sender.clerk) as c:
        doc_id = send(c, [police.id]).json()["id"]
        error(c.post(f"/api/v1/documents/{doc_id}/receipt"), 403, "document_not_addressed")
    with world.api(police.clerk) as c:
        assert c.post(f"/api/v1/documents/{doc_id}/receipt").status_code == 201
        again = error(
            c.post(f"/api/v1/documents/{doc_id}/receipt"), 409, "document_already_answered"
        )
        assert "不能重复" in again["message"]
        error(
            c.post(f"/api/v1/documents/{doc_id}/return", json={"reason": "改主意"}),
            409,
            "document_already_answered",
        )
    with world.api(civil.clerk) as c:
        error(c.post(f"/api/v1/documents/{doc_id}/receipt"), 403, "not_your_document")
        error(c.get(f"/api/v1/documents/{doc_id}"), 403, "not_your_document")
        error(c.get(f"/api/v1/documents/{doc_id}/files/0"), 403, "not_your_document")
        error(c.post(f"/api/v1/documents/{doc_id}/verify"), 403, "not_your_document")
        assert doc_id not in {d["id"] for d in c.get("/api/v1/documents").json()}
        error(c.get("/api/v1/documents/999999999"), 404, "document_not_found")
    with world.api(police.registrar) as c:
        error(c.get(f"/api/v1/documents/{doc_id}"), 403, "permission_denied")
    with world.api(world.auditor) as c:
        error(c.get("/api/v1/documents"), 403, "permission_denied")
    with world.hub.client() as anonymous:
        error(anonymous.get(f"/api/v1/documents/{doc_id}"), 401, "not_authenticated")


def test_a_return_needs_a_reason(world: World, offices: tuple[Office, Office, Office]) -> None:
    sender, police, _ = offices
    with world.api(sender.clerk) as c:
        doc_id = send(c, [police.id]).json()["id"]
    with world.api(police.clerk) as c:
        body = error(
            c.post(f"/api/v1/documents/{doc_id}/return", json={"reason": ""}), 422, "invalid_input"
        )
        assert body["details"][0]["field"] == "reason"
        body = error(
            c.post(f"/api/v1/documents/{doc_id}/return", json={"reason": "  "}),
            422,
            "invalid_document",
        )
        assert body["details"][0]["field"] == "reason"
        assert c.post(f"/api/v1/documents/{doc_id}/receipt").status_code == 201
