"""Pydantic shapes of the sharing API."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from govshare.sharing.models import (
    ApplicationStatus,
    DisputeOutcome,
    MaskingRule,
    SharingMode,
)


class RowCondition(BaseModel):
    """One condition of a structured row filter; all conditions must hold."""

    item: str = Field(description="信息项代码")
    op: Literal["eq", "in", "prefix"] = "eq"
    value: str | list[str]


class ApplicationCreate(BaseModel):
    resource_id: int
    purpose: str = Field(min_length=2, max_length=2000, description="业务用途")
    legal_basis: str = Field(min_length=2, max_length=2000, description="共享依据")
    items: list[str] = Field(min_length=1, description="申请的信息项代码")
    row_scope: str = Field(default="", max_length=2000, description="数据范围 (文字说明)")
    row_filter: list[RowCondition] | None = Field(default=None, description="结构化行过滤")
    mode: SharingMode
    users: str = Field(min_length=1, max_length=1000, description="使用人员或系统")
    end_date: date = Field(description="使用截止日期")


class ApproveIn(BaseModel):
    items: list[str] | None = Field(
        default=None, description="批准的信息项 (申请项的子集); 省略时为全部申请项"
    )
    masking: dict[str, MaskingRule] = Field(default_factory=dict, description="信息项→脱敏规则")
    reason: str = Field(default="", max_length=2000)


class ReasonIn(BaseModel):
    reason: str = Field(default="", max_length=2000)


class DecisionIn(BaseModel):
    outcome: DisputeOutcome
    reason: str = Field(default="", max_length=2000)


class ApplicationPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    resource_id: int
    resource_code: str
    resource_name: str
    provider_department_id: int
    provider_name: str
    consumer_department_id: int
    consumer_name: str
    applicant: str
    purpose: str
    legal_basis: str
    items: list[str]
    row_scope: str
    row_filter: list[RowCondition] | None
    mode: SharingMode
    users: str
    end_date: date
    unconditional: bool
    status: ApplicationStatus
    status_label: str
    submitted_at: datetime
    submitted_on: date
    answer_due: date | None
    answered_on: date | None
    answered_by: str | None
    answer_reason: str
    provide_due: date | None
    provided_on: date | None
    dispute_reason: str
    dispute_outcome: DisputeOutcome | None
    dispute_decision: str
    dispute_decided_by: str | None
    grant_id: int | None


class GrantPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    application_id: int | None
    resource_id: int
    resource_code: str
    resource_name: str
    provider_department_id: int
    consumer_department_id: int
    consumer_name: str
    items: list[str]
    row_scope: str
    row_filter: list[RowCondition] | None
    modes: list[SharingMode]
    purpose: str
    expires_on: date
    masking: dict[str, MaskingRule]
    revoked: bool
    revoked_at: datetime | None
    revoked_by: str | None
    revoke_reason: str
    active: bool
    created_by: str
    created_at: datetime


class UsageCreate(BaseModel):
    grant_id: int
    text: str = Field(min_length=2, max_length=2000, description="使用情况")
    count: int = Field(default=0, ge=0, description="使用次数或记录数")


class UsagePublic(BaseModel):
    id: int
    grant_id: int
    resource_id: int
    resource_name: str
    department_id: int
    department_name: str
    text: str
    count: int
    reported_by: str
    reported_at: datetime


class ReminderPublic(BaseModel):
    application_id: int
    kind: Literal["answer", "provide"]
    due: date
    working_days_left: int
    overdue: bool
