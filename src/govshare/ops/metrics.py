"""Prometheus metrics (``/metrics``): what the processes counted as they served
(``govshare.telemetry``) and gauges read from the hub database at scrape time.

The gauges come from a few cheap queries (counts over small tables, the audit head,
one indexed read per subscription), so a scrape every 15–60 s costs the hub little.
With ``govshare serve --workers N`` the counters of every worker are added up from
``PROMETHEUS_MULTIPROC_DIR``; the database gauges are the same whichever worker
answers, except the connection pool's, which are that worker's.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import REGISTRY, Collector
from sqlalchemy import Engine, and_, func, or_, select
from sqlalchemy.orm import Session, aliased, sessionmaker
from sqlalchemy.pool import QueuePool

from govshare.config import Settings
from govshare.db import session_scope, utcnow
from govshare.exchange.models import (
    Alert,
    AlertKind,
    ExchangeNode,
    ExchangePackage,
    ExchangeTask,
    TaskKind,
    TaskState,
)
from govshare.rules.clock import china_today
from govshare.security.models import ApiClient, AuditHead
from govshare.sharing.models import (
    ApplicationStatus,
    CallStat,
    Objection,
    ObjectionStatus,
    SharingApplication,
)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def prepare_multiprocess_dir(data_dir: Path) -> Path:
    """An empty ``DATA_DIR/metrics`` named in ``PROMETHEUS_MULTIPROC_DIR``, for the
    workers ``govshare serve --workers N`` is about to start (they inherit it)."""
    path = (data_dir / "metrics").resolve()
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    os.environ[MULTIPROC_ENV] = str(path)
    return path


def _open_applications(session: Session, today: date) -> tuple[int, int]:
    open_states = (ApplicationStatus.SUBMITTED, ApplicationStatus.APPROVED)
    late = or_(
        and_(
            SharingApplication.status == ApplicationStatus.SUBMITTED,
            SharingApplication.answer_due < today,
        ),
        and_(
            SharingApplication.status == ApplicationStatus.APPROVED,
            SharingApplication.provide_due < today,
        ),
    )
    row = session.execute(
        select(
            func.count().filter(SharingApplication.status.in_(open_states)),
            func.count().filter(late),
        )
    ).one()
    return int(row[0]), int(row[1])


def _open_objections(session: Session, today: date) -> tuple[int, int]:
    row = session.execute(
        select(
            func.count().filter(
                Objection.status.in_((ObjectionStatus.OPEN, ObjectionStatus.ACCEPTED))
            ),
            func.count().filter(
                Objection.status == ObjectionStatus.OPEN, Objection.answer_due < today
            ),
        )
    ).one()
    return int(row[0]), int(row[1])


def _seconds_since(moment: datetime, now: datetime) -> float:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=now.tzinfo)
    return max(0.0, (now - moment).total_seconds())


class HubCollector(Collector):
    """The gauges of one hub, read from its database at each scrape."""

    def __init__(self, settings: Settings, factory: sessionmaker[Session], engine: Engine) -> None:
        self.settings = settings
        self.factory = factory
        self.engine = engine

    def collect(self) -> Iterator[Metric]:
        today = china_today()
        now = utcnow()
        with session_scope(self.factory) as session:
            yield from self._nodes(session)
            yield from self._exchange(session, now)
            yield from self._sharing(session, today)
            yield from self._alerts(session)
            head = session.scalar(select(AuditHead.seq).where(AuditHead.id == 1)) or 0
            audit = CounterMetricFamily(
                "govshare_audit_entries", "Entries in the audit chain (审计日志)."
            )
            audit.add_metric([], float(head))
            yield audit
        yield from self._storage()

    def _nodes(self, session: Session) -> Iterator[Metric]:
        nodes = GaugeMetricFamily(
            "govshare_nodes",
            "Front-end nodes (前置机) by status and whether online.",
            labels=["status", "online"],
        )
        rows = session.execute(
            select(ExchangeNode.status, ExchangeNode.online, func.count()).group_by(
                ExchangeNode.status, ExchangeNode.online
            )
        )
        online = 0
        for status, is_online, count in rows:
            nodes.add_metric([str(status), "true" if is_online else "false"], count)
            online += count if is_online else 0
        yield nodes
        gauge = GaugeMetricFamily("govshare_nodes_online", "Front-end nodes online now.")
        gauge.add_metric([], online)
        yield gauge

    def _exchange(self, session: Session, now: datetime) -> Iterator[Metric]:
        last = GaugeMetricFamily(
            "govshare_exchange_task_last_seq",
            "Newest package of a provider task the hub has accepted (its package count).",
            labels=["task"],
        )
        for task_id, seq in session.execute(
            select(ExchangeTask.id, ExchangeTask.last_seq).where(
                ExchangeTask.kind == TaskKind.PROVIDER
            )
        ):
            last.add_metric([str(task_id)], seq)
        yield last
        behind = GaugeMetricFamily(
            "govshare_subscription_lag_packages",
            "Packages a running subscriber task has not applied yet.",
            labels=["task", "source"],
        )
        age = GaugeMetricFamily(
            "govshare_subscription_lag_seconds",
            "Age of the oldest package a running subscriber task has not applied (0 when "
            "it is up to date).",
            labels=["task", "source"],
        )
        source = aliased(ExchangeTask)
        subs = session.execute(
            select(ExchangeTask.id, source.id, source.last_seq, ExchangeTask.acked_seq)
            .join(source, source.id == ExchangeTask.source_task_id)
            .where(
                ExchangeTask.kind == TaskKind.SUBSCRIBER,
                ExchangeTask.state == TaskState.RUNNING,
            )
        ).all()
        for task_id, source_id, last_seq, acked in subs:
            labels = [str(task_id), str(source_id)]
            waiting = max(0, last_seq - acked)
            behind.add_metric(labels, waiting)
            seconds = 0.0
            if waiting:
                oldest = session.scalar(
                    select(ExchangePackage.received_at)
                    .where(ExchangePackage.task_id == source_id, ExchangePackage.seq > acked)
                    .order_by(ExchangePackage.seq)
                    .limit(1)
                )
                seconds = _seconds_since(oldest, now) if oldest is not None else 0.0
            age.add_metric(labels, seconds)
        yield behind
        yield age
        rejected = CounterMetricFamily(
            "govshare_exchange_packages_rejected",
            "Packages refused by the hub since it was installed (from the alerts).",
        )
        total = session.scalar(
            select(func.coalesce(func.sum(Alert.count), 0)).where(
                Alert.kind == AlertKind.PACKAGE_REJECTED
            )
        )
        rejected.add_metric([], float(total or 0))
        yield rejected

    def _sharing(self, session: Session, today: date) -> Iterator[Metric]:
        apps_open, apps_late = _open_applications(session, today)
        objs_open, objs_late = _open_objections(session, today)
        for name, doc, value in (
            (
                "govshare_applications_open",
                "Sharing applications (共享申请) not yet answered or provided.",
                apps_open,
            ),
            (
                "govshare_applications_overdue",
                "Open sharing applications past their answer or provision deadline.",
                apps_late,
            ),
            (
                "govshare_objections_open",
                "Objections (异议) not yet answered or corrected.",
                objs_open,
            ),
            ("govshare_objections_overdue", "Objections past their answer deadline.", objs_late),
        ):
            gauge = GaugeMetricFamily(name, doc)
            gauge.add_metric([], value)
            yield gauge
        calls = GaugeMetricFamily(
            "govshare_data_service_calls_today",
            "Data-service calls of an API client today (China time), all processes.",
            labels=["client"],
        )
        for app_key, count in session.execute(
            select(ApiClient.app_key, func.sum(CallStat.calls))
            .join(ApiClient, ApiClient.id == CallStat.client_id)
            .where(CallStat.day == today)
            .group_by(ApiClient.app_key)
        ):
            calls.add_metric([app_key], float(count or 0))
        yield calls

    def _alerts(self, session: Session) -> Iterator[Metric]:
        gauge = GaugeMetricFamily(
            "govshare_alerts_open", "Open alerts (告警) by kind.", labels=["kind"]
        )
        counts = dict(
            session.execute(
                select(Alert.kind, func.count())
                .where(Alert.resolved_at.is_(None))
                .group_by(Alert.kind)
            ).all()
        )
        for kind in AlertKind:
            gauge.add_metric([kind.value], counts.get(kind, 0))
        yield gauge

    def _storage(self) -> Iterator[Metric]:
        pool = self.engine.pool
        if isinstance(pool, QueuePool):
            used = GaugeMetricFamily(
                "govshare_db_pool_checked_out",
                "Hub database connections in use in the process that answered the scrape.",
            )
            used.add_metric([], pool.checkedout())
            yield used
            size = GaugeMetricFamily(
                "govshare_db_pool_size", "Connections the pool keeps (without overflow)."
            )
            size.add_metric([], pool.size())
            yield size
        free = GaugeMetricFamily(
            "govshare_data_dir_free_bytes", "Free bytes on the data directory's disk."
        )
        free.add_metric([], shutil.disk_usage(self.settings.data_dir).free)
        yield free
        if self.settings.is_sqlite:
            size_bytes = GaugeMetricFamily(
                "govshare_database_bytes",
                "Size of the hub's SQLite database files.",
                labels=["file"],
            )
            for name in ("govshare.db", "govshare.db-wal", "shared.db", "shared.db-wal"):
                path = self.settings.data_dir / name
                if path.exists():
                    size_bytes.add_metric([name], path.stat().st_size)
            yield size_bytes


class Exposition:
    """The text a scrape gets: the processes' counters and the hub's gauges."""

    def __init__(self, collector: HubCollector) -> None:
        self.hub = CollectorRegistry(auto_describe=False)
        self.hub.register(collector)

    def render(self) -> bytes:
        path = os.environ.get(MULTIPROC_ENV)
        if path:
            processes = CollectorRegistry()
            MultiProcessCollector(processes, path=path)
            counted = generate_latest(processes)
        else:
            counted = generate_latest(REGISTRY)
        return counted + generate_latest(self.hub)
