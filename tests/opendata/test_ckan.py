"""The CKAN Action API as harvesters and clients meet it: shapes, paging by
metadata_modified, facets, CKAN's error shape for every bad input, the ckanapi client as a
real subprocess, and nothing that is not open ever shown."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.factories import World, unique
from tests.live import LiveHub
from tests.opendata.builders import SECRET, OpenScene, open_scene

pytestmark = pytest.mark.xdist_group("opendata")
CKANAPI = str(Path(sys.executable).parent / "ckanapi")


@pytest.fixture(scope="module")
def scene(hub: LiveHub) -> OpenScene:
    return open_scene(World(hub))


def _ok(hub: LiveHub, action: str, **params: Any) -> Any:
    with hub.client() as c:
        r = c.get(f"/api/3/action/{action}", params=params)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["success"] is True
    assert body["help"].endswith(f"/api/3/action/help_show?name={action}")
    return body["result"]


def _refused(hub: LiveHub, action: str, status: int, kind: str, **params: Any) -> dict[str, Any]:
    with hub.client() as c:
        r = c.get(f"/api/3/action/{action}", params=params)
    assert r.status_code == status, r.text
    body = r.json()
    assert body["success"] is False
    assert body["error"]["__type"] == kind
    assert body["error"]["message"]
    return dict(body["error"])


def _mine(hub: LiveHub, scene: OpenScene, **params: Any) -> dict[str, Any]:
    params.setdefault("fq", f"organization:{scene.slug}")
    result: dict[str, Any] = _ok(hub, "package_search", **params)
    return result


def test_package_search_lists_exactly_the_open_entries(hub: LiveHub, scene: OpenScene) -> None:
    result = _mine(hub, scene, rows=100, sort="name asc")
    assert result["count"] == 3
    assert [p["name"] for p in result["results"]] == sorted(e["slug"] for e in scene.open)
    by_name = {p["name"]: p for p in result["results"]}
    plain = by_name[scene.open_plain["slug"]]
    assert plain["title"] == scene.open_plain["name"]
    assert plain["organization"]["name"] == scene.slug
    assert plain["license_id"] == "cc-by-4.0"
    assert plain["isopen"] is True
    assert plain["groups"][0]["name"] == "theme-101"
    assert {t["name"] for t in plain["tags"]} == {"人口", "人口基本信息"}
    formats = [r["format"] for r in plain["resources"]]
    assert formats == ["CSV", "XLSX", "JSON"]
    assert plain["resources"][0]["url"].endswith(
        f"/open/datasets/{scene.open_plain['slug']}/download.csv"
    )
    extras = {e["key"]: e["value"] for e in plain["extras"]}
    assert extras["identifier"] == scene.open_plain["code"]
    assert extras["open_type"] == "unconditional"
    assert extras["frequency"].endswith("/frequency/MONTHLY")
    conditional = by_name[scene.open_conditional["slug"]]
    extras = {e["key"]: e["value"] for e in conditional["extras"]}
    assert extras["open_type"] == "conditional"
    assert extras["open_conditions"] == "实名注册开发者申请"
    assert conditional["isopen"] is False


def test_an_entry_in_a_change_shows_its_published_version(hub: LiveHub, scene: OpenScene) -> None:
    shown = _ok(hub, "package_show", id=scene.in_change["slug"])
    assert shown["title"] == f"{scene.marker}停车场泊位"
    assert SECRET not in json.dumps(shown, ensure_ascii=False)
    # The draft says it is no longer open: the published version still is, until published.
    assert _ok(hub, "package_search", q=SECRET)["count"] == 0


def test_package_show_by_name_id_and_code(hub: LiveHub, scene: OpenScene) -> None:
    by_name = _ok(hub, "package_show", id=scene.open_plain["slug"])
    assert _ok(hub, "package_show", id=by_name["id"]) == by_name
    assert _ok(hub, "package_show", id=scene.open_plain["code"]) == by_name
    resource = by_name["resources"][1]
    assert _ok(hub, "resource_show", id=resource["id"]) == resource


def test_get_post_json_and_form_answer_alike(hub: LiveHub, scene: OpenScene) -> None:
    params = {"fq": f"organization:{scene.slug}", "rows": "2", "sort": "name asc"}
    got = _ok(hub, "package_search", **params)
    with hub.client() as c:
        as_json = c.post("/api/3/action/package_search", json={**params, "rows": 2}).json()
        as_form = c.post("/api/action/package_search", data=params).json()
    assert as_json["result"] == got == as_form["result"]


def test_harvesters_page_by_metadata_modified(hub: LiveHub, scene: OpenScene) -> None:
    everything = _mine(hub, scene, sort="metadata_modified asc", rows=10)["results"]
    times = [p["metadata_modified"] for p in everything]
    assert times == sorted(times)
    since = times[1] + "Z"
    later = _mine(
        hub,
        scene,
        fq=f"organization:{scene.slug} +metadata_modified:[{since} TO *]",
        sort="metadata_modified asc",
    )["results"]
    assert [p["name"] for p in later] == [p["name"] for p in everything[1:]]
    until = _mine(hub, scene, fq=f"organization:{scene.slug} metadata_modified:[* TO {since}]")
    assert until["count"] == 2
    # start and rows page through the same order without gaps.
    pages = [
        _mine(hub, scene, sort="metadata_modified asc", rows=1, start=i)["results"][0]["name"]
        for i in range(3)
    ]
    assert pages == [p["name"] for p in everything]


def test_the_count_is_the_same_on_every_page_and_past_the_end(
    hub: LiveHub, scene: OpenScene
) -> None:
    """The total comes with the page, from the facets' groups when facets are asked, or
    from a count of its own when no row comes back: all say 3 for this department."""
    facets = {"facet.field": json.dumps(["organization"])}
    for extra in ({}, facets):
        counts = [
            _mine(hub, scene, rows=rows, start=start, **extra)["count"]
            for rows, start in ((10, 0), (1, 2), (1, 3), (5, 99), (0, 0), (0, 5))
        ]
        assert counts == [3] * 6, extra
    assert _mine(hub, scene, rows=5, start=3)["results"] == []


def test_facets(hub: LiveHub, scene: OpenScene) -> None:
    fields = ["organization", "groups", "tags", "res_format", "license_id", "open_type"]
    result = _mine(hub, scene, **{"facet.field": json.dumps(fields), "facet.limit": "-1"})
    facets = result["facets"]
    assert facets["organization"] == {scene.slug: 3}
    assert facets["groups"] == {"theme-101": 2, "theme-102": 1}
    assert facets["license_id"] == {"cc-by-4.0": 2, "other-closed": 1}
    assert facets["res_format"] == {"CSV": 3, "XLSX": 3, "JSON": 3}
    assert facets["open_type"] == {"unconditional": 2, "conditional": 1}
    items = result["search_facets"]["groups"]["items"]
    assert items[0] == {"name": "theme-101", "display_name": "人口", "count": 2}
    limited = _mine(hub, scene, **{"facet.field": '["groups"]', "facet.limit": "1"})
    assert limited["facets"]["groups"] == {"theme-101": 2}
    narrowed = _mine(hub, scene, fq=f"organization:{scene.slug} groups:theme-102")
    assert [p["name"] for p in narrowed["results"]] == [scene.open_conditional["slug"]]
    tagged = _mine(hub, scene, fq=f'organization:{scene.slug} tags:"法人登记信息"')
    assert tagged["count"] == 1
    negated = _mine(hub, scene, fq=f"organization:{scene.slug} -license_id:cc-by-4.0")
    assert negated["count"] == 1


def test_full_text_q(hub: LiveHub, scene: OpenScene) -> None:
    found = _ok(hub, "package_search", q=f"{scene.marker}公厕")
    assert [p["name"] for p in found["results"]] == [scene.open_plain["slug"]]


def test_organizations_groups_tags_status(hub: LiveHub, scene: OpenScene) -> None:
    assert scene.slug in _ok(hub, "organization_list")
    orgs = _ok(hub, "organization_list", all_fields="true")
    mine = next(o for o in orgs if o["name"] == scene.slug)
    assert mine["package_count"] == 3
    assert mine["is_organization"] is True
    shown = _ok(hub, "organization_show", id=scene.slug, include_datasets="true")
    assert sorted(p["name"] for p in shown["packages"]) == sorted(e["slug"] for e in scene.open)
    assert "theme-102" in _ok(hub, "group_list")
    group = _ok(hub, "group_show", id="theme-102")
    assert group["title"] == "法人单位"
    assert "法人登记信息" in _ok(hub, "tag_list")
    assert _ok(hub, "status_show")["ckan_version"].startswith("2.")
    assert _ok(hub, "site_read") is True
    names = _ok(hub, "package_list")
    assert {e["slug"] for e in scene.open} <= set(names)
    listed = _ok(hub, "current_package_list_with_resources", limit=1000)
    assert {e["slug"] for e in scene.open} <= {p["name"] for p in listed}


@pytest.mark.parametrize(
    ("action", "params", "status", "kind"),
    [
        ("package_search", {"rows": "1001"}, 409, "Validation Error"),
        ("package_search", {"rows": "-1"}, 409, "Validation Error"),
        ("package_search", {"start": "abc"}, 409, "Validation Error"),
        ("package_search", {"start": "1e9"}, 409, "Validation Error"),
        ("package_search", {"sort": "nonsense desc"}, 409, "Validation Error"),
        ("package_search", {"sort": "name sideways"}, 409, "Validation Error"),
        ("package_search", {"facet.field": '["secrecy"]'}, 409, "Validation Error"),
        ("package_search", {"facet.field": "{"}, 409, "Validation Error"),
        ("package_search", {"facet.limit": "many"}, 409, "Validation Error"),
        ("package_search", {"fq": "secrecy:secret"}, 409, "Search Query Error"),
        ("package_search", {"fq": "organization:(a OR b"}, 409, "Search Query Error"),
        ("package_search", {"fq": "metadata_modified:[yesterday TO *]"}, 409, "Search Query Error"),
        ("package_search", {"fq": "name:[a TO b]"}, 409, "Search Query Error"),
        ("package_show", {}, 409, "Validation Error"),
        ("package_show", {"id": "no-such-dataset"}, 404, "Not Found Error"),
        ("resource_show", {"id": "00000000-0000-0000-0000-000000000000"}, 404, "Not Found Error"),
        ("organization_show", {"id": "nobody"}, 404, "Not Found Error"),
        ("group_show", {"id": "theme-999"}, 404, "Not Found Error"),
        ("organization_list", {"all_fields": "perhaps"}, 409, "Validation Error"),
        ("package_list", {"limit": "x"}, 409, "Validation Error"),
        ("package_create", {}, 400, "Bad request - Action Error"),
        ("no_such_action", {}, 400, "Bad request - Action Error"),
    ],
)
def test_bad_input_answers_ckans_error_shape(
    hub: LiveHub, action: str, params: dict[str, str], status: int, kind: str
) -> None:
    _refused(hub, action, status, kind, **params)


def test_bad_bodies_answer_ckans_error_shape(hub: LiveHub) -> None:
    with hub.client() as c:
        for body in (b"{not json", b"[1, 2]", b'"text"', b"\xff\xfe"):
            r = c.post(
                "/api/3/action/package_search",
                content=body,
                headers={"content-type": "application/json"},
            )
            assert r.status_code == 400, r.text
            assert r.json()["success"] is False
        r = c.post("/api/3/action/package_search", json={"rows": {"a": 1}, "q": ["x"]})
        assert r.status_code == 409
        assert r.json()["error"]["__type"] == "Validation Error"


def _ckanapi(hub: LiveHub, *args: str) -> Any:
    done = subprocess.run(
        [CKANAPI, "action", *args, "-r", hub.base_url],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_the_ckanapi_client_works_against_it(hub: LiveHub, scene: OpenScene) -> None:
    found = _ckanapi(hub, "package_search", f"fq=organization:{scene.slug}", "sort=name asc")
    assert found["count"] == 3
    assert [p["name"] for p in found["results"]] == sorted(e["slug"] for e in scene.open)
    shown = _ckanapi(hub, "package_show", f"id={scene.open_conditional['slug']}")
    assert shown["title"] == scene.open_conditional["name"]
    assert scene.slug in _ckanapi(hub, "organization_list")
    # A refusal reaches the client as CKAN's NotFound, not as a protocol error.
    done = subprocess.run(
        [CKANAPI, "action", "package_show", "id=no-such", "-r", hub.base_url],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode != 0
    assert "NotFound" in done.stdout + done.stderr


def _readable(body: str) -> str:
    """A body with JSON's escapes (\\uXXXX) undone."""
    try:
        return json.dumps(json.loads(body), ensure_ascii=False)
    except ValueError:
        return body


def test_nothing_that_is_not_open_is_ever_shown(hub: LiveHub, scene: OpenScene) -> None:
    """Every action and every DCAT URL, asked for every entry by every key it has."""
    hidden_words = [SECRET]
    for entry in scene.hidden:
        hidden_words += [entry["name"], entry["slug"], entry["code"]]
    keys = []
    for entry in [*scene.open, *scene.hidden]:
        keys += [entry["slug"], entry["code"], str(entry["id"])]
    bodies: list[str] = []
    with hub.client() as c:
        calls: list[tuple[str, dict[str, Any]]] = [
            ("package_search", {"rows": 1000}),
            ("package_search", {"q": SECRET}),
            ("package_search", {"q": scene.marker, "rows": 1000}),
            ("package_list", {}),
            ("current_package_list_with_resources", {"limit": 1000}),
            ("organization_show", {"id": scene.slug, "include_datasets": True}),
            ("group_list", {"all_fields": True}),
            ("tag_list", {}),
        ]
        calls += [(a, {"id": k}) for k in keys for a in ("package_show", "resource_show")]
        calls += [("package_search", {"fq": f'name:"{k}"'}) for k in keys]
        for action, params in calls:
            r = c.post(f"/api/3/action/{action}", json=params)
            assert r.status_code in (200, 404, 409), (action, params, r.text)
            bodies.append(r.text)
        for fmt in ("ttl", "rdf", "jsonld"):
            bodies.append(c.get(f"/open/catalog.{fmt}").text)
            for k in keys:
                r = c.get(f"/open/datasets/{k.replace('/', '-')}.{fmt}")
                assert r.status_code in (200, 404)
                bodies.append(r.text)
    text = "\n".join(_readable(b) for b in bodies)
    for word in hidden_words:
        assert word not in text, word
    # The open ones were reachable all along.
    for entry in scene.open:
        assert entry["slug"] in text


def test_a_repeated_search_shows_each_new_version_and_withdrawal_at_once(hub: LiveHub) -> None:
    """Packages are kept built between searches (per published version and per value):
    a republished entry, a renamed one and a withdrawn one show at the next search."""
    from tests.factories import resource_payload, unique

    world = World(hub)
    dept = world.department("收割缓存局")
    first = world.published(dept, is_open=True, name=unique("公园名录"))
    with hub.db() as s:
        from govshare.security.models import Department

        org = s.get_one(Department, dept.id).credit_code.lower()

    def harvested() -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = _ok(
            hub, "package_search", fq=f"organization:{org}", rows=1000
        )["results"]
        return found

    for _ in range(2):  # the second answer comes from the kept packages
        [package] = harvested()
        assert (package["title"], package["version"]) == (first["name"], "1")

    renamed = unique("公园名录（修订）")
    with world.api(dept.registrar) as c:
        body = resource_payload(is_open=True, name=renamed, reason="更名")
        assert c.put(f"/api/v1/catalog/resources/{first['id']}", json=body).status_code == 200
    [package] = harvested()
    assert package["title"] == first["name"]  # the change is not published yet
    for step, who in [
        ("submit", dept.registrar),
        ("approve", dept.reviewer),
        ("request_publication", dept.registrar),
        ("publish", world.admin),
    ]:
        world.step(who, first["id"], step)
    [package] = harvested()
    assert (package["title"], package["version"]) == (renamed, "2")
    listed = _ok(hub, "current_package_list_with_resources", limit=1000)
    assert [p["title"] for p in listed if p["id"] == package["id"]] == [renamed]

    world.step(dept.registrar, first["id"], "withdraw", reason="停止开放")
    assert harvested() == []


def test_a_repeated_faceted_search_counts_each_catalog_change_at_once(hub: LiveHub) -> None:
    """A search's facet counts and total are kept until the catalog changes (on SQLite):
    a new open entry, a withdrawal, a write straight into the database and a department
    renamed each show at the very next search with the same parameters."""
    from sqlalchemy import text

    world = World(hub)
    dept = world.department("分面计数局")
    first = world.published(dept, is_open=True, name=unique("公园名录"))
    with hub.db() as s:
        from govshare.security.models import Department

        org = s.get_one(Department, dept.id).credit_code.lower()
    fields = json.dumps(["organization", "res_format", "open_type"])

    def facets() -> dict[str, Any]:
        result: dict[str, Any] = _ok(
            hub, "package_search", fq=f"organization:{org}", rows=0, **{"facet.field": fields}
        )
        assert sum(result["facets"]["organization"].values()) == result["count"]
        # The total of a search without facets is kept too (a harvester's next pages).
        for start in (0, 1):
            page = _ok(hub, "package_search", fq=f"organization:{org}", rows=1, start=start)
            assert page["count"] == result["count"]
        return result

    for _ in range(2):  # the second answer is the kept one
        assert facets()["facets"]["open_type"] == {"unconditional": 1}
    second = world.published(
        dept, is_open=True, name=unique("公交线路"), open_conditions="实名注册开发者申请"
    )
    assert facets()["facets"]["open_type"] == {"unconditional": 1, "conditional": 1}
    world.step(dept.registrar, second["id"], "withdraw", reason="停止开放")
    assert facets()["facets"]["open_type"] == {"unconditional": 1}
    assert facets()["facets"]["res_format"] == {"CSV": 1, "XLSX": 1, "JSON": 1}
    with hub.db() as s:  # not through the catalog's service: the database's own count
        s.execute(text("UPDATE resource SET format = 'file' WHERE id = :id"), {"id": first["id"]})
    assert facets()["facets"]["res_format"] == {"ZIP": 1}
    renamed = f"11370200MB{dept.id:07d}X"
    with hub.db() as s:
        s.execute(
            text("UPDATE department SET credit_code = :c WHERE id = :id"),
            {"c": renamed, "id": dept.id},
        )
    assert facets()["count"] == 0  # the old organization name finds nothing now
    moved = _ok(
        hub, "package_search", fq=f"organization:{renamed}", rows=0, **{"facet.field": fields}
    )
    assert moved["facets"]["organization"] == {renamed.lower(): 1}
