"""The developer centre (开发者中心) of the open-data portal: developer accounts, API keys
with quotas, usage per key and day, and applications for 有条件开放 datasets.

Developers are members of the public, not staff: their accounts, sessions and keys live
in tables of their own (``open_developer`` …) and never grant a console permission.

- Accounts: e-mail + password (argon2, as staff passwords), confirmed through a one-time
  link written to the ``developer_mail`` outbox (and, in demo mode, to the log).
- Keys: ``od_`` + 40 random characters, shown once; stored as an HMAC-SHA256 under a key
  derived from the hub's secret, so a copy of the database does not reveal them.
- Usage: one UPSERT per call into ``open_key_usage`` (calls, rows) after the call is
  admitted, never a lock held across a streamed download.
- Applications: the providing department's resource admin (``sharing.review``) answers
  within ``open_application_working_days`` working days; only an approved application
  lets its key read that dataset's rows.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import structlog
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import case, delete, func, select
from sqlalchemy.orm import Session

from govshare.config import Settings
from govshare.db import dialect_insert
from govshare.errors import Conflict, Forbidden, InvalidInput, NotAuthenticated, NotFound
from govshare.mail import normal_address
from govshare.opendata import datasets as ds
from govshare.opendata.models import (
    ApplicationStatus,
    DeveloperMail,
    DeveloperToken,
    DeveloperTokenPurpose,
    OpenApiKey,
    OpenApplication,
    OpenDeveloper,
    OpenKeyUsage,
)
from govshare.rules.clock import china_date
from govshare.rules.workdays import add_working_days
from govshare.security import audit
from govshare.security.audit import Actor
from govshare.security.crypto import _derive, keyed_digest, token_hash
from govshare.security.roles import Permission
from govshare.security.service import Principal

log = structlog.get_logger()
_hasher = PasswordHasher()

KEY_PREFIX = "od_"
CONFIRM_HOURS = 48
SESSION_HOURS = 12
MAX_KEYS = 20


def developer_actor(developer: OpenDeveloper, remote_addr: str | None = None) -> Actor:
    """Developers appear in the audit log as ``dev:<email>`` of kind ``developer``."""
    return Actor(name=f"dev:{developer.email}"[:60], kind="developer", remote_addr=remote_addr)


# -- accounts ------------------------------------------------------------------------------


def _normal_email(email: str) -> str:
    value = normal_address(email)
    if value is None:
        raise InvalidInput.about("邮箱地址格式不正确", "email", "邮箱地址格式不正确")
    return value


def register(
    session: Session,
    *,
    email: str,
    password: str,
    base_url: str,
    now: datetime,
    demo: bool = False,
    remote_addr: str | None = None,
) -> tuple[OpenDeveloper, str]:
    """A new, unconfirmed developer and the confirmation link written to the outbox
    (returned too, for demo mode and tests).

    An address already registered gets the same answer, so the form tells nobody which
    addresses have accounts; only the mailbox's owner learns it, by mail: a fresh
    confirmation link when the address was never confirmed (the way to a lost first
    mail), otherwise a note that the account exists. The password given is ignored."""
    address = _normal_email(email)
    if len(password) < 8 or len(password) > 200:
        raise InvalidInput.about("密码长度须为 8 至 200 位", "password", "密码长度须为 8 至 200 位")
    password_hash = _hasher.hash(password)  # hashed either way: the answer takes as long
    existing = session.scalar(select(OpenDeveloper).where(OpenDeveloper.email == address))
    if existing is not None:
        return existing, _registered_again(session, existing, base_url=base_url, now=now, demo=demo)
    developer = OpenDeveloper(
        email=address, password_hash=password_hash, created_at=now, is_active=True
    )
    session.add(developer)
    session.flush()
    link = _confirmation(session, developer, base_url=base_url, now=now, demo=demo)
    audit.record(
        session,
        developer_actor(developer, remote_addr),
        "open.developer_registered",
        object_type="open_developer",
        object_id=developer.id,
        after={"email": address},
    )
    return developer, link


def _registered_again(
    session: Session, developer: OpenDeveloper, *, base_url: str, now: datetime, demo: bool
) -> str:
    """Someone registered an address that has an account: its owner hears of it."""
    if developer.confirmed_at is None:
        return _confirmation(session, developer, base_url=base_url, now=now, demo=demo)
    session.add(
        DeveloperMail(
            developer_id=developer.id,
            to=developer.email,
            subject="您的邮箱已在公共数据开放平台注册",
            body="您好：\n\n有人（可能是您本人）用本邮箱再次注册公共数据开放平台的开发者账号。"
            f"该邮箱已注册，请直接登录开发者中心：\n{base_url}/open/developer\n\n"
            "如非本人操作，请忽略本邮件，您的账号与密码没有任何改变。",
            created_at=now,
        )
    )
    return ""


def _confirmation(
    session: Session, developer: OpenDeveloper, *, base_url: str, now: datetime, demo: bool
) -> str:
    token = secrets.token_urlsafe(32)
    session.add(
        DeveloperToken(
            token_hash=token_hash(token),
            developer_id=developer.id,
            purpose=DeveloperTokenPurpose.CONFIRM,
            csrf_token="",
            created_at=now,
            expires_at=now + timedelta(hours=CONFIRM_HOURS),
        )
    )
    link = f"{base_url}/open/developer/confirm?token={token}"
    session.add(
        DeveloperMail(
            developer_id=developer.id,
            to=developer.email,
            subject="请确认您在公共数据开放平台注册的邮箱",
            body=f"您好：\n\n请在 {CONFIRM_HOURS} 小时内打开以下链接确认邮箱：\n{link}\n\n"
            "如非本人操作，请忽略本邮件。",
            created_at=now,
        )
    )
    if demo:
        log.info("developer confirmation link", email=developer.email, link=link)
    else:
        log.info("developer confirmation mail queued", developer_id=developer.id)
    return link


def purge_ended_tokens(session: Session, now: datetime) -> int:
    """Forget developer sessions and confirmation links expired a day ago or more; the
    number removed (a late click on a forgotten link reads as an expired one)."""
    gone = session.execute(
        delete(DeveloperToken).where(DeveloperToken.expires_at < now - timedelta(days=1))
    )
    return int(gone.rowcount)  # type: ignore[attr-defined]


def confirm(session: Session, token: str, *, now: datetime) -> OpenDeveloper:
    """Confirm the e-mail address of the link's developer; each link works once."""
    row = session.get(DeveloperToken, token_hash(token))
    if (
        row is None
        or row.purpose is not DeveloperTokenPurpose.CONFIRM
        or row.used_at is not None
        or row.expires_at <= now
    ):
        raise NotFound("确认链接无效、已使用或已过期")
    row.used_at = now
    developer = session.get_one(OpenDeveloper, row.developer_id)
    if developer.confirmed_at is None:
        developer.confirmed_at = now
        audit.record(
            session,
            developer_actor(developer),
            "open.developer_confirmed",
            object_type="open_developer",
            object_id=developer.id,
        )
    return developer


def authenticate(
    session: Session, *, email: str, password: str, remote_addr: str | None = None
) -> OpenDeveloper:
    """The developer with that e-mail and password; unconfirmed ones are refused."""
    address = email.strip().lower()
    developer = session.scalar(select(OpenDeveloper).where(OpenDeveloper.email == address))
    actor = Actor(name=f"dev:{address}"[:60], kind="developer", remote_addr=remote_addr)
    if developer is None or not developer.is_active:
        _hasher.hash(password)  # the same time as a real check: no probing by timing
        audit.record(session, actor, "open.developer_login_failed", object_type="open_developer")
        raise NotAuthenticated("邮箱或密码错误")
    try:
        _hasher.verify(developer.password_hash, password)
    except (VerificationError, InvalidHashError):
        audit.record(
            session,
            actor,
            "open.developer_login_failed",
            object_type="open_developer",
            object_id=developer.id,
        )
        raise NotAuthenticated("邮箱或密码错误") from None
    if developer.confirmed_at is None:
        raise Forbidden("邮箱尚未确认，请打开确认邮件中的链接")
    audit.record(
        session, actor, "open.developer_login", object_type="open_developer", object_id=developer.id
    )
    return developer


def open_session(session: Session, developer: OpenDeveloper, *, now: datetime) -> str:
    """A portal session for the developer; returns the clear token (the cookie's value)."""
    token = secrets.token_urlsafe(32)
    session.add(
        DeveloperToken(
            token_hash=token_hash(token),
            developer_id=developer.id,
            purpose=DeveloperTokenPurpose.SESSION,
            csrf_token=secrets.token_urlsafe(24),
            created_at=now,
            expires_at=now + timedelta(hours=SESSION_HOURS),
        )
    )
    session.flush()
    return token


@dataclass(frozen=True)
class DeveloperSession:
    developer: OpenDeveloper
    csrf_token: str


def session_of(session: Session, token: str, *, now: datetime) -> DeveloperSession | None:
    row = session.get(DeveloperToken, token_hash(token))
    if (
        row is None
        or row.purpose is not DeveloperTokenPurpose.SESSION
        or row.used_at is not None
        or row.expires_at <= now
    ):
        return None
    developer = session.get(OpenDeveloper, row.developer_id)
    if developer is None or not developer.is_active:
        return None
    return DeveloperSession(developer, row.csrf_token)


def close_session(session: Session, token: str, *, now: datetime) -> None:
    row = session.get(DeveloperToken, token_hash(token))
    if row is not None and row.purpose is DeveloperTokenPurpose.SESSION:
        row.used_at = now


# -- keys ----------------------------------------------------------------------------------


def key_hash(settings: Settings, secret: str) -> str:
    """The keyed hash a key is stored and looked up by (HMAC-SHA256, hub-secret derived)."""
    return keyed_digest("sha256", _derive(settings.secret_key, b"open-api-key"), secret.encode())


def create_key(
    session: Session,
    settings: Settings,
    developer: OpenDeveloper,
    *,
    name: str,
    now: datetime,
    remote_addr: str | None = None,
) -> tuple[OpenApiKey, str]:
    """A new key; the clear secret is returned once and never stored."""
    label = name.strip()
    if not 1 <= len(label) <= 50:
        raise InvalidInput.about(
            "密钥名称须为 1 至 50 个字符", "name", "密钥名称须为 1 至 50 个字符"
        )
    live = session.scalar(
        select(func.count()).where(
            OpenApiKey.developer_id == developer.id, OpenApiKey.revoked_at.is_(None)
        )
    )
    if (live or 0) >= MAX_KEYS:
        raise Conflict(f"每位开发者至多 {MAX_KEYS} 个有效密钥，请先撤销不用的密钥")
    secret = KEY_PREFIX + secrets.token_urlsafe(30)
    key = OpenApiKey(
        developer_id=developer.id,
        name=label,
        prefix=secret[:10],
        secret_hash=key_hash(settings, secret),
        created_at=now,
    )
    session.add(key)
    session.flush()
    audit.record(
        session,
        developer_actor(developer, remote_addr),
        "open.key_created",
        object_type="open_api_key",
        object_id=key.id,
        after={"name": label, "prefix": key.prefix},
    )
    return key, secret


def rotate_key_secret(settings: Settings, key: OpenApiKey) -> str:
    """A new secret for ``key`` (the demo's key on every start); returned once."""
    secret = KEY_PREFIX + secrets.token_urlsafe(30)
    key.secret_hash = key_hash(settings, secret)
    key.prefix = secret[:10]
    return secret


def set_password(developer: OpenDeveloper, password: str) -> None:
    developer.password_hash = _hasher.hash(password)


def list_keys(session: Session, developer_id: int) -> list[OpenApiKey]:
    return list(
        session.scalars(
            select(OpenApiKey)
            .where(OpenApiKey.developer_id == developer_id)
            .order_by(OpenApiKey.revoked_at.is_not(None), OpenApiKey.id)
        )
    )


def get_own_key(session: Session, developer_id: int, key_id: int) -> OpenApiKey:
    key = session.get(OpenApiKey, key_id)
    if key is None or key.developer_id != developer_id:
        raise NotFound("没有这个密钥")
    return key


def revoke_key(
    session: Session,
    developer: OpenDeveloper,
    key_id: int,
    *,
    now: datetime,
    remote_addr: str | None = None,
) -> OpenApiKey:
    key = get_own_key(session, developer.id, key_id)
    if key.revoked_at is None:
        key.revoked_at = now
        audit.record(
            session,
            developer_actor(developer, remote_addr),
            "open.key_revoked",
            object_type="open_api_key",
            object_id=key.id,
        )
    return key


def set_key_limits(
    session: Session,
    principal: Principal,
    key_id: int,
    *,
    daily_quota: int | None,
    per_minute: int | None,
) -> OpenApiKey:
    """The bureau sets (or, with None, clears) one key's quota and per-minute limit."""
    key = session.get(OpenApiKey, key_id)
    if key is None:
        raise NotFound("没有这个开发者密钥")
    before = {"daily_quota": key.daily_quota, "per_minute": key.per_minute}
    key.daily_quota, key.per_minute = daily_quota, per_minute
    audit.record(
        session,
        principal.actor,
        "open.key_limits_set",
        object_type="open_api_key",
        object_id=key.id,
        before=before,
        after={"daily_quota": daily_quota, "per_minute": per_minute},
    )
    return key


@dataclass(frozen=True)
class KeyAccess:
    """A live key presented with a call: its limits and the conditional datasets its
    approved applications open to it."""

    key_id: int
    developer_id: int
    daily_quota: int
    per_minute: int
    granted: frozenset[int]  # resource ids


def key_access(session: Session, settings: Settings, secret: str) -> KeyAccess | None:
    """The key of that secret if it is live and its developer active; else None."""
    if not secret.startswith(KEY_PREFIX) or len(secret) > 100:
        return None
    row = session.execute(
        select(OpenApiKey, OpenDeveloper.is_active)
        .join(OpenDeveloper, OpenDeveloper.id == OpenApiKey.developer_id)
        .where(OpenApiKey.secret_hash == key_hash(settings, secret))
    ).first()
    if row is None or row[0].revoked_at is not None or not row[1]:
        return None
    key: OpenApiKey = row[0]
    granted = frozenset(
        session.scalars(
            select(OpenApplication.resource_id).where(
                OpenApplication.key_id == key.id,
                OpenApplication.status == ApplicationStatus.APPROVED,
            )
        )
    )
    return KeyAccess(
        key_id=key.id,
        developer_id=key.developer_id,
        daily_quota=key.daily_quota or settings.open_key_daily_quota,
        per_minute=key.per_minute or settings.open_key_per_minute,
        granted=granted,
    )


# -- usage ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class KeyUse:
    """What every process recorded of a key: its calls on a day, and in one minute."""

    calls: int
    minute_calls: int


def use_of(session: Session, key_id: int, day: date, minute: int) -> KeyUse:
    found = session.execute(
        select(OpenKeyUsage.calls, OpenKeyUsage.minute, OpenKeyUsage.minute_calls).where(
            OpenKeyUsage.key_id == key_id, OpenKeyUsage.day == day
        )
    ).first()
    if found is None:
        return KeyUse(0, 0)
    return KeyUse(int(found.calls), int(found.minute_calls) if found.minute == minute else 0)


def record_use(session: Session, key_id: int, day: date, *, minute: int = 0, rows: int = 0) -> None:
    """One more call (and ``rows`` rows) of the key on ``day``, in ``minute`` (minutes
    since the epoch; a new minute starts its count again): a single UPSERT."""
    table = OpenKeyUsage.__table__
    stmt = dialect_insert(table, session.get_bind().dialect).values(  # type: ignore[arg-type]
        key_id=key_id, day=day, calls=1, rows=rows, minute=minute, minute_calls=1
    )
    same_minute = table.c["minute"] == minute  # type: ignore[attr-defined]
    stmt = stmt.on_conflict_do_update(
        index_elements=["key_id", "day"],
        set_={
            "calls": table.c["calls"] + 1,  # type: ignore[attr-defined]
            "rows": table.c["rows"] + rows,  # type: ignore[attr-defined]
            "minute_calls": case(
                (same_minute, table.c["minute_calls"] + 1),  # type: ignore[attr-defined]
                else_=1,
            ),
            "minute": minute,
        },
    )
    session.execute(stmt)


@dataclass(frozen=True)
class DailyUse:
    day: date
    calls: int
    rows: int


def usage(session: Session, developer_id: int, *, today: date, days: int = 30) -> list[DailyUse]:
    """Calls and rows per day over the developer's keys, the last ``days`` days."""
    since = today - timedelta(days=days - 1)
    found = {
        d: (int(c), int(r))
        for d, c, r in session.execute(
            select(OpenKeyUsage.day, func.sum(OpenKeyUsage.calls), func.sum(OpenKeyUsage.rows))
            .join(OpenApiKey, OpenApiKey.id == OpenKeyUsage.key_id)
            .where(OpenApiKey.developer_id == developer_id, OpenKeyUsage.day >= since)
            .group_by(OpenKeyUsage.day)
        )
    }
    out = []
    for n in range(days):
        day = since + timedelta(days=n)
        calls, rows = found.get(day, (0, 0))
        out.append(DailyUse(day, calls, rows))
    return out


def key_usage_today(session: Session, developer_id: int, today: date) -> dict[int, int]:
    return {
        k: int(c)
        for k, c in session.execute(
            select(OpenKeyUsage.key_id, OpenKeyUsage.calls)
            .join(OpenApiKey, OpenApiKey.id == OpenKeyUsage.key_id)
            .where(OpenApiKey.developer_id == developer_id, OpenKeyUsage.day == today)
        )
    }


# -- applications for 有条件开放 datasets ------------------------------------------------------


def apply(
    session: Session,
    settings: Settings,
    developer: OpenDeveloper,
    *,
    dataset_key: str,
    key_id: int,
    purpose: str,
    now: datetime,
    remote_addr: str | None = None,
) -> OpenApplication:
    """Ask the providing department for a conditional dataset's rows for one key."""
    found = ds.get_dataset(session, dataset_key)
    if found is None or found.open_type is not ds.OpenType.CONDITIONAL:
        raise NotFound("没有这个有条件开放数据集")
    key = get_own_key(session, developer.id, key_id)
    if key.revoked_at is not None:
        raise InvalidInput.about("该密钥已撤销", "key_id", "请选择有效的密钥")
    text = purpose.strip()
    if not 5 <= len(text) <= 2000:
        raise InvalidInput.about(
            "用途说明须为 5 至 2000 个字符", "purpose", "用途说明须为 5 至 2000 个字符"
        )
    open_one = session.scalar(
        select(OpenApplication.id).where(
            OpenApplication.key_id == key.id,
            OpenApplication.resource_id == found.resource_id,
            OpenApplication.status.in_([ApplicationStatus.PENDING, ApplicationStatus.APPROVED]),
        )
    )
    if open_one is not None:
        raise Conflict("该密钥对这个数据集已有待审核或已批准的申请")
    today = china_date(now)
    application = OpenApplication(
        developer_id=developer.id,
        key_id=key.id,
        resource_id=found.resource_id,
        department_id=found.publisher.id,
        purpose=text,
        status=ApplicationStatus.PENDING,
        due=add_working_days(today, settings.open_application_working_days),
        created_at=now,
    )
    session.add(application)
    session.flush()
    audit.record(
        session,
        developer_actor(developer, remote_addr),
        "open.application_submitted",
        object_type="open_application",
        object_id=application.id,
        after={"resource_id": found.resource_id, "key_id": key.id, "purpose": text},
    )
    return application


def _reviewable(session: Session, principal: Principal, application_id: int) -> OpenApplication:
    application = session.get(OpenApplication, application_id)
    if application is None:
        raise NotFound("没有这个开放申请")
    if not principal.can(Permission.SHARING_REVIEW) or (
        principal.department_id != application.department_id and not principal.is_admin
    ):
        raise Forbidden("只有提供部门的资源管理员可以答复该申请")
    return application


def decide(
    session: Session,
    principal: Principal,
    application_id: int,
    *,
    approve: bool,
    reason: str,
    now: datetime,
) -> OpenApplication:
    """批准 or 不批准 a pending application, with a reason."""
    application = _reviewable(session, principal, application_id)
    if application.status is not ApplicationStatus.PENDING:
        raise Conflict(f"该申请{application.status.label}，不能再答复")
    text = reason.strip()
    if not 2 <= len(text) <= 2000:
        raise InvalidInput.about("请填写答复理由（2 至 2000 字）", "reason", "请填写答复理由")
    application.status = ApplicationStatus.APPROVED if approve else ApplicationStatus.REFUSED
    application.reason = text
    application.decided_at = now
    application.decided_by = principal.name
    audit.record(
        session,
        principal.actor,
        "open.application_approved" if approve else "open.application_refused",
        object_type="open_application",
        object_id=application.id,
        before={"status": ApplicationStatus.PENDING.value},
        after={"status": application.status.value, "reason": text},
    )
    return application


def revoke_application(
    session: Session, principal: Principal, application_id: int, *, reason: str, now: datetime
) -> OpenApplication:
    """Take back an approved application: its key no longer reaches the dataset."""
    application = _reviewable(session, principal, application_id)
    if application.status is not ApplicationStatus.APPROVED:
        raise Conflict("只能撤销已批准的申请")
    text = reason.strip()
    if not 2 <= len(text) <= 2000:
        raise InvalidInput.about("请填写撤销理由（2 至 2000 字）", "reason", "请填写撤销理由")
    application.status = ApplicationStatus.REVOKED
    application.reason = text
    application.decided_at = now
    application.decided_by = principal.name
    audit.record(
        session,
        principal.actor,
        "open.application_revoked",
        object_type="open_application",
        object_id=application.id,
        before={"status": ApplicationStatus.APPROVED.value},
        after={"status": ApplicationStatus.REVOKED.value, "reason": text},
    )
    return application


@dataclass(frozen=True)
class ApplicationView:
    application: OpenApplication
    dataset_title: str
    dataset_slug: str | None
    email: str
    key_name: str


def _views(session: Session, stmt: object) -> list[ApplicationView]:
    from govshare.catalog.models import Resource

    rows = session.execute(
        stmt.add_columns(Resource.name, Resource.code, OpenDeveloper.email, OpenApiKey.name)  # type: ignore[attr-defined]
        .join(Resource, Resource.id == OpenApplication.resource_id)
        .join(OpenDeveloper, OpenDeveloper.id == OpenApplication.developer_id)
        .join(OpenApiKey, OpenApiKey.id == OpenApplication.key_id)
        .order_by(OpenApplication.id.desc())
    )
    return [
        ApplicationView(a, str(title), ds.slug_of(str(code)) if code else None, email, key)
        for a, title, code, email, key in rows
    ]


def list_own_applications(session: Session, developer_id: int) -> list[ApplicationView]:
    return _views(
        session, select(OpenApplication).where(OpenApplication.developer_id == developer_id)
    )


def list_department_applications(session: Session, principal: Principal) -> list[ApplicationView]:
    """The applications the caller's department answers (all of them for the bureau)."""
    stmt = select(OpenApplication)
    if not principal.is_admin:
        stmt = stmt.where(OpenApplication.department_id == principal.department_id)
    return _views(session, stmt)
