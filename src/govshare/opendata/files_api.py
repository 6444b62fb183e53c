"""开放文件 over the JSON API (``/api/v1/open/files``), for department systems that
publish their reports and hand-kept tables without a person at the console: upload
(a multipart form: ``resource_id``, ``description``, ``file``), list and withdraw,
with the console's rules (``catalog.write``, the caller's own open entries, the same
checks of name, kind and content, the same size limit, audited) — both call
:mod:`govshare.opendata.files`.

The upload is streamed: Starlette spools the file part to a temporary file past 1 MiB
and :func:`files.store` copies it to the store in chunks. The body limit of
:data:`UPLOAD_PATH` is ``max_open_file_bytes`` (app.py), as for the console's form.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request, status
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel
from sqlalchemy.orm import Session
from starlette.datastructures import FormData, UploadFile

from govshare.catalog.models import Resource
from govshare.deps import CatalogWriter, SessionDep, SettingsDep
from govshare.errors import InvalidInput
from govshare.ids import MAX_ID, Id
from govshare.opendata import datasets as ds
from govshare.opendata import files
from govshare.opendata.models import OpenFile
from govshare.security.atrest import sealing_cipher
from govshare.security.service import Principal
from govshare.web.forms import FormDep, upload_close

UPLOAD_PATH = "/api/v1/open/files"

router = APIRouter(prefix="/open/files", tags=["opendata"])


class OpenFilePublic(BaseModel):
    """开放文件, as the department sees it (withdrawn ones included)."""

    id: int
    resource_id: int
    resource_code: str
    name: str
    description: str
    format: str
    media_type: str
    size: int
    sha256: str
    uploaded_by: str
    uploaded_at: datetime
    withdrawn_at: datetime | None
    url: str | None  # on the portal, while it is served

    @classmethod
    def of(cls, request: Request, f: OpenFile, code: str) -> OpenFilePublic:
        base = str(request.base_url).rstrip("/")
        return cls(
            id=f.id,
            resource_id=f.resource_id,
            resource_code=code,
            name=f.name,
            description=f.description,
            format=files.kind_label(f),
            media_type=f.media_type,
            size=f.size,
            sha256=f.sha256,
            uploaded_by=f.uploaded_by,
            uploaded_at=f.uploaded_at,
            withdrawn_at=f.withdrawn_at,
            url=None
            if f.withdrawn_at is not None
            else f"{base}/open/datasets/{ds.slug_of(code)}/files/{f.id}",
        )


def _now() -> datetime:
    return datetime.now(UTC)


def _code(db: Session, f: OpenFile) -> str:
    resource = db.get(Resource, f.resource_id)
    assert resource is not None  # the file's foreign key
    return resource.code


def _resource_id(form: FormData) -> int:
    raw = form.get("resource_id")
    if not isinstance(raw, str) or not raw.strip().isdigit() or len(raw.strip()) > 18:
        raise InvalidInput.about(
            "resource_id 须为目录的编号 (resource_id must be an entry id)",
            "resource_id",
            "请给出目录编号",
        )
    return int(raw.strip())


def _store(
    db: SessionDep, settings: SettingsDep, caller: Principal, form: FormData
) -> tuple[OpenFile, str]:
    part = form.get("file")
    if not isinstance(part, UploadFile) or not part.filename:
        raise InvalidInput.about("请附上要上传的文件 (no file part)", "file", "请附上文件")
    description = form.get("description")
    stored = files.store(
        db,
        settings.data_dir,
        caller,
        resource_id=_resource_id(form),
        name=part.filename,
        description=description if isinstance(description, str) else "",
        source=part.file,
        limit=settings.max_open_file_bytes,
        now=_now(),
        cipher=sealing_cipher(settings),
    )
    db.commit()
    return stored, _code(db, stored)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="上传开放文件: 为本部门已发布且向社会开放的目录上传文件 (PDF、XLSX、CSV、ZIP 等)",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["resource_id", "file"],
                        "properties": {
                            "resource_id": {"type": "integer", "description": "目录编号"},
                            "description": {"type": "string", "maxLength": 500},
                            "file": {"type": "string", "format": "binary"},
                        },
                    }
                }
            },
        }
    },
)
async def upload(
    request: Request,
    caller: CatalogWriter,  # before the form: nobody unknown gets to upload
    form: FormDep,
    db: SessionDep,
    settings: SettingsDep,
) -> OpenFilePublic:
    try:
        stored, code = await run_in_threadpool(_store, db, settings, caller, form)
    finally:
        await run_in_threadpool(upload_close, form)
    return OpenFilePublic.of(request, stored, code)


@router.get("", summary="本部门的开放文件 (新的在前，含已撤下的)")
def list_files(
    request: Request,
    db: SessionDep,
    caller: CatalogWriter,
    resource_id: Annotated[int | None, Query(ge=1, le=MAX_ID, description="只看这个目录的")] = None,
) -> list[OpenFilePublic]:
    return [
        OpenFilePublic.of(request, f, r.code)
        for f, r in files.department_files(db, caller, resource_id)
    ]


@router.post("/{file_id}/withdraw", summary="撤下开放文件: 开放平台立即停止列出和提供下载")
def withdraw(
    request: Request, file_id: Id, db: SessionDep, caller: CatalogWriter
) -> OpenFilePublic:
    found = files.withdraw(db, caller, file_id, _now())
    db.commit()
    return OpenFilePublic.of(request, found, _code(db, found))
