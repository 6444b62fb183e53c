"""Today in China: the one clock that deadlines, grant validity and calendars count by.

Tests and rehearsals stand the whole platform on a fixed day with ``fixed_today``
instead of patching time; every domain reads ``china_today()`` at call time, so the
fixed day reaches a hub served in the same process too.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta, timezone

CHINA = timezone(timedelta(hours=8), "Asia/Shanghai")  # no daylight saving since 1991

_fixed: date | None = None


def china_today() -> date:
    """Today's date in China (Beijing time), or the day fixed by ``fixed_today``."""
    if _fixed is not None:
        return _fixed
    return datetime.now(UTC).astimezone(CHINA).date()


def china_date(moment: datetime) -> date:
    """The date in China of an aware moment (stored times are UTC)."""
    return moment.astimezone(CHINA).date()


@contextmanager
def fixed_today(day: date) -> Iterator[None]:
    """Count every deadline in the block as if today were ``day``."""
    global _fixed
    before, _fixed = _fixed, day
    try:
        yield
    finally:
        _fixed = before
