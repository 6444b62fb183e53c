"""A grant masks the items the catalog marks 敏感 unless its approver says otherwise:
approving as the console shows it, or through the API without naming the item, masks
it by what it holds; the approver may still choose another rule or 不脱敏. Both
backends."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date
from typing import Any

import pytest

from govshare.rules.clock import fixed_today
from tests.factories import World, resource_payload
from tests.sharing.builders import application_payload

DAY = date(2026, 9, 30)


@pytest.fixture(autouse=True)
def _on_a_fixed_day() -> Iterator[None]:
    with fixed_today(DAY):
        yield


def _sensitive_entry(world: World, provider: Any) -> dict[str, Any]:
    items = [
        {**it, "sensitive": it["code"] in ("sfzhm", "xm")} for it in resource_payload()["items"]
    ]
    return world.published(provider, items=items)


def _apply(world: World, consumer: Any, resource_id: int) -> int:
    with world.api(consumer.resource_admin) as c:
        r = c.post(
            "/api/v1/sharing/applications",
            json=application_payload(resource_id, items=["sfzhm", "xm", "jzdz"]),
        )
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


def _grant_masking(world: World, user: str, grant_id: int) -> dict[str, str]:
    with world.api(user) as c:
        grants = c.get("/api/v1/sharing/grants", params={"side": "mine"}).json()
    return next(g["masking"] for g in grants if g["id"] == grant_id)


def test_an_approval_masks_sensitive_items_the_approver_did_not_name(world: World) -> None:
    provider, consumer = world.department("公安局"), world.department("人社局")
    entry = _sensitive_entry(world, provider)
    first, second = _apply(world, consumer, entry["id"]), _apply(world, consumer, entry["id"])
    with world.api(provider.resource_admin) as c:
        plain = c.post(f"/api/v1/sharing/applications/{first}/approve", json={})
        chosen = c.post(
            f"/api/v1/sharing/applications/{second}/approve",
            json={"masking": {"xm": "none", "sfzhm": "hide"}},
        )
    assert plain.status_code == chosen.status_code == 200, (plain.text, chosen.text)
    assert _grant_masking(world, consumer.resource_admin, plain.json()["grant_id"]) == {
        "sfzhm": "id_number",
        "xm": "name",
        "jzdz": "none",  # not marked sensitive: shown as it is
    }
    assert _grant_masking(world, consumer.resource_admin, chosen.json()["grant_id"]) == {
        "sfzhm": "hide",
        "xm": "none",
        "jzdz": "none",
    }


def test_the_approval_form_has_the_sensitive_items_rules_chosen(world: World) -> None:
    provider, consumer = world.department("公安局"), world.department("人社局")
    entry = _sensitive_entry(world, provider)
    app_id = _apply(world, consumer, entry["id"])
    with world.api(provider.resource_admin) as c:
        page = c.get(f"/sharing/applications/{app_id}").text

    def chosen(code: str) -> str | None:
        select = re.search(rf'<select name="masking_{code}".*?</select>', page, re.S)
        assert select is not None, code
        found = re.search(r'<option value="(\w+)" selected>', select.group(0))
        return found.group(1) if found else None

    assert (chosen("sfzhm"), chosen("xm"), chosen("jzdz")) == ("id_number", "name", "none")
    form = re.search(rf'action="/sharing/applications/{app_id}/approve.*?</form>', page, re.S)
    assert form is not None
    assert form.group(0).count(">敏感</span>") == 2


def test_a_grant_showing_a_sensitive_item_in_the_clear_says_so(world: World) -> None:
    provider, consumer = world.department("公安局"), world.department("人社局")
    entry = _sensitive_entry(world, provider)
    masked, clear = _apply(world, consumer, entry["id"]), _apply(world, consumer, entry["id"])
    with world.api(provider.resource_admin) as c:
        ids = {
            app_id: c.post(f"/api/v1/sharing/applications/{app_id}/approve", json=body).json()[
                "grant_id"
            ]
            for app_id, body in ((masked, {}), (clear, {"masking": {"xm": "none"}}))
        }
    for user, url in (
        (consumer.resource_admin, "/sharing/grants"),
        (provider.resource_admin, "/sharing/grants/provider"),
    ):
        with world.api(user) as c:
            page = c.get(url).text
        rows = {
            grant_id: re.search(rf'<tr id="grant-{grant_id}">.*?</tr>', page, re.S)
            for grant_id in ids.values()
        }
        assert all(rows.values()), url
        shown = {g: row.group(0) for g, row in rows.items() if row}
        assert "敏感·明文" not in shown[ids[masked]], url
        assert shown[ids[clear]].count("敏感·明文") == 1, url
