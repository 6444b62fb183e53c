"""重新加密, on SQLite and PostgreSQL: items the catalog marks sensitive after a shared
store was set up are sealed in it, and items no longer sensitive are opened, by copying
the store to a new table while it keeps serving; the store answers callers the same
before and after, goes on taking the provider's changes into the new table, and a
feeder still writing to the old table writes nothing. Interrupted, it is run again."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from sqlalchemy import MetaData, inspect, select, update

from govshare.catalog.models import InformationItem
from govshare.exchange.package import OP_COLUMN
from govshare.rules.clock import fixed_today
from govshare.security.audit import Actor
from govshare.security.fieldseal import FieldSealer
from govshare.security.models import AuditEntry
from govshare.sharing.models import SharedStore
from govshare.sharing.reseal import (
    Pending,
    Sealing,
    StoreCopy,
    next_table_name,
    pending,
    reseal,
)
from govshare.sharing.store import (
    SharedDatabase,
    StoreRetired,
    Writers,
    make_table,
    retired_tables,
)
from tests.clirun import hub_cli
from tests.exchange.scenario import PERSON_ITEMS, Scene, Source, make_scene
from tests.factories import World
from tests.live import LiveHub
from tests.sharing.test_data import Client, _client, _grant, _store_caught_up, sfzhm

ROWS = 240
DAY = date(2026, 9, 30)
OPERATOR = Actor(name="reseal-test", kind="system")


@pytest.fixture(autouse=True)
def _on_a_fixed_day() -> Iterator[None]:
    with fixed_today(DAY):
        yield


@dataclass
class Resealing:
    scene: Scene
    code: str
    store_id: int
    client: Client
    db: SharedDatabase

    @property
    def hub(self) -> LiveHub:
        return self.scene.world.hub

    def raw(self, sql: str, **params: Any) -> list[tuple[Any, ...]]:
        """Rows as anyone with a copy of the shared-store database would see them."""
        return self.hub.shared_rows(sql, **params)

    def tables(self) -> set[str]:
        return self.hub.shared_tables()

    def store(self) -> SharedStore:
        with self.hub.db() as s:
            found = s.get(SharedStore, self.store_id)
            assert found is not None
            _ = found.resource.items
            s.expunge_all()
            return found

    def mark_sensitive(self, *codes: str) -> None:
        """The catalog's 敏感 marks on the resource's items, as a 变更 would leave them."""
        rid = self.scene.resource["id"]
        with self.hub.db() as s:
            s.execute(
                update(InformationItem)
                .where(InformationItem.resource_id == rid)
                .values(sensitive=InformationItem.code.in_(codes))
            )

    def listed(self) -> tuple[list[str], list[str], str]:
        """What the store list says is left to reseal: the API's items to seal and to
        open, and the console's warning in the store's row."""
        world = self.scene.world
        with world.api(world.admin) as c:
            found = next(
                s for s in c.get("/api/v1/sharing/stores").json() if s["id"] == self.store_id
            )
            page = c.get("/sharing/stores").text
        row = re.search(rf'<tr id="store-{self.store_id}">(.*?)</tr>', page, re.S)
        assert row is not None
        warning = re.search(r'<span class="tag tag-warn"[^>]*>([^<]+)</span>', row.group(1))
        return found["items_to_seal"], found["items_to_open"], warning.group(1) if warning else ""

    def resealed(self, *codes: str) -> None:
        """The store resealed after the catalog marked ``codes`` sensitive."""
        self.mark_sensitive(*codes)
        assert self.reseal(grace=0) is not None

    def reseal(self, **kw: Any) -> Any:
        return reseal(
            self.hub.session_factory, self.db, self.hub.settings, self.store_id, OPERATOR, **kw
        )

    def lookup(self, *numbers: int) -> list[dict[str, Any]]:
        r = self.client.post(f"/{self.code}/lookup", {"keys": [sfzhm(n) for n in numbers]})
        assert r.status_code == 200, r.text
        return sorted(r.json()["records"], key=lambda rec: rec["sfzhm"])


@pytest.fixture
def resealing(hub: LiveHub, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Resealing]:
    world = World(hub)
    items = [{**it, "sensitive": False} for it in PERSON_ITEMS]
    scene = make_scene(world, tmp_path_factory.mktemp("reseal"), rows=ROWS, items=items)
    scene.create_tasks()
    scene.node("provider")
    with world.api(scene.provider.resource_admin) as c:
        r = c.post(
            "/api/v1/sharing/stores",
            json={
                "resource_id": scene.resource["id"],
                "source_task_id": scene.provider_task["id"],
                "key_item": "sfzhm",
                "mapping": {"id": "id", "sfzhm": "sfzhm", "xm": "xm", "xb": "xb"},
            },
        )
        assert r.status_code == 201, r.text
        store_id = int(r.json()["id"])
    scene.run_until(lambda: _store_caught_up(scene), nodes=["provider"])
    _grant(
        world,
        scene.provider,
        scene.consumer,
        scene.resource["id"],
        items=["sfzhm", "xm", "xb"],
        row_filter=[{"item": "xb", "op": "in", "value": ["1", "2"]}],
        masking={"xm": "none", "sfzhm": "none"},
    )
    db = SharedDatabase.of(hub.settings)
    yield Resealing(scene, scene.resource["code"], store_id, _client(world, scene.consumer), db)
    db.close()
    scene.close()


def test_a_store_matching_the_catalog_has_nothing_to_reseal(resealing: Resealing) -> None:
    store = resealing.store()
    assert not store.sealed_items
    assert pending(store, resealing.hub.settings) == Pending([], [])
    assert resealing.reseal(grace=0) is None


def test_items_marked_sensitive_later_are_sealed_while_the_store_serves(
    resealing: Resealing,
) -> None:
    before = resealing.lookup(5, 6, 200)
    old = resealing.store().table_name
    old_key = resealing.store().seal_key or 1
    assert [n for (n,) in resealing.raw(f"SELECT xm FROM {old} WHERE id = 5")] == ["姓名5"]
    resealing.mark_sensitive("sfzhm", "xm")
    assert pending(resealing.store(), resealing.hub.settings) == Pending(["sfzhm", "xm"], [])
    assert resealing.listed() == (["sfzhm", "xm"], [], "待重新加密: 加密 公民身份号码 姓名")
    answers_during: list[list[dict[str, Any]]] = []

    def progress(done: int, total: int) -> None:
        assert total == ROWS
        # Copying: callers are still answered, from the old table.
        answers_during.append(resealing.lookup(5, 6, 200))

    done = resealing.reseal(progress=progress, grace=0)
    assert done is not None
    assert (done.rows, done.sealed, done.opened) == (ROWS, ["sfzhm", "xm"], [])
    assert answers_during
    assert all(a == before for a in answers_during)
    store = resealing.store()
    assert store.table_name == done.table == next_table_name(old) != old
    assert store.sealed_items == {"sfzhm": "string", "xm": "string"}
    assert store.reseal_to is None
    assert store.row_count == ROWS
    assert old not in resealing.tables()
    rows = resealing.raw(f"SELECT id, sfzhm, xm, xb FROM {store.table_name} ORDER BY id")
    assert [r[0] for r in rows] == list(range(1, ROWS + 1))
    for _, key, name, gender in rows:
        assert key.startswith("~")
        assert "3702021990" not in key
        assert name.startswith("~")
        assert "姓名" not in name
        assert gender in ("1", "2")
    assert resealing.lookup(5, 6, 200) == before
    assert pending(store, resealing.hub.settings) == Pending([], [])
    assert resealing.listed() == ([], [], "")
    with resealing.hub.db() as s:
        entry = s.scalars(
            select(AuditEntry).where(
                AuditEntry.action == "sharing.store.reseal",
                AuditEntry.object_id == str(resealing.store_id),
            )
        ).all()[-1]
    newest = resealing.db.sealer.newest()  # this hub's keys may have been rotated before
    assert store.seal_key == newest
    assert entry.before == {"table": old, "sealed_items": [], "key": old_key}
    assert entry.after == {
        "table": store.table_name,
        "sealed_items": ["sfzhm", "xm"],
        "key": newest,
        "rows": ROWS,
    }


def test_the_providers_changes_reach_the_resealed_table(resealing: Resealing) -> None:
    resealing.resealed("sfzhm", "xm")
    scene = resealing.scene
    source = Source(scene.source_url)
    source.update([7], "改名者")
    source.insert([ROWS + 1])
    table = resealing.store().table_name

    def arrived() -> bool:
        rows = resealing.raw(f"SELECT id FROM {table} WHERE id = :new", new=ROWS + 1)
        return _store_caught_up(scene) and rows == [(ROWS + 1,)]

    scene.run_until(arrived, nodes=["provider"])
    r = resealing.client.post(
        f"/{resealing.code}/lookup", {"keys": [sfzhm(7), f"3702021990{ROWS + 1:08d}"]}
    )
    assert sorted(r.json()["records"], key=lambda rec: rec["sfzhm"]) == [
        {"sfzhm": f"3702021990{ROWS + 1:08d}", "xm": f"新{ROWS + 1}", "xb": "1"},
        {"sfzhm": sfzhm(7), "xm": "改名者", "xb": "1"},
    ]
    names = [n for (n,) in resealing.raw(f"SELECT xm FROM {table}")]
    assert len(names) == ROWS + 1
    assert not any("改名" in n or "新" in n for n in names)


def test_an_interrupted_resealing_leaves_the_store_serving_and_is_finished_by_a_rerun(
    resealing: Resealing,
) -> None:
    resealing.resealed("sfzhm", "xm")
    before = resealing.lookup(7, 8, 9)
    old = resealing.store().table_name
    resealing.mark_sensitive("sfzhm")  # 姓名 is no longer sensitive: it is opened

    def cut(done: int, total: int) -> None:
        raise KeyboardInterrupt  # the operator's ^C in the middle of the copy

    with pytest.raises(KeyboardInterrupt):
        resealing.reseal(progress=cut, grace=0)
    store = resealing.store()
    assert store.table_name == old
    assert store.reseal_to is not None
    assert resealing.lookup(7, 8, 9) == before  # still served from the old table
    done = resealing.reseal(grace=0)
    assert done is not None
    assert (done.sealed, done.opened, done.rows) == ([], ["xm"], ROWS)
    store = resealing.store()
    assert store.sealed_items == {"sfzhm": "string"}
    assert store.reseal_to is None
    assert old not in resealing.tables()
    [(key, name)] = resealing.raw(f"SELECT sfzhm, xm FROM {store.table_name} WHERE id = 8")
    assert key.startswith("~")
    assert name == "姓名8"
    assert resealing.lookup(7, 8, 9) == before


def test_a_feeder_still_writing_to_a_retired_table_writes_nothing(resealing: Resealing) -> None:
    """A hub process that read the store before it was resealed applies its package under
    the guard: the retired table turns the package away, the exchange cursor stays."""
    writers = Writers(resealing.db)
    store = resealing.store()  # the stale copy of the store row
    retired = store.table_name
    writer = writers.get(store, ["id"])
    seq = store.applied_seq
    resealing.mark_sensitive("sfzhm", "xm")
    done = resealing.reseal(grace=0)
    assert done is not None
    assert done.table != retired
    package = pa.table({"id": [9999], "sfzhm": ["~x"], "xm": ["~y"], "xb": ["1"], OP_COLUMN: ["I"]})
    with pytest.raises(StoreRetired):
        writer.apply(seq + 1, package, writers.current(retired))
    assert writer.applied_seq() == seq
    assert resealing.raw(f"SELECT COUNT(*) FROM {done.table} WHERE id = 9999") == [(0,)]


def test_the_command_line_lists_the_stores_to_reseal_and_reseals_them(
    resealing: Resealing,
) -> None:
    settings = resealing.hub.settings
    resealing.mark_sensitive("sfzhm")

    def line() -> str:
        """The store's line in the list of stores due (other tests' stores may be due
        too on this hub)."""
        listed = hub_cli(settings, "stores", "reseal")
        assert listed.returncode == 0, listed.stderr
        found = [ln for ln in listed.stdout.splitlines() if f" {resealing.store_id} " in ln]
        return found[0] if found else ""

    assert "sfzhm" in line()
    assert "xm" not in line().replace("sfzhm", "")
    unknown = hub_cli(settings, "stores", "reseal", "999999")
    assert unknown.returncode == 2
    assert "没有这些共享信息库" in unknown.stderr
    done = hub_cli(settings, "stores", "reseal", str(resealing.store_id), "--grace", "0")
    assert done.returncode == 0, done.stderr
    assert "已重新加密" in done.stdout
    assert "加密 sfzhm" in done.stdout
    assert resealing.store().sealed_items == {"sfzhm": "string"}
    assert line() == ""
    again = hub_cli(settings, "stores", "reseal", str(resealing.store_id), "--grace", "0")
    assert "无需重新加密" in again.stdout


def test_after_the_field_key_is_rotated_a_resealed_store_seals_under_the_new_key(
    resealing: Resealing,
) -> None:
    """``govshare keys rotate field-seal`` adds a key; the store keeps serving under the
    old one until it is resealed, then seals its cells, old and new, under the new."""
    settings = resealing.hub.settings
    resealing.resealed("sfzhm")
    before = resealing.lookup(3, 4, 7)
    store = resealing.store()
    assert store.sealed_items == {"sfzhm": "string"}
    old_key = store.seal_key or 1
    assert old_key == resealing.db.sealer.newest()
    rotated = hub_cli(settings, "keys", "rotate", "field-seal")
    assert rotated.returncode == 0, rotated.stderr
    assert f"已生成第 {old_key + 1} 代字段加密密钥" in rotated.stdout
    assert resealing.lookup(3, 4, 7) == before  # still sealed under the old key
    assert resealing.listed() == ([], [], "待重新加密; 换用新密钥")
    assert pending(resealing.store(), settings, old_key + 1) == Pending([], [], rekey=True)
    listed = hub_cli(settings, "keys", "list")
    assert f"字段加密密钥 第 {old_key + 1} 代" in listed.stdout
    done = resealing.reseal(grace=0)
    assert done is not None
    assert (done.sealed, done.opened, done.key) == ([], [], old_key + 1)
    store = resealing.store()
    assert store.seal_key == old_key + 1
    keys = [k for (k,) in resealing.raw(f"SELECT sfzhm FROM {store.table_name}")]
    assert keys
    assert all(k.startswith(f"~{old_key + 1}.") for k in keys)
    assert resealing.lookup(3, 4, 7) == before
    assert resealing.listed() == ([], [], "")
    # What the provider sends next is sealed under the new key too.
    scene = resealing.scene
    Source(scene.source_url).insert([ROWS + 2])  # a row the provider adds
    table = store.table_name

    def arrived() -> bool:
        rows = resealing.raw(f"SELECT sfzhm FROM {table} WHERE id = :new", new=ROWS + 2)
        return _store_caught_up(scene) and len(rows) == 1

    scene.run_until(arrived, nodes=["provider"])
    [(cell,)] = resealing.raw(f"SELECT sfzhm FROM {table} WHERE id = :new", new=ROWS + 2)
    assert cell.startswith(f"~{old_key + 1}.")
    r = resealing.client.post(f"/{resealing.code}/lookup", {"keys": [f"3702021990{ROWS + 2:08d}"]})
    assert r.json()["records"] == [
        {"sfzhm": f"3702021990{ROWS + 2:08d}", "xm": f"新{ROWS + 2}", "xb": "1"}
    ]


def test_a_one_key_lookup_under_a_grant_filtering_by_a_list_of_values(
    resealing: Resealing,
) -> None:
    """The grant's row filter here is ``xb in [1, 2]``: a lookup of one key runs the
    statement compiled once per grant, which could not hold a list bound at execution
    (it answered 500)."""
    assert resealing.lookup(11) == [{"sfzhm": sfzhm(11), "xm": "姓名11", "xb": "1"}]
    assert resealing.lookup(11, 12)[0] == resealing.lookup(11)[0]


def test_a_resealed_store_never_takes_a_table_name_again() -> None:
    assert next_table_name("ss_12") == "ss_12_r2"
    assert next_table_name("ss_12_r2") == "ss_12_r3"
    assert next_table_name("ss_3_r19") == "ss_3_r20"


def test_a_store_no_package_reached_yet_is_resealed_without_a_copy(tmp_path: Path) -> None:
    """A store set up but not yet fed has no table: there is nothing to copy, and the
    table its first package makes follows the new sealing. The name is still marked
    retired, so a feeder holding the store as it was writes nothing."""
    db = SharedDatabase(f"sqlite:///{tmp_path / 'shared.db'}", FieldSealer(tmp_path, "s" * 40))
    try:
        retired = retired_tables(MetaData())
        make_table(db.engine, retired)
        copy = StoreCopy(
            db, 7, "ss_7", "ss_7_r2", Sealing({}, 1), Sealing({"sfzhm": ""}, 1), retired
        )
        assert copy.run(None) == 0
        assert copy.rows() == 0
        with pytest.raises(StoreRetired), db.engine.connect() as conn:
            Writers(db).current("ss_7")(conn)
        assert not inspect(db.engine).has_table("ss_7_r2")
    finally:
        db.close()
