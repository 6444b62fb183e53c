"""Exports of a stored run, reproducible from it alone (results and facts, never the
live records' numbers): an XLSX with one sheet per indicator (Chinese headers, cells safe
from formula injection) and a printable PDF report with server-drawn SVG charts."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy.orm import Session

from govshare.evaluation import charts, service
from govshare.evaluation.indicators import (
    DEPARTMENT_INDICATORS,
    PLATFORM_INDICATORS,
    Indicator,
    Kind,
)
from govshare.evaluation.models import EvaluationResult, EvaluationRun
from govshare.evaluation.service import GRADE_LABELS
from govshare.rules.spreadsheet import xlsx_row
from govshare.security.service import Principal

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
_env = Environment(loader=FileSystemLoader(str(TEMPLATES)), autoescape=select_autoescape(["html"]))


def shown(ind: Indicator, value: float | None) -> str:
    """An indicator's value as the console and the reports write it."""
    if value is None:
        return "—"
    if ind.is_rate:
        return f"{value:.2f}%"
    if ind.kind is Kind.MEAN:
        return f"{value:.2f}"
    return f"{int(value):,}"


def xlsx(session: Session, run: EvaluationRun) -> bytes:
    """排名 first, then one sheet per department indicator (部门, 分子, 分母, 值), the
    year to date (年度累计), the platform indicators and the definitions (口径)."""
    from openpyxl import Workbook

    wb = Workbook(write_only=True)
    results = service.ranking(session, run)
    ws = wb.create_sheet("排名")
    ws.append(xlsx_row(ws, ["排名", "部门", "得分", "等级", "考核月份", "考核方案版本"]))
    for r in results:
        ws.append(
            xlsx_row(
                ws,
                [
                    r.rank,
                    r.department_name,
                    r.score,
                    GRADE_LABELS.get(r.grade, ""),
                    run.month,
                    run.scheme.version,
                ],
            )
        )
    for ind in DEPARTMENT_INDICATORS:
        ws = wb.create_sheet(ind.label[:31])
        ws.append(xlsx_row(ws, ["部门", f"分子（{ind.hit_label}）", "记录数", "值"]))
        for r in results:
            e = r.indicators.get(ind.key, {})
            value = e.get("value")
            ws.append(
                xlsx_row(
                    ws,
                    [
                        r.department_name,
                        e.get("hits", 0),
                        e.get("records", 0),
                        "—" if value is None else value,
                    ],
                )
            )
    _year_sheet(wb, run, results)
    ws = wb.create_sheet("平台指标")
    ws.append(xlsx_row(ws, ["指标", "分子", "分母", "值（%）", "口径"]))
    for ind in PLATFORM_INDICATORS:
        e = run.platform.get(ind.key, {})
        value = e.get("value")
        ws.append(
            xlsx_row(
                ws,
                [
                    ind.label,
                    e.get("hits", 0),
                    e.get("records", 0),
                    "—" if value is None else value,
                    ind.definition,
                ],
            )
        )
    ws = wb.create_sheet("指标口径")
    ws.append(xlsx_row(ws, ["指标", "代码", "口径", "权重"]))
    for ind in DEPARTMENT_INDICATORS:
        ws.append(
            xlsx_row(ws, [ind.label, ind.key, ind.definition, run.scheme.weights.get(ind.key, "")])
        )
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


def _year_sheet(wb: Any, run: EvaluationRun, results: list[EvaluationResult]) -> None:
    """年度累计: each department's year-to-date score, rank and indicator values, in the
    order of the year's ranking."""
    ws = wb.create_sheet("年度累计")
    months = (run.year_to_date or {}).get("months", [])
    ws.append(
        xlsx_row(
            ws,
            ["年度排名", "部门", "年度得分", "等级", "计入月数"]
            + [ind.label for ind in DEPARTMENT_INDICATORS],
        )
    )
    ordered = sorted(results, key=lambda r: (r.year_to_date or {}).get("rank") or 10**9)
    for r in ordered:
        y = r.year_to_date or {}
        values = [
            y.get("indicators", {}).get(ind.key, {}).get("value") for ind in DEPARTMENT_INDICATORS
        ]
        ws.append(
            xlsx_row(
                ws,
                [
                    y.get("rank"),
                    r.department_name,
                    y.get("score"),
                    GRADE_LABELS.get(y.get("grade", ""), ""),
                    y.get("months"),
                    *("—" if v is None else v for v in values),
                ],
            )
        )
    ws.append(xlsx_row(ws, []))
    ws.append(xlsx_row(ws, ["计入月份", "、".join(months) or "—"]))


def _trend_svg(trend: list[tuple[str, EvaluationResult]]) -> str:
    labels = [m for m, _ in trend]
    series: list[tuple[str, list[float | None]]] = [("综合得分", [r.score for _, r in trend])]
    for key in ("catalog_complete", "answer_on_time", "data_timely"):
        series.append(
            (
                service.indicator(key).label,
                [r.indicators.get(key, {}).get("value") for _, r in trend],
            )
        )
    return charts.line_chart(labels, series)


def report_html(
    session: Session, principal: Principal, run: EvaluationRun, department_id: int | None
) -> str:
    """The report as HTML: the month's ranking (with its bar chart) and platform
    indicators, or one department's indicators with their trend."""
    results = service.ranking(session, run)
    context: dict[str, Any] = {
        "run": run,
        "grades": GRADE_LABELS,
        "platform": [(i, run.platform.get(i.key, {})) for i in PLATFORM_INDICATORS],
        "indicators": DEPARTMENT_INDICATORS,
        "shown": shown,
        "results": results,
    }
    if department_id is None:
        # The ranking's bars are drawn with CSS in the table (WeasyPrint lays out a
        # hundred SVG texts several times slower than a table's cells).
        return _env.get_template("evaluation/report_pdf.html").render(**context)
    result = service.get_result(session, principal, run, department_id)
    trend = service.trend(session, principal, department_id)
    context.update(
        result=result,
        total=len([r for r in results if r.rank is not None]),
        chart=_trend_svg(trend) if len(trend) > 1 else "",
    )
    return _env.get_template("evaluation/report_pdf.html").render(**context)


def pdf(
    session: Session, principal: Principal, run: EvaluationRun, department_id: int | None = None
) -> bytes:
    from weasyprint import HTML

    html = report_html(session, principal, run, department_id)
    # base_url ends in a slash so that the template's relative stylesheet resolves under it.
    out: bytes = HTML(string=html, base_url=TEMPLATES.as_uri() + "/").write_pdf()
    return out
