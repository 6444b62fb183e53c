"""Objections (异议) to shared records: the consumer's and the provider's lists, raising
one against a grant in force, and the provider's answer (accept with the corrected
values, or reject with a reason)."""

from __future__ import annotations

from collections import Counter
from datetime import date
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import ValidationError
from sqlalchemy.orm import Session

from govshare.config import Settings
from govshare.deps import SessionDep, SettingsDep, SharingApplicant, SharingReader, SharingReviewer
from govshare.errors import Conflict, Forbidden, InvalidInput, NotFound
from govshare.ids import Id
from govshare.rules.masking import mask_id_number
from govshare.security.roles import Permission
from govshare.security.service import Principal
from govshare.sharing import objections, service
from govshare.sharing.errors import NotYourDepartment
from govshare.sharing.models import Objection, ObjectionStatus
from govshare.sharing.pages.common import (
    Countdown,
    Today,
    _item_names,
    _labels,
    _page,
    _paged,
    deadline_countdown,
)
from govshare.sharing.schemas import ObjectionAnswer, ObjectionCreate
from govshare.web.filters import local_date, local_time
from govshare.web.forms import (
    NO_ERRORS,
    FormDep,
    FormErrors,
    Problem,
    optional_int,
    redirect,
    text,
    validation_problems,
)

router = APIRouter(include_in_schema=False)

# -- objections (异议) ------------------------------------------------------------------------

OBJECTION_CLASSES: dict[ObjectionStatus, str] = {
    ObjectionStatus.OPEN: "tag-warn",
    ObjectionStatus.ACCEPTED: "sharing-2",
    ObjectionStatus.REJECTED: "tag-danger",
    ObjectionStatus.CORRECTED: "tag-open",
}
OBJECTION_LABELS: dict[str, str] = {
    "grant_id": "授权",
    "record_key": "记录的查询键",
    "claimed": "认为正确的值",
    "evidence": "证明材料",
    "answer": "答复意见",
    "reason": "不予更正的理由",
    "correction": "更正后的值",
}


def objection_countdown(obj: Objection, today: date, *, remind_before: int) -> Countdown | None:
    """The provider's answer deadline while the objection waits; None once answered."""
    if obj.status is not ObjectionStatus.OPEN:
        return None
    return deadline_countdown(
        "答复", obj.answer_due, today, remind_before, provisional=obj.answer_due_provisional
    )


def shown_key(obj: Objection, caller: Principal, record_key: str) -> str:
    """The record key (an ID number, opened) in full for the two parties, masked for
    others."""
    if caller.department_id in (obj.consumer_department_id, obj.provider_department_id):
        return record_key
    return mask_id_number(record_key)


def objection_timeline(obj: Objection) -> list[dict[str, str]]:
    """Raised, due, answered, corrected through the exchange, archived."""
    steps = [
        {
            "when": local_date(obj.raised_on),
            "what": "提出异议",
            "who": obj.raised_by,
            "note": obj.consumer.name,
        }
    ]
    if obj.status is ObjectionStatus.OPEN:
        steps.append(
            {"when": local_date(obj.answer_due), "what": "答复期限", "who": "", "note": ""}
        )
    if obj.answered_on:
        accepted = obj.status in (ObjectionStatus.ACCEPTED, ObjectionStatus.CORRECTED)
        steps.append(
            {
                "when": local_date(obj.answered_on),
                "what": "确认异议，由数源部门更正" if accepted else "不予更正",
                "who": obj.answered_by or "",
                "note": obj.answer,
            }
        )
    if obj.status is ObjectionStatus.CORRECTED:
        steps.append(
            {
                "when": local_time(obj.archived_at),
                "what": f"更正数据经交换到达共享信息库（数据包序号 {obj.corrected_seq}）",
                "who": "",
                "note": "",
            }
        )
    if obj.archived_at:
        steps.append({"when": local_time(obj.archived_at), "what": "归档", "who": "", "note": ""})
    return steps


def _objection_status(value: str, default: str) -> str:
    return value if value in {"all", *(s.value for s in ObjectionStatus)} else default


def _objections_page(
    request: Request,
    db: Session,
    settings: Settings,
    caller: Principal,
    today: date,
    *,
    side: str,
    status: str,
    p: str,
) -> Response:
    rows = objections.list_objections(db, caller, side=side)
    counts = Counter(o.status for o in rows)
    if status != "all":
        rows = [o for o in rows if o.status == status]
    if side != "mine" and status == ObjectionStatus.OPEN.value:
        rows.sort(key=lambda o: (o.answer_due, o.id))  # nearest deadline first
    page = _paged(rows, p)
    remind = settings.remind_working_days_before
    here = "/sharing/objections" if side == "mine" else "/sharing/objections/provider"
    return _page(
        request,
        "sharing/objections.html",
        caller,
        nav=here,
        here=here,
        side=side,
        heading="我提出的异议" if side == "mine" else "针对本部门数据的异议",
        status=status,
        statuses=list(ObjectionStatus),
        counts=counts,
        total=sum(counts.values()),
        page=page,
        countdowns={o.id: objection_countdown(o, today, remind_before=remind) for o in page.rows},
        masked={
            o.id: mask_id_number(objections.text_of(o, settings).record_key) for o in page.rows
        },
        item_names={o.id: {it.code: it.name for it in o.resource.items} for o in page.rows},
        objection_classes=OBJECTION_CLASSES,
        answer_days=settings.objection_working_days,
        remind_before=remind,
    )


@router.get("/sharing/objections")
def my_objections(
    request: Request,
    db: SessionDep,
    settings: SettingsDep,
    caller: SharingReader,
    today: Today,
    status: str = "all",
    p: str = "",
) -> Response:
    """我提出的异议: records of other departments' data the caller's department flagged."""
    return _objections_page(
        request,
        db,
        settings,
        caller,
        today,
        side="mine",
        status=_objection_status(status, "all"),
        p=p,
    )


@router.get("/sharing/objections/provider")
def provider_objections(
    request: Request,
    db: SessionDep,
    settings: SettingsDep,
    caller: SharingReader,
    today: Today,
    status: str = "open",
    p: str = "",
) -> Response:
    """针对本部门数据的异议 (for the platform: every objection), nearest deadline first."""
    return _objections_page(
        request,
        db,
        settings,
        caller,
        today,
        side="all" if caller.is_admin else "provider",
        status=_objection_status(status, "open"),
        p=p,
    )


def _raise_page(
    request: Request,
    db: Session,
    caller: Principal,
    today: date,
    *,
    grant_id: Id | None,
    values: dict[str, Any] | None = None,
    errors: FormErrors = NO_ERRORS,
    status_code: int = 200,
) -> Response:
    held = [g for g in service.list_grants(db, caller, side="mine") if service.is_active(g, today)]
    grant = next((g for g in held if g.id == grant_id), None)
    return _page(
        request,
        "sharing/objection_new.html",
        caller,
        status_code=status_code,
        nav="/sharing/objections",
        held=held,
        grant=grant,
        item_names=_item_names(grant) if grant else {},
        v=values or {"claimed": {}},
        errors=errors,
        claimed_failed=any(p["field"].startswith("claimed") for p in errors.problems),
        answer_days=request.app.state.settings.objection_working_days,
    )


@router.get("/sharing/objections/new")
def objection_form(
    request: Request, db: SessionDep, caller: SharingApplicant, today: Today, grant_id: str = ""
) -> Response:
    """提出异议: pick one of the department's grants in force, then the record and the
    values believed right for its granted items."""
    return _raise_page(
        request, db, caller, today, grant_id=int(grant_id) if grant_id.isdigit() else None
    )


@router.post("/sharing/objections/new")
def submit_objection(
    request: Request,
    form: FormDep,
    db: SessionDep,
    settings: SettingsDep,
    caller: SharingApplicant,
    today: Today,
) -> Response:
    grant_id = optional_int(text(form, "grant_id"))
    claimed = {
        str(key).removeprefix("claimed_"): text(form, str(key))
        for key in form
        if str(key).startswith("claimed_")
    }
    values = {
        "grant_id": text(form, "grant_id"),
        "record_key": text(form, "record_key"),
        "claimed": claimed,
        "evidence": text(form, "evidence"),
    }
    label = _labels(OBJECTION_LABELS)
    problems: list[Problem] = []
    if not isinstance(grant_id, int):
        problems.append({"field": "grant_id", "message": "请选择本部门持有的有效授权"})
    if not values["record_key"]:
        problems.append({"field": "record_key", "message": "请填写有异议的记录的查询键"})
    if not any(claimed.values()):
        problems.append({"field": "claimed", "message": "请至少填写一个信息项的正确值"})
    if not values["evidence"]:
        problems.append({"field": "evidence", "message": "请说明证明材料"})
    try:
        data = ObjectionCreate.model_validate(
            {
                "grant_id": grant_id if isinstance(grant_id, int) else 0,
                "record_key": values["record_key"],
                "claimed": {k: v for k, v in claimed.items() if v},
                "evidence": values["evidence"],
            }
        )
    except ValidationError as exc:
        reported = {p["field"] for p in problems}
        problems += [p for p in validation_problems(exc) if p["field"] not in reported]
    if problems:
        errors = FormErrors("异议信息不完整，请按提示修改", problems, label=label)
    else:
        try:
            obj = objections.raise_objection(db, settings, caller, data, today=today)
        except (InvalidInput, NotFound, Forbidden, Conflict) as exc:
            db.rollback()
            details = exc.details or [{"field": "grant_id", "message": exc.message}]
            errors = FormErrors(exc.message, details, label=label)
        else:
            db.commit()
            return redirect(f"/sharing/objections/{obj.id}?done=objection_raised")
    return _raise_page(
        request,
        db,
        caller,
        today,
        grant_id=grant_id if isinstance(grant_id, int) else None,
        values=values,
        errors=errors,
        status_code=422,
    )


def _objection_page(
    request: Request,
    db: Session,
    settings: Settings,
    caller: Principal,
    today: date,
    objection_id: Id,
    *,
    failed: str = "",
    values: dict[str, Any] | None = None,
    errors: FormErrors = NO_ERRORS,
    status_code: int = 200,
) -> Response:
    obj = objections.get_visible(db, caller, objection_id)
    said = objections.text_of(obj, settings)
    provider = caller.department_id == obj.provider_department_id
    consumer = caller.department_id == obj.consumer_department_id
    return _page(
        request,
        "sharing/objection.html",
        caller,
        status_code=status_code,
        nav="/sharing/objections/provider" if provider and not consumer else "/sharing/objections",
        obj=obj,
        text=said,
        record_key=shown_key(obj, caller, said.record_key),
        item_names={it.code: it.name for it in obj.resource.items},
        countdown=objection_countdown(
            obj, today, remind_before=settings.remind_working_days_before
        ),
        steps=objection_timeline(obj),
        objection_classes=OBJECTION_CLASSES,
        can_answer=provider
        and caller.can(Permission.SHARING_REVIEW)
        and obj.status is ObjectionStatus.OPEN,
        failed=failed,
        v=values or {"correction": dict(said.claimed)},
        errors=errors,
    )


@router.get("/sharing/objections/{objection_id}")
def objection_page(
    objection_id: Id,
    request: Request,
    db: SessionDep,
    settings: SettingsDep,
    caller: SharingReader,
    today: Today,
) -> Response:
    return _objection_page(request, db, settings, caller, today, objection_id)


def _answerable(db: Session, caller: Principal, objection_id: Id) -> Objection:
    """The objection, if the caller's department is the provider that must answer it;
    checked before the form so that no one else is shown a form's errors."""
    obj = objections.get_visible(db, caller, objection_id)
    if caller.department_id != obj.provider_department_id:
        raise NotYourDepartment("只有数据提供部门可以答复异议")
    return obj


def _objection_failed(
    request: Request,
    db: Session,
    settings: Settings,
    caller: Principal,
    today: date,
    objection_id: Id,
    failed: str,
    values: dict[str, Any],
    errors: FormErrors,
) -> Response:
    db.rollback()
    return _objection_page(
        request,
        db,
        settings,
        caller,
        today,
        objection_id,
        failed=failed,
        values=values,
        errors=errors,
        status_code=422,
    )


@router.post("/sharing/objections/{objection_id}/accept")
def accept_objection(
    objection_id: Id,
    request: Request,
    form: FormDep,
    db: SessionDep,
    settings: SettingsDep,
    caller: SharingReviewer,
    today: Today,
) -> Response:
    """确认: the values to correct to (those claimed unless changed) and an answer; the
    correction itself is made in the provider's own system and arrives by exchange."""
    obj = _answerable(db, caller, objection_id)
    correction = {code: text(form, f"correction_{code}") for code in obj.claimed}
    values = {"correction": correction, "answer": text(form, "answer")}
    label = _labels(OBJECTION_LABELS)
    problems: list[Problem] = []
    if not values["answer"]:
        problems.append({"field": "answer", "message": "请填写答复意见"})
    if not any(correction.values()):
        problems.append({"field": "correction", "message": "请至少填写一项更正后的值"})
    try:
        data = ObjectionAnswer.model_validate(
            {
                "accept": True,
                "answer": values["answer"],
                "correction": {k: v for k, v in correction.items() if v},
            }
        )
    except ValidationError as exc:
        reported = {p["field"] for p in problems}
        problems += [p for p in validation_problems(exc) if p["field"] not in reported]
    if problems:
        errors = FormErrors("答复信息不完整", problems, label=label)
    else:
        try:
            objections.answer(db, settings, caller, obj, data, today=today)
        except (InvalidInput, Conflict) as exc:
            errors = FormErrors(exc.message, exc.details, label=label)
        else:
            db.commit()
            return redirect(f"/sharing/objections/{objection_id}?done=objection_accepted")
    return _objection_failed(
        request, db, settings, caller, today, objection_id, "accept", values, errors
    )


@router.post("/sharing/objections/{objection_id}/reject")
def reject_objection(
    objection_id: Id,
    request: Request,
    form: FormDep,
    db: SessionDep,
    settings: SettingsDep,
    caller: SharingReviewer,
    today: Today,
) -> Response:
    """不予更正: the reason is mandatory; without one nothing changes."""
    obj = _answerable(db, caller, objection_id)
    values = {"reason": text(form, "reason")}
    label = _labels(OBJECTION_LABELS)
    errors = NO_ERRORS
    if not values["reason"]:
        errors = FormErrors(
            "不予更正须说明理由",
            [{"field": "reason", "message": "不予更正须说明理由和依据"}],
            label=label,
        )
    else:
        try:
            data = ObjectionAnswer(accept=False, answer=values["reason"])
            objections.answer(db, settings, caller, obj, data, today=today)
        except ValidationError as exc:
            problems = [
                {**p, "field": "reason"} for p in validation_problems(exc) if p["field"] == "answer"
            ]
            errors = FormErrors("不予更正的理由有误", problems, label=label)
        except (InvalidInput, Conflict) as exc:
            errors = FormErrors(exc.message, exc.details, label=label)
        else:
            db.commit()
            return redirect(f"/sharing/objections/{objection_id}?done=objection_rejected")
    return _objection_failed(
        request, db, settings, caller, today, objection_id, "reject", values, errors
    )
