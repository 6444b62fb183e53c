"""Console pages of the evaluation (考核评估): the month's ranking with the platform
indicators, a department's indicators with their trend, the records behind every number,
and the bureau's scheme form, run and publish buttons.

Reading needs ``evaluation.read``; a department's detail is shown to its own staff and
to the bureau; everything that changes anything needs ``evaluation.admin``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import Response

from govshare.deps import SessionDep
from govshare.errors import GovshareError
from govshare.evaluation import records, service
from govshare.evaluation.api import EvaluationAdmin, EvaluationReader
from govshare.evaluation.export import shown
from govshare.evaluation.indicators import (
    DEPARTMENT_INDICATORS,
    PLATFORM_INDICATORS,
    SCORED,
)
from govshare.evaluation.models import PLATFORM, EvaluationRun
from govshare.evaluation.service import GRADE_LABELS, THRESHOLD_LABELS
from govshare.ids import MAX_ID, Id
from govshare.rules.clock import china_today
from govshare.security.service import Principal
from govshare.web.forms import NO_ERRORS, FormDep, FormErrors, redirect, render, text

router = APIRouter(include_in_schema=False)

RECORDS_SHOWN = 500
TREND_MONTHS = 12
NOTICES = {
    "ran": "考核已完成，结果见下方",
    "published": "考核结果已发布，此后新到的数据不再改变本月结果",
    "scheme_saved": "考核方案已保存为新版本，下次考核起生效",
}
# Who computed a run or saved a scheme, when it was not a person.
WHO_LABELS = {"system": "平台", "cli": "命令行"}
GRADE_CLASSES = {"excellent": "tag-open", "good": "sharing-1", "pass": "", "fail": "tag-danger"}


def _page(request: Request, template: str, caller: Principal, **context: Any) -> Response:
    status_code = context.pop("status_code", 200)
    return render(
        request,
        template,
        caller,
        status_code=status_code,
        nav="/evaluation",
        notice=NOTICES.get(request.query_params.get("done", ""), ""),
        grades=GRADE_LABELS,
        grade_classes=GRADE_CLASSES,
        who=lambda name: WHO_LABELS.get(name, name),
        shown=shown,
        sees_all=service.sees_all(caller),
        **context,
    )


def _chosen_run(db: SessionDep, month: str) -> EvaluationRun | None:
    """The run of ``?month=`` (a 422 page when malformed), else the newest."""
    if month:
        return service.get_run(db, str(service.parse_month(month)))
    runs = service.list_runs(db)
    return runs[0] if runs else None


@router.get("/evaluation")
def ranking_page(
    request: Request, db: SessionDep, caller: EvaluationReader, month: str = ""
) -> Response:
    """考核排名: every department's score and rank, the platform indicators."""
    run = _chosen_run(db, month)
    results = service.ranking(db, run) if run else []
    chart = {
        "title": f"{run.month} 部门得分" if run else "部门得分",
        "type": "bar",
        "labels": [r.department_name for r in results if r.score is not None],
        "values": [r.score for r in results if r.score is not None],
    }
    return _page(
        request,
        "evaluation/ranking.html",
        caller,
        run=run,
        runs=service.list_runs(db),
        results=results,
        chart=chart,
        platform=PLATFORM_INDICATORS,
        suggested=str(service.last_complete_month(china_today())),
    )


@router.get("/evaluation/departments/{department_id}")
def department_page(
    request: Request, department_id: Id, db: SessionDep, caller: EvaluationReader, month: str = ""
) -> Response:
    """A department's month: each indicator with its definition, value and the link to
    its records, and the trend of its score over the months."""
    service.check_department(caller, department_id)
    run = _chosen_run(db, month)
    if run is None:
        return redirect("/evaluation")
    result = service.get_result(db, caller, run, department_id)
    trend = service.trend(db, caller, department_id, months=TREND_MONTHS)
    chart = {
        "title": f"近 {len(trend)} 个月得分趋势",
        "type": "line",
        "labels": [m for m, _ in trend],
        "series": [
            {"name": "综合得分", "values": [r.score for _, r in trend]},
            *(
                {
                    "name": service.indicator(k).label,
                    "values": [r.indicators.get(k, {}).get("value") for _, r in trend],
                }
                for k in ("catalog_complete", "answer_on_time", "data_timely")
            ),
        ],
    }
    ranked = len([r for r in service.ranking(db, run) if r.rank is not None])
    return _page(
        request,
        "evaluation/department.html",
        caller,
        run=run,
        result=result,
        ranked=ranked,
        indicators=DEPARTMENT_INDICATORS,
        chart=chart if len(trend) > 1 else None,
    )


@router.get("/evaluation/departments/{department_id}/records")
def records_page(
    request: Request,
    department_id: Annotated[int, Path(ge=0, le=MAX_ID)],
    db: SessionDep,
    caller: EvaluationReader,
    indicator: str = "catalog_complete",
    month: str = "",
) -> Response:
    """下钻: the records an indicator counted, misses first (department 0: platform)."""
    key = indicator
    ind = service.indicator(key)
    run = _chosen_run(db, month)
    if run is None:
        return redirect("/evaluation")
    dept = PLATFORM if ind.platform else department_id
    facts = service.facts(db, caller, run, key, dept)
    lines = records.describe(db, ind, facts[:RECORDS_SHOWN])
    result = None if ind.platform else service.get_result(db, caller, run, dept)
    entry = run.platform.get(key, {}) if ind.platform else result.indicators.get(key, {})  # type: ignore[union-attr]
    ytd_source = run.year_to_date if ind.platform else result.year_to_date  # type: ignore[union-attr]
    ytd_key = "platform" if ind.platform else "indicators"
    year_entry = (ytd_source or {}).get(ytd_key, {}).get(key)
    breakdown = service.year_breakdown(db, caller, run, key, dept) if year_entry else []
    return _page(
        request,
        "evaluation/records.html",
        caller,
        run=run,
        ind=ind,
        result=result,
        entry=entry,
        columns=records.HEADERS[ind.record],
        lines=lines,
        total=len(facts),
        hits=sum(1 for f in facts if f.hit),
        year_entry=year_entry,
        breakdown=breakdown,
        # A month recomputed after this one changes the months' sum, not the stored figure.
        breakdown_moved=bool(year_entry)
        and [sum(e.get(n, 0) for _, e in breakdown) for n in ("records", "hits")]
        != [year_entry["records"], year_entry["hits"]],  # type: ignore[index]
    )


@router.post("/evaluation/run")
def run_action(db: SessionDep, caller: EvaluationAdmin, form: FormDep) -> Response:
    month = service.parse_month(text(form, "month"))
    service.run_month(
        db, caller.actor, month, today=china_today(), recompute=text(form, "recompute") == "1"
    )
    return redirect(f"/evaluation?month={month}&done=ran")


@router.post("/evaluation/publish")
def publish_action(db: SessionDep, caller: EvaluationAdmin, form: FormDep) -> Response:
    month = str(service.parse_month(text(form, "month")))
    service.publish_run(db, caller, month)
    return redirect(f"/evaluation?month={month}&done=published")


def _scheme_page(
    request: Request, db: SessionDep, caller: Principal, errors: FormErrors, values: dict[str, Any]
) -> Response:
    return _page(
        request,
        "evaluation/scheme.html",
        caller,
        status_code=422 if errors else 200,
        errors=errors,
        values=values,
        scored=[service.indicator(k) for k in SCORED],
        threshold_labels=THRESHOLD_LABELS,
        labels={i.key: i.label for i in DEPARTMENT_INDICATORS},
        schemes=service.list_schemes(db),
    )


@router.get("/evaluation/scheme")
def scheme_page(request: Request, db: SessionDep, caller: EvaluationAdmin) -> Response:
    """考核方案: the weights and thresholds form, and every earlier version."""
    s = service.current_scheme(db)
    values: dict[str, Any] = {f"w_{k}": s.weights.get(k, 0) for k in SCORED}
    values |= {f"t_{k}": v for k, v in s.thresholds.items()}
    values["dispute_penalty"] = s.dispute_penalty
    values["note"] = ""
    return _scheme_page(request, db, caller, NO_ERRORS, values)


def _number(form_value: str, field: str, problems: list[dict[str, str]]) -> float:
    try:
        return float(form_value)
    except ValueError:
        problems.append({"field": field, "message": "应为数字"})
        return 0.0


@router.post("/evaluation/scheme")
def scheme_save(
    request: Request, db: SessionDep, caller: EvaluationAdmin, form: FormDep
) -> Response:
    values = {k: text(form, k) for k in form}
    problems: list[dict[str, str]] = []
    weights = {k: _number(text(form, f"w_{k}") or "0", f"w_{k}", problems) for k in SCORED}
    thresholds = {k: _number(text(form, f"t_{k}"), f"t_{k}", problems) for k in THRESHOLD_LABELS}
    penalty = _number(text(form, "dispute_penalty") or "0", "dispute_penalty", problems)
    if problems:
        return _scheme_page(request, db, caller, FormErrors("请更正标出的项", problems), values)
    try:
        service.save_scheme(
            db,
            caller,
            weights=weights,
            thresholds=thresholds,
            dispute_penalty=penalty,
            note=text(form, "note")[:500],
        )
    except GovshareError as exc:
        fields = [
            {
                **d,
                "field": str(d.get("field", ""))
                .replace("weights.", "w_")
                .replace("thresholds.", "t_"),
            }
            for d in exc.details
        ]
        return _scheme_page(request, db, caller, FormErrors(exc.message, fields), values)
    return redirect("/evaluation/scheme?done=scheme_saved")
