"""Tables of identity and audit: departments, users, sessions, API clients, the audit log."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, Integer, String, Text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column, relationship

from govshare.db import Base, str_enum, utcnow

JSONType = JSON().with_variant(JSONB(), "postgresql")


class DepartmentLevel(StrEnum):
    """行政层级."""

    PROVINCE = "province"
    CITY = "city"
    DISTRICT = "district"

    @property
    def label(self) -> str:
        return {"province": "省级", "city": "市级", "district": "区县级"}[self.value]


class Department(Base):
    """政务部门, identified by its unified social credit code (统一社会信用代码)."""

    __tablename__ = "department"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    short_name: Mapped[str] = mapped_column(String(20))
    credit_code: Mapped[str] = mapped_column(String(18), unique=True)
    division_code: Mapped[str] = mapped_column(String(6))
    level: Mapped[DepartmentLevel] = mapped_column(
        str_enum(DepartmentLevel, 10), default=DepartmentLevel.CITY
    )
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("department.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    parent: Mapped[Department | None] = relationship(remote_side=[id])


class User(Base):
    __tablename__ = "app_user"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(50), unique=True)
    display_name: Mapped[str] = mapped_column(String(50))
    # Where the platform mails the user's reminders (到期提醒); none: the console only.
    email: Mapped[str | None] = mapped_column(String(254))
    password_hash: Mapped[str] = mapped_column(String(200))
    department_id: Mapped[int] = mapped_column(ForeignKey("department.id"), index=True)
    roles: Mapped[list[str]] = mapped_column(JSONType, default=list)
    is_active: Mapped[bool] = mapped_column(default=True)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column()
    # When the password was last set: it expires password_max_age_days later.
    password_changed_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Hashes of the previous passwords (newest first), which may not be set again.
    password_history: Mapped[list[str]] = mapped_column(JSONType, default=list)
    # 动态口令 (TOTP): the shared secret, sealed with the hub secret; the last time step
    # a code was accepted for (a code is good once); when it was switched on.
    totp_secret: Mapped[str | None] = mapped_column(String(200))
    totp_last_step: Mapped[int | None] = mapped_column(BigInteger)
    totp_enabled_at: Mapped[datetime | None] = mapped_column()
    # 恢复码: the keyed hashes of the unused recovery codes (``totp.recovery_hash``).
    totp_recovery: Mapped[list[str] | None] = mapped_column(JSONType)

    department: Mapped[Department] = relationship(lazy="joined")

    @property
    def totp_enabled(self) -> bool:
        """Whether the account signs in with a one-time code (已启用动态口令)."""
        return self.totp_secret is not None


class UserMail(Base):
    """用户邮件发件箱: reminders mailed to platform users (a collaboration task's handlers
    when its card changes), sent through the SMTP server by ``govshare.mail.Outbox``
    (``sent_at`` set when handed over); they wait here while no SMTP server is set."""

    __tablename__ = "user_mail"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("app_user.id", ondelete="CASCADE"), index=True)
    to: Mapped[str] = mapped_column(String(254))
    subject: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(index=True)


class SessionKind(StrEnum):
    CONSOLE = "console"
    TOKEN = "token"  # noqa: S105 - a session kind, not a secret


class AuthSession(Base):
    """A console session or a bearer token; stored as the token's hash only."""

    __tablename__ = "auth_session"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("app_user.id", ondelete="CASCADE"), index=True)
    kind: Mapped[SessionKind] = mapped_column(str_enum(SessionKind, 10))
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column()
    revoked: Mapped[bool] = mapped_column(default=False)


class ApiClient(Base):
    """A department system's credentials (应用接入凭证): app key + sealed secret."""

    __tablename__ = "api_client"

    id: Mapped[int] = mapped_column(primary_key=True)
    app_key: Mapped[str] = mapped_column(String(40), unique=True)
    secret_sealed: Mapped[str] = mapped_column(Text)
    name: Mapped[str] = mapped_column(String(100))
    department_id: Mapped[int] = mapped_column(ForeignKey("department.id"), index=True)
    permissions: Mapped[list[str]] = mapped_column(JSONType, default=list)
    is_active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Data-service limits of this client; None takes the deployment's defaults.
    rate_per_second: Mapped[float | None] = mapped_column()
    daily_quota: Mapped[int | None] = mapped_column(BigInteger)
    # Networks (CIDR) the client may call from (IP 白名单); empty: anywhere.
    allowed_networks: Mapped[list[str]] = mapped_column(JSONType, default=list)

    department: Mapped[Department] = relationship(lazy="joined")


class ApiNonce(Base):
    """Nonces seen within the timestamp window; a second use is a replay."""

    __tablename__ = "api_nonce"

    app_key: Mapped[str] = mapped_column(String(40), primary_key=True)
    nonce: Mapped[str] = mapped_column(String(64), primary_key=True)
    seen_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class LoginFailure(Base):
    """One failed sign-in from a client address (登录失败记录), kept for the throttling
    window: too many from one address refuse its further sign-ins for a while, without
    counting against the accounts it tried."""

    __tablename__ = "login_failure"

    id: Mapped[int] = mapped_column(primary_key=True)
    remote_addr: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column()

    __table_args__ = (
        Index("ix_login_failure_remote_addr_at", "remote_addr", "at"),
        Index("ix_login_failure_at", "at"),
    )


class AuditEntry(Base):
    """One line of the tamper-evident audit log (审计日志), hash-chained by ``seq``."""

    __tablename__ = "audit_entry"

    seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    at: Mapped[datetime] = mapped_column()
    actor: Mapped[str] = mapped_column(String(60))
    actor_kind: Mapped[str] = mapped_column(String(10))
    department_id: Mapped[int | None] = mapped_column(Integer)
    action: Mapped[str] = mapped_column(String(60))
    object_type: Mapped[str] = mapped_column(String(40))
    object_id: Mapped[str | None] = mapped_column(String(80))
    before: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    remote_addr: Mapped[str | None] = mapped_column(String(64))
    alg: Mapped[str] = mapped_column(String(16))
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))
    # 请求编号: the HTTP request that wrote the entry (X-Request-ID); hashed when present.
    request_id: Mapped[str | None] = mapped_column(String(64))

    __table_args__ = (
        Index("ix_audit_entry_request_id", "request_id"),
        Index("ix_audit_entry_object", "object_type", "object_id"),
        Index("ix_audit_entry_actor_at", "actor", "at"),
    )


class AuditHead(Base):
    """The chain's head: the newest seq and hash. A single row, locked by every append."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), default=0)
    hash: Mapped[str] = mapped_column(String(64), default="0" * 64)


class AuditArchive(Base):
    """An archived, pruned range of the audit chain (审计归档): the signed archive files
    ``DATA_DIR/audit/archive/NAME.jsonl.gz`` and ``NAME.manifest.json`` hold its entries;
    the row records the range and the manifest's digest so that a replaced or removed
    archive is found. Written in the transaction that prunes the range's rows."""

    __tablename__ = "audit_archive"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(80), unique=True)
    first_seq: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), unique=True
    )
    last_seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"))
    entries: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"))
    prev_hash: Mapped[str] = mapped_column(String(64))
    last_hash: Mapped[str] = mapped_column(String(64))
    first_at: Mapped[datetime] = mapped_column()
    last_at: Mapped[datetime] = mapped_column()
    manifest_digest: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
