"""Sharing console pages (共享): applying for a catalog entry, the consumer's and the
provider's application lists with their working-day countdowns, the application page
with its answer, dispute and decision forms, the platform's dispute list, grants on
both sides with revocation, usage feedback and usage statistics.

Each handler parses the request, calls the sharing service and renders. Reading needs
``sharing.read``; applying, disputing and reporting use need ``sharing.apply``;
answering and revoking need ``sharing.review``; deciding a dispute needs
``sharing.arbitrate``. Forms the service rejects come back with every problem beside
its field, rolled back so nothing of them is stored.
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Request
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
from govshare.errors import Forbidden, InvalidInput, NotFound
from govshare.security.roles import Permission
from govshare.security.service import Principal
from govshare.sharing import service
from govshare.sharing.errors import CalendarYearMissing
from govshare.sharing.models import (
    ApplicationStatus,
    DisputeOutcome,
    MaskingRule,
    SharingApplication,
    SharingGrant,
    SharingMode,
    UsageReport,
)
from govshare.sharing.schemas import ApplicationCreate, ApproveIn, DecisionIn, ReasonIn, UsageCreate
from govshare.sharing.workdays import china_today, working_days_between
from govshare.web.filters import local_date, local_time
from govshare.web.forms import (
    NO_ERRORS,
    FormDep,
    FormErrors,
    Problem,
    optional_int,
    redirect,
    render,
    safe_next,
    text,
    texts,
    validation_problems,
)

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 20
T = TypeVar("T")


def sharing_today() -> date:
    """The day deadlines and grant validity are counted from: today in China.

    A dependency of its own so tests can stand the pages on a fixed day
    (``app.dependency_overrides[sharing_today]``), as the service takes ``today=``."""
    return china_today()


Today = Annotated[date, Depends(sharing_today)]

# Notices after a redirect (``?done=key``); fixed texts only, like web.filters.NOTICES.
NOTICES: dict[str, str] = {
    "applied": "共享申请已提交，提供部门将在规定的工作日内答复",
    "granted": "该目录为无条件共享，申请已自动通过并生成授权",
    "approved": "已同意申请并生成授权，请在提供期限内提供数据",
    "refused": "已拒绝该申请，拒绝理由将告知申请部门",
    "provided": "已标记为已提供数据",
    "disputed": "争议已提交平台共享主管部门裁决",
    "decided": "裁决结果已记录",
    "revoked": "授权已撤销，即时生效",
    "usage_reported": "使用情况已反馈",
}

MASKING_LABELS: dict[MaskingRule, str] = {r: r.label for r in MaskingRule}
MODE_HINTS: dict[SharingMode, str] = {
    SharingMode.QUERY: "按条件查询数据",
    SharingMode.SUBSCRIPTION: "通过交换任务接收数据",
    SharingMode.VERIFICATION: "只返回是/否或状态，数据不落地",
}
# Tag colour of each application state (classes of app.css).
STATUS_CLASSES: dict[ApplicationStatus, str] = {
    ApplicationStatus.SUBMITTED: "tag-warn",
    ApplicationStatus.APPROVED: "sharing-2",
    ApplicationStatus.REFUSED: "tag-danger",
    ApplicationStatus.DISPUTED: "tag-warn",
    ApplicationStatus.REFUSAL_UPHELD: "tag-danger",
    ApplicationStatus.PROVIDED: "tag-open",
}
# Pseudo-status of the lists: waiting for the provider (to answer or to provide).
OPEN_STATUSES = (ApplicationStatus.SUBMITTED, ApplicationStatus.APPROVED)

APPLY_LABELS: dict[str, str] = {
    "resource_id": "目录",
    "purpose": "业务用途",
    "legal_basis": "共享依据",
    "items": "申请的信息项",
    "row_scope": "数据范围",
    "mode": "共享方式",
    "users": "使用人员或系统",
    "end_date": "使用截止日期",
}
ANSWER_LABELS: dict[str, str] = {
    "items": "批准的信息项",
    "masking": "脱敏规则",
    "reason": "理由",
    "outcome": "裁决结果",
}
USAGE_LABELS: dict[str, str] = {"grant_id": "授权", "text": "使用情况", "count": "使用次数"}


def _labels(names: dict[str, str]) -> Callable[[str], str]:
    """A field's Chinese name for the error summary; ``items[1]`` and ``masking.xm`` are
    named as ``items`` and ``masking``."""
    return lambda field: names.get(re.split(r"[\[.]", field)[0], field)


def _page(
    request: Request, template: str, caller: Principal, *, status_code: int = 200, **context: Any
) -> Response:
    done = request.query_params.get("done", "")
    return render(
        request,
        template,
        caller,
        status_code=status_code,
        notice=NOTICES.get(done, ""),
        status_classes=STATUS_CLASSES,
        masking_labels=MASKING_LABELS,
        **context,
    )


def _with_done(url: str, done: str) -> str:
    """``url`` with ``?done=`` set to the notice to show after the redirect."""
    url = re.sub(r"([?&])done=[^&#]*&?", r"\1", url).rstrip("?&")
    return f"{url}{'&' if '?' in url else '?'}done={done}"


# -- deadlines and pages of rows -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Countdown:
    """答复/提供期限倒计时 of one application, in Chinese working days."""

    kind: str  # 答复 | 提供
    due: date
    today: date
    left: int | None  # working days after today up to ``due``; None without calendar data
    overdue: bool
    soon: bool  # at most ``remind_working_days_before`` working days left

    @property
    def level(self) -> str:
        return "overdue" if self.overdue else "soon" if self.soon else "ok"

    @property
    def text(self) -> str:
        if self.overdue:
            if self.left:
                return f"{self.kind}已超期 {-self.left} 个工作日"
            return f"{self.kind}已超期"
        if self.left is None:
            return f"{self.kind}期限 {self.due.isoformat()}"
        if self.due == self.today:
            return f"{self.kind}今日到期"
        return f"{self.kind}剩 {self.left} 个工作日"


def countdown(app: SharingApplication, today: date, *, remind_before: int) -> Countdown | None:
    """The deadline the provider is working to: the answer while the application waits,
    the provision once approved; None when nothing is due."""
    if app.status is ApplicationStatus.SUBMITTED:
        kind, due = "答复", app.answer_due
    elif app.status is ApplicationStatus.APPROVED:
        kind, due = "提供", app.provide_due
    else:
        return None
    if due is None:
        return None
    try:
        left: int | None = working_days_between(today, due)
    except CalendarYearMissing:
        left = None  # the list still renders; the date itself is shown instead
    overdue = due < today
    soon = not overdue and left is not None and left <= remind_before
    return Countdown(kind=kind, due=due, today=today, left=left, overdue=overdue, soon=soon)


@dataclass(frozen=True, slots=True)
class Paged:
    """One page of a list (``p`` counts from 1)."""

    rows: list[Any]
    number: int
    pages: int
    total: int


def _paged(rows: Sequence[T], p: str) -> Paged:
    pages = max(math.ceil(len(rows) / PAGE_SIZE), 1)
    number = min(int(p), pages) if p.isdigit() and int(p) > 0 else 1
    start = (number - 1) * PAGE_SIZE
    return Paged(
        rows=list(rows[start : start + PAGE_SIZE]), number=number, pages=pages, total=len(rows)
    )


def _item_names(app_or_grant: SharingApplication | SharingGrant) -> dict[str, str]:
    return {it.code: it.name for it in app_or_grant.resource.items}


# -- apply (申请共享) ----------------------------------------------------------------------


def _apply_page(
    request: Request,
    db: Session,
    caller: Principal,
    today: date,
    resource_id: int,
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
        v=values or {"items": [], "mode": SharingMode.QUERY.value},
        errors=errors,
        held=[
            g
            for g in service.list_grants(db, caller, side="mine")
            if g.resource_id == resource.id and service.is_active(g, today)
        ],
    )


@router.get("/sharing/apply/{resource_id}")
def apply_form(
    resource_id: int, request: Request, db: SessionDep, caller: SharingApplicant, today: Today
) -> Response:
    return _apply_page(request, db, caller, today, resource_id)


def _application_values(form: FormData) -> dict[str, Any]:
    return {
        "purpose": text(form, "purpose"),
        "legal_basis": text(form, "legal_basis"),
        "items": [c for c in texts(form, "items") if c],
        "row_scope": text(form, "row_scope"),
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
    resource_id: int,
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
        data = ApplicationCreate.model_validate({**values, "resource_id": resource_id})
    except ValidationError as exc:
        reported = {p["field"] for p in problems}
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
    application_id: int,
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
        v=values or {"items": list(app.items), "masking": {}},
        errors=errors,
    )


@router.get("/sharing/applications/{application_id}")
def application_page(
    application_id: int,
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
    application_id: int,
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
    application_id: int,
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
    label = _labels(ANSWER_LABELS)
    try:
        data = ApproveIn.model_validate(
            {
                "items": items,
                "masking": {c: r for c, r in masking.items() if r != MaskingRule.NONE.value},
                "reason": values["reason"],
            }
        )
        service.approve(db, settings, caller, app, data, today=today)
    except ValidationError as exc:
        errors = FormErrors("答复信息有误", validation_problems(exc), label=label)
    except InvalidInput as exc:
        errors = FormErrors(exc.message, exc.details, label=label)
    else:
        db.commit()
        return redirect(f"/sharing/applications/{application_id}?done=approved")
    return _answer_failed(
        request, db, settings, caller, today, application_id, "approve", values, errors
    )


@router.post("/sharing/applications/{application_id}/refuse")
def refuse_application(
    application_id: int,
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
    label = _labels(ANSWER_LABELS)
    try:
        body = ReasonIn.model_validate(values)
        service.refuse(db, caller, app, body.reason, today=today)
    except ValidationError as exc:
        errors = FormErrors("拒绝理由有误", validation_problems(exc), label=label)
    except InvalidInput as exc:
        errors = FormErrors(exc.message, exc.details, label=label)
    else:
        db.commit()
        return redirect(f"/sharing/applications/{application_id}?done=refused")
    return _answer_failed(
        request, db, settings, caller, today, application_id, "refuse", values, errors
    )


@router.post("/sharing/applications/{application_id}/provide")
def provide_application(
    application_id: int, db: SessionDep, caller: SharingReviewer, today: Today
) -> Response:
    app = service.get_visible_application(db, caller, application_id)
    service.mark_provided(db, caller, app, today=today)
    db.commit()
    return redirect(f"/sharing/applications/{application_id}?done=provided")


@router.post("/sharing/applications/{application_id}/dispute")
def dispute_application(
    application_id: int,
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
    label = _labels(ANSWER_LABELS)
    try:
        body = ReasonIn.model_validate(values)
        service.dispute(db, caller, app, body.reason)
    except ValidationError as exc:
        errors = FormErrors("争议理由有误", validation_problems(exc), label=label)
    except InvalidInput as exc:
        errors = FormErrors(exc.message, exc.details, label=label)
    else:
        db.commit()
        return redirect(f"/sharing/applications/{application_id}?done=disputed")
    return _answer_failed(
        request, db, settings, caller, today, application_id, "dispute", values, errors
    )


@router.post("/sharing/applications/{application_id}/decision")
def decide_dispute(
    application_id: int,
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


# -- grants (授权) ------------------------------------------------------------------------------

GRANT_STATES = {"active": "有效", "expired": "已过期", "revoked": "已撤销"}


def grant_state(grant: SharingGrant, today: date) -> str:
    """``revoked`` before ``expired``: a revoked grant stays revoked after its end date."""
    if grant.revoked:
        return "revoked"
    return "active" if service.is_active(grant, today) else "expired"


def _grants_page(
    request: Request,
    db: Session,
    caller: Principal,
    today: date,
    *,
    side: str,
    state: str,
    p: str,
    revoke_id: int | None = None,
    revoke_reason: str = "",
    errors: FormErrors = NO_ERRORS,
    status_code: int = 200,
) -> Response:
    rows = service.list_grants(db, caller, side=side)
    states = {g.id: grant_state(g, today) for g in rows}
    counts = Counter(states.values())
    if state in GRANT_STATES:
        rows = [g for g in rows if states[g.id] == state]
    page = _paged(rows, p)
    here = "/sharing/grants" if side == "mine" else "/sharing/grants/provider"
    return _page(
        request,
        "sharing/grants.html",
        caller,
        status_code=status_code,
        nav=here,
        here=here,
        heading={"mine": "我的授权", "provider": "本部门目录上的授权"}.get(side, "全部授权"),
        side=side,
        state=state if state in GRANT_STATES else "",
        grant_states=GRANT_STATES,
        states=states,
        counts=counts,
        total=len(states),
        page=page,
        item_names={g.id: _item_names(g) for g in page.rows},
        can_revoke=side != "mine" and caller.can(Permission.SHARING_REVIEW),
        revoke_id=revoke_id,
        revoke_reason=revoke_reason,
        errors=errors,
    )


@router.get("/sharing/grants")
def my_grants(
    request: Request,
    db: SessionDep,
    caller: SharingReader,
    today: Today,
    state: str = "",
    p: str = "",
) -> Response:
    """我的授权: what the caller's department may use."""
    return _grants_page(request, db, caller, today, side="mine", state=state, p=p)


@router.get("/sharing/grants/provider")
def provided_grants(
    request: Request,
    db: SessionDep,
    caller: SharingReader,
    today: Today,
    state: str = "",
    p: str = "",
) -> Response:
    """本部门目录上的授权 (for the platform: every grant)."""
    side = "all" if caller.is_admin else "provider"
    return _grants_page(request, db, caller, today, side=side, state=state, p=p)


@router.post("/sharing/grants/{grant_id}/revoke")
def revoke_grant(
    grant_id: int,
    request: Request,
    form: FormDep,
    db: SessionDep,
    caller: SharingReviewer,
    today: Today,
) -> Response:
    """撤销授权, effective at once; the reason is mandatory."""
    grant = service.get_grant(db, grant_id)
    reason = text(form, "reason")
    try:
        body = ReasonIn.model_validate({"reason": reason})
        service.revoke_grant(db, caller, grant, body.reason)
    except ValidationError as exc:
        errors = FormErrors("撤销理由有误", validation_problems(exc), label=_labels(ANSWER_LABELS))
    except InvalidInput as exc:
        errors = FormErrors(exc.message, exc.details, label=_labels(ANSWER_LABELS))
    else:
        db.commit()
        back = safe_next(text(form, "next"), "/sharing/grants/provider")
        return redirect(_with_done(back, "revoked"))
    db.rollback()
    side = "all" if caller.is_admin else "provider"
    return _grants_page(
        request,
        db,
        caller,
        today,
        side=side,
        state="",
        p="",
        revoke_id=grant_id,
        revoke_reason=reason,
        errors=errors,
        status_code=422,
    )


# -- usage feedback and statistics (使用情况) -------------------------------------------------

USAGE_SIDES = {"mine": "本部门的使用反馈", "provider": "本部门数据的使用情况", "all": "全平台"}


def _side(caller: Principal, value: str) -> str:
    sides = [s for s in USAGE_SIDES if s != "all" or caller.is_admin]
    default = "all" if caller.is_admin else "provider"
    return value if value in sides else default


def _usage_page(
    request: Request,
    db: Session,
    caller: Principal,
    today: date,
    *,
    side: str,
    p: str = "",
    values: dict[str, Any] | None = None,
    errors: FormErrors = NO_ERRORS,
    status_code: int = 200,
) -> Response:
    held = [g for g in service.list_grants(db, caller, side="mine") if service.is_active(g, today)]
    return _page(
        request,
        "sharing/usage.html",
        caller,
        status_code=status_code,
        side=side,
        sides={k: v for k, v in USAGE_SIDES.items() if k != "all" or caller.is_admin},
        page=_paged(service.list_usage(db, caller, side=side), p),
        held=held,
        v=values or {},
        errors=errors,
    )


@router.get("/sharing/usage")
def usage_page(
    request: Request,
    db: SessionDep,
    caller: SharingReader,
    today: Today,
    side: str = "",
    grant_id: str = "",
    p: str = "",
) -> Response:
    """使用反馈: the consumer's form, and who used what (providers) or what was reported."""
    values = {"grant_id": grant_id} if grant_id.isdigit() else None
    return _usage_page(request, db, caller, today, side=_side(caller, side), p=p, values=values)


@router.post("/sharing/usage")
def report_usage(
    request: Request, form: FormDep, db: SessionDep, caller: SharingApplicant, today: Today
) -> Response:
    values = {
        "grant_id": text(form, "grant_id"),
        "count": text(form, "count"),
        "text": text(form, "text"),
    }
    label = _labels(USAGE_LABELS)
    problems: list[Problem] = []
    grant_id = optional_int(values["grant_id"])
    if not isinstance(grant_id, int):
        problems.append({"field": "grant_id", "message": "请选择本部门持有的授权"})
    try:
        data = UsageCreate.model_validate(
            {
                "grant_id": grant_id if isinstance(grant_id, int) else 0,
                "count": values["count"] or 0,
                "text": values["text"],
            }
        )
    except ValidationError as exc:
        problems += [p for p in validation_problems(exc) if p["field"] != "grant_id"]
    if problems:
        errors = FormErrors("使用情况填写不完整", problems, label=label)
    else:
        try:
            service.report_usage(db, caller, data)
        except (InvalidInput, NotFound, Forbidden) as exc:
            db.rollback()
            errors = FormErrors(
                exc.message, [{"field": "grant_id", "message": exc.message}], label=label
            )
        else:
            db.commit()
            return redirect("/sharing/usage?side=mine&done=usage_reported")
    return _usage_page(
        request,
        db,
        caller,
        today,
        side="mine",
        values=values,
        errors=errors,
        status_code=422,
    )


def _chart(kind: str, title: str, labels: list[str], **data: Any) -> dict[str, Any]:
    """What app.js needs to draw one chart: ``values`` for one series, ``series`` for more."""
    return {"type": kind, "title": title, "labels": labels, **data}


def _months(first: str, last: str) -> list[str]:
    """Every ``yyyy-mm`` from ``first`` to ``last``, so quiet months show as zero."""
    year, month = map(int, first.split("-"))
    out = []
    while f"{year:04d}-{month:02d}" <= last:
        out.append(f"{year:04d}-{month:02d}")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return out


MONTH_SERIES = 6  # departments drawn one by one in the monthly chart; the rest as 其他部门


def usage_statistics(reports: list[UsageReport]) -> dict[str, Any]:
    """Reported use (the reports' counts) per entry, per consumer department, and per
    month (China time) split by consumer department; reports per month beside."""
    by_resource: dict[str, int] = defaultdict(int)
    by_department: dict[str, int] = defaultdict(int)
    month_reports: dict[str, int] = defaultdict(int)
    month_uses: dict[tuple[str, str], int] = defaultdict(int)
    for r in reports:
        department = r.grant.consumer.name
        month = local_time(r.reported_at, "%Y-%m")
        by_resource[r.grant.resource.name] += r.count
        by_department[department] += r.count
        month_reports[month] += 1
        month_uses[month, department] += r.count
    months = _months(min(month_reports), max(month_reports))[-24:] if month_reports else []
    resources = sorted(by_resource.items(), key=lambda kv: (-kv[1], kv[0]))
    departments = sorted(by_department.items(), key=lambda kv: (-kv[1], kv[0]))
    drawn = [name for name, _ in departments[:MONTH_SERIES]]
    series = [
        {"name": name, "values": [month_uses.get((m, name), 0) for m in months]} for name in drawn
    ]
    if len(departments) > MONTH_SERIES:
        rest = {name for name, _ in departments[MONTH_SERIES:]}
        series.append(
            {
                "name": "其他部门",
                "values": [sum(month_uses.get((m, n), 0) for n in rest) for m in months],
            }
        )
    return {
        "by_resource": resources[:20],
        "by_department": departments[:20],
        "months": months,
        "month_reports": [month_reports.get(m, 0) for m in months],
        "month_series": series,
    }


@router.get("/sharing/stats")
def stats_page(
    request: Request,
    db: SessionDep,
    settings: SettingsDep,
    caller: SharingReader,
    today: Today,
    side: str = "",
) -> Response:
    """使用情况统计: reported use by entry, consumer department and month, and how the
    applications and grants of the same side stand."""
    side = _side(caller, side)
    reports = service.list_usage(db, caller, side=side)
    stats = usage_statistics(reports)
    applications = service.list_applications(db, caller, side=side)
    grants = service.list_grants(db, caller, side=side)
    by_status = Counter(a.status for a in applications)
    remind = settings.remind_working_days_before
    overdue = sum(
        1
        for a in applications
        if (c := countdown(a, today, remind_before=remind)) is not None and c.overdue
    )
    charts = [
        _chart(
            "stack",
            "每月使用次数（按使用部门）",
            stats["months"],
            series=stats["month_series"],
        ),
        _chart(
            "bar",
            "各目录使用次数",
            [k for k, _ in stats["by_resource"]],
            values=[n for _, n in stats["by_resource"]],
        ),
        _chart(
            "bar",
            "各使用部门使用次数",
            [k for k, _ in stats["by_department"]],
            values=[n for _, n in stats["by_department"]],
        ),
        _chart(
            "pie",
            "共享申请办理情况",
            [s.label for s in ApplicationStatus if by_status[s]],
            values=[by_status[s] for s in ApplicationStatus if by_status[s]],
        ),
    ]
    applications_url = "/sharing/applications" if side == "mine" else "/sharing/queue?status=all"
    cards = [
        ("共享申请", len(applications), applications_url),
        ("超期未办结", overdue, applications_url),
        (
            "有效授权",
            sum(1 for g in grants if service.is_active(g, today)),
            "/sharing/grants" if side == "mine" else "/sharing/grants/provider",
        ),
        ("使用反馈", len(reports), f"/sharing/usage?side={side}"),
        ("使用次数合计", sum(r.count for r in reports), f"/sharing/usage?side={side}"),
    ]
    return _page(
        request,
        "sharing/stats.html",
        caller,
        side=side,
        sides={k: v for k, v in USAGE_SIDES.items() if k != "all" or caller.is_admin},
        charts=charts,
        cards=cards,
    )
