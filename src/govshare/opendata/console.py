"""Staff side of the developer centre, in the console and the JSON API:

- 开放数据申请 (``/opendata/applications``): the providing department's resource admin
  (``sharing.review``) approves, refuses or revokes developers' applications for its
  有条件开放 datasets, each with a reason; the bureau (platform admin) sees them all.
- 开发者密钥 (``/opendata/keys``, ``/api/v1/open/keys``): the bureau (``user.admin``, a
  platform-admin permission) sees every developer key and sets a key's own daily quota
  and per-minute limit.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field
from sqlalchemy import select

from govshare.deps import SessionDep, SharingReviewer, UserAdmin
from govshare.errors import GovshareError
from govshare.ids import MAX_ID, Id
from govshare.opendata import developers as dev
from govshare.opendata.models import OpenApiKey, OpenDeveloper
from govshare.security.service import Principal
from govshare.web.forms import FormDep, redirect, render, text

router = APIRouter(include_in_schema=False)
api = APIRouter(prefix="/open", tags=["opendata"])

NOTICES = {
    "approved": "已批准该申请，开发者的密钥现在可以获取该数据集。",
    "refused": "已答复不予批准。",
    "revoked": "已撤销该申请，对应密钥不再能获取该数据集。",
    "limits": "已更新密钥限额。",
}


def _applications_page(
    request: Request, db: Any, caller: Principal, *, error: str = "", status_code: int = 200
) -> Response:
    return render(
        request,
        "opendata/applications.html",
        caller,
        status_code=status_code,
        nav="/opendata/applications",
        applications=dev.list_department_applications(db, caller),
        notice=NOTICES.get(request.query_params.get("done", ""), ""),
        error=error,
    )


@router.get("/opendata/applications")
def applications_page(request: Request, db: SessionDep, caller: SharingReviewer) -> Response:
    """开放数据申请: the applications for the department's 有条件开放 datasets."""
    return _applications_page(request, db, caller)


@router.post("/opendata/applications/{application_id}/decide")
def decide(
    request: Request, application_id: Id, form: FormDep, db: SessionDep, caller: SharingReviewer
) -> Response:
    """批准 / 不批准, with a reason."""
    approve = text(form, "decision") == "approve"
    try:
        dev.decide(
            db,
            caller,
            application_id,
            approve=approve,
            reason=text(form, "reason"),
            now=request.app.state.open_gate.now(),
        )
    except GovshareError as exc:
        db.rollback()
        return _applications_page(request, db, caller, error=exc.message, status_code=exc.status)
    db.commit()
    return redirect(f"/opendata/applications?done={'approved' if approve else 'refused'}")


@router.post("/opendata/applications/{application_id}/revoke")
def revoke(
    request: Request, application_id: Id, form: FormDep, db: SessionDep, caller: SharingReviewer
) -> Response:
    """撤销: the key no longer reaches the dataset."""
    try:
        dev.revoke_application(
            db,
            caller,
            application_id,
            reason=text(form, "reason"),
            now=request.app.state.open_gate.now(),
        )
    except GovshareError as exc:
        db.rollback()
        return _applications_page(request, db, caller, error=exc.message, status_code=exc.status)
    db.commit()
    return redirect("/opendata/applications?done=revoked")


# -- developer keys (the bureau) -------------------------------------------------------------


class KeyLimits(BaseModel):
    """A key's own limits; null returns to the settings' default."""

    daily_quota: Annotated[int, Field(ge=1, le=1_000_000_000)] | None = None
    per_minute: Annotated[int, Field(ge=1, le=MAX_ID)] | None = None


class DeveloperKeyPublic(BaseModel):
    id: int
    name: str
    prefix: str
    developer: str
    daily_quota: int | None
    per_minute: int | None
    revoked: bool


def _key_rows(db: Any) -> list[DeveloperKeyPublic]:
    rows = db.execute(
        select(OpenApiKey, OpenDeveloper.email)
        .join(OpenDeveloper, OpenDeveloper.id == OpenApiKey.developer_id)
        .order_by(OpenApiKey.id)
    )
    return [
        DeveloperKeyPublic(
            id=k.id,
            name=k.name,
            prefix=k.prefix,
            developer=email,
            daily_quota=k.daily_quota,
            per_minute=k.per_minute,
            revoked=k.revoked_at is not None,
        )
        for k, email in rows
    ]


@api.get("/keys", summary="开发者密钥及其限额")
def list_keys(db: SessionDep, _caller: UserAdmin) -> list[DeveloperKeyPublic]:
    return _key_rows(db)


@api.put("/keys/{key_id}/limits", summary="设置开发者密钥的每日额度和每分钟限额")
def set_limits(
    key_id: Id, body: KeyLimits, db: SessionDep, caller: UserAdmin
) -> DeveloperKeyPublic:
    dev.set_key_limits(db, caller, key_id, daily_quota=body.daily_quota, per_minute=body.per_minute)
    return next(k for k in _key_rows(db) if k.id == key_id)


@router.get("/opendata/keys")
def keys_page(request: Request, db: SessionDep, caller: UserAdmin) -> Response:
    """开发者密钥: every developer key with its limits (the bureau)."""
    settings = request.app.state.settings
    return render(
        request,
        "opendata/keys.html",
        caller,
        nav="/opendata/keys",
        keys=_key_rows(db),
        default_quota=settings.open_key_daily_quota,
        default_per_minute=settings.open_key_per_minute,
        notice=NOTICES.get(request.query_params.get("done", ""), ""),
    )


def _optional_count(raw: str) -> int | None:
    value = raw.strip()
    if not value:
        return None
    if not value.isdigit() or len(value) > 9 or int(value) < 1:
        raise ValueError(value)
    return int(value)


@router.post("/opendata/keys/{key_id}/limits")
def keys_limits(
    request: Request, key_id: Id, form: FormDep, db: SessionDep, caller: UserAdmin
) -> Response:
    """Set a key's limits from the console (blank: the default)."""
    try:
        quota = _optional_count(text(form, "daily_quota"))
        per_minute = _optional_count(text(form, "per_minute"))
    except ValueError:
        return render(
            request,
            "opendata/keys.html",
            caller,
            status_code=400,
            nav="/opendata/keys",
            keys=_key_rows(db),
            default_quota=request.app.state.settings.open_key_daily_quota,
            default_per_minute=request.app.state.settings.open_key_per_minute,
            notice="",
            error="额度须为正整数（留空表示使用默认值）",
        )
    dev.set_key_limits(db, caller, key_id, daily_quota=quota, per_minute=per_minute)
    db.commit()
    return redirect("/opendata/keys?done=limits")
