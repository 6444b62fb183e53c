"""开发者邮件发送: the ``developer_mail`` outbox delivered through the SMTP server.

Each mail is claimed (``sent_at`` set) in a short transaction before it is handed over,
so hub processes running side by side never send one mail twice; a mail the server
refuses is released for the next round. A process killed between the claim and the
hand-over loses that one mail: the developer registers again with the same address to
get a fresh link."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import structlog
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from govshare.config import Settings
from govshare.db import session_scope
from govshare.mail import MailError, SmtpServer, compose
from govshare.opendata.models import DeveloperMail
from govshare.periodic import Periodic

log = structlog.get_logger()
BATCH = 50


class OutboxSender(Periodic):
    """Sends waiting developer mail every ``interval`` seconds, on a thread of its own."""

    def __init__(
        self,
        settings: Settings,
        factory: sessionmaker[Session],
        *,
        interval: float = 5.0,
        clock: Callable[[], datetime] = lambda: datetime.now().astimezone(),
    ) -> None:
        super().__init__("developer-mail", interval, self.send_waiting)
        self.server = SmtpServer.from_settings(settings)
        self.sender = settings.open_mail_from
        self.factory = factory
        self.clock = clock

    def start(self) -> None:
        if self.server is not None:  # no SMTP server: the outbox waits, as documented
            super().start()

    def send_waiting(self) -> int:
        """Send what waits (at most ``BATCH`` mails); the number handed over."""
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
                log.warning("developer mail failed", mail=mail_id, error=str(exc)[:200])
                break  # the server is unwell: try again next round
            sent += 1
        return sent

    def _waiting(self) -> list[int]:
        with session_scope(self.factory) as session:
            return list(
                session.scalars(
                    select(DeveloperMail.id)
                    .where(DeveloperMail.sent_at.is_(None))
                    .order_by(DeveloperMail.id)
                    .limit(BATCH)
                )
            )

    def _claim(self, mail_id: int) -> DeveloperMail | None:
        with session_scope(self.factory) as session:
            claimed = session.execute(
                update(DeveloperMail)
                .where(DeveloperMail.id == mail_id, DeveloperMail.sent_at.is_(None))
                .values(sent_at=self.clock())
            ).rowcount  # type: ignore[attr-defined]
            if claimed != 1:
                return None
            mail = session.get_one(DeveloperMail, mail_id)
            session.expunge(mail)
            return mail

    def _release(self, mail_id: int) -> None:
        with session_scope(self.factory) as session:
            session.execute(
                update(DeveloperMail).where(DeveloperMail.id == mail_id).values(sent_at=None)
            )
