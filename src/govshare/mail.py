"""Mail through the bureau's SMTP server (``GOVSHARE_SMTP_*``), shared by every domain
that writes to people: alert mail to operators, confirmation links to developers,
reminders to users.

Mail to people goes through an outbox table (``Outbox``): a domain adds a row in the
transaction that decides to write, and a sender thread hands the rows over. Each mail
is claimed (``sent_at`` set) in a short transaction before it is handed over, so hub
processes running side by side never send one mail twice; a mail the server refuses is
released for the next round. A process killed between the claim and the hand-over
loses that one mail."""

from __future__ import annotations

import re
import smtplib
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any

import structlog
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from govshare.config import Settings
from govshare.db import session_scope
from govshare.periodic import Periodic

log = structlog.get_logger()
MailError = (OSError, smtplib.SMTPException)
OUTBOX_BATCH = 50
# One address, as people type it: a local part, an @, a domain with a dot (the SMTP
# server is the judge of the rest).
_ADDRESS = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]{2,}$")


def normal_address(text: str) -> str | None:
    """The address in lower case, or None when ``text`` is not one address."""
    value = text.strip().lower()
    if len(value) > 254 or not _ADDRESS.match(value):
        return None
    return value


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


class Outbox(Periodic):
    """Sends the waiting rows of an outbox table (``id``, ``to``, ``subject``, ``body``,
    ``sent_at``) every ``interval`` seconds, on a thread of its own."""

    def __init__(
        self,
        name: str,
        model: Any,
        settings: Settings,
        factory: sessionmaker[Session],
        *,
        sender: str,
        interval: float = 5.0,
        clock: Callable[[], datetime] = lambda: datetime.now().astimezone(),
    ) -> None:
        super().__init__(name, interval, self.send_waiting)
        self.model = model
        self.server = SmtpServer.from_settings(settings)
        self.sender = sender
        self.factory = factory
        self.clock = clock

    def start(self) -> None:
        if self.server is not None:  # no SMTP server: the outbox waits, as documented
            super().start()

    def send_waiting(self) -> int:
        """Send what waits (at most ``OUTBOX_BATCH`` mails); the number handed over."""
        if self.server is None:
            return 0
        sent = 0
        for mail_id in self._waiting():
            mail = self._claim(mail_id)
            if mail is None:
                continue  # another process took it
            try:
                self.server.send(
                    compose(sender=self.sender, to=mail.to, subject=mail.subject, body=mail.body)
                )
            except MailError as exc:
                self._release(mail_id)
                log.warning(
                    "outbox mail failed", outbox=self.name, mail=mail_id, error=str(exc)[:200]
                )
                break  # the server is unwell: try again next round
            sent += 1
        return sent

    def _waiting(self) -> list[int]:
        m = self.model
        with session_scope(self.factory) as session:
            return list(
                session.scalars(
                    select(m.id).where(m.sent_at.is_(None)).order_by(m.id).limit(OUTBOX_BATCH)
                )
            )

    def _claim(self, mail_id: int) -> Any:
        m = self.model
        with session_scope(self.factory) as session:
            claimed = session.execute(
                update(m).where(m.id == mail_id, m.sent_at.is_(None)).values(sent_at=self.clock())
            ).rowcount  # type: ignore[attr-defined]
            if claimed != 1:
                return None
            mail = session.get_one(m, mail_id)
            session.expunge(mail)
            return mail

    def _release(self, mail_id: int) -> None:
        m = self.model
        with session_scope(self.factory) as session:
            session.execute(update(m).where(m.id == mail_id).values(sent_at=None))
