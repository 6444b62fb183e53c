"""The row API (数据行接口) over a live hub: paging with signed keyset cursors, sorting,
filters, shapes, CSV, the time limit, and refusals that are JSON, never a 500, never a
value of a dataset that is not 无条件开放."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy import Column, Date, Integer, MetaData, Numeric, String, Table, text

from govshare.cursors import CursorCodec
from govshare.opendata import portal, rows
from govshare.opendata.download import OpenTable, download_engine
from govshare.opendata.errors import QueryTimedOut, RowsError
from tests.factories import World
from tests.live import LiveHub
from tests.opendata.builders import open_scene
from tests.opendata.portal_builders import (
    FORMULA,
    ITEMS,
    UNPUBLISHED_COLUMN,
    PortalScene,
    attach_store,
    person,
    portal_scene,
)

pytestmark = pytest.mark.xdist_group("opendata")
DAYS = ("2024-01-01", "2024-02-01", "2024-03-01")
BIG_ROWS = 20_000


def _people() -> list[dict[str, Any]]:
    out = [person(n, "公开", djrq=DAYS[n % 3]) for n in range(1, 48)]
    out[1]["xm"] = FORMULA
    out[2]["jzdz"] = None
    out[4]["djrq"] = None
    out[5]["xm"] = "100%_特殊"
    return out


@pytest.fixture(scope="module")
def scene(hub: LiveHub) -> PortalScene:
    return portal_scene(World(hub), rows=_people())


@pytest.fixture(scope="module")
def big_slug(hub: LiveHub) -> str:
    world = World(hub)
    s = open_scene(world)
    attach_store(world, s.dept, s.open_plain["id"], [person(n, "大") for n in range(BIG_ROWS)])
    return str(s.open_plain["slug"])


def _url(scene: PortalScene, fmt: str = "json") -> str:
    return f"/open/datasets/{scene.scene.open_plain['slug']}/rows.{fmt}"


def _get(hub: LiveHub, url: str, params: Any = None) -> httpx.Response:
    with hub.client() as c:
        return c.get(url, params=params)


def _ok(hub: LiveHub, url: str, params: Any = None) -> dict[str, Any]:
    r = _get(hub, url, params)
    assert r.status_code == 200, r.text[:500]
    assert r.headers["content-type"] == "application/json"
    body: dict[str, Any] = r.json()
    assert body["ok"] is True
    return body


def _refused(hub: LiveHub, url: str, params: Any, status: int, parameter: str | None) -> str:
    r = _get(hub, url, params)
    assert r.status_code == status, r.text[:500]
    body = r.json()
    assert body["ok"] is False
    assert body["status"] == status
    assert body.get("parameter") == parameter
    message: str = body["error"]
    return message


def _walk(hub: LiveHub, url: str, params: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every page, following ``next_url`` as a client would."""
    body = _ok(hub, url, params)
    while True:
        yield body
        if body["next"] is None:
            assert body["next_url"] is None
            return
        assert "_next=" in body["next_url"]
        with hub.client() as c:
            r = c.get(body["next_url"])
        assert r.status_code == 200, r.text[:500]
        body = r.json()


def _sort_key(row: dict[str, Any], col: str, rid: int) -> tuple[Any, ...]:
    return (row[col] is None, row[col] or "", rid)


def test_pages_follow_the_key_and_return_every_row_once(hub: LiveHub, scene: PortalScene) -> None:
    pages = list(_walk(hub, _url(scene), {"_size": "10"}))
    assert [len(p["rows"]) for p in pages] == [10, 10, 10, 10, 7]
    got = [r for p in pages for r in p["rows"]]
    assert got == [{c: r[c] for c in ITEMS} for r in scene.visible_rows]
    assert pages[0]["columns"] == list(ITEMS)
    assert all(UNPUBLISHED_COLUMN not in r for r in got)


@pytest.mark.parametrize("param", ["_sort", "_sort_desc"])
@pytest.mark.parametrize("col", ["djrq", "jzdz"])
def test_sorted_pages_on_a_column_with_ties_and_nulls(
    hub: LiveHub, scene: PortalScene, param: str, col: str
) -> None:
    pages = list(_walk(hub, _url(scene), {"_size": "4", param: col}))
    got = [r for p in pages for r in p["rows"]]
    ordered = sorted(
        (({c: r[c] for c in ITEMS}, i) for i, r in enumerate(scene.visible_rows)),
        key=lambda pair: _sort_key(pair[0], col, pair[1]),
        reverse=param == "_sort_desc",
    )
    assert got == [r for r, _ in ordered]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"djrq__exact": DAYS[0]}, lambda r: r["djrq"] == DAYS[0]),
        ({"djrq": DAYS[0]}, lambda r: r["djrq"] == DAYS[0]),
        ({"djrq__gt": DAYS[0]}, lambda r: r["djrq"] is not None and r["djrq"] > DAYS[0]),
        ({"djrq__lt": DAYS[2]}, lambda r: r["djrq"] is not None and r["djrq"] < DAYS[2]),
        ({"jzdz__contains": "路1"}, lambda r: r["jzdz"] is not None and "路1" in r["jzdz"]),
        # LIKE's wildcards are matched as themselves.
        ({"xm__contains": "%_"}, lambda r: "%_" in r["xm"]),
        ({"xm__contains": "_"}, lambda r: "_" in r["xm"]),
        (
            {"djrq__gt": DAYS[0], "jzdz__contains": "2"},
            lambda r: (r["djrq"] or "") > DAYS[0] and "2" in (r["jzdz"] or ""),
        ),
    ],
)
def test_filters(hub: LiveHub, scene: PortalScene, params: dict[str, str], expected: Any) -> None:
    pages = list(_walk(hub, _url(scene), {"_size": "5", **params}))
    got = [r for p in pages for r in p["rows"]]
    want = [{c: r[c] for c in ITEMS} for r in scene.visible_rows if expected(r)]
    assert want
    assert got == want


def test_repeated_filters_on_one_column_all_apply(hub: LiveHub, scene: PortalScene) -> None:
    body = _ok(hub, _url(scene), [("xm__contains", "公开"), ("xm__contains", "4")])
    assert [r["xm"] for r in body["rows"]] == [
        r["xm"] for r in scene.visible_rows if "公开" in r["xm"] and "4" in r["xm"]
    ]


def test_arrays_shape(hub: LiveHub, scene: PortalScene) -> None:
    body = _ok(hub, _url(scene), {"_shape": "arrays", "_size": "3"})
    assert body["columns"] == list(ITEMS)
    assert body["rows"] == [[r[c] for c in ITEMS] for r in scene.visible_rows[:3]]
    assert body["rows"][1][1] == FORMULA  # JSON carries values as they are


def test_csv_page_neutralises_formulas_and_links_the_next_page(
    hub: LiveHub, scene: PortalScene
) -> None:
    r = _get(hub, _url(scene, "csv"), {"_size": "3"})
    assert r.status_code == 200, r.text[:500]
    assert r.headers["content-type"].startswith("text/csv")
    got = list(csv.reader(io.StringIO(r.text)))
    assert got[0] == list(ITEMS)
    assert len(got) == 4
    assert got[2][1] == "'" + FORMULA
    assert got[3][2] == ""  # NULL
    link = r.headers["link"]
    assert link.endswith('>; rel="next"')
    following = _get(hub, link[1 : link.index(">")])
    assert following.status_code == 200
    assert list(csv.reader(io.StringIO(following.text)))[1][0] == scene.visible_rows[3]["sfzhm"]
    last = _get(hub, _url(scene, "csv"), {"_size": "max"})
    assert "link" not in last.headers
    assert len(list(csv.reader(io.StringIO(last.text)))) == 1 + len(scene.visible_rows)


def test_size_defaults_and_caps(hub: LiveHub, scene: PortalScene) -> None:
    assert len(_ok(hub, _url(scene))["rows"]) == len(scene.visible_rows)  # below 100
    assert _ok(hub, _url(scene), {"_size": "max"})["next"] is None
    for bad in ("5000", "1001", "0", "-1", "x", "1.5", "１０"):
        message = _refused(hub, _url(scene), {"_size": bad}, 400, "_size")
        assert "1000" in message


def test_datasets_without_open_rows_answer_404_with_nothing_of_theirs(
    hub: LiveHub, scene: PortalScene
) -> None:
    s = scene.scene
    for entry in [*s.hidden, s.open_conditional, s.in_change]:
        for key in (entry["slug"], entry["code"], str(entry["id"])):
            for fmt in ("json", "csv"):
                url = f"/open/datasets/{key}/rows.{fmt}"
                for params in ({}, {"_sort": "xm"}, {"nbbz": "x"}, {"_size": "max"}):
                    r = _get(hub, url, params)
                    assert r.status_code == 404, (url, params, r.text[:300])
                    if "/" not in key:  # a code with "/" matches no route: the 404 page
                        body = r.json()
                        assert body["ok"] is False
                        assert body["status"] == 404
                    assert all(v not in r.text for v in scene.hidden_values)
                    assert entry["name"] not in r.text
    message = _refused(hub, f"/open/datasets/{s.open_conditional['slug']}/rows.json", {}, 404, None)
    assert "有条件开放" in message
    _refused(hub, f"/open/datasets/{s.open_plain['slug']}/rows.xml", {}, 404, None)
    _refused(hub, "/open/datasets/no-such-thing/rows.json", {}, 404, None)


def test_cursors_cannot_be_crafted_tampered_or_carried_elsewhere(
    hub: LiveHub, scene: PortalScene
) -> None:
    first = _ok(hub, _url(scene), {"_size": "2"})
    cursor = first["next"]
    assert "sfzhm" not in cursor
    assert scene.visible_rows[1]["sfzhm"] not in cursor
    tampered = cursor[:-2] + ("A" if cursor[-2] != "A" else "B") + cursor[-1]
    other_sort = _ok(hub, _url(scene), {"_size": "2", "_sort": "xm"})["next"]
    foreign = CursorCodec("another-hub-secret-" + "x" * 32).encode(
        f"open-rows:{scene.scene.open_plain['id']}::asc", [2]
    )
    for bad in (tampered, "", "W1td", "not a cursor", other_sort, foreign, cursor + "A"):
        message = _refused(hub, _url(scene), {"_size": "2", "_next": bad}, 400, "_next")
        assert "游标" in message
    # The cursor of the key order cannot be replayed with a sort either.
    _refused(hub, _url(scene), {"_next": cursor, "_sort_desc": "xm"}, 400, "_next")
    assert _ok(hub, _url(scene), {"_size": "2", "_next": cursor})["rows"][0]["xm"] == "公开3"


@pytest.mark.parametrize(
    ("params", "parameter"),
    [
        ({"nbbz": "x"}, "nbbz"),  # a store column no published item names
        ({"rid__gt": "3"}, "rid__gt"),  # the store's key, not published
        ({"nosuch__exact": "x"}, "nosuch__exact"),
        ({"xm__startswith": "x"}, "xm__startswith"),
        ({"xm__": "x"}, "xm__"),
        ({"_sort": "nbbz"}, "_sort"),
        ({"_sort_desc": "rid"}, "_sort_desc"),
        ({"_sort": "xm", "_sort_desc": "xm"}, "_sort_desc"),
        ({"_shape": "array"}, "_shape"),
        ({"_facet": "xm"}, "_facet"),
        ({"_where": "1=1"}, "_where"),
        ({"xm": "\x00"}, "xm"),
        ({"xm__contains": "x" * 1001}, "xm__contains"),
        ([("_size", "1"), ("_size", "2")], "_size"),
    ],
)
def test_bad_parameters_answer_400_naming_them(
    hub: LiveHub, scene: PortalScene, params: Any, parameter: str
) -> None:
    for fmt in ("json", "csv"):
        message = _refused(hub, _url(scene, fmt), params, 400, parameter)
        assert parameter in message
        assert all(v not in message for v in scene.hidden_values)


def test_dataset_page_shows_the_call_and_calls_are_counted(
    hub: LiveHub, scene: PortalScene
) -> None:
    plain = scene.scene.open_plain
    with hub.db() as session:
        before = portal.download_counts(session, plain["id"]).get("api", 0)
    _ok(hub, _url(scene), {"_size": "1"})
    _refused(hub, _url(scene), {"_size": "x"}, 400, "_size")  # a refused call is not
    with hub.db() as session:
        assert portal.download_counts(session, plain["id"]).get("api", 0) == before + 1
    html = _get(hub, f"/open/datasets/{plain['slug']}").text
    assert f"{_url(scene)}?_size=" in html
    cond = scene.scene.open_conditional
    assert "/rows." not in _get(hub, f"/open/datasets/{cond['slug']}").text


def test_a_query_past_the_time_limit_answers_timeout(hub: LiveHub, big_slug: str) -> None:
    url = f"/open/datasets/{big_slug}/rows.json"
    params = {"_size": "1", "jzdz__contains": "大", "_sort_desc": "xm"}
    before = hub.settings.open_rows_time_limit_ms
    hub.settings.open_rows_time_limit_ms = 1
    try:
        message = _refused(hub, url, params, 400, None)
        csv_message = _refused(hub, url.replace(".json", ".csv"), params, 400, None)
    finally:
        hub.settings.open_rows_time_limit_ms = before
    assert "查询超时" in message
    assert csv_message == message
    # The same query within the limit, and the connection is usable again afterwards.
    assert _ok(hub, url, params)["rows"][0]["xm"] == "大9999"
    assert len(_ok(hub, url, {"_size": "max"})["rows"]) == 1000


def test_time_limit_stops_a_slow_statement_and_frees_the_connection(hub: LiveHub) -> None:
    engine = download_engine(hub.settings.resolved_shared_store_url)
    try:
        slow = (
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100000000)"
            " SELECT count(*) FROM n"
            if engine.dialect.name == "sqlite"
            else "SELECT pg_sleep(5)"
        )
        with pytest.raises(QueryTimedOut) as caught, rows.time_limited(engine, 5) as conn:
            conn.execute(text(slow))
        assert "查询超时" in caught.value.message
        for _ in range(6):  # every pooled connection: none keeps the handler or timeout
            with rows.time_limited(engine, 5000) as conn:
                assert conn.execute(text("SELECT 1")).scalar() == 1
        with engine.connect() as conn:
            assert conn.execute(text("SELECT 1")).scalar() == 1
    finally:
        engine.dispose()


def _typed_table() -> OpenTable:
    table = Table(
        "typed",
        MetaData(),
        Column("rid", Integer, primary_key=True),
        Column("n", Integer),
        Column("amount", Numeric(12, 2)),
        Column("day", Date),
        Column("name", String(20)),
    )
    columns = (table.c.n, table.c.amount, table.c.day, table.c.name)
    return OpenTable(None, table, (table.c.rid,), columns, 0)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        (("n__gt", "10"), 10),
        (("amount__lt", "2.50"), Decimal("2.50")),
        (("day", "2024-01-02"), date(2024, 1, 2)),
        (("name__contains", "10"), "10"),
        (("n__contains", "10"), "10"),  # contains compares the text
    ],
)
def test_filter_values_take_the_column_type(raw: tuple[str, str], value: Any) -> None:
    q = rows.parse_query(_typed_table(), CursorCodec("k" * 32), [raw])
    assert q.filters[0].value == value
    assert type(q.filters[0].value) is type(value)


@pytest.mark.parametrize(
    "raw",
    [("n__gt", "x"), ("n", "1.5"), ("n", str(2**63)), ("amount", "NaN"), ("day__lt", "2024-13-01")],
)
def test_filter_values_not_of_the_column_type_are_refused(raw: tuple[str, str]) -> None:
    with pytest.raises(RowsError) as caught:
        rows.parse_query(_typed_table(), CursorCodec("k" * 32), [raw])
    assert caught.value.parameter == raw[0]
    assert raw[0] in caught.value.message
