"""Console pages of the base databases (基础库): the list with each base's sources and
state, and the conflicts (多元校核) an authoritative department works."""

from __future__ import annotations

from datetime import date
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from govshare.basedata import service
from govshare.basedata.models import BaseConflict, BaseDatabase, ConflictStatus
from govshare.basedata.schemas import ConflictConfirm
from govshare.config import Settings
from govshare.db import utcnow
from govshare.deps import SessionDep, SettingsDep, SharingReader, SharingReviewer
from govshare.errors import Conflict, InvalidInput, NotFound
from govshare.ids import Id
from govshare.rules.clock import china_today
from govshare.rules.masking import mask_id_number
from govshare.security.service import Principal
from govshare.sharing.models import SharedStore
from govshare.sharing.store import SharedDatabase
from govshare.web.forms import NO_ERRORS, FormDep, FormErrors, redirect, render, text

router = APIRouter(include_in_schema=False)
PAGE_SIZE = 20
NOTICES = {
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
        rows={b.id: (s.row_count if s else 0) for b, s in ((b, served[b.id]) for b in bases)},
        counts={b.id: service.stats(db, b) for b in bases},
        item_names={b.id: _item_names(b) for b in bases},
        lookup=lookup,
    )


def _shown_key(c: BaseConflict, caller: Principal) -> str:
    # The authoritative department sees the ID number it must look up; others masked.
    return c.record_key if caller.department_id == c.department_id else mask_id_number(c.record_key)


@router.get("/basedata/conflicts")
def conflicts_page(
    request: Request, db: SessionDep, caller: SharingReader, status: str = "open", after: str = ""
) -> Response:
    """基础库冲突: the caller's department's (the platform admin: all) conflicts by state,
    newest first, a page at a time."""
    wanted = next((s for s in ConflictStatus if s.value == status), None)
    start = int(after) if after.isdigit() and 0 < int(after) < 2**31 else None
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
        keys={c.id: _shown_key(c, caller) for c in rows},
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
        key=_shown_key(conflict, caller),
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
            service.confirm_conflict(db, settings, caller, conflict_id, body, utcnow())
        elif action == "accept":
            service.accept_conflict(
                db, settings, caller, conflict_id, body, utcnow(), china_today()
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
