"""Shapes of catalog data in and out of the API (pydantic)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from govshare.catalog.codes import ResourceKind, ResourceStatus, SharingType
from govshare.ids import Count, Id
from govshare.rules.fields import Expect, expected
from govshare.rules.masking import MaskingRule

ITEM_CODE_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,59}$"
CLASSIFICATION_CODE_PATTERN = r"^[0-9]{1,20}$"
MIN_LENGTH, MAX_LENGTH = 1, 65535  # 数据长度 (字节)
MAX_ITEMS = 500


def _texts(label: str, max_length: int, *, min_length: int = 0) -> Expect:
    """A free text of at most ``max_length`` characters (and at least ``min_length``)."""
    if min_length > 1:
        message = f"{label}须为 {min_length} 至 {max_length} 个字符"
    elif min_length == 1:
        message = f"{label}必填，不超过 {max_length} 个字符"
    else:
        message = f"{label}不能超过 {max_length} 个字符"
    return Expect(message, min_length=min_length or None, max_length=max_length)


class ItemIn(BaseModel):
    """信息项 as submitted."""

    name: Annotated[str, _texts("信息项名称", 100, min_length=1)] = Field(description="信息项名称")
    code: Annotated[
        str,
        Expect(
            "信息项代码须以英文字母或下划线开头，只含英文字母、数字和下划线，不超过 60 位",
            pattern=ITEM_CODE_PATTERN,
        ),
    ] = Field(description="信息项代码 (字段名)")
    data_type: Annotated[
        str,
        Expect("数据类型须为 C/N/Y/D/T/L/M/G/B/I/F 之一", min_length=1, max_length=2),
    ] = Field(description="数据类型 C/N/Y/D/T/L/M/G/B/I/F")
    length: Annotated[
        int | None,
        Expect(
            f"数据长度须为 {MIN_LENGTH} 至 {MAX_LENGTH} 之间的整数", ge=MIN_LENGTH, le=MAX_LENGTH
        ),
    ] = Field(default=None, description="数据长度 (字节)")
    description: Annotated[str, _texts("信息项描述", 2000)] = ""
    code_table: Annotated[str | None, _texts("代码表名称", 40)] = Field(
        default=None, description="引用的代码表"
    )
    is_key: Annotated[bool, Expect("是否主键须为 是/否 (true/false)")] = Field(
        default=False, description="是否为主键/关联标识"
    )
    sensitive: Annotated[bool, Expect("敏感信息项须为 是/否 (true/false)")] = Field(
        default=False,
        description="敏感信息项: 个人信息等敏感信息；不随开放数据发布，批准共享时默认脱敏",
    )
    open_withheld: Annotated[bool, Expect("不予开放须为 是/否 (true/false)")] = Field(
        default=False,
        description="不予开放: 该信息项不随开放数据发布 (名称、预览、下载、行接口都不含)",
    )
    open_masking: Annotated[
        MaskingRule,
        Expect("开放脱敏规则须为 " + "、".join(r.value for r in MaskingRule) + " 之一"),
    ] = Field(
        default=MaskingRule.NONE,
        description="开放脱敏: 开放数据中该信息项的值如何显示 (none 不脱敏, id_number 证件号码, "
        "phone 电话号码, name 姓名, address 地址, hide 完全遮蔽)；脱敏的信息项不能用于筛选或排序",
    )


class ItemPublic(ItemIn):
    model_config = ConfigDict(from_attributes=True)


def _item_count(items: list[ItemIn]) -> list[ItemIn]:
    if not 1 <= len(items) <= MAX_ITEMS:
        raise expected(f"信息项须有 1 至 {MAX_ITEMS} 个")
    return items


class ResourceIn(BaseModel):
    """A catalog entry as compiled by a department (create and full update).

    Each field says in Chinese what it expects when the value does not fit
    (:class:`~govshare.rules.fields.Expect`); the catalog's rules (code tables, the
    classification tree, sharing conditions) are checked by the service."""

    model_config = ConfigDict(extra="forbid")

    classification_code: Annotated[
        str,
        Expect(
            "信息资源分类须为分类代码 (1 至 20 位数字，如 101001)",
            pattern=CLASSIFICATION_CODE_PATTERN,
        ),
    ] = Field(description="信息资源分类代码")
    name: Annotated[str, _texts("信息资源名称", 200, min_length=2)] = Field(
        description="信息资源名称"
    )
    abstract: Annotated[str, _texts("信息资源摘要", 4000, min_length=1)] = Field(
        description="信息资源摘要"
    )
    format: Annotated[str, Expect("信息资源格式须为代码表“信息资源格式”中的代码")] = Field(
        description="信息资源格式 (代码表 format)"
    )
    format_detail: Annotated[str, _texts("格式说明", 100)] = Field(
        default="", description="格式说明, 如 Oracle 表、PDF"
    )
    sharing_type: Annotated[
        SharingType, Expect("共享类型须为 1 (无条件共享)、2 (有条件共享) 或 3 (不予共享)")
    ] = Field(description="共享类型 1 无条件 / 2 有条件 / 3 不予共享")
    sharing_conditions: Annotated[str, _texts("共享条件", 2000)] = Field(
        default="", description="共享条件 (有条件共享必填)"
    )
    not_shared_basis: Annotated[str, _texts("不予共享依据", 2000)] = Field(
        default="", description="不予共享依据 (法律、行政法规或党中央国务院政策)"
    )
    sharing_modes: Annotated[list[str], Expect("共享方式须为代码表“共享方式”中的代码列表")] = Field(
        default_factory=list, description="共享方式 (代码表 sharing_mode)"
    )
    is_open: Annotated[bool, Expect("是否向社会开放须为 是/否 (true/false)")] = Field(
        default=False, description="是否向社会开放"
    )
    open_conditions: Annotated[str, _texts("开放条件", 2000)] = Field(
        default="", description="开放条件"
    )
    update_cycle: Annotated[str, Expect("更新周期须为代码表“更新周期”中的代码")] = Field(
        description="更新周期 (代码表 update_cycle)"
    )
    related_codes: Annotated[
        list[str], Expect("关联资源代码须为资源代码的列表，如 101001/000001")
    ] = Field(default_factory=list, description="关联资源代码")
    source_system_id: Annotated[Id | None, Expect("来源信息系统须为信息系统编号 (整数)")] = Field(
        default=None, description="来源信息系统"
    )
    secrecy: Annotated[str, Expect("涉密属性须为代码表“涉密属性”中的代码")] = Field(
        default="public", description="涉密属性"
    )
    extensions: Annotated[dict[str, str], Expect("扩展元数据须为“名称: 文本”的对应")] = Field(
        default_factory=dict, description="扩展元数据 (省级扩展)"
    )
    provider_department_id: Annotated[Id | None, Expect("提供方部门须为部门编号 (整数)")] = Field(
        default=None, description="提供方部门; 仅平台管理员可代其他部门编目"
    )
    items: Annotated[
        list[ItemIn],
        Field(json_schema_extra={"minItems": 1, "maxItems": MAX_ITEMS}),
        AfterValidator(_item_count),
    ] = Field(description="信息项")


class ChangeIn(ResourceIn):
    """变更 of a published entry: the new content and why it changed."""

    reason: Annotated[str, _texts("变更原因", 2000)] = Field(
        default="", description="变更原因 (已发布目录必填)"
    )


class TransitionIn(BaseModel):
    reason: Annotated[str, _texts("审核意见或原因", 2000)] = Field(
        default="", description="审核意见或原因"
    )


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
    code: Annotated[
        str,
        Expect(
            "分类代码须为不以 0 开头的数字，不超过 20 位 (类 1 位、项 3 位、目 6 位)",
            pattern=r"^[1-9][0-9]*$",
            max_length=20,
        ),
    ] = Field(description="完整分类码")
    name: Annotated[str, _texts("分类名称", 100, min_length=1)]


class ClassificationPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    code: str
    name: str
    level: int
    parent_id: int | None


class CodeEntryIn(BaseModel):
    code: Annotated[str, _texts("代码", 40, min_length=1)]
    label: Annotated[str, _texts("名称", 100, min_length=1)]
    sort_order: Annotated[Count, Expect("排序号须为整数")] = 0


class CodeEntryPublic(CodeEntryIn):
    model_config = ConfigDict(from_attributes=True)

    table_name: str
    active: bool


class DemandIn(BaseModel):
    title: Annotated[str, _texts("需求名称", 200, min_length=2)] = Field(description="需求名称")
    description: Annotated[str, _texts("需求描述", 4000, min_length=1)] = Field(
        description="需求描述"
    )
    wanted_items: Annotated[str, _texts("所需信息项", 2000)] = Field(
        default="", description="所需信息项"
    )
    purpose: Annotated[str, _texts("用途", 2000)] = Field(
        default="", description="用途 (依职能使用)"
    )


class DemandResponseIn(BaseModel):
    resource_code: Annotated[
        str, Expect("资源代码须为 3 至 40 个字符，如 101001/000001", min_length=3, max_length=40)
    ] = Field(description="可满足需求的资源代码")
    note: Annotated[str, _texts("说明", 2000)] = ""


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
    name: Annotated[str, _texts("系统名称", 100, min_length=2)] = Field(description="系统名称")
    function: Annotated[str, _texts("系统功能", 4000)] = Field(default="", description="系统功能")
    scope: Annotated[str, _texts("使用范围", 200)] = Field(default="", description="使用范围")
    usage_frequency: Annotated[str, Expect("使用频度须为代码表“使用频度”中的代码")] = Field(
        description="使用频度 (代码表 usage_frequency)"
    )
    approval: Annotated[str, _texts("立项审批", 200)] = Field(default="", description="立项审批")
    funding: Annotated[str, _texts("资金来源", 200)] = Field(default="", description="资金来源")
    network: Annotated[str, Expect("部署网络须为代码表“部署网络”中的代码")] = Field(
        description="部署网络 (代码表 network)"
    )
    in_use: Annotated[bool, Expect("是否在用须为 是/否 (true/false)")] = True


class SystemPublic(SystemIn):
    model_config = ConfigDict(from_attributes=True)

    id: int
    department_id: int
    department_name: str
    resource_count: int


class ImportJobPublic(BaseModel):
    """导入任务 as the uploader follows it: poll ``GET /api/v1/catalog/import/jobs/{id}``
    until ``status`` is ``done`` or ``failed``."""

    id: int
    status: str = Field(description="queued | checking | writing | done | failed")
    status_label: str
    filename: str
    created_by: str
    created_at: datetime
    finished_at: datetime | None
    rows: int = Field(description="spreadsheet rows of the file (known once checked)")
    entries_total: int
    entries_done: int
    progress: float = Field(description="0..1, the share of entries stored")
    resource_ids: list[int] = Field(description="the drafts stored (all of them once done)")
    error: dict[str, Any] | None = Field(
        description="why nothing was imported: {code, message, details: [{row, column, "
        "message}]} as an API error envelope's body"
    )


# -- department duties (部门职责 / 权责清单) --------------------------------------------------

DUTY_CODE_PATTERN = r"^[A-Za-z0-9_.\-]{1,50}$"
_DATE = Expect("日期须为 YYYY-MM-DD 格式的有效日期")


class DutyCreate(BaseModel):
    """声明一项职责 (from the 三定方案 or 权责清单); records a 职责调整 event."""

    code: Annotated[
        str,
        Expect(
            "职责编码须为 1 至 50 个字母、数字或 - _ . 字符",
            min_length=1,
            max_length=50,
            pattern=DUTY_CODE_PATTERN,
        ),
    ] = Field(description="职责编码, 部门内唯一")
    name: Annotated[str, _texts("职责名称", 200, min_length=1)] = Field(description="职责名称")
    basis: Annotated[str, _texts("设定依据", 2000)] = Field(
        default="", description="设定依据, 如 三定方案第三条"
    )
    declared_on: Annotated[date, _DATE] = Field(description="声明日期 (北京时间), 不能晚于今天")
    department_id: Id | None = Field(
        default=None, description="所属部门; 仅平台管理员可指定, 其他人为本部门"
    )


class DutyChange(BaseModel):
    """调整职责的名称或设定依据, 说明原因; records a 职责调整 event."""

    name: Annotated[str, _texts("职责名称", 200, min_length=1)]
    basis: Annotated[str, _texts("设定依据", 2000)] = ""
    changed_on: Annotated[date, _DATE] = Field(description="调整日期 (北京时间)")
    reason: Annotated[str, _texts("调整原因", 2000, min_length=1)]


class DutyWithdraw(BaseModel):
    """取消职责; records a 职责调整 event. The duty stays in the register as evidence."""

    withdrawn_on: Annotated[date, _DATE] = Field(description="取消日期 (北京时间)")
    reason: Annotated[str, _texts("取消原因", 2000, min_length=1)]


class SystemChangeIn(BaseModel):
    """登记信息系统变更 (上线新功能、数据结构调整、迁移、停用 …)."""

    changed_on: Annotated[date, _DATE] = Field(description="变更日期 (北京时间)")
    description: Annotated[str, _texts("变更内容", 2000, min_length=1)]


class DutyResourceRef(BaseModel):
    id: int
    code: str
    name: str
    status: ResourceStatus


class DutyPublic(BaseModel):
    id: int
    department_id: int
    department_name: str
    code: str
    name: str
    basis: str
    declared_on: date
    withdrawn_on: date | None
    in_force: bool
    resources: list[DutyResourceRef]
    created_at: datetime
    updated_at: datetime


class DutyPage(BaseModel):
    items: list[DutyPublic]
    total: int


class ChangeEventPublic(BaseModel):
    """A 职责调整 or 系统变更 and the date by which the catalog must follow it."""

    id: int
    department_id: int
    kind: str = Field(description="duty | system")
    kind_label: str
    duty_id: int | None
    duty_code: str | None
    duty_name: str | None
    system_id: int | None
    system_name: str | None
    changed_on: date
    catalog_due: date = Field(description="目录更新期限: 变更日期后第 N 个工作日")
    catalog_due_provisional: bool = Field(description="期限按尚未公布的节假日安排推算 (预计)")
    description: str
    recorded_by: str
    created_at: datetime


class ChangeEventPage(BaseModel):
    items: list[ChangeEventPublic]
    total: int
