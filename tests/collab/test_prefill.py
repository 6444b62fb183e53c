"""带出: a window officer fills an application from a base database under the
department's query grant — granted items only, masked as the grant says, each lookup
(found, missing or refused) in the audit log with the key as a keyed hash — and the
particulars stay with the case for the departments that handle it."""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
from sqlalchemy import Column, MetaData, String, Table, create_engine, select

from govshare.catalog import service as catalog
from govshare.catalog.schemas import ItemIn, ResourceIn
from govshare.security.audit import KeyHasher
from govshare.security.models import AuditEntry
from govshare.sharing.models import SharedStore
from tests.catalog.console import signed_in_to
from tests.collab.conftest import Clients
from tests.collab.scenery import Scenery, application, forms, grant, upload
from tests.e2e.hubenv import ADMIN, REVIEWER
from tests.factories import valid_credit_code
from tests.live import LiveHub

ENTERPRISE = ("青岛海清科技有限公司", "王小明", "青岛市市南区香港中路1号")


def legal_store(hub: LiveHub, *, provider_id: int, consumer_id: int, codes: list[str]) -> str:
    """A published legal-entity resource with a shared store holding ``codes`` and a
    query grant for ``consumer_id`` on the code, the name and the (masked) legal
    representative — not the address; returns the resource's code."""
    with hub.db() as session:
        res = catalog.add_resource(
            session,
            ADMIN,
            ResourceIn(
                classification_code="102001",
                name="法人基础信息（带出测试）",
                abstract="企业开办带出测试",
                format="database",
                sharing_type="2",
                sharing_conditions="仅用于企业开办",
                sharing_modes=["api"],
                update_cycle="daily",
                provider_department_id=provider_id,
                items=[
                    ItemIn(
                        name="统一社会信用代码",
                        code="tyshxydm",
                        data_type="C",
                        length=18,
                        is_key=True,
                    ),
                    ItemIn(name="企业名称", code="qymc", data_type="C", length=200),
                    ItemIn(name="法定代表人", code="fddbr", data_type="C", length=50),
                    ItemIn(name="登记住所", code="djzs", data_type="C", length=200),
                ],
            ),
        )
        for step in ["submit", "approve", "request_publication", "publish"]:
            catalog.transition(
                session, REVIEWER if step in ("approve", "publish") else ADMIN, res.id, step
            )
        table = f"ss_{res.id}"
        columns = ("tyshxydm", "qymc", "fddbr", "djzs")
        session.add(
            SharedStore(
                resource_id=res.id,
                source_task_id=None,
                key_item="tyshxydm",
                mapping={c: c for c in columns},
                verify_rules=[],
                table_name=table,
                created_by="setup",
            )
        )
        grant(
            session,
            res.id,
            provider_id,
            consumer_id,
            ["tyshxydm", "qymc", "fddbr"],
            "query",
            "企业开办带出",
            masking={"fddbr": "name"},
        )
        code = str(res.code)
    engine = create_engine(hub.settings.resolved_shared_store_url)
    t = Table(table, MetaData(), *(Column(c, String(200), index=c == "tyshxydm") for c in columns))
    t.create(engine)
    with engine.begin() as conn:
        conn.execute(t.insert(), [dict(zip(columns, (c, *ENTERPRISE), strict=True)) for c in codes])
    engine.dispose()
    return code


def prefill_forms(resource: str) -> str:
    spec = json.loads(forms())
    spec["prefill"] = {
        "resource": resource,
        "key_label": "统一社会信用代码",
        "key_kind": "credit_code",
        "items": {"qymc": "企业名称", "fddbr": "法定代表人", "djzs": "登记住所"},
    }
    return json.dumps(spec, ensure_ascii=False)


def _definition(as_: Clients, scenery: Scenery, hub: LiveHub, code: str) -> dict[str, Any]:
    resource = legal_store(
        hub,
        provider_id=scenery.departments["民政"][0],
        consumer_id=scenery.departments["政务服务"][0],
        codes=[code],
    )
    with as_["admin"] as c:
        r = upload(c, scenery.bpmn(), prefill_forms(resource))
    assert r.status_code == 201, r.text
    return dict(r.json())


def _prefill_entries(hub: LiveHub, key_hash: str) -> list[AuditEntry]:
    with hub.db() as s:
        rows = s.scalars(
            select(AuditEntry)
            .where(AuditEntry.action.in_(["data.lookup", "data.denied"]))
            .order_by(AuditEntry.seq)
        )
        return [
            e
            for e in rows
            if e.after.get("purpose") == "collab.prefill" and key_hash in e.after["key_hashes"]
        ]


def test_the_window_brings_granted_items_over_masked_and_each_lookup_is_audited(
    as_: Clients, scenery: Scenery, collab_hub: LiveHub
) -> None:
    code, unknown = valid_credit_code(), valid_credit_code()
    definition = _definition(as_, scenery, collab_hub, code)
    url = f"/api/v1/collab/definitions/{definition['id']}/prefill"
    with as_["window"] as c:
        found = c.get(url, params={"key": code.lower()})
        missing = c.get(url, params={"key": unknown})
        malformed = c.get(url, params={"key": code[:-1] + ("0" if code[-1] != "0" else "1")})
    assert found.status_code == 200, found.text
    # The address is not granted; the legal representative is masked as a name.
    assert found.json() == {
        "key": code,
        "values": {"统一社会信用代码": code, "企业名称": ENTERPRISE[0], "法定代表人": "王**"},
    }
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "case_prefill_not_found"
    assert malformed.status_code == 422
    assert [d["field"] for d in malformed.json()["error"]["details"]] == ["key"]
    # 民政 provides the resource but holds no grant for it: refused, and audited.
    with as_["mz_window"] as c:
        refused = c.get(url, params={"key": code})
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "no_grant"

    hasher = KeyHasher(collab_hub.settings.secret_key)
    entries = _prefill_entries(collab_hub, hasher(code))
    assert [(e.action, e.actor, e.after["rows"]) for e in entries] == [
        ("data.lookup", scenery.users["window"], 1),
        ("data.denied", scenery.users["mz_window"], 0),
    ]
    assert code not in json.dumps([e.after for e in entries])
    [miss] = _prefill_entries(collab_hub, hasher(unknown))
    assert (miss.action, miss.after["rows"]) == ("data.lookup", 0)


def test_particulars_stay_with_the_case_and_only_the_process_labels_are_taken(
    as_: Clients, scenery: Scenery, collab_hub: LiveHub
) -> None:
    code = valid_credit_code()
    definition = _definition(as_, scenery, collab_hub, code)
    particulars = {"统一社会信用代码": code, "企业名称": ENTERPRISE[0], "登记住所": "青岛市崂山区"}
    with as_["window"] as c:
        case = c.post(
            "/api/v1/collab/cases", json=application(definition["id"], particulars=particulars)
        )
        stranger = c.post(
            "/api/v1/collab/cases",
            json=application(definition["id"], particulars={"注册资本": "100万元"}),
        )
        bad_code = c.post(
            "/api/v1/collab/cases",
            json=application(definition["id"], particulars={"统一社会信用代码": "123"}),
        )
    assert case.status_code == 201, case.text
    assert case.json()["particulars"] == particulars
    assert stranger.status_code == bad_code.status_code == 422
    assert [d["field"] for d in stranger.json()["error"]["details"]] == ["particulars.注册资本"]
    assert [d["field"] for d in bad_code.json()["error"]["details"]] == [
        "particulars.统一社会信用代码"
    ]
    with as_["mz"] as c:
        page = c.get(f"/collab/cases/{case.json()['id']}")
    assert page.status_code == 200
    assert ENTERPRISE[0] in page.text
    assert "青岛市崂山区" in page.text


def test_a_process_whose_prefill_is_malformed_is_refused_at_upload(
    as_: Clients, scenery: Scenery
) -> None:
    spec = json.loads(prefill_forms("110101/000001"))
    spec["prefill"]["items"] = {"qymc": "统一社会信用代码"}  # a label used twice
    with as_["admin"] as c:
        r = upload(c, scenery.bpmn(), json.dumps(spec, ensure_ascii=False))
        no_items = upload(
            c,
            scenery.bpmn(),
            json.dumps({**spec, "prefill": {"resource": "x", "key_label": "代码"}}),
        )
    assert r.status_code == no_items.status_code == 422
    assert r.json()["error"]["details"] == [
        {"field": "forms.prefill", "message": "显示名称不能重复"}
    ]
    assert no_items.json()["error"]["details"][0]["field"] == "forms.prefill"


def _csrf(client: httpx.Client) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/collab/cases/new").text)
    assert found
    return found.group(1)


def test_the_console_form_is_filled_from_the_base_and_accepted_with_it(
    as_: Clients, scenery: Scenery, collab_hub: LiveHub
) -> None:
    code = valid_credit_code()
    definition = _definition(as_, scenery, collab_hub, code)
    with signed_in_to(collab_hub, scenery.users["window"]) as c:
        csrf = _csrf(c)
        filled = c.post(
            "/collab/cases/prefill",
            data={"csrf_token": csrf, "definition_id": definition["id"], "prefill_key": code},
        )
        nothing = c.post(
            "/collab/cases/prefill",
            data={
                "csrf_token": csrf,
                "definition_id": definition["id"],
                "prefill_key": valid_credit_code(),
            },
        )
        body = application(definition["id"])
        accepted = c.post(
            "/collab/cases",
            data={
                "csrf_token": csrf,
                "definition_id": definition["id"],
                "applicant_name": body["applicant_name"],
                "applicant_id": body["applicant_id"],
                "help_kinds": body["help_kinds"],
                "p_0": code,
                "p_1": ENTERPRISE[0] + "（核对后）",
                "p_2": "",
                "p_3": "",
            },
        )
    assert filled.status_code == 200
    assert "已从基础库带出申请信息" in filled.text
    assert f'value="{ENTERPRISE[0]}"' in filled.text
    assert 'value="王**"' in filled.text
    assert ENTERPRISE[2] not in filled.text  # not granted
    assert nothing.status_code == 404
    assert "没有统一社会信用代码为" in nothing.text
    assert accepted.status_code == 303, accepted.text[:2000]
    case_id = int(accepted.headers["location"].split("/")[-1].split("?")[0])
    with as_["window"] as c:
        case = c.get(f"/api/v1/collab/cases/{case_id}").json()
    assert case["particulars"] == {
        "统一社会信用代码": code,
        "企业名称": ENTERPRISE[0] + "（核对后）",
    }
