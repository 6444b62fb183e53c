"""Keyset cursors (翻页游标): opaque, tamper-evident tokens for every keyset list.

A cursor carries the last row's sort key and id so the next page can start after it.
Handed out as plain base64 JSON, a caller could craft one (``[5,1]``, ``["x","y"]``,
``[null,null]``, nested lists) and reach the keyset comparison with values of the
wrong type, a 500; and a data-service cursor showed the last row's key in clear, even
where the grant masks that item. So cursors are sealed: AES-GCM with a key derived
from ``settings.secret_key``, the list they belong to (``scope``) as associated data.
Anything else — edited, truncated, from another list or another hub — is refused with
422 before it reaches a query.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Sequence
from typing import Any

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy.orm import Session

from govshare.errors import InvalidInput

SESSION_INFO_KEY = "cursors"
Scalar = str | int | float | bool | None
NONCE_BYTES = 12


class InvalidCursor(InvalidInput):
    code = "invalid_cursor"


class CursorCodec:
    """Seals and opens the cursors of one hub (one ``secret_key``)."""

    def __init__(self, secret_key: str) -> None:
        key = HKDF(
            algorithm=hashes.SHA256(), length=32, salt=None, info=b"govshare-keyset-cursor"
        ).derive(secret_key.encode())
        self._aead = AESGCM(key)

    def encode(self, scope: str, values: Sequence[Scalar]) -> str:
        """A cursor for the row whose keyset values are ``values`` in the list ``scope``."""
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, orjson.dumps(list(values)), scope.encode())
        return base64.urlsafe_b64encode(nonce + sealed).decode().rstrip("=")

    def decode(self, scope: str, cursor: str, *, width: int, field: str) -> list[Scalar]:
        """The values sealed in ``cursor`` for ``scope``; ``InvalidCursor`` (naming
        ``field``) for anything this hub did not hand out for that list."""
        try:
            raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
            if len(raw) <= NONCE_BYTES:
                raise ValueError("too short")
            values: Any = orjson.loads(
                self._aead.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], scope.encode())
            )
        except (ValueError, binascii.Error, InvalidTag, orjson.JSONDecodeError):
            raise _invalid(field) from None
        if not isinstance(values, list) or len(values) != width:
            raise _invalid(field)
        if not all(v is None or isinstance(v, str | int | float | bool) for v in values):
            raise _invalid(field)
        return values


def _invalid(field: str) -> InvalidCursor:
    return InvalidCursor(
        "分页游标无效：请使用上一页返回的游标 (invalid cursor)",
        details=[{"field": field, "message": "不是本平台为该列表签发的游标"}],
    )


def codec_of(session: Session) -> CursorCodec:
    """The hub's codec, which ``db.make_session_factory`` puts in every session's info."""
    codec = session.info.get(SESSION_INFO_KEY)
    if not isinstance(codec, CursorCodec):
        raise RuntimeError("session made without govshare.db.make_session_factory")
    return codec
