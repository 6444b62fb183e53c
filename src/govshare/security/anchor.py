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

``govshare keys rotate audit`` replaces the key (密钥轮换) while the hub runs. The old
key moves to the file's ``retired`` list with ``until_seq``, the last entry it sealed:
the rotation holds the chain head's lock while it writes the file, and every appender
looks at the file again after taking that lock (``current``), so the entries up to
``until_seq`` are sealed by the old key and every later one by the new key. A retired
key keeps verifying what it sealed and signed, and may never vouch for a later entry:
whoever stole it cannot seal or sign anything after the rotation.
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
class RetiredKey:
    """A key replaced by a rotation: it verifies the entries up to ``until_seq`` and the
    signatures over them, nothing later."""

    generation: int
    mac_key: bytes
    public: str
    until_seq: int
    retired_at: str


@dataclass(frozen=True, slots=True)
class AuditKey:
    """The chain key and the checkpoint signing key pair, as read from the key file,
    with the keys earlier rotations retired (oldest first)."""

    mac_key: bytes
    private: str
    public: str
    legacy_until: int
    directory: Path
    generation: int = 1
    retired: tuple[RetiredKey, ...] = ()
    # The file's (inode, mtime, size) when read: ``current`` sees a rotation by it.
    stamp: tuple[int, int, int] = (0, 0, 0)

    @property
    def checkpoints_path(self) -> Path:
        return self.directory / CHECKPOINTS_FILE

    def mac_key_for(self, seq: int) -> bytes:
        """The key that sealed (or will seal) entry ``seq``."""
        for old in self.retired:
            if seq <= old.until_seq:
                return old.mac_key
        return self.mac_key

    def signers(self, seq: int) -> list[tuple[int, str]]:
        """(generation, public key) of every key that may sign a statement about entry
        ``seq``: the one that sealed it and every later one, never one retired before."""
        found = [(old.generation, old.public) for old in self.retired if old.until_seq >= seq]
        found.append((self.generation, self.public))
        return found

    def publics(self) -> list[str]:
        """Every public key the hub has signed with, the current one first."""
        return [self.public, *(old.public for old in reversed(self.retired))]

    def accepts(
        self, seq: int, message: bytes, signature: bytes, *, generation: int | None = None
    ) -> bool:
        """Whether ``signature`` over ``message`` (about entry ``seq``) is by a key that
        may vouch for it; ``generation``, when the statement names its key, narrows the
        keys tried to that one."""
        for number, public in self.signers(seq):
            if generation is not None and number != generation:
                continue
            if verify_signature(SIGNATURE_ALG, public, message, signature):
                return True
        return False


def read_key(data_dir: Path) -> AuditKey | None:
    """The data dir's audit key, or None when it has none yet."""
    return _read(audit_dir(data_dir) / KEY_FILE)


def _read(path: Path) -> AuditKey | None:
    try:
        with path.open("rb") as f:
            st = os.fstat(f.fileno())
            raw = f.read()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise AuditKeyError(f"cannot read the audit key {path}: {exc}") from exc
    try:
        doc = orjson.loads(raw)
        retired = tuple(
            RetiredKey(
                generation=int(old["generation"]),
                mac_key=bytes.fromhex(old["mac_key"]),
                public=str(old["public"]),
                until_seq=int(old["until_seq"]),
                retired_at=str(old["retired_at"]),
            )
            for old in doc.get("retired", [])
        )
        return AuditKey(
            mac_key=bytes.fromhex(doc["mac_key"]),
            private=str(doc["private"]),
            public=str(doc["public"]),
            legacy_until=int(doc["legacy_until"]),
            directory=path.parent,
            generation=int(doc.get("generation", 1)),
            retired=tuple(sorted(retired, key=lambda old: old.until_seq)),
            stamp=(st.st_ino, st.st_mtime_ns, st.st_size),
        )
    except (orjson.JSONDecodeError, KeyError, ValueError, TypeError, AttributeError) as exc:
        raise AuditKeyError(f"the audit key {path} is malformed: {exc}") from exc


_seen: dict[Path, AuditKey] = {}


def current(key: AuditKey) -> AuditKey:
    """``key`` as its file now says: after a rotation by any process, the new key (with
    the old one retired). One ``stat`` when nothing changed; appenders call it after
    taking the head's lock, which a rotation holds while it replaces the file."""
    known = _seen.get(key.directory)
    if known is None or known.generation < key.generation:
        known = key
    path = key.directory / KEY_FILE
    try:
        st = os.stat(path)
    except OSError:
        return known
    if (st.st_ino, st.st_mtime_ns, st.st_size) == known.stamp:
        return known
    fresh = _read(path)
    if fresh is None or fresh.generation < known.generation:
        return known
    _seen[key.directory] = fresh
    return fresh


def rotate_key(data_dir: Path, *, until_seq: int, at: datetime) -> AuditKey:
    """Replace the data dir's audit key by a new one and retire the old one as the
    sealer of entries up to ``until_seq``. The caller holds the chain head's lock (no
    entry can be appended meanwhile) and records the rotation as the new key's first
    entry. The file is replaced whole (a crash leaves the old or the new file)."""
    path = audit_dir(data_dir) / KEY_FILE
    old = _read(path)
    if old is None:
        raise AuditKeyError(f"there is no audit key to rotate in {path.parent}")
    doc = orjson.loads(path.read_bytes())
    retired = [*doc.get("retired", [])]
    retired.append(
        {
            "generation": old.generation,
            "mac_key": old.mac_key.hex(),
            "public": old.public,
            "until_seq": until_seq,
            "created_at": doc.get("created_at"),
            "retired_at": at.isoformat(),
        }
    )
    private, public = generate_signing_key(SIGNATURE_ALG)
    doc.update(
        version=2,
        generation=old.generation + 1,
        mac_key=secrets.token_bytes(32).hex(),
        private=private,
        public=public,
        created_at=at.isoformat(),
        retired=retired,
    )
    tmp = path.with_name(f".{KEY_FILE}.{os.getpid()}.{secrets.token_hex(4)}")
    _write_new(tmp, orjson.dumps(doc, option=orjson.OPT_INDENT_2))
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    fresh = _read(path)
    assert fresh is not None
    _seen[fresh.directory] = fresh
    return fresh


def _write_new(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


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
    _write_new(tmp, orjson.dumps(doc, option=orjson.OPT_INDENT_2))
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
    """Whether one signed checkpoint line (as parsed) carries a valid signature by a key
    that may vouch for its entry (``AuditKey.signers``)."""
    try:
        seq, hash, at = int(doc["seq"]), str(doc["hash"]), str(doc["at"])
        signature = bytes.fromhex(doc["sig"])
        generation = None if doc.get("key") is None else int(doc["key"])
    except (KeyError, ValueError, TypeError):
        return False
    return doc.get("alg") == SIGNATURE_ALG and key.accepts(
        seq, _signed_bytes(seq, hash, at), signature, generation=generation
    )


def _signed_bytes(seq: int, hash: str, at: str) -> bytes:
    return orjson.dumps({"seq": seq, "hash": hash, "at": at}, option=orjson.OPT_SORT_KEYS)


def append_checkpoint(key: AuditKey, *, seq: int, hash: str, at: datetime) -> None:
    """Append one signed checkpoint line (whole, under an exclusive lock)."""
    stamp = at.isoformat()
    signature = sign(SIGNATURE_ALG, key.private, _signed_bytes(seq, hash, stamp)).hex()
    # ``key`` names the signing key's generation (not signed: it only saves trying
    # every key; a wrong one makes the line invalid).
    line = orjson.dumps(
        {
            "seq": seq,
            "hash": hash,
            "at": stamp,
            "alg": SIGNATURE_ALG,
            "sig": signature,
            "key": key.generation,
        }
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
        except (orjson.JSONDecodeError, KeyError, ValueError, TypeError):
            found.append(Checkpoint(number, 0, "", "", valid=False))
            continue
        ok = checkpoint_valid(key, doc)
        found.append(Checkpoint(number, seq, hash, at, valid=ok, signed=doc))
    return found


checkpoint_lines = read_checkpoints
"""Every checkpoint line with what was signed (``signed``), for the archives."""
