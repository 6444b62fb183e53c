"""Audit archive benchmark (issue 15, 审计归档): archive, verify and search ``--rows``
audit entries (default 1,000,000).

A migrated SQLite hub in a temporary data dir gets ``--rows`` keyed audit entries in
bulk (the chain's own rule, ``audit.chained``, batches of 10,000), dated 2010 — a third
of them data-service batch entries with two calls and hashed keys, the rest catalog
changes — and a signed checkpoint of the head. Measured in one run:

* ``live_verify``: ``audit.verify_chain`` over the live table (the reference);
* ``archive``: ``archive.archive_due`` "in" 2025 with five years' retention: every row
  streamed into the gzip archive with its hash and link checked, the manifest signed,
  the archive verified again, then the rows deleted in one transaction;
* ``verify``: ``audit.verify_chain`` again, now over the archive (and the one live
  entry the archive run recorded);
* ``search``: ``audit_search.search`` for one key hash across the archive.

The last line::

    entries=… archive_entries_per_s=… verify_entries_per_s=… live_verify_entries_per_s=…
    search_entries_per_s=… archive_mb=… ratio_verify_archive_to_live=… max_rss_mb=…

``max_rss_mb`` is the process's peak resident memory (building included); a streaming
archive keeps it flat whatever ``--rows``. Target (issue 15): verify ≥ 200,000 entries/s.

Usage: ``.venv/bin/python bench/audit_archive.py --rows 100000``.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import insert, update

from govshare import db as hub
from govshare.catalog.service import seed_reference_data
from govshare.config import Settings
from govshare.security import archive, audit
from govshare.security.audit_search import SearchQuery, search
from govshare.security.models import AuditEntry, AuditHead

BATCH = 10_000


def build(settings: Settings, rows: int) -> bytes:
    hub.upgrade(settings)
    engine = hub.make_engine(settings)
    factory = hub.make_session_factory(engine, settings)
    with hub.session_scope(factory) as s:
        seed_reference_data(s)
        audit.ensure_head(s)
    key = factory.kw["info"]["audit_key"]
    hasher = audit.KeyHasher("b" * 40)
    wanted = hasher("370202199001011234")
    start = datetime(2010, 1, 1, tzinfo=UTC)
    done = 0
    while done < rows:
        n = min(BATCH, rows - done)
        pending = []
        for i in range(done, done + n):
            if i % 3 == 0:
                call = {"at": "2010-01-01T00:00:00.000+00:00", "keys": 1, "rows": 1}
                hashes = [wanted] if i % 30_000 == 0 else [hasher(str(i))]
                pending.append(
                    audit.Pending(
                        audit.Actor("app-rsj", "client", 3, "10.0.0.8"),
                        "data.lookup",
                        "sharing_grant",
                        i % 97,
                        after={
                            "calls": [
                                {**call, "nonce": f"n{i}a", "key_hashes": hashes},
                                {**call, "nonce": f"n{i}b", "key_hashes": [hasher(f"x{i}")]},
                            ],
                            "keys": 2,
                            "rows": 2,
                        },
                        request_id=None,
                    )
                )
            else:
                pending.append(
                    audit.Pending(
                        audit.Actor("gaj_reg", "user", 2, "10.0.0.9"),
                        "catalog.resource.update",
                        "resource",
                        f"101001/{i:06d}",
                        before={"name": "人口基本信息", "update_cycle": "每日"},
                        after={"name": "人口基本信息", "update_cycle": "每周"},
                        request_id=f"{i:024x}",
                    )
                )
        with hub.session_scope(factory) as s:
            claimed = s.execute(
                update(AuditHead)
                .where(AuditHead.id == 1)
                .values(seq=AuditHead.seq + n)
                .returning(AuditHead.seq, AuditHead.hash)
            ).one()
            chained = audit.chained(
                pending,
                alg=settings.audit_digest,
                mac_key=key.mac_key,
                head=(claimed[0], claimed[1]),
                at=start + timedelta(seconds=done),
            )
            s.execute(insert(AuditEntry.__table__), chained)
            s.execute(update(AuditHead).where(AuditHead.id == 1).values(hash=chained[-1]["hash"]))
        done += n
    with hub.session_scope(factory) as s:
        audit.checkpoint(s, key, datetime(2011, 1, 1, tzinfo=UTC))
    engine.dispose()
    return wanted.encode()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            data_dir=Path(tmp), secret_key="b" * 40, demo=False, audit_archive_seconds=0
        )
        t0 = time.perf_counter()
        wanted = build(settings, args.rows).decode()
        print(f"built {args.rows} entries in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
        engine = hub.make_engine(settings)
        factory = hub.make_session_factory(engine, settings)
        key = factory.kw["info"]["audit_key"]

        with factory() as s:
            t0 = time.perf_counter()
            report = audit.verify_chain(s)
            live_s = time.perf_counter() - t0
        assert report.intact, report.problems[:5]

        with factory() as s:
            t0 = time.perf_counter()
            result = archive.archive_due(s, key, now=datetime(2025, 6, 1, tzinfo=UTC), years=5)
            archive_s = time.perf_counter() - t0
        assert isinstance(result, archive.ArchiveResult), result
        assert result.entries == args.rows

        with factory() as s:
            t0 = time.perf_counter()
            report = audit.verify_chain(s)
            verify_s = time.perf_counter() - t0
        assert report.intact, report.problems[:5]
        assert report.archived == args.rows

        with factory() as s:
            t0 = time.perf_counter()
            hits = sum(1 for _ in search(s, key, SearchQuery(key_hash=wanted)))
            search_s = time.perf_counter() - t0
        assert hits == (args.rows + 29_999) // 30_000, hits
        engine.dispose()

    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    n = args.rows
    print(
        f"entries={n} archive_entries_per_s={n / archive_s:.0f} "
        f"verify_entries_per_s={n / verify_s:.0f} live_verify_entries_per_s={n / live_s:.0f} "
        f"search_entries_per_s={n / search_s:.0f} archive_mb={result.data_bytes / 1e6:.1f} "
        f"ratio_verify_archive_to_live={live_s / verify_s:.2f} max_rss_mb={rss_mb:.0f}"
    )


if __name__ == "__main__":
    main()
