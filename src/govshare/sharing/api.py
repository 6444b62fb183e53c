"""Sharing API: applications and their answers, disputes, grants, usage feedback and
deadline reminders. Every list is scoped to the caller's department (the platform
admin sees all)."""

from __future__ import annotations

from dataclasses import asdict
from datetime import date, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, status
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from govshare.config import Settings
from govshare.deps import (
    CalendarAdmin,
    Require,
    SessionDep,
    SettingsDep,
    SharingApplicant,
    SharingArbiter,
    SharingReader,
    SharingReviewer,
)
from govshare.ids import Id
from govshare.rules.clock import china_today
from govshare.rules.workdays import FIRST_YEAR, LAST_YEAR
from govshare.security.roles import Permission
from govshare.sharing import calendar, objections, service, subscriptions
from govshare.sharing.models import (
    ApplicationStatus,
    Objection,
    ObjectionStatus,
    SharingApplication,
    SharingGrant,
    UsageReport,
)
from govshare.sharing.schemas import (
    ApplicationCreate,
    ApplicationPublic,
    ApproveIn,
    CalendarEntered,
    CalendarYearIn,
    CalendarYearPublic,
    DecisionIn,
    GrantPublic,
    ObjectionAnswer,
    ObjectionCreate,
    ObjectionPublic,
    ReasonIn,
    ReminderPublic,
    UsageCreate,
    UsagePublic,
)

router = APIRouter(prefix="/sharing", tags=["sharing"])
Side = Literal["mine", "provider", "all"]


def application_public(db: Session, app: SharingApplication) -> ApplicationPublic:
    grant = service.grant_of(db, app.id)
    return ApplicationPublic.model_validate(
        {
            **{k: getattr(app, k) for k in ApplicationPublic.model_fields if hasattr(app, k)},
            "resource_code": app.resource.code,
            "resource_name": app.resource.name,
            "provider_name": app.provider.name,
            "consumer_name": app.consumer.name,
            "status_label": app.status.label,
            "grant_id": grant.id if grant else None,
        }
    )


def grant_public(grant: SharingGrant) -> GrantPublic:
    return GrantPublic.model_validate(
        {
            **{k: getattr(grant, k) for k in GrantPublic.model_fields if hasattr(grant, k)},
            "resource_code": grant.resource.code,
            "resource_name": grant.resource.name,
            "consumer_name": grant.consumer.name,
            "active": service.is_active(grant, china_today()),
        }
    )


def usage_public(report: UsageReport) -> UsagePublic:
    return UsagePublic(
        id=report.id,
        grant_id=report.grant_id,
        resource_id=report.grant.resource_id,
        resource_name=report.grant.resource.name,
        department_id=report.department_id,
        department_name=report.grant.consumer.name,
        text=report.text,
        count=report.count,
        reported_by=report.reported_by,
        reported_at=report.reported_at,
    )


# -- applications ------------------------------------------------------------------------


@router.post(
    "/applications",
    status_code=status.HTTP_201_CREATED,
    summary="提交共享申请 (无条件共享即时授权)",
)
def create_application(
    body: ApplicationCreate, db: SessionDep, settings: SettingsDep, caller: SharingApplicant
) -> ApplicationPublic:
    return application_public(db, service.apply(db, settings, caller, body))


@router.get("/applications", summary="共享申请列表: mine 本部门提出的, provider 对本部门目录的")
def list_applications(
    db: SessionDep,
    caller: SharingReader,
    side: Side = "all",
    state: ApplicationStatus | None = Query(default=None, alias="status"),
) -> list[ApplicationPublic]:
    return [
        application_public(db, a)
        for a in service.list_applications(db, caller, side=side, status=state)
    ]


@router.get("/applications/{application_id}", summary="共享申请详情")
def get_application(application_id: Id, db: SessionDep, caller: SharingReader) -> ApplicationPublic:
    return application_public(db, service.get_visible_application(db, caller, application_id))


@router.post("/applications/{application_id}/approve", summary="同意申请并授权")
def approve_application(
    application_id: Id,
    body: ApproveIn,
    db: SessionDep,
    settings: SettingsDep,
    caller: SharingReviewer,
) -> ApplicationPublic:
    app = service.get_visible_application(db, caller, application_id)
    service.approve(db, settings, caller, app, body)
    return application_public(db, app)


@router.post("/applications/{application_id}/refuse", summary="拒绝申请 (须说明理由)")
def refuse_application(
    application_id: Id, body: ReasonIn, db: SessionDep, caller: SharingReviewer
) -> ApplicationPublic:
    app = service.get_visible_application(db, caller, application_id)
    return application_public(db, service.refuse(db, caller, app, body.reason))


@router.post("/applications/{application_id}/provide", summary="标记已提供数据")
def provide_application(
    application_id: Id, db: SessionDep, caller: SharingReviewer
) -> ApplicationPublic:
    app = service.get_visible_application(db, caller, application_id)
    return application_public(db, service.mark_provided(db, caller, app))


@router.post("/applications/{application_id}/dispute", summary="对拒绝提出争议")
def dispute_application(
    application_id: Id, body: ReasonIn, db: SessionDep, caller: SharingApplicant
) -> ApplicationPublic:
    app = service.get_visible_application(db, caller, application_id)
    return application_public(db, service.dispute(db, caller, app, body.reason))


@router.post("/applications/{application_id}/decision", summary="平台裁决争议")
def decide_dispute(
    application_id: Id,
    body: DecisionIn,
    db: SessionDep,
    settings: SettingsDep,
    caller: SharingArbiter,
) -> ApplicationPublic:
    app = service.get_application(db, application_id)
    return application_public(db, service.decide_dispute(db, settings, caller, app, body))


@router.get("/reminders", summary="临近答复或提供期限、已超期的申请")
def list_reminders(
    db: SessionDep, settings: SettingsDep, caller: SharingReader
) -> list[ReminderPublic]:
    found = service.due_reminders(
        db,
        china_today(),
        remind_before=settings.remind_working_days_before,
        provider_department_id=None if caller.is_admin else caller.department_id,
    )
    return [
        ReminderPublic(
            application_id=r.application_id,
            kind=r.kind,  # type: ignore[arg-type]
            due=r.due,
            working_days_left=r.working_days_left,
            overdue=r.overdue,
        )
        for r in found
    ]


# -- grants ------------------------------------------------------------------------------


@router.get("/grants", summary="授权列表: mine 本部门持有的, provider 本部门目录上的")
def list_grants(db: SessionDep, caller: SharingReader, side: Side = "all") -> list[GrantPublic]:
    return [grant_public(g) for g in service.list_grants(db, caller, side=side)]


@router.post("/grants/{grant_id}/revoke", summary="撤销授权 (即时生效)")
def revoke_grant(
    grant_id: Id, body: ReasonIn, db: SessionDep, caller: SharingReviewer
) -> GrantPublic:
    grant = service.get_grant(db, grant_id)
    return grant_public(service.revoke_grant(db, caller, grant, body.reason))


class SubscriptionIn(BaseModel):
    node_id: Id = Field(description="本部门的前置机")
    source_task_id: Id = Field(description="目录提供部门的发送任务")
    config: dict[str, Any] = Field(description="接收任务配置 (目标库、表、映射)")
    name: str | None = Field(default=None, max_length=100)


@router.post(
    "/grants/{grant_id}/subscription",
    status_code=status.HTTP_201_CREATED,
    summary="按订阅授权创建并启动接收任务 (及只含授权范围的专用发送任务)",
)
def subscribe(
    grant_id: Id, body: SubscriptionIn, db: SessionDep, caller: SharingApplicant
) -> dict[str, Any]:
    grant = service.get_grant(db, grant_id)
    sub = subscriptions.subscribe(
        db,
        caller,
        grant,
        node_id=body.node_id,
        source_task_id=body.source_task_id,
        target_config=body.config,
        name=body.name,
    )
    return {
        "subscription_id": sub.id,
        "task_id": sub.subscriber_task_id,
        "provider_task_id": sub.provider_task_id,
        "state": "running",
        "grant_id": grant.id,
    }


# -- usage feedback ----------------------------------------------------------------------


@router.post("/usage", status_code=status.HTTP_201_CREATED, summary="使用情况反馈")
def report_usage(body: UsageCreate, db: SessionDep, caller: SharingApplicant) -> UsagePublic:
    return usage_public(service.report_usage(db, caller, body))


class CallTotalPublic(BaseModel):
    day: date
    department_id: Id
    department_name: str
    resource_id: Id
    resource_name: str
    calls: int
    keys: int
    rows: int


@router.get("/usage/calls", summary="数据服务调用统计: 按日、使用部门、目录")
def call_totals(
    db: SessionDep,
    caller: SharingReader,
    side: Side = "all",
    days: int = Query(default=30, ge=1, le=366, description="最近天数"),
) -> list[CallTotalPublic]:
    since = china_today() - timedelta(days=days - 1)
    return [
        CallTotalPublic(**asdict(t))
        for t in service.call_totals(db, caller, side=side, since=since)
    ]


@router.get("/usage", summary="使用反馈: provider 谁用了本部门的数据, mine 本部门的反馈")
def list_usage(db: SessionDep, caller: SharingReader, side: Side = "all") -> list[UsagePublic]:
    return [usage_public(r) for r in service.list_usage(db, caller, side=side)]


# -- objections --------------------------------------------------------------------------


def objection_public(obj: Objection, settings: Settings) -> ObjectionPublic:
    """The objection with its record key and values opened (kept sealed at rest)."""
    text = objections.text_of(obj, settings)
    return ObjectionPublic.model_validate(
        {
            **{k: getattr(obj, k) for k in ObjectionPublic.model_fields if hasattr(obj, k)},
            "record_key": text.record_key,
            "claimed": text.claimed,
            "correction": text.correction,
            "status": str(obj.status),
            "resource_name": obj.resource.name,
            "consumer_name": obj.consumer.name,
            "provider_name": obj.provider.name,
            "status_label": obj.status.label,
        }
    )


@router.post("/objections", status_code=status.HTTP_201_CREATED, summary="对共享数据提出异议")
def raise_objection(
    body: ObjectionCreate, db: SessionDep, settings: SettingsDep, caller: SharingApplicant
) -> ObjectionPublic:
    return objection_public(objections.raise_objection(db, settings, caller, body), settings)


@router.get("/objections", summary="异议列表: mine 本部门提出的, provider 针对本部门数据的")
def list_objections(
    db: SessionDep,
    settings: SettingsDep,
    caller: SharingReader,
    side: Side = "all",
    state: ObjectionStatus | None = Query(default=None, alias="status"),
) -> list[ObjectionPublic]:
    return [
        objection_public(o, settings)
        for o in objections.list_objections(db, caller, side=side, status=state)
    ]


@router.get("/objections/{objection_id}", summary="异议详情")
def get_objection(
    objection_id: Id, db: SessionDep, settings: SettingsDep, caller: SharingReader
) -> ObjectionPublic:
    return objection_public(objections.get_visible(db, caller, objection_id), settings)


@router.post("/objections/{objection_id}/answer", summary="答复异议 (确认更正或不予更正)")
def answer_objection(
    objection_id: Id,
    body: ObjectionAnswer,
    db: SessionDep,
    settings: SettingsDep,
    caller: SharingReviewer,
) -> ObjectionPublic:
    obj = objections.get_visible(db, caller, objection_id)
    return objection_public(objections.answer(db, settings, caller, obj, body), settings)


# -- holiday schedules (节假日安排) ----------------------------------------------------------


def _calendar_year(entry: calendar.YearOverview) -> CalendarYearPublic:
    row = entry.entered
    return CalendarYearPublic(
        year=entry.year,
        source=str(entry.source),
        source_label=entry.source.label,
        holidays=row.holidays if row else [],
        workdays=row.workdays if row else [],
        entered_by=row.entered_by if row else None,
        entered_at=row.entered_at if row else None,
    )


@router.get(
    "/calendar",
    summary="节假日安排: 各年工作日来源 (控制台录入/文件/内置/按周末推算)",
    dependencies=[Depends(Require(Permission.CALENDAR_ADMIN))],
)
def list_calendar_years(db: SessionDep) -> list[CalendarYearPublic]:
    return [_calendar_year(y) for y in calendar.overview(db, china_today())]


@router.put(
    "/calendar/{year}",
    summary="录入或更正一年的放假与调休安排 (预计期限随即重算)",
)
def enter_calendar_year(
    year: Annotated[int, Path(ge=FIRST_YEAR, le=LAST_YEAR)],
    body: CalendarYearIn,
    db: SessionDep,
    settings: SettingsDep,
    caller: CalendarAdmin,
) -> CalendarEntered:
    _, recounted = calendar.enter_year(
        db, settings, caller, year=year, holidays=body.holidays, workdays_=body.workdays
    )
    (entry,) = (y for y in calendar.overview(db, china_today()) if y.year == year)
    return CalendarEntered(**_calendar_year(entry).model_dump(), recounted=recounted)


@router.delete(
    "/calendar/{year}",
    summary="撤回控制台录入的一年安排 (改用文件、内置日历或按周末推算)",
)
def remove_calendar_year(
    year: Annotated[int, Path(ge=FIRST_YEAR, le=LAST_YEAR)],
    db: SessionDep,
    settings: SettingsDep,
    caller: CalendarAdmin,
) -> dict[str, int]:
    return {"year": year, "recounted": calendar.remove_year(db, settings, caller, year)}
