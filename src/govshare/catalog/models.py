"""Tables of the catalog: classification, code tables, resources with their items,
versions and transitions, the demand catalog and the information-system inventory."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from govshare.catalog.codes import ResourceKind, ResourceStatus, SharingType
from govshare.db import Base, str_enum, utcnow
from govshare.security.models import Department, JSONType


class CodeEntry(Base):
    """One value of a code table (代码表): formats, update cycles, GB/T 2261.1 …"""

    __tablename__ = "code_entry"

    id: Mapped[int] = mapped_column(primary_key=True)
    table_name: Mapped[str] = mapped_column(String(40))
    code: Mapped[str] = mapped_column(String(40))
    label: Mapped[str] = mapped_column(String(100))
    sort_order: Mapped[int] = mapped_column(Integer, default=0)
    active: Mapped[bool] = mapped_column(default=True)

    __table_args__ = (UniqueConstraint("table_name", "code", name="uq_code_entry_table_code"),)


class Classification(Base):
    """A node of the classification tree: 类 (1 digit) / 项 (2) / 目 (3) / 细目 (any)."""

    __tablename__ = "classification"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(20), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    level: Mapped[int] = mapped_column(Integer)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("classification.id"), index=True)

    parent: Mapped[Classification | None] = relationship(remote_side=[id])

    __table_args__ = (CheckConstraint("level between 1 and 4", name="level_range"),)


class InformationSystem(Base):
    """政务信息系统: the inventory entry of a system that produces resources."""

    __tablename__ = "information_system"

    id: Mapped[int] = mapped_column(primary_key=True)
    department_id: Mapped[int] = mapped_column(ForeignKey("department.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    function: Mapped[str] = mapped_column(Text, default="")
    scope: Mapped[str] = mapped_column(String(200), default="")
    usage_frequency: Mapped[str] = mapped_column(String(20))
    approval: Mapped[str] = mapped_column(String(200), default="")
    funding: Mapped[str] = mapped_column(String(200), default="")
    network: Mapped[str] = mapped_column(String(20))
    in_use: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    department: Mapped[Department] = relationship(lazy="joined")

    __table_args__ = (
        UniqueConstraint("department_id", "name", name="uq_information_system_dept_name"),
    )


OPEN_CATALOG_COLUMNS = (
    "open_listed",
    "provider_department_id",
    "classification_id",
    "format",
    "update_cycle",
    "open_conditions",
    "listed",
    "published_version",
    "version",
    "status",
    "is_open",
    "updated_at",
)


class Resource(Base):
    """政务信息资源目录 entry: the working copy; published content lives in versions."""

    __tablename__ = "resource"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)
    sequence: Mapped[int] = mapped_column(Integer)
    classification_id: Mapped[int] = mapped_column(ForeignKey("classification.id"))
    kind: Mapped[ResourceKind] = mapped_column(str_enum(ResourceKind, 12))
    name: Mapped[str] = mapped_column(String(200))
    provider_department_id: Mapped[int] = mapped_column(ForeignKey("department.id"))
    abstract: Mapped[str] = mapped_column(Text)
    format: Mapped[str] = mapped_column(String(20))
    format_detail: Mapped[str] = mapped_column(String(100), default="")
    sharing_type: Mapped[SharingType] = mapped_column(str_enum(SharingType, 1))
    sharing_conditions: Mapped[str] = mapped_column(Text, default="")
    not_shared_basis: Mapped[str] = mapped_column(Text, default="")
    sharing_modes: Mapped[list[str]] = mapped_column(JSONType, default=list)
    is_open: Mapped[bool] = mapped_column(Boolean, default=False)
    open_conditions: Mapped[str] = mapped_column(Text, default="")
    update_cycle: Mapped[str] = mapped_column(String(20))
    publish_date: Mapped[date | None] = mapped_column(Date)
    related_codes: Mapped[list[str]] = mapped_column(JSONType, default=list)
    source_system_id: Mapped[int | None] = mapped_column(ForeignKey("information_system.id"))
    secrecy: Mapped[str] = mapped_column(String(20), default="public")
    extensions: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    status: Mapped[ResourceStatus] = mapped_column(
        str_enum(ResourceStatus, 24), default=ResourceStatus.DRAFT
    )
    version: Mapped[int] = mapped_column(Integer, default=1)
    published_version: Mapped[int | None] = mapped_column(Integer)
    # Denormalised for the search filter: published and not withdrawn (共享目录可见).
    listed: Mapped[bool] = mapped_column(Boolean, default=False)
    # Denormalised for the open catalog: listed, and its published version is open
    # (开放目录可见). Set with ``listed``; the open catalog still checks the published
    # snapshot, so this only narrows what it reads.
    open_listed: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_by: Mapped[str] = mapped_column(String(50))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    classification: Mapped[Classification] = relationship(lazy="joined")
    provider: Mapped[Department] = relationship(lazy="joined")
    source_system: Mapped[InformationSystem | None] = relationship()
    items: Mapped[list[InformationItem]] = relationship(
        order_by="InformationItem.position", cascade="all, delete-orphan", lazy="selectin"
    )

    __table_args__ = (
        UniqueConstraint("classification_id", "sequence", name="uq_resource_class_sequence"),
        Index("ix_resource_provider_status", "provider_department_id", "status"),
        Index("ix_resource_status_updated", "status", "updated_at"),
        Index("ix_resource_listed_updated", "listed", "updated_at"),
        # Covers what the open catalog counts, groups and orders by, so its totals and
        # facets over 10,000 datasets never read the entries' rows.
        Index("ix_resource_open_catalog", *OPEN_CATALOG_COLUMNS),
    )

    @property
    def sensitive_codes(self) -> set[str]:
        """The codes of the working copy's items marked 敏感."""
        return {it.code for it in self.items if it.sensitive}


class InformationItem(Base):
    """信息项: one field of a resource."""

    __tablename__ = "information_item"

    id: Mapped[int] = mapped_column(primary_key=True)
    resource_id: Mapped[int] = mapped_column(
        ForeignKey("resource.id", ondelete="CASCADE"), index=True
    )
    position: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(100))
    code: Mapped[str] = mapped_column(String(60))
    data_type: Mapped[str] = mapped_column(String(2))
    length: Mapped[int | None] = mapped_column(Integer)
    description: Mapped[str] = mapped_column(Text, default="")
    code_table: Mapped[str | None] = mapped_column(String(40))
    is_key: Mapped[bool] = mapped_column(Boolean, default=False)
    # 敏感信息项: personal or otherwise sensitive information. The portal never publishes
    # it, and a grant that shows it is approved masked unless the approver says otherwise.
    sensitive: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # 不予开放: the item is left out of everything the open-data portal publishes (its
    # name, its column in previews, downloads and the row API), whatever the entry says.
    open_withheld: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # 开放脱敏: how the portal shows the item's values (a ``rules.masking.MaskingRule``);
    # a masked item can be read but not filtered or sorted on.
    open_masking: Mapped[str] = mapped_column(String(20), default="none", server_default="none")

    __table_args__ = (
        UniqueConstraint("resource_id", "code", name="uq_information_item_resource_code"),
    )

    @property
    def withheld_from_portal(self) -> bool:
        return withheld_from_portal(
            {"open_withheld": self.open_withheld, "sensitive": self.sensitive}
        )


def withheld_from_portal(item: Mapping[str, Any]) -> bool:
    """Whether the open-data portal leaves an item out (an item of a version's snapshot,
    which carries either mark only when it is set): 不予开放, or 敏感 whatever 不予开放
    says."""
    return bool(item.get("open_withheld") or item.get("sensitive"))


class ResourceVersion(Base):
    """An immutable snapshot of a resource's content; one per saved revision."""

    __tablename__ = "resource_version"

    id: Mapped[int] = mapped_column(primary_key=True)
    resource_id: Mapped[int] = mapped_column(ForeignKey("resource.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    snapshot: Mapped[dict[str, Any]] = mapped_column(JSONType)
    created_by: Mapped[str] = mapped_column(String(50))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    note: Mapped[str] = mapped_column(Text, default="")

    __table_args__ = (
        UniqueConstraint("resource_id", "version", name="uq_resource_version_resource_version"),
    )


class ResourceTransition(Base):
    """One step of the lifecycle, with who took it and why (审核意见)."""

    __tablename__ = "resource_transition"

    id: Mapped[int] = mapped_column(primary_key=True)
    resource_id: Mapped[int] = mapped_column(
        ForeignKey("resource.id", ondelete="CASCADE"), index=True
    )
    action: Mapped[str] = mapped_column(String(30))
    from_status: Mapped[str] = mapped_column(String(24))
    to_status: Mapped[str] = mapped_column(String(24))
    version: Mapped[int] = mapped_column(Integer)
    actor: Mapped[str] = mapped_column(String(50))
    reason: Mapped[str] = mapped_column(Text, default="")
    at: Mapped[datetime] = mapped_column(default=utcnow)


class Demand(Base):
    """需求目录 entry: data a department needs and does not have."""

    __tablename__ = "demand"

    id: Mapped[int] = mapped_column(primary_key=True)
    department_id: Mapped[int] = mapped_column(ForeignKey("department.id"), index=True)
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text)
    wanted_items: Mapped[str] = mapped_column(Text, default="")
    purpose: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(12), default="open")
    created_by: Mapped[str] = mapped_column(String(50))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    department: Mapped[Department] = relationship(lazy="joined")
    responses: Mapped[list[DemandResponse]] = relationship(
        order_by="DemandResponse.id", cascade="all, delete-orphan", lazy="selectin"
    )


class DemandResponse(Base):
    """A department's answer to a demand, pointing at a resource that serves it."""

    __tablename__ = "demand_response"

    id: Mapped[int] = mapped_column(primary_key=True)
    demand_id: Mapped[int] = mapped_column(ForeignKey("demand.id", ondelete="CASCADE"), index=True)
    resource_id: Mapped[int] = mapped_column(ForeignKey("resource.id"))
    department_id: Mapped[int] = mapped_column(ForeignKey("department.id"))
    note: Mapped[str] = mapped_column(Text, default="")
    created_by: Mapped[str] = mapped_column(String(50))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    resource: Mapped[Resource] = relationship(lazy="joined")
    department: Mapped[Department] = relationship(lazy="joined")


class ImportJobStatus(StrEnum):
    """导入任务状态."""

    QUEUED = "queued"
    CHECKING = "checking"
    WRITING = "writing"
    DONE = "done"
    FAILED = "failed"

    @property
    def label(self) -> str:
        return {
            "queued": "排队中",
            "checking": "校验中",
            "writing": "写入中",
            "done": "已完成",
            "failed": "未导入",
        }[self.value]


class ImportJob(Base):
    """导入任务: one uploaded spreadsheet, checked without holding the write lock and
    stored in short transactions; a repeated upload of the same file (or with the same
    idempotency key) by the same department returns this job instead of importing again."""

    __tablename__ = "catalog_import_job"

    id: Mapped[int] = mapped_column(primary_key=True)
    department_id: Mapped[int | None] = mapped_column(ForeignKey("department.id"))
    created_by: Mapped[str] = mapped_column(String(50))
    filename: Mapped[str] = mapped_column(String(200))
    digest: Mapped[str] = mapped_column(String(64))
    idempotency_key: Mapped[str | None] = mapped_column(String(100))
    status: Mapped[ImportJobStatus] = mapped_column(
        str_enum(ImportJobStatus, 10), default=ImportJobStatus.QUEUED
    )
    rows: Mapped[int] = mapped_column(Integer, default=0)
    entries_total: Mapped[int] = mapped_column(Integer, default=0)
    entries_done: Mapped[int] = mapped_column(Integer, default=0)
    # Stored chunk by chunk with the entries themselves, so a job cut short (a crash,
    # a later chunk refused) can take back exactly what it stored.
    resource_ids: Mapped[list[int]] = mapped_column(JSONType, default=list)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    runner: Mapped[str | None] = mapped_column(String(120))  # host:pid:token
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column()

    __table_args__ = (Index("ix_catalog_import_job_department_digest", "department_id", "digest"),)


class ChangeKind(StrEnum):
    """变更类型: what changed and so starts the catalog's update deadline."""

    DUTY = "duty"
    SYSTEM = "system"

    @property
    def label(self) -> str:
        return {"duty": "职责调整", "system": "系统变更"}[self.value]


class DepartmentDuty(Base):
    """部门职责事项: one duty a department declares (三定方案, 权责清单).

    ``declared_on`` and ``withdrawn_on`` are Beijing dates; a duty in force has no
    ``withdrawn_on``. Withdrawn duties stay, with their links and events, as evidence."""

    __tablename__ = "department_duty"

    id: Mapped[int] = mapped_column(primary_key=True)
    department_id: Mapped[int] = mapped_column(ForeignKey("department.id"), index=True)
    code: Mapped[str] = mapped_column(String(50))
    name: Mapped[str] = mapped_column(String(200))
    basis: Mapped[str] = mapped_column(Text, default="")
    declared_on: Mapped[date] = mapped_column(Date)
    withdrawn_on: Mapped[date | None] = mapped_column(Date)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    department: Mapped[Department] = relationship(lazy="joined")
    resources: Mapped[list[Resource]] = relationship(
        secondary="duty_resource", order_by="Resource.code", lazy="selectin", viewonly=True
    )

    __table_args__ = (
        UniqueConstraint("department_id", "code", name="uq_department_duty_dept_code"),
    )


class DutyResource(Base):
    """职责—目录关联: a catalog entry of the department that serves the duty."""

    __tablename__ = "duty_resource"

    duty_id: Mapped[int] = mapped_column(
        ForeignKey("department_duty.id", ondelete="CASCADE"), primary_key=True
    )
    resource_id: Mapped[int] = mapped_column(
        ForeignKey("resource.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    linked_at: Mapped[datetime] = mapped_column(default=utcnow)


class CatalogChangeEvent(Base):
    """职责或信息系统变更: a change that starts the catalog's update deadline
    (``catalog_due``, the N-th working day after ``changed_on``). Never edited or
    deleted; a wrong one is superseded by recording another."""

    __tablename__ = "catalog_change_event"

    id: Mapped[int] = mapped_column(primary_key=True)
    department_id: Mapped[int] = mapped_column(ForeignKey("department.id"), index=True)
    kind: Mapped[ChangeKind] = mapped_column(str_enum(ChangeKind, 10))
    duty_id: Mapped[int | None] = mapped_column(
        ForeignKey("department_duty.id", ondelete="CASCADE"), index=True
    )
    system_id: Mapped[int | None] = mapped_column(
        ForeignKey("information_system.id", ondelete="CASCADE"), index=True
    )
    changed_on: Mapped[date] = mapped_column(Date)
    catalog_due: Mapped[date] = mapped_column(Date, index=True)
    # 预计: a day counted falls in a year whose holiday schedule is not known yet.
    catalog_due_provisional: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=false()
    )
    description: Mapped[str] = mapped_column(Text)
    recorded_by: Mapped[str] = mapped_column(String(50))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    duty: Mapped[DepartmentDuty | None] = relationship(lazy="joined")
    system: Mapped[InformationSystem | None] = relationship(lazy="joined")


class CatalogRevision(Base):
    """目录修订号: one row whose ``n`` rises with every write to the tables an open-data
    search reads (entries, their versions and transitions, departments, classification)
    and to the search index, so a search can keep what it computed until the next
    change (``catalog.revision``). ``generation`` is drawn when the database is made, so
    two databases never share a revision.

    On SQLite the database's own triggers raise it (every writer, in its transaction).
    On PostgreSQL ``n`` stays 0 and the revision is kept in ``CatalogChange``: a counter
    row written by every catalog transaction would make them wait on each other, and
    deadlock."""

    __tablename__ = "catalog_revision"

    id: Mapped[int] = mapped_column(primary_key=True)
    n: Mapped[int] = mapped_column(BigInteger, default=0)
    generation: Mapped[str] = mapped_column(String(32))


class CatalogChange(Base):
    """目录变更记录 (PostgreSQL): a row per statement that wrote a table an open-data
    search reads, inserted by that table's statement trigger in the writer's transaction
    (rows of a sequence: writers never wait on each other). The revision is the sum of
    the weights a reader sees: it rises at every commit that wrote the catalog, and a
    later snapshot sees every row an earlier one saw, so one sum names one state.
    Compaction replaces old rows by one row of their summed weight, leaving the sum as
    it was."""

    __tablename__ = "catalog_change"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True
    )
    weight: Mapped[int] = mapped_column(BigInteger, default=1, server_default="1")
