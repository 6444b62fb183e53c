"""Routers joined into the app as plain routes, so a request is matched in one pass.

Since FastAPI 0.137 ``include_router`` keeps each router as a node of the app's route
tree and a request walks every earlier node, route by route, with scope bookkeeping at
each step (upstream: fastapi/fastapi#16159). With the hub's ~390 routes that cost
about a millisecond per request before the endpoint ran, a fifth of the CPU of a busy
hub. :func:`include_flat` adds each of a router's routes to the app itself, as
``include_router`` did before: the routes keep their order, paths, dependencies,
responses and operation ids, so the OpenAPI document is the same.
"""

from __future__ import annotations

from collections.abc import Iterable

from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute


def include_flat(app: FastAPI, routers: APIRouter | Iterable[APIRouter], prefix: str = "") -> None:
    """Add every route of ``routers`` (in order) to ``app`` under ``prefix``.

    Only API routes are moved: a router holding anything else (a mount, a websocket, a
    router included in it) is refused, since its options would be lost on the way."""
    for router in [routers] if isinstance(routers, APIRouter) else routers:
        for route in router.routes:
            if not isinstance(route, APIRoute):
                raise TypeError(f"{type(route).__name__} in a router cannot be joined flat")
            app.router.add_api_route(
                prefix + route.path,
                route.endpoint,
                response_model=route.response_model,
                status_code=route.status_code,
                tags=route.tags,
                dependencies=route.dependencies,
                summary=route.summary,
                description=route.description,
                response_description=route.response_description,
                responses=route.responses,
                deprecated=route.deprecated,
                methods=route.methods,
                operation_id=route.operation_id,
                response_model_include=route.response_model_include,
                response_model_exclude=route.response_model_exclude,
                response_model_by_alias=route.response_model_by_alias,
                response_model_exclude_unset=route.response_model_exclude_unset,
                response_model_exclude_defaults=route.response_model_exclude_defaults,
                response_model_exclude_none=route.response_model_exclude_none,
                include_in_schema=route.include_in_schema,
                response_class=route.response_class,
                name=route.name,
                route_class_override=type(route),
                callbacks=route.callbacks,
                openapi_extra=route.openapi_extra,
                generate_unique_id_function=route.generate_unique_id_function,
                strict_content_type=route.strict_content_type,
                max_body_size=route.max_body_size,
                form_limits=route.form_limits or None,
            )
