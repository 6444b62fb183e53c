"""Per-client limits of the data services: a rate shared out among the hub's processes
and a daily key quota counted across them."""

from __future__ import annotations

from datetime import date

import pytest

from govshare import db
from govshare.config import Settings
from govshare.sharing.data import Caller, Limits
from govshare.sharing.errors import QuotaExceeded, RateLimited

DAY = date(2026, 11, 23)


def _caller(rate: float | None = None, quota: int | None = None, client_id: int = 1) -> Caller:
    return Caller(
        client_id=client_id,
        app_key="app",
        department_id=1,
        nonce="n",
        remote_addr=None,
        rate_per_second=rate,
        daily_quota=quota,
    )


def _admitted(limits: Limits, caller: Caller, tries: int) -> int:
    ok = 0
    for _ in range(tries):
        try:
            limits.admit(caller, 1, DAY)
        except RateLimited:
            continue
        ok += 1
    return ok


@pytest.mark.parametrize(("workers", "burst"), [(1, 8), (2, 4), (4, 2), (16, 1)])
def test_each_process_admits_its_share_of_a_clients_rate(
    fresh_settings: Settings, workers: int, burst: int
) -> None:
    settings = fresh_settings.model_copy(update={"workers": workers})
    engine = db.make_engine(settings)
    try:
        now = [100.0]
        limits = Limits(settings, db.make_session_factory(engine, settings), clock=lambda: now[0])
        # A burst within one instant (the clock stands still, however slow the machine):
        # the bucket holds one second of this process's share, and never less than one call.
        assert _admitted(limits, _caller(rate=8), 20) == burst
        # Half a second later, half of that share is back.
        now[0] += 0.5
        assert _admitted(limits, _caller(rate=8), 20) == burst // 2
    finally:
        engine.dispose()


def test_the_message_names_the_clients_whole_rate(fresh_settings: Settings) -> None:
    settings = fresh_settings.model_copy(update={"workers": 4})
    engine = db.make_engine(settings)
    try:
        limits = Limits(settings, db.make_session_factory(engine, settings), clock=lambda: 100.0)
        assert _admitted(limits, _caller(rate=8), 2) == 2
        with pytest.raises(RateLimited, match="每秒至多 8 次"):
            limits.admit(_caller(rate=8), 1, DAY)
        with pytest.raises(QuotaExceeded):
            limits.admit(_caller(rate=1000, quota=5, client_id=2), 6, DAY)
    finally:
        engine.dispose()
