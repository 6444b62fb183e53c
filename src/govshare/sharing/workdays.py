"""Chinese working-day arithmetic (工作日): statutory holidays and make-up working days
(调休上班) from the ``chinesecalendar`` package.

The package ships one table per year, published each November by the State Council.
A year it does not know raises ``CalendarYearMissing`` naming that year; guessing from
weekends would silently give wrong deadlines around holidays.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import chinese_calendar

from govshare.sharing.errors import CalendarYearMissing

CHINA = timezone(timedelta(hours=8), "Asia/Shanghai")  # no daylight saving since 1991


def china_today() -> date:
    """Today's date in China; deadlines are counted in Beijing time."""
    return datetime.now(UTC).astimezone(CHINA).date()


def is_working_day(day: date) -> bool:
    try:
        return bool(chinese_calendar.is_workday(day))
    except NotImplementedError as exc:
        raise CalendarYearMissing(
            f"节假日历缺少 {day.year} 年数据，无法计算工作日期限；请升级 chinesecalendar "
            f"(working-day calendar has no data for {day.year})",
            details=[{"field": "year", "message": str(day.year)}],
        ) from exc


def add_working_days(start: date, n: int) -> date:
    """The ``n``-th working day after ``start`` (``start`` itself is not counted);
    ``start`` when ``n`` is 0."""
    if n < 0:
        raise ValueError("n must not be negative")
    day = start
    while n:
        day += timedelta(days=1)
        if is_working_day(day):
            n -= 1
    return day


def working_days_between(a: date, b: date) -> int:
    """Working days after ``a`` up to and including ``b``; negative when ``b`` is
    before ``a``. ``working_days_between(d, add_working_days(d, n)) == n``."""
    if b < a:
        return -working_days_between(b, a)
    count, day = 0, a
    while day < b:
        day += timedelta(days=1)
        count += is_working_day(day)
    return count
