"""Data-service API (数据服务接口) for consumer department systems, and the shared
stores behind it.

Callers sign each request with their API client's key (``X-App-Key``, ``X-Timestamp``,
``X-Nonce``, ``X-Signature``: HMAC-SHA256 over method, path and query, timestamp,
nonce and the body's SHA-256). Keys and filter values travel only in POST bodies, so
no access log or proxy ever sees them.
"""

from __future__ import annotations

import csv
import hashlib
import io
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Depends, Query, Request, status
from fastapi.responses import Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from govshare.deps import Require, SessionDep, SharingReader, SharingStoreAdmin
from govshare.errors import GovshareError, NotAuthenticated
from govshare.security.errors import PermissionDenied
from govshare.security.roles import Permission
from govshare.security.service import verified_signed_client
from govshare.sharing import data
from govshare.sharing import store as shared
from govshare.sharing.data import Caller, DataServices
from govshare.sharing.models import SharedStore, SharingMode
from govshare.sharing.schemas import RecordsOut, StoreCreate, StorePublic, VerifyIn, VerifyOut
from govshare.sharing.workdays import china_today

router = APIRouter(prefix="/data", tags=["data"])
stores = APIRouter(prefix="/sharing/stores", tags=["sharing"])


class SignedClient(Require):
    """The data-service permission, held only by API clients, checked on a signed
    request; the nonce is spent by the call journal together with the audit entry."""

    def __init__(self) -> None:
        super().__init__(Permission.DATA_SERVICE)

    async def __call__(self, request: Request) -> Caller:  # type: ignore[override]
        app_key = request.headers.get("x-app-key")
        if not app_key:
            raise NotAuthenticated("数据服务须使用应用签名调用 (X-App-Key … required)")
        body = await request.body()
        return await run_in_threadpool(_caller, request, app_key, body)


def _caller(request: Request, app_key: str, body: bytes) -> Caller:
    query = f"?{request.url.query}" if request.url.query else ""
    settings = request.app.state.settings
    with _services(request).hub.connect() as conn:
        client = verified_signed_client(
            conn,
            settings,
            app_key=app_key,
            timestamp=request.headers.get("x-timestamp", ""),
            nonce=request.headers.get("x-nonce", ""),
            signature=request.headers.get("x-signature", ""),
            method=request.method,
            path_and_query=request.url.path + query,
            body_sha256=hashlib.sha256(body).hexdigest(),
        )
        if Permission.DATA_SERVICE.value not in client.permissions:
            raise PermissionDenied("该应用未开通数据服务权限 (data.service)")
        remote = request.client.host if request.client else None
        return Caller.of(client, request.headers.get("x-nonce", ""), remote)


DataCaller = Annotated[Caller, Depends(SignedClient())]


def _services(request: Request) -> DataServices:
    return request.app.state.data_services  # type: ignore[no-any-return]


async def _serve(
    request: Request,
    caller: Caller,
    resource_code: str,
    action: str,
    modes: list[SharingMode],
    keys: list[str],
    work: Any,
) -> Any:
    """Authorize, admit and do the work in a worker thread; then wait, off the thread,
    until the call's journal entry (nonce, audit, usage) is committed. Denials are
    journalled too, before the refusal goes out."""
    ds = _services(request)
    try:
        auth, result, call = await run_in_threadpool(
            _answer, ds, caller, resource_code, action, modes, keys, work
        )
    except GovshareError as exc:
        await ds.journal.wait(data.denied_call(caller, action, resource_code, exc.code))
        raise
    await ds.journal.wait(call)
    return auth, result


def _answer(
    ds: DataServices,
    caller: Caller,
    resource_code: str,
    action: str,
    modes: list[SharingMode],
    keys: list[str],
    work: Any,
) -> tuple[data.Authorized, Any, data.Call]:
    today = china_today()
    with ds.hub.connect() as conn:
        auth = data.authorize(conn, caller, resource_code, modes, today)
    ds.limits.admit(caller, max(1, len(keys)), today)
    result, rows = work(ds, auth)
    call = data.call_of(caller, auth, action, today)
    call.keys = len(keys)
    call.rows = rows
    call.key_hashes = [ds.hash_key(k) for k in keys]
    return auth, result, call


def _csv(items: list[str], records: list[dict[str, Any]]) -> Response:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=items, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(records)
    return Response("\ufeff" + out.getvalue(), media_type="text/csv; charset=utf-8")


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


@router.post(
    "/{resource_code:path}/lookup",
    summary="按键查询 (公民身份号码、统一社会信用代码 …)",
    response_model=RecordsOut,
)
async def lookup(
    resource_code: str,
    body: LookupIn,
    request: Request,
    caller: DataCaller,
    format: Format = Query(default="json", description="json 或 csv"),
) -> Any:
    def work(ds: DataServices, auth: data.Authorized) -> tuple[list[dict[str, Any]], int]:
        records = data.lookup(ds, auth, body.keys)
        return records, len(records)

    auth, records = await _serve(
        request, caller, resource_code, "data.lookup", [SharingMode.QUERY], body.keys, work
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


@router.post(
    "/{resource_code:path}/query", summary="条件查询, 按键集翻页", response_model=RecordsOut
)
async def query(
    resource_code: str,
    body: QueryIn,
    request: Request,
    caller: DataCaller,
    format: Format = Query(default="json", description="json 或 csv"),
) -> Any:
    def work(
        ds: DataServices, auth: data.Authorized
    ) -> tuple[tuple[list[dict[str, Any]], str | None], int]:
        got = data.query(ds, auth, body.filters, body.after, body.limit)
        return got, len(got[0])

    auth, (records, cursor) = await _serve(
        request,
        caller,
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


@router.post(
    "/{resource_code:path}/verify",
    summary="核验 (数据不落地): 至多10000个键",
    response_model=VerifyOut,
)
async def verify(resource_code: str, body: VerifyIn, request: Request, caller: DataCaller) -> Any:
    keys = body.keys if body.keys is not None else [r.key for r in body.records or []]

    def work(ds: DataServices, auth: data.Authorized) -> tuple[Any, int]:
        answers = data.verify(ds, auth, body)
        return answers, sum(a["match"] for a in answers)

    auth, answers = await _serve(
        request,
        caller,
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


# -- shared stores -------------------------------------------------------------------------


def store_public(store: SharedStore) -> StorePublic:
    return StorePublic.model_validate(
        {
            **{k: getattr(store, k) for k in StorePublic.model_fields if hasattr(store, k)},
            "resource_name": store.resource.name,
        }
    )


@stores.post("", status_code=status.HTTP_201_CREATED, summary="建立共享信息库 (由发送任务供数)")
def create_store(body: StoreCreate, db: SessionDep, caller: SharingStoreAdmin) -> StorePublic:
    return store_public(shared.create_store(db, caller, body))


@stores.get("", summary="共享信息库列表")
def list_stores(db: SessionDep, _c: SharingReader) -> list[StorePublic]:
    return [store_public(s) for s in shared.list_stores(db)]
