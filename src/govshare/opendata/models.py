"""Tables of the open-data portal."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import BigInteger, Date, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from govshare.db import Base, str_enum, utcnow
from govshare.security.models import Department


class OpenDownload(Base):
    """下载次数: how often an open dataset was downloaded in one format on one day (China
    time). A counter, not a log: no caller is recorded. ``resource_id`` carries no foreign
    key so that counts outlive an entry's withdrawal or removal (usage statistics)."""

    __tablename__ = "open_download"

    resource_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    format: Mapped[str] = mapped_column(String(8), primary_key=True)
    count: Mapped[int] = mapped_column(BigInteger, default=0)


class DemandStatus(StrEnum):
    """数据需求的状态."""

    OPEN = "open"  # 待答复
    ANSWERED = "answered"  # 已答复
    HIDDEN = "hidden"  # 已屏蔽 (by the platform: abuse, personal data, duplicates)

    @property
    def label(self) -> str:
        return {"open": "待答复", "answered": "已答复", "hidden": "已屏蔽"}[self.value]


class AnswerKind(StrEnum):
    """答复结论."""

    OPENED = "opened"  # 已开放: names the open dataset that answers it
    PLANNED = "planned"  # 计划开放
    DECLINED = "declined"  # 暂不开放, with the reason in the answer

    @property
    def label(self) -> str:
        return {"opened": "已开放", "planned": "计划开放", "declined": "暂不开放"}[self.value]


class OpenDemand(Base):
    """数据需求征集: data a member of the public asked to be opened, the votes it
    gathered and the department's public answer.

    The asker is anonymous: no account, no address. ``submitter`` is a keyed hash of the
    network address (for the rate limit, never shown); ``contact`` is read only by the
    department and the platform."""

    __tablename__ = "open_demand"

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(Text)
    department_id: Mapped[int | None] = mapped_column(ForeignKey("department.id"), index=True)
    nickname: Mapped[str] = mapped_column(String(30), default="")
    contact: Mapped[str] = mapped_column(String(100), default="")
    submitter: Mapped[str] = mapped_column(String(64), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    status: Mapped[DemandStatus] = mapped_column(
        str_enum(DemandStatus, 10), default=DemandStatus.OPEN, index=True
    )
    votes: Mapped[int] = mapped_column(Integer, default=0)
    answer_kind: Mapped[AnswerKind | None] = mapped_column(str_enum(AnswerKind, 10))
    answer: Mapped[str] = mapped_column(Text, default="")
    dataset_code: Mapped[str | None] = mapped_column(String(100))
    answered_by: Mapped[str | None] = mapped_column(String(50))
    answered_at: Mapped[datetime | None] = mapped_column()
    hidden_reason: Mapped[str] = mapped_column(String(200), default="")

    department: Mapped[Department | None] = relationship(lazy="joined")


class OpenDemandVote(Base):
    """One vote for a demand from one network address (keyed hash), at most once."""

    __tablename__ = "open_demand_vote"

    demand_id: Mapped[int] = mapped_column(
        ForeignKey("open_demand.id", ondelete="CASCADE"), primary_key=True
    )
    voter: Mapped[str] = mapped_column(String(64), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class OpenFile(Base):
    """开放文件: a file a department uploaded for one of its open entries (a PDF report,
    an XLSX it keeps by hand, a ZIP of shapefiles). The bytes live in the data dir under
    their SHA-256 (content-addressed, so a file uploaded twice is stored once); the row
    is what the portal lists. Withdrawn files stay listed for the department, never for
    the public."""

    __tablename__ = "open_file"

    id: Mapped[int] = mapped_column(primary_key=True)
    resource_id: Mapped[int] = mapped_column(ForeignKey("resource.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(String(500), default="")
    media_type: Mapped[str] = mapped_column(String(100))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    uploaded_by: Mapped[str] = mapped_column(String(50))
    uploaded_at: Mapped[datetime] = mapped_column(default=utcnow)
    withdrawn_at: Mapped[datetime | None] = mapped_column()


class ApplicationStatus(StrEnum):
    """有条件开放申请的状态."""

    PENDING = "pending"  # 待审核
    APPROVED = "approved"  # 已批准
    REFUSED = "refused"  # 未批准
    REVOKED = "revoked"  # 已撤销

    @property
    def label(self) -> str:
        return {
            "pending": "待审核",
            "approved": "已批准",
            "refused": "未批准",
            "revoked": "已撤销",
        }[self.value]


class OpenDeveloper(Base):
    """开发者: a member of the public who registered on the portal (email + password).
    Separate from the console's staff users: a developer never signs in to the console."""

    __tablename__ = "open_developer"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    confirmed_at: Mapped[datetime | None] = mapped_column()
    is_active: Mapped[bool] = mapped_column(default=True)


class DeveloperTokenPurpose(StrEnum):
    CONFIRM = "confirm"  # the one-time link that confirms the e-mail address
    SESSION = "session"  # a signed-in browser (cookie govshare_dev)


class DeveloperToken(Base):
    """A confirmation link or a portal session of a developer, stored only as the
    SHA-256 of the clear token (as the console's sessions are)."""

    __tablename__ = "open_developer_token"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    developer_id: Mapped[int] = mapped_column(
        ForeignKey("open_developer.id", ondelete="CASCADE"), index=True
    )
    purpose: Mapped[DeveloperTokenPurpose] = mapped_column(str_enum(DeveloperTokenPurpose, 10))
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column()
    expires_at: Mapped[datetime] = mapped_column()
    used_at: Mapped[datetime | None] = mapped_column()


class DeveloperMail(Base):
    """开放平台邮件发件箱: mail to developers (the confirmation link) and to the askers of
    data requests (数据需求) that left an e-mail address, when their request is answered;
    sent through the SMTP server by ``opendata.mailer`` (``sent_at`` set when handed
    over); it waits here while no SMTP server is set. In demo mode a developer's link is
    also written to the structured log."""

    __tablename__ = "developer_mail"

    id: Mapped[int] = mapped_column(primary_key=True)
    # One of the two: the developer, or the data request whose asker is told.
    developer_id: Mapped[int | None] = mapped_column(
        ForeignKey("open_developer.id", ondelete="CASCADE"), index=True
    )
    demand_id: Mapped[int | None] = mapped_column(
        ForeignKey("open_demand.id", ondelete="CASCADE"), index=True
    )
    to: Mapped[str] = mapped_column(String(254))
    subject: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column()
    sent_at: Mapped[datetime | None] = mapped_column()


class OpenApiKey(Base):
    """开发者密钥: a developer's named API key. Only a keyed hash of the secret is kept;
    ``prefix`` (the first characters) lets the developer tell keys apart. ``daily_quota``
    and ``per_minute`` override the settings' defaults when set (by the bureau)."""

    __tablename__ = "open_api_key"

    id: Mapped[int] = mapped_column(primary_key=True)
    developer_id: Mapped[int] = mapped_column(
        ForeignKey("open_developer.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(50))
    prefix: Mapped[str] = mapped_column(String(16))
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    daily_quota: Mapped[int | None] = mapped_column(BigInteger)
    per_minute: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column()
    revoked_at: Mapped[datetime | None] = mapped_column()


class OpenKeyUsage(Base):
    """A key's use on one day (China time): calls and rows served, and the calls of the
    minute it was last used in (``minute``: minutes since the epoch), which every hub
    process reads for the per-minute limit. One UPSERT per call."""

    __tablename__ = "open_key_usage"

    key_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    calls: Mapped[int] = mapped_column(BigInteger, default=0)
    rows: Mapped[int] = mapped_column(BigInteger, default=0)
    minute: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    minute_calls: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")


class OpenApplication(Base):
    """有条件开放申请: a developer asks for one conditional dataset's rows for one key;
    the providing department answers by ``due`` (working days); only an approved
    application lets that key read that dataset's rows and downloads."""

    __tablename__ = "open_application"
    __table_args__ = (Index("ix_open_application_resource_status", "resource_id", "status"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    developer_id: Mapped[int] = mapped_column(
        ForeignKey("open_developer.id", ondelete="CASCADE"), index=True
    )
    key_id: Mapped[int] = mapped_column(ForeignKey("open_api_key.id", ondelete="CASCADE"))
    resource_id: Mapped[int] = mapped_column(ForeignKey("resource.id", ondelete="CASCADE"))
    department_id: Mapped[int] = mapped_column(ForeignKey("department.id"), index=True)
    purpose: Mapped[str] = mapped_column(Text)
    status: Mapped[ApplicationStatus] = mapped_column(str_enum(ApplicationStatus, 10))
    reason: Mapped[str | None] = mapped_column(Text)
    due: Mapped[date] = mapped_column(Date)
    created_at: Mapped[datetime] = mapped_column()
    decided_at: Mapped[datetime | None] = mapped_column()
    decided_by: Mapped[str | None] = mapped_column(String(60))


class OpenRateWindow(Base):
    """限流计数 kept in the hub database, for hub processes on several machines (the
    scale-out deployment; ``opendata.windows.DatabaseWindows``): how many events of
    ``who`` (an address) a ``bucket`` counted in one fixed window. Scratch: ended windows
    are deleted as they pass."""

    __tablename__ = "open_rate_window"

    bucket: Mapped[str] = mapped_column(String(20), primary_key=True)
    who: Mapped[str] = mapped_column(String(100), primary_key=True)
    window_no: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    ends_at: Mapped[float] = mapped_column(Float, index=True)
    used: Mapped[int] = mapped_column(Integer)
