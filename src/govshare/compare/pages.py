"""Console pages of the comparison jobs (比对): the jobs, a job's definition form (JSON
with its errors beside the fields), a job's runs with the running one's progress and
its dashboard, its cases with the downloads, and a case's follow-up.

Reading needs ``sharing.read``, saving, running and working cases ``sharing.apply``;
the service decides whose job it is (the owning department and the platform admin
see it, only the owning department works its cases).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError
from sqlalchemy.orm import Session
from starlette.datastructures import FormData

from govshare.catalog import spreadsheet
from govshare.compare import delivery, export, service
from govshare.compare import templates as builtin
from govshare.compare.errors import InvalidJob
from govshare.compare.models import CompareCase, CompareJob, CompareRun
from govshare.compare.schemas import (
    CaseState,
    Definition,
    JobCreate,
    Normalize,
    Presence,
    RunStatus,
)
from govshare.deps import SessionDep, SharingApplicant, SharingReader
from govshare.errors import Conflict, GovshareError, InvalidInput, NotFound
from govshare.ids import Id
from govshare.rules.clock import china_today
from govshare.security import service as identity
from govshare.security.atrest import AtRestCipher, cipher_for, open_document
from govshare.security.models import Department
from govshare.security.roles import Permission
from govshare.security.service import Principal
from govshare.sharing.store import SharedDatabase
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
from govshare.web.headers import attachment

router = APIRouter(include_in_schema=False)

CASES_PAGE = 50
RUNS_SHOWN = 30
# Keys other than the console-wide ones (govshare.web.filters.NOTICES), which the base
# layout shows on every page.
NOTICES = {
    "job_saved": "比对任务已保存，可以立即运行",
    "job_changed": "比对任务已修改，下次运行起生效",
    "queued": "已开始运行，进度见下方",
    "cancelling": "已请求取消运行",
    "finished": "运行已结束，结果见运行记录",
    "stepped": "线索状态已更新",
}
TRIGGER_LABELS = {"manual": "手动", "schedule": "定时"}
MATCH_LABELS = {"present": "存在匹配", "absent": "不存在匹配"}
NORMALIZE_LABELS = {
    Normalize.WIDTH: "全角转半角",
    Normalize.TRIM: "去首尾空白",
    Normalize.UPPER: "转大写",
    Normalize.ID18: "15 位身份证号升 18 位",
}
OP_LABELS = {"is_null": "为空", "not_null": "不为空", "!=": "≠", ">=": "≥", "<=": "≤"}
RUN_CLASSES = {
    RunStatus.QUEUED: "tag-warn",
    RunStatus.RUNNING: "tag-warn",
    RunStatus.SUCCEEDED: "tag-open",
    RunStatus.FAILED: "tag-danger",
    RunStatus.CANCELLED: "",
}
STATE_CLASSES = {
    CaseState.PENDING: "tag-warn",
    CaseState.CHECKING: "sharing-2",
    CaseState.CONFIRMED: "tag-danger",
    CaseState.REFUTED: "tag-open",
}
# The form's own fields; everything else a problem names is inside the JSON definition.
FORM_FIELDS = ("name", "description", "department_id", "schedule")
FORM_LABELS = {
    "name": "任务名称",
    "description": "说明",
    "department_id": "负责部门",
    "schedule": "运行计划",
    "definition": "比对定义",
    "state": "核查状态",
    "note": "核查说明",
}
JSON_MESSAGES = {
    "Expecting value": "缺少值",
    "Expecting ',' delimiter": "缺少逗号",
    "Expecting ':' delimiter": "缺少冒号",
    "Expecting property name enclosed in double quotes": "属性名须用英文双引号括起",
    "Unterminated string starting at": "字符串缺少结尾的引号",
    "Invalid control character at": "字符串中有控制字符（如换行）",
    "Invalid \\escape": "无效的转义字符",
    "Extra data": "JSON 结束后还有多余内容",
}


def _page(
    request: Request, template: str, caller: Principal, *, status_code: int = 200, **context: Any
) -> Response:
    return render(
        request,
        template,
        caller,
        status_code=status_code,
        nav="/compare",
        notice=NOTICES.get(request.query_params.get("done", ""), ""),
        trigger_labels=TRIGGER_LABELS,
        run_classes=RUN_CLASSES,
        state_classes=STATE_CLASSES,
        money=_money,
        duration=_duration,
        **context,
    )


def _money(value: float | None) -> str:
    return "—" if value is None else f"{value:,.2f}"


def _duration(run: CompareRun) -> str:
    if run.started_at is None or run.finished_at is None:
        return "—"
    seconds = max(0.0, (_aware(run.finished_at) - _aware(run.started_at)).total_seconds())
    if seconds < 60:
        return f"{seconds:.1f} 秒"
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes} 分 {rest} 秒"


def _aware(moment: datetime) -> datetime:
    # SQLite gives naive UTC back, PostgreSQL aware: compare them alike.
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _shared_db(request: Request) -> SharedDatabase:
    db: SharedDatabase = request.app.state.data_services.db
    return db


# -- the jobs --------------------------------------------------------------------------------


@router.get("/compare")
def jobs_page(request: Request, db: SessionDep, caller: SharingReader) -> Response:
    """比对任务: the department's (the platform admin: every) job with its last run and
    open cases, and the built-in templates to start from."""
    jobs = service.list_jobs(db, caller)
    return _page(
        request,
        "compare/jobs.html",
        caller,
        jobs=jobs,
        last=service.last_runs(db, [j.id for j in jobs]),
        figures={j.id: service.figures(db, caller, j.id) for j in jobs},
        templates=list(builtin.TEMPLATES),
        can_create=caller.can(Permission.SHARING_APPLY),
    )


def _form_page(
    request: Request,
    db: Session,
    caller: Principal,
    *,
    values: dict[str, Any],
    job: CompareJob | None = None,
    errors: FormErrors = NO_ERRORS,
    status_code: int = 200,
) -> Response:
    return _page(
        request,
        "compare/form.html",
        caller,
        status_code=status_code,
        job=job,
        v=values,
        errors=errors,
        departments=[(d.id, d.name) for d in identity.list_departments(db)]
        if caller.is_admin and job is None
        else [],
        own=db.get(Department, caller.department_id) if caller.department_id else None,
    )


def _definition_text(data: dict[str, Any]) -> str:
    definition = {k: data[k] for k in Definition.model_fields if k in data}
    return json.dumps(definition, ensure_ascii=False, indent=2)


def _values(data: JobCreate) -> dict[str, Any]:
    dumped = data.model_dump(mode="json")
    return {
        "name": data.name,
        "description": data.description,
        "department_id": data.department_id,
        "schedule": data.schedule or "",
        "template": data.template or "",
        "deliver": data.deliver,
        "definition": _definition_text(dumped),
    }


@router.get("/compare/new")
def new_job_page(
    request: Request,
    db: SessionDep,
    caller: SharingApplicant,
    template: str = "",
    department_id: Id | None = None,
) -> Response:
    """新建比对任务, empty or filled in from a built-in template (``?template=``)."""
    owner = department_id if caller.is_admin and department_id else caller.department_id
    values: dict[str, Any] = {"department_id": owner or "", "definition": "", "template": ""}
    errors = NO_ERRORS
    if template:
        if template not in {t.code for t in builtin.TEMPLATES}:
            raise NotFound(f"比对模板「{template[:40]}」不存在")
        try:
            if owner is None:  # an admin of no department must choose one first
                raise InvalidJob.about("请先选择负责部门", "department_id", "必填")
            values = _values(builtin.instantiate(db, template, owner))
        except GovshareError as exc:
            # A template the department cannot use yet (no such entry, no store): said
            # beside the form; the empty form stays usable.
            errors = FormErrors(exc.message, _problems(exc.details), label=_label)
            values["template"] = template
    return _form_page(request, db, caller, values=values, errors=errors)


def _json_problem(exc: ValueError | RecursionError) -> dict[str, str]:
    if isinstance(exc, json.JSONDecodeError):
        said = next((zh for en, zh in JSON_MESSAGES.items() if exc.msg.startswith(en)), "")
        said = said or "格式不正确"
        return {"field": "definition", "message": f"第 {exc.lineno} 行第 {exc.colno} 列：{said}"}
    # Nesting too deep or a number too long for Python: not a definition either.
    return {"field": "definition", "message": "嵌套过深或数字过长"}


def _problems(details: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A problem of the form's own fields stays there; one inside the definition is shown
    beside the JSON, naming where in it (``inputs[1].resource``)."""
    out = []
    for d in details:
        field = str(d.get("field") or "")
        if field in FORM_FIELDS or field in ("state", "note"):
            out.append({"field": field, "message": d.get("message", "")})
        else:
            where = f"{field}：" if field else ""
            out.append({"field": "definition", "message": f"{where}{d.get('message', '')}"})
    return out


def _label(field: str) -> str:
    return FORM_LABELS.get(field, field)


def _read_form(
    form: FormData, caller: Principal, job: CompareJob | None
) -> tuple[dict[str, Any], JobCreate | FormErrors]:
    """The posted job, or what is wrong with it. Keys a pasted job carries besides its
    definition (name, schedule …) fill the form's fields left empty."""
    values: dict[str, Any] = {k: text(form, k) for k in (*FORM_FIELDS, "template", "definition")}
    values["deliver"] = text(form, "deliver") == "1"
    if job is not None:
        values["department_id"] = job.department_id
        values["template"] = job.template or ""
    elif not caller.is_admin:
        values["department_id"] = caller.department_id or ""
    raw = text(form, "definition")
    if not raw:
        problem = {"field": "definition", "message": "请填写比对定义（JSON）"}
        return values, FormErrors("比对定义为空", [problem], label=_label)
    try:
        parsed = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        return values, FormErrors("比对定义不是有效的 JSON", [_json_problem(exc)], label=_label)
    if not isinstance(parsed, dict):
        problem = {"field": "definition", "message": "应为一个 JSON 对象（{ … }）"}
        return values, FormErrors("比对定义不是 JSON 对象", [problem], label=_label)
    body = {k: v for k, v in parsed.items() if k not in (*FORM_FIELDS, "template", "deliver")}
    for key in ("name", "description", "schedule"):
        if not values[key] and isinstance(parsed.get(key), str):
            values[key] = parsed[key]
    if not values["department_id"] and caller.is_admin:
        values["department_id"] = str(parsed.get("department_id") or "")
    body |= {
        "name": values["name"],
        "description": values["description"],
        # "" (none chosen) is said as 必填; digits out of range as the id they are not.
        "department_id": optional_int(str(values["department_id"])) or "",
        "schedule": values["schedule"] or None,
        "template": values["template"] or None,
        "deliver": values["deliver"],
    }
    try:
        return values, JobCreate.model_validate(body)
    except ValidationError as exc:
        problems = _problems(validation_problems(exc))
        return values, FormErrors("比对任务填写有误，请按提示修改", problems, label=_label)


@router.post("/compare/new")
def create_job(
    request: Request, db: SessionDep, caller: SharingApplicant, form: FormDep
) -> Response:
    """Saved only when the definition plans (inputs, grants, items, types); otherwise
    the form comes back with what is wrong beside each field."""
    values, data = _read_form(form, caller, None)
    if isinstance(data, FormErrors):
        return _form_page(request, db, caller, values=values, errors=data, status_code=422)
    try:
        job = service.create_job(db, _shared_db(request), caller, data, china_today())
    except InvalidInput as exc:
        db.rollback()
        errors = FormErrors(exc.message, _problems(exc.details), label=_label)
        return _form_page(request, db, caller, values=values, errors=errors, status_code=422)
    db.commit()
    return redirect(f"/compare/jobs/{job.id}?done=job_saved")


@router.get("/compare/jobs/{compare_job_id}/edit")
def edit_job_page(
    request: Request, compare_job_id: Id, db: SessionDep, caller: SharingApplicant
) -> Response:
    job = service.visible_job(db, caller, compare_job_id)
    return _form_page(request, db, caller, values=_values(service.as_create(job)), job=job)


@router.post("/compare/jobs/{compare_job_id}/edit")
def update_job(
    request: Request,
    compare_job_id: Id,
    db: SessionDep,
    caller: SharingApplicant,
    form: FormDep,
) -> Response:
    job = service.visible_job(db, caller, compare_job_id)
    values, data = _read_form(form, caller, job)
    if isinstance(data, FormErrors):
        return _form_page(request, db, caller, values=values, job=job, errors=data, status_code=422)
    try:
        service.update_job(db, _shared_db(request), caller, job.id, data, china_today())
    except InvalidInput as exc:
        db.rollback()
        errors = FormErrors(exc.message, _problems(exc.details), label=_label)
        job = service.visible_job(db, caller, compare_job_id)
        return _form_page(
            request, db, caller, values=values, job=job, errors=errors, status_code=422
        )
    db.commit()
    return redirect(f"/compare/jobs/{job.id}?done=job_changed")


# -- a job: definition, runs, dashboard ------------------------------------------------------


def _summary(db: Session, job: CompareJob) -> dict[str, Any]:
    """The definition in words: each input's entry, each link's match, the conditions."""
    definition = job.definition
    return {
        "resources": export.resource_names(db, definition),
        "labels": export.labels(db, definition),
        "match": MATCH_LABELS,
        "normalize": {str(k): v for k, v in NORMALIZE_LABELS.items()},
        "ops": OP_LABELS,
    }


def _charts(runs: list[CompareRun], figures: service.JobFigures) -> dict[str, Any]:
    done = [r for r in reversed(runs) if r.status is RunStatus.SUCCEEDED]
    return {
        "hits": {
            "title": f"每次运行的线索（最近 {len(done)} 次成功运行）",
            "type": "bar",
            "labels": [f"#{r.id}" for r in done],
            "series": [
                {"name": "命中", "values": [r.hits for r in done]},
                {"name": "新发现", "values": [r.new_cases for r in done]},
                {"name": "已消失", "values": [r.gone_cases for r in done]},
            ],
        },
        "states": {
            "title": "线索核查状态",
            "type": "pie",
            "labels": [s.label for s in CaseState],
            "values": [figures.by_state[str(s)] for s in CaseState],
        },
        "amounts": {
            "title": "涉及金额（元）",
            "type": "column",
            "labels": ["待核查与核查中", "已认定属实"],
            "values": [round(figures.amount_open, 2), round(figures.amount_confirmed, 2)],
        },
    }


def _job_page(
    request: Request,
    db: Session,
    caller: Principal,
    job: CompareJob,
    *,
    before: int | None = None,
    error: str = "",
    status_code: int = 200,
) -> Response:
    runs = service.list_runs(db, caller, job.id, before_id=before, limit=RUNS_SHOWN + 1)
    more = len(runs) > RUNS_SHOWN
    runs = runs[:RUNS_SHOWN]
    current = next((r for r in runs if not r.status.finished), None) if before is None else None
    figures = service.figures(db, caller, job.id)
    return _page(
        request,
        "compare/job.html",
        caller,
        status_code=status_code,
        job=job,
        d=job.definition,
        s=_summary(db, job),
        runs=runs,
        older=runs[-1].id if more and runs else None,
        current=current,
        figures=figures,
        charts=_charts(runs, figures),
        can_run=caller.can(Permission.SHARING_APPLY),
        delivery_table=delivery.table_name(job.id) if job.deliver else None,
        version_column=delivery.VERSION,
        delivery_items=delivery.catalog_items(db, job.definition) if job.deliver else [],
        error=error,
    )


@router.get("/compare/jobs/{compare_job_id}")
def job_page(
    request: Request,
    compare_job_id: Id,
    db: SessionDep,
    caller: SharingReader,
    before: Id | None = None,
) -> Response:
    """A job: its definition in words, the running run's progress, the runs (older
    ones a page at a time, ``?before=``) and the dashboard of its cases."""
    job = service.visible_job(db, caller, compare_job_id)
    return _job_page(request, db, caller, job, before=before)


@router.post("/compare/jobs/{compare_job_id}/run")
def start_run(
    request: Request, compare_job_id: Id, db: SessionDep, caller: SharingApplicant
) -> Response:
    """立即运行: queued for the hub's runner; refused while a run is queued or running."""
    try:
        service.start_run(db, caller, compare_job_id)
    except Conflict as exc:
        db.rollback()
        job = service.visible_job(db, caller, compare_job_id)
        return _job_page(request, db, caller, job, error=exc.message, status_code=409)
    db.commit()
    return redirect(f"/compare/jobs/{compare_job_id}?done=queued")


@router.post("/compare/runs/{run_id}/cancel")
def cancel_run(request: Request, run_id: Id, db: SessionDep, caller: SharingApplicant) -> Response:
    """取消运行: a queued run ends at once, a running one at the runner's next look."""
    run = service.visible_run(db, caller, run_id)
    job_id = run.job_id
    try:
        service.cancel_run(db, caller, run_id)
    except Conflict as exc:
        db.rollback()
        job = service.visible_job(db, caller, job_id)
        return _job_page(request, db, caller, job, error=exc.message, status_code=409)
    db.commit()
    return redirect(f"/compare/jobs/{job_id}?done=cancelling")


@router.get("/compare/runs/{run_id}/progress")
def run_progress(run_id: Id, db: SessionDep, caller: SharingReader) -> JSONResponse:
    """A run's state for the job page's progress bar (polled while it runs)."""
    run = service.visible_run(db, caller, run_id)
    return JSONResponse(
        {
            "id": run.id,
            "status": str(run.status),
            "label": run.status.label,
            "finished": run.status.finished,
            "progress": round(float(run.progress or 0), 4),
            "phase": run.phase,
            "hits": run.hits,
        },
        headers={"Cache-Control": "no-store"},
    )


# -- cases -------------------------------------------------------------------------------------


def _filter(state: str, presence: str) -> service.CaseFilter:
    # An unknown value (a stale or crafted link) shows all rather than an error.
    return service.CaseFilter(
        state=next((s for s in CaseState if s.value == state), None),
        presence=next((p for p in Presence if p.value == presence), None),
    )


@router.get("/compare/jobs/{compare_job_id}/cases")
def cases_page(
    request: Request,
    compare_job_id: Id,
    db: SessionDep,
    caller: SharingReader,
    state: str = "",
    presence: str = "",
    after_id: Id | None = None,
) -> Response:
    """线索: the job's cases by state and by how the last run saw them, a page at a
    time, with the whole filtered list as XLSX or CSV."""
    job = service.visible_job(db, caller, compare_job_id)
    flt = _filter(state, presence)
    cases, total = service.list_cases(
        db, caller, job.id, flt, after_id=after_id, limit=CASES_PAGE + 1
    )
    more = len(cases) > CASES_PAGE
    cases = cases[:CASES_PAGE]
    cipher = cipher_for(request.app.state.settings)
    params = {
        "state": flt.state.value if flt.state else "",
        "presence": flt.presence.value if flt.presence else "",
    }
    return _page(
        request,
        "compare/cases.html",
        caller,
        job=job,
        cases=cases,
        values={c.id: open_document(cipher, c.values) for c in cases},
        total=total,
        next_after=cases[-1].id if more and cases else None,
        after_id=after_id,
        params=params,
        states=list(CaseState),
        presences=list(Presence),
        outputs=list(job.definition.get("output", [])),
        labels=export.labels(db, job.definition),
    )


def _download(
    db: Session,
    cipher: AtRestCipher,
    caller: Principal,
    job_id: int,
    state: str,
    presence: str,
    kind: str,
) -> Response:
    job = service.visible_job(db, caller, job_id)
    cases = service.all_cases(db, caller, job.id, _filter(state, presence))  # audited
    shown = export.labels(db, job.definition)
    if kind == "xlsx":
        body, media = export.cases_xlsx(job, cases, shown, cipher), export.XLSX
    else:
        body, media = export.cases_csv(job, cases, shown, cipher), "text/csv; charset=utf-8"
    name = f"比对线索-{job.name}.{kind}"
    return Response(
        body,
        media_type=media,
        headers=attachment(f"compare-{job.id}.{kind}", name),
    )


@router.get("/compare/jobs/{compare_job_id}/delivery-entry.xlsx")
def download_delivery_entry(compare_job_id: Id, db: SessionDep, caller: SharingReader) -> Response:
    """交付: the catalog entry for the job's copy as a catalog import workbook — its
    items are the copy's columns; the bureau fills in the classification and imports it
    (目录编目 → 批量导入). No case is in it."""
    job = service.visible_job(db, caller, compare_job_id)
    if not job.deliver:
        raise NotFound("该比对任务未设置交付")
    rows = delivery.catalog_rows(job, delivery.catalog_items(db, job.definition))
    return Response(
        spreadsheet.prefilled_xlsx(rows),
        media_type=export.XLSX,
        headers=attachment(f"compare-{job.id}-delivery-entry.xlsx", f"交付目录-{job.name}.xlsx"),
    )


@router.get("/compare/jobs/{compare_job_id}/cases.xlsx")
def download_xlsx(
    request: Request,
    compare_job_id: Id,
    db: SessionDep,
    caller: SharingReader,
    state: str = "",
    presence: str = "",
) -> Response:
    cipher = cipher_for(request.app.state.settings)
    return _download(db, cipher, caller, compare_job_id, state, presence, "xlsx")


@router.get("/compare/jobs/{compare_job_id}/cases.csv")
def download_csv(
    request: Request,
    compare_job_id: Id,
    db: SessionDep,
    caller: SharingReader,
    state: str = "",
    presence: str = "",
) -> Response:
    cipher = cipher_for(request.app.state.settings)
    return _download(db, cipher, caller, compare_job_id, state, presence, "csv")


def _case_page(
    request: Request,
    db: Session,
    caller: Principal,
    case: CompareCase,
    *,
    errors: FormErrors = NO_ERRORS,
    chosen: str = "",
    note: str = "",
    status_code: int = 200,
) -> Response:
    job = service.visible_job(db, caller, case.job_id)
    steps = [s for s in CaseState if s in service.STEPS[case.state]]
    return _page(
        request,
        "compare/case.html",
        caller,
        status_code=status_code,
        job=job,
        c=case,
        values=open_document(cipher_for(request.app.state.settings), case.values),
        first=db.get(CompareRun, case.first_run_id),
        last=db.get(CompareRun, case.last_run_id),
        outputs=list(job.definition.get("output", [])),
        labels=export.labels(db, job.definition),
        steps=steps,
        chosen=chosen or (steps[0].value if len(steps) == 1 else ""),
        note=note,
        state_labels={s.value: s.label for s in CaseState},
        can_step=caller.department_id == job.department_id and caller.can(Permission.SHARING_APPLY),
        errors=errors,
    )


@router.get("/compare/cases/{case_id}")
def case_page(request: Request, case_id: Id, db: SessionDep, caller: SharingReader) -> Response:
    """A case: its values, amount and rows, the runs that found it, its history, and
    (for the owning department) the next step of its follow-up."""
    return _case_page(request, db, caller, service.get_case(db, caller, case_id))


@router.post("/compare/cases/{case_id}")
def step_case(
    request: Request, case_id: Id, db: SessionDep, caller: SharingApplicant, form: FormDep
) -> Response:
    """待核查 → 核查中 → 属实 / 不属实 (a note required for a conclusion). A refused step
    changes nothing and is said beside the field."""
    chosen, note = text(form, "state"), text(form, "note")[:2000]
    state = next((s for s in CaseState if s.value == chosen), None)
    try:
        if state is None:
            raise InvalidInput("请选择核查状态", details=[{"field": "state", "message": "未选择"}])
        service.step_case(db, caller, case_id, state, note)
    except (InvalidInput, Conflict) as exc:
        db.rollback()
        errors = FormErrors(exc.message, _problems(exc.details), label=_label)
        case = service.get_case(db, caller, case_id)
        code = 422 if isinstance(exc, InvalidInput) else 409
        return _case_page(
            request, db, caller, case, errors=errors, chosen=chosen, note=note, status_code=code
        )
    db.commit()
    return redirect(f"/compare/cases/{case_id}?done=stepped")
