"""Tables of the base databases (基础库): their definitions, how far each source store
has been merged, and the conflicts (多元校核) found between sources.

The assembled records themselves live in the shared-store database next to the stores
they are built from (``bd_<id>`` and its history ``bd_<id>_hist``), so a base database
is served by the data services exactly like any shared store.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, String, Text, UniqueConstraint, false
from sqlalchemy.orm import Mapped, mapped_column, relationship

from govshare.catalog.models import Resource
from govshare.db import Base, str_enum, utcnow
from govshare.security.models import Department, JSONType


class BaseDatabase(Base):
    """基础库: records keyed by one item (公民身份号码, 统一社会信用代码), each item taken
    from exactly one authoritative shared store (一数一源), optionally checked against
    evidence stores.

    ``items`` is the validated definition: ``[{"item", "store_id", "column",
    "evidence": [{"store_id", "column"}], "unconditional"}]``; ``keys`` names the column
    of each source store that holds the base key (default: the store's key item).
    """

    __tablename__ = "base_database"

    id: Mapped[int] = mapped_column(primary_key=True)
    resource_id: Mapped[int] = mapped_column(ForeignKey("resource.id"), unique=True)
    store_id: Mapped[int | None] = mapped_column(ForeignKey("shared_store.id"))
    key_item: Mapped[str] = mapped_column(String(60))
    items: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    keys: Mapped[dict[str, str]] = mapped_column(JSONType, default=dict)
    table_name: Mapped[str] = mapped_column(String(63), unique=True)
    assembled_at: Mapped[datetime | None] = mapped_column()
    # Held by the hub process assembling the base (every process runs the feeder);
    # renewed after each batch, so a killed process's lease lapses within LEASE.
    lease_until: Mapped[datetime | None] = mapped_column()
    last_error: Mapped[str] = mapped_column(Text, default="")
    created_by: Mapped[str] = mapped_column(String(50))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    resource: Mapped[Resource] = relationship(lazy="joined")

    def store_ids(self) -> list[int]:
        """Every store the base reads, authoritative first, without repeats."""
        seen: dict[int, None] = {}
        for item in self.items:
            seen[int(item["store_id"])] = None
        for item in self.items:
            for ev in item.get("evidence", []):
                seen[int(ev["store_id"])] = None
        return list(seen)


class BaseSource(Base):
    """How far the packages of one source store have been merged into a base database:
    the re-merge after a feed reads the keys of packages ``merged_seq + 1 …``."""

    __tablename__ = "base_source"

    id: Mapped[int] = mapped_column(primary_key=True)
    base_id: Mapped[int] = mapped_column(ForeignKey("base_database.id"))
    store_id: Mapped[int] = mapped_column(ForeignKey("shared_store.id"))
    merged_seq: Mapped[int] = mapped_column(BigInteger, default=0)

    __table_args__ = (UniqueConstraint("base_id", "store_id"),)


class ConflictStatus(StrEnum):
    """多元校核冲突的状态."""

    OPEN = "open"  # 待处理
    ACCEPTED = "accepted"  # 已采纳对方值，待本部门更正并经交换到达
    CONFIRMED = "confirmed"  # 已确认本部门值 (归档)
    RESOLVED = "resolved"  # 来源已一致 (归档)

    @property
    def label(self) -> str:
        return {
            "open": "待处理",
            "accepted": "已采纳待更正",
            "confirmed": "已确认本部门值",
            "resolved": "已一致",
        }[self.value]


class BaseConflict(Base):
    """An evidence store disagrees with the authoritative value of one record's item,
    after normalisation. Owned by the authoritative department, which either adopts the
    other value (and corrects its own system: an accepted 异议 tracks it) or confirms its
    own with a reason. When the sources agree again the conflict resolves itself."""

    __tablename__ = "base_conflict"

    id: Mapped[int] = mapped_column(primary_key=True)
    base_id: Mapped[int] = mapped_column(ForeignKey("base_database.id"))
    record_key: Mapped[str] = mapped_column(String(200))
    item: Mapped[str] = mapped_column(String(60))
    department_id: Mapped[int] = mapped_column(ForeignKey("department.id"))
    value: Mapped[str | None] = mapped_column(Text)
    store_id: Mapped[int] = mapped_column(ForeignKey("shared_store.id"))
    seq: Mapped[int] = mapped_column(BigInteger, default=0)
    evidence_value: Mapped[str | None] = mapped_column(Text)
    evidence_store_id: Mapped[int] = mapped_column(ForeignKey("shared_store.id"))
    evidence_seq: Mapped[int] = mapped_column(BigInteger, default=0)
    # How the row keeps the key and the values (``sealed_conflicts``): sealed as the base
    # keeps its key and the item, under generation ``seal_key`` of the field key.
    key_sealed: Mapped[bool] = mapped_column(default=False, server_default=false())
    values_sealed: Mapped[bool] = mapped_column(default=False, server_default=false())
    seal_key: Mapped[int | None] = mapped_column()
    status: Mapped[ConflictStatus] = mapped_column(
        str_enum(ConflictStatus, 10), default=ConflictStatus.OPEN
    )
    reason: Mapped[str] = mapped_column(Text, default="")
    handled_by: Mapped[str | None] = mapped_column(String(50))
    objection_id: Mapped[int | None] = mapped_column(ForeignKey("sharing_objection.id"))
    opened_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    closed_at: Mapped[datetime | None] = mapped_column()

    department: Mapped[Department] = relationship(lazy="joined")

    __table_args__ = (
        Index("ix_base_conflict_lookup", "base_id", "record_key", "item"),
        Index("ix_base_conflict_department_status", "department_id", "status"),
    )
