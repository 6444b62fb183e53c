"""Tables of the exchange system: nodes, tasks, the package log, acknowledgements,
reconciliations, alerts, commands to nodes and exchange domains."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from govshare.catalog.models import Resource
from govshare.db import Base, str_enum, utcnow
from govshare.security.models import Department, JSONType

BigId = BigInteger().with_variant(Integer, "sqlite")


class NodeStatus(StrEnum):
    """前置机状态."""

    ENROLLING = "enrolling"  # created by the platform, waiting for the node's first call
    ACTIVE = "active"
    DISABLED = "disabled"


class ExchangeNode(Base):
    """前置交换节点: a department's front-end node, known by its public key."""

    __tablename__ = "exchange_node"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    department_id: Mapped[int] = mapped_column(ForeignKey("department.id"), index=True)
    status: Mapped[NodeStatus] = mapped_column(
        str_enum(NodeStatus, 12), default=NodeStatus.ENROLLING
    )
    enrollment_token_hash: Mapped[str | None] = mapped_column(String(64))
    sig_alg: Mapped[str] = mapped_column(String(10))
    public_key: Mapped[str | None] = mapped_column(Text)
    # 密钥轮换: the public keys the node signed with before, newest first, each as
    # {"public_key": hex, "retired_at": ISO time}. Packages they signed verify for good;
    # a request signed with one is accepted only for node_key_overlap_hours after it
    # was replaced (a node process that has not switched yet keeps working).
    retired_keys: Mapped[list[dict[str, str]]] = mapped_column(JSONType, default=list)
    key_rotated_at: Mapped[datetime | None] = mapped_column()
    cipher: Mapped[str] = mapped_column(String(10))
    cipher_key_sealed: Mapped[str | None] = mapped_column(Text)
    last_seen_at: Mapped[datetime | None] = mapped_column()
    online: Mapped[bool] = mapped_column(default=False)
    report: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    schemas: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    department: Mapped[Department] = relationship(lazy="joined")


class TaskKind(StrEnum):
    PROVIDER = "provider"  # 发送任务: from a business table to the hub
    SUBSCRIBER = "subscriber"  # 接收任务: from the hub into a target table


class TaskState(StrEnum):
    """任务状态 as the platform wants it; the node reports what it actually does."""

    DRAFT = "draft"
    RUNNING = "running"
    STOPPED = "stopped"

    @property
    def label(self) -> str:
        return {"draft": "未部署", "running": "运行中", "stopped": "已停止"}[self.value]


class ExchangeTask(Base):
    """交换任务: binds a catalog resource to a node's table (provider) or target (subscriber)."""

    __tablename__ = "exchange_task"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[TaskKind] = mapped_column(str_enum(TaskKind, 12))
    node_id: Mapped[int] = mapped_column(ForeignKey("exchange_node.id"), index=True)
    resource_id: Mapped[int] = mapped_column(ForeignKey("resource.id"), index=True)
    source_task_id: Mapped[int | None] = mapped_column(ForeignKey("exchange_task.id"), index=True)
    config: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    state: Mapped[TaskState] = mapped_column(str_enum(TaskState, 10), default=TaskState.DRAFT)
    config_version: Mapped[int] = mapped_column(Integer, default=1)
    last_seq: Mapped[int] = mapped_column(BigId, default=0)  # provider: newest accepted package
    acked_seq: Mapped[int] = mapped_column(BigId, default=0)  # subscriber: newest applied package
    created_by: Mapped[str] = mapped_column(String(50))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    node: Mapped[ExchangeNode] = relationship(lazy="joined")
    resource: Mapped[Resource] = relationship(lazy="joined")


class ExchangePackage(Base):
    """One accepted package in the exchange log; the payload is here or on the bus."""

    __tablename__ = "exchange_package"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("exchange_task.id"))
    seq: Mapped[int] = mapped_column(BigId)
    digest: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(Integer)
    rows: Mapped[int] = mapped_column(Integer)
    inserted: Mapped[int] = mapped_column(Integer, default=0)
    updated: Mapped[int] = mapped_column(Integer, default=0)
    deleted: Mapped[int] = mapped_column(Integer, default=0)
    kind: Mapped[str] = mapped_column(String(12), default="rows")
    created_at: Mapped[datetime] = mapped_column()  # when the node built it
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    payload: Mapped[bytes | None] = mapped_column(LargeBinary)
    bus_seq: Mapped[int | None] = mapped_column(BigId)
    # 交换日志清理: when the bytes were removed (``exchange.pruning``); the row stays.
    pruned_at: Mapped[datetime | None] = mapped_column()

    __table_args__ = (
        UniqueConstraint("task_id", "seq", name="uq_exchange_package_task_seq"),
        Index("ix_exchange_package_received", "received_at"),
    )


class DeliveryAck(Base):
    """回执: a subscriber node applied a package, with what it applied."""

    __tablename__ = "delivery_ack"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("exchange_task.id"))
    package_id: Mapped[int] = mapped_column(ForeignKey("exchange_package.id"))
    seq: Mapped[int] = mapped_column(BigId)
    inserted: Mapped[int] = mapped_column(Integer, default=0)
    updated: Mapped[int] = mapped_column(Integer, default=0)
    deleted: Mapped[int] = mapped_column(Integer, default=0)
    applied_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (UniqueConstraint("task_id", "seq", name="uq_delivery_ack_task_seq"),)


class Reconciliation(Base):
    """桥接核对: sender against receiver for one subscription, counts and checksums."""

    __tablename__ = "reconciliation"

    id: Mapped[int] = mapped_column(primary_key=True)
    provider_task_id: Mapped[int] = mapped_column(ForeignKey("exchange_task.id"), index=True)
    subscriber_task_id: Mapped[int] = mapped_column(ForeignKey("exchange_task.id"), index=True)
    day: Mapped[date | None] = mapped_column(Date)
    requested_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent: Mapped[dict[str, int]] = mapped_column(JSONType, default=dict)
    received: Mapped[dict[str, int]] = mapped_column(JSONType, default=dict)
    source: Mapped[dict[str, Any] | None] = mapped_column(JSONType)  # {"count", "keyhash", "seq"}
    target: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    outcome: Mapped[str] = mapped_column(
        String(12), default="pending"
    )  # pending | match | mismatch | failed (no answer in time; a new one is requested)
    detail: Mapped[str] = mapped_column(Text, default="")
    completed_at: Mapped[datetime | None] = mapped_column()


class AlertKind(StrEnum):
    """告警类型."""

    NODE_SILENT = "node_silent"
    SEND_FAILED = "send_failed"
    RECEIVE_FAILED = "receive_failed"
    DATABASE_ERROR = "database_error"
    PACKAGE_REJECTED = "package_rejected"
    RECONCILIATION_MISMATCH = "reconciliation_mismatch"
    RECONCILIATION_TIMEOUT = "reconciliation_timeout"  # a node's checksum did not come in time
    LAG = "lag"
    OBJECTION_OVERDUE = "objection_overdue"  # raised by sharing: an 异议 not answered in time
    APPLICATION_OVERDUE = "application_overdue"  # a 共享申请 not answered or provided in time
    CALENDAR_MISSING = "calendar_missing"  # the working-day calendar lacks a coming year
    CONFLICT_OVERDUE = "conflict_overdue"  # a base database's conflict left open too long
    BACKUP_STALE = "backup_stale"  # the last good backup is older than backup_max_age_hours
    DOCUMENT_UNANSWERED = "document_unanswered"  # a 公文 neither signed for nor returned in time
    CASE_TASK_OVERDUE = "case_task_overdue"  # a business-collaboration task past its deadline
    CASE_TASK_DUE_SOON = "case_task_due_soon"  # 黄牌: a collaboration task's deadline is near
    CASE_OVERDUE = "case_overdue"  # a collaboration case open past its 办结期限
    DISK_LOW = "disk_low"  # the data directory's filesystem has too little free space
    KEY_EXPIRING = "key_expiring"  # a key or certificate nears its maximum age or notAfter
    NODE_STORE_UNSEALED = "node_store_unsealed"  # a node keeps its keys and outbox in the clear

    @property
    def label(self) -> str:
        return {
            "node_silent": "前置机失联",
            "send_failed": "发送失败",
            "receive_failed": "接收失败",
            "database_error": "数据库错误",
            "package_rejected": "数据包被拒收",
            "reconciliation_mismatch": "核对不一致",
            "reconciliation_timeout": "核对超时",
            "lag": "交换积压",
            "objection_overdue": "异议答复超期",
            "application_overdue": "共享申请办理超期",
            "calendar_missing": "节假日历缺少年份",
            "conflict_overdue": "基础库冲突超期未处理",
            "backup_stale": "备份过期",
            "document_unanswered": "公文超时未签收",
            "case_task_overdue": "协同任务超期",
            "case_task_due_soon": "协同任务即将到期",
            "case_overdue": "协同办件超过办结期限",
            "disk_low": "磁盘空间不足",
            "key_expiring": "密钥即将到期",
            "node_store_unsealed": "前置机本地库未加密",
        }[self.value]


class Alert(Base):
    """告警: raised once per open condition; resolved when the condition clears."""

    __tablename__ = "alert"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[AlertKind] = mapped_column(str_enum(AlertKind, 30))
    severity: Mapped[str] = mapped_column(String(10), default="error")
    node_id: Mapped[int | None] = mapped_column(ForeignKey("exchange_node.id"), index=True)
    task_id: Mapped[int | None] = mapped_column(ForeignKey("exchange_task.id"), index=True)
    message: Mapped[str] = mapped_column(Text)
    details: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    count: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    resolved_at: Mapped[datetime | None] = mapped_column()

    __table_args__ = (Index("ix_alert_open", "resolved_at", "kind"),)


class AlertRule(Base):
    """告警规则: an edited rule of one alert kind — on or off, its threshold (the unit is
    the kind's own, ``exchange.alertrules.RULES``), severity and notification channels.
    A kind without a row follows the settings (``exchange.alertrules.effective``)."""

    __tablename__ = "alert_rule"

    kind: Mapped[AlertKind] = mapped_column(str_enum(AlertKind, 30), primary_key=True)
    enabled: Mapped[bool] = mapped_column(default=True)
    threshold: Mapped[float | None] = mapped_column(Float)
    severity: Mapped[str] = mapped_column(String(10), default="error")  # warning | error
    webhook: Mapped[bool] = mapped_column(default=True)
    mail: Mapped[bool] = mapped_column(default=True)
    updated_by: Mapped[str] = mapped_column(String(100))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class CommandStatus(StrEnum):
    """前置机命令状态."""

    PENDING = "pending"
    SENT = "sent"
    DONE = "done"
    FAILED = "failed"
    EXPIRED = "expired"


class NodeCommand(Base):
    """A command from the hub to a node, delivered with every heartbeat until the node
    answers it (``sent`` only records that it went out at least once); the node answers
    each command id once. ``expired``: withdrawn unanswered (its reconciliation timed out)."""

    __tablename__ = "node_command"

    id: Mapped[int] = mapped_column(primary_key=True)
    node_id: Mapped[int] = mapped_column(ForeignKey("exchange_node.id"), index=True)
    command: Mapped[str] = mapped_column(String(30))  # resync | collect_schema | checksum
    task_id: Mapped[int | None] = mapped_column(ForeignKey("exchange_task.id"))
    args: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    status: Mapped[str] = mapped_column(
        String(12), default="pending"
    )  # pending | sent | done | failed | expired
    result: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    created_by: Mapped[str] = mapped_column(String(50))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    done_at: Mapped[datetime | None] = mapped_column()


exchange_domain_member = Table(
    "exchange_domain_member",
    Base.metadata,
    Column("domain_id", ForeignKey("exchange_domain.id", ondelete="CASCADE"), primary_key=True),
    Column("department_id", ForeignKey("department.id"), primary_key=True),
)


class ExchangeDomain(Base):
    """交换域: a named group of departments that exchange around one theme."""

    __tablename__ = "exchange_domain"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    departments: Mapped[list[Department]] = relationship(
        secondary=exchange_domain_member, lazy="selectin"
    )
