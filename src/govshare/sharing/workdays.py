"""Chinese working-day arithmetic (工作日): statutory holidays and make-up working days
(调休上班) from the ``chinesecalendar`` package.

The package ships one table per year, published each November by the State Council.
Until a release carries a new year, the bureau enters that year's official schedule in
a holidays file (``GOVSHARE_HOLIDAYS_FILE``); a year known to neither raises
``CalendarYearMissing`` naming that year, since guessing from weekends would silently
give wrong deadlines around holidays.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import chinese_calendar

from govshare.sharing.errors import CalendarYearMissing

CHINA = timezone(timedelta(hours=8), "Asia/Shanghai")  # no daylight saving since 1991


def china_today() -> date:
    """Today's date in China; deadlines are counted in Beijing time."""
    return datetime.now(UTC).astimezone(CHINA).date()


# Years the bureau entered itself: day → working?, and the years they cover.
_entered: dict[date, bool] = {}
_entered_years: set[int] = set()


def install_holidays(path: Path | None) -> None:
    """Load a holidays file: ``{"2027": {"holidays": ["2027-01-01", …], "workdays":
    ["2027-02-07", …]}}``: statutory days off and make-up working days (调休上班) of
    each year; the other days of those years follow the week (Monday to Friday)."""
    _entered.clear()
    _entered_years.clear()
    if path is None:
        return
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        for year, days in data.items():
            for key, working in (("holidays", False), ("workdays", True)):
                for text in days.get(key, []):
                    day = date.fromisoformat(text)
                    if day.year != int(year):
                        raise ValueError(f"{text} 不属于 {year} 年")
                    _entered[day] = working
            _entered_years.add(int(year))
    except (OSError, ValueError, AttributeError, TypeError) as exc:
        _entered.clear()
        _entered_years.clear()
        raise ValueError(f"节假日文件 {path} 无法读取: {exc}") from None


def is_working_day(day: date) -> bool:
    if day.year in _entered_years:
        return _entered.get(day, day.weekday() < 5)
    try:
        return bool(chinese_calendar.is_workday(day))
    except NotImplementedError as exc:
        raise CalendarYearMissing(
            f"节假日历缺少 {day.year} 年数据，无法计算工作日期限；请升级 chinesecalendar "
            f"(working-day calendar has no data for {day.year})",
            details=[{"field": "year", "message": str(day.year)}],
        ) from exc


def calendar_covers(day: date) -> bool:
    """Whether the working days of ``day``'s year are known (package or file)."""
    try:
        is_working_day(day)
    except CalendarYearMissing:
        return False
    return True


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
