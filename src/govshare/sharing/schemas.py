"""Pydantic shapes of the sharing API."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from govshare.ids import Count, Id
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
    resource_id: Id
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
    masking: dict[str, MaskingRule] = Field(
        default_factory=dict,
        description="信息项→脱敏规则; 未写出的信息项不脱敏, 但目录标为敏感的信息项按默认规则"
        "脱敏 (其开放脱敏规则, 或按名称: 证件号码/电话号码/地址/姓名, 其余完全遮蔽); "
        "要明文提供敏感信息项须写 none",
    )
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
    answer_due_provisional: bool = Field(
        description="预计: counted on a year whose holiday schedule is not known yet "
        "(weekends only); recomputed once the platform enters it"
    )
    answered_on: date | None
    answered_by: str | None
    answer_reason: str
    provide_due: date | None
    provide_due_provisional: bool = Field(description="预计, as answer_due_provisional")
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
    grant_id: Id
    text: str = Field(min_length=2, max_length=2000, description="使用情况")
    count: Count = Field(default=0, description="使用次数或记录数")


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


# -- shared stores and data services -------------------------------------------------------

MAX_VERIFY_KEYS = 10_000  # keys (or key + values records) per 核验 call


class VerifyRule(BaseModel):
    """A 核验 answer defined on the resource: status values, ranges, or presence."""

    model_config = ConfigDict(extra="allow")

    name: str = Field(description="规则标识 (英文)")
    label: str = Field(default="", description="规则名称, 如 纳税状态")
    kind: Literal["status", "range", "presence"]
    item: str | None = Field(default=None, description="依据的信息项 (presence 不需要)")
    values: dict[str, str] | None = Field(default=None, description="status: 取值→状态")
    default: str | None = Field(default=None, description="status: 其他取值的状态")
    bands: list[dict[str, Any]] | None = Field(
        default=None, description="range: [{below: 3000, label: 低}, …, {label: 高}]"
    )
    present: str | None = Field(default=None, description="presence: 有记录时的结论")
    absent: str | None = Field(default=None, description="presence: 无记录时的结论")


class StoreCreate(BaseModel):
    resource_id: Id
    source_task_id: Id = Field(description="该目录的发送任务")
    key_item: str = Field(description="查询键信息项, 如 sfzhm")
    mapping: dict[str, str] = Field(min_length=1, description="源字段→信息项代码")
    verify_rules: list[VerifyRule] = Field(default_factory=list)


class StorePublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    resource_id: int
    resource_name: str
    source_task_id: int | None
    key_item: str
    mapping: dict[str, str]
    verify_rules: list[dict[str, Any]]
    sealed_items: list[str] = Field(
        default_factory=list, description="加密保存的信息项 (字段加密: 目录标为敏感的信息项)"
    )
    items_to_seal: list[str] = Field(
        default_factory=list,
        description="目录新标为敏感、尚未加密保存的信息项 (govshare stores reseal 后加密)",
    )
    items_to_open: list[str] = Field(
        default_factory=list,
        description="已不再敏感 (或静态加密已关闭)、仍加密保存的信息项 (重新加密后解密保存)",
    )
    seal_key: int | None = Field(default=None, description="加密所用字段密钥的代次 (空: 第 1 代)")
    rekey: bool = Field(
        default=False, description="字段密钥已轮换, 加密保存的信息项待以新密钥重新加密"
    )
    resealing: bool = Field(default=False, description="重新加密已开始而尚未完成")
    applied_seq: int
    row_count: int
    applied_at: datetime | None
    last_error: str


class RecordsOut(BaseModel):
    """Records as the grant shows them: granted items only, masked per the grant."""

    resource_code: str
    grant_id: int
    items: list[str]
    records: list[dict[str, Any]]
    next: str | None = Field(default=None, description="下一页游标 (after)")


class VerifyRecord(BaseModel):
    key: str = Field(min_length=1, max_length=200)
    values: dict[str, str] = Field(default_factory=dict, description="信息项→待核对的值")


class VerifyIn(BaseModel):
    """核验: at most 10,000 keys (or key + values records) per call."""

    keys: list[str] | None = Field(default=None, max_length=MAX_VERIFY_KEYS)
    records: list[VerifyRecord] | None = Field(default=None, max_length=MAX_VERIFY_KEYS)
    rule: str | None = Field(default=None, description="按核验规则回答状态或区间")

    @model_validator(mode="after")
    def _one_of(self) -> VerifyIn:
        if (self.keys is None) == (self.records is None):
            raise ValueError("keys 与 records 须且只须提供一个")
        if self.rule is not None and self.records is not None:
            raise ValueError("按规则核验时只提供 keys")
        if not (self.keys or self.records):
            raise ValueError("至少提供一个待核验的键")
        return self


class VerifyAnswer(BaseModel):
    match: bool
    value: str | None = None


class VerifyOut(BaseModel):
    resource_code: str
    grant_id: int
    rule: str | None
    results: list[VerifyAnswer] = Field(description="与请求中的键一一对应, 顺序相同")


# -- objections ----------------------------------------------------------------------------


# An item's value in an objection: a value of one record, never a document.
ItemCode = Annotated[str, Field(min_length=1, max_length=60)]
ItemValue = Annotated[str, Field(max_length=2000)]


class ObjectionCreate(BaseModel):
    grant_id: Id = Field(description="据以使用数据的授权")
    record_key: str = Field(min_length=1, max_length=200, description="有异议的记录的查询键")
    claimed: dict[ItemCode, ItemValue] = Field(
        min_length=1, max_length=200, description="信息项→认为正确的值"
    )
    evidence: str = Field(min_length=4, max_length=4000, description="证明材料说明")


class ObjectionAnswer(BaseModel):
    accept: bool
    answer: str = Field(min_length=2, max_length=4000, description="答复意见")
    correction: dict[ItemCode, ItemValue] | None = Field(
        default=None, max_length=200, description="确认时: 更正后的值 (信息项→值); 缺省为异议所述"
    )


class ObjectionPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    resource_id: int
    resource_name: str
    grant_id: int | None = Field(description="None: 由基础库多元校核冲突采纳而来")
    consumer_department_id: int
    consumer_name: str
    provider_department_id: int
    provider_name: str
    record_key: str
    claimed: dict[str, Any]
    evidence: str
    status: str
    status_label: str
    raised_by: str
    raised_at: datetime
    raised_on: date
    answer_due: date
    answer_due_provisional: bool = Field(
        description="预计: counted on a year whose holiday schedule is not known yet"
    )
    answered_by: str | None
    answered_on: date | None
    answer: str
    correction: dict[str, Any] | None
    corrected_seq: int | None
    archived_at: datetime | None


class CalendarYearIn(BaseModel):
    """A year's official holiday schedule as the State Council published it."""

    holidays: list[str] = Field(
        max_length=400,
        description="放假日期: days off, each ``2027-01-01`` or a range ``2027-02-15~2027-02-21``",
    )
    workdays: list[str] = Field(
        default_factory=list,
        max_length=400,
        description="调休上班日期: weekend days worked, each ``2027-02-07``",
    )


class CalendarYearPublic(BaseModel):
    year: int
    source: str = Field(description="console | file | package | estimate (按周末推算, 预计)")
    source_label: str
    holidays: list[str] = Field(description="entered in the console (empty otherwise)")
    workdays: list[str]
    entered_by: str | None
    entered_at: datetime | None


class CalendarEntered(CalendarYearPublic):
    recounted: int = Field(description="open deadlines recounted on the new schedule")
