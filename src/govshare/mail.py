"""Mail through the bureau's SMTP server (``GOVSHARE_SMTP_*``), shared by every domain
that writes to people: alert mail to operators, confirmation links to developers."""

from __future__ import annotations

import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from govshare.config import Settings

MailError = (OSError, smtplib.SMTPException)


@dataclass(frozen=True, slots=True)
class SmtpServer:
    """Where mail is handed over, and the login it takes."""

    host: str
    port: int
    starttls: bool
    user: str | None
    password: str | None
    timeout: float = 10.0

    @classmethod
    def from_settings(cls, settings: Settings) -> SmtpServer | None:
        if not settings.smtp_host:
            return None
        return cls(
            host=settings.smtp_host,
            port=settings.smtp_port,
            starttls=settings.smtp_starttls,
            user=settings.smtp_user,
            password=settings.smtp_password,
        )

    def send(self, *messages: EmailMessage) -> None:
        """Hand the messages over on one connection (blocking); raises ``MailError``."""
        with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
            if self.starttls:
                smtp.starttls(context=ssl.create_default_context())
            if self.user:
                smtp.login(self.user, self.password or "")
            for message in messages:
                smtp.send_message(message)


def compose(*, sender: str, to: str, subject: str, body: str) -> EmailMessage:
    msg = EmailMessage()
    msg["Subject"] = subject[:200]
    msg["From"] = sender
    msg["To"] = to
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = make_msgid(domain="govshare")
    msg.set_content(body)
    return msg
