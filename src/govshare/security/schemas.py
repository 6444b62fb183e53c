"""Shapes of identity and audit data in and out of the API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from govshare.ids import MAX_SEQ, Id
from govshare.security.models import DepartmentLevel
from govshare.security.roles import Permission, Role


class TokenRequest(BaseModel):
    username: str = Field(min_length=1, max_length=50)
    password: str = Field(min_length=1, max_length=200)
    totp: str | None = Field(
        default=None,
        pattern=r"^([0-9]{6}|[2-9A-HJKMNP-Za-hjkmnp-z]{5}-[2-9A-HJKMNP-Za-hjkmnp-z]{5})$",
        description="动态口令: 已启用动态口令的账号必填 (验证器应用显示的六位数字; "
        "手机丢失时可用一个恢复码 xxxxx-xxxxx 代替, 每个恢复码只能用一次)",
    )


class TokenPublic(BaseModel):
    access_token: str
    token_type: str = "bearer"  # noqa: S105 - OAuth token type
    expires_at: datetime


class MePublic(BaseModel):
    kind: str
    name: str
    display_name: str
    department_id: int | None
    department_name: str
    roles: list[str]
    permissions: list[str]


class DepartmentCreate(BaseModel):
    name: str = Field(min_length=2, max_length=100, description="部门全称")
    short_name: str = Field(default="", max_length=20, description="简称")
    credit_code: str = Field(min_length=18, max_length=18, description="统一社会信用代码")
    division_code: str = Field(min_length=6, max_length=6, description="行政区划代码 (GB/T 2260)")
    level: DepartmentLevel = DepartmentLevel.CITY
    parent_id: Id | None = None


class DepartmentPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    short_name: str
    credit_code: str
    division_code: str
    level: DepartmentLevel
    parent_id: int | None


class UserCreate(BaseModel):
    username: str = Field(pattern=r"^[A-Za-z0-9_.-]{3,50}$", description="登录名")
    password: str = Field(min_length=8, max_length=200)
    display_name: str = Field(min_length=1, max_length=50)
    department_id: Id
    roles: list[Role] = Field(min_length=1)
    email: str | None = Field(
        default=None, max_length=254, description="邮箱: 到期提醒等邮件发往此地址 (可不填)"
    )


class UserEmail(BaseModel):
    """用户邮箱: where the user's reminders are mailed; null or empty clears it."""

    email: str | None = Field(max_length=254)


class UserPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    username: str
    display_name: str
    department_id: int
    roles: list[str]
    is_active: bool
    locked_until: datetime | None
    totp_enabled: bool = Field(description="是否已启用动态口令 (双因素)")
    email: str | None = Field(default=None, description="邮箱 (到期提醒等邮件)")


class ApiClientCreate(BaseModel):
    name: str = Field(min_length=2, max_length=100, description="接入系统名称")
    department_id: Id
    permissions: list[Permission] | None = None
    rate_per_second: float | None = Field(
        default=None, gt=0, le=100_000, description="数据服务每秒调用上限 (缺省按平台设置)"
    )
    daily_quota: int | None = Field(
        default=None, ge=1, le=MAX_SEQ, description="数据服务每日键数额度 (缺省按平台设置)"
    )
    allowed_networks: list[Annotated[str, Field(max_length=64)]] = Field(
        default_factory=list,
        max_length=50,
        description="允许调用的 IP 地址或网段 (CIDR), 空表示不限",
    )


class ApiClientNetworks(BaseModel):
    allowed_networks: list[Annotated[str, Field(max_length=64)]] = Field(
        max_length=50, description="允许调用的 IP 地址或网段 (CIDR), 空表示不限"
    )


class PasswordChange(BaseModel):
    username: str = Field(min_length=1, max_length=50)
    old_password: str = Field(min_length=1, max_length=200)
    new_password: str = Field(min_length=1, max_length=200)


class ApiClientPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    app_key: str
    name: str
    department_id: int
    permissions: list[str]
    is_active: bool
    rate_per_second: float | None = None
    daily_quota: int | None = None
    allowed_networks: list[str] = Field(default_factory=list)


class ApiClientCreated(ApiClientPublic):
    secret: str = Field(description="仅在创建时返回一次")


class AuditEntryPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    seq: int
    at: datetime
    actor: str
    actor_kind: str
    department_id: int | None
    action: str
    object_type: str
    object_id: str | None
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    remote_addr: str | None
    alg: str
    prev_hash: str
    hash: str


class AuditPage(BaseModel):
    items: list[AuditEntryPublic]
    next_before_seq: int | None


class AuditHitPublic(BaseModel):
    """One finding of the audit search: an entry, or one data-service call inside a
    batch entry (``call_at``, ``nonce``, ``keys``, ``rows``, ``reason``). Metadata only:
    a change is shown by the names of the fields it touched (``changed``)."""

    model_config = ConfigDict(from_attributes=True)

    seq: int
    at: datetime
    actor: str
    actor_kind: str
    department_id: int | None
    action: str
    object_type: str
    object_id: str | None
    grant_id: str | None
    remote_addr: str | None
    request_id: str | None
    call_at: str | None
    nonce: str | None
    keys: int | None
    rows: int | None
    reason: str | None
    changed: list[str]
    kept_in: str = Field(description="保存位置: 归档名称, 或空串表示在线日志表")


class AuditSearchPage(BaseModel):
    items: list[AuditHitPublic]
    next_after_seq: int | None = Field(
        description="下一页从该序号之后开始 (作为 after_seq 传回); 最后一页为 null"
    )


class ChainReportPublic(BaseModel):
    entries: int
    intact: bool
    problems: list[dict[str, Any]]
