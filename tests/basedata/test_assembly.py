"""Assembly of a base database over real shared-store tables (SQLite file and
PostgreSQL): each item from its one authoritative store, provenance and history kept,
evidence disagreements found after normalisation, records whose sources left removed."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import (
    Column,
    Date,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    delete,
    insert,
    select,
    text,
    update,
)

from govshare.basedata import assembly
from govshare.basedata.assembly import ItemPlan, Plan, SourcePlan
from govshare.sharing.store import SharedDatabase
from tests.pg import PostgresServer

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
T1 = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)
T2 = datetime(2026, 9, 1, 8, 0, tzinfo=UTC)

# 公安 户籍 (store 1): 姓名, 性别, 出生日期; 卫健 死亡 (store 2): 死亡日期;
# 民政 殡葬 (store 3): evidence for 死亡日期, and 性别 as 男/女 words.
PLAN = Plan(
    base_id=1,
    table_name="bd_1",
    key_item="sfzhm",
    items=(
        ItemPlan("xm", 1, "xm"),
        ItemPlan("xb", 1, "xb", evidence=((3, "xb"),), codes={"男": "1", "女": "2"}),
        ItemPlan("csrq", 1, "csrq", is_date=True),
        ItemPlan("swrq", 2, "swrq", evidence=((3, "hhrq"),), is_date=True),
    ),
    sources={
        1: SourcePlan(1, "ss_1", "sfzhm", department_id=10),
        2: SourcePlan(2, "ss_2", "gmsfhm", department_id=20),
        3: SourcePlan(3, "ss_3", "sfzhm", department_id=30),
    },
)


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SharedDatabase]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'shared.db'}"
    else:
        server: PostgresServer = request.getfixturevalue("postgres")
        url = server.create_database(f"bd_{abs(hash(request.node.nodeid)) % 10**10}")
    shared = SharedDatabase(url)
    md = MetaData()
    tables = {
        "ss_1": Table(
            "ss_1",
            md,
            Column("sfzhm", String(18), primary_key=True),
            Column("xm", Text),
            Column("xb", Text),
            Column("csrq", Text),
        ),
        "ss_2": Table(
            "ss_2", md, Column("gmsfhm", String(18), primary_key=True), Column("swrq", Text)
        ),
        "ss_3": Table(
            "ss_3",
            md,
            Column("sfzhm", String(18), primary_key=True),
            Column("xb", Text),
            Column("hhrq", Text),
        ),
    }
    md.create_all(shared.engine)
    with shared.engine.begin() as conn:
        conn.execute(
            insert(tables["ss_1"]),
            [
                {"sfzhm": "A1", "xm": "张三", "xb": "1", "csrq": "1950-02-01"},
                {"sfzhm": "A2", "xm": "李四", "xb": "2", "csrq": "1960-03-04"},
                {"sfzhm": "A3", "xm": "王五", "xb": "1", "csrq": "1970-05-06"},
            ],
        )
        conn.execute(insert(tables["ss_2"]), [{"gmsfhm": "A1", "swrq": "2025-12-01"}])
        conn.execute(
            insert(tables["ss_3"]),
            [
                # Same date written otherwise, 男 for 1: agrees after normalisation.
                {"sfzhm": "A1", "xb": "男", "hhrq": "２０２５年12月1日"},
                # Cremated, but 卫健 has no death: a disagreement for 卫健.
                {"sfzhm": "A2", "xb": "女", "hhrq": "2026-01-15"},
                # 性别 disagrees with 公安.
                {"sfzhm": "A3", "xb": "女", "hhrq": None},
            ],
        )
    yield shared
    shared.close()


def _tables(db: SharedDatabase) -> dict[str, Table]:
    return {name: db.table(name) for name in ("ss_1", "ss_2", "ss_3")}  # type: ignore[misc]


def _assemble(db: SharedDatabase, now: datetime, seq: int = 1) -> list[assembly.Outcome]:
    assembly.ensure_tables(db, PLAN)
    return [
        assembly.merge(db, PLAN, batch, lambda _s, _k: seq, now)
        for batch in assembly.all_keys(db, PLAN)
    ]


def _record(db: SharedDatabase, key: str, when: datetime | None = None) -> dict[str, Any]:
    found = assembly.record_as_of(db, PLAN, key, when)
    assert found is not None
    return {item: v["value"] for item, v in found.items()}


def test_each_item_comes_from_its_authoritative_store(db: SharedDatabase) -> None:
    (out,) = _assemble(db, T0)
    assert (out.inserted, out.updated, out.deleted) == (3, 0, 0)
    assert _record(db, "A1") == {
        "xm": "张三",
        "xb": "1",
        "csrq": "1950-02-01",
        "swrq": "2025-12-01",
    }
    # 民政's 2026-01-15 is evidence only: the base keeps 卫健's (absent) value.
    assert _record(db, "A2")["swrq"] is None
    assert assembly.record_as_of(db, PLAN, "A9", None) is None


def test_evidence_disagreements_after_normalisation(db: SharedDatabase) -> None:
    (out,) = _assemble(db, T0)
    found = {(d.key, d.item, d.value, d.evidence_value) for d in out.disagreements}
    assert found == {("A2", "swrq", None, "2026-01-15"), ("A3", "xb", "1", "女")}


def test_merging_again_changes_nothing(db: SharedDatabase) -> None:
    _assemble(db, T0)
    (again,) = _assemble(db, T1)
    assert (again.inserted, again.updated, again.deleted, again.history) == (0, 0, 0, 0)
    found = assembly.record_as_of(db, PLAN, "A1", None)
    assert found is not None
    assert found["xm"]["since"] == T0


def test_a_change_keeps_provenance_and_history_as_of_a_date(db: SharedDatabase) -> None:
    _assemble(db, T0, seq=1)
    with db.engine.begin() as conn:
        conn.execute(
            update(_tables(db)["ss_1"]).where(_tables(db)["ss_1"].c.sfzhm == "A1").values(xm="张叁")
        )
    (out,) = _assemble(db, T1, seq=7)
    assert (out.updated, out.history) == (1, 1)
    now = assembly.record_as_of(db, PLAN, "A1", None)
    assert now is not None
    assert (now["xm"]["value"], now["xm"]["seq"], now["xm"]["since"]) == ("张叁", 7, T1)
    assert (now["xb"]["seq"], now["xb"]["since"]) == (1, T0)  # untouched items keep theirs
    assert _record(db, "A1", datetime(2026, 5, 1, tzinfo=UTC))["xm"] == "张三"
    assert _record(db, "A1", T2)["xm"] == "张叁"
    # Before its first assembly the record was not in the base at all.
    assert assembly.record_as_of(db, PLAN, "A1", datetime(2026, 1, 1, tzinfo=UTC)) is None


def test_a_record_whose_sources_left_is_removed_with_its_history(db: SharedDatabase) -> None:
    _assemble(db, T0)
    with db.engine.begin() as conn:
        conn.execute(delete(_tables(db)["ss_1"]).where(_tables(db)["ss_1"].c.sfzhm == "A3"))
    outs = _assemble(db, T1)
    assert sum(o.deleted for o in outs) == 1
    assert assembly.record_as_of(db, PLAN, "A3", None) is None
    assert _record(db, "A3", datetime(2026, 4, 1, tzinfo=UTC))["xm"] == "王五"


def test_keys_only_in_a_later_store_are_added_and_batches_cover_every_key(
    db: SharedDatabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Small batches: keys from two stores interleave across batch edges, each merged once.
    monkeypatch.setattr(assembly, "BATCH", 2)
    with db.engine.begin() as conn:
        conn.execute(
            insert(_tables(db)["ss_2"]),
            [{"gmsfhm": f"B{i}", "swrq": "2026-01-01"} for i in range(5)],
        )
    outs = _assemble(db, T0)
    keys = [k for o in outs for k in o.keys]
    assert keys == sorted(keys)
    assert len(keys) == len(set(keys)) == 8
    assert sum(o.inserted for o in outs) == 8
    assert _record(db, "B3") == {"xm": None, "xb": None, "csrq": None, "swrq": "2026-01-01"}


def _versions(db: SharedDatabase) -> dict[str, int]:
    with db.engine.connect() as conn:
        rows = conn.execute(text(f"SELECT sfzhm, {assembly.VERSION} FROM bd_1")).all()
    return {str(k): int(v) for k, v in rows}


def test_each_write_raises_the_record_version_a_node_reads_changes_by(
    db: SharedDatabase,
) -> None:
    # A base made before record versions existed: its table gains the column (0).
    with db.engine.begin() as conn:
        conn.execute(text("CREATE TABLE bd_1 (sfzhm VARCHAR(200) PRIMARY KEY, xm TEXT)"))
        conn.execute(text("INSERT INTO bd_1 (sfzhm, xm) VALUES ('A1', '张三')"))
    db.forget("bd_1")
    _assemble(db, T0)
    first = _versions(db)
    assert first["A1"] >= 1
    assert first["A2"] == first["A3"] == first["A1"]
    _assemble(db, T1)
    assert _versions(db) == first  # nothing changed, nothing to read again
    with db.engine.begin() as conn:
        conn.execute(
            update(_tables(db)["ss_1"]).where(_tables(db)["ss_1"].c.sfzhm == "A2").values(xm="李肆")
        )
    _assemble(db, T2)
    after = _versions(db)
    assert after["A2"] > first["A2"]
    assert (after["A1"], after["A3"]) == (first["A1"], first["A3"])


def test_an_item_defined_later_gets_its_column(db: SharedDatabase) -> None:
    narrow = Plan(PLAN.base_id, PLAN.table_name, PLAN.key_item, PLAN.items[:2], PLAN.sources)
    assembly.ensure_tables(db, narrow)
    _assemble(db, T0)
    assert _record(db, "A1")["csrq"] == "1950-02-01"


def test_the_set_based_first_assembly_equals_merging_row_by_row(db: SharedDatabase) -> None:
    # A store keyed by its own row id, several rows per person, a typed DATE column:
    # the last row in key order wins and dates read the same either way.
    md = MetaData()
    insured = Table(
        "ss_5",
        md,
        Column("id", Integer, primary_key=True),
        Column("sfzhm", String(18)),
        Column("cbrq", Date),
    )
    md.create_all(db.engine)
    with db.engine.begin() as conn:
        conn.execute(
            insert(insured),
            [
                {"id": 1, "sfzhm": "A1", "cbrq": date(2020, 1, 1)},
                {"id": 2, "sfzhm": "A1", "cbrq": date(2021, 5, 5)},
                {"id": 3, "sfzhm": "A2", "cbrq": date(2019, 9, 9)},
                {"id": 4, "sfzhm": "C7", "cbrq": None},
            ],
        )
    db.forget("ss_5")
    wide = Plan(
        base_id=2,
        table_name="bd_2",
        key_item="sfzhm",
        items=(*PLAN.items, ItemPlan("cbrq", 5, "cbrq", is_date=True)),
        sources={**PLAN.sources, 5: SourcePlan(5, "ss_5", "sfzhm", department_id=50)},
    )
    row_by_row = Plan(3, "bd_3", wide.key_item, wide.items, wide.sources)
    seqs = {1: 4, 2: 5, 3: 6, 5: 9}
    assembly.ensure_tables(db, wide)
    assert assembly.is_empty(db, wide)
    written = assembly.assemble_empty(db, wide, seqs, T0)
    found = {d for part in assembly.disagreements(db, wide, seqs) for d in part}
    assembly.ensure_tables(db, row_by_row)
    expected: set[assembly.Disagreement] = set()
    for batch in assembly.all_keys(db, row_by_row):
        out = assembly.merge(db, row_by_row, batch, lambda s, _k: seqs[s], T0)
        expected |= set(out.disagreements)
    assert written == 4
    assert found == expected
    assert {d.key for d in found} == {"A2", "A3"}
    with db.engine.connect() as conn:
        fast = conn.execute(text("SELECT * FROM bd_2 ORDER BY sfzhm")).all()
        slow = conn.execute(text("SELECT * FROM bd_3 ORDER BY sfzhm")).all()
    assert fast == slow
    assert _record_of(db, wide, "A1")["cbrq"] == "2021-05-05"
    assert _record_of(db, wide, "C7") == {
        "xm": None,
        "xb": None,
        "csrq": None,
        "swrq": None,
        "cbrq": None,
    }
    # Merged again row by row, the set-based result changes nothing.
    again = assembly.merge(db, wide, ["A1", "A2", "A3", "C7"], lambda s, _k: seqs[s], T1)
    assert (again.inserted, again.updated, again.deleted) == (0, 0, 0)


def _record_of(db: SharedDatabase, plan: Plan, key: str) -> dict[str, Any]:
    found = assembly.record_as_of(db, plan, key, None)
    assert found is not None
    return {item: v["value"] for item, v in found.items()}


@pytest.mark.parametrize(
    ("written", "same_day"),
    [
        ("2025-12-01", True),
        ("２０２５年12月1日", True),
        ("2025/12/1 08:31", True),
        ("2025-12-01T23:59:59", True),
        ("2025-12-02 00:00", False),
        ("2025-12-01 25:00", False),  # no such time: compared as written, so it differs
    ],
)
def test_a_date_item_compares_the_day_of_a_value_written_with_a_time(
    written: str, same_day: bool
) -> None:
    swrq = PLAN.items[3]
    assert (assembly.comparable(swrq, written) == assembly.comparable(swrq, "2025-12-01")) is (
        same_day
    )


@pytest.mark.parametrize(
    "codes",
    [
        {"男": "1", "女": "2"},
        # Not in normal form, and a code that is itself a name: the database cannot map
        # these, Python sorts every pair out as before.
        {"男 ": "1", "女": "2", "1": "男"},
    ],
)
def test_disagreements_over_a_code_table_are_those_python_normalisation_finds(
    db: SharedDatabase, codes: dict[str, str]
) -> None:
    # The first assembly's search maps code names in the database (男 → 1) so a store
    # keeping names sends only its real disagreements; blanks and full-width forms are
    # still Python's to normalise.
    with db.engine.begin() as conn:
        conn.execute(text("UPDATE ss_3 SET xb = '　男 ' WHERE sfzhm = 'A1'"))
    plan = Plan(
        base_id=4,
        table_name="bd_4",
        key_item="sfzhm",
        items=(ItemPlan("xb", 1, "xb", evidence=((3, "xb"),), codes=codes),),
        sources=PLAN.sources,
    )
    seqs = {1: 1, 3: 1}
    assembly.ensure_tables(db, plan)
    assembly.assemble_empty(db, plan, seqs, T0)
    found = {
        (d.key, d.value, d.evidence_value)
        for part in assembly.disagreements(db, plan, seqs)
        for d in part
    }
    row_by_row = {
        (d.key, d.value, d.evidence_value)
        for batch in assembly.all_keys(db, plan)
        for d in assembly.merge(db, plan, batch, lambda _s, _k: 1, T0).disagreements
    }
    assert found == row_by_row
    assert found == {("A3", "1", "女")}


def test_provenance_times_are_integers_on_sqlite_and_text_from_before_still_reads(
    tmp_path: Path,
) -> None:
    # A record has a provenance time per item: SQLite keeps them as microseconds since
    # 1970 (8 bytes, not 26 of ISO text). A base assembled by an earlier version holds
    # them as text in a DATETIME column: read as before, converted by the next assembly,
    # so a reader that reflects the table finds integers only.
    shared = SharedDatabase(f"sqlite:///{tmp_path / 'shared.db'}")
    with shared.engine.begin() as conn:
        conn.execute(text("CREATE TABLE ss_1 (sfzhm VARCHAR(18) PRIMARY KEY, xm TEXT)"))
        conn.execute(text("INSERT INTO ss_1 VALUES ('A1', '张三'), ('A2', '李四')"))
        conn.execute(
            text(
                "CREATE TABLE bd_9 (sfzhm VARCHAR(200) PRIMARY KEY, xm TEXT, xm__seq BIGINT,"
                " xm__at DATETIME, __rev BIGINT NOT NULL DEFAULT 0)"
            )
        )
        conn.execute(
            text("INSERT INTO bd_9 VALUES ('A1', '张三', 3, '2026-03-01 08:00:00.000000', 1)")
        )
    plan = Plan(
        base_id=9,
        table_name="bd_9",
        key_item="sfzhm",
        items=(ItemPlan("xm", 1, "xm"),),
        sources={1: SourcePlan(1, "ss_1", "sfzhm", department_id=10)},
    )
    before = assembly.record_as_of(shared, plan, "A1", None)
    assert before is not None
    assert before["xm"]["since"] == T0
    assembly.ensure_tables(shared, plan)
    out = assembly.merge(shared, plan, ["A1", "A2"], lambda _s, _k: 4, T1)
    assert (out.inserted, out.updated) == (1, 0)
    old = assembly.record_as_of(shared, plan, "A1", None)
    new = assembly.record_as_of(shared, plan, "A2", None)
    assert old is not None
    assert new is not None
    assert (old["xm"]["since"], old["xm"]["seq"]) == (T0, 3)
    assert (new["xm"]["since"], new["xm"]["seq"]) == (T1, 4)
    with shared.engine.connect() as conn:
        kinds = dict(conn.execute(text("SELECT sfzhm, typeof(xm__at) FROM bd_9")).all())
    assert kinds == {"A1": "integer", "A2": "integer"}
    reflected = shared.table("bd_9")
    assert reflected is not None
    with shared.engine.connect() as conn:
        q = select(reflected.c.xm__at).order_by(reflected.c.sfzhm)
        assert conn.execute(q).scalars().all() == [1772352000000000, 1780300800000000]
    shared.close()
