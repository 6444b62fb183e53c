"""Working-day arithmetic on the Chinese calendar, checked against the 2026 schedule:
National Day 10月1日–7日 off with 9月20日 (Sun) and 10月10日 (Sat) worked; Spring
Festival 2月15日–23日 off with 2月14日 (Sat) and 2月28日 (Sat) worked."""

from __future__ import annotations

from datetime import date

import pytest

from govshare.sharing.errors import CalendarYearMissing
from govshare.sharing.workdays import add_working_days, is_working_day, working_days_between


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
