"""Data quality console pages (数据质量): the overview of the caller's resources with
their latest scores, a resource's page (score trend, scans, failing values with the
XLSX download), and the rules editor. Reading needs ``sharing.read``; editing rules and
starting a scan need ``sharing.store``; only the provider department and the platform
admin see a resource's quality at all."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from govshare.catalog.codes import CODE_TABLE_TITLES, CodeTableName
from govshare.catalog.models import CodeEntry, Resource
from govshare.db import utcnow
from govshare.deps import SessionDep, SettingsDep, SharingReader, SharingStoreAdmin
from govshare.errors import InvalidInput
from govshare.ids import Id, parse_id
from govshare.quality import scan as scanning
from govshare.quality import service
from govshare.quality.errors import NoSharedStore
from govshare.quality.models import DIMENSION_LABELS, Dimension, ItemFormat, QualityScan
from govshare.rules.validators import TYPE_NAMES
from govshare.security.roles import Permission
from govshare.security.service import Principal
from govshare.sharing.store import SharedDatabase
from govshare.web.forms import NO_ERRORS, FormDep, FormErrors, redirect, render, text

router = APIRouter(include_in_schema=False)

TREND_SCANS = 30
TREND_DAYS = 30
PROBLEMS_SHOWN = 50
NOTICES = {
    "scanned": "检测已完成，结果如下",
    "rules_saved": "质量规则已保存，下次检测起生效",
    "rules_unchanged": "质量规则没有变化",
}
CYCLE_LABELS = {
    "realtime": "实时",
    "daily": "每日",
    "weekly": "每周",
    "monthly": "每月",
    "quarterly": "每季度",
    "semiannual": "每半年",
    "yearly": "每年",
    "adhoc": "不定期",
}
TRIGGER_LABELS = {"feed": "数据更新后", "schedule": "定期", "manual": "手动"}


def _score(value: float | None) -> str:
    return "—" if value is None else f"{value:g}"


def _page(request: Request, template: str, caller: Principal, **context: Any) -> Response:
    status_code = context.pop("status_code", 200)
    return render(
        request,
        template,
        caller,
        status_code=status_code,
        notice=NOTICES.get(request.query_params.get("done", ""), ""),
        score=_score,
        dimensions=DIMENSION_LABELS,
        cycle_labels=CYCLE_LABELS,
        trigger_labels=TRIGGER_LABELS,
        **context,
    )


@router.get("/quality")
def overview(request: Request, db: SessionDep, caller: SharingReader) -> Response:
    """数据质量: each visible resource with a shared store and its latest scores, and the
    department's (the platform's) daily mean score over the last 30 days."""
    days = service.daily_scores(db, caller, since=utcnow() - timedelta(days=TREND_DAYS))
    whose = "全平台" if caller.is_admin else "本部门"
    chart = {
        "title": f"{whose}综合得分趋势（近{TREND_DAYS}天，每日平均）",
        "type": "line",
        "labels": [d.strftime("%m-%d") for d, _ in days],
        "series": [{"name": "综合得分", "values": [v for _, v in days]}],
    }
    return _page(
        request,
        "quality/overview.html",
        caller,
        lines=service.list_quality(db, caller),
        chart=chart if len(days) > 1 else None,
    )


def _trend(scans: list[QualityScan]) -> dict[str, Any]:
    """The score trend, oldest first, as the console's series charts draw it."""
    ordered = list(reversed(scans))
    series = [{"name": "综合得分", "values": [s.overall_score for s in ordered]}]
    for d in (Dimension.COMPLETENESS, Dimension.VALIDITY, Dimension.UNIQUENESS):
        series.append(
            {"name": d.label, "values": [getattr(s, f"{d.value}_score") for s in ordered]}
        )
    return {
        "title": f"质量得分趋势（最近 {len(ordered)} 次检测）",
        "type": "line",
        "labels": [s.started_at.strftime("%m-%d %H:%M") for s in ordered],
        "series": series,
    }


@router.get("/quality/resources/{resource_id}")
def resource_page(
    request: Request, resource_id: Id, db: SessionDep, caller: SharingReader, scan: str = ""
) -> Response:
    """A resource's quality: latest scores, their trend, the scans, and the failing
    values of the latest scan (or ``?scan=``) with the XLSX download."""
    resource = service.visible_resource(db, caller, resource_id)
    store = service.store_of(db, resource.id)
    if store is None:
        raise NoSharedStore("该目录尚未建立共享信息库，无法检测数据质量")
    scans = service.list_scans(db, caller, resource.id, limit=TREND_SCANS)
    shown = scans[0] if scans else None
    if (scan_id := parse_id(scan)) is not None:
        shown = service.get_scan(db, caller, scan_id)
        if shown.resource_id != resource.id:
            shown = scans[0] if scans else None
    problems = service.list_problems(db, caller, shown, limit=PROBLEMS_SHOWN) if shown else []
    return _page(
        request,
        "quality/resource.html",
        caller,
        resource=resource,
        store=store,
        scans=scans,
        shown=shown,
        problems=problems,
        chart=_trend(scans) if len(scans) > 1 else None,
        can_scan=caller.can(Permission.SHARING_STORE),
        masked=caller.department_id != resource.provider_department_id,
    )


@router.post("/quality/resources/{resource_id}/scan")
def start_scan(
    request: Request,
    resource_id: Id,
    db: SessionDep,
    settings: SettingsDep,
    caller: SharingStoreAdmin,
) -> Response:
    service.visible_resource(db, caller, resource_id)
    store = service.store_of(db, resource_id)
    if store is None:
        raise NoSharedStore("该目录尚未建立共享信息库，无法检测数据质量")
    shared_db: SharedDatabase = request.app.state.data_services.db
    done = scanning.scan_now(db, shared_db, store, utcnow(), settings)
    db.commit()
    return redirect(f"/quality/resources/{resource_id}?scan={done.id}&done=scanned")


# -- the rules editor -------------------------------------------------------------------------


def _table_options(db: Session) -> list[tuple[str, str]]:
    """Code tables an item's values may follow: the national ones (GB/T 2261.1 …), not
    the catalog's own metadata tables (formats, update cycles …)."""
    metadata = {t.value for t in CodeTableName}
    names = sorted(set(db.scalars(select(CodeEntry.table_name).distinct())) - metadata)
    return [(n, f"{CODE_TABLE_TITLES[n]}（{n}）" if n in CODE_TABLE_TITLES else n) for n in names]


def _rules_page(
    request: Request,
    db: Session,
    caller: Principal,
    resource: Resource,
    *,
    values: dict[str, dict[str, Any]] | None = None,
    errors: FormErrors = NO_ERRORS,
    status_code: int = 200,
) -> Response:
    rows = service.rules_of(db, resource)
    if values is None:
        values = {spec.item_code: spec.as_dict() for _item, spec, _stored in rows}
    return _page(
        request,
        "quality/rules.html",
        caller,
        status_code=status_code,
        resource=resource,
        rows=rows,
        v=values,
        errors=errors,
        can_edit=caller.can(Permission.SHARING_STORE) and service.is_owner(caller, resource),
        formats=[(f.value, f.label) for f in ItemFormat],
        types=[("", "不校验")] + [(k, f"{n}{k}") for k, n in TYPE_NAMES.items()],
        tables=_table_options(db),
    )


@router.get("/quality/resources/{resource_id}/rules")
def rules_page(
    request: Request, resource_id: Id, db: SessionDep, caller: SharingReader
) -> Response:
    """质量规则: one row per item, seeded from the catalog until edited."""
    resource = service.visible_resource(db, caller, resource_id)
    return _rules_page(request, db, caller, resource)


def _date(raw: str, field: str, problems: list[dict[str, str]]) -> date | None:
    if not raw:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        problems.append({"field": field, "message": "日期格式应为 2024-01-31"})
        return None


@router.post("/quality/resources/{resource_id}/rules")
def save_rules(
    request: Request, resource_id: Id, form: FormDep, db: SessionDep, caller: SharingStoreAdmin
) -> Response:
    resource = service.visible_resource(db, caller, resource_id)
    rows = service.rules_of(db, resource)
    values: dict[str, dict[str, Any]] = {}
    problems: list[dict[str, str]] = []
    specs: dict[str, service.RuleSpec] = {}
    for i, (item, current, _stored) in enumerate(rows):
        prefix = f"r{i}."
        required = text(form, prefix + "required") == "1"
        data_type = text(form, prefix + "data_type")
        max_length = text(form, prefix + "max_length")
        fmt = text(form, prefix + "format") or ItemFormat.NONE.value
        code_table = text(form, prefix + "code_table") or None
        date_min, date_max = text(form, prefix + "date_min"), text(form, prefix + "date_max")
        values[item.code] = {
            "required": required,
            "data_type": data_type,
            "max_length": max_length,
            "format": fmt,
            "code_table": code_table,
            "date_min": date_min,
            "date_max": date_max,
        }
        found: list[dict[str, str]] = []
        length: int | None = None
        if max_length:
            if max_length.isdigit() and 1 <= int(max_length) <= 100_000:
                length = int(max_length)
            else:
                found.append({"field": "max_length", "message": "长度须为 1–100000 的整数"})
        if fmt not in {f.value for f in ItemFormat}:
            found.append({"field": "format", "message": "请选择格式规则"})
            fmt = ItemFormat.NONE.value
        spec = service.RuleSpec(
            item_code=item.code,
            required=required,
            data_type=data_type,
            max_length=length,
            format=ItemFormat(fmt),
            code_table=code_table,
            date_min=_date(date_min, "date_min", found),
            date_max=_date(date_max, "date_max", found),
        )
        if not found:
            found = service.check_rule(db, spec)
        problems += [
            {"field": f"r{i}.{p['field']}", "message": f"{item.name}：{p['message']}"}
            for p in found
        ]
        if spec != current:
            specs[item.code] = spec
    if problems:
        errors = FormErrors("质量规则有误，请按提示修改", problems)
        return _rules_page(
            request, db, caller, resource, values=values, errors=errors, status_code=422
        )
    try:
        for code, spec in specs.items():
            service.update_rule(db, caller, resource_id=resource.id, item_code=code, spec=spec)
    except InvalidInput as exc:
        db.rollback()
        errors = FormErrors(exc.message, exc.details)
        return _rules_page(
            request, db, caller, resource, values=values, errors=errors, status_code=422
        )
    db.commit()
    done = "rules_saved" if specs else "rules_unchanged"
    return redirect(f"/quality/resources/{resource.id}/rules?done={done}")
