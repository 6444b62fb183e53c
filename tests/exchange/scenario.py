"""An exchange scene for tests: a provider and a consumer department, each with a real
front-end node (NodeAgent over loopback HTTP), a source table and a target database."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from govshare.node.agent import NodeAgent
from govshare.node.config import Database, NodeConfig
from tests.factories import Dept, World

PERSON_ITEMS = [
    {"name": "编号", "code": "id", "data_type": "I", "length": 10, "is_key": True},
    {"name": "公民身份号码", "code": "sfzhm", "data_type": "C", "length": 18},
    {"name": "姓名", "code": "xm", "data_type": "C", "length": 50},
    {"name": "性别", "code": "xb", "data_type": "C", "length": 1, "code_table": "GB/T 2261.1"},
    {"name": "行版本", "code": "version", "data_type": "I", "length": 10},
]


def make_source(path: Path, rows: int) -> None:
    db = sqlite3.connect(path)
    db.execute(
        "CREATE TABLE person (id INTEGER PRIMARY KEY, sfzhm TEXT, xm TEXT, xb TEXT, "
        "version INTEGER NOT NULL)"
    )
    db.execute("CREATE INDEX ix_person_version ON person (version, id)")
    db.executemany(
        "INSERT INTO person VALUES (?, ?, ?, ?, ?)",
        (
            (i, f"37020219900101{i:04d}"[-18:], f"姓名{i}", "1" if i % 2 else "2", i)
            for i in range(1, rows + 1)
        ),
    )
    db.commit()
    db.close()


def make_pg_source(url: str, rows: int) -> None:
    """The person table in a PostgreSQL business database, ``rows`` rows (version = id)."""
    engine = create_engine(url, poolclass=NullPool)
    with engine.begin() as conn:
        conn.execute(
            text(
                "CREATE TABLE person (id integer PRIMARY KEY, sfzhm text, xm text, xb text, "
                "version integer NOT NULL)"
            )
        )
        conn.execute(text("CREATE INDEX ix_person_version ON person (version, id)"))
        conn.execute(
            text(
                "INSERT INTO person SELECT g, '3702021990' || lpad(g::text, 8, '0'), "
                "'姓名' || g, '1', g FROM generate_series(1, CAST(:n AS integer)) g"
            ),
            {"n": rows},
        )
    engine.dispose()


def drop_replication_slots(url: str) -> None:
    """Drop the database's idle replication slots (each keeps the server's log)."""
    engine = create_engine(url, poolclass=NullPool)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(
            text(
                "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                "WHERE database = current_database() AND NOT active"
            )
        )
    engine.dispose()


class Source:
    """The provider's business database, changed the way a business system would."""

    def __init__(self, url: str) -> None:
        self.engine = create_engine(url, poolclass=NullPool)

    def next_version(self, conn: Any) -> int:
        return int(
            conn.execute(text("SELECT coalesce(max(version), 0) + 1 FROM person")).scalar_one()
        )

    def update(self, ids: list[int], name: str) -> None:
        with self.engine.begin() as conn:
            v = self.next_version(conn)
            for i in ids:
                conn.execute(
                    text("UPDATE person SET xm = :n, version = :v WHERE id = :i"),
                    {"n": name, "v": v, "i": i},
                )
                v += 1

    def insert(self, ids: list[int]) -> None:
        with self.engine.begin() as conn:
            v = self.next_version(conn)
            for n, i in enumerate(ids):
                conn.execute(
                    text("INSERT INTO person VALUES (:i, :s, :x, '1', :v)"),
                    {"i": i, "s": f"3702021990{i:08d}", "x": f"新{i}", "v": v + n},
                )

    def delete(self, ids: list[int]) -> None:
        with self.engine.begin() as conn:
            conn.execute(text(f"DELETE FROM person WHERE id IN ({','.join(str(i) for i in ids)})"))

    def rows(self) -> list[tuple[Any, ...]]:
        with self.engine.connect() as conn:
            return [
                tuple(r)
                for r in conn.execute(
                    text("SELECT id, sfzhm, xm, xb, version FROM person ORDER BY id")
                )
            ]


def target_rows(
    url: str, table: str = "person_copy", columns: str = "id, sfzhm, xm, xb, version"
) -> list[tuple[Any, ...]]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            if not engine.dialect.has_table(conn, table):
                return []
            return [
                tuple(r) for r in conn.execute(text(f"SELECT {columns} FROM {table} ORDER BY id"))
            ]
    finally:
        engine.dispose()


@dataclass
class Scene:
    world: World
    provider: Dept
    consumer: Dept
    resource: dict[str, Any]
    source_url: str
    target_url: str
    tmp: Path
    nodes: dict[str, NodeAgent] = field(default_factory=dict)
    node_ids: dict[str, int] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)
    provider_task: dict[str, Any] = field(default_factory=dict)
    subscriber_task: dict[str, Any] = field(default_factory=dict)

    def enroll(self, label: str, dept: Dept) -> int:
        with self.world.api(self.world.admin) as c:
            r = c.post(
                "/api/v1/exchange/nodes",
                json={"name": f"{label}-{dept.id}", "department_id": dept.id},
            )
            assert r.status_code == 201, r.text
        self.node_ids[label], self.tokens[label] = r.json()["id"], r.json()["enrollment_token"]
        return r.json()["id"]

    def node(self, label: str, **kw: Any) -> NodeAgent:
        config = NodeConfig(
            hub_url=self.world.hub.base_url,
            node_id=self.node_ids[label],
            enrollment_token=self.tokens[label],
            store=self.tmp / f"store-{label}",
            sources={"biz": Database(url=self.source_url)},
            targets={"dst": Database(url=self.target_url)},
            heartbeat_seconds=0.2,
            tick_seconds=0.05,
            **kw,
        )
        agent = NodeAgent(config)
        agent.ensure_registered()
        self.nodes[label] = agent
        return agent

    def create_tasks(self, **provider_config: Any) -> None:
        config = {
            "source": "biz",
            "table": "person",
            "key": ["id"],
            "cursor_column": "version",
            "delete_detection": "keyset",
            "keyset_every_seconds": 3600,
            "batch_rows": 500,
            "schedule": {"interval_seconds": 0.2},
            **provider_config,
        }
        with self.world.api(self.world.admin) as c:
            r = c.post(
                "/api/v1/exchange/tasks",
                json={
                    "name": "人口信息发送",
                    "kind": "provider",
                    "node_id": self.node_ids["provider"],
                    "resource_id": self.resource["id"],
                    "config": config,
                },
            )
            assert r.status_code == 201, r.text
            self.provider_task = r.json()
            r = c.post(
                "/api/v1/exchange/tasks",
                json={
                    "name": "人口信息接收",
                    "kind": "subscriber",
                    "node_id": self.node_ids["consumer"],
                    "resource_id": self.resource["id"],
                    "source_task_id": self.provider_task["id"],
                    "config": {
                        "target": "dst",
                        "table": "person_copy",
                        "schedule": {"interval_seconds": 0.2},
                    },
                },
            )
            assert r.status_code == 201, r.text
            self.subscriber_task = r.json()
            for t in (self.provider_task, self.subscriber_task):
                assert c.post(f"/api/v1/exchange/tasks/{t['id']}/start").status_code == 200

    def run_until(
        self, done: Callable[[], bool], *, timeout: float = 60, nodes: list[str] | None = None
    ) -> None:
        deadline = time.monotonic() + timeout
        while not done():
            assert time.monotonic() < deadline, "exchange did not converge in time"
            for label in nodes or list(self.nodes):
                self.nodes[label].tick()
            time.sleep(0.02)

    def in_sync(self) -> bool:
        return Source(self.source_url).rows() == target_rows(self.target_url)

    def close(self) -> None:
        for agent in self.nodes.values():
            agent.close()


def make_scene(
    world: World,
    tmp: Path,
    *,
    rows: int = 1000,
    source_url: str | None = None,
    target_url: str | None = None,
    items: list[dict[str, Any]] | None = None,
) -> Scene:
    provider, consumer = world.department("公安"), world.department("人社")
    resource = world.published(
        provider,
        name="人口基本信息交换",
        format="database",
        items=items or PERSON_ITEMS,
    )
    if source_url is None:
        make_source(tmp / "business.db", rows)
        source_url = f"sqlite:///{tmp / 'business.db'}"
    scene = Scene(
        world,
        provider,
        consumer,
        resource,
        source_url,
        target_url or f"sqlite:///{tmp / 'consumer.db'}",
        tmp,
    )
    scene.enroll("provider", provider)
    scene.enroll("consumer", consumer)
    return scene
