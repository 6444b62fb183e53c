"""多元校核 on a base's first assembly, over the live hub on both backends: a record whose
evidence disagrees on two items has two conflicts, one per item, and both stay open.

The first assembly finds the disagreements item by item (one set-based query each);
each item's findings must not close the conflicts an earlier item opened for the same
record."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.basedata.test_flow import _get, _open_conflicts, base_entry
from tests.factories import World
from tests.quality.builders import ITEMS, store_with_rows

pytestmark = pytest.mark.xdist_group("basedata")


def _number(i: int) -> str:
    return f"37020219800101{i:04d}"[-18:]


def test_a_record_disagreeing_on_two_items_keeps_a_conflict_for_each(world: World) -> None:
    police = world.department("公安")
    civil = world.department("民政")
    people = [{"rid": i, "sfzhm": _number(i), "xm": f"居民{i}", "xb": "1"} for i in range(1, 6)]
    authority = store_with_rows(world, police, people, items=ITEMS)
    # 民政 names person 2 differently and gives another sex; person 4 differs in sex only.
    seen = [
        {"rid": 1, "sfzhm": _number(2), "xm": "别名二", "xb": "2"},
        {"rid": 2, "sfzhm": _number(4), "xm": "居民4", "xb": "2"},
        {"rid": 3, "sfzhm": _number(5), "xm": "居民5", "xb": "1"},
    ]
    evidence = store_with_rows(world, civil, seen, items=ITEMS)
    owner = world.department("大数据局")
    sex = {"name": "性别", "code": "xb", "data_type": "C", "length": 1, "code_table": "GB/T 2261.1"}
    resource = base_entry(
        world, owner, "人口基础信息", sex, sharing_type="1", sharing_conditions=""
    )
    with world.api(world.admin) as c:
        r = c.post(
            "/api/v1/base-databases",
            json={
                "resource_id": resource["id"],
                "key_item": "sfzhm",
                "items": [
                    {
                        "item": item,
                        "source": {"store_id": authority.store_id, "column": item},
                        "evidence": [{"store_id": evidence.store_id, "column": item}],
                    }
                    for item in ("xm", "xb")
                ],
            },
        )
        assert r.status_code == 201, r.text
        base_id = r.json()["id"]

    def assembled() -> dict[str, Any]:
        return dict(_get(world, world.admin, f"/api/v1/base-databases/{base_id}"))

    deadline = time.monotonic() + 60  # the hub's runner assembles a new base at once
    while (shown := assembled())["row_count"] != len(people) or not shown["assembled_at"]:
        assert time.monotonic() < deadline, shown
        time.sleep(0.2)
    found = {
        (c["record_key"], c["item"], c["evidence_value"])
        for c in _open_conflicts(world, police.resource_admin, base_id)
    }
    assert found == {
        (_number(2), "xm", "别名二"),
        (_number(2), "xb", "2"),
        (_number(4), "xb", "2"),
    }
    assert assembled()["conflicts"].get("resolved", 0) == 0  # none opened and closed again
