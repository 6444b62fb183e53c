"""Business-collaboration API (业务协同): process definitions (upload, versions,
export), cases (accept, read), department task queues (claim, decide), and the
applicant's public lookup.

Definitions need ``collab.define`` to upload and ``collab.read`` to read; a window
officer accepts with ``collab.accept``; handlers claim and decide with
``collab.handle``, and only their own department's tasks."""

from __future__ import annotations

from dataclasses import asdict
from datetime import date
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, File, Form, Path, Query, Request, UploadFile, status
from fastapi.responses import Response
from sqlalchemy.orm import Session

from govshare.collab import prefill, service, supervision
from govshare.collab.errors import InvalidDefinition
from govshare.collab.models import Case, CaseTask, Decision, ProcessDefinition
from govshare.collab.schemas import (
    CaseCreate,
    CaseLookup,
    CaseLookupAnswer,
    CasePublic,
    DefinitionPublic,
    PrefillPublic,
    StepPublic,
    SupervisionCard,
    SupervisionCaseCard,
    SupervisionDepartment,
    SupervisionItem,
    SupervisionProcess,
    SupervisionReport,
    TaskDecision,
    TaskPublic,
)
from govshare.collab.verify import StoreVerifier
from govshare.db import WriteTurns
from govshare.deps import Public, Require, SessionDep
from govshare.errors import GovshareError, InvalidInput
from govshare.ids import Id
from govshare.rules.clock import china_date, china_today
from govshare.rules.months import Month
from govshare.security import audit
from govshare.security.roles import Permission
from govshare.security.service import Principal
from govshare.web.headers import attachment

CollabReader = Annotated[Principal, Depends(Require(Permission.COLLAB_READ))]
CollabDefiner = Annotated[Principal, Depends(Require(Permission.COLLAB_DEFINE))]
CollabAcceptor = Annotated[Principal, Depends(Require(Permission.COLLAB_ACCEPT))]
CollabHandler = Annotated[Principal, Depends(Require(Permission.COLLAB_HANDLE))]
CollabSupervisor = Annotated[Principal, Depends(Require(Permission.COLLAB_SUPERVISE))]

router = APIRouter(prefix="/collab", tags=["collab"])

# The steps of cases are written one at a time and committed before the lock is let go:
# on SQLite, writers racing for the database's write lock wait in its busy handler's
# growing sleeps, which made a busy hub's slowest steps ten times slower than the rest.
# On SQLite the app gives it a file, so the worker processes take turns too.
CASE_WRITES = WriteTurns()


class TooManyLookups(GovshareError):
    status = 429
    code = "too_many_lookups"


def verifier(request: Request) -> StoreVerifier:
    return StoreVerifier(request.app.state.data_services.db)


def applicant_keys(request: Request) -> service.ApplicantKeys:
    keys = getattr(request.app.state, "collab_applicant_keys", None)
    if keys is None:
        keys = request.app.state.collab_applicant_keys = service.ApplicantKeys(
            request.app.state.settings.secret_key
        )
    return keys  # type: ignore[no-any-return]


def definition_public(d: ProcessDefinition) -> DefinitionPublic:
    return DefinitionPublic(
        id=d.id,
        process_key=d.process_key,
        name=d.name,
        version=d.version,
        sha256=d.sha256,
        uploaded_by=d.uploaded_by,
        uploaded_at=d.uploaded_at,
        help_kinds=list(d.forms.get("help_kinds", [])),
        user_tasks=dict(d.assignments),
        time_limit_days=d.time_limit_days,
    )


def task_public(t: CaseTask, case: Case, today: date) -> TaskPublic:
    remaining, elapsed = service.timing(t, today)
    return TaskPublic(
        id=t.id,
        case_id=t.case_id,
        case_number=case.number,
        element_id=t.element_id,
        name=t.name,
        department_id=t.department_id,
        status=str(t.status),
        status_label=t.status.label,
        claimed_by=t.claimed_by,
        completed_by=t.completed_by,
        decision=t.decision,
        comment=t.comment,
        working_days=t.working_days,
        started_on=t.started_on,
        due_on=t.due_on,
        due_provisional=t.due_provisional,
        remaining_working_days=remaining,
        elapsed_working_days=elapsed,
        overdue=t.completed_at is None and today > t.due_on,
    )


def case_public(session: Session, case: Case, today: date) -> CasePublic:
    remaining, elapsed = service.case_timing(case, today)
    return CasePublic(
        id=case.id,
        number=case.number,
        definition_id=case.definition_id,
        status=str(case.status),
        status_label=case.status.label,
        applicant_name=case.applicant_name,
        department_id=case.department_id,
        accepted_by=case.accepted_by,
        outcome=case.outcome,
        flags=list(case.flags),
        particulars=dict(case.particulars or {}),
        created_at=case.created_at,
        closed_at=case.closed_at,
        due_on=case.due_on,
        due_provisional=case.due_provisional,
        remaining_working_days=remaining,
        elapsed_working_days=elapsed,
        tasks=[task_public(t, case, today) for t in service.case_tasks(session, case.id)],
        steps=[
            StepPublic(at=s.at, kind=s.kind, title=s.title)
            for s in service.case_steps(session, case.id)
        ],
    )


def read_forms(text: str | None) -> dict[str, Any] | None:
    if not text:
        return None
    try:
        found = orjson.loads(text)
    except orjson.JSONDecodeError:
        found = None
    if not isinstance(found, dict):
        raise InvalidDefinition.about(
            "表单定义须为 JSON 对象", "forms", "须为 JSON 对象 (JSON object expected)"
        )
    return found


@router.get("/definitions", summary="流程定义及其版本")
def list_definitions(db: SessionDep, _c: CollabReader) -> list[DefinitionPublic]:
    return [definition_public(d) for d in service.list_definitions(db)]


@router.post(
    "/definitions",
    status_code=status.HTTP_201_CREATED,
    summary="上传流程定义 (.bpmn): 新版本，运行中的办件保留原版本",
)
async def upload_definition(
    db: SessionDep,
    caller: CollabDefiner,
    file: Annotated[UploadFile, File(description="BPMN 2.0 XML")],
    forms: Annotated[str | None, Form(description="表单定义 (JSON)")] = None,
) -> DefinitionPublic:
    data = await file.read(service.engine.MAX_BPMN_BYTES + 1)
    parsed_forms = read_forms(forms)
    return definition_public(service.upload_definition(db, caller, data=data, forms=parsed_forms))


@router.get("/definitions/{definition_id}", summary="流程定义的一个版本")
def get_definition(
    db: SessionDep, _c: CollabReader, definition_id: Annotated[Id, Path()]
) -> DefinitionPublic:
    return definition_public(service.get_definition(db, definition_id))


@router.get("/definitions/{definition_id}/bpmn", summary="导出流程定义 (.bpmn)")
def export_definition(
    db: SessionDep, caller: CollabReader, definition_id: Annotated[Id, Path()]
) -> Response:
    d = service.get_definition(db, definition_id)
    audit.record(
        db,
        caller.actor,
        "collab.definition.export",
        object_type="collab_definition",
        object_id=d.id,
    )
    name = f"{d.process_key}-v{d.version}.bpmn"
    return Response(
        d.bpmn_xml.encode(),
        media_type="application/xml",
        headers=attachment(name, f"{d.name}-v{d.version}.bpmn"),
    )


@router.get("/definitions/{definition_id}/prefill", summary="带出: 从基础库带出申请信息")
def prefill_application(
    db: SessionDep,
    caller: CollabAcceptor,
    definition_id: Annotated[Id, Path()],
    key: Annotated[str, Query(min_length=1, max_length=64, description="如统一社会信用代码")],
    request: Request,
) -> PrefillPublic:
    """The record of ``key`` in the base database the process's forms name, under the
    caller's department's query grant (granted items only, masked); audited."""
    definition = service.definition_view(db, definition_id)
    found = prefill.bring_over(
        db, request.app.state.data_services, caller, definition.forms, key, china_today()
    )
    db.commit()  # the lookup is audited whatever it found
    found.or_raise()
    return PrefillPublic(key=found.key, values=found.values)


@router.post("/cases", status_code=status.HTTP_201_CREATED, summary="窗口受理: 开始一个办件")
def start_case(
    db: SessionDep, caller: CollabAcceptor, body: CaseCreate, request: Request
) -> CasePublic:
    today = china_today()
    case = service.start_case(
        db,
        caller,
        definition_id=body.definition_id,
        application=service.Application(
            applicant_name=body.applicant_name,
            applicant_id=body.applicant_id,
            help_kinds=body.help_kinds,
            household=[service.Member(m.name, m.id_number, m.relation) for m in body.household],
            particulars=dict(body.particulars),
        ),
        verifier=verifier(request),
        applicant_keys=applicant_keys(request),
        today=today,
        turns=CASE_WRITES,
    )
    return case_public(db, case, today)


@router.get("/cases", summary="本部门受理或参与的办件")
def list_cases(db: SessionDep, caller: CollabReader) -> list[CasePublic]:
    today = china_today()
    return [case_public(db, c, today) for c in service.list_cases(db, caller, limit=100)]


@router.get("/cases/{case_id}", summary="办件详情: 任务和环节")
def get_case(db: SessionDep, caller: CollabReader, case_id: Annotated[Id, Path()]) -> CasePublic:
    return case_public(db, service.get_case(db, caller, case_id), china_today())


@router.get("/cases/{case_id}/notice.pdf", summary="办件告知书 (PDF): 办结后出具")
def case_notice(db: SessionDep, caller: CollabReader, case_id: Annotated[Id, Path()]) -> Response:
    from govshare.collab.notice import notice_pdf

    case = service.get_case(db, caller, case_id)
    body = notice_pdf(db, case)
    audit.record(
        db,
        caller.actor,
        "collab.case.notice",
        object_type="collab_case",
        object_id=case.id,
    )
    return Response(
        body,
        media_type="application/pdf",
        headers=attachment(f"notice-{case.number}.pdf", f"办件告知书-{case.number}.pdf"),
    )


@router.get("/tasks", summary="本部门待办任务（剩余工作日）")
def my_queue(db: SessionDep, caller: CollabHandler) -> list[TaskPublic]:
    today = china_today()
    return [task_public(i.task, i.case, today) for i in service.department_queue(db, caller, today)]


@router.post("/tasks/{task_id}/claim", summary="认领任务")
def claim_task(db: SessionDep, caller: CollabHandler, task_id: Annotated[Id, Path()]) -> TaskPublic:
    with CASE_WRITES:
        task = service.claim_task(db, caller, task_id)
        db.commit()
    case = db.get(Case, task.case_id)
    assert case is not None
    return task_public(task, case, china_today())


@router.post("/tasks/{task_id}/complete", summary="办理任务: 部门意见")
def complete_task(
    db: SessionDep,
    caller: CollabHandler,
    task_id: Annotated[Id, Path()],
    body: TaskDecision,
    request: Request,
) -> TaskPublic:
    today = china_today()
    task = service.complete_task(
        db,
        caller,
        task_id,
        decision=Decision(body.decision),
        comment=body.comment,
        verifier=verifier(request),
        today=today,
        turns=CASE_WRITES,
    )
    case = db.get(Case, task.case_id)
    assert case is not None
    return task_public(task, case, today)


def check_lookup_rate(request: Request) -> None:
    from govshare.opendata.gate import Refused

    remote = request.client.host if request.client else "unknown"
    try:
        request.app.state.open_gate.hit(
            "case_lookup",
            remote,
            limit=request.app.state.settings.open_auth_attempts_per_hour,
            seconds=3600,
            message="查询过于频繁，请稍后再试 (too many lookups)",
        )
    except Refused as exc:
        raise TooManyLookups(str(exc)) from None


@router.post("/lookup", summary="办件查询（公开）: 办件编号和身份号码都对才答")
def lookup(db: SessionDep, _p: Public, body: CaseLookup, request: Request) -> CaseLookupAnswer:
    check_lookup_rate(request)
    case, steps = service.lookup_public(
        db,
        number=body.number,
        id_number=body.id_number,
        applicant_keys=applicant_keys(request),
        remote_addr=request.client.host if request.client else None,
    )
    return CaseLookupAnswer(
        number=case.number,
        status=str(case.status),
        status_label=case.status.label,
        steps=[StepPublic(at=s.at, kind=s.kind, title=s.title) for s in steps],
    )


# -- 电子监察 ------------------------------------------------------------------------------


def supervision_month(text: str | None, today: date) -> Month:
    """``YYYY-MM`` (a 422 naming the field otherwise); the current month when empty."""
    if not text:
        return Month(today.year, today.month)
    try:
        return Month.parse(text.strip())
    except ValueError:
        raise InvalidInput(
            f"月份“{text[:20]}”格式不正确，应为 YYYY-MM，如 2026-11",
            details=[{"field": "month", "message": "应为 YYYY-MM"}],
        ) from None


def supervision_report(request: Request, db: Session, month: str | None) -> supervision.MonthReport:
    today = china_today()
    return supervision.month_report(
        db,
        supervision_month(month, today),
        today=today,
        warn_days=request.app.state.settings.collab_warn_working_days,
    )


def report_public(r: supervision.MonthReport) -> SupervisionReport:
    return SupervisionReport(
        month=str(r.month),
        today=r.today,
        warn_working_days=r.warn_days,
        cases_accepted=r.cases_accepted,
        cases_closed=r.cases_closed,
        mean_case_days=r.mean_case_days,
        cases_open=r.cases_open,
        cases_closed_late=r.cases_closed_late,
        cases_open_yellow=r.cases_open_yellow,
        cases_open_red=r.cases_open_red,
        tasks_received=r.tasks_received,
        tasks_completed=r.tasks_completed,
        completed_late=r.completed_late,
        open_yellow=r.open_yellow,
        open_red=r.open_red,
        departments=[
            SupervisionDepartment(
                department_id=d.department_id,
                name=d.name,
                received=d.received,
                completed=d.completed,
                completed_late=d.completed_late,
                on_time_rate=d.on_time_rate,
                mean_days=d.mean_days,
                open_yellow=d.open_yellow,
                open_red=d.open_red,
            )
            for d in r.departments
        ],
        cards=[
            SupervisionCard(
                card=line.card.value,  # type: ignore[arg-type]
                card_label=line.card.label,
                task_id=line.task.id,
                case_id=line.task.case_id,
                case_number=line.case_number,
                process=line.process,
                task=line.task.name,
                department=line.department,
                started_on=line.task.started_on,
                due_on=line.task.due_on,
                completed=line.task.completed_at is not None,
                elapsed_working_days=line.elapsed,
            )
            for line in r.carded
        ],
        case_cards=[
            SupervisionCaseCard(
                card=c.card.value,  # type: ignore[arg-type]
                card_label=c.card.label,
                case_id=c.case.id,
                case_number=c.case.number,
                process=c.process,
                department=c.department,
                accepted_on=china_date(c.case.created_at),
                due_on=c.case.due_on,  # type: ignore[arg-type]  # a carded case has one
                closed=c.case.closed_at is not None,
                elapsed_working_days=c.elapsed,
            )
            for c in r.carded_cases
        ],
        processes=[SupervisionProcess(**asdict(p)) for p in r.processes],
        items=[SupervisionItem(**asdict(i)) for i in r.items],
        trend=r.trend,
    )


@router.get("/supervision", summary="电子监察月报: 办件量、部门用时、红黄牌、审批事项")
def get_supervision(
    request: Request, db: SessionDep, _caller: CollabSupervisor, month: str | None = None
) -> SupervisionReport:
    return report_public(supervision_report(request, db, month))


@router.get("/supervision/{month}/export.xlsx", summary="导出电子监察月报 (XLSX)")
def export_supervision(
    request: Request, month: str, db: SessionDep, caller: CollabSupervisor
) -> Response:
    report = supervision_report(request, db, month)
    audit.record(
        db,
        caller.actor,
        "collab.supervision.export",
        object_type="collab_supervision",
        object_id=str(report.month),
        after={"cards": len(report.carded), "departments": len(report.departments)},
    )
    return Response(
        supervision.xlsx(report),
        media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        headers=attachment(f"supervision-{report.month}.xlsx", f"电子监察月报-{report.month}.xlsx"),
    )
