"""Comparison jobs API (比对): definitions (JSON, or YAML at ``/compare/jobs.yaml``),
runs and the cases they found. Reading needs ``sharing.read``; defining, running and
working cases ``sharing.apply`` — comparison is a use of shared data under the owning
department's grants. Only the owning department (and, to read, the platform admin)
reaches a job."""

from __future__ import annotations

import re
from dataclasses import asdict
from typing import Annotated, Any, Literal

import yaml
from fastapi import APIRouter, Body, Query, Request, status
from fastapi.responses import Response
from pydantic import BaseModel, ValidationError

from govshare.compare import delivery, export, service
from govshare.compare.errors import InvalidJob
from govshare.compare.models import CompareCase, CompareJob, CompareRun
from govshare.compare.schemas import (
    CasePage,
    CasePublic,
    CaseState,
    CaseStep,
    DeliveryItemPublic,
    JobCreate,
    JobPublic,
    Presence,
    RunPublic,
)
from govshare.deps import SessionDep, SettingsDep, SharingApplicant, SharingReader
from govshare.ids import Count, Id
from govshare.rules.clock import china_today
from govshare.security.atrest import AtRestCipher, cipher_for, open_document
from govshare.sharing.store import SharedDatabase
from govshare.web.headers import attachment

router = APIRouter(prefix="/compare", tags=["compare"])
MAX_YAML_BYTES = 256 * 1024


def _shared(request: Request) -> SharedDatabase:
    db: SharedDatabase = request.app.state.data_services.db
    return db


def run_public(run: CompareRun) -> RunPublic:
    return RunPublic(
        id=run.id,
        job_id=run.job_id,
        status=run.status,
        trigger=run.trigger,
        requested_by=run.requested_by,
        created_at=run.created_at,
        started_at=run.started_at,
        finished_at=run.finished_at,
        progress=run.progress,
        phase=run.phase,
        inputs=run.inputs,
        hits=run.hits,
        new_cases=run.new_cases,
        gone_cases=run.gone_cases,
        amount=run.amount,
        error=run.error,
    )


def job_public(job: CompareJob, last: CompareRun | None) -> JobPublic:
    return JobPublic(
        **service.as_create(job).model_dump(),
        id=job.id,
        department_name=job.department.name,
        created_by=job.created_by,
        created_at=job.created_at,
        next_run_at=job.next_run_at,
        last_run=run_public(last) if last else None,
        delivery_table=delivery.table_name(job.id) if job.deliver else None,
        version_column=delivery.VERSION if job.deliver else None,
    )


def case_public(case: CompareCase, cipher: AtRestCipher) -> CasePublic:
    return CasePublic(
        id=case.id,
        job_id=case.job_id,
        values=open_document(cipher, case.values),
        amount=case.amount,
        rows=case.rows,
        state=case.state,
        presence=case.presence,
        note=case.note,
        first_run_id=case.first_run_id,
        last_run_id=case.last_run_id,
        updated_at=case.updated_at,
        history=case.history,
    )


class PlanPublic(BaseModel):
    valid: bool
    labels: dict[str, str]
    inputs: list[dict[str, Any]]


@router.get("/jobs", summary="可见的比对任务")
def list_jobs(db: SessionDep, caller: SharingReader) -> list[JobPublic]:
    jobs = service.list_jobs(db, caller)
    last = service.last_runs(db, [j.id for j in jobs])
    return [job_public(j, last.get(j.id)) for j in jobs]


@router.post("/jobs/check", summary="检查比对任务定义 (不保存)")
def check_job(
    body: JobCreate, request: Request, db: SessionDep, caller: SharingApplicant
) -> PlanPublic:
    plan = service.check(db, _shared(request), caller, body, china_today())
    return PlanPublic(
        valid=True,
        labels={o: plan.labels[o] for o in plan.output},
        inputs=[
            {
                "alias": i.alias,
                "resource": i.resource_code,
                "resource_name": i.resource_name,
                "grant_id": i.grant_id,
                "row_filter": i.row_filter,
                "masking": i.masking,
            }
            for i in plan.inputs
        ],
    )


def _create(data: JobCreate, request: Request, db: SessionDep, caller: Any) -> JobPublic:
    job = service.create_job(db, _shared(request), caller, data, china_today())
    return job_public(job, None)


@router.post("/jobs", status_code=status.HTTP_201_CREATED, summary="新建比对任务 (JSON)")
def create_job(
    body: JobCreate, request: Request, db: SessionDep, caller: SharingApplicant
) -> JobPublic:
    return _create(body, request, db, caller)


@router.post(
    "/jobs.yaml",
    status_code=status.HTTP_201_CREATED,
    summary="新建比对任务 (YAML 定义)",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/yaml": {"schema": {"type": "string"}}},
        }
    },
)
async def create_job_yaml(request: Request, db: SessionDep, caller: SharingApplicant) -> JobPublic:
    raw = await request.body()
    if len(raw) > MAX_YAML_BYTES:
        raise InvalidJob.about("YAML 定义过大", "body", f"超过 {MAX_YAML_BYTES} 字节")
    data = parse_yaml(raw)
    return _create(data, request, db, caller)


class _Yaml12Loader(yaml.SafeLoader):
    """Only ``true``/``false`` are booleans, as in YAML 1.2. PyYAML follows YAML 1.1,
    where ``on``, ``off``, ``yes`` and ``no`` are booleans too, so a link's ``on:`` key
    (as the docs write it) would arrive as ``True``."""


_BOOL = "tag:yaml.org,2002:bool"
_Yaml12Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != _BOOL]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Yaml12Loader.add_implicit_resolver(
    _BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def parse_yaml(raw: bytes) -> JobCreate:
    """A YAML definition, its mistakes as ``InvalidJob`` with line and column."""
    try:
        loaded = yaml.load(raw.decode("utf-8"), Loader=_Yaml12Loader)  # noqa: S506 - safe
    except UnicodeDecodeError:
        raise InvalidJob.about("YAML 定义须为 UTF-8 编码", "body", "编码错误") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"第 {mark.line + 1} 行第 {mark.column + 1} 列" if mark else "未知位置"
        raise InvalidJob.about("YAML 定义格式错误", "body", where) from None
    if not isinstance(loaded, dict):
        raise InvalidJob.about("YAML 定义须是一个映射 (键: 值)", "body", type(loaded).__name__)
    try:
        return JobCreate.model_validate(loaded)
    except ValidationError as exc:
        raise InvalidJob(
            "比对任务定义不正确",
            details=[
                {"field": ".".join(str(p) for p in e["loc"]), "message": e["msg"]}
                for e in exc.errors()
            ],
        ) from None


@router.get("/jobs/{job_id}", summary="一个比对任务")
def get_job(job_id: Id, db: SessionDep, caller: SharingReader) -> JobPublic:
    job = service.visible_job(db, caller, job_id)
    shown = job_public(job, service.last_runs(db, [job.id]).get(job.id))
    if job.deliver:
        shown.delivery_items = [
            DeliveryItemPublic(**asdict(i)) for i in delivery.catalog_items(db, job.definition)
        ]
    return shown


@router.put("/jobs/{job_id}", summary="修改比对任务 (负责部门不变)")
def update_job(
    job_id: Id, body: JobCreate, request: Request, db: SessionDep, caller: SharingApplicant
) -> JobPublic:
    job = service.update_job(db, _shared(request), caller, job_id, body, china_today())
    return job_public(job, service.last_runs(db, [job.id]).get(job.id))


@router.post(
    "/jobs/{job_id}/runs",
    status_code=status.HTTP_202_ACCEPTED,
    summary="立即运行比对任务 (排队, 由平台后台执行)",
)
def start_run(job_id: Id, db: SessionDep, caller: SharingApplicant) -> RunPublic:
    return run_public(service.start_run(db, caller, job_id))


class RunPage(BaseModel):
    items: list[RunPublic]
    next_before_id: int | None


@router.get("/jobs/{job_id}/runs", summary="比对任务的运行记录 (新的在前)")
def list_runs(
    job_id: Id,
    db: SessionDep,
    caller: SharingReader,
    before_id: Id | None = None,
    limit: int = Query(default=50, ge=1, le=500),
) -> RunPage:
    runs = service.list_runs(db, caller, job_id, before_id=before_id, limit=limit + 1)
    more = len(runs) > limit
    runs = runs[:limit]
    return RunPage(
        items=[run_public(r) for r in runs],
        next_before_id=runs[-1].id if more and runs else None,
    )


class FiguresPublic(BaseModel):
    by_state: dict[str, int]
    open_cases: int
    gone_cases: int
    confirmed_rate: float | None
    amount_open: float
    amount_confirmed: float


@router.get("/jobs/{job_id}/figures", summary="比对任务的统计: 各状态线索数、属实率、涉及金额")
def job_figures(job_id: Id, db: SessionDep, caller: SharingReader) -> FiguresPublic:
    return FiguresPublic(**asdict(service.figures(db, caller, job_id)))


@router.get("/runs/{run_id}", summary="一次运行 (含进度)")
def get_run(run_id: Id, db: SessionDep, caller: SharingReader) -> RunPublic:
    return run_public(service.visible_run(db, caller, run_id))


@router.post("/runs/{run_id}/cancel", summary="取消排队或运行中的比对")
def cancel_run(run_id: Id, db: SessionDep, caller: SharingApplicant) -> RunPublic:
    return run_public(service.cancel_run(db, caller, run_id))


@router.get("/jobs/{job_id}/cases", summary="比对任务发现的线索")
def list_cases(
    job_id: Id,
    db: SessionDep,
    caller: SharingReader,
    settings: SettingsDep,
    state: CaseState | None = None,
    presence: Presence | None = None,
    after_id: Annotated[Count | None, Query()] = None,
    limit: int = Query(default=50, ge=1, le=500),
) -> CasePage:
    flt = service.CaseFilter(state=state, presence=presence)
    found, total = service.list_cases(db, caller, job_id, flt, after_id=after_id, limit=limit + 1)
    more = len(found) > limit
    found = found[:limit]
    return CasePage(
        items=[case_public(c, cipher_for(settings)) for c in found],
        next_after_id=found[-1].id if more and found else None,
        total=total,
    )


@router.get(
    "/jobs/{job_id}/cases/export",
    summary="下载线索 (XLSX 或 CSV)",
    response_class=Response,
    responses={200: {"content": {export.XLSX: {}, "text/csv": {}}}},
)
def export_cases(
    job_id: Id,
    db: SessionDep,
    caller: SharingReader,
    settings: SettingsDep,
    format: Literal["xlsx", "csv"] = "xlsx",
    state: CaseState | None = None,
    presence: Presence | None = None,
) -> Response:
    job = service.visible_job(db, caller, job_id)
    cases = service.all_cases(db, caller, job_id, service.CaseFilter(state, presence))
    shown = export.labels(db, job.definition)
    cipher = cipher_for(settings)
    if format == "csv":
        body, media = export.cases_csv(job, cases, shown, cipher), "text/csv; charset=utf-8"
    else:
        body, media = export.cases_xlsx(job, cases, shown, cipher), export.XLSX
    name = f"比对线索-{job.name}.{format}"
    return Response(
        body,
        media_type=media,
        headers=attachment(f"compare-{job.id}.{format}", name),
    )


@router.get("/cases/{case_id}", summary="一条线索")
def get_case(
    case_id: Id, db: SessionDep, caller: SharingReader, settings: SettingsDep
) -> CasePublic:
    return case_public(service.get_case(db, caller, case_id), cipher_for(settings))


@router.post("/cases/{case_id}/steps", summary="核查线索: 核查中、属实或不属实")
def step_case(
    case_id: Id,
    body: Annotated[CaseStep, Body()],
    db: SessionDep,
    caller: SharingApplicant,
    settings: SettingsDep,
) -> CasePublic:
    found = service.step_case(db, caller, case_id, body.state, body.note)
    return case_public(found, cipher_for(settings))
