"""返还: a district department receives its own division's records of a base database
through the ordinary subscription path, on SQLite and PostgreSQL.

The bureau's front-end node reads the base's table in the shared database by its record
version (``__rev``), like any business table with a cursor column; the district applies
for the base's items with a row filter on 行政区划代码, subscribes, and its node receives
exactly its division's records, and then the changes assembly makes to them (a record
moving out of the division leaves the district's copy). Items are shared without
approval unless the base's definition says otherwise (per item)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from govshare.node.agent import NodeAgent
from govshare.node.config import Database, NodeConfig
from tests.basedata.test_flow import ROWS, Side, _get, _side, _source, _wait, base_entry
from tests.factories import Dept, World
from tests.live import LiveHub
from tests.sharing.builders import application_payload

# One worker builds the three nodes once for both tests.
pytestmark = pytest.mark.xdist_group("basedata-return")

DISTRICT = "370202"
# Every third person lives in 市北区 (370203), the others in 市南区 (370202).
QUERY = "SELECT sfzhm, xm, xzqh FROM rk_copy"
DIVISION = "CASE WHEN id % 3 = 0 THEN '370203' ELSE '370202' END"


@dataclass
class Returned:
    world: World
    police: Side
    owner: Dept
    district: Dept
    base: dict[str, Any]
    bureau: NodeAgent
    receiver: NodeAgent
    bureau_task_id: int
    target_url: str


def _node(world: World, dept: Dept, tmp: Path, label: str, **dbs: Any) -> NodeAgent:
    with world.api(world.admin) as c:
        r = c.post(
            "/api/v1/exchange/nodes", json={"name": f"{label}-{dept.id}", "department_id": dept.id}
        )
        assert r.status_code == 201, r.text
    agent = NodeAgent(
        NodeConfig(
            hub_url=world.hub.base_url,
            node_id=r.json()["id"],
            enrollment_token=r.json()["enrollment_token"],
            store=tmp / f"store-{label}",
            heartbeat_seconds=0.2,
            tick_seconds=0.05,
            **dbs,
        )
    )
    agent.ensure_registered()
    return agent


def _sfzhm(i: int) -> str:
    return f"37020219900101{i:04d}"[-18:]


def _district_copy(r: Returned) -> list[tuple[Any, ...]]:
    engine = create_engine(r.target_url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            if not engine.dialect.has_table(conn, "rk_copy"):
                return []
            return sorted(tuple(row) for row in conn.execute(text(QUERY)))
    finally:
        engine.dispose()


def _expected(names: dict[int, str] | None = None, moved: dict[int, str] | None = None) -> list:
    names, moved = names or {}, moved or {}
    rows = []
    for i in range(1, ROWS + 1):
        division = moved.get(i, "370203" if i % 3 == 0 else "370202")
        if division == DISTRICT:
            rows.append((_sfzhm(i), names.get(i, f"姓名{i}"), division))
    return sorted(rows)


@pytest.fixture(scope="module")
def returned(hub: LiveHub, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Returned]:
    world = World(hub)
    tmp = tmp_path_factory.mktemp("return")
    police = _side(world, tmp, "公安", "户籍人口信息(返还)", extra={"xzqh": DIVISION})
    owner = world.department("大数据局")
    district = world.department("市南区大数据")
    resource = base_entry(
        world,
        owner,
        "人口基础信息(返还)",
        {"name": "性别", "code": "xb", "data_type": "C", "length": 1},
        {"name": "行政区划代码", "code": "xzqh", "data_type": "C", "length": 6},
        sharing_type="2",
        sharing_conditions="用于本部门履职",
    )
    src = {"store_id": police.store_id}
    with world.api(world.admin) as c:
        r = c.post(
            "/api/v1/base-databases",
            json={
                "resource_id": resource["id"],
                "key_item": "sfzhm",
                "items": [
                    {"item": "xm", "source": src | {"column": "xm"}},
                    {"item": "xb", "source": src | {"column": "xb"}, "unconditional": False},
                    {"item": "xzqh", "source": src | {"column": "xzqh"}},
                ],
            },
        )
        assert r.status_code == 201, r.text
        base = r.json()
    assert base["version_column"] == "__rev"
    _wait(
        world,
        [police],
        lambda: (
            _get(world, world.admin, f"/api/v1/base-databases/{base['id']}")["row_count"] == ROWS
        ),
    )
    # The bureau's node reads the base's table where the hub keeps it.
    shared = Database(url=hub.settings.resolved_shared_store_url)
    bureau = _node(world, owner, tmp, "bureau", sources={"shared": shared})
    target_url = f"sqlite:///{tmp / 'district.db'}"
    receiver = _node(world, district, tmp, "district", targets={"local": Database(url=target_url)})
    with world.api(world.admin) as c:
        r = c.post(
            "/api/v1/exchange/tasks",
            json={
                "name": "人口基础信息返还发送",
                "kind": "provider",
                "node_id": bureau.config.node_id,
                "resource_id": resource["id"],
                "config": {
                    "source": "shared",
                    "table": base["table_name"],
                    "key": ["sfzhm"],
                    "cursor_column": base["version_column"],
                    "delete_detection": "keyset",
                    "keyset_every_seconds": 1,
                    "schedule": {"interval_seconds": 0.2},
                },
            },
        )
        assert r.status_code == 201, r.text
        task_id = r.json()["id"]
        assert c.post(f"/api/v1/exchange/tasks/{task_id}/start").status_code == 200
    yield Returned(world, police, owner, district, base, bureau, receiver, task_id, target_url)
    for agent in (police.node, bureau, receiver):
        agent.close()


def _apply(r: Returned, items: list[str], mode: str, **kw: Any) -> dict[str, Any]:
    with r.world.api(r.district.resource_admin) as c:
        resp = c.post(
            "/api/v1/sharing/applications",
            json=application_payload(r.base["resource_id"], items=items, mode=mode, **kw),
        )
        assert resp.status_code == 201, resp.text
        return dict(resp.json())


def test_items_are_granted_without_approval_unless_the_base_says_otherwise(
    returned: Returned,
) -> None:
    waits = _apply(returned, ["sfzhm", "xm", "xb"], "query", row_filter=None)
    assert waits["status"] == "submitted"  # 性别 is not shared unconditionally
    granted = _apply(returned, ["sfzhm", "xm"], "query", row_filter=None)
    assert granted["status"] == "approved"
    assert granted["grant_id"]


def test_the_district_receives_only_its_division_and_then_its_changes(
    returned: Returned,
) -> None:
    r, w = returned, returned.world
    app = _apply(
        r,
        ["sfzhm", "xm", "xzqh"],
        "subscription",
        row_filter=[{"item": "xzqh", "op": "eq", "value": DISTRICT}],
    )
    assert app["status"] == "approved"
    with w.api(r.district.resource_admin) as c:
        resp = c.post(
            f"/api/v1/sharing/grants/{app['grant_id']}/subscription",
            json={
                "node_id": r.receiver.config.node_id,
                "source_task_id": r.bureau_task_id,
                "config": {
                    "target": "local",
                    "table": "rk_copy",
                    "schedule": {"interval_seconds": 0.2},
                },
            },
        )
        assert resp.status_code == 201, resp.text
    nodes = [r.police, _Agent(r.bureau), _Agent(r.receiver)]
    _wait(w, nodes, lambda: _district_copy(r) == _expected())
    assert 0 < len(_expected()) < ROWS
    # Changes at 公安 reach the district through assembly: a new name, a person moving
    # into the division, one moving out of it.
    _source(r.police, "UPDATE person SET xm = '改名一', version = :v WHERE id = 1")
    _source(r.police, "UPDATE person SET xzqh = '370202', version = :v WHERE id = 3")
    _source(r.police, "UPDATE person SET xzqh = '370203', version = :v WHERE id = 2")
    want = _expected(names={1: "改名一"}, moved={3: "370202", 2: "370203"})
    _wait(w, nodes, lambda: _district_copy(r) == want)


@dataclass
class _Agent:
    """A node in the shape ``_wait`` ticks (it takes a Side's ``node``)."""

    node: NodeAgent
