"""Tables of business collaboration (业务协同): process definitions (BPMN 2.0, one row a
version), cases with the engine's serialized state, the department tasks a case fans
out, and the steps an applicant may see."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint, false
from sqlalchemy.orm import Mapped, mapped_column

from govshare.db import Base, str_enum, utcnow
from govshare.security.models import JSONType


class CaseStatus(StrEnum):
    """办件状态."""

    OPEN = "open"  # 办理中
    CLOSED = "closed"  # 已办结

    @property
    def label(self) -> str:
        return {"open": "办理中", "closed": "已办结"}[self.value]


class TaskStatus(StrEnum):
    """协同任务状态: ready for the department, claimed by one handler, done."""

    READY = "ready"
    CLAIMED = "claimed"
    DONE = "done"

    @property
    def label(self) -> str:
        return {"ready": "待认领", "claimed": "办理中", "done": "已办结"}[self.value]


class Decision(StrEnum):
    """部门意见."""

    APPROVE = "approve"
    REJECT = "reject"

    @property
    def label(self) -> str:
        return {"approve": "同意", "reject": "不同意"}[self.value]


class ProcessDefinition(Base):
    """流程定义: one uploaded version of a BPMN process, never changed afterwards; a case
    keeps the version it was started from."""

    __tablename__ = "collab_definition"
    __table_args__ = (
        UniqueConstraint("process_key", "version", name="uq_collab_definition_key_version"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    process_key: Mapped[str] = mapped_column(String(100))  # the BPMN process id
    name: Mapped[str] = mapped_column(String(200))
    version: Mapped[int] = mapped_column(Integer)
    bpmn_xml: Mapped[str] = mapped_column(Text)
    forms: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    # User task element id → {"department_id", "working_days"}, resolved at upload.
    assignments: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    # 办结时限: the approval item's legal limit for a whole case, in working days (the
    # process's ``time_limit_days`` property); None when the process sets none.
    time_limit_days: Mapped[int | None] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    uploaded_by: Mapped[str] = mapped_column(String(50))
    uploaded_at: Mapped[datetime] = mapped_column(default=utcnow)


class Case(Base):
    """办件: one application and its process instance. ``state`` is SpiffWorkflow's
    serialized workflow, written in the same transaction as each step's effect."""

    __tablename__ = "collab_case"

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(String(24), unique=True)
    definition_id: Mapped[int] = mapped_column(ForeignKey("collab_definition.id"), index=True)
    status: Mapped[CaseStatus] = mapped_column(str_enum(CaseStatus, 10), default=CaseStatus.OPEN)
    applicant_name: Mapped[str] = mapped_column(String(50))
    # HMAC of the applicant's 公民身份号码: the public lookup compares it, never the number.
    applicant_key: Mapped[str] = mapped_column(String(64))
    department_id: Mapped[int] = mapped_column(ForeignKey("department.id"), index=True)
    accepted_by: Mapped[str] = mapped_column(String(50))
    state: Mapped[str] = mapped_column(Text)
    outcome: Mapped[str | None] = mapped_column(String(20))
    flags: Mapped[list[str]] = mapped_column(JSONType, default=list)
    # 申请信息 beyond the applicant: label → value as accepted at the window, e.g. an
    # enterprise's details brought over from the legal-entity base database (带出).
    particulars: Mapped[dict[str, str] | None] = mapped_column(JSONType)
    revision: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    closed_at: Mapped[datetime | None] = mapped_column()
    # 办结期限: the day the case must be closed by, from its definition's 办结时限 counted
    # in working days from acceptance; provisional when the calendar of that year is
    # not yet published. None when the definition sets no limit.
    due_on: Mapped[date | None] = mapped_column()
    due_provisional: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    overdue_alerted: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class CaseTask(Base):
    """协同任务: a user task of a case, assigned to a department (not a person), with
    its deadline in working days. One row per engine task (``engine_id``)."""

    __tablename__ = "collab_task"
    __table_args__ = (
        UniqueConstraint("case_id", "engine_id", name="uq_collab_task_case_engine"),
        Index("ix_collab_task_department_status", "department_id", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("collab_case.id"), index=True)
    engine_id: Mapped[str] = mapped_column(String(36))
    element_id: Mapped[str] = mapped_column(String(100))
    name: Mapped[str] = mapped_column(String(200))
    department_id: Mapped[int] = mapped_column(ForeignKey("department.id"))
    status: Mapped[TaskStatus] = mapped_column(str_enum(TaskStatus, 10), default=TaskStatus.READY)
    claimed_by: Mapped[str | None] = mapped_column(String(50))
    completed_by: Mapped[str | None] = mapped_column(String(50))
    decision: Mapped[str | None] = mapped_column(String(10))
    comment: Mapped[str] = mapped_column(Text, default="")
    working_days: Mapped[int] = mapped_column(Integer)
    started_on: Mapped[date] = mapped_column()
    due_on: Mapped[date] = mapped_column()
    due_provisional: Mapped[bool] = mapped_column(Boolean, default=False)
    overdue_alerted: Mapped[bool] = mapped_column(Boolean, default=False)
    # The card (黄牌/红牌) the department's handlers were last mailed about, so each card
    # is mailed once (``supervision.remind_handlers``).
    reminded_card: Mapped[str | None] = mapped_column(String(10))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    completed_at: Mapped[datetime | None] = mapped_column()


class CaseStep(Base):
    """办理环节: what happened to a case, in order, as the applicant may see it."""

    __tablename__ = "collab_step"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("collab_case.id"), index=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    kind: Mapped[str] = mapped_column(String(20))  # accepted|verified|assigned|decided|closed
    title: Mapped[str] = mapped_column(String(200))
    department_id: Mapped[int | None] = mapped_column(ForeignKey("department.id"))
    detail: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
