"""Console pages of the duty register (职责清单): a department's duties with their
entries and the changes that set the catalog's update deadlines, the forms that
declare, change, withdraw and link duties, and the 登记系统变更 form the information
systems page posts to.

Handlers parse, call ``catalog.duties`` and render; a form the service rejects
re-renders the page with every problem (and rolls back).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from govshare.catalog import duties
from govshare.catalog.codes import ResourceStatus
from govshare.catalog.models import Resource
from govshare.catalog.pages import systems_page_with
from govshare.catalog.schemas import DutyChange, DutyCreate, DutyWithdraw, SystemChangeIn
from govshare.deps import DutyReader, DutyWriter, SessionDep, SettingsDep, SystemWriter
from govshare.errors import Conflict, InvalidInput
from govshare.ids import Id, parse_id
from govshare.rules.clock import china_today
from govshare.security import service as identity
from govshare.security.service import Principal
from govshare.web.forms import (
    NO_ERRORS,
    FormDep,
    FormErrors,
    optional_int,
    redirect,
    render,
    text,
    validation_problems,
)

router = APIRouter(include_in_schema=False)

DUTY_LABELS = {
    "code": "职责编码",
    "name": "职责名称",
    "basis": "设定依据",
    "declared_on": "声明日期",
    "changed_on": "日期",
    "withdrawn_on": "取消日期",
    "reason": "原因",
    "resource_id": "目录",
    "department_id": "所属部门",
    "description": "变更内容",
    "system_id": "信息系统",
}


def _label(field: str) -> str:
    return DUTY_LABELS.get(field, field)


def _errors(exc: ValidationError | InvalidInput | Conflict) -> FormErrors:
    if isinstance(exc, ValidationError):
        return FormErrors("填写的信息有误", validation_problems(exc), label=_label)
    return FormErrors(exc.message, exc.details, label=_label)


def duties_page(
    request: Request,
    db: Session,
    caller: Principal,
    *,
    department_id: int | None = None,
    errors: FormErrors = NO_ERRORS,
    form: str = "",
    values: dict[str, Any] | None = None,
    status_code: int = 200,
) -> Response:
    """The register of one department: the caller's own unless one is chosen (the
    platform admin and the auditor may choose any)."""
    if department_id is None or not duties.reads_everything(caller):
        department_id = caller.department_id
    if department_id is None:
        department_id = identity.list_departments(db)[0].id
    page = duties.list_duties(db, caller, department_id=department_id, limit=500)
    events = duties.list_events(db, caller, department_id=department_id, limit=200)
    entries = list(
        db.scalars(
            select(Resource)
            .where(
                Resource.provider_department_id == department_id,
                Resource.status.in_(list(duties.LINKABLE)),
            )
            .order_by(Resource.code)
        )
    )
    today = china_today()
    return render(
        request,
        "catalog/duties.html",
        caller,
        status_code=status_code,
        duties=page.items,
        events=events.items,
        department=identity.get_department(db, department_id),
        departments=identity.list_departments(db) if duties.reads_everything(caller) else [],
        may_write=duties.may_write(caller, department_id),
        link_options={
            d.id: [
                (r.id, f"{r.name}（{r.code}）")
                for r in entries
                if r.id not in {x.id for x in d.resources}
            ]
            for d in page.items
        },
        no_errors=NO_ERRORS,
        errors=errors,
        form=form,
        values=values or {"declared_on": today.isoformat()},
        today=today,
        withdrawn=ResourceStatus.WITHDRAWN,
    )


@router.get("/catalog/duties")
def show_duties(
    request: Request, db: SessionDep, caller: DutyReader, department_id: str = ""
) -> Response:
    return duties_page(request, db, caller, department_id=parse_id(department_id))


def _submit(
    request: Request,
    db: Session,
    caller: Principal,
    *,
    department_id: int | None,
    form_name: str,
    values: dict[str, Any],
    act: Callable[[], object],
    done: str,
) -> Response:
    try:
        act()
    except (ValidationError, InvalidInput, Conflict) as exc:
        db.rollback()
        errors = _errors(exc)
    else:
        db.commit()
        target = f"/catalog/duties?done={done}"
        if department_id is not None and department_id != caller.department_id:
            target += f"&department_id={department_id}"
        return redirect(target)
    return duties_page(
        request,
        db,
        caller,
        department_id=department_id,
        errors=errors,
        form=form_name,
        values=values,
        status_code=422,
    )


@router.post("/catalog/duties")
def declare_duty(
    request: Request, form: FormDep, db: SessionDep, caller: DutyWriter, settings: SettingsDep
) -> Response:
    values: dict[str, Any] = {
        k: text(form, k) for k in ("code", "name", "basis", "declared_on", "department_id")
    }
    department = optional_int(values["department_id"]) if caller.is_admin else None
    chosen = department if isinstance(department, int) else None

    def act() -> object:
        data = DutyCreate.model_validate({**values, "department_id": department})
        return duties.declare_duty(
            db, caller, data, working_days=settings.catalog_update_working_days
        )

    return _submit(
        request,
        db,
        caller,
        department_id=chosen,
        form_name="declare",
        values=values,
        act=act,
        done="duty_declared",
    )


@router.post("/catalog/duties/{duty_id}/change")
def change_duty(
    duty_id: Id,
    request: Request,
    form: FormDep,
    db: SessionDep,
    caller: DutyWriter,
    settings: SettingsDep,
) -> Response:
    duty = duties.get_duty(db, caller, duty_id)
    values = {k: text(form, k) for k in ("name", "basis", "changed_on", "reason")}

    def act() -> object:
        return duties.change_duty(
            db,
            caller,
            duty_id,
            DutyChange.model_validate(values),
            working_days=settings.catalog_update_working_days,
        )

    return _submit(
        request,
        db,
        caller,
        department_id=duty.department_id,
        form_name=f"change-{duty_id}",
        values=values,
        act=act,
        done="duty_changed",
    )


@router.post("/catalog/duties/{duty_id}/withdraw")
def withdraw_duty(
    duty_id: Id,
    request: Request,
    form: FormDep,
    db: SessionDep,
    caller: DutyWriter,
    settings: SettingsDep,
) -> Response:
    duty = duties.get_duty(db, caller, duty_id)
    values = {k: text(form, k) for k in ("withdrawn_on", "reason")}

    def act() -> object:
        return duties.withdraw_duty(
            db,
            caller,
            duty_id,
            DutyWithdraw.model_validate(values),
            working_days=settings.catalog_update_working_days,
        )

    return _submit(
        request,
        db,
        caller,
        department_id=duty.department_id,
        form_name=f"withdraw-{duty_id}",
        values=values,
        act=act,
        done="duty_withdrawn",
    )


def _resource_id(form_value: str) -> int:
    resource_id = parse_id(form_value)
    if resource_id is None:
        raise InvalidInput.about("请选择目录", "resource_id", "请选择要关联的本部门目录")
    return resource_id


@router.post("/catalog/duties/{duty_id}/link")
def link_duty(
    duty_id: Id, request: Request, form: FormDep, db: SessionDep, caller: DutyWriter
) -> Response:
    duty = duties.get_duty(db, caller, duty_id)
    values = {"resource_id": text(form, "resource_id")}
    return _submit(
        request,
        db,
        caller,
        department_id=duty.department_id,
        form_name=f"link-{duty_id}",
        values=values,
        act=lambda: duties.link_resource(db, caller, duty_id, _resource_id(values["resource_id"])),
        done="duty_linked",
    )


@router.post("/catalog/duties/{duty_id}/unlink")
def unlink_duty(
    duty_id: Id, request: Request, form: FormDep, db: SessionDep, caller: DutyWriter
) -> Response:
    duty = duties.get_duty(db, caller, duty_id)
    values = {"resource_id": text(form, "resource_id")}
    return _submit(
        request,
        db,
        caller,
        department_id=duty.department_id,
        form_name=f"link-{duty_id}",
        values=values,
        act=lambda: duties.unlink_resource(
            db, caller, duty_id, _resource_id(values["resource_id"])
        ),
        done="duty_unlinked",
    )


@router.post("/catalog/systems/changes")
def record_system_change(
    request: Request, form: FormDep, db: SessionDep, caller: SystemWriter, settings: SettingsDep
) -> Response:
    values = {k: text(form, k) for k in ("system_id", "changed_on", "description")}
    try:
        system_id = parse_id(values["system_id"])
        if system_id is None:
            raise InvalidInput.about("请选择信息系统", "system_id", "请选择发生变更的信息系统")
        data = SystemChangeIn.model_validate(values)
        duties.record_system_change(
            db, caller, system_id, data, working_days=settings.catalog_update_working_days
        )
    except (ValidationError, InvalidInput, Conflict) as exc:
        db.rollback()
        return systems_page_with(
            request, db, caller, change_values=values, change_errors=_errors(exc)
        )
    db.commit()
    return redirect("/catalog/systems?done=system_changed")
