"""The app's routes are joined flat: one pass finds a route, whatever router it came from."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Annotated

import pytest
from fastapi import APIRouter, Depends, FastAPI, Header, HTTPException
from fastapi.routing import APIRoute
from starlette.exceptions import StarletteDeprecationWarning

from govshare.app import create_app
from govshare.web.routing import include_flat
from tests.conftest import make_settings

with warnings.catch_warnings():
    # Starlette asks for httpx2 now; the project still ships httpx.
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from fastapi.testclient import TestClient


def test_every_route_of_the_hub_is_a_route_of_the_app_itself(tmp_path: Path) -> None:
    app = create_app(make_settings(tmp_path))
    try:
        nested = [type(r).__name__ for r in app.router.routes if hasattr(r, "original_router")]
        assert nested == []
        paths = {r.path for r in app.router.routes if isinstance(r, APIRoute)}
        assert {"/api/v1/collab/cases", "/sharing/applications", "/ops"} <= paths
    finally:
        app.state.engine.dispose()


def _need_header(x_token: Annotated[str | None, Header()] = None) -> None:
    if x_token != "ok":
        raise HTTPException(403)


def test_a_flat_route_keeps_its_path_dependencies_and_operation() -> None:
    router = APIRouter(prefix="/things", tags=["things"], dependencies=[Depends(_need_header)])

    @router.get("/{thing_id}", summary="一件东西", status_code=203)
    def one(thing_id: int) -> dict[str, int]:
        return {"id": thing_id}

    flat, nested = FastAPI(), FastAPI()
    include_flat(flat, router, "/api")
    nested.include_router(router, prefix="/api")
    assert flat.openapi()["paths"] == nested.openapi()["paths"]
    with TestClient(flat) as client:
        assert client.get("/api/things/7", headers={"x-token": "ok"}).json() == {"id": 7}
        assert client.get("/api/things/7", headers={"x-token": "ok"}).status_code == 203
        assert client.get("/api/things/7").status_code == 403
        assert client.get("/api/things/x", headers={"x-token": "ok"}).status_code == 422


def test_dependency_overrides_of_the_app_reach_flat_routes() -> None:
    router = APIRouter()

    @router.get("/guarded", dependencies=[Depends(_need_header)])
    def guarded() -> str:
        return "in"

    app = FastAPI()
    include_flat(app, router)
    app.dependency_overrides[_need_header] = lambda: None
    with TestClient(app) as client:
        assert client.get("/guarded").json() == "in"


def test_a_router_holding_another_router_is_refused() -> None:
    outer, inner = APIRouter(), APIRouter()

    @inner.get("/x")
    def x() -> None: ...

    outer.include_router(inner)
    with pytest.raises(TypeError, match="cannot be joined flat"):
        include_flat(FastAPI(), outer)
