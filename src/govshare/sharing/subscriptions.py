"""订阅 under a grant: the granted data delivered to the consumer's own database by the
exchange system, and nothing beyond the grant.

Packages are signed end to end by the provider's node, so the hub cannot trim one on
its way. Each subscription therefore gets a provider task of its own, derived from the
resource's provider task: only the granted items' columns, only the rows of the grant's
row filter, masked columns masked on the provider's node. The consumer's receiving task
subscribes to that task. Both stop the moment the grant is revoked, and at the latest
the feed tick after the grant's end date has passed.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from govshare.db import utcnow
from govshare.errors import InvalidInput
from govshare.exchange import service as exchange
from govshare.exchange.models import ExchangeTask, TaskKind, TaskState
from govshare.exchange.schemas import TaskCreate
from govshare.rules.clock import china_today
from govshare.security import audit
from govshare.security.service import Principal
from govshare.sharing.errors import NotYourDepartment, StepNotAllowed
from govshare.sharing.models import (
    GrantSubscription,
    MaskingRule,
    SharedStore,
    SharingGrant,
    SharingMode,
)
from govshare.sharing.service import is_active

# Who stops a lapsed grant's subscription: the platform itself, in the audit log.
PLATFORM = Principal(kind="system", name="system", department_id=None, permissions=frozenset())


def subscribe(
    session: Session,
    principal: Principal,
    grant: SharingGrant,
    *,
    node_id: int,
    source_task_id: int,
    target_config: dict[str, Any],
    name: str | None = None,
    today: date | None = None,
) -> GrantSubscription:
    """Create and start the grant's provider task and the consumer's receiving task
    (接收任务) on the consumer's node ``node_id``. ``source_task_id`` is the resource's
    provider task the grant's task is derived from."""
    today = today or china_today()
    if not principal.is_admin and principal.department_id != grant.consumer_department_id:
        raise NotYourDepartment("只能为本部门所持的授权创建订阅")
    if not is_active(grant, today) or str(SharingMode.SUBSCRIPTION) not in grant.modes:
        raise StepNotAllowed("该授权不在有效期内或不允许订阅")
    node = exchange.get_node(session, node_id)
    if node.department_id != grant.consumer_department_id:
        raise NotYourDepartment("接收任务须在申请部门的前置机上")
    source = session.get(ExchangeTask, source_task_id)
    if (
        source is None
        or source.kind is not TaskKind.PROVIDER
        or source.resource_id != grant.resource_id
        or source.id in grant_provider_tasks(session)
        or source.config.get("folder")
    ):
        raise InvalidInput(
            "须选择该目录的发送任务 (数据库表或查询)",
            details=[{"field": "source_task_id", "message": "不是该目录的发送任务"}],
        )
    label = name or f"订阅 {grant.resource.name} (授权 {grant.id})"
    provider = exchange.create_task(
        session,
        principal,
        TaskCreate(
            name=f"{label} · 发送",
            kind=TaskKind.PROVIDER,
            node_id=source.node_id,
            resource_id=grant.resource_id,
            config=granted_config(session, grant, source),
        ),
    )
    receiver = exchange.create_task(
        session,
        principal,
        TaskCreate(
            name=label,
            kind=TaskKind.SUBSCRIBER,
            node_id=node_id,
            resource_id=grant.resource_id,
            source_task_id=provider.id,
            config=target_config,
        ),
    )
    exchange.set_task_state(session, principal, provider.id, TaskState.RUNNING)
    exchange.set_task_state(session, principal, receiver.id, TaskState.RUNNING)
    subscription = GrantSubscription(
        grant_id=grant.id,
        provider_task_id=provider.id,
        subscriber_task_id=receiver.id,
        created_by=principal.name,
    )
    session.add(subscription)
    session.flush()
    audit.record(
        session,
        principal.actor,
        "sharing.grant.subscribe",
        object_type="sharing_grant",
        object_id=grant.id,
        after={
            "subscription_id": subscription.id,
            "provider_task_id": provider.id,
            "subscriber_task_id": receiver.id,
            "node_id": node_id,
            "columns": provider.config.get("columns"),
        },
    )
    return subscription


def granted_config(session: Session, grant: SharingGrant, source: ExchangeTask) -> dict[str, Any]:
    """The source task's configuration narrowed to the grant: the key (and the cursor
    and soft-delete columns the node reads changes by) plus the granted items' columns,
    the grant's row filter, and its masking rules, all by source column."""
    config = dict(source.config)
    column = _columns_of_items(session, source)
    wanted = [*grant.items, *[c["item"] for c in grant.row_filter or []]]
    column_of = {item: col for item in wanted if (col := column(item)) is not None}
    if unmapped := [item for item in wanted if item not in column_of]:
        raise InvalidInput(
            "发送任务中找不到授权信息项对应的列",
            details=[{"field": "source_task_id", "message": f"无对应列: {', '.join(unmapped)}"}],
        )
    key: list[str] = list(config.get("key") or [])
    technical = [
        config.get("cursor_column") if config.get("mode") == "incremental" else None,
        config.get("soft_delete_column")
        if config.get("delete_detection") == "soft_delete"
        else None,
    ]
    granted = [column_of[item] for item in grant.items]
    available = config.get("columns")
    if available is not None and (missing := [c for c in granted if c not in available]):
        raise InvalidInput(
            "发送任务不交换授权信息项对应的列",
            details=[{"field": "source_task_id", "message": f"缺少列: {', '.join(missing)}"}],
        )
    config["columns"] = list(dict.fromkeys([*key, *[t for t in technical if t], *granted]))
    config["row_filter"] = [
        _source_condition(c, column_of[c["item"]]) for c in grant.row_filter or []
    ]
    masking = {
        column_of[item]: rule
        for item, rule in (grant.masking or {}).items()
        if item in grant.items and MaskingRule(rule) is not MaskingRule.NONE
    }
    if masked_keys := [c for c in masking if c in key]:
        raise InvalidInput(
            "授权要求对主键脱敏, 无法按订阅交换 (接收方须按主键更新)",
            details=[{"field": "source_task_id", "message": f"主键列: {', '.join(masked_keys)}"}],
        )
    config["masking"] = masking
    return config


def _source_condition(cond: dict[str, Any], column: str) -> dict[str, Any]:
    """A grant's row condition on an item as the provider task's condition on its
    column; an ``in`` with one value (the shared store accepts it) becomes a list."""
    op, value = cond.get("op", "eq"), cond["value"]
    if op == "in" and not isinstance(value, list):
        value = [value]
    return {"column": column, "op": op, "value": value}


def _columns_of_items(session: Session, source: ExchangeTask) -> Callable[[str], str | None]:
    """Item code → source column: the shared store's mapping where the hub keeps one for
    this task; otherwise columns are named by their item codes."""
    store = session.scalar(select(SharedStore).where(SharedStore.source_task_id == source.id))
    if store is None:
        return lambda item: item
    return {item: col for col, item in store.mapping.items()}.get


def grant_provider_tasks(session: Session) -> set[int]:
    """The provider tasks made for subscriptions (never the source of another one)."""
    return set(session.scalars(select(GrantSubscription.provider_task_id)))


def stop_for_grant(session: Session, principal: Principal, grant: SharingGrant, reason: str) -> int:
    """Stop the grant's running subscriptions (both tasks); returns how many."""
    running = session.scalars(
        select(GrantSubscription).where(
            GrantSubscription.grant_id == grant.id, GrantSubscription.stopped_at.is_(None)
        )
    ).all()
    for sub in running:
        for task_id in (sub.subscriber_task_id, sub.provider_task_id):
            exchange.set_task_state(session, principal, task_id, TaskState.STOPPED)
        sub.stopped_at = utcnow()
        sub.stop_reason = reason[:200]
    return len(running)


def stop_lapsed(session: Session, today: date) -> int:
    """Stop subscriptions whose grant has expired (or was revoked behind our back)."""
    rows = session.execute(
        select(GrantSubscription, SharingGrant)
        .join(SharingGrant, SharingGrant.id == GrantSubscription.grant_id)
        .where(GrantSubscription.stopped_at.is_(None))
    ).all()
    stopped = 0
    for _sub, grant in rows:
        if not is_active(grant, today):
            stopped += stop_for_grant(
                session, PLATFORM, grant, "授权已撤销" if grant.revoked else "授权已到期"
            )
    return stopped


def check_may_run(session: Session, task: ExchangeTask, today: date | None = None) -> None:
    """A task made for a grant runs only while that grant is in force and the
    subscription was not stopped (an operator restarting it is refused)."""
    sub = session.scalar(
        select(GrantSubscription).where(
            (GrantSubscription.provider_task_id == task.id)
            | (GrantSubscription.subscriber_task_id == task.id)
        )
    )
    if sub is None:
        return
    grant = session.get(SharingGrant, sub.grant_id)
    if sub.stopped_at is not None or grant is None or not is_active(grant, today or china_today()):
        raise StepNotAllowed("该任务属于已停止的订阅 (授权已撤销或到期), 不能再启动")
