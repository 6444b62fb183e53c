"""开放文件: a department uploads files for its open entries in the console; the portal
lists and serves those of 无条件开放 entries only, with their digest; bad files are
refused with the reason and leave nothing behind. Over real HTTP on a live hub."""

from __future__ import annotations

import hashlib
import io
import re
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from govshare.errors import InvalidInput
from govshare.opendata import files
from govshare.opendata.datasets import file_uuid, slug_of
from govshare.opendata.models import OpenFile
from govshare.security.atrest import STREAM_MAGIC
from govshare.security.models import AuditEntry
from govshare.security.roles import Role
from tests.catalog.console import csrf_of, signed_in
from tests.factories import World, unique
from tests.opendata.builders import OpenScene, open_scene
from tests.opendata.dev_builders import apply_for, approve_latest, developer, key_id_of
from tests.opendata.dev_builders import gate as dev_gate
from tests.sharing.builders import principal

pytestmark = pytest.mark.xdist_group("opendata")
PDF = b"%PDF-1.4\n% a tiny report\n" + b"0123456789" * 2000
NOW = datetime(2026, 6, 1, 2, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def scene(hub: object) -> OpenScene:
    return open_scene(World(hub))  # type: ignore[arg-type]


def _upload(
    client: httpx.Client, resource_id: int | str, name: str, body: bytes, description: str = ""
) -> httpx.Response:
    return client.post(
        "/open-files/upload",
        data={
            "csrf_token": csrf_of(client),
            "resource_id": str(resource_id),
            "description": description,
        },
        files={"file": (name, body, "application/octet-stream")},
    )


def _stored(world: World) -> tuple[int, set[str]]:
    with world.hub.db() as s:
        rows = int(s.scalar(select(func.count()).select_from(OpenFile)) or 0)
    folder = files.files_dir(world.hub.settings.data_dir)
    on_disk = {p.name for p in folder.rglob("*") if p.is_file()} if folder.exists() else set()
    return rows, on_disk


def _file_ids(page: str) -> list[int]:
    return [int(n) for n in re.findall(r"/files/(\d+)", page)]


def test_an_uploaded_file_is_listed_and_served_with_its_digest(
    world: World, scene: OpenScene
) -> None:
    plain = scene.open_plain
    with signed_in(world, scene.dept.registrar) as c:
        r = _upload(c, plain["id"], "2025年公厕普查报告.pdf", PDF, "全市公厕普查结果")
        assert r.status_code == 303, r.text[:2000]
        assert r.headers["location"] == "/open-files?done=uploaded"
        listed = c.get("/open-files").text
        assert "2025年公厕普查报告.pdf" in listed
    sha = hashlib.sha256(PDF).hexdigest()
    with world.hub.client() as c:
        page = c.get(f"/open/datasets/{plain['slug']}").text
        assert "2025年公厕普查报告.pdf" in page
        assert "全市公厕普查结果" in page
        body = c.get(f"/open/datasets/{plain['slug']}/files").json()
        (entry,) = [f for f in body["files"] if f["name"] == "2025年公厕普查报告.pdf"]
        assert entry["sha256"] == sha
        assert entry["size"] == len(PDF)
        assert entry["format"] == "PDF"
        r = c.get(entry["url"])
    assert r.status_code == 200
    assert r.content == PDF
    assert r.headers["content-type"] == "application/pdf"
    assert r.headers["etag"] == f'"{sha}"'
    assert r.headers["content-disposition"].startswith("attachment;")
    assert "filename*=UTF-8''2025" in r.headers["content-disposition"]
    # Sealed at rest (GOVSHARE_AT_REST_CIPHER, SM4 by default): not the bytes served.
    stored = files.stored_path(world.hub.settings.data_dir, sha)
    assert stored.read_bytes().startswith(STREAM_MAGIC)
    assert PDF[8:40] not in stored.read_bytes()
    assert b"".join(files.read_stored(world.hub.settings, stored)) == PDF
    with world.hub.db() as s:
        audited = s.scalars(
            select(AuditEntry).where(
                AuditEntry.action == "open_file.upload", AuditEntry.object_id == str(entry["id"])
            )
        ).one()
        assert audited.actor == scene.dept.registrar
        assert audited.after is not None
        assert audited.after["sha256"] == sha


def test_a_file_of_several_chunks_is_sealed_and_served_whole(
    world: World, scene: OpenScene
) -> None:
    rows = b"".join(f"{i},{i * 7 % 1000},青岛市第{i}号公厕\n".encode() for i in range(90_000))
    body = b"id,seats,name\n" + rows  # about 3 MiB: four records of at most 1 MiB
    assert len(body) > 3 * files.CHUNK
    with signed_in(world, scene.dept.registrar) as c:
        r = _upload(c, scene.open_plain["id"], "公厕座位.csv", body)
        assert r.status_code == 303, r.text[:2000]
    sha = hashlib.sha256(body).hexdigest()
    stored = files.stored_path(world.hub.settings.data_dir, sha)
    assert b"\xe9\x9d\x92\xe5\xb2\x9b" not in stored.read_bytes()  # 青岛 appears nowhere
    with world.hub.client() as c:
        listing = c.get(f"/open/datasets/{scene.open_plain['slug']}/files").json()["files"]
        (entry,) = [f for f in listing if f["sha256"] == sha]
        r = c.get(entry["url"])
    assert r.status_code == 200
    assert r.headers["content-length"] == str(len(body))
    assert hashlib.sha256(r.content).hexdigest() == sha


def test_files_of_entries_that_are_not_unconditionally_open_are_never_served(
    world: World, scene: OpenScene
) -> None:
    with signed_in(world, scene.dept.registrar) as c:
        # A 有条件开放 entry may hold files; the public does not get them.
        r = _upload(c, scene.open_conditional["id"], "刷卡明细说明.pdf", PDF)
        assert r.status_code == 303, r.text[:2000]
        before = _stored(world)
        for entry in (scene.closed, scene.draft, scene.withdrawn):
            r = _upload(c, entry["id"], "x.pdf", PDF)
            assert r.status_code == 422, entry["name"]
            assert "只能为已发布且向社会开放的目录上传文件" in r.text
        assert _stored(world) == before
    with world.hub.db() as s:
        conditional_file = s.scalars(
            select(OpenFile.id).where(OpenFile.resource_id == scene.open_conditional["id"])
        ).one()
    with world.hub.client() as c:
        slug = scene.open_conditional["slug"]
        assert c.get(f"/open/datasets/{slug}/files").json()["files"] == []
        assert c.get(f"/open/datasets/{slug}/files/{conditional_file}").status_code == 404
        # Nor under another dataset's name.
        plain = scene.open_plain["slug"]
        assert c.get(f"/open/datasets/{plain}/files/{conditional_file}").status_code == 404
        for entry in (scene.closed, scene.draft, scene.withdrawn):
            assert c.get(f"/open/datasets/{entry['slug']}/files").status_code == 404


def test_a_file_stops_being_served_when_its_entry_stops_being_open(world: World) -> None:
    dept = world.department("开放文件局")
    entry = world.published(dept, is_open=True, name=unique("停车场分布图"))
    with signed_in(world, dept.registrar) as c:
        assert _upload(c, entry["id"], "map.zip", b"PK\x03\x04" + b"\x00" * 100).status_code == 303
    with world.hub.client() as c:
        code = slug_of(entry["code"])
        listed = c.get(f"/open/datasets/{code}/files").json()["files"]
        assert len(listed) == 1
        assert c.get(listed[0]["url"]).status_code == 200
        world.step(dept.registrar, entry["id"], "withdraw", reason="停止开放")
        assert c.get(listed[0]["url"]).status_code == 404
        assert c.get(f"/open/datasets/{code}/files").status_code == 404


@pytest.mark.parametrize(
    ("name", "body", "reason"),
    [
        ("setup.exe", b"MZ\x90\x00", "不支持的文件类型"),
        ("report.pdf", b"<html>not a pdf</html>", "文件内容与扩展名不符"),
        ("table.xlsx", b"%PDF-1.4", "文件内容与扩展名不符"),
        ("names.csv", b"a,b\n1,\x00\n", "含有二进制内容"),
        ("empty.csv", b"", "是空文件"),
        ("noext", b"abc", "不支持的文件类型"),
    ],
)
def test_bad_files_are_refused_with_the_reason_and_leave_nothing(
    world: World, scene: OpenScene, name: str, body: bytes, reason: str
) -> None:
    before = _stored(world)
    with signed_in(world, scene.dept.registrar) as c:
        r = _upload(c, scene.open_plain["id"], name, body)
    assert r.status_code == 422, r.text[:2000]
    assert reason in r.text
    assert _stored(world) == before


def test_only_the_providing_department_uploads_and_withdraws(
    world: World, scene: OpenScene
) -> None:
    other = world.department("别的局")
    before = _stored(world)
    with signed_in(world, other.registrar) as c:
        r = _upload(c, scene.open_plain["id"], "x.pdf", PDF)
        assert r.status_code == 422
        assert "没有这个本部门的目录" in r.text
        assert _upload(c, "abc", "x.pdf", PDF).status_code == 422
    assert _stored(world) == before
    # A resource administrator compiles no entries, so uploads nothing.
    with signed_in(world, scene.dept.resource_admin) as c:
        assert c.get("/open-files").status_code == 403
    with signed_in(world, scene.dept.registrar) as c:
        r = _upload(c, scene.open_plain["id"], "撤下测试.csv", "区,数量\n市南,12\n".encode())
        assert r.status_code == 303
        file_id = max(_file_ids(c.get("/open-files").text))
    with signed_in(world, other.registrar) as c:
        r = c.post(f"/open-files/{file_id}/withdraw", data={"csrf_token": csrf_of(c)})
        assert r.status_code == 404
    with world.hub.client() as c:
        url = f"/open/datasets/{scene.open_plain['slug']}/files/{file_id}"
        assert c.get(url).status_code == 200
    with signed_in(world, scene.dept.registrar) as c:
        r = c.post(f"/open-files/{file_id}/withdraw", data={"csrf_token": csrf_of(c)})
        assert r.status_code == 303
    with world.hub.client() as c:
        assert c.get(url).status_code == 404
        page = c.get(f"/open/datasets/{scene.open_plain['slug']}").text
        assert "撤下测试.csv" not in page


@pytest.mark.parametrize(
    ("sent", "kept"),
    [
        ("../../etc/报表.csv", "报表.csv"),
        ("C:\\Users\\张三\\桌面\\报表.csv", "报表.csv"),
        ("  报表.CSV  ", "报表.CSV"),
    ],
)
def test_the_name_kept_is_the_last_path_part(sent: str, kept: str) -> None:
    assert files.clean_name(sent) == kept


def test_a_file_over_the_limit_is_refused_while_it_streams_in(
    world: World, scene: OpenScene, tmp_path: Path
) -> None:
    registrar = principal(scene.dept.registrar, scene.dept.id, Role.CATALOG_REGISTRAR)
    with world.hub.db() as s:
        with pytest.raises(files.FileTooLarge):
            files.store(
                s,
                tmp_path,
                registrar,
                resource_id=scene.open_plain["id"],
                name="big.csv",
                description="",
                source=io.BytesIO(b"x" * (3 * files.CHUNK)),
                limit=2 * files.CHUNK,
                now=NOW,
            )
        with pytest.raises(InvalidInput):
            files.store(
                s,
                tmp_path,
                registrar,
                resource_id=scene.open_plain["id"],
                name="ok.csv",
                description="说明\x00",
                source=io.BytesIO(b"a,b\n"),
                limit=files.CHUNK,
                now=NOW,
            )
        s.rollback()
    # Nothing half-written is left in the store.
    assert [p for p in files.files_dir(tmp_path).rglob("*") if p.is_file()] == []


def test_an_approved_key_reaches_a_conditional_datasets_files_and_limits_apply(
    world: World, scene: OpenScene
) -> None:
    slug = scene.open_conditional["slug"]
    with signed_in(world, scene.dept.registrar) as c:
        r = _upload(c, scene.open_conditional["id"], "刷卡汇总.csv", "月份,次数\n1,5\n".encode())
        assert r.status_code == 303
    d = developer(world.hub)
    try:
        secret = d.create_key()
        key_id = key_id_of(world.hub, secret)
        with world.hub.client(headers={"X-Api-Key": secret}) as c:
            assert c.get(f"/open/datasets/{slug}/files").json()["files"] == []
        assert apply_for(d, slug, key_id).status_code == 200
        approve_latest(world.hub, scene.dept.resource_admin, key_id)
        with world.hub.client(headers={"X-Api-Key": secret}) as c:
            listed = c.get(f"/open/datasets/{slug}/files").json()["files"]
            (entry,) = [f for f in listed if f["name"] == "刷卡汇总.csv"]
            assert c.get(entry["url"]).content == "月份,次数\n1,5\n".encode()
        with world.hub.client() as c:
            assert c.get(f"/open/datasets/{slug}/files").json()["files"] == []
            assert c.get(entry["url"]).status_code == 404
        with world.hub.client(headers={"X-Api-Key": "od_not-a-key"}) as c:
            r = c.get(entry["url"])
            assert r.status_code == 401
            assert r.json()["ok"] is False
    finally:
        d.client.close()
    # Anonymous callers share the per-address limit of the downloads.
    with dev_gate(world.hub, open_anonymous_per_minute=1), world.hub.client() as c:
        plain = scene.open_plain["slug"]
        assert c.get(f"/open/datasets/{plain}/files").status_code == 200
        r = c.get(f"/open/datasets/{plain}/files")
        assert r.status_code == 429
        assert int(r.headers["retry-after"]) > 0


def test_files_are_ckan_resources_and_dcat_distributions_of_open_datasets_only(
    world: World,
) -> None:
    dept = world.department("开放文件目录局")
    plain = world.published(dept, is_open=True, name=unique("体育场馆名录"))
    conditional = world.published(
        dept, is_open=True, name=unique("场馆预约明细"), open_conditions="须签署数据使用协议"
    )
    with signed_in(world, dept.registrar) as c:
        assert _upload(c, plain["id"], "场馆名录说明.pdf", PDF, "字段说明").status_code == 303
        assert _upload(c, conditional["id"], "预约说明.pdf", PDF).status_code == 303
    sha = hashlib.sha256(PDF).hexdigest()
    with world.hub.client() as c:
        shown = c.get("/api/3/action/package_show", params={"id": slug_of(plain["code"])})
        resources = shown.json()["result"]["resources"]
        (listed,) = [r for r in resources if r["name"] == "场馆名录说明.pdf"]
        assert listed["format"] == "PDF"
        assert listed["mimetype"] == "application/pdf"
        assert listed["size"] == len(PDF)
        assert listed["hash"] == f"sha256:{sha}"
        assert listed["description"] == "字段说明"
        assert listed["position"] == len(resources) - 1
        assert shown.json()["result"]["num_resources"] == len(resources)
        assert c.get(listed["url"]).content == PDF
        one = c.get("/api/3/action/resource_show", params={"id": listed["id"]}).json()
        assert one["result"] == listed
        ttl = c.get(f"/open/datasets/{slug_of(plain['code'])}.ttl").text
        assert listed["url"] in ttl
        assert sha in ttl
        assert "file-type/PDF" in ttl

        # The 有条件开放 dataset's file is no public resource, under any id.
        hidden_slug = slug_of(conditional["code"])
        hidden = c.get("/api/3/action/package_show", params={"id": hidden_slug})
        assert "预约说明.pdf" not in hidden.text
        assert "预约说明.pdf" not in c.get(f"/open/datasets/{hidden_slug}.ttl").text
    with world.hub.db() as s:
        hidden_id = s.scalars(
            select(OpenFile.id).where(OpenFile.resource_id == conditional["id"])
        ).one()
    with world.hub.client() as c:
        r = c.get(
            "/api/3/action/resource_show", params={"id": file_uuid(conditional["code"], hidden_id)}
        )
        assert r.status_code == 404
        # Withdrawn from the portal, the file leaves the CKAN answer too.
        world.step(dept.registrar, plain["id"], "withdraw", reason="停止开放")
        assert c.get("/api/3/action/resource_show", params={"id": listed["id"]}).status_code == 404
