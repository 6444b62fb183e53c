"""运维监控 dashboard: what the operations page shows, gathered from the hub database,
the readiness checks and the metrics the processes counted (so every worker's API
calls are in it, whichever answers the page)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from govshare.errors import console_text
from govshare.exchange.models import Alert, AlertKind
from govshare.ops.ready import Check
from govshare.sharing.models import CallStat

CALL_DAYS = 14
STATUS_CLASSES = ("2xx", "3xx", "4xx", "5xx")


@dataclass(frozen=True, slots=True)
class ApiTraffic:
    """HTTP answers since the processes started, by status class: API (``/api/``),
    data services and console/other; and the slowest API routes by mean time."""

    by_class: dict[str, dict[str, float]]
    slowest: list[tuple[str, float, float]]  # route, answers, mean ms


def api_traffic(exposition: str) -> ApiTraffic:
    counts: dict[str, dict[str, float]] = {
        k: dict.fromkeys(STATUS_CLASSES, 0.0) for k in ("api", "console")
    }
    per_route: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
    for family in text_string_to_metric_families(exposition):
        if family.name != "govshare_http_request_duration_seconds":
            continue
        for s in family.samples:
            route = s.labels.get("route", "")
            if s.name.endswith("_count"):
                kind = "api" if route.startswith("/api/") else "console"
                cls = s.labels.get("status", "0")[:1] + "xx"
                if cls in counts[kind]:
                    counts[kind][cls] += s.value
                if route.startswith("/api/"):
                    per_route[route][0] += s.value
            elif s.name.endswith("_sum") and route.startswith("/api/"):
                per_route[route][1] += s.value
    slowest = sorted(
        ((r, n, 1000 * t / n) for r, (n, t) in per_route.items() if n),
        key=lambda x: -x[2],
    )[:10]
    return ApiTraffic(by_class=counts, slowest=[(r, n, round(ms, 1)) for r, n, ms in slowest])


def daily_calls(session: Session, today: date, days: int = CALL_DAYS) -> list[tuple[date, int]]:
    """Data-service calls per day (China time), the last ``days`` days through today."""
    since = today - timedelta(days=days - 1)
    found = dict(
        session.execute(
            select(CallStat.day, func.sum(CallStat.calls))
            .where(CallStat.day >= since)
            .group_by(CallStat.day)
        ).all()
    )
    return [(d, int(found.get(d) or 0)) for d in (since + timedelta(n) for n in range(days))]


def open_alerts_by_kind(session: Session) -> list[tuple[AlertKind, int]]:
    found = dict(
        session.execute(
            select(Alert.kind, func.count()).where(Alert.resolved_at.is_(None)).group_by(Alert.kind)
        ).all()
    )
    return [(k, int(found[k])) for k in AlertKind if found.get(k)]


def readiness_rows(checks: list[Check]) -> list[dict[str, Any]]:
    labels = {
        "database": "平台数据库",
        "bus": "消息总线 / 数据包存储",
        "shared_stores": "共享信息库",
        "disk": "磁盘空间",
        "calendar": "节假日历",
    }
    return [
        {**c.public(), "label": labels.get(c.name, c.name), "message": console_text(c.message)}
        for c in checks
    ]
