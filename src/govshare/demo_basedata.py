"""The demo's 人口库: a base database assembled from four departments' stores fed by the
demo nodes, with conflicts and invalid values planted in known numbers. The helpers
that put a business table on a node and a store on the hub serve the 法人库
(``demo_legalbase``) too.

Sources (each a business table read by its department's front-end node):

* 公安 常住人口基本信息 (the demo exchange's population table) — authoritative for
  姓名, 性别, 出生日期, 户籍地址;
* 卫健 居民死亡医学证明信息 (``swzm`` on the 卫健 node) — authoritative for 死亡日期;
* 公安 死亡人口注销信息 (``swzx`` beside the population table) — evidence for 死亡日期;
* 卫健 出生医学证明信息 (``csyxzm`` on the 卫健 node, keyed by 出生医学证明号 and joined
  to the base by 新生儿公民身份号码) — evidence for 出生日期;
* 人社 社会保险参保信息 (``cbxx`` on the 人社 node) — authoritative for 参保状态,
  evidence for 姓名;
* 民政 居民婚姻状况信息 (``hyxx`` on the 民政 node) — authoritative for 婚姻状况.

民政's 最低生活保障对象信息 (``dbxx``) is fed to a store of its own; no base item reads it.

Planted (``PLANTED``): 5 names 人社 spells otherwise than 公安 (and 10 that differ only
in blanks, which are not conflicts); 3 death dates 公安 records otherwise than 卫健, 2
deaths 公安 registered that 卫健 has not (and 公安's dates written ``2025年3月1日``
agree with 卫健's ``2025-03-01``); 3 birth dates 卫健's certificates record otherwise
than 公安 (and certificates writing the same day ``2003年5月12日`` or ``2003/5/12``); 4
insured persons whose ID number fails its check digit — unknown to 公安, so their names
are conflicts too: 17 conflicts in all, 12 of them 公安's.
"""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Sequence
from datetime import date, timedelta
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from govshare.basedata import service as basedata
from govshare.basedata.schemas import BaseCreate, BaseItemIn, SourceRef
from govshare.catalog import service as catalog
from govshare.catalog.codes import SharingType
from govshare.catalog.models import Resource
from govshare.demo import DEPARTMENTS, PERSON, Entry, _resource_in, it
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
MARRIAGE_NAME = "居民婚姻状况信息"
# 姓名: 5 spelt otherwise, and the 4 persons with a broken ID number 公安 does not know
# (their name is evidence against an authoritative "nothing").
PLANTED = {"name_conflicts": 9, "death_conflicts": 5, "birth_conflicts": 3, "invalid_ids": 4}
# Departments' districts by the 行政区划代码 the demo's ID numbers and enterprises use.
DISTRICTS = {
    "370202": "市南区",
    "370203": "市北区",
    "370211": "黄岛区",
    "370212": "崂山区",
    "370213": "李沧区",
    "370214": "城阳区",
    "370215": "即墨区",
    "370281": "胶州市",
}


def people_of(population_db: Path) -> list[tuple[str, str]]:
    """公民身份号码 and 姓名 of 公安's residents, in the table's order."""
    db = sqlite3.connect(population_db)
    try:
        return [
            (str(r[0]), str(r[1])) for r in db.execute("SELECT gmsfhm, xm FROM czrk ORDER BY id")
        ]
    finally:
        db.close()


def born_on(number: str) -> date:
    """The birth date a (valid) 公民身份号码 carries."""
    return date(int(number[6:10]), int(number[10:12]), int(number[12:14]))


def _bad_check_digit(number: str) -> str:
    last = number[-1]
    return number[:-1] + ("0" if last != "0" else "1")


def write_table(path: Path, ddl: str, table: str, rows: Sequence[tuple[object, ...]]) -> None:
    """Create a business table (``ddl``) and insert ``rows`` unless they are there."""
    db = sqlite3.connect(path)
    try:
        db.executescript(ddl)
        marks = ", ".join("?" * len(rows[0]))
        db.executemany(f"INSERT OR IGNORE INTO {table} VALUES ({marks})", rows)
        db.commit()
    finally:
        db.close()


def make_sources(base_dir: Path, seed: int = 11) -> None:
    """The business tables of 卫健, 人社, 民政 and 公安's death register, from the
    population in ``gaj-business.db``."""
    population_db = base_dir / "gaj-business.db"
    rng = random.Random(seed)
    people = people_of(population_db)
    dead = rng.sample(range(len(people)), 60)
    deaths = {i: f"2025-{1 + i % 12:02d}-{1 + i % 28:02d}" for i in dead}
    # 卫健: 58 of the 60 deaths; 公安's register has all 60, 3 dated otherwise.
    certified = dead[:58]
    only_police = dead[58:]  # 2 deaths 卫健 has not certified
    otherwise = set(dead[:3])
    chinese = set(dead[3:20])  # written 2025年3月1日 — the same day
    write_table(
        base_dir / "wjw-business.db",
        "CREATE TABLE IF NOT EXISTS swzm (id INTEGER PRIMARY KEY, swzbh TEXT, gmsfhm TEXT, "
        "xm TEXT, swrq TEXT, version INTEGER NOT NULL);",
        "swzm",
        [
            (n, f"SW2025{n:06d}", people[i][0], people[i][1], deaths[i], n)
            for n, i in enumerate(certified, start=1)
        ],
    )
    rows: list[tuple[object, ...]] = []
    for n, i in enumerate(dead, start=1):
        day = deaths[i]
        if i in otherwise:
            day = f"2025-{1 + (i + 5) % 12:02d}-{1 + i % 28:02d}"
        elif i in chinese:
            y, m, d = day.split("-")
            day = f"{y}年{int(m)}月{int(d)}日"
        rows.append((n, people[i][0], people[i][1], day, n))
    write_table(
        population_db,
        "CREATE TABLE IF NOT EXISTS swzx (id INTEGER PRIMARY KEY, gmsfhm TEXT, xm TEXT, "
        "swrq TEXT, version INTEGER NOT NULL);",
        "swzx",
        rows,
    )
    assert len(only_police) + len(otherwise) == PLANTED["death_conflicts"]
    insured = [i for i in range(len(people)) if i % 5 < 3]
    typos = set(insured[:5])
    widths = set(insured[5:15])
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
    write_table(
        base_dir / "rsj-business.db",
        "CREATE TABLE IF NOT EXISTS cbxx (id INTEGER PRIMARY KEY, gmsfhm TEXT, xm TEXT, "
        "cbzt TEXT, version INTEGER NOT NULL);",
        "cbxx",
        rows,
    )
    # A generator of its own: the tables above stay as they were before these existed.
    more = random.Random(seed + 1)
    _make_births(base_dir / "wjw-business.db", people, more)
    _make_civil_affairs(base_dir / "mzj-business.db", people, more)


def _make_births(path: Path, people: list[tuple[str, str]], rng: random.Random) -> None:
    """卫健's 出生医学证明 (issued since 1996; the demo's go back to 2000) of the residents
    born since, 3 dated otherwise than 公安 records and some the same day written
    otherwise."""
    born = [i for i, (number, _) in enumerate(people) if born_on(number) >= date(2000, 1, 1)]
    otherwise = set(born[: PLANTED["birth_conflicts"]])
    chinese = set(born[3:15])
    slashed = set(born[15:21])
    hospitals = ["青岛市妇女儿童医院", "青岛大学附属医院", "青岛市市立医院", "青岛市中心医院"]
    rows: list[tuple[object, ...]] = []
    for n, i in enumerate(born, start=1):
        number, name = people[i]
        day = born_on(number)
        if i in otherwise:
            written = (day + timedelta(days=1)).isoformat()  # past midnight, a day late
        elif i in chinese:
            written = f"{day.year}年{day.month}月{day.day}日"
        elif i in slashed:
            written = f"{day.year}/{day.month}/{day.day}"
        else:
            written = day.isoformat()
        sex = "1" if int(number[16]) % 2 else "2"
        rows.append((n, f"Q37{n:07d}", number, name, sex, written, rng.choice(hospitals), n))
    write_table(
        path,
        "CREATE TABLE IF NOT EXISTS csyxzm (id INTEGER PRIMARY KEY, csyxzmh TEXT, "
        "xsesfzhm TEXT, xsexm TEXT, xb TEXT, csrq TEXT, csdd TEXT, version INTEGER NOT NULL);",
        "csyxzm",
        rows,
    )


def _make_civil_affairs(path: Path, people: list[tuple[str, str]], rng: random.Random) -> None:
    """民政's 婚姻状况 (GB/T 2261.2 codes of the residents it registered a marriage,
    divorce or widowhood for) and its 低保 recipients."""
    rows: list[tuple[object, ...]] = []
    for number, name in people:
        born = born_on(number)
        if born.year > 2004 or rng.random() > 0.75:
            continue
        married = born.replace(day=1) + timedelta(days=365 * rng.randint(22, 35))
        if married.year > 2025:
            continue
        roll = rng.random()
        status = "40" if roll < 0.12 else "30" if roll < 0.2 and born.year < 1965 else "20"
        office = f"青岛市{DISTRICTS.get(number[:6], '市南区')}民政局婚姻登记处"
        rows.append((len(rows) + 1, number, name, status, married.isoformat(), office))
    civil = [(*r, r[0]) for r in rows]
    write_table(
        path,
        "CREATE TABLE IF NOT EXISTS hyxx (id INTEGER PRIMARY KEY, gmsfhm TEXT, xm TEXT, "
        "hyzk TEXT, djrq TEXT, djjg TEXT, version INTEGER NOT NULL);",
        "hyxx",
        civil,
    )
    relief = [
        (
            n,
            people[i][0],
            people[i][1],
            rng.choice(["01", "02"]),  # 城市 / 农村
            float(rng.choice([1015, 1015, 870, 660])),
            date(2020 + rng.randrange(6), 1 + rng.randrange(12), 1 + rng.randrange(28)).isoformat(),
            n,
        )
        for n, i in enumerate(sorted(rng.sample(range(len(people)), 80)), start=1)
    ]
    write_table(
        path,
        "CREATE TABLE IF NOT EXISTS dbxx (id INTEGER PRIMARY KEY, gmsfhm TEXT, xm TEXT, "
        "bzlb TEXT, bzje REAL, rdrq TEXT, version INTEGER NOT NULL);",
        "dbxx",
        relief,
    )


# -- the hub's side: tasks, stores, entries --------------------------------------------------


def provider_task(
    session: Session,
    admin: Principal,
    node: ExchangeNode,
    resource: Resource,
    *,
    name: str,
    source: str,
    table: str,
) -> ExchangeTask:
    """A running provider task reading ``table`` of the node's data source ``source``."""
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


def published(session: Session, admin: Principal, name: str) -> Resource:
    """The demo catalog's entry of that name, published if the demo left it short."""
    found = session.scalar(select(Resource).where(Resource.name == name).order_by(Resource.id))
    assert found is not None, name
    ensure_published(session, admin, found, "演示基础库")
    return found


def feed_store(
    session: Session,
    admin: Principal,
    resource: Resource,
    task: ExchangeTask,
    mapping: dict[str, str],
    *,
    key_item: str = "sfzhm",
) -> SharedStore:
    """The hub's shared store of ``resource``, fed by ``task``."""
    return shared.create_store(
        session,
        admin,
        StoreCreate(
            resource_id=resource.id, source_task_id=task.id, key_item=key_item, mapping=mapping
        ),
    )


def add_entry(session: Session, admin: Principal, entry: Entry) -> Resource:
    """A published catalog entry the demo adds beside those ``demo.load_demo`` made."""
    short = {abbr: short for abbr, _, short in DEPARTMENTS}[entry.dept]
    dept = session.scalar(select(Department).where(Department.short_name == short))
    assert dept is not None, short
    resource = catalog.add_resource(
        session,
        admin,
        _resource_in(entry, entry.classification, dept.id, None),
        confirm_duplicates=True,
    )
    ensure_published(session, admin, resource, "演示基础库")
    return resource


def src(store: SharedStore, column: str) -> SourceRef:
    return SourceRef(store_id=store.id, column=column)


def setup(
    session: Session,
    admin: Principal,
    nodes: dict[str, ExchangeNode],
    population_store: SharedStore,
    base_dir: Path,
) -> None:
    """Create the sources' tables, their tasks and stores, and define the 人口库."""
    make_sources(base_dir)

    def fed(abbr: str, resource: Resource, name: str, source: str, table: str) -> ExchangeTask:
        return provider_task(
            session, admin, nodes[abbr], resource, name=name, source=source, table=table
        )

    death = published(session, admin, "居民死亡医学证明信息")
    register = published(session, admin, "死亡人口注销信息")
    insured = published(session, admin, "社会保险参保信息")
    births = published(session, admin, "出生医学证明信息")
    relief = published(session, admin, "最低生活保障对象信息")
    marriage = add_entry(
        session,
        admin,
        Entry(
            "mzj",
            "101003",
            MARRIAGE_NAME,
            "民政部门婚姻登记形成的居民当前婚姻状况，人口库婚姻状况的权威来源。",
            [
                *PERSON,
                it("婚姻状况", "hyzk", "C", 2, "GB/T 2261.2 婚姻状况代码"),
                it("登记日期", "djrq", "D"),
                it("登记机关", "djjg", "C", 100),
            ],
        ),
    )
    death_store = feed_store(
        session,
        admin,
        death,
        fed("wjw", death, "死亡医学证明发送", "business", "swzm"),
        {"swzbh": "swzbh", "gmsfhm": "sfzhm", "xm": "xm", "swrq": "swrq"},
    )
    register_store = feed_store(
        session,
        admin,
        register,
        fed("gaj", register, "死亡人口注销发送", "business", "swzx"),
        {"gmsfhm": "sfzhm", "xm": "xm", "swrq": "swrq"},
    )
    insured_store = feed_store(
        session,
        admin,
        insured,
        fed("rsj", insured, "社保参保信息发送", "social", "cbxx"),
        {"gmsfhm": "sfzhm", "xm": "xm", "cbzt": "cbzt"},
    )
    # Queried by certificate number; the base joins it by the newborn's ID number.
    birth_store = feed_store(
        session,
        admin,
        births,
        fed("wjw", births, "出生医学证明发送", "business", "csyxzm"),
        {
            "csyxzmh": "csyxzmh",
            "xsesfzhm": "xsesfzhm",
            "xsexm": "xsexm",
            "xb": "xb",
            "csrq": "csrq",
            "csdd": "csdd",
        },
        key_item="csyxzmh",
    )
    marriage_store = feed_store(
        session,
        admin,
        marriage,
        fed("mzj", marriage, "婚姻状况信息发送", "civil", "hyxx"),
        {"gmsfhm": "sfzhm", "xm": "xm", "hyzk": "hyzk", "djrq": "djrq", "djjg": "djjg"},
    )
    feed_store(
        session,
        admin,
        relief,
        fed("mzj", relief, "低保对象信息发送", "civil", "dbxx"),
        {"gmsfhm": "sfzhm", "xm": "xm", "bzlb": "bzlb", "bzje": "bzje", "rdrq": "rdrq"},
    )
    resource = add_entry(
        session,
        admin,
        Entry(
            "dsj",
            "101001",
            BASE_NAME,
            "由公安、卫健、人社、民政等部门的共享信息库归集的人口基础信息，"
            "每个信息项只有一个权威来源。",
            [
                it("公民身份号码", "sfzhm", "C", 18, "GB 11643 公民身份号码"),
                it("姓名", "xm", "C", 50),
                it("性别", "xb", "C", 1),
                it("出生日期", "csrq", "D"),
                it("户籍地址", "hjdz", "C", 200),
                it("死亡日期", "swrq", "D"),
                it("参保状态", "cbzt", "C", 2),
                it("婚姻状况", "hyzk", "C", 2, "GB/T 2261.2 婚姻状况代码"),
            ],
            sharing=SharingType.UNCONDITIONAL,
            modes=("api", "query"),
            sensitive=("hjdz",),
        ),
    )
    police = population_store
    basedata.create_base(
        session,
        admin,
        BaseCreate(
            resource_id=resource.id,
            key_item="sfzhm",
            items=[
                BaseItemIn(
                    item="xm", source=src(police, "xm"), evidence=[src(insured_store, "xm")]
                ),
                BaseItemIn(item="xb", source=src(police, "xb")),
                BaseItemIn(
                    item="csrq", source=src(police, "csrq"), evidence=[src(birth_store, "csrq")]
                ),
                BaseItemIn(item="hjdz", source=src(police, "hjdz")),
                BaseItemIn(
                    item="swrq",
                    source=src(death_store, "swrq"),
                    evidence=[src(register_store, "swrq")],
                ),
                BaseItemIn(item="cbzt", source=src(insured_store, "cbzt")),
                BaseItemIn(item="hyzk", source=src(marriage_store, "hyzk")),
            ],
            keys={str(birth_store.id): "xsesfzhm"},
        ),
    )
