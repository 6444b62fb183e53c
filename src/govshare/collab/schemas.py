"""Request and answer shapes of the business-collaboration API."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field


class DefinitionPublic(BaseModel):
    id: int
    process_key: str
    name: str
    version: int
    sha256: str
    uploaded_by: str
    uploaded_at: datetime
    help_kinds: list[str]
    user_tasks: dict[str, dict[str, object]]
    time_limit_days: int | None = Field(description="办结时限 (工作日): 整个办件须在此期限内办结")


class MemberIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=50)
    id_number: str = Field(min_length=1, max_length=18)
    relation: str = Field(default="", max_length=20)


class CaseCreate(BaseModel):
    """受理一次申请."""

    model_config = ConfigDict(extra="forbid")

    definition_id: int = Field(ge=1, le=2**31 - 1)
    applicant_name: str = Field(min_length=1, max_length=50)
    applicant_id: str = Field(min_length=1, max_length=18, description="公民身份号码")
    help_kinds: list[str] = Field(min_length=1, max_length=50)
    household: list[MemberIn] = Field(default_factory=list, max_length=20)
    particulars: dict[str, Annotated[str, Field(max_length=200)]] = Field(
        default_factory=dict,
        max_length=21,
        description="申请信息：本流程表单列出的各项（显示名称 → 值），如从法人库带出的企业信息",
    )


class PrefillPublic(BaseModel):
    """带出的申请信息：显示名称 → 值（按本部门授权脱敏）。"""

    key: str
    values: dict[str, str]


class TaskPublic(BaseModel):
    id: int
    case_id: int
    case_number: str
    element_id: str
    name: str
    department_id: int
    status: str
    status_label: str
    claimed_by: str | None
    completed_by: str | None
    decision: str | None
    comment: str
    working_days: int
    started_on: date
    due_on: date
    due_provisional: bool
    remaining_working_days: int
    elapsed_working_days: int
    overdue: bool


class StepPublic(BaseModel):
    at: datetime
    kind: str
    title: str


class CasePublic(BaseModel):
    id: int
    number: str
    definition_id: int
    status: str
    status_label: str
    applicant_name: str
    department_id: int
    accepted_by: str
    outcome: str | None
    flags: list[str]
    particulars: dict[str, str]
    created_at: datetime
    closed_at: datetime | None
    due_on: date | None = Field(description="办结期限: 按流程的办结时限从受理日起算")
    due_provisional: bool = Field(description="办结期限所在年份的节假日安排尚未公布, 为预计")
    remaining_working_days: int | None = Field(
        description="距办结期限的工作日 (超期为负); 已办结或未设时限为 null"
    )
    elapsed_working_days: int = Field(description="受理以来 (或至办结) 的工作日")
    tasks: list[TaskPublic]
    steps: list[StepPublic]


class TaskDecision(BaseModel):
    model_config = ConfigDict(extra="forbid")

    decision: Literal["approve", "reject"]
    comment: str = Field(default="", max_length=2000)


class CaseLookup(BaseModel):
    model_config = ConfigDict(extra="forbid")

    number: str = Field(min_length=1, max_length=24)
    id_number: str = Field(min_length=1, max_length=18)


class CaseLookupAnswer(BaseModel):
    number: str
    status: str
    status_label: str
    steps: list[StepPublic]


class SupervisionDepartment(BaseModel):
    department_id: int
    name: str
    received: int = Field(description="本月分送的任务")
    completed: int = Field(description="本月办结的任务")
    completed_late: int = Field(description="其中超期办结 (红牌)")
    on_time_rate: float | None = Field(description="按时办结率 (%)")
    mean_days: float | None = Field(description="办结任务平均用时 (工作日)")
    open_yellow: int = Field(description="统计日在办黄牌")
    open_red: int = Field(description="统计日在办红牌")


class SupervisionCard(BaseModel):
    card: Literal["yellow", "red"]
    card_label: str
    task_id: int
    case_id: int
    case_number: str
    process: str
    task: str
    department: str
    started_on: date
    due_on: date
    completed: bool
    elapsed_working_days: int


class SupervisionCaseCard(BaseModel):
    card: Literal["yellow", "red"]
    card_label: str
    case_id: int
    case_number: str
    process: str
    department: str = Field(description="受理部门")
    accepted_on: date
    due_on: date
    closed: bool
    elapsed_working_days: int


class SupervisionProcess(BaseModel):
    process: str
    version: int
    time_limit_days: int | None = Field(description="办结时限 (工作日); 未设为 null")


class SupervisionItem(BaseModel):
    process: str
    version: int
    element_id: str
    name: str
    department: str
    working_days: int


class SupervisionReport(BaseModel):
    """电子监察月报: volumes, departments, cards, items (审批事项) and the trend."""

    month: str
    today: date
    warn_working_days: int
    cases_accepted: int
    cases_closed: int
    mean_case_days: float | None
    cases_open: int
    cases_closed_late: int = Field(description="本月超过办结期限办结的办件")
    cases_open_yellow: int
    cases_open_red: int
    tasks_received: int
    tasks_completed: int
    completed_late: int
    open_yellow: int
    open_red: int
    departments: list[SupervisionDepartment]
    cards: list[SupervisionCard]
    case_cards: list[SupervisionCaseCard]
    processes: list[SupervisionProcess]
    items: list[SupervisionItem]
    trend: list[dict[str, int | str]]
