"""Identity and audit API: tokens, departments, users, API clients, the audit log."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request, status

from govshare.deps import (
    AuditReader,
    Authenticated,
    DepartmentAdmin,
    Public,
    SessionDep,
    SettingsDep,
    UserAdmin,
    bearer_token,
)
from govshare.errors import GovshareError
from govshare.ids import Id, Seq
from govshare.security import audit, audit_search, service
from govshare.security.errors import TotpNotEnabled
from govshare.security.models import ApiClient, SessionKind
from govshare.security.schemas import (
    ApiClientCreate,
    ApiClientCreated,
    ApiClientNetworks,
    ApiClientPublic,
    AuditEntryPublic,
    AuditHitPublic,
    AuditPage,
    AuditSearchPage,
    ChainReportPublic,
    DepartmentCreate,
    DepartmentPublic,
    MePublic,
    PasswordChange,
    TokenPublic,
    TokenRequest,
    UserCreate,
    UserEmail,
    UserPublic,
)

router = APIRouter(tags=["identity"])


@router.post("/auth/token", summary="用户名密码换取访问令牌")
def issue_token(
    body: TokenRequest, request: Request, db: SessionDep, settings: SettingsDep, _c: Public
) -> TokenPublic:
    remote = request.client.host if request.client else None
    try:
        user = service.authenticate(
            db, settings, body.username, body.password, remote, totp_code=body.totp
        )
    except GovshareError:
        db.commit()  # keep the failure count and its audit entry
        raise
    token, auth = service.open_session(db, settings, user, SessionKind.TOKEN)
    return TokenPublic(access_token=token, expires_at=auth.expires_at)


@router.post(
    "/auth/password",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="修改本人密码 (密码过期时也用它)",
)
def change_password(
    body: PasswordChange, request: Request, db: SessionDep, settings: SettingsDep, _c: Public
) -> None:
    remote = request.client.host if request.client else None
    try:
        service.change_own_password(
            db, settings, body.username, body.old_password, body.new_password, remote
        )
    except GovshareError:
        db.commit()  # keep the failure count and its audit entry
        raise


@router.post("/auth/revoke", status_code=status.HTTP_204_NO_CONTENT, summary="注销当前令牌")
def revoke_token(request: Request, db: SessionDep, caller: Authenticated) -> None:
    if token := bearer_token(request):
        service.close_session(db, token)
        audit.record(db, caller.actor, "auth.revoke", object_type="user", object_id=caller.user_id)


@router.put("/me/email", summary="设置本人邮箱")
def set_own_email(body: UserEmail, db: SessionDep, caller: Authenticated) -> UserPublic:
    """Where the caller's reminders are mailed (any signed-in user; not an API client,
    which answers ``forbidden``); null or an empty string clears it; audited."""
    user = service.own_account(db, caller)
    service.set_user_email(db, caller.actor, user, body.email)
    return UserPublic.model_validate(user)


@router.get("/me", summary="当前调用者")
def me(caller: Authenticated) -> MePublic:
    return MePublic(
        kind=caller.kind,
        name=caller.name,
        display_name=caller.display_name,
        department_id=caller.department_id,
        department_name=caller.department_name,
        roles=list(caller.roles),
        permissions=sorted(p.value for p in caller.permissions),
    )


@router.get("/departments", summary="部门列表")
def list_departments(db: SessionDep, _c: Authenticated) -> list[DepartmentPublic]:
    return [DepartmentPublic.model_validate(d) for d in service.list_departments(db)]


@router.post("/departments", status_code=status.HTTP_201_CREATED, summary="新增部门")
def add_department(
    body: DepartmentCreate, db: SessionDep, caller: DepartmentAdmin
) -> DepartmentPublic:
    dept = service.add_department(db, caller.actor, **body.model_dump())
    return DepartmentPublic.model_validate(dept)


@router.get("/users", summary="用户列表")
def list_users(db: SessionDep, _c: UserAdmin, department_id: Id | None = None) -> list[UserPublic]:
    return [UserPublic.model_validate(u) for u in service.list_users(db, department_id)]


@router.post("/users", status_code=status.HTTP_201_CREATED, summary="新增用户")
def add_user(body: UserCreate, db: SessionDep, caller: UserAdmin) -> UserPublic:
    user = service.add_user(db, caller.actor, **body.model_dump())
    return UserPublic.model_validate(user)


@router.post("/users/{user_id}/unlock", summary="解除账号锁定")
def unlock_user(user_id: Id, db: SessionDep, caller: UserAdmin) -> UserPublic:
    user = service.get_user(db, user_id)
    service.unlock_user(db, caller.actor, user)
    return UserPublic.model_validate(user)


@router.put("/users/{user_id}/email", summary="设置用户邮箱")
def set_user_email(user_id: Id, body: UserEmail, db: SessionDep, caller: UserAdmin) -> UserPublic:
    """Where the user's reminders (a collaboration task's 黄牌 and 红牌) are mailed; null or
    an empty string clears it. A malformed address answers ``invalid_input``."""
    user = service.get_user(db, user_id)
    service.set_user_email(db, caller.actor, user, body.email)
    return UserPublic.model_validate(user)


@router.post("/users/{user_id}/reset-totp", summary="重置动态口令")
def reset_totp(user_id: Id, db: SessionDep, caller: UserAdmin) -> UserPublic:
    """Switch off the account's one-time code (a lost phone): it enrols again at its
    next sign-in. Never the caller's own account (``separation_of_duties``); an account
    without one answers ``totp_not_enabled``."""
    user = service.get_user(db, user_id)
    if not service.reset_totp(db, caller.actor, user):
        raise TotpNotEnabled.about("该账号未启用动态口令，无需重置", "user_id", "未启用动态口令")
    return UserPublic.model_validate(user)


@router.get("/api-clients", summary="接入应用列表")
def list_api_clients(db: SessionDep, _c: UserAdmin) -> list[ApiClientPublic]:
    from sqlalchemy import select

    return [
        ApiClientPublic.model_validate(c)
        for c in db.scalars(select(ApiClient).order_by(ApiClient.id))
    ]


@router.post(
    "/api-clients", status_code=status.HTTP_201_CREATED, summary="登记接入应用 (返回一次性密钥)"
)
def add_api_client(
    body: ApiClientCreate, db: SessionDep, settings: SettingsDep, caller: UserAdmin
) -> ApiClientCreated:
    client, secret = service.add_api_client(
        db,
        settings,
        caller.actor,
        name=body.name,
        department_id=body.department_id,
        permissions=body.permissions,
        rate_per_second=body.rate_per_second,
        daily_quota=body.daily_quota,
        allowed_networks=body.allowed_networks,
    )
    return ApiClientCreated(**ApiClientPublic.model_validate(client).model_dump(), secret=secret)


@router.put(
    "/api-clients/{client_id}/allowed-networks", summary="设置接入应用允许调用的网络 (IP 白名单)"
)
def set_api_client_networks(
    client_id: Id, body: ApiClientNetworks, db: SessionDep, caller: UserAdmin
) -> ApiClientPublic:
    client = service.get_api_client(db, caller, client_id)
    service.set_api_client_networks(db, caller.actor, client, body.allowed_networks)
    return ApiClientPublic.model_validate(client)


@router.get("/audit", summary="审计日志 (按序号倒序, 键集分页)")
def list_audit(
    db: SessionDep,
    caller: AuditReader,
    actor: str | None = None,
    action: str | None = None,
    object_type: str | None = None,
    object_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    key_hash: Annotated[
        str | None,
        Query(
            pattern=r"^[0-9a-f]{16}$",
            description="数据服务调用的键哈希 (govshare audit key-hash 的输出): 查询过该键的调用",
        ),
    ] = None,
    before_seq: Seq | None = None,
    limit: int = Query(default=50, ge=1, le=500),
) -> AuditPage:
    flt = audit.AuditFilter(
        actor=actor,
        action=action,
        object_type=object_type,
        object_id=object_id,
        since=since,
        until=until,
        key_hash=key_hash,
    )
    rows = audit.list_entries(db, flt, before_seq=before_seq, limit=limit)
    items = [AuditEntryPublic.model_validate(r) for r in rows]
    audit.record(
        db, caller.actor, "audit.read", object_type="audit_entry", after={"returned": len(items)}
    )
    return AuditPage(items=items, next_before_seq=items[-1].seq if len(items) == limit else None)


def _utc(value: datetime | None) -> datetime | None:
    """A time without a zone is read as UTC (as ``/audit`` compares it)."""
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


@router.get("/audit/search", summary="审计检索 (在线日志与全部归档, 按序号正序, 键集分页)")
def search_audit(
    db: SessionDep,
    caller: AuditReader,
    actor: str | None = None,
    action: str | None = None,
    object_type: str | None = None,
    object_id: str | None = None,
    since: Annotated[datetime | None, Query(description="起始时间 (含; 不带时区按 UTC)")] = None,
    until: Annotated[datetime | None, Query(description="截止时间 (不含; 不带时区按 UTC)")] = None,
    key_hash: Annotated[
        str | None,
        Query(
            pattern=r"^[0-9a-f]{16}$",
            description="数据服务调用的键哈希 (govshare audit key-hash 的输出): 查询过该键的调用",
        ),
    ] = None,
    refusals: Annotated[
        bool, Query(description="只看拒绝 (数据服务拒绝、登录失败、退回的数据包)")
    ] = False,
    catalog: Annotated[bool, Query(description="只看目录变更")] = False,
    after_seq: Seq | None = None,
    limit: int = Query(default=100, ge=1, le=1000),
) -> AuditSearchPage:
    """What the console's 审计检索 finds, page by page: every entry that matches, and for
    a batch of data-service calls each matching call, from the archives (``kept_in``
    names the archive) and the live table alike. A page ends with the last call of an
    entry, so it can hold a few more than ``limit`` hits."""
    q = audit_search.SearchQuery(
        key_hash=key_hash,
        actor=actor,
        action=action,
        object_type=object_type,
        object_id=object_id,
        since=_utc(since),
        until=_utc(until),
        refusals=refusals,
        catalog=catalog,
    )
    hits, next_after = audit_search.page(
        db, audit.session_key(db), q, after_seq=after_seq or 0, limit=limit
    )
    audit.record(
        db,
        caller.actor,
        "audit.search",
        object_type="audit_entry",
        after={"returned": len(hits), "archives": True, **q.describe()},
    )
    return AuditSearchPage(
        items=[AuditHitPublic.model_validate(h) for h in hits], next_after_seq=next_after
    )


@router.get("/audit/verify", summary="校验审计日志哈希链")
def verify_audit(db: SessionDep, caller: AuditReader) -> ChainReportPublic:
    report = audit.verify_chain(db)
    audit.record(
        db, caller.actor, "audit.verify", object_type="audit_entry", after={"intact": report.intact}
    )
    return ChainReportPublic(
        entries=report.entries,
        intact=report.intact,
        problems=[{"seq": p.seq, "problem": p.problem} for p in report.problems],
    )
