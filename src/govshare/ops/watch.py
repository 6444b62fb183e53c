"""The operations domain's watches beside the backup age: free disk space of the data
directory (磁盘空间不足) and the age of the hub's keys and certificates (密钥即将到期).
Their thresholds come from the kinds' rules (``exchange.alertrules.effective``).

Keys and the date their age counts from:
- the audit key (``DATA_DIR/audit/key.json``): its ``created_at``, else the file's
  modification time (the file is written once, never rewritten);
- the documents signing keys (``DATA_DIR/documents/key.json``): the newest of each
  algorithm, from its ``created_at`` (older ones only verify old documents);
- each active node's key: its latest registration (audit ``exchange.node.register``),
  else the node's creation;
- each active API client's secret: its latest rotation (audit
  ``api_client.rotate_secret``), else the client's creation.
A key is due ``key_max_age_days`` after that date; the alert opens the rule's days
before. Certificates of ``tls_cert_files`` are due at their notAfter.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import structlog
from cryptography import x509
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from govshare.config import Settings
from govshare.documents import keys as document_keys
from govshare.exchange import alertrules
from govshare.exchange.alerts import raise_alert, resolve_alerts
from govshare.exchange.models import AlertKind, ExchangeNode, NodeStatus
from govshare.security import anchor, atrest, fieldseal
from govshare.security.models import ApiClient, AuditEntry

log = structlog.get_logger()


@dataclass(frozen=True, slots=True)
class DiskState:
    free_percent: float
    threshold: float | None
    low: bool


def check_disk(session: Session, settings: Settings, path: Path | None = None) -> DiskState:
    """Raise 磁盘空间不足 while the filesystem of ``path`` (the data directory) has a
    smaller free share than the rule's percent; resolve it once it has enough."""
    where = path or settings.data_dir
    usage = shutil.disk_usage(where)
    free = 100 * usage.free / usage.total if usage.total else 100.0
    rule = alertrules.effective(session, settings, AlertKind.DISK_LOW)
    threshold = rule.threshold
    low = rule.enabled and threshold is not None and free < threshold
    if low:
        raise_alert(
            session,
            AlertKind.DISK_LOW,
            f"数据目录 {where} 所在磁盘可用空间 {free:.1f}%，低于 {threshold:g}%"
            f"（可用 {usage.free / 2**30:.1f} GiB，共 {usage.total / 2**30:.1f} GiB）",
            details={"path": str(where), "free": usage.free, "total": usage.total},
            webhook_url=settings.alert_webhook_url,
        )
    else:
        resolve_alerts(session, AlertKind.DISK_LOW)
    return DiskState(free_percent=free, threshold=threshold, low=low)


@dataclass(frozen=True, slots=True)
class WatchedKey:
    """A key or certificate and when it is due (rotation or expiry)."""

    name: str  # 中文, naming the key for the operator
    due: datetime
    certificate: bool = False
    problem: str | None = None  # why it is due now regardless of its date (中文)


def _latest_audited(session: Session, object_type: str, action: str) -> dict[str, datetime]:
    rows = session.execute(
        select(AuditEntry.object_id, func.max(AuditEntry.at))
        .where(AuditEntry.object_type == object_type, AuditEntry.action == action)
        .group_by(AuditEntry.object_id)
    ).all()
    return {str(oid): at for oid, at in rows if oid is not None}


def _parse_time(value: object) -> datetime | None:
    try:
        found = datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return found if found.tzinfo else found.replace(tzinfo=UTC)


def hub_keys(session: Session, settings: Settings) -> list[WatchedKey]:
    """Every key and certificate the hub watches, with its due date."""
    max_age = timedelta(days=settings.key_max_age_days)
    found: list[WatchedKey] = []
    audit_file = anchor.audit_dir(settings.data_dir) / anchor.KEY_FILE
    if audit_file.exists():
        try:
            made = _parse_time(orjson.loads(audit_file.read_bytes()).get("created_at"))
        except (OSError, orjson.JSONDecodeError, AttributeError):
            made = None
        if made is None:
            made = datetime.fromtimestamp(audit_file.stat().st_mtime, UTC)
        found.append(WatchedKey(f"审计密钥 ({audit_file})", made + max_age))
    try:
        doc = orjson.loads(document_keys.key_path(settings.data_dir).read_bytes())
        newest: dict[str, dict[str, object]] = {}
        for k in doc.get("keys", []):
            newest[str(k.get("alg"))] = k
        for alg, k in sorted(newest.items()):
            made = _parse_time(k.get("created_at"))
            if made is not None:
                name = f"公文签名密钥 {alg.upper()} {str(k.get('id', ''))[:8]}"
                found.append(WatchedKey(name, made + max_age))
    except FileNotFoundError:
        pass
    except (OSError, orjson.JSONDecodeError, AttributeError) as exc:
        log.warning("documents key file unreadable", error=str(exc))
    try:
        sealing = atrest.read_keys(settings.data_dir)
    except atrest.AtRestKeyError as exc:
        log.warning("at-rest key file unreadable", error=exc.message)
        sealing = []
    if sealing and (made := _parse_time(sealing[-1].created_at)) is not None:
        sealer = sealing[-1]  # the older keys only open what they sealed
        found.append(WatchedKey(f"静态加密密钥 {sealer.alg.upper()} {sealer.id}", made + max_age))
    try:
        fields = fieldseal.key_ages(settings.data_dir)
    except fieldseal.FieldSealError as exc:
        log.warning("field-seal key file unreadable", error=exc.message)
        fields = []
    if fields:
        # Rotated by adding a generation; stores move to it as they are resealed.
        generation, made = max(fields)
        found.append(WatchedKey(f"字段加密密钥 第 {generation} 代", made + max_age))
    registered = _latest_audited(session, "exchange_node", "exchange.node.register")
    nodes = session.scalars(
        select(ExchangeNode)
        .where(ExchangeNode.status == NodeStatus.ACTIVE, ExchangeNode.public_key.is_not(None))
        .order_by(ExchangeNode.id)
    )
    for node in nodes:
        # A rotated key (govshare node rotate-key) is as old as its rotation.
        made = node.key_rotated_at or registered.get(str(node.id), node.created_at)
        found.append(WatchedKey(f"前置机 {node.name} 的签名密钥", made + max_age))
    rotated = _latest_audited(session, "api_client", "api_client.rotate_secret")
    clients = session.scalars(
        select(ApiClient).where(ApiClient.is_active.is_(True)).order_by(ApiClient.id)
    )
    for client in clients:
        made = rotated.get(client.app_key, client.created_at)
        found.append(
            WatchedKey(f"接入应用 {client.name} ({client.app_key}) 的密钥", made + max_age)
        )
    found.extend(_certificates(settings))
    return found


def _certificates(settings: Settings) -> list[WatchedKey]:
    found = []
    for raw in settings.tls_cert_files.split(","):
        path = Path(raw.strip())
        if not raw.strip():
            continue
        try:
            certs = x509.load_pem_x509_certificates(path.read_bytes())
        except (OSError, ValueError) as exc:
            log.warning("certificate unreadable", path=str(path), error=str(exc))
            # Unreadable counts as due now: the operator must look at it.
            found.append(
                WatchedKey(
                    f"TLS 证书 {path}",
                    datetime.fromtimestamp(0, UTC),
                    certificate=True,
                    problem="无法读取或不是 PEM 证书",
                )
            )
            continue
        for cert in certs:
            subject = cert.subject.rfc4514_string()
            found.append(
                WatchedKey(
                    f"TLS 证书 {path} ({subject})", cert.not_valid_after_utc, certificate=True
                )
            )
    return found


def check_keys(session: Session, settings: Settings, now: datetime) -> list[WatchedKey]:
    """Raise 密钥即将到期, naming every key due within the rule's days (or past due);
    resolve it once none is. Returns the keys due, soonest first."""
    rule = alertrules.effective(session, settings, AlertKind.KEY_EXPIRING)
    days = rule.threshold or 0
    horizon = now + timedelta(days=days)
    due = sorted((k for k in hub_keys(session, settings) if k.due <= horizon), key=lambda k: k.due)
    if not rule.enabled or not due:
        resolve_alerts(session, AlertKind.KEY_EXPIRING)
        return due if rule.enabled else []
    parts = []
    for k in due[:10]:
        left = (k.due - now).days
        what = "到期" if k.certificate else f"达到最长使用期限 {settings.key_max_age_days} 天"
        when = "已过期" if k.due <= now else f"剩余 {left} 天"
        if k.problem:
            parts.append(f"{k.name} {k.problem}")
        else:
            parts.append(f"{k.name} 于 {k.due.date().isoformat()} {what}（{when}）")
    more = f"，另有 {len(due) - 10} 个" if len(due) > 10 else ""
    raise_alert(
        session,
        AlertKind.KEY_EXPIRING,
        f"{len(due)} 个密钥或证书即将到期，请及时更换: " + "；".join(parts) + more,
        details={"keys": [{"name": k.name, "due": k.due.isoformat()} for k in due[:100]]},
        webhook_url=settings.alert_webhook_url,
    )
    return due


def watch(session: Session, settings: Settings, now: datetime) -> None:
    """One round of the operations watches."""
    check_disk(session, settings)
    check_keys(session, settings, now)
