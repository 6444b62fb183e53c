"""告警规则: a kind without a row follows its setting, a row overrides it; the checks
apply the effective threshold (lag, disk, key expiry), a disabled rule raises nothing,
a channel switched off stays silent; the API and the console refuse bad thresholds
and strangers, and every change is audited with before and after."""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlalchemy import select
from sqlalchemy.orm import Session

from govshare import db
from govshare.catalog import search
from govshare.config import Settings
from govshare.documents import keys as document_keys
from govshare.errors import InvalidInput
from govshare.exchange import alertrules, alerts
from govshare.exchange import service as exchange_service
from govshare.exchange.models import (
    Alert,
    AlertKind,
    ExchangeNode,
    ExchangePackage,
    ExchangeTask,
    NodeStatus,
    TaskKind,
    TaskState,
)
from govshare.ops import watch
from govshare.security import service as identity
from govshare.security.audit import SYSTEM, Actor
from govshare.security.models import ApiClient, AuditEntry
from tests.conftest import StartHub
from tests.exchange.test_monitoring import Webhook
from tests.factories import PASSWORD, World, valid_credit_code
from tests.mail import Inbox
from tests.web.test_pages import sign_in

ADMIN = Actor(name="ops-admin", kind="user")


@pytest.fixture(autouse=True)
def _dictionary_loaded() -> None:
    search.warm_up()  # as tests/ops/test_pages.py: jieba's loader must not race pytest


@contextmanager
def _session(settings: Settings) -> Iterator[Session]:
    engine = db.make_engine(settings)
    try:
        with db.session_scope(db.make_session_factory(engine, settings)) as session:
            yield session
    finally:
        engine.dispose()


def _open(session: Session, kind: AlertKind) -> list[Alert]:
    return list(
        session.scalars(select(Alert).where(Alert.kind == kind, Alert.resolved_at.is_(None)))
    )


def _update(session: Session, settings: Settings, kind: AlertKind, **changes: object) -> None:
    current = alertrules.effective(session, settings, kind)
    values: dict[str, object] = {
        "enabled": current.enabled,
        "threshold": current.threshold if current.edited else None,
        "severity": current.severity,
        "webhook": current.webhook,
        "mail": current.mail,
    }
    values.update(changes)
    alertrules.update_rule(session, settings, ADMIN, kind, **values)  # type: ignore[arg-type]


# -- the effective rule ------------------------------------------------------------------------


def test_the_setting_rules_until_a_row_overrides_it(fresh_settings: Settings) -> None:
    settings = fresh_settings.model_copy(update={"lag_alert_seconds": 777})
    with _session(settings) as s:
        lag = alertrules.effective(s, settings, AlertKind.LAG)
        assert (lag.threshold, lag.edited, lag.enabled, lag.severity) == (777, False, True, "error")
        assert len(alertrules.list_rules(s, settings)) == len(AlertKind)
        _update(s, settings, AlertKind.LAG, threshold=30, severity="warning")
    with _session(settings) as s:
        lag = alertrules.effective(s, settings, AlertKind.LAG)
        assert (lag.threshold, lag.edited, lag.severity) == (30, True, "warning")
        assert lag.updated_by == "ops-admin"
        _update(s, settings, AlertKind.LAG, threshold=None)  # empty: the setting's again
    with _session(settings) as s:
        lag = alertrules.effective(s, settings, AlertKind.LAG)
        assert (lag.threshold, lag.edited) == (777, True)
        alertrules.reset_rule(s, settings, ADMIN, AlertKind.LAG)
    with _session(settings) as s:
        assert not alertrules.effective(s, settings, AlertKind.LAG).edited
        # backup_max_age_hours = 0 has always meant no 备份过期 alert: shown as off.
        off = settings.model_copy(update={"backup_max_age_hours": 0})
        assert not alertrules.effective(s, off, AlertKind.BACKUP_STALE).enabled
        actions = [
            (e.action, (e.before or {}).get("threshold"), (e.after or {}).get("threshold"))
            for e in s.scalars(
                select(AuditEntry)
                .where(AuditEntry.object_type == "alert_rule")
                .order_by(AuditEntry.seq)
            )
        ]
    assert actions == [
        ("ops.alert_rule.update", 777, 30),
        ("ops.alert_rule.update", 30, 777),
        ("ops.alert_rule.reset", 777, 777),
    ]


@pytest.mark.parametrize(
    ("kind", "threshold", "expected"),
    [
        (AlertKind.LAG, -5, "须在 1 至 604800 秒 之间"),
        (AlertKind.LAG, 0, "须在 1 至 604800 秒 之间"),
        (AlertKind.NODE_SILENT, 10**9, "须在 5 至 86400 秒 之间"),
        (AlertKind.LAG, 1.5, "必须是整数"),
        (AlertKind.DISK_LOW, 100, "须在 0.1 至 99.9 % 之间"),
        (AlertKind.PACKAGE_REJECTED, 3, "没有阈值"),
        (AlertKind.LAG, float("nan"), "必须是数字"),
    ],
)
def test_absurd_thresholds_are_refused(kind: AlertKind, threshold: float, expected: str) -> None:
    with pytest.raises(InvalidInput, match=expected) as caught:
        alertrules.check_threshold(alertrules.RULES[kind], threshold)
    assert caught.value.details[0]["field"] == "threshold"


# -- the checks apply it -----------------------------------------------------------------------


def _lagging_subscription(world: World, received: datetime) -> int:
    """A running subscription whose provider has one package, accepted at ``received``,
    the subscriber has not applied. Its id."""
    dept = world.department()
    resource = world.published(dept)
    with world.hub.db() as s:
        node = ExchangeNode(
            name=f"前置机-{dept.id}",
            department_id=dept.id,
            status=NodeStatus.ACTIVE,
            sig_alg="sm2",
            cipher="none",
            public_key="unused",
        )
        s.add(node)
        s.flush()
        common = {"node_id": node.id, "resource_id": resource["id"], "created_by": "test"}
        provider = ExchangeTask(
            name="发送", kind=TaskKind.PROVIDER, state=TaskState.RUNNING, last_seq=1, **common
        )
        s.add(provider)
        s.flush()
        subscriber = ExchangeTask(
            name="接收",
            kind=TaskKind.SUBSCRIBER,
            state=TaskState.RUNNING,
            source_task_id=provider.id,
            **common,
        )
        s.add(subscriber)
        s.add(
            ExchangePackage(
                task_id=provider.id,
                seq=1,
                digest="0" * 64,
                size=1,
                rows=1,
                created_at=received,
                received_at=received,
            )
        )
        s.flush()
        return subscriber.id


def test_a_lowered_lag_threshold_raises_what_the_default_would_not(start_hub: StartHub) -> None:
    hub = start_hub(monitor_interval_seconds=3600)
    world = World(hub)
    now = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)
    sub_id = _lagging_subscription(world, now - timedelta(seconds=120))
    settings = hub.settings
    with hub.db() as s:
        assert exchange_service.check_lag(s, settings, now=now) == 0  # 120 s < 600 s
        assert _open(s, AlertKind.LAG) == []
    with hub.db() as s:
        _update(s, settings, AlertKind.LAG, threshold=60, severity="warning")
    with hub.db() as s:
        assert exchange_service.check_lag(s, settings, now=now) == 1
        (alert,) = _open(s, AlertKind.LAG)
        assert alert.task_id == sub_id
        assert alert.severity == "warning"
        _update(s, settings, AlertKind.LAG, enabled=False)  # resolves the open one
    with hub.db() as s:
        assert _open(s, AlertKind.LAG) == []
        exchange_service.check_lag(s, settings, now=now)
        assert _open(s, AlertKind.LAG) == []  # disabled: raises nothing


def test_disk_rule_above_the_real_free_share_alerts_and_below_resolves(
    fresh_settings: Settings,
) -> None:
    settings = fresh_settings
    usage = shutil.disk_usage(settings.data_dir)
    free = 100 * usage.free / usage.total
    if not 0.5 < free < 99.0:
        pytest.skip(f"the disk is {free:.1f}% free: no threshold on both sides of it")
    with _session(settings) as s:
        assert not watch.check_disk(s, settings).low or free < settings.disk_free_alert_percent
        _update(s, settings, AlertKind.DISK_LOW, threshold=round(free + 0.5, 1))
    with _session(settings) as s:
        state = watch.check_disk(s, settings)
        assert state.low
        (alert,) = _open(s, AlertKind.DISK_LOW)
        assert "可用空间" in alert.message
        assert str(settings.data_dir) in alert.message
        _update(s, settings, AlertKind.DISK_LOW, threshold=round(free - 0.4, 1))
    with _session(settings) as s:
        assert not watch.check_disk(s, settings).low
        assert _open(s, AlertKind.DISK_LOW) == []
        _update(s, settings, AlertKind.DISK_LOW, threshold=99.9, enabled=False)
    with _session(settings) as s:
        assert not watch.check_disk(s, settings).low  # disabled: nothing raised
        assert _open(s, AlertKind.DISK_LOW) == []


def _certificate(path: Path, not_after: datetime) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "hub.gov.example")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(not_after - timedelta(days=400))
        .not_valid_after(not_after)
        .sign(key, hashes.SHA256())
    )
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def test_keys_near_their_maximum_age_are_named(fresh_settings: Settings, tmp_path: Path) -> None:
    cert = tmp_path / "hub.pem"
    made = datetime(2020, 1, 1, tzinfo=UTC)
    _certificate(cert, made + timedelta(days=400))
    settings = fresh_settings.model_copy(update={"tls_cert_files": f"{cert}, "})
    # Keys made today (the documents key, the audit key) are far from due in 2020.
    document_keys.signing_key(settings.data_dir, settings.secret_key, "sm2")
    with _session(settings) as s:
        dept = identity.add_department(
            s,
            SYSTEM,
            name="青岛市测试局",
            short_name="测试局",
            credit_code=valid_credit_code(),
            division_code="370200",
        )
        client, _secret = identity.add_api_client(
            s, settings, SYSTEM, name="人口库对接", department_id=dept.id
        )
        client.created_at = made
        s.add(
            ExchangeNode(
                name="测试局前置机",
                department_id=dept.id,
                status=NodeStatus.ACTIVE,
                sig_alg="sm2",
                cipher="none",
                public_key="unused",
                created_at=made + timedelta(days=30),
            )
        )
    client_due = made + timedelta(days=365)
    with _session(settings) as s:
        early = watch.check_keys(s, settings, client_due - timedelta(days=31))
        assert early == []
        assert _open(s, AlertKind.KEY_EXPIRING) == []
    with _session(settings) as s:
        due = watch.check_keys(s, settings, client_due - timedelta(days=10))
        assert [k.name for k in due] == [f"接入应用 人口库对接 ({client.app_key}) 的密钥"]
        (alert,) = _open(s, AlertKind.KEY_EXPIRING)
        assert "人口库对接" in alert.message
        assert "2020-12-31" in alert.message
        assert "剩余 10 天" in alert.message
    with _session(settings) as s:  # later: the certificate and the node's key too
        due = watch.check_keys(s, settings, made + timedelta(days=370))
        names = [k.name for k in due]
        assert names[0].startswith("接入应用")
        assert any(n.startswith(f"TLS 证书 {cert}") and "hub.gov.example" in n for n in names)
        assert "前置机 测试局前置机 的签名密钥" in names
        assert "已过期" in _open(s, AlertKind.KEY_EXPIRING)[0].message
        _update(s, settings, AlertKind.KEY_EXPIRING, threshold=5)
    with _session(settings) as s:  # a shorter warning: nothing due 10 days ahead
        assert watch.check_keys(s, settings, client_due - timedelta(days=10)) == []
        assert _open(s, AlertKind.KEY_EXPIRING) == []


def test_a_rotated_secret_counts_from_its_rotation(fresh_settings: Settings) -> None:
    settings = fresh_settings
    made = datetime(2020, 1, 1, tzinfo=UTC)
    with _session(settings) as s:
        dept = identity.add_department(
            s,
            SYSTEM,
            name="青岛市轮换局",
            short_name="轮换局",
            credit_code=valid_credit_code(),
            division_code="370200",
        )
        client, _ = identity.add_api_client(
            s, settings, SYSTEM, name="轮换应用", department_id=dept.id
        )
        client.created_at = made
    with _session(settings) as s:
        found = s.scalars(select(ApiClient)).one()
        identity.rotate_api_client_secret(s, settings, SYSTEM, found)
    with _session(settings) as s:
        keys = [k for k in watch.hub_keys(s, settings) if "轮换应用" in k.name]
        assert len(keys) == 1
        assert keys[0].due > datetime.now(UTC) + timedelta(days=300)  # counted from today


# -- channels ----------------------------------------------------------------------------------


@pytest.mark.usefixtures("calendar_covered_today")
def test_mail_switched_off_sends_no_mail(smtp: tuple[Inbox, int], start_hub: StartHub) -> None:
    inbox, port = smtp
    hub = start_hub(
        smtp_host="127.0.0.1",
        smtp_port=port,
        smtp_user="ops",
        smtp_password="mail-secret",
        alert_mail_to="ops@gov.example",
        monitor_interval_seconds=3600,
    )
    with hub.db() as s:
        _update(s, hub.settings, AlertKind.LAG, mail=False)
    with hub.db() as s:
        assert alerts.raise_alert(s, AlertKind.LAG, "订阅 7 积压 12 个数据包") is not None
    with hub.db() as s:  # a kind whose mail is on, after it: the one that arrives
        alerts.raise_alert(s, AlertKind.DATABASE_ERROR, "测试：数据库连接中断")
    inbox.wait(1)
    time.sleep(0.5)
    assert len(inbox.messages) == 1
    body = inbox.messages[0][2].get_payload(decode=True)
    assert isinstance(body, bytes)
    assert "(database_error)" in body.decode("utf-8")


def test_webhook_switched_off_posts_nothing(fresh_settings: Settings) -> None:
    hook = Webhook()
    try:
        settings = fresh_settings
        with _session(settings) as s:
            _update(s, settings, AlertKind.NODE_SILENT, webhook=False)
        with _session(settings) as s:
            alerts.raise_alert(s, AlertKind.NODE_SILENT, "前置机甲 失联", webhook_url=hook.url)
            alerts.raise_alert(s, AlertKind.SEND_FAILED, "前置机乙 发送失败", webhook_url=hook.url)
        deadline = time.time() + 10
        while not hook.received and time.time() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)
        assert [p["kind"] for p in hook.received] == ["send_failed"]
        assert hook.received[0]["severity"] == "error"
    finally:
        hook.close()


# -- API ---------------------------------------------------------------------------------------


def test_api_lists_edits_and_refuses(start_hub: StartHub) -> None:
    hub = start_hub(monitor_interval_seconds=3600)
    world = World(hub)
    dept = world.department()
    with world.api(world.admin) as c:
        rules = c.get("/api/v1/ops/alert-rules").json()
        assert len(rules) == len(AlertKind)
        lag = next(r for r in rules if r["kind"] == "lag")
        assert (lag["threshold"], lag["unit"], lag["source"]) == (600, "秒", "default")
        assert lag["source_label"] == "设置默认"
        r = c.put(
            "/api/v1/ops/alert-rules/lag",
            json={"threshold": 30, "severity": "warning", "mail": False},
        )
        assert r.status_code == 200, r.text
        assert (r.json()["threshold"], r.json()["source_label"]) == (30, "已修改")
        for body, status, field in [
            ({"threshold": -5}, 422, "threshold"),
            ({"threshold": 10**9}, 422, "threshold"),
            ({"threshold": "很多"}, 422, "threshold"),
            ({"severity": "fatal"}, 422, "severity"),
            ({"colour": "red"}, 422, "colour"),
        ]:
            refused = c.put("/api/v1/ops/alert-rules/lag", json=body)
            assert refused.status_code == status, (body, refused.text)
            error = refused.json()["error"]
            assert error["code"] == "invalid_input"
            assert any(field in str(d.get("field", "")) for d in error["details"]), error
        no_threshold = c.put("/api/v1/ops/alert-rules/package_rejected", json={"threshold": 3})
        assert no_threshold.status_code == 422
        assert "没有阈值" in no_threshold.json()["error"]["message"]
        assert c.put("/api/v1/ops/alert-rules/nonsense", json={}).status_code == 422
        kept = c.get("/api/v1/ops/alert-rules/lag").json()  # refusals changed nothing
        assert (kept["threshold"], kept["severity"], kept["mail"]) == (30, "warning", False)
    for who in (dept.resource_admin, world.auditor):
        with world.api(who) as c:
            assert c.get("/api/v1/ops/alert-rules").status_code == 403
            r = c.put("/api/v1/ops/alert-rules/lag", json={"threshold": 5})
            assert r.status_code == 403
            assert r.json()["error"]["code"] == "permission_denied"
    with world.api() as c:
        assert c.get("/api/v1/ops/alert-rules").status_code == 401
    with world.api(world.admin) as c:
        back = c.delete("/api/v1/ops/alert-rules/lag").json()
        assert (back["threshold"], back["source"]) == (600, "default")
    with hub.db() as s:
        entries = list(
            s.scalars(
                select(AuditEntry)
                .where(AuditEntry.object_type == "alert_rule")
                .order_by(AuditEntry.seq)
            )
        )
    assert [e.action for e in entries] == ["ops.alert_rule.update", "ops.alert_rule.reset"]
    assert entries[0].actor == world.admin
    assert entries[0].before is not None
    assert entries[0].after is not None
    assert (entries[0].before["threshold"], entries[0].after["threshold"]) == (600, 30)
    assert entries[0].after["mail"] is False


# -- console -----------------------------------------------------------------------------------


def _signed_in(world: World, who: str) -> httpx.Client:
    client = httpx.Client(base_url=world.hub.base_url, timeout=30)
    assert sign_in(client, who, PASSWORD).status_code == 303
    return client


def _csrf(page: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found
    return found.group(1)


def _row(page: str, kind: str) -> str:
    found = re.search(rf'<tr data-rule="{kind}">(.*?)</tr>', page, re.S)
    assert found, kind
    return found.group(1)


def test_console_page_edits_a_rule_and_explains_refusals(start_hub: StartHub) -> None:
    hub = start_hub(monitor_interval_seconds=3600)
    world = World(hub)
    dept = world.department()
    with closing(_signed_in(world, world.admin)) as c:
        page = c.get("/ops/alert-rules")
        assert page.status_code == 200
        assert 'href="/ops/alert-rules"' in page.text  # in the navigation
        row = _row(page.text, "node_silent")
        assert "设置默认" in row
        assert ">60<" in row
        assert "秒" in row
        assert "磁盘空间不足" in page.text
        assert "密钥即将到期" in page.text
        token = _csrf(page.text)
        form = {"csrf_token": token, "enabled": "on", "severity": "error", "webhook": "on"}
        bad = c.post("/ops/alert-rules/node_silent", data={**form, "threshold": "abc"})
        assert bad.status_code == 422
        assert "阈值必须是数字" in bad.text
        low = c.post("/ops/alert-rules/node_silent", data={**form, "threshold": "1"})
        assert low.status_code == 422
        assert "须在 5 至 86400 秒 之间" in low.text
        ok = c.post("/ops/alert-rules/node_silent", data={**form, "threshold": "120"})
        assert ok.status_code == 303
        after = c.get(ok.headers["location"]).text
        assert "告警规则已保存" in after
        row = _row(after, "node_silent")
        assert "已修改" in row
        assert ">120<" in row
        assert "控制台、回调推送" in row
        assert "邮件" not in row  # mail unticked: only console and webhook
        reset = c.post("/ops/alert-rules/node_silent", data={**form, "action": "reset"})
        assert reset.status_code == 303
        assert "设置默认" in _row(c.get("/ops/alert-rules").text, "node_silent")
    for who in (dept.resource_admin, world.auditor):
        with closing(_signed_in(world, who)) as c:
            assert c.get("/ops/alert-rules").status_code == 403
            assert 'href="/ops/alert-rules"' not in c.get("/").text
            r = c.post(
                "/ops/alert-rules/lag",
                data={"csrf_token": _csrf(c.get("/").text), "threshold": "5"},
            )
            assert r.status_code == 403
    with hub.db() as s:
        assert alertrules.effective(s, hub.settings, AlertKind.LAG).edited is False
        actions = list(
            s.scalars(select(AuditEntry.action).where(AuditEntry.object_type == "alert_rule"))
        )
    assert actions == ["ops.alert_rule.update", "ops.alert_rule.reset"]
