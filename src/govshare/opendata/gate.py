"""The gate in front of the open data's machine interfaces (the row API, downloads and
the CKAN Action API): who is calling (a developer's API key or an anonymous address),
whether the call is within its limits, and which 有条件开放 datasets it may read.

- A key is sent as ``X-Api-Key: od_…`` or ``Authorization: Bearer od_…`` (CKAN clients'
  ``X-CKAN-API-Key`` and bare ``Authorization: od_…`` work too). Other ``Authorization``
  values (a console token) are ignored here: the open routes never act for a staff user.
- A key's per-minute limit and daily quota hold for the whole hub: its calls are
  counted in ``open_key_usage`` (the day's, and the current minute's), which every
  process writes and reads; this process's own count of the minute covers its calls
  not committed yet. Limits are fixed windows of the injected clock.
- An anonymous address's per-minute limit, and the per-address limit on registrations
  and sign-ins, are counted in a scratch file every worker process of the hub shares
  (:mod:`govshare.opendata.windows`): with ``--workers N`` an address still gets its
  limit, not N times it. Hub processes on several machines count each on their own.

Refusals are :class:`Refused`; each route renders them in its own ecosystem's shape.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from sqlalchemy.orm import Session

from govshare.config import Settings
from govshare.opendata import developers as dev
from govshare.opendata.windows import Windows, windows_for
from govshare.rules.clock import CHINA, china_date


class Refused(Exception):
    """A call the gate refuses: 401 (a key that is not valid) or 429 (a limit), with the
    seconds after which the same call may succeed."""

    def __init__(self, status: int, message: str, *, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.retry_after = retry_after

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)} if self.retry_after is not None else {}


def presented_key(headers: Mapping[str, str]) -> str | None:
    """The API key a call presents, or None (anonymous)."""
    for name in ("x-api-key", "x-ckan-api-key"):  # ckanapi's apikey= sends the second
        if key := headers.get(name, "").strip():
            return key
    auth = headers.get("authorization", "").strip()
    if auth[:7].lower() == "bearer ":
        auth = auth[7:].strip()
    return auth if auth.startswith(dev.KEY_PREFIX) else None


@dataclass(frozen=True)
class Admission:
    """An admitted call: its key (None when anonymous) and the day it counts on."""

    key: dev.KeyAccess | None
    day: date
    minute: int = 0  # minutes since the epoch, by the gate's clock

    @property
    def granted(self) -> frozenset[int]:
        return self.key.granted if self.key is not None else frozenset()


class Gate:
    """Limits of the open interfaces; ``clock`` (aware UTC) is replaced in tests."""

    def __init__(
        self,
        settings: Settings,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        windows: Windows | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.windows = windows or windows_for(settings)

    def now(self) -> datetime:
        return self.clock()

    def hit(
        self,
        bucket: str,
        who: str,
        *,
        limit: int,
        seconds: int,
        message: str,
        elsewhere: int = 0,
    ) -> None:
        """Count one event of ``who`` in ``bucket``; :class:`Refused` (429) past ``limit``
        in the current window of ``seconds``, counting the hub's events in the shared
        windows or ``elsewhere`` (what the database recorded in the window), the larger."""
        stamp = self.clock().timestamp()
        window = int(stamp // seconds)
        ends_at = float((window + 1) * seconds)
        if elsewhere >= limit or not self.windows.take(bucket, who, window, ends_at, limit):
            wait = max(1, math.ceil(ends_at - stamp))
            raise Refused(429, message, retry_after=wait)

    def check_auth_attempt(self, remote_addr: str | None) -> None:
        """Registrations and sign-ins per address and hour (no captcha)."""
        self.hit(
            "auth",
            remote_addr or "unknown",
            limit=self.settings.open_auth_attempts_per_hour,
            seconds=3600,
            message="该地址注册或登录尝试过于频繁，请稍后再试",
        )

    def admit(
        self, session: Session, headers: Mapping[str, str], remote_addr: str | None
    ) -> Admission:
        """Resolve the caller and apply its limits; :class:`Refused` when over one."""
        now = self.clock()
        day = china_date(now)
        secret = presented_key(headers)
        if secret is None:
            limit = self.settings.open_anonymous_per_minute
            self.hit(
                "anon",
                remote_addr or "unknown",
                limit=limit,
                seconds=60,
                message=f"匿名调用过于频繁：每个地址每分钟至多 {limit} 次，"
                "注册开发者并使用 API 密钥可获得更高限额 (rate limited)",
            )
            return Admission(None, day)
        key = dev.key_access(session, self.settings, secret)
        if key is None:
            raise Refused(401, "API 密钥无效或已撤销 (invalid API key)")
        minute = int(now.timestamp() // 60)
        used = dev.use_of(session, key.key_id, day, minute)
        self.hit(
            "key",
            str(key.key_id),
            limit=key.per_minute,
            seconds=60,
            message=f"调用过于频繁：该密钥每分钟至多 {key.per_minute} 次 (rate limited)",
            elsewhere=used.minute_calls,
        )
        if used.calls >= key.daily_quota:
            midnight = datetime.combine(day + timedelta(days=1), datetime.min.time(), CHINA)
            wait = max(1, math.ceil((midnight - now).total_seconds()))
            raise Refused(
                429,
                f"该密钥今日调用额度已用完：每日至多 {key.daily_quota} 次 (quota exceeded)",
                retry_after=wait,
            )
        return Admission(key, day, minute)


def record(session: Session, admission: Admission, rows: int = 0) -> None:
    """Count an admitted keyed call (anonymous calls are counted per dataset only)."""
    if admission.key is not None:
        dev.record_use(
            session, admission.key.key_id, admission.day, minute=admission.minute, rows=rows
        )
