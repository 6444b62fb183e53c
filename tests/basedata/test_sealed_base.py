"""字段加密 in a base database (基础库), on SQLite and PostgreSQL: a base keeps the items
its catalog marks sensitive (the ID number it is keyed by, the name) sealed, whether its
sources keep them sealed too, keep them in the clear (a store set up with sealing off),
or some of each. Its records, opened, are those a base of the same sources in the clear
holds; its table and history hold no ID number and no name; sources keyed in different
forms still merge by key; the conflicts (多元校核) and the record lookup are in the clear.

The first part assembles over shared-store tables written here; the second runs the
whole hub: stores fed by real nodes, the base defined through the API and assembled by
the hub's runner, served by the data services."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Column, MetaData, String, Table, Text, create_engine, insert, text, update

from govshare.basedata import assembly
from govshare.basedata.assembly import ItemPlan, Plan, SourcePlan
from govshare.security.fieldseal import FieldSealer, generation_of, rotate
from govshare.sharing.models import SharedStore
from govshare.sharing.shared_db import field_sealer
from govshare.sharing.store import SharedDatabase
from tests.basedata.test_flow import (
    KEY_ITEM,
    NAME_ITEM,
    Side,
    _get,
    _open_conflicts,
    _side,
    _source,
    _wait,
)
from tests.basedata.test_flow import ROWS as ROWS_LIVE
from tests.factories import Dept, World
from tests.live import LiveHub
from tests.pg import PostgresServer
from tests.sharing.builders import application_payload
from tests.sharing.test_data import _client

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
T1 = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)
SECRET = "a-test-secret-key-of-some-length-0123456789"


def _id(i: int) -> str:
    return f"37020219500101{i:04d}"


# 公安 户籍 (store 1): 姓名, 性别; 卫健 死亡 (store 2, keyed by gmsfhm): 死亡日期;
# 民政 (store 3): evidence for 姓名 and 死亡日期.
ROWS: dict[int, tuple[str, list[dict[str, Any]]]] = {
    1: (
        "sfzhm",
        [
            {"sfzhm": _id(1), "xm": "张三", "xb": "1"},
            {"sfzhm": _id(2), "xm": "李四", "xb": "2"},
            {"sfzhm": _id(3), "xm": "王五", "xb": "1"},
        ],
    ),
    2: (
        "gmsfhm",
        [
            {"gmsfhm": _id(1), "swrq": "2025-12-01"},
            # Only 卫健 knows these persons: keys from one store alone.
            *[{"gmsfhm": _id(100 + i), "swrq": "2026-01-01"} for i in range(5)],
        ],
    ),
    3: (
        "sfzhm",
        [
            # The same name padded with full-width blanks: agrees once normalised.
            {"sfzhm": _id(1), "xm": "\u3000张三 ", "hhrq": "２０２５年12月1日"},
            {"sfzhm": _id(2), "xm": "李思", "hhrq": "2026-01-15"},  # two disagreements
            {"sfzhm": _id(3), "xm": "王五", "hhrq": None},
        ],
    ),
}
SENSITIVE = {"sfzhm", "gmsfhm", "xm"}
ITEMS = (
    ItemPlan("xm", 1, "xm", evidence=((3, "xm"),)),
    ItemPlan("xb", 1, "xb"),
    ItemPlan("swrq", 2, "swrq", evidence=((3, "hhrq"),), is_date=True),
)


def _plan(
    base_id: int,
    prefix: str,
    sealed_stores: set[int],
    base_sealed: bool,
    keys: tuple[dict[int, int], int] = ({}, 1),
) -> Plan:
    """The base ``bd_<base_id>`` over the stores ``<prefix>_1..3``; ``sealed_stores`` keep
    their sensitive columns sealed, the base its sensitive items if ``base_sealed``;
    ``keys``: the field-key generation of each store (1 when not given) and the base's."""
    store_keys, base_key = keys
    sources = {
        sid: SourcePlan(
            sid,
            f"{prefix}_{sid}",
            key,
            department_id=10 * sid,
            sealed=frozenset(SENSITIVE & set(rows[0])) if sid in sealed_stores else frozenset(),
            seal_key=store_keys.get(sid, 1),
        )
        for sid, (key, rows) in ROWS.items()
    }
    sealed = frozenset({"sfzhm", "xm"}) if base_sealed else frozenset()
    return Plan(base_id, f"bd_{base_id}", "sfzhm", ITEMS, sources, sealed, base_key)


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SharedDatabase]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'shared.db'}"
    else:
        server: PostgresServer = request.getfixturevalue("postgres")
        url = server.create_database(f"sb_{abs(hash(request.node.nodeid)) % 10**10}")
    shared = SharedDatabase(url, FieldSealer(tmp_path / "data", SECRET))
    yield shared
    shared.close()


def _write_stores(db: SharedDatabase, plan: Plan) -> None:
    """The plan's stores, their sealed columns sealed as a feed seals them."""
    md = MetaData()
    for sid, src in plan.sources.items():
        key, rows = ROWS[sid]
        table = Table(
            src.table_name,
            md,
            Column(key, String(200), primary_key=True),
            *[Column(c, Text) for c in rows[0] if c != key],
        )
        table.create(db.engine)
        sealer = db.sealer.under(src.seal_key)
        sealed = [
            {c: sealer.seal(v) if c in src.sealed and v is not None else v for c, v in r.items()}
            for r in rows
        ]
        with db.engine.begin() as conn:
            conn.execute(insert(table), sealed)


def _assemble(db: SharedDatabase, plan: Plan, now: datetime) -> list[assembly.Outcome]:
    assembly.ensure_tables(db, plan)
    return [
        assembly.merge(db, plan, batch, lambda _s, _k: 1, now)
        for batch in assembly.all_keys(db, plan)
    ]


KEYS = [_id(i) for i in (1, 2, 3, 100, 101, 102, 103, 104)]


def _records(db: SharedDatabase, plan: Plan, when: datetime | None = None) -> dict[str, Any]:
    out = {}
    for key in KEYS:
        found = assembly.record_as_of(db, plan, key, when)
        out[key] = None if found is None else {i: v["value"] for i, v in found.items()}
    return out


def _found(outs: list[assembly.Outcome]) -> set[tuple[str, str, str | None, str]]:
    return {(d.key, d.item, d.value, d.evidence_value) for o in outs for d in o.disagreements}


def _raw(db: SharedDatabase, sql: str) -> list[tuple[Any, ...]]:
    """Rows as anyone with a copy of the shared-store database sees them."""
    with db.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(sql))]


def _holds_no_clear_value(db: SharedDatabase, table: str) -> None:
    rows = _raw(db, f"SELECT sfzhm, xm FROM {table}")
    assert len(rows) == len(KEYS)
    for key, name in rows:
        assert key.startswith("~")
        assert "370202" not in key
        assert name is None or name.startswith("~")
    names = " ".join(str(n) for (n,) in _raw(db, f"SELECT xm FROM {table}"))
    assert not any(n in names for n in ("张三", "李四", "王五"))


LAYOUTS: dict[str, tuple[Any, ...]] = {
    # Every store seals its ID numbers and names, as the base does.
    "sealed": ({1, 2, 3}, True),
    # 卫健's store was set up with sealing off: its keys are in the clear.
    "mixed": ({1, 3}, True),
    # 公安's store in the clear, the others sealed: the key stream in the base's form
    # is another store's.
    "mixed-authority": ({2, 3}, True),
    # A base set up before sealing, over sealed stores.
    "clear base": ({1, 2, 3}, False),
    # The field key rotated: 公安 and 民政 resealed under the new key, 卫健 not yet, the
    # base still under the first.
    "rotated stores": ({1, 2, 3}, True, ({1: 2, 3: 2}, 1)),
    # A base set up after the rotation, over stores not resealed.
    "rotated base": ({1, 2, 3}, True, ({}, 2)),
}


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_a_sealed_base_holds_the_records_of_one_in_the_clear(
    db: SharedDatabase, layout: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Small batches: keys of several stores cross batch edges.
    monkeypatch.setattr(assembly, "BATCH", 2)
    clear = _plan(1, "p", set(), base_sealed=False)
    stores, base_sealed, *keys = LAYOUTS[layout]
    if keys:
        assert db.sealer.newest() == 1  # the first key, made on first use
        assert rotate(db.sealer.data_dir, SECRET, "sm4") == 2
    sealed = _plan(2, "s", stores, base_sealed, *keys)
    _write_stores(db, clear)
    _write_stores(db, sealed)
    expected = _assemble(db, clear, T0)
    outs = _assemble(db, sealed, T0)
    assert sum(o.inserted for o in outs) == len(KEYS)  # each person once
    assert _records(db, sealed) == _records(db, clear)
    assert _records(db, sealed)[_id(1)] == {"xm": "张三", "xb": "1", "swrq": "2025-12-01"}
    # The conflicts name the person and both values in the clear.
    assert (
        _found(outs)
        == _found(expected)
        == {
            (_id(2), "xm", "李四", "李思"),
            (_id(2), "swrq", None, "2026-01-15"),
        }
    )
    assert sorted(k for o in outs for k in o.keys) == sorted(KEYS)
    if base_sealed:
        _holds_no_clear_value(db, "bd_2")
        base_key = sealed.seal_key
        cells = [k for k, _ in _raw(db, "SELECT sfzhm, xm FROM bd_2")]
        assert {generation_of(c) for c in cells} == {base_key}
    else:
        assert (_id(1), "张三") in _raw(db, "SELECT sfzhm, xm FROM bd_2")
    # Merged again, nothing changes.
    again = _assemble(db, sealed, T1)
    assert sum(o.inserted + o.updated + o.deleted for o in again) == 0


@pytest.mark.parametrize("layout", ["sealed", "mixed"])
def test_a_change_keeps_its_history_sealed_and_reads_as_of_a_date(
    db: SharedDatabase, layout: str
) -> None:
    stores, *_ = LAYOUTS[layout]
    plan = _plan(2, "s", stores, base_sealed=True)
    _write_stores(db, plan)
    _assemble(db, plan, T0)
    police = db.table("s_1")
    assert police is not None
    name = db.sealer.seal("张叁") if "xm" in plan.sources[1].sealed else "张叁"
    key = db.sealer.seal(_id(1)) if plan.sources[1].key_sealed else _id(1)
    with db.engine.begin() as conn:
        conn.execute(update(police).where(police.c.sfzhm == key).values(xm=name))
    (changed,) = [o for o in _assemble(db, plan, T1) if o.updated]
    assert (changed.updated, changed.history) == (1, 1)
    assert _id(1) in changed.keys  # named in the clear, as the conflicts keep them
    now = assembly.record_as_of(db, plan, _id(1), None)
    assert now is not None
    assert (now["xm"]["value"], now["xm"]["since"]) == ("张叁", T1)
    before = assembly.record_as_of(db, plan, _id(1), datetime(2026, 5, 1, tzinfo=UTC))
    assert before is not None
    assert before["xm"]["value"] == "张三"
    [(record_key, value)] = _raw(db, "SELECT record_key, value FROM bd_2_hist")
    assert record_key == db.sealer.seal(_id(1))
    assert db.sealer.open(value) == "张三"


def test_the_set_based_first_assembly_copies_sealed_cells_as_merging_does(
    db: SharedDatabase,
) -> None:
    # Stores sealing as the base does: the database copies and compares their cells.
    fast = _plan(2, "s", {1, 2, 3}, base_sealed=True)
    slow = replace(fast, base_id=3, table_name="bd_3")
    assert fast.cells_alike
    assert not _plan(4, "s", {1, 3}, base_sealed=True).cells_alike
    _write_stores(db, fast)
    assembly.ensure_tables(db, fast)
    assert assembly.assemble_empty(db, fast, {1: 1, 2: 1, 3: 1}, T0) == len(KEYS)
    found = {
        (d.key, d.item, d.value, d.evidence_value)
        for part in assembly.disagreements(db, fast, {1: 1, 2: 1, 3: 1})
        for d in part
    }
    merged = _assemble(db, slow, T0)
    assert found == _found(merged)
    assert _records(db, fast) == _records(db, slow)
    _holds_no_clear_value(db, "bd_2")
    with db.engine.connect() as conn:
        cells = conn.execute(text("SELECT sfzhm, xm, xb, swrq FROM bd_2 ORDER BY sfzhm")).all()
        same = conn.execute(text("SELECT sfzhm, xm, xb, swrq FROM bd_3 ORDER BY sfzhm")).all()
    assert cells == same


# -- the whole hub ---------------------------------------------------------------------------

EXTRA = 4  # persons only 民政 knows (ids ROWS_LIVE + 1 …): no name from 公安
ONLY_CIVIL = tuple(range(ROWS_LIVE + 1, ROWS_LIVE + EXTRA + 1))
RENAMED = (3, 8, 21)  # 公安 names these persons otherwise than 民政
SEX = {"name": "性别", "code": "xb", "data_type": "C", "length": 1, "code_table": "GB/T 2261.1"}


@dataclass
class Live:
    world: World
    police: Side  # 公安: its store in the clear (nothing marked sensitive); authority for 姓名
    civil: Side  # 民政: ID number and name sealed; evidence for 姓名, authority for 性别
    owner: Dept
    base: dict[str, Any]
    code: str

    def raw(self, sql: str) -> list[tuple[Any, ...]]:
        """Rows as anyone with a copy of the shared-store database sees them."""
        engine = create_engine(self.world.hub.settings.resolved_shared_store_url)
        try:
            with engine.connect() as conn:
                return [tuple(r) for r in conn.execute(text(sql))]
        finally:
            engine.dispose()

    def record(self, key: str) -> dict[str, Any]:
        found = _get(
            self.world, self.world.admin, f"/api/v1/base-databases/{self.base['id']}/records/{key}"
        )
        return {item: v["value"] for item, v in found["items"].items()}


def _person(i: int) -> str:
    return f"37020219900101{i:04d}"[-18:]


@dataclass
class Defined:
    """公安 (its store in the clear, authority for 姓名) and 民政 (ID number and name
    sealed, evidence for 姓名 and authority for 性别) feeding a base whose catalog entry
    marks 公民身份号码 and 姓名 sensitive."""

    police: Side
    civil: Side
    owner: Dept
    resource: dict[str, Any]
    base: dict[str, Any]


def define_sealed_base(
    world: World, tmp: Path, renamed: tuple[int, ...], only_civil: tuple[int, ...] = ()
) -> Defined:
    """The base over fresh stores; 公安 names the ``renamed`` persons otherwise than 民政
    (conflicts), and ``only_civil`` persons are known to 民政 alone."""
    police = _side(world, tmp, "公安", "户籍人口信息")
    civil = _side(world, tmp, "民政", "婚姻登记人员信息", sensitive=("sfzhm", "xm"))
    for i in renamed:
        _source(police, "UPDATE person SET xm = '户籍名' || id, version = :v WHERE id = :i", i=i)
    for i in only_civil:
        _source(
            civil,
            "INSERT INTO person VALUES (:i, :k, :n, '2', :v)",
            i=i,
            k=_person(i),
            n=f"姓名{i}",
        )
    owner = world.department("大数据局")
    resource = world.published(
        owner,
        name="人口基础信息",
        classification_code="101001",
        items=[{**KEY_ITEM, "sensitive": True}, {**NAME_ITEM, "sensitive": True}, SEX],
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
                    {
                        "item": "xm",
                        "source": {"store_id": police.store_id, "column": "xm"},
                        "evidence": [{"store_id": civil.store_id, "column": "xm"}],
                    },
                    {"item": "xb", "source": {"store_id": civil.store_id, "column": "xb"}},
                ],
            },
        )
        assert r.status_code == 201, r.text
    return Defined(police, civil, owner, resource, r.json())


@pytest.fixture(scope="module")
def live(hub: LiveHub, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    world = World(hub)
    defined = define_sealed_base(world, tmp_path_factory.mktemp("sealed-base"), RENAMED, ONLY_CIVIL)
    police, civil, base = defined.police, defined.civil, defined.base

    def done() -> bool:
        b = _get(world, world.admin, f"/api/v1/base-databases/{base['id']}")
        return bool(
            b["row_count"] == ROWS_LIVE + EXTRA and b["conflicts"]["open"] == len(RENAMED) + EXTRA
        )

    _wait(world, [police, civil], done)
    yield Live(world, police, civil, defined.owner, base, defined.resource["code"])
    police.node.close()
    civil.node.close()


def test_the_base_keeps_its_sensitive_items_sealed_over_mixed_sources(live: Live) -> None:
    with live.world.hub.db() as s:
        served = s.get(SharedStore, live.base["store_id"])
        civil = s.get(SharedStore, live.civil.store_id)
        police = s.get(SharedStore, live.police.store_id)
        assert served is not None
        assert civil is not None
        assert police is not None
        assert served.sealed_items == {"sfzhm": "string", "xm": "string"}
        assert set(civil.sealed_items or {}) == {"sfzhm", "xm"}
        assert not police.sealed_items
    rows = live.raw(f"SELECT sfzhm, xm, xb FROM {live.base['table_name']}")
    # One record a person: 公安's keys in the clear and 民政's sealed met as one.
    assert len(rows) == len({k for k, _, _ in rows}) == ROWS_LIVE + EXTRA
    for key, name, sex in rows:
        assert key.startswith("~")
        assert "370202" not in key
        assert name is None or (name.startswith("~") and "名" not in name)
        assert sex in ("1", "2")
    assert live.record(_person(5)) == {"xm": "姓名5", "xb": "1"}
    assert live.record(_person(ROWS_LIVE + 1)) == {"xm": None, "xb": "2"}


def test_the_conflicts_name_the_person_and_values_in_the_clear(live: Live) -> None:
    mine = _open_conflicts(live.world, live.police.dept.resource_admin, live.base["id"])
    found = sorted((c["record_key"], c["value"], c["evidence_value"]) for c in mine)
    assert found == [(_person(i), f"户籍名{i}", f"姓名{i}") for i in RENAMED] + [
        (_person(i), None, f"姓名{i}") for i in ONLY_CIVIL
    ]
    # The evidence store scores its agreement with the sealed base: its rows' sealed
    # cells against the base's, both opened.
    with live.world.api(live.civil.dept.resource_admin) as c:
        r = c.post(f"/api/v1/quality/resources/{live.civil.resource['id']}/scans")
        assert r.status_code == 201, r.text
        scan = r.json()
        problems = c.get(
            f"/api/v1/quality/scans/{scan['id']}/problems", params={"dimension": "consistency"}
        ).json()["items"]
    assert (scan["consistency_checked"], scan["consistency_failed"]) == (
        ROWS_LIVE + EXTRA,
        len(RENAMED) + EXTRA,
    )
    # (The problems show the ID numbers masked.)
    assert sorted(p["row_key"][-4:] for p in problems) == [
        _person(i)[-4:] for i in RENAMED + ONLY_CIVIL
    ]
    # Nor does a message name the base's sealed value (户籍名…): the scan masks a
    # finding's own value, the check leaves the authority's out.
    assert problems
    for p in problems:
        assert "户籍名" not in p["message"]
        assert "姓名" not in p["message"]
        assert "与" in p["message"]
        assert "不一致" in p["message"]


def test_the_base_is_served_in_the_clear(live: Live) -> None:
    consumer = live.world.department("人社")
    with live.world.api(consumer.resource_admin) as c:
        r = c.post(
            "/api/v1/sharing/applications",
            json=application_payload(
                live.base["resource_id"], items=["sfzhm", "xm", "xb"], row_filter=None
            ),
        )
        assert r.status_code == 201, r.text
        assert r.json()["status"] == "approved"  # 无条件共享
    client = _client(live.world, consumer)
    r = client.post(f"/{live.code}/lookup", {"keys": [_person(7), _person(ROWS_LIVE + 2)]})
    assert r.status_code == 200, r.text
    # Opened, then masked as sensitive items are by default: masks of the values.
    assert sorted(r.json()["records"], key=lambda rec: rec["sfzhm"]) == [
        {"sfzhm": "370202********0007", "xm": "姓**", "xb": "1"},
        {"sfzhm": f"370202********{ROWS_LIVE + 2:04d}", "xm": None, "xb": "2"},
    ]


def test_changes_from_either_store_reach_the_sealed_records(live: Live) -> None:
    # Merged by the keys the packages touched, given in the clear and sealed for the base.
    # Person 11 is renamed in both stores (no conflict stays), 13 changes sex at 民政.
    _source(live.police, "UPDATE person SET xm = '改名者', version = :v WHERE id = 11")
    _source(
        live.civil,
        "UPDATE person SET xm = CASE id WHEN 11 THEN '改名者' ELSE xm END,"
        " xb = CASE id WHEN 13 THEN '2' ELSE xb END, version = :v WHERE id IN (11, 13)",
    )
    base_id = live.base["id"]

    def arrived() -> bool:
        return (
            live.record(_person(11))["xm"] == "改名者"
            and live.record(_person(13))["xb"] == "2"
            and len(_open_conflicts(live.world, live.world.admin, base_id)) == len(RENAMED) + EXTRA
        )

    _wait(live.world, [live.police, live.civil], arrived)
    assert live.record(_person(13))["xm"] == "姓名13"
    history = live.raw(f"SELECT record_key, item, value FROM {live.base['table_name']}_hist")
    assert {item for _, item, _ in history} == {"xm", "xb"}
    for key, item, value in history:
        assert key.startswith("~")
        assert value.startswith("~") if item == "xm" else value == "1"
    rows = live.raw(f"SELECT xm FROM {live.base['table_name']}")
    assert not any(n is not None and "改名" in n for (n,) in rows)


def test_the_conflicts_keep_the_person_and_values_sealed_in_the_hub_database(live: Live) -> None:
    """The base seals 公民身份号码 and 姓名: its conflicts on 姓名 keep both sealed too,
    so the hub database names no person; the API (above) gives them in the clear."""
    with live.world.hub.db() as s:
        rows = s.execute(
            text(
                "SELECT record_key, value, evidence_value, key_sealed, values_sealed, seal_key"
                " FROM base_conflict WHERE base_id = :b"
            ),
            {"b": live.base["id"]},
        ).all()
    assert len(rows) == len(RENAMED) + EXTRA
    sealer = field_sealer(live.world.hub.settings)
    for key, value, evidence, key_sealed, values_sealed, seal_key in rows:
        assert (bool(key_sealed), bool(values_sealed)) == (True, True)
        assert key.startswith("~")
        assert "370202" not in key
        assert generation_of(key) == (seal_key or 1)
        assert value is None or value.startswith("~")
        assert evidence.startswith("~")
        assert "名" not in f"{value}{evidence}"
    opened = sorted(sealer.open(k) for k, *_ in rows)
    assert opened == sorted(_person(i) for i in RENAMED + ONLY_CIVIL)
