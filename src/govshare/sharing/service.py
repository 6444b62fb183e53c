"""Rules of sharing: apply for a resource, answer within working-day deadlines,
disputes decided by the platform authority, grants and their revocation, usage
feedback and deadline reminders.

依申请提供、依职能使用: a grant binds one consumer department to the items, rows,
modes and end date it was approved for. Every step is audited.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from govshare.catalog.codes import SharingType
from govshare.catalog.models import Resource
from govshare.catalog.service import get_version
from govshare.config import Settings
from govshare.db import utcnow
from govshare.errors import SeparationOfDuties
from govshare.rules import workdays
from govshare.rules.clock import china_today
from govshare.rules.masking import suggested_rule
from govshare.rules.workdays import working_days_between
from govshare.security import audit
from govshare.security.service import Principal
from govshare.sharing.errors import (
    ApplicationNotFound,
    GrantNotFound,
    InvalidApplication,
    NotShareable,
    NotYourDepartment,
    StepNotAllowed,
)
from govshare.sharing.models import (
    ApplicationStatus,
    DisputeOutcome,
    MaskingRule,
    SharedStore,
    SharingApplication,
    SharingGrant,
    SharingMode,
    UsageReport,
)
from govshare.sharing.schemas import ApplicationCreate, ApproveIn, DecisionIn, UsageCreate


def _snapshot(app: SharingApplication) -> dict[str, Any]:
    return {
        "status": str(app.status),
        "resource_id": app.resource_id,
        "consumer_department_id": app.consumer_department_id,
        "items": app.items,
        "mode": str(app.mode),
        "end_date": app.end_date,
        "answer_due": app.answer_due,
        "provide_due": app.provide_due,
    }


def _grant_snapshot(grant: SharingGrant) -> dict[str, Any]:
    return {
        "resource_id": grant.resource_id,
        "consumer_department_id": grant.consumer_department_id,
        "items": grant.items,
        "modes": grant.modes,
        "expires_on": grant.expires_on,
        "masking": grant.masking,
        "revoked": grant.revoked,
    }


def _require(text: str, field: str, message: str) -> str:
    if not text.strip():
        raise InvalidApplication(message, details=[{"field": field, "message": message}])
    return text.strip()


# -- applications ------------------------------------------------------------------------


def _check_items(known: set[str], items: list[str], field: str) -> list[str]:
    problems = [
        {"field": f"{field}[{i}]", "message": f"目录没有信息项 {code}"}
        for i, code in enumerate(items)
        if code not in known
    ]
    if problems:
        raise InvalidApplication("申请的信息项不属于该目录 (unknown items)", details=problems)
    return list(dict.fromkeys(items))


def apply(
    session: Session,
    settings: Settings,
    principal: Principal,
    data: ApplicationCreate,
    *,
    today: date | None = None,
) -> SharingApplication:
    """Submit a 共享申请 for the caller's department.

    不予共享 cannot be applied for; 无条件共享 is granted at once (still recorded as an
    application); 有条件共享 waits for the provider, answer due in working days.
    """
    today = today or china_today()
    if principal.department_id is None:
        raise InvalidApplication("只有部门用户可以申请共享")
    resource = session.get(Resource, data.resource_id)
    if resource is None or not resource.listed:
        raise InvalidApplication(
            "只能申请已发布的目录",
            details=[{"field": "resource_id", "message": "目录不存在或未发布"}],
        )
    # Applications are judged by the published catalog, which is what consumers see;
    # a change (变更) the provider is still editing takes effect once it is published.
    published = get_version(session, resource, resource.published_version or 0).snapshot
    sharing_type = SharingType(str(published["sharing_type"]))
    if sharing_type is SharingType.NOT_SHARED:
        basis = published["not_shared_basis"] or "未注明"
        raise NotShareable(
            f"目录“{published['name']}”为不予共享，不能申请；依据：{basis} (not shareable)",
            details=[{"field": "resource_id", "message": f"不予共享依据：{basis}"}],
        )
    if resource.provider_department_id == principal.department_id:
        raise InvalidApplication(
            "不能申请本部门提供的目录",
            details=[{"field": "resource_id", "message": "目录由本部门提供"}],
        )
    if data.end_date <= today:
        raise InvalidApplication(
            "使用截止日期须晚于今天",
            details=[{"field": "end_date", "message": f"须晚于 {today.isoformat()}"}],
        )
    known = {str(item["code"]) for item in published["items"]}
    items = _check_items(known, data.items, "items")
    row_filter = None
    if data.row_filter:
        bad = [
            {"field": f"row_filter[{i}].item", "message": f"目录没有信息项 {c.item}"}
            for i, c in enumerate(data.row_filter)
            if c.item not in known
        ]
        if bad:
            raise InvalidApplication("行过滤条件引用了未知信息项", details=bad)
        row_filter = [c.model_dump() for c in data.row_filter]
    unconditional = sharing_type is SharingType.UNCONDITIONAL or _all_unconditional(
        session, resource.id, [*items, *[c["item"] for c in row_filter or []]]
    )
    app = SharingApplication(
        resource_id=resource.id,
        provider_department_id=resource.provider_department_id,
        consumer_department_id=principal.department_id,
        applicant=principal.name,
        purpose=data.purpose.strip(),
        legal_basis=data.legal_basis.strip(),
        items=items,
        row_scope=data.row_scope.strip(),
        row_filter=row_filter,
        mode=data.mode,
        users=data.users.strip(),
        end_date=data.end_date,
        unconditional=unconditional,
        status=ApplicationStatus.SUBMITTED,
        submitted_on=today,
    )
    if not unconditional:
        due = workdays.deadline(today, settings.answer_working_days)
        app.answer_due, app.answer_due_provisional = due.due, due.provisional
    session.add(app)
    session.flush()
    audit.record(
        session,
        principal.actor,
        "sharing.application.submit",
        object_type="sharing_application",
        object_id=app.id,
        after=_snapshot(app),
    )
    if unconditional:
        app.status = ApplicationStatus.APPROVED
        app.answered_on = today
        app.answered_by = "system"
        app.answer_reason = "无条件共享，自动授权"
        _add_grant(session, principal, app, items=items, masking={})
    return app


def _all_unconditional(session: Session, resource_id: int, items: list[str]) -> bool:
    """Whether every item asked for is one the resource's store shares without approval
    (a base database's items are, unless its definition says otherwise)."""
    free = session.scalar(
        select(SharedStore.unconditional_items).where(SharedStore.resource_id == resource_id)
    )
    return free is not None and set(items) <= set(free)


def get_application(session: Session, application_id: int) -> SharingApplication:
    app = session.get(SharingApplication, application_id)
    if app is None:
        raise ApplicationNotFound(f"共享申请 {application_id} 不存在")
    return app


def get_visible_application(
    session: Session, principal: Principal, application_id: int
) -> SharingApplication:
    """An application the caller's department is party to (or any, for the platform)."""
    app = get_application(session, application_id)
    if not principal.is_admin and principal.department_id not in (
        app.provider_department_id,
        app.consumer_department_id,
    ):
        raise ApplicationNotFound(f"共享申请 {application_id} 不存在")
    return app


def scoped(q: Any, principal: Principal, side: str, consumer: Any, provider: Any) -> Any:
    """Limit a query to one side of the caller's department: ``mine`` (``consumer``
    column is mine), ``provider`` (``provider`` column is mine), or ``all`` — both sides
    of my department, or everything for the platform admin."""
    dept = principal.department_id
    if side == "mine":
        return q.where(consumer == dept)
    if side == "provider":
        return q.where(provider == dept)
    if principal.is_admin:
        return q
    return q.where(or_(consumer == dept, provider == dept))


def list_applications(
    session: Session, principal: Principal, *, side: str, status: ApplicationStatus | None = None
) -> list[SharingApplication]:
    """``side`` is ``mine`` (as consumer), ``provider`` (on my resources) or ``all``
    (platform admin only; others get both sides of their own department)."""
    q = scoped(
        select(SharingApplication).order_by(SharingApplication.id.desc()),
        principal,
        side,
        SharingApplication.consumer_department_id,
        SharingApplication.provider_department_id,
    )
    if status is not None:
        q = q.where(SharingApplication.status == status)
    return list(session.scalars(q))


def _as_provider(principal: Principal, app: SharingApplication) -> None:
    if principal.department_id != app.provider_department_id:
        raise NotYourDepartment("只有目录提供部门的信息资源管理员可以答复该申请")


def _provide_by(app: SharingApplication, settings: Settings, start: date) -> None:
    due = workdays.deadline(start, settings.provide_working_days)
    app.provide_due, app.provide_due_provisional = due.due, due.provisional


def _expect(app: SharingApplication, *states: ApplicationStatus) -> None:
    if app.status not in states:
        wanted = "、".join(s.label for s in states)
        raise StepNotAllowed(f"申请当前为“{app.status.label}”，此操作仅适用于“{wanted}”")


def approve(
    session: Session,
    settings: Settings,
    principal: Principal,
    app: SharingApplication,
    data: ApproveIn,
    *,
    today: date | None = None,
) -> SharingGrant:
    """同意: the provider grants the requested items (or fewer) with masking rules;
    the data is due within ``provide_working_days`` working days."""
    today = today or china_today()
    _as_provider(principal, app)
    _expect(app, ApplicationStatus.SUBMITTED)
    items = app.items
    if data.items is not None:
        wrong = [
            {"field": f"items[{i}]", "message": f"{code} 不在申请的信息项中"}
            for i, code in enumerate(data.items)
            if code not in app.items
        ]
        if wrong or not data.items:
            raise InvalidApplication(
                "批准的信息项须为申请项的非空子集",
                details=wrong or [{"field": "items", "message": "不能为空"}],
            )
        items = list(dict.fromkeys(data.items))
    masking = {code: str(rule) for code, rule in data.masking.items() if code in items}
    unknown = [code for code in data.masking if code not in items]
    if unknown:
        raise InvalidApplication(
            "脱敏规则引用了未批准的信息项",
            details=[{"field": f"masking.{c}", "message": "不在批准的信息项中"} for c in unknown],
        )
    before = _snapshot(app)
    app.status = ApplicationStatus.APPROVED
    app.answered_on = today
    app.answered_by = principal.name
    app.answer_reason = data.reason.strip()
    _provide_by(app, settings, today)
    audit.record(
        session,
        principal.actor,
        "sharing.application.approve",
        object_type="sharing_application",
        object_id=app.id,
        before=before,
        after=_snapshot(app) | {"reason": app.answer_reason},
    )
    return _add_grant(session, principal, app, items=items, masking=masking)


def refuse(
    session: Session,
    principal: Principal,
    app: SharingApplication,
    reason: str,
    *,
    today: date | None = None,
) -> SharingApplication:
    """不同意: a refusal must state its reason."""
    reason = _require(reason, "reason", "拒绝须说明理由 (a refusal needs a reason)")
    _as_provider(principal, app)
    _expect(app, ApplicationStatus.SUBMITTED)
    before = _snapshot(app)
    app.status = ApplicationStatus.REFUSED
    app.answered_on = today or china_today()
    app.answered_by = principal.name
    app.answer_reason = reason
    audit.record(
        session,
        principal.actor,
        "sharing.application.refuse",
        object_type="sharing_application",
        object_id=app.id,
        before=before,
        after=_snapshot(app) | {"reason": reason},
    )
    return app


def mark_provided(
    session: Session, principal: Principal, app: SharingApplication, *, today: date | None = None
) -> SharingApplication:
    """已提供: the provider has delivered (the provide-by deadline is met)."""
    _as_provider(principal, app)
    _expect(app, ApplicationStatus.APPROVED)
    before = _snapshot(app)
    app.status = ApplicationStatus.PROVIDED
    app.provided_on = today or china_today()
    audit.record(
        session,
        principal.actor,
        "sharing.application.provide",
        object_type="sharing_application",
        object_id=app.id,
        before=before,
        after=_snapshot(app) | {"provided_on": app.provided_on},
    )
    return app


def dispute(
    session: Session, principal: Principal, app: SharingApplication, reason: str
) -> SharingApplication:
    """争议: the consumer takes a refusal to the platform authority."""
    reason = _require(reason, "reason", "提出争议须说明理由")
    if principal.department_id != app.consumer_department_id:
        raise NotYourDepartment("只有申请部门可以对拒绝提出争议")
    _expect(app, ApplicationStatus.REFUSED)
    before = _snapshot(app)
    app.status = ApplicationStatus.DISPUTED
    app.dispute_reason = reason
    app.disputed_at = utcnow()
    audit.record(
        session,
        principal.actor,
        "sharing.application.dispute",
        object_type="sharing_application",
        object_id=app.id,
        before=before,
        after=_snapshot(app) | {"reason": reason},
    )
    return app


def decide_dispute(
    session: Session,
    settings: Settings,
    principal: Principal,
    app: SharingApplication,
    data: DecisionIn,
    *,
    today: date | None = None,
) -> SharingApplication:
    """裁决: the platform authority upholds the refusal or overturns it (the application
    is then approved as asked and the provide-by deadline starts)."""
    reason = _require(data.reason, "reason", "裁决须说明理由")
    _expect(app, ApplicationStatus.DISPUTED)
    if principal.name in (app.applicant, app.answered_by):
        raise SeparationOfDuties(
            "不能裁决本人提出或答复的申请，须由其他平台管理员裁决 (separation of duties)"
        )
    today = today or china_today()
    before = _snapshot(app)
    app.dispute_outcome = data.outcome
    app.dispute_decision = reason
    app.dispute_decided_by = principal.name
    app.dispute_decided_at = utcnow()
    if data.outcome is DisputeOutcome.UPHELD:
        app.status = ApplicationStatus.REFUSAL_UPHELD
    else:
        app.status = ApplicationStatus.APPROVED
        _provide_by(app, settings, today)
    audit.record(
        session,
        principal.actor,
        "sharing.dispute.decide",
        object_type="sharing_application",
        object_id=app.id,
        before=before,
        after=_snapshot(app) | {"outcome": str(data.outcome), "reason": reason},
    )
    if data.outcome is DisputeOutcome.OVERTURNED:
        _add_grant(session, principal, app, items=app.items, masking={})
    return app


# -- grants ------------------------------------------------------------------------------


def default_masking(resource: Resource) -> dict[str, str]:
    """The masking a grant gives the resource's sensitive items (敏感信息项) unless its
    approver says otherwise (``none`` included): the catalog's word is the safe default."""
    return {
        it.code: suggested_rule(it.name, it.open_masking).value
        for it in resource.items
        if it.sensitive
    }


def _add_grant(
    session: Session,
    principal: Principal,
    app: SharingApplication,
    *,
    items: list[str],
    masking: dict[str, str],
) -> SharingGrant:
    """The grant of ``items``; an item ``masking`` does not name is masked only if it is
    sensitive (:func:`default_masking`)."""
    defaults = default_masking(app.resource)
    grant = SharingGrant(
        application_id=app.id,
        resource_id=app.resource_id,
        provider_department_id=app.provider_department_id,
        consumer_department_id=app.consumer_department_id,
        items=items,
        row_scope=app.row_scope,
        row_filter=app.row_filter,
        modes=[str(app.mode)],
        purpose=app.purpose,
        expires_on=app.end_date,
        masking={
            code: masking.get(code, defaults.get(code, MaskingRule.NONE.value)) for code in items
        },
        created_by=principal.name,
    )
    session.add(grant)
    session.flush()
    audit.record(
        session,
        principal.actor,
        "sharing.grant.create",
        object_type="sharing_grant",
        object_id=grant.id,
        after=_grant_snapshot(grant) | {"application_id": app.id},
    )
    return grant


def grant_of(session: Session, application_id: int) -> SharingGrant | None:
    return session.scalar(select(SharingGrant).where(SharingGrant.application_id == application_id))


def is_active(grant: SharingGrant, today: date) -> bool:
    """In force: not revoked and the end date not passed (the end date itself counts)."""
    return not grant.revoked and today <= grant.expires_on


def active_grant(
    session: Session,
    department_id: int,
    resource_id: int,
    mode: SharingMode | str,
    today: date,
) -> SharingGrant | None:
    """The grant that lets ``department_id`` use ``resource_id`` in ``mode`` today, or
    None; revoked and expired grants are none at once. The newest one wins."""
    q = (
        select(SharingGrant)
        .where(
            SharingGrant.consumer_department_id == department_id,
            SharingGrant.resource_id == resource_id,
            SharingGrant.revoked.is_(False),
            SharingGrant.expires_on >= today,
        )
        .order_by(SharingGrant.id.desc())
    )
    wanted = str(SharingMode(mode))
    return next((g for g in session.scalars(q) if wanted in g.modes), None)


def get_grant(session: Session, grant_id: int) -> SharingGrant:
    grant = session.get(SharingGrant, grant_id)
    if grant is None:
        raise GrantNotFound(f"授权 {grant_id} 不存在")
    return grant


def list_grants(session: Session, principal: Principal, *, side: str) -> list[SharingGrant]:
    """``mine`` (held by my department), ``provider`` (on my resources), or ``all``."""
    q = scoped(
        select(SharingGrant).order_by(SharingGrant.id.desc()),
        principal,
        side,
        SharingGrant.consumer_department_id,
        SharingGrant.provider_department_id,
    )
    return list(session.scalars(q))


def revoke_grant(
    session: Session, principal: Principal, grant: SharingGrant, reason: str
) -> SharingGrant:
    """撤销授权, by the provider department or the platform; effective at once."""
    reason = _require(reason, "reason", "撤销授权须说明理由")
    if not principal.is_admin and principal.department_id != grant.provider_department_id:
        raise NotYourDepartment("只有目录提供部门或平台管理员可以撤销授权")
    if grant.revoked:
        raise StepNotAllowed("授权已撤销")
    before = _grant_snapshot(grant)
    grant.revoked = True
    grant.revoked_at = utcnow()
    grant.revoked_by = principal.name
    grant.revoke_reason = reason
    from govshare.sharing.subscriptions import stop_for_grant

    stop_for_grant(session, principal, grant, f"授权已撤销: {reason}")
    audit.record(
        session,
        principal.actor,
        "sharing.grant.revoke",
        object_type="sharing_grant",
        object_id=grant.id,
        before=before,
        after=_grant_snapshot(grant) | {"reason": reason},
    )
    return grant


# -- usage feedback ----------------------------------------------------------------------


def report_usage(
    session: Session, principal: Principal, data: UsageCreate, *, now: datetime | None = None
) -> UsageReport:
    """使用反馈 by the department that holds the grant; ``now`` is when it was reported
    (the present moment by default; the demo dates its reports in past months)."""
    grant = get_grant(session, data.grant_id)
    if principal.department_id != grant.consumer_department_id:
        raise NotYourDepartment("只能反馈本部门所持授权的使用情况")
    report = UsageReport(
        grant_id=grant.id,
        department_id=grant.consumer_department_id,
        text=data.text.strip(),
        count=data.count,
        reported_by=principal.name,
        reported_at=now or utcnow(),
    )
    session.add(report)
    session.flush()
    audit.record(
        session,
        principal.actor,
        "sharing.usage.report",
        object_type="sharing_usage_report",
        object_id=report.id,
        after={"grant_id": grant.id, "count": data.count, "text": report.text},
    )
    return report


def list_usage(session: Session, principal: Principal, *, side: str) -> list[UsageReport]:
    """Providers see who used what on their resources (``provider``); consumers see
    their own reports (``mine``); the platform sees all (``all``)."""
    q = scoped(
        select(UsageReport).join(SharingGrant).order_by(UsageReport.id.desc()),
        principal,
        side,
        UsageReport.department_id,
        SharingGrant.provider_department_id,
    )
    return list(session.scalars(q))


# -- deadlines ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Reminder:
    """An application whose answer or provision is due soon (提醒) or overdue (超期)."""

    application_id: int
    provider_department_id: int
    kind: str  # "answer" | "provide"
    due: date
    working_days_left: int
    overdue: bool


def due_reminders(
    session: Session,
    today: date,
    *,
    remind_before: int = 2,
    provider_department_id: int | None = None,
) -> list[Reminder]:
    """Applications waiting for an answer or for provision whose deadline is at most
    ``remind_before`` working days away, and those already past it; soonest first."""
    q = select(SharingApplication).where(
        SharingApplication.status.in_([ApplicationStatus.SUBMITTED, ApplicationStatus.APPROVED])
    )
    if provider_department_id is not None:
        q = q.where(SharingApplication.provider_department_id == provider_department_id)
    found: list[Reminder] = []
    for app in session.scalars(q):
        kind, due = (
            ("answer", app.answer_due)
            if app.status is ApplicationStatus.SUBMITTED
            else ("provide", app.provide_due)
        )
        if due is None:
            continue
        left = working_days_between(today, due)
        if due < today or left <= remind_before:
            found.append(
                Reminder(
                    application_id=app.id,
                    provider_department_id=app.provider_department_id,
                    kind=kind,
                    due=due,
                    working_days_left=left,
                    overdue=due < today,
                )
            )
    return sorted(found, key=lambda r: (r.due, r.application_id))


def alert_overdue_applications(session: Session, settings: Settings, today: date) -> int:
    """Applications past their answer or provision deadline by more than the 共享申请办理超期
    rule's days (0 unless edited), alerted to the platform authority as one alert kept up
    to date; resolved once none is overdue."""
    from govshare.exchange import alertrules, alerts
    from govshare.exchange.models import AlertKind

    grace = int(
        alertrules.effective(session, settings, AlertKind.APPLICATION_OVERDUE).threshold or 0
    )
    late = [
        r
        for r in due_reminders(session, today, remind_before=0)
        if r.overdue and (today - r.due).days > grace
    ]
    if not late:
        alerts.resolve_alerts(session, AlertKind.APPLICATION_OVERDUE)
        return 0
    answer = sum(r.kind == "answer" for r in late)
    alerts.raise_alert(
        session,
        AlertKind.APPLICATION_OVERDUE,
        f"{len(late)} 件共享申请超期: 未答复 {answer} 件，已同意未提供 {len(late) - answer} 件",
        details={"applications": [r.application_id for r in late]},
        webhook_url=settings.alert_webhook_url,
    )
    return len(late)


# Deadlines reach about six weeks ahead (10 working days to answer, 5 to provide,
# holidays between): a calendar year missing that far ahead is alerted before any
# deadline falls into it.
CALENDAR_HORIZON_DAYS = 45


def alert_calendar_gap(session: Session, settings: Settings, today: date) -> bool:
    """Alert the platform while the working-day calendar lacks a year that deadlines
    will soon fall into (the State Council publishes each year's holidays in November;
    until a chinesecalendar release has them, the admin enters them in the console).
    Deadlines are still computed meanwhile, provisionally. True while the gap is open."""
    from govshare.exchange import alerts
    from govshare.exchange.models import AlertKind

    horizon = today + timedelta(days=CALENDAR_HORIZON_DAYS)
    if workdays.covers(horizon.year):
        alerts.resolve_alerts(session, AlertKind.CALENDAR_MISSING)
        return False
    alerts.raise_alert(
        session,
        AlertKind.CALENDAR_MISSING,
        f"节假日历缺少 {horizon.year} 年数据，落在 {horizon.year} 年的申请与异议期限暂按周末推算"
        f"（预计）。请在“节假日安排”中录入国务院公布的 {horizon.year} 年放假与调休安排，"
        "预计期限将随即重算。",
        details={"year": horizon.year},
        webhook_url=settings.alert_webhook_url,
    )
    return True


@dataclass(frozen=True, slots=True)
class CallTotal:
    """调用统计 of one day, consumer department and resource."""

    day: date
    department_id: int
    department_name: str
    resource_id: int
    resource_name: str
    calls: int
    keys: int
    rows: int


def call_totals(
    session: Session, principal: Principal, *, side: str, since: date
) -> list[CallTotal]:
    """Data-service use per day, consumer and resource since ``since``: ``provider``
    (who used my department's data), ``mine`` (my department's use) or ``all``."""
    from sqlalchemy import func

    from govshare.security.models import Department
    from govshare.sharing.models import CallStat

    q = (
        select(
            CallStat.day,
            SharingGrant.consumer_department_id,
            Department.name,
            SharingGrant.resource_id,
            Resource.name,
            func.sum(CallStat.calls),
            func.sum(CallStat.keys),
            func.sum(CallStat.rows),
        )
        .join(SharingGrant, SharingGrant.id == CallStat.grant_id)
        .join(Department, Department.id == SharingGrant.consumer_department_id)
        .join(Resource, Resource.id == SharingGrant.resource_id)
        .where(CallStat.day >= since)
        .group_by(
            CallStat.day,
            SharingGrant.consumer_department_id,
            Department.name,
            SharingGrant.resource_id,
            Resource.name,
        )
        .order_by(CallStat.day, SharingGrant.consumer_department_id, SharingGrant.resource_id)
    )
    q = scoped(
        q, principal, side, SharingGrant.consumer_department_id, SharingGrant.provider_department_id
    )
    return [CallTotal(*row) for row in session.execute(q)]
