"""开发者邮件发送: the ``developer_mail`` outbox delivered through the SMTP server
(``govshare.mail.Outbox``). A developer whose confirmation mail was lost (a process
killed between the claim and the hand-over) registers again with the same address to
get a fresh link."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlalchemy.orm import Session, sessionmaker

from govshare.config import Settings
from govshare.mail import Outbox
from govshare.opendata.models import DeveloperMail


class OutboxSender(Outbox):
    """Sends waiting developer mail every ``interval`` seconds, on a thread of its own."""

    def __init__(
        self,
        settings: Settings,
        factory: sessionmaker[Session],
        *,
        interval: float = 5.0,
        clock: Callable[[], datetime] = lambda: datetime.now().astimezone(),
    ) -> None:
        super().__init__(
            "developer-mail",
            DeveloperMail,
            settings,
            factory,
            sender=settings.open_mail_from,
            interval=interval,
            clock=clock,
        )
