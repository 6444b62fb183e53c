"""The operations domain's tables: the record of every backup (备份记录)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from govshare.db import Base, str_enum, utcnow


class BackupStatus(StrEnum):
    """备份状态."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"

    @property
    def label(self) -> str:
        return {"running": "进行中", "succeeded": "成功", "failed": "失败"}[self.value]


class BackupRun(Base):
    """备份记录: one ``govshare backup`` or scheduled backup, kept for the backup-age
    alert and the operations dashboard. The backup itself is a directory elsewhere."""

    __tablename__ = "backup_run"

    id: Mapped[int] = mapped_column(primary_key=True)
    trigger: Mapped[str] = mapped_column(String(20))  # manual | schedule
    dest: Mapped[str] = mapped_column(Text)
    status: Mapped[BackupStatus] = mapped_column(str_enum(BackupStatus, 20))
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column()
    items: Mapped[int] = mapped_column(Integer, default=0)
    bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    audit_seq: Mapped[int | None] = mapped_column(BigInteger)
    message: Mapped[str] = mapped_column(Text, default="")

    __table_args__ = (Index("ix_backup_run_status_finished", "status", "finished_at"),)
