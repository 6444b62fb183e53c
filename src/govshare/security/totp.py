"""动态口令: the second factor of a sign-in (TOTP, RFC 6238: six digits, 30-second steps,
HMAC-SHA1, as every authenticator app reads them).

The shared secret is stored sealed with the hub secret (``crypto.seal``); a code is
accepted for the step before, the current and the next one (a phone's clock may be a
little off) and only for a step later than the last one accepted, so a code seen over
someone's shoulder cannot be used again. Enrolment hands the new secret over in a sealed,
short-lived token, so nothing is stored until the user proves the app has it.

Enrolling also gives ten recovery codes (恢复码), shown once: each one stands in for a
code once, for a user whose phone is lost or broken. Only their keyed hashes are
stored (HMAC-SHA256 under a key derived from the hub secret), so a copy of the
database cannot be used to sign in.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass
from datetime import datetime

import orjson
import pyotp
import segno
from cryptography.exceptions import InvalidTag

from govshare.security.crypto import _derive, seal, unseal

ISSUER = "政务数据共享交换平台"
STEP_SECONDS = 30
DRIFT_STEPS = 1  # steps either side of now that still count
ENROLMENT_SECONDS = 600  # how long the enrolment page's secret stays good


def new_secret() -> str:
    return pyotp.random_base32()


def _step(at: datetime) -> int:
    return int(at.timestamp()) // STEP_SECONDS


def code_at(secret: str, at: datetime) -> str:
    """The code an authenticator app shows at ``at`` (tests and the enrolment check)."""
    return pyotp.TOTP(secret).at(at)


def matching_step(secret: str, code: str, *, now: datetime, last_step: int | None) -> int | None:
    """The time step ``code`` belongs to, within the drift around ``now`` and after
    ``last_step``; None when it is no valid code (wrong, stale, or already used)."""
    code = code.strip()
    if len(code) != 6 or not code.isascii() or not code.isdigit():
        return None
    totp = pyotp.TOTP(secret)
    current = _step(now)
    for step in range(current - DRIFT_STEPS, current + DRIFT_STEPS + 1):
        if last_step is not None and step <= last_step:
            continue
        if hmac.compare_digest(totp.at(step * STEP_SECONDS), code):
            return step
    return None


RECOVERY_CODES = 10
# Ten letters and digits in two groups, without the look-alikes 0/O, 1/I/L: 50 bits.
_RECOVERY_ALPHABET = "23456789abcdefghjkmnpqrstuvwxyz"
RECOVERY_CODE = re.compile(r"^[2-9a-hjkmnp-z]{5}-[2-9a-hjkmnp-z]{5}$")


def new_recovery_codes() -> list[str]:
    def group() -> str:
        return "".join(secrets.choice(_RECOVERY_ALPHABET) for _ in range(5))

    return [f"{group()}-{group()}" for _ in range(RECOVERY_CODES)]


def recovery_hash(secret_key: str, code: str) -> str:
    """What is stored of a recovery code (typed in any case, with spaces around)."""
    key = _derive(secret_key, b"govshare-totp-recovery")
    return hmac.new(key, code.strip().lower().encode(), hashlib.sha256).hexdigest()


def is_recovery_code(code: str) -> bool:
    return RECOVERY_CODE.match(code.strip().lower()) is not None


def provisioning_uri(secret: str, username: str) -> str:
    """The ``otpauth://`` address an authenticator app scans."""
    return pyotp.TOTP(secret).provisioning_uri(name=username, issuer_name=ISSUER)


def qr_svg(uri: str) -> str:
    """The address as an inline SVG QR code (no script, no image request: the CSP holds)."""
    return segno.make(uri, error="m").svg_inline(scale=5, border=2)


def seal_secret(secret_key: str, secret: str) -> str:
    return seal(secret_key, secret)


def unseal_secret(secret_key: str, sealed: str) -> str:
    return unseal(secret_key, sealed)


@dataclass(frozen=True)
class Enrolment:
    """A secret offered to one user, not yet confirmed by a code."""

    user_id: int
    secret: str


class EnrolmentExpired(ValueError):
    """The enrolment token is not this hub's, was altered, or is too old."""


def enrolment_token(secret_key: str, user_id: int, secret: str) -> str:
    doc = {"u": user_id, "s": secret, "t": int(time.time())}
    return seal(secret_key, orjson.dumps(doc).decode())


def open_enrolment(secret_key: str, token: str) -> Enrolment:
    try:
        doc = orjson.loads(unseal(secret_key, token))
        user_id, secret, at = int(doc["u"]), str(doc["s"]), int(doc["t"])
    except (InvalidTag, ValueError, KeyError, TypeError, orjson.JSONDecodeError) as exc:
        raise EnrolmentExpired("enrolment token not valid") from exc
    if not 0 <= time.time() - at <= ENROLMENT_SECONDS:
        raise EnrolmentExpired("enrolment token expired")
    return Enrolment(user_id, secret)
