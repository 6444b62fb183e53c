"""告警邮件: every new alert also goes by mail when an SMTP server and recipients are
set (``GOVSHARE_SMTP_HOST``, ``GOVSHARE_ALERT_MAIL_TO`` …), beside the console and the
webhook. Sent off the request path; a failure is logged, never raised."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

import structlog

from govshare.config import Settings
from govshare.mail import MailError, SmtpServer, compose

log = structlog.get_logger()
SESSION_KEY = "alert_mail"


@dataclass(frozen=True, slots=True)
class MailChannel:
    """Where alert mails are sent, and to whom."""

    server: SmtpServer
    sender: str
    recipients: tuple[str, ...]

    @classmethod
    def from_settings(cls, settings: Settings) -> MailChannel | None:
        recipients = tuple(a.strip() for a in settings.alert_mail_to.split(",") if a.strip())
        server = SmtpServer.from_settings(settings)
        if server is None or not recipients:
            return None
        return cls(server=server, sender=settings.alert_mail_from, recipients=recipients)

    def message(self, alert: dict[str, Any]) -> EmailMessage:
        lines = [
            f"告警类型: {alert['label']} ({alert['kind']})",
            f"内容: {alert['message']}",
            f"告警编号: {alert['id']}",
            f"首次发生: {alert['created_at']}",
        ]
        if alert.get("node_id") is not None:
            lines.append(f"前置机: {alert['node_id']}")
        if alert.get("task_id") is not None:
            lines.append(f"交换任务: {alert['task_id']}")
        lines.append("")
        lines.append("请在控制台 数据交换 → 告警 查看和处理。")
        return compose(
            sender=self.sender,
            to=", ".join(self.recipients),
            subject=f"[govshare 告警] {alert['label']}: {alert['message']}",
            body="\n".join(lines),
        )

    def send(self, alert: dict[str, Any]) -> None:
        """Send now (blocking)."""
        self.server.send(self.message(alert))

    def send_later(self, alert: dict[str, Any]) -> None:
        """Best effort, on a thread of its own: a slow mail server never slows the hub."""

        def send() -> None:
            try:
                self.send(alert)
            except MailError as exc:
                log.warning("alert mail failed", host=self.server.host, error=str(exc))

        threading.Thread(target=send, daemon=True, name="alert-mail").start()
