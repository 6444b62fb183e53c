"""The public portal over a live hub: pages, streamed downloads, the sitemap and
schema.org JSON-LD, and the sweep of every public route with every entry's names that
fails on any value that is not open."""

from __future__ import annotations

import csv
import io
import json
import re
from typing import Any

import httpx
import pytest
from openpyxl import load_workbook

from govshare.opendata.datasets import dataset_uuid
from govshare.rules.spreadsheet import UTF8_BOM
from tests.factories import World
from tests.live import LiveHub
from tests.opendata.builders import SECRET
from tests.opendata.dev_builders import apply_for, approve_latest, developer, gate, key_id_of
from tests.opendata.portal_builders import (
    FORMULA,
    ITEMS,
    UNPUBLISHED_COLUMN,
    PortalScene,
    person,
    portal_scene,
)

pytestmark = pytest.mark.xdist_group("opendata")
JSON_LD = re.compile(r'<script type="application/ld\+json">(.*?)</script>', re.S)


@pytest.fixture(scope="module")
def scene(hub: LiveHub) -> PortalScene:
    return portal_scene(World(hub))


def _get(hub: LiveHub, url: str, **params: Any) -> httpx.Response:
    with hub.client() as c:
        return c.get(url, params=params)


def _page(hub: LiveHub, url: str, **params: Any) -> str:
    r = _get(hub, url, **params)
    assert r.status_code == 200, r.text[:500]
    assert r.headers["content-type"].startswith("text/html")
    return r.text


def test_home_shows_totals_and_datasets_without_signing_in(
    hub: LiveHub, scene: PortalScene
) -> None:
    html = _page(hub, "/open/")
    assert "公共数据开放平台" in html
    assert 'class="sidebar"' not in html
    assert "登录" not in html
    assert scene.scene.open_plain["name"] in html
    rows = int(re.search(r'id="total-rows">([\d,]+)<', html).group(1).replace(",", ""))  # type: ignore[union-attr]
    assert rows >= len(scene.visible_rows)


def test_search_with_facets(hub: LiveHub, scene: PortalScene) -> None:
    s = scene.scene
    html = _page(hub, "/open/datasets", q=s.marker)
    assert "共找到 <strong>3</strong> 个数据集" in html
    for entry in s.open:
        assert f"/open/datasets/{entry['slug']}" in html
    for facet in ("publisher", "theme", "format", "update_cycle", "open_type"):
        assert f'id="facet-{facet}"' in html
    assert "无条件开放" in html
    assert "有条件开放" in html
    assert "每月" in html
    html = _page(hub, "/open/datasets", q=s.marker, open_type="conditional")
    assert "共找到 <strong>1</strong> 个数据集" in html
    assert f"/open/datasets/{s.open_conditional['slug']}" in html
    html = _page(hub, "/open/datasets", q=s.marker, publisher=s.slug, page="99999999")
    assert "共找到 <strong>3</strong> 个数据集" in html


def test_dataset_page_previews_rows_with_charts_json_ld_and_the_api_calls(
    hub: LiveHub, scene: PortalScene
) -> None:
    plain = scene.scene.open_plain
    html = _page(hub, f"/open/datasets/{plain['slug']}")
    preview = html.split('id="preview"')[1].split("</table>")[0]
    assert preview.count("<tr>") == 11  # the header and the first ten rows
    assert "公开1<" in preview
    assert "公开10<" in preview
    assert "公开11<" not in preview
    assert "=HYPERLINK(&#34;" in preview or "=HYPERLINK(&quot;" in preview
    assert UNPUBLISHED_COLUMN not in html
    assert "内部备注" not in html
    assert 'data-chart="chart-nulls"' in html
    assert f"/api/3/action/package_show?id={plain['slug']}" in html
    for fmt in ("csv", "xlsx", "json"):
        assert f"/open/datasets/{plain['slug']}/download.{fmt}" in html
    (ld,) = JSON_LD.findall(html)
    body = json.loads(ld)
    assert body["@type"] == "Dataset"
    assert body["name"] == plain["name"]
    assert body["identifier"] == plain["code"]
    assert body["license"].startswith("https://creativecommons.org/licenses/by/4.0")
    with hub.client() as c:
        shown = c.get(f"/api/3/action/package_show?id={plain['slug']}").json()["result"]
    assert shown["name"] == plain["slug"]


def test_conditional_dataset_shows_its_conditions_and_no_rows(
    hub: LiveHub, scene: PortalScene
) -> None:
    cond = scene.scene.open_conditional
    html = _page(hub, f"/open/datasets/{cond['slug']}")
    assert "实名注册开发者申请" in html
    assert "开发者申请" in html
    assert 'id="preview"' not in html
    assert "/download." not in html
    assert "有条件值" not in html
    r = _get(hub, f"/open/datasets/{cond['slug']}/download.csv")
    assert r.status_code == 404
    assert "有条件开放" in r.text
    assert "有条件值" not in r.text
    r = _get(hub, f"/open/datasets/{cond['slug']}/download.json")
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "not_found"


def test_csv_download_has_every_published_row_and_no_formula(
    hub: LiveHub, scene: PortalScene
) -> None:
    plain = scene.scene.open_plain
    r = _get(hub, f"/open/datasets/{plain['slug']}/download.csv")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/csv")
    assert "attachment" in r.headers["content-disposition"]
    text = r.content.decode("utf-8")
    assert text.startswith(UTF8_BOM)
    rows = list(csv.reader(io.StringIO(text[1:])))
    assert rows[0] == list(ITEMS)
    assert len(rows) == 1 + len(scene.visible_rows)
    assert rows[1] == [str(scene.visible_rows[0][i]) for i in ITEMS]
    assert rows[2][1] == "'" + FORMULA
    assert rows[3][2] == ""


def test_json_and_xlsx_downloads_match_the_rows(hub: LiveHub, scene: PortalScene) -> None:
    plain = scene.scene.open_plain
    want = [{i: r[i] for i in ITEMS} for r in scene.visible_rows]
    r = _get(hub, f"/open/datasets/{plain['slug']}/download.json")
    assert r.status_code == 200
    assert r.json() == want
    r = _get(hub, f"/open/datasets/{plain['slug']}/download.xlsx")
    assert r.status_code == 200
    ws = load_workbook(io.BytesIO(r.content), read_only=False).active
    assert ws is not None
    values = [[c.value for c in row] for row in ws.iter_rows()]
    assert values[0] == list(ITEMS)
    assert len(values) == 1 + len(want)
    formula = ws.cell(row=3, column=2)
    assert formula.value == FORMULA
    assert formula.data_type == "s"


def test_downloads_are_counted(hub: LiveHub, scene: PortalScene) -> None:
    from govshare.opendata.portal import download_counts

    plain = scene.scene.open_plain
    with hub.db() as s:
        before = download_counts(s, plain["id"]).get("csv", 0)
    for _ in range(2):
        assert _get(hub, f"/open/datasets/{plain['slug']}/download.csv").status_code == 200
    with hub.db() as s:
        assert download_counts(s, plain["id"]).get("csv", 0) == before + 2


def test_sitemap_lists_every_open_dataset_page_and_nothing_else(
    hub: LiveHub, scene: PortalScene
) -> None:
    r = _get(hub, "/open/sitemap.xml")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/xml")
    locs = re.findall(r"<loc>(.*?)</loc>", r.text)
    for entry in scene.scene.open:
        assert any(loc.endswith(f"/open/datasets/{entry['slug']}") for loc in locs)
    for entry in scene.scene.hidden:
        assert not any(loc.endswith(f"/open/datasets/{entry['slug']}") for loc in locs)


def _visible_text(r: httpx.Response) -> str:
    if r.headers.get("content-type", "").startswith(
        "application/vnd.openxmlformats-officedocument"
    ):
        wb = load_workbook(io.BytesIO(r.content), read_only=True)
        return "\n".join(
            str(v) for ws in wb.worksheets for row in ws.iter_rows(values_only=True) for v in row
        )
    return r.content.decode("utf-8", "replace")


def _sweep_urls(scene: PortalScene) -> list[tuple[str, dict[str, str]]]:
    s = scene.scene
    keys: list[str] = []
    for entry in scene.entries:
        keys += [entry["slug"], entry["code"], str(entry["id"]), dataset_uuid(entry["code"])]
    urls: list[tuple[str, dict[str, str]]] = [
        ("/open/", {}),
        ("/open/organizations", {}),
        ("/open/sitemap.xml", {}),
        ("/open/datasets", {"q": s.marker}),
        ("/open/datasets", {"q": SECRET}),
        ("/open/datasets", {"q": "非开放值"}),
        ("/open/datasets", {"publisher": s.slug}),
        ("/api/3/action/package_search", {"q": s.marker}),
    ]
    for key in keys:
        urls.append(("/open/datasets", {"q": key}))
        urls.append((f"/open/datasets/{key}", {}))
        urls.append(("/api/3/action/package_show", {"id": key}))
        for fmt in ("csv", "json", "xlsx", "txt"):
            urls.append((f"/open/datasets/{key}/download.{fmt}", {}))
        urls.append((f"/open/datasets/{key}/files", {}))
        urls += [(f"/open/datasets/{key}/files/{n}", {}) for n in (1, 2, 99999999)]
        for fmt in ("csv", "json", "xml"):
            urls.append((f"/open/datasets/{key}/rows.{fmt}", {}))
            urls.append((f"/open/datasets/{key}/rows.{fmt}", {"_size": "max", "_sort": "xm"}))
            urls.append((f"/open/datasets/{key}/rows.{fmt}", {UNPUBLISHED_COLUMN: "x"}))
    return urls


def _sweep(
    hub: LiveHub, scene: PortalScene, forbidden: list[str], headers: dict[str, str] | None = None
) -> list[str]:
    """Every public route with every entry's names (as the caller ``headers`` make):
    each answer that shows a ``forbidden`` value or fails with a 5xx."""
    problems: list[str] = []
    with hub.client(headers=headers) as c:
        for url, params in _sweep_urls(scene):
            r = c.get(url, params=params)
            if r.status_code >= 500:
                problems.append(f"{url} {params}: HTTP {r.status_code}")
                continue
            body = _visible_text(r)
            if params.get("q"):  # the search box and title repeat what was asked
                body = body.replace(params["q"], "")
            problems += [f"{url} {params}: shows {v!r}" for v in forbidden if v in body]
    return problems


def _never_public(scene: PortalScene) -> list[str]:
    """What the public must never see: other stores' rows, columns no item publishes,
    the draft's text, and the names of entries that are not open."""
    return [*scene.hidden_values, SECRET, *(e["name"] for e in scene.scene.hidden)]


def test_no_public_route_shows_anything_that_is_not_open(hub: LiveHub, scene: PortalScene) -> None:
    s = scene.scene
    assert _sweep(hub, scene, _never_public(scene)) == []
    for q in (SECRET, "非开放值", "已撤回值", "有条件值"):
        assert "共找到 <strong>0</strong> 个数据集" in _page(hub, "/open/datasets", q=q)
    # The sweep reached the open rows through the same routes.
    assert _get(hub, f"/open/datasets/{s.open_plain['slug']}/download.csv").status_code == 200
    assert _get(hub, f"/open/datasets/{s.open_plain['slug']}/rows.json").status_code == 200


def test_conditional_rows_reach_only_a_key_approved_for_them(
    hub: LiveHub, scene: PortalScene
) -> None:
    """The sweep again with developers' keys: a key without an approved application sees
    no more than anyone; a key approved for the 有条件开放 dataset sees its published
    items and nothing else that is not open."""
    s = scene.scene
    d = developer(hub)
    try:
        unapproved, approved = d.create_key("未获批"), d.create_key("已获批")
        approved_id = key_id_of(hub, approved)
        assert apply_for(d, s.open_conditional["slug"], approved_id).status_code == 200
        assert (
            apply_for(d, s.open_conditional["slug"], key_id_of(hub, unapproved)).status_code == 200
        )
        approve_latest(hub, s.dept.resource_admin, approved_id)
    finally:
        d.client.close()
    never = _never_public(scene)
    with gate(hub, open_key_per_minute=1_000_000):  # the sweep is hundreds of calls
        _sweep_with_keys(hub, scene, never, unapproved, approved)


def _sweep_with_keys(
    hub: LiveHub, scene: PortalScene, never: list[str], unapproved: str, approved: str
) -> None:
    s = scene.scene
    assert _sweep(hub, scene, never, {"X-Api-Key": unapproved}) == []
    conditional = [person(n, "有条件值") for n in range(1, 4)]
    published = {r[c] for r in conditional for c in ("xm", "jzdz")}
    assert published <= set(never)
    problems = _sweep(
        hub,
        scene,
        [v for v in never if v not in published],
        {"Authorization": f"Bearer {approved}"},
    )
    assert problems == []
    # The approved key does reach the conditional rows, through rows and downloads.
    slug = s.open_conditional["slug"]
    with hub.client(headers={"X-Api-Key": approved}) as c:
        for url in (f"/open/datasets/{slug}/rows.json", f"/open/datasets/{slug}/download.csv"):
            r = c.get(url)
            assert r.status_code == 200
            assert conditional[0]["xm"] in r.content.decode("utf-8-sig")


@pytest.mark.parametrize(
    "q", ['"', "*", "(", "AND", "NEAR(a b)", "-", "a:b", "公交 OR", "x" * 500, "\u3000", "%_"]
)
def test_search_answers_any_text(hub: LiveHub, q: str) -> None:
    r = _get(hub, "/open/datasets", q=q, page="abc", open_type="nonsense")
    assert r.status_code == 200, r.text[:300]
    assert 'id="result-count"' in r.text


def test_unknown_portal_address_keeps_the_portal_layout(hub: LiveHub) -> None:
    r = _get(hub, "/open/no-such-page")
    assert r.status_code == 404
    assert "公共数据开放平台" in r.text
    assert 'class="sidebar"' not in r.text
    r = _get(hub, "/open/datasets/x/download.csv/more")
    assert r.status_code == 404
    assert "公共数据开放平台" in r.text


def test_xlsx_is_offered_up_to_its_row_limit(
    hub: LiveHub, scene: PortalScene, monkeypatch: pytest.MonkeyPatch
) -> None:
    from govshare.opendata import datasets, download

    plain = scene.scene.open_plain
    answer = _get(hub, "/api/3/action/package_show", id=plain["slug"]).json()
    assert "result" in answer, answer
    shown = answer["result"]
    assert "XLSX" in {r["format"] for r in shown["resources"]}
    monkeypatch.setattr(download, "XLSX_MAX_ROWS", len(scene.visible_rows) - 1)
    monkeypatch.setattr(datasets, "XLSX_MAX_ROWS", len(scene.visible_rows) - 1)
    html = _page(hub, f"/open/datasets/{plain['slug']}")
    assert f"/open/datasets/{plain['slug']}/download.csv" in html
    assert "download.xlsx" not in html
    r = _get(hub, f"/open/datasets/{plain['slug']}/download.xlsx")
    assert r.status_code == 404
    assert "请下载 CSV 或 JSON" in r.text
    # The machine-readable catalogues offer what the portal serves: no XLSX either.
    shown = _get(hub, "/api/3/action/package_show", id=plain["slug"]).json()["result"]
    assert {r["format"] for r in shown["resources"]} == {"CSV", "JSON"}
    turtle = _get(hub, f"/open/datasets/{plain['slug']}.ttl").text
    assert "download.csv" in turtle
    assert "download.xlsx" not in turtle


def test_related_datasets_are_the_open_ones_among_its_related_codes(
    hub: LiveHub, scene: PortalScene
) -> None:
    s = scene.scene
    world = World(hub)
    linked = world.published(
        s.dept,
        is_open=True,
        name=f"{s.marker}关联测试",
        classification_code="102001",
        related_codes=[s.closed["code"], s.open_plain["code"]],
    )
    html = _page(hub, f"/open/datasets/{linked['code'].lower().replace('/', '-')}")
    related = html.split('id="related"')[1]
    assert f"/open/datasets/{s.open_plain['slug']}" in related
    assert s.closed["name"] not in html
