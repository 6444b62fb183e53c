"""The scheduled run: the previous month is computed once, on or after the run day,
with an injected day (never the real clock)."""

from __future__ import annotations

from datetime import date

from govshare import db
from govshare.config import Settings
from govshare.evaluation import tasks


def test_previous_month_is_computed_once_from_the_run_day(fresh_settings: Settings) -> None:
    engine = db.make_engine(fresh_settings)
    factory = db.make_session_factory(engine, fresh_settings)
    try:
        assert tasks.run_due(factory, date(2026, 12, 2), run_day=3) is None
        run = tasks.run_due(factory, date(2026, 12, 3), run_day=3)
        assert run is not None
        assert (run.month, run.trigger) == ("2026-11", "schedule")
        assert tasks.run_due(factory, date(2026, 12, 20), run_day=3) is None
        january = tasks.run_due(factory, date(2027, 1, 5), run_day=3)
        assert january is not None
        assert january.month == "2026-12"
    finally:
        engine.dispose()
