"""Alert mail: a new alert reaches a real SMTP server (aiosmtpd on loopback), with the
login the settings name; a repeat of an open alert sends nothing more."""

from __future__ import annotations

import time
from email.header import decode_header, make_header

import pytest

from govshare.exchange import alerts
from govshare.exchange.alertmail import MailChannel
from govshare.exchange.models import AlertKind
from tests.conftest import StartHub
from tests.mail import Inbox


@pytest.mark.usefixtures("calendar_covered_today")
def test_a_new_alert_is_mailed_once(smtp: tuple[Inbox, int], start_hub: StartHub) -> None:
    inbox, port = smtp
    hub = start_hub(
        smtp_host="127.0.0.1",
        smtp_port=port,
        smtp_user="ops",
        smtp_password="mail-secret",
        alert_mail_from="hub@gov.example",
        alert_mail_to="ops@gov.example, duty@gov.example",
    )
    with hub.db() as s:
        alerts.raise_alert(s, AlertKind.LAG, "订阅 7 积压 12 个数据包", task_id=None)
    inbox.wait(1)
    with hub.db() as s:  # the same condition again: counted, not mailed again
        alerts.raise_alert(s, AlertKind.LAG, "订阅 7 积压 13 个数据包", task_id=None)
    time.sleep(0.5)
    assert len(inbox.messages) == 1
    sender, rcpts, msg = inbox.messages[0]
    assert sender == "hub@gov.example"
    assert rcpts == ["ops@gov.example", "duty@gov.example"]
    assert inbox.logins == ["ops"]
    subject = str(make_header(decode_header(msg["Subject"])))
    assert subject == "[govshare 告警] 交换积压: 订阅 7 积压 12 个数据包"
    body = msg.get_payload(decode=True)
    assert isinstance(body, bytes)
    assert "告警类型: 交换积压 (lag)" in body.decode("utf-8")


def test_no_channel_without_host_or_recipients(start_hub: StartHub) -> None:
    settings = start_hub().settings
    assert MailChannel.from_settings(settings) is None
    assert MailChannel.from_settings(settings.model_copy(update={"smtp_host": "h"})) is None
    made = MailChannel.from_settings(
        settings.model_copy(update={"smtp_host": "h", "alert_mail_to": " a@x, ,b@x "})
    )
    assert made is not None
    assert made.recipients == ("a@x", "b@x")
