"""Request bodies over the limit get 413 in the envelope, whether declared up front
(Content-Length) or streamed (chunked), on every kind of route; imports and node
packages have room of their own."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from govshare.catalog.models import Resource
from tests.conftest import make_settings, migrated
from tests.factories import World, resource_payload
from tests.live import LiveHub, start_live_hub

LIMIT = 64 * 1024
IMPORT_LIMIT = 256 * 1024


@pytest.fixture(scope="module")
def small_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveHub]:
    data: Path = tmp_path_factory.mktemp("small-hub")
    settings = migrated(make_settings(data, max_body_bytes=LIMIT, max_import_bytes=IMPORT_LIMIT))
    live = start_live_hub(settings)
    yield live
    live.stop()


@pytest.fixture
def world(small_hub: LiveHub) -> World:
    return World(small_hub)


def _chunks(total: int, size: int = 8192) -> Iterator[bytes]:
    sent = 0
    while sent < total:
        part = min(size, total - sent)
        sent += part
        yield b" " * part


def _assert_413(r: httpx.Response) -> None:
    assert r.status_code == 413, r.text[:300]
    error = r.json()["error"]
    assert error["code"] == "body_too_large"
    assert error["details"] == [
        {"field": "body", "message": f"at most {LIMIT} bytes (最多 {LIMIT} 字节)"}
    ]


def test_declared_length_over_the_limit_is_refused_before_auth(small_hub: LiveHub) -> None:
    with small_hub.client() as c:
        r = c.post(
            "/api/v1/auth/token",
            content=b" " * (LIMIT + 1),
            headers={"Content-Type": "application/json"},
        )
    _assert_413(r)


def test_streamed_body_over_the_limit_is_refused_while_reading(world: World) -> None:
    dept = world.department()
    with world.api(dept.registrar) as c:
        r = c.post(
            "/api/v1/catalog/resources",
            content=_chunks(LIMIT * 4),
            headers={"Content-Type": "application/json"},
        )
        _assert_413(r)
        # A body just under the limit is still read and judged on its content.
        ok = c.post("/api/v1/catalog/resources", json=resource_payload(abstract="短" * 1000))
        assert ok.status_code == 201, ok.text
    with world.hub.db() as s:
        assert s.get(Resource, ok.json()["id"]) is not None


def test_streamed_body_on_the_lean_data_routes(small_hub: LiveHub) -> None:
    headers = {"Content-Type": "application/json", "X-App-Key": "ak_nobody"}
    with small_hub.client() as c:
        r = c.post("/api/v1/data/101001/000001/lookup", content=_chunks(LIMIT * 2), headers=headers)
    _assert_413(r)


def test_console_form_over_the_limit_gets_the_error_page(world: World) -> None:
    dept = world.department()
    with world.api(dept.registrar) as c:
        r = c.post(
            "/catalog/resources/new",
            content=_chunks(LIMIT * 2),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
    assert r.status_code == 413
    assert "请求体过大" in r.text


def test_imports_have_their_own_limit(world: World) -> None:
    dept = world.department()
    big_csv = ("信息资源名称\n" + "x" * (LIMIT * 2)).encode()
    with world.api(dept.registrar) as c:
        r = c.post("/api/v1/catalog/import", files={"file": ("catalog.csv", big_csv, "text/csv")})
        # Read whole (202: an import job then judges its content), not refused as too large.
        assert r.status_code == 202, r.text[:300]
        r = c.post(
            "/api/v1/catalog/import",
            files={"file": ("catalog.csv", b"x" * (IMPORT_LIMIT + 1), "text/csv")},
        )
    assert r.status_code == 413
    assert r.json()["error"]["code"] == "body_too_large"
