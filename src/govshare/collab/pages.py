"""Console pages of business collaboration (业务协同): process definitions with their
versions and upload, the window's acceptance form, the department's task queue with
countdowns, a case with its tasks and steps and the decision form, and the
applicant's public lookup (no login)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session
from starlette.datastructures import UploadFile

from govshare.collab import prefill, service
from govshare.collab.api import (
    CollabAcceptor,
    CollabDefiner,
    CollabHandler,
    CollabReader,
    CollabSupervisor,
    TooManyLookups,
    applicant_keys,
    check_lookup_rate,
    read_forms,
    supervision_report,
    verifier,
)
from govshare.collab.errors import CaseNotFound
from govshare.collab.models import Case, Decision, TaskStatus
from govshare.collab.supervision import case_card
from govshare.deps import Public, SessionDep
from govshare.errors import Conflict, GovshareError, InvalidInput
from govshare.ids import Id, parse_id
from govshare.rules.clock import china_today
from govshare.rules.masking import mask_id_number
from govshare.security.errors import PermissionDenied
from govshare.security.roles import Permission
from govshare.security.service import Principal
from govshare.web.forms import NO_ERRORS, FormDep, FormErrors, redirect, render, text, texts

router = APIRouter(include_in_schema=False)
NOTICES = {
    "uploaded": "流程定义已上传为新版本；运行中的办件仍按原版本办理",
    "accepted": "已受理，任务已分送各部门",
    "claimed": "已认领",
    "decided": "已办理",
}
LABELS = {
    "applicant_name": "申请人姓名",
    "applicant_id": "公民身份号码",
    "help_kinds": "申请事项",
    "household": "家庭成员",
    "file": "BPMN 文件",
    "forms": "表单定义",
    "decision": "意见",
    "particulars": "申请信息",
    "key": "带出条件",
    "definition_id": "流程",
}


def _label(field: str) -> str:
    head, _, rest = field.split("[")[0].partition(".")
    if head == "particulars" and rest:
        return f"申请信息 · {rest}"
    return LABELS.get(head, field)


def _page(request: Request, template: str, caller: Principal, **context: Any) -> Response:
    done = request.query_params.get("done", "")
    context.setdefault("errors", NO_ERRORS)
    notice = context.pop("notice", "") or NOTICES.get(done, "")
    return render(request, template, caller, notice=notice, **context)


@router.get("/collab")
def cases_page(request: Request, db: SessionDep, caller: CollabReader) -> Response:
    """办件: the cases the caller's department accepted or takes part in."""
    return _page(
        request,
        "collab/cases.html",
        caller,
        cases=service.list_cases(db, caller),
        outcome_labels=service.OUTCOME_LABELS,
    )


def _definitions_page(request: Request, db: Session, caller: Principal, **context: Any) -> Response:
    return _page(
        request,
        "collab/definitions.html",
        caller,
        definitions=service.list_definitions(db),
        **context,
    )


@router.get("/collab/definitions")
def definitions_page(request: Request, db: SessionDep, caller: CollabReader) -> Response:
    """流程定义: every version of every process; upload for the bureau."""
    return _definitions_page(request, db, caller)


@router.post("/collab/definitions")
async def upload_page(request: Request, caller: CollabDefiner, form: FormDep) -> Response:
    file = form.get("file")
    data = (
        await file.read(service.engine.MAX_BPMN_BYTES + 1) if isinstance(file, UploadFile) else b""
    )
    forms_text = text(form, "forms")
    return await _run_upload(request, caller, data, forms_text)


async def _run_upload(
    request: Request, caller: Principal, data: bytes, forms_text: str
) -> Response:
    from starlette.concurrency import run_in_threadpool

    return await run_in_threadpool(_upload, request, caller, data, forms_text)


def _upload(request: Request, caller: Principal, data: bytes, forms_text: str) -> Response:
    from govshare.db import session_scope

    factory = request.app.state.session_factory
    try:
        with session_scope(factory) as db:
            if not data:
                raise InvalidInput.about("请选择 BPMN 文件", "file", "未选择文件")
            service.upload_definition(db, caller, data=data, forms=read_forms(forms_text))
    except InvalidInput as exc:
        with session_scope(factory) as db:
            errors = FormErrors(exc.message, exc.details, label=lambda f: f)
            response = _definitions_page(request, db, caller, errors=errors, forms_text=forms_text)
            response.status_code = 422
            return response
    return redirect("/collab/definitions?done=uploaded")


@router.get("/collab/cases/new")
def new_case_page(request: Request, db: SessionDep, caller: CollabAcceptor) -> Response:
    """窗口受理: the application form of a process's newest version."""
    return _new_case(request, db, caller)


def _new_case(
    request: Request,
    db: Session,
    caller: Principal,
    *,
    errors: FormErrors = NO_ERRORS,
    values: dict[str, Any] | None = None,
    status_code: int = 200,
    notice: str = "",
) -> Response:
    definitions = service.latest_definitions(db)
    response = _page(
        request,
        "collab/new_case.html",
        caller,
        definitions=definitions,
        prefills={d.id: prefill.spec_of(d.forms) for d in definitions},
        errors=errors,
        values=values or {},
        notice=notice,
    )
    response.status_code = status_code
    return response


def _household(lines: str) -> list[service.Member]:
    members = []
    for line in lines.splitlines():
        parts = line.replace("，", " ").replace(",", " ").split()
        if not parts:
            continue
        members.append(
            service.Member(parts[0], parts[1] if len(parts) > 1 else "", " ".join(parts[2:]))
        )
    return members


@router.post("/collab/cases/prefill")
def prefill_case(
    request: Request, db: SessionDep, caller: CollabAcceptor, form: FormDep
) -> Response:
    """带出: the application form again, its particulars filled from the base database
    the process names (the lookup audited like any data-service call)."""
    definition_id = parse_id(text(form, "definition_id"))
    key = text(form, "prefill_key").upper()[:64]
    values: dict[str, Any] = {"definition_id": definition_id, "prefill_key": key}
    try:
        if definition_id is None:
            raise InvalidInput.about("请选择流程", "definition_id", "未选择")
        definition = service.definition_view(db, definition_id)
        found = prefill.bring_over(
            db, request.app.state.data_services, caller, definition.forms, key, china_today()
        )
        db.commit()  # the lookup is audited whatever it found
        found.or_raise()
    except GovshareError as exc:
        db.rollback()
        errors = FormErrors(exc.message, exc.details, label=_label)
        return _new_case(request, db, caller, errors=errors, values=values, status_code=exc.status)
    values["particulars"] = found.values
    notice = "已从基础库带出申请信息，请与申请人核对后受理"
    return _new_case(request, db, caller, values=values, notice=notice)


def _particulars(db: Session, definition_id: int, form: Any) -> dict[str, str]:
    """The particulars the form carried (``p_0`` … in the order of the process's labels)."""
    spec = prefill.spec_of(service.definition_view(db, definition_id).forms)
    if spec is None:
        return {}
    return {label: text(form, f"p_{i}")[:400] for i, label in enumerate(spec.labels)}


@router.post("/collab/cases")
def accept_case(
    request: Request, db: SessionDep, caller: CollabAcceptor, form: FormDep
) -> Response:
    name, id_number = text(form, "applicant_name"), text(form, "applicant_id").upper()
    kinds, household = texts(form, "help_kinds"), text(form, "household")[:4000]
    definition_id = parse_id(text(form, "definition_id"))
    values: dict[str, Any] = {
        "definition_id": definition_id,
        "applicant_name": name,
        "applicant_id": id_number,
        "help_kinds": kinds,
        "household": household,
    }
    try:
        if definition_id is None:
            raise InvalidInput.about("请选择流程", "definition_id", "未选择")
        values["particulars"] = particulars = _particulars(db, definition_id, form)
        case = service.start_case(
            db,
            caller,
            definition_id=definition_id,
            application=service.Application(
                applicant_name=name,
                applicant_id=id_number,
                help_kinds=kinds,
                household=_household(household),
                particulars=particulars,
            ),
            verifier=verifier(request),
            applicant_keys=applicant_keys(request),
            today=china_today(),
        )
    except (InvalidInput, PermissionDenied) as exc:
        db.rollback()
        errors = FormErrors(exc.message, exc.details, label=_label)
        return _new_case(request, db, caller, errors=errors, values=values, status_code=exc.status)
    db.commit()
    return redirect(f"/collab/cases/{case.id}?done=accepted")


@router.get("/collab/tasks")
def queue_page(request: Request, db: SessionDep, caller: CollabHandler) -> Response:
    """本部门待办: open tasks with the working days left (negative: overdue)."""
    return _page(
        request,
        "collab/queue.html",
        caller,
        warn_days=request.app.state.settings.collab_warn_working_days,
        items=service.department_queue(db, caller, china_today()),
    )


def _case_page(
    request: Request,
    db: Session,
    caller: Principal,
    case: Case,
    *,
    errors: FormErrors = NO_ERRORS,
    status_code: int = 200,
) -> Response:
    today = china_today()
    tasks = service.case_tasks(db, case.id)
    response = _page(
        request,
        "collab/case.html",
        caller,
        case=case,
        definition=service.get_definition(db, case.definition_id),
        tasks=[(t, *service.timing(t, today)) for t in tasks],
        timing=service.case_timing(case, today),
        case_card=case_card(case, today, request.app.state.settings.collab_warn_working_days),
        steps=service.case_steps(db, case.id),
        may_act={
            t.id: caller.department_id == t.department_id
            and caller.name != case.accepted_by
            and t.status is not TaskStatus.DONE
            and t.claimed_by in (None, caller.name)
            for t in tasks
        },
        can_handle=caller.can(Permission.COLLAB_HANDLE),
        outcome_labels=service.OUTCOME_LABELS,
        decisions=Decision,
        errors=errors,
    )
    response.status_code = status_code
    return response


@router.get("/collab/cases/{collab_case_id}")
def case_page(
    request: Request, collab_case_id: Id, db: SessionDep, caller: CollabReader
) -> Response:
    """办件详情: tasks with deadlines, steps, and the caller's decision form."""
    return _case_page(request, db, caller, service.get_case(db, caller, collab_case_id))


@router.post("/collab/tasks/{task_id}")
def act_on_task(
    request: Request, task_id: Id, db: SessionDep, caller: CollabHandler, form: FormDep
) -> Response:
    """认领 or 办理 (同意/不同意 with a comment)."""
    action = text(form, "action")
    task = service.get_task(db, task_id)
    case_id = task.case_id
    try:
        if action == "claim":
            service.claim_task(db, caller, task_id)
            done = "claimed"
        elif action in ("approve", "reject"):
            service.complete_task(
                db,
                caller,
                task_id,
                decision=Decision(action),
                comment=text(form, "comment"),
                verifier=verifier(request),
                today=china_today(),
            )
            done = "decided"
        else:
            raise InvalidInput.about("请选择办理意见", "decision", "未选择")
    except (InvalidInput, Conflict, PermissionDenied) as exc:
        db.rollback()
        errors = FormErrors(exc.message, exc.details, label=_label)
        case = service.get_case(db, caller, case_id)
        return _case_page(request, db, caller, case, errors=errors, status_code=exc.status)
    db.commit()
    return redirect(f"/collab/cases/{case_id}?done={done}")


# -- the applicant's lookup (no login) ---------------------------------------------------------


@router.get("/case-lookup")
def lookup_page(request: Request, caller: Public) -> Response:
    """办件查询: case number and ID number; nothing is shown until both match."""
    return render(request, "collab/lookup.html", caller, found=None, error="", number="")


@router.post("/case-lookup")
def lookup_answer(request: Request, db: SessionDep, caller: Public, form: FormDep) -> Response:
    number = text(form, "number")[:24]
    id_number = text(form, "id_number")[:18]
    try:
        check_lookup_rate(request)
        case, steps = service.lookup_public(
            db,
            number=number,
            id_number=id_number,
            applicant_keys=applicant_keys(request),
            remote_addr=request.client.host if request.client else None,
        )
    except (CaseNotFound, TooManyLookups) as exc:
        status = exc.status
        message = (
            "办件编号或身份号码不正确"
            if isinstance(exc, CaseNotFound)
            else "查询过于频繁，请稍后再试"
        )
        return render(
            request,
            "collab/lookup.html",
            caller,
            found=None,
            error=message,
            number=number,
            status_code=status,
        )
    return render(
        request,
        "collab/lookup.html",
        caller,
        found=case,
        steps=steps,
        masked=mask_id_number(id_number),
        outcome_labels=service.OUTCOME_LABELS,
        error="",
        number=number,
    )


@router.get("/collab/supervision")
def supervision_page(
    request: Request, db: SessionDep, caller: CollabSupervisor, month: str = ""
) -> Response:
    """电子监察: the month's volumes, each department's handling time and on-time rate,
    the yellow and red cards, the trend (ECharts) and the approval items."""
    report = supervision_report(request, db, month or None)
    trend_chart = {
        "title": "近 12 个月办件与超期趋势",
        "type": "line",
        "labels": [str(t["month"]) for t in report.trend],
        "series": [
            {"name": "受理办件", "values": [t["accepted"] for t in report.trend]},
            {"name": "办结办件", "values": [t["closed"] for t in report.trend]},
            {"name": "超期办结任务（红牌）", "values": [t["late"] for t in report.trend]},
        ],
    }
    timed = [d for d in report.departments if d.mean_days is not None]
    days_chart = {
        "title": f"{report.month} 各部门任务平均用时（工作日）",
        "type": "bar",
        "labels": [d.name for d in timed],
        "values": [d.mean_days for d in timed],
    }
    return _page(
        request,
        "collab/supervision.html",
        caller,
        report=report,
        trend_chart=trend_chart,
        days_chart=days_chart,
    )
