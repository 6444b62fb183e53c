"""Evaluation API (考核评估): indicators and their definitions, the scheme, monthly runs
with the ranking, a department's result and the records behind each number, exports.

Reading needs ``evaluation.read`` (every department's staff: the ranking and their own
department in detail); the scheme, runs, publishing and the all-department workbook
need ``evaluation.admin`` (the bureau)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Depends, Path, Query
from fastapi.responses import Response

from govshare.deps import Require, SessionDep
from govshare.evaluation import export, records, service
from govshare.evaluation.indicators import INDICATORS, Indicator
from govshare.evaluation.models import PLATFORM, EvaluationResult, EvaluationRun, EvaluationScheme
from govshare.evaluation.schemas import (
    IndicatorPublic,
    IndicatorValue,
    RankingEntry,
    RecordLine,
    RecordPage,
    ResultPublic,
    RunDetail,
    RunPublic,
    RunRequest,
    SchemePublic,
    SchemeUpdate,
    YearToDateResult,
    YearToDateRun,
)
from govshare.ids import MAX_ID, Count, Id
from govshare.rules.clock import china_today
from govshare.security.roles import Permission
from govshare.security.service import Principal
from govshare.web.headers import attachment

EvaluationReader = Annotated[Principal, Depends(Require(Permission.EVALUATION_READ))]
EvaluationAdmin = Annotated[Principal, Depends(Require(Permission.EVALUATION_ADMIN))]

router = APIRouter(prefix="/evaluation", tags=["evaluation"])


def indicator_public(ind: Indicator) -> IndicatorPublic:
    return IndicatorPublic(
        key=ind.key,
        label=ind.label,
        kind=ind.kind.value,
        record=ind.record.value,
        definition=ind.definition,
        platform=ind.platform,
    )


def scheme_public(s: EvaluationScheme) -> SchemePublic:
    return SchemePublic(
        version=s.version,
        weights=s.weights,
        thresholds=s.thresholds,
        dispute_penalty=s.dispute_penalty,
        note=s.note,
        created_by=s.created_by,
        created_at=s.created_at,
    )


def run_public(run: EvaluationRun) -> RunPublic:
    return RunPublic(
        month=run.month,
        status=run.status,
        scheme_version=run.scheme.version,
        trigger=run.trigger,
        facts=run.facts,
        computations=run.computations,
        computed_by=run.computed_by,
        computed_at=run.computed_at,
        published_by=run.published_by,
        published_at=run.published_at,
        platform={k: IndicatorValue(**v) for k, v in run.platform.items()},
        year_to_date=YearToDateRun.model_validate(run.year_to_date) if run.year_to_date else None,
    )


def ranking_entry(r: EvaluationResult) -> RankingEntry:
    return RankingEntry(
        department_id=r.department_id,
        department_name=r.department_name,
        score=r.score,
        rank=r.rank,
        grade=r.grade,
        year_to_date_score=(r.year_to_date or {}).get("score"),
        year_to_date_rank=(r.year_to_date or {}).get("rank"),
    )


def _run(db: SessionDep, month: str) -> EvaluationRun:
    return service.get_run(db, str(service.parse_month(month)))


@router.get("/indicators", summary="考核指标及口径")
def list_indicators(_caller: EvaluationReader) -> list[IndicatorPublic]:
    return [indicator_public(i) for i in INDICATORS]


@router.get("/scheme", summary="当前考核方案")
def get_scheme(db: SessionDep, _caller: EvaluationReader) -> SchemePublic:
    return scheme_public(service.current_scheme(db))


@router.get("/schemes", summary="考核方案的各个版本")
def list_schemes(db: SessionDep, _caller: EvaluationAdmin) -> list[SchemePublic]:
    return [scheme_public(s) for s in service.list_schemes(db)]


@router.put("/scheme", summary="修改考核方案 (新增一个版本)")
def update_scheme(body: SchemeUpdate, db: SessionDep, caller: EvaluationAdmin) -> SchemePublic:
    scheme = service.save_scheme(
        db,
        caller,
        weights=body.weights,
        thresholds=body.thresholds,
        dispute_penalty=body.dispute_penalty,
        note=body.note,
    )
    return scheme_public(scheme)


@router.get("/runs", summary="已考核的月份")
def list_runs(db: SessionDep, _caller: EvaluationReader) -> list[RunPublic]:
    return [run_public(r) for r in service.list_runs(db)]


@router.post("/runs/{month}", summary="考核一个月 (计算或重新计算)")
def run_month(
    month: str,
    db: SessionDep,
    caller: EvaluationAdmin,
    body: Annotated[RunRequest | None, Body()] = None,
) -> RunPublic:
    run = service.run_month(
        db,
        caller.actor,
        service.parse_month(month),
        today=china_today(),
        recompute=bool(body and body.recompute),
    )
    return run_public(run)


@router.post("/runs/{month}/publish", summary="发布考核结果")
def publish(month: str, db: SessionDep, caller: EvaluationAdmin) -> RunPublic:
    return run_public(service.publish_run(db, caller, str(service.parse_month(month))))


@router.get("/runs/{month}", summary="一个月的考核结果和排名")
def get_run(month: str, db: SessionDep, _caller: EvaluationReader) -> RunDetail:
    run = _run(db, month)
    return RunDetail(
        **run_public(run).model_dump(),
        ranking=[ranking_entry(r) for r in service.ranking(db, run)],
    )


@router.get("/runs/{month}/departments/{department_id}", summary="部门的各项指标")
def get_result(
    month: str, department_id: Id, db: SessionDep, caller: EvaluationReader
) -> ResultPublic:
    run = _run(db, month)
    r = service.get_result(db, caller, run, department_id)
    return ResultPublic(
        **ranking_entry(r).model_dump(),
        month=run.month,
        indicators={k: IndicatorValue(**v) for k, v in r.indicators.items()},
        year_to_date=YearToDateResult.model_validate(r.year_to_date) if r.year_to_date else None,
    )


@router.get(
    "/runs/{month}/departments/{department_id}/indicators/{key}/records",
    summary="指标计入的记录 (下钻)",
)
def list_records(
    month: str,
    department_id: Annotated[int, Path(ge=0, le=MAX_ID, description="部门编号; 平台指标为 0")],
    key: str,
    db: SessionDep,
    caller: EvaluationReader,
    limit: Annotated[Count, Query(ge=1, le=1000)] = 200,
    offset: Annotated[Count, Query()] = 0,
) -> RecordPage:
    run = _run(db, month)
    ind = service.indicator(key)
    dept = PLATFORM if ind.platform else department_id
    everything = service.facts(db, caller, run, key, dept)
    page = everything[offset : offset + limit]
    headers = records.HEADERS[ind.record]
    lines = records.describe(db, ind, page)
    return RecordPage(
        indicator=indicator_public(ind),
        department_id=dept,
        total=len(everything),
        hits=sum(1 for f in everything if f.hit),
        items=[
            RecordLine(
                record_id=line.record_id,
                hit=line.hit,
                value=line.value,
                cells=dict(zip(headers, line.cells, strict=True)),
            )
            for line in lines
        ],
    )


@router.get("/runs/{month}/export.xlsx", summary="导出考核结果 (XLSX, 每个指标一个工作表)")
def export_xlsx(month: str, db: SessionDep, _caller: EvaluationAdmin) -> Response:
    run = _run(db, month)
    return Response(
        export.xlsx(db, run),
        media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        headers=attachment(f"evaluation-{run.month}.xlsx", f"考核结果-{run.month}.xlsx"),
    )


@router.get("/runs/{month}/report.pdf", summary="考核报告 (PDF)")
def report_pdf(
    month: str,
    db: SessionDep,
    caller: EvaluationReader,
    department_id: Annotated[Id | None, Query()] = None,
) -> Response:
    """The month's report (ranking and platform indicators), or with ``department_id``
    a department's report (its own, unless the caller is the bureau)."""
    run = _run(db, month)
    name = f"考核报告-{run.month}" + (f"-{department_id}" if department_id else "") + ".pdf"
    return Response(
        export.pdf(db, caller, run, department_id),
        media_type="application/pdf",
        headers=attachment(f"evaluation-{run.month}.pdf", name),
    )
