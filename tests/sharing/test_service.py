"""Deadlines and reminders on fixed dates around the 2026 National Day holiday."""

from __future__ import annotations

from datetime import date

from govshare.config import Settings
from govshare.sharing import service
from govshare.sharing.schemas import ApplicationCreate, ApproveIn
from tests.conftest import TEST_SECRET
from tests.factories import World
from tests.sharing.builders import application_payload, far_end, principal


def test_deadlines_and_reminders_in_working_days(world: World) -> None:
    provider, consumer = world.department("公安局"), world.department("人社局")
    res = world.published(provider)
    settings = Settings(secret_key=TEST_SECRET)
    asker = principal(consumer.resource_admin, consumer.id)
    answerer = principal(provider.resource_admin, provider.id)
    body = ApplicationCreate.model_validate(
        application_payload(res["id"], end_date=far_end().isoformat())
    )
    with world.hub.db() as s:
        first = service.apply(s, settings, asker, body, today=date(2026, 9, 28))
        # 9/29, 9/30, 10/8, 10/9, 10/10 (Sat, worked), 10/12 … 10/16.
        assert first.answer_due == date(2026, 10, 16)
        second = service.apply(s, settings, asker, body, today=date(2026, 9, 30))
        assert second.answer_due == date(2026, 10, 20)

        def due(today: date) -> list[tuple[int, str, int, bool]]:
            return [
                (r.application_id, r.kind, r.working_days_left, r.overdue)
                for r in service.due_reminders(
                    s, today, remind_before=2, provider_department_id=provider.id
                )
            ]

        assert due(date(2026, 10, 13)) == []
        assert due(date(2026, 10, 14)) == [(first.id, "answer", 2, False)]
        assert due(date(2026, 10, 19)) == [
            (first.id, "answer", -1, True),
            (second.id, "answer", 1, False),
        ]

        service.approve(s, settings, answerer, first, ApproveIn(), today=date(2026, 10, 9))
        # 10/10 (Sat, worked), 10/12, 10/13, 10/14, 10/15.
        assert first.provide_due == date(2026, 10, 15)
        assert due(date(2026, 10, 16)) == [
            (first.id, "provide", -1, True),
            (second.id, "answer", 2, False),
        ]
