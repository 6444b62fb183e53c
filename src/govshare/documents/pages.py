"""Document exchange console pages (电子公文交换): 收文 (the inbox with 签收 and 退回),
发文 (the outbox with each receiver's receipt), the send form, and a document's page
with its files, receipts and the 核验 button. Reading needs ``document.read``, sending
``document.send``, answering ``document.receive``; only the sender and the addressed
departments see a document."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from sqlalchemy.orm import Session

from govshare.deps import DocumentReader, DocumentReceiver, DocumentSender, SessionDep, SettingsDep
from govshare.documents import service, verify
from govshare.documents.api import FormDep, Now, close_uploads, form_text, uploads
from govshare.documents.errors import DocumentCorrupted
from govshare.documents.models import SECRECY_LABELS, URGENCY_LABELS, ReceiptKind, Urgency
from govshare.errors import GovshareError
from govshare.ids import Count, Id
from govshare.security.roles import Permission
from govshare.security.service import Principal, list_departments
from govshare.web.forms import NO_ERRORS, FormErrors, redirect, render, text
from govshare.web.headers import attachment

router = APIRouter(include_in_schema=False)

SEND_PATH = "/documents/send"
NOTICES = {
    "sent": "公文已签名、加密并送达各收文部门",
    "signed": "已签收，回执已签名并送达发文部门",
    "returned": "已退回，理由已告知发文部门",
}
LABELS = {
    "title": "标题",
    "doc_number": "文号",
    "secrecy": "密级",
    "urgency": "紧急程度",
    "recipients": "收文部门",
    "pdf": "正文",
    "attachments": "附件",
    "reason": "退回理由",
}


def _label(field: str) -> str:
    base = field.split("[", 1)[0]
    label = LABELS.get(base, field)
    if "[" in field:
        index = field.split("[", 1)[1].rstrip("]")
        if index.isdigit():
            return f"{label}第{int(index) + 1}项"
    return label


def _page(request: Request, template: str, caller: Principal, **context: Any) -> Response:
    status_code = context.pop("status_code", 200)
    return render(
        request,
        template,
        caller,
        status_code=status_code,
        notice=NOTICES.get(request.query_params.get("done", ""), ""),
        secrecy_labels=SECRECY_LABELS,
        urgency_labels=URGENCY_LABELS,
        may_send=caller.can(Permission.DOCUMENT_SEND),
        may_receive=caller.can(Permission.DOCUMENT_RECEIVE),
        **context,
    )


@router.get("/documents")
def inbox(request: Request, db: SessionDep, caller: DocumentReader) -> Response:
    """收文: documents addressed to the department, each with its answer or the buttons."""
    return _page(request, "documents/inbox.html", caller, views=service.list_inbox(db, caller))


@router.get("/documents/outbox")
def outbox(request: Request, db: SessionDep, caller: DocumentReader) -> Response:
    """发文: the department's sent documents with each receiver's receipt status."""
    return _page(request, "documents/outbox.html", caller, views=service.list_outbox(db, caller))


def _send_form(
    request: Request,
    db: Session,
    caller: Principal,
    *,
    errors: FormErrors = NO_ERRORS,
    values: dict[str, Any] | None = None,
    status_code: int = 200,
) -> Response:
    settings = request.app.state.settings
    return _page(
        request,
        "documents/new.html",
        caller,
        nav="/documents/new",
        departments=[d for d in list_departments(db) if d.id != caller.department_id],
        secrecy_options=[(s.value, s.label) for s in service.allowed_secrecy(settings)],
        urgency_options=[(u.value, u.label) for u in Urgency],
        kinds=sorted(service.ATTACHMENT_KINDS),
        limit_mib=settings.documents_max_bytes // (1 << 20),
        errors=errors,
        values=values or {"urgency": Urgency.NORMAL.value, "recipients": []},
        status_code=status_code,
    )


@router.get("/documents/new")
def new_document(request: Request, db: SessionDep, caller: DocumentSender) -> Response:
    """发文: the form (PDF, attachments, title, 文号, 密级, 紧急程度, receivers)."""
    return _send_form(request, db, caller)


@router.post(SEND_PATH)
async def send(
    request: Request,
    caller: DocumentSender,  # before the form: nobody unknown gets to upload
    form: FormDep,
    db: SessionDep,
    settings: SettingsDep,
    now: Now,
) -> Response:
    """Send; the form again, with every problem beside its field, when refused."""
    values = {
        "title": text(form, "title"),
        "doc_number": text(form, "doc_number"),
        "secrecy": text(form, "secrecy"),
        "urgency": text(form, "urgency"),
        "recipients": [v for v in form.getlist("recipients") if isinstance(v, str)],
    }
    pdfs = uploads(form, "pdf")

    def work() -> int:
        document = service.send_document(
            db,
            settings,
            caller,
            title=form_text(form, "title"),
            doc_number=form_text(form, "doc_number"),
            secrecy=form_text(form, "secrecy"),
            urgency=form_text(form, "urgency"),
            recipient_ids=values["recipients"],
            pdf=pdfs[0] if pdfs else None,
            attachments=uploads(form, "attachments"),
            now=now,
        )
        db.commit()
        return document.id

    try:
        document_id = await run_in_threadpool(work)
    except GovshareError as exc:
        db.rollback()
        errors = FormErrors(exc.message, exc.details, label=_label)
        return await run_in_threadpool(
            _send_form,
            request,
            db,
            caller,
            errors=errors,
            values=values,
            status_code=exc.status,
        )
    finally:
        await run_in_threadpool(close_uploads, form)
    return redirect(f"/documents/{document_id}?done=sent")


def _detail(
    request: Request,
    db: Session,
    caller: Principal,
    document_id: int,
    *,
    report: verify.VerifyReport | None = None,
    errors: FormErrors = NO_ERRORS,
    status_code: int = 200,
) -> Response:
    view = service.get_document(db, caller, document_id)
    mine = view.addressee(caller.department_id)
    return _page(
        request,
        "documents/detail.html",
        caller,
        nav="/documents/outbox" if view.sender.id == caller.department_id else "/documents",
        view=view,
        mine=mine,
        report=report,
        errors=errors,
        status_code=status_code,
    )


@router.get("/documents/{document_id}")
def detail(request: Request, document_id: Id, db: SessionDep, caller: DocumentReader) -> Response:
    """A document: its signed metadata, files, every receipt, and 核验."""
    return _detail(request, db, caller, document_id)


@router.get("/documents/{document_id}/download")
def download(
    document_id: Id,
    db: SessionDep,
    settings: SettingsDep,
    caller: DocumentReader,
    now: Now,
    file: Count = Query(default=0, description="0: 正文; 1…: 附件"),
) -> Response:
    """The PDF or an attachment, decrypted and checked (audited)."""
    found, data = service.read_file(db, settings, caller, document_id, file, now=now)
    return Response(
        data,
        media_type=found.media_type,
        headers=attachment(f"document-{document_id}-{file}", found.name),
    )


@router.post("/documents/{document_id}/receipt")
def sign_for(
    document_id: Id, db: SessionDep, settings: SettingsDep, caller: DocumentReceiver, now: Now
) -> Response:
    """签收."""
    service.answer_document(db, settings, caller, document_id, kind=ReceiptKind.SIGNED, now=now)
    return redirect(f"/documents/{document_id}?done=signed")


@router.post("/documents/{document_id}/return")
def return_document(
    request: Request,
    document_id: Id,
    form: FormDep,
    db: SessionDep,
    settings: SettingsDep,
    caller: DocumentReceiver,
    now: Now,
) -> Response:
    """退回, with the reason; the page again with the problem when refused."""
    try:
        service.answer_document(
            db,
            settings,
            caller,
            document_id,
            kind=ReceiptKind.RETURNED,
            reason=text(form, "reason"),
            now=now,
        )
    except GovshareError as exc:
        if exc.status != 422:
            raise
        db.rollback()
        errors = FormErrors(exc.message, exc.details, label=_label)
        return _detail(request, db, caller, document_id, errors=errors, status_code=exc.status)
    return redirect(f"/documents/{document_id}?done=returned")


@router.post("/documents/{document_id}/verify")
def verify_page(
    request: Request,
    document_id: Id,
    db: SessionDep,
    settings: SettingsDep,
    caller: DocumentReader,
    now: Now,
) -> Response:
    """核验: the page with the report of every check."""
    service.check_visible(db, caller, document_id)
    report = verify.verify_document(db, settings.data_dir, settings.secret_key, document_id)
    verify.record_verification(db, caller, report, now=now)
    db.commit()  # the verification stays in the audit log whatever the page shows
    try:
        return _detail(request, db, caller, document_id, report=report)
    except DocumentCorrupted as exc:
        # The page cannot show the altered record; the error page lists what failed.
        exc.details = [{"field": c.subject, "message": c.reason} for c in report.failures]
        raise
