"""Base databases (基础库): defining one, assembling it as the exchange feeds its
sources, and the authoritative departments' work on conflicts (多元校核).

A base database is served like any shared store: defining one creates the
``SharedStore`` row the data services resolve, with no source task (the hub itself
fills its table).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

import structlog
from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from govshare.basedata import assembly
from govshare.basedata.errors import BaseBusy, BaseNotFound, ConflictNotFound, InvalidBase
from govshare.basedata.models import BaseConflict, BaseDatabase, BaseSource, ConflictStatus
from govshare.basedata.schemas import BaseCreate, ConflictConfirm
from govshare.basedata.sealed_conflicts import ConflictCells, ConflictForm, bring_to_form, opened
from govshare.catalog.codes import ResourceKind
from govshare.catalog.models import CodeEntry, Resource
from govshare.config import Settings
from govshare.db import utcnow
from govshare.exchange import alertrules, alerts, package
from govshare.exchange.models import AlertKind, ExchangePackage
from govshare.exchange.store import PackageStore
from govshare.rules import workdays
from govshare.rules.clock import CHINA
from govshare.security import audit
from govshare.security.audit import KeyHasher
from govshare.security.fieldseal import FieldSealer
from govshare.security.service import Principal
from govshare.sharing.errors import NotYourDepartment, StepNotAllowed
from govshare.sharing.models import Objection, ObjectionStatus, SharedStore
from govshare.sharing.objections import ObjectionText
from govshare.sharing.objections import keep as keep_objection
from govshare.sharing.objections import sealer_for as objection_sealer
from govshare.sharing.store import SharedDatabase, trusted_body

log = structlog.get_logger()

# Packages read per source store and run: a backlog is worked off over several ticks.
PACKAGES_PER_RUN = 200
# How long a hub process may hold a base without renewing (it renews after every batch);
# a killed process's lease lapses after this, and another process takes over.
LEASE = timedelta(minutes=5)
# The bases (and forms) whose conflicts this process has seen all kept in that form.
_CONFLICTS_IN_FORM: set[tuple[int, ConflictForm]] = set()
# Conflicts a re-merge still holds against what it finds (resolved ones are history).
COMPARED = (ConflictStatus.OPEN, ConflictStatus.ACCEPTED, ConflictStatus.CONFIRMED)


_bad = InvalidBase.about


# -- definition -------------------------------------------------------------------------------


def _store_items(store: SharedStore) -> set[str]:
    return set(store.mapping.values())


def create_base(
    session: Session,
    principal: Principal,
    data: BaseCreate,
    *,
    sealing: bool = True,
    seal_key: int | None = None,
) -> BaseDatabase:
    """Define a base database on a published catalog entry of kind 基础信息资源; every
    item names the one store and column it comes from (一数一源). With ``sealing``
    (静态加密 on), the base keeps the items its catalog marks sensitive sealed
    (字段加密), its key too when that is one."""
    if not principal.is_admin:
        raise NotYourDepartment("只有平台管理员可以定义基础库")
    resource = session.get(Resource, data.resource_id)
    if resource is None or not resource.listed:
        raise _bad("只能为已发布的目录定义基础库", "resource_id", "目录不存在或未发布")
    if resource.kind is not ResourceKind.BASE:
        raise _bad(
            "基础库须对应基础信息资源类目录", "resource_id", f"目录类型为{resource.kind.label}"
        )
    if session.scalar(select(SharedStore.id).where(SharedStore.resource_id == resource.id)):
        raise _bad("该目录已有共享信息库或基础库", "resource_id", "已存在")
    known = {item.code for item in resource.items}
    if data.key_item not in known:
        raise _bad("主键须是目录的信息项", "key_item", f"目录没有信息项 {data.key_item}")
    stores: dict[int, SharedStore] = {}

    def store_of(store_id: int, field: str) -> SharedStore:
        found = stores.get(store_id) or session.get(SharedStore, store_id)
        if found is None or found.source_task_id is None:
            raise _bad("来源须为由交换供数的共享信息库", field, f"共享信息库 {store_id} 不存在")
        stores[store_id] = found
        return found

    seen: set[str] = set()
    items: list[dict[str, Any]] = []
    for i, spec in enumerate(data.items):
        field = f"items[{i}]"
        if spec.item not in known or spec.item == data.key_item:
            raise _bad("基础库信息项须是目录的信息项（主键除外）", f"{field}.item", spec.item)
        if spec.item in seen:
            raise _bad("一个信息项只能有一个权威来源（一数一源）", f"{field}.item", "重复")
        seen.add(spec.item)
        source = store_of(spec.source.store_id, f"{field}.source.store_id")
        if spec.source.column not in _store_items(source):
            raise _bad("权威来源没有该信息项", f"{field}.source.column", spec.source.column)
        evidence = []
        for j, ev in enumerate(spec.evidence):
            ev_field = f"{field}.evidence[{j}]"
            ev_store = store_of(ev.store_id, f"{ev_field}.store_id")
            if ev.store_id == spec.source.store_id:
                raise _bad("佐证来源不能是权威来源本身", f"{ev_field}.store_id", str(ev.store_id))
            if ev.column not in _store_items(ev_store):
                raise _bad("佐证来源没有该信息项", f"{ev_field}.column", ev.column)
            evidence.append({"store_id": ev.store_id, "column": ev.column})
        items.append(
            {
                "item": spec.item,
                "store_id": spec.source.store_id,
                "column": spec.source.column,
                "evidence": evidence,
                "unconditional": spec.unconditional,
            }
        )
    keys: dict[str, str] = {}
    for store_id, store in stores.items():
        column = data.keys.get(str(store_id), store.key_item)
        if column not in _store_items(store):
            raise _bad("来源的关联键须是其已映射的信息项", f"keys.{store_id}", column)
        keys[str(store_id)] = column
    unknown = sorted(set(data.keys) - set(keys))
    if unknown:
        raise _bad("关联键指向了未使用的来源", f"keys.{unknown[0]}", "未被任何信息项引用")
    base = BaseDatabase(
        resource_id=resource.id,
        key_item=data.key_item,
        items=items,
        keys=keys,
        table_name="",
        created_by=principal.name,
    )
    session.add(base)
    session.flush()
    base.table_name = f"bd_{base.id}"
    served = SharedStore(
        resource_id=resource.id,
        source_task_id=None,
        key_item=data.key_item,
        # The base's table keeps each item in a column of its code.
        mapping=served_mapping(data.key_item, items),
        verify_rules=[],
        unconditional_items=_unconditional_items(data.key_item, items),
        table_name=base.table_name,
        sealed_items=_sealed_items(resource, data.key_item, items) if sealing else None,
        seal_key=seal_key if sealing else None,
        created_by=principal.name,
    )
    session.add(served)
    session.flush()
    base.store_id = served.id
    for store_id in base.store_ids():
        session.add(BaseSource(base_id=base.id, store_id=store_id, merged_seq=0))
    audit.record(
        session,
        principal.actor,
        "basedata.create",
        object_type="base_database",
        object_id=base.id,
        after={
            "resource_id": resource.id,
            "key_item": base.key_item,
            "items": items,
            "keys": keys,
            "sealed_items": sorted(served.sealed_items or {}),
        },
    )
    return base


def served_mapping(key_item: str, items: list[dict[str, Any]]) -> dict[str, str]:
    """Column → item of the base's table, as a fed store's mapping says it: one column
    per item, named by its code."""
    return {code: code for code in (key_item, *(i["item"] for i in items))}


def _sealed_items(
    resource: Resource, key_item: str, items: list[dict[str, Any]]
) -> dict[str, str] | None:
    """The base's items the catalog marks sensitive, kept sealed. The base keeps every
    value as text, so text is what opening gives back."""
    kept = {key_item, *(i["item"] for i in items)}
    return dict.fromkeys(sorted(resource.sensitive_codes & kept), "string") or None


def _unconditional_items(key_item: str, items: list[dict[str, Any]]) -> list[str]:
    """The items an application gets without approval (无条件共享信息项). The key travels
    with every record, so it is free exactly when some item is: alone it would still
    tell who is in the base."""
    free = [i["item"] for i in items if i["unconditional"]]
    return [key_item, *free] if free else []


def get_base(session: Session, base_id: int) -> BaseDatabase:
    base = session.get(BaseDatabase, base_id)
    if base is None:
        raise BaseNotFound(f"基础库 {base_id} 不存在")
    return base


def list_bases(session: Session) -> list[BaseDatabase]:
    return list(session.scalars(select(BaseDatabase).order_by(BaseDatabase.id)))


def plan_of(session: Session, base: BaseDatabase) -> assembly.Plan:
    stores = {
        s.id: s
        for s in session.scalars(select(SharedStore).where(SharedStore.id.in_(base.store_ids())))
    }
    sources = {
        sid: assembly.SourcePlan(
            store_id=sid,
            table_name=store.table_name,
            key_column=base.keys.get(str(sid), store.key_item),
            department_id=store.resource.provider_department_id,
            sealed=frozenset(store.sealed_items or ()),
            seal_key=store.seal_key or 1,
        )
        for sid, store in stores.items()
    }
    served = session.get(SharedStore, base.store_id) if base.store_id else None
    catalog_items = {i.code: i for i in base.resource.items}
    tables = {i.code_table for i in catalog_items.values() if i.code_table}
    codes: dict[str, dict[str, str]] = {}
    for entry in session.scalars(select(CodeEntry).where(CodeEntry.table_name.in_(tables))):
        names = codes.setdefault(entry.table_name, {})
        names[entry.label] = entry.code
        if entry.label.endswith("性") and len(entry.label) == 2:
            names[entry.label[0]] = entry.code  # 男 for 男性, as forms write it
    items = tuple(
        assembly.ItemPlan(
            item=i["item"],
            store_id=int(i["store_id"]),
            column=i["column"],
            evidence=tuple((int(e["store_id"]), e["column"]) for e in i.get("evidence", [])),
            codes=codes.get(catalog_items[i["item"]].code_table or "", {}),
            is_date=catalog_items[i["item"]].data_type in ("D", "T"),
        )
        for i in base.items
        if i["item"] in catalog_items
    )
    sealed = frozenset(served.sealed_items or ()) if served is not None else frozenset()
    seal_key = (served.seal_key if served is not None else None) or 1
    return assembly.Plan(base.id, base.table_name, base.key_item, items, sources, sealed, seal_key)


# -- assembly ---------------------------------------------------------------------------------


@dataclass(slots=True)
class RunResult:
    base_id: int
    full: bool
    keys: int = 0
    changed: int = 0
    opened: int = 0
    resolved: int = 0


def _touched_keys(
    session: Session,
    packages: PackageStore,
    store: SharedStore,
    key_column: str,
    after: int,
    upto: int,
) -> dict[str, int] | None:
    """The keys the store's packages ``after+1 … upto`` touched, each with the last
    package seq that did; None when a package is no longer in the log."""
    column = next((c for c, item in store.mapping.items() if item == key_column), None)
    if column is None or store.source_task_id is None:
        return None
    rows = list(
        session.scalars(
            select(ExchangePackage)
            .where(
                ExchangePackage.task_id == store.source_task_id,
                ExchangePackage.seq > after,
                ExchangePackage.seq <= upto,
            )
            .order_by(ExchangePackage.seq)
        )
    )
    if [r.seq for r in rows] != list(range(after + 1, upto + 1)) or any(
        r.pruned_at is not None for r in rows
    ):
        return None
    touched: dict[str, int] = {}
    for row in rows:
        seq, body = trusted_body(packages.get(session, row))
        data = package.decode_rows(body)
        if column not in data.column_names:
            return None
        for key in data.column(column).to_pylist():
            if key is not None:
                touched[str(key)] = seq
    return touched


def resealing(session: Session, base: BaseDatabase) -> bool:
    """Whether the base is being copied to a table of its new sealing (``reseal``):
    assembly waits for it, so nothing is written to the table being copied."""
    return base.store_id is not None and (
        session.scalar(select(SharedStore.reseal_to).where(SharedStore.id == base.store_id))
        is not None
    )


def hold(session: Session, base_id: int, clock: Callable[[], datetime], *, renew: bool) -> bool:
    """Take (or, ``renew``, extend) the base's lease; False when another process holds
    it. Every hub process runs the feeder, and two assembling one base at once would
    interleave their batches (record versions, conflicts)."""
    now = clock()
    stmt = update(BaseDatabase).where(BaseDatabase.id == base_id)
    if not renew:
        stmt = stmt.where(or_(BaseDatabase.lease_until.is_(None), BaseDatabase.lease_until < now))
    stmt = stmt.values(lease_until=now + LEASE).execution_options(synchronize_session=False)
    taken = session.execute(stmt).rowcount == 1  # type: ignore[attr-defined]
    session.commit()
    return taken


def release(session: Session, base_id: int) -> None:
    """Give the base's lease back (committed)."""
    session.execute(
        update(BaseDatabase)
        .where(BaseDatabase.id == base_id)
        .values(lease_until=None)
        .execution_options(synchronize_session=False)
    )
    session.commit()


def assemble(
    session: Session,
    db: SharedDatabase,
    packages: PackageStore,
    base: BaseDatabase,
    now: datetime,
    *,
    full: bool = False,
    clock: Callable[[], datetime] = utcnow,
) -> RunResult:
    """Merge what the sources changed since the last run (or everything, the first
    time, after a gap in the package log, or when ``full``). Commits as it goes:
    the base's table and its conflicts batch by batch, the source positions last.
    Raises BaseBusy while another hub process is assembling the base."""
    base_id = base.id
    if not hold(session, base_id, clock, renew=False):
        raise BaseBusy("基础库正在由另一个平台进程归集，请稍后再试")
    try:
        if resealing(session, base):
            raise BaseBusy("基础库正在重新加密，完成后继续归集")
        return _assemble(session, db, packages, get_base(session, base_id), now, full, clock)
    finally:
        session.rollback()
        release(session, base_id)


def _assemble(
    session: Session,
    db: SharedDatabase,
    packages: PackageStore,
    base: BaseDatabase,
    now: datetime,
    full: bool,
    clock: Callable[[], datetime],
) -> RunResult:
    plan = plan_of(session, base)
    assembly.ensure_tables(db, plan)
    positions = {
        s.store_id: s
        for s in session.scalars(select(BaseSource).where(BaseSource.base_id == base.id))
    }
    stores = {sid: session.get(SharedStore, sid) for sid in plan.sources}
    upto = {sid: (s.applied_seq if s is not None else 0) for sid, s in stores.items()}
    # An authoritative store no package has reached yet says nothing: its items are not
    # checked against evidence until it has (its first feed makes the next run full, which
    # checks every key then). Otherwise every evidence value would open a conflict
    # against an "empty" authority, to resolve itself minutes later.
    unfed = {sid for sid, n in upto.items() if n == 0}
    plan = dataclasses.replace(
        plan,
        items=tuple(
            dataclasses.replace(i, evidence=()) if i.store_id in unfed else i for i in plan.items
        ),
    )
    for sid in plan.sources:
        if sid not in positions:
            positions[sid] = BaseSource(base_id=base.id, store_id=sid, merged_seq=0)
            session.add(positions[sid])
    full = full or base.assembled_at is None or any(p.merged_seq == 0 for p in positions.values())
    touched: dict[int, dict[str, int]] = {}
    # Packages carry keys in the clear; merging takes them as the base keeps them.
    ours = assembly.base_key(db, plan)
    if not full:
        for sid, pos in positions.items():
            store = stores[sid]
            if store is None or upto[sid] <= pos.merged_seq:
                continue
            upto[sid] = min(upto[sid], pos.merged_seq + PACKAGES_PER_RUN)
            keys = _touched_keys(
                session, packages, store, plan.sources[sid].key_column, pos.merged_seq, upto[sid]
            )
            if keys is None:
                full = True
                upto = {s: (st.applied_seq if st is not None else 0) for s, st in stores.items()}
                break
            touched[sid] = {ours(k): seq for k, seq in keys.items()}
    result = RunResult(base.id, full)
    base_id = base.id
    cells = conflict_cells(db, plan)
    # Conflicts kept otherwise than the base keeps them now (made before conflicts were
    # sealed) are brought to its form first, so they are found by their sealed keys; once
    # a process (every conflict made since is made in the form).
    if (base_id, cells.form) not in _CONFLICTS_IN_FORM:
        bring_to_form(session, cells, base_id)
        _CONFLICTS_IN_FORM.add((base_id, cells.form))
    session.commit()  # the positions rows exist; no hub lock is held while merging

    def seq_of(store_id: int, key: str) -> int:
        return touched.get(store_id, {}).get(key, upto.get(store_id, 0))

    if full and plan.cells_alike and assembly.is_empty(db, plan):
        # The first assembly: one set-based statement, then the conflicts it holds. A
        # source keeping cells sealed where the base does not (or the other way) needs
        # them opened or sealed on the way: merged key by key instead.
        written = assembly.assemble_empty(db, plan, upto, now)
        result.keys = result.changed = written
        for found in assembly.disagreements(db, plan, upto):
            # Each part is one item against one evidence store: it says nothing of the
            # record's other items, whose conflicts an earlier part may have opened.
            outcome = assembly.Outcome(
                keys=sorted({d.key for d in found}),
                disagreements=found,
                checked=frozenset((d.item, d.evidence_store_id) for d in found),
            )
            opened, _ = reconcile_conflicts(session, plan, outcome, now, cells)
            session.commit()
            hold(session, base_id, clock, renew=True)
            result.opened += opened
        batches: Iterator[list[str]] = iter(())
    elif full:
        batches = assembly.all_keys(db, plan)
    else:
        pending = sorted(set().union(*touched.values())) if touched else []
        batches = assembly.batched(pending, assembly.BATCH)
    for batch in batches:
        outcome = assembly.merge(db, plan, batch, seq_of, now)
        opened, resolved = reconcile_conflicts(session, plan, outcome, now, cells)
        session.commit()
        hold(session, base_id, clock, renew=True)
        result.keys += len(batch)
        result.changed += outcome.inserted + outcome.updated + outcome.deleted
        result.opened += opened
        result.resolved += resolved
    base = get_base(session, base_id)
    for pos in session.scalars(select(BaseSource).where(BaseSource.base_id == base_id)):
        pos.merged_seq = max(pos.merged_seq, upto.get(pos.store_id, 0))
    base.assembled_at = now
    base.last_error = ""
    served = session.get(SharedStore, base.store_id) if base.store_id else None
    table = db.table(base.table_name)
    if served is not None and table is not None:
        with db.engine.connect() as conn:
            served.row_count = int(conn.scalar(select(func.count()).select_from(table)) or 0)
        served.applied_at = now
    session.commit()
    return result


def due(session: Session, base: BaseDatabase) -> bool:
    """Whether a source store applied packages the base has not merged yet."""
    if base.assembled_at is None:
        return True
    q = (
        select(func.count())
        .select_from(BaseSource)
        .join(SharedStore, SharedStore.id == BaseSource.store_id)
        .where(BaseSource.base_id == base.id, SharedStore.applied_seq > BaseSource.merged_seq)
    )
    return bool(session.scalar(q))


def assemble_due(
    session: Session,
    db: SharedDatabase,
    packages: PackageStore,
    now: datetime,
    *,
    clock: Callable[[], datetime] = utcnow,
) -> list[RunResult]:
    """Called after every feed: bring each base up to its sources (a base another hub
    process is assembling is left to it)."""
    done = []
    for base_id in list(session.scalars(select(BaseDatabase.id).order_by(BaseDatabase.id))):
        base = get_base(session, base_id)
        if not due(session, base):
            continue
        try:
            done.append(assemble(session, db, packages, base, now, clock=clock))
        except BaseBusy:
            continue
        except Exception as exc:
            session.rollback()
            log.exception("base database assembly failed", base_id=base_id)
            failed = get_base(session, base_id)
            failed.last_error = f"{type(exc).__name__}: {exc}"[:2000]
            session.commit()
    return done


# -- conflicts (多元校核) ------------------------------------------------------------------------


def conflict_cells(db: SharedDatabase, plan: assembly.Plan) -> ConflictCells:
    """How the base keeps its conflicts: as it keeps its records (``sealed_conflicts``)."""
    return ConflictCells(db.sealer, ConflictForm(plan.key_item, plan.sealed, plan.seal_key))


def reconcile_conflicts(
    session: Session,
    plan: assembly.Plan,
    outcome: assembly.Outcome,
    now: datetime,
    cells: ConflictCells,
) -> tuple[int, int]:
    """Make the active conflicts of the merged keys match the disagreements found: a new
    one opens, one whose values changed is updated, one whose sources agree again (or
    whose record left the base) resolves. A conflict the department confirmed stays
    closed while the same values disagree; a different evidence value opens a new one.
    Keys and values are compared and kept as ``cells`` keeps them (sealed or not)."""
    kept = [
        dataclasses.replace(
            d,
            key=cells.key(d.key),
            value=cells.value(d.item, d.value),
            evidence_value=str(cells.value(d.item, d.evidence_value)),
        )
        for d in outcome.disagreements
    ]
    found = {(d.key, d.item, d.evidence_store_id): d for d in kept}
    existing = (
        list(
            session.scalars(
                select(BaseConflict).where(
                    BaseConflict.base_id == plan.base_id,
                    BaseConflict.record_key.in_(cells.keys(outcome.keys)),
                    BaseConflict.status.in_(COMPARED),
                )
            )
        )
        if (found or _has_conflicts(session, plan.base_id))
        else []
    )
    opened = resolved = 0
    confirmed: set[tuple[str, str, int, str | None, str | None]] = set()
    if outcome.checked is not None:
        existing = [c for c in existing if (c.item, c.evidence_store_id) in outcome.checked]
    for c in existing:
        ident = (c.record_key, c.item, c.evidence_store_id)
        d = found.get(ident)
        if c.status is ConflictStatus.CONFIRMED:
            confirmed.add((*ident, c.value, c.evidence_value))
            continue
        if d is None:
            c.status = ConflictStatus.RESOLVED
            c.closed_at = c.updated_at = now
            c.reason = c.reason or "来源已一致"
            resolved += 1
            continue
        if (c.value, c.evidence_value) != (d.value, d.evidence_value):
            c.value, c.seq = d.value, d.seq
            c.evidence_value, c.evidence_seq = d.evidence_value, d.evidence_seq
            c.updated_at = now
        del found[ident]
    for ident, d in found.items():
        if (*ident, d.value, d.evidence_value) in confirmed:
            continue
        session.add(
            BaseConflict(
                base_id=plan.base_id,
                record_key=d.key,
                item=d.item,
                department_id=plan.sources[d.store_id].department_id,
                value=d.value,
                store_id=d.store_id,
                seq=d.seq,
                evidence_value=d.evidence_value,
                evidence_store_id=d.evidence_store_id,
                evidence_seq=d.evidence_seq,
                key_sealed=cells.form.key_sealed(),
                values_sealed=cells.form.values_sealed(d.item),
                seal_key=cells.form.seal_key(d.item),
                status=ConflictStatus.OPEN,
                opened_at=now,
                updated_at=now,
            )
        )
        opened += 1
    return opened, resolved


def _has_conflicts(session: Session, base_id: int) -> bool:
    return (
        session.scalar(
            select(BaseConflict.id)
            .where(
                BaseConflict.base_id == base_id,
                BaseConflict.status.in_(COMPARED),
            )
            .limit(1)
        )
        is not None
    )


def list_conflicts(
    session: Session,
    principal: Principal,
    *,
    base_id: int | None = None,
    status: Sequence[ConflictStatus] = (),
    after: int | None = None,
    limit: int = 50,
) -> list[BaseConflict]:
    """The caller's department's conflicts (the platform admin sees all), newest first."""
    q = select(BaseConflict).order_by(BaseConflict.id.desc()).limit(limit)
    if not principal.is_admin:
        q = q.where(BaseConflict.department_id == (principal.department_id or -1))
    if base_id is not None:
        q = q.where(BaseConflict.base_id == base_id)
    if status:
        q = q.where(BaseConflict.status.in_(list(status)))
    if after is not None:
        q = q.where(BaseConflict.id < after)
    return list(session.scalars(q))


def get_conflict(session: Session, principal: Principal, conflict_id: int) -> BaseConflict:
    c = session.get(BaseConflict, conflict_id)
    if c is None or not (principal.is_admin or principal.department_id == c.department_id):
        raise ConflictNotFound(f"冲突 {conflict_id} 不存在")
    return c


def _own_open(session: Session, principal: Principal, conflict_id: int) -> BaseConflict:
    c = get_conflict(session, principal, conflict_id)
    if principal.department_id != c.department_id:
        raise NotYourDepartment("只有权威来源部门可以处理该冲突")
    if c.status is not ConflictStatus.OPEN:
        raise StepNotAllowed(f"该冲突{c.status.label}，不能再处理")
    return c


def _conflict_snapshot(c: BaseConflict, hash_key: KeyHasher, sealer: FieldSealer) -> dict[str, Any]:
    # The record key only as its keyed hash (of the key in the clear, as every audit
    # entry hashes it): the audit log never holds ID numbers.
    return {
        "status": str(c.status),
        "base_id": c.base_id,
        "record_key_hash": hash_key(opened(sealer, c).record_key),
        "item": c.item,
        "objection_id": c.objection_id,
    }


def _audit_answer(
    session: Session,
    settings: Settings,
    sealer: FieldSealer,
    principal: Principal,
    c: BaseConflict,
    action: str,
    before: dict[str, Any],
) -> None:
    audit.record(
        session,
        principal.actor,
        f"basedata.conflict.{action}",
        object_type="base_conflict",
        object_id=c.id,
        before=before,
        after=_conflict_snapshot(c, KeyHasher(settings.secret_key), sealer),
    )


def confirm_conflict(
    session: Session,
    settings: Settings,
    sealer: FieldSealer,
    principal: Principal,
    conflict_id: int,
    data: ConflictConfirm,
    now: datetime,
) -> BaseConflict:
    """The authoritative department stands by its value, giving its reason."""
    if not data.reason.strip():
        raise _bad("确认本部门值须说明理由", "reason", "为空")
    c = _own_open(session, principal, conflict_id)
    before = _conflict_snapshot(c, KeyHasher(settings.secret_key), sealer)
    c.status = ConflictStatus.CONFIRMED
    c.reason = data.reason.strip()
    c.handled_by = principal.name
    c.closed_at = c.updated_at = now
    _audit_answer(session, settings, sealer, principal, c, "confirm", before)
    return c


def accept_conflict(
    session: Session,
    settings: Settings,
    sealer: FieldSealer,
    principal: Principal,
    conflict_id: int,
    data: ConflictConfirm,
    now: datetime,
    today: date,
) -> BaseConflict:
    """The authoritative department adopts the evidence value: it must correct its own
    system (数源部门负责更正). An accepted 异议 tracks the correction; when the exchange
    brings it into the store the objection is archived and the conflict resolves."""
    c = _own_open(session, principal, conflict_id)
    before = _conflict_snapshot(c, KeyHasher(settings.secret_key), sealer)
    base = get_base(session, c.base_id)
    source = session.get(SharedStore, c.store_id)
    evidence = session.get(SharedStore, c.evidence_store_id)
    if source is None or evidence is None:
        raise StepNotAllowed("冲突的来源已不存在")
    column = next(
        (
            i["column"]
            for i in base.items
            if i["item"] == c.item and int(i["store_id"]) == c.store_id
        ),
        c.item,
    )
    due = workdays.deadline(today, settings.objection_working_days)
    clear = opened(sealer, c)
    objection = Objection(
        resource_id=source.resource_id,
        grant_id=None,
        consumer_department_id=evidence.resource.provider_department_id,
        provider_department_id=c.department_id,
        evidence=f"基础库「{base.resource.name}」多元校核：{evidence.resource.name} 记录为该值。"
        + (f" {data.reason.strip()}" if data.reason.strip() else ""),
        status=ObjectionStatus.ACCEPTED,
        raised_by=principal.name,
        raised_on=today,
        answer_due=due.due,
        answer_due_provisional=due.provisional,
        answered_by=principal.name,
        answered_on=today,
        answer="采纳多元校核的佐证值，本部门更正业务系统",
    )
    # The person and the value adopted, sealed as every objection keeps them.
    adopted = {column: clear.evidence_value or ""}
    text = ObjectionText(clear.record_key, adopted, dict(adopted))
    keep_objection(objection, text, objection_sealer(settings))
    session.add(objection)
    session.flush()
    c.status = ConflictStatus.ACCEPTED
    c.objection_id = objection.id
    c.reason = data.reason.strip()
    c.handled_by = principal.name
    c.updated_at = now
    _audit_answer(session, settings, sealer, principal, c, "accept", before)
    return c


def alert_stale_conflicts(session: Session, settings: Settings, now: datetime) -> int:
    """Conflicts left open longer than the 基础库冲突超期未处理 rule's days
    (``base_conflict_alert_days`` unless edited) keep one alert raised; it resolves once
    none is left."""
    days = int(alertrules.effective(session, settings, AlertKind.CONFLICT_OVERDUE).threshold or 0)
    limit = now - timedelta(days=days)
    rows = session.execute(
        select(BaseConflict.department_id, func.count())
        .where(BaseConflict.status == ConflictStatus.OPEN, BaseConflict.opened_at < limit)
        .group_by(BaseConflict.department_id)
    ).all()
    if not rows:
        alerts.resolve_alerts(session, AlertKind.CONFLICT_OVERDUE)
        return 0
    total = sum(int(n) for _, n in rows)
    alerts.raise_alert(
        session,
        AlertKind.CONFLICT_OVERDUE,
        f"{len(rows)} 个部门共有 {total} 条基础库冲突超过 {days} 天未处理",
        details={"departments": {str(d): int(n) for d, n in rows}},
        webhook_url=settings.alert_webhook_url,
    )
    return total


def read_record(
    session: Session,
    settings: Settings,
    db: SharedDatabase,
    principal: Principal,
    base_id: int,
    key: str,
    as_of: date | None,
) -> tuple[datetime | None, dict[str, dict[str, Any]] | None]:
    """One record's items with their provenance, now or at the end of ``as_of`` (China
    time). Platform admin only — it shows every source's value; departments use the
    data services under grants. Every read is audited, the key only as its hash."""
    if not principal.is_admin:
        raise NotYourDepartment("只有平台管理员可以查看记录的来源与历史")
    base = get_base(session, base_id)
    when = datetime.combine(as_of, time.max, CHINA) if as_of is not None else None
    found = assembly.record_as_of(db, plan_of(session, base), key, when)
    audit.record(
        session,
        principal.actor,
        "basedata.record.read",
        object_type="base_database",
        object_id=base.id,
        after={"record_key_hash": KeyHasher(settings.secret_key)(key), "as_of": as_of},
    )
    return when, found


def stats(session: Session, base: BaseDatabase) -> dict[str, int]:
    rows = session.execute(
        select(BaseConflict.status, func.count())
        .where(BaseConflict.base_id == base.id)
        .group_by(BaseConflict.status)
    ).all()
    counts = {str(s): 0 for s in ConflictStatus}
    counts.update({str(s): int(n) for s, n in rows})
    return counts
