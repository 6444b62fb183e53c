"""Shared stores (共享信息库): each store's source, rows and last package applied, and
the set-up form (source task, column-to-item mapping, query key, verify rules)."""

from __future__ import annotations

import json
import re
from collections import defaultdict
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import ValidationError
from sqlalchemy.orm import Session

from govshare.catalog import service as catalog_service
from govshare.deps import SessionDep, SharingReader, SharingStoreAdmin
from govshare.errors import Forbidden, InvalidInput, NotFound
from govshare.exchange import service as exchange_service
from govshare.exchange.models import ExchangeTask, TaskKind
from govshare.ids import Id
from govshare.security.roles import Permission
from govshare.security.service import Principal
from govshare.sharing import reseal
from govshare.sharing import store as shared
from govshare.sharing.pages.common import _labels, _page
from govshare.sharing.schemas import StoreCreate, VerifyRule
from govshare.web.forms import (
    NO_ERRORS,
    FormDep,
    FormErrors,
    Problem,
    optional_int,
    redirect,
    text,
    texts,
    validation_problems,
)

router = APIRouter(include_in_schema=False)

# -- shared stores (共享信息库) ----------------------------------------------------------------

STORE_LABELS: dict[str, str] = {
    "resource_id": "目录",
    "source_task_id": "发送任务",
    "mapping": "字段映射",
    "key_item": "查询键",
    "verify_rules": "核验规则",
}
VERIFY_EXAMPLE = (
    '[{"name": "status", "label": "登记状态", "kind": "status", "item": "djzt",\n'
    '  "values": {"1": "正常", "2": "注销"}, "default": "其他"}]'
)


def _store_sources(db: Session, caller: Principal) -> dict[int, list[ExchangeTask]]:
    """Provider tasks (table or query, not folder) of the published resources the caller
    may set a store up for and that have none yet, by resource."""
    taken = {s.resource_id for s in shared.list_stores(db)}
    found: dict[int, list[ExchangeTask]] = defaultdict(list)
    for task in exchange_service.list_tasks(db, kind=TaskKind.PROVIDER):
        resource = task.resource
        if (
            resource.listed
            and resource.id not in taken
            and not task.config.get("folder")
            and (caller.is_admin or resource.provider_department_id == caller.department_id)
        ):
            found[resource.id].append(task)
    return found


def _stores_page(
    request: Request,
    db: Session,
    caller: Principal,
    *,
    resource_id: Id | None,
    values: dict[str, Any] | None = None,
    errors: FormErrors = NO_ERRORS,
    status_code: int = 200,
) -> Response:
    stores = shared.list_stores(db)
    settings = request.app.state.settings
    newest = reseal.newest_key(settings)
    can_create = caller.can(Permission.SHARING_STORE)
    sources = _store_sources(db, caller) if can_create else {}
    resources = {tasks[0].resource.id: tasks[0].resource for tasks in sources.values()}
    resource = resources.get(resource_id) if resource_id is not None else None
    if resource is not None and values is None:
        first = next((it.code for it in resource.items), "")
        key = next((it.code for it in resource.items if it.is_key), first)
        values = {
            "mapping": [{"col": "", "item": it.code} for it in resource.items],
            "key_item": key,
            "verify_rules": "[]",
        }
    return _page(
        request,
        "sharing/stores.html",
        caller,
        status_code=status_code,
        stores=stores,
        item_names={s.id: {it.code: it.name for it in s.resource.items} for s in stores},
        can_create=can_create,
        resources=sorted(resources.values(), key=lambda r: r.name),
        resource=resource,
        tasks=sources.get(resource.id, []) if resource else [],
        v=values or {},
        errors=errors,
        verify_example=VERIFY_EXAMPLE,
        field_sealing=request.app.state.settings.field_sealing,
        reseal={s.id: reseal.pending(s, settings, newest) for s in stores},
    )


@router.get("/sharing/stores")
def stores_page(
    request: Request, db: SessionDep, caller: SharingReader, resource_id: str = ""
) -> Response:
    """共享信息库: each store's source, rows and the last package applied; the set-up
    form for the provider's resource administrator or the platform (``?resource_id=``
    picks the resource, whose provider tasks and items the form then offers)."""
    wanted = int(resource_id) if resource_id.isdigit() else None
    return _stores_page(request, db, caller, resource_id=wanted)


def _verify_rules(raw: str) -> tuple[list[dict[str, Any]], list[Problem]]:
    """The verify rules typed as JSON: parsed, each checked against ``VerifyRule``."""
    if not raw:
        return [], []
    try:
        rules = json.loads(raw)
    except json.JSONDecodeError as exc:
        where = f"第 {exc.lineno} 行第 {exc.colno} 列"
        return [], [{"field": "verify_rules", "message": f"不是有效的 JSON（{where}）"}]
    if not isinstance(rules, list) or not all(isinstance(r, dict) for r in rules):
        return [], [{"field": "verify_rules", "message": "应为规则对象的 JSON 数组 [{…}, …]"}]
    problems: list[Problem] = []
    for i, rule in enumerate(rules):
        try:
            VerifyRule.model_validate(rule)
        except ValidationError as exc:
            problems += [
                {
                    "field": "verify_rules",
                    "message": f"第 {i + 1} 条规则 {p['field']}：{p['message']}",
                }
                for p in validation_problems(exc)
            ]
    return rules, problems


def _store_problems(details: list[Problem], rows: list[dict[str, str]]) -> list[Problem]:
    """The service's details placed on the form: ``mapping.<column>`` on its row,
    ``verify_rules[i].x`` on the rules box, numbered as the person counts."""
    placed = []
    for p in details:
        field = str(p.get("field", ""))
        message = str(p.get("message", ""))
        if field.startswith("mapping."):
            column = field.removeprefix("mapping.")
            row = next((i for i, r in enumerate(rows) if r["col"] == column), None)
            field = f"mapping[{row}]" if row is not None else "mapping"
        elif found := re.match(r"verify_rules\[(\d+)\]\.?(\w*)", field):
            message = f"第 {int(found.group(1)) + 1} 条规则 {found.group(2)}：{message}"
            field = "verify_rules"
        placed.append({"field": field, "message": message})
    return placed


@router.post("/sharing/stores")
def create_store(
    request: Request, form: FormDep, db: SessionDep, caller: SharingStoreAdmin
) -> Response:
    resource_id = optional_int(text(form, "resource_id"))
    columns, items = texts(form, "map_col"), texts(form, "map_item")
    rows = [
        {"col": columns[i] if i < len(columns) else "", "item": items[i] if i < len(items) else ""}
        for i in range(max(len(columns), len(items)))
    ]
    values: dict[str, Any] = {
        "resource_id": text(form, "resource_id"),
        "source_task_id": text(form, "source_task_id"),
        "mapping": rows,
        "key_item": text(form, "key_item"),
        "verify_rules": text(form, "verify_rules"),
    }
    label = _labels(STORE_LABELS)
    problems: list[Problem] = []
    resource = None
    if isinstance(resource_id, int):
        try:
            resource = catalog_service.get_resource(db, resource_id)
        except NotFound:
            resource = None
    if resource is None:
        problems.append({"field": "resource_id", "message": "请选择目录"})
    source_task_id = optional_int(values["source_task_id"])
    if not isinstance(source_task_id, int):
        problems.append({"field": "source_task_id", "message": "请选择该目录的发送任务"})
    known = {it.code: it.name for it in resource.items} if resource else {}
    mapping: dict[str, str] = {}
    for i, row in enumerate(rows):
        if not row["col"]:
            continue  # an item without a source column is not kept
        if not row["item"]:
            problems.append({"field": f"mapping[{i}]", "message": "请选择对应的信息项"})
        elif resource and row["item"] not in known:
            problems.append({"field": f"mapping[{i}]", "message": f"目录没有信息项 {row['item']}"})
        elif row["col"] in mapping:
            problems.append({"field": f"mapping[{i}]", "message": f"源字段 {row['col']} 重复"})
        else:
            mapping[row["col"]] = row["item"]
    if not mapping and not any(p["field"].startswith("mapping") for p in problems):
        problems.append({"field": "mapping", "message": "请至少为一个信息项填写源字段"})
    if not values["key_item"]:
        problems.append({"field": "key_item", "message": "请选择查询键"})
    rules, rule_problems = _verify_rules(values["verify_rules"])
    problems += rule_problems
    if problems:
        errors = FormErrors("共享信息库设置有误，请按提示修改", problems, label=label)
    else:
        try:
            data = StoreCreate.model_validate(
                {
                    "resource_id": resource_id,
                    "source_task_id": source_task_id,
                    "key_item": values["key_item"],
                    "mapping": mapping,
                    "verify_rules": rules,
                }
            )
            store = shared.create_store(
                db, caller, data, sealing=request.app.state.settings.field_sealing
            )
        except ValidationError as exc:
            errors = FormErrors("共享信息库设置有误", validation_problems(exc), label=label)
        except (InvalidInput, Forbidden) as exc:
            db.rollback()
            details = exc.details or [{"field": "resource_id", "message": exc.message}]
            errors = FormErrors(exc.message, _store_problems(details, rows), label=label)
        else:
            db.commit()
            return redirect(f"/sharing/stores?done=store_created#store-{store.id}")
    return _stores_page(
        request,
        db,
        caller,
        resource_id=resource_id if isinstance(resource_id, int) else None,
        values=values,
        errors=errors,
        status_code=422,
    )
