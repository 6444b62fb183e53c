"""Digests, secret sealing and signatures with national (国密) or international algorithms.

SM3 and SM4 come from OpenSSL through ``cryptography``; the algorithm is a deployment
setting wherever it is used.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from typing import Literal

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

DigestAlg = Literal["sm3", "sha256"]


def digest(alg: DigestAlg | str, data: bytes) -> str:
    """Hex digest of ``data`` with SM3 (GB/T 32905) or SHA-256."""
    if alg == "sha256":
        return hashlib.sha256(data).hexdigest()
    if alg == "sm3":
        h = hashes.Hash(hashes.SM3())
        h.update(data)
        return h.finalize().hex()
    raise ValueError(f"unknown digest algorithm: {alg}")


def _derive(secret_key: str, purpose: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose).derive(
        secret_key.encode()
    )


def seal(secret_key: str, plaintext: str) -> str:
    """Encrypt a secret at rest (AES-256-GCM, key derived from the hub secret)."""
    nonce = os.urandom(12)
    box = AESGCM(_derive(secret_key, b"govshare-seal")).encrypt(nonce, plaintext.encode(), None)
    return base64.urlsafe_b64encode(nonce + box).decode()


def unseal(secret_key: str, sealed: str) -> str:
    raw = base64.urlsafe_b64decode(sealed.encode())
    return AESGCM(_derive(secret_key, b"govshare-seal")).decrypt(raw[:12], raw[12:], None).decode()


def hmac_sha256(key: str, message: bytes) -> str:
    return hmac.new(key.encode(), message, hashlib.sha256).hexdigest()


def constant_time_equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def token_hash(token: str) -> str:
    """Bearer tokens are stored only as their SHA-256, never in clear."""
    return hashlib.sha256(token.encode()).hexdigest()
