"""Tables of the evaluation (考核评估): schemes (weights and thresholds, versioned),
monthly runs with each department's result, and the facts — one row per record
counted by an indicator — that every number is derived from and drilled down to."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import BigInteger, Boolean, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from govshare.db import Base, str_enum, utcnow
from govshare.security.models import JSONType

# Platform facts carry this department id: they belong to no department.
PLATFORM = 0


class RunStatus(StrEnum):
    """考核结果状态: a draft is recomputed freely; a published month is frozen."""

    DRAFT = "draft"
    PUBLISHED = "published"

    @property
    def label(self) -> str:
        return {"draft": "未发布", "published": "已发布"}[self.value]


class EvaluationScheme(Base):
    """考核方案: the weights of the scored indicators, the grade thresholds and the
    penalty per lost dispute. Never edited in place: each change adds a version."""

    __tablename__ = "evaluation_scheme"

    id: Mapped[int] = mapped_column(primary_key=True)
    version: Mapped[int] = mapped_column(Integer, unique=True)
    weights: Mapped[dict[str, float]] = mapped_column(JSONType, default=dict)
    thresholds: Mapped[dict[str, float]] = mapped_column(JSONType, default=dict)
    dispute_penalty: Mapped[float] = mapped_column(Float, default=2.0)
    note: Mapped[str] = mapped_column(Text, default="")
    created_by: Mapped[str] = mapped_column(String(50))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class EvaluationRun(Base):
    """一个月的考核: computed from the records of the month ``YYYY-MM`` with the
    scheme it names; ``platform`` holds the platform indicators."""

    __tablename__ = "evaluation_run"

    id: Mapped[int] = mapped_column(primary_key=True)
    month: Mapped[str] = mapped_column(String(7), unique=True)
    scheme_id: Mapped[int] = mapped_column(ForeignKey("evaluation_scheme.id"))
    status: Mapped[RunStatus] = mapped_column(str_enum(RunStatus, 10), default=RunStatus.DRAFT)
    trigger: Mapped[str] = mapped_column(String(12), default="manual")  # manual | schedule
    platform: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    facts: Mapped[int] = mapped_column(BigInteger, default=0)
    computations: Mapped[int] = mapped_column(Integer, default=1)
    computed_by: Mapped[str] = mapped_column(String(50))
    computed_at: Mapped[datetime] = mapped_column(default=utcnow)
    published_by: Mapped[str | None] = mapped_column(String(50))
    published_at: Mapped[datetime | None] = mapped_column()
    # 年度累计: {"months": [...], "platform": {key: entry}} — the months of the year up to
    # this one that were stored when it was computed; None for runs computed before
    # year-to-date figures existed.
    year_to_date: Mapped[dict[str, Any] | None] = mapped_column(JSONType)

    scheme: Mapped[EvaluationScheme] = relationship(lazy="joined")


class EvaluationResult(Base):
    """A department's month: each indicator's numerator, denominator and value, the
    score under the run's scheme, its rank and grade."""

    __tablename__ = "evaluation_result"

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("evaluation_run.id", ondelete="CASCADE"))
    department_id: Mapped[int] = mapped_column(ForeignKey("department.id"))
    department_name: Mapped[str] = mapped_column(String(100))
    indicators: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    score: Mapped[float | None] = mapped_column(Float)
    rank: Mapped[int | None] = mapped_column(Integer)
    grade: Mapped[str] = mapped_column(String(10), default="")
    # 年度累计: {"indicators": {key: entry}, "score", "rank", "grade"} over the run's
    # year-to-date months.
    year_to_date: Mapped[dict[str, Any] | None] = mapped_column(JSONType)

    __table_args__ = (
        Index("ix_evaluation_result_run_department", "run_id", "department_id", unique=True),
        Index("ix_evaluation_result_department", "department_id"),
    )


class EvaluationFact(Base):
    """One record an indicator counted in a run: ``hit`` when it counts in the
    numerator (answered in time, complete …); ``value`` for sums and averages (calls,
    a quality score). The drill-down lists these rows, so it shows exactly what was
    counted, even after later data arrives."""

    __tablename__ = "evaluation_fact"

    run_id: Mapped[int] = mapped_column(
        ForeignKey("evaluation_run.id", ondelete="CASCADE"), primary_key=True
    )
    indicator: Mapped[str] = mapped_column(String(24), primary_key=True)
    department_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    record_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    hit: Mapped[bool] = mapped_column(Boolean)
    value: Mapped[float] = mapped_column(Float, default=1.0)
