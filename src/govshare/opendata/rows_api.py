"""The row API's routes (数据行接口): ``/open/datasets/{slug}/rows.json`` and
``rows.csv``, public, no login. Answers and errors in Datasette's shapes, JSON for both
formats; the rules are in :mod:`govshare.opendata.rows`."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy.orm import Session

from govshare.cursors import codec_of
from govshare.db import session_scope
from govshare.opendata import gate, portal, rows
from govshare.opendata.api import Anyone
from govshare.opendata.errors import RowsError, RowsNotFound, RowsRefused

router = APIRouter(tags=["opendata"], include_in_schema=False)
MEDIA_TYPES = {"json": "application/json", "csv": "text/csv; charset=utf-8"}
API_FORMAT = "api"  # how row API calls are counted among a dataset's downloads


def _page(request: Request, slug: str, fmt: str) -> rows.RowPage:
    if fmt not in MEDIA_TYPES:
        raise RowsNotFound("数据行接口只有 rows.json 和 rows.csv")
    shared = request.app.state.data_services.db
    factory = request.app.state.session_factory
    with session_scope(factory) as session:
        admission = admit(request, session)
        table = rows.open_rows(session, shared, slug, admission.granted)
        codec = codec_of(session)
        query = rows.parse_query(table, codec, request.query_params.multi_items())
        portal.count_download(session, table.dataset.resource_id, API_FORMAT)
    page = rows.fetch_page(
        request.app.state.open_download_engine,
        table,
        query,
        codec,
        time_limit_ms=request.app.state.settings.open_rows_time_limit_ms,
    )
    if admission.key is not None:
        with session_scope(factory) as session:
            gate.record(session, admission, rows=len(page.rows))
    return page


def admit(request: Request, session: Session) -> gate.Admission:
    """The gate's admission of the call; :class:`RowsRefused` when it refuses."""
    remote = request.client.host if request.client else None
    try:
        return request.app.state.open_gate.admit(session, request.headers, remote)  # type: ignore[no-any-return]
    except gate.Refused as exc:
        raise RowsRefused(exc.status, exc.message, retry_after=exc.retry_after) from None


@router.get("/open/datasets/{slug}/rows.{fmt}", name="open_rows")
def dataset_rows(request: Request, slug: str, fmt: str, _anyone: Anyone) -> Response:
    """数据行: a page of a 无条件开放 dataset's published columns, filtered and sorted."""
    try:
        page = _page(request, slug, fmt)
    except RowsError as exc:
        return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)
    next_url = (
        str(request.url.include_query_params(_next=page.next)) if page.next is not None else None
    )
    headers = {"Cache-Control": "no-store"}
    if fmt == "csv":
        if next_url is not None:
            headers["Link"] = f'<{next_url}>; rel="next"'
        return Response(page.csv(), media_type=MEDIA_TYPES["csv"], headers=headers)
    return Response(page.body(next_url), media_type=MEDIA_TYPES["json"], headers=headers)
