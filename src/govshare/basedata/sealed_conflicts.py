"""A base's conflicts (多元校核) kept as the base keeps its records (字段加密): the person's
key sealed where the base seals its key, both values sealed where it seals the item, under
the base's field key. The hub database then holds no ID number or name the base itself
keeps sealed, and a conflict is still found by its record key (equal values seal equal).

Each conflict row says how it is kept (``key_sealed``, ``values_sealed`` and the key's
generation ``seal_key``), so rows kept otherwise (made before this, or before the base
was resealed) are recognised and brought to the base's form: by the next assembly, or in
the transaction that switches a resealed base.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import ColumnElement, and_, func, not_, or_, select
from sqlalchemy.orm import Session

from govshare.basedata.models import BaseConflict
from govshare.security.fieldseal import FieldSealer


@dataclass(frozen=True, slots=True)
class ConflictForm:
    """How a base keeps its conflicts: which of its items (the key among them) are sealed,
    and the generation of the field key sealing them."""

    key_item: str
    sealed: frozenset[str]
    generation: int

    def key_sealed(self) -> bool:
        return self.key_item in self.sealed

    def values_sealed(self, item: str) -> bool:
        return item in self.sealed

    def seal_key(self, item: str) -> int | None:
        """The ``seal_key`` of a conflict on ``item``: None when nothing in it is sealed."""
        return self.generation if self.key_sealed() or self.values_sealed(item) else None

    def kept_otherwise(self) -> ColumnElement[bool]:
        """Conflicts not kept in this form (a SQL condition)."""
        sealed = BaseConflict.item.in_(sorted(self.sealed - {self.key_item}))
        generation = func.coalesce(BaseConflict.seal_key, 0) == self.generation
        in_form = and_(
            BaseConflict.key_sealed.is_(self.key_sealed()),
            or_(
                and_(sealed, BaseConflict.values_sealed.is_(True)),
                and_(not_(sealed), BaseConflict.values_sealed.is_(False)),
            ),
            generation
            if self.key_sealed()
            else or_(
                and_(sealed, generation),
                and_(not_(sealed), BaseConflict.seal_key.is_(None)),
            ),
        )
        return not_(in_form)


@dataclass(frozen=True, slots=True)
class OpenConflict:
    """A conflict's key and values in the clear, to show and to act on."""

    record_key: str
    value: str | None
    evidence_value: str | None


class ConflictCells:
    """Seals what a base's conflicts keep and opens what they kept."""

    def __init__(self, sealer: FieldSealer, form: ConflictForm) -> None:
        self.form = form
        self.sealer = sealer.under(form.generation)  # opens any, seals under the base's

    def key(self, key: str) -> str:
        """A record key (in the clear) as conflicts keep it."""
        return self.sealer.seal(key) if self.form.key_sealed() else key

    def keys(self, keys: list[str]) -> list[str]:
        """Record keys (in the clear) as conflicts keep them, sealed in one pass."""
        if not self.form.key_sealed():
            return keys
        return [str(k) for k in self.sealer.seal_texts(keys)]

    def value(self, item: str, value: str | None) -> str | None:
        if value is None or not self.form.values_sealed(item):
            return value
        return self.sealer.seal(value)

    def opened(self, c: BaseConflict) -> OpenConflict:
        return opened(self.sealer, c)

    def keep(self, c: BaseConflict, open_: OpenConflict) -> None:
        """Store ``open_`` in ``c`` as this base keeps its conflicts."""
        c.record_key = self.key(open_.record_key)
        c.value = self.value(c.item, open_.value)
        c.evidence_value = self.value(c.item, open_.evidence_value)
        c.key_sealed = self.form.key_sealed()
        c.values_sealed = self.form.values_sealed(c.item)
        c.seal_key = self.form.seal_key(c.item)


def opened(sealer: FieldSealer, c: BaseConflict) -> OpenConflict:
    """``c``'s key and values in the clear, however the row keeps them."""

    def clear(cell: str | None, sealed: bool) -> str | None:
        return sealer.open(cell) if sealed and cell is not None else cell

    return OpenConflict(
        str(clear(c.record_key, c.key_sealed)),
        clear(c.value, c.values_sealed),
        clear(c.evidence_value, c.values_sealed),
    )


def bring_to_form(session: Session, cells: ConflictCells, base_id: int, batch: int = 1000) -> int:
    """Keep every conflict of the base as ``cells`` says (rows made before conflicts were
    sealed, or before the base was resealed); returns how many changed. Flushed, not
    committed: the caller's transaction decides."""
    changed = 0
    last = 0
    while True:
        rows = list(
            session.scalars(
                select(BaseConflict)
                .where(
                    BaseConflict.base_id == base_id,
                    BaseConflict.id > last,
                    cells.form.kept_otherwise(),
                )
                .order_by(BaseConflict.id)
                .limit(batch)
            )
        )
        for c in rows:
            cells.keep(c, cells.opened(c))
        session.flush()
        changed += len(rows)
        if len(rows) < batch:
            return changed
        last = rows[-1].id
