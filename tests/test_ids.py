"""Ids beyond 64 bits, in every path, query and request body, answer 422 (never 500).

The route table is walked, so a route added later with an unbounded ``int`` id is
caught here too.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from govshare.ids import MAX_ID, MAX_SEQ, parse_id, parse_seq
from govshare.node.agent import NodeAgent
from govshare.node.client import HubRefused, HubUnavailable
from govshare.node.config import NodeConfig
from tests.factories import World
from tests.live import LiveHub
from tests.test_route_permissions import api_routes

# Beyond PostgreSQL's INTEGER ("integer out of range") and beyond any 64-bit column
# (SQLite's driver raises OverflowError).
TOO_BIG = (str(2**31), str(2**64))
HUGE = TOO_BIG[-1]
SEQ_PARAMS = {"after", "after_seq", "before_seq"}  # 64-bit sequence numbers: 2**31 is fine
OTHER_PARAMS = {"step": "submit", "table": "sharing_type"}


def _routes(hub: LiveHub) -> list[tuple[str, str, list[str]]]:
    """(method, path, its path parameters) of every API and console route."""
    out = []
    for path, route in api_routes(hub.server.config.app.routes):
        names = re.findall(r"{(\w+)}", path)
        for method in sorted(route.methods - {"HEAD"}):
            out.append((method, path, names))
    return out


def _int_query_params(hub: LiveHub) -> list[tuple[str, str, str]]:
    """(method, path, query name) of every integer query parameter in the OpenAPI."""
    spec = hub.server.config.app.openapi()
    out = []
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            for p in op.get("parameters", []):
                schemas = [p["schema"], *p["schema"].get("anyOf", [])]
                integer = any(s.get("type") == "integer" for s in schemas)
                if p["in"] == "query" and integer and p["name"] not in {"limit", "days"}:
                    out.append((method.upper(), path, p["name"]))
    return out


class Callers:
    """Who calls each route: a registered node for the node's routes, the auditor for
    the audit log, the platform admin for everything else (permission comes first)."""

    def __init__(self, world: World, tmp: Path) -> None:
        dept = world.department()
        with world.api(world.admin) as c:
            r = c.post(
                "/api/v1/exchange/nodes",
                json={"name": f"边界机{dept.id}", "department_id": dept.id},
            )
            assert r.status_code == 201, r.text
        config = NodeConfig(
            hub_url=world.hub.base_url,
            node_id=r.json()["id"],
            enrollment_token=r.json()["enrollment_token"],
            store=tmp / "node",
        )
        self.node = NodeAgent(config)
        self.node.ensure_registered()
        self.admin = world.api(world.admin)
        self.auditor = world.api(world.auditor)

    def request(self, method: str, url: str, **kw: Any) -> tuple[int, dict[str, Any] | str]:
        if url.startswith("/api/v1/exchange/node/"):
            if "params" in kw:
                url = str(httpx.URL(url, params=kw["params"]))
            try:
                self.node.client._send(method, url, body=b"{}")
            except HubRefused as exc:
                return exc.status, exc.body
            except HubUnavailable as exc:
                return 500, str(exc)
            return 200, {}
        client = self.auditor if "audit" in url else self.admin
        r = client.request(method, url, json={}, **kw)
        body = r.json() if r.headers.get("content-type", "").startswith("application/json") else ""
        return r.status_code, body

    def close(self) -> None:
        self.admin.close()
        self.auditor.close()
        self.node.close()


@pytest.fixture
def callers(world: World, tmp_path: Path) -> Iterator[Callers]:
    found = Callers(world, tmp_path)
    yield found
    found.close()


def test_huge_path_ids_answer_422_on_every_route(world: World, callers: Callers) -> None:
    tried = 0
    for method, path, names in _routes(world.hub):
        for huge in [n for n in names if n.endswith("_id") or n == "version"]:
            for value in TOO_BIG:
                url = path
                for n in names:
                    url = url.replace(f"{{{n}}}", value if n == huge else OTHER_PARAMS.get(n, "1"))
                status, body = callers.request(method, url)
                tried += 1
                assert status in (404, 422), (method, url, status, body)
                if url.startswith("/api/") and status == 422:
                    assert isinstance(body, dict)
                    assert huge in [d["field"] for d in body["error"]["details"]]
    assert tried >= 120


def test_huge_query_ids_answer_422(world: World, callers: Callers) -> None:
    params = _int_query_params(world.hub)
    assert len(params) >= 10
    for method, path, name in params:
        url = re.sub(r"{\w+}", "1", path)
        for value in TOO_BIG[1:] if name in SEQ_PARAMS else TOO_BIG:
            status, body = callers.request(method, url, params={name: value})
            assert status == 422, (method, url, name, status, body)
            assert isinstance(body, dict)
            assert name in [d["field"] for d in body["error"]["details"]]


def test_node_register_with_huge_node_id_before_auth(hub: LiveHub) -> None:
    with hub.client() as c:
        r = c.post(
            "/api/v1/exchange/nodes/register",
            json={"node_id": 2**70, "token": "x" * 20, "public_keys": {}},
        )
    assert r.status_code == 422
    assert [d["field"] for d in r.json()["error"]["details"]] == ["node_id"]


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/v1/catalog/resources", {"provider_department_id": 2**64}),
        ("/api/v1/exchange/nodes", {"name": "前置机", "department_id": 2**64}),
        ("/api/v1/users", {"department_id": 2**31}),
        ("/api/v1/exchange/domains", {"name": "交换域", "department_ids": [1, 2**31]}),
        ("/api/v1/sharing/applications", {"resource_id": 2**64}),
    ],
)
def test_huge_body_ids_answer_422(world: World, path: str, body: dict[str, Any]) -> None:
    with world.api(world.admin) as c:
        r = c.post(path, json=body)
    assert r.status_code == 422
    field = next(iter(body.keys() - {"name"}))
    assert any(d["field"].startswith(field) for d in r.json()["error"]["details"])


def test_console_filters_ignore_huge_ids(world: World) -> None:
    with world.api(world.admin) as c, world.api(world.auditor) as auditor:
        for url in (
            "/catalog/systems?department_id={}",
            "/exchange/tasks?node_id={}",
            "/admin/users?department_id={}",
            "/audit?before_seq={}",
            "/exchange/domains?edit={}",
        ):
            for value in TOO_BIG:
                r = (auditor if url.startswith("/audit") else c).get(url.format(value))
                assert r.status_code in (200, 404), (url, value, r.status_code)


def test_parse_id_bounds() -> None:
    assert MAX_ID == 2**31 - 1
    assert parse_seq(str(MAX_SEQ)) == MAX_SEQ
    assert parse_seq(str(MAX_SEQ + 1)) is None
    assert parse_seq("0") == 0
    assert parse_id(str(MAX_ID)) == MAX_ID
    assert parse_id(str(MAX_ID + 1)) is None
    assert parse_id("0") is None
    assert parse_id("١٢") is None  # Arabic-Indic digits pass str.isdigit
    assert parse_id(" 7 ") == 7
