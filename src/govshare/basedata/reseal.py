"""重新加密基础库: a base database brought in line with its catalog entry's sensitive
items and the newest field key, as ``sharing.reseal`` does for a fed store.

A base's records and their history (``bd_<id>``, ``bd_<id>_hist``) are copied to the
next pair of tables (``bd_<id>_r2`` …) with the changed items, the key included, sealed,
opened, or opened and sealed again under the new key; then the base and its store switch
to them in one hub transaction, and the old pair is dropped after a grace for reads
under way. Assembly is the only writer of a base's tables, so no retired-table guard is
needed: the base is marked first (its store's ``reseal_to``), assembly refuses a marked
base, and the copy is made under the base's assembly lease, taken once an assembly under
way has given it back. Interrupted, the base stays marked (assembly waits) and serves
from the old tables; running it again copies again and switches.

The base's conflicts (kept sealed as its records are) follow in the switching transaction.
A district task returning the base (返还) reads its table by name: after a reseal it
must be pointed at the new table (shown on the 基础库 page and in the API).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import MetaData, Table, inspect
from sqlalchemy.orm import Session, sessionmaker

from govshare.basedata import assembly, service
from govshare.basedata.errors import BaseBusy, BaseNotFound
from govshare.basedata.models import BaseDatabase
from govshare.basedata.sealed_conflicts import ConflictCells, ConflictForm, bring_to_form
from govshare.config import Settings
from govshare.db import session_scope, utcnow
from govshare.security import audit
from govshare.security.audit import Actor
from govshare.security.fieldseal import FieldSealer
from govshare.sharing.reseal import (
    Resealed,
    Sealing,
    copy_rows,
    count_rows,
    drop_table,
    locked_store,
    mark,
    recoded,
)
from govshare.sharing.store import SharedDatabase

# How often the lease is asked for while an assembly under way holds it.
POLL = 0.5


def reseal_base(
    factory: sessionmaker[Session],
    db: SharedDatabase,
    settings: Settings,
    base_id: int,
    actor: Actor,
    *,
    progress: Callable[[int, int], None] | None = None,
    grace: float = 2.0,
    wait: timedelta = service.LEASE + timedelta(seconds=30),
    clock: Callable[[], datetime] = utcnow,
) -> Resealed | None:
    """Reseal the base (module docstring); None when nothing changes. ``progress(done,
    total)`` is told the records and history rows copied; ``wait``: how long an
    assembly under way may keep the base before BaseBusy is raised."""
    with session_scope(factory) as session:
        base = session.get(BaseDatabase, base_id)
        store = locked_store(session, base.store_id) if base and base.store_id else None
        if base is None or store is None:
            raise BaseNotFound(f"基础库 {base_id} 不存在")
        target = mark(store, db, settings)
        if target is None:
            return None
        old, store_id = base.table_name, store.id
        before = Sealing(dict(store.sealed_items or {}), store.seal_key or 1)
    after = Sealing(dict(target["items"]), int(target.get("key") or 1))
    new = str(target["table"])
    _take_lease(factory, base_id, wait, clock)
    try:
        with session_scope(factory) as session:
            plan = service.plan_of(session, service.get_base(session, base_id))
        plan = dataclasses.replace(
            plan, table_name=old, sealed=frozenset(before.items), seal_key=before.key
        )
        copy = BaseCopy(db, plan, new, before, after, factory, clock)
        rows = copy.run(progress)
        with session_scope(factory) as session:
            base = service.get_base(session, base_id)
            store = locked_store(session, store_id)
            assert store is not None
            base.table_name = store.table_name = new
            # The conflicts' keys and values follow the records' new sealing.
            form = ConflictForm(base.key_item, frozenset(after.items), after.key)
            bring_to_form(session, ConflictCells(db.sealer, form), base_id)
            store.sealed_items = after.items or None
            store.seal_key = after.key if after.items else None
            store.reseal_to = None
            audit.record(
                session,
                actor,
                "basedata.reseal",
                object_type="base_database",
                object_id=base_id,
                before={"table": old, "sealed_items": sorted(before.items), "key": before.key},
                after={
                    "table": new,
                    "sealed_items": sorted(after.items),
                    "key": after.key,
                    "rows": rows,
                },
            )
    finally:
        _give_back(factory, base_id)
    time.sleep(grace)  # reads that took the old tables just before the switch
    drop_table(db, old)
    drop_table(db, f"{old}_hist")
    return Resealed(
        store_id,
        old,
        new,
        rows,
        sorted(set(after.items) - set(before.items)),
        sorted(set(before.items) - set(after.items)),
        after.key if after.items else None,
    )


class BaseCopy:
    """The base's records and history in the tables of its new sealing."""

    def __init__(
        self,
        db: SharedDatabase,
        plan: assembly.Plan,
        new: str,
        before: Sealing,
        after: Sealing,
        factory: sessionmaker[Session],
        clock: Callable[[], datetime],
    ) -> None:
        self.db, self.engine, self.plan = db, db.engine, plan
        self.old, self.new = plan.table_name, new
        self.before, self.after = before, after
        self.factory, self.clock = factory, clock
        self.sealer: FieldSealer = db.sealer.under(after.key)  # opens any, seals under the new

    def run(self, progress: Callable[[int, int], None] | None) -> int:
        """Copy both tables (none when the base was never assembled: its first
        assembly makes them); returns the records copied."""
        for name in (self.new, f"{self.new}_hist"):
            drop_table(self.db, name)  # a copy an interrupted run left
        if not inspect(self.engine).has_table(self.old):
            return 0
        assembly.ensure_tables(self.db, self.plan)  # older layouts brought up to date
        new_plan = dataclasses.replace(
            self.plan,
            table_name=self.new,
            sealed=frozenset(self.after.items),
            seal_key=self.after.key,
        )
        assembly.ensure_tables(self.db, new_plan)
        records = self._reflect(self.old), self._reflect(self.new)
        history = self._reflect(f"{self.old}_hist"), self._reflect(f"{self.new}_hist")
        counted = count_rows(self.engine, records[0])
        total = counted + count_rows(self.engine, history[0])

        def step(before: int) -> Callable[[int], None]:
            def told(n: int) -> None:
                _renew(self.factory, self.plan.base_id, self.clock)
                if progress is not None:
                    progress(before + n, total)

            return told

        copied = copy_rows(self.engine, *records, self._records, step(0))
        # History rows are numbered again by the new table, in the same order.
        copy_rows(self.engine, *history, self._history, step(copied), skip=("id",))
        assembly.ensure_tables(self.db, new_plan)  # the version index, after the bulk copy
        return copied

    def _reflect(self, name: str) -> Table:
        return Table(name, MetaData(), autoload_with=self.engine)

    def _recoded(self, name: str, cells: list[Any]) -> list[Any]:
        return recoded(self.sealer, self.before.form(name), self.after.form(name), cells)

    def _records(self, columns: dict[str, list[Any]]) -> None:
        for name in (self.plan.key_item, *(i.item for i in self.plan.items)):
            if name in columns:
                columns[name] = self._recoded(name, columns[name])

    def _history(self, columns: dict[str, list[Any]]) -> None:
        columns["record_key"] = self._recoded(self.plan.key_item, columns["record_key"])
        values = columns["value"]
        at: dict[str, list[int]] = {}
        for i, item in enumerate(columns["item"]):
            at.setdefault(str(item), []).append(i)
        for item, rows in at.items():
            changed = self._recoded(item, [values[i] for i in rows])
            for i, cell in zip(rows, changed, strict=True):
                values[i] = cell


def _renew(factory: sessionmaker[Session], base_id: int, clock: Callable[[], datetime]) -> None:
    """Renew the base's lease between batches, as assembly does."""
    with factory() as session:
        service.hold(session, base_id, clock, renew=True)


def _take_lease(
    factory: sessionmaker[Session],
    base_id: int,
    wait: timedelta,
    clock: Callable[[], datetime],
) -> None:
    deadline = time.monotonic() + wait.total_seconds()
    with factory() as session:
        while not service.hold(session, base_id, clock, renew=False):
            if time.monotonic() > deadline:
                raise BaseBusy("基础库正在由平台进程归集, 未能等到其结束, 请稍后再次运行")
            time.sleep(POLL)


def _give_back(factory: sessionmaker[Session], base_id: int) -> None:
    with factory() as session:
        service.release(session, base_id)
