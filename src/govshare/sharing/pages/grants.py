"""Grants (授权) on both sides: the consumer's and the provider's lists, revocation, and
for 订阅 grants the form that creates the receiving task on the consumer's node."""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import date
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import ValidationError
from sqlalchemy.orm import Session

from govshare.deps import SessionDep, SharingApplicant, SharingReader, SharingReviewer
from govshare.errors import Conflict, Forbidden, InvalidInput, NotFound
from govshare.exchange import service as exchange_service
from govshare.exchange.models import ExchangeTask, TaskKind
from govshare.exchange.schemas import IDENT
from govshare.ids import Id, parse_id
from govshare.security.roles import Permission
from govshare.security.service import Principal
from govshare.sharing import service, subscriptions
from govshare.sharing.errors import NotYourDepartment
from govshare.sharing.models import GRANT_STATE_LABELS, SharingGrant, SharingMode
from govshare.sharing.pages.common import (
    ANSWER_LABELS,
    Today,
    _item_names,
    _labels,
    _page,
    _paged,
    _with_done,
    grant_state,
)
from govshare.sharing.schemas import ReasonIn
from govshare.web.forms import (
    NO_ERRORS,
    FormDep,
    FormErrors,
    Problem,
    optional_int,
    redirect,
    safe_next,
    text,
    validation_problems,
)

router = APIRouter(include_in_schema=False)

# -- grants (授权) ------------------------------------------------------------------------------

GRANT_STATES = GRANT_STATE_LABELS


def _grants_page(
    request: Request,
    db: Session,
    caller: Principal,
    today: date,
    *,
    side: str,
    state: str,
    p: str,
    revoke_id: Id | None = None,
    revoke_reason: str = "",
    subscribe_id: Id | None = None,
    subscribe_values: dict[str, str] | None = None,
    errors: FormErrors = NO_ERRORS,
    status_code: int = 200,
) -> Response:
    rows = service.list_grants(db, caller, side=side)
    states = {g.id: grant_state(g, today) for g in rows}
    counts = Counter(states.values())
    if state in GRANT_STATES:
        rows = [g for g in rows if states[g.id] == state]
    page = _paged(rows, p)
    here = "/sharing/grants" if side == "mine" else "/sharing/grants/provider"
    return _page(
        request,
        "sharing/grants.html",
        caller,
        status_code=status_code,
        nav=here,
        here=here,
        heading={"mine": "我的授权", "provider": "本部门目录上的授权"}.get(side, "全部授权"),
        side=side,
        state=state if state in GRANT_STATES else "",
        grant_states=GRANT_STATES,
        states=states,
        counts=counts,
        total=len(states),
        page=page,
        item_names={g.id: _item_names(g) for g in page.rows},
        sensitive={g.id: g.resource.sensitive_codes for g in page.rows},
        can_revoke=side != "mine" and caller.can(Permission.SHARING_REVIEW),
        revoke_id=revoke_id,
        revoke_reason=revoke_reason,
        subscribing=_subscribing(db, caller, page.rows, states) if side == "mine" else None,
        subscribe_id=subscribe_id,
        sv=subscribe_values or {},
        new_task=parse_id(request.query_params.get("task", "")),
        errors=errors,
    )


@dataclass(frozen=True, slots=True)
class Subscribing:
    """What the 创建接收任务 forms of 我的授权 offer: the department's nodes, the provider
    tasks of each subscribed resource, and the receiving tasks already made for it."""

    nodes: list[Any]
    sources: dict[int, list[ExchangeTask]]  # by resource
    receiving: dict[int, list[ExchangeTask]]  # by resource, on the department's nodes
    grants: set[int]  # grants in force that allow 订阅


def _subscribing(
    db: Session, caller: Principal, grants: list[SharingGrant], states: dict[int, str]
) -> Subscribing:
    wanted = {
        g.id
        for g in grants
        if states[g.id] == "active" and str(SharingMode.SUBSCRIPTION) in g.modes
    }
    resources = {g.resource_id for g in grants if str(SharingMode.SUBSCRIPTION) in g.modes}
    nodes = exchange_service.list_nodes(db, caller.department_id) if caller.department_id else []
    own = {n.id for n in nodes}
    sources: dict[int, list[ExchangeTask]] = defaultdict(list)
    receiving: dict[int, list[ExchangeTask]] = defaultdict(list)
    if resources:
        made = subscriptions.grant_provider_tasks(db)
        for task in exchange_service.list_tasks(db):
            if task.resource_id not in resources:
                continue
            if (
                task.kind is TaskKind.PROVIDER
                and not task.config.get("folder")
                and task.id not in made
            ):
                sources[task.resource_id].append(task)
            elif task.kind is TaskKind.SUBSCRIBER and task.node_id in own:
                receiving[task.resource_id].append(task)
    return Subscribing(nodes=nodes, sources=sources, receiving=receiving, grants=wanted)


@router.get("/sharing/grants")
def my_grants(
    request: Request,
    db: SessionDep,
    caller: SharingReader,
    today: Today,
    state: str = "",
    p: str = "",
) -> Response:
    """我的授权: what the caller's department may use."""
    return _grants_page(request, db, caller, today, side="mine", state=state, p=p)


@router.get("/sharing/grants/provider")
def provided_grants(
    request: Request,
    db: SessionDep,
    caller: SharingReader,
    today: Today,
    state: str = "",
    p: str = "",
) -> Response:
    """本部门目录上的授权 (for the platform: every grant)."""
    side = "all" if caller.is_admin else "provider"
    return _grants_page(request, db, caller, today, side=side, state=state, p=p)


@router.post("/sharing/grants/{grant_id}/revoke")
def revoke_grant(
    grant_id: Id,
    request: Request,
    form: FormDep,
    db: SessionDep,
    caller: SharingReviewer,
    today: Today,
) -> Response:
    """撤销授权, effective at once; the reason is mandatory."""
    grant = service.get_grant(db, grant_id)
    reason = text(form, "reason")
    try:
        body = ReasonIn.model_validate({"reason": reason})
        service.revoke_grant(db, caller, grant, body.reason)
    except ValidationError as exc:
        errors = FormErrors("撤销理由有误", validation_problems(exc), label=_labels(ANSWER_LABELS))
    except InvalidInput as exc:
        errors = FormErrors(exc.message, exc.details, label=_labels(ANSWER_LABELS))
    else:
        db.commit()
        back = safe_next(text(form, "next"), "/sharing/grants/provider")
        return redirect(_with_done(back, "revoked"))
    db.rollback()
    side = "all" if caller.is_admin else "provider"
    return _grants_page(
        request,
        db,
        caller,
        today,
        side=side,
        state="",
        p="",
        revoke_id=grant_id,
        revoke_reason=reason,
        errors=errors,
        status_code=422,
    )


SUBSCRIBE_LABELS: dict[str, str] = {
    "node_id": "接收前置机",
    "source_task_id": "发送任务",
    "target": "目标库",
    "table": "目标表",
}


@router.post("/sharing/grants/{grant_id}/subscription")
def subscribe_grant(
    grant_id: Id,
    request: Request,
    form: FormDep,
    db: SessionDep,
    caller: SharingApplicant,
    today: Today,
) -> Response:
    """订阅: create and start the receiving task on one of the department's nodes,
    subscribed to the provider's task for the granted resource."""
    grant = service.get_grant(db, grant_id)
    if not caller.is_admin and caller.department_id != grant.consumer_department_id:
        raise NotYourDepartment("只能为本部门所持的授权创建订阅")
    values = {
        "node_id": text(form, "node_id"),
        "source_task_id": text(form, "source_task_id"),
        "target": text(form, "target"),
        "table": text(form, "table"),
    }
    label = _labels(SUBSCRIBE_LABELS)
    node_id, source_task_id = (
        optional_int(values["node_id"]),
        optional_int(values["source_task_id"]),
    )
    problems: list[Problem] = []
    if not isinstance(node_id, int):
        problems.append({"field": "node_id", "message": "请选择本部门的前置机"})
    if not isinstance(source_task_id, int):
        problems.append({"field": "source_task_id", "message": "请选择提供部门的发送任务"})
    if not values["target"]:
        problems.append({"field": "target", "message": "请填写前置机配置中的目标库名称"})
    if not values["table"]:
        problems.append({"field": "table", "message": "请填写目标表"})
    elif not re.fullmatch(IDENT, values["table"]):
        problems.append(
            {"field": "table", "message": "表名由字母、数字、下划线或点组成，不以数字开头"}
        )
    if problems:
        errors = FormErrors("接收任务信息不完整，请按提示修改", problems, label=label)
    else:
        try:
            sub = subscriptions.subscribe(
                db,
                caller,
                grant,
                node_id=int(values["node_id"]),
                source_task_id=int(values["source_task_id"]),
                target_config={"target": values["target"], "table": values["table"]},
                today=today,
            )
        except (InvalidInput, NotFound, Forbidden, Conflict) as exc:
            db.rollback()
            field = "node_id" if isinstance(exc, NotFound | Forbidden) else "source_task_id"
            details = [
                {**d, "field": str(d.get("field", "")).removeprefix("config.") or "target"}
                for d in exc.details
            ] or [{"field": field, "message": exc.message}]
            errors = FormErrors(exc.message, details, label=label)
        else:
            db.commit()
            task = sub.subscriber_task_id
            return redirect(f"/sharing/grants?done=subscribed&task={task}#grant-{grant.id}")
    return _grants_page(
        request,
        db,
        caller,
        today,
        side="mine",
        state="",
        p="",
        subscribe_id=grant_id,
        subscribe_values=values,
        errors=errors,
        status_code=422,
    )
