"""Builders for quality tests: a published resource of people with a shared store whose
rows are written straight into the shared database, with planted defects of known
counts."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Column, Integer, MetaData, String, Table, insert
from stdnum.cn import ric, uscc

from govshare.exchange.models import ExchangeNode, ExchangeTask, TaskKind
from govshare.sharing.models import SharedStore
from govshare.sharing.store import SharedDatabase
from tests.factories import Dept, World, unique

ITEMS: list[dict[str, Any]] = [
    {"name": "公民身份号码", "code": "sfzhm", "data_type": "C", "length": 18, "is_key": True},
    {"name": "姓名", "code": "xm", "data_type": "C", "length": 50},
    {"name": "性别", "code": "xb", "data_type": "C", "length": 1, "code_table": "GB/T 2261.1"},
    {"name": "出生日期", "code": "csrq", "data_type": "D"},
    {"name": "户籍地行政区划代码", "code": "xzqh", "data_type": "C", "length": 6},
    {"name": "联系电话", "code": "lxdh", "data_type": "C", "length": 20},
    {"name": "工作单位统一社会信用代码", "code": "tyshxydm", "data_type": "C", "length": 18},
]
COLUMNS = [i["code"] for i in ITEMS]
_serial = itertools.count(1)


def citizen_id(n: int, birth: str = "19900101") -> str:
    body = f"370202{birth}{n % 1000:03d}"
    return body + ric.calc_check_digit(body + "?")  # it skips the last character


def credit_code(n: int) -> str:
    body = f"91370200MA{n % 10**7:07d}"
    return body + uscc.calc_check_digit(body)


def wrong_check(code: str) -> str:
    return code[:-1] + ("1" if code[-1] != "1" else "2")


def person(**overrides: Any) -> dict[str, Any]:
    """A row with every value valid (a fresh ID number), unless overridden."""
    n = next(_serial)
    row = {
        "sfzhm": citizen_id(n),
        "xm": "张三",
        "xb": "1",
        "csrq": "1990-01-01",
        "xzqh": "370202",
        "lxdh": "13812345678",
        "tyshxydm": credit_code(n),
    }
    row.update(overrides)
    return row


@dataclass
class Planted:
    """Rows with defects of known counts, and what the scan must report for them."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    # (dimension, item, value) of every planted failure; duplicates: the extra copies.
    expected: list[tuple[str, str, Any]] = field(default_factory=list)

    def good(self, n: int, **overrides: Any) -> None:
        for _ in range(n):
            self.rows.append(person(**overrides))

    def bad(self, dimension: str, item: str, value: Any) -> None:
        self.rows.append(person(**{item: value}))
        self.expected.append((dimension, item, value))

    def duplicated(self, copies: int) -> None:
        """``copies`` + 1 rows sharing one key; the copies are the failures."""
        row = person()
        self.rows.append(row)
        for _ in range(copies):
            self.rows.append(person(sfzhm=row["sfzhm"]))
            self.expected.append(("uniqueness", "sfzhm", row["sfzhm"]))


def planted() -> Planted:
    """36 rows: 20 good, 9 invalid values, 2 blank keys, two keys held by 3 and 2 rows."""
    p = Planted()
    p.good(18)
    p.good(1, csrq="20240131")  # other accepted date forms are not defects
    p.good(1, csrq="2024/1/31", lxdh="0532-88888888")
    p.bad("validity", "sfzhm", wrong_check(citizen_id(901)))
    p.bad("validity", "sfzhm", wrong_check(citizen_id(902)))
    p.bad("validity", "sfzhm", citizen_id(903, birth="19900230"))
    p.bad("validity", "csrq", "2023-02-30")
    p.bad("validity", "csrq", "20231301")
    p.bad("validity", "xzqh", "999999")
    p.bad("validity", "xb", "3")
    p.bad("validity", "lxdh", '=HYPERLINK("http://x")')
    p.bad("validity", "tyshxydm", wrong_check(credit_code(904)))
    p.bad("completeness", "sfzhm", None)
    p.bad("completeness", "sfzhm", " \u3000")
    p.duplicated(2)
    p.duplicated(1)
    return p


@dataclass
class StoreScene:
    world: World
    provider: Dept
    resource_id: int
    store_id: int
    table_name: str


def _node(world: World, dept: Dept) -> int:
    with world.hub.db() as s:
        node = ExchangeNode(
            name=unique("质量测试前置机"),
            department_id=dept.id,
            sig_alg="ed25519",
            cipher="aes-gcm",
        )
        s.add(node)
        s.flush()
        return node.id


def store_with_rows(
    world: World,
    provider: Dept,
    rows: list[dict[str, Any]],
    *,
    update_cycle: str = "daily",
    applied_at: datetime | None = None,
    items: list[dict[str, Any]] = ITEMS,
    key_item: str = "sfzhm",
    name: str | None = None,
    sealed: tuple[str, ...] = (),
) -> StoreScene:
    """A published resource of ``provider`` with a shared store holding ``rows`` (in
    the shared database, keyed by a record number ``rid``, as a node's source key).
    The ``sealed`` items are marked sensitive in the catalog and kept sealed (字段加密)
    as the hub's feed keeps them: text cells ``~…``, NULL left NULL."""
    columns = [i["code"] for i in items]
    items = [{**i, "sensitive": True} if i["code"] in sealed else i for i in items]
    named = {"name": name} if name else {}
    res = world.published(provider, items=items, update_cycle=update_cycle, **named)
    node_id = _node(world, provider)
    with world.hub.db() as s:
        task = ExchangeTask(
            name=unique("质量测试任务"),
            kind=TaskKind.PROVIDER,
            node_id=node_id,
            resource_id=res["id"],
            config={"key": ["rid"]},
            created_by="test",
        )
        s.add(task)
        s.flush()
        store = SharedStore(
            resource_id=res["id"],
            source_task_id=task.id,
            key_item=key_item,
            mapping={c: c for c in columns},
            table_name=f"ss_{res['id']}",
            applied_seq=1,
            applied_at=applied_at,
            row_count=len(rows),
            sealed_items=dict.fromkeys(sealed, "string") or None,
            created_by="test",
        )
        s.add(store)
        s.flush()
        store_id, table_name = store.id, store.table_name
    db = SharedDatabase.of(world.hub.settings)
    try:
        table = Table(
            table_name,
            MetaData(),
            Column("rid", Integer, primary_key=True, autoincrement=False),
            *[Column(c, String(200)) for c in columns],
        )
        table.create(db.engine)
        if sealed:
            rows = [
                {
                    c: db.sealer.seal_value(v) if c in sealed and v is not None else v
                    for c, v in r.items()
                }
                for r in rows
            ]
        with db.engine.begin() as conn:
            conn.execute(insert(table), [{"rid": i + 1, **r} for i, r in enumerate(rows)])
    finally:
        db.close()
    return StoreScene(world, provider, res["id"], store_id, table_name)


# Values on both sides of every shortcut the database takes for the seeded rules (see
# govshare.quality.pushdown): blanks of every kind, full-width forms, padding, wrong
# check digits, impossible and leap days, codes that are not, over-long text.
BLANKS: list[Any] = [None, "", " ", "\u3000", "\t", " \u3000 ", "\u00a0", "\u2003"]
TRICKY: dict[str, list[Any]] = {
    "sfzhm": [
        citizen_id(1),
        citizen_id(2, birth="20000229"),
        citizen_id(3, birth="19990229"),
        citizen_id(4, birth="19900431"),
        citizen_id(5, birth="19900131"),
        citizen_id(6, birth="00000101"),
        citizen_id(7, birth="19901301"),
        "999999" + citizen_id(8)[6:],
        wrong_check(citizen_id(9)),
        citizen_id(10).lower(),
        " " + citizen_id(11),
        "３７０２０２１９９００１０１０１２３",
        citizen_id(12)[:17],
        "11010119900307663X",
        "11010119900307663x",
    ],
    "xm": ["张三", "Ab", "é", "😀😀", "居民" * 13, "x" * 50, "x" * 51, "ｘ", "张\u3000三", "-"],
    "xb": ["0", "1", "2", "9", "3", " 1", "１", "男", "10"],
    "csrq": [
        "1990-01-01",
        "2024-02-29",
        "2023-02-29",
        "2023-04-31",
        "2023-02-30",
        "0000-01-01",
        "0001-01-01",
        "20240131",
        "2024/1/31",
        "2024年1月31日",
        "2024-1-5",
        "2024-01-05 ",
        "２０２４-０１-０５",
        "2024-13-01",
        "2024-01-32",
    ],
    "xzqh": ["370202", "110101", "999999", "37020", "３７０２０２", "370202 ", "110103"],
    "lxdh": [
        "13812345678",
        "12812345678",
        "0532-88888888",
        "+86 13812345678",
        "１３８１２３４５６７８",
    ],
    "tyshxydm": [
        credit_code(1),
        wrong_check(credit_code(2)),
        credit_code(3).lower(),
        "Z" + credit_code(4)[1:],
        "94" + credit_code(5)[2:],
        credit_code(6) + " ",
        "91370200MA0000001I",
    ],
}


def messy(n: int) -> list[dict[str, Any]]:
    """``n`` rows cycling through :data:`TRICKY` and the blanks, column by column at
    different strides (so every column meets every other's cases), one row in seven
    repeating the key of a row far before it (duplicates across batches)."""
    rows: list[dict[str, Any]] = []
    for i in range(n):
        row: dict[str, Any] = {}
        for j, column in enumerate(COLUMNS):
            values = TRICKY[column] + BLANKS
            row[column] = values[(i * (j + 1) + i // len(values)) % len(values)]
        if i % 7 == 6:
            row["sfzhm"] = rows[(i * 13) % i]["sfzhm"]
        rows.append(row)
    return rows
