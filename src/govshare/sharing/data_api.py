"""Data-service API (数据服务接口) for consumer department systems, and the shared
stores behind it.

Callers sign each request with their API client's key (``X-App-Key``, ``X-Timestamp``,
``X-Nonce``, ``X-Signature``: HMAC-SHA256 over method, path and query, timestamp,
nonce and the body's SHA-256). Keys and filter values travel only in POST bodies, so
no access log or proxy ever sees them.
"""

from __future__ import annotations

import email.message
import functools
import json
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Literal, TypeVar

import orjson
from fastapi import APIRouter, Depends, Query, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import BaseModel, Field, TypeAdapter, ValidationError
from sqlalchemy import Connection
from starlette.routing import Route

from govshare import telemetry
from govshare.config import Settings
from govshare.db import UNSTORABLE_ERRORS
from govshare.deps import (
    Require,
    SessionDep,
    SettingsDep,
    SharingReader,
    SharingStoreAdmin,
    signed_request,
)
from govshare.errors import GovshareError, NotAuthenticated, UnstorableValue
from govshare.rules import spreadsheet
from govshare.rules.clock import china_today
from govshare.security.errors import PermissionDenied
from govshare.security.roles import Permission
from govshare.security.service import SignedRequest, verified_signed_client
from govshare.sharing import data, reseal
from govshare.sharing import store as shared
from govshare.sharing.data import Caller, DataServices
from govshare.sharing.models import SharedStore, SharingMode
from govshare.sharing.schemas import RecordsOut, StoreCreate, StorePublic, VerifyIn, VerifyOut

router = APIRouter(prefix="/data", tags=["data"])
stores = APIRouter(prefix="/sharing/stores", tags=["sharing"])


def verified_caller(conn: Connection, settings: Settings, signed: SignedRequest) -> Caller:
    """The caller of a data-service request, or ``BadSignature``/``PermissionDenied``.
    ``_serve`` checks it first, in the same call as the grant check and the work (one
    thread hop and one connection a call); the nonce is spent by the call journal
    together with the audit entry."""
    client = verified_signed_client(conn, settings, signed)
    if Permission.DATA_SERVICE.value not in client.permissions:
        raise PermissionDenied("该应用未开通数据服务权限 (data.service)")
    return Caller.of(client, signed.nonce, signed.remote_addr)


class SignedClient(Require):
    """The data-service permission, held only by API clients, on a signed request:
    the signature is checked by ``_serve`` before anything else is done."""

    def __init__(self) -> None:
        super().__init__(Permission.DATA_SERVICE)

    async def __call__(self, request: Request) -> SignedRequest:  # type: ignore[override]
        app_key = request.headers.get("x-app-key")
        if not app_key:
            raise NotAuthenticated("数据服务须使用应用签名调用 (X-App-Key … required)")
        return signed_request(request, await request.body(), app_key)


_signed_client = SignedClient()
SignedCall = Annotated[SignedRequest, Depends(_signed_client)]


def _services(request: Request) -> DataServices:
    return request.app.state.data_services  # type: ignore[no-any-return]


class _Refused(Exception):
    """A verified caller's call refused (no grant, limits, bad input): journalled."""

    def __init__(self, caller: Caller, error: GovshareError) -> None:
        self.caller = caller
        self.error = error


async def _serve(
    request: Request,
    signed: SignedRequest,
    resource_code: str,
    action: str,
    modes: list[SharingMode],
    keys: list[str],
    work: Any,
) -> Any:
    """Check the signature, authorize, admit and do the work in a worker thread; then
    wait, off the thread, until the call's journal entry (nonce, audit, usage) is
    committed. Refusals of a verified caller are journalled too, before they go out;
    a bad signature is refused without a journal entry (there is no caller)."""
    ds = _services(request)
    settings = request.app.state.settings
    try:
        auth, result, call = await ds.run(
            _answer,
            ds,
            settings,
            signed,
            resource_code,
            action,
            modes,
            keys,
            work,
            bulk=len(keys) > data.MAX_LOOKUP_KEYS,
            light=action == "data.lookup",
        )
    except _Refused as refused:
        telemetry.data_call(refused.caller.app_key, refused.error.code)
        await ds.journal.wait(
            data.denied_call(refused.caller, action, resource_code, refused.error.code)
        )
        raise refused.error from None
    telemetry.data_call(call.app_key, "ok")
    await ds.journal.wait(call)
    return auth, result


def _answer(
    ds: DataServices,
    settings: Settings,
    signed: SignedRequest,
    resource_code: str,
    action: str,
    modes: list[SharingMode],
    keys: list[str],
    work: Any,
) -> tuple[data.Authorized, Any, data.Call]:
    today = china_today()
    with ds.hub_reads.use() as conn:
        caller = verified_caller(conn, settings, signed)
        try:
            auth = data.authorize(conn, caller, resource_code, modes, today)
        except GovshareError as exc:
            raise _Refused(caller, exc) from exc
        except UNSTORABLE_ERRORS as exc:  # a NUL in the resource code
            raise _Refused(caller, UnstorableValue()) from exc
    try:
        ds.limits.admit(caller, max(1, len(keys)), today)
        result, rows = work(ds, auth)
    except GovshareError as exc:
        raise _Refused(caller, exc) from exc
    except UNSTORABLE_ERRORS as exc:  # a NUL or lone surrogate in a key
        raise _Refused(caller, UnstorableValue()) from exc
    call = data.call_of(caller, auth, action, today)
    call.keys = len(keys)
    call.rows = rows
    call.key_hashes = [ds.hash_key(k) for k in keys]
    return auth, result, call


def _csv(items: list[str], records: list[dict[str, Any]]) -> Response:
    return Response(
        spreadsheet.csv_records_text(items, records), media_type="text/csv; charset=utf-8"
    )


class LookupIn(BaseModel):
    keys: list[Annotated[str, Field(min_length=1, max_length=200)]] = Field(
        min_length=1, max_length=data.MAX_LOOKUP_KEYS, description="查询键的值, 至多100个"
    )


class QueryIn(BaseModel):
    filters: dict[str, str] = Field(default_factory=dict, description="信息项→取值 (等于)")
    after: str | None = Field(default=None, max_length=2000, description="上一页返回的 next")
    limit: int = Field(default=100, ge=1, le=1000)


Format = Literal["json", "csv"]


def _json(out: dict[str, Any]) -> Response:
    """The answer serialised once with orjson (the route's response model documents it;
    validating what the route itself built would only cost time)."""
    return Response(orjson.dumps(out), media_type="application/json")


async def _lookup(
    request: Request, signed: SignedRequest, resource_code: str, body: LookupIn, format: Format
) -> Response:
    def work(ds: DataServices, auth: data.Authorized) -> tuple[list[dict[str, Any]], int]:
        records = data.lookup(ds, auth, body.keys)
        return records, len(records)

    auth, records = await _serve(
        request, signed, resource_code, "data.lookup", [SharingMode.QUERY], body.keys, work
    )
    if format == "csv":
        return _csv(auth.items, records)
    return _json(
        {
            "resource_code": auth.resource_code,
            "grant_id": auth.grant.id,
            "items": auth.items,
            "records": records,
            "next": None,
        }
    )


async def _query(
    request: Request, signed: SignedRequest, resource_code: str, body: QueryIn, format: Format
) -> Response:
    def work(
        ds: DataServices, auth: data.Authorized
    ) -> tuple[tuple[list[dict[str, Any]], str | None], int]:
        got = data.query(ds, auth, body.filters, body.after, body.limit)
        return got, len(got[0])

    auth, (records, cursor) = await _serve(
        request,
        signed,
        resource_code,
        "data.query",
        [SharingMode.QUERY],
        list(body.filters.values()),
        work,
    )
    if format == "csv":
        response = _csv(auth.items, records)
        if cursor:
            response.headers["x-next"] = cursor
        return response
    return _json(
        {
            "resource_code": auth.resource_code,
            "grant_id": auth.grant.id,
            "items": auth.items,
            "records": records,
            "next": cursor,
        }
    )


async def _verify(
    request: Request, signed: SignedRequest, resource_code: str, body: VerifyIn
) -> Response:
    keys = body.keys if body.keys is not None else [r.key for r in body.records or []]

    def work(ds: DataServices, auth: data.Authorized) -> tuple[Any, int]:
        answers = data.verify(ds, auth, body)
        return answers, sum(a["match"] for a in answers)

    auth, answers = await _serve(
        request,
        signed,
        resource_code,
        "data.verify",
        [SharingMode.VERIFICATION, SharingMode.QUERY],
        keys,
        work,
    )
    return _json(
        {
            "resource_code": auth.resource_code,
            "grant_id": auth.grant.id,
            "rule": body.rule,
            "results": answers,
        }
    )


# The documented routes. POSTs to them are served by ``lean_routes`` (same functions,
# same permission object, same checks and errors, without FastAPI's per-request
# dependency solving); these answer the other methods (405) and describe the API.


@router.post(
    "/{resource_code:path}/lookup",
    summary="按键查询 (公民身份号码、统一社会信用代码 …)",
    response_model=RecordsOut,
)
async def lookup(
    resource_code: str,
    body: LookupIn,
    request: Request,
    signed: SignedCall,
    format: Format = Query(default="json", description="json 或 csv"),
) -> Any:
    return await _lookup(request, signed, resource_code, body, format)


@router.post(
    "/{resource_code:path}/query", summary="条件查询, 按键集翻页", response_model=RecordsOut
)
async def query(
    resource_code: str,
    body: QueryIn,
    request: Request,
    signed: SignedCall,
    format: Format = Query(default="json", description="json 或 csv"),
) -> Any:
    return await _query(request, signed, resource_code, body, format)


@router.post(
    "/{resource_code:path}/verify",
    summary="核验 (数据不落地): 至多10000个键",
    response_model=VerifyOut,
)
async def verify(resource_code: str, body: VerifyIn, request: Request, signed: SignedCall) -> Any:
    return await _verify(request, signed, resource_code, body)


# -- the lean path ---------------------------------------------------------------------------

Model = TypeVar("Model", bound=BaseModel)
_FORMAT: TypeAdapter[Format] = TypeAdapter(Format)


@functools.lru_cache(maxsize=64)
def _is_json(content_type: str) -> bool:
    message = email.message.Message()
    message["content-type"] = content_type
    if message.get_content_maintype() != "application":
        return False
    subtype = message.get_content_subtype()
    return subtype == "json" or subtype.endswith("+json")


def _located(exc: ValidationError, *prefix: str) -> list[dict[str, Any]]:
    return [{**e, "loc": (*prefix, *e["loc"])} for e in exc.errors()]


def _json_invalid(pos: int, reason: str) -> RequestValidationError:
    """A body that is not JSON, answered as FastAPI answers a JSON syntax error."""
    return RequestValidationError(
        [
            {
                "type": "json_invalid",
                "loc": ("body", pos),
                "msg": "JSON decode error",
                "input": {},
                "ctx": {"error": reason},
            }
        ]
    )


async def _parsed(
    request: Request, model: type[Model], *, with_format: bool
) -> tuple[SignedRequest, Model, Format]:
    """What FastAPI does for the documented routes, in its order: the JSON body decoded
    (a JSON syntax error first), the signed caller (``_signed_client``: 401 without an
    app key), then the query's ``format`` and the body validated together (422)."""
    raw = await request.body()
    payload: Any = None
    if raw:
        payload = raw
        content_type = request.headers.get("content-type")
        if content_type and _is_json(content_type):
            try:
                payload = json.loads(raw)
            except json.JSONDecodeError as e:
                raise _json_invalid(e.pos, e.msg) from e
            except UnicodeDecodeError as e:  # JSON is UTF-8 (RFC 8259); json.loads guesses
                raise _json_invalid(e.start, "body is not UTF-8 (请求体须为 UTF-8 编码)") from e
            except RecursionError as e:
                raise _json_invalid(0, "JSON nested too deeply (嵌套层数过多)") from e
    signed = await _signed_client(request)
    errors: list[dict[str, Any]] = []
    fmt: Format = "json"
    if with_format and (given := request.query_params.get("format")) is not None:
        try:
            fmt = _FORMAT.validate_python(given)
        except ValidationError as exc:
            errors += _located(exc, "query", "format")
    body: Model | None = None
    if payload is None:
        errors.append({"type": "missing", "loc": ("body",), "msg": "Field required", "input": None})
    else:
        try:  # as FastAPI validates a body (its error messages are the same)
            body = model.model_validate(payload, from_attributes=True)
        except ValidationError as exc:
            errors += _located(exc, "body")
    if errors or body is None:
        raise RequestValidationError(errors, body=payload)
    return signed, body, fmt


async def _lean_lookup(request: Request) -> Response:
    signed, body, fmt = await _parsed(request, LookupIn, with_format=True)
    return await _lookup(request, signed, request.path_params["resource_code"], body, fmt)


async def _lean_query(request: Request) -> Response:
    signed, body, fmt = await _parsed(request, QueryIn, with_format=True)
    return await _query(request, signed, request.path_params["resource_code"], body, fmt)


async def _lean_verify(request: Request) -> Response:
    signed, body, _ = await _parsed(request, VerifyIn, with_format=False)
    return await _verify(request, signed, request.path_params["resource_code"], body)


def lean_routes(prefix: str) -> list[Route]:
    """The data routes' POSTs as plain Starlette routes, to be matched before any
    FastAPI route: they need the data-service permission (``_signed_client``, the
    ``Require`` the documented routes declare), and their errors go through the app's
    handlers as FastAPI's would."""
    endpoints: list[tuple[str, Callable[[Request], Awaitable[Response]]]] = [
        ("lookup", _lean_lookup),
        ("query", _lean_query),
        ("verify", _lean_verify),
    ]
    return [
        SignedRoute(f"{prefix}{router.prefix}/{{resource_code:path}}/{name}", endpoint)
        for name, endpoint in endpoints
    ]


class SignedRoute(Route):
    """A lean data route; ``requires`` is the permission it checks, declared like the
    ``Require`` of every FastAPI route (the route-permission tests read both)."""

    requires: Require = _signed_client

    def __init__(self, path: str, endpoint: Callable[[Request], Awaitable[Response]]) -> None:
        super().__init__(path, endpoint, methods=["POST"])


# -- shared stores -------------------------------------------------------------------------


def store_public(store: SharedStore, settings: Settings, newest: int | None) -> StorePublic:
    change = reseal.pending(store, settings, newest)
    return StorePublic.model_validate(
        {
            **{k: getattr(store, k) for k in StorePublic.model_fields if hasattr(store, k)},
            "resource_name": store.resource.name,
            "sealed_items": sorted(store.sealed_items or {}),
            "items_to_seal": change.seal,
            "items_to_open": change.open,
            "rekey": change.rekey,
            "resealing": store.reseal_to is not None,
        }
    )


@stores.post("", status_code=status.HTTP_201_CREATED, summary="建立共享信息库 (由发送任务供数)")
def create_store(
    body: StoreCreate, db: SessionDep, caller: SharingStoreAdmin, settings: SettingsDep
) -> StorePublic:
    sealing = settings.field_sealing
    newest = reseal.newest_key(settings)
    created = shared.create_store(db, caller, body, sealing=sealing, seal_key=newest)
    return store_public(created, settings, newest)


@stores.get("", summary="共享信息库列表")
def list_stores(db: SessionDep, _c: SharingReader, settings: SettingsDep) -> list[StorePublic]:
    newest = reseal.newest_key(settings)
    return [store_public(s, settings, newest) for s in shared.list_stores(db)]
