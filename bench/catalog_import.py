"""Catalog import benchmark: a large spreadsheet imported through the real HTTP API while
other people sign in.

Builds a fresh SQLite hub (migrations, the demo departments and users, ``--base``
generated entries so the hub is not empty), starts ``govshare serve`` as a subprocess,
uploads an XLSX workbook of ``--rows`` rows (``--items`` information items per entry,
so ``rows / items`` entries) to ``POST /api/v1/catalog/import`` as the registrar
``rsj_reg`` and polls the import job until it is done. Meanwhile a second thread signs
in (``POST /api/v1/auth/token``) as another demo user again and again and records each
sign-in's latency and any answer other than 200.

The reference, measured in the same run: the same rows (the workbook's cells) written
by ``sqlite3`` straight into a plain table of a fresh database in one transaction, the
floor any import must pay for storing them. The last line is machine-readable::

    import_s=… rows_per_s=… raw_s=… ratio=… login_p99_ms=… login_max_ms=… login_errors=…

Usage: ``.venv/bin/python bench/catalog_import.py --rows 50000`` (the target: 50,000
rows / 10,000 entries in under 60 s, sign-ins during the import p99 under 1 s, none
refused). ``--rows 5000`` for a quick run.
"""

from __future__ import annotations

import argparse
import io
import shutil
import sqlite3
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
from openpyxl import load_workbook

sys.path.insert(0, str(Path(__file__).resolve().parent))
from catalog_search import (
    PASSWORD,
    build_hub,
    console,
    import_workbook,
    percentile,
    serve,
)

IMPORTER = "rsj_reg"
SIGNER = "gaj_reg"


def raw_copy(content: bytes, work: Path) -> float:
    """The floor: the workbook's rows inserted by sqlite3 into one plain table."""
    rows = list(load_workbook(io.BytesIO(content), read_only=True).worksheets[0].values)
    header, body = rows[0], rows[1:]
    target = work / "raw.db"
    started = time.perf_counter()
    conn = sqlite3.connect(target)
    conn.execute("PRAGMA journal_mode=WAL")
    columns = ", ".join(f'"c{i}" TEXT' for i in range(len(header)))
    conn.execute(f"CREATE TABLE rows ({columns})")
    marks = ", ".join("?" * len(header))
    with conn:
        conn.executemany(f"INSERT INTO rows VALUES ({marks})", body)
    conn.close()
    return time.perf_counter() - started


class SignIns(threading.Thread):
    """Signs in again and again until stopped; keeps each latency and every refusal."""

    def __init__(self, base: str) -> None:
        super().__init__(daemon=True)
        self.base = base
        self.latencies: list[float] = []
        self.errors: dict[int, int] = {}
        self.stop = threading.Event()

    def run(self) -> None:
        with httpx.Client(base_url=self.base, timeout=60) as client:
            while not self.stop.is_set():
                started = time.perf_counter()
                r = client.post(
                    "/api/v1/auth/token", json={"username": SIGNER, "password": PASSWORD}
                )
                self.latencies.append((time.perf_counter() - started) * 1000)
                if r.status_code != 200:
                    self.errors[r.status_code] = self.errors.get(r.status_code, 0) + 1
                self.stop.wait(0.2)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=50_000, help="spreadsheet rows to import")
    parser.add_argument("--items", type=int, default=5, help="information items per entry")
    parser.add_argument("--base", type=int, default=2_000, help="entries the hub holds before")
    args = parser.parse_args(argv)
    entries = max(args.rows // args.items, 1)
    work = Path(tempfile.mkdtemp(prefix="govshare-import-bench-"))
    try:
        build_hub(work / "hub", args.base)
        started = time.perf_counter()
        content = import_workbook(entries, args.items)
        console.print(
            f"工作簿: {entries * args.items:,} 行 ({entries:,} 条目录 × {args.items} 个信息项), "
            f"{len(content) / 2**20:.1f} MiB, 生成用时 {time.perf_counter() - started:.1f} s"
        )
        raw_s = raw_copy(content, work)
        console.print(f"参照 (sqlite3 直接写入同样的行): {raw_s:.2f} s")
        with serve(work / "hub") as (base, _proc), httpx.Client(base_url=base, timeout=300) as c:
            token = c.post(
                "/api/v1/auth/token", json={"username": IMPORTER, "password": PASSWORD}
            ).json()["access_token"]
            c.headers["Authorization"] = f"Bearer {token}"
            signins = SignIns(base)
            signins.start()
            time.sleep(1)  # sign-ins before the import, for comparison
            started = time.perf_counter()
            r = c.post(
                "/api/v1/catalog/import",
                files={"file": ("bench.xlsx", content)},
                params={"confirm_duplicates": "true"},
            )
            answered_ms = (time.perf_counter() - started) * 1000
            assert r.status_code == 202, r.text[:500]
            job = r.json()
            with console.status("导入中…") as status:
                while job["status"] not in ("done", "failed"):
                    time.sleep(0.2)
                    job = c.get(f"/api/v1/catalog/import/jobs/{job['id']}").json()
                    done, total = job["entries_done"], job["entries_total"]
                    status.update(f"导入中… {job['status_label']} {done}/{total}")
            import_s = time.perf_counter() - started
            signins.stop.set()
            signins.join()
        if job["status"] != "done":
            console.print(f"导入失败: {job['error']}")
            raise SystemExit(1)
        rows = entries * args.items
        lat = signins.latencies
        console.print(f"上传应答: {answered_ms:.0f} ms (返回导入任务)")
        console.print(
            f"导入: {rows:,} 行 / {entries:,} 条目录, {import_s:.1f} s, {rows / import_s:.0f} 行/秒"
        )
        console.print(
            f"导入期间登录: {len(lat)} 次, p50 {percentile(lat, 50):.0f} ms, "
            f"p99 {percentile(lat, 99):.0f} ms, 最长 {max(lat):.0f} ms, 失败 {signins.errors or 0}"
        )
        print(
            f"import_s={import_s:.1f} rows_per_s={rows / import_s:.0f} raw_s={raw_s:.2f} "
            f"ratio={import_s / raw_s:.0f} login_p99_ms={percentile(lat, 99):.0f} "
            f"login_max_ms={max(lat):.0f} login_errors={sum(signins.errors.values())}"
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
