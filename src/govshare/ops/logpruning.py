"""交换日志清理 on a schedule: ``exchange.pruning`` with the positions of the hub's
own consumers of the log — the shared stores it feeds and the base databases merging
those stores — which live above the exchange."""

from __future__ import annotations

from datetime import datetime

import structlog
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from govshare.basedata.models import BaseSource
from govshare.config import Settings
from govshare.db import session_scope, utcnow
from govshare.exchange import pruning
from govshare.exchange.store import PackageStore
from govshare.periodic import Periodic
from govshare.sharing.models import SharedStore

log = structlog.get_logger()
INTERVAL_SECONDS = 3600.0


def hub_positions(session: Session) -> list[tuple[int, int]]:
    """(provider task, newest package applied) of each shared store fed by the exchange
    and of each base database merging one."""
    applied = session.execute(
        select(SharedStore.source_task_id, func.min(SharedStore.applied_seq))
        .where(SharedStore.source_task_id.is_not(None))
        .group_by(SharedStore.source_task_id)
    )
    merged = session.execute(
        select(SharedStore.source_task_id, func.min(BaseSource.merged_seq))
        .join(SharedStore, SharedStore.id == BaseSource.store_id)
        .where(SharedStore.source_task_id.is_not(None))
        .group_by(SharedStore.source_task_id)
    )
    return [(int(t), int(s or 0)) for t, s in [*applied, *merged]]


def prune_log(session: Session, store: PackageStore, *, now: datetime, keep_days: int) -> int:
    """One batch of ``exchange.pruning.prune`` with the hub's consumers held."""
    return pruning.prune(session, store, now=now, keep_days=keep_days, held=hub_positions(session))


class PackagePruner(Periodic):
    """``prune_log`` every ``interval`` seconds on a thread of its own, batch after
    batch until nothing is left to remove; any hub process may run one."""

    def __init__(
        self,
        settings: Settings,
        factory: sessionmaker[Session],
        store: PackageStore,
        *,
        interval: float = INTERVAL_SECONDS,
    ) -> None:
        super().__init__("package-pruner", interval, self.run_once)
        self.settings = settings
        self.factory = factory
        self.store = store

    def run_once(self, now: datetime | None = None) -> int:
        keep = self.settings.package_log_keep_days
        if keep <= 0:
            return 0
        total = 0
        while True:
            with session_scope(self.factory) as session:
                removed = prune_log(session, self.store, now=now or utcnow(), keep_days=keep)
            total += removed
            if removed < pruning.BATCH:
                break
        if total:
            log.info("package log pruned", packages=total)
        return total
