"""Backup benchmark: ``govshare backup`` and ``govshare restore`` of a hub while it serves.

Builds, in a temporary directory, a freshly migrated SQLite hub whose shared store
(共享信息库, ``shared.db``) has a table of ``--rows`` generated persons (six columns,
filled directly with ``sqlite3``), ``--rows / 5`` keyed audit entries (1,000,000 at the
default 5,000,000 rows; appended through the audit chain's own ``record_many``) and a few
uploaded open files. Then starts a real hub (``govshare serve``) and, while a thread keeps
calling it over HTTP (``/healthz``, ``/readyz``, the open portal) and another appends rows
to the shared store:

* takes a backup (``ops.service.take_backup``, as ``govshare backup`` does) in a child
  process, encrypted with ``--cipher`` (default SM4-GCM, the setting's default);
* verifies it (``backup verify``) and restores it into an empty data dir (``restore``),
  each in a child process;
* runs the audit chain's verification (``security.audit.verify_chain``, as
  ``govshare audit verify`` does) on the restored copy.

A thread samples each child's resident memory (``VmRSS``) every 20 ms. The reference,
in the same run (after the load has stopped: the shell's ``.backup`` starts over whenever
the source changes under it): the ``sqlite3`` shell's ``.backup`` of both databases plus a
plain copy of the other files (no encryption, no digests), in MB/s. The measured steps
include their process's start (imports, engine) but not the interpreter's.

The last line is machine-readable::

    backup_mb_per_s=… restore_mb_per_s=… audit_verify_entries_per_s=… max_rss_mb=… ratio=…

``ratio`` is ``backup_mb_per_s / ref_mb_per_s``; ``max_rss_mb`` is the highest resident
memory of the backup, verify and restore processes. MB are 10**6 bytes of the hub's data.
Targets: backup at least 100 MB/s, audit verify at least 200,000 entries/s, RSS under
500 MB.

Usage: ``.venv/bin/python bench/backup.py`` (5,000,000 rows), ``--rows 200000`` for a
quick run, ``--cipher aes`` for AES-256-GCM, ``--keep DIR`` to keep everything.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
for extra in (ROOT, ROOT / "bench", ROOT / "src"):
    if str(extra) not in sys.path:
        sys.path.insert(0, str(extra))

from download import RssWatch, free_port, rss_mb, settle  # noqa: E402

SECRET = "bench-backup-secret-key-0123456789abcdef"
KEY = "0f" * 32
TABLE = "ss_people"
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"


def _settings(data_dir: Path, cipher: str = "sm4") -> object:
    from govshare.config import Settings

    return Settings(
        data_dir=data_dir,
        secret_key=SECRET,
        backup_key=KEY,
        backup_cipher=cipher,  # type: ignore[arg-type]
    )


def build(data_dir: Path, rows: int) -> int:
    """The hub; answers how many audit entries it holds."""
    from govshare import db
    from govshare.catalog.service import seed_reference_data
    from govshare.security import audit

    settings = _settings(data_dir)
    db.upgrade(settings)  # type: ignore[arg-type]
    factory = db.make_session_factory(db.make_engine(settings), settings)  # type: ignore[arg-type]
    with db.session_scope(factory) as s:
        seed_reference_data(s)
    entries = max(1000, rows // 5)
    actor = audit.Actor(name="bench", kind="system")
    done = 0
    while done < entries:
        n = min(5000, entries - done)
        with db.session_scope(factory) as s:
            audit.record_many(
                s,
                [
                    audit.Pending(
                        actor, "sharing.query", "shared_store", done + i, None, {"rows": i}
                    )
                    for i in range(n)
                ],
            )
        done += n
    rnd = random.Random(7)
    with sqlite3.connect(data_dir / "shared.db") as conn:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(
            f"CREATE TABLE {TABLE} (rid INTEGER PRIMARY KEY, sfzhm TEXT, xm TEXT, xb TEXT, "
            "csrq TEXT, jzdz TEXT, lxdh TEXT)"
        )
        batch = 100_000
        for start in range(0, rows, batch):
            conn.executemany(
                f"INSERT INTO {TABLE} VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        i,
                        f"370202{1950 + i % 60}{1 + i % 12:02d}{1 + i % 28:02d}{i % 10000:04d}",
                        rnd.choice(SURNAMES) + "某" * (1 + i % 2),
                        "12"[i % 2],
                        f"{1950 + i % 60}-{1 + i % 12:02d}-{1 + i % 28:02d}",
                        f"青岛市市南区香港中路{i % 500}号{i % 30}单元{i % 2000}室",
                        f"139{i:08d}",
                    )
                    for i in range(start, min(rows, start + batch))
                ],
            )
    files = data_dir / "open-files"
    for i in range(4):
        blob = os.urandom(4 << 20)
        folder = files / f"{i:02x}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{i:02x}{'0' * 62}").write_bytes(blob)
    return entries


def child(args: argparse.Namespace) -> None:
    """One measured step in its own process; prints seconds and bytes as JSON."""
    from govshare import db
    from govshare.ops import backup, service
    from govshare.security.audit import SYSTEM

    key = bytes.fromhex(KEY)
    started = time.perf_counter()
    if args.child == "backup":
        settings = _settings(args.data_dir, args.cipher)
        factory = db.make_session_factory(db.make_engine(settings), settings)  # type: ignore[arg-type]
        result = service.take_backup(settings, factory, args.dest, key=key, actor=SYSTEM)  # type: ignore[arg-type]
        size = result.bytes
    elif args.child == "verify":
        report = backup.verify_backup(args.dest, key=key)
        if not report.intact:
            raise SystemExit(f"backup not intact: {report.problems}")
        size = sum(i.size for i in report.manifest.items)
    else:
        manifest = backup.restore_backup(args.dest, args.data_dir, key=key)
        size = sum(i.size for i in manifest.items)
    print(json.dumps({"seconds": time.perf_counter() - started, "bytes": size}))


class ChildRss(RssWatch):
    """``RssWatch`` for a child that may exit (and be reaped) between two samples."""

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            try:
                self.peak = max(self.peak, rss_mb(self.pid))
            except OSError:
                return


def measured(step: str, *extra: str) -> tuple[float, int, float]:
    """(seconds, bytes, peak RSS MiB) of one child step."""
    proc = subprocess.Popen(
        [sys.executable, __file__, "--child", step, *extra],
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
    )
    with ChildRss(proc.pid) as watch:
        out, _ = proc.communicate()
    if proc.returncode != 0:
        raise SystemExit(f"{step} failed")
    found = json.loads(out.decode().strip().splitlines()[-1])
    return float(found["seconds"]), int(found["bytes"]), watch.peak


def reference(data_dir: Path, out: Path) -> tuple[float, int]:
    """Seconds and bytes of ``sqlite3 .backup`` of both databases and a copy of the rest."""
    out.mkdir()
    started = time.perf_counter()
    for name in ("govshare.db", "shared.db"):
        subprocess.run(["sqlite3", str(data_dir / name), f".backup {out / name}"], check=True)
    shutil.copytree(data_dir / "open-files", out / "open-files")
    shutil.copytree(data_dir / "audit", out / "audit")
    seconds = time.perf_counter() - started
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    return seconds, size


def serve_load(base: str, data_dir: Path, stop: threading.Event, counts: dict[str, int]) -> None:
    def calls() -> None:
        with httpx.Client(base_url=base, timeout=60) as c:
            while not stop.is_set():
                for path in ("/healthz", "/readyz", "/open/datasets"):
                    c.get(path)
                    counts["calls"] += 1

    def writes() -> None:
        conn = sqlite3.connect(data_dir / "shared.db", timeout=30)
        top = conn.execute(f"SELECT max(rid) FROM {TABLE}").fetchone()[0] + 1
        while not stop.is_set():
            with conn:
                conn.executemany(
                    f"INSERT INTO {TABLE} (rid, xm) VALUES (?, '新增')",
                    [(top + i,) for i in range(100)],
                )
            top += 100
            counts["writes"] += 100
            time.sleep(0.01)
        conn.close()

    threads = [threading.Thread(target=calls), threading.Thread(target=writes)]
    for t in threads:
        t.start()
    stop.wait()
    for t in threads:
        t.join()


def run(args: argparse.Namespace, work: Path) -> None:
    from sqlalchemy.orm import sessionmaker

    from govshare import db
    from govshare.security.anchor import read_key
    from govshare.security.audit import usable_cores, verify_chain

    data_dir = work / "data"
    t0 = time.perf_counter()
    entries = build(data_dir, args.rows)
    print(f"构建: {args.rows:,} 行共享库, {entries:,} 条审计记录, {time.perf_counter() - t0:.0f} s")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOVSHARE_")}
    env |= {"GOVSHARE_SECRET_KEY": SECRET, "GOVSHARE_DATA_DIR": str(data_dir)}
    env["PYTHONPATH"] = str(ROOT / "src")
    log = (work / "hub.log").open("wb")
    hub = subprocess.Popen(
        [sys.executable, "-m", "govshare.cli", "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    stop = threading.Event()
    counts = {"calls": 0, "writes": 0}
    load = threading.Thread(target=serve_load, args=(base, data_dir, stop, counts))
    try:
        deadline = time.monotonic() + 120
        while True:
            if hub.poll() is not None:
                raise SystemExit(f"the hub exited; see {work / 'hub.log'}")
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("the hub did not come up")
            time.sleep(0.2)
        settle(hub.pid, timeout=10)
        load.start()
        time.sleep(1)
        dest = work / "backup"
        extra = ["--data-dir", str(data_dir), "--dest", str(dest), "--cipher", args.cipher]
        backup_s, size, backup_rss = measured("backup", *extra)
        verify_s, _, verify_rss = measured("verify", *extra)
        restored = work / "restored"
        restore_s, _, restore_rss = measured(
            "restore", "--data-dir", str(restored), "--dest", str(dest)
        )
        served = dict(counts)
        stop.set()
        load.join()
        # Without the writer: the shell's .backup starts over whenever the source
        # changes under it, which would make the reference look slower than it is.
        ref_s, ref_bytes = reference(data_dir, work / "reference")
    finally:
        stop.set()
        if load.is_alive():
            load.join()
        hub.terminate()
        try:
            hub.wait(timeout=15)
        except subprocess.TimeoutExpired:
            hub.kill()
            hub.wait()
        log.close()
    settings = _settings(restored)
    engine = db.make_engine(settings)  # type: ignore[arg-type]
    session = sessionmaker(engine, info={"audit_key": read_key(restored)})()
    started = time.perf_counter()
    with session:
        report = verify_chain(session, workers=usable_cores())
    audit_s = time.perf_counter() - started
    engine.dispose()
    if not report.intact:
        raise SystemExit(f"the restored audit chain does not verify: {report.problems[:5]}")
    mb = size / 1e6
    backup_rate, restore_rate = mb / backup_s, mb / restore_s
    ref_rate = ref_bytes / 1e6 / ref_s
    audit_rate = report.entries / audit_s
    peak = max(backup_rss, verify_rss, restore_rss)
    print(
        f"备份 ({args.cipher}): {mb:,.0f} MB, {backup_s:.2f} s; 校验 {verify_s:.2f} s; "
        f"恢复 {restore_s:.2f} s"
    )
    print(f"备份期间平台应答 {served['calls']:,} 次调用, 写入共享库 {served['writes']:,} 行")
    print(f"参照 (sqlite3 .backup + 复制): {ref_bytes / 1e6:,.0f} MB, {ref_s:.2f} s")
    print(
        f"恢复后审计链校验: {report.entries:,} 条, {audit_s:.2f} s; "
        f"内存峰值: 备份 {backup_rss:.0f} MiB, 校验 {verify_rss:.0f} MiB, "
        f"恢复 {restore_rss:.0f} MiB; 负载 {os.getloadavg()[0]:.2f}"
    )
    print(
        f"backup_mb_per_s={backup_rate:.1f} restore_mb_per_s={restore_rate:.1f} "
        f"audit_verify_entries_per_s={audit_rate:.0f} max_rss_mb={peak:.0f} "
        f"ratio={backup_rate / ref_rate:.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--cipher", choices=["sm4", "aes"], default="sm4")
    parser.add_argument("--keep", type=Path, help="build in this directory and keep it")
    parser.add_argument("--child", choices=["backup", "verify", "restore"], help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--dest", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    if shutil.which("sqlite3") is None:
        raise SystemExit("the sqlite3 shell is missing (apt-get install sqlite3)")
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
        run(args, args.keep)
        return
    with tempfile.TemporaryDirectory(prefix="govshare-bench-backup-") as tmp:
        run(args, Path(tmp))


if __name__ == "__main__":
    main()
