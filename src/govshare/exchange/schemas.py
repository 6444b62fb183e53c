"""Shapes of exchange data in and out of the API."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from govshare.exchange.models import AlertKind, NodeStatus, TaskKind, TaskState
from govshare.ids import Count, Id
from govshare.rules.masking import MaskingRule

IDENT = r"^[A-Za-z_][A-Za-z0-9_.]{0,120}$"


class NodeCreate(BaseModel):
    name: str = Field(min_length=2, max_length=100, description="前置机名称")
    department_id: Id


class NodePublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    department_id: int
    status: NodeStatus
    sig_alg: str
    cipher: str
    online: bool
    last_seen_at: datetime | None
    report: dict[str, Any]
    key_rotated_at: datetime | None = Field(default=None, description="最近一次轮换签名密钥的时间")


class NodeEnrolled(NodePublic):
    enrollment_token: str = Field(description="一次性注册令牌, 写入前置机 node.toml")
    node_toml: str = Field(description="前置机配置示例")


class NodeRegister(BaseModel):
    node_id: Id
    token: str = Field(min_length=10, max_length=200)
    public_keys: dict[str, str] = Field(description="{'sm2': hex, 'ed25519': hex}")
    version: str = ""


class NodeRegistered(BaseModel):
    node_id: int
    sig_alg: str
    digest_alg: str
    cipher: str
    cipher_key: str | None


class NodeKeyRotate(BaseModel):
    """前置机签名密钥轮换: the node's new public key, for the algorithm it signs with."""

    public_key: str = Field(
        min_length=1, max_length=512, description="新公钥 (hex): SM2 128 位, Ed25519 64 位"
    )


class NodeKeyRotated(BaseModel):
    node_id: int
    sig_alg: str
    key_rotated_at: datetime
    overlap_until: datetime = Field(description="旧密钥签名的请求在此时刻之前仍被接受")


class NodeKeyOverlapEnded(BaseModel):
    node_id: int
    ended_keys: list[str] = Field(description="自此不再接受其签名的旧公钥 (十六进制)")
    ended_at: datetime


class ScheduleIn(BaseModel):
    interval_seconds: float | None = Field(
        default=5, ge=0.2, le=86400, description="按间隔执行 (秒)"
    )
    cron: str | None = Field(default=None, max_length=100, description="或按 cron 表达式执行")

    @model_validator(mode="after")
    def _valid_cron(self) -> ScheduleIn:
        if self.cron:
            from croniter import croniter

            if not croniter.is_valid(self.cron):
                raise ValueError(f"cron 表达式无效: {self.cron}")
        return self


class SourceCondition(BaseModel):
    """One condition of a provider task's row filter (行过滤), on a source column; a
    task made for a grant carries the grant's row scope this way."""

    model_config = ConfigDict(extra="forbid")

    column: str = Field(pattern=IDENT)
    op: Literal["eq", "in", "prefix"] = "eq"
    value: str | list[str]

    @model_validator(mode="after")
    def _check(self) -> SourceCondition:
        if (self.op == "in") != isinstance(self.value, list):
            raise ValueError("in 条件的取值须为列表, eq 与 prefix 条件的取值须为文字")
        return self


class ProviderConfig(BaseModel):
    """发送任务配置: what to read from the department's business database."""

    model_config = ConfigDict(extra="forbid")

    source: str | None = Field(default=None, max_length=60, description="node.toml 中数据源的名称")
    folder: str | None = Field(
        default=None, max_length=60, description="或 node.toml 中的文件夹 (非结构化资源)"
    )
    pattern: str = Field(
        default="**/*", max_length=200, description="文件夹模式下要交换的文件 (glob)"
    )
    chunk_bytes: int = Field(
        default=4 * 1024 * 1024, ge=64 * 1024, le=64 * 1024 * 1024, description="分块大小"
    )
    table: str | None = Field(default=None, pattern=IDENT, description="源表")
    query: str | None = Field(default=None, max_length=4000, description="或只读查询 (SELECT …)")
    key: list[str] = Field(default_factory=list, description="主键列")
    columns: list[str] | None = Field(default=None, description="要交换的列 (缺省为全部)")
    mode: Literal["incremental", "snapshot", "log"] = Field(
        default="incremental",
        description="incremental: 按游标列增量; snapshot: 全量快照比对; "
        "log: 日志捕获 (PostgreSQL 逻辑复制 / MySQL binlog, 无需游标列)",
    )
    cursor_column: str | None = Field(
        default=None, pattern=IDENT, description="单调递增列 (更新时间、行版本、自增ID)"
    )
    delete_detection: Literal["none", "keyset", "soft_delete"] = "keyset"
    soft_delete_column: str | None = Field(default=None, pattern=IDENT)
    soft_delete_value: str = "1"
    keyset_every_seconds: float = Field(default=300, ge=1, le=86400, description="键集比对周期")
    batch_rows: int = Field(default=50_000, ge=100, le=500_000)
    schedule: ScheduleIn = Field(default_factory=ScheduleIn)
    row_filter: list[SourceCondition] = Field(
        default_factory=list, description="只交换同时满足这些条件的行 (授权的行范围)"
    )
    masking: dict[str, MaskingRule] = Field(
        default_factory=dict, description="列 → 脱敏规则: 数据包里只有脱敏后的值"
    )

    @model_validator(mode="after")
    def _check(self) -> ProviderConfig:
        if self.folder is not None:
            if self.source or self.table or self.query:
                raise ValueError("文件夹任务不能同时指定数据源、表或查询")
            if self.row_filter or self.masking:
                raise ValueError("文件夹任务不能设置行过滤或脱敏")
            return self
        if masked_keys := sorted(set(self.masking) & set(self.key)):
            raise ValueError(f"主键列不能脱敏: {', '.join(masked_keys)}")
        if self.columns is not None and (outside := sorted(set(self.masking) - set(self.columns))):
            raise ValueError(f"脱敏的列不在交换的列中: {', '.join(outside)}")
        if not self.source:
            raise ValueError("须指定数据源 source 或文件夹 folder")
        if not self.key:
            raise ValueError("须指定主键列 key")
        if (self.table is None) == (self.query is None):
            raise ValueError("源表 table 与查询 query 须且只须填写一个")
        if self.query is not None and not self.query.lstrip().lower().startswith("select"):
            raise ValueError("query 只能是 SELECT 查询")
        if self.mode == "log" and self.table is None:
            raise ValueError("日志捕获模式须指定源表 table (日志按表记录, 不能用查询)")
        if self.mode == "incremental" and not self.cursor_column:
            raise ValueError("增量模式须指定 cursor_column")
        if self.delete_detection == "soft_delete" and not self.soft_delete_column:
            raise ValueError("软删除识别须指定 soft_delete_column")
        return self


class SubscriberConfig(BaseModel):
    """接收任务配置: where and how to write into the subscriber's database."""

    model_config = ConfigDict(extra="forbid")

    target: str | None = Field(default=None, max_length=60, description="node.toml 中目标库的名称")
    table: str | None = Field(
        default=None, pattern=IDENT, description="目标表 (不存在时按数据包自动创建)"
    )
    folder: str | None = Field(
        default=None, max_length=60, description="或 node.toml 中的目标文件夹"
    )
    mapping: dict[str, str] = Field(default_factory=dict, description="源列 → 目标列 (缺省同名)")
    code_maps: dict[str, dict[str, str]] = Field(
        default_factory=dict, description="代码转换: 列 → {源代码: 目标代码}"
    )
    schedule: ScheduleIn = Field(default_factory=ScheduleIn)

    @model_validator(mode="after")
    def _check(self) -> SubscriberConfig:
        if self.folder is None and not (self.target and self.table):
            raise ValueError("须指定目标库 target 与目标表 table，或目标文件夹 folder")
        if self.folder is not None and (self.target or self.table):
            raise ValueError("文件夹任务不能同时指定目标库或目标表")
        return self


class TaskCreate(BaseModel):
    name: str = Field(min_length=2, max_length=200)
    kind: TaskKind
    node_id: Id
    resource_id: Id
    source_task_id: Id | None = Field(default=None, description="接收任务: 订阅哪个发送任务")
    config: dict[str, Any]


class TaskUpdate(BaseModel):
    name: str = Field(min_length=2, max_length=200)
    config: dict[str, Any]


class TaskPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    kind: TaskKind
    node_id: int
    resource_id: int
    source_task_id: int | None
    config: dict[str, Any]
    state: TaskState
    config_version: int
    last_seq: int
    acked_seq: int
    updated_at: datetime


class PackageInfo(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    task_id: int
    seq: int
    digest: str
    size: int
    rows: int
    inserted: int
    updated: int
    deleted: int
    created_at: datetime
    received_at: datetime


class PackageAccepted(BaseModel):
    task_id: int
    seq: int
    status: Literal["accepted", "duplicate"]


class AckIn(BaseModel):
    seq: Id
    inserted: Count = 0
    updated: Count = 0
    deleted: Count = 0


class HeartbeatIn(BaseModel):
    version: str = ""
    tasks: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="任务编号 → 运行情况"
    )
    errors: list[dict[str, Any]] = Field(default_factory=list)
    store_sealed: bool | None = Field(
        default=None,
        description="本地库是否静态加密 (私钥、传输密钥和待发数据包); 旧版前置机不上报",
    )
    store_cipher: Literal["sm4", "aes"] | None = Field(
        default=None, description="本地库静态加密算法"
    )


class CommandOut(BaseModel):
    id: int
    command: str
    task_id: int | None
    args: dict[str, Any]


class HeartbeatOut(BaseModel):
    tasks: list[dict[str, Any]]
    commands: list[CommandOut]
    server_time: datetime
    assignment_mark: str = Field(
        "", description="任务变更标记: 与 GET /node/wake 所答不同时, 前置机应立即再次心跳"
    )
    data_keys: bool = Field(
        False, description="平台能解开封装的数据密钥: 前置机可用每包一个的数据密钥加密正文"
    )


class WakeOut(BaseModel):
    assignment_mark: str = Field(description="前置机当前的任务变更标记")


class CommandIn(BaseModel):
    command: Literal["resync", "collect_schema", "checksum", "keyset"]
    task_id: Id | None = None


class CommandResult(BaseModel):
    ok: bool
    result: dict[str, Any] = Field(default_factory=dict)


class NodeAlertIn(BaseModel):
    kind: Literal["send_failed", "receive_failed", "database_error"]
    task_id: Id | None = None
    message: str = Field(max_length=2000)
    resolved: bool = False


class AlertPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    kind: AlertKind
    severity: str
    node_id: int | None
    task_id: int | None
    message: str
    details: dict[str, Any]
    count: int
    created_at: datetime
    last_seen_at: datetime
    resolved_at: datetime | None


class ReconciliationPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    provider_task_id: int
    subscriber_task_id: int
    requested_at: datetime
    sent: dict[str, int]
    received: dict[str, int]
    source: dict[str, Any] | None
    target: dict[str, Any] | None
    outcome: str
    detail: str
    completed_at: datetime | None


class DomainIn(BaseModel):
    name: str = Field(min_length=2, max_length=100)
    description: str = Field(default="", max_length=2000)
    department_ids: list[Id] = Field(default_factory=list)


class DomainPublic(BaseModel):
    id: int
    name: str
    description: str
    department_ids: list[int]


class FromTableIn(BaseModel):
    node_id: Id
    source: str
    table: str = Field(pattern=IDENT)
    classification_code: str
    name: str = Field(min_length=2, max_length=200)
    abstract: str = Field(min_length=1, max_length=4000)
