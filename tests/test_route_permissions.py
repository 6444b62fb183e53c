"""Every route declares the one permission it needs (a ``Require`` dependency)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from starlette.routing import Mount, Route

from govshare.app import create_app
from govshare.deps import Require
from govshare.security.roles import Permission
from govshare.sharing.data_api import SignedRoute
from tests.conftest import make_settings


def api_routes(routes: list[Any], prefix: str = "") -> Iterator[tuple[str, APIRoute]]:
    """Every APIRoute, following included routers (newer FastAPI keeps them nested)."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield prefix + route.path, route
        elif (inner := getattr(route, "original_router", None)) is not None:
            context = getattr(route, "include_context", None)
            yield from api_routes(inner.routes, prefix + (getattr(context, "prefix", "") or ""))


def _requires(dep: Dependant) -> list[Require]:
    found = [dep.call] if isinstance(dep.call, Require) else []
    for sub in dep.dependencies:
        found.extend(_requires(sub))
    return found


def test_every_route_declares_a_permission(tmp_path: Path) -> None:
    app = create_app(make_settings(tmp_path))
    missing, routes = [], 0
    for path, route in api_routes(app.routes):
        routes += 1
        if not _requires(route.dependant):
            missing.append(f"{sorted(route.methods)} {path}")
    app.state.engine.dispose()
    assert routes > 30
    assert missing == []


def test_only_login_health_and_docs_are_public(tmp_path: Path) -> None:
    app = create_app(make_settings(tmp_path))
    public = sorted(
        path
        for path, route in api_routes(app.routes)
        if any(r.permission.value == "public" for r in _requires(route.dependant))
    )
    app.state.engine.dispose()
    # A node's first call carries its one-time enrollment token instead of a signature.
    # The open-data catalog (CKAN Action API, DCAT-AP export) is public by definition.
    assert set(public) <= {
        "/api/3/action/{name}",
        "/api/action/{name}",
        "/open/catalog.{fmt}",
        "/open/datasets/{key}.{fmt}",
        # The public portal: its pages, downloads and sitemap (govshare.opendata.pages).
        "/open/",
        "/open/datasets",
        "/open/datasets/{slug}",
        "/open/datasets/{slug}/download.{fmt}",
        "/open/datasets/{slug}/rows.{fmt}",
        "/open/organizations",
        "/open/sitemap.xml",
        # 数据需求征集: the public asks and votes without an account (rate-limited).
        "/open/demands",
        "/open/demands/new",
        "/open/demands/{demand_id}",
        "/open/demands/{demand_id}/vote",
        # 办件查询: an applicant looks a case up by its number and ID number (rate-limited).
        "/api/v1/collab/lookup",
        "/case-lookup",
        # 开放文件 of 无条件开放 entries.
        "/open/datasets/{slug}/files",
        "/open/datasets/{slug}/files/{file_id}",
        # The developer centre: developers are the public, with sessions of their own
        # (govshare.opendata.developer_pages), never a console permission.
        "/open/developer",
        "/open/developer/register",
        "/open/developer/confirm",
        "/open/developer/login",
        "/open/developer/logout",
        "/open/developer/keys",
        "/open/developer/keys/{key_id}/revoke",
        "/open/developer/apply",
        "/open/developer/applications",
        "/healthz",
        # Probes and scrapers: /metrics is guarded by its token or loopback (govshare.ops).
        "/readyz",
        "/metrics",
        "/api/v1/auth/token",
        "/login",
        "/logout",
        # Changing one's password needs the old one, and an expired password no session.
        "/api/v1/auth/password",
        "/login/password",
        # Enrolling a one-time code checks the password first (a role that must use one
        # has no session before it is enrolled).
        "/login/totp",
        "/api/v1/exchange/nodes/register",
    }


def test_routes_outside_fastapi_are_the_signed_data_routes_docs_and_static_files(
    tmp_path: Path,
) -> None:
    app = create_app(make_settings(tmp_path))
    app.state.engine.dispose()
    signed, other = [], []
    for route in app.routes:
        if isinstance(route, APIRoute) or getattr(route, "original_router", None) is not None:
            continue
        if isinstance(route, SignedRoute):
            assert isinstance(route.requires, Require)
            assert route.requires.permission is Permission.DATA_SERVICE
            signed.append(route.path)
        elif isinstance(route, Route | Mount):
            other.append(route.path)
    assert sorted(p.rsplit("/", 1)[1] for p in signed) == ["lookup", "query", "verify"]
    # FastAPI's own documentation routes and the console's static files are public.
    assert sorted(other) == ["/docs", "/docs/oauth2-redirect", "/openapi.json", "/static"]
