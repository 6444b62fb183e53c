"""Usage of open datasets (使用情况): page views, downloads and row-API calls per dataset
and day (China time), for the departments and the bureau.

Downloads and API calls are counted as they are served (``portal.count_download``, one
upsert each). Page views are far more frequent than downloads, and a write per view
would queue every visitor behind SQLite's one writer; so views are added up in memory
and written at most every ``flush_seconds`` (and when the hub stops). A hub killed with
``kill -9`` loses at most that many seconds of view counts, never a download count.
All counts live in ``open_download`` (format ``view`` for views, ``api`` for API calls,
``csv``/``json``/``xlsx``/``file`` for downloads); no visitor is recorded.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass
from datetime import date, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from govshare.catalog.models import Resource
from govshare.db import session_scope
from govshare.opendata.models import OpenDownload
from govshare.opendata.portal import count_download
from govshare.rules.clock import china_today
from govshare.security.service import Principal

VIEW = "view"
API = "api"
DOWNLOADS = ("csv", "json", "xlsx", "file")
SERIES = (("views", "浏览"), ("downloads", "下载"), ("api", "接口调用"))
DAYS_SHOWN = 30


class ViewCounter:
    """Page views added up in memory, written in one transaction every few seconds."""

    def __init__(self, factory: sessionmaker[Session], flush_seconds: float = 5.0) -> None:
        self.factory = factory
        self.flush_seconds = flush_seconds
        self._pending: Counter[tuple[int, date]] = Counter()
        self._lock = threading.Lock()
        self._last = time.monotonic()

    def add(self, resource_id: int) -> None:
        """One view today; writes the pending views when they are due."""
        with self._lock:
            self._pending[(resource_id, china_today())] += 1
            due = time.monotonic() - self._last >= self.flush_seconds
        if due:
            self.flush()

    def flush(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, Counter()
            self._last = time.monotonic()
        if not pending:
            return
        with session_scope(self.factory) as session:
            for (resource_id, day), n in sorted(pending.items()):
                count_download(session, resource_id, VIEW, n=n, day=day)


@dataclass(frozen=True, slots=True)
class DatasetUsage:
    resource_id: int
    code: str
    name: str
    views: int
    downloads: int
    api: int


@dataclass(frozen=True, slots=True)
class Usage:
    """A department's (or the city's) open datasets over a span of days."""

    first: date
    last: date
    days: list[date]
    views: list[int]
    downloads: list[int]
    api: list[int]
    datasets: list[DatasetUsage]

    @property
    def totals(self) -> dict[str, int]:
        return {"views": sum(self.views), "downloads": sum(self.downloads), "api": sum(self.api)}

    def chart(self, title: str) -> dict[str, object]:
        return {
            "title": title,
            "type": "line",
            "labels": [d.strftime("%m-%d") for d in self.days],
            "series": [{"name": label, "values": getattr(self, key)} for key, label in SERIES],
        }


def _kind(fmt: str) -> str | None:
    if fmt == VIEW:
        return "views"
    if fmt == API:
        return "api"
    return "downloads" if fmt in DOWNLOADS else None


def usage(
    session: Session,
    caller: Principal,
    *,
    last: date,
    days: int = DAYS_SHOWN,
    resource_id: int | None = None,
) -> Usage:
    """Views, downloads and API calls per day for the datasets the caller may see the
    usage of (its department's; the platform: all), ending on ``last``."""
    first = last - timedelta(days=days - 1)
    query = (
        select(
            OpenDownload.resource_id,
            OpenDownload.day,
            OpenDownload.format,
            func.sum(OpenDownload.count),
        )
        .join(Resource, Resource.id == OpenDownload.resource_id)
        .where(OpenDownload.day >= first, OpenDownload.day <= last)
        .group_by(OpenDownload.resource_id, OpenDownload.day, OpenDownload.format)
    )
    if not caller.is_admin:
        query = query.where(Resource.provider_department_id == caller.department_id)
    if resource_id is not None:
        query = query.where(OpenDownload.resource_id == resource_id)
    span = [first + timedelta(days=i) for i in range(days)]
    per_day = {key: [0] * days for key, _ in SERIES}
    per_dataset: dict[int, Counter[str]] = {}
    for rid, day, fmt, n in session.execute(query):
        kind = _kind(fmt)
        if kind is None:
            continue
        per_day[kind][(day - first).days] += int(n)
        per_dataset.setdefault(rid, Counter())[kind] += int(n)
    names = {
        r.id: (r.code, r.name)
        for r in session.execute(
            select(Resource.id, Resource.code, Resource.name).where(Resource.id.in_(per_dataset))
        )
    }
    datasets = sorted(
        (
            DatasetUsage(
                resource_id=rid,
                code=names[rid][0],
                name=names[rid][1],
                views=c["views"],
                downloads=c["downloads"],
                api=c["api"],
            )
            for rid, c in per_dataset.items()
        ),
        key=lambda d: (-(d.views + d.downloads + d.api), d.code),
    )
    return Usage(
        first, last, span, per_day["views"], per_day["downloads"], per_day["api"], datasets
    )
