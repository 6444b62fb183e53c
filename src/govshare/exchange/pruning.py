"""交换日志清理: the package log does not grow forever.

A package's bytes are removed (``pruned_at`` set, the ``ExchangePackage`` row kept)
once it is older than ``GOVSHARE_PACKAGE_LOG_KEEP_DAYS`` and every consumer of its
provider task has it: each running subscriber task has acknowledged it, and each of
the hub's own consumers — shared stores (共享信息库) fed by the task, base databases
merging them — has applied it (they hand their positions in as ``held``;
``ops.logpruning`` runs it). The rows stay, so sequence numbers, acknowledgements and
reconciliation (which sums the rows' counts) are untouched.

A consumer that arrives after its packages were removed — a subscription created,
resumed or reset later, a shared store added later — cannot replay the log. It gets a
snapshot instead (``catch_up``): its position jumps to the provider task's newest
package and the provider's node is told to send its whole table again (command
``snapshot``: it forgets its cursor and what it has sent, so every row goes out as an
insert). Other subscribers receive those rows too and upsert them unchanged. Folder
(file) tasks are never pruned: a folder cannot be re-sent as a snapshot.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

import structlog
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from govshare.exchange.models import (
    CommandStatus,
    ExchangePackage,
    ExchangeTask,
    NodeCommand,
    TaskKind,
    TaskState,
)
from govshare.exchange.store import PackageStore
from govshare.security import audit
from govshare.security.audit import SYSTEM

log = structlog.get_logger()
BATCH = 500  # packages removed per transaction
SNAPSHOT = "snapshot"


Held = Iterable[tuple[int, int]]
"""(provider task id, the newest package a hub-side consumer of it has)."""


def floors(session: Session, held: Held = ()) -> dict[int, int]:
    """Each provider task's newest package that every consumer of it has — its running
    subscriber tasks and the hub's own consumers ``held`` (shared stores, base
    databases) — or its last package when it has none; file tasks are left out. A
    stopped subscription does not hold the log back: resumed, it gets a snapshot."""
    found: dict[int, int] = {}
    providers = session.scalars(select(ExchangeTask).where(ExchangeTask.kind == TaskKind.PROVIDER))
    for task in providers:
        if task.config.get("folder"):
            continue
        found[task.id] = task.last_seq
    acked = session.execute(
        select(ExchangeTask.source_task_id, func.min(ExchangeTask.acked_seq))
        .where(
            ExchangeTask.kind == TaskKind.SUBSCRIBER,
            ExchangeTask.state == TaskState.RUNNING,
            ExchangeTask.source_task_id.is_not(None),
        )
        .group_by(ExchangeTask.source_task_id)
    )
    for task_id, seq in [*acked, *held]:
        if task_id in found:
            found[task_id] = min(found[task_id], int(seq or 0))
    return found


def prune(
    session: Session,
    store: PackageStore,
    *,
    now: datetime,
    keep_days: int,
    held: Held = (),
    limit: int = BATCH,
) -> int:
    """Remove the bytes of up to ``limit`` packages that every consumer has and that are
    older than ``keep_days``; how many were removed. The caller commits."""
    cut = now - timedelta(days=keep_days)
    removed = 0
    for task_id, floor in sorted(floors(session, held).items()):
        if floor <= 0 or removed >= limit:
            continue
        rows = session.scalars(
            select(ExchangePackage)
            .where(
                ExchangePackage.task_id == task_id,
                ExchangePackage.seq <= floor,
                ExchangePackage.received_at < cut,
                ExchangePackage.pruned_at.is_(None),
            )
            .order_by(ExchangePackage.seq)
            .limit(limit - removed)
        )
        for row in rows:
            store.discard(session, row)
            row.pruned_at = now
            removed += 1
    return removed


def catch_up(session: Session, provider: ExchangeTask, reason: str) -> int:
    """A consumer's next package was pruned: ask the provider's node for a snapshot
    (once while one is outstanding) and give the position the consumer resumes after —
    the provider task's newest package now; the snapshot follows it."""
    outstanding = session.scalar(
        select(NodeCommand.id).where(
            NodeCommand.node_id == provider.node_id,
            NodeCommand.task_id == provider.id,
            NodeCommand.command == SNAPSHOT,
            NodeCommand.status.in_([CommandStatus.PENDING, CommandStatus.SENT]),
        )
    )
    if outstanding is None:
        session.add(
            NodeCommand(
                node_id=provider.node_id,
                command=SNAPSHOT,
                task_id=provider.id,
                args={"reason": reason[:200]},
                created_by=SYSTEM.name,
            )
        )
        audit.record(
            session,
            SYSTEM,
            "exchange.snapshot",
            object_type="exchange_task",
            object_id=provider.id,
            after={"from_seq": provider.last_seq, "reason": reason[:200]},
        )
        log.info("exchange snapshot requested", task_id=provider.id, reason=reason)
    return provider.last_seq


def is_pruned(row: ExchangePackage) -> bool:
    return row.pruned_at is not None
