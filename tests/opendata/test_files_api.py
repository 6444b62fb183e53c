"""开放文件 over the JSON API: a department system uploads, lists and withdraws files of
its open entries with the console's rules, and gets the hub's error envelope when
refused, with nothing kept. Over real HTTP on a live hub."""

from __future__ import annotations

import hashlib

import httpx
import pytest

from tests.factories import World
from tests.opendata.builders import OpenScene, open_scene
from tests.opendata.test_files import PDF, _stored

pytestmark = pytest.mark.xdist_group("opendata")
URL = "/api/v1/open/files"


@pytest.fixture(scope="module")
def scene(hub: object) -> OpenScene:
    return open_scene(World(hub))  # type: ignore[arg-type]


def _post(
    client: httpx.Client, resource_id: int | str, name: str, body: bytes, description: str = ""
) -> httpx.Response:
    return client.post(
        URL,
        data={"resource_id": str(resource_id), "description": description},
        files={"file": (name, body, "application/octet-stream")},
    )


def test_a_department_system_uploads_lists_and_withdraws_a_file(
    world: World, scene: OpenScene
) -> None:
    plain = scene.open_plain
    with world.api(scene.dept.registrar) as c:
        r = _post(c, plain["id"], "接口上传的报告.pdf", PDF, "由业务系统每月推送")
        assert r.status_code == 201, r.text
        made = r.json()
        assert made["resource_id"] == plain["id"]
        assert made["resource_code"] == plain["code"]
        assert made["sha256"] == hashlib.sha256(PDF).hexdigest()
        assert (made["size"], made["format"], made["description"]) == (
            len(PDF),
            "PDF",
            "由业务系统每月推送",
        )
        assert made["withdrawn_at"] is None
        listed = c.get(URL, params={"resource_id": plain["id"]}).json()
        assert made["id"] in [f["id"] for f in listed]
        assert all(f["resource_id"] == plain["id"] for f in listed)
    with world.hub.client() as anyone:
        served = anyone.get(made["url"])
        assert served.status_code == 200
        assert served.content == PDF
    with world.api(scene.dept.registrar) as c:
        r = c.post(f"{URL}/{made['id']}/withdraw")
        assert r.status_code == 200, r.text
        assert r.json()["withdrawn_at"] is not None
        assert r.json()["url"] is None
        # Withdrawn files stay in the department's list.
        again = {f["id"]: f for f in c.get(URL).json()}
        assert again[made["id"]]["withdrawn_at"] is not None
    with world.hub.client() as anyone:
        assert anyone.get(made["url"]).status_code == 404


@pytest.mark.parametrize(
    ("fields", "status", "field"),
    [
        ({"name": "报表.exe", "body": b"MZ"}, 422, "file"),
        ({"name": "假的.pdf", "body": b"not a pdf"}, 422, "file"),
        ({"name": "空的.csv", "body": b""}, 422, "file"),
        ({"resource_id": "abc"}, 422, "resource_id"),
        ({"resource_id": "9" * 40}, 422, "resource_id"),
        ({"resource_id": "999999999"}, 422, "resource_id"),
    ],
)
def test_a_refused_upload_answers_with_the_envelope_and_keeps_nothing(
    world: World, scene: OpenScene, fields: dict[str, object], status: int, field: str
) -> None:
    before = _stored(world)
    with world.api(scene.dept.registrar) as c:
        r = _post(
            c,
            str(fields.get("resource_id", scene.open_plain["id"])),
            str(fields.get("name", "ok.pdf")),
            bytes(fields.get("body", PDF)),  # type: ignore[call-overload]
        )
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert error["code"]
    assert field in [d["field"] for d in error["details"]]
    assert _stored(world) == before


def test_no_file_part_no_form_and_no_right_are_refused(world: World, scene: OpenScene) -> None:
    before = _stored(world)
    with world.api(scene.dept.registrar) as c:
        r = c.post(URL, data={"resource_id": str(scene.open_plain["id"])})
        assert r.status_code == 422
        assert [d["field"] for d in r.json()["error"]["details"]] == ["file"]
        assert c.post(URL, json={"resource_id": scene.open_plain["id"]}).status_code == 422
    other = world.department("接口别的局")
    with world.api(other.registrar) as c:
        r = _post(c, scene.open_plain["id"], "x.pdf", PDF)
        assert r.status_code == 422
        assert "没有这个本部门的目录" in r.json()["error"]["message"]
    # A resource administrator compiles no entries: no catalog.write.
    with world.api(scene.dept.resource_admin) as c:
        assert _post(c, scene.open_plain["id"], "x.pdf", PDF).status_code == 403
        assert c.get(URL).status_code == 403
    with world.hub.client() as anyone:
        assert _post(anyone, scene.open_plain["id"], "x.pdf", PDF).status_code == 401
    assert _stored(world) == before


def test_another_department_neither_sees_nor_withdraws_a_file(
    world: World, scene: OpenScene
) -> None:
    with world.api(scene.dept.registrar) as c:
        made = _post(c, scene.open_plain["id"], "只给本部门看.csv", "区,数\n市南,1\n".encode())
        assert made.status_code == 201, made.text
        file_id = made.json()["id"]
    other = world.department("接口旁观局")
    with world.api(other.registrar) as c:
        assert file_id not in [f["id"] for f in c.get(URL).json()]
        r = c.post(f"{URL}/{file_id}/withdraw")
        assert r.status_code == 404
        assert r.json()["error"]["code"]
        assert c.post(f"{URL}/abc/withdraw").status_code == 422
    with world.hub.client() as anyone:
        slug = scene.open_plain["slug"]
        assert anyone.get(f"/open/datasets/{slug}/files/{file_id}").status_code == 200


def test_the_upload_address_takes_files_past_the_general_body_limit(
    world: World, scene: OpenScene
) -> None:
    """The hub refuses bodies past ``max_body_bytes`` (16 MiB) everywhere but where a
    larger one is expected: here the limit is ``max_open_file_bytes``."""
    limit = world.hub.settings.max_body_bytes
    assert limit < world.hub.settings.max_open_file_bytes
    line = "市南区,青岛市第一号公厕,12\n".encode()
    body = "区,名称,座位\n".encode() + line * (limit // len(line) + 1000)
    assert len(body) > limit
    with world.api(scene.dept.registrar) as c:
        r = _post(c, scene.open_plain["id"], "全市公厕.csv", body)
    assert r.status_code == 201, r.text[:500]
    assert r.json()["size"] == len(body)
