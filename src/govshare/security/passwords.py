"""Password policy (口令策略): length, complexity, history and expiry, as the deployment's
settings say (GB/T 22239 level 3: 口令应有复杂度要求并定期更换).

The policy travels with the hub's session factory (``session.info``), as the audit
chain's key does, so every path that sets a password — the console, the API, the CLI —
applies the same rules without each caller passing settings along.
"""

from __future__ import annotations

import secrets
import string
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from govshare.config import Settings

SESSION_KEY = "password_policy"
# 口令的四类字符: what "complexity" counts.
_CLASSES: tuple[tuple[str, str], ...] = (
    ("小写字母", string.ascii_lowercase),
    ("大写字母", string.ascii_uppercase),
    ("数字", string.digits),
)


def character_classes(password: str) -> int:
    """How many of lower-case, upper-case, digits and other characters ``password`` mixes."""
    kinds = {name for name, chars in _CLASSES for ch in password if ch in chars}
    others = any(not any(ch in chars for _, chars in _CLASSES) for ch in password)
    return len(kinds) + (1 if others else 0)


@dataclass(frozen=True, slots=True)
class PasswordPolicy:
    min_length: int = 8
    min_classes: int = 3
    history: int = 5
    max_age_days: int = 90

    @classmethod
    def from_settings(cls, settings: Settings) -> PasswordPolicy:
        return cls(
            min_length=settings.password_min_length,
            min_classes=settings.password_min_classes,
            history=settings.password_history,
            max_age_days=settings.password_max_age_days,
        )

    def problems(self, password: str, *, username: str | None = None) -> list[str]:
        """Every rule ``password`` breaks, in Chinese; empty when it may be set."""
        found = []
        if len(password) < self.min_length:
            found.append(f"密码至少{self.min_length}位")
        if len(password) > 200:
            found.append("密码最多200位")
        if character_classes(password) < self.min_classes:
            found.append(
                f"密码应包含小写字母、大写字母、数字、其他符号中的至少{self.min_classes}类"
            )
        if username and username.casefold() in password.casefold():
            found.append("密码不得包含用户名")
        return found

    def reused(self, hasher: PasswordHasher, password: str, hashes: list[str]) -> bool:
        """Whether ``password`` is one of ``hashes`` (the current and the remembered ones)."""
        for known in hashes:
            try:
                if hasher.verify(known, password):
                    return True
            except (VerificationError, InvalidHashError):
                continue
        return False

    def remembered(self, current: str, history: list[str]) -> list[str]:
        """The previous hashes to keep once ``current`` is replaced: the newest first."""
        return [current, *history][: self.history] if self.history else []

    def expired(self, changed_at: datetime, now: datetime) -> bool:
        """Whether a password set at ``changed_at`` must be changed before signing in."""
        if not self.max_age_days:
            return False
        return now - changed_at >= timedelta(days=self.max_age_days)


DEFAULT_POLICY = PasswordPolicy()


def policy_of(session: Session) -> PasswordPolicy:
    found: Any = session.info.get(SESSION_KEY)
    return found if isinstance(found, PasswordPolicy) else DEFAULT_POLICY


def generate(length: int = 16) -> str:
    """A random password that meets any policy's complexity: one of each kind of
    character, the rest drawn from all of them, shuffled."""
    others = "-_.!@#%"
    pools = [string.ascii_lowercase, string.ascii_uppercase, string.digits, others]
    chars = [secrets.choice(pool) for pool in pools]
    everything = "".join(pools)
    chars += [secrets.choice(everything) for _ in range(max(length, 8) - len(chars))]
    secrets.SystemRandom().shuffle(chars)
    return "".join(chars)
