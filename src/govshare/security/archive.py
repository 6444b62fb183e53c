"""审计归档: closed ranges of the audit chain in signed archive files, so five years of
audit are kept without the hub database growing forever.

An archive is two files in ``DATA_DIR/audit/archive/`` (beside the audit key):

- ``audit-FIRST-LAST.jsonl.gz``: the range's entries, one JSON object a line, exactly
  the columns that were hashed (the time as the text that was hashed), gzip-compressed;
- ``audit-FIRST-LAST.manifest.json``: the range (first/last seq, entry count), the hash
  the range chains on and its first and last hashes, the signed checkpoints that fall
  in it (each line as the hub signed it), the SM3 digest and size of the data file, the
  SM3 digest of the previous archive's manifest, and an SM2 signature over all of it
  with the hub's audit signing key (``security.anchor``).

``archive_due`` writes the range from the last archive up to the newest signed
checkpoint older than the retention cut, streaming (a batch of rows at a time), checks
every entry's hash and link while writing, verifies the written files, and only then
deletes the range's rows, registers the archive (``AuditArchive``) and records
``audit.archive`` — in one transaction. ``verify_archives`` walks the registered
archives in order; ``audit.verify_chain`` continues from the last one into the live
table, so the chain links across every archive boundary.
"""

from __future__ import annotations

import fcntl
import gzip
import os
import zlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any, cast

import orjson
from cryptography.hazmat.primitives import hashes
from sqlalchemy import CursorResult, Table, delete, func, select
from sqlalchemy.orm import Session

from govshare.security import audit
from govshare.security.anchor import (
    SIGNATURE_ALG,
    AuditKey,
    Checkpoint,
    checkpoint_lines,
    checkpoint_valid,
)
from govshare.security.audit import GENESIS, ChainProblem, Progress
from govshare.security.crypto import sign
from govshare.security.models import AuditArchive, AuditEntry

ARCHIVE_DIR = "archive"
FORMAT = "govshare-audit-archive"
VERSION = 1
DIGEST = "sm3"
BATCH = 10_000
_ENTRIES: Table = AuditEntry.__table__  # type: ignore[assignment]
_COLUMNS = [c.name for c in _ENTRIES.columns]


class ArchiveError(Exception):
    """Archiving stopped before anything was pruned; the message says why (Chinese)."""


def archive_dir(key: AuditKey) -> Path:
    return key.directory / ARCHIVE_DIR


def archive_name(first_seq: int, last_seq: int) -> str:
    return f"audit-{first_seq:012d}-{last_seq:012d}"


def data_file(name: str) -> str:
    return f"{name}.jsonl.gz"


def manifest_file(name: str) -> str:
    return f"{name}.manifest.json"


class _Digest:
    """SM3 of a byte stream, fed as it is written or read."""

    def __init__(self) -> None:
        self._h = hashes.Hash(hashes.SM3())
        self.size = 0

    def update(self, data: bytes) -> None:
        self._h.update(data)
        self.size += len(data)

    def hexdigest(self) -> str:
        return self._h.finalize().hex()


class _DigestWriter:
    """A binary file that digests what passes through it (under ``gzip.GzipFile``)."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw
        self.digest = _Digest()

    def write(self, data: bytes) -> int:
        self.digest.update(bytes(data))
        return self.raw.write(data)

    def flush(self) -> None:
        self.raw.flush()


def file_digest(path: Path) -> tuple[str, int]:
    """SM3 (hex) and size of a file, read in chunks."""
    d = _Digest()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            d.update(chunk)
    return d.hexdigest(), d.size


def bytes_digest(data: bytes) -> str:
    d = _Digest()
    d.update(data)
    return d.hexdigest()


def _signed_part(doc: Mapping[str, Any]) -> bytes:
    return orjson.dumps(
        {k: v for k, v in doc.items() if k != "signature"}, option=orjson.OPT_SORT_KEYS
    )


def _line(row: Mapping[Any, Any]) -> bytes:
    entry = {c: row[c] for c in _COLUMNS}
    entry["at"] = row["at"].isoformat()
    return orjson.dumps(entry) + b"\n"


# -- planning -----------------------------------------------------------------------------


def retention_cut(now: datetime, years: int) -> datetime:
    """``now`` less ``years`` calendar years (29 February falls back to the 28th)."""
    try:
        return now.replace(year=now.year - years)
    except ValueError:
        return now.replace(year=now.year - years, day=28)


def registered(session: Session) -> list[AuditArchive]:
    """The registered archives, oldest range first."""
    return list(session.scalars(select(AuditArchive).order_by(AuditArchive.first_seq)))


@dataclass(frozen=True, slots=True)
class Plan:
    """The range the next archive takes, ending at a signed checkpoint."""

    first_seq: int
    last_seq: int
    prev_hash: str
    prev_manifest: str | None
    checkpoint: Checkpoint
    cut: datetime


def plan_archive(session: Session, key: AuditKey, *, now: datetime, years: int) -> Plan | str:
    """The next range to archive, or why there is none (Chinese): entries older than the
    retention cut, up to the newest valid checkpoint among them — never an entry newer
    than the cut, never one that no signed checkpoint anchors."""
    cut = retention_cut(now, years)
    archives = registered(session)
    first = archives[-1].last_seq + 1 if archives else 1
    prev_hash = archives[-1].last_hash if archives else GENESIS
    prev_manifest = archives[-1].manifest_digest if archives else None
    newer = session.scalar(select(func.min(_ENTRIES.c.seq)).where(_ENTRIES.c.at >= cut))
    top = session.scalar(select(func.max(_ENTRIES.c.seq)))
    if top is None or top < first:
        return "没有可归档的记录（在线审计日志为空或已全部归档）"
    cut_seq = top if newer is None else newer - 1
    if cut_seq < first:
        return f"没有早于保存期限（{cut.date().isoformat()} 之前）的在线记录"
    anchored = [cp for cp in checkpoint_lines(key) if cp.valid and first <= cp.seq <= cut_seq]
    if not anchored:
        return (
            f"第 {first} 至 {cut_seq} 条早于保存期限，但其中没有已签名的检查点；"
            "先签署检查点（govshare audit checkpoint），再归档"
        )
    end = max(anchored, key=lambda cp: cp.seq)
    return Plan(first, end.seq, prev_hash, prev_manifest, end, cut)


# -- writing ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ArchiveResult:
    name: str
    first_seq: int
    last_seq: int
    entries: int
    data_bytes: int
    directory: Path


def _live_rows(session: Session, first: int, last: int) -> Iterator[Mapping[Any, Any]]:
    after = first - 1
    while after < last:
        rows = audit.decoded(
            session.execute(
                audit.select_rows()
                .where(_ENTRIES.c.seq > after, _ENTRIES.c.seq <= last)
                .order_by(_ENTRIES.c.seq)
                .limit(BATCH)
            )
            .mappings()
            .all()
        )
        if not rows:
            return
        yield from rows
        after = rows[-1]["seq"]


def write_archive(
    session: Session, key: AuditKey, plan: Plan, *, now: datetime, progress: Progress | None = None
) -> dict[str, Any]:
    """Write the plan's range to its two files (whole, or not at all) and return the
    manifest. Every entry's hash and link is checked as it is written."""
    directory = archive_dir(key)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    name = archive_name(plan.first_seq, plan.last_seq)
    data_path, manifest_path = directory / data_file(name), directory / manifest_file(name)
    tmp = directory / f".{data_file(name)}.{os.getpid()}.tmp"
    expected, prev_hash = plan.first_seq, plan.prev_hash
    first_hash = last_hash = ""
    first_at = last_at = ""
    count = done = 0
    try:
        with tmp.open("wb") as raw:
            sink = _DigestWriter(raw)
            gz = gzip.GzipFile(filename="", mode="wb", fileobj=sink, mtime=0, compresslevel=6)  # type: ignore[arg-type]
            with gz:
                lines: list[bytes] = []
                for row in _live_rows(session, plan.first_seq, plan.last_seq):
                    seq = row["seq"]
                    if seq != expected:
                        raise ArchiveError(f"第 {expected} 至 {seq - 1} 条记录缺失，未归档")
                    if row["prev_hash"] != prev_hash:
                        raise ArchiveError(f"第 {seq} 条与前一条记录的哈希不衔接，未归档")
                    if problem := audit.row_problem(row, key):
                        raise ArchiveError(f"第 {seq} 条{audit.problem_text(problem)}，未归档")
                    line = _line(row)
                    lines.append(line)
                    if len(lines) == 1000:  # one compressor call per thousand entries
                        gz.write(b"".join(lines))
                        lines.clear()
                    if not first_hash:
                        first_hash, first_at = row["hash"], row["at"].isoformat()
                    last_hash = row["hash"]
                    prev_hash, expected = row["hash"], seq + 1
                    count += 1
                    done += 1
                    if progress is not None and done == BATCH:
                        progress(done)
                        done = 0
                gz.write(b"".join(lines))
                last_at = orjson.loads(line)["at"] if count else ""
            raw.flush()
            os.fsync(raw.fileno())
        if progress is not None and done:
            progress(done)
        if expected != plan.last_seq + 1:
            raise ArchiveError(f"第 {expected} 至 {plan.last_seq} 条记录缺失，未归档")
        if last_hash != plan.checkpoint.hash:
            raise ArchiveError(
                f"第 {plan.last_seq} 条与 {plan.checkpoint.at} 签署的检查点不符"
                "（整链被重写），未归档"
            )
        doc: dict[str, Any] = {
            "format": FORMAT,
            "version": VERSION,
            "name": name,
            "first_seq": plan.first_seq,
            "last_seq": plan.last_seq,
            "entries": count,
            "prev_hash": plan.prev_hash,
            "first_hash": first_hash,
            "last_hash": last_hash,
            "first_at": first_at,
            "last_at": last_at,
            "checkpoints": [
                cp.signed
                for cp in checkpoint_lines(key)
                if cp.valid and plan.first_seq <= cp.seq <= plan.last_seq
            ],
            "data_file": data_file(name),
            "data_bytes": sink.digest.size,
            "data_digest": {"alg": DIGEST, "value": sink.digest.hexdigest()},
            "previous_manifest": plan.prev_manifest,
            "retention_cut": plan.cut.isoformat(),
            "created_at": now.isoformat(),
        }
        doc["signature"] = {
            "alg": SIGNATURE_ALG,
            "public": key.public,
            "value": sign(SIGNATURE_ALG, key.private, _signed_part(doc)).hex(),
        }
        os.replace(tmp, data_path)
        _write_whole(manifest_path, orjson.dumps(doc, option=orjson.OPT_INDENT_2))
    finally:
        tmp.unlink(missing_ok=True)
    return doc


def _write_whole(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def archive_due(
    session: Session,
    key: AuditKey,
    *,
    now: datetime,
    years: int,
    actor: audit.Actor = audit.SYSTEM,
    progress: Progress | None = None,
) -> ArchiveResult | str:
    """Archive the range that is due (``plan_archive``), verify the archive, then prune
    its rows, register it and record ``audit.archive`` in one transaction. The result,
    or why nothing was archived (Chinese). Raises ``ArchiveError`` when the range or the
    written archive does not verify: nothing is pruned then."""
    with _Exclusive(archive_dir(key)):
        plan = plan_archive(session, key, now=now, years=years)
        if isinstance(plan, str):
            session.rollback()
            return plan
        doc = write_archive(session, key, plan, now=now, progress=progress)
        name = doc["name"]
        manifest_bytes = (archive_dir(key) / manifest_file(name)).read_bytes()
        problems = list(
            _verify_archive(
                key,
                name,
                expected_seq=plan.first_seq,
                prev_hash=plan.prev_hash,
                prev_manifest=plan.prev_manifest,
                anchored={},
                manifest_digest=bytes_digest(manifest_bytes),
                counter=[0],
            )
        )
        if problems:
            _remove(key, name)
            raise ArchiveError(
                "写出的归档未通过校验，未清理: " + "；".join(p.problem for p in problems)
            )
        try:
            deleted = session.execute(
                delete(_ENTRIES)
                .where(_ENTRIES.c.seq >= plan.first_seq, _ENTRIES.c.seq <= plan.last_seq)
                .execution_options(synchronize_session=False)
            )
            pruned = cast(CursorResult[Any], deleted).rowcount
            if pruned != doc["entries"]:
                raise ArchiveError(
                    f"清理时在线记录为 {pruned} 条，与归档的 {doc['entries']} 条不符，已撤销"
                )
            following = session.scalar(
                select(_ENTRIES.c.prev_hash).where(_ENTRIES.c.seq == plan.last_seq + 1)
            )
            if following is not None and following != doc["last_hash"]:
                raise ArchiveError(f"第 {plan.last_seq + 1} 条与归档的最后一条不衔接，已撤销")
            session.add(
                AuditArchive(
                    name=name,
                    first_seq=plan.first_seq,
                    last_seq=plan.last_seq,
                    entries=doc["entries"],
                    prev_hash=plan.prev_hash,
                    last_hash=doc["last_hash"],
                    first_at=datetime.fromisoformat(doc["first_at"]),
                    last_at=datetime.fromisoformat(doc["last_at"]),
                    manifest_digest=bytes_digest(manifest_bytes),
                    created_at=now,
                )
            )
            audit.record(
                session,
                actor,
                "audit.archive",
                object_type="audit_archive",
                object_id=name,
                after={
                    "first_seq": plan.first_seq,
                    "last_seq": plan.last_seq,
                    "entries": doc["entries"],
                    "last_hash": doc["last_hash"],
                    "manifest_digest": bytes_digest(manifest_bytes),
                    "retention_cut": plan.cut.isoformat(),
                },
                at=now,
            )
            session.commit()
        except BaseException:
            session.rollback()
            _remove(key, name)
            raise
        return ArchiveResult(
            name, plan.first_seq, plan.last_seq, doc["entries"], doc["data_bytes"], archive_dir(key)
        )


def _remove(key: AuditKey, name: str) -> None:
    for file in (data_file(name), manifest_file(name)):
        (archive_dir(key) / file).unlink(missing_ok=True)


class _Exclusive:
    """One archiver at a time per data dir (several hub processes may schedule it)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.fd = -1

    def __enter__(self) -> None:
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.fd = os.open(self.directory / ".lock", os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self.fd)
            raise ArchiveError("另一个进程正在归档审计日志，稍后再试") from None

    def __exit__(self, *_exc: object) -> None:
        os.close(self.fd)


# -- verifying ----------------------------------------------------------------------------


@dataclass(slots=True)
class ArchivesWalk:
    """What the walk of the archives found, and where the live table must go on."""

    entries: int = 0
    archives: int = 0
    next_seq: int = 1
    prev_hash: str = GENESIS
    problems: list[ChainProblem] = field(default_factory=list)


def read_manifest(path: Path) -> tuple[dict[str, Any], bytes]:
    raw = path.read_bytes()
    doc = orjson.loads(raw)
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ValueError("not an audit archive manifest")
    return doc, raw


def archived_rows(key: AuditKey, name: str) -> Iterator[dict[str, Any]]:
    """The entries of one archive, streamed from its data file."""
    with gzip.open(archive_dir(key) / data_file(name), "rb") as f:
        for line in f:
            yield orjson.loads(line)


def _verify_archive(
    key: AuditKey,
    name: str,
    *,
    expected_seq: int,
    prev_hash: str,
    prev_manifest: str | None,
    anchored: Mapping[int, list[Checkpoint]],
    manifest_digest: str | None,
    counter: list[int],
    progress: Progress | None = None,
) -> Iterator[ChainProblem]:
    """Every problem of one archive, in Chinese, each naming the archive."""
    directory = archive_dir(key)
    label = f"归档 {name}"
    manifest_path = directory / manifest_file(name)
    try:
        doc, raw = read_manifest(manifest_path)
    except FileNotFoundError:
        yield ChainProblem(
            expected_seq, f"{label}: 清单文件 {manifest_path.name} 缺失（文件被删除）"
        )
        return
    except (OSError, ValueError) as exc:
        yield ChainProblem(expected_seq, f"{label}: 清单文件无法读取或解析（{exc}）")
        return
    if manifest_digest is not None and bytes_digest(raw) != manifest_digest:
        yield ChainProblem(expected_seq, f"{label}: 清单与登记的摘要不符（清单被替换或改动）")
    signature = doc.get("signature") or {}
    try:
        # By a key that may vouch for the archive's last entry (a later rotation keeps
        # it verifying; a key retired before that entry may not sign it).
        sig_ok = signature.get("alg") == SIGNATURE_ALG and key.accepts(
            int(doc["last_seq"]), _signed_part(doc), bytes.fromhex(signature.get("value", ""))
        )
    except (KeyError, ValueError, TypeError, AttributeError):
        sig_ok = False
    if not sig_ok:
        yield ChainProblem(expected_seq, f"{label}: 清单签名无效（清单被改动或伪造）")
    try:
        first, last = int(doc["first_seq"]), int(doc["last_seq"])
        entries, data_name = int(doc["entries"]), str(doc["data_file"])
        digest_value = str(doc["data_digest"]["value"])
    except (KeyError, TypeError, ValueError):
        yield ChainProblem(expected_seq, f"{label}: 清单缺少必需的字段（清单损坏）")
        return
    if (first, last) != _range_of(name):
        yield ChainProblem(
            expected_seq,
            f"{label}: 清单所载范围为第 {first} 至 {last} 条，与文件名不符（归档文件被调换）",
        )
    if first != expected_seq:
        what = "缺失（有归档被删除）" if first > expected_seq else "重复（归档重叠）"
        yield ChainProblem(
            expected_seq,
            f"{label}: 从第 {first} 条开始，而应从第 {expected_seq} 条开始；其间记录{what}",
        )
    if doc.get("prev_hash") != prev_hash:
        yield ChainProblem(
            first, f"{label}: 与前一归档的最后一条记录不衔接（归档顺序被调换或有归档被删除）"
        )
    if doc.get("previous_manifest") != prev_manifest:
        yield ChainProblem(first, f"{label}: 所记前一归档的清单摘要不符（归档被调换、替换或删除）")
    data_path = directory / data_name
    if data_name != data_file(name):
        yield ChainProblem(first, f"{label}: 清单指向别的数据文件 {data_name}（归档被调换）")
    try:
        actual, _size = file_digest(data_path)
    except FileNotFoundError:
        yield ChainProblem(first, f"{label}: 数据文件 {data_name} 缺失（文件被删除）")
        return
    if actual != digest_value:
        yield ChainProblem(
            first, f"{label}: 数据文件的 SM3 摘要与清单不符（文件被改动或与别的归档调换）"
        )
    try:
        signed = {int(c["seq"]): c for c in doc.get("checkpoints") or [] if isinstance(c, dict)}
    except (KeyError, TypeError, ValueError):
        yield ChainProblem(first, f"{label}: 清单所载的检查点无法解析（清单损坏）")
        signed = {}
    expected, chained = first, doc.get("prev_hash")
    first_hash = last_hash = None
    count = done = 0
    try:
        for row in archived_rows(key, name):
            seq = row["seq"]
            count += 1
            done += 1
            if seq != expected:
                yield ChainProblem(
                    expected, f"{label}: 第 {expected} 至 {seq - 1} 条记录缺失或顺序被打乱"
                )
            if row["prev_hash"] != chained:
                yield ChainProblem(
                    seq, f"{label}: 第 {seq} 条与前一条记录的哈希不衔接（被插入或删除）"
                )
            if problem := audit.row_problem(row, key):
                yield ChainProblem(seq, f"{label}: 第 {seq} 条{audit.problem_text(problem)}")
            for cp in anchored.get(seq, ()):
                if cp.hash != row["hash"]:
                    yield ChainProblem(
                        seq, f"{label}: 第 {seq} 条与 {cp.at} 签署的检查点不符（整链被重写）"
                    )
            if (cp_doc := signed.get(seq)) is not None and cp_doc.get("hash") != row["hash"]:
                yield ChainProblem(seq, f"{label}: 第 {seq} 条与清单所载的检查点不符")
            first_hash = first_hash or row["hash"]
            last_hash, chained, expected = row["hash"], row["hash"], seq + 1
            if progress is not None and done == BATCH:
                progress(done)
                done = 0
    except (
        OSError,
        EOFError,
        zlib.error,
        orjson.JSONDecodeError,
        KeyError,
        TypeError,
        ValueError,
        AttributeError,
    ) as exc:
        yield ChainProblem(
            expected, f"{label}: 数据文件在第 {expected} 条处损坏，无法读出（{type(exc).__name__}）"
        )
    if progress is not None and done:
        progress(done)
    counter[0] += count
    if count != entries or expected != last + 1:
        yield ChainProblem(
            last,
            f"{label}: 数据文件有 {count} 条记录（至第 {expected - 1} 条），清单记为 {entries} 条",
        )
    if (first_hash, last_hash) != (doc.get("first_hash"), doc.get("last_hash")):
        yield ChainProblem(last, f"{label}: 首尾记录的哈希与清单不符")
    for cp_doc in signed.values():
        if not checkpoint_valid(key, cp_doc):
            yield ChainProblem(
                int(cp_doc.get("seq", 0)), f"{label}: 清单所载的检查点签名无效（被伪造或改动）"
            )


def _range_of(name: str) -> tuple[int, int]:
    try:
        _, first, last = name.split("-")
        return int(first), int(last)
    except ValueError:
        return (0, 0)


def verify_archives(
    session: Session,
    key: AuditKey | None,
    anchored: Mapping[int, list[Checkpoint]],
    *,
    progress: Progress | None = None,
) -> ArchivesWalk:
    """Walk the registered archives oldest first: each must verify on its own, chain on
    the one before it (the hash and the previous manifest's digest) and match its
    registration; archive files nobody registered are reported too."""
    walk = ArchivesWalk()
    archives = registered(session)
    names = {a.name for a in archives}
    if key is not None:
        directory = archive_dir(key)
        if directory.is_dir():
            for path in sorted(directory.glob("audit-*.manifest.json")):
                name = path.name.removesuffix(".manifest.json")
                if name not in names:
                    walk.problems.append(
                        ChainProblem(
                            _range_of(name)[0],
                            f"归档目录中的 {path.name} 未登记（被放入的文件，或登记被删除）",
                        )
                    )
    if not archives:
        return walk
    if key is None:
        walk.problems.append(
            ChainProblem(
                archives[0].first_seq, "有审计归档，但数据目录中没有审计密钥，无法校验归档"
            )
        )
        last = archives[-1]
        walk.next_seq, walk.prev_hash = last.last_seq + 1, last.last_hash
        return walk
    prev_manifest: str | None = None
    counter = [0]
    for a in archives:
        walk.problems.extend(
            _verify_archive(
                key,
                a.name,
                expected_seq=walk.next_seq,
                prev_hash=walk.prev_hash,
                prev_manifest=prev_manifest,
                anchored=anchored,
                manifest_digest=a.manifest_digest,
                counter=counter,
                progress=progress,
            )
        )
        walk.archives += 1
        walk.next_seq, walk.prev_hash, prev_manifest = (
            a.last_seq + 1,
            a.last_hash,
            a.manifest_digest,
        )
    walk.entries = counter[0]
    return walk


def archived_count(session: Session) -> int:
    return session.scalar(select(func.coalesce(func.sum(AuditArchive.entries), 0))) or 0


# -- searching across archives and the live table -----------------------------------------


def iter_all(
    session: Session,
    key: AuditKey | None,
    *,
    since: datetime | None,
    until: datetime | None,
    after_seq: int = 0,
) -> Iterable[tuple[str, Mapping[Any, Any]]]:
    """Every entry after ``after_seq``, oldest first, with where it is kept (an archive's
    name or ``""`` for the live table); archives wholly outside ``since``..``until`` or
    at or before ``after_seq`` are skipped unread."""
    if key is not None:
        for a in registered(session):
            if (
                (since is not None and a.last_at < since)
                or (until is not None and a.first_at >= until)
                or a.last_seq <= after_seq
            ):
                continue
            for line in archived_rows(key, a.name):
                if line["seq"] > after_seq:
                    yield a.name, line
    after = after_seq
    while True:
        q = audit.select_rows().where(_ENTRIES.c.seq > after).order_by(_ENTRIES.c.seq).limit(BATCH)
        if since is not None:
            q = q.where(_ENTRIES.c.at >= since)
        if until is not None:
            q = q.where(_ENTRIES.c.at < until)
        rows = audit.decoded(session.execute(q).mappings().all())
        if not rows:
            return
        for row in rows:
            yield "", row
        after = rows[-1]["seq"]
