"""告警邮件: every new alert also goes by mail when an SMTP server and recipients are
set (``GOVSHARE_SMTP_HOST``, ``GOVSHARE_ALERT_MAIL_TO`` …), beside the console and the
webhook. Sent off the request path; a failure is logged, never raised."""

from __future__ import annotations

import smtplib
import ssl
import threading
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any

import structlog

from govshare.config import Settings

log = structlog.get_logger()
SESSION_KEY = "alert_mail"


@dataclass(frozen=True, slots=True)
class MailChannel:
    """Where and how alert mails are sent."""

    host: str
    port: int
    starttls: bool
    user: str | None
    password: str | None
    sender: str
    recipients: tuple[str, ...]
    timeout: float = 10.0

    @classmethod
    def from_settings(cls, settings: Settings) -> MailChannel | None:
        recipients = tuple(a.strip() for a in settings.alert_mail_to.split(",") if a.strip())
        if not settings.smtp_host or not recipients:
            return None
        return cls(
            host=settings.smtp_host,
            port=settings.smtp_port,
            starttls=settings.smtp_starttls,
            user=settings.smtp_user,
            password=settings.smtp_password,
            sender=settings.alert_mail_from,
            recipients=recipients,
        )

    def message(self, alert: dict[str, Any]) -> EmailMessage:
        msg = EmailMessage()
        msg["Subject"] = f"[govshare 告警] {alert['label']}: {alert['message']}"[:200]
        msg["From"] = self.sender
        msg["To"] = ", ".join(self.recipients)
        msg["Date"] = formatdate(localtime=False)
        msg["Message-ID"] = make_msgid(domain="govshare")
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
        msg.set_content("\n".join(lines))
        return msg

    def send(self, alert: dict[str, Any]) -> None:
        """Send now (blocking)."""
        with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
            if self.starttls:
                smtp.starttls(context=ssl.create_default_context())
            if self.user:
                smtp.login(self.user, self.password or "")
            smtp.send_message(self.message(alert))

    def send_later(self, alert: dict[str, Any]) -> None:
        """Best effort, on a thread of its own: a slow mail server never slows the hub."""

        def send() -> None:
            try:
                self.send(alert)
            except (OSError, smtplib.SMTPException) as exc:
                log.warning("alert mail failed", host=self.host, error=str(exc))

        threading.Thread(target=send, daemon=True, name="alert-mail").start()
