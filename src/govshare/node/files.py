"""Unstructured resources (文件类资源): a watched folder exchanged in chunks.

Each chunk travels as its own package (``kind = "file_chunk"``), so every chunk has
its own digest and signature, and an interrupted transfer resumes at the next chunk:
the provider records each enqueued chunk in its local store, the subscriber writes
chunks into a ``.partial`` file at their offsets and renames it into place only when
the whole file's digest matches.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from govshare.exchange import package
from govshare.node.source import key_hash

if TYPE_CHECKING:
    from govshare.node.agent import NodeAgent, TaskRuntime

PARTIAL = ".partial"


def _folder(agent: NodeAgent, name: str) -> Path:
    if name not in agent.config.folders:
        raise KeyError(f"文件夹 {name} 未在 node.toml 中配置")
    return agent.config.folders[name]


def file_digest(alg: str, path: Path) -> str:
    from cryptography.hazmat.primitives import hashes

    h = hashes.Hash(hashes.SM3() if alg == "sm3" else hashes.SHA256())
    with path.open("rb") as f:
        while block := f.read(1024 * 1024):
            h.update(block)
    return h.finalize().hex()


def _scan(folder: Path, pattern: str) -> dict[str, os.stat_result]:
    out = {}
    for path in folder.glob(pattern):
        rel = path.relative_to(folder)
        if path.is_file() and PARTIAL not in rel.parts and not rel.name.startswith("."):
            out[rel.as_posix()] = path.stat()
    return out


def run_file_provider(agent: NodeAgent, rt: TaskRuntime, *, budget_seconds: float) -> None:
    """Send new and changed files chunk by chunk, and deletions of vanished files."""
    config = rt.spec["config"]
    folder = _folder(agent, config["folder"])
    chunk_bytes = int(config.get("chunk_bytes", 4 * 1024 * 1024))
    digest_alg = agent.store.get("digest_alg") or "sm3"
    db = agent.store.db
    started = time.monotonic()
    on_disk = _scan(folder, config.get("pattern") or "**/*")
    known = {
        r[0]: r[1:]
        for r in db.execute(
            "SELECT path, size, mtime_ns, digest, chunks, next_chunk, version FROM file_state "
            "WHERE task_id = ?",
            (rt.id,),
        )
    }
    for rel, st in sorted(on_disk.items()):
        state = known.get(rel)
        if state is None or (state[0], state[1]) != (st.st_size, st.st_mtime_ns):
            chunks = max(1, math.ceil(st.st_size / chunk_bytes))
            version = (state[5] + 1) if state else 1
            state = (
                st.st_size,
                st.st_mtime_ns,
                file_digest(digest_alg, folder / rel),
                chunks,
                0,
                version,
            )
            with agent.store.transaction() as conn:
                conn.execute(
                    "INSERT OR REPLACE INTO file_state VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (rt.id, rel, *state),
                )
        size, _, digest, chunks, next_chunk, version = state
        with (folder / rel).open("rb") as f:
            while next_chunk < chunks:
                f.seek(next_chunk * chunk_bytes)
                body = f.read(chunk_bytes)
                last = next_chunk == chunks - 1
                counts = {("I" if version == 1 else "U"): 1} if last else {}
                extra = {
                    "file": rel,
                    "file_size": size,
                    "file_digest": digest,
                    "chunk": next_chunk,
                    "chunks": chunks,
                    "offset": next_chunk * chunk_bytes,
                    "version": version,
                }
                with agent.store.transaction() as conn:
                    seq = agent.store.next_seq(conn, rt.id)
                    _enqueue(agent, conn, rt, seq, body, counts, "file_chunk", extra)
                    next_chunk += 1
                    conn.execute(
                        "UPDATE file_state SET next_chunk = ? WHERE task_id = ? AND path = ?",
                        (next_chunk, rt.id, rel),
                    )
                if agent.config.transport == "http":
                    agent.upload_pending()
                if time.monotonic() - started > budget_seconds:
                    return  # the rest goes next run, from this chunk on
        rt.rows_moved += 1 if state[4] < chunks else 0
    for rel in sorted(set(known) - set(on_disk)):
        with agent.store.transaction() as conn:
            seq = agent.store.next_seq(conn, rt.id)
            _enqueue(agent, conn, rt, seq, b"", {"D": 1}, "file_delete", {"file": rel})
            conn.execute("DELETE FROM file_state WHERE task_id = ? AND path = ?", (rt.id, rel))


def _enqueue(
    agent: NodeAgent,
    conn: Any,
    rt: TaskRuntime,
    seq: int,
    body: bytes,
    counts: dict[str, int],
    kind: str,
    extra: dict[str, Any],
) -> None:
    assert agent.signer is not None
    blob = package.build(
        agent.signer,
        task_id=rt.id,
        seq=seq,
        columns=[],
        key=[],
        body=body,
        counts=counts,
        kind=kind,
        extra=extra,
        cipher=agent.cipher,
        cipher_key=agent.cipher_key,
        wrap=agent.hub_opens_data_keys,
    )
    agent.store.enqueue(
        conn,
        rt.id,
        seq,
        blob,
        sum(counts.values()),
        time.time(),
        encrypted_tail=package.keyed_tail(blob),
    )


def safe_relative(name: str) -> PurePosixPath:
    """A path from a package, refused if it could leave the target folder."""
    rel = PurePosixPath(name)
    if (
        rel.is_absolute()
        or not rel.parts
        or any(p in ("..", "") for p in rel.parts)
        or "\\" in name
    ):
        raise package.PackageError(f"unsafe file path in package: {name!r}")
    return rel


def applied_seq(agent: NodeAgent, task_id: int) -> int:
    row = agent.store.db.execute("SELECT seq FROM applied WHERE task_id = ?", (task_id,)).fetchone()
    return int(row[0]) if row else 0


def apply_file_package(folder: Path, pkg: package.Package, body: bytes) -> dict[str, int]:
    header = pkg.header
    rel = safe_relative(str(header["file"]))
    final = folder / rel
    counts = {"inserted": 0, "updated": 0, "deleted": 0}
    if header.get("kind") == "file_delete":
        final.unlink(missing_ok=True)
        counts["deleted"] = 1
        return counts
    part = folder / PARTIAL / f"{rel}.v{header['version']}.part"
    last = int(header["chunk"]) == int(header["chunks"]) - 1
    already_in_place = (
        last
        and int(header["chunks"]) > 1
        and not part.exists()
        and final.exists()
        and file_digest(str(header["digest_alg"]), final) == header["file_digest"]
    )
    if already_in_place:  # applied before we could record it (we stopped in between)
        counts["inserted" if int(header["version"]) == 1 else "updated"] = 1
        return counts
    part.parent.mkdir(parents=True, exist_ok=True)
    with part.open("r+b" if part.exists() else "wb") as f:
        f.seek(int(header["offset"]))
        f.write(body)
    if last:
        with part.open("r+b") as f:
            f.truncate(int(header["file_size"]))
        if file_digest(str(header["digest_alg"]), part) != header["file_digest"]:
            part.unlink()
            raise package.PackageError(f"file {rel} does not match its digest after the last chunk")
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(part, final)
        counts["inserted" if int(header["version"]) == 1 else "updated"] = 1
    return counts


def run_file_subscriber(agent: NodeAgent, rt: TaskRuntime, *, budget_seconds: float) -> None:
    folder = _folder(agent, rt.spec["config"]["folder"])
    folder.mkdir(parents=True, exist_ok=True)
    applied = applied_seq(agent, rt.id)
    started = time.monotonic()
    while time.monotonic() - started < budget_seconds:
        if rt.hold_at is not None and applied >= rt.hold_at:
            return
        got = agent.client.next_package(rt.id, applied)
        if got is None:
            return
        blob, provider_key = got
        pkg = package.parse(blob)
        body = pkg.open(provider_key, agent.cipher_key)
        counts = apply_file_package(folder, pkg, body)
        # Apply, acknowledge, then remember: a stop anywhere repeats only idempotent steps
        # (chunks rewrite the same bytes; acks of acknowledged numbers are no-ops).
        agent.client.ack(rt.id, pkg.seq, counts)
        agent.store.db.execute(
            "INSERT OR REPLACE INTO applied (task_id, seq) VALUES (?, ?)", (rt.id, pkg.seq)
        )
        applied = pkg.seq
        rt.rows_moved += sum(counts.values())


def folder_checksum(folder: Path, pattern: str, digest_alg: str) -> tuple[int, str]:
    """File count and an order-independent hash over (path, digest) pairs."""
    count, total = 0, 0
    for rel in sorted(_scan(folder, pattern)):
        count += 1
        total = (total + key_hash((rel, file_digest(digest_alg, folder / rel)))) % (1 << 64)
    return count, f"{total:016x}"
