"""Tables of data quality (数据质量): the rules of each resource's items, every scan of
a shared store with its scores, and the failing values each scan found."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from govshare.db import Base, str_enum, utcnow


class ItemFormat(StrEnum):
    """格式规则 of an item: which national code or pattern its values follow."""

    NONE = "none"
    CITIZEN_ID = "citizen_id"  # 公民身份号码 (GB 11643)
    CREDIT_CODE = "credit_code"  # 统一社会信用代码 (GB 32100)
    DIVISION = "division"  # 行政区划代码 (GB/T 2260)
    SEX = "sex"  # 性别 (GB/T 2261.1)
    CODE_TABLE = "code_table"  # any code table of the catalog (代码表)
    DATE = "date"
    DATETIME = "datetime"
    PHONE = "phone"

    @property
    def label(self) -> str:
        return FORMAT_LABELS[self]


FORMAT_LABELS: dict[ItemFormat, str] = {
    ItemFormat.NONE: "不校验格式",
    ItemFormat.CITIZEN_ID: "公民身份号码",
    ItemFormat.CREDIT_CODE: "统一社会信用代码",
    ItemFormat.DIVISION: "行政区划代码",
    ItemFormat.SEX: "性别代码",
    ItemFormat.CODE_TABLE: "代码表",
    ItemFormat.DATE: "日期",
    ItemFormat.DATETIME: "日期时间",
    ItemFormat.PHONE: "电话号码",
}


class Dimension(StrEnum):
    """质量维度."""

    COMPLETENESS = "completeness"  # 完整性
    VALIDITY = "validity"  # 有效性
    UNIQUENESS = "uniqueness"  # 唯一性
    TIMELINESS = "timeliness"  # 及时性
    CONSISTENCY = "consistency"  # 一致性

    @property
    def label(self) -> str:
        return DIMENSION_LABELS[self]


DIMENSION_LABELS: dict[Dimension, str] = {
    Dimension.COMPLETENESS: "完整性",
    Dimension.VALIDITY: "有效性",
    Dimension.UNIQUENESS: "唯一性",
    Dimension.TIMELINESS: "及时性",
    Dimension.CONSISTENCY: "一致性",
}


class ScanStatus(StrEnum):
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"

    @property
    def label(self) -> str:
        return {"running": "检测中", "done": "已完成", "failed": "检测失败"}[self.value]


class QualityRule(Base):
    """质量规则 of one information item of a resource: required or not, the declared
    type and length, and the format its values follow. Seeded from the catalog item
    (data type, length, name, code table) the first time the resource is looked at;
    changed by the provider department or the platform admin, every change audited."""

    __tablename__ = "quality_rule"

    id: Mapped[int] = mapped_column(primary_key=True)
    resource_id: Mapped[int] = mapped_column(ForeignKey("resource.id", ondelete="CASCADE"))
    item_code: Mapped[str] = mapped_column(String(60))
    required: Mapped[bool] = mapped_column(Boolean, default=False)
    data_type: Mapped[str] = mapped_column(String(2), default="")  # "" = type not checked
    max_length: Mapped[int | None] = mapped_column(Integer)
    format: Mapped[ItemFormat] = mapped_column(str_enum(ItemFormat, 16), default=ItemFormat.NONE)
    code_table: Mapped[str | None] = mapped_column(String(40))
    date_min: Mapped[date | None] = mapped_column(Date)
    date_max: Mapped[date | None] = mapped_column(Date)
    updated_by: Mapped[str] = mapped_column(String(50))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        UniqueConstraint("resource_id", "item_code", name="uq_quality_rule_resource_item"),
    )


class QualityScan(Base):
    """质量检测 of one shared store: rows scanned, per dimension the values checked,
    the failures and the score (0–100, None when the dimension does not apply), and the
    overall score. Kept for ever, so scores read as trends."""

    __tablename__ = "quality_scan"

    id: Mapped[int] = mapped_column(primary_key=True)
    store_id: Mapped[int] = mapped_column(ForeignKey("shared_store.id", ondelete="CASCADE"))
    resource_id: Mapped[int] = mapped_column(ForeignKey("resource.id"))
    # The provider at scan time: what a department's list is filtered by.
    department_id: Mapped[int] = mapped_column(ForeignKey("department.id"))
    trigger: Mapped[str] = mapped_column(String(12))  # feed | schedule | manual
    status: Mapped[ScanStatus] = mapped_column(str_enum(ScanStatus, 8), default=ScanStatus.RUNNING)
    error: Mapped[str] = mapped_column(Text, default="")
    started_at: Mapped[datetime] = mapped_column()
    finished_at: Mapped[datetime | None] = mapped_column()
    # What the scan saw of the store: its last package then, and when it was applied.
    applied_seq: Mapped[int] = mapped_column(BigInteger, default=0)
    applied_at: Mapped[datetime | None] = mapped_column()
    rows_scanned: Mapped[int] = mapped_column(BigInteger, default=0)
    completeness_checked: Mapped[int] = mapped_column(BigInteger, default=0)
    completeness_failed: Mapped[int] = mapped_column(BigInteger, default=0)
    completeness_score: Mapped[float | None] = mapped_column(Float)
    validity_checked: Mapped[int] = mapped_column(BigInteger, default=0)
    validity_failed: Mapped[int] = mapped_column(BigInteger, default=0)
    validity_score: Mapped[float | None] = mapped_column(Float)
    uniqueness_checked: Mapped[int] = mapped_column(BigInteger, default=0)
    uniqueness_failed: Mapped[int] = mapped_column(BigInteger, default=0)
    uniqueness_score: Mapped[float | None] = mapped_column(Float)
    update_cycle: Mapped[str] = mapped_column(String(20), default="")
    silent_days: Mapped[float | None] = mapped_column(Float)
    late: Mapped[bool | None] = mapped_column(Boolean)
    timeliness_score: Mapped[float | None] = mapped_column(Float)
    consistency_checked: Mapped[int] = mapped_column(BigInteger, default=0)
    consistency_failed: Mapped[int] = mapped_column(BigInteger, default=0)
    consistency_score: Mapped[float | None] = mapped_column(Float)
    overall_score: Mapped[float | None] = mapped_column(Float)
    problems_kept: Mapped[int] = mapped_column(Integer, default=0)
    # Failures beyond the cap of kept rows: counted in the scores, not listed.
    problems_dropped: Mapped[int] = mapped_column(BigInteger, default=0)

    __table_args__ = (
        Index("ix_quality_scan_resource_started", "resource_id", "started_at"),
        Index("ix_quality_scan_department_started", "department_id", "started_at"),
        Index("ix_quality_scan_store_started", "store_id", "started_at"),
    )


class QualityProblem(Base):
    """问题数据: one failing value of a scan (row key, item, value, rule, message), for
    the provider to correct in its own system. The value is stored as found and masked
    when shown (``quality.service.problem_masker``)."""

    __tablename__ = "quality_problem"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    scan_id: Mapped[int] = mapped_column(ForeignKey("quality_scan.id", ondelete="CASCADE"))
    dimension: Mapped[Dimension] = mapped_column(str_enum(Dimension, 12))
    row_key: Mapped[str] = mapped_column(String(200))
    item_code: Mapped[str] = mapped_column(String(60))
    value: Mapped[str | None] = mapped_column(Text)
    rule: Mapped[str] = mapped_column(String(20))
    message: Mapped[str] = mapped_column(String(300))

    __table_args__ = (Index("ix_quality_problem_scan_id", "scan_id", "id"),)
