"""Sharing console pages (共享): applying for a catalog entry (with a structured row
filter), the consumer's and the provider's application lists with their working-day
countdowns, the application page with its answer, dispute and decision forms, the
platform's dispute list, grants on both sides with revocation and, for 订阅 grants, the
receiving task, objections (异议) to shared records with their answers, shared stores
(共享信息库) and their set-up, usage feedback, usage and data-service call statistics.

Each handler parses the request, calls the sharing service and renders. Reading needs
``sharing.read``; applying, disputing, objecting, subscribing and reporting use need
``sharing.apply``; answering applications and objections and revoking need
``sharing.review``; deciding a dispute needs ``sharing.arbitrate``; setting a store up
needs ``sharing.store``. Forms the service rejects come back with every problem beside
its field, rolled back so nothing of them is stored.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
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
    SharingStoreAdmin,
)
from govshare.errors import Conflict, Forbidden, InvalidInput, NotFound
from govshare.exchange import service as exchange_service
from govshare.exchange.models import ExchangeTask, TaskKind
from govshare.exchange.schemas import IDENT
from govshare.security.roles import Permission
from govshare.security.service import Principal
from govshare.sharing import objections, service
from govshare.sharing import store as shared
from govshare.sharing.errors import CalendarYearMissing, NotYourDepartment
from govshare.sharing.masking import mask_id_number
from govshare.sharing.models import (
    ApplicationStatus,
    DisputeOutcome,
    MaskingRule,
    Objection,
    ObjectionStatus,
    SharingApplication,
    SharingGrant,
    SharingMode,
    UsageReport,
)
from govshare.sharing.schemas import (
    ApplicationCreate,
    ApproveIn,
    DecisionIn,
    ObjectionAnswer,
    ObjectionCreate,
    ReasonIn,
    StoreCreate,
    UsageCreate,
    VerifyRule,
)
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
    "objection_raised": "异议已提交，数据提供部门将在规定的工作日内答复",
    "objection_accepted": (
        "已确认异议。请在本部门业务系统中更正数据，更正经交换到达共享信息库后自动归档"
    ),
    "objection_rejected": "已答复不予更正，异议已归档",
    "store_created": "共享信息库已建立，将按发送任务的数据包依次入库",
    "subscribed": "接收任务已创建并启动",
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
    "row_filter": "行过滤条件",
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
    return _deadline(kind, due, today, remind_before)


def _deadline(kind: str, due: date, today: date, remind_before: int) -> Countdown:
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
    resource_id: int, request: Request, db: SessionDep, caller: SharingApplicant, today: Today
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
    subscribe_id: int | None = None,
    subscribe_values: dict[str, str] | None = None,
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
        subscribing=_subscribing(db, caller, page.rows, states) if side == "mine" else None,
        subscribe_id=subscribe_id,
        sv=subscribe_values or {},
        new_task=int(task) if (task := request.query_params.get("task", "")).isdigit() else None,
        errors=errors,
    )


@dataclass(frozen=True, slots=True)
class Subscribing:
    """What the 创建接收任务 forms of 我的授权 offer: the department's nodes, the provider
    tasks of each subscribed resource, and the receiving tasks already made for it."""

    nodes: list[Any]
    sources: dict[int, list[ExchangeTask]]  # by resource
    receiving: dict[int, list[ExchangeTask]]  # by resource, on the department's nodes
    grants: set[int]  # grants in force that allow 订阅


def _subscribing(
    db: Session, caller: Principal, grants: list[SharingGrant], states: dict[int, str]
) -> Subscribing:
    wanted = {
        g.id
        for g in grants
        if states[g.id] == "active" and str(SharingMode.SUBSCRIPTION) in g.modes
    }
    resources = {g.resource_id for g in grants if str(SharingMode.SUBSCRIPTION) in g.modes}
    nodes = exchange_service.list_nodes(db, caller.department_id) if caller.department_id else []
    own = {n.id for n in nodes}
    sources: dict[int, list[ExchangeTask]] = defaultdict(list)
    receiving: dict[int, list[ExchangeTask]] = defaultdict(list)
    if resources:
        for task in exchange_service.list_tasks(db):
            if task.resource_id not in resources:
                continue
            if task.kind is TaskKind.PROVIDER and not task.config.get("folder"):
                sources[task.resource_id].append(task)
            elif task.kind is TaskKind.SUBSCRIBER and task.node_id in own:
                receiving[task.resource_id].append(task)
    return Subscribing(nodes=nodes, sources=sources, receiving=receiving, grants=wanted)


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


SUBSCRIBE_LABELS: dict[str, str] = {
    "node_id": "接收前置机",
    "source_task_id": "发送任务",
    "target": "目标库",
    "table": "目标表",
}


@router.post("/sharing/grants/{grant_id}/subscription")
def subscribe_grant(
    grant_id: int,
    request: Request,
    form: FormDep,
    db: SessionDep,
    caller: SharingApplicant,
    today: Today,
) -> Response:
    """订阅: create and start the receiving task on one of the department's nodes,
    subscribed to the provider's task for the granted resource."""
    grant = service.get_grant(db, grant_id)
    if not caller.is_admin and caller.department_id != grant.consumer_department_id:
        raise NotYourDepartment("只能为本部门所持的授权创建订阅")
    values = {
        "node_id": text(form, "node_id"),
        "source_task_id": text(form, "source_task_id"),
        "target": text(form, "target"),
        "table": text(form, "table"),
    }
    label = _labels(SUBSCRIBE_LABELS)
    node_id, source_task_id = (
        optional_int(values["node_id"]),
        optional_int(values["source_task_id"]),
    )
    problems: list[Problem] = []
    if not isinstance(node_id, int):
        problems.append({"field": "node_id", "message": "请选择本部门的前置机"})
    if not isinstance(source_task_id, int):
        problems.append({"field": "source_task_id", "message": "请选择提供部门的发送任务"})
    if not values["target"]:
        problems.append({"field": "target", "message": "请填写前置机配置中的目标库名称"})
    if not values["table"]:
        problems.append({"field": "table", "message": "请填写目标表"})
    elif not re.fullmatch(IDENT, values["table"]):
        problems.append(
            {"field": "table", "message": "表名由字母、数字、下划线或点组成，不以数字开头"}
        )
    if problems:
        errors = FormErrors("接收任务信息不完整，请按提示修改", problems, label=label)
    else:
        try:
            task = service.create_subscription_task(
                db,
                caller,
                grant,
                node_id=int(values["node_id"]),
                source_task_id=int(values["source_task_id"]),
                target_config={"target": values["target"], "table": values["table"]},
                today=today,
            )
        except (InvalidInput, NotFound, Forbidden, Conflict) as exc:
            db.rollback()
            field = "node_id" if isinstance(exc, NotFound | Forbidden) else "source_task_id"
            details = [
                {**d, "field": str(d.get("field", "")).removeprefix("config.") or "target"}
                for d in exc.details
            ] or [{"field": field, "message": exc.message}]
            errors = FormErrors(exc.message, details, label=label)
        else:
            db.commit()
            return redirect(f"/sharing/grants?done=subscribed&task={task.id}#grant-{grant.id}")
    return _grants_page(
        request,
        db,
        caller,
        today,
        side="mine",
        state="",
        p="",
        subscribe_id=grant_id,
        subscribe_values=values,
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


CALL_DAYS = 30  # days of data-service calls the statistics page shows


def call_statistics(totals: Sequence[service.CallTotal], days: list[date]) -> dict[str, Any]:
    """Data-service calls per day stacked by consumer department (six drawn, the rest
    as 其他部门), keys looked up per resource, and the period's figures per consumer
    department and resource, most calls first."""
    day_calls: dict[tuple[date, str], int] = defaultdict(int)
    by_department: dict[str, int] = defaultdict(int)
    keys_by_resource: dict[str, int] = defaultdict(int)
    table: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0, 0])
    for t in totals:
        day_calls[t.day, t.department_name] += t.calls
        by_department[t.department_name] += t.calls
        keys_by_resource[t.resource_name] += t.keys
        figures = table[t.department_name, t.resource_name]
        figures[0] += t.calls
        figures[1] += t.keys
        figures[2] += t.rows
    departments = sorted(by_department.items(), key=lambda kv: (-kv[1], kv[0]))
    drawn = [name for name, _ in departments[:MONTH_SERIES]]
    series = [{"name": n, "values": [day_calls.get((d, n), 0) for d in days]} for n in drawn]
    if len(departments) > MONTH_SERIES:
        rest = {name for name, _ in departments[MONTH_SERIES:]}
        series.append(
            {
                "name": "其他部门",
                "values": [sum(day_calls.get((d, n), 0) for n in rest) for d in days],
            }
        )
    rows: list[dict[str, Any]] = [
        {"department": dept, "resource": res, "calls": c, "keys": k, "rows": r}
        for (dept, res), (c, k, r) in table.items()
    ]
    rows.sort(key=lambda r: (-r["calls"], r["department"], r["resource"]))
    return {
        "days": [d.strftime("%m-%d") for d in days],
        "day_series": series if totals else [],
        "keys_by_resource": sorted(keys_by_resource.items(), key=lambda kv: (-kv[1], kv[0]))[:20],
        "rows": rows,
        "calls": sum(t.calls for t in totals),
        "keys": sum(t.keys for t in totals),
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
    days = [today - timedelta(days=n) for n in range(CALL_DAYS - 1, -1, -1)]
    calls = call_statistics(service.call_totals(db, caller, side=side, since=days[0]), days)
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
        _chart(
            "stack",
            f"近{CALL_DAYS}天每日数据服务调用次数（按使用部门）",
            calls["days"] if calls["day_series"] else [],
            series=calls["day_series"],
        ),
        _chart(
            "bar",
            f"近{CALL_DAYS}天各目录查询、核验的键数",
            [k for k, _ in calls["keys_by_resource"]],
            values=[n for _, n in calls["keys_by_resource"]],
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
        (f"近{CALL_DAYS}天数据服务调用", calls["calls"], "#calls"),
    ]
    return _page(
        request,
        "sharing/stats.html",
        caller,
        side=side,
        sides={k: v for k, v in USAGE_SIDES.items() if k != "all" or caller.is_admin},
        charts=charts,
        cards=cards,
        call_rows=calls["rows"],
        call_days=CALL_DAYS,
    )


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
    return _deadline("答复", obj.answer_due, today, remind_before)


def shown_key(obj: Objection, caller: Principal) -> str:
    """The record key (an ID number) in full for the two parties, masked for others."""
    if caller.department_id in (obj.consumer_department_id, obj.provider_department_id):
        return obj.record_key
    return mask_id_number(obj.record_key)


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
        masked={o.id: mask_id_number(o.record_key) for o in page.rows},
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
    grant_id: int | None,
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
    objection_id: int,
    *,
    failed: str = "",
    values: dict[str, Any] | None = None,
    errors: FormErrors = NO_ERRORS,
    status_code: int = 200,
) -> Response:
    obj = objections.get_visible(db, caller, objection_id)
    provider = caller.department_id == obj.provider_department_id
    consumer = caller.department_id == obj.consumer_department_id
    return _page(
        request,
        "sharing/objection.html",
        caller,
        status_code=status_code,
        nav="/sharing/objections/provider" if provider and not consumer else "/sharing/objections",
        obj=obj,
        record_key=shown_key(obj, caller),
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
        v=values or {"correction": dict(obj.claimed)},
        errors=errors,
    )


@router.get("/sharing/objections/{objection_id}")
def objection_page(
    objection_id: int,
    request: Request,
    db: SessionDep,
    settings: SettingsDep,
    caller: SharingReader,
    today: Today,
) -> Response:
    return _objection_page(request, db, settings, caller, today, objection_id)


def _answerable(db: Session, caller: Principal, objection_id: int) -> Objection:
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
    objection_id: int,
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
    objection_id: int,
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
    objection_id: int,
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


# -- shared stores (共享信息库) ----------------------------------------------------------------

STORE_LABELS: dict[str, str] = {
    "resource_id": "目录",
    "source_task_id": "发送任务",
    "mapping": "字段映射",
    "key_item": "查询键",
    "verify_rules": "核验规则",
}
VERIFY_EXAMPLE = (
    '[{"name": "status", "label": "登记状态", "kind": "status", "item": "djzt",\n'
    '  "values": {"1": "正常", "2": "注销"}, "default": "其他"}]'
)


def _store_sources(db: Session, caller: Principal) -> dict[int, list[ExchangeTask]]:
    """Provider tasks (table or query, not folder) of the published resources the caller
    may set a store up for and that have none yet, by resource."""
    taken = {s.resource_id for s in shared.list_stores(db)}
    found: dict[int, list[ExchangeTask]] = defaultdict(list)
    for task in exchange_service.list_tasks(db, kind=TaskKind.PROVIDER):
        resource = task.resource
        if (
            resource.listed
            and resource.id not in taken
            and not task.config.get("folder")
            and (caller.is_admin or resource.provider_department_id == caller.department_id)
        ):
            found[resource.id].append(task)
    return found


def _stores_page(
    request: Request,
    db: Session,
    caller: Principal,
    *,
    resource_id: int | None,
    values: dict[str, Any] | None = None,
    errors: FormErrors = NO_ERRORS,
    status_code: int = 200,
) -> Response:
    stores = shared.list_stores(db)
    can_create = caller.can(Permission.SHARING_STORE)
    sources = _store_sources(db, caller) if can_create else {}
    resources = {tasks[0].resource.id: tasks[0].resource for tasks in sources.values()}
    resource = resources.get(resource_id) if resource_id is not None else None
    if resource is not None and values is None:
        first = next((it.code for it in resource.items), "")
        key = next((it.code for it in resource.items if it.is_key), first)
        values = {
            "mapping": [{"col": "", "item": it.code} for it in resource.items],
            "key_item": key,
            "verify_rules": "[]",
        }
    return _page(
        request,
        "sharing/stores.html",
        caller,
        status_code=status_code,
        stores=stores,
        item_names={s.id: {it.code: it.name for it in s.resource.items} for s in stores},
        can_create=can_create,
        resources=sorted(resources.values(), key=lambda r: r.name),
        resource=resource,
        tasks=sources.get(resource.id, []) if resource else [],
        v=values or {},
        errors=errors,
        verify_example=VERIFY_EXAMPLE,
    )


@router.get("/sharing/stores")
def stores_page(
    request: Request, db: SessionDep, caller: SharingReader, resource_id: str = ""
) -> Response:
    """共享信息库: each store's source, rows and the last package applied; the set-up
    form for the provider's resource administrator or the platform (``?resource_id=``
    picks the resource, whose provider tasks and items the form then offers)."""
    wanted = int(resource_id) if resource_id.isdigit() else None
    return _stores_page(request, db, caller, resource_id=wanted)


def _verify_rules(raw: str) -> tuple[list[dict[str, Any]], list[Problem]]:
    """The verify rules typed as JSON: parsed, each checked against ``VerifyRule``."""
    if not raw:
        return [], []
    try:
        rules = json.loads(raw)
    except json.JSONDecodeError as exc:
        where = f"第 {exc.lineno} 行第 {exc.colno} 列"
        return [], [{"field": "verify_rules", "message": f"不是有效的 JSON（{where}）"}]
    if not isinstance(rules, list) or not all(isinstance(r, dict) for r in rules):
        return [], [{"field": "verify_rules", "message": "应为规则对象的 JSON 数组 [{…}, …]"}]
    problems: list[Problem] = []
    for i, rule in enumerate(rules):
        try:
            VerifyRule.model_validate(rule)
        except ValidationError as exc:
            problems += [
                {
                    "field": "verify_rules",
                    "message": f"第 {i + 1} 条规则 {p['field']}：{p['message']}",
                }
                for p in validation_problems(exc)
            ]
    return rules, problems


def _store_problems(details: list[Problem], rows: list[dict[str, str]]) -> list[Problem]:
    """The service's details placed on the form: ``mapping.<column>`` on its row,
    ``verify_rules[i].x`` on the rules box, numbered as the person counts."""
    placed = []
    for p in details:
        field = str(p.get("field", ""))
        message = str(p.get("message", ""))
        if field.startswith("mapping."):
            column = field.removeprefix("mapping.")
            row = next((i for i, r in enumerate(rows) if r["col"] == column), None)
            field = f"mapping[{row}]" if row is not None else "mapping"
        elif found := re.match(r"verify_rules\[(\d+)\]\.?(\w*)", field):
            message = f"第 {int(found.group(1)) + 1} 条规则 {found.group(2)}：{message}"
            field = "verify_rules"
        placed.append({"field": field, "message": message})
    return placed


@router.post("/sharing/stores")
def create_store(
    request: Request, form: FormDep, db: SessionDep, caller: SharingStoreAdmin
) -> Response:
    resource_id = optional_int(text(form, "resource_id"))
    columns, items = texts(form, "map_col"), texts(form, "map_item")
    rows = [
        {"col": columns[i] if i < len(columns) else "", "item": items[i] if i < len(items) else ""}
        for i in range(max(len(columns), len(items)))
    ]
    values: dict[str, Any] = {
        "resource_id": text(form, "resource_id"),
        "source_task_id": text(form, "source_task_id"),
        "mapping": rows,
        "key_item": text(form, "key_item"),
        "verify_rules": text(form, "verify_rules"),
    }
    label = _labels(STORE_LABELS)
    problems: list[Problem] = []
    resource = None
    if isinstance(resource_id, int):
        try:
            resource = catalog_service.get_resource(db, resource_id)
        except NotFound:
            resource = None
    if resource is None:
        problems.append({"field": "resource_id", "message": "请选择目录"})
    source_task_id = optional_int(values["source_task_id"])
    if not isinstance(source_task_id, int):
        problems.append({"field": "source_task_id", "message": "请选择该目录的发送任务"})
    known = {it.code: it.name for it in resource.items} if resource else {}
    mapping: dict[str, str] = {}
    for i, row in enumerate(rows):
        if not row["col"]:
            continue  # an item without a source column is not kept
        if not row["item"]:
            problems.append({"field": f"mapping[{i}]", "message": "请选择对应的信息项"})
        elif resource and row["item"] not in known:
            problems.append({"field": f"mapping[{i}]", "message": f"目录没有信息项 {row['item']}"})
        elif row["col"] in mapping:
            problems.append({"field": f"mapping[{i}]", "message": f"源字段 {row['col']} 重复"})
        else:
            mapping[row["col"]] = row["item"]
    if not mapping and not any(p["field"].startswith("mapping") for p in problems):
        problems.append({"field": "mapping", "message": "请至少为一个信息项填写源字段"})
    if not values["key_item"]:
        problems.append({"field": "key_item", "message": "请选择查询键"})
    rules, rule_problems = _verify_rules(values["verify_rules"])
    problems += rule_problems
    if problems:
        errors = FormErrors("共享信息库设置有误，请按提示修改", problems, label=label)
    else:
        try:
            data = StoreCreate.model_validate(
                {
                    "resource_id": resource_id,
                    "source_task_id": source_task_id,
                    "key_item": values["key_item"],
                    "mapping": mapping,
                    "verify_rules": rules,
                }
            )
            store = shared.create_store(db, caller, data)
        except ValidationError as exc:
            errors = FormErrors("共享信息库设置有误", validation_problems(exc), label=label)
        except (InvalidInput, Forbidden) as exc:
            db.rollback()
            details = exc.details or [{"field": "resource_id", "message": exc.message}]
            errors = FormErrors(exc.message, _store_problems(details, rows), label=label)
        else:
            db.commit()
            return redirect(f"/sharing/stores?done=store_created#store-{store.id}")
    return _stores_page(
        request,
        db,
        caller,
        resource_id=resource_id if isinstance(resource_id, int) else None,
        values=values,
        errors=errors,
        status_code=422,
    )
