"""Quality scans of a shared store that keeps its sensitive items sealed (字段加密), on
both backends: the scan opens what it must check and comes out exactly as on the same
data in the clear — numbers, failing values in their order, duplicate keys — while
the failing values it keeps in the hub database are masked as the console masks
sensitive items: no ID number, name, birth date or telephone number in the clear and
no sealed cell."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import text

from govshare.quality import scan as scanning
from govshare.rules.masking import STARS, mask_id_number, mask_name, mask_phone
from govshare.rules.validators import is_blank
from govshare.sharing.store import SharedDatabase
from tests.factories import World
from tests.quality.builders import (
    citizen_id,
    messy,
    person,
    planted,
    store_with_rows,
)
from tests.quality.test_pushdown import _everything
from tests.quality.test_scan import NOW

# The key, a name, a birth date and a telephone number: the masks the console gives
# them (证件号码, 姓名, 完全遮蔽 by default, 电话号码).
SEALED = ("sfzhm", "xm", "csrq", "lxdh")
MASKS = {"sfzhm": mask_id_number, "xm": mask_name, "csrq": lambda _v: STARS, "lxdh": mask_phone}


@pytest.fixture
def shared(world: World) -> Iterator[SharedDatabase]:
    db = SharedDatabase.of(world.hub.settings)
    yield db
    db.close()


def _masked(item: str, value: str | None) -> str | None:
    if value is None or item not in MASKS or is_blank(value):
        return value
    return MASKS[item](value)


def _numbered(key: str) -> bool:
    """A problem's record named by its record number (its key is blank)."""
    return key.isdigit() and len(key) <= 4


def _key_masked(key: str) -> str:
    return key if _numbered(key) else str(_masked("sfzhm", key))


def _raw(shared: SharedDatabase, table: str) -> list[tuple[Any, ...]]:
    with shared.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(f"SELECT sfzhm, xm, csrq FROM {table}"))]


@pytest.mark.parametrize("batch_rows", [7, 1000])
def test_a_sealed_store_scans_as_the_same_data_in_the_clear(
    world: World, shared: SharedDatabase, monkeypatch: pytest.MonkeyPatch, batch_rows: int
) -> None:
    rows = messy(400) + [person() for _ in range(100)]
    dept = world.department("公安局")
    applied = NOW - timedelta(hours=1)
    clear = store_with_rows(world, dept, rows, applied_at=applied)
    sealed = store_with_rows(world, dept, rows, applied_at=applied, sealed=SEALED)
    stored = _raw(shared, sealed.table_name)
    assert all(c is None or str(c).startswith("~") for r in stored for c in r)
    # Read in concurrent primary-key ranges, as a large table is.
    monkeypatch.setattr(scanning, "RANGES", 3)
    monkeypatch.setattr(scanning, "RANGE_MIN_ROWS", 10)
    numbers, problems = _everything(clear, shared, batch_rows=batch_rows)
    sealed_numbers, sealed_problems = _everything(sealed, shared, batch_rows=batch_rows)

    assert sealed_numbers == numbers
    assert numbers["rows_scanned"] == 500
    assert numbers["validity_failed"] > 0
    assert numbers["uniqueness_failed"] > 0
    assert len(sealed_problems) == len(problems)
    # The same failing values, masked where sealed, in the same order (duplicates are
    # listed by key, and sealed keys order otherwise).
    seen = {(d, item) for d, item, *_ in problems}
    assert {(d, i) for d, i in seen if i in SEALED} >= {
        ("completeness", "sfzhm"),
        ("validity", "sfzhm"),
        ("validity", "csrq"),
        ("validity", "lxdh"),
        ("uniqueness", "sfzhm"),
    }
    expected = [
        (d, item, _masked(item, value), _key_masked(key), rule)
        for d, item, value, key, rule, _m in problems
    ]
    found = [(d, item, value, key, rule) for d, item, value, key, rule, _m in sealed_problems]
    unique = [p for p in expected if p[0] == "uniqueness"]
    assert [p for p in found if p[0] != "uniqueness"] == [
        p for p in expected if p[0] != "uniqueness"
    ]
    assert sorted(p for p in found if p[0] == "uniqueness") == sorted(unique)
    pairs = zip(problems, sealed_problems, strict=True)
    for (d, item, value, key, _r, message), (*_, shown_key, _rule, shown) in pairs:
        if d == "uniqueness":
            continue
        # Nothing of a sealed value in the clear, nor its record's key, nor a cell.
        for plain in (value if item in SEALED else None, None if _numbered(key) else key):
            if plain is not None and not is_blank(plain) and len(plain.strip()) >= 4:
                assert plain.strip() not in shown, (item, plain, shown)
                assert plain.strip() not in shown_key
        assert "~" not in shown
        assert "~" not in shown_key
        if item not in SEALED or value is None or value.strip() not in message:
            assert shown == message  # a message that does not name the value is kept
    for _d, _i, value, key, _r, message in sealed_problems:
        assert not str(value).startswith("~")
        assert "~" not in key
        assert "~" not in message


def test_planted_defects_and_duplicate_sealed_keys_are_found_masked(
    world: World, shared: SharedDatabase
) -> None:
    provider = world.department("公安局")
    p = planted()
    scene = store_with_rows(
        world, provider, p.rows, applied_at=NOW - timedelta(hours=5), sealed=SEALED
    )
    scan, problems = _everything(scene, shared)
    # The numbers of the same rows in the clear (tests/quality/test_scan.py).
    assert scan["rows_scanned"] == 36
    assert (scan["completeness_checked"], scan["completeness_failed"]) == (36, 2)
    assert (scan["validity_checked"], scan["validity_failed"]) == (36 * 7 - 2, 9)
    assert (scan["uniqueness_checked"], scan["uniqueness_failed"]) == (34, 3)
    assert scan["problems_kept"] == 14

    kept = {(d, item, v) for d, item, v, *_ in problems}
    planted_set = {(d, item, None if v is None else _masked(item, v)) for d, item, v in p.expected}
    assert kept == planted_set
    duplicates = [(v, k, m) for d, _i, v, k, _r, m in problems if d == "uniqueness"]
    assert len(duplicates) == 3
    held = {r["sfzhm"] for r in p.rows}
    for value, key, message in duplicates:
        assert value == key
        assert key in {mask_id_number(k) for k in held if k and k.strip()}
        assert message in (f"查询键 {key} 在共享信息库中出现 {n} 次" for n in (2, 3))
    phone = next(m for d, i, *_, m in problems if (d, i) == ("validity", "lxdh"))
    assert phone == "长度 22 字节，超过声明的长度 20 字节"
    birth = [m for d, i, *_, m in problems if (d, i) == ("validity", "csrq")]
    assert sorted(birth) == [f"{STARS} 不是有效日期（如 2024-01-31、20240131、2024/1/31）"] * 2
    assert any(m == "公民身份号码校验位不正确" for d, i, *_, m in problems if i == "sfzhm")
    plain = {r[c] for r in p.rows for c in ("sfzhm", "lxdh") if r[c] and r[c].strip()}
    plain |= {"2023-02-30", "20231301"}  # the failing birth dates (the message's examples pass)
    for d, item, value, key, _r, message in problems:
        for field in (str(value), key, message):
            assert "~" not in field
            assert not any(x in field for x in plain), (d, item, field)


def test_the_console_shows_a_sealed_stores_failing_values_masked(world: World) -> None:
    """The live hub's own scan (立即检测) and its API: the provider and a supervising
    admin both see the masked values, a duplicate key masked, no sealed cell."""
    p = planted()
    scene = store_with_rows(
        world, world.department("公安局"), p.rows, applied_at=NOW, sealed=("sfzhm", "xm")
    )
    with world.api(scene.provider.resource_admin) as c:
        r = c.post(f"/api/v1/quality/resources/{scene.resource_id}/scans")
        assert r.status_code == 201, r.text
        scan = r.json()
    assert scan["status"] == "done", scan
    assert (scan["validity_failed"], scan["uniqueness_failed"]) == (9, 3)
    for user in (scene.provider.resource_admin, world.admin):
        with world.api(user) as c:
            r = c.get(f"/api/v1/quality/scans/{scan['id']}/problems", params={"limit": 100})
            assert r.status_code == 200, r.text
            items = r.json()["items"]
        assert len(items) == 14
        assert "~" not in r.text
        ids = {citizen_id(n) for n in range(1000)} | {row["sfzhm"] for row in p.rows}
        assert not any(i in r.text for i in ids if i and i.strip())
        unique = [i for i in items if i["dimension"] == "uniqueness"]
        assert len(unique) == 3
        assert all(i["value"] == i["row_key"] and "********" in i["value"] for i in unique)
        wrong = [
            i["value"] for i in items if (i["dimension"], i["item_code"]) == ("validity", "sfzhm")
        ]
        assert len(wrong) == 3
        assert all(w[6:14] == "********" for w in wrong)
