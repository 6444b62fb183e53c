"""就绪检查 (``/readyz``): whether this hub process can serve now — its database, its
package store (the hub database or NATS JetStream), the shared stores, free disk space
under the data directory, and a working-day calendar that knows the coming days.

``/healthz`` says the process is alive; ``/readyz`` says a load balancer may send it
traffic and an operator need not look. Each check is bounded by what it touches and
reports a message an operator can act on.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, text

from govshare.exchange.store import PackageStore
from govshare.rules import workdays

MIB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Check:
    """One check's outcome: ``ok`` and a message saying what was found."""

    name: str
    ok: bool
    message: str
    seconds: float
    # A check that is not critical warns (status "warn") without making the hub unready:
    # a missing holiday schedule makes deadlines provisional, it stops no request.
    critical: bool = True

    def public(self) -> dict[str, Any]:
        out = asdict(self)
        out["status"] = "ok" if self.ok else ("fail" if self.critical else "warn")
        out["seconds"] = round(self.seconds, 4)
        return out


def _timed(name: str, probe: Callable[[], tuple[bool, str]]) -> Check:
    started = time.perf_counter()
    try:
        ok, message = probe()
    except Exception as exc:  # any failure is the check's answer, never the caller's 500
        ok, message = False, f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}"
    return Check(name, ok, message, time.perf_counter() - started)


def _select_one(engine: Engine) -> tuple[bool, str]:
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))
    return True, f"可以查询 ({engine.dialect.name} answers)"


def check_database(engine: Engine) -> Check:
    """The hub database answers a query."""
    return _timed("database", lambda: _select_one(engine))


def check_bus(store: PackageStore) -> Check:
    """The package store answers (NATS: the stream's info; embedded: the hub database)."""
    return _timed("bus", lambda: (True, store.ping()))


def check_shared_stores(engine: Engine) -> Check:
    """The database of the shared stores (共享信息库) answers a query."""
    return _timed("shared_stores", lambda: _select_one(engine))


def _disk(path: Path, min_free_mb: int) -> tuple[bool, str]:
    free = shutil.disk_usage(path).free
    message = (
        f"数据目录所在磁盘剩余 {free // MIB} MiB，至少需要 {min_free_mb} MiB "
        f"({free // MIB} MiB free under {path}, at least {min_free_mb} MiB required)"
    )
    return free >= min_free_mb * MIB, message


def check_disk(path: Path, min_free_mb: int) -> Check:
    """The data directory's disk has at least ``min_free_mb`` MiB free."""
    return _timed("disk", lambda: _disk(path, min_free_mb))


def _calendar(today: date, days: int) -> tuple[bool, str]:
    end = today + timedelta(days=days)
    missing = [y for y in range(today.year, end.year + 1) if not workdays.covers(y)]
    if missing:
        years = "、".join(str(y) for y in missing)
        return False, (
            f"节假日历缺少 {years} 年的放假与调休安排，{end.isoformat()} 前的期限只能按周末推算 "
            f"(working-day calendar lacks {', '.join(map(str, missing))})"
        )
    return True, f"节假日历已知至 {end.isoformat()} (calendar known through {end.isoformat()})"


def check_calendar(today: date, days: int) -> Check:
    """The working-day calendar knows every day from ``today`` through ``days`` ahead
    (``days`` 0: not checked)."""
    if days == 0:
        return Check("calendar", True, "未检查 (ready_calendar_days = 0)", 0.0, critical=False)
    return replace(_timed("calendar", lambda: _calendar(today, days)), critical=False)


def readiness(
    *,
    engine: Engine,
    store: PackageStore,
    shared_engine: Engine,
    data_dir: Path,
    min_free_mb: int,
    calendar_days: int,
    today: date,
) -> list[Check]:
    """Every check, in a fixed order; the hub is ready when every critical one passes
    (:func:`is_ready`)."""
    return [
        check_database(engine),
        check_bus(store),
        check_shared_stores(shared_engine),
        check_disk(data_dir, min_free_mb),
        check_calendar(today, calendar_days),
    ]


def is_ready(checks: list[Check]) -> bool:
    """Every critical check passed (the calendar only warns)."""
    return all(c.ok or not c.critical for c in checks)
