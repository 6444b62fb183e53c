"""The hub application: API under /api/v1, console pages, health and metrics."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

import structlog
from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from govshare import __version__
from govshare.bodylimit import BodyLimit, BodyTooLarge
from govshare.catalog import imports
from govshare.config import Settings
from govshare.db import (
    UNSTORABLE_ERRORS,
    integrity_fields,
    make_engine,
    make_session_factory,
    session_scope,
)
from govshare.deps import SESSION_COOKIE, Public
from govshare.errors import ErrorEnvelope, GovshareError, UnstorableValue, console_text
from govshare.exchange.store import hub_store
from govshare.requestid import HEADER as REQUEST_ID_HEADER
from govshare.requestid import current_request_id
from govshare.sharing.data import DataServices
from govshare.web.headers import SecurityHeadersMiddleware
from govshare.web.routing import include_flat

HERE = Path(__file__).parent
log = structlog.get_logger()


def make_templates() -> Jinja2Templates:
    from govshare.web import filters

    templates = Jinja2Templates(directory=str(HERE / "templates"))
    filters.install(templates.env)
    return templates


def _is_api(request: Request) -> bool:
    return request.url.path.startswith("/api/")


def _field_path(loc: tuple[Any, ...]) -> str:
    parts = [p for p in loc if p not in ("body", "query", "path", "form")]
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or ".".join(map(str, loc))


# Fields that say what they expect do so in Chinese (govshare.rules.fields.Expect); these
# two errors come from the model rather than a field, so they are translated here.
_MODEL_ERRORS = {
    "missing": "必填 (field required)",
    "extra_forbidden": "不允许的字段 (extra field not permitted)",
}


def _validation_details(exc: RequestValidationError) -> list[dict[str, Any]]:
    return [
        {"field": _field_path(tuple(e["loc"])), "message": _MODEL_ERRORS.get(e["type"], e["msg"])}
        for e in exc.errors()
    ]


INTEGRITY_MESSAGES = {
    "unique": "与已有数据重复 (already exists)",
    "foreign_key": "引用的数据不存在或仍被引用 (referenced row missing or still in use)",
    "not_null": "缺少必填数据 (required value missing)",
    "check": "数据不符合约束 (value out of bounds)",
    "integrity": "数据与已有数据冲突 (conflicts with stored data)",
}


def _signed_in(request: Request) -> None:
    """Resolve the console user for an error page that no route's dependencies reached
    (an unknown address, a failure before them), so the page keeps the console layout."""
    from govshare.security.models import SessionKind
    from govshare.security.service import principal_from_token

    cookie = request.cookies.get(SESSION_COOKIE)
    if getattr(request.state, "principal", None) is not None or not cookie:
        return
    try:
        with session_scope(request.app.state.session_factory) as session:
            found = principal_from_token(session, cookie, SessionKind.CONSOLE, None)
    except Exception:  # an error page must render even when this fails too
        log.warning("error page without the signed-in user", path=request.url.path)
        return
    if found is not None:
        request.state.principal = found


def install_error_handlers(app: FastAPI) -> None:
    async def render(
        request: Request,
        status: int,
        code: str,
        message: str,
        details: list[dict[str, Any]],
        headers: dict[str, str] | None = None,
    ) -> Response:
        body: dict[str, Any] = {"code": code, "message": message, "details": details}
        if (rid := current_request_id()) is not None:
            # The id the log lines and audit entries carry; set here too for the answers
            # made outside the request-id middleware (an unexpected error's 500).
            body["request_id"] = rid
            headers = {**(headers or {}), REQUEST_ID_HEADER: rid}
        if _is_api(request):
            return JSONResponse({"error": body}, status_code=status, headers=headers)
        if status == 401:
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse(f"/login?next={quote(target)}", status_code=303)
        if request.url.path.startswith("/open/"):
            from govshare.opendata.pages import public_error

            return public_error(request, status, console_text(message), headers)
        await run_in_threadpool(_signed_in, request)
        return app.state.templates.TemplateResponse(
            request,
            "error.html",
            {
                "status": status,
                "code": code,
                "request_id": body.get("request_id"),
                "message": console_text(message),
                "details": [
                    {**d, "message": console_text(str(d.get("message", "")))} for d in details
                ],
            },
            status_code=status,
            headers=headers,
        )

    @app.exception_handler(GovshareError)
    async def _domain(request: Request, exc: GovshareError) -> Response:
        return await render(request, exc.status, exc.code, exc.message, exc.details, exc.headers)

    @app.exception_handler(IntegrityError)
    async def _integrity(request: Request, exc: IntegrityError) -> Response:
        # The services check what they can; this answers the rest (a race between two
        # requests, a rule only the database knows) as the conflict it is.
        kind, fields = integrity_fields(exc)
        log.warning("integrity error", path=request.url.path, kind=kind, fields=fields)
        message = INTEGRITY_MESSAGES.get(kind, INTEGRITY_MESSAGES["integrity"])
        details = [{"field": f, "message": message} for f in fields]
        return await render(request, 409, "conflict", message, details)

    async def _unstorable(request: Request, exc: Exception) -> Response:
        log.warning("unstorable input", path=request.url.path, error=type(exc).__name__)
        error = UnstorableValue()
        return await render(request, error.status, error.code, error.message, error.details)

    for kind in UNSTORABLE_ERRORS:
        app.add_exception_handler(kind, _unstorable)

    @app.exception_handler(OperationalError)
    async def _busy(request: Request, exc: OperationalError) -> Response:
        # SQLite's writers wait up to busy_timeout for each other; one that still finds
        # the database locked is told to come back, never shown a 500.
        if "database is locked" not in str(exc.orig):
            raise exc
        log.warning("database busy", path=request.url.path)
        return await render(
            request,
            503,
            "database_busy",
            "平台正忙，请稍后重试 (database busy, retry shortly)",
            [],
            {"Retry-After": "2"},
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        return await render(
            request,
            422,
            "invalid_input",
            "请求参数不正确 (invalid request)",
            _validation_details(exc),
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        if isinstance(exc, BodyTooLarge):
            return await render(request, 413, exc.code, str(exc.detail), exc.details)
        message = {
            404: "页面或接口不存在 (not found)",
            405: "不支持的请求方法 (method not allowed)",
        }.get(exc.status_code, str(exc.detail))
        return await render(request, exc.status_code, "http_error", message, [])

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, _exc: Exception) -> Response:
        # Starlette logs the exception and re-raises it after this answer; the console
        # shows its own page (in Chinese, with the layout) instead of a bare text.
        return await render(request, 500, "internal_error", "系统内部错误 (internal error)", [])


def install_openapi(app: FastAPI) -> None:
    """Document the error envelope the API really answers: FastAPI's generated 422
    (``{"detail": …}``) is replaced, and every operation documents ``4XX``."""
    from fastapi.openapi.utils import get_openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title, version=app.version, routes=app.routes, description=app.description
        )
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        envelope = ErrorEnvelope.model_json_schema(ref_template="#/components/schemas/{model}")
        components.update(envelope.pop("$defs", {}))
        components["ErrorEnvelope"] = envelope
        for name in ("HTTPValidationError", "ValidationError"):
            components.pop(name, None)
        error = {
            "description": "错误 (error envelope)",
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/ErrorEnvelope"}}
            },
        }
        for path_item in schema.get("paths", {}).values():
            for operation in path_item.values():
                responses = operation.setdefault("responses", {})
                if "422" in responses:
                    responses["422"] = {**error, "description": "输入不正确 (invalid input)"}
                responses.setdefault("4XX", error)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def create_app(settings: Settings) -> FastAPI:
    """Build the hub. The database must already be migrated (``govshare db upgrade``)."""
    from govshare.rules.workdays import install_holidays

    install_holidays(settings.holidays_file)
    engine = make_engine(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from govshare.compare.runner import Runner
        from govshare.documents.tasks import Reminder
        from govshare.evaluation import tasks as evaluation_tasks
        from govshare.exchange.tasks import Monitor
        from govshare.mail import Outbox
        from govshare.opendata.mailer import OutboxSender
        from govshare.ops.housekeeping import Housekeeper
        from govshare.ops.logpruning import PackagePruner
        from govshare.ops.tasks import BackupScheduler
        from govshare.ops.tasks import watcher as ops_watcher
        from govshare.security.models import UserMail
        from govshare.security.tasks import Archiver, Checkpointer
        from govshare.sharing import calendar
        from govshare.sharing.feed import sharing_worker

        with session_scope(app.state.session_factory) as session:
            calendar.reload(session, settings)
        imports.recover(app.state.session_factory)
        monitor = Monitor(settings, app.state.session_factory)
        monitor.start()
        checkpointer = Checkpointer(app.state.session_factory, settings.audit_checkpoint_seconds)
        checkpointer.start()
        archiver = Archiver(
            app.state.session_factory,
            settings.audit_archive_seconds,
            settings.audit_retention_years,
        )
        archiver.start()
        feeder = sharing_worker(settings, app.state.session_factory, app.state)
        feeder.start()
        comparisons = Runner(settings, app.state.session_factory, app.state.data_services.db)
        comparisons.start()
        evaluations = evaluation_tasks.Scheduler(app.state.session_factory)
        evaluations.start()
        developer_mail = OutboxSender(settings, app.state.session_factory)
        developer_mail.start()
        user_mail = Outbox(
            "user-mail",
            UserMail,
            settings,
            app.state.session_factory,
            sender=settings.alert_mail_from,
        )
        user_mail.start()
        housekeeper = Housekeeper(app.state.session_factory)
        housekeeper.start()
        pruner = PackagePruner(settings, app.state.session_factory, app.state.package_store)
        pruner.start()
        backups = BackupScheduler(settings, app.state.session_factory)
        backups.start()
        ops_watch = ops_watcher(settings, app.state.session_factory)
        ops_watch.start()
        reminders = Reminder(settings, app.state.session_factory)
        reminders.start()
        from govshare.collab.tasks import overdue_watch

        case_deadlines = overdue_watch(app.state.session_factory, settings.collab_warn_working_days)
        case_deadlines.start()
        try:
            yield
        finally:
            app.state.import_worker.stop()
            backups.stop()
            ops_watch.stop()
            reminders.stop()
            case_deadlines.stop()
            comparisons.stop()
            evaluations.stop()
            developer_mail.stop()
            user_mail.stop()
            housekeeper.stop()
            pruner.stop()
            feeder.stop()
            monitor.stop()
            checkpointer.stop()
            archiver.stop()
            app.state.data_services.close()
            app.state.open_views.flush()
            app.state.open_download_engine.dispose()
            app.state.package_store.close()

    app = FastAPI(
        title="govshare 政务数据共享交换平台",
        version=__version__,
        openapi_url="/openapi.json",
        docs_url="/docs",
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.session_factory = make_session_factory(engine, settings)
    from govshare.exchange.alertmail import SESSION_KEY, MailChannel

    # Alerts are raised in sessions of this factory; they find the mail channel there.
    app.state.session_factory.kw["info"][SESSION_KEY] = MailChannel.from_settings(settings)
    app.state.import_worker = imports.ImportWorker(app.state.session_factory)
    app.state.templates = make_templates()
    app.state.package_store = hub_store(settings)
    app.state.data_services = DataServices(settings, app.state.session_factory)
    from govshare.opendata.download import download_engine
    from govshare.opendata.usage import ViewCounter

    # Open-data downloads read whole stores: an engine of their own without memory mapping.
    app.state.open_download_engine = download_engine(settings.resolved_shared_store_url)
    # Portal page views, added up in memory and written every few seconds.
    app.state.open_views = ViewCounter(app.state.session_factory)
    from govshare.opendata.gate import Gate
    from govshare.opendata.windows import windows_for

    # Open data's limits; tests replace its clock.
    app.state.open_gate = Gate(settings, windows=windows_for(settings, engine))
    install_error_handlers(app)
    install_openapi(app)
    from govshare.documents import api as documents_api
    from govshare.documents import pages as documents_pages
    from govshare.exchange.api import MAX_PACKAGE_BYTES
    from govshare.opendata import files_api as opendata_files_api

    app.add_middleware(
        BodyLimit,
        limit=settings.max_body_bytes,
        overrides={
            "/api/v1/catalog/import": settings.max_import_bytes,
            "/catalog/import": settings.max_import_bytes,
            "/api/v1/exchange/node/packages": MAX_PACKAGE_BYTES,
            "/open-files/upload": settings.max_open_file_bytes,
            opendata_files_api.UPLOAD_PATH: settings.max_open_file_bytes,
            documents_api.SEND_PATH: settings.documents_max_bytes,
            documents_pages.SEND_PATH: settings.documents_max_bytes,
        },
    )
    # Outermost, so that every answer (a 413 included) carries the headers.
    app.add_middleware(SecurityHeadersMiddleware)
    from govshare.ops.middleware import RequestContext

    # Outside even those: the request id and latency of every answer.
    app.add_middleware(RequestContext)

    from govshare.basedata import api as basedata_api
    from govshare.basedata import consistency as basedata_consistency
    from govshare.basedata import pages as basedata_pages
    from govshare.catalog import api as catalog_api
    from govshare.catalog import duty_pages as catalog_duty_pages
    from govshare.catalog import pages as catalog_pages
    from govshare.collab import api as collab_api
    from govshare.collab import pages as collab_pages

    if settings.is_sqlite:  # the worker processes take turns at case steps (see CaseWrites)
        collab_api.CASE_WRITES.path = settings.data_dir / "locks" / "collab-cases.lock"
    from govshare.compare import api as compare_api
    from govshare.compare import pages as compare_pages
    from govshare.evaluation import api as evaluation_api
    from govshare.evaluation import pages as evaluation_pages
    from govshare.exchange import api as exchange_api
    from govshare.exchange import pages as exchange_pages
    from govshare.opendata import api as opendata_api
    from govshare.opendata import console as opendata_console
    from govshare.opendata import demand_pages as opendata_demands
    from govshare.opendata import developer_pages as opendata_developer
    from govshare.opendata import file_pages as opendata_files
    from govshare.opendata import pages as opendata_pages
    from govshare.opendata import rows_api as opendata_rows
    from govshare.opendata import usage_pages as opendata_usage
    from govshare.quality import api as quality_api
    from govshare.quality import pages as quality_pages
    from govshare.quality import scan as quality_scan
    from govshare.security import api as security_api
    from govshare.security import pages as security_pages
    from govshare.sharing import api as sharing_api
    from govshare.sharing import data_api as sharing_data_api
    from govshare.sharing import pages as sharing_pages
    from govshare.web import pages as web_pages

    # Data services first: the busiest routes are matched before the ~390 others, their
    # POSTs by plain Starlette routes (no FastAPI dependency solving per call). Every
    # router is joined flat (web/routing.py): one pass over the routes per request.
    app.router.routes[0:0] = sharing_data_api.lean_routes("/api/v1")
    include_flat(app, sharing_data_api.router, "/api/v1")
    include_flat(app, security_api.router, "/api/v1")
    include_flat(app, catalog_api.router, "/api/v1")
    include_flat(app, exchange_api.router, "/api/v1")
    include_flat(app, sharing_api.router, "/api/v1")
    include_flat(app, sharing_data_api.stores, "/api/v1")
    include_flat(app, basedata_api.router, "/api/v1")
    include_flat(app, basedata_api.conflicts, "/api/v1")
    include_flat(app, quality_api.router, "/api/v1")
    include_flat(app, compare_api.router, "/api/v1")
    include_flat(app, evaluation_api.router, "/api/v1")
    include_flat(app, documents_api.router, "/api/v1")
    include_flat(app, collab_api.router, "/api/v1")
    include_flat(app, opendata_api.router)
    # After the DCAT routes: /open/datasets/{key}.{fmt} is theirs, the dotless slug ours.
    include_flat(app, opendata_rows.router)
    include_flat(app, opendata_developer.router)
    include_flat(app, opendata_console.api, "/api/v1")
    include_flat(app, opendata_files_api.router, "/api/v1")
    include_flat(app, opendata_console.router)
    include_flat(app, opendata_pages.router)
    include_flat(app, opendata_demands.router)
    include_flat(app, opendata_files.router)
    include_flat(app, opendata_usage.router)
    include_flat(app, web_pages.router)
    include_flat(app, security_pages.router)
    include_flat(app, catalog_pages.router)
    include_flat(app, catalog_duty_pages.router)
    include_flat(app, exchange_pages.router)
    include_flat(app, sharing_pages.routers)
    include_flat(app, basedata_pages.router)
    include_flat(app, compare_pages.router)
    include_flat(app, evaluation_pages.router)
    include_flat(app, documents_pages.router)
    include_flat(app, collab_pages.router)
    # The base databases tell the quality scans what agrees with the authoritative
    # sources (一致性); quality does not import them.
    quality_scan.register_consistency(basedata_consistency.evidence_check)
    include_flat(app, quality_pages.router)
    from govshare.ops import api as ops_api
    from govshare.ops import pages as ops_pages

    include_flat(app, ops_api.router)
    include_flat(app, ops_api.rules, "/api/v1")
    include_flat(app, ops_pages.router)
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")

    @app.get("/healthz", tags=["ops"], summary="健康检查")
    def healthz(_caller: Public) -> dict[str, str]:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return {"status": "ok", "version": __version__}

    return app
