"""Console sign-in, sign-out and the dashboard (首页).

Sign-in uses a console session cookie (HttpOnly, SameSite=Lax) and, because there is
no session yet to carry a CSRF token, a double-submit token of its own: the login form
and a short-lived cookie must agree, so another site cannot sign a browser in.
"""

from __future__ import annotations

import secrets
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import Response
from markupsafe import Markup

from govshare.catalog import search
from govshare.catalog.codes import ResourceStatus, SharingType
from govshare.catalog.service import CodeTables
from govshare.catalog.views import facet_values
from govshare.deps import SESSION_COOKIE, Authenticated, Public, SessionDep, SettingsDep
from govshare.errors import GovshareError, InvalidInput, console_text
from govshare.security import audit, service, totp
from govshare.security.crypto import constant_time_equal
from govshare.security.errors import PasswordExpired, TotpEnrolmentRequired
from govshare.security.models import SessionKind, User
from govshare.security.passwords import PasswordPolicy
from govshare.security.roles import Permission
from govshare.security.service import Principal
from govshare.web.forms import (
    NO_ERRORS,
    FormDep,
    FormErrors,
    redirect,
    render,
    safe_next,
    secure_cookies,
    text,
)

router = APIRouter(include_in_schema=False)

LOGIN_COOKIE = "govshare_login"


def _login_page(
    request: Request,
    caller: Principal,
    *,
    next_url: str,
    username: str = "",
    error: str = "",
    status_code: int = 200,
) -> Response:
    return _sign_in_form(
        request,
        "login.html",
        caller,
        status_code=status_code,
        next_url=next_url,
        username=username,
        error=error,
    )


def _sign_in_form(
    request: Request, template: str, caller: Principal, *, status_code: int, **context: Any
) -> Response:
    """A page of the sign-in forms (login, password change, TOTP enrolment) with their
    double-submit token, as a hidden field and a cookie scoped to /login: a user who is
    not signed in (or whose password expired) has no session to carry a CSRF token."""
    token = secrets.token_urlsafe(24)
    response = render(
        request, template, caller, status_code=status_code, login_token=token, **context
    )
    response.set_cookie(
        LOGIN_COOKIE,
        token,
        max_age=3600,
        httponly=True,
        samesite="strict",
        path="/login",
        secure=secure_cookies(request),
    )
    return response


def _login_token_ok(request: Request, form: Any) -> bool:
    sent, expected = text(form, "login_token"), request.cookies.get(LOGIN_COOKIE, "")
    return bool(sent and expected and constant_time_equal(sent, expected))


@router.get("/login")
def login_form(request: Request, caller: Public, next: str = "/") -> Response:
    if caller.kind == "user":
        return redirect(safe_next(next))
    return _login_page(request, caller, next_url=safe_next(next))


@router.post("/login")
def login(
    request: Request, form: FormDep, db: SessionDep, settings: SettingsDep, caller: Public
) -> Response:
    username, password = text(form, "username"), form.get("password")
    next_url = safe_next(text(form, "next"))
    if not _login_token_ok(request, form):
        return _login_page(
            request,
            caller,
            next_url=next_url,
            username=username,
            status_code=400,
            error="登录页面已过期，请重新输入用户名和密码",
        )
    if not username or not isinstance(password, str) or not password:
        return _login_page(
            request,
            caller,
            next_url=next_url,
            username=username,
            status_code=400,
            error="请输入用户名和密码",
        )
    remote = request.client.host if request.client else None
    try:
        user = service.authenticate(
            db, settings, username, password, remote, totp_code=text(form, "totp") or None
        )
    except PasswordExpired:
        db.commit()  # its audit entry
        return redirect(f"/login/password?expired=1&username={quote(username)}")
    except TotpEnrolmentRequired:
        db.commit()  # its audit entry
        return redirect(f"/login/totp?required=1&username={quote(username)}")
    except GovshareError as exc:
        db.commit()  # keep the failure count and its audit entry
        page = _login_page(
            request,
            caller,
            next_url=next_url,
            username=username,
            error=console_text(exc.message),
            status_code=exc.status,
        )
        page.headers.update(exc.headers)
        return page
    token, _auth = service.open_session(db, settings, user, SessionKind.CONSOLE)
    # Commit before answering: the browser follows the redirect at once, and the
    # request-scoped session would otherwise commit only after the response is sent.
    db.commit()
    response = redirect(next_url)
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=settings.token_ttl_minutes * 60,
        httponly=True,
        samesite="lax",
        secure=secure_cookies(request),
        path="/",
    )
    response.delete_cookie(LOGIN_COOKIE, path="/login")
    return response


def _password_page(
    request: Request,
    caller: Principal,
    *,
    username: str,
    expired: bool = False,
    errors: FormErrors = NO_ERRORS,
    status_code: int = 200,
) -> Response:
    return _sign_in_form(
        request,
        "password.html",
        caller,
        status_code=status_code,
        username=username,
        expired=expired,
        errors=errors,
        policy=password_policy(request),
    )


def password_policy(request: Request) -> str:
    """The policy in words, for the form's hint."""
    policy = PasswordPolicy.from_settings(request.app.state.settings)
    parts = [
        f"至少{policy.min_length}位",
        f"包含小写字母、大写字母、数字、其他符号中的至少{policy.min_classes}类",
        "不得包含用户名",
    ]
    if policy.history:
        parts.append(f"不得与最近{policy.history}次用过的密码相同")
    if policy.max_age_days:
        parts.append(f"每{policy.max_age_days}天须更换")
    return "，".join(parts)


@router.get("/login/password")
def password_form(
    request: Request, caller: Public, username: str = "", expired: bool = False
) -> Response:
    if caller.kind == "user":
        username = caller.name
    return _password_page(request, caller, username=username[:50], expired=expired)


@router.post("/login/password")
def change_password(
    request: Request, form: FormDep, db: SessionDep, settings: SettingsDep, caller: Public
) -> Response:
    username = caller.name if caller.kind == "user" else text(form, "username")
    old, new, again = (form.get(k) for k in ("old_password", "new_password", "new_password2"))
    problems = []
    if not _login_token_ok(request, form):
        problems.append({"field": "username", "message": "页面已过期，请重新填写"})
    if not username:
        problems.append({"field": "username", "message": "请输入用户名"})
    for name, value, label in (
        ("old_password", old, "当前密码"),
        ("new_password", new, "新密码"),
        ("new_password2", again, "再次输入新密码"),
    ):
        if not isinstance(value, str) or not value:
            problems.append({"field": name, "message": f"请输入{label}"})
    if not problems and new != again:
        problems.append({"field": "new_password2", "message": "两次输入的新密码不一致"})
    if not problems and isinstance(old, str) and isinstance(new, str):
        remote = request.client.host if request.client else None
        try:
            service.change_own_password(db, settings, username, old, new, remote)
        except InvalidInput as exc:
            db.commit()  # the old password's check (a sign-in's counters) stands
            problems = exc.details or [{"field": "new_password", "message": exc.message}]
        except GovshareError as exc:
            db.commit()  # keep the failure count and its audit entry
            problems = [{"field": "old_password", "message": console_text(exc.message)}]
        else:
            db.commit()
            response = redirect("/login?done=password_changed")
            if caller.kind == "user":  # sign in again with the new password
                if cookie := request.cookies.get(SESSION_COOKIE):
                    service.close_session(db, cookie)
                    db.commit()
                response.delete_cookie(SESSION_COOKIE, path="/")
            return response
    errors = FormErrors("密码未修改", problems, label=lambda f: _PASSWORD_LABELS.get(f, f))
    return _password_page(
        request,
        caller,
        username=username[:50],
        expired=text(form, "expired") == "1",
        errors=errors,
        status_code=422,
    )


_PASSWORD_LABELS = {
    "username": "用户名",
    "old_password": "当前密码",
    "new_password": "新密码",
    "new_password2": "再次输入新密码",
}


# -- second factor (动态口令) ---------------------------------------------------------------


def _totp_page(
    request: Request,
    caller: Principal,
    *,
    username: str = "",
    required: bool = False,
    enrolment: dict[str, Any] | None = None,
    recovery_codes: list[str] | None = None,
    continue_to: str = "/",
    errors: FormErrors = NO_ERRORS,
    status_code: int = 200,
) -> Response:
    return _sign_in_form(
        request,
        "totp.html",
        caller,
        status_code=status_code,
        username=username[:50],
        required=required,
        enrolment=enrolment,
        recovery_codes=recovery_codes,
        continue_to=continue_to,
        errors=errors,
    )


def _enrolment(request: Request, user_id: int, username: str, secret: str) -> dict[str, Any]:
    """What the second step shows: the QR code, the secret typed by hand, and the sealed
    token that carries the secret to the confirmation (nothing is stored before)."""
    uri = totp.provisioning_uri(secret, username)
    return {
        "token": totp.enrolment_token(request.app.state.settings.secret_key, user_id, secret),
        "qr": Markup(totp.qr_svg(uri)),  # noqa: S704 - segno's SVG of our own address
        "secret": " ".join(secret[i : i + 4] for i in range(0, len(secret), 4)),
        "username": username,
    }


@router.get("/login/totp")
def totp_form(
    request: Request, caller: Public, username: str = "", required: bool = False
) -> Response:
    """启用动态口令: the password, then a code from the authenticator app."""
    if caller.kind == "user":
        username = caller.name
    return _totp_page(request, caller, username=username, required=required)


@router.post("/login/totp")
def totp_enrol(
    request: Request, form: FormDep, db: SessionDep, settings: SettingsDep, caller: Public
) -> Response:
    def again(field: str, message: str, **kw: Any) -> Response:
        errors = FormErrors(
            "动态口令未启用",
            [{"field": field, "message": message}],
            label=lambda f: _TOTP_LABELS.get(f, f),
        )
        return _totp_page(request, caller, errors=errors, status_code=422, **kw)

    username = caller.name if caller.kind == "user" else text(form, "username")
    if not _login_token_ok(request, form):
        return again("username", "页面已过期，请重新填写", username=username)
    if text(form, "step") == "confirm":
        try:
            offered = totp.open_enrolment(settings.secret_key, text(form, "enrolment"))
        except totp.EnrolmentExpired:
            return again("username", "页面已过期（超过10分钟），请重新开始", username=username)
        user = db.get(User, offered.user_id)
        if user is None:
            return again("username", "页面已过期，请重新开始", username=username)
        enrolment = _enrolment(request, user.id, user.username, offered.secret)
        actor = audit.Actor(
            name=user.username,
            kind="user",
            department_id=user.department_id,
            remote_addr=request.client.host if request.client else None,
        )
        try:
            codes = service.enable_totp(
                db, settings, user, offered.secret, text(form, "totp"), actor
            )
        except InvalidInput as exc:
            field = exc.details[0]["field"] if exc.details else "totp"
            return again(field, exc.message, username=user.username, enrolment=enrolment)
        db.commit()
        # The recovery codes, this once; then home (a user who chose it is signed in
        # already) or on to sign in with the new factor.
        shown = _totp_page(
            request,
            caller,
            username=user.username,
            recovery_codes=codes,
            continue_to="/?done=totp_enabled"
            if caller.kind == "user"
            else "/login?done=totp_enabled",
        )
        shown.headers["Cache-Control"] = "no-store"  # the codes stay out of any cache
        return shown
    password = form.get("password")
    if not username:
        return again("username", "请输入用户名")
    if not isinstance(password, str) or not password:
        return again("password", "请输入密码", username=username)
    remote = request.client.host if request.client else None
    try:
        user = service.authenticate(db, settings, username, password, remote, allow_expired=True)
    except GovshareError as exc:
        db.commit()  # keep the failure count and its audit entry
        return again("password", console_text(exc.message), username=username)
    db.commit()
    if user.totp_secret:
        return again(
            "username", "该账号已启用动态口令；更换手机请联系平台管理员重置", username=username
        )
    return _totp_page(
        request,
        caller,
        username=username,
        enrolment=_enrolment(request, user.id, user.username, totp.new_secret()),
    )


_TOTP_LABELS = {"username": "用户名", "password": "密码", "totp": "动态口令"}


@router.post("/logout")
def logout(request: Request, db: SessionDep, caller: Authenticated) -> Response:
    if cookie := request.cookies.get(SESSION_COOKIE):
        service.close_session(db, cookie)
    audit.record(db, caller.actor, "auth.logout", object_type="user", object_id=caller.user_id)
    db.commit()
    response = redirect("/login?done=logged_out")
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


# -- dashboard -------------------------------------------------------------------------


SHARING_COLORS = {"1": "#2f7d4f", "2": "#1f5fa8", "3": "#c23531"}


def _chart(
    kind: str, title: str, pairs: list[tuple[str, int]], colors: list[str] | None = None
) -> dict[str, Any]:
    """What app.js needs to draw one ECharts chart."""
    spec: dict[str, Any] = {
        "type": kind,
        "title": title,
        "labels": [p[0] for p in pairs],
        "values": [p[1] for p in pairs],
    }
    if colors:
        spec["colors"] = colors
    return spec


def _status_counts(db: SessionDep, caller: Principal) -> dict[ResourceStatus, int]:
    """Entries per status that the caller answers for: all of them for the platform,
    the own department's otherwise. One filtered count per status through search."""
    counts: dict[ResourceStatus, int] = {}
    for status in ResourceStatus:
        sq = search.SearchQuery(
            scope="all" if caller.is_admin else "mine",
            status=status,
            limit=1,
            viewer_department_id=caller.department_id,
            viewer_is_admin=caller.is_admin,
        )
        counts[status] = search.search(db, sq).total
    return counts


@router.get("/")
def dashboard(request: Request, db: SessionDep, caller: Authenticated) -> Response:
    context: dict[str, Any] = {"charts": [], "cards": []}
    if caller.can(Permission.CATALOG_READ):
        sq = search.SearchQuery(
            scope="catalog",
            limit=1,
            viewer_department_id=caller.department_id,
            viewer_is_admin=caller.is_admin,
        )
        result = search.search(db, sq)
        facets = facet_values(db, result.facets, CodeTables(db))
        statuses = _status_counts(db, caller)
        by_dept = sorted(
            ((f.label, f.count) for f in facets.get("department", [])), key=lambda p: -p[1]
        )
        sharing = {f.value: f.count for f in facets.get("sharing_type", [])}
        scope_name = "全平台" if caller.is_admin else "本部门"
        context["charts"] = [
            _chart("bar", "各部门已发布目录数", by_dept[:20]),
            _chart(
                "pie",
                "共享类型分布（已发布）",
                [(t.label, sharing.get(t.value, 0)) for t in SharingType],
                colors=[SHARING_COLORS[t.value] for t in SharingType],
            ),
            _chart("column", f"{scope_name}目录状态", [(s.label, n) for s, n in statuses.items()]),
        ]
        # A card leads to the list it counts: the platform's entries for an admin, the
        # department's otherwise.
        own_list = "/catalog?scope=all" if caller.is_admin else "/catalog/mine"
        cards = [
            ("共享目录（已发布）", result.total, "/catalog"),
            ("提供部门", len(by_dept), "/catalog"),
            (f"{scope_name}目录", sum(statuses.values()), own_list),
        ]
        if caller.can(Permission.CATALOG_REVIEW):
            cards.append(
                (
                    "待注册审核",
                    statuses[ResourceStatus.PENDING_REGISTRATION],
                    "/catalog/review?queue=registration",
                )
            )
        if caller.can(Permission.CATALOG_PUBLISH):
            cards.append(
                (
                    "待发布审核",
                    statuses[ResourceStatus.PENDING_PUBLICATION],
                    "/catalog/review?queue=publication",
                )
            )
        if caller.can(Permission.CATALOG_WRITE):
            cards.append(
                (
                    ResourceStatus.RETURNED.label,
                    statuses[ResourceStatus.RETURNED],
                    f"{own_list}{'&' if '?' in own_list else '?'}status=returned",
                )
            )
        context["cards"] = cards
    if caller.can(Permission.AUDIT_READ):
        context["cards"].append(("审计日志条数", audit.count_entries(db), "/audit"))
    return render(request, "dashboard.html", caller, **context)
