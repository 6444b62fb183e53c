"""数据需求征集 pages: the public's side under ``/open/demands`` (list, ask, vote, read
the answer; no login) and the console's under ``/open-demands`` (a department answers
the requests addressed to it; the platform assigns and hides).

Public forms carry no CSRF token (there is no session to forge); instead a post whose
browser says it came from another site (``Sec-Fetch-Site`` / ``Origin``) is refused, so
a third-party page cannot make its visitors vote. The service
(:mod:`govshare.opendata.demands`) holds the rules and the rate limits.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.datastructures import FormData

from govshare.db import session_scope
from govshare.deps import CatalogPublisher, SessionDep, SharingReader, SharingReviewer
from govshare.errors import GovshareError, InvalidInput, NotFound, TooManyRequests
from govshare.ids import MAX_ID, Id
from govshare.opendata import datasets as ds
from govshare.opendata import demands
from govshare.opendata.api import Anyone
from govshare.opendata.demands import AnswerForm, DemandForm
from govshare.opendata.models import AnswerKind, DemandStatus, OpenDemand
from govshare.opendata.pages import public_error, render_public
from govshare.security.models import Department
from govshare.security.roles import Permission
from govshare.security.service import Principal
from govshare.web.forms import NO_ERRORS, FormDep, FormErrors, redirect, render, text
from govshare.web.forms import validation_problems as problems_of

router = APIRouter(tags=["opendata"], include_in_schema=False)

PUBLIC_NOTICES = {
    "submitted": "需求已提交，部门答复后将在此公开",
    "voted": "已投票，感谢参与",
    "already": "您已为这条需求投过票",
}
CONSOLE_NOTICES = {
    "answered": "答复已公开",
    "assigned": "已分派给所选部门",
    "hidden": "需求已屏蔽，不再公开显示",
    "restored": "需求已恢复公开",
}
DEMAND_LABELS = {
    "title": "需求名称",
    "description": "需求描述",
    "department_id": "希望提供的部门",
    "nickname": "署名",
    "contact": "联系方式",
    "kind": "答复结论",
    "answer": "答复内容",
    "dataset": "已开放的数据集",
    "reason": "屏蔽理由",
}
STATUS_CLASSES = {
    DemandStatus.OPEN: "tag-warn",
    DemandStatus.ANSWERED: "tag-open",
    DemandStatus.HIDDEN: "tag-danger",
}


def _now() -> datetime:
    return datetime.now(UTC)


def _int(raw: str | None, default: int | None = None) -> int | None:
    if raw and raw.isdigit() and len(raw) <= len(str(MAX_ID)) and 0 < int(raw) <= MAX_ID:
        return int(raw)
    return default


def _status(raw: str | None) -> DemandStatus | None:
    return DemandStatus(raw) if raw in ("open", "answered") else None


def _departments(session: Session) -> list[tuple[int, str]]:
    return [(d.id, d.name) for d in session.scalars(select(Department).order_by(Department.name))]


def _dataset_title(session: Session, demand: OpenDemand) -> str | None:
    if not demand.dataset_code:
        return None
    found = ds.get_dataset(session, demand.dataset_code)
    return found.title if found else None


def _submitter(request: Request) -> str:
    host = request.client.host if request.client else None
    return demands.address_hash(request.app.state.settings.secret_key, host)


def _cross_site(request: Request) -> bool:
    """The browser says the form was posted from another site."""
    if request.headers.get("sec-fetch-site", "") == "cross-site":
        return True
    origin = request.headers.get("origin")
    if not origin or origin == "null":
        return origin == "null"
    return urlsplit(origin).netloc != request.url.netloc


def _labelled(exc: ValidationError) -> FormErrors:
    return FormErrors("提交的信息有误", problems_of(exc), label=lambda f: DEMAND_LABELS.get(f, f))


# -- public --------------------------------------------------------------------------------


@router.get("/open/demands", name="open_demands")
def demand_list(request: Request, _anyone: Anyone) -> Response:
    """需求列表: most voted or newest first, by state and department."""
    params = request.query_params
    sort = params.get("sort", "votes") if params.get("sort") in demands.SORTS else "votes"
    status = _status(params.get("status"))
    department_id = _int(params.get("department"))
    with session_scope(request.app.state.session_factory) as session:
        page = demands.public_list(
            session,
            sort=sort,
            status=status,
            department_id=department_id,
            page=_int(params.get("page"), 1) or 1,
        )
        context: dict[str, Any] = {
            "result": page,
            "sort": sort,
            "sorts": demands.SORTS,
            "status": status.value if status else "",
            "department": department_id or "",
            "departments": _departments(session),
            "status_classes": STATUS_CLASSES,
            "notice": "",
        }
        return render_public(request, "open/demands.html", **context)


def _ask_page(
    request: Request,
    session: Session,
    *,
    values: dict[str, str] | None = None,
    errors: FormErrors = NO_ERRORS,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
) -> Response:
    response = render_public(
        request,
        "open/demand_form.html",
        status_code=status_code,
        values=values or {},
        errors=errors,
        departments=_departments(session),
        limits=(demands.SUBMIT_PER_HOUR, demands.SUBMIT_PER_DAY),
    )
    response.headers.update(headers or {})
    return response


@router.get("/open/demands/new", name="open_demand_new")
def ask_form(request: Request, _anyone: Anyone) -> Response:
    """提出需求 (the form)."""
    with session_scope(request.app.state.session_factory) as session:
        department = _int(request.query_params.get("department"))
        return _ask_page(request, session, values={"department_id": str(department or "")})


def _form_values(form: FormData) -> dict[str, str]:
    return {name: text(form, name) for name in DemandForm.model_fields}


@router.post("/open/demands/new")
def ask(request: Request, form: FormDep, _anyone: Anyone) -> Response:
    """提出需求: stored as 待答复, or the form again with what is wrong."""
    if _cross_site(request):
        return public_error(request, 403, "请在本平台页面上提交 (cross-site form refused)")
    values = _form_values(form)
    with session_scope(request.app.state.session_factory) as session:
        try:
            data = DemandForm.model_validate(
                {**values, "department_id": values["department_id"] or None}
            )
            demand = demands.submit(session, data, _submitter(request), _now())
        except ValidationError as exc:
            return _ask_page(
                request, session, values=values, errors=_labelled(exc), status_code=422
            )
        except TooManyRequests as exc:
            return _ask_page(
                request,
                session,
                values=values,
                errors=FormErrors(exc.message),
                status_code=429,
                headers=exc.headers,
            )
        except GovshareError as exc:
            errors = FormErrors(exc.message, exc.details, label=lambda f: DEMAND_LABELS.get(f, f))
            return _ask_page(request, session, values=values, errors=errors, status_code=exc.status)
        demand_id = demand.id
    return redirect(f"/open/demands/{demand_id}?done=submitted")


@router.get("/open/demands/{demand_id}", name="open_demand")
def demand_page(request: Request, demand_id: Id, _anyone: Anyone) -> Response:
    """一条需求: what was asked, its votes and the department's answer."""
    with session_scope(request.app.state.session_factory) as session:
        demand = demands.public_demand(session, demand_id)
        return render_public(
            request,
            "open/demand.html",
            d=demand,
            dataset_title=_dataset_title(session, demand),
            dataset_slug=ds.slug_of(demand.dataset_code) if demand.dataset_code else None,
            status_classes=STATUS_CLASSES,
            notice=PUBLIC_NOTICES.get(request.query_params.get("done", ""), ""),
        )


@router.post("/open/demands/{demand_id}/vote")
def vote(request: Request, demand_id: Id, _anyone: Anyone) -> Response:
    """投票: once per network address."""
    if _cross_site(request):
        return public_error(request, 403, "请在本平台页面上投票 (cross-site form refused)")
    with session_scope(request.app.state.session_factory) as session:
        try:
            counted = demands.vote(session, demand_id, _submitter(request), _now())
        except TooManyRequests as exc:
            return public_error(request, 429, exc.message, headers=exc.headers)
    return redirect(f"/open/demands/{demand_id}?done={'voted' if counted else 'already'}")


# -- console -------------------------------------------------------------------------------


def _console_page(
    request: Request, template: str, caller: Principal, *, status_code: int = 200, **context: Any
) -> Response:
    return render(
        request,
        template,
        caller,
        status_code=status_code,
        nav="/open-demands",
        notice=CONSOLE_NOTICES.get(request.query_params.get("done", ""), ""),
        status_classes=STATUS_CLASSES,
        answer_kinds=[(k.value, k.label) for k in AnswerKind],
        **context,
    )


@router.get("/open-demands")
def console_list(request: Request, db: SessionDep, caller: SharingReader) -> Response:
    """数据需求: the requests addressed to the caller's department (all for the platform)."""
    params = request.query_params
    status = DemandStatus(params["status"]) if params.get("status") in set(DemandStatus) else None
    page = demands.console_list(db, caller, status=status, page=_int(params.get("page"), 1) or 1)
    return _console_page(
        request,
        "opendata/demands.html",
        caller,
        result=page,
        status=status.value if status else "",
        statuses=[
            (s.value, s.label) for s in DemandStatus if caller.is_admin or s.value != "hidden"
        ],
    )


def _detail(
    request: Request,
    db: Session,
    caller: Principal,
    demand: OpenDemand,
    *,
    errors: FormErrors = NO_ERRORS,
    values: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    return _console_page(
        request,
        "opendata/demand.html",
        caller,
        status_code=status_code,
        d=demand,
        dataset_title=_dataset_title(db, demand),
        dataset_slug=ds.slug_of(demand.dataset_code) if demand.dataset_code else None,
        departments=_departments(db) if caller.is_admin else [],
        can_answer=caller.can(Permission.SHARING_REVIEW)
        and (demand.department_id is not None or caller.is_admin)
        and demand.status is not DemandStatus.HIDDEN,
        errors=errors,
        values=values
        or {
            "kind": demand.answer_kind.value if demand.answer_kind else "",
            "answer": demand.answer,
            "dataset": demand.dataset_code or "",
        },
    )


def _refused(
    request: Request,
    db: Session,
    caller: Principal,
    demand_id: int,
    exc: GovshareError,
    values: dict[str, str] | None = None,
) -> Response:
    """The request's page again with why the step was refused (nothing stored)."""
    db.rollback()
    if isinstance(exc, NotFound):
        raise exc
    demand = demands.visible_demand(db, caller, demand_id)
    errors = FormErrors(exc.message, exc.details, label=lambda f: DEMAND_LABELS.get(f, f))
    return _detail(
        request, db, caller, demand, errors=errors, values=values, status_code=exc.status
    )


@router.get("/open-demands/{demand_id}")
def console_demand(
    request: Request, demand_id: Id, db: SessionDep, caller: SharingReader
) -> Response:
    """一条需求 with the answer form (and, for the platform, assign and hide)."""
    return _detail(request, db, caller, demands.visible_demand(db, caller, demand_id))


@router.post("/open-demands/{demand_id}/answer")
def answer(
    request: Request, demand_id: Id, form: FormDep, db: SessionDep, caller: SharingReviewer
) -> Response:
    """答复: published on the request's public page at once."""
    values = {name: text(form, name) for name in AnswerForm.model_fields}
    try:
        data = AnswerForm.model_validate(values)
        demands.answer(
            db, caller, demand_id, data, _now(), base_url=str(request.base_url).rstrip("/")
        )
    except ValidationError as exc:
        demand = demands.visible_demand(db, caller, demand_id)
        return _detail(
            request, db, caller, demand, errors=_labelled(exc), values=values, status_code=422
        )
    except GovshareError as exc:
        return _refused(request, db, caller, demand_id, exc, values)
    db.commit()
    return redirect(f"/open-demands/{demand_id}?done=answered")


@router.post("/open-demands/{demand_id}/assign")
def assign(
    request: Request, demand_id: Id, form: FormDep, db: SessionDep, caller: CatalogPublisher
) -> Response:
    """分派 (platform): to the department that should answer."""
    department_id = _int(text(form, "department_id"))
    try:
        if department_id is None:
            raise InvalidInput.about(
                "请选择部门 (department required)", "department_id", "请选择部门"
            )
        demands.assign(db, caller, demand_id, department_id)
    except GovshareError as exc:
        return _refused(request, db, caller, demand_id, exc)
    db.commit()
    return redirect(f"/open-demands/{demand_id}?done=assigned")


@router.post("/open-demands/{demand_id}/hide")
def hide(
    request: Request, demand_id: Id, form: FormDep, db: SessionDep, caller: CatalogPublisher
) -> Response:
    """屏蔽 with a reason, or 恢复 a hidden request."""
    try:
        demand = demands.hide(db, caller, demand_id, text(form, "reason"))
    except GovshareError as exc:
        return _refused(request, db, caller, demand_id, exc)
    done = "hidden" if demand.status is DemandStatus.HIDDEN else "restored"
    db.commit()
    return redirect(f"/open-demands/{demand_id}?done={done}")
