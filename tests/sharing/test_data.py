"""Data services over the live API, on SQLite and PostgreSQL: a real provider node feeds
the hub, the hub's shared store follows, and department systems look up, page and
verify under their grants — items, rows and masking as granted, nothing without a
grant, revocation at once, limits, replay refusal, and an audit trail of hashed keys."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, inspect, select, text, update

from govshare.exchange.models import Alert, AlertKind
from govshare.rules.clock import china_today, fixed_today
from govshare.rules.masking import mask_name
from govshare.rules.workdays import working_days_between
from govshare.security import audit
from govshare.security.audit import KeyHasher
from govshare.security.crypto import hmac_sha256, string_to_sign
from govshare.security.models import ApiClient, AuditEntry
from govshare.sharing import objections, service, subscriptions
from govshare.sharing.models import Objection, SharingGrant
from tests.catalog.console import csrf_of, signed_in
from tests.exchange.scenario import Scene, Source, make_scene, target_rows
from tests.factories import Dept, World
from tests.live import LiveHub
from tests.sharing.builders import application_payload

ROWS = 300

# The clock is fixed (a Wednesday before National Day) so deadlines, grant validity and
# the calendar are those of one known day, whatever the date the suite runs on.
DAY = date(2026, 9, 30)


@pytest.fixture(autouse=True)
def _on_a_fixed_day() -> Iterator[None]:
    with fixed_today(DAY):
        yield


def sfzhm(i: int) -> str:
    """The scenario's ID number of person ``i``."""
    return f"37020219900101{i:04d}"[-18:]


@dataclass
class Client:
    hub: LiveHub
    app_key: str
    secret: str

    def post(
        self,
        path: str,
        body: dict[str, Any],
        *,
        nonce: str | None = None,
        query: str = "",
        forwarded_for: str | None = None,
    ) -> Any:
        raw = json.dumps(body).encode()
        full = f"/api/v1/data{path}" + (f"?{query}" if query else "")
        ts = str(int(time.time()))
        nonce = nonce or secrets.token_hex(12)
        sig = hmac_sha256(
            self.secret, string_to_sign("POST", full, ts, nonce, hashlib.sha256(raw).hexdigest())
        )
        headers = {
            "X-App-Key": self.app_key,
            "X-Timestamp": ts,
            "X-Nonce": nonce,
            "X-Signature": sig,
            "Content-Type": "application/json",
        }
        if forwarded_for:  # the hub trusts its loopback proxy in the tests
            headers["X-Forwarded-For"] = forwarded_for
        with self.hub.client() as c:
            return c.post(full, content=raw, headers=headers)


@dataclass
class Served:
    scene: Scene
    code: str
    querier: Dept  # query grant: sfzhm + xm masked as a name, rows of men only
    verifier: Dept  # verification grant: xb
    outsider: Dept  # no grant
    clients: dict[str, Client]
    grants: dict[str, int]

    @property
    def world(self) -> World:
        return self.scene.world


def _client(world: World, dept: Dept, **limits: Any) -> Client:
    with world.api(world.admin) as c:
        r = c.post(
            "/api/v1/api-clients",
            json={"name": f"业务系统{dept.id}{secrets.token_hex(2)}", "department_id": dept.id}
            | limits,
        )
        assert r.status_code == 201, r.text
    return Client(world.hub, r.json()["app_key"], r.json()["secret"])


def _grant(world: World, provider: Dept, consumer: Dept, resource_id: int, **kw: Any) -> int:
    masking = kw.pop("masking", {})
    with world.api(consumer.resource_admin) as c:
        r = c.post(
            "/api/v1/sharing/applications",
            json=application_payload(resource_id, **kw),
        )
        assert r.status_code == 201, r.text
    with world.api(provider.resource_admin) as c:
        r = c.post(
            f"/api/v1/sharing/applications/{r.json()['id']}/approve",
            json={"masking": masking, "reason": "同意"},
        )
        assert r.status_code == 200, r.text
        return int(r.json()["grant_id"])


def _store_caught_up(scene: Scene) -> bool:
    with scene.world.api(scene.world.admin) as c:
        stores = c.get("/api/v1/sharing/stores").json()
        tasks = c.get(f"/api/v1/exchange/tasks/{scene.provider_task['id']}").json()
    mine = [s for s in stores if s["resource_id"] == scene.resource["id"]]
    return bool(mine) and tasks["last_seq"] > 0 and mine[0]["applied_seq"] == tasks["last_seq"]


@pytest.fixture(scope="module")
def served(hub: LiveHub, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    world = World(hub)
    scene = make_scene(world, tmp_path_factory.mktemp("data"), rows=ROWS)
    scene.create_tasks()
    scene.node("provider")
    with world.api(scene.provider.resource_admin) as c:
        r = c.post(
            "/api/v1/sharing/stores",
            json={
                "resource_id": scene.resource["id"],
                "source_task_id": scene.provider_task["id"],
                "key_item": "sfzhm",
                "mapping": {"sfzhm": "sfzhm", "xm": "xm", "xb": "xb", "version": "version"},
                "verify_rules": [
                    {
                        "name": "gender",
                        "kind": "status",
                        "item": "xb",
                        "values": {"1": "男"},
                        "default": "女",
                    },
                    {
                        "name": "registered",
                        "kind": "presence",
                        "present": "有户籍",
                        "absent": "无户籍",
                    },
                    {
                        "name": "era",
                        "kind": "range",
                        "item": "version",
                        "bands": [
                            {"below": 100, "label": "早"},
                            {"below": 200, "label": "中"},
                            {"label": "晚"},
                        ],
                    },
                ],
            },
        )
        assert r.status_code == 201, r.text
    scene.run_until(lambda: _store_caught_up(scene), nodes=["provider"])
    rid = scene.resource["id"]
    querier, verifier = scene.consumer, world.department("民政")
    outsider = world.department("教育")
    grants = {
        "query": _grant(
            world,
            scene.provider,
            querier,
            rid,
            items=["sfzhm", "xm"],
            row_filter=[{"item": "xb", "op": "eq", "value": "1"}],
            masking={"xm": "name"},
        ),
        "verify": _grant(
            world,
            scene.provider,
            verifier,
            rid,
            items=["sfzhm", "xb", "version"],
            row_filter=None,
            mode="verification",
        ),
    }
    clients = {
        "query": _client(world, querier),
        "verify": _client(world, verifier),
        "outsider": _client(world, outsider),
    }
    yield Served(scene, scene.resource["code"], querier, verifier, outsider, clients, grants)
    scene.close()


def test_lookup_shows_granted_items_masked_and_rows_in_the_grant_only(served: Served) -> None:
    man, woman = sfzhm(7), sfzhm(8)  # odd ids are men (xb=1): the grant's rows
    r = served.clients["query"].post(f"/{served.code}/lookup", {"keys": [man, woman]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["items"] == ["sfzhm", "xm"]
    assert body["records"] == [{"sfzhm": man, "xm": "姓**"}]  # 姓名7 masked, no 性别
    assert "姓名7" not in r.text
    assert woman not in r.text


def test_csv_is_masked_the_same_way(served: Served) -> None:
    r = served.clients["query"].post(
        f"/{served.code}/lookup", {"keys": [sfzhm(9)]}, query="format=csv"
    )
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/csv")
    lines = r.text.lstrip("\ufeff").splitlines()
    assert lines == ["sfzhm,xm", f"{sfzhm(9)},姓**"]  # 姓名9 → 姓**
    assert "姓名9" not in r.text


def test_query_pages_through_exactly_the_granted_rows(served: Served) -> None:
    seen: list[str] = []
    after = None
    pages = 0
    while True:
        body: dict[str, Any] = {"limit": 40} | ({"after": after} if after else {})
        r = served.clients["query"].post(f"/{served.code}/query", body)
        assert r.status_code == 200, r.text
        seen += [rec["sfzhm"] for rec in r.json()["records"]]
        assert all(
            rec["xm"].startswith("姓") and "名" not in rec["xm"] for rec in r.json()["records"]
        )
        pages += 1
        after = r.json()["next"]
        if after is None:
            break
    assert seen == [sfzhm(i) for i in range(1, ROWS + 1, 2)]
    assert pages == 4  # 150 men, 40 a page


def test_filters_only_on_granted_items(served: Served) -> None:
    ok = served.clients["query"].post(f"/{served.code}/query", {"filters": {"sfzhm": sfzhm(11)}})
    assert [r["sfzhm"] for r in ok.json()["records"]] == [sfzhm(11)]
    r = served.clients["query"].post(f"/{served.code}/query", {"filters": {"xb": "2"}})
    assert r.status_code == 422
    assert r.json()["error"]["details"][0]["field"] == "filters.xb"


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _denied(served: Served, app_key: str) -> list[dict[str, Any]]:
    """The client's refused calls, oldest first (calls of one batch share an entry)."""
    with served.world.hub.db() as s:
        entries = s.scalars(
            select(AuditEntry)
            .where(AuditEntry.actor == app_key, AuditEntry.action == "data.denied")
            .order_by(AuditEntry.seq)
        )
        return [call for e in entries for call in audit.journalled_calls(e.after)]


@pytest.mark.parametrize(
    "cursor",
    [
        _b64("[5,1]"),
        _b64('["x","y"]'),
        _b64("[null,null]"),
        _b64('[[1],{"a":[2]}]'),
        _b64('["' + "3" * 18 + '"]'),
        "not base64 at all!",
    ],
)
def test_crafted_query_cursors_are_refused_journalled_and_spend_the_nonce(
    served: Served, cursor: str
) -> None:
    client = served.clients["query"]
    before = len(_denied(served, client.app_key))
    nonce = secrets.token_hex(12)
    r = client.post(f"/{served.code}/query", {"after": cursor}, nonce=nonce)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] == "invalid_cursor"
    assert r.json()["error"]["details"][0]["field"] == "after"
    entries = _denied(served, client.app_key)
    assert len(entries) == before + 1
    assert entries[-1]["reason"] == "invalid_cursor"
    again = client.post(f"/{served.code}/query", {"after": cursor}, nonce=nonce)
    assert again.status_code == 401
    assert again.json()["error"]["code"] == "replayed_request"


def test_query_cursors_hide_the_key_and_refuse_edits(served: Served) -> None:
    client = served.clients["query"]
    first = client.post(f"/{served.code}/query", {"limit": 2}).json()
    cursor = first["next"]
    last_key = first["records"][-1]["sfzhm"]
    raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    assert last_key.encode() not in raw
    flipped = cursor[:-3] + ("A" if cursor[-3] != "A" else "B") + cursor[-2:]
    r = client.post(f"/{served.code}/query", {"limit": 2, "after": flipped})
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "invalid_cursor"
    nxt = client.post(f"/{served.code}/query", {"limit": 2, "after": cursor}).json()
    assert nxt["records"][0]["sfzhm"] > last_key


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("query", {"filters": {"sfzhm": "\udac3"}}),
        ("verify", {"keys": ["\udac3"]}),
        ("lookup", {"keys": ["3702021990010\u00001"]}),
    ],
    ids=["query-surrogate", "verify-surrogate", "lookup-nul"],
)
def test_keys_the_database_cannot_take_are_refused_and_journalled(
    served: Served, path: str, body: dict[str, Any], request: pytest.FixtureRequest
) -> None:
    path_id = request.node.callspec.id
    client = served.clients["query"]
    before = len(_denied(served, client.app_key))
    r = client.post(f"/{served.code}/{path}", body)
    if path_id.endswith("nul") and served.world.hub.backend == "sqlite":
        assert r.status_code == 200, r.text  # SQLite compares NUL like any character
        assert r.json()["records"] == []
        return
    assert r.status_code == 422, r.text[:300]
    assert r.json()["error"]["code"] == "unstorable_value"
    entries = _denied(served, client.app_key)
    assert len(entries) == before + 1
    assert entries[-1]["reason"] == "unstorable_value"


def test_verification_answers_without_the_values(served: Served) -> None:
    client = served.clients["verify"]
    keys = [sfzhm(1), sfzhm(2), "370202199001019999"]
    r = client.post(f"/{served.code}/verify", {"keys": keys})
    assert r.status_code == 200, r.text
    assert [a["match"] for a in r.json()["results"]] == [True, True, False]
    r = client.post(f"/{served.code}/verify", {"keys": keys, "rule": "gender"})
    assert [(a["match"], a["value"]) for a in r.json()["results"]] == [
        (True, "男"),
        (True, "女"),
        (False, None),
    ]
    r = client.post(f"/{served.code}/verify", {"keys": keys, "rule": "registered"})
    assert [a["value"] for a in r.json()["results"]] == ["有户籍", "有户籍", "无户籍"]
    r = client.post(
        f"/{served.code}/verify", {"keys": [sfzhm(50), sfzhm(150), sfzhm(250)], "rule": "era"}
    )
    assert [a["value"] for a in r.json()["results"]] == ["早", "中", "晚"]
    r = client.post(
        f"/{served.code}/verify",
        {
            "records": [
                {"key": sfzhm(3), "values": {"xb": "1"}},
                {"key": sfzhm(3), "values": {"xb": "2"}},
            ]
        },
    )
    assert [a["match"] for a in r.json()["results"]] == [True, False]
    assert "姓名" not in r.text


def test_verification_is_bounded_by_the_grant(served: Served) -> None:
    client = served.clients["verify"]
    r = client.post(
        f"/{served.code}/verify", {"records": [{"key": sfzhm(3), "values": {"xm": "姓名3"}}]}
    )
    assert r.status_code == 422  # 姓名 is not granted: no probing it by verification
    r = client.post(f"/{served.code}/verify", {"keys": [sfzhm(1)] * 10_001})
    assert r.status_code == 422
    r = client.post(f"/{served.code}/lookup", {"keys": [sfzhm(1)]})
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "no_grant"


def test_men_only_grant_verifies_men_only(served: Served) -> None:
    r = served.clients["query"].post(f"/{served.code}/verify", {"keys": [sfzhm(1), sfzhm(2)]})
    assert [a["match"] for a in r.json()["results"]] == [True, False]


def test_no_grant_no_data_and_the_refusal_is_audited(served: Served) -> None:
    for path, body in [
        ("lookup", {"keys": [sfzhm(1)]}),
        ("query", {}),
        ("verify", {"keys": [sfzhm(1)]}),
    ]:
        r = served.clients["outsider"].post(f"/{served.code}/{path}", body)
        assert r.status_code == 403, r.text
        assert r.json()["error"]["code"] == "no_grant"
        assert sfzhm(1) not in r.text
    denied = _denied(served, served.clients["outsider"].app_key)
    assert [d["wanted"] for d in denied] == ["data.lookup", "data.query", "data.verify"]


def test_calls_need_a_signature_and_a_fresh_nonce(served: Served) -> None:
    with served.world.api(served.querier.resource_admin) as c:
        r = c.post(f"/api/v1/data/{served.code}/lookup", json={"keys": [sfzhm(1)]})
    assert r.status_code == 401
    client = served.clients["query"]
    nonce = secrets.token_hex(12)
    assert (
        client.post(f"/{served.code}/lookup", {"keys": [sfzhm(1)]}, nonce=nonce).status_code == 200
    )
    again = client.post(f"/{served.code}/lookup", {"keys": [sfzhm(1)]}, nonce=nonce)
    assert again.status_code == 401
    assert again.json()["error"]["code"] == "replayed_request"
    assert "records" not in again.text
    assert sfzhm(1) not in again.text


def test_a_client_limited_to_networks_is_served_only_from_them(served: Served) -> None:
    world = served.world
    client = _client(world, served.querier, allowed_networks=["10.77.0.0/16", "192.0.2.7"])
    lookup = f"/{served.code}/lookup"
    inside = client.post(lookup, {"keys": [sfzhm(7)]}, forwarded_for="10.77.3.4")
    assert inside.status_code == 200, inside.text
    assert inside.json()["records"]
    for outside in ("10.78.3.4", "192.0.2.8", "::1"):
        r = client.post(lookup, {"keys": [sfzhm(7)]}, forwarded_for=outside)
        assert r.status_code == 403, (outside, r.text)
        assert r.json()["error"]["code"] == "address_not_allowed"
        assert "records" not in r.text
    with world.hub.db() as s:
        client_id = s.scalars(select(ApiClient.id).where(ApiClient.app_key == client.app_key)).one()
    with world.api(world.admin) as c:
        cleared = c.put(
            f"/api/v1/api-clients/{client_id}/allowed-networks", json={"allowed_networks": []}
        )
        assert cleared.status_code == 200, cleared.text
        assert cleared.json()["allowed_networks"] == []
    # Lifted at the next call: no cache keeps the old list.
    assert client.post(lookup, {"keys": [sfzhm(7)]}, forwarded_for="10.78.3.4").status_code == 200


def test_every_call_is_audited_with_hashed_keys_only(served: Served) -> None:
    client = served.clients["query"]
    key = sfzhm(21)
    assert client.post(f"/{served.code}/lookup", {"keys": [key]}).status_code == 200
    key_hash = KeyHasher(served.world.hub.settings.secret_key)(key)
    with served.world.hub.db() as s:
        entry = s.scalars(
            select(AuditEntry)
            .where(AuditEntry.actor == client.app_key, AuditEntry.action == "data.lookup")
            .order_by(AuditEntry.seq.desc())
        ).first()
        everything = " ".join(
            json.dumps(e.after, ensure_ascii=False)
            for e in s.scalars(select(AuditEntry).where(AuditEntry.actor == client.app_key))
        )
    assert entry is not None
    assert entry.object_id == str(served.grants["query"])
    [call] = audit.calls_with_key(entry.after, key_hash)
    assert call["rows"] == 1
    assert call["keys"] == 1
    assert key not in everything
    assert "姓名21" not in everything

    # the auditor finds the call by the key's hash through the API
    with served.world.api(served.world.auditor) as auditor:
        found = auditor.get("/api/v1/audit", params={"key_hash": key_hash})
        assert found.status_code == 200, found.text
        assert [e["seq"] for e in found.json()["items"]] == [entry.seq]
        bad = auditor.get("/api/v1/audit", params={"key_hash": "%"})
        assert bad.status_code == 422


def test_rate_limit_and_daily_quota(served: Served) -> None:
    slow = _client(served.world, served.querier, rate_per_second=1)
    assert slow.post(f"/{served.code}/lookup", {"keys": [sfzhm(1)]}).status_code == 200
    # One call a second: of the next few (however slow the machine), one is refused.
    tries = [slow.post(f"/{served.code}/lookup", {"keys": [sfzhm(1)]}) for _ in range(4)]
    r = next(t for t in tries if t.status_code != 200)
    assert r.status_code == 429
    assert r.json()["error"]["code"] == "rate_limited"
    small = _client(served.world, served.querier, daily_quota=3)
    assert small.post(f"/{served.code}/lookup", {"keys": [sfzhm(1), sfzhm(3)]}).status_code == 200
    r = small.post(f"/{served.code}/lookup", {"keys": [sfzhm(5), sfzhm(7)]})
    assert r.status_code == 429
    assert r.json()["error"]["code"] == "quota_exceeded"


def test_revocation_stops_access_at_once(served: Served) -> None:
    world, scene = served.world, served.scene
    dept = world.department("卫健")
    grant = _grant(
        world, scene.provider, dept, scene.resource["id"], items=["sfzhm"], row_filter=None
    )
    client = _client(world, dept)
    assert client.post(f"/{served.code}/lookup", {"keys": [sfzhm(2)]}).status_code == 200
    with world.api(scene.provider.resource_admin) as c:
        r = c.post(f"/api/v1/sharing/grants/{grant}/revoke", json={"reason": "用途已结束"})
        assert r.status_code == 200, r.text
    r = client.post(f"/{served.code}/lookup", {"keys": [sfzhm(2)]})
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "no_grant"


def _post_objection(
    served: Served, key: str, claimed: dict[str, str], evidence: str
) -> httpx.Response:
    """The querying department's objection to ``key``'s ``claimed`` values, as answered."""
    with served.world.api(served.querier.resource_admin) as c:
        return c.post(
            "/api/v1/sharing/objections",
            json={
                "grant_id": served.grants["query"],
                "record_key": key,
                "claimed": claimed,
                "evidence": evidence,
            },
        )


def _raise_objection(served: Served, key: str, name: str, evidence: str) -> Any:
    """The querying department flags ``key``'s 姓名 as ``name``; the objection's JSON."""
    r = _post_objection(served, key, {"xm": name}, evidence)
    assert r.status_code == 201, r.text
    return r.json()


def test_source_changes_and_objection_corrections_flow_into_the_store(served: Served) -> None:
    world, scene = served.world, served.scene
    key = sfzhm(31)
    objection = _raise_objection(served, key, "张三", "户口簿原件显示姓名为张三")
    assert objection["status"] == "open"
    with world.api(scene.provider.resource_admin) as c:
        r = c.post(
            f"/api/v1/sharing/objections/{objection['id']}/answer",
            json={"accept": True, "answer": "经核实属实，已在人口系统更正"},
        )
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "accepted"
    Source(scene.source_url).update([31], "张三")  # the provider corrects at the source
    scene.run_until(
        lambda: _store_caught_up(scene) and _status(world, objection["id"]) == "corrected",
        nodes=["provider"],
    )
    r = served.clients["query"].post(f"/{served.code}/lookup", {"keys": [key]})
    assert r.json()["records"] == [{"sfzhm": key, "xm": "张*"}]


def test_an_objection_is_kept_sealed_and_one_kept_in_the_clear_is_sealed_later(
    served: Served,
) -> None:
    """The person an objection names and the values it claims are sealed in the hub
    database (字段加密) and shown opened; an objection an earlier version kept in the
    clear is sealed by the feeder's next round of checks."""
    world = served.world
    key = sfzhm(33)
    objection_id = _raise_objection(served, key, "王小二", "户口簿首页及本人页")["id"]

    def kept() -> tuple[str, str, bool]:
        with world.hub.db() as s:
            row = s.execute(
                text("SELECT record_key, claimed, sealed FROM sharing_objection WHERE id = :i"),
                {"i": objection_id},
            ).one()
        return str(row[0]), str(row[1]), bool(row[2])

    def shown() -> tuple[str, dict[str, str]]:
        with world.api(served.querier.resource_admin) as c:
            found = c.get(f"/api/v1/sharing/objections/{objection_id}").json()
        return found["record_key"], found["claimed"]

    record_key, claimed, sealed = kept()
    assert sealed
    assert record_key.startswith("~")
    assert key not in record_key
    assert "王小二" not in claimed
    assert shown() == (key, {"xm": "王小二"})
    with world.hub.db() as s:
        s.execute(
            update(Objection)
            .where(Objection.id == objection_id)
            .values(record_key=key, claimed={"xm": "王小二"}, sealed=False)
        )
    assert kept()[0] == key
    assert shown() == (key, {"xm": "王小二"})
    with world.hub.db() as s:
        assert objections.seal_kept_in_clear(s, world.hub.settings) >= 1
    record_key, claimed, sealed = kept()
    assert sealed
    assert key not in record_key
    assert "王小二" not in claimed
    assert shown() == (key, {"xm": "王小二"})


def _status(world: World, objection_id: int) -> str:
    with world.hub.db() as s:
        obj = s.get(Objection, objection_id)
        assert obj is not None
        return str(obj.status)


def test_overdue_objections_alert_the_platform(served: Served) -> None:
    world = served.world
    due = _raise_objection(served, sfzhm(41), "李四", "婚姻登记档案显示姓名为李四")["answer_due"]
    # 10 working days: two weeks' worth, never less than 12 calendar days.
    assert working_days_between(china_today(), date.fromisoformat(due)) == 10
    assert due >= (china_today() + timedelta(days=12)).isoformat()
    with world.hub.db() as s:
        assert objections.alert_overdue(s, world.hub.settings, today=china_today()) == 0
        late = objections.alert_overdue(
            s, world.hub.settings, today=china_today() + timedelta(days=30)
        )
        assert late >= 1
        alert = s.scalars(
            select(Alert).where(
                Alert.kind == AlertKind.OBJECTION_OVERDUE, Alert.resolved_at.is_(None)
            )
        ).one()
        assert "异议超期未答复" in alert.message
        s.rollback()


def test_objections_only_on_granted_items(served: Served, tmp_path: Path) -> None:
    r = _post_objection(served, sfzhm(1), {"xb": "2"}, "出生医学证明显示为女")
    assert r.status_code == 422
    assert r.json()["error"]["details"][0]["field"] == "claimed.xb"


def test_a_subscription_delivers_only_the_granted_columns_and_rows_masked_until_revoked(
    served: Served,
) -> None:
    world, scene = served.world, served.scene
    grant = _grant(
        world,
        scene.provider,
        scene.consumer,
        scene.resource["id"],
        items=["sfzhm", "xm"],
        row_filter=[{"item": "xb", "op": "eq", "value": "1"}],
        masking={"xm": "name"},
        mode="subscription",
    )
    body = {
        "node_id": scene.node_ids["consumer"],
        "source_task_id": scene.provider_task["id"],
        "config": {"target": "dst", "table": "granted_copy", "schedule": {"interval_seconds": 0.2}},
    }
    with world.api(served.verifier.resource_admin) as c:  # not the grant's holder
        r = c.post(f"/api/v1/sharing/grants/{grant}/subscription", json=body)
        assert r.status_code == 403, r.text
    with world.api(scene.consumer.resource_admin) as c:
        refused = c.post(f"/api/v1/sharing/grants/{served.grants['query']}/subscription", json=body)
        assert refused.status_code == 409, refused.text  # a query grant does not subscribe
        r = c.post(f"/api/v1/sharing/grants/{grant}/subscription", json=body)
        assert r.status_code == 201, r.text
        sub = r.json()
        assert sub["state"] == "running"
    with world.api(world.admin) as c:
        made = c.get(f"/api/v1/exchange/tasks/{sub['provider_task_id']}").json()
    # The grant's own provider task: key and cursor columns, the granted items only.
    assert made["config"]["columns"] == ["id", "version", "sfzhm", "xm"]
    assert made["config"]["row_filter"] == [{"column": "xb", "op": "eq", "value": "1"}]

    everyone = Source(scene.source_url).rows()
    expected = [(i, sfz, mask_name(xm), v) for i, sfz, xm, xb, v in everyone if xb == "1"]
    assert 0 < len(expected) < len(everyone)
    if "consumer" not in scene.nodes:
        scene.node("consumer")
    scene.run_until(
        lambda: target_rows(scene.target_url, "granted_copy", "id, sfzhm, xm, version") == expected,
        nodes=["provider", "consumer"],
    )
    engine = create_engine(scene.target_url)
    try:
        columns = {c["name"] for c in inspect(engine).get_columns("granted_copy")}
    finally:
        engine.dispose()
    assert "xb" not in columns
    assert {"id", "sfzhm", "xm", "version"} <= columns

    with world.api(scene.provider.resource_admin) as c:
        r = c.post(f"/api/v1/sharing/grants/{grant}/revoke", json={"reason": "停止共享"})
        assert r.status_code == 200, r.text
    with world.api(world.admin) as c:
        for task_id in (sub["task_id"], sub["provider_task_id"]):
            assert c.get(f"/api/v1/exchange/tasks/{task_id}").json()["state"] == "stopped"
        restart = c.post(f"/api/v1/exchange/tasks/{sub['task_id']}/start")
        assert restart.status_code == 409, restart.text
        assert "订阅" in restart.json()["error"]["message"]


def test_a_subscription_stops_once_its_grant_has_expired(served: Served) -> None:
    world, scene = served.world, served.scene
    grant = _grant(
        world,
        scene.provider,
        scene.consumer,
        scene.resource["id"],
        items=["sfzhm"],
        row_filter=None,
        mode="subscription",
    )
    body = {
        "node_id": scene.node_ids["consumer"],
        "source_task_id": scene.provider_task["id"],
        "config": {"target": "dst", "table": "expiring_copy"},
    }
    with world.api(scene.consumer.resource_admin) as c:
        r = c.post(f"/api/v1/sharing/grants/{grant}/subscription", json=body)
        assert r.status_code == 201, r.text
        sub = r.json()
    with world.hub.db() as s:
        expires_on = s.get(SharingGrant, grant).expires_on
        assert subscriptions.stop_lapsed(s, expires_on) == 0  # the end date itself counts
        assert subscriptions.stop_lapsed(s, expires_on + timedelta(days=1)) == 1
        s.commit()
    with world.api(world.admin) as c:
        for task_id in (sub["task_id"], sub["provider_task_id"]):
            assert c.get(f"/api/v1/exchange/tasks/{task_id}").json()["state"] == "stopped"


def test_providers_see_who_called_how_much(served: Served) -> None:
    world, scene = served.world, served.scene
    keys = [sfzhm(101), sfzhm(103), sfzhm(105)]
    assert served.clients["query"].post(f"/{served.code}/lookup", {"keys": keys}).status_code == 200
    with world.api(scene.provider.resource_admin) as c:
        totals = c.get("/api/v1/sharing/usage/calls", params={"side": "provider"}).json()
    mine = [t for t in totals if t["department_id"] == served.querier.id]
    assert mine
    assert mine[-1]["resource_id"] == scene.resource["id"]
    assert mine[-1]["keys"] >= 3
    assert mine[-1]["calls"] >= 1
    with world.api(served.outsider.resource_admin) as c:
        assert c.get("/api/v1/sharing/usage/calls", params={"side": "provider"}).json() == []


def test_applications_past_their_deadline_alert_the_platform(served: Served) -> None:
    world, scene = served.world, served.scene
    late = world.department("城管")
    with world.api(late.resource_admin) as c:
        r = c.post(
            "/api/v1/sharing/applications",
            json=application_payload(scene.resource["id"], items=["sfzhm"], row_filter=None),
        )
        assert r.status_code == 201, r.text
    with world.hub.db() as s:
        assert (
            service.alert_overdue_applications(
                s, world.hub.settings, china_today() + timedelta(days=40)
            )
            >= 1
        )
        alert = s.scalars(
            select(Alert).where(
                Alert.kind == AlertKind.APPLICATION_OVERDUE, Alert.resolved_at.is_(None)
            )
        ).one()
        assert "未答复" in alert.message
        s.rollback()


def test_who_may_call_the_data_services(served: Served) -> None:
    world, scene = served.world, served.scene
    body = {"keys": [sfzhm(1)]}
    # The provider's own system holds no grant on its own data here.
    own = _client(world, scene.provider)
    r = own.post(f"/{served.code}/lookup", body)
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "no_grant"
    # A client registered without the data-service permission.
    with world.api(world.admin) as c:
        r = c.post(
            "/api/v1/api-clients",
            json={
                "name": "目录浏览系统",
                "department_id": served.querier.id,
                "permissions": ["authenticated", "catalog.read"],
            },
        )
        assert r.status_code == 201, r.text
    catalog_only = Client(world.hub, r.json()["app_key"], r.json()["secret"])
    r = catalog_only.post(f"/{served.code}/lookup", body)
    assert r.status_code == 403
    assert "data.service" in r.json()["error"]["message"]
    # A wrong secret, and no signature at all.
    forged = Client(world.hub, served.clients["query"].app_key, "not-the-secret")
    assert forged.post(f"/{served.code}/lookup", body).status_code == 401
    with world.hub.client() as c:
        assert c.post(f"/api/v1/data/{served.code}/lookup", json=body).status_code == 401


def test_an_expired_grant_stops_access_the_day_after_its_end(served: Served) -> None:
    world, scene = served.world, served.scene
    dept = world.department("体育")
    grant_id = _grant(
        world, scene.provider, dept, scene.resource["id"], items=["sfzhm"], row_filter=None
    )
    client = _client(world, dept)
    assert client.post(f"/{served.code}/lookup", {"keys": [sfzhm(4)]}).status_code == 200
    with world.hub.db() as s:
        grant = s.get(SharingGrant, grant_id)
        assert grant is not None
        grant.expires_on = china_today()  # the end date itself still counts
    assert client.post(f"/{served.code}/lookup", {"keys": [sfzhm(4)]}).status_code == 200
    with world.hub.db() as s:
        grant = s.get(SharingGrant, grant_id)
        assert grant is not None
        grant.expires_on = china_today() - timedelta(days=1)
    r = client.post(f"/{served.code}/lookup", {"keys": [sfzhm(4)]})
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "no_grant"


def test_bulk_verification_answers_every_key_in_order(served: Served) -> None:
    keys = [sfzhm(i) for i in range(2000, 0, -1)]  # 1,700 unknown, then 300 known, reversed
    r = served.clients["verify"].post(f"/{served.code}/verify", {"keys": keys})
    assert r.status_code == 200, r.text
    answers = [a["match"] for a in r.json()["results"]]
    assert answers == [i <= ROWS for i in range(2000, 0, -1)]


def test_the_auditor_finds_a_persons_calls_by_typing_the_key(served: Served) -> None:
    """The audit page turns a typed key into its hash on the server (posted, never in an
    address) and lists the calls that asked for it, each on its own line."""
    client = served.clients["query"]
    key, other = sfzhm(23), sfzhm(25)
    nonces = {name: secrets.token_hex(12) for name in ("key", "other", "both")}
    for name, keys in [("key", [key]), ("other", [other]), ("both", [key, other])]:
        r = client.post(f"/{served.code}/lookup", {"keys": keys}, nonce=nonces[name])
        assert r.status_code == 200
    with signed_in(served.world, served.world.auditor) as browser:
        csrf = csrf_of(browser)
        typed = browser.post("/audit/key-hash", data={"csrf_token": csrf, "key": key})
        assert typed.status_code == 303
        location = typed.headers["location"]
        assert key not in location
        key_hash = KeyHasher(served.world.hub.settings.secret_key)(key)
        assert location == f"/audit?key_hash={key_hash}"
        page = browser.get(location)
        assert page.status_code == 200
        rows = re.findall(
            r'<td class="num">(\d+)</td><td class="num">(\d+)</td><td class="mono">(\w+)</td>',
            page.text,
        )
        # the one-key call and the two-key call; the call for the other key alone is not
        assert ("1", "1", nonces["key"]) in rows
        assert ("2", "2", nonces["both"]) in rows
        assert nonces["other"] not in page.text
        assert key not in page.text

        empty = browser.post("/audit/key-hash", data={"csrf_token": csrf, "key": " "})
        assert empty.status_code == 200
        assert "请填写查询键" in empty.text
        wrong = browser.get("/audit", params={"key_hash": "%' or 1=1"})
        assert wrong.status_code == 200
        assert "键哈希应为16位十六进制字符" in wrong.text


def test_an_objection_value_longer_than_a_record_holds_is_refused(served: Served) -> None:
    """A claimed or corrected value is one record's value: 2,000 characters at most (a
    100,000-character correction was taken and stored before)."""
    world = served.world
    r = _post_objection(served, sfzhm(34), {"xm": "张" * 2001}, "户口簿首页及本人页")
    assert r.status_code == 422, r.text
    assert r.json()["error"]["details"][0]["field"] == "claimed.xm"
    objection = _raise_objection(served, sfzhm(34), "张三", "户口簿首页及本人页")
    with world.api(served.scene.provider.resource_admin) as c:
        r = c.post(
            f"/api/v1/sharing/objections/{objection['id']}/answer",
            json={"accept": True, "answer": "经核实属实", "correction": {"xm": "x" * 100_000}},
        )
        assert r.status_code == 422, r.text
        assert r.json()["error"]["details"][0]["field"] == "correction.xm"
        found = c.get(f"/api/v1/sharing/objections/{objection['id']}").json()
    assert (found["status"], found["correction"]) == ("open", None)
