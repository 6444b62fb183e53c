"""Calendar months counted in Beijing time: the month of an evaluation, of a
supervision report, of any monthly figure."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from govshare.rules.clock import CHINA


@dataclass(frozen=True, slots=True)
class Month:
    """一个自然月 (考核月, 监察月): its days (for working-day deadlines) and its bounds
    in UTC (for timestamps), both counted in Beijing time."""

    year: int
    month: int

    @classmethod
    def parse(cls, text: str) -> Month:
        """``2026-11`` → Month; ValueError on anything else."""
        if len(text) != 7 or text[4] != "-" or not (text[:4] + text[5:]).isdigit():
            raise ValueError(text)
        year, month = int(text[:4]), int(text[5:])
        if not (2000 <= year <= 2999 and 1 <= month <= 12):
            raise ValueError(text)
        return cls(year, month)

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"

    @property
    def first_day(self) -> date:
        return date(self.year, self.month, 1)

    @property
    def last_day(self) -> date:
        return self.next().first_day - timedelta(days=1)

    def next(self) -> Month:
        return Month(self.year + self.month // 12, self.month % 12 + 1)

    def previous(self) -> Month:
        return Month(self.year - (self.month == 1), (self.month - 2) % 12 + 1)

    @property
    def start(self) -> datetime:
        return datetime.combine(self.first_day, time(), CHINA).astimezone(UTC)

    @property
    def end(self) -> datetime:
        """The first moment after the month (exclusive bound)."""
        return self.next().start
