"""Tables of the comparison jobs (比对): each job's definition, every run with the
snapshot it read, and the cases (线索) the runs found for the owning department."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, Float, ForeignKey, Index, Integer, String, Text, false
from sqlalchemy.orm import Mapped, mapped_column, relationship

from govshare.compare.schemas import CaseState, Presence, RunStatus
from govshare.db import Base, str_enum, utcnow
from govshare.security.models import Department, JSONType


class CompareJob(Base):
    """比对任务: a definition (inputs, links, conditions, outputs) owned by the
    department that follows its cases up."""

    __tablename__ = "compare_job"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(Text, default="")
    department_id: Mapped[int] = mapped_column(ForeignKey("department.id"), index=True)
    template: Mapped[str | None] = mapped_column(String(40))
    definition: Mapped[dict[str, Any]] = mapped_column(JSONType)
    schedule: Mapped[str | None] = mapped_column(String(100))
    next_run_at: Mapped[datetime | None] = mapped_column()
    # 交付: keep a copy of the cases in the shared-store database, which the bureau's
    # front-end node reads like a business table (``compare.delivery``).
    deliver: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_by: Mapped[str] = mapped_column(String(50))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    department: Mapped[Department] = relationship(lazy="joined")


class CompareRun(Base):
    """One run of a job: the inputs' snapshot (package sequence and rows per input),
    its progress while it runs, and its counts once done."""

    __tablename__ = "compare_run"

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("compare_job.id"), index=True)
    status: Mapped[RunStatus] = mapped_column(str_enum(RunStatus, 12), default=RunStatus.QUEUED)
    trigger: Mapped[str] = mapped_column(String(12), default="manual")  # manual | schedule
    requested_by: Mapped[str] = mapped_column(String(50))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column()
    finished_at: Mapped[datetime | None] = mapped_column()
    # Who is running it (host:pid) and until when, so a run of a killed process is seen.
    worker: Mapped[str] = mapped_column(String(80), default="")
    lease_until: Mapped[datetime | None] = mapped_column()
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    phase: Mapped[str] = mapped_column(String(100), default="")
    inputs: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    hits: Mapped[int] = mapped_column(Integer, default=0)
    new_cases: Mapped[int] = mapped_column(Integer, default=0)
    gone_cases: Mapped[int] = mapped_column(Integer, default=0)
    amount: Mapped[float | None] = mapped_column(Float)
    error: Mapped[str] = mapped_column(Text, default="")

    __table_args__ = (Index("ix_compare_run_status", "status"),)


class CompareCase(Base):
    """线索: one group of a job's result rows, identified across runs by the keyed hash
    of its case key, with its follow-up state (待核查 → 核查中 → 属实 / 不属实)."""

    __tablename__ = "compare_case"

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("compare_job.id"))
    key_hash: Mapped[str] = mapped_column(String(64))
    values: Mapped[dict[str, Any]] = mapped_column(JSONType)  # masked as the grants say
    amount: Mapped[float | None] = mapped_column(Float)
    rows: Mapped[int] = mapped_column(BigInteger, default=1)
    state: Mapped[CaseState] = mapped_column(str_enum(CaseState, 12), default=CaseState.PENDING)
    presence: Mapped[Presence] = mapped_column(str_enum(Presence, 8), default=Presence.NEW)
    note: Mapped[str] = mapped_column(Text, default="")
    history: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    first_run_id: Mapped[int] = mapped_column(ForeignKey("compare_run.id"))
    last_run_id: Mapped[int] = mapped_column(ForeignKey("compare_run.id"))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        Index("uq_compare_case_job_key", "job_id", "key_hash", unique=True),
        Index("ix_compare_case_job_state", "job_id", "state", "id"),
    )
