"""日常清理: ended console sessions and expired developer tokens are removed, and nothing
that can still sign somebody in (clock injected: the purge's "now" is fixed)."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from govshare.opendata.models import DeveloperToken, DeveloperTokenPurpose, OpenDeveloper
from govshare.ops.housekeeping import purge_once
from govshare.security.models import AuthSession, SessionKind, User, UserMail
from tests.factories import World, unique

NOW = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)


def _hash() -> str:
    return secrets.token_hex(32)


def test_ended_sessions_and_tokens_are_removed_live_ones_kept(world: World) -> None:
    hub = world.hub
    with hub.db() as s:
        user_id = s.scalars(select(User.id).where(User.username == world.admin)).one()
        developer = OpenDeveloper(
            email=f"{unique('hk').lower()}@example.cn",
            password_hash="x",
            created_at=NOW - timedelta(days=30),
            is_active=True,
        )
        s.add(developer)
        s.flush()

        def session_row(expires: datetime, *, revoked: bool = False) -> str:
            token = _hash()
            s.add(
                AuthSession(
                    token_hash=token,
                    user_id=user_id,
                    kind=SessionKind.CONSOLE,
                    csrf_token="c",
                    created_at=NOW - timedelta(days=3),
                    expires_at=expires,
                    revoked=revoked,
                )
            )
            return token

        def token_row(expires: datetime, purpose: DeveloperTokenPurpose) -> str:
            token = _hash()
            s.add(
                DeveloperToken(
                    token_hash=token,
                    developer_id=developer.id,
                    purpose=purpose,
                    csrf_token="",
                    created_at=NOW - timedelta(days=3),
                    expires_at=expires,
                )
            )
            return token

        expired = session_row(NOW - timedelta(days=2))
        revoked = session_row(NOW + timedelta(hours=5), revoked=True)
        just_expired = session_row(NOW - timedelta(hours=1))  # within the day's grace
        live = session_row(NOW + timedelta(hours=5))
        old_link = token_row(NOW - timedelta(days=2), DeveloperTokenPurpose.CONFIRM)
        old_dev_session = token_row(NOW - timedelta(days=5), DeveloperTokenPurpose.SESSION)
        live_link = token_row(NOW + timedelta(hours=40), DeveloperTokenPurpose.CONFIRM)

    removed = purge_once(hub.session_factory, NOW)
    assert removed["auth_session"] >= 2
    assert removed["open_developer_token"] >= 2
    with hub.db() as s:
        sessions = set(
            s.scalars(
                select(AuthSession.token_hash).where(
                    AuthSession.token_hash.in_([expired, revoked, just_expired, live])
                )
            )
        )
        tokens = set(
            s.scalars(
                select(DeveloperToken.token_hash).where(
                    DeveloperToken.token_hash.in_([old_link, old_dev_session, live_link])
                )
            )
        )
    assert sessions == {just_expired, live}
    assert tokens == {live_link}
    assert purge_once(hub.session_factory, NOW) == {
        "auth_session": 0,
        "open_developer_token": 0,
        "user_mail": 0,
    }


def test_reminder_mail_sent_a_month_ago_is_removed_waiting_mail_kept(world: World) -> None:
    hub = world.hub
    with hub.db() as s:
        user_id = s.scalars(select(User.id).where(User.username == world.admin)).one()
        marker = unique("mail")

        def mail(sent: datetime | None) -> None:
            s.add(
                UserMail(user_id=user_id, to="a@example.cn", subject=marker, body="", sent_at=sent)
            )

        mail(NOW - timedelta(days=31))
        mail(NOW - timedelta(days=29))
        mail(None)  # never handed over (no SMTP server yet): still waiting
    assert purge_once(hub.session_factory, NOW)["user_mail"] >= 1
    with hub.db() as s:
        left = s.scalars(select(UserMail).where(UserMail.subject == marker)).all()
    assert sorted((m.sent_at is None) for m in left) == [False, True]
    assert all(m.sent_at is None or m.sent_at > NOW - timedelta(days=30) for m in left)
