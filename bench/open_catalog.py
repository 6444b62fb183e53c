"""Open-catalog benchmark: CKAN ``package_search`` over a catalog of open datasets.

Builds a hub in a temporary directory the way ``bench/catalog_search.py`` does (the demo
departments, then generated catalog entries in bulk, indexed), makes ``--datasets`` of
the published entries open (无条件开放, a tenth of them 有条件开放), starts ``govshare
serve`` and times CKAN's ``GET /api/3/action/package_search`` as harvesters and clients
call it: a Chinese query, a query with facets, an organisation filter, a harvester's
``metadata_modified`` page of 100 (ckanext-harvest's CKANHarvester pages by 100), a theme
filter with a sort, and an empty query with every facet; and, reported on its own, the
same harvest page at CKAN's largest size, 1,000. CKAN's own answer is Solr; there is no
like-for-like reference here, so the last line carries no ratio::

    ckan_p95_ms=… ckan_changed_p95_ms=… ckan_p50_ms=… search_p95_ms=…
    search_changed_p95_ms=… harvest_p50_ms=… harvest_1000_p50_ms=… datasets=… requests=…

``ckan_p95_ms`` covers the six calls of the mix; ``search_p95_ms`` the five of at most 50
rows a portal and its clients make; ``harvest_p50_ms`` the 100-package page,
``harvest_1000_p50_ms`` the 1,000-package page (about 5 MB of JSON, parsed by the client
inside the timing). The hub keeps a search's facet counts until the catalog next
changes, and the timed rounds repeat the same calls; the ``*_changed_*`` figures time
the rounds again with one catalog entry written before every round, so each search
counts its facets afresh.

Target: ``package_search`` p95 < 30 ms over 10,000 datasets (issue 13).

Usage: ``.venv/bin/python bench/open_catalog.py`` (10,000 open datasets out of 30,000
entries, about a minute), ``--datasets 1000 --rows 3000`` for a quick run.
"""

from __future__ import annotations

import argparse
import random
import shutil
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from catalog_search import build_hub, console, make_settings, peak_rss_mb, percentile, serve
from sqlalchemy import select

from govshare import db
from govshare.catalog.models import Resource, ResourceTransition, ResourceVersion
from govshare.catalog.service import snapshot

HARVEST_FQ = "metadata_modified:[2020-01-01T00:00:00Z TO *]"
# The calls, each with its parameters, in the mix a harvester and a portal make. The
# harvester pages as ckanext-harvest's CKANHarvester does: 100 packages a page.
CALLS: list[tuple[str, dict[str, Any]]] = [
    ("全文", {"q": "人口", "rows": 20}),
    ("全文+分面", {"q": "企业 登记", "rows": 20, "facet.field": '["organization","groups"]'}),
    ("部门", {"fq": "organization:{org}", "rows": 50}),
    ("增量收割", {"fq": HARVEST_FQ, "rows": 100}),
    ("主题+排序", {"fq": "groups:{group}", "sort": "metadata_modified desc", "rows": 20}),
    (
        "全部分面",
        {
            "rows": 10,
            "facet.field": '["organization","groups","res_format","tags","license_id"]',
            "facet.limit": 50,
        },
    ),
]
# CKAN's largest page, timed in the same rounds and reported on its own (about 5 MB of
# JSON: the client's parsing alone takes longer than 30 ms).
FULL_PAGE = ("整页收割", {"fq": HARVEST_FQ, "rows": 1000})


def open_datasets(data_dir: Path, wanted: int, seed: int = 7) -> int:
    """Make ``wanted`` published entries open (a tenth with conditions), and give every
    published generated entry what the catalog service would have written: its version 1
    snapshot and its publish step (the generator writes only the working copy)."""
    con = sqlite3.connect(data_dir / "govshare.db")
    try:
        con.execute("UPDATE resource SET is_open = 0, open_listed = 0, open_conditions = ''")
        ids = [
            r[0]
            for r in con.execute(
                "SELECT id FROM resource WHERE listed = 1 AND status != 'withdrawn' ORDER BY id"
            )
        ]
        chosen = sorted(random.Random(seed).sample(ids, min(wanted, len(ids))))
        con.executemany(
            "UPDATE resource SET is_open = 1, open_listed = 1 WHERE id = ?", ((i,) for i in chosen)
        )
        con.executemany(
            "UPDATE resource SET open_conditions = '注册开发者申请' WHERE id = ?",
            ((i,) for i in chosen[::10]),
        )
        # Entries that were already published (the demo's) keep their snapshot beside
        # the working copy: the hub reads the published content from the working copy
        # only while the two are the same version, so they must say the same.
        con.execute(
            "UPDATE resource_version SET snapshot = json_set(snapshot,"
            " '$.is_open', json(CASE r.is_open WHEN 1 THEN 'true' ELSE 'false' END),"
            " '$.open_conditions', r.open_conditions)"
            " FROM resource AS r WHERE r.id = resource_version.resource_id"
            " AND r.published_version = resource_version.version"
        )
        con.commit()
    finally:
        con.close()
    engine = db.make_engine(make_settings(data_dir))
    factory = db.make_session_factory(engine, make_settings(data_dir))
    with db.session_scope(factory) as session:
        versioned = select(ResourceVersion.resource_id)
        todo = list(
            session.scalars(
                select(Resource.id).where(
                    Resource.published_version.is_not(None), Resource.id.not_in(versioned)
                )
            )
        )
        for start in range(0, len(todo), 2000):
            part = todo[start : start + 2000]
            for r in session.scalars(select(Resource).where(Resource.id.in_(part))):
                session.add(
                    ResourceVersion(
                        resource_id=r.id, version=1, snapshot=snapshot(r), created_by="bench"
                    )
                )
                session.add(
                    ResourceTransition(
                        resource_id=r.id,
                        action="publish",
                        from_status="pending_publication",
                        to_status="published",
                        version=1,
                        actor="bench",
                        at=r.updated_at,
                    )
                )
            session.flush()
            session.expunge_all()
    engine.dispose()
    return len(chosen)


def catalog_writer(data_dir: Path) -> Callable[[], None]:
    """A write to one catalog entry's row, as any edit makes: it raises the catalog's
    revision, so the hub computes the next search's facets afresh."""
    db_path = data_dir / "govshare.db"

    def touch() -> None:
        conn = sqlite3.connect(db_path, timeout=30)
        try:
            with conn:
                conn.execute(
                    "UPDATE resource SET updated_at = updated_at "
                    "WHERE id = (SELECT min(id) FROM resource)"
                )
        finally:
            conn.close()

    return touch


def bench_ckan(
    base: str, rounds: int, warmup: int, before_round: Callable[[], None] | None = None
) -> tuple[dict[str, list[float]], int]:
    """Latencies per call; ``before_round`` runs before each timed round, untimed."""
    with httpx.Client(base_url=base, timeout=60) as client:

        def action(name: str, **params: Any) -> Any:
            r = client.get(f"/api/3/action/{name}", params=params)
            r.raise_for_status()
            body = r.json()
            assert body["success"], body
            return body["result"]

        orgs = action("organization_list")
        groups = action("group_list")
        total = action("package_search", rows=0)["count"]
        fill = {"org": orgs[0] if orgs else "x", "group": groups[0] if groups else "x"}
        calls = [
            (label, {k: str(v).format(**fill) for k, v in params.items()})
            for label, params in [*CALLS, FULL_PAGE]
        ]

        def timed(params: dict[str, Any]) -> float:
            started = time.perf_counter()
            action("package_search", **params)
            return (time.perf_counter() - started) * 1000

        for _ in range(warmup):
            for _, params in calls:
                timed(params)
        latencies: dict[str, list[float]] = {label: [] for label, _ in calls}
        for _ in range(rounds):
            if before_round is not None:
                before_round()
            for label, params in calls:
                latencies[label].append(timed(params))
        return latencies, total


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--datasets", type=int, default=10_000, help="open datasets")
    parser.add_argument(
        "--rows", type=int, default=30_000, help="generated catalog entries (open and not)"
    )
    parser.add_argument("--rounds", type=int, default=20, help="timed rounds over all calls")
    parser.add_argument("--warmup", type=int, default=2, help="untimed rounds first")
    parser.add_argument("--keep", type=Path, help="build the hub in this directory and keep it")
    args = parser.parse_args(argv)

    tmp = None if args.keep else tempfile.mkdtemp(prefix="govshare-bench-open-")
    data_dir = args.keep or Path(str(tmp))
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        build_hub(data_dir, args.rows)
        made = open_datasets(data_dir, args.datasets)
        console.print(f"开放数据集: {made} 个 (十分之一有条件开放)")
        with serve(data_dir) as (base, proc):
            latencies, total = bench_ckan(base, args.rounds, args.warmup)
            cold, _ = bench_ckan(base, args.rounds, 0, catalog_writer(data_dir))
            rss = peak_rss_mb(proc.pid)
        console.print(f"package_search 可见数据集: {total}; 各调用 中位 / p95 / 最大 (ms):")
        for label, ms in latencies.items():
            console.print(
                f"  {label:　<6}{statistics.median(ms):>8.1f}{percentile(ms, 95):>8.1f}"
                f"{max(ms):>8.1f}"
            )
        console.print("目录每轮变更一次后 (分面重新计数) 各调用 中位 / p95 / 最大 (ms):")
        for label, ms in cold.items():
            console.print(
                f"  {label:　<6}{statistics.median(ms):>8.1f}{percentile(ms, 95):>8.1f}"
                f"{max(ms):>8.1f}"
            )

        def figures(timings: dict[str, list[float]]) -> dict[str, list[float]]:
            return {
                # the mix: every call but CKAN's largest page
                "ckan": [ms for label, _ in CALLS for ms in timings[label]],
                # what a portal and its clients ask: pages of at most 50
                "search": [
                    ms
                    for label, params in CALLS
                    if int(params.get("rows", 10)) <= 50
                    for ms in timings[label]
                ],
                "harvest": [
                    ms
                    for label, params in CALLS
                    if int(params["rows"]) > 50
                    for ms in timings[label]
                ],
                "full_page": timings[FULL_PAGE[0]],
            }

        warm, changed = figures(latencies), figures(cold)
        if rss is not None:
            console.print(f"平台进程峰值内存 (VmHWM): {rss:.0f} MiB")
        print(
            f"ckan_p95_ms={percentile(warm['ckan'], 95):.1f} "
            f"ckan_changed_p95_ms={percentile(changed['ckan'], 95):.1f} "
            f"ckan_p50_ms={percentile(warm['ckan'], 50):.1f} "
            f"search_p95_ms={percentile(warm['search'], 95):.1f} "
            f"search_changed_p95_ms={percentile(changed['search'], 95):.1f} "
            f"harvest_p50_ms={percentile(warm['harvest'], 50):.1f} "
            f"harvest_1000_p50_ms={percentile(warm['full_page'], 50):.1f} "
            f"datasets={total} requests={len(warm['ckan'])}",
            flush=True,
        )
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
