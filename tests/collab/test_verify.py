"""Service tasks verify against real shared stores under the accepting department's
grant: the steps say yes or no, never a stored value; a kind of help already had is
flagged before any department approves."""

from __future__ import annotations

from sqlalchemy import select

from govshare.security.models import AuditEntry
from tests.collab.conftest import Clients
from tests.collab.scenery import (
    Scenery,
    application,
    forms,
    new_id_number,
    upload,
    verification_store,
)
from tests.live import LiveHub


def test_verifications_answer_yes_or_no_and_flag_double_benefits(
    as_: Clients, scenery: Scenery, collab_hub: LiveHub
) -> None:
    holder, stranger = new_id_number(), new_id_number()
    window = scenery.departments["政务服务"][0]
    with collab_hub.db() as s:
        dibao = verification_store(
            s,
            collab_hub.settings.resolved_shared_store_url,
            provider_id=scenery.departments["民政"][0],
            consumer_id=window,
            name="最低生活保障对象信息",
            holders=[holder],
        )
        housing = verification_store(
            s,
            collab_hub.settings.resolved_shared_store_url,
            provider_id=scenery.departments["住建"][0],
            consumer_id=scenery.departments["残联"][0],  # granted to another department
            name="公共租赁住房保障对象信息",
            holders=[holder],
        )
    bpmn = (
        scenery.bpmn()
        .replace(b"110101/000001", dibao.encode())
        .replace(b"110101/000003", housing.encode())
    )
    form_text = forms().replace("110101/000001", dibao).replace("110101/000003", housing)
    with as_["admin"] as c:
        r = upload(c, bpmn, form_text)
    assert r.status_code == 201, r.text
    with as_["window"] as c:
        had = c.post("/api/v1/collab/cases", json=application(r.json()["id"], applicant_id=holder))
        new = c.post(
            "/api/v1/collab/cases", json=application(r.json()["id"], applicant_id=stranger)
        )
    assert had.status_code == new.status_code == 201, had.text
    titles = [s["title"] for s in had.json()["steps"] if s["kind"] == "verified"]
    assert titles == ["核验低保登记：是", "核验残疾人登记：无法核验", "核验住房保障登记：无法核验"]
    assert had.json()["flags"] == ["已享受最低生活保障，又申请最低生活保障"]
    assert (
        next(s["title"] for s in new.json()["steps"] if s["kind"] == "verified")
        == "核验低保登记：否"
    )
    assert new.json()["flags"] == []
    assert "秘密姓名" not in had.text
    with as_["mz"] as c:
        page = c.get(f"/collab/cases/{had.json()['id']}")
    assert "重复享受" in page.text
    assert "秘密姓名" not in page.text
    with collab_hub.db() as s:
        entry = s.scalar(
            select(AuditEntry).where(
                AuditEntry.action == "collab.case.start",
                AuditEntry.object_id == str(had.json()["id"]),
            )
        )
        assert entry is not None
        assert [v["result"] for v in entry.after["verifications"]] == [
            "yes",
            "unavailable",
            "unavailable",
        ]
        assert holder not in str(entry.after)
