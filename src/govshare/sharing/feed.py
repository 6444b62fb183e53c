"""The hub's background work for sharing: feed the shared stores from the exchange,
archive objections whose corrections arrived, alert overdue objections, stop the
subscriptions of grants that ended; and, on a thread of its own, assemble the base
databases and run the quality scans that are due."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from govshare.basedata import service as basedata
from govshare.config import Settings
from govshare.db import session_scope, utcnow
from govshare.exchange.store import PackageStore
from govshare.quality.scan import run_due_scans_by_settings
from govshare.rules.clock import china_today
from govshare.sharing import calendar, objections, service, subscriptions
from govshare.sharing.models import SharedStore
from govshare.sharing.store import SharedDatabase, StoreRetired, Writers, feed_store

log = structlog.get_logger()


class Feeder:
    """A daemon thread; like the exchange monitor, any hub process may run it (each
    store's progress is a row, and applying a package twice changes nothing)."""

    def __init__(
        self,
        settings: Settings,
        factory: sessionmaker[Session],
        db: SharedDatabase,
        packages: PackageStore,
    ) -> None:
        self.settings = settings
        self.factory = factory
        self.db = db
        self.packages = packages
        self.writers = Writers(db)
        self._stop = threading.Event()
        # Assembly of base databases and quality scans can take minutes on large stores:
        # they run beside the feed, not in its way (a base is assembled under a lease,
        # and scans only read the stores).
        self._threads = [
            threading.Thread(target=self._run, name="sharing-feed", daemon=True),
            threading.Thread(target=self._run_derived, name="sharing-derived", daemon=True),
        ]
        self._last_alert_check = 0.0
        self._last_quality_check = time.monotonic()

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=10)

    def feed(self) -> int:
        """Bring every store up to date; returns the packages applied."""
        total = 0
        with self.factory() as session:
            ids = list(session.scalars(select(SharedStore.id)))
        for store_id in ids:
            while (n := self._feed_one(store_id)) > 0:
                total += n
        return total

    def _feed_one(self, store_id: int) -> int:
        with self.factory() as session:
            store = session.get(SharedStore, store_id)
            if store is None:
                return 0
            try:
                n = feed_store(session, self.db, self.packages, self.writers, store)
                if n:
                    objections.check_corrections(session, self.settings, self.db, store)
                session.commit()
                return n
            except StoreRetired:
                session.rollback()  # resealed meanwhile: the next round feeds its new table
                return 0
            except Exception as exc:
                session.rollback()
                log.exception("shared store feed failed", store_id=store_id)
                failed = session.get(SharedStore, store_id)
                if failed is not None:
                    failed.last_error = f"{type(exc).__name__}: {exc}"[:2000]
                    session.commit()
                return 0

    def run_once(self) -> int:
        applied = self.feed()
        with session_scope(self.factory) as session:
            subscriptions.stop_lapsed(session, china_today())
        if time.monotonic() - self._last_alert_check >= self.settings.monitor_interval_seconds:
            with session_scope(self.factory) as session:
                # A year entered in another hub process, or a new file or package,
                # reaches this one and its provisional deadlines here.
                calendar.reload(session, self.settings)
                objections.alert_overdue(session, self.settings)
                objections.seal_kept_in_clear(session, self.settings)
                service.alert_overdue_applications(session, self.settings, china_today())
                service.alert_calendar_gap(session, self.settings, china_today())
                basedata.alert_stale_conflicts(session, self.settings, utcnow())
            self._last_alert_check = time.monotonic()
        return applied

    def derive_once(self) -> None:
        """What is built from the stores: the base databases (only the keys new packages
        touched are merged again), then the quality scans that are due."""
        with self.factory() as session:
            basedata.assemble_due(session, self.db, self.packages, utcnow())
        quality_every = self.settings.quality_scan_interval_seconds
        if quality_every and time.monotonic() - self._last_quality_check >= quality_every:
            with self.factory() as session:  # run_due_scans commits after each scan
                run_due_scans_by_settings(session, self.db, utcnow(), self.settings)
            self._last_quality_check = time.monotonic()

    def _run(self) -> None:
        self._loop(self.run_once, "sharing feed tick failed")

    def _run_derived(self) -> None:
        self._loop(self.derive_once, "base assembly or quality scan tick failed")

    def _loop(self, step: Callable[[], object], failure: str) -> None:
        while not self._stop.wait(self.settings.shared_feed_interval_seconds):
            try:
                step()
            except Exception:
                log.exception(failure)


def sharing_worker(settings: Settings, factory: sessionmaker[Session], state: Any) -> Feeder:
    return Feeder(settings, factory, state.data_services.db, state.package_store)
