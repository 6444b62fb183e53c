"""One label per state: what a chip, a table and a filter call an entry's status."""

from __future__ import annotations

from govshare.catalog import service
from govshare.catalog.codes import STATUS_LABELS, ResourceStatus


def test_every_status_has_one_label_of_its_own() -> None:
    labels = [s.label for s in ResourceStatus]
    assert len(set(labels)) == len(labels)
    assert set(STATUS_LABELS) == set(ResourceStatus)


def test_a_status_is_not_named_after_the_step_that_led_to_it() -> None:
    steps = {step.label for step in service.STEPS.values()}
    assert {s.label for s in ResourceStatus} & steps == set()
    assert ResourceStatus.PUBLISHED.label == "已发布"
    assert ResourceStatus.WITHDRAWN.label == "已取消发布"


def test_a_grant_badge_says_what_the_grant_list_tabs_say() -> None:
    from govshare.app import make_templates
    from govshare.sharing.pages.grants import GRANT_STATES

    env = make_templates().env
    badge = env.from_string(
        '{% from "sharing/_macros.html" import grant_badge %}{{ grant_badge(s) }}'
    )
    for state, label in GRANT_STATES.items():
        assert f">{label}</span>" in badge.render(s=state)
