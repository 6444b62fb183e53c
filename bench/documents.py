"""Document exchange benchmark (issue 14, 电子公文交换): ``--rows`` documents (default 200)
sent and signed for through the API, against the same cryptography and inserts done raw.

The hub is the real application served by uvicorn on loopback (``tests.live``), on a
fresh SQLite data dir: three departments, each with a 公文收发员. For each document:

* the 大数据局 clerk sends it — ``POST /api/v1/documents``, a multipart form with a
  ``--pdf-kb`` PDF (default 200 KiB) and one 20 KiB attachment — to 公安 and 民政: the
  hub checks the fields and files, signs the manifest (SM2), encrypts both files
  (AES-256-GCM), stores and audits it;
* each receiver signs for it — ``POST /api/v1/documents/{id}/receipt`` (signed receipt,
  audited).

``docs_per_s`` counts documents through all three calls. The reference does the same
work without the platform, in this process: per document, AES-256-GCM of the two files
(same key derivation), the SM2 signature of a manifest and of two receipts, and the
inserts of one document row, two file rows and two receipt rows into a bare SQLite file
(WAL, one transaction per document). ``ratio`` = platform / reference (1 would mean the
platform adds nothing on top of the cryptography and the writes).

The last line::

    docs_per_s=… ref_docs_per_s=… ratio=… p95_send_ms=… max_rss_mb=…

``max_rss_mb`` is this process's peak resident memory (the hub runs in it).

Usage: ``.venv/bin/python bench/documents.py --rows 200``.
"""

from __future__ import annotations

import argparse
import os
import resource
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

import orjson
from tests.factories import valid_credit_code
from tests.live import start_live_hub

from govshare import db as hub_db
from govshare.catalog.service import seed_reference_data
from govshare.config import Settings
from govshare.documents import keys
from govshare.security.audit import SYSTEM
from govshare.security.crypto import digest, generate_signing_key, sign
from govshare.security.roles import Role
from govshare.security.service import add_department, add_user

PASSWORD = "Bench-documents-2026!"
SECRET = "bench-secret-key-with-at-least-32-characters!"


def err(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def make_pdf(size: int, n: int) -> bytes:
    head = b"%PDF-1.4\n% bench document " + str(n).encode() + b"\n"
    tail = b"\ntrailer << >>\n%%EOF\n"
    return head + os.urandom(max(0, size - len(head) - len(tail))) + tail


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]


def platform(data_dir: Path, rows: int, pdf_kb: int) -> tuple[float, float]:
    settings = Settings(data_dir=data_dir, secret_key=SECRET, demo=False)  # type: ignore[call-arg]
    hub_db.upgrade(settings)
    engine = hub_db.make_engine(settings)
    factory = hub_db.make_session_factory(engine, settings)
    clerks: dict[str, tuple[int, str]] = {}
    with hub_db.session_scope(factory) as s:
        seed_reference_data(s)
        for abbr, name in [("dsj", "大数据局"), ("gaj", "公安局"), ("mzj", "民政局")]:
            dept = add_department(
                s,
                SYSTEM,
                name=f"青岛市{name}",
                short_name=name,
                credit_code=valid_credit_code(),
                division_code="370200",
            )
            add_user(
                s,
                SYSTEM,
                username=f"{abbr}_doc",
                password=PASSWORD,
                display_name=f"{name}收发员",
                department_id=dept.id,
                roles=[Role.DOCUMENT_CLERK],
            )
            clerks[abbr] = (dept.id, f"{abbr}_doc")
    engine.dispose()
    live = start_live_hub(settings)
    try:
        tokens = {abbr: live.token(user, PASSWORD) for abbr, (_, user) in clerks.items()}
        to = [str(clerks["gaj"][0]), str(clerks["mzj"][0])]
        attachment = b"PK\x03\x04" + os.urandom(20 * 1024)
        sends: list[float] = []
        with (
            live.client(tokens["dsj"]) as sender,
            live.client(tokens["gaj"]) as police,
            live.client(tokens["mzj"]) as civil,
        ):
            # One warm-up document (first key file, first connections), not timed.
            for n in range(rows + 1):
                pdf = make_pdf(pdf_kb * 1024, n)
                started = time.perf_counter()
                if n == 1:
                    t0 = started
                r = sender.post(
                    "/api/v1/documents",
                    data={
                        "title": f"关于数据共享工作的通知（第{n}号）",
                        "doc_number": f"青数发〔2026〕{n + 1}号",
                        "secrecy": "internal",
                        "urgency": "normal",
                        "recipients": to,
                    },
                    files=[
                        ("pdf", ("正文.pdf", pdf, "application/pdf")),
                        ("attachments", ("附件.zip", attachment, "application/zip")),
                    ],
                )
                if r.status_code != 201:
                    raise SystemExit(f"send failed: {r.status_code} {r.text[:300]}")
                if n:
                    sends.append((time.perf_counter() - started) * 1000)
                doc_id = r.json()["id"]
                for client in (police, civil):
                    a = client.post(f"/api/v1/documents/{doc_id}/receipt")
                    if a.status_code != 201:
                        raise SystemExit(f"receipt failed: {a.status_code} {a.text[:300]}")
                if n and n % 100 == 0:
                    err(f"  platform: {n}/{rows}")
            elapsed = time.perf_counter() - t0
    finally:
        live.stop()
        live.server.config.app.state.engine.dispose()
    return rows / elapsed, p95(sends)


def reference(data_dir: Path, rows: int, pdf_kb: int) -> float:
    """The same cryptography and row writes without the platform."""
    private, _public = generate_signing_key("sm2")
    con = sqlite3.connect(data_dir / "reference.db", isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=NORMAL")
    con.executescript(
        """
        CREATE TABLE doc (id INTEGER PRIMARY KEY, title TEXT, manifest TEXT, digest TEXT, sig TEXT);
        CREATE TABLE file (doc INTEGER, position INTEGER, digest TEXT, nonce BLOB, content BLOB);
        CREATE TABLE receipt (doc INTEGER, dept INTEGER, at TEXT, sig TEXT,
                              UNIQUE (doc, dept));
        """
    )
    attachment = b"PK\x03\x04" + os.urandom(20 * 1024)
    started = time.perf_counter()
    for n in range(1, rows + 1):
        pdf = make_pdf(pdf_kb * 1024, n)
        files = [(0, pdf), (1, attachment)]
        manifest = orjson.dumps(
            {
                "id": n,
                "title": f"关于数据共享工作的通知（第{n}号）",
                "files": [{"position": p, "digest": digest("sm3", b)} for p, b in files],
            },
            option=orjson.OPT_SORT_KEYS,
        )
        con.execute("BEGIN")
        con.execute(
            "INSERT INTO doc VALUES (?, ?, ?, ?, ?)",
            (
                n,
                "t",
                manifest.decode(),
                digest("sm3", manifest),
                sign("sm2", private, manifest).hex(),
            ),
        )
        for position, data in files:
            nonce, box = keys.encrypt_file(SECRET, n, position, data)
            con.execute(
                "INSERT INTO file VALUES (?, ?, ?, ?, ?)",
                (n, position, digest("sm3", data), nonce, box),
            )
        con.execute("COMMIT")
        for dept in (2, 3):
            signed = orjson.dumps({"doc": n, "dept": dept, "digest": digest("sm3", manifest)})
            con.execute("BEGIN")
            con.execute(
                "INSERT INTO receipt VALUES (?, ?, ?, ?)",
                (n, dept, "now", sign("sm2", private, signed).hex()),
            )
            con.execute("COMMIT")
    elapsed = time.perf_counter() - started
    con.close()
    return rows / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=200, help="documents sent (default 200)")
    parser.add_argument("--pdf-kb", type=int, default=200, help="size of each PDF in KiB")
    args = parser.parse_args()
    if args.rows < 1:
        parser.error("--rows must be at least 1")
    with tempfile.TemporaryDirectory(prefix="bench-documents-") as tmp:
        root = Path(tmp)
        err(f"reference: {args.rows} documents, raw crypto + SQLite")
        ref = reference(root, args.rows, args.pdf_kb)
        err(f"platform: {args.rows} documents through the API (send + 2 receipts each)")
        rate, send_p95 = platform(root / "hub", args.rows, args.pdf_kb)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"docs_per_s={rate:.1f} ref_docs_per_s={ref:.1f} ratio={rate / ref:.3f} "
        f"p95_send_ms={send_p95:.1f} max_rss_mb={rss_mb:.0f}"
    )


if __name__ == "__main__":
    main()
