"""Chinese working days (工作日): statutory holidays and make-up working days (调休上班).

A year's schedule comes from, in this order:

1. the platform admin's entry in the console (节假日安排, kept in the hub database),
2. the holidays file (``GOVSHARE_HOLIDAYS_FILE``),
3. the ``chinesecalendar`` package, which ships one table per year some weeks after
   the State Council publishes it each November.

A year none of them knows is never an error: its working days are estimated from the
week alone (Monday to Friday), and every deadline that counts a day of it is marked
provisional (预计) until the year's schedule arrives and the deadline is recomputed.
Refusing to compute would stop sharing at every turn of the year.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from enum import StrEnum
from functools import cache
from pathlib import Path

import chinese_calendar

# The years the package and the console may speak of: a schedule outside them is a typo.
FIRST_YEAR, LAST_YEAR = 2000, 2100


class CalendarSource(StrEnum):
    """Where a year's working days come from (节假日安排来源)."""

    CONSOLE = "console"
    FILE = "file"
    PACKAGE = "package"
    ESTIMATE = "estimate"

    @property
    def known(self) -> bool:
        return self is not CalendarSource.ESTIMATE

    @property
    def label(self) -> str:
        return {
            "console": "控制台录入",
            "file": "节假日文件",
            "package": "内置日历",
            "estimate": "未录入，按周末推算（预计）",
        }[self.value]


@dataclass(frozen=True, slots=True)
class YearSchedule:
    """One year's official schedule: days off and make-up working days; the other days
    of the year follow the week."""

    year: int
    holidays: frozenset[date]
    workdays: frozenset[date]


@dataclass(frozen=True, slots=True)
class Deadline:
    """A deadline counted in working days; ``provisional`` (预计) when a day counted
    falls in a year whose schedule is not known yet."""

    due: date
    provisional: bool


class ScheduleInvalid(ValueError):
    """A year's schedule as typed or filed is wrong; ``problems`` name each fault in
    Chinese (field ``holidays`` or ``workdays``)."""

    def __init__(self, problems: list[dict[str, str]]) -> None:
        super().__init__("；".join(p["message"] for p in problems))
        self.problems = problems


_console: dict[int, YearSchedule] = {}
_file: dict[int, YearSchedule] = {}


@cache
def _package_covers(year: int) -> bool:
    try:
        chinese_calendar.is_workday(date(year, 6, 1))
    except NotImplementedError:
        return False
    return True


def source_of(year: int) -> CalendarSource:
    if year in _console:
        return CalendarSource.CONSOLE
    if year in _file:
        return CalendarSource.FILE
    if _package_covers(year):
        return CalendarSource.PACKAGE
    return CalendarSource.ESTIMATE


def covers(year: int) -> bool:
    """Whether ``year``'s official schedule is known (console, file or package)."""
    return source_of(year).known


def is_working_day(day: date) -> bool:
    schedule = _console.get(day.year) or _file.get(day.year)
    if schedule is not None:
        if day in schedule.holidays:
            return False
        return day in schedule.workdays or day.weekday() < 5
    if _package_covers(day.year):
        return _package_workday(day)
    return day.weekday() < 5


@cache
def _package_workday(day: date) -> bool:
    # The package checks its arguments on every call, which was a sixth of accepting a
    # case (each deadline asks day by day); its tables never change in a process.
    return bool(chinese_calendar.is_workday(day))


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


def deadline(start: date, n: int) -> Deadline:
    """``add_working_days`` with the mark of an estimate: provisional when a day counted
    (after ``start``, up to the due date) falls in a year without its official schedule."""
    due = add_working_days(start, n)
    first = start + timedelta(days=1)  # the first day counted
    return Deadline(due, not all(covers(y) for y in range(first.year, due.year + 1)))


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


# -- schedules entered by the bureau ---------------------------------------------------


_RANGE = re.compile(r"^(\d{4}-\d{1,2}-\d{1,2})\s*(?:~|～|至|--)\s*(\d{4}-\d{1,2}-\d{1,2})$")
_SEPARATORS = re.compile(r"[\s,，、;；]+")


def _parse_day(text: str) -> date:
    y, m, d = (int(part) for part in text.split("-"))
    return date(y, m, d)


def _parse_days(
    year: int, field: str, label: str, value: str | Iterable[str]
) -> tuple[set[date], list[dict[str, str]]]:
    """Dates written ``2027-01-01`` or as a range ``2027-02-15~2027-02-21`` (also ``至``),
    separated by new lines, commas, 、 or spaces; with a problem for each wrong one."""
    tokens = _SEPARATORS.split(value) if isinstance(value, str) else list(value)
    days: set[date] = set()
    problems: list[dict[str, str]] = []
    # A range may have been written with spaces round its sign: glue those back first.
    text = " ".join(t for t in tokens if t)
    text = re.sub(r"\s*(~|～|至|--)\s*", r"\1", text)
    for token in text.split():
        try:
            found = _RANGE.match(token)
            if found:
                first, last = _parse_day(found.group(1)), _parse_day(found.group(2))
                if last < first:
                    problems.append(
                        {"field": field, "message": f"{label}“{token}”的结束日早于开始日"}
                    )
                    continue
                span = (first + timedelta(days=i) for i in range((last - first).days + 1))
                picked = set(span)
            elif re.fullmatch(r"\d{4}-\d{1,2}-\d{1,2}", token):
                picked = {_parse_day(token)}
            else:
                raise ValueError(token)
        except ValueError:
            problems.append(
                {
                    "field": field,
                    "message": f"{label}“{token[:40]}”不是日期，应写作 {year}-01-01 "
                    f"或区间 {year}-02-15~{year}-02-21",
                }
            )
            continue
        wrong = sorted(d for d in picked if d.year != year)
        if wrong:
            problems.append(
                {"field": field, "message": f"{label} {wrong[0].isoformat()} 不属于 {year} 年"}
            )
            continue
        days |= picked
    return days, problems


def parse_schedule(
    year: int, holidays: str | Iterable[str], workdays: str | Iterable[str]
) -> YearSchedule:
    """A year's schedule from the dates the bureau typed or filed, checked: every date
    in that year, none both off and worked, make-up working days on weekends only.
    Raises ``ScheduleInvalid`` with every problem at once."""
    if not FIRST_YEAR <= year <= LAST_YEAR:
        raise ScheduleInvalid(
            [{"field": "year", "message": f"年份须在 {FIRST_YEAR}–{LAST_YEAR} 之间"}]
        )
    off, problems = _parse_days(year, "holidays", "放假日期", holidays)
    worked, more = _parse_days(year, "workdays", "调休上班日期", workdays)
    problems += more
    problems += [
        {"field": "workdays", "message": f"{d.isoformat()} 同时列为放假和调休上班"}
        for d in sorted(off & worked)
    ]
    problems += [
        {"field": "workdays", "message": f"调休上班日 {d.isoformat()} 不是周六或周日"}
        for d in sorted(worked)
        if d.weekday() < 5
    ]
    if not off and not problems:
        problems.append({"field": "holidays", "message": "请填写该年的法定节假日放假日期"})
    if problems:
        raise ScheduleInvalid(problems)
    return YearSchedule(year, frozenset(off), frozenset(worked))


# The entered years by the database they were read from. A hub process reads one; the
# test suite runs several hubs in one process, whose periodic reloads must not take
# each other's years away.
_console_sources: dict[str, dict[int, YearSchedule]] = {}


def install_entered(schedules: Iterable[YearSchedule], source: str = "") -> None:
    """The years entered in the console, read from the hub database ``source``,
    replacing those installed from it before."""
    global _console
    _console_sources[source] = {s.year: s for s in schedules}
    merged: dict[int, YearSchedule] = {}
    for name in sorted(_console_sources):
        merged.update(_console_sources[name])
    _console = merged  # one assignment: a reader sees the old years or the new, never none


def install_holidays(path: Path | None) -> None:
    """Load a holidays file: ``{"2027": {"holidays": ["2027-01-01", …], "workdays":
    ["2027-02-07", …]}}``: statutory days off and make-up working days (调休上班) of
    each year; the other days of those years follow the week (Monday to Friday).
    Nothing is installed from a file with any fault."""
    _file.clear()
    if path is None:
        return
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise TypeError("应为 {年份: {holidays: […], workdays: […]}}")
        loaded = [
            parse_schedule(int(year), days.get("holidays", []), days.get("workdays", []))
            for year, days in data.items()
        ]
    except (OSError, ValueError, AttributeError, TypeError) as exc:
        raise ValueError(f"节假日文件 {path} 无法读取: {exc}") from None
    _file.update({s.year: s for s in loaded})
