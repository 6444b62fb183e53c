"""Digests, secret sealing and signatures with national (国密) or international algorithms.

SM3 and SM4 come from OpenSSL through ``cryptography``; the algorithm is a deployment
setting wherever it is used.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import os
import secrets
from typing import Literal

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import hmac as crypto_hmac
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

DigestAlg = Literal["sm3", "sha256"]


def string_to_sign(
    method: str, path_and_query: str, timestamp: str, nonce: str, body_sha256: str
) -> bytes:
    """What an API client (or a node) signs: method, path with query, timestamp, nonce,
    body digest. Here, with the signatures, because the node imports this module and
    not the hub's services."""
    return "\n".join([method.upper(), path_and_query, timestamp, nonce, body_sha256]).encode()


def digest(alg: DigestAlg | str, data: bytes) -> str:
    """Hex digest of ``data`` with SM3 (GB/T 32905) or SHA-256."""
    if alg == "sha256":
        return hashlib.sha256(data).hexdigest()
    if alg == "sm3":
        h = hashes.Hash(hashes.SM3())
        h.update(data)
        return h.finalize().hex()
    raise ValueError(f"unknown digest algorithm: {alg}")


def keyed_digest(alg: DigestAlg | str, key: bytes, data: bytes) -> str:
    """Hex HMAC of ``data`` under ``key`` with SM3 or SHA-256 (HMAC-SM3, GB/T 15852.2)."""
    mac = _keyed(alg, key).copy()
    mac.update(data)
    return mac.finalize().hex()


@functools.lru_cache(maxsize=16)
def _keyed(alg: str, key: bytes) -> crypto_hmac.HMAC:
    # An HMAC with the key already absorbed: copying it spares every call the key's two
    # padded blocks, a fifth of an audit entry's HMAC-SM3 (the audit walk does millions).
    if alg == "sm3":
        return crypto_hmac.HMAC(key, hashes.SM3())
    if alg == "sha256":
        return crypto_hmac.HMAC(key, hashes.SHA256())
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


# -- signatures (SM2 or Ed25519) and ciphers (SM4 or AES, GCM mode) ---------------------

SignatureAlg = Literal["sm2", "ed25519"]
CipherAlg = Literal["none", "sm4", "aes"]


def generate_signing_key(alg: SignatureAlg | str) -> tuple[str, str]:
    """A new key pair as (private, public), both hex text, for ``alg``."""
    if alg == "ed25519":
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
        from cryptography.hazmat.primitives.serialization import (
            Encoding,
            NoEncryption,
            PrivateFormat,
            PublicFormat,
        )

        key = Ed25519PrivateKey.generate()
        private = key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption()).hex()
        public = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw).hex()
        return private, public
    if alg == "sm2":
        private = f"{secrets.randbelow(_SM2_N - 2) + 1:064x}"
        return private, _sm2_public(private)
    raise ValueError(f"unknown signature algorithm: {alg}")


PUBLIC_KEY_HEX_LENGTH = {"sm2": 128, "ed25519": 64}


def public_key_problem(alg: SignatureAlg | str, public: str) -> str | None:
    """What is wrong with ``public`` as a public key of ``alg`` (None: nothing): not
    hex, the wrong length, or not a point of the curve."""
    length = PUBLIC_KEY_HEX_LENGTH.get(alg)
    if length is None:
        return f"unknown signature algorithm: {alg}"
    try:
        raw = bytes.fromhex(public)
    except ValueError:
        return "not hexadecimal"
    if len(public) != length:
        return f"{alg} public key must be {length} hex digits, got {len(public)}"
    try:
        if alg == "sm2":
            _sm2_point(public)
        else:
            from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

            Ed25519PublicKey.from_public_bytes(raw)
    except ValueError:
        return f"not a valid {alg} public key"
    return None


def sign(alg: SignatureAlg | str, private: str, data: bytes) -> bytes:
    if alg == "ed25519":
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        return Ed25519PrivateKey.from_private_bytes(bytes.fromhex(private)).sign(data)
    if alg == "sm2":
        return _sm2_sign(private, data)
    raise ValueError(f"unknown signature algorithm: {alg}")


def verify_signature(alg: SignatureAlg | str, public: str, data: bytes, signature: bytes) -> bool:
    """True only for a valid signature; any malformed input is simply invalid."""
    try:
        if alg == "ed25519":
            from cryptography.exceptions import InvalidSignature
            from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

            try:
                Ed25519PublicKey.from_public_bytes(bytes.fromhex(public)).verify(signature, data)
            except InvalidSignature:
                return False
            return True
        if alg == "sm2":
            if len(public) != 128 or len(signature) != 64:
                return False
            return _sm2_verify(public, data, signature)
    except (ValueError, TypeError, IndexError):
        return False
    return False


# -- SM2 (GB/T 32918) ------------------------------------------------------------------
# SM3withSM2 with the default user id, r || s as 64 bytes: the signatures gmssl makes and
# checks, computed with Python integers on precomputed point tables (about 0.5 ms a
# verification instead of gmssl's 15-20 ms of hex-string arithmetic). Nonces come from
# ``secrets``.

_SM2_P = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFF
_SM2_A = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFC
_SM2_B = 0x28E9FA9E9D9F5E344D5A9E4BCF6509A7F39789F515AB8F92DDBCBD414D940E93
_SM2_N = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFF7203DF6B21C6052B53BBF40939D54123
_SM2_GX = 0x32C4AE2C1F1981195F9904466A39C9948FE30BBFF2660BE1715A4589334C74C7
_SM2_GY = 0xBC3736A2F4F6779C59BDCEE36B692153D0A9877CC62A474002DF32E52139F0A0
_SM2_ID = b"1234567812345678"  # GB/T 35276's default user id, as gmssl uses

_Jacobian = tuple[int, int, int]  # (X, Y, Z), the point (X/Z^2, Y/Z^3); Z == 0 is infinity
_Affine = tuple[int, int]


def _sm2_double(pt: _Jacobian) -> _Jacobian:
    x1, y1, z1 = pt
    if z1 == 0 or y1 == 0:
        return (1, 1, 0)
    p = _SM2_P
    delta = z1 * z1 % p
    gamma = y1 * y1 % p
    beta = x1 * gamma % p
    alpha = 3 * (x1 - delta) * (x1 + delta) % p  # a = -3
    x3 = (alpha * alpha - 8 * beta) % p
    z3 = ((y1 + z1) ** 2 - gamma - delta) % p
    y3 = (alpha * (4 * beta - x3) - 8 * gamma * gamma) % p
    return (x3, y3, z3)


def _sm2_add_affine(pt: _Jacobian, q: _Affine) -> _Jacobian:
    """``pt + q`` with ``q`` in affine coordinates (mixed addition)."""
    x1, y1, z1 = pt
    x2, y2 = q
    if z1 == 0:
        return (x2, y2, 1)
    p = _SM2_P
    z1z1 = z1 * z1 % p
    h = (x2 * z1z1 - x1) % p
    r = (y2 * z1 * z1z1 - y1) % p
    if h == 0:
        return _sm2_double(pt) if r == 0 else (1, 1, 0)
    hh = h * h % p
    hhh = h * hh % p
    v = x1 * hh % p
    x3 = (r * r - hhh - 2 * v) % p
    y3 = (r * (v - x3) - y1 * hhh) % p
    return (x3, y3, z1 * h % p)


def _sm2_affine(pt: _Jacobian) -> _Affine | None:
    x, y, z = pt
    if z == 0:
        return None
    zi = pow(z, -1, _SM2_P)
    zi2 = zi * zi % _SM2_P
    return (x * zi2 % _SM2_P, y * zi2 * zi % _SM2_P)


@functools.lru_cache(maxsize=64)
def _sm2_table(x: int, y: int) -> tuple[tuple[_Affine, ...], ...]:
    """Multiples of a point for a fixed-base comb: row ``i`` holds ``d * 16^i * Q`` for
    d = 1..15, so ``k * Q`` is one addition per hexadecimal digit of ``k``."""
    rows = []
    base: _Affine = (x, y)
    for _ in range(64):
        row: list[_Affine] = [base]
        acc: _Jacobian = (base[0], base[1], 1)
        for _ in range(14):
            acc = _sm2_add_affine(acc, base)
            point = _sm2_affine(acc)
            if point is None:  # only for a point of small order, which SM2 has none of
                raise ValueError("degenerate SM2 point")
            row.append(point)
        rows.append(tuple(row))
        nxt = _sm2_affine(_sm2_add_affine(acc, base))  # 16 * base
        if nxt is None:
            raise ValueError("degenerate SM2 point")
        base = nxt
    return tuple(rows)


def _sm2_comb(acc: _Jacobian, table: tuple[tuple[_Affine, ...], ...], k: int) -> _Jacobian:
    """``acc + k * Q`` for the point ``Q`` whose comb table is ``table`` (0 <= k < 2^256)."""
    for row in table:
        digit = k & 15
        if digit:
            acc = _sm2_add_affine(acc, row[digit - 1])
        k >>= 4
    return acc


def _sm2_point(public: str) -> _Affine:
    """The public key's point, checked to lie on the curve."""
    x, y = int(public[:64], 16), int(public[64:], 16)
    if not (0 <= x < _SM2_P and 0 <= y < _SM2_P) or (
        (y * y - (x * x * x + _SM2_A * x + _SM2_B)) % _SM2_P
    ):
        raise ValueError("SM2 public key is not a point of the curve")
    return (x, y)


@functools.lru_cache(maxsize=64)
def _sm2_za(public: str) -> bytes:
    """Z_A = SM3(ENTL || ID || a || b || xG || yG || xA || yA)."""
    h = hashes.Hash(hashes.SM3())
    h.update(len(_SM2_ID * 8).to_bytes(2, "big") + _SM2_ID)
    for v in (_SM2_A, _SM2_B, _SM2_GX, _SM2_GY):
        h.update(v.to_bytes(32, "big"))
    h.update(bytes.fromhex(public))
    return h.finalize()


def _sm2_e(public: str, data: bytes) -> int:
    h = hashes.Hash(hashes.SM3())
    h.update(_sm2_za(public))
    h.update(data)
    return int.from_bytes(h.finalize(), "big")


@functools.lru_cache(maxsize=64)
def _sm2_public(private: str) -> str:
    d = int(private, 16)
    if not 0 < d < _SM2_N - 1:
        raise ValueError("SM2 private key out of range")
    point = _sm2_affine(_sm2_comb((1, 1, 0), _sm2_table(_SM2_GX, _SM2_GY), d))
    assert point is not None
    return f"{point[0]:064x}{point[1]:064x}"


def _sm2_sign(private: str, data: bytes) -> bytes:
    d = int(private, 16)
    public = _sm2_public(private)
    e = _sm2_e(public, data)
    n = _SM2_N
    table = _sm2_table(_SM2_GX, _SM2_GY)
    d1 = pow(d + 1, -1, n)
    while True:
        k = secrets.randbelow(n - 1) + 1
        point = _sm2_affine(_sm2_comb((1, 1, 0), table, k))
        assert point is not None
        r = (e + point[0]) % n
        if r == 0 or r + k == n:
            continue
        s = d1 * (k - r * d) % n
        if s:
            return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def _sm2_verify(public: str, data: bytes, signature: bytes) -> bool:
    n = _SM2_N
    r = int.from_bytes(signature[:32], "big")
    s = int.from_bytes(signature[32:], "big")
    if not (0 < r < n and 0 < s < n):
        return False
    t = (r + s) % n
    if t == 0:
        return False
    x, y = _sm2_point(public)
    acc = _sm2_comb((1, 1, 0), _sm2_table(_SM2_GX, _SM2_GY), s)
    acc = _sm2_comb(acc, _sm2_table(x, y), t)
    point = _sm2_affine(acc)
    if point is None:
        return False
    return (_sm2_e(public, data) + point[0]) % n == r


def generate_cipher_key(alg: CipherAlg | str) -> str:
    return os.urandom(16 if alg == "sm4" else 32).hex()


def encrypt(
    alg: CipherAlg | str, key: str, data: bytes, aad: bytes | None = None
) -> tuple[bytes, bytes]:
    """Authenticated encryption (``aad`` authenticated too, not encrypted); returns
    (nonce, ciphertext with tag)."""
    nonce = os.urandom(12)
    if alg == "aes":
        return nonce, AESGCM(bytes.fromhex(key)).encrypt(nonce, data, aad)
    if alg == "sm4":
        from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

        enc = Cipher(algorithms.SM4(bytes.fromhex(key)), modes.GCM(nonce)).encryptor()
        if aad:
            enc.authenticate_additional_data(aad)
        body = enc.update(data) + enc.finalize()
        return nonce, body + enc.tag
    raise ValueError(f"unknown cipher: {alg}")


def decrypt(
    alg: CipherAlg | str, key: str, nonce: bytes, data: bytes, aad: bytes | None = None
) -> bytes:
    """Raises ``ValueError`` when the ciphertext (or ``aad``) was altered or the key is
    wrong."""
    from cryptography.exceptions import InvalidTag

    try:
        if alg == "aes":
            return AESGCM(bytes.fromhex(key)).decrypt(nonce, data, aad)
        if alg == "sm4":
            from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

            dec = Cipher(
                algorithms.SM4(bytes.fromhex(key)), modes.GCM(nonce, data[-16:])
            ).decryptor()
            if aad:
                dec.authenticate_additional_data(aad)
            return dec.update(data[:-16]) + dec.finalize()
    except InvalidTag:
        raise ValueError("ciphertext failed authentication") from None
    raise ValueError(f"unknown cipher: {alg}")
