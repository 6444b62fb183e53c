"""The developer centre's pages (开发者中心) under ``/open/developer``: registration,
the confirmation link, sign-in and sign-out, API keys (the secret shown once), usage
per day as a chart, and applications for 有条件开放 datasets.

Public routes (no console permission): a developer is recognised by the
``govshare_dev`` cookie (HttpOnly, SameSite=Lax, path ``/open/``), never by the console's
session. Every form carries a CSRF token: the session's once signed in, before that a
double-submit token that must match the ``govshare_dev_csrf`` cookie, as the console's
sign-in does. Registrations and sign-ins are limited per address (see
:mod:`govshare.opendata.gate`).
"""

from __future__ import annotations

import secrets
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from govshare.deps import SessionDep
from govshare.errors import GovshareError
from govshare.ids import Id
from govshare.opendata import datasets as ds
from govshare.opendata import developers as dev
from govshare.opendata import gate
from govshare.opendata.api import Anyone
from govshare.opendata.pages import render_public
from govshare.rules.clock import china_date
from govshare.security.crypto import constant_time_equal
from govshare.web.forms import FormDep, redirect, secure_cookies, text

router = APIRouter(tags=["opendata"], include_in_schema=False)

DEV_COOKIE = "govshare_dev"
CSRF_COOKIE = "govshare_dev_csrf"
HOME = "/open/developer"


def _now(request: Request) -> Any:
    return request.app.state.open_gate.now()


def _remote(request: Request) -> str | None:
    return request.client.host if request.client else None


def _signed_in(request: Request, db: Session) -> dev.DeveloperSession | None:
    token = request.cookies.get(DEV_COOKIE)
    return dev.session_of(db, token, now=_now(request)) if token else None


def _csrf_ok(request: Request, form: Any, current: dev.DeveloperSession | None) -> bool:
    sent = text(form, "csrf_token")
    expected = current.csrf_token if current is not None else request.cookies.get(CSRF_COOKIE, "")
    return bool(sent) and bool(expected) and constant_time_equal(sent, expected)


def _anonymous_page(
    request: Request, *, status_code: int = 200, error: str = "", notice: str = "", **ctx: Any
) -> Response:
    token = request.cookies.get(CSRF_COOKIE) or secrets.token_urlsafe(24)
    response = render_public(
        request,
        "open/developer_start.html",
        status_code=status_code,
        csrf_token=token,
        error=error,
        notice=notice,
        **ctx,
    )
    response.set_cookie(
        CSRF_COOKIE,
        token,
        max_age=3600,
        httponly=True,
        samesite="strict",
        path="/open/developer",
        secure=secure_cookies(request),
    )
    return response


def _centre(
    request: Request,
    db: Session,
    current: dev.DeveloperSession,
    *,
    status_code: int = 200,
    error: str = "",
    notice: str = "",
    new_secret: str = "",
) -> Response:
    developer = current.developer
    today = china_date(_now(request))
    settings = request.app.state.settings
    daily = dev.usage(db, developer.id, today=today)
    chart = {
        "type": "line",
        "labels": [d.day.strftime("%m-%d") for d in daily],
        "series": [
            {"name": "调用次数", "values": [d.calls for d in daily]},
            {"name": "返回行数", "values": [d.rows for d in daily]},
        ],
    }
    return render_public(
        request,
        "open/developer.html",
        status_code=status_code,
        developer=developer,
        csrf_token=current.csrf_token,
        keys=dev.list_keys(db, developer.id),
        used_today=dev.key_usage_today(db, developer.id, today),
        applications=dev.list_own_applications(db, developer.id),
        usage_chart=chart,
        default_quota=settings.open_key_daily_quota,
        default_per_minute=settings.open_key_per_minute,
        error=error,
        notice=notice,
        new_secret=new_secret,
        base_url=str(request.base_url).rstrip("/"),
    )


def _expired(request: Request) -> Response:
    return _anonymous_page(request, status_code=400, error="页面已过期，请刷新后重试")


def _too_many_attempts(request: Request, email: str) -> Response | None:
    """The sign-in page with 429 when the address has tried too often this hour."""
    try:
        request.app.state.open_gate.check_auth_attempt(_remote(request))
    except gate.Refused as exc:
        page = _anonymous_page(request, status_code=429, error=exc.message, email=email)
        page.headers.update(exc.headers)
        return page
    return None


@router.get("/open/developer", name="open_developer")
def developer_home(request: Request, db: SessionDep, _anyone: Anyone) -> Response:
    """开发者中心: sign-in and registration, or the signed-in developer's keys and usage."""
    current = _signed_in(request, db)
    if current is None:
        return _anonymous_page(request)
    return _centre(request, db, current)


@router.post("/open/developer/register", name="open_developer_register")
def register(request: Request, form: FormDep, db: SessionDep, _anyone: Anyone) -> Response:
    """注册: e-mail and password; the confirmation link goes to the outbox."""
    if not _csrf_ok(request, form, None):
        return _expired(request)
    email = text(form, "email")
    if (refused := _too_many_attempts(request, email)) is not None:
        return refused
    password = form.get("password")
    settings = request.app.state.settings
    try:
        dev.register(
            db,
            email=email,
            password=password if isinstance(password, str) else "",
            base_url=str(request.base_url).rstrip("/"),
            now=_now(request),
            demo=settings.demo,
            remote_addr=_remote(request),
        )
    except GovshareError as exc:
        db.rollback()
        return _anonymous_page(request, status_code=exc.status, error=exc.message, email=email)
    return _anonymous_page(
        request,
        notice="注册成功。确认邮件已发出，请打开邮件中的链接确认邮箱后登录。",
        email=email,
    )


@router.get("/open/developer/confirm", name="open_developer_confirm")
def confirm(request: Request, db: SessionDep, _anyone: Anyone, token: str = "") -> Response:
    """确认邮箱: the one-time link of the confirmation mail."""
    try:
        developer = dev.confirm(db, token[:200], now=_now(request))
    except GovshareError as exc:
        db.rollback()
        return _anonymous_page(request, status_code=exc.status, error=exc.message)
    return _anonymous_page(request, notice="邮箱已确认，请登录开发者中心。", email=developer.email)


@router.post("/open/developer/login", name="open_developer_login")
def login(request: Request, form: FormDep, db: SessionDep, _anyone: Anyone) -> Response:
    """登录: opens a developer session (cookie ``govshare_dev``)."""
    if not _csrf_ok(request, form, None):
        return _expired(request)
    email = text(form, "email")
    if (refused := _too_many_attempts(request, email)) is not None:
        return refused
    password = form.get("password")
    try:
        developer = dev.authenticate(
            db,
            email=email,
            password=password if isinstance(password, str) else "",
            remote_addr=_remote(request),
        )
    except GovshareError as exc:
        db.commit()  # keep the failure's audit entry
        return _anonymous_page(request, status_code=exc.status, error=exc.message, email=email)
    token = dev.open_session(db, developer, now=_now(request))
    db.commit()
    response = redirect(HOME)
    response.set_cookie(
        DEV_COOKIE,
        token,
        max_age=dev.SESSION_HOURS * 3600,
        httponly=True,
        samesite="lax",
        secure=secure_cookies(request),
        path="/open/",
    )
    response.delete_cookie(CSRF_COOKIE, path="/open/developer")
    return response


@router.post("/open/developer/logout", name="open_developer_logout")
def logout(request: Request, form: FormDep, db: SessionDep, _anyone: Anyone) -> Response:
    """退出登录."""
    current = _signed_in(request, db)
    if current is not None and _csrf_ok(request, form, current):
        dev.close_session(db, request.cookies.get(DEV_COOKIE, ""), now=_now(request))
        db.commit()
    response = redirect(HOME)
    response.delete_cookie(DEV_COOKIE, path="/open/")
    return response


@router.post("/open/developer/keys", name="open_developer_key_create")
def create_key(request: Request, form: FormDep, db: SessionDep, _anyone: Anyone) -> Response:
    """新建密钥: the secret is shown on the answer page, once."""
    current = _signed_in(request, db)
    if current is None:
        return redirect(HOME)
    if not _csrf_ok(request, form, current):
        return _centre(request, db, current, status_code=400, error="页面已过期，请刷新后重试")
    try:
        _key, secret = dev.create_key(
            db,
            request.app.state.settings,
            current.developer,
            name=text(form, "name"),
            now=_now(request),
            remote_addr=_remote(request),
        )
    except GovshareError as exc:
        db.rollback()
        return _centre(request, db, current, status_code=exc.status, error=exc.message)
    db.commit()
    response = _centre(
        request,
        db,
        current,
        notice="密钥已创建。请立即复制保存，它只显示这一次。",
        new_secret=secret,
    )
    response.headers["Cache-Control"] = "no-store"
    return response


@router.post("/open/developer/keys/{key_id}/revoke", name="open_developer_key_revoke")
def revoke_key(
    request: Request, key_id: Id, form: FormDep, db: SessionDep, _anyone: Anyone
) -> Response:
    """撤销密钥: the key stops working at once."""
    current = _signed_in(request, db)
    if current is None:
        return redirect(HOME)
    if not _csrf_ok(request, form, current):
        return _centre(request, db, current, status_code=400, error="页面已过期，请刷新后重试")
    try:
        dev.revoke_key(
            db, current.developer, key_id, now=_now(request), remote_addr=_remote(request)
        )
    except GovshareError as exc:
        db.rollback()
        return _centre(request, db, current, status_code=exc.status, error=exc.message)
    db.commit()
    return _centre(request, db, current, notice="密钥已撤销。")


@router.get("/open/developer/apply", name="open_developer_apply_form")
def apply_form(request: Request, db: SessionDep, _anyone: Anyone, dataset: str = "") -> Response:
    """申请使用: the application form of a 有条件开放 dataset."""
    current = _signed_in(request, db)
    if current is None:
        return _anonymous_page(request, notice="申请使用有条件开放数据，请先登录开发者中心。")
    found = ds.get_dataset(db, dataset[:200])
    if found is None or found.open_type is not ds.OpenType.CONDITIONAL:
        return _centre(request, db, current, status_code=404, error="没有这个有条件开放数据集")
    keys = [k for k in dev.list_keys(db, current.developer.id) if k.revoked_at is None]
    return render_public(
        request,
        "open/developer_apply.html",
        dataset=found,
        keys=keys,
        csrf_token=current.csrf_token,
        error="",
    )


@router.post("/open/developer/applications", name="open_developer_apply")
def apply(request: Request, form: FormDep, db: SessionDep, _anyone: Anyone) -> Response:
    """提交申请: for one key; the providing department answers in the console."""
    current = _signed_in(request, db)
    if current is None:
        return redirect(HOME)
    if not _csrf_ok(request, form, current):
        return _centre(request, db, current, status_code=400, error="页面已过期，请刷新后重试")
    raw_key = text(form, "key_id")
    try:
        dev.apply(
            db,
            request.app.state.settings,
            current.developer,
            dataset_key=text(form, "dataset")[:200],
            key_id=int(raw_key) if raw_key.isdigit() and len(raw_key) < 10 else 0,
            purpose=text(form, "purpose"),
            now=_now(request),
            remote_addr=_remote(request),
        )
    except GovshareError as exc:
        db.rollback()
        return _centre(request, db, current, status_code=exc.status, error=exc.message)
    db.commit()
    return _centre(request, db, current, notice="申请已提交，提供部门将在规定工作日内答复。")
