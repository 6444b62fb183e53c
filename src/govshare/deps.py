"""FastAPI dependencies shared by every router: the database session, the caller and
the permission each route needs.

Every route declares exactly one ``Require(...)``; ``tests/test_route_permissions.py``
walks the route table and fails on any route without one.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from govshare.config import Settings
from govshare.errors import NotAuthenticated
from govshare.security.crypto import constant_time_equal, string_to_sign
from govshare.security.errors import CsrfFailed, PermissionDenied
from govshare.security.models import SessionKind
from govshare.security.roles import Permission
from govshare.security.service import (
    ANONYMOUS,
    Principal,
    SignedRequest,
    principal_from_signature,
    principal_from_token,
)

SESSION_COOKIE = "govshare_session"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


async def get_settings(request: Request) -> Settings:
    # async: a plain function dependency would be run on the thread pool, one more
    # round trip per request for an attribute read.
    return request.app.state.settings  # type: ignore[no-any-return]


async def get_db(request: Request) -> AsyncIterator[Session]:
    """One unit of work per request: committed when the route returns normally.

    Opening a session does no I/O, so it happens on the event loop; ending it goes to
    the thread pool only when a transaction is still open (a route that committed its
    own work, as writing routes do, ends without another round trip)."""
    session = request.app.state.session_factory()
    try:
        yield session
    except BaseException:
        await _end(session, commit=False)
        raise
    await _end(session, commit=True)


async def _end(session: Session, *, commit: bool) -> None:
    # Any change since the route's own commit (an added object, a changed attribute)
    # has begun a transaction again, so an unchanged session has nothing to write.
    if session.in_transaction():
        await run_in_threadpool(_finish, session, commit)
    else:
        session.close()


def _finish(session: Session, commit: bool) -> None:
    try:
        if commit:
            session.commit()
        else:
            session.rollback()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


SettingsDep = Annotated[Settings, Depends(get_settings)]
# "function" scope: commit before the response is sent, so a client that reads right
# after a 201 sees what it wrote.
SessionDep = Annotated[Session, Depends(get_db, scope="function")]


def _remote(request: Request) -> str | None:
    return request.client.host if request.client else None


def bearer_token(request: Request) -> str | None:
    """The token of an ``Authorization: Bearer …`` header; None for any other scheme.

    Only a bearer token replaces the console cookie (and with it the CSRF check): a
    cookie sent with Basic or any other scheme is still the cookie session.
    """
    auth = request.headers.get("authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip()
    return None


def signed_request(request: Request, body: bytes, app_key: str) -> SignedRequest:
    """The API-client signature headers of ``request`` with what they sign."""
    query = f"?{request.url.query}" if request.url.query else ""
    return SignedRequest(
        app_key=app_key,
        timestamp=request.headers.get("x-timestamp", ""),
        nonce=request.headers.get("x-nonce", ""),
        signature=request.headers.get("x-signature", ""),
        method=request.method,
        path_and_query=request.url.path + query,
        body_sha256=hashlib.sha256(body).hexdigest(),
        remote_addr=_remote(request),
    )


async def current_principal(request: Request, db: SessionDep, settings: SettingsDep) -> Principal:
    """Resolve the caller from a bearer token, an API-client or node signature, or a
    console session cookie (with CSRF on unsafe methods); anonymous otherwise."""
    cached: Principal | None = getattr(request.state, "principal", None)
    if cached is not None:
        return cached
    signed = request.headers.get("x-app-key") or request.headers.get("x-node-id")
    body = await request.body() if signed else b""
    # Database work blocks (SQLite may wait for a lock): never on the event loop.
    principal = await run_in_threadpool(_resolve, request, db, settings, body)
    # A user principal comes from a bearer token (which an invalid one never reaches
    # here) or from the cookie; the cookie path always needs the CSRF token.
    if (
        principal.kind == "user"
        and request.method not in SAFE_METHODS
        and bearer_token(request) is None
    ):
        await _check_csrf(request, principal)
    request.state.principal = principal
    return principal


def _resolve(request: Request, db: Session, settings: Settings, body: bytes) -> Principal:
    if (token := bearer_token(request)) is not None:
        found = principal_from_token(db, token, SessionKind.TOKEN, _remote(request))
        if found is None:
            raise NotAuthenticated("令牌无效或已过期 (invalid or expired token)")
        return found
    if app_key := request.headers.get("x-app-key"):
        principal = principal_from_signature(db, settings, signed_request(request, body, app_key))
        db.commit()  # the nonce must stay spent even if the route fails
        return principal
    if node_id := request.headers.get("x-node-id"):
        from govshare.exchange.service import principal_from_node_signature

        # A node signs the same string as an API client, with its own key.
        signed = signed_request(request, body, node_id)
        principal = principal_from_node_signature(
            db,
            settings,
            node_id=node_id,
            timestamp=signed.timestamp,
            nonce=signed.nonce,
            signature=signed.signature,
            signed=string_to_sign(
                signed.method,
                signed.path_and_query,
                signed.timestamp,
                signed.nonce,
                signed.body_sha256,
            ),
            remote_addr=signed.remote_addr,
        )
        db.commit()
        return principal
    if cookie := request.cookies.get(SESSION_COOKIE):
        found = principal_from_token(db, cookie, SessionKind.CONSOLE, _remote(request))
        if found is not None:
            return found
    return ANONYMOUS


async def _check_csrf(request: Request, principal: Principal) -> None:
    sent = request.headers.get(CSRF_HEADER)
    if sent is None and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        form = await request.form()
        value = form.get("csrf_token")
        sent = value if isinstance(value, str) else None
    if not sent or not principal.csrf_token or not constant_time_equal(sent, principal.csrf_token):
        raise CsrfFailed("页面已过期或请求来源不可信，请刷新后重试 (CSRF check failed)")


class Require:
    """A route's permission: ``dependencies=[Require(Permission.CATALOG_READ)]`` or as a
    parameter type via ``Annotated[Principal, Depends(Require(...))]``."""

    def __init__(self, permission: Permission) -> None:
        self.permission = permission

    async def __call__(
        self, principal: Annotated[Principal, Depends(current_principal)]
    ) -> Principal:
        if self.permission is Permission.PUBLIC:
            return principal
        if principal.kind == "anonymous":
            raise NotAuthenticated("请先登录 (authentication required)")
        if not principal.can(self.permission):
            raise PermissionDenied(
                f"缺少“{self.permission.label}”权限 (permission {self.permission.value} denied)"
            )
        return principal

    def __repr__(self) -> str:
        return f"Require({self.permission.value})"


# The caller, checked for one permission; use as a route parameter's type.
Public = Annotated[Principal, Depends(Require(Permission.PUBLIC))]
Authenticated = Annotated[Principal, Depends(Require(Permission.AUTHENTICATED))]
CatalogReader = Annotated[Principal, Depends(Require(Permission.CATALOG_READ))]
CatalogWriter = Annotated[Principal, Depends(Require(Permission.CATALOG_WRITE))]
CatalogReviewer = Annotated[Principal, Depends(Require(Permission.CATALOG_REVIEW))]
CatalogPublisher = Annotated[Principal, Depends(Require(Permission.CATALOG_PUBLISH))]
CatalogAdmin = Annotated[Principal, Depends(Require(Permission.CATALOG_ADMIN))]
DemandWriter = Annotated[Principal, Depends(Require(Permission.DEMAND_WRITE))]
SystemWriter = Annotated[Principal, Depends(Require(Permission.SYSTEM_WRITE))]
DutyReader = Annotated[Principal, Depends(Require(Permission.DUTY_READ))]
DutyWriter = Annotated[Principal, Depends(Require(Permission.DUTY_WRITE))]
DepartmentAdmin = Annotated[Principal, Depends(Require(Permission.DEPARTMENT_ADMIN))]
UserAdmin = Annotated[Principal, Depends(Require(Permission.USER_ADMIN))]
AuditReader = Annotated[Principal, Depends(Require(Permission.AUDIT_READ))]
ExchangeReader = Annotated[Principal, Depends(Require(Permission.EXCHANGE_READ))]
ExchangeAdmin = Annotated[Principal, Depends(Require(Permission.EXCHANGE_ADMIN))]
ExchangeNode = Annotated[Principal, Depends(Require(Permission.EXCHANGE_NODE))]
SharingReader = Annotated[Principal, Depends(Require(Permission.SHARING_READ))]
SharingApplicant = Annotated[Principal, Depends(Require(Permission.SHARING_APPLY))]
SharingReviewer = Annotated[Principal, Depends(Require(Permission.SHARING_REVIEW))]
SharingArbiter = Annotated[Principal, Depends(Require(Permission.SHARING_ARBITRATE))]
SharingStoreAdmin = Annotated[Principal, Depends(Require(Permission.SHARING_STORE))]
CalendarAdmin = Annotated[Principal, Depends(Require(Permission.CALENDAR_ADMIN))]
DocumentReader = Annotated[Principal, Depends(Require(Permission.DOCUMENT_READ))]
DocumentSender = Annotated[Principal, Depends(Require(Permission.DOCUMENT_SEND))]
DocumentReceiver = Annotated[Principal, Depends(Require(Permission.DOCUMENT_RECEIVE))]
