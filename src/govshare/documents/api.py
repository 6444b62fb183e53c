"""Document exchange API (电子公文交换) under ``/api/v1/documents``.

Sending takes a multipart form (fields ``title``, ``doc_number``, ``secrecy``,
``urgency``, one ``recipients`` per department id, the ``pdf`` and any number of
``attachments``) and needs ``document.send``; signing for and returning need
``document.receive``; reading, downloading and verifying ``document.read`` — and only
the sender and the addressed departments see a document at all."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from starlette.datastructures import FormData, UploadFile

from govshare.db import utcnow
from govshare.deps import (
    DocumentReader,
    DocumentReceiver,
    DocumentSender,
    SessionDep,
    SettingsDep,
)
from govshare.documents import service, verify
from govshare.documents.models import ReceiptKind
from govshare.documents.schemas import DocumentPublic, ReceiptPublic, ReturnCreate, VerifyPublic
from govshare.ids import Count, Id
from govshare.web.forms import get_form
from govshare.web.headers import attachment

router = APIRouter(prefix="/documents", tags=["documents"])
SEND_PATH = "/api/v1/documents"


def clock(request: Request) -> datetime:
    """Now, or the frozen time a test set on ``app.state.document_clock``."""
    frozen = getattr(request.app.state, "document_clock", None)
    return frozen() if frozen is not None else utcnow()


Now = Annotated[datetime, Depends(clock)]
FormDep = Annotated[FormData, Depends(get_form)]


def uploads(form: FormData, name: str) -> list[service.Upload]:
    return [
        service.Upload(name=v.filename or "", source=v.file)
        for v in form.getlist(name)
        if isinstance(v, UploadFile) and v.filename
    ]


def close_uploads(form: FormData) -> None:
    """Close every spooled upload of the form (each attachment, not only the last)."""
    for _, value in form.multi_items():
        if isinstance(value, UploadFile):
            value.file.close()


def form_text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value if isinstance(value, str) else ""


def send_from_form(
    db: SessionDep, settings: SettingsDep, caller: DocumentSender, form: FormData, now: datetime
) -> service.DocumentView:
    pdfs = uploads(form, "pdf")
    document = service.send_document(
        db,
        settings,
        caller,
        title=form_text(form, "title"),
        doc_number=form_text(form, "doc_number"),
        secrecy=form_text(form, "secrecy"),
        urgency=form_text(form, "urgency"),
        recipient_ids=[v for v in form.getlist("recipients") if isinstance(v, str)],
        pdf=pdfs[0] if pdfs else None,
        attachments=uploads(form, "attachments"),
        now=now,
    )
    return service.get_document(db, caller, document.id)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="发文: 上传 PDF 正文、附件和公文信息，签名加密后送达收文部门",
    openapi_extra={
        "requestBody": {
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": [
                            "title",
                            "doc_number",
                            "secrecy",
                            "urgency",
                            "recipients",
                            "pdf",
                        ],
                        "properties": {
                            "title": {"type": "string", "maxLength": 200},
                            "doc_number": {
                                "type": "string",
                                "description": "文号, 如 青数发〔2026〕12号",
                            },
                            "secrecy": {"type": "string", "enum": ["public", "internal"]},
                            "urgency": {
                                "type": "string",
                                "enum": ["normal", "urgent", "extra_urgent"],
                            },
                            "recipients": {"type": "array", "items": {"type": "integer"}},
                            "pdf": {"type": "string", "format": "binary"},
                            "attachments": {
                                "type": "array",
                                "items": {"type": "string", "format": "binary"},
                            },
                        },
                    }
                }
            }
        }
    },
)
async def send(
    caller: DocumentSender,  # before the form: nobody unknown gets to upload
    form: FormDep,
    db: SessionDep,
    settings: SettingsDep,
    now: Now,
) -> DocumentPublic:
    try:
        view = await run_in_threadpool(send_from_form, db, settings, caller, form, now)
    finally:
        await run_in_threadpool(close_uploads, form)
    return DocumentPublic.of(view)


@router.get("", summary="发文或收文列表 (新的在前)")
def list_documents(
    db: SessionDep,
    caller: DocumentReader,
    box: Literal["outbox", "inbox"] = "inbox",
    limit: int = Query(default=100, ge=1, le=500),
) -> list[DocumentPublic]:
    views = (
        service.list_outbox(db, caller, limit=limit)
        if box == "outbox"
        else service.list_inbox(db, caller, limit=limit)
    )
    return [DocumentPublic.of(v) for v in views]


@router.get("/{document_id}", summary="一份公文: 信息、文件清单和各收文部门的回执")
def get_document(document_id: Id, db: SessionDep, caller: DocumentReader) -> DocumentPublic:
    return DocumentPublic.of(service.get_document(db, caller, document_id))


@router.get(
    "/{document_id}/files/{position}",
    summary="下载公文正文 (0) 或附件 (1…), 解密并核对摘要; 记入审计日志",
    response_class=Response,
    responses={200: {"content": {"application/octet-stream": {}}}},
)
def download(
    document_id: Id,
    position: Count,
    db: SessionDep,
    settings: SettingsDep,
    caller: DocumentReader,
    now: Now,
) -> Response:
    found, data = service.read_file(db, settings, caller, document_id, position, now=now)
    return Response(
        data,
        media_type=found.media_type,
        headers=attachment(f"document-{document_id}-{position}", found.name),
    )


def _receipt(view: service.DocumentView, department_id: int | None) -> ReceiptPublic:
    public = DocumentPublic.of(view)
    return next(r for r in public.receipts if r.department_id == department_id)


@router.post(
    "/{document_id}/receipt",
    status_code=status.HTTP_201_CREATED,
    summary="签收: 本部门签收该公文 (签名回执, 只能一次)",
)
def sign_for(
    document_id: Id, db: SessionDep, settings: SettingsDep, caller: DocumentReceiver, now: Now
) -> ReceiptPublic:
    service.answer_document(db, settings, caller, document_id, kind=ReceiptKind.SIGNED, now=now)
    return _receipt(service.get_document(db, caller, document_id), caller.department_id)


@router.post(
    "/{document_id}/return",
    status_code=status.HTTP_201_CREATED,
    summary="退回: 本部门退回该公文并说明理由 (签名回执, 只能一次)",
)
def return_document(
    document_id: Id,
    body: ReturnCreate,
    db: SessionDep,
    settings: SettingsDep,
    caller: DocumentReceiver,
    now: Now,
) -> ReceiptPublic:
    service.answer_document(
        db, settings, caller, document_id, kind=ReceiptKind.RETURNED, reason=body.reason, now=now
    )
    return _receipt(service.get_document(db, caller, document_id), caller.department_id)


@router.post("/{document_id}/verify", summary="核验: 签名、元数据、文件摘要和每份回执的签名")
def verify_document(
    document_id: Id, db: SessionDep, settings: SettingsDep, caller: DocumentReader, now: Now
) -> VerifyPublic:
    service.check_visible(db, caller, document_id)
    report = verify.verify_document(db, settings.data_dir, settings.secret_key, document_id)
    verify.record_verification(db, caller, report, now=now)
    return VerifyPublic.of(report)
