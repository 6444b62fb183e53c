"""Tables of the sharing system: applications (共享申请), grants (授权) and usage
feedback (使用反馈)."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Boolean, Date, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from govshare.catalog.models import Resource
from govshare.db import Base, str_enum, utcnow
from govshare.security.models import Department, JSONType


class SharingMode(StrEnum):
    """共享方式 a consumer asks for and a grant allows."""

    QUERY = "query"  # 查询: look rows up
    SUBSCRIPTION = "subscription"  # 订阅: receive the data through an exchange task
    VERIFICATION = "verification"  # 核验: yes/no or a status, rows never leave (数据不落地)

    @property
    def label(self) -> str:
        return {"query": "查询", "subscription": "订阅", "verification": "核验"}[self.value]


class ApplicationStatus(StrEnum):
    """共享申请状态."""

    SUBMITTED = "submitted"
    APPROVED = "approved"
    REFUSED = "refused"
    DISPUTED = "disputed"
    REFUSAL_UPHELD = "refusal_upheld"
    PROVIDED = "provided"

    @property
    def label(self) -> str:
        return APPLICATION_STATUS_LABELS[self]


APPLICATION_STATUS_LABELS: dict[ApplicationStatus, str] = {
    ApplicationStatus.SUBMITTED: "待答复",
    ApplicationStatus.APPROVED: "已同意",
    ApplicationStatus.REFUSED: "已拒绝",
    ApplicationStatus.DISPUTED: "争议待裁决",
    ApplicationStatus.REFUSAL_UPHELD: "裁决维持拒绝",
    ApplicationStatus.PROVIDED: "已提供",
}


class DisputeOutcome(StrEnum):
    """争议裁决结果 of the platform authority."""

    UPHELD = "upheld"  # 维持拒绝
    OVERTURNED = "overturned"  # 撤销拒绝, the application is approved

    @property
    def label(self) -> str:
        return {"upheld": "维持拒绝", "overturned": "撤销拒绝"}[self.value]


class MaskingRule(StrEnum):
    """脱敏规则 applied to one item where the grant says so."""

    NONE = "none"
    ID_NUMBER = "id_number"
    PHONE = "phone"
    NAME = "name"
    ADDRESS = "address"


class SharingApplication(Base):
    """共享申请: a consumer department asks for a resource's items, rows and mode."""

    __tablename__ = "sharing_application"

    id: Mapped[int] = mapped_column(primary_key=True)
    resource_id: Mapped[int] = mapped_column(ForeignKey("resource.id"))
    provider_department_id: Mapped[int] = mapped_column(ForeignKey("department.id"))
    consumer_department_id: Mapped[int] = mapped_column(ForeignKey("department.id"))
    applicant: Mapped[str] = mapped_column(String(50))
    purpose: Mapped[str] = mapped_column(Text)
    legal_basis: Mapped[str] = mapped_column(Text)
    items: Mapped[list[str]] = mapped_column(JSONType, default=list)
    row_scope: Mapped[str] = mapped_column(Text, default="")
    row_filter: Mapped[list[dict[str, Any]] | None] = mapped_column(JSONType)
    mode: Mapped[SharingMode] = mapped_column(str_enum(SharingMode, 12))
    users: Mapped[str] = mapped_column(Text)
    end_date: Mapped[date] = mapped_column(Date)
    unconditional: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[ApplicationStatus] = mapped_column(
        str_enum(ApplicationStatus, 16), default=ApplicationStatus.SUBMITTED
    )
    submitted_at: Mapped[datetime] = mapped_column(default=utcnow)
    submitted_on: Mapped[date] = mapped_column(Date)
    answer_due: Mapped[date | None] = mapped_column(Date)
    answered_on: Mapped[date | None] = mapped_column(Date)
    answered_by: Mapped[str | None] = mapped_column(String(50))
    answer_reason: Mapped[str] = mapped_column(Text, default="")
    provide_due: Mapped[date | None] = mapped_column(Date)
    provided_on: Mapped[date | None] = mapped_column(Date)
    dispute_reason: Mapped[str] = mapped_column(Text, default="")
    disputed_at: Mapped[datetime | None] = mapped_column()
    dispute_outcome: Mapped[DisputeOutcome | None] = mapped_column(str_enum(DisputeOutcome, 12))
    dispute_decision: Mapped[str] = mapped_column(Text, default="")
    dispute_decided_by: Mapped[str | None] = mapped_column(String(50))
    dispute_decided_at: Mapped[datetime | None] = mapped_column()

    resource: Mapped[Resource] = relationship(lazy="joined")
    provider: Mapped[Department] = relationship(
        foreign_keys=[provider_department_id], lazy="joined"
    )
    consumer: Mapped[Department] = relationship(
        foreign_keys=[consumer_department_id], lazy="joined"
    )

    __table_args__ = (
        Index("ix_sharing_application_provider_status", "provider_department_id", "status"),
        Index("ix_sharing_application_consumer_status", "consumer_department_id", "status"),
    )


class SharingGrant(Base):
    """授权: binds a consumer department to a resource's items, rows, modes and an end
    date, with masking per item. Revoked or expired grants allow nothing."""

    __tablename__ = "sharing_grant"

    id: Mapped[int] = mapped_column(primary_key=True)
    application_id: Mapped[int | None] = mapped_column(
        ForeignKey("sharing_application.id"), unique=True
    )
    resource_id: Mapped[int] = mapped_column(ForeignKey("resource.id"))
    provider_department_id: Mapped[int] = mapped_column(ForeignKey("department.id"))
    consumer_department_id: Mapped[int] = mapped_column(ForeignKey("department.id"))
    items: Mapped[list[str]] = mapped_column(JSONType, default=list)
    row_scope: Mapped[str] = mapped_column(Text, default="")
    row_filter: Mapped[list[dict[str, Any]] | None] = mapped_column(JSONType)
    modes: Mapped[list[str]] = mapped_column(JSONType, default=list)
    purpose: Mapped[str] = mapped_column(Text)
    expires_on: Mapped[date] = mapped_column(Date)
    masking: Mapped[dict[str, str]] = mapped_column(JSONType, default=dict)
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)
    revoked_at: Mapped[datetime | None] = mapped_column()
    revoked_by: Mapped[str | None] = mapped_column(String(50))
    revoke_reason: Mapped[str] = mapped_column(Text, default="")
    created_by: Mapped[str] = mapped_column(String(50))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    resource: Mapped[Resource] = relationship(lazy="joined")
    consumer: Mapped[Department] = relationship(
        foreign_keys=[consumer_department_id], lazy="joined"
    )

    __table_args__ = (
        Index("ix_sharing_grant_consumer_resource", "consumer_department_id", "resource_id"),
        Index("ix_sharing_grant_provider", "provider_department_id"),
    )


class UsageReport(Base):
    """使用反馈: what a consumer did with a grant."""

    __tablename__ = "sharing_usage_report"

    id: Mapped[int] = mapped_column(primary_key=True)
    grant_id: Mapped[int] = mapped_column(ForeignKey("sharing_grant.id"), index=True)
    department_id: Mapped[int] = mapped_column(ForeignKey("department.id"))
    text: Mapped[str] = mapped_column(Text)
    count: Mapped[int] = mapped_column(Integer, default=0)
    reported_by: Mapped[str] = mapped_column(String(50))
    reported_at: Mapped[datetime] = mapped_column(default=utcnow)

    grant: Mapped[SharingGrant] = relationship(lazy="joined")
