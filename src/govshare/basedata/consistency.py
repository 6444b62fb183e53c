"""一致性 of a store against the base databases: where a store is an evidence source
(佐证来源) of a base item, each of its values is compared with the authoritative value
the base holds, normalised the way 多元校核 compares them. The quality scans use it
for their consistency dimension; a store no base names as evidence has none.

字段加密: the store's rows may hold its sealed items' cells, and the base may keep the
key and the item sealed: the base is looked up by the key in its form, and both values
are compared (and reported) opened."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from govshare.basedata import assembly
from govshare.basedata.models import BaseDatabase
from govshare.basedata.service import plan_of
from govshare.quality.scan import Finding
from govshare.sharing.models import SharedStore
from govshare.sharing.store import SharedDatabase


@dataclass(frozen=True, slots=True)
class _Use:
    """The store as evidence of one base item."""

    plan: assembly.Plan
    item: assembly.ItemPlan
    column: str
    key_column: str
    label: str


class EvidenceCheck:
    """Compares batches of one store's rows (item code → value, sealed items opened by
    the scan) with the bases.

    The authoritative value of an item sealed in the base or the store (字段加密) is
    not written into the finding's message: the scan keeps a finding's own value
    masked, but it cannot know another value named in the text."""

    def __init__(self, db: SharedDatabase, uses: list[_Use], sealed: frozenset[str]) -> None:
        self.db = db
        self.uses = uses
        self.sealed = sealed  # the store's sealed items

    def __call__(self, rows: Sequence[Mapping[str, Any]]) -> tuple[int, list[Finding]]:
        compared = 0
        found: list[Finding] = []
        for use in self.uses:
            table = self.db.table(use.plan.table_name)
            if table is None:
                continue
            pairs = [(r.get(use.key_column), r.get(use.column)) for r in rows]
            # The base's form of each key (sealed when it keeps its key sealed) → the key.
            ours = assembly.base_key(self.db, use.plan)
            keys = {ours(str(k)): str(k) for k, _ in pairs if k}
            key_col = table.c[use.plan.key_item]
            sealed = use.item.item in use.plan.sealed
            base: dict[str, Any] = {}
            with self.db.engine.connect() as conn:
                for part in assembly.batched(sorted(keys), 900):
                    q = select(key_col, table.c[use.item.item]).where(key_col.in_(part))
                    base.update(
                        {
                            keys[str(k)]: assembly.clear(self.db, sealed, v)
                            for k, v in conn.execute(q)
                        }
                    )
            hidden = sealed or use.column in self.sealed
            for key, value in pairs:
                theirs = assembly.comparable(use.item, assembly.as_text(value))
                if key is None or theirs is None or str(key) not in base:
                    continue
                compared += 1
                authority = base[str(key)]
                if theirs != assembly.comparable(use.item, authority):
                    shown = "（空）" if authority is None else authority
                    found.append(
                        Finding(
                            row_key=str(key),
                            item_code=use.column,
                            value=value,
                            message=f"与{use.label}的权威值不一致"
                            if hidden
                            else f"与{use.label}的权威值“{shown}”不一致",
                        )
                    )
        return compared, found


def evidence_check(
    session: Session, db: SharedDatabase, store: SharedStore
) -> EvidenceCheck | None:
    """The check of ``store``'s rows, or None when no base names it as evidence."""
    uses: list[_Use] = []
    for base in session.scalars(select(BaseDatabase).order_by(BaseDatabase.id)):
        named = [
            (item, ev["column"])
            for item in base.items
            for ev in item.get("evidence", [])
            if int(ev["store_id"]) == store.id
        ]
        if not named:
            continue
        plan = plan_of(session, base)
        by_item = {i.item: i for i in plan.items}
        key_column = base.keys.get(str(store.id), store.key_item)
        for item, column in named:
            if item["item"] in by_item:
                uses.append(
                    _Use(
                        plan,
                        by_item[item["item"]],
                        column,
                        key_column,
                        f"基础库「{base.resource.name}」",
                    )
                )
    return EvidenceCheck(db, uses, frozenset(store.sealed_items or ())) if uses else None
