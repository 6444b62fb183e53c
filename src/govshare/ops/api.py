"""The operations endpoints beside ``/healthz``: ``/readyz`` (readiness, JSON) and
``/metrics`` (Prometheus text). Neither is part of the API's schema: they answer
probes and scrapers, not department systems. And ``rules``: the alert rules (告警规则)
under ``/api/v1/ops``, part of the API."""

from __future__ import annotations

import ipaddress
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from govshare.deps import Public, Require, SessionDep, SettingsDep, bearer_token
from govshare.errors import Forbidden
from govshare.exchange import alertrules
from govshare.exchange.models import AlertKind
from govshare.ops import ready
from govshare.ops.metrics import Exposition, HubCollector
from govshare.ops.schemas import AlertRulePublic, AlertRuleUpdate
from govshare.rules.clock import china_today
from govshare.security.crypto import constant_time_equal
from govshare.security.roles import Permission
from govshare.security.service import Principal

router = APIRouter(tags=["ops"])


class MetricsRefused(Forbidden):
    code = "metrics_forbidden"


def _loopback(host: str | None) -> bool:
    try:
        return host is not None and ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class MetricsScraper(Require):
    """Public in the roles' sense (no user signs in to scrape), guarded instead by the
    ``metrics_token`` setting: its bearer token when set, else a loopback caller."""

    def __init__(self) -> None:
        super().__init__(Permission.PUBLIC)

    async def __call__(self, request: Request) -> None:  # type: ignore[override]
        expected = request.app.state.settings.metrics_token
        if expected:
            sent = bearer_token(request)
            # 403 either way: a 401 outside /api/ would send the scraper to the login page.
            if sent is None or not constant_time_equal(sent, expected):
                raise MetricsRefused("抓取指标须提供正确的令牌 (metrics bearer token required)")
            return
        host = request.client.host if request.client else None
        if not _loopback(host):
            raise MetricsRefused(
                "指标仅对本机开放，或设置 GOVSHARE_METRICS_TOKEN "
                "(metrics answer loopback callers only unless a token is set)"
            )


Scraper = Annotated[None, Depends(MetricsScraper())]


@router.get("/readyz", summary="就绪检查", include_in_schema=False)
async def readyz(request: Request, _caller: Public) -> JSONResponse:
    state = request.app.state
    settings = state.settings
    checks = await run_in_threadpool(
        ready.readiness,
        engine=state.engine,
        store=state.package_store,
        shared_engine=state.data_services.db.engine,
        data_dir=settings.data_dir,
        min_free_mb=settings.ready_min_free_mb,
        calendar_days=settings.ready_calendar_days,
        today=china_today(),
    )
    ok = ready.is_ready(checks)
    body = {"status": "ok" if ok else "fail", "checks": [c.public() for c in checks]}
    return JSONResponse(body, status_code=200 if ok else 503)


def exposition(request: Request) -> Exposition:
    """The application's exposition (made at its first use)."""
    state = request.app.state
    found: Exposition | None = getattr(state, "metrics_exposition", None)
    if found is None:
        found = Exposition(HubCollector(state.settings, state.session_factory, state.engine))
        state.metrics_exposition = found
    return found


@router.get("/metrics", summary="Prometheus 指标", include_in_schema=False)
async def metrics(request: Request, _scraper: Scraper) -> Response:
    body = await run_in_threadpool(exposition(request).render)
    return Response(body, media_type=CONTENT_TYPE_LATEST)


# -- alert rules (告警规则) -------------------------------------------------------------------

rules = APIRouter(prefix="/ops", tags=["ops"])
OpsReader = Annotated[Principal, Depends(Require(Permission.OPS_READ))]
OpsAdmin = Annotated[Principal, Depends(Require(Permission.OPS_ADMIN))]


@rules.get("/alert-rules", summary="告警规则")
def list_alert_rules(db: SessionDep, settings: SettingsDep, _c: OpsReader) -> list[AlertRulePublic]:
    return [AlertRulePublic.of(r) for r in alertrules.list_rules(db, settings)]


@rules.get("/alert-rules/{kind}", summary="一条告警规则")
def get_alert_rule(
    kind: AlertKind, db: SessionDep, settings: SettingsDep, _c: OpsReader
) -> AlertRulePublic:
    return AlertRulePublic.of(alertrules.effective(db, settings, kind))


@rules.put("/alert-rules/{kind}", summary="修改告警规则")
def put_alert_rule(
    kind: AlertKind,
    body: AlertRuleUpdate,
    db: SessionDep,
    settings: SettingsDep,
    caller: OpsAdmin,
) -> AlertRulePublic:
    rule = alertrules.update_rule(
        db,
        settings,
        caller.actor,
        kind,
        enabled=body.enabled,
        threshold=body.threshold,
        severity=body.severity,
        webhook=body.webhook,
        mail=body.mail,
    )
    db.commit()
    return AlertRulePublic.of(rule)


@rules.delete("/alert-rules/{kind}", summary="告警规则恢复设置默认")
def reset_alert_rule(
    kind: AlertKind, db: SessionDep, settings: SettingsDep, caller: OpsAdmin
) -> AlertRulePublic:
    rule = alertrules.reset_rule(db, settings, caller.actor, kind)
    db.commit()
    return AlertRulePublic.of(rule)
