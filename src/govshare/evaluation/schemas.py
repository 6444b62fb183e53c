"""Evaluation API schemas (考核评估)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from govshare.evaluation.models import RunStatus

Score = float


class IndicatorPublic(BaseModel):
    key: str
    label: str
    kind: str
    record: str
    definition: str
    platform: bool


class SchemeUpdate(BaseModel):
    """A new version of the scheme: weights of the scored indicators (0–100 each; the
    score is their weighted mean), grade thresholds and the penalty per lost dispute."""

    model_config = ConfigDict(extra="forbid")

    weights: dict[str, Score] = Field(description='计分指标权重, 如 {"catalog_complete": 20}')
    thresholds: dict[str, Score] = Field(description="等级线: excellent, good, pass")
    dispute_penalty: Score = Field(default=2.0, ge=0, le=100, description="每件争议撤销拒绝扣分")
    note: str = Field(default="", max_length=500, description="修改说明")


class SchemePublic(BaseModel):
    version: int
    weights: dict[str, float]
    thresholds: dict[str, float]
    dispute_penalty: float
    note: str
    created_by: str
    created_at: datetime


class RunRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    recompute: bool = Field(
        default=False, description="重新计算已发布的月份 (明确选择, 记入审计日志)"
    )


class IndicatorValue(BaseModel):
    records: int
    hits: int
    total: float
    value: float | None


class RankingEntry(BaseModel):
    department_id: int
    department_name: str
    score: float | None
    rank: int | None
    grade: str
    year_to_date_score: float | None = Field(description="年度累计得分")
    year_to_date_rank: int | None = Field(description="年度累计排名")


class YearToDateRun(BaseModel):
    """年度累计: the year's months up to this one that were stored when it was computed."""

    months: list[str]
    platform: dict[str, IndicatorValue]


class YearToDateResult(BaseModel):
    """年度累计 of one department: each indicator's records, hits and totals over the
    year's months, the value made from the sums, scored with this month's scheme."""

    months: int
    indicators: dict[str, IndicatorValue]
    score: float | None
    rank: int | None
    grade: str


class RunPublic(BaseModel):
    month: str
    status: RunStatus
    scheme_version: int
    trigger: str
    facts: int
    computations: int
    computed_by: str
    computed_at: datetime
    published_by: str | None
    published_at: datetime | None
    platform: dict[str, IndicatorValue]
    year_to_date: YearToDateRun | None = Field(description="年度累计; 早于此功能计算的月份为空")


class RunDetail(RunPublic):
    ranking: list[RankingEntry]


class ResultPublic(RankingEntry):
    month: str
    indicators: dict[str, IndicatorValue]
    year_to_date: YearToDateResult | None


class RecordLine(BaseModel):
    record_id: int
    hit: bool
    value: float
    cells: dict[str, Any]


class RecordPage(BaseModel):
    indicator: IndicatorPublic
    department_id: int
    total: int
    hits: int
    items: list[RecordLine]
