"""Data quality API shapes: rules in and out, scans, failing values, the overview."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from govshare.quality.models import Dimension, ItemFormat, QualityScan
from govshare.rules.fields import Expect


class RuleUpdate(BaseModel):
    """质量规则 of one item as the provider sets it."""

    model_config = ConfigDict(extra="forbid")

    required: bool = Field(default=False, description="必填: a blank value fails completeness")
    data_type: Annotated[
        str, Expect("数据类型须为 C、N、Y、D、T、L、M、G、B、I、F 之一或留空", pattern=r"^[A-Z]?$")
    ] = Field(default="", description="declared type code (GB/T 21063), empty: not checked")
    max_length: Annotated[int, Expect("长度须为 1–100000 的整数", ge=1, le=100_000)] | None = None
    format: ItemFormat = ItemFormat.NONE
    code_table: Annotated[str, Expect("代码表名称不超过40个字符", max_length=40)] | None = None
    date_min: date | None = None
    date_max: date | None = None


class RulePublic(BaseModel):
    item_code: str
    item_name: str
    stored: bool = Field(description="edited and stored; false: still seeded from the catalog")
    required: bool
    data_type: str
    max_length: int | None
    format: ItemFormat
    format_label: str
    code_table: str | None
    date_min: date | None
    date_max: date | None


class ScanPublic(BaseModel):
    """A scan with, per dimension, values checked, failures and the score (0–100, or
    null when the dimension does not apply)."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    store_id: int
    resource_id: int
    department_id: int
    trigger: str
    status: str
    error: str
    started_at: datetime
    finished_at: datetime | None
    applied_seq: int
    applied_at: datetime | None
    rows_scanned: int
    completeness_checked: int
    completeness_failed: int
    completeness_score: float | None
    validity_checked: int
    validity_failed: int
    validity_score: float | None
    uniqueness_checked: int
    uniqueness_failed: int
    uniqueness_score: float | None
    update_cycle: str
    silent_days: float | None
    late: bool | None
    timeliness_score: float | None
    consistency_checked: int
    consistency_failed: int
    consistency_score: float | None
    overall_score: float | None
    problems_kept: int
    problems_dropped: int

    @classmethod
    def of(cls, scan: QualityScan) -> ScanPublic:
        return cls.model_validate(scan)


class ScanPage(BaseModel):
    items: list[ScanPublic]
    next_before_id: int | None


class ProblemPublic(BaseModel):
    """A failing value, masked for the caller."""

    id: int
    dimension: Dimension
    row_key: str
    item_code: str
    item_name: str
    value: str | None
    rule: str
    message: str


class ProblemPage(BaseModel):
    items: list[ProblemPublic]
    next_after_id: int | None


class ResourceQualityPublic(BaseModel):
    resource_id: int
    resource_code: str
    resource_name: str
    provider_department_id: int
    store_id: int
    row_count: int
    latest: ScanPublic | None
