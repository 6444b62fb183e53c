"""Working-day arithmetic on the Chinese calendar, checked against the 2026 schedule:
National Day 10月1日–7日 off with 9月20日 (Sun) and 10月10日 (Sat) worked; Spring
Festival 2月15日–23日 off with 2月14日 (Sat) and 2月28日 (Sat) worked. A year nobody
knows yet (2098 here, far beyond any chinesecalendar release) is counted from the week
and marked provisional, never refused."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import select

from govshare import db
from govshare.config import Settings
from govshare.exchange.models import Alert, AlertKind
from govshare.rules.workdays import (
    CalendarSource,
    ScheduleInvalid,
    YearSchedule,
    add_working_days,
    deadline,
    install_entered,
    install_holidays,
    is_working_day,
    parse_schedule,
    source_of,
    working_days_between,
)
from govshare.sharing import service

UNKNOWN = 2098


def test_national_day_2026_holiday_and_make_up_days() -> None:
    assert not is_working_day(date(2026, 10, 1))
    assert not is_working_day(date(2026, 10, 7))
    assert is_working_day(date(2026, 9, 20))  # Sunday, worked
    assert is_working_day(date(2026, 10, 10))  # Saturday, worked
    assert not is_working_day(date(2026, 10, 11))


def test_answer_deadline_across_national_day() -> None:
    # 9/30 + 10: 10/8, 10/9, 10/10 (Sat), 10/12 … 10/16, 10/19, 10/20.
    assert add_working_days(date(2026, 9, 30), 10) == date(2026, 10, 20)
    # Provide within 5: 9/29, 9/30, 10/8, 10/9, 10/10 (the make-up Saturday).
    assert add_working_days(date(2026, 9, 28), 5) == date(2026, 10, 10)
    # The make-up Sunday before the holiday counts.
    assert add_working_days(date(2026, 9, 18), 1) == date(2026, 9, 20)


def test_deadline_across_spring_festival_2026() -> None:
    assert add_working_days(date(2026, 2, 12), 3) == date(2026, 2, 24)
    assert add_working_days(date(2026, 2, 12), 10) == date(2026, 3, 4)  # 2/28 (Sat) counts


def test_working_days_between_inverts_add() -> None:
    assert working_days_between(date(2026, 9, 30), date(2026, 10, 20)) == 10
    assert working_days_between(date(2026, 10, 1), date(2026, 10, 7)) == 0
    assert working_days_between(date(2026, 10, 20), date(2026, 9, 30)) == -10
    assert add_working_days(date(2026, 3, 2), 0) == date(2026, 3, 2)


def test_a_year_nobody_knows_is_counted_from_the_week_and_marked_provisional() -> None:
    assert source_of(UNKNOWN) is CalendarSource.ESTIMATE
    # 2098-12-30 is a Tuesday: ten working days are two weeks, weekends skipped.
    found = deadline(date(UNKNOWN, 12, 30), 10)
    assert found.due == date(UNKNOWN + 1, 1, 13)
    assert found.provisional
    # A known year is exact; a count that runs into an unknown one is provisional.
    assert not deadline(date(2026, 9, 30), 10).provisional
    assert deadline(date(2026, 12, 28), 10).provisional is not source_of(2027).known


def test_the_bureau_enters_a_year_the_calendar_does_not_know(tmp_path: Path) -> None:
    # New Year's Day off on Friday 2098-01-03 and a make-up working Saturday 01-11.
    file = tmp_path / "holidays.json"
    file.write_text(
        json.dumps({str(UNKNOWN): {"holidays": ["2098-01-03"], "workdays": ["2098-01-11"]}}),
        encoding="utf-8",
    )
    install_holidays(file)
    try:
        assert source_of(UNKNOWN) is CalendarSource.FILE
        # 01-02 (Thu) + 1: Friday is off, the weekend too → Monday 01-06.
        found = deadline(date(UNKNOWN, 1, 2), 1)
        assert found.due == date(UNKNOWN, 1, 6)
        assert not found.provisional
        # 01-10 (Fri) + 1: the make-up Saturday 01-11 counts.
        assert add_working_days(date(UNKNOWN, 1, 10), 1) == date(UNKNOWN, 1, 11)
        # An entry in the console comes before the file.
        install_entered([YearSchedule(UNKNOWN, frozenset(), frozenset())])
        assert source_of(UNKNOWN) is CalendarSource.CONSOLE
        assert add_working_days(date(UNKNOWN, 1, 2), 1) == date(UNKNOWN, 1, 3)
    finally:
        install_holidays(None)
        install_entered([])
    assert add_working_days(date(UNKNOWN, 1, 2), 1) == date(UNKNOWN, 1, 3)  # estimate again


def test_years_entered_in_one_database_stay_while_another_is_read_again() -> None:
    """The suite runs several hubs in one process, each reloading the years of its own
    database every tick: one hub's reload never takes another's entered year away."""
    year = YearSchedule(UNKNOWN, frozenset({date(UNKNOWN, 1, 2)}), frozenset())
    try:
        install_entered([year], source="sqlite:///a.db")
        install_entered([], source="sqlite:///b.db")
        assert source_of(UNKNOWN) is CalendarSource.CONSOLE
        assert not is_working_day(date(UNKNOWN, 1, 2))
        install_entered([], source="sqlite:///a.db")  # withdrawn where it was entered
        assert source_of(UNKNOWN) is CalendarSource.ESTIMATE
    finally:
        install_entered([], source="sqlite:///a.db")
        install_entered([], source="sqlite:///b.db")


def test_a_holidays_file_with_a_wrong_date_is_refused(tmp_path: Path) -> None:
    file = tmp_path / "holidays.json"
    file.write_text(json.dumps({"2098": {"holidays": ["2099-01-01"]}}), encoding="utf-8")
    with pytest.raises(ValueError, match="2099-01-01 不属于 2098 年"):
        install_holidays(file)
    assert source_of(UNKNOWN) is CalendarSource.ESTIMATE  # nothing half-loaded


def test_a_schedule_is_typed_as_dates_and_ranges() -> None:
    schedule = parse_schedule(
        UNKNOWN, "2098-01-01\n2098-01-29 ~ 2098-02-04，2098-10-01至2098-10-07", "2098-02-08"
    )
    assert len(schedule.holidays) == 1 + 7 + 7
    assert date(UNKNOWN, 2, 1) in schedule.holidays
    assert schedule.workdays == {date(UNKNOWN, 2, 8)}  # a Saturday


def test_every_fault_of_a_typed_schedule_is_named_in_chinese() -> None:
    with pytest.raises(ScheduleInvalid) as caught:
        parse_schedule(
            UNKNOWN,
            "2098-13-01 2097-12-31 2098-02-09~2098-02-01 元旦 2098-02-10",
            "2098-02-10 2098-02-11",
        )
    messages = [p["message"] for p in caught.value.problems]
    assert messages == [
        "放假日期“2098-13-01”不是日期，应写作 2098-01-01 或区间 2098-02-15~2098-02-21",
        "放假日期 2097-12-31 不属于 2098 年",
        "放假日期“2098-02-09~2098-02-01”的结束日早于开始日",
        "放假日期“元旦”不是日期，应写作 2098-01-01 或区间 2098-02-15~2098-02-21",
        "2098-02-10 同时列为放假和调休上班",
        "调休上班日 2098-02-10 不是周六或周日",
        "调休上班日 2098-02-11 不是周六或周日",
    ]
    with pytest.raises(ScheduleInvalid, match="请填写该年的法定节假日放假日期"):
        parse_schedule(UNKNOWN, "", "")
    with pytest.raises(ScheduleInvalid, match="年份须在"):
        parse_schedule(99999, "99999-01-01", "")


def test_the_platform_is_alerted_weeks_before_deadlines_reach_an_unknown_year(
    fresh_settings: Settings, tmp_path: Path
) -> None:
    engine = db.make_engine(fresh_settings)
    factory = db.make_session_factory(engine, fresh_settings)

    def open_alerts() -> list[Alert]:
        with factory() as s:
            return list(
                s.scalars(
                    select(Alert).where(
                        Alert.kind == AlertKind.CALENDAR_MISSING, Alert.resolved_at.is_(None)
                    )
                )
            )

    try:
        with db.session_scope(factory) as s:
            # Six weeks after 2026-10-01 is still in 2026, which the calendar knows.
            assert not service.alert_calendar_gap(s, fresh_settings, date(2026, 10, 1))
        assert open_alerts() == []
        with db.session_scope(factory) as s:
            assert service.alert_calendar_gap(s, fresh_settings, date(UNKNOWN, 12, 1))
        (alert,) = open_alerts()
        assert "2099" in alert.message
        assert "预计" in alert.message
        assert "节假日安排" in alert.message

        file = tmp_path / "holidays.json"
        file.write_text(json.dumps({"2099": {"holidays": ["2099-01-01"]}}), encoding="utf-8")
        install_holidays(file)
        with db.session_scope(factory) as s:
            assert not service.alert_calendar_gap(s, fresh_settings, date(UNKNOWN, 12, 1))
        assert open_alerts() == []
    finally:
        install_holidays(None)
        engine.dispose()
