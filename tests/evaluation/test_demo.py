"""The demo shows a ranking on first run: three months evaluated, the older two
published, departments scored and ranked, the platform indicators counted."""

from __future__ import annotations

from datetime import date

import pytest

from govshare import db
from govshare.config import Settings
from govshare.demo import load_demo
from govshare.evaluation import service
from govshare.evaluation.models import RunStatus
from govshare.rules.clock import fixed_today

DEMO_DAY = date(2025, 6, 9)  # before the records are written: every date must come from the demo


@pytest.mark.parametrize("backend", ["sqlite"])
def test_demo_has_a_ranking_and_a_trend(fresh_settings: Settings) -> None:
    engine = db.make_engine(fresh_settings)
    factory = db.make_session_factory(engine, fresh_settings)
    with fixed_today(DEMO_DAY), db.session_scope(factory) as s:
        counts = load_demo(s, "demo-password-1", settings=fresh_settings)
    assert counts["evaluations"] == 3
    with db.session_scope(factory) as s:
        runs = service.list_runs(s)
        assert [r.month for r in runs] == ["2025-05", "2025-04", "2025-03"]
        assert [r.status for r in runs] == [
            RunStatus.DRAFT,
            RunStatus.PUBLISHED,
            RunStatus.PUBLISHED,
        ]
        ranking = service.ranking(s, runs[0])
        scored = [r for r in ranking if r.score is not None]
        assert len(scored) >= 10
        assert ranking[0].rank == 1
        assert runs[0].platform["dept_coverage"]["value"] > 0
        assert sum(r.indicators["catalog_complete"]["records"] for r in ranking) > 100
        # The duty register counts: most demo duties are served by an entry.
        duties = [r.indicators["duty_coverage"] for r in ranking]
        assert sum(d["records"] for d in duties) > 50
        assert sum(d["hits"] for d in duties) > sum(d["records"] for d in duties) / 2
        # The year to date of the newest month adds up this year's stored months.
        assert runs[0].year_to_date is not None
        assert runs[0].year_to_date["months"] == ["2025-03", "2025-04", "2025-05"]
    engine.dispose()
