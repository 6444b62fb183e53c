"""A comparison job's definition (比对任务定义) and the API's bodies.

A definition is plain JSON (or YAML) a bureau can keep in version control::

    {"name": "死亡人员仍领取养老金", "department_id": 3, "schedule": "0 2 * * *",
     "inputs": [{"alias": "pay", "resource": "RS-001", "items": ["sfzhm", "xm", "ffrq", "ffje"]},
                {"alias": "ppl", "resource": "JC-001", "items": ["gmsfhm", "swrq"]}],
     "links": [{"input": "ppl", "on": [{"left": "pay.sfzhm", "right": "gmsfhm"}],
                "normalize": ["trim", "width", "upper", "id18"], "match": "present"}],
     "conditions": [{"left": "pay.ffrq", "op": ">", "right": "ppl.swrq"}],
     "output": ["pay.sfzhm", "pay.xm", "ppl.swrq"], "case_key": ["pay.sfzhm"],
     "amount": "pay.ffje"}

The first input drives the job: every case is a group of its rows (by ``case_key``).
Each further input is linked to an earlier one: ``present`` keeps rows that have a
match (inner join; ``count`` asks for a number of matches), ``absent`` keeps rows that
have none (anti-join).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from govshare.ids import Id

ALIAS = r"^[a-z][a-z0-9_]{0,29}$"
REF = r"^[a-z][a-z0-9_]{0,29}\.[A-Za-z_][A-Za-z0-9_]{0,59}$"
ITEM = r"^[A-Za-z_][A-Za-z0-9_]{0,59}$"


class Normalize(StrEnum):
    """关联键规范化: applied to both sides of a join, in this order."""

    WIDTH = "width"  # 全角转半角
    TRIM = "trim"  # 去首尾空白
    UPPER = "upper"  # 转大写
    ID18 = "id18"  # 15 位身份证号升 18 位


DEFAULT_NORMALIZE = [Normalize.WIDTH, Normalize.TRIM, Normalize.UPPER]


class JobInput(BaseModel):
    """An input: a shared store or base database, named by its resource's code."""

    model_config = ConfigDict(extra="forbid")

    alias: str = Field(pattern=ALIAS, description="输入别名 (小写英文)")
    resource: str = Field(min_length=1, max_length=40, description="目录代码")
    items: list[str] = Field(min_length=1, max_length=60, description="用到的信息项")


class JoinPair(BaseModel):
    model_config = ConfigDict(extra="forbid")

    left: str = Field(pattern=REF, description="已出现输入的信息项, 如 pay.sfzhm")
    right: str = Field(pattern=ITEM, description="本输入的信息项")


class CountRule(BaseModel):
    model_config = ConfigDict(extra="forbid")

    op: Literal["=", "!=", ">", ">=", "<", "<="]
    value: int = Field(ge=0, le=1_000_000)


class JobLink(BaseModel):
    model_config = ConfigDict(extra="forbid")

    input: str = Field(pattern=ALIAS)
    on: list[JoinPair] = Field(min_length=1, max_length=4)
    normalize: list[Normalize] = Field(default_factory=lambda: list(DEFAULT_NORMALIZE))
    match: Literal["present", "absent"] = "present"
    count: CountRule | None = Field(default=None, description="匹配行数须满足 (仅 present)")


ComparisonOp = Literal["=", "!=", ">", ">=", "<", "<=", "is_null", "not_null"]


class Condition(BaseModel):
    """``left op right (+ days)`` or ``left op value``; is_null/not_null take neither."""

    model_config = ConfigDict(extra="forbid")

    left: str = Field(pattern=REF)
    op: ComparisonOp
    right: str | None = Field(default=None, pattern=REF)
    value: str | int | float | None = None
    days: int = Field(default=0, ge=-36_600, le=36_600, description="右侧日期加减天数")


class Definition(BaseModel):
    """What a job compares; validated against the catalog, stores and grants on save."""

    model_config = ConfigDict(extra="forbid")

    inputs: list[JobInput] = Field(min_length=2, max_length=6)
    links: list[JobLink] = Field(min_length=1, max_length=5)
    conditions: list[Condition] = Field(default_factory=list, max_length=20)
    output: list[str] = Field(min_length=1, max_length=40)
    case_key: list[str] = Field(default_factory=list, max_length=4)
    amount: str | None = Field(default=None, pattern=REF, description="涉及金额 (数值型)")


class JobCreate(Definition):
    name: str = Field(min_length=1, max_length=100)
    description: str = Field(default="", max_length=2000)
    department_id: Id = Field(description="负责核查的部门")
    schedule: str | None = Field(default=None, max_length=100, description="cron; 空为按需")
    template: str | None = Field(default=None, max_length=40)
    deliver: bool = Field(
        default=False,
        description="交付: 在共享库中保留线索副本, 供负责部门经订阅接收到本部门数据库",
    )

    def as_definition(self) -> Definition:
        """The definition alone, without the job's name, department and schedule."""
        return Definition.model_validate(self.model_dump(include=set(Definition.model_fields)))


class DeliveryItemPublic(BaseModel):
    """交付表的一列, 按目录信息项描述."""

    code: str = Field(description="信息项代码 (列名)")
    name: str = Field(description="信息项名称")
    data_type: str = Field(description="数据类型")
    length: int = Field(description="数据长度")
    description: str = ""
    is_key: bool = False
    sensitive: bool = Field(default=False, description="敏感信息项 (随其来源信息项)")


class JobPublic(JobCreate):
    id: int
    department_name: str
    created_by: str
    created_at: datetime
    next_run_at: datetime | None
    last_run: RunPublic | None
    delivery_table: str | None = Field(
        default=None, description="交付时线索副本在共享库中的表名 (前置机按此表读取)"
    )
    version_column: str | None = Field(default=None, description="交付表的版本列 (游标)")
    delivery_items: list[DeliveryItemPublic] | None = Field(
        default=None,
        description="交付表的列, 作为大数据局为其登记的目录的信息项 (仅单个任务的查询给出)",
    )


class RunStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def label(self) -> str:
        return RUN_STATUS_LABELS[self]

    @property
    def finished(self) -> bool:
        return self in (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED)


RUN_STATUS_LABELS = {
    RunStatus.QUEUED: "排队中",
    RunStatus.RUNNING: "运行中",
    RunStatus.SUCCEEDED: "已完成",
    RunStatus.FAILED: "失败",
    RunStatus.CANCELLED: "已取消",
}


class RunPublic(BaseModel):
    id: int
    job_id: int
    status: RunStatus
    trigger: str
    requested_by: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    progress: float
    phase: str
    inputs: list[dict[str, Any]] = Field(description="各输入的快照: 包序号、行数")
    hits: int
    new_cases: int
    gone_cases: int
    amount: float | None
    error: str


class CaseState(StrEnum):
    """线索核查状态."""

    PENDING = "pending"  # 待核查
    CHECKING = "checking"  # 核查中
    CONFIRMED = "confirmed"  # 属实
    REFUTED = "refuted"  # 不属实

    @property
    def label(self) -> str:
        return CASE_STATE_LABELS[self]


CASE_STATE_LABELS = {
    CaseState.PENDING: "待核查",
    CaseState.CHECKING: "核查中",
    CaseState.CONFIRMED: "属实",
    CaseState.REFUTED: "不属实",
}


class Presence(StrEnum):
    """How the latest run saw a case."""

    NEW = "new"  # 新发现
    STILL = "still"  # 仍存在
    GONE = "gone"  # 已消失

    @property
    def label(self) -> str:
        return PRESENCE_LABELS[self]


PRESENCE_LABELS = {Presence.NEW: "新发现", Presence.STILL: "仍存在", Presence.GONE: "已消失"}


class CasePublic(BaseModel):
    id: int
    job_id: int
    values: dict[str, Any]
    amount: float | None
    rows: int
    state: CaseState
    presence: Presence
    note: str
    first_run_id: int
    last_run_id: int
    updated_at: datetime
    history: list[dict[str, Any]]


class CasePage(BaseModel):
    items: list[CasePublic]
    next_after_id: int | None
    total: int


class CaseStep(BaseModel):
    model_config = ConfigDict(extra="forbid")

    state: CaseState
    note: str = Field(default="", max_length=2000)


JobPublic.model_rebuild()
