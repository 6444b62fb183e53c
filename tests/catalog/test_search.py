"""Chinese full-text search with facets and keyset pages, the same on both databases."""

from __future__ import annotations

import base64
import io
from typing import Any

import openpyxl
import pytest

from tests.factories import PASSWORD, World, resource_payload, unique
from tests.web.test_pages import sign_in

CRAFTED_CURSORS = [
    "[5,1]",
    '["x","y"]',
    "[null,null]",
    '[[1],{"a":1}]',
    '["2026-01-01", "1"]',
    "[]",
]

LIST = "/api/v1/catalog/resources"


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _search(world: World, user: str, **params: Any) -> dict[str, Any]:
    with world.api(user) as c:
        r = c.get("/api/v1/catalog/resources", params=params)
    assert r.status_code == 200, r.text
    return r.json()


def test_finds_published_entry_by_chinese_words(world: World) -> None:
    dept, reader = world.department("殡葬局"), world.department("读者局")
    marker = unique("火化")
    res = world.published(
        dept, name=f"殡葬{marker}登记信息", abstract="殡仪馆火化登记，可与死亡注销信息多元校核。"
    )
    for q in ["火化登记", "殡仪馆", "死亡注销", f"殡葬{marker}"]:
        found = _search(world, reader.registrar, q=q, department_id=dept.id)
        assert [r["id"] for r in found["items"]] == [res["id"]], q


def test_item_names_and_provider_are_searchable(world: World) -> None:
    dept = world.department("婚姻登记处")
    res = world.published(
        dept,
        items=[
            {
                "name": "男方公民身份号码",
                "code": "nfsfzhm",
                "data_type": "C",
                "length": 18,
                "is_key": True,
            },
            {"name": "结婚登记日期", "code": "jhdjrq", "data_type": "D"},
        ],
    )
    by_item = _search(world, dept.registrar, q="公民身份号码", department_id=dept.id)
    assert res["id"] in [r["id"] for r in by_item["items"]]
    by_provider = _search(world, dept.registrar, q=dept.name)
    assert res["id"] in [r["id"] for r in by_provider["items"]]


def test_all_words_must_match(world: World) -> None:
    dept = world.department()
    world.published(dept, name="企业纳税信用等级", abstract="纳税信用评价结果")
    assert (
        _search(world, dept.registrar, q="纳税信用 火星探测", department_id=dept.id)["total"] == 0
    )


def test_unpublished_entries_are_not_in_the_sharing_catalog(world: World) -> None:
    dept, reader = world.department(), world.department("读者局")
    marker = unique("草稿")
    draft = world.add_resource(dept, name=f"{marker}人口信息")
    assert _search(world, reader.registrar, q=marker)["total"] == 0
    mine = _search(world, dept.registrar, q=marker, scope="mine")
    assert [r["id"] for r in mine["items"]] == [draft["id"]]
    # Another department cannot widen its scope to see drafts.
    assert _search(world, reader.registrar, q=marker, scope="all")["total"] == 0
    assert _search(world, world.admin, q=marker, scope="all")["total"] == 1


def test_facets_count_the_matched_set(world: World) -> None:
    dept = world.department()
    marker = unique("分面")
    world.published(dept, name=f"{marker}甲", sharing_type="1", sharing_conditions="")
    world.published(dept, name=f"{marker}乙", update_cycle="monthly")
    world.published(dept, name=f"{marker}丙", classification_code="102001", is_open=False)
    page = _search(world, dept.registrar, q=marker)
    assert page["total"] == 3
    facets = {
        k: {v["value"]: (v["label"], v["count"]) for v in vals}
        for k, vals in page["facets"].items()
    }
    assert facets["department"] == {str(dept.id): ("测试局", 3)}
    assert facets["sharing_type"] == {"1": ("无条件共享", 1), "2": ("有条件共享", 2)}
    assert facets["update_cycle"] == {"daily": ("每日", 2), "monthly": ("每月", 1)}
    assert facets["classification"] == {"101": ("人口", 2), "102": ("法人单位", 1)}
    assert facets["kind"] == {"base": ("基础信息资源", 3)}
    assert facets["is_open"] == {"false": ("不开放", 3)}
    filtered = _search(world, dept.registrar, q=marker, sharing_type="2", update_cycle="daily")
    assert filtered["total"] == 1
    assert _search(world, dept.registrar, q=marker, classification="102")["total"] == 1


def test_keyset_pages_cover_everything_once(world: World) -> None:
    dept = world.department()
    marker = unique("分页")
    ids = {world.published(dept, name=f"{marker}第{i}号")["id"] for i in range(7)}
    for sort in ["relevance", "updated", "name"]:
        seen: list[int] = []
        cursor = None
        while True:
            params = {
                "q": marker,
                "limit": 3,
                "sort": sort,
                **({"cursor": cursor} if cursor else {}),
            }
            page = _search(world, dept.registrar, **params)
            seen += [r["id"] for r in page["items"]]
            cursor = page["next_cursor"]
            if not cursor:
                break
        assert sorted(seen) == sorted(ids), sort


def test_published_entries_ranked_below_many_drafts_still_page_through(world: World) -> None:
    # The index's best matches are all drafts, which the sharing catalog hides: the pages
    # must still hold the published entries ranked far below them, each once.
    dept, reader = world.department(), world.department("读者局")
    marker = unique("排位")
    for i in range(9):
        world.add_resource(dept, name=f"{marker}{marker}草稿{i}")
    published = {
        world.published(dept, name=f"人口信息{i}", abstract=f"涉及{marker}的数据")["id"]
        for i in range(2)
    }
    seen: list[int] = []
    cursor = None
    while True:
        params = {"q": marker, "limit": 1, **({"cursor": cursor} if cursor else {})}
        page = _search(world, reader.registrar, **params)
        seen += [r["id"] for r in page["items"]]
        assert page["total"] == 2
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert sorted(seen) == sorted(published)


def test_sort_by_name(world: World) -> None:
    dept = world.department()
    marker = unique("排序")
    for suffix in ["丙", "甲", "乙"]:
        world.published(dept, name=f"{marker}{suffix}")
    names = [r["name"] for r in _search(world, dept.registrar, q=marker, sort="name")["items"]]
    assert names == sorted(names)


def test_bad_cursor_and_limit_are_clear_errors(world: World) -> None:
    dept = world.department()
    with world.api(dept.registrar) as c:
        r = c.get("/api/v1/catalog/resources", params={"cursor": "!!garbage!!"})
        assert r.status_code == 422
        assert r.json()["error"]["details"][0]["field"] == "cursor"
        assert c.get("/api/v1/catalog/resources", params={"limit": 0}).status_code == 422


@pytest.mark.parametrize("sort", ["relevance", "updated", "name"])
def test_crafted_cursors_are_refused_on_lists_and_exports(world: World, sort: str) -> None:
    dept = world.department()
    marker = unique("游标")
    for i in range(3):
        world.published(dept, name=f"{marker}第{i}号")
    with world.api(dept.registrar) as c:
        for raw in CRAFTED_CURSORS:
            for path, q in [(LIST, marker), (LIST, ""), (f"{LIST}/export", marker)]:
                r = c.get(path, params={"q": q, "sort": sort, "cursor": _b64(raw)})
                assert r.status_code == 422, (path, raw, r.status_code, r.text[:200])
                assert r.json()["error"]["code"] == "invalid_cursor"
                assert r.json()["error"]["details"][0]["field"] == "cursor"


def test_cursors_are_sealed_to_their_list(world: World) -> None:
    dept = world.department()
    marker = unique("封存")
    for i in range(3):
        world.published(dept, name=f"{marker}第{i}号")
    page = _search(world, dept.registrar, q=marker, sort="name", limit=1)
    cursor = page["next_cursor"]
    assert marker not in base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode(
        errors="replace"
    )
    flipped = cursor[:10] + ("A" if cursor[10] != "A" else "B") + cursor[11:]
    with world.api(dept.registrar) as c:
        for bad, sort in [(cursor, "updated"), (flipped, "name"), (cursor[:-4], "name")]:
            r = c.get(
                "/api/v1/catalog/resources", params={"q": marker, "sort": sort, "cursor": bad}
            )
            assert r.status_code == 422, (sort, r.text)
            assert r.json()["error"]["code"] == "invalid_cursor"
    after = _search(world, dept.registrar, q=marker, sort="name", limit=1, cursor=cursor)
    assert after["items"][0]["id"] != page["items"][0]["id"]


def test_withdrawn_entry_leaves_the_index(world: World) -> None:
    dept = world.department()
    marker = unique("撤销")
    res = world.published(dept, name=f"{marker}信息")
    world.step(dept.registrar, res["id"], "withdraw", reason="职能划转")
    assert _search(world, dept.registrar, q=marker)["total"] == 0


def test_punctuation_and_quotes_in_queries_are_safe(world: World) -> None:
    dept = world.department()
    for q in ['"', "'", "人口 AND OR NOT", "人口*", "(人口", "：；、", "-人口", "NEAR(人口)"]:
        assert _search(world, dept.registrar, q=q)["total"] >= 0


def test_export_search_result_as_csv_and_xlsx(world: World) -> None:
    dept = world.department()
    marker = unique("导出")
    world.published(dept, name=f"{marker}信息")
    with world.api(dept.registrar) as c:
        csv = c.get("/api/v1/catalog/resources/export", params={"q": marker, "as": "csv"})
        xlsx = c.get("/api/v1/catalog/resources/export", params={"q": marker, "as": "xlsx"})
    text = csv.content.decode("utf-8-sig")
    assert text.splitlines()[0].startswith("资源序号,信息资源名称")
    assert len(text.splitlines()) == 1 + len(resource_payload()["items"])
    assert f"{marker}信息" in text
    assert xlsx.content[:2] == b"PK"


def test_a_change_in_review_is_seen_by_nobody_outside_the_department(world: World) -> None:
    # A published entry is edited (变更): until the change is published, every other
    # reader finds, lists and exports the published text only; the department sees
    # its draft in 本部门目录.
    dept, reader = world.department("变更局"), world.department("读者局")
    secret = unique("draftonly").replace("_", "")
    res = world.published(dept, name="流动人口居住登记信息")
    items = resource_payload()["items"]
    items[1] = {**items[1], "name": f"姓名{secret}", "description": f"说明{secret}"}
    changed = resource_payload(
        name=f"流动人口{secret}信息", abstract=f"新版摘要 {secret}", items=items
    )
    with world.api(dept.registrar) as c:
        r = c.put(f"/api/v1/catalog/resources/{res['id']}", json={**changed, "reason": "变更"})
        assert r.status_code == 200, r.text

    found = _search(world, reader.registrar, q=secret)
    assert (found["items"], found["total"]) == ([], 0)
    assert all(values == [] for values in found["facets"].values())
    listed = _search(world, reader.registrar, department_id=dept.id)
    assert [(r["name"], r["abstract"]) for r in listed["items"]] == [
        ("流动人口居住登记信息", res["abstract"][:200])
    ]
    with world.api(reader.registrar) as c:
        params = {"department_id": dept.id}
        csv = c.get("/api/v1/catalog/resources/export", params={**params, "as": "csv"})
        xlsx = c.get("/api/v1/catalog/resources/export", params={**params, "as": "xlsx"})
    with world.hub.client() as browser:
        sign_in(browser, reader.registrar, PASSWORD)
        page = browser.get("/catalog", params=params).text
    assert "流动人口居住登记信息" in csv.content.decode("utf-8-sig")
    cells = [
        str(v)
        for sheet in openpyxl.load_workbook(io.BytesIO(xlsx.content)).worksheets
        for row in sheet.iter_rows(values_only=True)
        for v in row
    ]
    assert "流动人口居住登记信息" in cells
    assert "流动人口居住登记信息" in page
    for shown in (csv.content.decode("utf-8-sig"), " ".join(cells), page):
        assert secret not in shown

    mine = _search(world, dept.registrar, scope="mine", department_id=dept.id)
    assert [r["name"] for r in mine["items"]] == [f"流动人口{secret}信息"]


def _item(name: str, code: str) -> dict[str, Any]:
    return {"name": name, "code": code, "data_type": "C", "length": 50, "is_key": True}


def test_parts_of_names_and_items_are_found_however_jieba_splits_them(world: World) -> None:
    dept = world.department("卫健委")
    birth = world.published(
        dept,
        name="出生医学证明信息",
        items=[_item("新生儿姓名", "xsexm"), _item("法定代表人姓名", "fddbrxm")],
    )
    # Parts of words, and words typed together that stand apart in the entry.
    for q in [
        "出生医学证",
        "生医学",
        "医学证明",
        "法定代表",
        "定代表人",
        "新生儿",
        "医学证明新生儿",
    ]:
        found = _search(world, dept.registrar, q=q, department_id=dept.id)
        assert [r["id"] for r in found["items"]] == [birth["id"]], q
    # Every part must be there: a pair the entry lacks finds nothing.
    assert _search(world, dept.registrar, q="出生死亡", department_id=dept.id)["items"] == []


def test_name_matches_rank_above_item_matches_above_the_rest(world: World) -> None:
    dept = world.department("市场监管局")
    code = "统一社会信用代码"
    mentions = world.published(
        dept,
        name="企业年报抽查信息",
        abstract=f"抽查企业年报，按{code}归集；{code}为企业的唯一标识，{code}不可更改。",
    )
    in_items = world.published(
        dept, name="企业登记信息", items=[_item(code, "tyshxydm"), _item("企业名称", "qymc")]
    )
    in_name = world.published(
        dept, name=f"{code}赋码信息", items=[_item("赋码日期", "fmrq"), _item("机构名称", "jgmc")]
    )
    for scope in ("catalog", "mine"):
        found = _search(world, dept.registrar, q=code, department_id=dept.id, scope=scope)
        assert [r["id"] for r in found["items"]] == [in_name["id"], in_items["id"], mentions["id"]]
