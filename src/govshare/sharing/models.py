"""Tables of the sharing system: applications (共享申请), grants (授权) and usage
feedback (使用反馈)."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    false,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from govshare.catalog.models import Resource
from govshare.db import Base, str_enum, utcnow
from govshare.rules.masking import MaskingRule as MaskingRule  # re-exported: the grants' vocabulary
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


# A grant's state is computed (revoked, or active until its end date), not stored: one
# label per state for the badge and the list's tabs.
GRANT_STATE_LABELS: dict[str, str] = {"active": "有效", "expired": "已过期", "revoked": "已撤销"}


class DisputeOutcome(StrEnum):
    """争议裁决结果 of the platform authority."""

    UPHELD = "upheld"  # 维持拒绝
    OVERTURNED = "overturned"  # 撤销拒绝, the application is approved

    @property
    def label(self) -> str:
        return {"upheld": "维持拒绝", "overturned": "撤销拒绝"}[self.value]


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
    # 预计: counted on a year whose holiday schedule was not known yet; recomputed
    # when it arrives (``sharing.calendar.refresh_provisional``).
    answer_due_provisional: Mapped[bool] = mapped_column(Boolean, default=False)
    answered_on: Mapped[date | None] = mapped_column(Date)
    answered_by: Mapped[str | None] = mapped_column(String(50))
    answer_reason: Mapped[str] = mapped_column(Text, default="")
    provide_due: Mapped[date | None] = mapped_column(Date)
    provide_due_provisional: Mapped[bool] = mapped_column(Boolean, default=False)
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


class SharedStore(Base):
    """共享信息库 of one resource: the hub's copy of a provider task's rows, kept by the
    exchange (each accepted package is applied in order) and served to grant holders.

    ``mapping`` names the information item of each source column; columns without an
    item are not kept. ``key_item`` is the item callers look records up by (公民身份号码,
    统一社会信用代码); ``verify_rules`` define the status or range values of 核验.
    """

    __tablename__ = "shared_store"

    id: Mapped[int] = mapped_column(primary_key=True)
    resource_id: Mapped[int] = mapped_column(ForeignKey("resource.id"), unique=True)
    # None for a store the hub assembles itself (a base database, 基础库).
    source_task_id: Mapped[int | None] = mapped_column(ForeignKey("exchange_task.id"))
    key_item: Mapped[str] = mapped_column(String(60))
    mapping: Mapped[dict[str, str]] = mapped_column(JSONType, default=dict)
    verify_rules: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    # Items shared without approval even when the resource is 有条件共享 (a base
    # database's items are, by default); None: the resource's sharing type decides alone.
    unconditional_items: Mapped[list[str] | None] = mapped_column(JSONType, default=None)
    table_name: Mapped[str] = mapped_column(String(63), unique=True)
    # 字段加密: the items kept sealed (``govshare.security.fieldseal``), each with the
    # Arrow type its values had ("" until the first package showed it); None or {}:
    # nothing sealed (a store set up before sealing, or with it turned off).
    sealed_items: Mapped[dict[str, str] | None] = mapped_column(JSONType, default=None)
    # The generation of the field key its cells are sealed under (None: the first).
    seal_key: Mapped[int | None] = mapped_column(Integer, default=None)
    # While the store is being resealed (``sharing.reseal``): the items it will keep
    # sealed and the table it is being copied to ({"items": …, "table": …}).
    reseal_to: Mapped[dict[str, Any] | None] = mapped_column(JSONType, default=None)
    applied_seq: Mapped[int] = mapped_column(BigInteger, default=0)
    row_count: Mapped[int] = mapped_column(BigInteger, default=0)
    applied_at: Mapped[datetime | None] = mapped_column()
    last_error: Mapped[str] = mapped_column(Text, default="")
    created_by: Mapped[str] = mapped_column(String(50))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    resource: Mapped[Resource] = relationship(lazy="joined")


class GrantSubscription(Base):
    """订阅 under a grant: the provider task made for it (the granted columns and rows
    only, masked as the grant says) and the consumer's receiving task on it. Both stop
    when the grant is revoked or expires."""

    __tablename__ = "sharing_subscription"

    id: Mapped[int] = mapped_column(primary_key=True)
    grant_id: Mapped[int] = mapped_column(ForeignKey("sharing_grant.id"), index=True)
    provider_task_id: Mapped[int] = mapped_column(ForeignKey("exchange_task.id"))
    subscriber_task_id: Mapped[int] = mapped_column(ForeignKey("exchange_task.id"))
    created_by: Mapped[str] = mapped_column(String(50))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    stopped_at: Mapped[datetime | None] = mapped_column()
    stop_reason: Mapped[str] = mapped_column(String(200), default="")


class ObjectionStatus(StrEnum):
    """异议状态."""

    OPEN = "open"  # 待答复
    ACCEPTED = "accepted"  # 已确认，待更正数据经交换到达
    REJECTED = "rejected"  # 不予更正 (归档)
    CORRECTED = "corrected"  # 已更正 (归档)

    @property
    def label(self) -> str:
        return {
            "open": "待答复",
            "accepted": "已确认待更正",
            "rejected": "不予更正",
            "corrected": "已更正",
        }[self.value]


class Objection(Base):
    """异议: a consumer flags a record of a resource as wrong, with evidence; the provider
    answers within working days; an accepted correction is made at the source and is
    archived once the exchange has brought it into the shared store."""

    __tablename__ = "sharing_objection"

    id: Mapped[int] = mapped_column(primary_key=True)
    resource_id: Mapped[int] = mapped_column(ForeignKey("resource.id"))
    # None when a base database's conflict (多元校核) was adopted: no grant is involved.
    grant_id: Mapped[int | None] = mapped_column(ForeignKey("sharing_grant.id"))
    consumer_department_id: Mapped[int] = mapped_column(ForeignKey("department.id"))
    provider_department_id: Mapped[int] = mapped_column(ForeignKey("department.id"))
    # The record key and the values claimed and corrected, sealed with the field key
    # when ``sealed`` (字段加密; ``objections.ObjectionText`` gives them opened).
    record_key: Mapped[str] = mapped_column(Text)
    claimed: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    sealed: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    evidence: Mapped[str] = mapped_column(Text)
    status: Mapped[ObjectionStatus] = mapped_column(
        str_enum(ObjectionStatus, 12), default=ObjectionStatus.OPEN
    )
    raised_by: Mapped[str] = mapped_column(String(50))
    raised_at: Mapped[datetime] = mapped_column(default=utcnow)
    raised_on: Mapped[date] = mapped_column(Date)
    answer_due: Mapped[date] = mapped_column(Date)
    answer_due_provisional: Mapped[bool] = mapped_column(Boolean, default=False)
    answered_by: Mapped[str | None] = mapped_column(String(50))
    answered_on: Mapped[date | None] = mapped_column(Date)
    answer: Mapped[str] = mapped_column(Text, default="")
    correction: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    corrected_seq: Mapped[int | None] = mapped_column(BigInteger)
    archived_at: Mapped[datetime | None] = mapped_column()

    resource: Mapped[Resource] = relationship(lazy="joined")
    consumer: Mapped[Department] = relationship(
        foreign_keys=[consumer_department_id], lazy="joined"
    )
    provider: Mapped[Department] = relationship(
        foreign_keys=[provider_department_id], lazy="joined"
    )

    __table_args__ = (
        Index("ix_sharing_objection_provider_status", "provider_department_id", "status"),
        Index("ix_sharing_objection_consumer", "consumer_department_id"),
    )


class CallStat(Base):
    """调用统计: a day's data-service calls of one API client under one grant, kept by
    the call journal; also what daily quotas are counted against."""

    __tablename__ = "sharing_call_stat"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("api_client.id"), primary_key=True)
    grant_id: Mapped[int] = mapped_column(ForeignKey("sharing_grant.id"), primary_key=True)
    calls: Mapped[int] = mapped_column(BigInteger, default=0)
    keys: Mapped[int] = mapped_column(BigInteger, default=0)
    rows: Mapped[int] = mapped_column(BigInteger, default=0)


class WorkingCalendarYear(Base):
    """节假日安排: one year's statutory days off and make-up working days (调休上班) as
    the platform admin entered them; ahead of the holidays file and the package."""

    __tablename__ = "working_calendar_year"

    year: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    holidays: Mapped[list[str]] = mapped_column(JSONType, default=list)
    workdays: Mapped[list[str]] = mapped_column(JSONType, default=list)
    entered_by: Mapped[str] = mapped_column(String(50))
    entered_at: Mapped[datetime] = mapped_column(default=utcnow)
