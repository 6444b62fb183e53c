"""/metrics: scraped over HTTP and read with prometheus_client's own parser; the values
move with what really happens on the hub, and only an allowed scraper gets them."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from govshare.exchange import package
from govshare.node.client import HubRefused
from tests.conftest import StartHub
from tests.exchange.scenario import make_scene
from tests.factories import PASSWORD, World
from tests.live import serve_workers

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(base_url: str, **kw: object) -> Samples:
    r = httpx.get(f"{base_url}/metrics", timeout=30, **kw)  # type: ignore[arg-type]
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(r.text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def label_values(samples: Samples, name: str, label: str) -> set[str]:
    return {dict(k[1])[label] for k in samples if k[0] == name and label in dict(k[1])}


def test_latency_is_labelled_by_route_template_never_the_raw_path(world: World) -> None:
    base = world.hub.base_url
    with world.api(world.admin) as c:
        assert c.get("/api/v1/catalog/resources/987654321").status_code == 404
    samples = scrape(base)
    routes = label_values(samples, "govshare_http_request_duration_seconds_count", "route")
    assert "/api/v1/catalog/resources/{resource_id}" in routes
    assert not any("987654321" in r for r in routes)
    assert (
        value(
            samples,
            "govshare_http_request_duration_seconds_count",
            method="GET",
            route="/api/v1/catalog/resources/{resource_id}",
            status="404",
        )
        >= 1
    )


def test_values_follow_real_actions(world: World, tmp_path: Path) -> None:
    base = world.hub.base_url
    scene = make_scene(world, tmp_path, rows=10)
    try:
        scene.node("provider")
        scene.node("consumer")
        scene.create_tasks()
        before = scrape(base)
        # A failed sign-in: one 401 on the token route and one audit entry.
        r = httpx.post(
            f"{base}/api/v1/auth/token",
            json={"username": world.admin, "password": PASSWORD + "x"},
            timeout=30,
        )
        assert r.status_code == 401
        # A package the hub refuses: counted, alerted and audited.
        agent = scene.nodes["provider"]
        with pytest.raises(HubRefused):
            agent.client.upload(b"not a package at all")
        task = str(scene.provider_task["id"])
        blob = package.build(
            agent.signer,
            task_id=scene.provider_task["id"],
            seq=1,
            columns=["id", "sfzhm", "xm", "xb", "version"],
            key=["id"],
            body=package.encode_rows(
                ["id", "sfzhm", "xm", "xb", "version"],
                ["I"],
                [(1, "370202199001010011", "甲", "1", 1)],
            ),
            counts={"I": 1},
            cipher=agent.cipher,
            cipher_key=agent.cipher_key,
        )
        agent.client.upload(blob)
        after = scrape(base)
    finally:
        scene.close()

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    token_401 = {"method": "POST", "route": "/api/v1/auth/token", "status": "401"}
    assert delta("govshare_http_request_duration_seconds_count", **token_401) == 1
    assert delta("govshare_audit_entries_total") >= 2  # the sign-in failure, the refusal…
    assert delta("govshare_exchange_packages_rejected_total") == 1
    assert delta("govshare_exchange_packages_refused_total", task="") == 1
    assert delta("govshare_exchange_packages_accepted_total", task=task) == 1
    assert delta("govshare_exchange_rows_accepted_total", task=task) == 1
    assert value(after, "govshare_exchange_task_last_seq", task=task) == 1
    assert value(after, "govshare_nodes_online") >= 2
    assert value(after, "govshare_alerts_open", kind="package_rejected") >= 1


def test_a_caller_from_elsewhere_is_refused_without_a_token(world: World) -> None:
    # The hub believes X-Forwarded-For from loopback (a local reverse proxy): the
    # request is then a remote client's.
    r = httpx.get(
        f"{world.hub.base_url}/metrics",
        headers={"X-Forwarded-For": "203.0.113.9"},
        timeout=30,
    )
    assert r.status_code == 403
    assert "govshare_" not in r.text


def test_with_a_token_only_its_bearer_scrapes(start_hub: StartHub) -> None:
    token = "scrape-token-" + "x" * 20
    hub = start_hub(metrics_token=token)
    url = f"{hub.base_url}/metrics"
    assert httpx.get(url, timeout=30).status_code == 403
    wrong = httpx.get(url, headers={"Authorization": "Bearer nope"}, timeout=30)
    assert wrong.status_code == 403
    samples = scrape(
        hub.base_url,
        headers={"Authorization": f"Bearer {token}", "X-Forwarded-For": "203.0.113.9"},
    )
    assert value(samples, "govshare_applications_open") == 0
    assert value(samples, "govshare_nodes_online") == 0


def test_workers_add_up(tmp_path: Path, backend: str) -> None:
    """``govshare serve --workers 2``: every request counted once, whichever worker
    answered it and whichever answers the scrape."""
    if backend != "sqlite":
        pytest.skip("the process model does not depend on the database")
    with serve_workers(tmp_path / "data") as served:
        served.wait_ready()
        base = served.base_url
        # A request is observed once its answer has gone: let the last probe's land.
        time.sleep(1)
        first = scrape(base)
        n = 40
        for _ in range(n):
            # A new connection each time, so both workers answer some.
            assert httpx.get(f"{base}/healthz", timeout=10).status_code == 200
        time.sleep(1)
        counts = [
            value(
                scrape(base),
                "govshare_http_request_duration_seconds_count",
                method="GET",
                route="/healthz",
                status="200",
            )
            for _ in range(4)
        ]
        start = value(
            first,
            "govshare_http_request_duration_seconds_count",
            method="GET",
            route="/healthz",
            status="200",
        )
        assert counts == [start + n] * 4
        assert (tmp_path / "data" / "metrics").is_dir()
        assert len(list((tmp_path / "data" / "metrics").glob("*.db"))) >= 2
