"""Developer mail leaves the outbox through a real SMTP server (aiosmtpd on loopback):
the confirmation link a developer registers for arrives once, even with two senders
running side by side; a server that refuses keeps the mail waiting for the next round;
with no SMTP server set, the outbox simply waits."""

from __future__ import annotations

import re
import threading
from datetime import UTC, datetime
from email.header import decode_header, make_header

from sqlalchemy import select

from govshare.opendata import demands
from govshare.opendata.demands import DemandForm
from govshare.opendata.mailer import OutboxSender
from govshare.opendata.models import DeveloperMail
from tests.catalog.console import csrf_of, signed_in
from tests.conftest import StartHub
from tests.factories import World, unique
from tests.live import LiveHub
from tests.mail import Inbox
from tests.opendata.dev_builders import register
from tests.pg import free_port

SMTP_LOGIN = {"smtp_user": "ops", "smtp_password": "mail-secret"}


def _waiting(hub: LiveHub, email: str) -> list[DeveloperMail]:
    with hub.db() as s:
        return list(
            s.scalars(
                select(DeveloperMail).where(
                    DeveloperMail.to == email, DeveloperMail.sent_at.is_(None)
                )
            )
        )


def test_the_confirmation_link_is_mailed_once(smtp: tuple[Inbox, int], start_hub: StartHub) -> None:
    inbox, port = smtp
    hub = start_hub(
        smtp_host="127.0.0.1", smtp_port=port, open_mail_from="opendata@gov.example", **SMTP_LOGIN
    )
    email = f"{unique('mail').lower()}@example.cn"
    with hub.client() as c:
        assert register(c, email).status_code == 200
    # The hub's own sender runs too: three senders race for the one mail.
    senders = [OutboxSender(hub.settings, hub.session_factory) for _ in range(2)]
    threads = [threading.Thread(target=s.send_waiting) for s in senders]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    inbox.wait(1)
    mine = [m for m in inbox.messages if email in m[1]]
    assert len(mine) == 1
    sender, rcpts, msg = mine[0]
    assert (sender, rcpts) == ("opendata@gov.example", [email])
    assert str(make_header(decode_header(msg["Subject"]))) == "请确认您在公共数据开放平台注册的邮箱"
    body = msg.get_payload(decode=True)
    assert isinstance(body, bytes)
    link = re.search(r"(http://\S+/open/developer/confirm\?token=\S+)", body.decode())
    assert link is not None
    assert set(inbox.logins) == {"ops"}
    assert _waiting(hub, email) == []
    # The link in the mail is the one that confirms the address.
    with hub.client() as c:
        assert c.get(link.group(1).replace(str(hub.base_url), "")).status_code == 200


def test_a_refusing_server_leaves_the_mail_waiting(start_hub: StartHub) -> None:
    # Nothing listens on the port: every hand-over fails, nothing is marked sent.
    hub = start_hub(smtp_host="127.0.0.1", smtp_port=free_port())
    email = f"{unique('down').lower()}@example.cn"
    with hub.client() as c:
        assert register(c, email).status_code == 200
    assert OutboxSender(hub.settings, hub.session_factory).send_waiting() == 0
    assert len(_waiting(hub, email)) == 1


def test_without_an_smtp_server_the_outbox_waits(start_hub: StartHub) -> None:
    hub = start_hub()
    email = f"{unique('nosmtp').lower()}@example.cn"
    with hub.client() as c:
        assert register(c, email).status_code == 200
    assert OutboxSender(hub.settings, hub.session_factory).send_waiting() == 0
    assert len(_waiting(hub, email)) == 1


def test_the_answer_to_a_data_request_reaches_its_asker(
    smtp: tuple[Inbox, int], start_hub: StartHub
) -> None:
    inbox, port = smtp
    hub = start_hub(smtp_host="127.0.0.1", smtp_port=port, open_mail_from="opendata@gov.example")
    world = World(hub)
    dept = world.department("需求答复局")
    email = f"{unique('asker').lower()}@example.cn"
    with hub.db() as s:
        form = DemandForm(
            title=unique("公交到站数据"),
            description="希望开放公交线路与到站时间数据。",
            department_id=dept.id,
            nickname="李女士",
            contact=email,
        )
        demand_id = demands.submit(s, form, "asker", datetime.now(UTC)).id
    with signed_in(world, dept.resource_admin) as c:
        r = c.post(
            f"/open-demands/{demand_id}/answer",
            data={"csrf_token": csrf_of(c), "kind": "declined", "answer": "涉及企业经营信息。"},
        )
        assert r.status_code == 303, r.text[:2000]
    OutboxSender(hub.settings, hub.session_factory).send_waiting()
    inbox.wait(1)
    (mail,) = [m for m in inbox.messages if email in m[1]]
    sender, rcpts, msg = mail
    assert (sender, rcpts) == ("opendata@gov.example", [email])
    assert str(make_header(decode_header(msg["Subject"]))).startswith("您提出的数据需求已答复")
    body = msg.get_payload(decode=True)
    assert isinstance(body, bytes)
    text = body.decode()
    assert text.startswith("李女士：")
    assert "答复结论：暂不开放" in text
    link = re.search(r"查看详情：(http://\S+)", text)
    assert link is not None
    with hub.client() as c:
        page = c.get(link.group(1).replace(str(hub.base_url), ""))
    assert page.status_code == 200
    assert "涉及企业经营信息。" in page.text
