"""Alerts (告警): one open alert per condition, counted while it lasts, resolved when it
clears, pushed to a webhook and mailed (``alertmail``) when it first opens. The kind's
rule (``alertrules``) may switch it off, set its severity and silence a channel."""

from __future__ import annotations

import threading
from typing import Any

import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session

from govshare.db import utcnow
from govshare.exchange.alertmail import SESSION_KEY, MailChannel
from govshare.exchange.alertrules import RULES, rule_row
from govshare.exchange.models import Alert, AlertKind

log = structlog.get_logger()


def raise_alert(
    session: Session,
    kind: AlertKind,
    message: str,
    *,
    node_id: int | None = None,
    task_id: int | None = None,
    details: dict[str, Any] | None = None,
    webhook_url: str | None = None,
) -> Alert | None:
    """Open the alert of this condition (notifying the channels), or count it again
    while it is open; None when the kind's rule is disabled."""
    rule = rule_row(session, kind)
    if rule is not None and not rule.enabled:
        return None
    open_alert = session.scalar(
        select(Alert).where(
            Alert.kind == kind,
            Alert.node_id.is_(None) if node_id is None else Alert.node_id == node_id,
            Alert.task_id.is_(None) if task_id is None else Alert.task_id == task_id,
            Alert.resolved_at.is_(None),
        )
    )
    if open_alert is not None:
        open_alert.count += 1
        open_alert.last_seen_at = utcnow()
        open_alert.message = message
        return open_alert
    alert = Alert(
        kind=kind,
        severity=rule.severity if rule is not None else RULES[kind].severity,
        message=message,
        node_id=node_id,
        task_id=task_id,
        details=details or {},
    )
    session.add(alert)
    session.flush()
    mail: MailChannel | None = session.info.get(SESSION_KEY)
    if rule is not None:
        webhook_url = webhook_url if rule.webhook else None
        mail = mail if rule.mail else None
    if webhook_url or mail is not None:
        payload = {
            "id": alert.id,
            "kind": str(kind),
            "label": kind.label,
            "severity": alert.severity,
            "message": message,
            "node_id": node_id,
            "task_id": task_id,
            "details": details or {},
            "created_at": alert.created_at.isoformat(),
        }
        if webhook_url:
            _post_later(webhook_url, payload)
        if mail is not None:
            mail.send_later(payload)
    return alert


def resolve_alerts(
    session: Session, kind: AlertKind, *, node_id: int | None = None, task_id: int | None = None
) -> int:
    q = select(Alert).where(Alert.kind == kind, Alert.resolved_at.is_(None))
    if node_id is not None:
        q = q.where(Alert.node_id == node_id)
    if task_id is not None:
        q = q.where(Alert.task_id == task_id)
    alerts = list(session.scalars(q))
    for a in alerts:
        a.resolved_at = utcnow()
    return len(alerts)


def _post_later(url: str, payload: dict[str, Any]) -> None:
    """Best effort, off the request path: a slow receiver must not slow the hub."""

    import httpx  # a fifth of a second: not at every hub start

    def send() -> None:
        try:
            httpx.post(url, json=payload, timeout=5)
        except httpx.HTTPError as exc:
            log.warning("alert webhook failed", url=url, error=str(exc))

    threading.Thread(target=send, daemon=True, name="alert-webhook").start()


def list_alerts(session: Session, *, open_only: bool = False, limit: int = 200) -> list[Alert]:
    q = select(Alert).order_by(Alert.id.desc()).limit(limit)
    if open_only:
        q = q.where(Alert.resolved_at.is_(None))
    return list(session.scalars(q))
