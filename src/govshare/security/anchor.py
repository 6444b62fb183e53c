"""The audit chain's anchors outside the database: its key and its signed checkpoints.

``DATA_DIR/audit/key.json`` (mode 0600, never in the database) holds the key that seals
every audit entry (HMAC-SM3 or HMAC-SHA256) and the hub's SM2 key pair that signs the
checkpoints. ``DATA_DIR/audit/checkpoints.jsonl`` gets one signed line per checkpoint
of the chain's head (seq + hash), appended and never rewritten. Someone who can write
the database but not the data directory can neither seal a forged entry nor move a
signed checkpoint, so ``audit verify`` finds a rewritten chain even when every later
hash was recomputed.

The key file also records ``legacy_until``: the head's seq when the key was made.
Entries up to it were written before chains were keyed and are verified by the old
(unkeyed) rule; every later entry must be keyed.
"""

from __future__ import annotations

import fcntl
import os
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from govshare.security.crypto import generate_signing_key, sign, verify_signature

KEY_FILE = "key.json"
CHECKPOINTS_FILE = "checkpoints.jsonl"
SIGNATURE_ALG = "sm2"


class AuditKeyError(Exception):
    """The key file exists but cannot be used (unreadable, malformed)."""


def audit_dir(data_dir: Path) -> Path:
    return data_dir / "audit"


@dataclass(frozen=True, slots=True)
class AuditKey:
    """The chain key and the checkpoint signing key pair, as read from the key file."""

    mac_key: bytes
    private: str
    public: str
    legacy_until: int
    directory: Path

    @property
    def checkpoints_path(self) -> Path:
        return self.directory / CHECKPOINTS_FILE


def read_key(data_dir: Path) -> AuditKey | None:
    """The data dir's audit key, or None when it has none yet."""
    path = audit_dir(data_dir) / KEY_FILE
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise AuditKeyError(f"cannot read the audit key {path}: {exc}") from exc
    try:
        doc = orjson.loads(raw)
        return AuditKey(
            mac_key=bytes.fromhex(doc["mac_key"]),
            private=str(doc["private"]),
            public=str(doc["public"]),
            legacy_until=int(doc["legacy_until"]),
            directory=path.parent,
        )
    except (orjson.JSONDecodeError, KeyError, ValueError, TypeError) as exc:
        raise AuditKeyError(f"the audit key {path} is malformed: {exc}") from exc


def ensure_key(data_dir: Path, head: Callable[[], tuple[int, str]]) -> AuditKey:
    """The data dir's audit key, made on first use. ``head`` gives the chain's head at
    that moment: the entries up to it stay verifiable by the unkeyed rule, and a first
    checkpoint anchors them."""
    if (key := read_key(data_dir)) is not None:
        return key
    directory = audit_dir(data_dir)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    head_seq, head_hash = head()
    private, public = generate_signing_key(SIGNATURE_ALG)
    doc = {
        "version": 1,
        "mac_key": secrets.token_bytes(32).hex(),
        "signature_alg": SIGNATURE_ALG,
        "private": private,
        "public": public,
        "legacy_until": head_seq,
        "created_at": datetime.now().astimezone().isoformat(),  # its age: 密钥即将到期
    }
    tmp = directory / f".{KEY_FILE}.{os.getpid()}.{secrets.token_hex(4)}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(orjson.dumps(doc, option=orjson.OPT_INDENT_2))
        f.flush()
        os.fsync(f.fileno())
    try:
        # link() never replaces: of two processes making a key, the first one wins.
        os.link(tmp, directory / KEY_FILE)
        won = True
    except FileExistsError:
        won = False
    finally:
        tmp.unlink()
    key = read_key(data_dir)
    assert key is not None
    if won and head_seq > 0:
        append_checkpoint(key, seq=head_seq, hash=head_hash, at=datetime.now().astimezone())
    return key


# -- checkpoints -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A signed statement that the chain's entry ``seq`` had hash ``hash`` at ``at``."""

    line: int
    seq: int
    hash: str
    at: str
    valid: bool
    # The line as the hub signed it (seq, hash, at, alg, sig), carried into archives.
    signed: dict[str, Any] | None = None


def checkpoint_valid(key: AuditKey, doc: Mapping[str, Any]) -> bool:
    """Whether one signed checkpoint line (as parsed) carries the key's valid signature."""
    try:
        seq, hash, at = int(doc["seq"]), str(doc["hash"]), str(doc["at"])
        signature = bytes.fromhex(doc["sig"])
    except (KeyError, ValueError, TypeError):
        return False
    return doc.get("alg") == SIGNATURE_ALG and verify_signature(
        SIGNATURE_ALG, key.public, _signed_bytes(seq, hash, at), signature
    )


def _signed_bytes(seq: int, hash: str, at: str) -> bytes:
    return orjson.dumps({"seq": seq, "hash": hash, "at": at}, option=orjson.OPT_SORT_KEYS)


def append_checkpoint(key: AuditKey, *, seq: int, hash: str, at: datetime) -> None:
    """Append one signed checkpoint line (whole, under an exclusive lock)."""
    stamp = at.isoformat()
    signature = sign(SIGNATURE_ALG, key.private, _signed_bytes(seq, hash, stamp)).hex()
    line = orjson.dumps(
        {"seq": seq, "hash": hash, "at": stamp, "alg": SIGNATURE_ALG, "sig": signature}
    )
    fd = os.open(key.checkpoints_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(fd, line + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)


def read_checkpoints(key: AuditKey, *, last: int | None = None) -> list[Checkpoint]:
    """Every line of the checkpoint file (or the ``last`` few, read from its end, their
    ``line`` then 0); ``valid`` is False for a line that does not parse or whose
    signature the key's public half does not accept."""
    try:
        with key.checkpoints_path.open("rb") as f:
            if last is None:
                lines = f.read().splitlines()
            else:
                size = f.seek(0, os.SEEK_END)
                f.seek(max(0, size - last * 512))
                lines = f.read().splitlines()[-last:]
    except FileNotFoundError:
        return []
    found: list[Checkpoint] = []
    for index, text in enumerate(lines, start=1):
        number = index if last is None else 0
        if not text.strip():
            continue
        try:
            doc = orjson.loads(text)
            seq, hash, at = int(doc["seq"]), str(doc["hash"]), str(doc["at"])
            signature = bytes.fromhex(doc["sig"])
        except (orjson.JSONDecodeError, KeyError, ValueError, TypeError):
            found.append(Checkpoint(number, 0, "", "", valid=False))
            continue
        ok = doc.get("alg") == SIGNATURE_ALG and verify_signature(
            SIGNATURE_ALG, key.public, _signed_bytes(seq, hash, at), signature
        )
        found.append(Checkpoint(number, seq, hash, at, valid=ok, signed=doc))
    return found


checkpoint_lines = read_checkpoints
"""Every checkpoint line with what was signed (``signed``), for the archives."""
