"""运维监控: the operations dashboard for the platform admin — readiness, nodes,
exchange throughput and lag, API calls and errors, data-service calls, open alerts, disk
and database size. Read only; the figures come from ``ops.dashboard``. Beside it 告警规则:
each alert kind's rule, edited by whoever holds ``ops.admin``."""

from __future__ import annotations

import shutil
from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from govshare.config import Settings
from govshare.db import utcnow
from govshare.deps import Require, SessionDep, SettingsDep
from govshare.errors import GovshareError, InvalidInput
from govshare.exchange import alertrules
from govshare.exchange import service as exchange_service
from govshare.exchange.models import AlertKind
from govshare.ops import dashboard, ready
from govshare.ops import service as ops_service
from govshare.ops.api import exposition
from govshare.rules.clock import china_today
from govshare.security.models import AuditHead
from govshare.security.roles import Permission
from govshare.security.service import Principal
from govshare.web.charts import chart as _chart
from govshare.web.filters import local_time
from govshare.web.forms import NO_ERRORS, FormDep, FormErrors, redirect, render, text

router = APIRouter(include_in_schema=False)

# HTTP status classes as the chart names them (成功 2xx, 客户端错误 4xx, …).
STATUS_LABELS = {"2xx": "成功", "3xx": "重定向", "4xx": "请求错误", "5xx": "服务器错误"}
OpsReader = Annotated[Principal, Depends(Require(Permission.OPS_READ))]
MIB = 1024 * 1024


def _age(age: timedelta | None) -> str:
    """备份年龄: how long ago the last good backup finished, in the largest whole unit."""
    if age is None:
        return "无"
    minutes = max(0, int(age.total_seconds() // 60))
    if minutes < 60:
        return f"{minutes} 分钟前"
    if minutes < 48 * 60:
        return f"{minutes // 60} 小时前"
    return f"{minutes // (24 * 60)} 天前"


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


@router.get("/ops")
async def dashboard_page(
    request: Request, db: SessionDep, settings: SettingsDep, caller: OpsReader
) -> Response:
    state = request.app.state
    today = china_today()
    checks = await run_in_threadpool(
        ready.readiness,
        engine=state.engine,
        store=state.package_store,
        shared_engine=state.data_services.db.engine,
        data_dir=settings.data_dir,
        min_free_mb=settings.ready_min_free_mb,
        calendar_days=settings.ready_calendar_days,
        today=today,
    )
    text = (await run_in_threadpool(exposition(request).render)).decode()

    def gather() -> dict[str, Any]:
        return {
            "summary": exchange_service.monitor_summary(db),
            "calls": dashboard.daily_calls(db, today),
            "alerts": dashboard.open_alerts_by_kind(db),
            "audit": db.scalar(select(AuditHead.seq).where(AuditHead.id == 1)) or 0,
            "backup": ops_service.backup_age(db, settings, utcnow()),
            "backup_run": ops_service.last_run(db),
        }

    found = await run_in_threadpool(gather)
    summary = found["summary"]
    traffic = dashboard.api_traffic(text)
    hours = [local_time(datetime.fromisoformat(h), "%H:00") for h in summary["hours"]]
    lag = sorted(summary["lag"], key=lambda x: -x["packages_behind"])
    disk = shutil.disk_usage(settings.data_dir)
    files = []
    if settings.is_sqlite:
        for name in ("govshare.db", "govshare.db-wal", "shared.db", "shared.db-wal"):
            path = settings.data_dir / name
            if path.exists():
                files.append((name, _size(path.stat().st_size)))
    charts = [
        _chart(
            "line",
            "近24小时交换行数（每小时）",
            hours,
            series=[
                {"name": "平台接收", "values": summary["rows_received"]},
                {"name": "订阅方入库", "values": summary["rows_applied"]},
            ],
        ),
        _chart(
            "bar",
            "各订阅积压数据包",
            [f"#{x['task_id']} {x['name']}" for x in lag],
            values=[x["packages_behind"] for x in lag],
        ),
        _chart(
            "bar",
            "接口应答（自启动以来，按状态）",
            [STATUS_LABELS[c] for c in dashboard.STATUS_CLASSES],
            series=[
                {
                    "name": "接口",
                    "values": [traffic.by_class["api"][c] for c in dashboard.STATUS_CLASSES],
                },
                {
                    "name": "控制台及其他",
                    "values": [traffic.by_class["console"][c] for c in dashboard.STATUS_CLASSES],
                },
            ],
        ),
        _chart(
            "line",
            f"近{dashboard.CALL_DAYS}天数据服务调用次数",
            [d.strftime("%m-%d") for d, _ in found["calls"]],
            values=[n for _, n in found["calls"]],
        ),
        _chart(
            "bar",
            "未处理告警（按类型）",
            [k.label for k, _ in found["alerts"]],
            values=[n for _, n in found["alerts"]],
        ),
    ]
    errors = traffic.by_class["api"]["4xx"] + traffic.by_class["api"]["5xx"]
    cards = [
        ("就绪检查", "全部通过" if ready.is_ready(checks) else "未通过", "#ready"),
        ("前置机在线", f"{summary['online']} / {len(summary['nodes'])}", "/exchange/nodes"),
        ("有积压的订阅", sum(1 for x in lag if x["packages_behind"]), "/exchange"),
        ("未处理告警", sum(n for _, n in found["alerts"]), "/exchange/alerts"),
        ("接口错误应答", f"{errors:.0f}", "#api"),
        ("审计记录", found["audit"], "#storage"),
        ("磁盘可用", f"{_size(disk.free)} / {_size(disk.total)}", "#storage"),
        ("最近备份", _age(found["backup"].age), "#backup"),
    ]
    return render(
        request,
        "ops/dashboard.html",
        caller,
        cards=cards,
        charts=charts,
        checks=dashboard.readiness_rows(checks),
        slowest=traffic.slowest,
        files=files,
        disk={
            "free": _size(disk.free),
            "total": _size(disk.total),
            "used_pct": round(100 * disk.used / disk.total, 1) if disk.total else 0,
        },
        backend=settings.resolved_database_url.split(":", 1)[0],
        backup=found["backup"],
        backup_run=found["backup_run"],
        backup_dir=settings.backup_dir,
        backup_schedule=settings.backup_schedule,
        backup_max_age_hours=settings.backup_max_age_hours,
    )


# -- 告警规则 -------------------------------------------------------------------------------

OpsAdmin = Annotated[Principal, Depends(Require(Permission.OPS_ADMIN))]
RULE_FIELDS = {"threshold": "阈值", "severity": "告警级别", "enabled": "启用"}
RULE_NOTICES = {"saved": "告警规则已保存", "reset": "告警规则已恢复设置默认"}


def _threshold(value: str) -> float | None:
    """The form's threshold: empty keeps the setting's; refused when not a number."""
    value = value.strip().replace("，", ".").rstrip("%").strip()
    if not value:
        return None
    try:
        found = float(value)
    except ValueError:
        raise InvalidInput.about(
            f"阈值必须是数字，收到“{value[:20]}”", "threshold", "请填写数字，或留空使用设置默认"
        ) from None
    return found


def _rules_page(
    request: Request,
    db: Session,
    settings: Settings,
    caller: Principal,
    *,
    failed: AlertKind | None = None,
    values: dict[str, Any] | None = None,
    errors: FormErrors = NO_ERRORS,
    status_code: int = 200,
) -> Response:
    done = request.query_params.get("done", "")
    return render(
        request,
        "ops/alert_rules.html",
        caller,
        status_code=status_code,
        rules=alertrules.list_rules(db, settings),
        severities=list(alertrules.SEVERITY_LABELS.items()),
        notice=RULE_NOTICES.get(done, ""),
        failed=failed,
        values=values or {},
        errors=errors,
    )


@router.get("/ops/alert-rules")
def alert_rules_page(
    request: Request, db: SessionDep, settings: SettingsDep, caller: OpsReader
) -> Response:
    return _rules_page(request, db, settings, caller)


@router.post("/ops/alert-rules/{kind}")
def save_alert_rule(
    kind: str,
    request: Request,
    form: FormDep,
    db: SessionDep,
    settings: SettingsDep,
    caller: OpsAdmin,
) -> Response:
    found = alertrules.parse_kind(kind)
    values = {
        "enabled": text(form, "enabled") == "on",
        "threshold": text(form, "threshold"),
        "severity": text(form, "severity"),
        "webhook": text(form, "webhook") == "on",
        "mail": text(form, "mail") == "on",
    }
    try:
        if text(form, "action") == "reset":
            alertrules.reset_rule(db, settings, caller.actor, found)
            done = "reset"
        else:
            alertrules.update_rule(
                db,
                settings,
                caller.actor,
                found,
                enabled=bool(values["enabled"]),
                threshold=_threshold(str(values["threshold"])),
                severity=str(values["severity"]),
                webhook=bool(values["webhook"]),
                mail=bool(values["mail"]),
            )
            done = "saved"
    except GovshareError as exc:
        db.rollback()
        errors = FormErrors(exc.message, exc.details, label=lambda f: RULE_FIELDS.get(f, f))
        return _rules_page(
            request,
            db,
            settings,
            caller,
            failed=found,
            values=values,
            errors=errors,
            status_code=422,
        )
    db.commit()
    return redirect(f"/ops/alert-rules?done={done}#rule-{found.value}")
