"""A base database assembled over the live hub from two departments' real nodes, on
SQLite and PostgreSQL: the authoritative value wins, each evidence disagreement becomes
exactly one conflict for the authoritative department, a correction made at the source
flows through the exchange and closes its conflict (and the objection tracking it),
and the base is served by the data services like any store."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, select, text
from sqlalchemy.pool import NullPool

from govshare.node.agent import NodeAgent
from govshare.node.config import Database, NodeConfig
from govshare.security.models import AuditEntry
from tests.catalog.console import csrf_of, signed_in
from tests.exchange.scenario import PERSON_ITEMS, make_source
from tests.factories import Dept, World
from tests.live import LiveHub
from tests.sharing.builders import application_payload
from tests.sharing.test_data import _client

ROWS = 120
# 民政's copy of 性别 differs from 公安's for these persons (ids); 男/女 words elsewhere
# agree with 1/2 once the code table is applied, so they are not conflicts.
PLANTED = (3, 8, 21, 40)


KEY_ITEM = {"name": "公民身份号码", "code": "sfzhm", "data_type": "C", "length": 18, "is_key": True}
NAME_ITEM = {"name": "姓名", "code": "xm", "data_type": "C", "length": 50}


def base_entry(world: World, owner: Dept, name: str, *items: dict[str, Any], **kw: Any) -> Any:
    """A published 基础信息资源 entry of ``owner`` keyed by 公民身份号码, with 姓名 and
    ``items``."""
    return world.published(
        owner,
        name=name,
        classification_code="101001",
        items=[KEY_ITEM, NAME_ITEM, *items],
        **kw,
    )


@dataclass
class Side:
    dept: Dept
    resource: dict[str, Any]
    source_url: str
    node: NodeAgent
    task_id: int
    store_id: int = 0


@dataclass
class Base:
    world: World
    police: Side  # 公安: authoritative for 姓名 and 性别
    civil: Side  # 民政: evidence for 性别
    owner: Dept
    base: dict[str, Any]


def _side(
    world: World,
    tmp: Path,
    short: str,
    name: str,
    *,
    extra: dict[str, str] | None = None,
    sensitive: tuple[str, ...] = (),
) -> Side:
    """A department whose node feeds a store of ``ROWS`` persons; ``extra`` adds items
    (code → SQL expression over ``id`` filling the source column); the catalog marks
    the items of ``sensitive`` 敏感 (the store keeps them sealed)."""
    extra = extra or {}
    dept = world.department(short)
    items = [
        *PERSON_ITEMS,
        *[{"name": f"附加{code}", "code": code, "data_type": "C", "length": 20} for code in extra],
    ]
    items = [{**it, "sensitive": it["code"] in sensitive} for it in items]
    resource = world.published(dept, name=name, format="database", items=items)
    make_source(tmp / f"{short}.db", ROWS)
    url = f"sqlite:///{tmp / f'{short}.db'}"
    if extra:
        engine = create_engine(url, poolclass=NullPool)
        with engine.begin() as conn:
            for code, expression in extra.items():
                conn.execute(text(f"ALTER TABLE person ADD COLUMN {code} TEXT"))
                conn.execute(text(f"UPDATE person SET {code} = {expression}"))
        engine.dispose()
    with world.api(world.admin) as c:
        r = c.post(
            "/api/v1/exchange/nodes", json={"name": f"{short}-{dept.id}", "department_id": dept.id}
        )
        assert r.status_code == 201, r.text
        node_id, token = r.json()["id"], r.json()["enrollment_token"]
        r = c.post(
            "/api/v1/exchange/tasks",
            json={
                "name": f"{name}发送",
                "kind": "provider",
                "node_id": node_id,
                "resource_id": resource["id"],
                "config": {
                    "source": "biz",
                    "table": "person",
                    "key": ["id"],
                    "cursor_column": "version",
                    "delete_detection": "keyset",
                    "keyset_every_seconds": 3600,
                    "schedule": {"interval_seconds": 0.2},
                },
            },
        )
        assert r.status_code == 201, r.text
        task_id = r.json()["id"]
        assert c.post(f"/api/v1/exchange/tasks/{task_id}/start").status_code == 200
    agent = NodeAgent(
        NodeConfig(
            hub_url=world.hub.base_url,
            node_id=node_id,
            enrollment_token=token,
            store=tmp / f"store-{short}",
            sources={"biz": Database(url=url)},
            targets={},
            heartbeat_seconds=0.2,
            tick_seconds=0.05,
        )
    )
    agent.ensure_registered()
    side = Side(dept, resource, url, agent, task_id)
    with world.api(dept.resource_admin) as c:
        r = c.post(
            "/api/v1/sharing/stores",
            json={
                "resource_id": resource["id"],
                "source_task_id": task_id,
                "key_item": "sfzhm",
                "mapping": {"sfzhm": "sfzhm", "xm": "xm", "xb": "xb", "version": "version"}
                | {code: code for code in extra},
            },
        )
        assert r.status_code == 201, r.text
        side.store_id = r.json()["id"]
    return side


def _source(side: Side, sql: str, **params: Any) -> None:
    engine = create_engine(side.source_url, poolclass=NullPool)
    with engine.begin() as conn:
        v = conn.execute(text("SELECT max(version) + 1 FROM person")).scalar_one()
        conn.execute(text(sql), {"v": v, **params})
    engine.dispose()


def _wait(world: World, sides: Sequence[Any], done: Any, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, "the base database did not converge in time"
        for side in sides:
            side.node.tick()
        time.sleep(0.05)


def _get(world: World, user: str, path: str, **params: Any) -> Any:
    with world.api(user) as c:
        r = c.get(path, params=params)
        assert r.status_code == 200, r.text
        return r.json()


def _open_conflicts(world: World, user: str, base_id: int) -> list[dict[str, Any]]:
    page = _get(world, user, "/api/v1/base-conflicts", base_id=base_id, status="open", limit=500)
    return list(page["items"])


@pytest.fixture(scope="module")
def assembled(hub: LiveHub, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Base]:
    world = World(hub)
    tmp = tmp_path_factory.mktemp("base")
    police = _side(world, tmp, "公安", "户籍人口信息")
    civil = _side(world, tmp, "民政", "殡葬与婚姻登记人员信息")
    _source(
        civil, "UPDATE person SET xb = CASE xb WHEN '1' THEN '男' ELSE '女' END, version = :v + id"
    )
    for i in PLANTED:
        _source(civil, "UPDATE person SET xb = '9', version = :v WHERE id = :i", i=i)
    owner = world.department("大数据局")
    resource = base_entry(
        world,
        owner,
        "人口基础信息",
        {"name": "性别", "code": "xb", "data_type": "C", "length": 1, "code_table": "GB/T 2261.1"},
        sharing_type="1",
        sharing_conditions="",
    )
    with world.api(world.admin) as c:
        r = c.post(
            "/api/v1/base-databases",
            json={
                "resource_id": resource["id"],
                "key_item": "sfzhm",
                "items": [
                    {"item": "xm", "source": {"store_id": police.store_id, "column": "xm"}},
                    {
                        "item": "xb",
                        "source": {"store_id": police.store_id, "column": "xb"},
                        "evidence": [{"store_id": civil.store_id, "column": "xb"}],
                    },
                ],
            },
        )
        assert r.status_code == 201, r.text
        base = r.json()

    def done() -> bool:
        b = _get(world, world.admin, f"/api/v1/base-databases/{base['id']}")
        return bool(b["row_count"] == ROWS and b["conflicts"]["open"] == len(PLANTED))

    _wait(world, [police, civil], done)
    yield Base(world, police, civil, owner, base)
    police.node.close()
    civil.node.close()


def _sfzhm(i: int) -> str:
    return f"37020219900101{i:04d}"[-18:]


def test_each_disagreement_is_one_conflict_for_the_authoritative_department(
    assembled: Base,
) -> None:
    w, base_id = assembled.world, assembled.base["id"]
    mine = _open_conflicts(w, assembled.police.dept.resource_admin, base_id)
    assert sorted(c["record_key"] for c in mine) == sorted(_sfzhm(i) for i in PLANTED)
    assert {(c["item"], c["evidence_value"], c["department_id"]) for c in mine} == {
        ("xb", "9", assembled.police.dept.id)
    }
    # The evidence department and others do not see 公安's conflicts.
    assert _open_conflicts(w, assembled.civil.dept.resource_admin, base_id) == []
    with w.api(assembled.civil.dept.resource_admin) as c:
        assert c.get(f"/api/v1/base-conflicts/{mine[0]['id']}").status_code == 404


def test_the_base_is_served_like_any_store(assembled: Base) -> None:
    w = assembled.world
    stores = _get(w, w.admin, "/api/v1/sharing/stores")
    served = next(s for s in stores if s["id"] == assembled.base["store_id"])
    assert served["source_task_id"] is None
    assert served["row_count"] == ROWS
    consumer = w.department("人社")
    with w.api(consumer.resource_admin) as c:
        r = c.post(
            "/api/v1/sharing/applications",
            json=application_payload(
                assembled.base["resource_id"], items=["sfzhm", "xm", "xb"], row_filter=None
            ),
        )
        assert r.status_code == 201, r.text
    app = _get(w, consumer.resource_admin, f"/api/v1/sharing/applications/{r.json()['id']}")
    if app["status"] == "submitted":  # conditional: the base's department approves
        with w.api(assembled.owner.resource_admin) as c:
            r = c.post(
                f"/api/v1/sharing/applications/{app['id']}/approve",
                json={"masking": {}, "reason": "同意"},
            )
            assert r.status_code == 200, r.text
    client = _client(w, consumer)
    code = _get(w, w.admin, f"/api/v1/catalog/resources/{assembled.base['resource_id']}")["code"]
    r = client.post(f"/{code}/lookup", {"keys": [_sfzhm(5)]})
    assert r.status_code == 200, r.text
    assert r.json()["records"] == [{"sfzhm": _sfzhm(5), "xm": "姓名5", "xb": "1"}]


def test_confirming_needs_a_reason_and_only_the_owner_may(assembled: Base) -> None:
    w, base_id = assembled.world, assembled.base["id"]
    conflict = _open_conflicts(w, w.admin, base_id)[-1]
    with w.api(assembled.police.dept.resource_admin) as c:
        r = c.post(f"/api/v1/base-conflicts/{conflict['id']}/confirm", json={"reason": " "})
        assert r.status_code == 422, r.text
        assert r.json()["error"]["details"][0]["field"] == "reason"
    with w.api(w.admin) as c:  # the platform sees it, but the department owns the answer
        r = c.post(f"/api/v1/base-conflicts/{conflict['id']}/confirm", json={"reason": "核实"})
        assert r.status_code == 403, r.text
    with w.api(assembled.police.dept.resource_admin) as c:
        r = c.post(
            f"/api/v1/base-conflicts/{conflict['id']}/confirm",
            json={"reason": "经户籍档案核实，本部门登记无误"},
        )
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "confirmed"
        again = c.post(f"/api/v1/base-conflicts/{conflict['id']}/confirm", json={"reason": "再次"})
        assert again.status_code == 409, again.text


def test_an_accepted_value_corrected_at_the_source_closes_the_conflict(assembled: Base) -> None:
    w, base_id = assembled.world, assembled.base["id"]
    police = assembled.police
    conflict = _open_conflicts(w, police.dept.resource_admin, base_id)[0]
    with w.api(police.dept.resource_admin) as c:
        r = c.post(f"/api/v1/base-conflicts/{conflict['id']}/accept", json={"reason": "以民政为准"})
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "accepted"
        objection_id = r.json()["objection_id"]
    objection = _get(w, police.dept.resource_admin, f"/api/v1/sharing/objections/{objection_id}")
    assert (objection["status"], objection["grant_id"]) == ("accepted", None)
    assert objection["correction"] == {"xb": "9"}
    # 公安 corrects its own system; the exchange brings it to the store and the base.
    _source(
        police,
        "UPDATE person SET xb = '9', version = :v WHERE sfzhm = :k",
        k=conflict["record_key"],
    )

    def closed() -> bool:
        c = _get(w, w.admin, f"/api/v1/base-conflicts/{conflict['id']}")
        return bool(c["status"] == "resolved")

    _wait(w, [police, assembled.civil], closed)
    after = _get(w, police.dept.resource_admin, f"/api/v1/sharing/objections/{objection_id}")
    assert after["status"] == "corrected"
    record = _get(w, w.admin, f"/api/v1/base-databases/{base_id}/records/{conflict['record_key']}")
    assert record["items"]["xb"]["value"] == "9"
    assert record["items"]["xb"]["store_id"] == police.store_id
    # Nothing else opened on the way.
    every = _get(w, w.admin, "/api/v1/base-conflicts", base_id=base_id, limit=500)["items"]
    assert sorted(c["record_key"] for c in every) == sorted(_sfzhm(i) for i in PLANTED)


def test_the_department_works_its_conflicts_in_the_console(assembled: Base) -> None:
    w, base_id = assembled.world, assembled.base["id"]
    police = assembled.police
    with signed_in(w, police.dept.resource_admin) as client:
        page = client.get("/basedata/conflicts?status=open")
        assert page.status_code == 200
        shown = re.findall(r'id="conflict-(\d+)"', page.text)
        mine = _open_conflicts(w, police.dept.resource_admin, base_id)
        assert sorted(shown) == sorted(str(c["id"]) for c in mine)
        assert mine[0]["record_key"] in page.text  # the owner sees the ID number in full
        target = mine[-1]["id"]
        detail = client.get(f"/basedata/conflicts/{target}")
        assert "确认本部门的值" in detail.text
        # No reason: refused with the message beside the field, nothing changes.
        r = client.post(
            f"/basedata/conflicts/{target}",
            data={"csrf_token": csrf_of(client), "action": "confirm", "reason": ""},
        )
        assert r.status_code == 422
        assert "须说明理由" in r.text
        assert _get(w, w.admin, f"/api/v1/base-conflicts/{target}")["status"] == "open"
        r = client.post(
            f"/basedata/conflicts/{target}",
            data={"csrf_token": csrf_of(client), "action": "confirm", "reason": "已核对档案"},
        )
        assert r.status_code == 303
        assert _get(w, w.admin, f"/api/v1/base-conflicts/{target}")["status"] == "confirmed"
        bases = client.get("/basedata")
        assert bases.status_code == 200
        assert "人口基础信息" in bases.text
        assert "殡葬与婚姻登记人员信息" in bases.text  # the evidence source is named
    # Another department sees neither the conflict nor the ID number.
    with signed_in(w, assembled.civil.dept.resource_admin) as client:
        assert client.get(f"/basedata/conflicts/{target}").status_code == 404
        page = client.get("/basedata/conflicts?status=all")
        assert mine[0]["record_key"] not in page.text
    with signed_in(w, w.admin) as client:
        page = client.get("/basedata/conflicts?status=all")
        assert mine[0]["record_key"] not in page.text  # masked for the platform
        assert f'id="conflict-{target}"' in page.text
        # The platform looks a record up with its sources; the read is audited.
        found = client.get("/basedata", params={"base": base_id, "key": _sfzhm(5)})
        assert 'id="record"' in found.text
        assert "姓名5" in found.text
        assert "户籍人口信息" in found.text  # the authoritative store of 姓名 and 性别
        before = client.get(
            "/basedata", params={"base": base_id, "key": _sfzhm(5), "as_of": "2000-01-01"}
        )
        assert 'id="record-missing"' in before.text  # assembled long after that day
        bad = client.get("/basedata", params={"base": base_id, "key": _sfzhm(5), "as_of": "昨天"})
        assert "日期格式应为" in bad.text
    with w.hub.db() as s:
        reads = s.scalars(
            select(AuditEntry).where(AuditEntry.action == "basedata.record.read")
        ).all()
        assert reads
        assert all(_sfzhm(5) not in str(r.after) for r in reads)


def test_the_evidence_store_scores_its_agreement_with_the_authority(assembled: Base) -> None:
    w, civil = assembled.world, assembled.civil
    with w.api(civil.dept.resource_admin) as c:
        r = c.post(f"/api/v1/quality/resources/{civil.resource['id']}/scans")
        assert r.status_code == 201, r.text
        scan = r.json()
        problems = c.get(
            f"/api/v1/quality/scans/{scan['id']}/problems", params={"dimension": "consistency"}
        ).json()["items"]
    base = _get(w, w.admin, f"/api/v1/base-databases/{assembled.base['id']}")
    # Every row compared; the planted ones disagree unless corrected at the source since.
    disagreeing = len(PLANTED) - base["conflicts"]["resolved"]
    assert (scan["consistency_checked"], scan["consistency_failed"]) == (ROWS, disagreeing)
    assert {p["row_key"] for p in problems} <= {_sfzhm(i) for i in PLANTED}
    assert len(problems) == disagreeing
    assert all("人口基础信息" in p["message"] for p in problems)
    # The authoritative store is no one's evidence: it has no consistency score.
    with w.api(assembled.police.dept.resource_admin) as c:
        r = c.post(f"/api/v1/quality/resources/{assembled.police.resource['id']}/scans")
        assert r.status_code == 201, r.text
        assert r.json()["consistency_score"] is None


def test_the_platform_defines_a_base_in_the_console(assembled: Base) -> None:
    w, police = assembled.world, assembled.police
    resource = base_entry(w, assembled.owner, "人口基础信息（精简）")
    with signed_in(w, police.dept.resource_admin) as client:
        assert client.get("/basedata/new").status_code == 403
    with signed_in(w, w.admin) as client:
        page = client.get("/basedata/new", params={"resource_id": resource["id"]})
        assert page.status_code == 200
        assert f"{police.store_id}:xm" in page.text  # the police store's 姓名 is offered
        assert 'name="unconditional" value="xm" checked' in page.text
        form = {
            "csrf_token": csrf_of(client),
            "resource_id": str(resource["id"]),
            "key_item": "sfzhm",
            "item": ["sfzhm", "xm"],
            "source": ["", ""],
            "unconditional": ["sfzhm", "xm"],  # checked as the page offers them
        }
        r = client.post("/basedata/new", data=form)
        assert r.status_code == 422
        assert "请至少为一个信息项选择权威来源" in r.text
        form["source"] = ["", f"{police.store_id}:xm"]
        form["evidence_xm"] = [f"{police.store_id}:xm"]  # the source cannot be its evidence
        r = client.post("/basedata/new", data=form)
        assert r.status_code == 422
        assert "佐证来源不能是权威来源本身" in r.text
        del form["evidence_xm"]
        r = client.post("/basedata/new", data=form)
        assert r.status_code == 303, r.text
    bases = _get(w, w.admin, "/api/v1/base-databases")
    made = next(b for b in bases if b["resource_id"] == resource["id"])
    assert made["items"] == [
        {
            "item": "xm",
            "store_id": police.store_id,
            "column": "xm",
            "evidence": [],
            "unconditional": True,
        }
    ]


def test_console_ids_written_with_other_digits_are_no_ids(assembled: Base) -> None:
    # '²' is a digit to str.isdigit() but not to int(): these pages answered 500.
    w = assembled.world
    with signed_in(w, w.admin) as client:
        for path in (
            "/basedata/new?resource_id=²",
            "/basedata/conflicts?after=²",
            f"/quality/resources/{assembled.police.resource['id']}?scan=²",
        ):
            r = client.get(path)
            assert r.status_code == 200, (path, r.status_code)
