"""Log-capture benchmark: how long a change committed in a department's PostgreSQL table
takes to reach the subscriber's table when the provider task reads the replication slot
(``mode = "log"``), under a steady stream of changes.

A real PostgreSQL (``tests/pg.py``, ``wal_level=logical``) holds the business table
(``--rows`` rows of the five-column person table) and, in a second database, the
subscriber's target; a hub and two front-end nodes run as processes (``tests/e2e/
hubenv.py``), with SM2+SM3+SM4 on. After the first load, a writer commits ``--rate``
changes a second (ten transactions a second, each updating distinct rows and stamping
them with the transaction's number in ``version``) for ``--seconds``. A poller reads the
target's highest stamp every 20 ms: packages arrive in commit order, so the stamp of
transaction *n* seen means *n* and all before it arrived; its lag is the time from its
commit to that moment.

The reference, in the same run and the same way: PostgreSQL's own logical replication
(a publication and a subscription with ``pgoutput``) from the same table into a third
database, the tool a DBA would reach for between two PostgreSQL servers.

The last line::

    engine=postgresql capture=log changes_per_s=… lag_p50_ms=… lag_p95_ms=… lag_max_ms=…
    ref_lag_p95_ms=… ratio=…

``ratio`` is our p95 lag over the reference's. Target (issue 10): ``lag_p95_ms`` < 2000.

Usage: ``.venv/bin/python bench/capture.py`` (100,000 rows, 1,000 changes/s for 60 s),
``--seconds 20`` for a quicker run, ``--keep DIR`` keeps the logs.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402
from tests.e2e.hubenv import setup_hub  # noqa: E402
from tests.pg import PostgresServer, start_postgres  # noqa: E402

PER_SECOND = 10  # transactions a second; each updates rate / 10 rows
TABLE = (
    "CREATE TABLE {name} (id integer PRIMARY KEY, sfzhm text, xm text, xb text, "
    "version integer NOT NULL)"
)


def dsn(server: PostgresServer, database: str) -> str:
    return f"host=127.0.0.1 port={server.port} user=postgres dbname={database}"


def make_business(server: PostgresServer, rows: int) -> None:
    server.create_database("business")
    with psycopg.connect(dsn(server, "business"), autocommit=True) as conn:
        conn.execute(TABLE.format(name="person"))
        conn.execute(
            "INSERT INTO person SELECT g, '3702021990' || lpad(g::text, 8, '0'), "
            "'姓名' || g, '1', 0 FROM generate_series(1, %s) g",
            (rows,),
        )
        conn.execute("CREATE PUBLICATION bench_ref FOR TABLE person")


def start_reference(server: PostgresServer) -> None:
    """PostgreSQL's logical replication of the table into database ``reference``."""
    server.create_database("reference")
    with psycopg.connect(dsn(server, "reference"), autocommit=True) as conn:
        conn.execute(TABLE.format(name="person"))
    with psycopg.connect(dsn(server, "business"), autocommit=True) as conn:
        # A subscription to the same server cannot make its own slot (it would wait for
        # itself): the slot is made first.
        conn.execute("SELECT pg_create_logical_replication_slot('bench_ref', 'pgoutput')")
    with psycopg.connect(dsn(server, "reference"), autocommit=True) as conn:
        conn.execute(
            f"CREATE SUBSCRIPTION bench_ref CONNECTION '{dsn(server, 'business')}' "
            "PUBLICATION bench_ref WITH (create_slot = false, slot_name = 'bench_ref')"
        )


def max_stamp(conn: psycopg.Connection, table: str) -> int:
    try:
        row = conn.execute(f"SELECT max(version) FROM {table}").fetchone()
    except psycopg.errors.UndefinedTable:
        conn.rollback()
        return -1
    conn.rollback()
    return int(row[0]) if row and row[0] is not None else -1


def wait_for_rows(conn: psycopg.Connection, table: str, rows: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
        except psycopg.errors.UndefinedTable:
            row = None
        conn.rollback()
        if row is not None and row[0] >= rows:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"{table} did not reach {rows} rows in {timeout} s")
        time.sleep(0.2)


class Writer(threading.Thread):
    """Commits ``PER_SECOND`` transactions a second, transaction n stamping its rows
    with n; keeps each one's commit time."""

    def __init__(self, server: PostgresServer, rows: int, rate: int, seconds: float) -> None:
        super().__init__(daemon=True)
        self.server, self.rows, self.seconds = server, rows, seconds
        self.per_txn = max(1, rate // PER_SECOND)
        self.committed: dict[int, float] = {}

    def run(self) -> None:
        with psycopg.connect(dsn(self.server, "business")) as conn:
            conn.execute("SET synchronous_commit = on")
            conn.commit()
            started = time.monotonic()
            n = 0
            while time.monotonic() - started < self.seconds:
                n += 1
                first = (n * self.per_txn) % (self.rows - self.per_txn) + 1
                conn.execute(
                    "UPDATE person SET version = %s, xm = %s WHERE id BETWEEN %s AND %s",
                    (n, f"改{n}", first, first + self.per_txn - 1),
                )
                conn.commit()
                self.committed[n] = time.monotonic()
                pause = started + n / PER_SECOND - time.monotonic()
                if pause > 0:
                    time.sleep(pause)


class Poller(threading.Thread):
    """Reads a target's highest stamp every 20 ms; keeps when each was first seen."""

    def __init__(self, server: PostgresServer, database: str, table: str) -> None:
        super().__init__(daemon=True)
        self.server, self.database, self.table = server, database, table
        self.seen: dict[int, float] = {}
        self.halt = threading.Event()

    def run(self) -> None:
        with psycopg.connect(dsn(self.server, self.database)) as conn:
            last = -1
            while not self.halt.is_set():
                stamp = max_stamp(conn, self.table)
                now = time.monotonic()
                for s in range(last + 1, stamp + 1):
                    self.seen.setdefault(s, now)
                last = max(last, stamp)
                time.sleep(0.02)


def lags_ms(writer: Writer, poller: Poller) -> list[float]:
    missing = [n for n in writer.committed if n not in poller.seen]
    if missing:
        raise RuntimeError(f"{len(missing)} transactions never arrived (first {missing[0]})")
    return sorted((poller.seen[n] - t) * 1000 for n, t in writer.committed.items())


def percentile(values: list[float], p: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(p) - 1]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=100_000, help="rows in the source table")
    parser.add_argument("--rate", type=int, default=1000, help="changes a second")
    parser.add_argument("--seconds", type=float, default=60, help="how long changes go on")
    parser.add_argument("--keep", type=Path, help="work in this directory and keep it")
    args = parser.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="govshare-capture-"))
    work.mkdir(parents=True, exist_ok=True)
    server = start_postgres()
    env = None
    try:
        make_business(server, args.rows)
        server.create_database("target")
        env = setup_hub(
            work,
            source_url=server.url("business"),
            target_url=server.url("target"),
            provider_config={
                "source": "biz",
                "table": "person",
                "key": ["id"],
                "mode": "log",
                "delete_detection": "none",
                "batch_rows": 50_000,
                "schedule": {"interval_seconds": 0.2},
            },
        )
        for proc in env.procs.values():
            proc.start()
        env.wait_healthy()
        start_reference(server)
        t0 = time.monotonic()
        with (
            psycopg.connect(dsn(server, "target")) as target,
            psycopg.connect(dsn(server, "reference")) as reference,
        ):
            wait_for_rows(target, "person_copy", args.rows, timeout=600)
            wait_for_rows(reference, "person", args.rows, timeout=600)
            print(f"first load of {args.rows:,} rows: {time.monotonic() - t0:.1f} s", flush=True)
        ours = Poller(server, "target", "person_copy")
        ref = Poller(server, "reference", "person")
        writer = Writer(server, args.rows, args.rate, args.seconds)
        for thread in (ours, ref, writer):
            thread.start()
        writer.join()
        last = max(writer.committed)
        deadline = time.monotonic() + 120
        while min(max(ours.seen, default=-1), max(ref.seen, default=-1)) < last:
            if time.monotonic() > deadline:
                break
            time.sleep(0.1)
        ours.halt.set()
        ref.halt.set()
        ours.join()
        ref.join()
        mine, theirs = lags_ms(writer, ours), lags_ms(writer, ref)
        rate = writer.per_txn * len(writer.committed) / args.seconds
        p95, ref_p95 = percentile(mine, 95), percentile(theirs, 95)
        print(
            f"ours: p50 {percentile(mine, 50):.0f} ms, p95 {p95:.0f} ms, max {mine[-1]:.0f} ms; "
            f"PostgreSQL logical replication: p50 {percentile(theirs, 50):.0f} ms, "
            f"p95 {ref_p95:.0f} ms"
        )
        print(
            f"engine=postgresql capture=log changes_per_s={rate:.0f} "
            f"lag_p50_ms={percentile(mine, 50):.0f} lag_p95_ms={p95:.0f} "
            f"lag_max_ms={mine[-1]:.0f} ref_lag_p95_ms={ref_p95:.0f} "
            f"ratio={p95 / max(ref_p95, 1):.2f}"
        )
    finally:
        if env is not None:
            env.stop_all()
        with (
            contextlib.suppress(psycopg.Error),
            psycopg.connect(dsn(server, "reference"), autocommit=True) as conn,
        ):
            conn.execute("DROP SUBSCRIPTION IF EXISTS bench_ref")
        server.stop()
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
