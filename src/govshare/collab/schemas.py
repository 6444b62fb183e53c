"""Request and answer shapes of the business-collaboration API."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

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
    created_at: datetime
    closed_at: datetime | None
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
