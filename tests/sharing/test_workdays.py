"""Working-day arithmetic on the Chinese calendar, checked against the 2026 schedule:
National Day 10月1日–7日 off with 9月20日 (Sun) and 10月10日 (Sat) worked; Spring
Festival 2月15日–23日 off with 2月14日 (Sat) and 2月28日 (Sat) worked."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import select

from govshare import db
from govshare.config import Settings
from govshare.exchange.models import Alert, AlertKind
from govshare.sharing import service
from govshare.sharing.errors import CalendarYearMissing
from govshare.sharing.workdays import (
    add_working_days,
    install_holidays,
    is_working_day,
    working_days_between,
)


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


def test_a_year_without_calendar_data_fails_loudly() -> None:
    with pytest.raises(CalendarYearMissing, match="2031"):
        add_working_days(date(2031, 3, 2), 1)


def test_the_bureau_enters_a_year_the_calendar_does_not_know(tmp_path: Path) -> None:
    # A New Year's Day off on Friday 2027-01-01 and a make-up working Saturday 01-09.
    file = tmp_path / "holidays.json"
    file.write_text(
        json.dumps({"2027": {"holidays": ["2027-01-01"], "workdays": ["2027-01-09"]}}),
        encoding="utf-8",
    )
    install_holidays(file)
    try:
        # 12/31 (Thu) + 1: Friday is off, the weekend too → Monday 01-04.
        assert add_working_days(date(2026, 12, 31), 1) == date(2027, 1, 4)
        # 01-08 (Fri) + 1: the make-up Saturday 01-09 counts.
        assert add_working_days(date(2027, 1, 8), 1) == date(2027, 1, 9)
        with pytest.raises(CalendarYearMissing, match="2031"):
            add_working_days(date(2031, 3, 2), 1)
    finally:
        install_holidays(None)
    with pytest.raises(CalendarYearMissing, match="2027"):
        add_working_days(date(2026, 12, 31), 1)


def test_a_holidays_file_with_a_wrong_date_is_refused(tmp_path: Path) -> None:
    file = tmp_path / "holidays.json"
    file.write_text(json.dumps({"2027": {"holidays": ["2028-01-01"]}}), encoding="utf-8")
    with pytest.raises(ValueError, match="2028-01-01 不属于 2027 年"):
        install_holidays(file)
    with pytest.raises(CalendarYearMissing):
        add_working_days(date(2027, 3, 2), 1)  # nothing half-loaded


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
            assert service.alert_calendar_gap(s, fresh_settings, date(2099, 12, 1))
        (alert,) = open_alerts()
        assert "2100" in alert.message
        assert "GOVSHARE_HOLIDAYS_FILE" in alert.message

        file = tmp_path / "holidays.json"
        file.write_text(json.dumps({"2100": {"holidays": ["2100-01-01"]}}), encoding="utf-8")
        install_holidays(file)
        with db.session_scope(factory) as s:
            assert not service.alert_calendar_gap(s, fresh_settings, date(2099, 12, 1))
        assert open_alerts() == []
    finally:
        install_holidays(None)
        engine.dispose()
