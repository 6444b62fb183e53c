"""使用情况统计 of open data in the console (``/open-usage``): views, downloads and
row-API calls per day with a chart, and per dataset; a department sees its own open
datasets, the platform all of them (``catalog.read``)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from govshare.deps import CatalogReader, SessionDep
from govshare.opendata import datasets as ds
from govshare.opendata import usage
from govshare.rules.clock import china_today
from govshare.web.forms import render

router = APIRouter(include_in_schema=False)

SPANS = {"7": 7, "30": 30, "90": 90}


@router.get("/open-usage")
def usage_page(request: Request, db: SessionDep, caller: CatalogReader) -> Response:
    """开放数据使用情况: the last 7, 30 or 90 days; ``resource=ID`` for one dataset."""
    params = request.query_params
    days = SPANS.get(params.get("days", ""), usage.DAYS_SHOWN)
    raw = params.get("resource", "")
    resource_id = int(raw) if raw.isdigit() and 0 < len(raw) < 10 else None
    figures = usage.usage(db, caller, last=china_today(), days=days, resource_id=resource_id)
    chosen = next((d for d in figures.datasets if d.resource_id == resource_id), None)
    title = f"{chosen.name} · 每日使用" if chosen else "每日使用"
    return render(
        request,
        "opendata/usage.html",
        caller,
        nav="/open-usage",
        figures=figures,
        chart=figures.chart(title),
        days=days,
        spans=SPANS,
        chosen=chosen,
        slug_of=ds.slug_of,
    )
