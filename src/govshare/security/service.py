"""Rules of identity: departments, users, sign-in with lockout, sessions, API clients.

Services take a SQLAlchemy session and never know about HTTP.
"""

from __future__ import annotations

import hmac
import ipaddress
import math
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, NamedTuple, NoReturn

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from cryptography.exceptions import InvalidTag
from sqlalchemy import Connection, bindparam, delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from govshare.config import Settings
from govshare.db import PerDialect, Prepared, utcnow
from govshare.errors import Forbidden, NotFound, SeparationOfDuties
from govshare.ids import MAX_SEQ
from govshare.mail import normal_address
from govshare.rules.validators import credit_code_problem, division_code_problem
from govshare.security import audit, passwords, totp
from govshare.security.audit import Actor
from govshare.security.crypto import (
    constant_time_equal,
    hmac_sha256,
    seal,
    string_to_sign,
    token_hash,
    unseal,
)
from govshare.security.errors import (
    AccountLocked,
    AddressNotAllowed,
    BadCredentials,
    BadSignature,
    DepartmentNotFound,
    DuplicateDepartment,
    DuplicateUser,
    InvalidInput,
    LoginThrottled,
    PasswordExpired,
    ReplayedRequest,
    TotpEnrolmentRequired,
    TotpRequired,
    UserNotFound,
)
from govshare.security.models import (
    ApiClient,
    ApiNonce,
    AuditEntry,
    AuthSession,
    Department,
    DepartmentLevel,
    LoginFailure,
    SessionKind,
    User,
    UserMail,
)
from govshare.security.roles import CLIENT_PERMISSIONS, Permission, Role, permissions_for

_hasher = PasswordHasher()


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling, resolved from a session cookie, a bearer token or a signature."""

    kind: str  # "user" | "client" | "anonymous"
    name: str
    department_id: int | None
    permissions: frozenset[Permission]
    user_id: int | None = None
    client_id: int | None = None
    roles: tuple[str, ...] = ()
    csrf_token: str | None = None
    remote_addr: str | None = None
    display_name: str = ""
    department_name: str = ""
    extra: dict[str, str] = field(default_factory=dict)

    def can(self, permission: Permission) -> bool:
        return permission in self.permissions

    @property
    def is_admin(self) -> bool:
        return Role.PLATFORM_ADMIN in self.roles

    @property
    def actor(self) -> Actor:
        return Actor(
            name=self.name,
            kind=self.kind,
            department_id=self.department_id,
            remote_addr=self.remote_addr,
        )


ANONYMOUS = Principal(
    kind="anonymous",
    name="anonymous",
    department_id=None,
    permissions=frozenset({Permission.PUBLIC}),
)


# -- departments ---------------------------------------------------------------------


def _department_snapshot(dept: Department) -> dict[str, object]:
    return {
        "name": dept.name,
        "short_name": dept.short_name,
        "credit_code": dept.credit_code,
        "division_code": dept.division_code,
        "level": dept.level,
        "parent_id": dept.parent_id,
    }


def add_department(
    session: Session,
    actor: Actor,
    *,
    name: str,
    short_name: str,
    credit_code: str,
    division_code: str,
    level: DepartmentLevel = DepartmentLevel.CITY,
    parent_id: int | None = None,
) -> Department:
    problems = []
    if not name.strip():
        problems.append({"field": "name", "message": "部门名称不能为空"})
    if msg := credit_code_problem(credit_code):
        problems.append({"field": "credit_code", "message": msg})
    if msg := division_code_problem(division_code):
        problems.append({"field": "division_code", "message": msg})
    if parent_id is not None and session.get(Department, parent_id) is None:
        problems.append({"field": "parent_id", "message": f"上级部门 {parent_id} 不存在"})
    if problems:
        raise InvalidInput("部门信息不正确", details=problems)
    if session.scalar(
        select(Department.id).where(
            (Department.name == name) | (Department.credit_code == credit_code)
        )
    ):
        raise DuplicateDepartment(f"部门名称或统一社会信用代码已存在: {name} / {credit_code}")
    dept = Department(
        name=name.strip(),
        short_name=short_name.strip() or name.strip(),
        credit_code=credit_code,
        division_code=division_code,
        level=DepartmentLevel(level),
        parent_id=parent_id,
    )
    session.add(dept)
    session.flush()
    audit.record(
        session,
        actor,
        "department.add",
        object_type="department",
        object_id=dept.id,
        after=_department_snapshot(dept),
    )
    return dept


def get_department(session: Session, department_id: int) -> Department:
    dept = session.get(Department, department_id)
    if dept is None:
        raise DepartmentNotFound(f"部门 {department_id} 不存在")
    return dept


def list_departments(session: Session) -> list[Department]:
    return list(session.scalars(select(Department).order_by(Department.id)))


# -- users ---------------------------------------------------------------------------


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def _check_password(
    session: Session,
    password: str,
    *,
    username: str,
    field: str = "password",
    user: User | None = None,
) -> None:
    """The deployment's password policy; for a change, also the user's current and
    remembered passwords. Every rule broken is listed at once."""
    policy = passwords.policy_of(session)
    found = policy.problems(password, username=username)
    known = [user.password_hash, *user.password_history] if user is not None else []
    if known and not found and policy.reused(_hasher, password, known):
        found.append(f"新密码不得与当前密码或最近{policy.history}次用过的密码相同")
    if found:
        raise InvalidInput(
            "；".join(found), details=[{"field": field, "message": m} for m in found]
        )


def add_user(
    session: Session,
    actor: Actor,
    *,
    username: str,
    password: str,
    display_name: str,
    department_id: int,
    roles: list[Role],
    email: str | None = None,
) -> User:
    address = user_address(email)
    _check_password(session, password, username=username)
    get_department(session, department_id)
    if not roles:
        raise InvalidInput(
            "至少指定一个角色", details=[{"field": "roles", "message": "至少指定一个角色"}]
        )
    if session.scalar(select(User.id).where(User.username == username)):
        raise DuplicateUser(f"用户名已存在: {username}")
    user = User(
        username=username,
        display_name=display_name,
        password_hash=hash_password(password),
        department_id=department_id,
        roles=[Role(r).value for r in roles],
        email=address,
    )
    session.add(user)
    try:
        session.flush()
    except IntegrityError as exc:  # a concurrent insert of the same name
        raise DuplicateUser(f"用户名已存在: {username}") from exc
    audit.record(
        session,
        actor,
        "user.add",
        object_type="user",
        object_id=user.id,
        after={
            "username": username,
            "department_id": department_id,
            "roles": user.roles,
            "email": address,
        },
    )
    return user


def user_address(email: str | None) -> str | None:
    """A user's e-mail address as kept (lower case), None for none given; a malformed
    one raises ``InvalidInput`` on the field ``email``."""
    if email is None or not email.strip():
        return None
    address = normal_address(email)
    if address is None:
        raise InvalidInput.about(
            "邮箱地址格式不正确 (invalid e-mail address)", "email", "邮箱地址格式不正确"
        )
    return address


def own_account(session: Session, principal: Principal) -> User:
    """The caller's own user account; an API client has none (``Forbidden``)."""
    if principal.kind != "user" or principal.user_id is None:
        raise Forbidden("只有用户账号可以设置邮箱 (only user accounts have an e-mail address)")
    return get_user(session, principal.user_id)


def set_user_email(session: Session, actor: Actor, user: User, email: str | None) -> None:
    """Set or clear where the user's reminders are mailed (用户邮箱); audited."""
    address = user_address(email)
    if address == user.email:
        return
    before = {"email": user.email}
    user.email = address
    audit.record(
        session,
        actor,
        "user.email",
        object_type="user",
        object_id=user.id,
        before=before,
        after={"email": address},
    )


def get_user(session: Session, user_id: int) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise UserNotFound(f"用户 {user_id} 不存在")
    return user


def add_platform_admin(
    session: Session,
    actor: Actor,
    *,
    username: str,
    password: str,
    display_name: str,
    credit_code: str | None = None,
    department_name: str | None = None,
    division_code: str | None = None,
) -> User:
    """The first (or another) 平台管理员 of a production hub (``govshare users
    create-admin``). Its department is the one with ``credit_code``, made from
    ``department_name`` and ``division_code`` when the hub does not have it yet; without
    ``credit_code``, the hub's only department."""
    if credit_code is None:
        if department_name or division_code:
            raise InvalidInput(
                "新建部门还需要统一社会信用代码",
                details=[
                    {"field": "department", "message": "请用 --department 给出统一社会信用代码"}
                ],
            )
        ids = list(session.scalars(select(Department.id).limit(2)))
        if len(ids) != 1:
            message = (
                "平台还没有部门: 请用 --department 统一社会信用代码 --department-name 名称 "
                "--division-code 行政区划代码 新建管理员所在部门"
                if not ids
                else "平台已有多个部门: 请用 --department 统一社会信用代码 指定管理员所在部门"
            )
            raise InvalidInput(message, details=[{"field": "department", "message": message}])
        department_id = ids[0]
    else:
        dept = session.scalar(select(Department).where(Department.credit_code == credit_code))
        if dept is None:
            if not department_name or not division_code:
                message = (
                    f"统一社会信用代码为 {credit_code} 的部门不存在: 新建它还需要 "
                    "--department-name 与 --division-code"
                )
                raise InvalidInput(message, details=[{"field": "department", "message": message}])
            dept = add_department(
                session,
                actor,
                name=department_name,
                short_name=department_name[:20],
                credit_code=credit_code,
                division_code=division_code,
            )
        department_id = dept.id
    return add_user(
        session,
        actor,
        username=username,
        password=password,
        display_name=display_name,
        department_id=department_id,
        roles=[Role.PLATFORM_ADMIN],
    )


def get_user_by_username(session: Session, username: str) -> User:
    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        raise UserNotFound(f"用户不存在: {username}")
    return user


def list_users(session: Session, department_id: int | None = None) -> list[User]:
    q = select(User).order_by(User.id)
    if department_id is not None:
        q = q.where(User.department_id == department_id)
    return list(session.scalars(q))


def set_password(
    session: Session, actor: Actor, user: User, password: str, *, field: str = "password"
) -> None:
    """Give ``user`` a new password under the policy (not one of the current and
    remembered ones); it counts from now for expiry. Audited, without the password."""
    _check_password(session, password, username=user.username, field=field, user=user)
    policy = passwords.policy_of(session)
    user.password_history = policy.remembered(user.password_hash, list(user.password_history))
    user.password_hash = hash_password(password)
    user.password_changed_at = utcnow()
    user.failed_logins = 0
    user.locked_until = None
    audit.record(session, actor, "user.set_password", object_type="user", object_id=user.id)


def change_own_password(
    session: Session,
    settings: Settings,
    username: str,
    old_password: str,
    new_password: str,
    remote_addr: str | None,
) -> User:
    """A user changes their own password (修改密码), also when it has expired: the old
    one is checked as a sign-in is (throttling, lockout, audit), then the new one is
    set under the policy. Failures are committed by the caller, as for ``authenticate``."""
    user = authenticate(session, settings, username, old_password, remote_addr, allow_expired=True)
    actor = Actor(
        name=user.username, kind="user", department_id=user.department_id, remote_addr=remote_addr
    )
    set_password(session, actor, user, new_password, field="new_password")
    return user


def unlock_user(session: Session, actor: Actor, user: User) -> None:
    """Lift an account's lockout (解除锁定) and forget its failed sign-ins; audited."""
    before = {
        "locked_until": user.locked_until.isoformat() if user.locked_until else None,
        "failed_logins": user.failed_logins,
    }
    user.failed_logins = 0
    user.locked_until = None
    audit.record(
        session,
        actor,
        "user.unlock",
        object_type="user",
        object_id=user.id,
        before=before,
        after={"locked_until": None, "failed_logins": 0},
    )


def enable_totp(
    session: Session, settings: Settings, user: User, secret: str, code: str, actor: Actor
) -> list[str]:
    """Switch the second factor on (启用动态口令) once ``code`` proves the user's app holds
    ``secret``; audited. Returns the recovery codes (恢复码), to be shown this once. A
    wrong code raises ``InvalidInput`` naming the field."""
    now = utcnow()
    if user.totp_secret:
        raise InvalidInput(
            "该账号已启用动态口令；更换手机请联系平台管理员重置",
            details=[{"field": "totp", "message": "该账号已启用动态口令"}],
        )
    step = totp.matching_step(secret, code, now=now, last_step=None)
    if step is None:
        raise InvalidInput(
            "动态口令不正确：请输入验证器应用当前显示的六位数字",
            details=[{"field": "totp", "message": "动态口令不正确"}],
        )
    user.totp_secret = totp.seal_secret(settings.secret_key, secret)
    user.totp_last_step = step
    user.totp_enabled_at = now
    codes = totp.new_recovery_codes()
    user.totp_recovery = [totp.recovery_hash(settings.secret_key, c) for c in codes]
    audit.record(session, actor, "auth.totp_enabled", object_type="user", object_id=user.id)
    return codes


def reset_totp(session: Session, actor: Actor, user: User) -> bool:
    """Switch the second factor off (重置动态口令: a lost phone), so the user enrols again
    at the next sign-in; audited. False when it was not on.

    Never one's own: whoever holds an administrator's password alone could otherwise
    take the second factor off that very account (职责分离)."""
    if actor.kind == "user" and actor.name == user.username:
        raise SeparationOfDuties.about(
            "不能重置自己的动态口令：请另一位平台管理员重置", "user_id", "不能重置自己的动态口令"
        )
    if not user.totp_secret:
        return False
    user.totp_secret = None
    user.totp_last_step = None
    user.totp_enabled_at = None
    user.totp_recovery = None
    audit.record(session, actor, "auth.totp_reset", object_type="user", object_id=user.id)
    return True


def _address_key(remote_addr: str | None) -> str:
    return remote_addr or "unknown"


def check_login_address(
    session: Session, settings: Settings, remote_addr: str | None, *, now: datetime
) -> None:
    """Refuse a sign-in from an address with too many recent failures (登录限流).

    Raises ``LoginThrottled`` with the seconds until its oldest counted failure leaves
    the window.
    """
    window = timedelta(minutes=settings.login_address_window_minutes)
    count, oldest = session.execute(
        select(func.count(), func.min(LoginFailure.at)).where(
            LoginFailure.remote_addr == _address_key(remote_addr),
            LoginFailure.at > now - window,
        )
    ).one()
    if count >= settings.login_address_limit and oldest is not None:
        wait = max(1, math.ceil((oldest + window - now).total_seconds()))
        raise LoginThrottled(
            f"该地址登录失败次数过多，请 {math.ceil(wait / 60)} 分钟后再试 "
            "(too many failed sign-ins from this address)",
            retry_after=wait,
        )


def _note_login_failure(
    session: Session, settings: Settings, actor: Actor, *, now: datetime
) -> None:
    """Count a failed sign-in against its address; audit the one that reaches the limit."""
    window_start = now - timedelta(minutes=settings.login_address_window_minutes)
    key = _address_key(actor.remote_addr)
    session.execute(delete(LoginFailure).where(LoginFailure.at <= window_start))
    session.add(LoginFailure(remote_addr=key, at=now))
    session.flush()
    count = session.scalar(
        select(func.count()).where(LoginFailure.remote_addr == key, LoginFailure.at > window_start)
    )
    if count == settings.login_address_limit:
        audit.record(
            session,
            actor,
            "auth.address_throttled",
            object_type="remote_addr",
            object_id=key,
            after={
                "failures": count,
                "window_minutes": settings.login_address_window_minutes,
            },
        )


def _refuse(
    session: Session,
    settings: Settings,
    actor: Actor,
    user: User,
    now: datetime,
    action: str,
    message: str,
) -> NoReturn:
    """A wrong password or one-time code: counted against the address and the account,
    which is locked after too many in a row."""
    _note_login_failure(session, settings, actor, now=now)
    user.failed_logins += 1
    if user.failed_logins >= settings.lockout_threshold:
        user.locked_until = now + timedelta(minutes=settings.lockout_minutes)
        user.failed_logins = 0
        audit.record(session, actor, "auth.account_locked", object_type="user", object_id=user.id)
        raise AccountLocked(
            f"连续登录失败{settings.lockout_threshold}次，账号锁定{settings.lockout_minutes}分钟"
        )
    audit.record(session, actor, action, object_type="user", object_id=user.id)
    raise BadCredentials(message)


def _use_recovery_code(
    session: Session, settings: Settings, actor: Actor, user: User, now: datetime, code: str
) -> None:
    """Spend one recovery code in place of a one-time code; a wrong or spent one counts
    as a failed sign-in. The use is audited with how many are left."""
    hashed = totp.recovery_hash(settings.secret_key, code)
    left = list(user.totp_recovery or [])
    if not any(hmac.compare_digest(hashed, h) for h in left):
        _refuse(session, settings, actor, user, now, "auth.totp_failed", "恢复码错误或已使用过")
    user.totp_recovery = [h for h in left if not hmac.compare_digest(hashed, h)]
    audit.record(
        session,
        actor,
        "auth.totp_recovery_used",
        object_type="user",
        object_id=user.id,
        after={"left": len(user.totp_recovery)},
    )


def _totp_secret(settings: Settings, sealed: str) -> str:
    try:
        return totp.unseal_secret(settings.secret_key, sealed)
    except (InvalidTag, ValueError):
        raise BadCredentials(
            "无法校验动态口令：平台密钥已更换，请联系平台管理员重置该账号的动态口令"
        ) from None


def authenticate(
    session: Session,
    settings: Settings,
    username: str,
    password: str,
    remote_addr: str | None,
    *,
    allow_expired: bool = False,
    totp_code: str | None = None,
) -> User:
    """Check a password — and the one-time code (动态口令) of an account that has one;
    count failures and lock the account after too many. ``allow_expired`` checks the
    password only (a password change, a TOTP enrolment: not a sign-in).

    Failures also count against the client address; an address over its limit is
    refused (``LoginThrottled``) without touching any account.

    Failures are recorded and committed by the caller even though this raises, so the
    count survives the error (the caller commits before re-raising).
    """
    actor = Actor(name=username, kind="user", remote_addr=remote_addr)
    now = utcnow()
    # An address over its limit is refused before any account is looked at, so its
    # guesses neither lock accounts nor cost a password hash.
    check_login_address(session, settings, remote_addr, now=now)
    user = session.scalar(select(User).where(User.username == username))
    if user is None or not user.is_active:
        # Spend the same time as a real check so names cannot be probed by timing.
        _hasher.hash(password)
        audit.record(session, actor, "auth.login_failed", object_type="user", object_id=username)
        _note_login_failure(session, settings, actor, now=now)
        raise BadCredentials("用户名或密码错误")
    if user.locked_until and user.locked_until > now:
        audit.record(session, actor, "auth.login_locked", object_type="user", object_id=user.id)
        _note_login_failure(session, settings, actor, now=now)
        raise AccountLocked(
            f"账号已锁定，请于 {user.locked_until.astimezone().strftime('%H:%M')} 后再试"
        )
    try:
        _hasher.verify(user.password_hash, password)
    except (VerificationError, InvalidHashError):
        _refuse(session, settings, actor, user, now, "auth.login_failed", "用户名或密码错误")
    actor = Actor(
        name=username, kind="user", department_id=user.department_id, remote_addr=remote_addr
    )
    if allow_expired:  # checking the old password of a change: not a sign-in
        user.failed_logins = 0
        user.locked_until = None
        return user
    if user.totp_secret:
        if not totp_code:
            raise TotpRequired(
                "请输入动态口令 (one-time code required)",
                details=[{"field": "totp", "message": "请输入动态口令"}],
            )
        if totp.is_recovery_code(totp_code):
            _use_recovery_code(session, settings, actor, user, now, totp_code)
        else:
            step = totp.matching_step(
                _totp_secret(settings, user.totp_secret),
                totp_code,
                now=now,
                last_step=user.totp_last_step,
            )
            if step is None:
                _refuse(
                    session,
                    settings,
                    actor,
                    user,
                    now,
                    "auth.totp_failed",
                    "动态口令错误或已使用过",
                )
            user.totp_last_step = step
    elif settings.totp_roles & set(user.roles):
        audit.record(
            session, actor, "auth.totp_enrolment_required", object_type="user", object_id=user.id
        )
        raise TotpEnrolmentRequired(
            "该账号须使用动态口令登录，请先启用动态口令 (enrol a one-time code first)"
        )
    user.failed_logins = 0
    user.locked_until = None
    if passwords.policy_of(session).expired(user.password_changed_at, now):
        audit.record(session, actor, "auth.password_expired", object_type="user", object_id=user.id)
        raise PasswordExpired(
            "密码已过期，请先修改密码 (password expired: change it first)",
            details=[{"field": "password", "message": "密码已过期，请先修改密码"}],
        )
    user.last_login_at = now
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    audit.record(session, actor, "auth.login", object_type="user", object_id=user.id)
    return user


def open_session(
    session: Session, settings: Settings, user: User, kind: SessionKind
) -> tuple[str, AuthSession]:
    """Start a console session or issue a bearer token; returns the clear token once."""
    token = secrets.token_urlsafe(32)
    auth = AuthSession(
        token_hash=token_hash(token),
        user_id=user.id,
        kind=kind,
        csrf_token=secrets.token_urlsafe(24),
        expires_at=utcnow() + timedelta(minutes=settings.token_ttl_minutes),
    )
    session.add(auth)
    session.flush()
    return token, auth


def close_session(session: Session, token: str) -> None:
    auth = session.scalar(select(AuthSession).where(AuthSession.token_hash == token_hash(token)))
    if auth is not None:
        auth.revoked = True


def _principal_for_user(user: User, *, csrf: str | None, remote_addr: str | None) -> Principal:
    return _user_principal(
        user.id,
        user.username,
        user.department_id,
        user.roles,
        user.display_name,
        user.department.short_name,
        csrf=csrf,
        remote_addr=remote_addr,
    )


def _user_principal(
    user_id: int,
    username: str,
    department_id: int,
    roles: list[str],
    display_name: str,
    department_name: str,
    *,
    csrf: str | None,
    remote_addr: str | None,
) -> Principal:
    return Principal(
        kind="user",
        name=username,
        department_id=department_id,
        permissions=permissions_for(roles),
        user_id=user_id,
        roles=tuple(roles),
        csrf_token=csrf,
        remote_addr=remote_addr,
        display_name=display_name,
        department_name=department_name,
    )


_TOKEN_HOLDER = (
    select(
        AuthSession.revoked,
        AuthSession.expires_at,
        AuthSession.csrf_token,
        User.id,
        User.username,
        User.department_id,
        User.roles,
        User.is_active,
        User.display_name,
        Department.short_name,
    )
    .join(User, User.id == AuthSession.user_id)
    .join(Department, Department.id == User.department_id)
    .where(AuthSession.token_hash == bindparam("token_hash"), AuthSession.kind == bindparam("kind"))
)


class _TokenHolderRow(NamedTuple):
    """A row of ``_TOKEN_HOLDER``, in its column order."""

    revoked: bool
    expires_at: datetime
    csrf_token: str | None
    id: int
    username: str
    department_id: int
    roles: list[str]
    is_active: bool
    display_name: str
    short_name: str


if _TokenHolderRow._fields != tuple(c.key for c in _TOKEN_HOLDER.selected_columns):
    raise RuntimeError("_TokenHolderRow does not match the columns of _TOKEN_HOLDER")
_token_holder = PerDialect(lambda dialect: Prepared(_TOKEN_HOLDER, dialect))


def principal_from_token(
    session: Session, token: str, kind: SessionKind, remote_addr: str | None
) -> Principal | None:
    """The user a bearer token or console session belongs to, if it still signs them
    in. Every authenticated request asks this, so it is one select compiled once, read
    as plain columns (no ORM objects)."""
    conn = session.connection()
    found = _token_holder(conn.dialect).rows(
        conn.connection.dbapi_connection, {"token_hash": token_hash(token), "kind": kind}
    )
    if not found:
        return None
    row = _TokenHolderRow(*found[0])
    if row.revoked or row.expires_at <= utcnow() or not row.is_active:
        return None
    return _user_principal(
        row.id,
        row.username,
        row.department_id,
        row.roles,
        row.display_name,
        row.short_name,
        csrf=row.csrf_token,
        remote_addr=remote_addr,
    )


def purge_ended_sessions(session: Session, now: datetime) -> int:
    """Forget console sessions and bearer tokens that can no longer sign anybody in
    (expired or revoked a day ago or more); the number removed. Sign-ins are in the
    audit log, so nothing is lost that an auditor needs."""
    cutoff = now - timedelta(days=1)
    gone = session.execute(
        delete(AuthSession).where(
            (AuthSession.expires_at < cutoff)
            | (AuthSession.revoked.is_(True) & (AuthSession.created_at < cutoff))
        )
    )
    return int(gone.rowcount)  # type: ignore[attr-defined]


SENT_MAIL_KEPT_DAYS = 30


def mailable_holders(
    session: Session, department_ids: Iterable[int], role: Role
) -> dict[int, list[User]]:
    """The active users holding ``role`` in each of the departments who have an e-mail
    address, by department: the people a reminder to the department is mailed to."""
    wanted = set(department_ids)
    found: dict[int, list[User]] = {d: [] for d in wanted}
    if not wanted:
        return found
    for user in session.scalars(
        select(User)
        .where(User.department_id.in_(wanted), User.is_active, User.email.is_not(None))
        .order_by(User.id)
    ):
        if role.value in user.roles:
            found[user.department_id].append(user)
    return found


def queue_mail(session: Session, users: Iterable[User], subject: str, body: str) -> list[str]:
    """Put one mail to each user with an address in the users' outbox (sent after the
    transaction commits, by the ``user-mail`` sender); the login names mailed."""
    mailed = []
    for user in users:
        if user.email:
            session.add(UserMail(user_id=user.id, to=user.email, subject=subject, body=body))
            mailed.append(user.username)
    return mailed


def purge_sent_mail(session: Session, now: datetime) -> int:
    """Forget reminders handed to the SMTP server a month ago or more (the reminder
    itself stays in the audit log); mail still waiting is never removed."""
    gone = session.execute(
        delete(UserMail).where(UserMail.sent_at < now - timedelta(days=SENT_MAIL_KEPT_DAYS))
    )
    return int(gone.rowcount)  # type: ignore[attr-defined]


# -- API clients (应用接入) ------------------------------------------------------------


def add_api_client(
    session: Session,
    settings: Settings,
    actor: Actor,
    *,
    name: str,
    department_id: int,
    permissions: list[Permission] | None = None,
    rate_per_second: float | None = None,
    daily_quota: int | None = None,
    allowed_networks: list[str] | None = None,
) -> tuple[ApiClient, str]:
    """Register a department system; returns the client and its secret (shown once)."""
    get_department(session, department_id)
    networks = parse_networks(allowed_networks or [])
    if problems := _api_client_limit_problems(rate_per_second, daily_quota):
        raise InvalidInput("调用限额不正确", details=problems)
    wanted = set(permissions or CLIENT_PERMISSIONS)
    if not wanted <= CLIENT_PERMISSIONS:
        raise InvalidInput(
            "应用只能被授予目录查询等接口权限",
            details=[
                {
                    "field": "permissions",
                    "message": "不允许: " + "、".join(sorted(wanted - CLIENT_PERMISSIONS)),
                }
            ],
        )
    secret = secrets.token_urlsafe(32)
    client = ApiClient(
        app_key="gs_" + secrets.token_hex(12),
        secret_sealed=seal(settings.secret_key, secret),
        name=name,
        department_id=department_id,
        permissions=sorted(p.value for p in wanted),
        rate_per_second=rate_per_second,
        daily_quota=daily_quota,
        allowed_networks=networks,
    )
    session.add(client)
    session.flush()
    audit.record(
        session,
        actor,
        "api_client.add",
        object_type="api_client",
        object_id=client.app_key,
        after={
            "name": name,
            "department_id": department_id,
            "permissions": client.permissions,
            "rate_per_second": rate_per_second,
            "daily_quota": daily_quota,
            "allowed_networks": networks,
        },
    )
    return client, secret


MAX_CLIENT_RATE = 100_000  # calls a second; as ``ApiClientCreate`` bounds it


def _api_client_limit_problems(
    rate_per_second: float | None, daily_quota: int | None
) -> list[dict[str, str]]:
    problems = []
    if rate_per_second is not None and not (
        math.isfinite(rate_per_second) and 0 < rate_per_second <= MAX_CLIENT_RATE
    ):
        problems.append(
            {
                "field": "rate_per_second",
                "message": f"每秒调用上限应大于 0 且不超过 {MAX_CLIENT_RATE:,}",
            }
        )
    if daily_quota is not None and not (1 <= daily_quota <= MAX_SEQ):
        problems.append({"field": "daily_quota", "message": "每日额度应为不小于 1 的整数"})
    return problems


def get_api_client(session: Session, principal: Principal, client_id: int) -> ApiClient:
    """An API client the caller may manage: any for the platform admin, else only its
    own department's. Another department's is answered as if it did not exist."""
    client = session.get(ApiClient, client_id)
    if client is None or not (
        principal.is_admin or client.department_id == principal.department_id
    ):
        raise NotFound(f"接入应用 {client_id} 不存在")
    return client


@dataclass(frozen=True, slots=True)
class ApiClientUse:
    """An API client with its use: data-service calls today, the last call's time."""

    client: ApiClient
    calls_today: int
    last_used_at: datetime | None


def list_api_clients(session: Session, principal: Principal, *, today: date) -> list[ApiClientUse]:
    """The clients the caller may manage (``get_api_client``'s rule), with today's calls
    (China date) counted by the call journal and the latest call in the audit log."""
    from govshare.sharing.models import CallStat  # sharing builds on security, not back

    q = select(ApiClient).order_by(ApiClient.id)
    if not principal.is_admin:
        q = q.where(ApiClient.department_id == principal.department_id)
    clients = list(session.scalars(q))
    if not clients:
        return []
    ids = [c.id for c in clients]
    calls = dict(
        session.execute(
            select(CallStat.client_id, func.sum(CallStat.calls))
            .where(CallStat.day == today, CallStat.client_id.in_(ids))
            .group_by(CallStat.client_id)
        ).all()
    )
    last = dict(
        session.execute(
            select(AuditEntry.actor, func.max(AuditEntry.at))
            .where(AuditEntry.actor.in_([c.app_key for c in clients]))
            .where(AuditEntry.actor_kind == "client")
            .group_by(AuditEntry.actor)
        ).all()
    )
    return [ApiClientUse(c, int(calls.get(c.id) or 0), last.get(c.app_key)) for c in clients]


class DailyCalls(NamedTuple):
    day: date
    calls: int
    keys: int
    rows: int


def api_client_daily_calls(session: Session, client_id: int, *, since: date) -> list[DailyCalls]:
    """The client's data-service calls per day since ``since``, all grants together;
    days without calls are absent."""
    from govshare.sharing.models import CallStat

    rows = session.execute(
        select(
            CallStat.day, func.sum(CallStat.calls), func.sum(CallStat.keys), func.sum(CallStat.rows)
        )
        .where(CallStat.client_id == client_id, CallStat.day >= since)
        .group_by(CallStat.day)
        .order_by(CallStat.day)
    )
    return [DailyCalls(d, int(c or 0), int(k or 0), int(r or 0)) for d, c, k, r in rows]


CLIENT_CALL_ACTIONS = ("data.lookup", "data.query", "data.verify", "data.denied")


def api_client_recent_calls(
    session: Session, client: ApiClient, limit: int = 20
) -> list[tuple[AuditEntry, dict[str, Any]]]:
    """The client's latest data-service calls as the audit log has them, newest first:
    each call with its entry (a journal batch's calls share one)."""
    entries = session.scalars(
        select(AuditEntry)
        .where(
            AuditEntry.actor == client.app_key,
            AuditEntry.actor_kind == "client",
            AuditEntry.action.in_(CLIENT_CALL_ACTIONS),
        )
        .order_by(AuditEntry.seq.desc())
        .limit(limit)
    )
    calls = [
        (entry, call)
        for entry in entries
        for call in reversed(audit.journalled_calls(entry.after) or [entry.after or {}])
    ]
    return calls[:limit]


def rotate_api_client_secret(
    session: Session, settings: Settings, actor: Actor, client: ApiClient
) -> str:
    """Give the client a new secret (returned once, stored sealed); the old one stops
    working at the next call, since every call reads the client's row."""
    secret = secrets.token_urlsafe(32)
    client.secret_sealed = seal(settings.secret_key, secret)
    # The entry says that the secret changed, never what it is.
    audit.record(
        session,
        actor,
        "api_client.rotate_secret",
        object_type="api_client",
        object_id=client.app_key,
    )
    return secret


def set_api_client_active(session: Session, actor: Actor, client: ApiClient, active: bool) -> None:
    """Disable (停用) or enable (启用) a client; a disabled client's calls are refused."""
    if client.is_active == active:
        return
    client.is_active = active
    audit.record(
        session,
        actor,
        "api_client.enable" if active else "api_client.disable",
        object_type="api_client",
        object_id=client.app_key,
        before={"is_active": not active},
        after={"is_active": active},
    )


def set_api_client_limits(
    session: Session,
    actor: Actor,
    client: ApiClient,
    *,
    rate_per_second: float | None,
    daily_quota: int | None,
) -> None:
    """Set the client's data-service rate and daily key quota; None takes the platform's."""
    if problems := _api_client_limit_problems(rate_per_second, daily_quota):
        raise InvalidInput("调用限额不正确", details=problems)
    before = {"rate_per_second": client.rate_per_second, "daily_quota": client.daily_quota}
    after = {"rate_per_second": rate_per_second, "daily_quota": daily_quota}
    if before == after:
        return
    client.rate_per_second = rate_per_second
    client.daily_quota = daily_quota
    audit.record(
        session,
        actor,
        "api_client.set_limits",
        object_type="api_client",
        object_id=client.app_key,
        before=before,
        after=after,
    )


MAX_CLIENT_NETWORKS = 50
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(lines: list[str], field: str = "allowed_networks") -> list[str]:
    """The allowed networks as entered (one address or CIDR each; blanks skipped),
    normalised (``10.1.2.3`` → ``10.1.2.3/32``, host bits cleared); every bad line is
    reported with its line number."""
    found: list[str] = []
    problems: list[dict[str, str]] = []
    for number, raw in enumerate(lines, start=1):
        text = raw.strip()
        if not text:
            continue
        if len(problems) >= 20 or len(found) > MAX_CLIENT_NETWORKS:
            break  # enough to say what is wrong
        try:
            network = ipaddress.ip_network(text, strict=False)
        except ValueError:
            problems.append(
                {"field": field, "message": f"第{number}行不是 IP 地址或网段: {text[:60]}"}
            )
            continue
        if str(network) not in found:
            found.append(str(network))
    if len(found) > MAX_CLIENT_NETWORKS:
        problems.append({"field": field, "message": f"最多 {MAX_CLIENT_NETWORKS} 个网段"})
    if problems:
        raise InvalidInput("允许调用的网络不正确", details=problems)
    return found


def set_api_client_networks(
    session: Session, actor: Actor, client: ApiClient, networks: list[str]
) -> None:
    """Limit the client's calls to ``networks`` (IP 白名单; empty: from anywhere). Takes
    effect at the client's next call; audited."""
    wanted = parse_networks(networks)
    before = list(client.allowed_networks or [])
    if before == wanted:
        return
    client.allowed_networks = wanted
    audit.record(
        session,
        actor,
        "api_client.set_networks",
        object_type="api_client",
        object_id=client.app_key,
        before={"allowed_networks": before},
        after={"allowed_networks": wanted},
    )


_NETWORKS_MAX = 1024
_parsed_networks: dict[tuple[str, ...], tuple[IPNetwork, ...]] = {}


def _check_address(networks: list[str] | None, remote_addr: str | None) -> None:
    """Refuse a call from outside the client's allowed networks (none listed: any)."""
    if not networks:
        return
    key = tuple(networks)
    parsed = _parsed_networks.get(key)
    if parsed is None:
        parsed = tuple(ipaddress.ip_network(n, strict=False) for n in networks)
        if len(_parsed_networks) >= _NETWORKS_MAX:
            _parsed_networks.clear()
        _parsed_networks[key] = parsed
    try:
        address = ipaddress.ip_address(remote_addr or "")
    except ValueError:
        address = None
    if address is not None and isinstance(address, ipaddress.IPv6Address):
        address = address.ipv4_mapped or address
    if address is None or not any(address in n for n in parsed):
        raise AddressNotAllowed(
            f"调用地址 {remote_addr or '未知'} 不在该应用允许的网络内 (address not allowed)"
        )


@dataclass(frozen=True, slots=True)
class VerifiedClient:
    """The columns of an API client a signed data-service call needs (no ORM load)."""

    id: int
    app_key: str
    department_id: int
    permissions: list[str]
    rate_per_second: float | None
    daily_quota: int | None


_UNSEALED_MAX = 4096
_unsealed: dict[tuple[str, str], str] = {}


def _client_secret(settings: Settings, sealed: str) -> str:
    """The client's secret, unsealed once per sealed value: the row is still read on
    every call, so a deactivated client or a new secret takes effect at once."""
    key = (settings.secret_key, sealed)
    secret = _unsealed.get(key)
    if secret is None:
        secret = unseal(settings.secret_key, sealed)
        if len(_unsealed) >= _UNSEALED_MAX:
            _unsealed.clear()
        _unsealed[key] = secret
    return secret


@dataclass(frozen=True, slots=True)
class SignedRequest:
    """An API client's HMAC-signed request as it arrived (``X-App-Key``,
    ``X-Timestamp``, ``X-Nonce``, ``X-Signature`` over method, path and query,
    timestamp, nonce and the body's SHA-256). Who sent it is known only once
    ``verified_client`` or ``verified_signed_client`` has checked it."""

    app_key: str
    timestamp: str
    nonce: str
    signature: str
    method: str
    path_and_query: str
    body_sha256: str
    remote_addr: str | None = None


def _check_signature(settings: Settings, sealed: str, signed: SignedRequest) -> None:
    timestamp, nonce = signed.timestamp, signed.nonce
    try:
        sent_at = int(timestamp)
    except ValueError:
        raise BadSignature("X-Timestamp 应为 Unix 秒") from None
    if abs(time.time() - sent_at) > settings.signature_max_skew_seconds:
        raise BadSignature("请求时间戳超出允许范围 (stale timestamp)")
    if not (8 <= len(nonce) <= 64):
        raise BadSignature("X-Nonce 长度应为8至64位")
    expected = hmac_sha256(
        _client_secret(settings, sealed),
        string_to_sign(signed.method, signed.path_and_query, timestamp, nonce, signed.body_sha256),
    )
    if not constant_time_equal(expected, signed.signature.lower()):
        raise BadSignature("签名不正确")


def verified_client(session: Session, settings: Settings, signed: SignedRequest) -> ApiClient:
    """The API client whose HMAC signature this is, checked for key, time and nonce shape.

    The nonce is not yet spent: the caller records it (``spend_nonce`` or the data
    services' call journal) before it answers.
    """
    client = session.scalar(select(ApiClient).where(ApiClient.app_key == signed.app_key))
    if client is None or not client.is_active:
        raise BadSignature("未知或已停用的应用 app key")
    _check_signature(settings, client.secret_sealed, signed)
    _check_address(client.allowed_networks, signed.remote_addr)
    return client


_SIGNED_CLIENT = select(
    ApiClient.id,
    ApiClient.app_key,
    ApiClient.department_id,
    ApiClient.permissions,
    ApiClient.rate_per_second,
    ApiClient.daily_quota,
    ApiClient.is_active,
    ApiClient.secret_sealed,
    ApiClient.allowed_networks,
).where(ApiClient.app_key == bindparam("app_key"))


class _SignedClientRow(NamedTuple):
    """A row of ``_SIGNED_CLIENT``, in its column order."""

    id: int
    app_key: str
    department_id: int
    permissions: list[str] | None
    rate_per_second: float | None
    daily_quota: int | None
    is_active: bool
    secret_sealed: str
    allowed_networks: list[str] | None


if _SignedClientRow._fields != tuple(c.key for c in _SIGNED_CLIENT.selected_columns):
    raise RuntimeError("_SignedClientRow does not match the columns of _SIGNED_CLIENT")
_signed_client = PerDialect(lambda dialect: Prepared(_SIGNED_CLIENT, dialect))


def verified_signed_client(
    session: Session | Connection, settings: Settings, signed: SignedRequest
) -> VerifiedClient:
    """``verified_client`` for the data services' hot path: the same checks on the
    client's row, read with one select compiled once; the nonce is not yet spent."""
    conn = session.connection() if isinstance(session, Session) else session
    found = _signed_client(conn.dialect).rows(
        conn.connection.dbapi_connection, {"app_key": signed.app_key}
    )
    row = _SignedClientRow(*found[0]) if found else None
    if row is None or not row.is_active:
        raise BadSignature("未知或已停用的应用 app key")
    _check_signature(settings, row.secret_sealed, signed)
    _check_address(row.allowed_networks, signed.remote_addr)
    return VerifiedClient(
        id=row.id,
        app_key=row.app_key,
        department_id=row.department_id,
        permissions=list(row.permissions or []),
        rate_per_second=row.rate_per_second,
        daily_quota=row.daily_quota,
    )


def spend_nonce(session: Session, settings: Settings, app_key: str, nonce: str) -> None:
    """Record a nonce as used; a second use is a replay. Old nonces are forgotten once
    their timestamps could no longer pass the skew check anyway."""
    now = utcnow()
    if session.get(ApiNonce, (app_key, nonce)) is not None:
        raise ReplayedRequest("重复的请求 (nonce 已使用)")
    session.add(ApiNonce(app_key=app_key, nonce=nonce, seen_at=now))
    try:
        session.flush()
    except IntegrityError:
        raise ReplayedRequest("重复的请求 (nonce 已使用)") from None
    cutoff = now - timedelta(seconds=2 * settings.signature_max_skew_seconds)
    session.execute(delete(ApiNonce).where(ApiNonce.seen_at < cutoff))


def principal_from_signature(
    session: Session, settings: Settings, signed: SignedRequest
) -> Principal:
    """Check an HMAC-signed request; reject unknown keys, stale times and replays."""
    client = verified_client(session, settings, signed)
    spend_nonce(session, settings, signed.app_key, signed.nonce)
    return client_principal(client, signed.remote_addr)


def client_principal(client: ApiClient, remote_addr: str | None) -> Principal:
    return Principal(
        kind="client",
        name=client.app_key,
        department_id=client.department_id,
        permissions=frozenset(Permission(p) for p in client.permissions) | {Permission.PUBLIC},
        client_id=client.id,
        remote_addr=remote_addr,
        display_name=client.name,
        department_name=client.department.short_name,
    )
