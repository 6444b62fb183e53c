"""一致性 of a store against the base databases: where a store is an evidence source
(佐证来源) of a base item, each of its values is compared with the authoritative value
the base holds, normalised the way 多元校核 compares them. The quality scans use it
for their consistency dimension; a store no base names as evidence has none."""

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
    """Compares batches of one store's rows (item code → value) with the bases."""

    def __init__(self, db: SharedDatabase, uses: list[_Use]) -> None:
        self.db = db
        self.uses = uses

    def __call__(self, rows: Sequence[Mapping[str, Any]]) -> tuple[int, list[Finding]]:
        compared = 0
        found: list[Finding] = []
        for use in self.uses:
            table = self.db.table(use.plan.table_name)
            if table is None:
                continue
            keys = sorted({str(r[use.key_column]) for r in rows if r.get(use.key_column)})
            key_col = table.c[use.plan.key_item]
            base: dict[str, Any] = {}
            with self.db.engine.connect() as conn:
                for part in assembly.batched(keys, 900):
                    q = select(key_col, table.c[use.item.item]).where(key_col.in_(part))
                    base.update({str(k): v for k, v in conn.execute(q)})
            for row in rows:
                key = row.get(use.key_column)
                value = row.get(use.column)
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
                            message=f"与{use.label}的权威值“{shown}”不一致",
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
    return EvidenceCheck(db, uses) if uses else None
