"""Request and response bodies of the base-database API."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from govshare.ids import Id

ItemCode = Field(min_length=1, max_length=60, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")


class SourceRef(BaseModel):
    """A column (information item) of a shared store."""

    model_config = ConfigDict(extra="forbid")

    store_id: Id = Field(description="共享信息库")
    column: str = ItemCode


class BaseItemIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    item: str = ItemCode
    source: SourceRef = Field(description="权威来源（一数一源）")
    evidence: list[SourceRef] = Field(default_factory=list, max_length=10, description="佐证来源")
    unconditional: bool = Field(default=True, description="无条件共享")


class BaseCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    resource_id: Id = Field(description="基础信息资源类目录")
    key_item: str = ItemCode
    items: list[BaseItemIn] = Field(min_length=1, max_length=200)
    keys: dict[str, str] = Field(
        default_factory=dict, description="各来源的关联键信息项（默认为其查询键）"
    )


class BasePublic(BaseModel):
    id: int
    resource_id: int
    resource_name: str
    store_id: int | None
    key_item: str
    items: list[dict[str, Any]]
    keys: dict[str, str]
    table_name: str = Field(description="共享库中的记录表 (前置机按此表返还)")
    version_column: str = Field(description="记录版本列: 前置机按此游标列读取变化")
    row_count: int
    assembled_at: datetime | None
    last_error: str
    conflicts: dict[str, int]


class ConflictPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    base_id: int
    record_key: str
    item: str
    department_id: int
    value: str | None
    store_id: int
    seq: int
    evidence_value: str | None
    evidence_store_id: int
    evidence_seq: int
    status: str
    reason: str
    handled_by: str | None
    objection_id: int | None
    opened_at: datetime
    closed_at: datetime | None


class ConflictPage(BaseModel):
    items: list[ConflictPublic]
    next: int | None = Field(description="下一页: 作为 after 传入")


class ConflictConfirm(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(default="", max_length=2000)


class ItemValue(BaseModel):
    value: str | None
    store_id: int | None
    seq: int | None
    since: datetime | None


class RecordOut(BaseModel):
    key: str
    as_of: datetime | None
    items: dict[str, ItemValue]
