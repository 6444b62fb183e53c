"""Shapes of catalog data in and out of the API (pydantic)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from govshare.catalog.codes import ResourceKind, ResourceStatus, SharingType
from govshare.ids import Count, Id

ITEM_CODE_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,59}$"


class ItemIn(BaseModel):
    """信息项 as submitted."""

    name: str = Field(min_length=1, max_length=100, description="信息项名称")
    code: str = Field(pattern=ITEM_CODE_PATTERN, description="信息项代码 (字段名)")
    data_type: str = Field(min_length=1, max_length=2, description="数据类型 C/N/Y/D/T/L/M/G/B/I/F")
    length: int | None = Field(default=None, ge=1, le=65535, description="数据长度 (字节)")
    description: str = Field(default="", max_length=2000)
    code_table: str | None = Field(default=None, max_length=40, description="引用的代码表")
    is_key: bool = Field(default=False, description="是否为主键/关联标识")


class ItemPublic(ItemIn):
    model_config = ConfigDict(from_attributes=True)


class ResourceIn(BaseModel):
    """A catalog entry as compiled by a department (create and full update)."""

    model_config = ConfigDict(extra="forbid")

    classification_code: str = Field(min_length=1, max_length=20, description="信息资源分类代码")
    name: str = Field(min_length=2, max_length=200, description="信息资源名称")
    abstract: str = Field(min_length=1, max_length=4000, description="信息资源摘要")
    format: str = Field(description="信息资源格式 (代码表 format)")
    format_detail: str = Field(
        default="", max_length=100, description="格式说明, 如 Oracle 表、PDF"
    )
    sharing_type: SharingType = Field(description="共享类型 1 无条件 / 2 有条件 / 3 不予共享")
    sharing_conditions: str = Field(
        default="", max_length=2000, description="共享条件 (有条件共享必填)"
    )
    not_shared_basis: str = Field(
        default="", max_length=2000, description="不予共享依据 (法律、行政法规或党中央国务院政策)"
    )
    sharing_modes: list[str] = Field(
        default_factory=list, description="共享方式 (代码表 sharing_mode)"
    )
    is_open: bool = Field(default=False, description="是否向社会开放")
    open_conditions: str = Field(default="", max_length=2000, description="开放条件")
    update_cycle: str = Field(description="更新周期 (代码表 update_cycle)")
    related_codes: list[str] = Field(default_factory=list, description="关联资源代码")
    source_system_id: Id | None = Field(default=None, description="来源信息系统")
    secrecy: str = Field(default="public", description="涉密属性")
    extensions: dict[str, str] = Field(default_factory=dict, description="扩展元数据 (省级扩展)")
    provider_department_id: Id | None = Field(
        default=None, description="提供方部门; 仅平台管理员可代其他部门编目"
    )
    items: list[ItemIn] = Field(min_length=1, max_length=500, description="信息项")


class ChangeIn(ResourceIn):
    """变更 of a published entry: the new content and why it changed."""

    reason: str = Field(default="", max_length=2000, description="变更原因 (已发布目录必填)")


class TransitionIn(BaseModel):
    reason: str = Field(default="", max_length=2000, description="审核意见或原因")


class ResourcePublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    code: str
    name: str
    kind: ResourceKind
    classification_code: str
    classification_name: str
    provider_department_id: int
    provider_name: str
    provider_credit_code: str
    abstract: str
    format: str
    format_detail: str
    sharing_type: SharingType
    sharing_conditions: str
    not_shared_basis: str
    sharing_modes: list[str]
    is_open: bool
    open_conditions: str
    update_cycle: str
    publish_date: date | None
    related_codes: list[str]
    source_system_id: int | None
    secrecy: str
    extensions: dict[str, Any]
    status: ResourceStatus
    version: int
    published_version: int | None
    updated_at: datetime
    items: list[ItemPublic]


class ResourceSummary(BaseModel):
    id: int
    code: str
    name: str
    provider_name: str
    kind: ResourceKind
    sharing_type: SharingType
    format: str
    update_cycle: str
    is_open: bool
    status: ResourceStatus
    abstract: str
    updated_at: datetime


class FacetValue(BaseModel):
    value: str
    label: str
    count: int


class ResourcePage(BaseModel):
    items: list[ResourceSummary]
    total: int
    next_cursor: str | None
    facets: dict[str, list[FacetValue]]


class VersionPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    version: int
    created_by: str
    created_at: datetime
    note: str


class TransitionPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    action: str
    from_status: str
    to_status: str
    version: int
    actor: str
    reason: str
    at: datetime


class FieldChange(BaseModel):
    field: str
    before: Any
    after: Any


class VersionDiff(BaseModel):
    from_version: int
    to_version: int
    changes: list[FieldChange]


class ClassificationIn(BaseModel):
    code: str = Field(pattern=r"^[1-9][0-9]*$", max_length=20, description="完整分类码")
    name: str = Field(min_length=1, max_length=100)


class ClassificationPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    code: str
    name: str
    level: int
    parent_id: int | None


class CodeEntryIn(BaseModel):
    code: str = Field(min_length=1, max_length=40)
    label: str = Field(min_length=1, max_length=100)
    sort_order: Count = 0


class CodeEntryPublic(CodeEntryIn):
    model_config = ConfigDict(from_attributes=True)

    table_name: str
    active: bool


class DemandIn(BaseModel):
    title: str = Field(min_length=2, max_length=200, description="需求名称")
    description: str = Field(min_length=1, max_length=4000, description="需求描述")
    wanted_items: str = Field(default="", max_length=2000, description="所需信息项")
    purpose: str = Field(default="", max_length=2000, description="用途 (依职能使用)")


class DemandResponseIn(BaseModel):
    resource_code: str = Field(min_length=3, max_length=40, description="可满足需求的资源代码")
    note: str = Field(default="", max_length=2000)


class DemandResponsePublic(BaseModel):
    id: int
    resource_code: str
    resource_name: str
    department_name: str
    note: str
    created_by: str
    created_at: datetime


class DemandPublic(BaseModel):
    id: int
    department_id: int
    department_name: str
    title: str
    description: str
    wanted_items: str
    purpose: str
    status: str
    created_by: str
    created_at: datetime
    responses: list[DemandResponsePublic]


class SystemIn(BaseModel):
    name: str = Field(min_length=2, max_length=100, description="系统名称")
    function: str = Field(default="", max_length=4000, description="系统功能")
    scope: str = Field(default="", max_length=200, description="使用范围")
    usage_frequency: str = Field(description="使用频度 (代码表 usage_frequency)")
    approval: str = Field(default="", max_length=200, description="立项审批")
    funding: str = Field(default="", max_length=200, description="资金来源")
    network: str = Field(description="部署网络 (代码表 network)")
    in_use: bool = True


class SystemPublic(SystemIn):
    model_config = ConfigDict(from_attributes=True)

    id: int
    department_id: int
    department_name: str
    resource_count: int
