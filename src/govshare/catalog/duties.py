"""Rules of the duty register (部门职责 / 权责清单) and of the changes that start the
catalog's update deadline.

A department declares its duties (职责事项, from its 三定方案 or 权责清单) and links the
catalog entries that serve each. Declaring, changing (name or basis, with a reason) and
withdrawing a duty, and recording a change of an information system, each record a
``CatalogChangeEvent`` whose ``catalog_due`` is the N-th working day after the change
(N = ``catalog_update_working_days``): by then the catalog must follow. Events are
evidence and are never edited or deleted; a wrong one is superseded by another.

Who: the department's 目录编目员 (``duty.write``) keeps its own department's register,
the platform admin any department's; reading is the department's own, or everything
for the platform admin and the auditor.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Generic, Literal, TypeVar

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from govshare.catalog.codes import ResourceStatus
from govshare.catalog.errors import (
    DutyCodeTaken,
    DutyNotFound,
    InvalidDuty,
    NotYourDepartment,
    ResourceNotFound,
    SystemNotFound,
    TransitionNotAllowed,
)
from govshare.catalog.models import (
    CatalogChangeEvent,
    ChangeKind,
    DepartmentDuty,
    DutyResource,
    InformationSystem,
    Resource,
)
from govshare.catalog.schemas import DutyChange, DutyCreate, DutyWithdraw, SystemChangeIn
from govshare.rules import workdays
from govshare.rules.clock import china_today
from govshare.security import audit
from govshare.security.models import Department
from govshare.security.roles import Permission, Role
from govshare.security.service import Principal

# Entries a duty may be linked to: any state but 已撤销. A draft counts, since a new
# duty's entry is usually compiled (and linked) before it passes review.
LINKABLE = frozenset(ResourceStatus) - {ResourceStatus.WITHDRAWN}


T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: list[T]
    total: int


def reads_everything(principal: Principal) -> bool:
    """The platform admin and the auditor read every department's register."""
    return principal.is_admin or Role.AUDITOR in principal.roles


def check_read(principal: Principal, department_id: int) -> None:
    if not reads_everything(principal) and principal.department_id != department_id:
        raise NotYourDepartment("只能查阅本部门的职责清单")


def may_write(principal: Principal, department_id: int) -> bool:
    """Whether the caller keeps this department's register (for the console's forms)."""
    return principal.can(Permission.DUTY_WRITE) and (
        principal.is_admin or principal.department_id == department_id
    )


def systems_for_changes(session: Session, principal: Principal) -> list[InformationSystem]:
    """Systems whose changes the caller may record: their department's, or all."""
    q = select(InformationSystem).order_by(InformationSystem.department_id, InformationSystem.name)
    if not principal.is_admin:
        q = q.where(InformationSystem.department_id == principal.department_id)
    return list(session.scalars(q))


def _check_write(principal: Principal, department_id: int) -> None:
    if not principal.is_admin and principal.department_id != department_id:
        raise NotYourDepartment("只能维护本部门的职责清单")


def _not_future(day: date, today: date, field: str, label: str) -> None:
    if day > today:
        raise InvalidDuty.about(
            f"{label}不能晚于今天 ({today.isoformat()})",
            field,
            f"{label} {day.isoformat()} 晚于今天 {today.isoformat()}",
        )


def _not_before_declared(duty: DepartmentDuty, day: date, field: str, label: str) -> None:
    if day < duty.declared_on:
        raise InvalidDuty.about(
            f"{label}不能早于职责的声明日期 ({duty.declared_on.isoformat()})",
            field,
            f"{label} {day.isoformat()} 早于声明日期 {duty.declared_on.isoformat()}",
        )


def _record_event(
    session: Session,
    principal: Principal,
    *,
    department_id: int,
    kind: ChangeKind,
    changed_on: date,
    description: str,
    working_days: int,
    duty_id: int | None = None,
    system_id: int | None = None,
) -> CatalogChangeEvent:
    due = workdays.deadline(changed_on, working_days)
    event = CatalogChangeEvent(
        department_id=department_id,
        kind=kind,
        duty_id=duty_id,
        system_id=system_id,
        changed_on=changed_on,
        catalog_due=due.due,
        catalog_due_provisional=due.provisional,
        description=description,
        recorded_by=principal.name,
    )
    session.add(event)
    session.flush()
    return event


def _snapshot(duty: DepartmentDuty) -> dict[str, object]:
    return {
        "department_id": duty.department_id,
        "code": duty.code,
        "name": duty.name,
        "basis": duty.basis,
        "declared_on": duty.declared_on.isoformat(),
        "withdrawn_on": duty.withdrawn_on.isoformat() if duty.withdrawn_on else None,
    }


# -- duties --------------------------------------------------------------------------------


def get_duty(session: Session, principal: Principal, duty_id: int) -> DepartmentDuty:
    duty = session.get(DepartmentDuty, duty_id)
    if duty is None:
        raise DutyNotFound(f"职责 {duty_id} 不存在")
    check_read(principal, duty.department_id)
    return duty


def _own_duty(session: Session, principal: Principal, duty_id: int) -> DepartmentDuty:
    duty = session.get(DepartmentDuty, duty_id)
    if duty is None:
        raise DutyNotFound(f"职责 {duty_id} 不存在")
    _check_write(principal, duty.department_id)
    return duty


def _in_force(duty: DepartmentDuty) -> None:
    if duty.withdrawn_on is not None:
        raise TransitionNotAllowed(
            f"职责 {duty.code} 已于 {duty.withdrawn_on.isoformat()} 取消，不能再调整或关联目录"
        )


def declare_duty(
    session: Session,
    principal: Principal,
    data: DutyCreate,
    *,
    working_days: int,
    today: date | None = None,
) -> DepartmentDuty:
    """声明职责: a new duty of the caller's department (or, for the platform admin, of
    ``data.department_id``), and its 职责调整 event dated ``declared_on``."""
    today = today or china_today()
    if data.department_id is not None and principal.is_admin:
        department_id: int | None = data.department_id
        if session.get(Department, department_id) is None:
            raise InvalidDuty.about(
                "所属部门不存在", "department_id", f"部门 {department_id} 不存在"
            )
    else:
        department_id = principal.department_id
    if department_id is None:
        raise InvalidDuty.about("未指定部门", "department_id", "请指定职责所属部门")
    _check_write(principal, department_id)
    code, name = data.code.strip(), data.name.strip()
    if not name:
        raise InvalidDuty.about("职责名称不能为空", "name", "职责名称不能只有空白")
    _not_future(data.declared_on, today, "declared_on", "声明日期")
    taken = select(DepartmentDuty.id).where(
        DepartmentDuty.department_id == department_id, DepartmentDuty.code == code
    )
    if session.scalar(taken) is not None:
        raise DutyCodeTaken.about(
            f"本部门已有职责编码 {code}",
            "code",
            "职责编码在部门内须唯一；已取消的职责也保留其编码",
        )
    duty = DepartmentDuty(
        department_id=department_id,
        code=code,
        name=name,
        basis=data.basis.strip(),
        declared_on=data.declared_on,
    )
    session.add(duty)
    session.flush()
    _record_event(
        session,
        principal,
        department_id=department_id,
        kind=ChangeKind.DUTY,
        duty_id=duty.id,
        changed_on=data.declared_on,
        description=f"声明职责：{name}",
        working_days=working_days,
    )
    audit.record(
        session,
        principal.actor,
        "catalog.duty.declare",
        object_type="department_duty",
        object_id=duty.id,
        after=_snapshot(duty),
    )
    return duty


def change_duty(
    session: Session,
    principal: Principal,
    duty_id: int,
    data: DutyChange,
    *,
    working_days: int,
    today: date | None = None,
) -> DepartmentDuty:
    """调整职责: a new name or basis, with the reason; records a 职责调整 event."""
    today = today or china_today()
    duty = _own_duty(session, principal, duty_id)
    _in_force(duty)
    name, basis = data.name.strip(), data.basis.strip()
    if not name:
        raise InvalidDuty.about("职责名称不能为空", "name", "职责名称不能只有空白")
    _not_future(data.changed_on, today, "changed_on", "调整日期")
    _not_before_declared(duty, data.changed_on, "changed_on", "调整日期")
    if (name, basis) == (duty.name, duty.basis):
        raise InvalidDuty.about(
            "职责名称和设定依据都没有改变", "name", "请修改职责名称或设定依据后再保存"
        )
    before = _snapshot(duty)
    duty.name, duty.basis = name, basis
    _duty_changed(
        session,
        principal,
        duty,
        before,
        action="change",
        changed_on=data.changed_on,
        reason=data.reason.strip(),
        working_days=working_days,
    )
    return duty


def withdraw_duty(
    session: Session,
    principal: Principal,
    duty_id: int,
    data: DutyWithdraw,
    *,
    working_days: int,
    today: date | None = None,
) -> DepartmentDuty:
    """取消职责: it stays in the register, no longer in force; records a 职责调整 event."""
    today = today or china_today()
    duty = _own_duty(session, principal, duty_id)
    _in_force(duty)
    _not_future(data.withdrawn_on, today, "withdrawn_on", "取消日期")
    _not_before_declared(duty, data.withdrawn_on, "withdrawn_on", "取消日期")
    before = _snapshot(duty)
    duty.withdrawn_on = data.withdrawn_on
    _duty_changed(
        session,
        principal,
        duty,
        before,
        action="withdraw",
        changed_on=data.withdrawn_on,
        reason=data.reason.strip(),
        working_days=working_days,
    )
    return duty


def _duty_changed(
    session: Session,
    principal: Principal,
    duty: DepartmentDuty,
    before: dict[str, object],
    *,
    action: Literal["change", "withdraw"],
    changed_on: date,
    reason: str,
    working_days: int,
) -> None:
    """A duty changed or withdrawn: its 职责调整 event (starting the catalog's deadline)
    and the audit entry with the duty before and after."""
    session.flush()
    _record_event(
        session,
        principal,
        department_id=duty.department_id,
        kind=ChangeKind.DUTY,
        duty_id=duty.id,
        changed_on=changed_on,
        description=f"{'调整' if action == 'change' else '取消'}职责：{reason}",
        working_days=working_days,
    )
    audit.record(
        session,
        principal.actor,
        f"catalog.duty.{action}",
        object_type="department_duty",
        object_id=duty.id,
        before=before,
        after={**_snapshot(duty), "reason": reason},
    )


def link_resource(
    session: Session, principal: Principal, duty_id: int, resource_id: int
) -> DepartmentDuty:
    """Link one of the department's own entries (any state but 已撤销) to a duty in
    force. Linking twice changes nothing."""
    duty = _own_duty(session, principal, duty_id)
    _in_force(duty)
    resource = session.get(Resource, resource_id)
    if resource is None:
        raise ResourceNotFound(f"目录 {resource_id} 不存在")
    if resource.provider_department_id != duty.department_id:
        raise InvalidDuty.about(
            "只能关联本部门的目录",
            "resource_id",
            f"目录 {resource.code} 由其他部门提供，不能关联到本部门的职责",
        )
    if resource.status not in LINKABLE:
        raise InvalidDuty.about(
            "已撤销的目录不能关联", "resource_id", f"目录 {resource.code} 已撤销"
        )
    if session.get(DutyResource, (duty.id, resource.id)) is None:
        session.add(DutyResource(duty_id=duty.id, resource_id=resource.id))
        session.flush()
        audit.record(
            session,
            principal.actor,
            "catalog.duty.link",
            object_type="department_duty",
            object_id=duty.id,
            after={"resource_id": resource.id, "resource_code": resource.code},
        )
        session.expire(duty, ["resources"])
    return duty


def unlink_resource(
    session: Session, principal: Principal, duty_id: int, resource_id: int
) -> DepartmentDuty:
    """Take an entry off a duty (also of a withdrawn duty)."""
    duty = _own_duty(session, principal, duty_id)
    gone = session.execute(
        delete(DutyResource).where(
            DutyResource.duty_id == duty.id, DutyResource.resource_id == resource_id
        )
    )
    if not gone.rowcount:  # type: ignore[attr-defined]
        raise InvalidDuty.about(
            "该目录未关联到此职责", "resource_id", f"目录 {resource_id} 未关联到职责 {duty.code}"
        )
    audit.record(
        session,
        principal.actor,
        "catalog.duty.unlink",
        object_type="department_duty",
        object_id=duty.id,
        before={"resource_id": resource_id},
    )
    session.expire(duty, ["resources"])
    return duty


def list_duties(
    session: Session,
    principal: Principal,
    *,
    department_id: int | None = None,
    in_force_only: bool = False,
    limit: int = 200,
    offset: int = 0,
) -> Page[DepartmentDuty]:
    """A department's duties by code (the caller's own unless given); every department's
    for the platform admin and the auditor when none is given."""
    if department_id is None and not reads_everything(principal):
        department_id = principal.department_id
        if department_id is None:
            raise NotYourDepartment("只能查阅本部门的职责清单")
    if department_id is not None:
        check_read(principal, department_id)
    q = select(DepartmentDuty)
    if department_id is not None:
        q = q.where(DepartmentDuty.department_id == department_id)
    if in_force_only:
        q = q.where(DepartmentDuty.withdrawn_on.is_(None))
    total = session.scalar(select(func.count()).select_from(q.subquery())) or 0
    rows = session.scalars(
        q.order_by(DepartmentDuty.department_id, DepartmentDuty.code, DepartmentDuty.id)
        .limit(limit)
        .offset(offset)
    )
    return Page(list(rows), total)


# -- change events -------------------------------------------------------------------------


def record_system_change(
    session: Session,
    principal: Principal,
    system_id: int,
    data: SystemChangeIn,
    *,
    working_days: int,
    today: date | None = None,
) -> CatalogChangeEvent:
    """登记系统变更 of one of the department's information systems: a 系统变更 event."""
    today = today or china_today()
    system = session.get(InformationSystem, system_id)
    if system is None:
        raise SystemNotFound(f"信息系统 {system_id} 不存在")
    if not principal.is_admin and principal.department_id != system.department_id:
        raise NotYourDepartment("只能登记本部门信息系统的变更")
    _not_future(data.changed_on, today, "changed_on", "变更日期")
    event = _record_event(
        session,
        principal,
        department_id=system.department_id,
        kind=ChangeKind.SYSTEM,
        system_id=system.id,
        changed_on=data.changed_on,
        description=data.description.strip(),
        working_days=working_days,
    )
    audit.record(
        session,
        principal.actor,
        "catalog.system.change",
        object_type="information_system",
        object_id=system.id,
        after={
            "event_id": event.id,
            "changed_on": data.changed_on.isoformat(),
            "catalog_due": event.catalog_due.isoformat(),
            "description": event.description,
        },
    )
    return event


def list_events(
    session: Session,
    principal: Principal,
    *,
    department_id: int | None = None,
    kind: ChangeKind | None = None,
    duty_id: int | None = None,
    system_id: int | None = None,
    limit: int = 200,
    offset: int = 0,
) -> Page[CatalogChangeEvent]:
    """Change events, newest change first, with the same reading rule as the duties."""
    if duty_id is not None:
        department_id = get_duty(session, principal, duty_id).department_id
    elif system_id is not None:
        system = session.get(InformationSystem, system_id)
        if system is None:
            raise SystemNotFound(f"信息系统 {system_id} 不存在")
        department_id = system.department_id
    if department_id is None and not reads_everything(principal):
        department_id = principal.department_id
        if department_id is None:
            raise NotYourDepartment("只能查阅本部门的职责清单")
    if department_id is not None:
        check_read(principal, department_id)
    q = select(CatalogChangeEvent)
    if department_id is not None:
        q = q.where(CatalogChangeEvent.department_id == department_id)
    if kind is not None:
        q = q.where(CatalogChangeEvent.kind == kind)
    if duty_id is not None:
        q = q.where(CatalogChangeEvent.duty_id == duty_id)
    if system_id is not None:
        q = q.where(CatalogChangeEvent.system_id == system_id)
    total = session.scalar(select(func.count()).select_from(q.subquery())) or 0
    rows = session.scalars(
        q.order_by(CatalogChangeEvent.changed_on.desc(), CatalogChangeEvent.id.desc())
        .limit(limit)
        .offset(offset)
    )
    return Page(list(rows), total)
