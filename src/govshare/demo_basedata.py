"""The demo's 人口库: a base database assembled from three departments' stores fed by
the demo nodes, with conflicts and invalid values planted in known numbers.

Sources (each a business table read by its department's front-end node):

* 公安 常住人口基本信息 (the demo exchange's population table) — authoritative for
  姓名, 性别, 出生日期, 户籍地址;
* 卫健 居民死亡医学证明信息 (``swzm`` on the 卫健 node) — authoritative for 死亡日期;
* 公安 死亡人口注销信息 (``swzx`` beside the population table) — evidence for 死亡日期;
* 人社 社会保险参保信息 (``cbxx`` on the 人社 node) — authoritative for 参保状态,
  evidence for 姓名.

Planted (``PLANTED``): 5 names 人社 spells otherwise than 公安 (and 10 that differ only
in blanks, which are not conflicts); 3 death dates 公安 records otherwise than 卫健, 2
deaths 公安 registered that 卫健 has not (and 公安's dates written ``2025年3月1日``
agree with 卫健's ``2025-03-01``); 4 insured persons whose ID number fails its check
digit — unknown to 公安, so their names are conflicts too: 14 conflicts in all.
"""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from govshare.basedata import service as basedata
from govshare.basedata.schemas import BaseCreate, BaseItemIn, SourceRef
from govshare.catalog import service as catalog
from govshare.catalog.codes import SharingType
from govshare.catalog.models import Resource
from govshare.demo import Entry, _resource_in, it
from govshare.demo_sharing import ensure_published
from govshare.exchange import service as exchange
from govshare.exchange.models import ExchangeNode, ExchangeTask, TaskKind, TaskState
from govshare.exchange.schemas import TaskCreate
from govshare.security.models import Department
from govshare.security.service import Principal
from govshare.sharing import store as shared
from govshare.sharing.models import SharedStore
from govshare.sharing.schemas import StoreCreate

BASE_NAME = "人口基础信息库"
# 姓名: 5 spelt otherwise, and the 4 persons with a broken ID number 公安 does not know
# (their name is evidence against an authoritative "nothing").
PLANTED = {"name_conflicts": 9, "death_conflicts": 5, "invalid_ids": 4}


def _people(population_db: Path) -> list[tuple[str, str]]:
    db = sqlite3.connect(population_db)
    try:
        return [
            (str(r[0]), str(r[1])) for r in db.execute("SELECT gmsfhm, xm FROM czrk ORDER BY id")
        ]
    finally:
        db.close()


def _bad_check_digit(number: str) -> str:
    last = number[-1]
    return number[:-1] + ("0" if last != "0" else "1")


def make_sources(population_db: Path, wjw_db: Path, rsj_db: Path, seed: int = 11) -> None:
    """The business tables of 卫健, 人社 and 公安's death register, from the population."""
    rng = random.Random(seed)
    people = _people(population_db)
    dead = rng.sample(range(len(people)), 60)
    deaths = {i: f"2025-{1 + i % 12:02d}-{1 + i % 28:02d}" for i in dead}
    # 卫健: 58 of the 60 deaths; 公安's register has all 60, 3 dated otherwise.
    certified = dead[:58]
    only_police = dead[58:]  # 2 deaths 卫健 has not certified
    otherwise = set(dead[:3])
    chinese = set(dead[3:20])  # written 2025年3月1日 — the same day
    wjw = sqlite3.connect(wjw_db)
    wjw.executescript(
        "CREATE TABLE IF NOT EXISTS swzm (id INTEGER PRIMARY KEY, swzbh TEXT, gmsfhm TEXT, "
        "xm TEXT, swrq TEXT, version INTEGER NOT NULL);"
    )
    wjw.executemany(
        "INSERT OR IGNORE INTO swzm VALUES (?, ?, ?, ?, ?, ?)",
        [
            (n, f"SW2025{n:06d}", people[i][0], people[i][1], deaths[i], n)
            for n, i in enumerate(certified, start=1)
        ],
    )
    wjw.commit()
    wjw.close()
    police = sqlite3.connect(population_db)
    police.executescript(
        "CREATE TABLE IF NOT EXISTS swzx (id INTEGER PRIMARY KEY, gmsfhm TEXT, xm TEXT, "
        "swrq TEXT, version INTEGER NOT NULL);"
    )
    rows = []
    for n, i in enumerate(dead, start=1):
        day = deaths[i]
        if i in otherwise:
            day = f"2025-{1 + (i + 5) % 12:02d}-{1 + i % 28:02d}"
        elif i in chinese:
            y, m, d = day.split("-")
            day = f"{y}年{int(m)}月{int(d)}日"
        rows.append((n, people[i][0], people[i][1], day, n))
    police.executemany("INSERT OR IGNORE INTO swzx VALUES (?, ?, ?, ?, ?)", rows)
    police.commit()
    police.close()
    assert len(only_police) + len(otherwise) == PLANTED["death_conflicts"]
    insured = [i for i in range(len(people)) if i % 5 < 3]
    typos = set(insured[:5])
    widths = set(insured[5:15])
    rsj = sqlite3.connect(rsj_db)
    rsj.executescript(
        "CREATE TABLE IF NOT EXISTS cbxx (id INTEGER PRIMARY KEY, gmsfhm TEXT, xm TEXT, "
        "cbzt TEXT, version INTEGER NOT NULL);"
    )
    rows = []
    for n, i in enumerate(insured, start=1):
        number, name = people[i]
        if i in typos:
            name = name[0] + "晓" + name[1:]  # a character too many
        elif i in widths:
            name = f" {name}\u3000"  # blanks, the ideographic space included
        rows.append((n, number, name, "1" if rng.random() > 0.1 else "2", n))
    for k in range(PLANTED["invalid_ids"]):
        number, name = people[-1 - k]
        rows.append((len(rows) + 1, _bad_check_digit(number), name, "1", len(rows) + 1))
    rsj.executemany("INSERT OR IGNORE INTO cbxx VALUES (?, ?, ?, ?, ?)", rows)
    rsj.commit()
    rsj.close()


def _provider_task(
    session: Session,
    admin: Principal,
    node: ExchangeNode,
    resource: Resource,
    name: str,
    source: str,
    table: str,
) -> ExchangeTask:
    task = exchange.create_task(
        session,
        admin,
        TaskCreate(
            name=name,
            kind=TaskKind.PROVIDER,
            node_id=node.id,
            resource_id=resource.id,
            config={
                "source": source,
                "table": table,
                "key": ["id"],
                "cursor_column": "version",
                "delete_detection": "keyset",
                "keyset_every_seconds": 60,
                "batch_rows": 5000,
                "schedule": {"interval_seconds": 2},
            },
        ),
    )
    exchange.set_task_state(session, admin, task.id, TaskState.RUNNING)
    return task


def _resource(session: Session, admin: Principal, name: str) -> Resource:
    found = session.scalar(select(Resource).where(Resource.name == name).order_by(Resource.id))
    assert found is not None, name
    ensure_published(session, admin, found, "演示基础库")
    return found


def _store(
    session: Session,
    admin: Principal,
    resource: Resource,
    task: ExchangeTask,
    mapping: dict[str, str],
) -> SharedStore:
    return shared.create_store(
        session,
        admin,
        StoreCreate(
            resource_id=resource.id, source_task_id=task.id, key_item="sfzhm", mapping=mapping
        ),
    )


def setup(
    session: Session,
    admin: Principal,
    nodes: dict[str, ExchangeNode],
    population_store: SharedStore,
    base_dir: Path,
) -> None:
    """Create the sources' tables, their tasks and stores, and define the 人口库."""
    make_sources(
        base_dir / "gaj-business.db", base_dir / "wjw-business.db", base_dir / "rsj-business.db"
    )
    death = _resource(session, admin, "居民死亡医学证明信息")
    register = _resource(session, admin, "死亡人口注销信息")
    insured = _resource(session, admin, "社会保险参保信息")
    death_store = _store(
        session,
        admin,
        death,
        _provider_task(session, admin, nodes["wjw"], death, "死亡医学证明发送", "business", "swzm"),
        {"swzbh": "swzbh", "gmsfhm": "sfzhm", "xm": "xm", "swrq": "swrq"},
    )
    register_store = _store(
        session,
        admin,
        register,
        _provider_task(
            session, admin, nodes["gaj"], register, "死亡人口注销发送", "business", "swzx"
        ),
        {"gmsfhm": "sfzhm", "xm": "xm", "swrq": "swrq"},
    )
    insured_store = _store(
        session,
        admin,
        insured,
        _provider_task(session, admin, nodes["rsj"], insured, "社保参保信息发送", "social", "cbxx"),
        {"gmsfhm": "sfzhm", "xm": "xm", "cbzt": "cbzt"},
    )
    bureau = session.scalar(select(Department).where(Department.short_name == "大数据局"))
    assert bureau is not None
    entry = Entry(
        "dsj",
        "101001",
        BASE_NAME,
        "由公安、卫健、人社等部门的共享信息库归集的人口基础信息，每个信息项只有一个权威来源。",
        [
            it("公民身份号码", "sfzhm", "C", 18, "GB 11643 公民身份号码"),
            it("姓名", "xm", "C", 50),
            it("性别", "xb", "C", 1),
            it("出生日期", "csrq", "D"),
            it("户籍地址", "hjdz", "C", 200),
            it("死亡日期", "swrq", "D"),
            it("参保状态", "cbzt", "C", 2),
        ],
        sharing=SharingType.UNCONDITIONAL,
        modes=("api", "query"),
    )
    resource = catalog.add_resource(
        session, admin, _resource_in(entry, "101001", bureau.id, None), confirm_duplicates=True
    )
    ensure_published(session, admin, resource, "演示基础库")
    police = population_store.id

    def src(store_id: int, column: str) -> SourceRef:
        return SourceRef(store_id=store_id, column=column)

    basedata.create_base(
        session,
        admin,
        BaseCreate(
            resource_id=resource.id,
            key_item="sfzhm",
            items=[
                BaseItemIn(
                    item="xm", source=src(police, "xm"), evidence=[src(insured_store.id, "xm")]
                ),
                BaseItemIn(item="xb", source=src(police, "xb")),
                BaseItemIn(item="csrq", source=src(police, "csrq")),
                BaseItemIn(item="hjdz", source=src(police, "hjdz")),
                BaseItemIn(
                    item="swrq",
                    source=src(death_store.id, "swrq"),
                    evidence=[src(register_store.id, "swrq")],
                ),
                BaseItemIn(item="cbzt", source=src(insured_store.id, "cbzt")),
            ],
        ),
    )
