"""考核指标: each indicator's definition and the set-based query that lists the records
it counts in a month (one row per record: department, record id, hit, value).

Every query is one SELECT over the month, grouped by the database, never a loop over
rows in Python; the run inserts its rows as facts (INSERT … SELECT) and derives every
number from those facts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Date,
    Float,
    Integer,
    Select,
    SQLColumnExpression,
    Subquery,
    and_,
    case,
    cast,
    exists,
    false,
    func,
    literal,
    or_,
    select,
    true,
    union,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement

from govshare.catalog.codes import ResourceStatus
from govshare.catalog.models import (
    CatalogChangeEvent,
    ChangeKind,
    DepartmentDuty,
    DutyResource,
    InformationItem,
    InformationSystem,
    Resource,
    ResourceTransition,
    ResourceVersion,
)
from govshare.evaluation.models import PLATFORM
from govshare.exchange.models import ExchangePackage, ExchangeTask, TaskKind, TaskState
from govshare.quality.models import QualityScan, ScanStatus
from govshare.quality.scan import LATE_AFTER_DAYS
from govshare.rules.months import Month
from govshare.security.models import Department
from govshare.sharing.models import (
    ApplicationStatus,
    CallStat,
    DisputeOutcome,
    GrantSubscription,
    Objection,
    SharingApplication,
    SharingGrant,
    UsageReport,
)


class Kind(StrEnum):
    """How an indicator's facts make its value."""

    RATE = "rate"  # hits / records, higher is better
    RATE_LOW = "rate_low"  # hits / records, lower is better (拒绝率)
    COUNT = "count"  # number of records
    SUM = "sum"  # sum of the facts' values (调用量)
    MEAN = "mean"  # mean of the facts' values (质量得分)


class Record(StrEnum):
    """What a fact's ``record_id`` points at, for the drill-down."""

    RESOURCE = "resource"
    SYSTEM = "system"
    TASK = "task"
    APPLICATION = "application"
    OBJECTION = "objection"
    GRANT = "grant"
    SUBSCRIPTION = "subscription"
    USAGE = "usage"
    SCAN = "scan"
    DEPARTMENT = "department"
    DUTY = "duty"
    CHANGE = "change"


@dataclass(frozen=True, slots=True)
class Indicator:
    key: str
    label: str
    kind: Kind
    record: Record
    definition: str  # 口径, shown on the page and in the exports
    hit_label: str = "计入分子"
    platform: bool = False

    @property
    def is_rate(self) -> bool:
        return self.kind in (Kind.RATE, Kind.RATE_LOW)


# Catalog entries that went through the department's registration (已注册 or beyond).
REGISTERED = (
    ResourceStatus.REGISTERED,
    ResourceStatus.PENDING_PUBLICATION,
    ResourceStatus.PUBLICATION_REJECTED,
    ResourceStatus.PUBLISHED,
    ResourceStatus.WITHDRAWN,
)
REVIEW_DAYS = 365
REFUSED = (
    ApplicationStatus.REFUSED,
    ApplicationStatus.DISPUTED,
    ApplicationStatus.REFUSAL_UPHELD,
)

INDICATORS: tuple[Indicator, ...] = (
    Indicator(
        "catalog_complete",
        "目录核心元数据完整率",
        Kind.RATE,
        Record.RESOURCE,
        "分母：本部门截至月末已注册（含已发布、已取消发布）的目录数；分子：其中摘要、格式、"
        "更新周期齐全，至少有一个信息项、每个字符型信息项有长度，有条件共享写明条件、"
        "不予共享写明依据的目录数。",
        "核心元数据完整",
    ),
    Indicator(
        "system_coverage",
        "信息系统编目率",
        Kind.RATE,
        Record.SYSTEM,
        "分母：本部门截至月末登记且在用的政务信息系统数；分子：其中至少有一条非草稿目录"
        "以之为来源系统的系统数。",
        "已编目",
    ),
    Indicator(
        "duty_coverage",
        "职责编目率",
        Kind.RATE,
        Record.DUTY,
        "分母：本部门截至月末在职责清单中登记且未取消的职责事项数；分子：其中在月末之前已关联"
        "至少一条本部门已注册（含已发布、已取消发布）目录的职责数。",
        "已编目",
    ),
    Indicator(
        "catalog_adjusted",
        "目录按时调整率",
        Kind.RATE,
        Record.CHANGE,
        "分母：本部门登记的职责调整和信息系统变更中，目录调整期限（变更日起若干个工作日，"
        "默认 15 个，可由平台设置）落在本月的变更数；分子：其中在变更日至"
        "期限当天（北京时间）之间，相关目录——职责调整为关联该职责的目录，系统变更为以该系统为"
        "来源系统的本部门目录——有新版本或办理过生命周期操作（提交、审核、发布、取消发布等）的"
        "变更数。",
        "按时调整",
    ),
    Indicator(
        "catalog_reviewed",
        "目录年度更新率",
        Kind.RATE,
        Record.RESOURCE,
        f"分母：同“目录核心元数据完整率”；分子：其中最近一次修改在月末之前 {REVIEW_DAYS} 天"
        "以内的目录数（12 个月未更新的目录不计入）。",
        "12 个月内有更新",
    ),
    Indicator(
        "data_timely",
        "数据更新及时率",
        Kind.RATE,
        Record.TASK,
        "分母：本部门目录的运行中发送任务数（目录更新周期为不定期的除外）；分子：其中月末"
        "之前最近一个交换包在更新周期加宽限期内到达的任务数（实时 1 天、每日 3 天、每周 9 天、"
        "每月 33 天、每季度 94 天、每半年 185 天、每年 368 天）。无交换包的任务不计入分子。",
        "按周期更新",
    ),
    Indicator(
        "answer_on_time",
        "申请按时答复率",
        Kind.RATE,
        Record.APPLICATION,
        "分母：本部门作为提供方、答复期限（工作日）落在本月的有条件共享申请数；分子：其中"
        "在答复期限当天或之前答复的申请数。",
        "按时答复",
    ),
    Indicator(
        "provide_on_time",
        "按时提供率",
        Kind.RATE,
        Record.APPLICATION,
        "分母：本部门作为提供方、提供期限（工作日）落在本月的申请数；分子：其中在提供期限"
        "当天或之前提供的申请数。",
        "按时提供",
    ),
    Indicator(
        "refusal_rate",
        "申请拒绝率",
        Kind.RATE_LOW,
        Record.APPLICATION,
        "分母：本部门作为提供方、在本月答复的申请数；分子：其中答复为拒绝的申请数（含已提起"
        "争议、裁决维持拒绝和裁决撤销拒绝的）。越低越好，计分为 100 减拒绝率。",
        "拒绝",
    ),
    Indicator(
        "disputes_lost",
        "争议撤销拒绝数",
        Kind.COUNT,
        Record.APPLICATION,
        "本部门的拒绝在本月（北京时间）被平台裁决撤销的申请数；每件按考核方案扣分。",
        "被撤销",
    ),
    Indicator(
        "objection_on_time",
        "异议按时答复率",
        Kind.RATE,
        Record.OBJECTION,
        "分母：本部门作为提供方、答复期限（工作日）落在本月的数据异议数；分子：其中在答复"
        "期限当天或之前答复的异议数。",
        "按时答复",
    ),
    Indicator(
        "quality",
        "数据质量得分",
        Kind.MEAN,
        Record.SCAN,
        "本部门每个共享信息库在月末之前最近一次成功的质量检测的综合得分的平均值；没有检测时"
        "显示“—”，不参与计分。",
        "已计入",
    ),
    Indicator(
        "calls_served",
        "数据服务调用量",
        Kind.SUM,
        Record.GRANT,
        "其他部门在本月依本部门的授权调用数据服务的次数之和（按授权汇总调用统计）。",
        "有调用",
    ),
    Indicator(
        "rows_served",
        "数据服务返回记录数",
        Kind.SUM,
        Record.GRANT,
        "其他部门在本月依本部门的授权调用数据服务所返回的记录数之和。",
        "有返回",
    ),
    Indicator(
        "subscriptions_fed",
        "在供订阅数",
        Kind.COUNT,
        Record.SUBSCRIPTION,
        "依本部门的授权建立、在本月内（至少一天）未停止的订阅数。",
        "在供",
    ),
    Indicator(
        "feedback_given",
        "使用反馈数",
        Kind.COUNT,
        Record.USAGE,
        "本部门作为使用方在本月提交的使用反馈数。",
        "已反馈",
    ),
    Indicator(
        "dept_coverage",
        "共享部门覆盖率",
        Kind.RATE,
        Record.DEPARTMENT,
        "分母：截至月末平台上的部门数；分子：其中至少有一条已发布（在共享目录中可见）的"
        "无条件或有条件共享目录的部门数。",
        "已提供共享目录",
        platform=True,
    ),
    Indicator(
        "content_coverage",
        "信息内容覆盖率",
        Kind.RATE,
        Record.SYSTEM,
        "分母：截至月末登记且在用的政务信息系统数；分子：其中至少有一条已发布目录以之为来源"
        "系统的系统数。",
        "已发布目录",
        platform=True,
    ),
    Indicator(
        "provision_rate",
        "共享信息提供率",
        Kind.RATE,
        Record.RESOURCE,
        "分母：已发布的无条件和有条件共享目录数；分子：其中已经提供数据的目录数——有发送任务"
        "在月末之前送达过交换包。",
        "已提供数据",
        platform=True,
    ),
    Indicator(
        "collaboration_rate",
        "业务应用协同率",
        Kind.RATE,
        Record.DEPARTMENT,
        "分母：截至月末平台上的部门数；分子：其中在本月作为使用方调用过数据服务或有在供订阅"
        "的部门数。",
        "本月使用共享数据",
        platform=True,
    ),
)
BY_KEY: dict[str, Indicator] = {i.key: i for i in INDICATORS}
DEPARTMENT_INDICATORS = tuple(i for i in INDICATORS if not i.platform)
PLATFORM_INDICATORS = tuple(i for i in INDICATORS if i.platform)
SCORED = tuple(i.key for i in DEPARTMENT_INDICATORS if i.is_rate or i.kind is Kind.MEAN)


FactQuery = Select[tuple[int, int, bool, float]]


def _registered_entries(m: Month) -> ColumnElement[bool]:
    return and_(Resource.status.in_(REGISTERED), Resource.created_at < m.end)


def _complete() -> ColumnElement[bool]:
    lacking_length = exists().where(
        InformationItem.resource_id == Resource.id,
        InformationItem.data_type == "C",
        InformationItem.length.is_(None),
    )
    has_item = exists().where(InformationItem.resource_id == Resource.id)
    return and_(
        Resource.abstract != "",
        Resource.format != "",
        Resource.update_cycle != "",
        has_item,
        ~lacking_length,
        or_(Resource.sharing_type != "2", Resource.sharing_conditions != ""),
        or_(Resource.sharing_type != "3", Resource.not_shared_basis != ""),
    )


class beijing_date(FunctionElement[date]):  # noqa: N801 — a SQL function's name
    """The Beijing (UTC+8) calendar day of a UTC timestamp column, in SQL."""

    type = Date()
    inherit_cache = True


@compiles(beijing_date, "sqlite")
def _beijing_date_sqlite(element: beijing_date, compiler: Any, **kw: Any) -> str:
    # Timestamps are stored as UTC text; date() gives 'YYYY-MM-DD', as Date columns are stored.
    return f"date({compiler.process(element.clauses, **kw)}, '+8 hours')"


@compiles(beijing_date)
def _beijing_date_default(element: beijing_date, compiler: Any, **kw: Any) -> str:
    return f"CAST(({compiler.process(element.clauses, **kw)} AT TIME ZONE 'Asia/Shanghai') AS DATE)"


def _touched_between(
    rid: SQLColumnExpression[int], first: SQLColumnExpression[date], last: SQLColumnExpression[date]
) -> ColumnElement[bool]:
    """The entry got a new version or went through a lifecycle step on a Beijing day
    between ``first`` and ``last`` (both included)."""
    # Nested two levels deep: correlate explicitly, or the outer tables would be
    # joined in again instead of referred to.
    return or_(
        exists()
        .where(
            ResourceVersion.resource_id == rid,
            beijing_date(ResourceVersion.created_at).between(first, last),
        )
        .correlate_except(ResourceVersion),
        exists()
        .where(
            ResourceTransition.resource_id == rid,
            beijing_date(ResourceTransition.at).between(first, last),
        )
        .correlate_except(ResourceTransition),
    )


def _bool(cond: ColumnElement[bool]) -> ColumnElement[bool]:
    """A condition as a selectable boolean column on every backend."""
    return case((cond, true()), else_=false())


def _fact(
    dept: SQLColumnExpression[int] | int,
    rid: SQLColumnExpression[int],
    hit: SQLColumnExpression[bool],
    value: SQLColumnExpression[Any] | float = 1.0,
) -> FactQuery:
    dept_col = literal(dept, Integer) if isinstance(dept, int) else dept
    value_col = literal(value, Float) if isinstance(value, float) else cast(value, Float)
    return select(dept_col, rid, hit, value_col)


def _last_packages(m: Month) -> Subquery:
    """Each task's newest package received before the month's end (one GROUP BY)."""
    return (
        select(
            ExchangePackage.task_id.label("task_id"),
            func.max(ExchangePackage.received_at).label("last"),
        )
        .where(ExchangePackage.received_at < m.end)
        .group_by(ExchangePackage.task_id)
        .subquery()
    )


def _fresh(last: Subquery, m: Month) -> ColumnElement[bool]:
    """The newest package is within the resource's cycle (+ grace) of the month's end."""
    return or_(
        *(
            and_(Resource.update_cycle == cycle, last.c.last >= m.end - timedelta(days=days))
            for cycle, days in LATE_AFTER_DAYS.items()
        )
    )


def fact_queries(m: Month) -> dict[str, FactQuery]:
    """Each indicator's records in month ``m``: (department, record id, hit, value)."""
    first, last_day = m.first_day, m.last_day
    q: dict[str, FactQuery] = {}
    q["catalog_complete"] = _fact(
        Resource.provider_department_id, Resource.id, _bool(_complete())
    ).where(_registered_entries(m))
    q["catalog_reviewed"] = _fact(
        Resource.provider_department_id,
        Resource.id,
        _bool(Resource.updated_at >= m.end - timedelta(days=REVIEW_DAYS)),
    ).where(_registered_entries(m))
    # Uncorrelated IN (subquery): computed once per query, never once per row.
    catalogued = InformationSystem.id.in_(
        select(Resource.source_system_id).where(
            Resource.source_system_id.is_not(None),
            Resource.status != ResourceStatus.DRAFT,
            Resource.created_at < m.end,
        )
    )
    q["system_coverage"] = _fact(
        InformationSystem.department_id, InformationSystem.id, _bool(catalogued)
    ).where(InformationSystem.in_use.is_(True), InformationSystem.created_at < m.end)
    duty = DepartmentDuty
    served = duty.id.in_(
        select(DutyResource.duty_id)
        .join(Resource, Resource.id == DutyResource.resource_id)
        .where(DutyResource.linked_at < m.end, _registered_entries(m))
    )
    q["duty_coverage"] = _fact(duty.department_id, duty.id, _bool(served)).where(
        duty.declared_on <= last_day, or_(duty.withdrawn_on.is_(None), duty.withdrawn_on > last_day)
    )
    change = CatalogChangeEvent
    # A duty's entries through its links (the link table's key leads with the duty); a
    # system's through their source system, among the department's own entries.
    duty_adjusted = (
        exists()
        .where(
            DutyResource.duty_id == change.duty_id,
            _touched_between(DutyResource.resource_id, change.changed_on, change.catalog_due),
        )
        .correlate_except(DutyResource)
    )
    system_adjusted = (
        exists()
        .where(
            Resource.source_system_id == change.system_id,
            Resource.provider_department_id == change.department_id,
            _touched_between(Resource.id, change.changed_on, change.catalog_due),
        )
        .correlate_except(Resource)
    )
    adjusted = or_(
        and_(change.kind == ChangeKind.DUTY, duty_adjusted),
        and_(change.kind == ChangeKind.SYSTEM, system_adjusted),
    )
    q["catalog_adjusted"] = _fact(change.department_id, change.id, _bool(adjusted)).where(
        change.catalog_due.between(first, last_day)
    )
    last = _last_packages(m)
    q["data_timely"] = (
        _fact(Resource.provider_department_id, ExchangeTask.id, _bool(_fresh(last, m)))
        .join_from(ExchangeTask, Resource, ExchangeTask.resource_id == Resource.id)
        .outerjoin(last, last.c.task_id == ExchangeTask.id)
        .where(
            ExchangeTask.kind == TaskKind.PROVIDER,
            ExchangeTask.state == TaskState.RUNNING,
            ExchangeTask.created_at < m.end,
            Resource.update_cycle.in_(list(LATE_AFTER_DAYS)),
        )
    )
    app = SharingApplication
    q["answer_on_time"] = _fact(
        app.provider_department_id,
        app.id,
        _bool(and_(app.answered_on.is_not(None), app.answered_on <= app.answer_due)),
    ).where(app.answer_due.between(first, last_day))
    q["provide_on_time"] = _fact(
        app.provider_department_id,
        app.id,
        _bool(and_(app.provided_on.is_not(None), app.provided_on <= app.provide_due)),
    ).where(app.provide_due.between(first, last_day))
    q["refusal_rate"] = _fact(
        app.provider_department_id,
        app.id,
        _bool(or_(app.status.in_(REFUSED), app.dispute_outcome == DisputeOutcome.OVERTURNED)),
    ).where(app.answered_on.between(first, last_day))
    q["disputes_lost"] = _fact(app.provider_department_id, app.id, true()).where(
        app.dispute_outcome == DisputeOutcome.OVERTURNED,
        app.dispute_decided_at >= m.start,
        app.dispute_decided_at < m.end,
    )
    q["objection_on_time"] = _fact(
        Objection.provider_department_id,
        Objection.id,
        _bool(
            and_(Objection.answered_on.is_not(None), Objection.answered_on <= Objection.answer_due)
        ),
    ).where(Objection.answer_due.between(first, last_day))
    latest = (
        select(QualityScan.store_id, func.max(QualityScan.id).label("scan_id"))
        .where(
            QualityScan.status == ScanStatus.DONE,
            QualityScan.overall_score.is_not(None),
            QualityScan.started_at < m.end,
        )
        .group_by(QualityScan.store_id)
        .subquery()
    )
    q["quality"] = _fact(
        QualityScan.department_id,
        QualityScan.id,
        true(),
        QualityScan.overall_score,
    ).join_from(QualityScan, latest, latest.c.scan_id == QualityScan.id)
    calls = (
        select(
            SharingGrant.provider_department_id.label("dept"),
            CallStat.grant_id.label("grant_id"),
            func.sum(CallStat.calls).label("calls"),
            func.sum(CallStat.rows).label("rows"),
        )
        .join(SharingGrant, SharingGrant.id == CallStat.grant_id)
        .where(CallStat.day.between(first, last_day))
        .group_by(SharingGrant.provider_department_id, CallStat.grant_id)
        .subquery()
    )
    q["calls_served"] = _fact(
        calls.c.dept, calls.c.grant_id, calls.c.calls > 0, func.coalesce(calls.c.calls, 0)
    ).select_from(calls)
    q["rows_served"] = _fact(
        calls.c.dept, calls.c.grant_id, calls.c.rows > 0, func.coalesce(calls.c.rows, 0)
    ).select_from(calls)
    q["subscriptions_fed"] = (
        _fact(SharingGrant.provider_department_id, GrantSubscription.id, true())
        .join_from(GrantSubscription, SharingGrant, SharingGrant.id == GrantSubscription.grant_id)
        .where(
            GrantSubscription.created_at < m.end,
            or_(GrantSubscription.stopped_at.is_(None), GrantSubscription.stopped_at >= m.start),
        )
    )
    q["feedback_given"] = _fact(UsageReport.department_id, UsageReport.id, true()).where(
        UsageReport.reported_at >= m.start, UsageReport.reported_at < m.end
    )
    # -- platform (平台指标) ---------------------------------------------------------------
    listed_shared = and_(Resource.listed.is_(True), Resource.sharing_type.in_(("1", "2")))
    q["dept_coverage"] = _fact(
        PLATFORM,
        Department.id,
        _bool(Department.id.in_(select(Resource.provider_department_id).where(listed_shared))),
    ).where(Department.created_at < m.end)
    q["content_coverage"] = _fact(
        PLATFORM,
        InformationSystem.id,
        _bool(
            InformationSystem.id.in_(
                select(Resource.source_system_id).where(
                    Resource.source_system_id.is_not(None), Resource.listed.is_(True)
                )
            )
        ),
    ).where(InformationSystem.in_use.is_(True), InformationSystem.created_at < m.end)
    delivered = select(ExchangePackage.task_id).where(ExchangePackage.received_at < m.end)
    provided = Resource.id.in_(
        select(ExchangeTask.resource_id).where(
            ExchangeTask.kind == TaskKind.PROVIDER, ExchangeTask.id.in_(delivered)
        )
    )
    q["provision_rate"] = _fact(PLATFORM, Resource.id, _bool(provided)).where(listed_shared)
    callers = (
        select(SharingGrant.consumer_department_id)
        .join(CallStat, CallStat.grant_id == SharingGrant.id)
        .where(CallStat.day.between(first, last_day), CallStat.calls > 0)
    )
    subscribers = (
        select(SharingGrant.consumer_department_id)
        .join(GrantSubscription, GrantSubscription.grant_id == SharingGrant.id)
        .where(
            GrantSubscription.created_at < m.end,
            or_(GrantSubscription.stopped_at.is_(None), GrantSubscription.stopped_at >= m.start),
        )
    )
    q["collaboration_rate"] = _fact(
        PLATFORM, Department.id, _bool(Department.id.in_(union(callers, subscribers)))
    ).where(Department.created_at < m.end)
    assert set(q) == set(BY_KEY)
    return q
