"""开放文件 pages: a department uploads and withdraws files for its open entries in the
console (``/open-files``, registrars: ``catalog.write``); the portal lists them on the
dataset's page and serves them (``/open/datasets/{slug}/files``, public).

Uploads come as a multipart form: Starlette spools the file part to a temporary file
past 1 MiB, and :func:`govshare.opendata.files.store` copies it to the store in chunks,
so neither step holds a large file in memory. The request body limit of the upload
address is ``max_open_file_bytes`` (app.py).
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from typing import Any

import structlog
from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from sqlalchemy.orm import Session
from starlette.datastructures import UploadFile

from govshare.db import session_scope
from govshare.deps import CatalogWriter, SessionDep
from govshare.errors import GovshareError, InvalidInput
from govshare.ids import Id
from govshare.opendata import datasets as ds
from govshare.opendata import files, gate, portal
from govshare.opendata.api import Anyone
from govshare.opendata.errors import RowsRefused
from govshare.opendata.models import OpenFile
from govshare.opendata.pages import public_error
from govshare.security.atrest import STREAM_MAGIC, AtRestKeyError, sealing_cipher
from govshare.security.service import Principal
from govshare.web.forms import NO_ERRORS, FormDep, FormErrors, optional_int, redirect, render, text
from govshare.web.headers import attachment

log = structlog.get_logger()
router = APIRouter(tags=["opendata"], include_in_schema=False)

UPLOAD_PATH = "/open-files/upload"
NOTICES = {"uploaded": "文件已上传，开放平台的数据集页面即可下载", "withdrawn": "文件已撤下"}
LABELS = {"resource_id": "目录", "file": "文件", "description": "文件说明"}


def _now() -> datetime:
    return datetime.now(UTC)


def _page(
    request: Request,
    db: Session,
    caller: Principal,
    *,
    errors: FormErrors = NO_ERRORS,
    values: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    return render(
        request,
        "opendata/files.html",
        caller,
        status_code=status_code,
        nav="/open-files",
        notice=NOTICES.get(request.query_params.get("done", ""), ""),
        entries=files.uploadable(db, caller),
        listed=files.department_files(db, caller),
        kinds=sorted(files.KINDS),
        limit_mib=request.app.state.settings.max_open_file_bytes // (1 << 20),
        slug_of=ds.slug_of,
        errors=errors,
        values=values or {},
    )


@router.get("/open-files")
def files_page(request: Request, db: SessionDep, caller: CatalogWriter) -> Response:
    """开放文件: the department's files and the upload form."""
    return _page(request, db, caller)


@router.post(UPLOAD_PATH)
async def upload(
    request: Request, form: FormDep, db: SessionDep, caller: CatalogWriter
) -> Response:
    """上传: streamed into the store; the form again with the reason when refused."""
    part = form.get("file")
    values = {"resource_id": text(form, "resource_id"), "description": text(form, "description")}
    resource_id = optional_int(values["resource_id"])
    settings = request.app.state.settings
    try:
        if not isinstance(part, UploadFile) or not part.filename:
            raise InvalidInput.about("请选择要上传的文件 (no file)", "file", "请选择文件")
        if not isinstance(resource_id, int):
            raise InvalidInput.about("请选择目录 (entry required)", "resource_id", "请选择目录")
        await run_in_threadpool(
            files.store,
            db,
            settings.data_dir,
            caller,
            resource_id=resource_id,
            name=part.filename,
            description=values["description"],
            source=part.file,
            limit=settings.max_open_file_bytes,
            now=_now(),
            cipher=sealing_cipher(settings),
        )
    except GovshareError as exc:
        db.rollback()
        errors = FormErrors(exc.message, exc.details, label=lambda f: LABELS.get(f, f))
        return await run_in_threadpool(
            _page, request, db, caller, errors=errors, values=values, status_code=exc.status
        )
    finally:
        if isinstance(part, UploadFile):
            await part.close()
    db.commit()
    return redirect("/open-files?done=uploaded")


@router.post("/open-files/{file_id}/withdraw")
def withdraw(file_id: Id, db: SessionDep, caller: CatalogWriter) -> Response:
    """撤下: no longer listed or served by the portal."""
    files.withdraw(db, caller, file_id, _now())
    db.commit()
    return redirect("/open-files?done=withdrawn")


# -- the portal ----------------------------------------------------------------------------


def _served(request: Request, slug: str) -> tuple[ds.Dataset, list[OpenFile]] | None:
    """The dataset and the files this caller gets (an approved developer key also gets a
    有条件开放 dataset's); :class:`gate.Refused` past the caller's limits."""
    remote = request.client.host if request.client else None
    with session_scope(request.app.state.session_factory) as session:
        admission = request.app.state.open_gate.admit(session, request.headers, remote)
        found = ds.get_dataset(session, slug)
        if found is None:
            return None
        granted = found.resource_id in admission.granted
        gate.record(session, admission)
        return found, files.served_files(session, found, granted=granted)


def _refused(exc: gate.Refused) -> JSONResponse:
    refused = RowsRefused(exc.status, exc.message, retry_after=exc.retry_after)
    return JSONResponse(refused.body(), status_code=refused.status, headers=refused.headers)


def _listing(request: Request, dataset: ds.Dataset, f: OpenFile) -> dict[str, Any]:
    base = str(request.base_url).rstrip("/")
    return {
        "id": f.id,
        "name": f.name,
        "description": f.description,
        "format": files.kind_label(f),
        "media_type": f.media_type,
        "size": f.size,
        "sha256": f.sha256,
        "uploaded": f.uploaded_at.isoformat(),
        "url": f"{base}/open/datasets/{dataset.slug}/files/{f.id}",
    }


@router.get("/open/datasets/{slug}/files", name="open_files")
async def file_list(request: Request, slug: str, _anyone: Anyone) -> Response:
    """The dataset's files as JSON (name, format, size, SHA-256, address)."""
    try:
        found = await run_in_threadpool(_served, request, slug)
    except gate.Refused as exc:
        return _refused(exc)
    if found is None:
        message = "没有这个开放数据集，或它已不再开放"
        return JSONResponse({"error": {"code": "not_found", "message": message}}, status_code=404)
    dataset, listed = found
    return JSONResponse(
        {"dataset": dataset.slug, "files": [_listing(request, dataset, f) for f in listed]}
    )


@router.get("/open/datasets/{slug}/files/{file_id}", name="open_file")
async def file_download(request: Request, slug: str, file_id: Id, _anyone: Anyone) -> Response:
    """One file, as an attachment, with its digest as the ETag (under the same limits
    and keys as the downloads)."""

    def find() -> OpenFile | None:
        found = _served(request, slug)
        if found is None:
            return None
        chosen = next((f for f in found[1] if f.id == file_id), None)
        if chosen is not None:
            with session_scope(request.app.state.session_factory) as session:
                portal.count_download(session, chosen.resource_id, "file")
        return chosen

    try:
        chosen = await run_in_threadpool(find)
    except gate.Refused as exc:
        return _refused(exc)
    path = files.stored_path(request.app.state.settings.data_dir, chosen.sha256) if chosen else None
    if chosen is None or path is None or not path.is_file():
        return public_error(request, 404, "没有这个文件，或它已不再开放")
    headers = {
        **attachment(f"file-{chosen.id}.{files.extension(chosen.name)}", chosen.name),
        "ETag": f'"{chosen.sha256}"',
        "Cache-Control": "public, max-age=300",
    }
    settings = request.app.state.settings
    with path.open("rb") as f:
        sealed = f.read(len(STREAM_MAGIC)) == STREAM_MAGIC
    if not sealed:  # stored before sealing, or with sealing off: served with ranges
        return FileResponse(path, media_type=chosen.media_type, headers=headers)
    pieces = files.read_stored(settings, path)
    try:  # the first chunk opened before the answer starts: a key problem is told
        first = await run_in_threadpool(next, pieces, b"")
    except AtRestKeyError as exc:
        log.error("open file unreadable", file_id=chosen.id, reason=exc.message)
        return public_error(request, 503, "文件暂时无法读取，请稍后再试或联系平台运维")
    headers["Content-Length"] = str(chosen.size)
    return StreamingResponse(
        itertools.chain([first], pieces), media_type=chosen.media_type, headers=headers
    )
