"""The keys of the document exchange.

``DATA_DIR/documents/key.json`` (mode 0600) holds the hub's document signing key pairs:
one per algorithm ever configured (``documents_signature``), each with its id (the
first 32 hex digits of the SHA-256 of its public half), its public half in clear and its
private half sealed with ``GOVSHARE_SECRET_KEY`` (AES-256-GCM, ``crypto.seal``). Older
pairs stay in the file so that documents signed years ago still verify.

The files of documents are encrypted with AES-256-GCM under a key derived from
``GOVSHARE_SECRET_KEY`` (HKDF-SHA256, its own purpose), so the database or a backup
alone reveals nothing: reading a document needs the secret key too. The additional
data binds each ciphertext to its document and position, so a blob moved to another
row fails authentication.

A backup of the data directory carries the key file (encrypted, like everything in a
backup); the secret key is kept apart (key management), as for every other sealed
secret of the hub.
"""

from __future__ import annotations

import functools
import hashlib
import os
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from govshare.security.crypto import generate_signing_key, seal, unseal

KEY_DIR = "documents"
KEY_FILE = "key.json"
_CONTENT_PURPOSE = b"govshare-documents/content"


class DocumentKeyError(Exception):
    """The key file exists but cannot be used; ``str`` is for the operator (Chinese)."""


@dataclass(frozen=True, slots=True)
class SigningKey:
    id: str
    alg: str
    public: str
    sealed_private: str

    def private(self, secret_key: str) -> str:
        try:
            return unseal(secret_key, self.sealed_private)
        except (InvalidTag, ValueError) as exc:
            raise DocumentKeyError(
                f"公文签名私钥 {self.id} 无法解封: GOVSHARE_SECRET_KEY 与生成它时的不同"
            ) from exc


def key_path(data_dir: Path) -> Path:
    return data_dir / KEY_DIR / KEY_FILE


def key_id(public: str) -> str:
    return hashlib.sha256(public.encode()).hexdigest()[:32]


def read_keys(data_dir: Path) -> list[SigningKey]:
    """Every signing key of the data dir, oldest first; [] when there is no key file."""
    path = key_path(data_dir)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise DocumentKeyError(f"无法读取公文密钥文件 {path}: {exc}") from exc
    try:
        doc = orjson.loads(raw)
        return [
            SigningKey(
                id=str(k["id"]),
                alg=str(k["alg"]),
                public=str(k["public"]),
                sealed_private=str(k["private"]),
            )
            for k in doc["keys"]
        ]
    except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
        raise DocumentKeyError(f"公文密钥文件 {path} 格式不正确: {exc}") from exc


def find_key(data_dir: Path, wanted: str) -> SigningKey | None:
    return next((k for k in read_keys(data_dir) if k.id == wanted), None)


def signing_key(data_dir: Path, secret_key: str, alg: str) -> SigningKey:
    """The newest key of ``alg``, made (and added to the key file) on first use."""
    for key in reversed(read_keys(data_dir)):
        if key.alg == alg:
            return key
    _add_key(data_dir, secret_key, alg)
    return signing_key(data_dir, secret_key, alg)


def rotate_key(data_dir: Path, secret_key: str, alg: str) -> SigningKey:
    """轮换: a new key of ``alg`` signs from now on; the older ones stay in the file, so
    every document and receipt signed before still verifies (each names its key)."""
    _add_key(data_dir, secret_key, alg)
    return signing_key(data_dir, secret_key, alg)


def _add_key(data_dir: Path, secret_key: str, alg: str) -> None:
    private, public = generate_signing_key(alg)
    new = {
        "id": key_id(public),
        "alg": alg,
        "public": public,
        "private": seal(secret_key, private),
        "created_at": datetime.now(UTC).isoformat(),
    }
    path = key_path(data_dir)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    existing = path.read_bytes() if path.exists() else None
    keys = orjson.loads(existing)["keys"] if existing else []
    doc = {"version": 1, "keys": [*keys, new]}
    tmp = path.parent / f".{KEY_FILE}.{os.getpid()}.{secrets.token_hex(4)}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(orjson.dumps(doc, option=orjson.OPT_INDENT_2))
        f.flush()
        os.fsync(f.fileno())
    if existing is None:
        try:
            # link() never replaces: of two processes making the first key, one wins.
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    else:
        os.replace(tmp, path)


@functools.lru_cache(maxsize=8)
def _content_key(secret_key: str) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_CONTENT_PURPOSE).derive(
        secret_key.encode()
    )


def _aad(document_id: int, position: int) -> bytes:
    return f"govshare-document:{document_id}:{position}".encode()


def encrypt_file(
    secret_key: str, document_id: int, position: int, data: bytes
) -> tuple[bytes, bytes]:
    """(nonce, ciphertext with tag) of one file of a document."""
    nonce = os.urandom(12)
    box = AESGCM(_content_key(secret_key)).encrypt(nonce, data, _aad(document_id, position))
    return nonce, box


def decrypt_file(
    secret_key: str, document_id: int, position: int, nonce: bytes, content: bytes
) -> bytes:
    """Raises ``ValueError`` when the ciphertext, its nonce or place was changed, or the
    secret key is not the one it was written with."""
    try:
        return AESGCM(_content_key(secret_key)).decrypt(nonce, content, _aad(document_id, position))
    except (InvalidTag, ValueError) as exc:
        raise ValueError("ciphertext failed authentication") from exc
