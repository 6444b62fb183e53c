"""Applications (共享申请): applying for a catalog entry with a structured row filter, the
consumer's and the provider's lists with their working-day countdowns, the application
page with its answer, dispute and decision forms, and the platform's dispute list."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from datetime import date, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import ValidationError
from sqlalchemy.orm import Session
from starlette.datastructures import FormData

from govshare.catalog import service as catalog_service
from govshare.catalog.codes import SharingType
from govshare.config import Settings
from govshare.deps import (
    SessionDep,
    SettingsDep,
    SharingApplicant,
    SharingArbiter,
    SharingReader,
    SharingReviewer,
)
from govshare.errors import InvalidInput
from govshare.ids import Id
from govshare.security.roles import Permission
from govshare.security.service import Principal
from govshare.sharing import service
from govshare.sharing.models import (
    ApplicationStatus,
    DisputeOutcome,
    MaskingRule,
    SharingApplication,
    SharingGrant,
    SharingMode,
)
from govshare.sharing.pages.common import (
    ANSWER_LABELS,
    Today,
    _item_names,
    _labels,
    _page,
    _paged,
    countdown,
    grant_state,
)
from govshare.sharing.schemas import ApplicationCreate, ApproveIn, DecisionIn, ReasonIn
from govshare.web.filters import local_date, local_time
from govshare.web.forms import (
    NO_ERRORS,
    FormDep,
    FormErrors,
    Problem,
    redirect,
    text,
    texts,
    validation_problems,
)

router = APIRouter(include_in_schema=False)

MODE_HINTS: dict[SharingMode, str] = {
    SharingMode.QUERY: "按条件查询数据",
    SharingMode.SUBSCRIPTION: "通过交换任务接收数据",
    SharingMode.VERIFICATION: "只返回是/否或状态，数据不落地",
}
# Pseudo-status of the lists: waiting for the provider (to answer or to provide).
OPEN_STATUSES = (ApplicationStatus.SUBMITTED, ApplicationStatus.APPROVED)

APPLY_LABELS: dict[str, str] = {
    "resource_id": "目录",
    "purpose": "业务用途",
    "legal_basis": "共享依据",
    "items": "申请的信息项",
    "row_scope": "数据范围",
    "row_filter": "行过滤条件",
    "mode": "共享方式",
    "users": "使用人员或系统",
    "end_date": "使用截止日期",
}


# -- apply (申请共享) ----------------------------------------------------------------------


def _apply_page(
    request: Request,
    db: Session,
    caller: Principal,
    today: date,
    resource_id: Id,
    *,
    values: dict[str, Any] | None = None,
    errors: FormErrors = NO_ERRORS,
    status_code: int = 200,
) -> Response:
    resource, snap = catalog_service.visible_resource(db, caller, resource_id)
    sharing_type = SharingType(str(snap["sharing_type"]))
    blocked = ""
    if sharing_type is SharingType.NOT_SHARED:
        blocked = "not_shared"
    elif resource.provider_department_id == caller.department_id:
        blocked = "own"
    elif not resource.listed:
        blocked = "unlisted"
    return _page(
        request,
        "sharing/apply.html",
        caller,
        status_code=status_code,
        nav="/catalog",
        resource=resource,
        snap=snap,
        sharing_type=sharing_type,
        blocked=blocked,
        modes=list(SharingMode),
        mode_hints=MODE_HINTS,
        today=today,
        v=values or {"items": [], "mode": SharingMode.QUERY.value, "row_filter": []},
        filter_rows=max(ROW_FILTER_ROWS, len((values or {}).get("row_filter", [])) + 1),
        filter_ops=ROW_FILTER_OPS,
        filter_failed=any(p["field"].startswith("row_filter") for p in errors.problems),
        errors=errors,
        held=[
            g
            for g in service.list_grants(db, caller, side="mine")
            if g.resource_id == resource.id and service.is_active(g, today)
        ],
    )


@router.get("/sharing/apply/{resource_id}")
def apply_form(
    resource_id: Id, request: Request, db: SessionDep, caller: SharingApplicant, today: Today
) -> Response:
    return _apply_page(request, db, caller, today, resource_id)


ROW_FILTER_ROWS = 3  # empty condition rows the apply form offers
ROW_FILTER_OPS: dict[str, str] = {
    "eq": "等于",
    "in": "属于（多个值以逗号分隔）",
    "prefix": "以…开头",
}


def _filter_rows(form: FormData) -> list[dict[str, str]]:
    """The structured row filter's rows as typed, blank rows left out, so that the
    n-th row shown is ``row_filter[n]`` of the schema and the service."""
    items, ops, values = texts(form, "rf_item"), texts(form, "rf_op"), texts(form, "rf_value")
    rows = []
    for i in range(max(len(items), len(ops), len(values))):
        row = {
            "item": items[i] if i < len(items) else "",
            "op": (ops[i] if i < len(ops) else "") or "eq",
            "value": values[i] if i < len(values) else "",
        }
        if row["item"] or row["value"]:
            rows.append(row)
    return rows


def _row_filter(rows: list[dict[str, str]]) -> list[dict[str, Any]] | None:
    """Rows as ``RowCondition``s: ``in`` takes a list (split at commas, 、 or spaces)."""
    conditions: list[dict[str, Any]] = []
    for row in rows:
        value: str | list[str] = row["value"]
        if row["op"] == "in":
            value = [v for v in re.split(r"[,，、\s]+", row["value"]) if v]
        conditions.append({"item": row["item"], "op": row["op"], "value": value})
    return conditions or None


def _application_values(form: FormData) -> dict[str, Any]:
    return {
        "purpose": text(form, "purpose"),
        "legal_basis": text(form, "legal_basis"),
        "items": [c for c in texts(form, "items") if c],
        "row_scope": text(form, "row_scope"),
        "row_filter": _filter_rows(form),
        "mode": text(form, "mode"),
        "users": text(form, "users"),
        "end_date": text(form, "end_date"),
    }


def _application_problems(values: dict[str, Any]) -> list[Problem]:
    """What the form itself lacks, in words for the person at the form; the schema's
    messages for the same fields are dropped (one message a field is enough)."""
    problems: list[Problem] = []
    for name in ("purpose", "legal_basis", "users"):
        if not values[name]:
            problems.append({"field": name, "message": "必填"})
    if not values["items"]:
        problems.append({"field": "items", "message": "请至少选择一个信息项"})
    if not values["mode"]:
        problems.append({"field": "mode", "message": "请选择共享方式"})
    for i, row in enumerate(values["row_filter"]):
        if not row["item"]:
            problems.append({"field": f"row_filter[{i}].item", "message": "请选择信息项"})
        if row["op"] not in ROW_FILTER_OPS:
            problems.append({"field": f"row_filter[{i}].op", "message": "取值不在可选范围内"})
        if not row["value"]:
            problems.append({"field": f"row_filter[{i}].value", "message": "请填写条件的值"})
    if not values["end_date"]:
        problems.append({"field": "end_date", "message": "请填写使用截止日期"})
    else:
        try:
            date.fromisoformat(values["end_date"])
        except ValueError:
            problems.append({"field": "end_date", "message": "日期格式应为 年-月-日"})
    return problems


@router.post("/sharing/apply/{resource_id}")
def submit_application(
    resource_id: Id,
    request: Request,
    form: FormDep,
    db: SessionDep,
    settings: SettingsDep,
    caller: SharingApplicant,
    today: Today,
) -> Response:
    values = _application_values(form)
    problems = _application_problems(values)
    label = _labels(APPLY_LABELS)
    try:
        data = ApplicationCreate.model_validate(
            {**values, "row_filter": _row_filter(values["row_filter"]), "resource_id": resource_id}
        )
    except ValidationError as exc:
        reported = {p["field"].split("[")[0] for p in problems}
        problems += [
            p for p in validation_problems(exc) if p["field"].split("[")[0] not in reported
        ]
    if problems:
        errors = FormErrors("申请信息不完整，请按提示修改", problems, label=label)
    else:
        try:
            app = service.apply(db, settings, caller, data, today=today)
        except InvalidInput as exc:  # 不予共享, own entry, end date, unknown items
            db.rollback()
            errors = FormErrors(exc.message, exc.details, label=label)
        else:
            db.commit()
            done = "granted" if app.unconditional else "applied"
            return redirect(f"/sharing/applications/{app.id}?done={done}")
    return _apply_page(
        request, db, caller, today, resource_id, values=values, errors=errors, status_code=422
    )


# -- application lists (我的申请, 待我答复) ------------------------------------------------------


def _status_filter(value: str, default: str) -> str:
    known = {"all", "open", *(s.value for s in ApplicationStatus)}
    return value if value in known else default


def _applications_page(
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
    rows = service.list_applications(db, caller, side=side)
    counts = Counter(a.status for a in rows)
    if status == "open":
        rows = [a for a in rows if a.status in OPEN_STATUSES]
    elif status != "all":
        rows = [a for a in rows if a.status == status]
    remind = settings.remind_working_days_before
    if side == "provider" and status in ("open", ApplicationStatus.SUBMITTED.value):
        # Work to the nearest deadline first.
        rows.sort(key=lambda a: (a.answer_due or a.provide_due or date.max, a.id))
    page = _paged(rows, p)
    return _page(
        request,
        "sharing/applications.html",
        caller,
        side=side,
        heading="我的申请" if side == "mine" else "待我答复",
        here="/sharing/applications" if side == "mine" else "/sharing/queue",
        status=status,
        statuses=list(ApplicationStatus),
        counts=counts,
        open_count=sum(counts[s] for s in OPEN_STATUSES),
        total=sum(counts.values()),
        page=page,
        countdowns={a.id: countdown(a, today, remind_before=remind) for a in page.rows},
        remind_before=remind,
        answer_days=settings.answer_working_days,
        provide_days=settings.provide_working_days,
    )


@router.get("/sharing/applications")
def my_applications(
    request: Request,
    db: SessionDep,
    settings: SettingsDep,
    caller: SharingReader,
    today: Today,
    status: str = "all",
    p: str = "",
) -> Response:
    """我的申请: what the caller's department asked other departments for."""
    return _applications_page(
        request,
        db,
        settings,
        caller,
        today,
        side="mine",
        status=_status_filter(status, "all"),
        p=p,
    )


@router.get("/sharing/queue")
def review_queue(
    request: Request,
    db: SessionDep,
    settings: SettingsDep,
    caller: SharingReviewer,
    today: Today,
    status: str = "open",
    p: str = "",
) -> Response:
    """待我答复: applications for the caller's department's entries, nearest deadline first."""
    return _applications_page(
        request,
        db,
        settings,
        caller,
        today,
        side="provider",
        status=_status_filter(status, "open"),
        p=p,
    )


# -- one application ---------------------------------------------------------------------


def _refused(app: SharingApplication) -> bool:
    return app.disputed_at is not None or app.status in (
        ApplicationStatus.REFUSED,
        ApplicationStatus.DISPUTED,
        ApplicationStatus.REFUSAL_UPHELD,
    )


def timeline(app: SharingApplication, grant: SharingGrant | None) -> list[dict[str, str]]:
    """The dated steps of an application, as the audit trail records them: submitted,
    answered, provided, disputed, decided, and the grant's revocation."""
    steps = [
        {
            "when": local_date(app.submitted_on),
            "what": "提交申请",
            "who": app.applicant,
            "note": app.consumer.name,
        }
    ]
    if app.answer_due and not app.answered_on:
        steps.append(
            {"when": local_date(app.answer_due), "what": "答复期限", "who": "", "note": ""}
        )
    if app.answered_on:
        if app.unconditional:
            what = "自动授权（无条件共享）"
        else:
            what = "拒绝" if _refused(app) else "同意"
        steps.append(
            {
                "when": local_date(app.answered_on),
                "what": what,
                "who": app.answered_by or "",
                "note": app.answer_reason,
            }
        )
    if app.disputed_at:
        steps.append(
            {
                "when": local_time(app.disputed_at),
                "what": "提出争议",
                "who": app.consumer.name,
                "note": app.dispute_reason,
            }
        )
    if app.dispute_decided_at and app.dispute_outcome:
        steps.append(
            {
                "when": local_time(app.dispute_decided_at),
                "what": f"平台裁决：{app.dispute_outcome.label}",
                "who": app.dispute_decided_by or "",
                "note": app.dispute_decision,
            }
        )
    if app.provide_due and not app.provided_on:
        steps.append(
            {"when": local_date(app.provide_due), "what": "提供期限", "who": "", "note": ""}
        )
    if app.provided_on:
        steps.append(
            {"when": local_date(app.provided_on), "what": "已提供数据", "who": "", "note": ""}
        )
    if grant and grant.revoked and grant.revoked_at:
        steps.append(
            {
                "when": local_time(grant.revoked_at),
                "what": "撤销授权",
                "who": grant.revoked_by or "",
                "note": grant.revoke_reason,
            }
        )
    return steps


def _application_page(
    request: Request,
    db: Session,
    settings: Settings,
    caller: Principal,
    today: date,
    application_id: Id,
    *,
    failed: str = "",
    values: dict[str, Any] | None = None,
    errors: FormErrors = NO_ERRORS,
    status_code: int = 200,
) -> Response:
    app = service.get_visible_application(db, caller, application_id)
    grant = service.grant_of(db, app.id)
    provider = caller.department_id == app.provider_department_id
    consumer = caller.department_id == app.consumer_department_id
    answering = provider and caller.can(Permission.SHARING_REVIEW)
    return _page(
        request,
        "sharing/application.html",
        caller,
        status_code=status_code,
        nav="/sharing/queue" if provider and not consumer else "/sharing/applications",
        app=app,
        grant=grant,
        grant_state=grant_state(grant, today) if grant else None,
        item_names=_item_names(app),
        countdown=countdown(app, today, remind_before=settings.remind_working_days_before),
        steps=timeline(app, grant),
        can_answer=answering and app.status is ApplicationStatus.SUBMITTED,
        can_provide=answering and app.status is ApplicationStatus.APPROVED,
        can_dispute=consumer
        and caller.can(Permission.SHARING_APPLY)
        and app.status is ApplicationStatus.REFUSED,
        can_decide=caller.can(Permission.SHARING_ARBITRATE)
        and app.status is ApplicationStatus.DISPUTED,
        outcomes=list(DisputeOutcome),
        failed=failed,
        # A sensitive item's rule is chosen already: approving as shown masks it.
        v=values or {"items": list(app.items), "masking": service.default_masking(app.resource)},
        sensitive=app.resource.sensitive_codes,
        errors=errors,
    )


@router.get("/sharing/applications/{application_id}")
def application_page(
    application_id: Id,
    request: Request,
    db: SessionDep,
    settings: SettingsDep,
    caller: SharingReader,
    today: Today,
) -> Response:
    return _application_page(request, db, settings, caller, today, application_id)


def _answer_failed(
    request: Request,
    db: Session,
    settings: Settings,
    caller: Principal,
    today: date,
    application_id: Id,
    failed: str,
    values: dict[str, Any],
    errors: FormErrors,
) -> Response:
    db.rollback()
    return _application_page(
        request,
        db,
        settings,
        caller,
        today,
        application_id,
        failed=failed,
        values=values,
        errors=errors,
        status_code=422,
    )


@router.post("/sharing/applications/{application_id}/approve")
def approve_application(
    application_id: Id,
    request: Request,
    form: FormDep,
    db: SessionDep,
    settings: SettingsDep,
    caller: SharingReviewer,
    today: Today,
) -> Response:
    """同意: a subset of the requested items, with a masking rule for each."""
    app = service.get_visible_application(db, caller, application_id)
    items = [c for c in texts(form, "items") if c]
    masking = {code: text(form, f"masking_{code}") or MaskingRule.NONE.value for code in items}
    values = {"items": items, "masking": masking, "reason": text(form, "reason")}

    def approve() -> None:
        data = ApproveIn.model_validate(
            {
                "items": items,
                "masking": {c: r for c, r in masking.items() if r != MaskingRule.NONE.value},
                "reason": values["reason"],
            }
        )
        service.approve(db, settings, caller, app, data, today=today)

    return _answer_step(
        request, db, settings, caller, today, app.id, "approve", values, "答复信息有误", approve
    )


def _answer_step(
    request: Request,
    db: Session,
    settings: Settings,
    caller: Principal,
    today: date,
    application_id: Id,
    step: str,
    values: dict[str, Any],
    problem: str,
    act: Callable[[], object],
) -> Response:
    """Run one answer of the application page (``act`` validates and calls the service):
    on success back to the page with its notice, otherwise the page again with the
    form as filled in, ``problem`` heading the errors, and nothing changed."""
    label = _labels(ANSWER_LABELS)
    try:
        act()
    except ValidationError as exc:
        errors = FormErrors(problem, validation_problems(exc), label=label)
    except InvalidInput as exc:
        errors = FormErrors(exc.message, exc.details, label=label)
    else:
        db.commit()
        return redirect(f"/sharing/applications/{application_id}?done={ANSWERED[step]}")
    return _answer_failed(
        request, db, settings, caller, today, application_id, step, values, errors
    )


ANSWERED = {"approve": "approved", "refuse": "refused", "dispute": "disputed"}


@router.post("/sharing/applications/{application_id}/refuse")
def refuse_application(
    application_id: Id,
    request: Request,
    form: FormDep,
    db: SessionDep,
    settings: SettingsDep,
    caller: SharingReviewer,
    today: Today,
) -> Response:
    """不同意: the reason is mandatory; without one nothing changes."""
    app = service.get_visible_application(db, caller, application_id)
    values = {"reason": text(form, "reason")}

    def refuse() -> None:
        service.refuse(db, caller, app, ReasonIn.model_validate(values).reason, today=today)

    return _answer_step(
        request, db, settings, caller, today, app.id, "refuse", values, "拒绝理由有误", refuse
    )


@router.post("/sharing/applications/{application_id}/provide")
def provide_application(
    application_id: Id, db: SessionDep, caller: SharingReviewer, today: Today
) -> Response:
    app = service.get_visible_application(db, caller, application_id)
    service.mark_provided(db, caller, app, today=today)
    db.commit()
    return redirect(f"/sharing/applications/{application_id}?done=provided")


@router.post("/sharing/applications/{application_id}/dispute")
def dispute_application(
    application_id: Id,
    request: Request,
    form: FormDep,
    db: SessionDep,
    settings: SettingsDep,
    caller: SharingApplicant,
    today: Today,
) -> Response:
    """争议: the consumer takes a refusal to the platform authority, with a reason."""
    app = service.get_visible_application(db, caller, application_id)
    values = {"reason": text(form, "reason")}

    def dispute() -> None:
        service.dispute(db, caller, app, ReasonIn.model_validate(values).reason)

    return _answer_step(
        request, db, settings, caller, today, app.id, "dispute", values, "争议理由有误", dispute
    )


@router.post("/sharing/applications/{application_id}/decision")
def decide_dispute(
    application_id: Id,
    request: Request,
    form: FormDep,
    db: SessionDep,
    settings: SettingsDep,
    caller: SharingArbiter,
    today: Today,
) -> Response:
    """裁决: uphold the refusal or overturn it (the application is then approved)."""
    app = service.get_application(db, application_id)
    values = {"outcome": text(form, "outcome"), "reason": text(form, "reason")}
    label = _labels(ANSWER_LABELS)
    problems: list[Problem] = []
    if not values["outcome"]:
        problems.append({"field": "outcome", "message": "请选择裁决结果"})
    try:
        data = DecisionIn.model_validate(values)
    except ValidationError as exc:
        reported = {p["field"] for p in problems}
        problems += [p for p in validation_problems(exc) if p["field"] not in reported]
    if problems:
        errors = FormErrors("裁决信息不完整", problems, label=label)
    else:
        try:
            service.decide_dispute(db, settings, caller, app, data, today=today)
        except InvalidInput as exc:
            errors = FormErrors(exc.message, exc.details, label=label)
        else:
            db.commit()
            return redirect(f"/sharing/applications/{application_id}?done=decided")
    return _answer_failed(
        request, db, settings, caller, today, application_id, "decision", values, errors
    )


# -- disputes (争议裁决) ----------------------------------------------------------------------


@router.get("/sharing/disputes")
def disputes_page(request: Request, db: SessionDep, caller: SharingArbiter) -> Response:
    """The platform authority's list: disputes waiting for a decision, and decided ones."""
    rows = service.list_applications(db, caller, side="all")
    waiting = [a for a in rows if a.status is ApplicationStatus.DISPUTED]
    waiting.sort(key=lambda a: (a.disputed_at or datetime.max, a.id))
    decided = [a for a in rows if a.dispute_outcome is not None]
    decided.sort(key=lambda a: (a.dispute_decided_at or datetime.min, a.id), reverse=True)
    return _page(request, "sharing/disputes.html", caller, waiting=waiting, decided=decided)
