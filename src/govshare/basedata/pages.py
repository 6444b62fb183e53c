"""Console pages of the base databases (基础库): the list with each base's sources and
state, and the conflicts (多元校核) an authoritative department works."""

from __future__ import annotations

import dataclasses
from datetime import date
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from govshare.basedata import assembly, service
from govshare.basedata.models import BaseConflict, BaseDatabase, ConflictStatus
from govshare.basedata.schemas import BaseCreate, ConflictConfirm
from govshare.basedata.sealed_conflicts import OpenConflict, opened
from govshare.catalog.codes import ResourceKind
from govshare.catalog.models import Resource
from govshare.config import Settings
from govshare.db import utcnow
from govshare.deps import (
    SessionDep,
    SettingsDep,
    SharingReader,
    SharingReviewer,
    SharingStoreAdmin,
)
from govshare.errors import Conflict, InvalidInput, NotFound
from govshare.ids import Id, parse_id
from govshare.rules.clock import china_today
from govshare.rules.masking import mask_id_number
from govshare.security.fieldseal import FieldSealer
from govshare.security.service import Principal
from govshare.sharing.errors import NotYourDepartment
from govshare.sharing.models import SharedStore
from govshare.sharing.reseal import newest_key
from govshare.sharing.store import SharedDatabase
from govshare.web.forms import (
    NO_ERRORS,
    FormDep,
    FormErrors,
    redirect,
    render,
    text,
    texts,
    validation_problems,
)

router = APIRouter(include_in_schema=False)
PAGE_SIZE = 20
NOTICES = {
    "defined": "基础库已定义，平台将立即从各来源归集",
    "confirmed": "已确认本部门的值，冲突已归档",
    "accepted": "已采纳佐证值。请在本部门业务系统中更正，更正经交换到达后冲突自动关闭",
}
LABELS = {"reason": "理由", "action": "处理方式"}
STATUS_CLASSES = {
    ConflictStatus.OPEN: "tag-warn",
    ConflictStatus.ACCEPTED: "tag-open",
    ConflictStatus.CONFIRMED: "sharing-2",
    ConflictStatus.RESOLVED: "sharing-1",
}


def _page(
    request: Request, template: str, caller: Principal, *, status_code: int = 200, **context: Any
) -> Response:
    done = request.query_params.get("done", "")
    return render(
        request, template, caller, status_code=status_code, notice=NOTICES.get(done, ""), **context
    )


def _store_names(db: Session, ids: set[int]) -> dict[int, str]:
    if not ids:
        return {}
    stores = db.scalars(select(SharedStore).where(SharedStore.id.in_(ids)))
    return {s.id: f"{s.resource.name}（{s.resource.provider.name}）" for s in stores}


def _item_names(base: BaseDatabase) -> dict[str, str]:
    return {it.code: it.name for it in base.resource.items}


def _lookup(
    request: Request,
    db: Session,
    settings: Settings,
    caller: Principal,
    base: str,
    key: str,
    as_of: str,
) -> dict[str, Any] | None:
    """The platform admin's record lookup (来源与历史); an unusable date is said, not
    raised."""
    if not (caller.is_admin and base.isdigit() and key.strip()):
        return None
    day: date | None = None
    if as_of.strip():
        try:
            day = date.fromisoformat(as_of.strip())
        except ValueError:
            return {
                "base_id": int(base),
                "key": key,
                "as_of": as_of,
                "error": "日期格式应为 2026-05-01",
            }
    shared: SharedDatabase = request.app.state.data_services.db
    try:
        when, found = service.read_record(
            db, settings, shared, caller, int(base), key.strip()[:200], day
        )
    except NotFound:
        return {"base_id": int(base), "key": key, "as_of": as_of, "error": "基础库不存在"}
    db.commit()  # the read is audited
    return {"base_id": int(base), "key": key, "as_of": as_of, "when": when, "found": found}


@router.get("/basedata")
def bases_page(
    request: Request,
    db: SessionDep,
    settings: SettingsDep,
    caller: SharingReader,
    base: str = "",
    key: str = "",
    as_of: str = "",
) -> Response:
    """基础库: each base's items with their authoritative and evidence sources, how many
    records it holds, when it was last assembled and its conflicts by state; for the
    platform admin, one record's values with their sources and history (``?base=&key=
    &as_of=``)."""
    lookup = _lookup(request, db, settings, caller, base, key, as_of)
    bases = service.list_bases(db)
    ids = {int(i["store_id"]) for b in bases for i in b.items}
    ids |= {int(e["store_id"]) for b in bases for i in b.items for e in i.get("evidence", [])}
    served = {b.id: db.get(SharedStore, b.store_id) if b.store_id else None for b in bases}
    return _page(
        request,
        "basedata/bases.html",
        caller,
        nav="/basedata",
        bases=bases,
        stores=_store_names(db, ids),
        rows={b_id: s.row_count if s else 0 for b_id, s in served.items()},
        counts={b.id: service.stats(db, b) for b in bases},
        item_names={b.id: _item_names(b) for b in bases},
        lookup=lookup,
        version_column=assembly.VERSION,
    )


def _sealer(request: Request) -> FieldSealer:
    shared: SharedDatabase = request.app.state.data_services.db
    return shared.sealer


def _shown(c: BaseConflict, caller: Principal, sealer: FieldSealer) -> OpenConflict:
    """The conflict's key and values in the clear; the authoritative department sees the
    ID number it must look up, others (the platform admin) see it masked."""
    clear = opened(sealer, c)
    if caller.department_id == c.department_id:
        return clear
    return dataclasses.replace(clear, record_key=mask_id_number(clear.record_key))


@router.get("/basedata/conflicts")
def conflicts_page(
    request: Request, db: SessionDep, caller: SharingReader, status: str = "open", after: str = ""
) -> Response:
    """基础库冲突: the caller's department's (the platform admin: all) conflicts by state,
    newest first, a page at a time."""
    wanted = next((s for s in ConflictStatus if s.value == status), None)
    start = parse_id(after)
    rows = service.list_conflicts(
        db, caller, status=[wanted] if wanted else [], after=start, limit=PAGE_SIZE + 1
    )
    more = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    bases = {b.id: b for b in service.list_bases(db)}
    ids = {c.store_id for c in rows} | {c.evidence_store_id for c in rows}
    return _page(
        request,
        "basedata/conflicts.html",
        caller,
        nav="/basedata/conflicts",
        rows=rows,
        status=wanted.value if wanted else "all",
        statuses=list(ConflictStatus),
        next_after=rows[-1].id if more and rows else None,
        bases=bases,
        stores=_store_names(db, ids),
        shown={c.id: _shown(c, caller, _sealer(request)) for c in rows},
        item_names={b.id: _item_names(b) for b in bases.values()},
        status_classes_conflict=STATUS_CLASSES,
    )


def _conflict_page(
    request: Request,
    db: Session,
    caller: Principal,
    conflict: BaseConflict,
    *,
    errors: FormErrors = NO_ERRORS,
    reason: str = "",
    status_code: int = 200,
) -> Response:
    base = service.get_base(db, conflict.base_id)
    return _page(
        request,
        "basedata/conflict.html",
        caller,
        status_code=status_code,
        nav="/basedata/conflicts",
        c=conflict,
        base=base,
        shown=_shown(conflict, caller, _sealer(request)),
        item_name=_item_names(base).get(conflict.item, conflict.item),
        stores=_store_names(db, {conflict.store_id, conflict.evidence_store_id}),
        can_answer=caller.department_id == conflict.department_id
        and conflict.status is ConflictStatus.OPEN,
        status_classes_conflict=STATUS_CLASSES,
        errors=errors,
        reason=reason,
    )


@router.get("/basedata/conflicts/{conflict_id}")
def conflict_page(
    request: Request, conflict_id: Id, db: SessionDep, caller: SharingReader
) -> Response:
    """One conflict: both values with their sources, and the department's two answers."""
    return _conflict_page(request, db, caller, service.get_conflict(db, caller, conflict_id))


@router.post("/basedata/conflicts/{conflict_id}")
def answer_conflict(
    request: Request,
    conflict_id: Id,
    db: SessionDep,
    settings: SettingsDep,
    caller: SharingReviewer,
    form: FormDep,
) -> Response:
    """确认本部门值 (a reason is required) or 采纳佐证值 (the department corrects its
    system; an accepted objection tracks it). A refused answer changes nothing."""
    action, reason = text(form, "action"), text(form, "reason")[:2000]
    body = ConflictConfirm(reason=reason)
    try:
        if action == "confirm":
            service.confirm_conflict(
                db, settings, _sealer(request), caller, conflict_id, body, utcnow()
            )
        elif action == "accept":
            service.accept_conflict(
                db, settings, _sealer(request), caller, conflict_id, body, utcnow(), china_today()
            )
        else:
            raise InvalidInput("请选择处理方式", details=[{"field": "action", "message": "未选择"}])
    except (InvalidInput, Conflict) as exc:
        db.rollback()
        errors = FormErrors(exc.message, exc.details, label=lambda f: LABELS.get(f, f))
        conflict = service.get_conflict(db, caller, conflict_id)
        code = 422 if isinstance(exc, InvalidInput) else 409
        return _conflict_page(
            request, db, caller, conflict, errors=errors, reason=reason, status_code=code
        )
    db.commit()
    done = "confirmed" if action == "confirm" else "accepted"
    return redirect(f"/basedata/conflicts/{conflict_id}?done={done}")


# -- defining a base (platform admin) ----------------------------------------------------------

FORM_LABELS = {
    "resource_id": "目录",
    "key_item": "主键",
    "items": "信息项",
    "keys": "关联键",
}


def _base_candidates(db: Session) -> list[Resource]:
    """Published 基础信息资源 entries with neither a shared store nor a base yet."""
    taken = set(db.scalars(select(SharedStore.resource_id)))
    q = select(Resource).where(Resource.listed.is_(True), Resource.kind == ResourceKind.BASE)
    return [r for r in db.scalars(q.order_by(Resource.name)) if r.id not in taken]


def _source_columns(db: Session) -> list[tuple[str, str]]:
    """(``store_id:column``, label) of every item of every exchange-fed store."""
    out = []
    stores = db.scalars(
        select(SharedStore).where(SharedStore.source_task_id.is_not(None)).order_by(SharedStore.id)
    )
    for store in stores:
        names = {it.code: it.name for it in store.resource.items}
        for code in sorted(set(store.mapping.values())):
            label = (
                f"{store.resource.name}（{store.resource.provider.name}）· {names.get(code, code)}"
            )
            out.append((f"{store.id}:{code}", label))
    return out


def _new_page(
    request: Request,
    db: Session,
    caller: Principal,
    *,
    resource_id: int | None,
    values: dict[str, Any] | None = None,
    errors: FormErrors = NO_ERRORS,
    status_code: int = 200,
) -> Response:
    if not caller.is_admin:
        raise NotYourDepartment("只有平台管理员可以定义基础库")
    candidates = _base_candidates(db)
    resource = next((r for r in candidates if r.id == resource_id), None)
    return _page(
        request,
        "basedata/new.html",
        caller,
        status_code=status_code,
        nav="/basedata",
        candidates=candidates,
        resource=resource,
        columns=_source_columns(db),
        v=values or {},
        errors=errors,
    )


@router.get("/basedata/new")
def new_base_page(
    request: Request, db: SessionDep, caller: SharingStoreAdmin, resource_id: str = ""
) -> Response:
    """定义基础库: pick a published 基础信息资源 entry, then each item's authoritative
    source and evidence sources among the exchange-fed stores' items."""
    wanted = parse_id(resource_id)
    return _new_page(request, db, caller, resource_id=wanted)


def _ref(value: str) -> dict[str, Any] | None:
    store, _, column = value.partition(":")
    if not store.isdigit() or not column:
        return None
    return {"store_id": int(store), "column": column}


@router.post("/basedata/new")
def create_base(
    request: Request,
    db: SessionDep,
    settings: SettingsDep,
    caller: SharingStoreAdmin,
    form: FormDep,
) -> Response:
    """A refused definition is shown again with what is wrong beside each item."""
    resource_id = text(form, "resource_id")
    rid = parse_id(resource_id)
    if not caller.is_admin:
        raise NotYourDepartment("只有平台管理员可以定义基础库")
    codes = texts(form, "item")
    sources = texts(form, "source")
    items: list[dict[str, Any]] = []
    free = texts(form, "unconditional")
    values: dict[str, Any] = {
        "key_item": text(form, "key_item"),
        "items": {},
        "unconditional": free,
    }
    for code, source in zip(codes, sources, strict=False):
        evidence = [ref for ref in (_ref(e) for e in texts(form, f"evidence_{code}")) if ref]
        values["items"][code] = {"source": source, "evidence": texts(form, f"evidence_{code}")}
        ref = _ref(source)
        if ref is None:
            continue  # an item without a source is not in the base
        items.append(
            {"item": code, "source": ref, "evidence": evidence, "unconditional": code in free}
        )
    try:
        data = BaseCreate.model_validate(
            {"resource_id": rid or 0, "key_item": values["key_item"], "items": items}
        )
        base = service.create_base(
            db, caller, data, sealing=settings.field_sealing, seal_key=newest_key(settings)
        )
    except ValidationError as exc:
        problems = validation_problems(exc)
        if not items:
            problems = [{"field": "items", "message": "请至少为一个信息项选择权威来源"}]
        errors = FormErrors("基础库定义不完整", problems, label=_form_label)
        return _new_page(
            request, db, caller, resource_id=rid, values=values, errors=errors, status_code=422
        )
    except InvalidInput as exc:
        db.rollback()
        errors = FormErrors(exc.message, exc.details, label=_form_label)
        return _new_page(
            request, db, caller, resource_id=rid, values=values, errors=errors, status_code=422
        )
    db.commit()
    return redirect(f"/basedata?done=defined#base-{base.id}")


def _form_label(field: str) -> str:
    head = field.split(".")[0].split("[")[0]
    return FORM_LABELS.get(head, field)
