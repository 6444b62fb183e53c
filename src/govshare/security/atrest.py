"""静态加密 (encryption at rest) of what the hub keeps for departments: the exchange
packages in the package log hold their rows in the clear once the hub has checked the
provider's signature, so they are sealed again before they are stored.

The keys live in ``DATA_DIR/keys/at-rest.json`` (mode 0600), never in the database,
each sealed with ``GOVSHARE_SECRET_KEY``: a copy of the database alone, or of the data
directory without the secret, opens nothing. The newest key seals; every key in the
file opens what it sealed, so ``govshare keys rotate at-rest`` needs no downtime and no
re-encryption (each sealed blob names its key). Every process sees a rotation at its
next seal (one ``stat`` of the file per call).

A sealed blob is ``MAGIC | key id (8 bytes) | nonce (12) | ciphertext with tag``
(SM4-GCM or AES-256-GCM, per key). Blobs stored before this existed do not start with
``MAGIC`` and are handed back as they are.

Files too large to hold in memory (uploaded open-data files) are sealed as a stream:
``STREAM_MAGIC | key id`` and then records ``length (4 bytes) | nonce | ciphertext with
tag``, one per chunk, each authenticating the header, its position and whether it is the
last — so a chunk moved, repeated, dropped or cut off at the end fails to open rather
than giving other bytes.
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import hmac
import os
import secrets
import struct
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from govshare.errors import GovshareError
from govshare.security.crypto import decrypt, encrypt, generate_cipher_key, seal, unseal

if TYPE_CHECKING:
    from govshare.config import Settings

MAGIC = b"GSAR1"
STREAM_MAGIC = b"GSARS1"
# A sealed head followed by a tail kept as it is: the tail is ciphertext already, under
# a data key (数据密钥) that only the sealed head holds (``AtRestCipher.seal_head``).
HEAD_MAGIC = b"GSARH1"
KEY_DIR = "keys"
KEY_FILE = "at-rest.json"
ALGS = ("sm4", "aes")
_ID_LEN = 8
_NONCE_LEN = 12


class AtRestKeyError(GovshareError):
    """The at-rest key file is missing a key, unreadable, or not ours (another secret):
    the hub cannot open what it stored. An operator's problem, not the caller's."""

    status = 503
    code = "at_rest_key_unavailable"


def key_path(data_dir: Path) -> Path:
    return data_dir / KEY_DIR / KEY_FILE


@dataclass(frozen=True, slots=True)
class AtRestKey:
    id: str
    alg: str
    sealed: str  # the key, sealed with the secret key
    created_at: str


def read_keys(data_dir: Path) -> list[AtRestKey]:
    """Every key in the file, oldest first; [] when there is no file yet."""
    path = key_path(data_dir)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise AtRestKeyError(f"无法读取静态加密密钥文件 {path}: {exc}") from exc
    try:
        return [
            AtRestKey(
                id=str(k["id"]),
                alg=str(k["alg"]),
                sealed=str(k["key"]),
                created_at=str(k.get("created_at", "")),
            )
            for k in orjson.loads(raw)["keys"]
        ]
    except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
        raise AtRestKeyError(f"静态加密密钥文件 {path} 格式不正确: {exc}") from exc


def add_key(data_dir: Path, secret_key: str, alg: str) -> AtRestKey:
    """A new key of ``alg`` that seals from now on (the older ones stay to open)."""
    if alg not in ALGS:
        raise ValueError(f"unknown cipher {alg!r}")
    path = key_path(data_dir)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    new = {
        "id": secrets.token_hex(_ID_LEN // 2),
        "alg": alg,
        "key": seal(secret_key, generate_cipher_key(alg)),
        "created_at": datetime.now(UTC).isoformat(),
    }
    # One writer at a time: two rotations reading the same file would each drop the
    # other's key, and with it whatever a hub process had already sealed under it.
    with (path.parent / f".{KEY_FILE}.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        existing = path.read_bytes() if path.exists() else None
        keys = orjson.loads(existing)["keys"] if existing else []
        tmp = path.parent / f".{KEY_FILE}.{os.getpid()}.{secrets.token_hex(4)}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(orjson.dumps({"version": 1, "keys": [*keys, new]}, option=orjson.OPT_INDENT_2))
            f.flush()
            os.fsync(f.fileno())
        try:
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
    return read_keys(data_dir)[-1]


class AtRestCipher:
    """Seals and opens blobs with the data dir's at-rest keys (made on first use)."""

    def __init__(
        self,
        data_dir: Path,
        secret_key: str,
        alg: str,
        secret_name: str = "GOVSHARE_SECRET_KEY",  # noqa: S107 (a name, told in errors)
    ) -> None:
        self.data_dir = data_dir
        self.secret_key = secret_key
        self.alg = alg
        self.secret_name = secret_name  # what the operator knows the secret as, for errors
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int] | None = None
        self._newest: AtRestKey | None = None
        self._by_id: dict[str, AtRestKey] = {}
        self._opened: dict[str, str] = {}

    def seal(self, data: bytes) -> bytes:
        key = self._current()
        nonce, box = encrypt(key.alg, self._key(key), data)
        return b"".join([MAGIC, key.id.encode(), nonce, box])

    def seal_head(self, head: bytes, tail: bytes) -> bytes:
        """``head`` sealed and ``tail`` kept as it is, for a blob whose tail is already
        ciphertext under a key that ``head`` holds (an exchange package encrypted under
        its own data key): sealing the key seals the whole, without a pass over the
        tail's bytes. ``open`` gives back ``head + tail``."""
        sealed = self.seal(head)
        return b"".join([HEAD_MAGIC, struct.pack(">I", len(sealed)), sealed, tail])

    def open(self, blob: bytes) -> bytes:
        """The plain bytes of a sealed blob; a blob stored unsealed, as it is."""
        if blob.startswith(HEAD_MAGIC):
            start = len(HEAD_MAGIC) + 4
            try:
                (length,) = struct.unpack_from(">I", blob, len(HEAD_MAGIC))
            except struct.error:
                raise AtRestKeyError("静态加密的内容不完整: 内容被截断") from None
            if start + length > len(blob) or not blob.startswith(MAGIC, start):
                raise AtRestKeyError("静态加密的内容不完整: 内容被截断或改动")
            return self.open(blob[start : start + length]) + blob[start + length :]
        if not is_sealed(blob):
            return blob
        head = len(MAGIC)
        key_id = blob[head : head + _ID_LEN].decode("ascii", "replace")
        key = self._find(key_id)
        nonce = blob[head + _ID_LEN : head + _ID_LEN + _NONCE_LEN]
        try:
            return decrypt(key.alg, self._key(key), nonce, blob[head + _ID_LEN + _NONCE_LEN :])
        except ValueError:
            raise AtRestKeyError(
                f"静态加密的内容无法解密 (密钥 {key_id}): 内容被改动或密钥不符"
            ) from None

    def seal_stream(self, chunks: Iterable[bytes]) -> Iterator[bytes]:
        """The sealed stream of ``chunks`` (empty chunks are skipped), piece by piece."""
        key = self._current()
        secret = self._key(key)
        header = STREAM_MAGIC + key.id.encode()
        yield header
        index, pending = 0, None
        for chunk in chunks:
            if not chunk:
                continue
            if pending is not None:
                yield _record(key.alg, secret, header, index, pending, last=False)
                index += 1
            pending = chunk
        yield _record(key.alg, secret, header, index, pending or b"", last=True)

    def open_stream(self, source: BinaryIO, chunk: int = 1 << 20) -> Iterator[bytes]:
        """The plain bytes of a file read from ``source``: opened when it was sealed as a
        stream, else as it is (a file stored before sealing, or with sealing off)."""
        head = source.read(len(STREAM_MAGIC) + _ID_LEN)
        if not head.startswith(STREAM_MAGIC) or len(head) < len(STREAM_MAGIC) + _ID_LEN:
            if head:
                yield head
            while piece := source.read(chunk):
                yield piece
            return
        key_id = head[len(STREAM_MAGIC) :].decode("ascii", "replace")
        key = self._find(key_id)
        secret = self._key(key)
        index = 0
        while True:
            size = source.read(4)
            if len(size) < 4:
                raise AtRestKeyError(f"静态加密的文件不完整 (密钥 {key_id}): 缺少结尾部分")
            (length,) = struct.unpack(">I", size)
            body = source.read(length)
            if len(body) != length or length <= _NONCE_LEN:
                raise AtRestKeyError(f"静态加密的文件不完整 (密钥 {key_id}): 记录被截断")
            nonce, box = body[:_NONCE_LEN], body[_NONCE_LEN:]
            for last in (False, True):
                try:
                    plain = decrypt(key.alg, secret, nonce, box, _aad(head, index, last))
                except ValueError:
                    continue
                break
            else:
                raise AtRestKeyError(
                    f"静态加密的文件无法解密 (密钥 {key_id}): 内容被改动或密钥不符"
                )
            yield plain
            if last:
                if source.read(1):
                    raise AtRestKeyError(f"静态加密的文件在结尾之后还有内容 (密钥 {key_id})")
                return
            index += 1

    def _current(self) -> AtRestKey:
        path = key_path(self.data_dir)
        with self._lock:
            try:
                st = os.stat(path)
                stamp: tuple[int, int, int] | None = (st.st_ino, st.st_mtime_ns, st.st_size)
            except FileNotFoundError:
                stamp = None
            if stamp is None or stamp != self._stamp or self._newest is None:
                keys = read_keys(self.data_dir) or [
                    add_key(self.data_dir, self.secret_key, self.alg)
                ]
                self._by_id = {k.id: k for k in keys}
                self._newest = keys[-1]
                st = os.stat(path)
                self._stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
            return self._newest

    def _find(self, key_id: str) -> AtRestKey:
        if key_id not in self._by_id:
            self._stamp = None  # rotated by another process since: read the file again
            self._current()
        try:
            return self._by_id[key_id]
        except KeyError:
            raise AtRestKeyError(
                f"内容由静态加密密钥 {key_id} 加密, 但 {key_path(self.data_dir)} 中没有该密钥"
            ) from None

    def _key(self, key: AtRestKey) -> str:
        if (opened := self._opened.get(key.id)) is None:
            try:
                opened = unseal(self.secret_key, key.sealed)
            except (ValueError, InvalidTag):
                raise AtRestKeyError(
                    f"静态加密密钥 {key.id} 无法用 {self.secret_name} 解封 (密钥文件不属于本平台?)"
                ) from None
            self._opened[key.id] = opened
        return opened


_ciphers: dict[tuple[Path, str, str], AtRestCipher] = {}


def cipher_for(settings: Settings) -> AtRestCipher:
    """The data dir's at-rest cipher, one per process (it follows key rotations); it
    opens what was sealed even while sealing is off."""
    alg = settings.at_rest_cipher if settings.at_rest_cipher != "none" else "sm4"
    key = (settings.data_dir, settings.secret_key, alg)
    if (cipher := _ciphers.get(key)) is None:
        cipher = _ciphers[key] = AtRestCipher(settings.data_dir, settings.secret_key, alg)
    return cipher


def sealing_cipher(settings: Settings) -> AtRestCipher | None:
    """The cipher new content is sealed with; None when sealing is off."""
    return None if settings.at_rest_cipher == "none" else cipher_for(settings)


# The one key of a JSON object kept sealed (``seal_document``); no document the hub seals
# this way has a key of that name.
SEALED_DOCUMENT = "__sealed__"


def seal_document(cipher: AtRestCipher | None, data: dict[str, Any]) -> dict[str, Any]:
    """``data`` as a JSON column keeps it at rest: sealed whole, in base64 under
    ``SEALED_DOCUMENT``; as it is with no cipher (sealing off)."""
    if cipher is None:
        return data
    return {SEALED_DOCUMENT: base64.b64encode(cipher.seal(orjson.dumps(data))).decode()}


def open_document(cipher: AtRestCipher, stored: dict[str, Any]) -> dict[str, Any]:
    """What ``seal_document`` sealed; a document stored in the clear, as it is."""
    blob = stored.get(SEALED_DOCUMENT) if len(stored) == 1 else None
    if not isinstance(blob, str):
        return stored
    opened: dict[str, Any] = orjson.loads(cipher.open(base64.b64decode(blob)))
    return opened


def _aad(header: bytes, index: int, last: bool) -> bytes:
    return header + struct.pack(">Q?", index, last)


def _record(alg: str, secret: str, header: bytes, index: int, data: bytes, *, last: bool) -> bytes:
    nonce, box = encrypt(alg, secret, data, _aad(header, index, last))
    return struct.pack(">I", len(nonce) + len(box)) + nonce + box


def sealed_with(blob: bytes) -> str | None:
    """The id of the key a sealed blob (or sealed head) was sealed with; None when the
    blob is not sealed."""
    if blob.startswith(HEAD_MAGIC):
        blob = blob[len(HEAD_MAGIC) + 4 :]
    if not blob.startswith(MAGIC):
        return None
    return blob[len(MAGIC) : len(MAGIC) + _ID_LEN].decode("ascii", "replace")


def is_sealed(blob: bytes) -> bool:
    return blob.startswith(MAGIC) or blob.startswith(HEAD_MAGIC)


class FindableSeal:
    """确定性加密 for values that must still be found by equality once sealed (the keys of
    rows a node has sent): a value gives a *tag*, ``HMAC(mac key, value)`` cut to 16
    bytes (HMAC-SM3 with SM4, HMAC-SHA-256 with AES), to look it up by, and a *sealed*
    copy, the value enciphered in counter mode with the tag as the counter's start — the
    SIV construction, so a value is opened only if the tag it was found by is its own.
    Equal values give equal tags (that is the point, and all a thief with the table
    learns); nothing else about a value shows.

    The key (``new_key``) is kept sealed beside what it protects and never rotates with
    the at-rest keys: a rotation would change every tag and lose every lookup."""

    _TAG = 16
    _MASK = (1 << 128) - 1

    def __init__(self, key: str) -> None:
        alg, _, material = key.partition(":")
        try:
            raw = bytes.fromhex(material)
        except ValueError:
            raw = b""
        if alg not in ALGS or len(raw) != 32 + (16 if alg == "sm4" else 32):
            raise ValueError("not a findable-seal key")
        self.alg = alg
        mac_key, cipher_key = raw[:32], raw[32:]
        # HMAC's inner and outer hashes with the key already absorbed, copied per value:
        # the same tags as ``hmac.digest`` at under half its cost.
        digest = "sm3" if alg == "sm4" else "sha256"
        self._inner, self._outer = hashlib.new(digest), hashlib.new(digest)
        padded = mac_key.ljust(self._inner.block_size, b"\0")
        self._inner.update(bytes(b ^ 0x36 for b in padded))
        self._outer.update(bytes(b ^ 0x5C for b in padded))
        block = algorithms.SM4(cipher_key) if alg == "sm4" else algorithms.AES(cipher_key)
        self._blocks = Cipher(block, modes.ECB()).encryptor()  # noqa: S305 (counter mode by hand)
        self._lock = threading.Lock()

    @staticmethod
    def new_key(alg: str) -> str:
        if alg not in ALGS:
            raise ValueError(f"unknown cipher {alg!r}")
        return f"{alg}:{os.urandom(32 + (16 if alg == 'sm4' else 32)).hex()}"

    def tags(self, values: Iterable[str]) -> list[str]:
        return [self._tag(v.encode("utf-8")).hex() for v in values]

    def seal(
        self, values: Sequence[str], tags: Sequence[str] | None = None
    ) -> tuple[list[str], list[bytes]]:
        """Each value's tag (``tags`` when the caller has them already) and sealed copy."""
        if tags is None:
            tags = self.tags(values)
        return list(tags), self._xor(
            [bytes.fromhex(t) for t in tags], [v.encode("utf-8") for v in values]
        )

    def open(self, tags: Sequence[str], sealed: Sequence[bytes]) -> list[str]:
        """The values back; raises ``AtRestKeyError`` when one does not open to its tag."""
        raw_tags = [bytes.fromhex(t) for t in tags]
        values = self._xor(raw_tags, list(sealed))
        for tag, value in zip(raw_tags, values, strict=True):
            if not hmac.compare_digest(self._tag(value), tag):
                raise AtRestKeyError("确定性加密的值无法解密: 内容被改动或密钥不符")
        return [v.decode("utf-8") for v in values]

    def _tag(self, value: bytes) -> bytes:
        inner = self._inner.copy()
        inner.update(value)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()[: self._TAG]

    def _xor(self, tags: Sequence[bytes], data: Sequence[bytes]) -> list[bytes]:
        """Counter mode over a whole batch: every value's counter blocks are enciphered in
        one call and the batch is XORed as one number (a cipher object per value costs
        more than all the rest)."""
        counters: list[bytes] = []
        padded: list[bytes] = []
        for tag, value in zip(tags, data, strict=True):
            blocks = -(-len(value) // 16)
            if blocks == 1:
                counters.append(tag)
            elif blocks > 1:
                start = int.from_bytes(tag, "big")
                counters += [((start + i) & self._MASK).to_bytes(16, "big") for i in range(blocks)]
            padded.append(value.ljust(blocks * 16, b"\0"))
        with self._lock:
            stream = self._blocks.update(b"".join(counters))
        joined = b"".join(padded)
        mixed = (int.from_bytes(joined, "big") ^ int.from_bytes(stream, "big")).to_bytes(
            len(joined), "big"
        )
        out, at = [], 0
        for value in data:
            out.append(mixed[at : at + len(value)])
            at += len(value) + (-len(value) % 16)
        return out
