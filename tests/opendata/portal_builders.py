"""Scenery for the portal tests: phase 1's open scene (every state the open catalog tells
apart), each entry given a shared store with rows, and values that must never reach
the public written into every store that is not open."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Column, Integer, MetaData, String, Table, insert

from govshare.exchange.models import ExchangeTask, TaskKind
from govshare.sharing.models import SharedStore
from govshare.sharing.store import SharedDatabase
from tests.factories import Dept, World, unique
from tests.opendata.builders import OpenScene, open_scene
from tests.quality.builders import _node

ITEMS = ("sfzhm", "xm", "jzdz", "djrq")  # resource_payload's items
UNPUBLISHED_COLUMN = "nbbz"  # kept by the store, but no published item of the entry
FORMULA = '=HYPERLINK("http://evil.example","点我")'


def attach_store(
    world: World,
    dept: Dept,
    resource_id: int,
    rows: list[dict[str, Any]],
    sealed: tuple[str, ...] = (),
) -> str:
    """A fed shared store for the entry (as the exchange leaves it: keyed by the source's
    record number ``rid``): its items, and one column that no published item names;
    the ``sealed`` items kept sealed (字段加密), as the feed keeps sensitive items."""
    node_id = _node(world, dept)
    columns = [*ITEMS, UNPUBLISHED_COLUMN]
    with world.hub.db() as s:
        task = ExchangeTask(
            name=unique("开放测试任务"),
            kind=TaskKind.PROVIDER,
            node_id=node_id,
            resource_id=resource_id,
            config={"key": ["rid"]},
            created_by="test",
        )
        s.add(task)
        s.flush()
        store = SharedStore(
            resource_id=resource_id,
            source_task_id=task.id,
            key_item="sfzhm",
            mapping={c: c for c in columns},
            table_name=f"ss_{resource_id}",
            applied_seq=1,
            row_count=len(rows),
            sealed_items=dict.fromkeys(sealed, "string") or None,
            created_by="test",
        )
        s.add(store)
        s.flush()
        table_name = store.table_name
    db = SharedDatabase.of(world.hub.settings)
    try:
        table = Table(
            table_name,
            MetaData(),
            Column("rid", Integer, primary_key=True, autoincrement=False),
            *[Column(c, String(200)) for c in columns],
        )
        table.create(db.engine)
        stored = [
            {k: db.sealer.seal(v) if k in sealed and v is not None else v for k, v in r.items()}
            for r in rows
        ]
        if rows:
            with db.engine.begin() as conn:
                conn.execute(insert(table), [{"rid": i + 1, **r} for i, r in enumerate(stored)])
    finally:
        db.close()
    return table_name


def person(n: int, tag: str, **overrides: Any) -> dict[str, Any]:
    row = {
        "sfzhm": f"37020219900101{n:04d}",
        "xm": f"{tag}{n}",
        "jzdz": f"青岛市市南区{tag}路{n}号",
        "djrq": "2024-01-02",
        UNPUBLISHED_COLUMN: f"内部备注{tag}{n}",
    }
    row.update(overrides)
    return row


@dataclass
class PortalScene:
    scene: OpenScene
    visible_rows: list[dict[str, Any]]  # the 无条件开放 entry's rows
    hidden_values: list[str]  # values of every store the public must not see

    @property
    def entries(self) -> list[dict[str, Any]]:
        return [*self.scene.open, *self.scene.hidden]


def portal_scene(
    world: World, visible: int = 25, rows: list[dict[str, Any]] | None = None
) -> PortalScene:
    """The open scene with stores; ``rows`` (else ``visible`` made-up people, the second
    named by a formula, the third without an address) are the 无条件开放 entry's."""
    scene = open_scene(world)
    if rows is None:
        rows = [person(n, "公开") for n in range(1, visible + 1)]
        rows[1]["xm"] = FORMULA
        rows[2]["jzdz"] = None
    attach_store(world, scene.dept, scene.open_plain["id"], rows)
    hidden: list[str] = [r[UNPUBLISHED_COLUMN] for r in rows]
    for entry, tag in [
        (scene.closed, "非开放值"),
        (scene.withdrawn, "已撤回值"),
        (scene.open_conditional, "有条件值"),
        (scene.draft, "草稿值"),
    ]:
        secret_rows = [person(n, tag) for n in range(1, 4)]
        attach_store(world, scene.dept, entry["id"], secret_rows)
        hidden += [v for r in secret_rows for v in (r["xm"], r["jzdz"], r[UNPUBLISHED_COLUMN])]
    return PortalScene(scene, rows, hidden)
