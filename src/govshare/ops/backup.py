"""Backups of a hub (备份与恢复): online, consistent, encrypted, with a manifest of digests.

A backup is a directory::

    DEST/manifest.json   what is in it: every item's path, size, SHA-256 (plain and stored)
    DEST/manifest.mac    HMAC-SHA256 of manifest.json under a key derived from the backup key
    DEST/items/000001    each item encrypted in chunks (SM4-GCM or AES-256-GCM)

What a hub owns and how it is taken, in this order:

1. ``audit/checkpoints.jsonl`` first: every checkpoint in it then signs a head the
   database snapshot already holds, so the restored chain verifies.
2. The hub database and the shared stores, at one moment: SQLite through its backup API
   from connections whose read transactions were opened together (writers go on in WAL
   mode); PostgreSQL through ``pg_dump`` (one snapshot per database). Packages live in
   the hub database (a NATS bus is backed up on its own: docs/backup.md).
3. Every other file of the data directory — uploaded open files, the audit key and the
   document signing keys (``documents/key.json``), encrypted like everything else —
   except scratch (metrics, comparison runs, the demo nodes, locks, SQLite's sidecar
   files).

Nothing is ever held whole in memory: files are read, digested and encrypted in chunks
of ``CHUNK`` bytes. Since format 2 each chunk is compressed (zstd, through pyarrow) before
it is sealed, unless that would not make it smaller: SM4 runs at about 130 MB/s a core
without SM4 instructions, so sealing a sixth or a third of the bytes is most of a
backup's speed, and backups are that much smaller. Format 1 backups (sealed as they
were) still verify and restore. Each chunk's nonce is (item, chunk) under a key derived for this
backup alone from the backup key and a random salt; the additional data says whether it
is the last chunk, so a truncated, reordered or swapped item fails authentication.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import os
import secrets
import shutil
import sqlite3
import struct
import subprocess
import tempfile
import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Literal

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from govshare.config import Settings

FORMAT = "govshare-backup/2"
PLAIN_FORMAT = "govshare-backup/1"  # chunks sealed without being packed first
MANIFEST = "manifest.json"
MANIFEST_MAC = "manifest.mac"
ITEMS = "items"
CHUNK = 4 * 1024 * 1024
TAG = 16
TMP_DIR = ".backup-tmp"
HUB_DB = "govshare.db"
SHARED_DB = "shared.db"
CHECKPOINTS = "audit/checkpoints.jsonl"
# Scratch the hub makes again by itself, and what another process owns.
SKIP_DIRS = frozenset({TMP_DIR, "metrics", "compare", "demo-exchange", "limits"})
SKIP_SUFFIXES = ("-wal", "-shm", "-journal", ".lock")

CipherName = Literal["sm4", "aes"]
Progress = Callable[[int, str], None]
"""Told of each chunk done: the bytes it held and what is being backed up or restored."""


class BackupError(Exception):
    """A backup cannot be made, checked or restored; ``str`` is for the operator (Chinese)."""


def _noop(_n: int, _label: str) -> None:
    return None


# -- the key ----------------------------------------------------------------------------


def parse_key(text: str, *, source: str) -> bytes:
    value = text.strip()
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        raw = b""
    if len(raw) != 32:
        raise BackupError(f"备份密钥应为 64 位十六进制数字 (32 字节): {source}")
    return raw


def load_key(settings: Settings) -> bytes:
    """The backup key from ``backup_key`` or ``backup_key_file``; refused when neither
    is set or it is not 32 bytes in hex."""
    if settings.backup_key:
        return parse_key(settings.backup_key, source="GOVSHARE_BACKUP_KEY")
    if settings.backup_key_file:
        path = settings.backup_key_file
        try:
            text = path.read_text(encoding="ascii")
        except (OSError, UnicodeDecodeError) as exc:
            raise BackupError(f"无法读取备份密钥文件 {path}: {exc}") from None
        return parse_key(text, source=str(path))
    raise BackupError(
        "没有备份密钥: 请设置 GOVSHARE_BACKUP_KEY_FILE (或 GOVSHARE_BACKUP_KEY); "
        "可用 govshare backup keygen 文件 生成"
    )


def write_key_file(path: Path) -> None:
    """A new random backup key in ``path`` (mode 0600); refused when the file exists."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise BackupError(f"密钥文件已存在, 不会覆盖: {path}") from None
    except OSError as exc:
        raise BackupError(f"无法创建密钥文件 {path}: {exc}") from None
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(secrets.token_bytes(32).hex() + "\n")


def _derive(key: bytes, salt: bytes, purpose: bytes, length: int) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=salt, info=purpose).derive(key)


_RAW, _ZSTD = b"\x00", b"\x01"
_ZSTD_LEVEL = 1  # about 400 MB/s a core: level 3 packs a little tighter at half the speed


@functools.cache
def _zstd() -> Any:
    import pyarrow

    return pyarrow.Codec("zstd", compression_level=_ZSTD_LEVEL)


def _pack(data: bytes) -> bytes:
    """A chunk as format 2 seals it: a kind byte, then either the chunk as it is or its
    plain length and zstd frame (only when that is smaller)."""
    packed: bytes = _zstd().compress(data, asbytes=True)
    if len(packed) + 5 < len(data):
        return _ZSTD + struct.pack(">I", len(data)) + packed
    return _RAW + data


def _unpack(payload: bytes) -> bytes:
    kind = payload[:1]
    if kind == _RAW:
        return payload[1:]
    if kind == _ZSTD and len(payload) > 5:
        (size,) = struct.unpack(">I", payload[1:5])
        if size <= CHUNK:
            with suppress(OSError):
                plain: bytes = _zstd().decompress(payload[5:], decompressed_size=size, asbytes=True)
                return plain
    raise BackupError("无法解压 (已损坏)")


class _Box:
    """Chunk encryption under one backup's derived key; ``packed`` (format 2) compresses
    each chunk before sealing it (``_pack``)."""

    def __init__(self, cipher: str, key: bytes, salt: bytes, *, packed: bool = True) -> None:
        if cipher not in ("sm4", "aes"):
            raise BackupError(f"不支持的加密算法: {cipher}")
        self.packed = packed
        self.cipher = cipher
        self.key = _derive(
            key, salt, b"govshare-backup/" + cipher.encode(), 16 if cipher == "sm4" else 32
        )
        self.mac_key = _derive(key, salt, b"govshare-backup/manifest", 32)
        self._aes = AESGCM(self.key) if cipher == "aes" else None

    @staticmethod
    def _nonce(item: int, chunk: int) -> bytes:
        return struct.pack(">IQ", item, chunk)

    @staticmethod
    def _aad(item: int, chunk: int, last: bool) -> bytes:
        return struct.pack(">IQ?", item, chunk, last)

    def seal(self, item: int, chunk: int, last: bool, data: bytes) -> bytes:
        if self.packed:
            data = _pack(data)
        nonce, aad = self._nonce(item, chunk), self._aad(item, chunk, last)
        if self._aes is not None:
            return self._aes.encrypt(nonce, data, aad)
        enc = Cipher(algorithms.SM4(self.key), modes.GCM(nonce)).encryptor()
        enc.authenticate_additional_data(aad)
        return enc.update(data) + enc.finalize() + enc.tag

    def open(self, item: int, chunk: int, last: bool, data: bytes) -> bytes:
        nonce, aad = self._nonce(item, chunk), self._aad(item, chunk, last)
        if self._aes is not None:
            plain = self._aes.decrypt(nonce, data, aad)
        else:
            dec = Cipher(algorithms.SM4(self.key), modes.GCM(nonce, data[-TAG:])).decryptor()
            dec.authenticate_additional_data(aad)
            plain = dec.update(data[:-TAG]) + dec.finalize()
        return _unpack(plain) if self.packed else plain

    def mac(self, data: bytes) -> str:
        return hmac.new(self.mac_key, data, hashlib.sha256).hexdigest()


# -- items ------------------------------------------------------------------------------


@dataclass
class Item:
    """One thing in a backup. ``kind``: ``sqlite`` (a database file restored to
    ``path`` in the data dir), ``pgdump`` (``pg_dump`` of the ``role`` database:
    ``database`` or ``shared``) or ``file`` (a data-dir file at ``path``)."""

    kind: str
    path: str
    stored: str
    size: int = 0
    sha256: str = ""
    stored_size: int = 0
    stored_sha256: str = ""
    mode: int = 0o600
    role: str = ""

    def as_json(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v != "" or k in ("sha256",)}


_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


def _pool() -> ThreadPoolExecutor:
    """Threads that encrypt and decrypt chunks: OpenSSL runs without the GIL, so SM4 (about
    100 MB/s a core without SM4 instructions) goes as fast as there are cores."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(
                max_workers=max(1, min(4, os.cpu_count() or 1)), thread_name_prefix="backup-seal"
            )
        return _POOL


def _depth() -> int:
    """Chunks in flight at once (memory: twice this many chunks)."""
    return 2 * max(1, min(4, os.cpu_count() or 1))


def _write_item(
    box: _Box, index: int, source: IO[bytes], target: Path, progress: Progress, label: str
) -> tuple[int, str, int, str]:
    """Encrypt ``source`` into ``target``; (size, sha256, stored size, stored sha256)."""
    plain, stored = hashlib.sha256(), hashlib.sha256()
    size = stored_size = 0
    pending: deque[tuple[Future[bytes], int]] = deque()
    pool, depth = _pool(), _depth()
    with target.open("wb") as out:

        def drain(limit: int) -> None:
            nonlocal stored_size
            while len(pending) > limit:
                future, n = pending.popleft()
                sealed = future.result()
                frame = struct.pack(">I", len(sealed))
                out.write(frame)
                out.write(sealed)
                stored.update(frame)
                stored.update(sealed)
                stored_size += len(frame) + len(sealed)
                progress(n, label)

        data = source.read(CHUNK)
        chunk = 0
        while True:
            following = source.read(CHUNK) if len(data) == CHUNK else b""
            last = not following
            plain.update(data)
            size += len(data)
            pending.append((pool.submit(box.seal, index, chunk, last, data), len(data)))
            drain(depth)
            if last:
                break
            data, chunk = following, chunk + 1
        drain(0)
        out.flush()
        os.fsync(out.fileno())
    return size, plain.hexdigest(), stored_size, stored.hexdigest()


def _opened(future: Future[bytes], name: str, chunk: int) -> bytes:
    try:
        return future.result()
    except InvalidTag:
        raise BackupError(
            f"备份文件 {name} 第 {chunk + 1} 块未通过认证 (被改动、被截断, 或密钥不对)"
        ) from None
    except BackupError as exc:
        raise BackupError(f"备份文件 {name} 第 {chunk + 1} 块{exc}") from None


def _read_item(box: _Box, index: int, path: Path) -> Iterator[bytes]:
    """The plain chunks of a stored item, in order; BackupError when it was altered or
    cut short."""
    try:
        f = path.open("rb")
    except OSError as exc:
        raise BackupError(f"备份文件缺失或不可读: {path.name} ({exc})") from None
    pending: deque[tuple[Future[bytes], int]] = deque()
    pool, depth = _pool(), _depth()
    with f:
        chunk = 0
        while True:
            head = f.read(4)
            if len(head) < 4:
                raise BackupError(f"备份文件不完整 (被截断): {path.name}")
            (length,) = struct.unpack(">I", head)
            if length < TAG or length > CHUNK + 1 + TAG:
                raise BackupError(f"备份文件已损坏: {path.name} 第 {chunk + 1} 块长度不对")
            sealed = f.read(length)
            if len(sealed) < length:
                raise BackupError(f"备份文件不完整 (被截断): {path.name}")
            last = not f.peek(1)
            pending.append((pool.submit(box.open, index, chunk, last, sealed), chunk))
            while len(pending) > (0 if last else depth):
                future, n = pending.popleft()
                yield _opened(future, path.name, n)
            if last:
                return
            chunk += 1


# -- taking a backup ----------------------------------------------------------------------


@dataclass
class BackupResult:
    dest: Path
    items: int
    bytes: int
    audit_seq: int | None
    created_at: datetime


def _sqlite_path(url: str) -> Path:
    return Path(url.removeprefix("sqlite:///"))


def libpq_url(url: str) -> str:
    """A SQLAlchemy PostgreSQL URL as libpq (pg_dump, pg_restore) takes it."""
    scheme, _, rest = url.partition("://")
    return "postgresql://" + rest if scheme.startswith("postgresql") else url


@contextmanager
def _pinned(path: Path) -> Iterator[sqlite3.Connection]:
    """A connection to a SQLite database inside a read transaction (its snapshot)."""
    # Copied by ``_take``'s copier thread once the snapshot is open: one thread at a time.
    conn = sqlite3.connect(
        f"file:{path}?mode=ro", uri=True, isolation_level=None, check_same_thread=False
    )
    try:
        conn.execute("PRAGMA busy_timeout=10000")
        conn.execute("BEGIN")
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        yield conn
    finally:
        conn.close()


def _copy_snapshot(conn: sqlite3.Connection, copy: Path) -> Path:
    """The snapshot ``conn`` reads, copied whole to ``copy`` (SQLite's backup API)."""
    copy.unlink(missing_ok=True)
    target = sqlite3.connect(copy)
    try:
        conn.backup(target)
    finally:
        target.close()
    return copy


def _walk_files(data_dir: Path, skip: set[Path]) -> Iterator[Path]:
    for root, dirs, files in os.walk(data_dir):
        here = Path(root)
        rel = here.relative_to(data_dir)
        if rel == Path("."):
            dirs[:] = [d for d in dirs if d not in SKIP_DIRS]
        dirs[:] = sorted(d for d in dirs if (here / d).resolve() not in skip)
        for name in sorted(files):
            path = here / name
            if name.endswith(SKIP_SUFFIXES) or name.startswith(".upload-"):
                continue
            if path.resolve() in skip or path.is_symlink():
                continue
            yield path


def planned_bytes(settings: Settings) -> int:
    """About how many bytes a backup reads (for a progress bar)."""
    total = 0
    for root, _dirs, files in os.walk(settings.data_dir):
        for name in files:
            try:
                total += (Path(root) / name).stat().st_size
            except OSError:
                continue
    return total


def create_backup(
    settings: Settings,
    dest: Path,
    *,
    key: bytes,
    now: datetime | None = None,
    progress: Progress = _noop,
) -> BackupResult:
    """Take a backup of the hub of ``settings`` into ``dest`` (new or empty) while the
    hub serves. ``manifest.json`` is written last: a directory without it is no backup."""
    data_dir = settings.data_dir.resolve()
    dest = dest.resolve()
    if dest == data_dir or data_dir in dest.parents:
        raise BackupError(f"备份目录不能在数据目录之内: {dest}")
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise BackupError(f"备份目录已存在且不是空目录: {dest}")
    if settings.is_sqlite and not (data_dir / HUB_DB).is_file():
        raise BackupError(f"数据目录中没有平台数据库: {data_dir / HUB_DB}")
    existed = dest.exists()
    try:
        return _take(settings, data_dir, dest, key=key, now=now, progress=progress)
    except (sqlite3.Error, OSError) as exc:
        _remove(dest, existed)
        raise BackupError(f"无法读取或写入: {exc}") from exc
    except BaseException:
        _remove(dest, existed)
        raise


def _remove(dest: Path, existed: bool) -> None:
    """Nothing half-made is left to be mistaken for a backup (or to fill the disk)."""
    if existed:
        for child in list(dest.iterdir()):
            if child.is_dir():
                shutil.rmtree(child, ignore_errors=True)
            else:
                child.unlink(missing_ok=True)
    else:
        shutil.rmtree(dest, ignore_errors=True)


def _take(
    settings: Settings,
    data_dir: Path,
    dest: Path,
    *,
    key: bytes,
    now: datetime | None,
    progress: Progress,
) -> BackupResult:
    created = now or datetime.now(UTC)
    salt = secrets.token_bytes(16)
    box = _Box(settings.backup_cipher, key, salt, packed=FORMAT != PLAIN_FORMAT)
    (dest / ITEMS).mkdir(parents=True, exist_ok=True)
    items: list[Item] = []
    skip: set[Path] = set()

    def add(kind: str, path: str, source: IO[bytes], *, mode: int = 0o600, role: str = "") -> None:
        index = len(items) + 1
        item = Item(kind=kind, path=path, stored=f"{ITEMS}/{index:06d}", mode=mode, role=role)
        item.size, item.sha256, item.stored_size, item.stored_sha256 = _write_item(
            box, index, source, dest / item.stored, progress, path
        )
        items.append(item)

    # 1. The checkpoints, before the snapshot: whole lines only.
    checkpoints = data_dir / CHECKPOINTS
    skip.add(checkpoints.resolve())
    if checkpoints.is_file():
        import io

        with checkpoints.open("rb") as f:
            text = f.read()
        text = text[: text.rfind(b"\n") + 1]
        add("file", CHECKPOINTS, io.BytesIO(text))

    # 2. The databases, at one moment.
    audit_seq: int | None = None
    tmp = data_dir / TMP_DIR
    with ExitStack() as stack:
        sqlite_dbs: list[tuple[str, Path, sqlite3.Connection]] = []
        for role, url in _databases(settings):
            if url.startswith("sqlite"):
                path = _sqlite_path(url).resolve()
                skip.add(path)
                sqlite_dbs.append((role, path, stack.enter_context(_pinned(path))))
        for role, _path, conn in sqlite_dbs:
            if role == "database":
                row = conn.execute("SELECT seq FROM audit_head WHERE id = 1").fetchone()
                audit_seq = int(row[0]) if row else 0
        for role, url in _databases(settings):
            if not url.startswith("sqlite"):
                add_pgdump = _pg_dump(url)
                with add_pgdump as stdout:
                    add("pgdump", f"{role}.pgdump", stdout, role=role)
        tmp.mkdir(mode=0o700, exist_ok=True)
        # One thread copies the snapshots in turn while this one packs and seals the copy
        # before: SQLite's backup runs without the GIL, and the two overlap. (The scratch
        # space is then that of two databases at most, not one.)
        copier = stack.enter_context(ThreadPoolExecutor(1, thread_name_prefix="backup-copy"))
        copies = [
            (role, path, copier.submit(_copy_snapshot, conn, tmp / f"{os.getpid()}-{path.name}"))
            for role, path, conn in sqlite_dbs
        ]
        try:
            for role, path, copied in copies:
                copy = copied.result()
                progress(0, path.name)
                try:
                    with copy.open("rb") as f:
                        name = path.name if path.parent == data_dir else f"{role}.db"
                        add("sqlite", name, f, role=role)
                finally:
                    copy.unlink(missing_ok=True)
        finally:
            for _role, _path, copied in copies:
                if not copied.cancel():
                    wait([copied])  # still copying: its scratch goes when it is done
            shutil.rmtree(tmp, ignore_errors=True)
    if audit_seq is None:
        audit_seq = _pg_audit_seq(settings)

    # 3. Every other file the hub owns.
    skip.add(dest)
    for path in _walk_files(data_dir, skip):
        rel = path.relative_to(data_dir).as_posix()
        try:
            f = path.open("rb")
        except FileNotFoundError:
            continue  # gone meanwhile (a temporary file)
        with f:
            add("file", rel, f, mode=path.stat().st_mode & 0o777)

    manifest = {
        "format": FORMAT,
        "created_at": created.isoformat(),
        "cipher": settings.backup_cipher,
        "salt": salt.hex(),
        "database": "sqlite" if settings.is_sqlite else "postgresql",
        "audit_seq": audit_seq,
        "items": [i.as_json() for i in items],
    }
    body = json.dumps(manifest, ensure_ascii=False, indent=1).encode()
    (dest / MANIFEST_MAC).write_text(box.mac(body) + "\n", encoding="ascii")
    part = dest / f".{MANIFEST}.part"
    with part.open("wb") as out:
        out.write(body)
        out.flush()
        os.fsync(out.fileno())
    os.replace(part, dest / MANIFEST)
    return BackupResult(
        dest=dest,
        items=len(items),
        bytes=sum(i.size for i in items),
        audit_seq=audit_seq,
        created_at=created,
    )


def _databases(settings: Settings) -> list[tuple[str, str]]:
    """The databases a hub owns: its own, and the shared stores' when separate."""
    found = [("database", settings.resolved_database_url)]
    if settings.resolved_shared_store_url != settings.resolved_database_url:
        found.append(("shared", settings.resolved_shared_store_url))
    return found


@contextmanager
def _pg_dump(url: str) -> Iterator[IO[bytes]]:
    with tempfile.TemporaryFile() as errors:
        try:
            proc = subprocess.Popen(  # noqa: S603 - the configured database URL, no shell
                [  # noqa: S607 - the PostgreSQL client on PATH, as the operator installed it
                    "pg_dump",
                    "--format=custom",
                    "--no-owner",
                    "--no-privileges",
                    "--dbname",
                    libpq_url(url),
                ],
                stdout=subprocess.PIPE,
                stderr=errors,
            )
        except FileNotFoundError:
            raise BackupError("找不到 pg_dump: 请安装与数据库同版本的 PostgreSQL 客户端") from None
        assert proc.stdout is not None
        try:
            yield proc.stdout
        finally:
            proc.stdout.close()
            code = proc.wait()
        if code != 0:
            errors.seek(0)
            raise BackupError(f"pg_dump 失败: {errors.read().decode(errors='replace').strip()}")


def _pg_audit_seq(settings: Settings) -> int | None:
    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool

    engine = create_engine(settings.resolved_database_url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            return conn.execute(text("SELECT seq FROM audit_head WHERE id = 1")).scalar()
    finally:
        engine.dispose()


# -- checking and restoring ---------------------------------------------------------------


@dataclass
class Manifest:
    path: Path
    created_at: datetime
    cipher: str
    database: str
    audit_seq: int | None
    items: list[Item]
    box: _Box


def read_manifest(dest: Path, key: bytes) -> Manifest:
    """The backup's manifest, its MAC checked with ``key``."""
    try:
        body = (dest / MANIFEST).read_bytes()
    except FileNotFoundError:
        raise BackupError(f"不是完整的备份 (没有 {MANIFEST}): {dest}") from None
    except OSError as exc:
        raise BackupError(f"无法读取备份清单 {dest / MANIFEST}: {exc}") from None
    try:
        doc = json.loads(body)
        if doc.get("format") not in (FORMAT, PLAIN_FORMAT):
            raise BackupError(f"不认识的备份格式: {doc.get('format')!r}")
        box = _Box(
            str(doc["cipher"]),
            key,
            bytes.fromhex(doc["salt"]),
            packed=doc["format"] != PLAIN_FORMAT,
        )
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise BackupError(f"备份清单已损坏: {exc}") from None
    try:
        mac = (dest / MANIFEST_MAC).read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        raise BackupError(f"备份清单缺少认证码 ({MANIFEST_MAC})") from None
    if not hmac.compare_digest(mac, box.mac(body)):
        raise BackupError("备份清单未通过认证: 备份密钥不对, 或清单被改动")
    try:
        items = [Item(**raw) for raw in doc["items"]]
        created = datetime.fromisoformat(doc["created_at"])
    except (KeyError, TypeError, ValueError) as exc:
        raise BackupError(f"备份清单已损坏: {exc}") from None
    for item in items:
        _check_relative(item.path)
        _check_relative(item.stored)
    return Manifest(
        path=dest,
        created_at=created,
        cipher=str(doc["cipher"]),
        database=str(doc.get("database", "sqlite")),
        audit_seq=doc.get("audit_seq"),
        items=items,
        box=box,
    )


def _check_relative(path: str) -> None:
    p = Path(path)
    if p.is_absolute() or ".." in p.parts or not p.parts:
        raise BackupError(f"备份清单中的路径不安全: {path!r}")


@dataclass
class VerifyReport:
    manifest: Manifest
    problems: list[str] = field(default_factory=list)

    @property
    def intact(self) -> bool:
        return not self.problems


def _stream_item(
    manifest: Manifest, index: int, item: Item, out: IO[bytes] | None, progress: Progress
) -> str | None:
    """Decrypt item ``index`` (1-based), write it to ``out``; the problem, if any."""
    stored = manifest.path / item.stored
    try:
        if stored.stat().st_size != item.stored_size:
            return f"{item.path}: 备份文件大小不符 (应为 {item.stored_size} 字节)"
    except OSError:
        return f"{item.path}: 备份文件缺失 ({item.stored})"
    plain = hashlib.sha256()
    size = 0
    try:
        for data in _read_item(manifest.box, index, stored):
            plain.update(data)
            size += len(data)
            if out is not None:
                out.write(data)
            progress(len(data), item.path)
    except BackupError as exc:
        return f"{item.path}: {exc}"
    if size != item.size or plain.hexdigest() != item.sha256:
        return f"{item.path}: 内容与清单中的摘要不符"
    return None


def verify_backup(dest: Path, *, key: bytes, progress: Progress = _noop) -> VerifyReport:
    """Check every item of a backup: present, authenticated chunk by chunk, and equal to
    the manifest's SHA-256. The manifest itself must pass its MAC."""
    manifest = read_manifest(dest, key)
    report = VerifyReport(manifest)
    for index, item in enumerate(manifest.items, start=1):
        if problem := _stream_item(manifest, index, item, None, progress):
            report.problems.append(problem)
    return report


def _is_empty(path: Path) -> bool:
    return not path.exists() or (path.is_dir() and not any(path.iterdir()))


def restore_backup(
    dest: Path,
    data_dir: Path,
    *,
    key: bytes,
    database_url: str | None = None,
    shared_store_url: str | None = None,
    progress: Progress = _noop,
) -> Manifest:
    """Restore a backup into ``data_dir``, which must be empty or not exist; a
    PostgreSQL backup also needs the (empty) target databases' URLs. Every item is
    checked against the manifest as it is written; on any problem what was written is
    removed again and BackupError says why."""
    if not _is_empty(data_dir):
        raise BackupError(f"目标数据目录不是空目录: {data_dir} (恢复只写入空目录, 不覆盖现有数据)")
    manifest = read_manifest(dest, key)
    targets = {"database": database_url, "shared": shared_store_url or database_url}
    for item in manifest.items:
        if item.kind == "pgdump" and not targets.get(item.role):
            raise BackupError(
                "这是 PostgreSQL 平台的备份: 恢复时请用 --database-url 指定一个空的目标数据库"
            )
    existed = data_dir.exists()
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        for index, item in enumerate(manifest.items, start=1):
            if item.kind == "pgdump":
                _pg_restore(manifest, index, item, str(targets[item.role]), progress)
                continue
            target = data_dir / item.path
            target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            part = target.with_name(f".{target.name}.restoring")
            with part.open("wb") as out:
                problem = _stream_item(manifest, index, item, out, progress)
                out.flush()
                os.fsync(out.fileno())
            if problem:
                raise BackupError(problem)
            os.chmod(part, item.mode & 0o777)
            os.replace(part, target)
        audit = data_dir / "audit"
        if audit.is_dir():
            os.chmod(audit, 0o700)
    except BaseException:
        for child in list(data_dir.iterdir()):
            if child.is_dir():
                shutil.rmtree(child, ignore_errors=True)
            else:
                child.unlink(missing_ok=True)
        if not existed:
            data_dir.rmdir()
        raise
    return manifest


def _pg_restore(manifest: Manifest, index: int, item: Item, url: str, progress: Progress) -> None:
    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool

    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            tables = conn.execute(
                text("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
            ).scalar()
    finally:
        engine.dispose()
    if tables:
        raise BackupError(f"目标数据库不是空的 ({tables} 张表): 恢复只写入空数据库")
    with tempfile.TemporaryFile() as errors:
        try:
            proc = subprocess.Popen(  # noqa: S603 - the operator's target URL, no shell
                [  # noqa: S607 - the PostgreSQL client on PATH, as the operator installed it
                    "pg_restore",
                    "--no-owner",
                    "--no-privileges",
                    "--exit-on-error",
                    "--dbname",
                    libpq_url(url),
                ],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=errors,
            )
        except FileNotFoundError:
            raise BackupError(
                "找不到 pg_restore: 请安装与数据库同版本的 PostgreSQL 客户端"
            ) from None
        assert proc.stdin is not None
        try:
            problem = _stream_item(manifest, index, item, proc.stdin, progress)
        except BrokenPipeError:
            problem = None  # pg_restore stopped early: its exit code and message say why
        finally:
            with suppress(BrokenPipeError):
                proc.stdin.close()
        code = proc.wait()
        errors.seek(0)
        message = errors.read().decode(errors="replace").strip()
    if problem:
        raise BackupError(problem)
    if code != 0:
        raise BackupError(f"pg_restore 失败: {message}")


# -- scheduled backups: names and retention -------------------------------------------------


def backup_name(at: datetime) -> str:
    """The directory name of a scheduled backup taken at ``at`` (UTC, sortable)."""
    return at.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def keep(created: dict[str, datetime], *, daily: int, monthly: int, tz: Any = UTC) -> set[str]:
    """Which backups retention keeps: the newest of each of the ``daily`` most recent
    days that have one, and of each of the ``monthly`` most recent months (days and
    months in ``tz``); the newest backup always."""
    newest_first = sorted(created, key=lambda n: created[n], reverse=True)
    kept: set[str] = set(newest_first[:1])
    for count, period in ((daily, "%Y-%m-%d"), (monthly, "%Y-%m")):
        seen: list[str] = []
        for name in newest_first:
            stamp = created[name].astimezone(tz).strftime(period)
            if stamp in seen:
                continue
            if len(seen) >= count:
                break
            seen.append(stamp)
            kept.add(name)
    return kept


def list_backups(root: Path) -> dict[str, datetime]:
    """The complete backups under ``root`` (sub-directories with a manifest) and when
    each was made, read from the manifest (unauthenticated: for retention only)."""
    found: dict[str, datetime] = {}
    if not root.is_dir():
        return found
    for child in root.iterdir():
        manifest = child / MANIFEST
        if not child.is_dir() or not manifest.is_file():
            continue
        try:
            found[child.name] = datetime.fromisoformat(
                json.loads(manifest.read_bytes())["created_at"]
            )
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return found


def prune(root: Path, *, daily: int, monthly: int, tz: Any = UTC) -> list[str]:
    """Delete the complete backups under ``root`` that retention does not keep; the
    names deleted. Directories without a manifest (a backup under way) stay."""
    found = list_backups(root)
    kept = keep(found, daily=daily, monthly=monthly, tz=tz)
    gone = sorted(set(found) - kept)
    for name in gone:
        shutil.rmtree(root / name, ignore_errors=True)
    return gone
