"""The public open-data portal (公共数据开放平台) under ``/open/``: no login, in Chinese,
a layout of its own without the console's menus.

Pages: the home page, search with facets, a dataset's page (metadata, items, a preview
and per-column charts for 无条件开放 datasets, related datasets, downloads and the API
calls that fetch the same rows), the departments; the downloads themselves (CSV, XLSX,
JSON, streamed); the sitemap. What is open is decided by
:mod:`govshare.opendata.datasets`, which rows and columns a dataset serves by
:mod:`govshare.opendata.download`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote
from xml.sax.saxutils import escape

import structlog
from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response, StreamingResponse
from markupsafe import Markup
from sqlalchemy import Engine

from govshare.catalog.codes import DEFAULT_CODE_TABLES, CodeTableName
from govshare.db import session_scope
from govshare.opendata import datasets as ds
from govshare.opendata import download, files, gate, portal, rows
from govshare.opendata.api import Anyone
from govshare.opendata.errors import RowsNotFound, RowsRefused
from govshare.security.service import ANONYMOUS
from govshare.web.headers import attachment

log = structlog.get_logger()
router = APIRouter(tags=["opendata"], include_in_schema=False)

PAGE_SIZE = 10
MAX_PAGE = 1000
FACET_TITLES = {
    "publisher": "提供部门",
    "theme": "主题分类",
    "format": "数据格式",
    "update_cycle": "更新周期",
    "open_type": "开放类型",
}
CYCLES = dict(DEFAULT_CODE_TABLES[CodeTableName.UPDATE_CYCLE])
CATALOG_FORMATS = dict(DEFAULT_CODE_TABLES[CodeTableName.FORMAT])
FORMAT_LABELS = {"CSV": "CSV", "XLSX": "XLSX", "JSON": "JSON", "ZIP": "文件"}


def _base_url(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def _render(request: Request, template: str, *, status_code: int = 200, **context: Any) -> Response:
    return request.app.state.templates.TemplateResponse(  # type: ignore[no-any-return]
        request,
        template,
        {
            "caller": ANONYMOUS,
            "portal_title": portal.PORTAL_TITLE,
            "cycle_label": lambda v: CYCLES.get(v, v),
            "format_label": lambda v: CATALOG_FORMATS.get(v, v),
            **context,
        },
        status_code=status_code,
    )


render_public = _render  # the developer centre's pages share the portal's layout


def _facet_label(facet: str, label: str) -> str:
    if facet == "update_cycle":
        return CYCLES.get(label, label)
    if facet == "format":
        return FORMAT_LABELS.get(label, label)
    return label


def _not_found(request: Request, message: str, *, as_json: bool = False) -> Response:
    if as_json:
        return JSONResponse({"error": {"code": "not_found", "message": message}}, status_code=404)
    return public_error(request, 404, message)


ERROR_HEADINGS = {404: "未找到", 405: "不支持的请求", 422: "请求参数不正确", 503: "平台正忙"}


def public_error(
    request: Request, status: int, message: str, headers: dict[str, str] | None = None
) -> Response:
    """An error page in the portal's layout (the hub's error handlers use it for every
    address under ``/open/``), so a visitor never lands in the console's."""
    response = _render(
        request,
        "open/error.html",
        status_code=status,
        message=message,
        heading=ERROR_HEADINGS.get(status, "出错了"),
    )
    response.headers.update(headers or {})
    return response


# -- pages ---------------------------------------------------------------------------------


@router.get("/open/", name="open_home")
def home(request: Request, _anyone: Anyone) -> Response:
    """首页: totals, the datasets with most rows, the newest, themes and departments."""
    with session_scope(request.app.state.session_factory) as session:
        context: dict[str, Any] = {
            "totals": portal.totals(session),
            "featured": portal.featured(session),
            "newest": portal.newest(session),
            "themes": ds.list_themes(session),
        }
    return _render(request, "open/home.html", **context)


def _page_number(raw: str | None) -> int:
    if raw and raw.isdigit() and len(raw) < 6:
        return min(max(int(raw), 1), MAX_PAGE)
    return 1


@router.get("/open/datasets", name="open_search")
def search(request: Request, _anyone: Anyone) -> Response:
    """检索: full text ``q`` and the facets as filters, a page of results."""
    params = request.query_params
    q = params.get("q", "").strip()[:100]
    chosen = {f: params.get(f, "").strip()[:100] for f in FACET_TITLES if params.get(f)}
    number = _page_number(params.get("page"))
    query = ds.DatasetQuery(
        q=q,
        filters=[ds.Filter(f, v) for f, v in chosen.items()],
        start=(number - 1) * PAGE_SIZE,
        rows=PAGE_SIZE,
        facets=tuple(FACET_TITLES),
        facet_limit=20,
    )
    with session_scope(request.app.state.session_factory) as session:
        result = ds.search_datasets(session, query)
    facets = {
        name: [
            (value, _facet_label(name, label), n) for value, label, n in result.facets.get(name, [])
        ]
        for name in FACET_TITLES
    }
    kept = {"q": q, **chosen}
    return _render(
        request,
        "open/search.html",
        q=q,
        chosen=chosen,
        kept=kept,
        result=result,
        facets=facets,
        facet_titles=FACET_TITLES,
        page=number,
        pages=max(1, min(MAX_PAGE, math.ceil(result.count / PAGE_SIZE))),
    )


def _dataset_context(request: Request, key: str) -> dict[str, Any] | None:
    shared = request.app.state.data_services.db
    base = _base_url(request)
    with session_scope(request.app.state.session_factory) as session:
        found = ds.get_dataset(session, key)
        if found is None:
            return None
        request.app.state.open_views.add(found.resource_id)
        table = download.open_table(session, shared, found)
        related = portal.related(session, found)
        counts = portal.download_counts(session, found.resource_id)
        attached = files.served_files(session, found)
    rows: list[tuple[Any, ...]] = []
    stats: list[download.ColumnStats] = []
    if table is not None:
        reader = request.app.state.open_download_engine
        rows = download.preview(reader, table)
        stats = download.column_stats(reader, table)
    charts = [
        {
            "id": f"chart-top-{i}",
            "title": s.name,
            "spec": {
                "type": "bar",
                "labels": [v for v, _ in s.top],
                "values": [n for _, n in s.top],
            },
        }
        for i, s in enumerate(stats)
        if s.top
    ]
    nulls = {
        "type": "bar",
        "labels": [s.name for s in stats],
        "values": [round(100 * s.null_share, 1) for s in stats],
    }
    return {
        "dataset": found,
        "table": table,
        "withheld": download.rows_withheld_reason(found),
        "files": attached,
        "file_label": files.kind_label,
        "preview": rows,
        "stats": stats,
        "charts": charts,
        "nulls_chart": nulls,
        "related": related,
        "downloads": counts,
        "package_show": f"{base}/api/3/action/package_show?id={quote(found.slug)}",
        "dcat_url": f"{base}/open/datasets/{found.slug}.jsonld",
        "download_urls": [
            (d.format, base + d.path) for d in found.distributions if d.format in table.formats
        ]
        if table is not None
        else [],
        "rows_url": f"{base}/open/datasets/{found.slug}/rows.json" if table is not None else None,
        "json_ld": Markup(  # noqa: S704  # JSON with "<" escaped, inside a data block
            json.dumps(portal.schema_org(found, base), ensure_ascii=False).replace("<", "\\u003c")
        ),
        "base_url": base,
    }


@router.get("/open/datasets/{slug}", name="open_dataset")
async def dataset_page(request: Request, slug: str, _anyone: Anyone) -> Response:
    """数据集: metadata, items, preview, charts, related datasets, downloads and API."""
    context = await run_in_threadpool(_dataset_context, request, slug)
    if context is None:
        return _not_found(request, "没有这个开放数据集，或它已不再开放")
    return _render(request, "open/dataset.html", **context)


@router.get("/open/organizations", name="open_organizations")
def organizations(request: Request, _anyone: Anyone) -> Response:
    """提供部门: the departments with open datasets."""
    with session_scope(request.app.state.session_factory) as session:
        publishers = ds.list_publishers(session)
    return _render(request, "open/organizations.html", publishers=publishers)


# -- downloads -----------------------------------------------------------------------------


def _prepare_download(
    request: Request, slug: str, fmt: str
) -> download.OpenTable | str | gate.Refused:
    shared = request.app.state.data_services.db
    remote = request.client.host if request.client else None
    with session_scope(request.app.state.session_factory) as session:
        try:
            admission = request.app.state.open_gate.admit(session, request.headers, remote)
        except gate.Refused as exc:
            return exc
        try:
            table = rows.open_rows(session, shared, slug, admission.granted)
        except RowsNotFound as exc:
            return exc.message
        found = table.dataset
        if fmt == "xlsx" and table.row_count > download.XLSX_MAX_ROWS:
            return (
                f"该数据集超过 {download.XLSX_MAX_ROWS:,} 行，不提供 XLSX 下载，请下载 CSV 或 JSON"
            )
        portal.count_download(session, found.resource_id, fmt)
        # Counted when the download starts (rows as the feed last counted them): no
        # write is held open across the stream.
        gate.record(session, admission, rows=table.row_count)
    return table


def _xlsx_chunks(engine: Engine, table: download.OpenTable) -> Iterator[bytes]:
    yield from download.file_chunks(download.xlsx_file(engine, table))


@router.get("/open/datasets/{slug}/download.{fmt}", name="open_download")
async def download_rows(request: Request, slug: str, fmt: str, _anyone: Anyone) -> Response:
    """下载: the published items of every row of a 无条件开放 dataset, streamed."""
    as_json = fmt == "json"
    if fmt not in download.MEDIA_TYPES:
        return _not_found(request, "下载格式只有 CSV、XLSX 和 JSON")
    prepared = await run_in_threadpool(_prepare_download, request, slug, fmt)
    if isinstance(prepared, gate.Refused):
        refused = RowsRefused(prepared.status, prepared.message, retry_after=prepared.retry_after)
        return JSONResponse(refused.body(), status_code=refused.status, headers=refused.headers)
    if isinstance(prepared, str):
        return _not_found(request, prepared, as_json=as_json)
    chunks = {
        "csv": download.csv_chunks,
        "json": download.json_chunks,
        "xlsx": _xlsx_chunks,
    }[fmt](request.app.state.open_download_engine, prepared)
    return StreamingResponse(
        chunks,
        media_type=download.MEDIA_TYPES[fmt],
        headers={
            **attachment(f"{prepared.dataset.slug}.{fmt}", f"{prepared.dataset.title}.{fmt}"),
            "Cache-Control": "no-store",
        },
    )


# -- search engines --------------------------------------------------------------------------


@router.get("/open/sitemap.xml", name="open_sitemap")
def sitemap(request: Request, _anyone: Anyone) -> Response:
    """Every open dataset's page, with its last change (sitemaps.org 0.9)."""
    base = _base_url(request)
    with session_scope(request.app.state.session_factory) as session:
        ids = ds.list_dataset_ids(session, newest_first=False)
        lines = [
            '<?xml version="1.0" encoding="UTF-8"?>',
            '<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">',
            f"<url><loc>{escape(base)}/open/</loc></url>",
        ]
        for start in range(0, len(ids), 500):
            for d in ds.load_datasets(session, ids[start : start + 500]):
                lines.append(
                    f"<url><loc>{escape(base)}/open/datasets/{escape(d.slug)}</loc>"
                    f"<lastmod>{d.modified.date().isoformat()}</lastmod></url>"
                )
    lines.append("</urlset>")
    return Response("\n".join(lines) + "\n", media_type="application/xml")


# The portal's layout and base context, for the portal's other page modules.
render_public = _render
