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
from typing import Any, Literal

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
        from gmssl import sm2

        n = int(sm2.default_ecc_table["n"], 16)
        private = f"{int.from_bytes(os.urandom(32), 'big') % (n - 1) + 1:064x}"
        return private, _sm2_public(private)
    raise ValueError(f"unknown signature algorithm: {alg}")


def sign(alg: SignatureAlg | str, private: str, data: bytes) -> bytes:
    if alg == "ed25519":
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        return Ed25519PrivateKey.from_private_bytes(bytes.fromhex(private)).sign(data)
    if alg == "sm2":
        return bytes.fromhex(_sm2(private, _sm2_public(private)).sign_with_sm3(data))
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
            return bool(_sm2("", public).verify_with_sm3(signature.hex(), data))
    except (ValueError, TypeError, IndexError):
        return False
    return False


def _sm2(private: str, public: str) -> Any:
    from gmssl import sm2

    signer = sm2.CryptSM2(private_key=private, public_key="")
    # gmssl strips a leading "04" with str.lstrip, which also eats any 0 or 4 that
    # follows (about 1 key in 128 breaks); set the 128-hex-digit point ourselves.
    signer.public_key = public
    return signer


@functools.lru_cache(maxsize=64)
def _sm2_public(private: str) -> str:
    from gmssl import sm2

    return str(
        sm2.CryptSM2(private_key=private, public_key="")._kg(
            int(private, 16), sm2.default_ecc_table["g"]
        )
    )


def generate_cipher_key(alg: CipherAlg | str) -> str:
    return os.urandom(16 if alg == "sm4" else 32).hex()


def encrypt(alg: CipherAlg | str, key: str, data: bytes) -> tuple[bytes, bytes]:
    """Authenticated encryption; returns (nonce, ciphertext with tag)."""
    nonce = os.urandom(12)
    if alg == "aes":
        return nonce, AESGCM(bytes.fromhex(key)).encrypt(nonce, data, None)
    if alg == "sm4":
        from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

        enc = Cipher(algorithms.SM4(bytes.fromhex(key)), modes.GCM(nonce)).encryptor()
        body = enc.update(data) + enc.finalize()
        return nonce, body + enc.tag
    raise ValueError(f"unknown cipher: {alg}")


def decrypt(alg: CipherAlg | str, key: str, nonce: bytes, data: bytes) -> bytes:
    """Raises ``ValueError`` when the ciphertext was altered or the key is wrong."""
    from cryptography.exceptions import InvalidTag

    try:
        if alg == "aes":
            return AESGCM(bytes.fromhex(key)).decrypt(nonce, data, None)
        if alg == "sm4":
            from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

            dec = Cipher(
                algorithms.SM4(bytes.fromhex(key)), modes.GCM(nonce, data[-16:])
            ).decryptor()
            return dec.update(data[:-16]) + dec.finalize()
    except InvalidTag:
        raise ValueError("ciphertext failed authentication") from None
    raise ValueError(f"unknown cipher: {alg}")
