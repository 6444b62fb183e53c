"""Usage (使用情况): the consumer's usage feedback, and the statistics of reported use,
applications, grants and data-service calls."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from datetime import date, timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import ValidationError
from sqlalchemy.orm import Session

from govshare.deps import SessionDep, SettingsDep, SharingApplicant, SharingReader
from govshare.errors import Forbidden, InvalidInput, NotFound
from govshare.security.service import Principal
from govshare.sharing import service
from govshare.sharing.models import ApplicationStatus, UsageReport
from govshare.sharing.pages.common import Today, _labels, _page, _paged, countdown
from govshare.sharing.schemas import UsageCreate
from govshare.web.filters import local_time
from govshare.web.forms import (
    NO_ERRORS,
    FormDep,
    FormErrors,
    Problem,
    optional_int,
    redirect,
    text,
    validation_problems,
)

router = APIRouter(include_in_schema=False)

# -- usage feedback and statistics (使用情况) -------------------------------------------------

USAGE_SIDES = {"mine": "本部门的使用反馈", "provider": "本部门数据的使用情况", "all": "全平台"}
USAGE_LABELS: dict[str, str] = {"grant_id": "授权", "text": "使用情况", "count": "使用次数"}


def _side(caller: Principal, value: str) -> str:
    sides = [s for s in USAGE_SIDES if s != "all" or caller.is_admin]
    default = "all" if caller.is_admin else "provider"
    return value if value in sides else default


def _usage_page(
    request: Request,
    db: Session,
    caller: Principal,
    today: date,
    *,
    side: str,
    p: str = "",
    values: dict[str, Any] | None = None,
    errors: FormErrors = NO_ERRORS,
    status_code: int = 200,
) -> Response:
    held = [g for g in service.list_grants(db, caller, side="mine") if service.is_active(g, today)]
    return _page(
        request,
        "sharing/usage.html",
        caller,
        status_code=status_code,
        side=side,
        sides={k: v for k, v in USAGE_SIDES.items() if k != "all" or caller.is_admin},
        page=_paged(service.list_usage(db, caller, side=side), p),
        held=held,
        v=values or {},
        errors=errors,
    )


@router.get("/sharing/usage")
def usage_page(
    request: Request,
    db: SessionDep,
    caller: SharingReader,
    today: Today,
    side: str = "",
    grant_id: str = "",
    p: str = "",
) -> Response:
    """使用反馈: the consumer's form, and who used what (providers) or what was reported."""
    values = {"grant_id": grant_id} if grant_id.isdigit() else None
    return _usage_page(request, db, caller, today, side=_side(caller, side), p=p, values=values)


@router.post("/sharing/usage")
def report_usage(
    request: Request, form: FormDep, db: SessionDep, caller: SharingApplicant, today: Today
) -> Response:
    values = {
        "grant_id": text(form, "grant_id"),
        "count": text(form, "count"),
        "text": text(form, "text"),
    }
    label = _labels(USAGE_LABELS)
    problems: list[Problem] = []
    grant_id = optional_int(values["grant_id"])
    if not isinstance(grant_id, int):
        problems.append({"field": "grant_id", "message": "请选择本部门持有的授权"})
    try:
        data = UsageCreate.model_validate(
            {
                "grant_id": grant_id if isinstance(grant_id, int) else 0,
                "count": values["count"] or 0,
                "text": values["text"],
            }
        )
    except ValidationError as exc:
        problems += [p for p in validation_problems(exc) if p["field"] != "grant_id"]
    if problems:
        errors = FormErrors("使用情况填写不完整", problems, label=label)
    else:
        try:
            service.report_usage(db, caller, data)
        except (InvalidInput, NotFound, Forbidden) as exc:
            db.rollback()
            errors = FormErrors(
                exc.message, [{"field": "grant_id", "message": exc.message}], label=label
            )
        else:
            db.commit()
            return redirect("/sharing/usage?side=mine&done=usage_reported")
    return _usage_page(
        request,
        db,
        caller,
        today,
        side="mine",
        values=values,
        errors=errors,
        status_code=422,
    )


def _chart(kind: str, title: str, labels: list[str], **data: Any) -> dict[str, Any]:
    """What app.js needs to draw one chart: ``values`` for one series, ``series`` for more."""
    return {"type": kind, "title": title, "labels": labels, **data}


def _months(first: str, last: str) -> list[str]:
    """Every ``yyyy-mm`` from ``first`` to ``last``, so quiet months show as zero."""
    year, month = map(int, first.split("-"))
    out = []
    while f"{year:04d}-{month:02d}" <= last:
        out.append(f"{year:04d}-{month:02d}")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return out


MONTH_SERIES = 6  # departments drawn one by one in the monthly chart; the rest as 其他部门


def usage_statistics(reports: list[UsageReport]) -> dict[str, Any]:
    """Reported use (the reports' counts) per entry, per consumer department, and per
    month (China time) split by consumer department; reports per month beside."""
    by_resource: dict[str, int] = defaultdict(int)
    by_department: dict[str, int] = defaultdict(int)
    month_reports: dict[str, int] = defaultdict(int)
    month_uses: dict[tuple[str, str], int] = defaultdict(int)
    for r in reports:
        department = r.grant.consumer.name
        month = local_time(r.reported_at, "%Y-%m")
        by_resource[r.grant.resource.name] += r.count
        by_department[department] += r.count
        month_reports[month] += 1
        month_uses[month, department] += r.count
    months = _months(min(month_reports), max(month_reports))[-24:] if month_reports else []
    resources = sorted(by_resource.items(), key=lambda kv: (-kv[1], kv[0]))
    departments = sorted(by_department.items(), key=lambda kv: (-kv[1], kv[0]))
    drawn = [name for name, _ in departments[:MONTH_SERIES]]
    series = [
        {"name": name, "values": [month_uses.get((m, name), 0) for m in months]} for name in drawn
    ]
    if len(departments) > MONTH_SERIES:
        rest = {name for name, _ in departments[MONTH_SERIES:]}
        series.append(
            {
                "name": "其他部门",
                "values": [sum(month_uses.get((m, n), 0) for n in rest) for m in months],
            }
        )
    return {
        "by_resource": resources[:20],
        "by_department": departments[:20],
        "months": months,
        "month_reports": [month_reports.get(m, 0) for m in months],
        "month_series": series,
    }


CALL_DAYS = 30  # days of data-service calls the statistics page shows


def call_statistics(totals: Sequence[service.CallTotal], days: list[date]) -> dict[str, Any]:
    """Data-service calls per day stacked by consumer department (six drawn, the rest
    as 其他部门), keys looked up per resource, and the period's figures per consumer
    department and resource, most calls first."""
    day_calls: dict[tuple[date, str], int] = defaultdict(int)
    by_department: dict[str, int] = defaultdict(int)
    keys_by_resource: dict[str, int] = defaultdict(int)
    table: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0, 0])
    for t in totals:
        day_calls[t.day, t.department_name] += t.calls
        by_department[t.department_name] += t.calls
        keys_by_resource[t.resource_name] += t.keys
        figures = table[t.department_name, t.resource_name]
        figures[0] += t.calls
        figures[1] += t.keys
        figures[2] += t.rows
    departments = sorted(by_department.items(), key=lambda kv: (-kv[1], kv[0]))
    drawn = [name for name, _ in departments[:MONTH_SERIES]]
    series = [{"name": n, "values": [day_calls.get((d, n), 0) for d in days]} for n in drawn]
    if len(departments) > MONTH_SERIES:
        rest = {name for name, _ in departments[MONTH_SERIES:]}
        series.append(
            {
                "name": "其他部门",
                "values": [sum(day_calls.get((d, n), 0) for n in rest) for d in days],
            }
        )
    rows: list[dict[str, Any]] = [
        {"department": dept, "resource": res, "calls": c, "keys": k, "rows": r}
        for (dept, res), (c, k, r) in table.items()
    ]
    rows.sort(key=lambda r: (-r["calls"], r["department"], r["resource"]))
    return {
        "days": [d.strftime("%m-%d") for d in days],
        "day_series": series if totals else [],
        "keys_by_resource": sorted(keys_by_resource.items(), key=lambda kv: (-kv[1], kv[0]))[:20],
        "rows": rows,
        "calls": sum(t.calls for t in totals),
        "keys": sum(t.keys for t in totals),
    }


@router.get("/sharing/stats")
def stats_page(
    request: Request,
    db: SessionDep,
    settings: SettingsDep,
    caller: SharingReader,
    today: Today,
    side: str = "",
) -> Response:
    """使用情况统计: reported use by entry, consumer department and month, and how the
    applications and grants of the same side stand."""
    side = _side(caller, side)
    reports = service.list_usage(db, caller, side=side)
    stats = usage_statistics(reports)
    applications = service.list_applications(db, caller, side=side)
    grants = service.list_grants(db, caller, side=side)
    by_status = Counter(a.status for a in applications)
    days = [today - timedelta(days=n) for n in range(CALL_DAYS - 1, -1, -1)]
    calls = call_statistics(service.call_totals(db, caller, side=side, since=days[0]), days)
    remind = settings.remind_working_days_before
    overdue = sum(
        1
        for a in applications
        if (c := countdown(a, today, remind_before=remind)) is not None and c.overdue
    )
    charts = [
        _chart(
            "stack",
            "每月使用次数（按使用部门）",
            stats["months"],
            series=stats["month_series"],
        ),
        _chart(
            "bar",
            "各目录使用次数",
            [k for k, _ in stats["by_resource"]],
            values=[n for _, n in stats["by_resource"]],
        ),
        _chart(
            "bar",
            "各使用部门使用次数",
            [k for k, _ in stats["by_department"]],
            values=[n for _, n in stats["by_department"]],
        ),
        _chart(
            "pie",
            "共享申请办理情况",
            [s.label for s in ApplicationStatus if by_status[s]],
            values=[by_status[s] for s in ApplicationStatus if by_status[s]],
        ),
        _chart(
            "stack",
            f"近{CALL_DAYS}天每日数据服务调用次数（按使用部门）",
            calls["days"] if calls["day_series"] else [],
            series=calls["day_series"],
        ),
        _chart(
            "bar",
            f"近{CALL_DAYS}天各目录查询、核验的键数",
            [k for k, _ in calls["keys_by_resource"]],
            values=[n for _, n in calls["keys_by_resource"]],
        ),
    ]
    applications_url = "/sharing/applications" if side == "mine" else "/sharing/queue?status=all"
    cards = [
        ("共享申请", len(applications), applications_url),
        ("超期未办结", overdue, applications_url),
        (
            "有效授权",
            sum(1 for g in grants if service.is_active(g, today)),
            "/sharing/grants" if side == "mine" else "/sharing/grants/provider",
        ),
        ("使用反馈", len(reports), f"/sharing/usage?side={side}"),
        ("使用次数合计", sum(r.count for r in reports), f"/sharing/usage?side={side}"),
        (f"近{CALL_DAYS}天数据服务调用", calls["calls"], "#calls"),
    ]
    return _page(
        request,
        "sharing/stats.html",
        caller,
        side=side,
        sides={k: v for k, v in USAGE_SIDES.items() if k != "all" or caller.is_admin},
        charts=charts,
        cards=cards,
        call_rows=calls["rows"],
        call_days=CALL_DAYS,
    )
