"""Catalog console pages: search, the resource page with its lifecycle, the compile form,
review queues, the own department's entries, spreadsheet import, demands and systems.

Each handler parses the request, calls the catalog service and renders. Form posts that
the service rejects re-render the form with every problem beside its field (and roll
back, so nothing of a rejected form is stored).
"""

from __future__ import annotations

import re
from collections import Counter
from itertools import zip_longest
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from pydantic import ValidationError
from sqlalchemy.orm import Session
from starlette.datastructures import FormData, UploadFile

from govshare.catalog import duties, imports, search, service, spreadsheet
from govshare.catalog.codes import (
    CODE_TABLE_TITLES,
    CodeTableName,
    ResourceKind,
    ResourceStatus,
    SharingType,
)
from govshare.catalog.errors import (
    ImportRejected,
    InvalidResource,
    SystemNotFound,
    TransitionNotAllowed,
)
from govshare.catalog.models import ChangeKind, ImportJob, ImportJobStatus, Resource
from govshare.catalog.schemas import (
    ChangeIn,
    DemandIn,
    DemandResponseIn,
    ItemIn,
    ResourceIn,
    SystemIn,
)
from govshare.catalog.views import facet_values
from govshare.deps import (
    CatalogReader,
    CatalogWriter,
    DemandWriter,
    SessionDep,
    SystemWriter,
)
from govshare.errors import Conflict, Forbidden, InvalidInput, NotFound
from govshare.ids import Id, parse_id
from govshare.rules.clock import china_today
from govshare.security import service as identity
from govshare.security.errors import PermissionDenied
from govshare.security.roles import Permission
from govshare.security.service import Principal
from govshare.web.forms import (
    NO_ERRORS,
    FormDep,
    FormErrors,
    is_fragment_request,
    optional_int,
    redirect,
    render,
    text,
    texts,
    upload_close,
    validation_problems,
)

router = APIRouter(include_in_schema=False)

FIELD_LABELS: dict[str, str] = {
    "classification_code": "信息资源分类",
    "name": "信息资源名称",
    "abstract": "信息资源摘要",
    "format": "信息资源格式",
    "format_detail": "格式说明",
    "sharing_type": "共享类型",
    "sharing_conditions": "共享条件",
    "not_shared_basis": "不予共享依据",
    "sharing_modes": "共享方式",
    "is_open": "是否向社会开放",
    "open_conditions": "开放条件",
    "update_cycle": "更新周期",
    "related_codes": "关联资源代码",
    "source_system_id": "来源信息系统",
    "secrecy": "涉密属性",
    "extensions": "扩展元数据",
    "provider_department_id": "提供方部门",
    "items": "信息项",
    "reason": "变更原因",
}
ITEM_LABELS: dict[str, str] = {
    "name": "信息项名称",
    "code": "信息项代码",
    "data_type": "数据类型",
    "length": "数据长度",
    "description": "描述",
    "code_table": "代码表",
    "is_key": "主键",
    "sensitive": "敏感信息项",
    "open_withheld": "不予开放",
    "open_masking": "开放脱敏",
}
_ITEM_FIELD = re.compile(r"^items\[(\d+)\](?:\.(\w+))?$")


def problem_label(field: str) -> str:
    """A field path in Chinese: ``items[2].length`` → ``信息项第3行 · 数据长度``."""
    if m := _ITEM_FIELD.match(field):
        row = int(m.group(1)) + 1
        return f"信息项第{row}行" + (
            f" · {ITEM_LABELS.get(m.group(2), m.group(2))}" if m.group(2) else ""
        )
    return FIELD_LABELS.get(field.split("[")[0], field)


def diff_label(field: str) -> str:
    """A diff field in Chinese: ``items.sfzh.length`` → ``信息项 sfzh · 数据长度``."""
    if field.startswith("items."):
        parts = field.split(".", 2)
        return f"信息项 {parts[1]}" + (
            f" · {ITEM_LABELS.get(parts[2], parts[2])}" if len(parts) > 2 else ""
        )
    return FIELD_LABELS.get(field, field)


def _shown(value: Any, field: str, codes: service.CodeTables) -> str:
    """A snapshot value as a reader would say it: labels for codes, 是/否 for flags."""
    leaf = field.rsplit(".", 1)[-1]
    if value is None or value in ("", [], {}):
        return "（空）"
    if isinstance(value, bool):
        return "是" if value else "否"
    if isinstance(value, dict):
        if "code" in value and "data_type" in value:  # a whole item added or removed
            length = f"({value['length']})" if value.get("length") else ""
            return f"{value.get('name', '')} {value['code']} {value['data_type']}{length}"
        return "；".join(f"{k}={v}" for k, v in value.items())
    if isinstance(value, list):
        table = CodeTableName.SHARING_MODE if leaf == "sharing_modes" else None
        return "、".join(codes.label(table, str(v)) if table else str(v) for v in value)
    if leaf == "sharing_type":
        return SharingType(str(value)).label
    if leaf in ("format", "update_cycle", "secrecy", "data_type"):
        return codes.label(leaf, str(value))
    return str(value)


def _diff_rows(diff: Any, codes: service.CodeTables) -> list[tuple[str, str, str]]:
    return [
        (diff_label(c.field), _shown(c.before, c.field, codes), _shown(c.after, c.field, codes))
        for c in diff.changes
    ]


STEP_KIND = {
    "return": "danger",
    "reject": "danger",
    "reject_publication": "danger",
    "withdraw": "danger",
}
ACTION_LABELS = {name: step.label for name, step in service.STEPS.items()} | {"change": "变更"}


def _forbid_unless(allowed: bool, message: str) -> None:
    if not allowed:
        raise PermissionDenied(message)


# -- search ---------------------------------------------------------------------------

FACET_PARAMS = {
    "department": "department_id",
    "classification": "classification",
    "kind": "kind",
    "sharing_type": "sharing_type",
    "format": "format",
    "update_cycle": "update_cycle",
    "is_open": "is_open",
}
FACET_TITLES = {
    "department": "提供部门",
    "classification": "信息资源分类",
    "kind": "资源类型",
    "sharing_type": "共享类型",
    "format": "资源格式",
    "update_cycle": "更新周期",
    "is_open": "社会开放",
}
SORTS = {"relevance": "按相关度", "updated": "按更新时间", "name": "按名称"}
SCOPES = {"catalog": "共享目录", "mine": "本部门", "all": "全部目录"}
SEARCH_PARAMS = ("q", "scope", "sort", "status", *FACET_PARAMS.values())


def _enum(cls: Any, value: str | None, field: str) -> Any:
    if not value:
        return None
    try:
        return cls(value)
    except ValueError:
        raise InvalidInput(
            "检索条件不正确", details=[{"field": field, "message": f"未知的取值 {value}"}]
        ) from None


def _search_query(
    params: dict[str, str], caller: Principal, cursor: str | None
) -> search.SearchQuery:
    department = params.get("department_id", "")
    if department and not department.isdigit():
        raise InvalidInput(
            "检索条件不正确", details=[{"field": "department_id", "message": "应为部门编号"}]
        )
    is_open = params.get("is_open")
    return search.SearchQuery(
        q=params.get("q", "")[:200],
        department_id=parse_id(department) if department else None,
        classification=params.get("classification") or None,
        kind=_enum(ResourceKind, params.get("kind"), "kind"),
        sharing_type=_enum(SharingType, params.get("sharing_type"), "sharing_type"),
        format=params.get("format") or None,
        update_cycle=params.get("update_cycle") or None,
        is_open=None if is_open not in ("true", "false") else is_open == "true",
        status=_enum(ResourceStatus, params.get("status"), "status"),
        scope=params.get("scope", "catalog"),
        sort=params.get("sort", "relevance"),
        cursor=cursor,
        limit=20,
        viewer_department_id=caller.department_id,
        viewer_is_admin=caller.is_admin,
    )


@router.get("/catalog")
def search_page(request: Request, db: SessionDep, caller: CatalogReader) -> Response:
    qp = request.query_params
    params = {k: qp[k].strip() for k in SEARCH_PARAMS if qp.get(k, "").strip()}
    if params.get("scope") not in SCOPES or (params["scope"] == "all" and not caller.is_admin):
        params.pop("scope", None)
    if params.get("sort") not in SORTS:
        params.pop("sort", None)
    if params.get("scope", "catalog") == "catalog":
        params.pop("status", None)
    page = int(qp["p"]) if qp.get("p", "").isdigit() and int(qp["p"]) > 0 else 1
    sq = _search_query(params, caller, qp.get("cursor") or None)
    result = search.search(db, sq)
    codes = service.CodeTables(db)
    facets = facet_values(db, result.facets, codes)
    context: dict[str, Any] = {
        "params": params,
        "result": result,
        "facets": facets,
        "codes": codes,
        "words": search.segment(sq.q, for_index=False) if sq.q.strip() else [],
        "page": page,
        "facet_params": FACET_PARAMS,
        "facet_titles": FACET_TITLES,
        "sorts": SORTS,
        "scopes": {k: v for k, v in SCOPES.items() if k != "all" or caller.is_admin},
        "statuses": list(ResourceStatus),
    }
    if is_fragment_request(request, "catalog-search"):
        return render(
            request,
            "catalog/_search.html",
            caller,
            headers={"Vary": "HX-Request, HX-Target"},
            **context,
        )
    return render(
        request, "catalog/search.html", caller, headers={"Vary": "HX-Request, HX-Target"}, **context
    )


# -- resource page and lifecycle ---------------------------------------------------------


def _resource_page(
    request: Request,
    db: Session,
    caller: Principal,
    resource: Resource,
    snap: dict[str, Any],
    *,
    diff_from: int | None = None,
    diff_to: int | None = None,
    step_errors: FormErrors = NO_ERRORS,
    failed_step: str = "",
    reason: str = "",
    status_code: int = 200,
) -> Response:
    own = service.can_see_working_copy(caller, resource)
    versions = service.list_versions(db, resource) if own else []
    codes = service.CodeTables(db)
    diff_rows = None
    if own and diff_from and diff_to:
        diff_rows = _diff_rows(service.diff_versions(db, resource, diff_from, diff_to), codes)
    system_name = ""
    if snap.get("source_system_id"):
        try:
            system_name = service.get_system(db, snap["source_system_id"]).name
        except SystemNotFound:
            system_name = f"#{snap['source_system_id']}"
    writer = own and caller.can(Permission.CATALOG_WRITE)
    context: dict[str, Any] = {
        "resource": resource,
        "snap": snap,
        "own": own,
        "shown_status": resource.status if own else ResourceStatus.PUBLISHED,
        "shown_version": resource.version if own else resource.published_version,
        "versions": versions,
        "transitions": service.list_transitions(db, resource) if own else [],
        "steps": service.available_steps(db, caller, resource),
        "step_kind": STEP_KIND,
        "action_labels": ACTION_LABELS,
        "diff_rows": diff_rows,
        "diff_from": diff_from or (versions[1].version if len(versions) > 1 else None),
        "diff_to": diff_to or (versions[0].version if versions else None),
        "codes": codes,
        "code_table_titles": CODE_TABLE_TITLES,
        "system_name": system_name,
        "can_edit": writer and resource.status in service.EDITABLE,
        "can_delete": writer
        and resource.published_version is None
        and resource.status
        in (ResourceStatus.DRAFT, ResourceStatus.RETURNED, ResourceStatus.REGISTRATION_REJECTED),
        "step_errors": step_errors,
        "failed_step": failed_step,
        "reason": reason,
        # The list the entry is reached from: the department's own, or the catalog.
        "nav": "/catalog/mine"
        if resource.provider_department_id == caller.department_id
        else "/catalog",
    }
    if is_fragment_request(request, "version-diff"):
        return render(request, "catalog/_diff.html", caller, **context)
    return render(request, "catalog/resource.html", caller, status_code=status_code, **context)


@router.get("/catalog/resources/new")
def new_resource_form(request: Request, db: SessionDep, caller: CatalogWriter) -> Response:
    values: dict[str, Any] = {
        "secrecy": "public",
        "items": [{}, {}, {}],
        "provider_department_id": caller.department_id,
    }
    return _resource_form(request, db, caller, values=values)


@router.post("/catalog/resources/new")
def add_resource(
    request: Request, form: FormDep, db: SessionDep, caller: CatalogWriter
) -> Response:
    payload, values, problems = _resource_payload(form, caller, editing=False)
    confirmed = values["confirm_duplicates"]
    department_id = payload["provider_department_id"]
    if not isinstance(department_id, int):
        department_id = caller.department_id
    try:
        duplicates = (
            []
            if confirmed
            else service.duplicate_name_problems(
                db, department_id=department_id, name=payload["name"]
            )
        )
        data = _validated(db, ResourceIn, payload, problems, duplicates)
        resource = service.add_resource(db, caller, data, confirm_duplicates=confirmed)
    except InvalidResource as exc:
        db.rollback()
        errors = FormErrors(
            f"{exc.message}，请按提示修改后再保存", exc.details, label=problem_label
        )
        return _resource_form(
            request,
            db,
            caller,
            values=values,
            errors=errors,
            status_code=422,
            ask_confirm=_has_duplicate(exc.details),
        )
    db.commit()
    return redirect(f"/catalog/resources/{resource.id}?done=created")


@router.get("/catalog/resources/{resource_id}")
def resource_page(
    resource_id: Id,
    request: Request,
    db: SessionDep,
    caller: CatalogReader,
    diff_from: Annotated[Id | None, Query(alias="from")] = None,
    diff_to: Annotated[Id | None, Query(alias="to")] = None,
) -> Response:
    resource, snap = service.visible_resource(db, caller, resource_id)
    return _resource_page(request, db, caller, resource, snap, diff_from=diff_from, diff_to=diff_to)


def _step_label(field: str) -> str:
    return "原因" if field == "reason" else problem_label(field)


@router.post("/catalog/resources/{resource_id}/steps/{step}")
def take_step(
    resource_id: Id,
    step: str,
    request: Request,
    form: FormDep,
    db: SessionDep,
    caller: CatalogReader,
) -> Response:
    reason = text(form, "reason")
    try:
        service.transition(db, caller, resource_id, step, reason)
    except InvalidInput as exc:  # a missing reason, or the conformance check before publishing
        db.rollback()
        resource, snap = service.visible_resource(db, caller, resource_id)
        errors = FormErrors(exc.message, exc.details, label=_step_label)
        return _resource_page(
            request,
            db,
            caller,
            resource,
            snap,
            step_errors=errors,
            failed_step=step,
            reason=reason,
            status_code=422,
        )
    db.commit()
    return redirect(f"/catalog/resources/{resource_id}?done=step")


@router.post("/catalog/resources/{resource_id}/delete")
def delete_resource(resource_id: Id, db: SessionDep, caller: CatalogWriter) -> Response:
    service.delete_resource(db, caller, resource_id)
    db.commit()
    return redirect("/catalog/mine?done=deleted")


# -- compile and edit form ---------------------------------------------------------------


def _has_duplicate(details: list[dict[str, Any]]) -> bool:
    return any(p.get("code") == service.DUPLICATE_NAME for p in details)


def _validated(
    db: Session,
    model: Any,
    payload: dict[str, Any],
    form_problems: list[dict[str, str]],
    duplicates: list[dict[str, Any]],
) -> Any:
    """The form as ``model``; on failure every problem at once, the form's, the schema's
    and the compilation rules' (so the registrar does not fix the form in rounds), and
    a duplicate name unless confirmed."""
    problems = list(form_problems)
    try:
        data = model.model_validate(payload)
    except ValidationError as exc:
        reported = {p["field"] for p in problems}
        problems += [p for p in validation_problems(exc) if p["field"] not in reported]
    if not problems:
        return data
    reported = {p["field"] for p in problems}
    problems += [
        p for p in [*_rule_problems(db, payload), *duplicates] if p["field"] not in reported
    ]
    raise InvalidResource("目录信息不符合编制要求", details=problems)


def _rule_problems(db: Session, payload: dict[str, Any]) -> list[dict[str, Any]]:
    """The catalog rules applied to a form the schema refused, as far as its values allow."""
    try:
        sharing_type: SharingType | None = SharingType(payload["sharing_type"])
    except ValueError:
        sharing_type = None
    system = payload["source_system_id"]
    draft = ResourceIn.model_construct(
        **{
            **payload,
            "sharing_type": sharing_type,
            "source_system_id": system if isinstance(system, int) else None,
            "items": [
                ItemIn.model_construct(
                    **{**it, "length": it["length"] if it["length"] != "" else None}
                )
                for it in payload["items"]
            ],
        }
    )
    problems, _ = service.validate_resource(db, draft, service.CodeTables(db))
    return problems


def _split_codes(value: str) -> list[str]:
    return [v for v in re.split(r"[、,，;；\s]+", value) if v]


def _resource_payload(
    form: FormData, caller: Principal, *, editing: bool
) -> tuple[dict[str, Any], dict[str, Any], list[dict[str, str]]]:
    """The form as the schema's input, the values to show again, and problems the form
    itself reveals (extension lines without ``=``)."""
    problems = [
        {"field": name, "message": f"请选择{FIELD_LABELS[name]}"}
        for name in ("classification_code", "format", "update_cycle", "sharing_type")
        if not text(form, name)
    ]
    fields = (
        "name",
        "code",
        "data_type",
        "length",
        "description",
        "code_table",
        "is_key",
        "sensitive",
        "open_withheld",
        "open_masking",
    )
    items, shown_items = [], []
    for cells in zip_longest(*(texts(form, f"item_{f}") for f in fields), fillvalue=""):
        row = dict(zip(fields, cells, strict=True))
        if not any(row[f] for f in ("name", "code", "length", "description", "code_table")):
            continue  # an empty row the registrar added and did not fill
        flags = {f: row[f] == "1" for f in ("is_key", "sensitive", "open_withheld")}
        shown_items.append({**row, **flags})
        items.append(
            {
                **row,
                **flags,
                "length": optional_int(row["length"]),
                "code_table": row["code_table"] or None,
                "open_masking": row["open_masking"] or "none",
            }
        )
    extensions: dict[str, str] = {}
    extensions_text = form.get("extensions")
    extensions_text = extensions_text if isinstance(extensions_text, str) else ""
    for number, line in enumerate(extensions_text.splitlines(), start=1):
        if not line.strip():
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            problems.append({"field": "extensions", "message": f"第{number}行应写成“名称=值”"})
        else:
            extensions[key.strip()] = value.strip()
    provider = (
        optional_int(text(form, "provider_department_id"))
        if caller.is_admin and not editing
        else None
    )
    payload: dict[str, Any] = {
        "classification_code": text(form, "classification_code"),
        "name": text(form, "name"),
        "abstract": text(form, "abstract"),
        "format": text(form, "format"),
        "format_detail": text(form, "format_detail"),
        "sharing_type": text(form, "sharing_type"),
        "sharing_conditions": text(form, "sharing_conditions"),
        "not_shared_basis": text(form, "not_shared_basis"),
        "sharing_modes": [m for m in texts(form, "sharing_modes") if m],
        "is_open": text(form, "is_open") == "1",
        "open_conditions": text(form, "open_conditions"),
        "update_cycle": text(form, "update_cycle"),
        "related_codes": _split_codes(text(form, "related_codes")),
        "source_system_id": optional_int(text(form, "source_system_id")),
        "secrecy": text(form, "secrecy") or "public",
        "extensions": extensions,
        "provider_department_id": provider,
        "items": items,
    }
    if editing:
        payload["reason"] = text(form, "reason")
    values = {
        **payload,
        "items": shown_items or [{}],
        "related_text": text(form, "related_codes"),
        "extensions_text": extensions_text,
        "source_system_id": text(form, "source_system_id"),
        "provider_department_id": text(form, "provider_department_id") or caller.department_id,
        "confirm_duplicates": text(form, "confirm_duplicates") == "1",
    }
    return payload, values, problems


def _snapshot_values(snap: dict[str, Any]) -> dict[str, Any]:
    return {
        **snap,
        "items": [
            {
                **it,
                "length": "" if it.get("length") is None else it["length"],
                "code_table": it.get("code_table") or "",
            }
            for it in snap["items"]
        ]
        or [{}],
        "related_text": "、".join(snap.get("related_codes", [])),
        "extensions_text": "\n".join(f"{k}={v}" for k, v in (snap.get("extensions") or {}).items()),
        "source_system_id": snap.get("source_system_id") or "",
        "reason": "",
    }


def _resource_form(
    request: Request,
    db: Session,
    caller: Principal,
    *,
    values: dict[str, Any],
    resource: Resource | None = None,
    errors: FormErrors = NO_ERRORS,
    status_code: int = 200,
    ask_confirm: bool = False,
) -> Response:
    codes = service.CodeTables(db)
    department = None if caller.is_admin else caller.department_id
    return render(
        request,
        "catalog/resource_form.html",
        caller,
        status_code=status_code,
        nav="/catalog/resources/new" if resource is None else "/catalog/mine",
        resource=resource,
        v=values,
        errors=errors,
        codes=codes,
        classifications=service.list_classifications(db),
        system_options=[
            (s.id, f"{s.name}（{s.department.short_name}）")
            for s, _ in service.list_systems(db, department)
        ],
        department_options=[(d.id, d.name) for d in identity.list_departments(db)]
        if caller.is_admin
        else [],
        sharing_types=list(SharingType),
        code_table_names=sorted(codes.entries),
        code_table_titles=CODE_TABLE_TITLES,
        tables=CodeTableName,
        ask_confirm=ask_confirm or bool(values.get("confirm_duplicates")),
    )


def _editable(db: Session, caller: Principal, resource_id: Id) -> Resource:
    resource = service.own_resource(db, caller, resource_id, "只能修改本部门的目录")
    if resource.status not in service.EDITABLE:
        raise TransitionNotAllowed(f"“{resource.status.label}”状态的目录不能修改")
    return resource


@router.get("/catalog/resources/{resource_id}/edit")
def edit_resource_form(
    resource_id: Id, request: Request, db: SessionDep, caller: CatalogWriter
) -> Response:
    resource = _editable(db, caller, resource_id)
    values = _snapshot_values(service.snapshot(resource))
    return _resource_form(request, db, caller, values=values, resource=resource)


@router.post("/catalog/resources/{resource_id}/edit")
def update_resource(
    resource_id: Id, request: Request, form: FormDep, db: SessionDep, caller: CatalogWriter
) -> Response:
    payload, values, problems = _resource_payload(form, caller, editing=True)
    confirmed = values["confirm_duplicates"]
    try:
        current = _editable(db, caller, resource_id)
        renamed = service.name_key(payload["name"]) != service.name_key(current.name)
        duplicates = (
            service.duplicate_name_problems(
                db,
                department_id=current.provider_department_id,
                name=payload["name"],
                exclude_id=current.id,
            )
            if renamed and not confirmed
            else []
        )
        data = _validated(db, ChangeIn, payload, problems, duplicates)
        service.update_resource(db, caller, resource_id, data, confirm_duplicates=confirmed)
    except InvalidResource as exc:
        db.rollback()
        resource = _editable(db, caller, resource_id)
        errors = FormErrors(
            f"{exc.message}，请按提示修改后再保存", exc.details, label=problem_label
        )
        return _resource_form(
            request,
            db,
            caller,
            values=values,
            resource=resource,
            errors=errors,
            status_code=422,
            ask_confirm=_has_duplicate(exc.details),
        )
    db.commit()
    return redirect(f"/catalog/resources/{resource_id}?done=updated")


# -- review queues and the own department -----------------------------------------------

QUEUES = {
    "registration": ("注册审核", ResourceStatus.PENDING_REGISTRATION, Permission.CATALOG_REVIEW),
    "publication": ("发布审核", ResourceStatus.PENDING_PUBLICATION, Permission.CATALOG_PUBLISH),
}


@router.get("/catalog/review")
def review_page(
    request: Request, db: SessionDep, caller: CatalogReader, queue: str = ""
) -> Response:
    allowed = {k: q for k, q in QUEUES.items() if caller.can(q[2])}
    _forbid_unless(bool(allowed), "需要目录审核权限")
    current = queue if queue in allowed else next(iter(allowed))
    rows = service.review_queue(db, caller, allowed[current][1])
    return render(
        request,
        "catalog/review.html",
        caller,
        queues=allowed,
        current=current,
        rows=rows,
        codes=service.CodeTables(db),
    )


@router.get("/catalog/mine")
def mine_page(
    request: Request, db: SessionDep, caller: CatalogReader, status: str = ""
) -> Response:
    if caller.department_id is None:
        raise InvalidInput("当前账号不属于任何部门")
    rows = service.department_resources(db, caller.department_id, limit=2000)
    counts = Counter(r.status for r in rows)
    wanted = _enum(ResourceStatus, status, "status")
    return render(
        request,
        "catalog/mine.html",
        caller,
        counts=counts,
        total=len(rows),
        current=wanted,
        rows=[r for r in rows if wanted is None or r.status is wanted],
        statuses=list(ResourceStatus),
        editable=service.EDITABLE,
    )


# -- spreadsheet import -------------------------------------------------------------------


def _import_page(
    request: Request,
    db: Session,
    caller: Principal,
    *,
    errors: FormErrors = NO_ERRORS,
    rows: list[dict[str, Any]] | None = None,
    status_code: int = 200,
    filename: str = "",
    job: ImportJob | None = None,
) -> Response:
    return render(
        request,
        "catalog/import.html",
        caller,
        status_code=status_code,
        errors=errors,
        rows=rows or [],
        filename=filename,
        columns=spreadsheet.COLUMNS,
        departments=identity.list_departments(db) if caller.is_admin else [],
        job=job,
        job_open=job is not None and job.status in imports.OPEN,
        nav="/catalog/import",
    )


@router.get("/catalog/import")
def import_form(request: Request, db: SessionDep, caller: CatalogWriter) -> Response:
    return _import_page(request, db, caller)


@router.post("/catalog/import")
def import_upload(
    request: Request, form: FormDep, db: SessionDep, caller: CatalogWriter
) -> Response:
    """Start an import job and follow it on its page (a progress bar, then the report)."""
    try:
        upload = form.get("file")
        if not isinstance(upload, UploadFile) or not upload.filename:
            errors = FormErrors(
                "请选择要导入的 XLSX 或 CSV 文件", [{"field": "file", "message": "请选择文件"}]
            )
            return _import_page(request, db, caller, errors=errors, status_code=422)
        provider = optional_int(text(form, "provider_department_id")) if caller.is_admin else None
        confirmed = text(form, "confirm_duplicates") == "1"
        content = upload.file.read()
    finally:
        upload_close(form)
    provider_id = provider if isinstance(provider, int) else None
    try:
        if not upload.filename.lower().endswith((".xlsx", ".csv")):
            raise ImportRejected("只支持 .xlsx 或 .csv 文件")
        job, new = imports.submit(
            db,
            caller,
            filename=upload.filename,
            content=content,
            provider_department_id=provider_id,
            confirm_duplicates=confirmed,
        )
    except ImportRejected as exc:
        db.rollback()
        errors = FormErrors(exc.message, [{"field": "file", "message": exc.message}])
        return _import_page(
            request, db, caller, errors=errors, status_code=422, filename=upload.filename
        )
    db.commit()
    if new:
        request.app.state.import_worker.submit(
            imports.ImportRequest(job.id, caller, content, provider_id, confirmed)
        )
    return redirect(f"/catalog/import/jobs/{job.id}?follow=1")


@router.get("/catalog/import/jobs/{job_id}")
def import_job_page(
    job_id: Id, request: Request, db: SessionDep, caller: CatalogWriter, follow: str = ""
) -> Response:
    """An import job's progress (the page polls itself while it runs), then its error
    report; a job finished while the uploader follows it (``?follow=1``, where the
    upload leads) sends the browser on to the department's drafts."""
    job = imports.get_job(db, caller, job_id)
    drafts = "/catalog/mine?status=draft&done=imported"
    if job.status is ImportJobStatus.DONE and follow:
        if request.headers.get("hx-request") == "true":
            return Response(status_code=204, headers={"HX-Redirect": drafts})
        return redirect(drafts)
    error = job.error or {}
    errors = FormErrors(str(error.get("message", ""))) if error else NO_ERRORS
    return _import_page(
        request,
        db,
        caller,
        errors=errors,
        rows=list(error.get("details") or []),
        filename=job.filename,
        job=job,
    )


# -- demand catalog ---------------------------------------------------------------------------

DEMAND_STATUS = {"open": "待响应", "answered": "已响应", "closed": "已关闭"}


def _demands_page(
    request: Request,
    db: Session,
    caller: Principal,
    *,
    status: str = "",
    new_values: dict[str, Any] | None = None,
    new_errors: FormErrors = NO_ERRORS,
    respond_id: Id | None = None,
    respond_values: dict[str, Any] | None = None,
    respond_errors: FormErrors = NO_ERRORS,
    status_code: int = 200,
) -> Response:
    return render(
        request,
        "catalog/demands.html",
        caller,
        status_code=status_code,
        demands=service.list_demands(db, status or None),
        current=status,
        demand_status=DEMAND_STATUS,
        new_values=new_values or {},
        new_errors=new_errors,
        respond_id=respond_id,
        respond_values=respond_values or {},
        respond_errors=respond_errors,
    )


@router.get("/catalog/demands")
def demands_page(
    request: Request, db: SessionDep, caller: CatalogReader, status: str = ""
) -> Response:
    return _demands_page(request, db, caller, status=status if status in DEMAND_STATUS else "")


@router.post("/catalog/demands")
def add_demand(request: Request, form: FormDep, db: SessionDep, caller: DemandWriter) -> Response:
    values = {k: text(form, k) for k in ("title", "description", "wanted_items", "purpose")}
    try:
        service.add_demand(db, caller, DemandIn.model_validate(values))
    except ValidationError as exc:
        errors = FormErrors("需求信息不完整", validation_problems(exc), label=_demand_label)
        return _demands_page(
            request, db, caller, new_values=values, new_errors=errors, status_code=422
        )
    except InvalidInput as exc:
        db.rollback()
        errors = FormErrors(exc.message, exc.details, label=_demand_label)
        return _demands_page(
            request, db, caller, new_values=values, new_errors=errors, status_code=422
        )
    db.commit()
    return redirect("/catalog/demands?done=demand_added")


def _demand_label(field: str) -> str:
    return {
        "title": "需求名称",
        "description": "需求描述",
        "wanted_items": "所需信息项",
        "purpose": "用途",
        "resource_code": "资源代码",
        "note": "说明",
    }.get(field, field)


@router.post("/catalog/demands/{demand_id}/responses")
def respond_to_demand(
    demand_id: Id, request: Request, form: FormDep, db: SessionDep, caller: CatalogWriter
) -> Response:
    values = {"resource_code": text(form, "resource_code"), "note": text(form, "note")}
    try:
        service.respond_to_demand(db, caller, demand_id, DemandResponseIn.model_validate(values))
    except ValidationError as exc:
        errors = FormErrors("响应信息不完整", validation_problems(exc), label=_demand_label)
    except (InvalidInput, NotFound, Forbidden, Conflict) as exc:
        db.rollback()
        errors = FormErrors(exc.message, exc.details, label=_demand_label)
    else:
        db.commit()
        return redirect("/catalog/demands?done=demand_answered")
    return _demands_page(
        request,
        db,
        caller,
        respond_id=demand_id,
        respond_values=values,
        respond_errors=errors,
        status_code=422,
    )


@router.post("/catalog/demands/{demand_id}/close")
def close_demand(demand_id: Id, db: SessionDep, caller: DemandWriter) -> Response:
    service.close_demand(db, caller, demand_id)
    db.commit()
    return redirect("/catalog/demands?done=demand_closed")


# -- information-system inventory -------------------------------------------------------------

SYSTEM_LABELS = {
    "name": "系统名称",
    "function": "系统功能",
    "scope": "使用范围",
    "usage_frequency": "使用频度",
    "approval": "立项审批",
    "funding": "资金来源",
    "network": "部署网络",
    "in_use": "是否在用",
    "department_id": "所属部门",
}


def _systems_page(
    request: Request,
    db: Session,
    caller: Principal,
    *,
    department_id: Id | None = None,
    values: dict[str, Any] | None = None,
    errors: FormErrors = NO_ERRORS,
    change_values: dict[str, Any] | None = None,
    change_errors: FormErrors = NO_ERRORS,
    status_code: int = 200,
) -> Response:
    rows = service.list_systems(db, department_id)
    zombies = {s.id for s, n in rows if n == 0 or s.usage_frequency == "unused"}
    changes = []
    if caller.can(Permission.DUTY_READ) and (
        duties.reads_everything(caller) or caller.department_id is not None
    ):
        # Others' changes are not theirs to read: a department sees its own.
        changes = duties.list_events(
            db,
            caller,
            department_id=department_id
            if duties.reads_everything(caller)
            else caller.department_id,
            kind=ChangeKind.SYSTEM,
            limit=20,
        ).items
    return render(
        request,
        "catalog/systems.html",
        caller,
        status_code=status_code,
        rows=rows,
        zombies=zombies,
        codes=service.CodeTables(db),
        departments=identity.list_departments(db),
        department_id=department_id,
        values=values or {"in_use": True, "department_id": caller.department_id},
        errors=errors,
        tables=CodeTableName,
        changes=changes,
        change_options=[
            (s.id, f"{s.department.short_name} · {s.name}" if caller.is_admin else s.name)
            for s in duties.systems_for_changes(db, caller)
        ]
        if caller.can(Permission.SYSTEM_WRITE)
        else [],
        change_values=change_values or {"changed_on": china_today().isoformat()},
        change_errors=change_errors,
    )


def systems_page_with(
    request: Request,
    db: Session,
    caller: Principal,
    *,
    change_values: dict[str, Any],
    change_errors: FormErrors,
) -> Response:
    """The systems page with the 登记系统变更 form's problems (status 422)."""
    return _systems_page(
        request,
        db,
        caller,
        change_values=change_values,
        change_errors=change_errors,
        status_code=422,
    )


@router.get("/catalog/systems")
def systems_page(
    request: Request, db: SessionDep, caller: CatalogReader, department_id: str = ""
) -> Response:
    dept = parse_id(department_id)
    return _systems_page(request, db, caller, department_id=dept)


@router.post("/catalog/systems")
def add_system(request: Request, form: FormDep, db: SessionDep, caller: SystemWriter) -> Response:
    values: dict[str, Any] = {
        k: text(form, k)
        for k in ("name", "function", "scope", "usage_frequency", "approval", "funding", "network")
    }
    values["in_use"] = text(form, "in_use") == "1"
    department = optional_int(text(form, "department_id")) if caller.is_admin else None
    try:
        data = SystemIn.model_validate(values)
        service.add_system(db, caller, data, department if isinstance(department, int) else None)
    except ValidationError as exc:
        errors = FormErrors(
            "信息系统信息不完整", validation_problems(exc), label=lambda f: SYSTEM_LABELS.get(f, f)
        )
    except (InvalidInput, Conflict) as exc:
        db.rollback()
        errors = FormErrors(exc.message, exc.details, label=lambda f: SYSTEM_LABELS.get(f, f))
    else:
        db.commit()
        return redirect("/catalog/systems?done=system_added")
    values["department_id"] = department or caller.department_id
    return _systems_page(request, db, caller, values=values, errors=errors, status_code=422)
