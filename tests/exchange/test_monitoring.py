"""Monitoring (桥接监控): a silent node is alerted once and cleared when it returns; every
new alert is pushed to the webhook."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import date, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest

from govshare import db
from govshare.db import utcnow
from govshare.exchange import service
from govshare.exchange.schemas import HeartbeatIn
from govshare.exchange.tasks import Monitor
from tests.conftest import make_settings, migrated
from tests.exchange.scenario import make_scene
from tests.factories import World
from tests.live import start_live_hub


class Webhook:
    """A real HTTP receiver on loopback collecting what the hub posts."""

    def __init__(self) -> None:
        received: list[dict[str, Any]] = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *_args: Any) -> None:
                return None

        self.received = received
        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/alerts"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    hook = Webhook()
    yield hook
    hook.close()


@pytest.fixture
def watched_world(tmp_path: Path, webhook: Webhook) -> Iterator[World]:
    settings = migrated(
        make_settings(
            tmp_path / "hub",
            node_silent_seconds=5,
            alert_webhook_url=webhook.url,
            monitor_interval_seconds=3600,
        )
    )
    live = start_live_hub(settings)
    yield World(live)
    live.stop()


def test_silent_node_alerted_once_and_cleared(
    watched_world: World, webhook: Webhook, tmp_path: Path
) -> None:
    world = watched_world
    scene = make_scene(world, tmp_path, rows=5)
    try:
        agent = scene.node("provider")
        agent.heartbeat()
        monitor = Monitor(world.hub.settings, world.hub.session_factory)
        monitor.run_once()
        with world.api(world.admin) as c:
            assert not [
                a for a in c.get("/api/v1/exchange/alerts").json() if a["kind"] == "node_silent"
            ]
        # Pretend the node was last heard from long ago.
        with world.hub.db() as s:
            node = service.get_node(s, scene.node_ids["provider"])
            node.last_seen_at = node.last_seen_at.replace(year=2020)
        monitor.run_once()
        monitor.run_once()  # still silent: the same alert, not a second one
        with world.api(world.admin) as c:
            alerts = [
                a for a in c.get("/api/v1/exchange/alerts").json() if a["kind"] == "node_silent"
            ]
            node = c.get(f"/api/v1/exchange/nodes/{scene.node_ids['provider']}").json()
        assert len(alerts) == 1
        assert alerts[0]["resolved_at"] is None
        assert node["online"] is False
        deadline = time.monotonic() + 10
        while not any(h["kind"] == "node_silent" for h in webhook.received):
            assert time.monotonic() < deadline, "webhook never called"
            time.sleep(0.05)
        hook = next(h for h in webhook.received if h["kind"] == "node_silent")
        assert hook["node_id"] == scene.node_ids["provider"]
        assert hook["label"] == "前置机失联"
        agent.heartbeat()  # it is back
        with world.api(world.admin) as c:
            alerts = [
                a for a in c.get("/api/v1/exchange/alerts").json() if a["kind"] == "node_silent"
            ]
        assert alerts[0]["resolved_at"] is not None
    finally:
        scene.close()


def test_daily_reconciliation_is_requested_once_per_day(
    watched_world: World, tmp_path: Path
) -> None:
    world = watched_world
    scene = make_scene(world, tmp_path, rows=5)
    try:
        scene.node("provider")
        scene.node("consumer")
        scene.create_tasks()
        engine = db.make_engine(world.hub.settings)
        factory = db.make_session_factory(engine, world.hub.settings)
        with db.session_scope(factory) as s:
            assert service.daily_reconciliations(s) == 1
        with db.session_scope(factory) as s:
            assert service.daily_reconciliations(s) == 0
        engine.dispose()
        scene.run_until(lambda: _outcome(world) != "pending")
        assert _outcome(world) == "match"
    finally:
        scene.close()


def _outcome(world: World) -> str:
    with world.api(world.admin) as c:
        return str(c.get("/api/v1/exchange/reconciliations").json()[0]["outcome"])


def test_a_subscription_falling_behind_is_alerted_and_cleared_when_it_catches_up(
    watched_world: World, tmp_path: Path
) -> None:
    world = watched_world
    scene = make_scene(world, tmp_path, rows=50)
    try:
        scene.node("provider")
        scene.node("consumer")
        scene.create_tasks(batch_rows=100)
        # Only the provider runs: packages wait at the hub for the subscriber.
        scene.run_until(lambda: _last_seq(world, scene.provider_task["id"]) > 0, nodes=["provider"])
        settings = world.hub.settings
        later = utcnow() + timedelta(seconds=settings.lag_alert_seconds + 60)
        with world.hub.db() as s:
            assert service.check_lag(s, settings) == 0  # just accepted: not yet a backlog
            assert service.check_lag(s, settings, now=later) == 1
            assert service.check_lag(s, settings, now=later) == 1  # the same alert again
        with world.api(world.admin) as c:
            lag = [a for a in c.get("/api/v1/exchange/alerts").json() if a["kind"] == "lag"]
        assert len(lag) == 1
        assert lag[0]["task_id"] == scene.subscriber_task["id"]
        assert "积压 1 个数据包" in lag[0]["message"]
        scene.run_until(scene.in_sync, nodes=["consumer"])
        with world.hub.db() as s:
            assert service.check_lag(s, settings, now=later) == 0
        with world.api(world.admin) as c:
            lag = [a for a in c.get("/api/v1/exchange/alerts").json() if a["kind"] == "lag"]
        assert lag[0]["resolved_at"] is not None
    finally:
        scene.close()


def _last_seq(world: World, task_id: int) -> int:
    with world.api(world.admin) as c:
        return int(c.get(f"/api/v1/exchange/tasks/{task_id}").json()["last_seq"])


def test_unanswered_reconciliation_times_out_alerts_and_is_retried(
    watched_world: World, tmp_path: Path
) -> None:
    world = watched_world
    settings = world.hub.settings
    day = date(2026, 3, 2)  # the day is given, never today's
    scene = make_scene(world, tmp_path, rows=5)
    try:
        scene.node("provider")
        scene.node("consumer")
        scene.create_tasks()
        scene.run_until(scene.in_sync)
        with world.hub.db() as s:
            assert service.daily_reconciliations(s, today=day) == 1
        # No node answers: the reconciliation stays pending until its time is up.
        with world.hub.db() as s:
            first = service.list_reconciliations(s)[0]
            late = first.requested_at + timedelta(seconds=settings.reconciliation_timeout_seconds)
            assert service.check_reconciliations(s, settings, now=late) == 0
            assert service.check_reconciliations(s, settings, now=late + timedelta(seconds=1)) == 1
        with world.api(world.admin) as c:
            recs = c.get("/api/v1/exchange/reconciliations").json()
            alerts = [
                a
                for a in c.get("/api/v1/exchange/alerts", params={"open_only": True}).json()
                if a["kind"] == "reconciliation_timeout"
            ]
        failed, retry = (next(r for r in recs if r["id"] == i) for i in (first.id, first.id + 1))
        assert failed["outcome"] == "failed"
        assert "源端前置机" in failed["detail"]
        assert f"#{retry['id']}" in failed["detail"]
        assert retry["outcome"] == "pending"
        assert len(alerts) == 1
        assert alerts[0]["task_id"] == scene.subscriber_task["id"]
        assert alerts[0]["node_id"] == scene.node_ids["provider"]
        with world.hub.db() as s:
            assert service.daily_reconciliations(s, today=day) == 0  # the retry is under way
            # The failed one's command is withdrawn: nodes are sent only the retry's.
            sent = service.heartbeat(
                s, service.get_node(s, scene.node_ids["provider"]), HeartbeatIn()
            )
        assert [c["args"]["reconciliation_id"] for c in sent["commands"]] == [retry["id"]]
        scene.run_until(lambda: _outcome(world) != "pending")
        assert _outcome(world) == "match"
        with world.api(world.admin) as c:
            alerts = c.get("/api/v1/exchange/alerts").json()
        assert all(a["resolved_at"] for a in alerts if a["kind"] == "reconciliation_timeout")

        # A stopped subscription gets no retry; the failed one does not count as the day's.
        with world.api(world.admin) as c:
            sub = scene.subscriber_task["id"]
            assert c.post(f"/api/v1/exchange/tasks/{sub}/stop").status_code == 200
            c.post(f"/api/v1/exchange/tasks/{scene.provider_task['id']}/reconcile")
        with world.hub.db() as s:
            pending = service.list_reconciliations(s)[0]
            too_late = pending.requested_at + timedelta(days=1)
            assert service.check_reconciliations(s, settings, now=too_late) == 1
            assert service.list_reconciliations(s)[0].outcome == "failed"
            assert service.daily_reconciliations(s, today=day + timedelta(days=1)) == 1
            assert service.daily_reconciliations(s, today=day + timedelta(days=1)) == 0
    finally:
        scene.close()
