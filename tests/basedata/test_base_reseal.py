"""重新加密基础库, on SQLite and PostgreSQL: after the field key is rotated, or the base's
catalog entry marks other items sensitive, the base's records and history are copied to
tables of the new sealing while it keeps serving, and the base is switched to them in one
step. Callers get the same records before and after; the conflicts stay as they were;
assembly waits while the base is copied and goes on into the new tables after."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, text, update

from govshare.basedata import service
from govshare.basedata.errors import BaseBusy
from govshare.basedata.models import BaseConflict, BaseDatabase
from govshare.basedata.reseal import reseal_base
from govshare.catalog.models import InformationItem
from govshare.db import utcnow
from govshare.security.audit import Actor, KeyHasher
from govshare.security.fieldseal import generation_of
from govshare.security.models import AuditEntry
from govshare.sharing import objections
from govshare.sharing.models import Objection, SharedStore
from govshare.sharing.store import SharedDatabase
from tests.basedata.test_flow import (
    ROWS,
    Side,
    _get,
    _open_conflicts,
    _source,
    _wait,
)
from tests.basedata.test_sealed_base import _person, define_sealed_base
from tests.clirun import hub_cli
from tests.factories import World
from tests.live import LiveHub

OPERATOR = Actor(name="reseal-test", kind="system")
RENAMED = (3, 8)  # 公安 names these persons otherwise than 民政: open conflicts
CHANGED = 11  # renamed at 公安 after the first assembly: a history row
SAMPLE = (2, 3, 11, 40)


@dataclass
class Based:
    world: World
    police: Side  # 公安: its store in the clear; authority for 姓名
    civil: Side  # 民政: ID number and name sealed; evidence for 姓名, authority for 性别
    base_id: int
    store_id: int
    resource_id: int
    db: SharedDatabase

    @property
    def hub(self) -> LiveHub:
        return self.world.hub

    def raw(self, sql: str, **params: Any) -> list[tuple[Any, ...]]:
        """Rows as anyone with a copy of the shared-store database would see them."""
        return self.hub.shared_rows(sql, **params)

    def tables(self) -> set[str]:
        return self.hub.shared_tables()

    def table(self) -> str:
        found = _get(self.world, self.world.admin, f"/api/v1/base-databases/{self.base_id}")
        return str(found["table_name"])

    def served(self) -> SharedStore:
        with self.hub.db() as s:
            found = s.get(SharedStore, self.store_id)
            assert found is not None
            s.expunge_all()
            return found

    def records(self) -> dict[int, dict[str, Any]]:
        out = {}
        for i in SAMPLE:
            found = _get(
                self.world,
                self.world.admin,
                f"/api/v1/base-databases/{self.base_id}/records/{_person(i)}",
            )
            out[i] = {item: v["value"] for item, v in found["items"].items()}
        return out

    def conflicts(self) -> list[tuple[str, str | None, str | None]]:
        found = _open_conflicts(self.world, self.world.admin, self.base_id)
        return sorted((c["record_key"], c["value"], c["evidence_value"]) for c in found)

    def kept_conflicts(self, *, open_only: bool = True) -> list[tuple[Any, ...]]:
        """The base's conflicts as the hub database keeps them: the open ones, or all
        (one may have opened and resolved itself while the two departments' renames
        arrived one after the other)."""
        with self.hub.db() as s:
            rows = s.execute(
                text(
                    "SELECT record_key, value, evidence_value, key_sealed, values_sealed,"
                    " seal_key FROM base_conflict WHERE base_id = :b"
                    + (" AND status = 'open'" if open_only else "")
                    + " ORDER BY id"
                ),
                {"b": self.base_id},
            ).all()
        return [tuple(r) for r in rows]

    def listed(self) -> dict[str, Any]:
        with self.world.api(self.world.admin) as c:
            return next(
                s for s in c.get("/api/v1/sharing/stores").json() if s["id"] == self.store_id
            )

    def mark_sensitive(self, *codes: str) -> None:
        """The base's catalog entry marks ``codes`` 敏感, as a 变更 would leave them."""
        with self.hub.db() as s:
            s.execute(
                update(InformationItem)
                .where(InformationItem.resource_id == self.resource_id)
                .values(sensitive=InformationItem.code.in_(codes))
            )

    def reseal(self, **kw: Any) -> Any:
        return reseal_base(
            self.hub.session_factory, self.db, self.hub.settings, self.base_id, OPERATOR, **kw
        )

    def converge(self, done: Any) -> None:
        _wait(self.world, [self.police, self.civil], done)


@pytest.fixture
def based(hub: LiveHub, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Based]:
    world = World(hub)
    tmp = tmp_path_factory.mktemp("base-reseal")
    defined = define_sealed_base(world, tmp, RENAMED)
    police, civil, base = defined.police, defined.civil, defined.base
    db = SharedDatabase.of(hub.settings)
    based = Based(world, police, civil, base["id"], base["store_id"], base["resource_id"], db)

    def assembled() -> bool:
        b = _get(world, world.admin, f"/api/v1/base-databases/{based.base_id}")
        return bool(b["row_count"] == ROWS and b["conflicts"]["open"] == len(RENAMED))

    based.converge(assembled)
    # Renamed at both departments: no conflict, one history row.
    for side in (police, civil):
        _source(side, f"UPDATE person SET xm = '改名者', version = :v WHERE id = {CHANGED}")
    based.converge(
        lambda: (
            based.records()[CHANGED]["xm"] == "改名者" and len(based.conflicts()) == len(RENAMED)
        )
    )
    yield based
    db.close()
    police.node.close()
    civil.node.close()


def _generations(cells: list[Any]) -> set[int]:
    return {generation_of(str(c)) for c in cells if c is not None}


def test_after_the_field_key_is_rotated_the_base_and_its_history_move_to_the_new_key(
    based: Based,
) -> None:
    settings = based.hub.settings
    records, conflicts = based.records(), based.conflicts()
    assert records[CHANGED] == {"xm": "改名者", "xb": "1"}
    old = based.table()
    old_key = based.served().seal_key or 1
    rotated = hub_cli(settings, "keys", "rotate", "field-seal")
    assert rotated.returncode == 0, rotated.stderr
    new_key = based.db.sealer.newest()
    assert new_key == old_key + 1
    listed = based.listed()
    assert (listed["items_to_seal"], listed["items_to_open"], listed["rekey"]) == ([], [], True)
    due = hub_cli(settings, "stores", "reseal")
    line = next(ln for ln in due.stdout.splitlines() if f" {based.store_id} " in ln)
    assert "基础库" in line
    assert "是" in line  # 换用新密钥
    done = hub_cli(settings, "stores", "reseal", str(based.store_id), "--grace", "0")
    assert done.returncode == 0, done.stderr
    assert f"{ROWS} 行" in done.stdout
    assert "返还区县的交换任务须改读新表" in done.stdout
    table = based.table()
    assert table == f"{old}_r2"
    assert old not in based.tables()
    assert f"{old}_hist" not in based.tables()
    served = based.served()
    assert (served.table_name, served.seal_key, served.reseal_to) == (table, new_key, None)
    assert served.sealed_items == {"sfzhm": "string", "xm": "string"}
    # Every sealed cell of the records and their history is under the new key.
    rows = based.raw(f"SELECT sfzhm, xm, xb FROM {table}")
    assert len(rows) == ROWS
    assert _generations([k for k, _, _ in rows] + [n for _, n, _ in rows]) == {new_key}
    assert {x for _, _, x in rows} <= {"1", "2"}
    history = based.raw(f"SELECT record_key, item, value FROM {table}_hist")
    assert [item for _, item, _ in history] == ["xm"]
    assert _generations([k for k, _, _ in history] + [v for _, _, v in history]) == {new_key}
    [(_, _, was)] = history
    assert based.db.sealer.open(was) == f"姓名{CHANGED}"
    # The same records, the same conflicts (kept under the new key too), and an audit
    # entry saying what was done.
    assert based.records() == records
    assert based.conflicts() == conflicts
    assert len(based.kept_conflicts()) == len(RENAMED)
    kept = based.kept_conflicts(open_only=False)  # the settled ones are resealed too
    assert {seal_key for *_, seal_key in kept} == {new_key}
    assert _generations([c for k, v, e, *_ in kept for c in (k, v, e)]) == {new_key}
    with based.hub.db() as s:
        entry = s.scalar(
            select(AuditEntry).where(
                AuditEntry.action == "basedata.reseal",
                AuditEntry.object_id == str(based.base_id),
            )
        )
        assert entry is not None
    # Assembly goes on, into the new table, under the new key.
    _source(based.police, "UPDATE person SET xm = '又改名', version = :v WHERE id = 40")
    based.converge(lambda: based.records()[40]["xm"] == "又改名")
    [(name,)] = based.raw(f"SELECT xm FROM {table} WHERE xm NOT IN ({_quoted(rows)})")
    assert generation_of(name) == new_key
    assert based.db.sealer.open(name) == "又改名"
    again = hub_cli(settings, "stores", "reseal", str(based.store_id), "--grace", "0")
    assert "无需重新加密" in again.stdout


def _quoted(rows: list[tuple[Any, ...]]) -> str:
    return ", ".join(f"'{n}'" for _, n, _ in rows if n is not None)


def test_items_marked_sensitive_later_are_sealed_in_the_base_and_unmarked_ones_opened(
    based: Based,
) -> None:
    records = based.records()
    based.mark_sensitive("sfzhm", "xb")  # 姓名 no longer sensitive, 性别 now
    listed = based.listed()
    assert (listed["items_to_seal"], listed["items_to_open"]) == (["xb"], ["xm"])
    done = based.reseal(grace=0)
    assert done is not None
    assert (done.sealed, done.opened, done.rows) == (["xb"], ["xm"], ROWS)
    table = based.table()
    assert done.table == table
    assert based.served().sealed_items == {"sfzhm": "string", "xb": "string"}
    rows = based.raw(f"SELECT sfzhm, xm, xb FROM {table}")
    assert all(k.startswith("~") and x.startswith("~") for k, _, x in rows)
    names = {n for _, n, _ in rows}
    assert "姓名2" in names
    assert "改名者" in names
    [(key, value)] = based.raw(f"SELECT record_key, value FROM {table}_hist")
    assert key.startswith("~")
    assert value == f"姓名{CHANGED}"  # the history's names opened too
    assert based.records() == records
    # The conflicts on 姓名 keep the person sealed and the names, no longer sensitive, in
    # the clear.
    kept = based.kept_conflicts()
    assert sorted((v, e) for _, v, e, *_ in kept) == [(f"户籍名{i}", f"姓名{i}") for i in RENAMED]
    assert all(k.startswith("~") and ks and not vs for k, _, _, ks, vs, _ in kept)
    listed = based.listed()
    assert (listed["items_to_seal"], listed["items_to_open"], listed["rekey"]) == ([], [], False)


def test_an_interrupted_base_reseal_holds_assembly_back_until_a_rerun_finishes_it(
    based: Based,
) -> None:
    records = based.records()
    old = based.table()
    based.mark_sensitive("sfzhm", "xm", "xb")

    def cut(done: int, total: int) -> None:
        raise KeyboardInterrupt  # the operator's ^C in the middle of the copy

    with pytest.raises(KeyboardInterrupt):
        based.reseal(progress=cut, grace=0)
    served = based.served()
    assert served.table_name == old
    assert served.reseal_to is not None
    assert based.listed()["resealing"] is True
    assert based.records() == records  # still served from the old table
    # Assembly waits: a change the police store takes is not merged meanwhile.
    _source(based.police, "UPDATE person SET xm = '等待者', version = :v WHERE id = 40")
    police_store = based.police.store_id

    def applied() -> int:
        with based.hub.db() as s:
            store = s.get(SharedStore, police_store)
            assert store is not None
            return store.applied_seq

    seq = applied()
    based.converge(lambda: applied() > seq)
    with based.world.api(based.world.admin) as c:
        r = c.post(f"/api/v1/base-databases/{based.base_id}/assemble")
        assert r.status_code == 409, r.text
        assert r.json()["error"]["code"] == "base_database_busy"
        assert "重新加密" in r.json()["error"]["message"]
    assert based.records()[40]["xm"] == "姓名40"
    # A lease another process holds (an assembly under way) is waited for, within limits.
    with based.hub.db() as s:
        s.execute(
            update(BaseDatabase)
            .where(BaseDatabase.id == based.base_id)
            .values(lease_until=utcnow() + timedelta(minutes=5))
        )
    with pytest.raises(BaseBusy):
        based.reseal(grace=0, wait=timedelta(seconds=0.2))
    with based.hub.db() as s:
        s.execute(
            update(BaseDatabase)
            .where(BaseDatabase.id == based.base_id)
            .values(lease_until=utcnow() + timedelta(seconds=1))
        )
    done = based.reseal(grace=0)
    assert done is not None
    assert (done.sealed, done.rows) == (["xb"], ROWS)
    assert based.served().reseal_to is None
    assert old not in based.tables()
    based.converge(lambda: based.records()[40]["xm"] == "等待者")
    assert {i: r for i, r in based.records().items() if i != 40} == {
        i: r for i, r in records.items() if i != 40
    }


def test_conflicts_kept_in_the_clear_before_they_were_sealed_are_sealed_by_the_next_assembly(
    based: Based,
) -> None:
    """A hub upgraded from a version that kept conflicts in the clear: the next assembly
    seals them, finds them again by their sealed keys (no conflict is opened twice), and
    the department answers them as before."""
    conflicts = based.conflicts()
    sealer = based.db.sealer
    with based.hub.db() as s:
        for c in s.scalars(select(BaseConflict).where(BaseConflict.base_id == based.base_id)):
            c.record_key = sealer.open(c.record_key)
            c.value = None if c.value is None else sealer.open(c.value)
            c.evidence_value = None if c.evidence_value is None else sealer.open(c.evidence_value)
            c.key_sealed = c.values_sealed = False
            c.seal_key = None
    assert {k for k, *_ in based.kept_conflicts()} == {_person(i) for i in RENAMED}
    service._CONFLICTS_IN_FORM.clear()  # the hub started again after the upgrade
    with based.world.api(based.world.admin) as c:
        r = c.post(f"/api/v1/base-databases/{based.base_id}/assemble")
        assert r.status_code == 200, r.text
    kept = based.kept_conflicts()
    assert len(kept) == len(RENAMED)
    assert all(k.startswith("~") and v.startswith("~") and ks and vs for k, v, _, ks, vs, _ in kept)
    assert based.conflicts() == conflicts
    # 公安 adopts 民政's value for one person: the objection that tracks the correction
    # names the person and the value, sealed as every objection keeps them; the audit
    # entry only the person's keyed hash.
    first = _open_conflicts(based.world, based.world.admin, based.base_id)[0]
    with based.world.api(based.police.dept.resource_admin) as c:
        r = c.post(f"/api/v1/base-conflicts/{first['id']}/accept", json={"reason": "以民政为准"})
        assert r.status_code == 200, r.text
        assert r.json()["record_key"] == first["record_key"]
    with based.hub.db() as s:
        objection = s.get(Objection, r.json()["objection_id"])
        assert objection is not None
        said = objections.text_of(objection, based.hub.settings)
        assert said.record_key == first["record_key"]
        assert said.claimed == said.correction == {"xm": first["evidence_value"]}
        assert objection.sealed
        assert first["record_key"] not in objection.record_key
        entry = s.scalar(
            select(AuditEntry).where(
                AuditEntry.action == "basedata.conflict.accept",
                AuditEntry.object_id == str(first["id"]),
            )
        )
        assert entry is not None
        hashed = KeyHasher(based.hub.settings.secret_key)(first["record_key"])
        assert hashed in json.dumps(entry.after)
