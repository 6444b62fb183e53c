"""The console over real HTTP on the live hub: a signed-in browser-like client."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from tests.factories import PASSWORD, World, resource_payload
from tests.live import LiveHub


@contextmanager
def signed_in(world: World, username: str) -> Iterator[httpx.Client]:
    with signed_in_to(world.hub, username) as client:
        yield client


@contextmanager
def signed_in_to(hub: LiveHub, username: str) -> Iterator[httpx.Client]:
    """A console session on ``hub`` (any live hub, not only the session's world)."""
    with hub.client(follow_redirects=False) as client:
        page = client.get("/login")
        token = re.search(r'name="login_token" value="([^"]+)"', page.text)
        assert token, page.text
        r = client.post(
            "/login",
            data={"username": username, "password": PASSWORD, "login_token": token.group(1)},
        )
        assert r.status_code == 303, r.text
        yield client


def csrf_of(client: httpx.Client) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/").text)
    assert found
    return found.group(1)


def resource_form(csrf: str, **overrides: Any) -> dict[str, Any]:
    """The compile form as a browser posts it, from the factories' conforming entry."""
    payload = resource_payload(**overrides)
    items = payload.pop("items")
    form: dict[str, Any] = {"csrf_token": csrf, **payload}
    for key in ("name", "code", "data_type", "length", "description", "code_table"):
        form[f"item_{key}"] = ["" if it.get(key) is None else str(it[key]) for it in items]
    form["item_is_key"] = ["1" if it.get("is_key") else "" for it in items]
    return form


def error_rows(page: str) -> set[tuple[int, str, str]]:
    """The import page's error report as (row, column, reason)."""
    return {
        (int(row), column, reason)
        for row, column, reason in re.findall(
            r'<tr><td class="num">(\d+)</td><td>(.*?)</td><td>(.*?)</td></tr>', page
        )
    }


def follow_import(client: Any, upload: Any) -> Any:
    """The page a console upload ends on: its import job's page once the job finished
    (the browser polls it; so does this), read without following it on to the drafts."""
    assert upload.status_code == 303, upload.text
    url = upload.headers["location"].removesuffix("?follow=1")
    assert re.fullmatch(r"/catalog/import/jobs/\d+", url), url
    deadline = time.monotonic() + 120
    while True:
        page = client.get(url)
        status = re.search(r'data-status="(\w+)"', page.text)
        assert status, page.text
        if status.group(1) in ("done", "failed"):
            return page
        assert time.monotonic() < deadline, page.text
        time.sleep(0.05)
