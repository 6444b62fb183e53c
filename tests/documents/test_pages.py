"""The document exchange console over real HTTP: send (and the form's Chinese errors),
the inbox with 签收 and 退回, the outbox with receipts, the 核验 button, downloads, and
another department's refusal."""

from __future__ import annotations

import re

from tests.catalog.console import csrf_of, signed_in
from tests.documents.builders import doc_number, office, pdf
from tests.factories import World


def test_send_receive_and_verify_in_the_console(world: World) -> None:
    sender, police, civil = (
        office(world, "大数据局"),
        office(world, "公安局"),
        office(world, "民政局"),
    )
    number = doc_number("青数函")
    with signed_in(world, sender.clerk) as c:
        page = c.get("/documents/new")
        assert page.status_code == 200
        assert "涉密公文（秘密、机密、绝密）严禁通过本平台传递" in page.text
        assert police.name in page.text
        assert sender.name not in page.text
        csrf = csrf_of(c)
        fields = {
            "csrf_token": csrf,
            "title": "关于做好年度数据共享考核的通知",
            "doc_number": number,
            "secrecy": "internal",
            "urgency": "urgent",
            "recipients": [str(police.id)],
        }
        bad = c.post(
            "/documents/send",
            data=fields,
            files=[("pdf", ("正文.pdf", b"not a pdf at all", "application/pdf"))],
        )
        assert bad.status_code == 422
        assert "正文：正文.pdf 不是 PDF 文件" in bad.text
        assert number in bad.text  # what was typed is kept
        r = c.post(
            "/documents/send",
            data=fields,
            files=[("pdf", ("正文.pdf", pdf(), "application/pdf"))],
        )
        assert r.status_code == 303, r.text
        found = re.match(r"^/documents/(\d+)\?done=sent$", r.headers["location"])
        assert found
        doc_id = int(found.group(1))
        detail = c.get(r.headers["location"])
        assert "公文已签名、加密并送达各收文部门" in detail.text
        assert "待签收" in detail.text
    with signed_in(world, police.clerk) as c:
        inbox = c.get("/documents")
        assert "关于做好年度数据共享考核的通知" in inbox.text
        assert f'action="/documents/{doc_id}/receipt"' in inbox.text
        csrf = csrf_of(c)
        refused = c.post(f"/documents/{doc_id}/return", data={"csrf_token": csrf, "reason": ""})
        assert refused.status_code == 422
        assert "退回理由" in refused.text
        download = c.get(f"/documents/{doc_id}/download", params={"file": 0})
        assert download.status_code == 200
        assert download.content == pdf()
        signed = c.post(f"/documents/{doc_id}/receipt", data={"csrf_token": csrf})
        assert signed.status_code == 303
        assert "已签收，回执已签名" in c.get(signed.headers["location"]).text
    with signed_in(world, sender.clerk) as c:
        outbox = c.get("/documents/outbox")
        assert "1 / 1 个部门已办理" in outbox.text
        assert "已签收" in outbox.text
        report = c.post(f"/documents/{doc_id}/verify", data={"csrf_token": csrf_of(c)})
        assert report.status_code == 200
        assert "公文完整：签名有效" in report.text
    with signed_in(world, civil.clerk) as c:
        other = c.get(f"/documents/{doc_id}")
        assert other.status_code == 403
        assert "只有发文部门和收文部门可以查看该公文" in other.text
        assert c.get(f"/documents/{doc_id}/download").status_code == 403
    with signed_in(world, police.registrar) as c:
        assert c.get("/documents").status_code == 403
        assert 'href="/documents"' not in c.get("/").text  # no document menu without the right
