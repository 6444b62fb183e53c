"""The records behind an indicator, described for people: each fact's record loaded
with the columns that explain why it counted (its dates, its state) — one query per
record type over the ids, in chunks."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from govshare.catalog.models import (
    CatalogChangeEvent,
    DepartmentDuty,
    InformationSystem,
    Resource,
)
from govshare.evaluation.indicators import Indicator, Record
from govshare.evaluation.models import EvaluationFact
from govshare.exchange.models import ExchangeTask
from govshare.quality.models import QualityScan
from govshare.security.models import Department
from govshare.sharing.models import (
    GrantSubscription,
    Objection,
    SharingApplication,
    SharingGrant,
    UsageReport,
)

CHUNK = 500
DUTIES_LINK = "/catalog/duties?department_id={}"  # the department's 职责清单
# 更新周期 as the code table names them (the stored values are codes).
CYCLE_LABELS = {
    "realtime": "实时",
    "daily": "每日",
    "weekly": "每周",
    "monthly": "每月",
    "quarterly": "每季度",
    "semiannual": "每半年",
    "yearly": "每年",
    "adhoc": "不定期",
}


@dataclass(frozen=True, slots=True)
class Line:
    """One counted record: its id, whether it counted in the numerator, its value and
    the describing cells (in the order of ``HEADERS[record]``)."""

    record_id: int
    hit: bool
    value: float
    cells: tuple[Any, ...]
    link: str | None = None


HEADERS: dict[Record, tuple[str, ...]] = {
    Record.RESOURCE: ("目录代码", "目录名称", "状态", "最近修改"),
    Record.SYSTEM: ("信息系统", "在用"),
    Record.TASK: ("发送任务", "目录名称", "更新周期"),
    Record.APPLICATION: (
        "申请编号",
        "目录名称",
        "申请部门",
        "答复期限",
        "答复日期",
        "提供期限",
        "提供日期",
        "状态",
    ),
    Record.OBJECTION: ("异议编号", "目录名称", "答复期限", "答复日期", "状态"),
    Record.GRANT: ("授权编号", "目录名称", "使用部门"),
    Record.SUBSCRIPTION: ("订阅编号", "授权编号", "建立时间", "停止时间"),
    Record.USAGE: ("反馈编号", "反馈内容", "数量", "提交时间"),
    Record.SCAN: ("检测编号", "目录名称", "检测时间", "综合得分"),
    Record.DEPARTMENT: ("部门",),
    Record.DUTY: ("职责编码", "职责名称", "登记日期", "取消日期"),
    Record.CHANGE: ("变更类型", "变更对象", "变更日期", "调整期限", "变更说明"),
}


def _day(value: Any) -> str:
    if value is None:
        return ""
    return value.isoformat()[:10] if hasattr(value, "isoformat") else str(value)


def _resources(s: Session, ids: Sequence[int]) -> dict[int, tuple[tuple[Any, ...], str]]:
    rows = s.execute(
        select(
            Resource.id, Resource.code, Resource.name, Resource.status, Resource.updated_at
        ).where(Resource.id.in_(ids))
    )
    return {
        r.id: ((r.code, r.name, r.status.label, _day(r.updated_at)), f"/catalog/resources/{r.id}")
        for r in rows
    }


def _systems(s: Session, ids: Sequence[int]) -> dict[int, tuple[tuple[Any, ...], str]]:
    rows = s.execute(
        select(InformationSystem.id, InformationSystem.name, InformationSystem.in_use).where(
            InformationSystem.id.in_(ids)
        )
    )
    return {r.id: ((r.name, "是" if r.in_use else "否"), "") for r in rows}


def _tasks(s: Session, ids: Sequence[int]) -> dict[int, tuple[tuple[Any, ...], str]]:
    rows = s.execute(
        select(
            ExchangeTask.id, ExchangeTask.name, Resource.name.label("rname"), Resource.update_cycle
        )
        .join(Resource, Resource.id == ExchangeTask.resource_id)
        .where(ExchangeTask.id.in_(ids))
    )
    return {
        r.id: (
            (r.name, r.rname, CYCLE_LABELS.get(r.update_cycle, r.update_cycle)),
            f"/exchange/tasks/{r.id}",
        )
        for r in rows
    }


def _applications(s: Session, ids: Sequence[int]) -> dict[int, tuple[tuple[Any, ...], str]]:
    a = SharingApplication
    consumer = Department.__table__.alias("consumer")
    rows = s.execute(
        select(
            a.id,
            Resource.name,
            consumer.c.name.label("cname"),
            a.answer_due,
            a.answered_on,
            a.provide_due,
            a.provided_on,
            a.status,
        )
        .join(Resource, Resource.id == a.resource_id)
        .join(consumer, consumer.c.id == a.consumer_department_id)
        .where(a.id.in_(ids))
    )
    return {
        r.id: (
            (
                f"#{r.id}",
                r.name,
                r.cname,
                _day(r.answer_due),
                _day(r.answered_on),
                _day(r.provide_due),
                _day(r.provided_on),
                r.status.label,
            ),
            f"/sharing/applications/{r.id}",
        )
        for r in rows
    }


def _objections(s: Session, ids: Sequence[int]) -> dict[int, tuple[tuple[Any, ...], str]]:
    o = Objection
    rows = s.execute(
        select(o.id, Resource.name, o.answer_due, o.answered_on, o.status)
        .join(Resource, Resource.id == o.resource_id)
        .where(o.id.in_(ids))
    )
    return {
        r.id: (
            (f"#{r.id}", r.name, _day(r.answer_due), _day(r.answered_on), r.status.label),
            f"/sharing/objections/{r.id}",
        )
        for r in rows
    }


def _grants(s: Session, ids: Sequence[int]) -> dict[int, tuple[tuple[Any, ...], str]]:
    g = SharingGrant
    rows = s.execute(
        select(g.id, Resource.name, Department.name.label("cname"))
        .join(Resource, Resource.id == g.resource_id)
        .join(Department, Department.id == g.consumer_department_id)
        .where(g.id.in_(ids))
    )
    return {r.id: ((f"#{r.id}", r.name, r.cname), "") for r in rows}


def _subscriptions(s: Session, ids: Sequence[int]) -> dict[int, tuple[tuple[Any, ...], str]]:
    g = GrantSubscription
    rows = s.execute(select(g.id, g.grant_id, g.created_at, g.stopped_at).where(g.id.in_(ids)))
    return {
        r.id: ((f"#{r.id}", f"#{r.grant_id}", _day(r.created_at), _day(r.stopped_at)), "")
        for r in rows
    }


def _usage(s: Session, ids: Sequence[int]) -> dict[int, tuple[tuple[Any, ...], str]]:
    u = UsageReport
    rows = s.execute(select(u.id, u.text, u.count, u.reported_at).where(u.id.in_(ids)))
    return {r.id: ((f"#{r.id}", r.text, r.count, _day(r.reported_at)), "") for r in rows}


def _scans(s: Session, ids: Sequence[int]) -> dict[int, tuple[tuple[Any, ...], str]]:
    q = QualityScan
    rows = s.execute(
        select(q.id, q.resource_id, Resource.name, q.started_at, q.overall_score)
        .join(Resource, Resource.id == q.resource_id)
        .where(q.id.in_(ids))
    )
    return {
        r.id: (
            (f"#{r.id}", r.name, _day(r.started_at), r.overall_score),
            f"/quality/resources/{r.resource_id}?scan={r.id}",
        )
        for r in rows
    }


def _departments(s: Session, ids: Sequence[int]) -> dict[int, tuple[tuple[Any, ...], str]]:
    rows = s.execute(select(Department.id, Department.name).where(Department.id.in_(ids)))
    return {r.id: ((r.name,), "") for r in rows}


def _duties(s: Session, ids: Sequence[int]) -> dict[int, tuple[tuple[Any, ...], str]]:
    d = DepartmentDuty
    rows = s.execute(
        select(d.id, d.department_id, d.code, d.name, d.declared_on, d.withdrawn_on).where(
            d.id.in_(ids)
        )
    )
    return {
        r.id: (
            (r.code, r.name, _day(r.declared_on), _day(r.withdrawn_on)),
            DUTIES_LINK.format(r.department_id) + f"#duty-{r.id}",
        )
        for r in rows
    }


def _changes(s: Session, ids: Sequence[int]) -> dict[int, tuple[tuple[Any, ...], str]]:
    c = CatalogChangeEvent
    rows = s.execute(
        select(
            c.id,
            c.kind,
            DepartmentDuty.name.label("duty"),
            InformationSystem.name.label("system"),
            c.changed_on,
            c.catalog_due,
            c.description,
            c.department_id,
        )
        .outerjoin(DepartmentDuty, DepartmentDuty.id == c.duty_id)
        .outerjoin(InformationSystem, InformationSystem.id == c.system_id)
        .where(c.id.in_(ids))
    )
    return {
        r.id: (
            (
                r.kind.label,
                r.duty or r.system or "",
                _day(r.changed_on),
                _day(r.catalog_due),
                r.description,
            ),
            DUTIES_LINK.format(r.department_id) + "#events",
        )
        for r in rows
    }


LOADERS: dict[
    Record, Callable[[Session, Sequence[int]], dict[int, tuple[tuple[Any, ...], str]]]
] = {
    Record.RESOURCE: _resources,
    Record.SYSTEM: _systems,
    Record.TASK: _tasks,
    Record.APPLICATION: _applications,
    Record.OBJECTION: _objections,
    Record.GRANT: _grants,
    Record.SUBSCRIPTION: _subscriptions,
    Record.USAGE: _usage,
    Record.SCAN: _scans,
    Record.DEPARTMENT: _departments,
    Record.DUTY: _duties,
    Record.CHANGE: _changes,
}


def describe(session: Session, ind: Indicator, facts: Sequence[EvaluationFact]) -> list[Line]:
    """The facts as lines; a record deleted since the run keeps its id and says so."""
    load = LOADERS[ind.record]
    width = len(HEADERS[ind.record])
    out: list[Line] = []
    for i in range(0, len(facts), CHUNK):
        chunk = facts[i : i + CHUNK]
        found = load(session, [f.record_id for f in chunk])
        for f in chunk:
            cells, link = found.get(
                f.record_id, ((f"#{f.record_id}（已删除）",) + ("",) * (width - 1), "")
            )
            out.append(Line(f.record_id, f.hit, f.value, cells, link or None))
    return out
