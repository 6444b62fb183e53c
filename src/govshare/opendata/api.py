"""Public routes of the open catalog, no login: the CKAN Action API (read actions, at
``/api/3/action/{name}`` and ``/api/action/{name}`` as CKAN serves both) and the DCAT-AP 3
export under ``/open/``. Both answer in their own ecosystem's shapes, not the hub's error
envelope, so they are left out of the hub's OpenAPI document (docs/opendata.md describes
them)."""

from __future__ import annotations

import json
from typing import Annotated, Any

import orjson
import structlog
from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from govshare.db import session_scope
from govshare.deps import Require
from govshare.opendata import ckan, dcat, gate
from govshare.opendata import datasets as ds
from govshare.opendata.errors import CkanError, CkanRefused, UnknownAction
from govshare.security.roles import Permission
from govshare.security.service import ANONYMOUS, Principal

log = structlog.get_logger()


class OpenAccess(Require):
    """Public, and the same for everyone: the caller is never resolved, so a stale console
    cookie or an expired token cannot turn a public read into an error."""

    def __init__(self) -> None:
        super().__init__(Permission.PUBLIC)

    async def __call__(self) -> Principal:  # type: ignore[override]
        return ANONYMOUS


Anyone = Annotated[Principal, Depends(OpenAccess())]

router = APIRouter(tags=["opendata"], include_in_schema=False)


def _site(request: Request) -> ckan.Site:
    return ckan.Site(base_url=str(request.base_url).rstrip("/"))


def _ckan_body(request: Request, name: str, body: dict[str, Any]) -> bytes:
    help_url = _site(request).url(f"/api/3/action/help_show?name={name}")
    return orjson.dumps({"help": help_url, **body})


def _ckan_answer(request: Request, name: str, status: int, body: dict[str, Any]) -> Response:
    return Response(_ckan_body(request, name, body), status, media_type="application/json")


async def _params(request: Request) -> dict[str, Any]:
    """The action's parameters: the query string, then a JSON body or a form over it."""
    params: dict[str, Any] = dict(request.query_params)
    if request.method != "POST":
        return params
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind in ("application/x-www-form-urlencoded", "multipart/form-data"):
        form = await request.form()
        params.update({k: v for k, v in form.items() if isinstance(v, str)})
        return params
    body = await request.body()
    if not body.strip():
        return params
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise CkanError("Bad request: JSON Error: the body is not valid JSON") from None
    if not isinstance(data, dict):
        raise CkanError("Bad request: JSON Error: the body must be a JSON object")
    params.update(data)
    return params


def _run(request: Request, name: str, params: dict[str, Any]) -> bytes:
    action = ckan.ACTIONS.get(name)
    if action is None:
        raise UnknownAction(f"Bad request - Action name not known: {name}")
    remote = request.client.host if request.client else None
    with session_scope(request.app.state.session_factory) as session:
        try:
            admission = request.app.state.open_gate.admit(session, request.headers, remote)
        except gate.Refused as exc:
            raise CkanRefused(exc.status, exc.message, retry_after=exc.retry_after) from None
        result = action(session, _site(request), params)
        gate.record(session, admission)
    # Encoded here, off the event loop: a harvest page of 1,000 packages is 5 MB of JSON.
    return _ckan_body(request, name, {"success": True, "result": result})


@router.api_route("/api/3/action/{name}", methods=["GET", "POST"], name="ckan_action")
@router.api_route("/api/action/{name}", methods=["GET", "POST"], name="ckan_action_unversioned")
async def ckan_action(request: Request, name: str, _anyone: Anyone) -> Response:
    """One CKAN action; ``{"help", "success", "result"}`` or CKAN's error shape."""
    try:
        params = await _params(request)
        answer = await run_in_threadpool(_run, request, name, params)
    except CkanError as exc:
        response = _ckan_answer(request, name, exc.status, {"success": False, "error": exc.error()})
        if isinstance(exc, CkanRefused) and exc.retry_after is not None:
            response.headers["Retry-After"] = str(exc.retry_after)
        return response
    except Exception:  # answered in CKAN's shape; the traceback goes to the log
        log.exception("ckan action failed", action=name)
        error = {"__type": "Internal Server Error", "message": "Internal Server Error"}
        return _ckan_answer(request, name, 500, {"success": False, "error": error})
    return Response(answer, media_type="application/json")


# --- DCAT-AP ------------------------------------------------------------------------------


def _dcat_error(status: int, message: str) -> Response:
    return Response(message + "\n", status_code=status, media_type="text/plain; charset=utf-8")


def _catalog(request: Request, fmt: str, page: int) -> Response:
    with session_scope(request.app.state.session_factory) as session:
        graph, found = dcat.catalog_graph(session, _site(request), page=page, fmt=fmt)
    if not found:
        return _dcat_error(404, f"no page {page} in the open catalog")
    return Response(dcat.serialize(graph, fmt), media_type=dcat.MEDIA_TYPES[fmt])


def _dataset(request: Request, key: str, fmt: str) -> Response:
    with session_scope(request.app.state.session_factory) as session:
        found = ds.get_dataset(session, key)
        if found is None:
            return _dcat_error(404, "no such open dataset")
        graph = dcat.dataset_graph(_site(request), found)
    return Response(dcat.serialize(graph, fmt), media_type=dcat.MEDIA_TYPES[fmt])


PageNo = Annotated[str, Query(description="hydra page, from 1")]


def _page(raw: str) -> int | None:
    return int(raw) if raw.isdigit() and 0 < len(raw) < 7 and int(raw) >= 1 else None


@router.get("/open/catalog.{fmt}", name="dcat_catalog")
async def dcat_catalog(request: Request, fmt: str, _anyone: Anyone, page: PageNo = "1") -> Response:
    """The DCAT-AP 3 catalogue, a hydra page of datasets at a time."""
    if fmt not in dcat.MEDIA_TYPES:
        return _dcat_error(404, "the catalogue is served as .ttl, .rdf and .jsonld")
    number = _page(page)
    if number is None:
        return _dcat_error(400, "page must be a whole number from 1")
    return await run_in_threadpool(_catalog, request, fmt, number)


@router.get("/open/datasets/{key}.{fmt}", name="dcat_dataset")
async def dcat_dataset(request: Request, key: str, fmt: str, _anyone: Anyone) -> Response:
    """One dataset with its distributions, publisher and table schema."""
    if fmt not in dcat.MEDIA_TYPES:
        return _dcat_error(404, "a dataset is served as .ttl, .rdf and .jsonld")
    return await run_in_threadpool(_dataset, request, key, fmt)
