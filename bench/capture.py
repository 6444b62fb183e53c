"""Log-capture benchmark: how long a change committed in a department's business table
takes to reach the subscriber's table when the provider task reads the database's change
log (``mode = "log"``), under a steady stream of changes.

``--engine postgresql`` (the default): a real PostgreSQL (``tests/pg.py``,
``wal_level=logical``) holds the business table and, in a second database, the
subscriber's target; the provider reads a replication slot. ``--engine mysql``: a real
MariaDB (``tests/mariadb.py``: binary log in ROW format, ``binlog_row_metadata=FULL``)
holds the business table (database ``business``) and the target (database ``target``);
the provider reads the binary log (``node/binlog.py``) through a
``mysql+pymysql://`` source.

The business table is ``--rows`` rows of the five-column person table. A hub and two
front-end nodes run as processes (``tests/e2e/hubenv.py``), with SM2+SM3+SM4 on. After
the first load, a writer commits ``--rate`` changes a second (ten transactions a second,
each updating distinct rows and stamping them with the transaction's number in
``version``) for ``--seconds``. A poller reads the target's highest stamp every 20 ms:
packages arrive in commit order, so the stamp of transaction *n* seen means *n* and all
before it arrived; its lag is the time from its commit to that moment.

The reference, in the same run and measured the same way, is the tool a DBA would reach
for between two servers of the engine:

* postgresql: PostgreSQL's own logical replication (a publication and a subscription
  with ``pgoutput``) from the same table into a third database;
* mysql: MariaDB's own replication: a second ``mariadbd`` started as a replica of the
  first (file/position, ``START SLAVE``, only ``business.%`` replicated), the poller
  reading the replica's copy of the table.

The last line::

    engine=postgresql capture=log changes_per_s=… lag_p50_ms=… lag_p95_ms=… lag_max_ms=…
    ref_lag_p95_ms=… ratio=…

(``engine=mysql`` for MariaDB.) ``ratio`` is our p95 lag over the reference's. Target
(issue 10): ``lag_p95_ms`` < 2000.

Usage: ``.venv/bin/python bench/capture.py`` (PostgreSQL, 100,000 rows, 1,000 changes/s
for 60 s), ``--engine mysql`` for MariaDB, ``--seconds 20`` for a quicker run, ``--keep
DIR`` keeps the logs (for MariaDB also both servers' logs).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402
import pymysql  # noqa: E402
from tests import mariadb  # noqa: E402
from tests.e2e.hubenv import setup_hub  # noqa: E402
from tests.pg import PostgresServer, free_port, start_postgres  # noqa: E402

PER_SECOND = 10  # transactions a second; each updates rate / 10 rows
TABLE = (
    "CREATE TABLE {name} (id integer PRIMARY KEY, sfzhm text, xm text, xb text, "
    "version integer NOT NULL)"
)
UPDATE = "UPDATE person SET version = %s, xm = %s WHERE id BETWEEN %s AND %s"
TARGET_TABLE = "person_copy"  # the subscriber task's table (tests/e2e/hubenv.py)
REFERENCE_TABLE = "person"


class PostgresEngine:
    """One PostgreSQL: databases ``business``, ``target`` and ``reference`` (the
    reference's logical-replication subscription)."""

    name = "postgresql"
    reference_label = "PostgreSQL logical replication"

    def __init__(self, work: Path) -> None:
        self.work = work
        self.server: PostgresServer | None = None

    def start(self) -> None:
        self.server = start_postgres()

    def dsn(self, database: str) -> str:
        assert self.server is not None
        return f"host=127.0.0.1 port={self.server.port} user=postgres dbname={database}"

    def make_business(self, rows: int) -> str:
        assert self.server is not None
        url = self.server.create_database("business")
        with psycopg.connect(self.dsn("business"), autocommit=True) as conn:
            conn.execute(TABLE.format(name="person"))
            conn.execute(
                "INSERT INTO person SELECT g, '3702021990' || lpad(g::text, 8, '0'), "
                "'姓名' || g, '1', 0 FROM generate_series(1, %s) g",
                (rows,),
            )
            conn.execute("CREATE PUBLICATION bench_ref FOR TABLE person")
        return url

    def make_target(self) -> str:
        assert self.server is not None
        return self.server.create_database("target")

    def start_reference(self) -> None:
        """PostgreSQL's logical replication of the table into database ``reference``."""
        assert self.server is not None
        self.server.create_database("reference")
        with psycopg.connect(self.dsn("reference"), autocommit=True) as conn:
            conn.execute(TABLE.format(name=REFERENCE_TABLE))
        with psycopg.connect(self.dsn("business"), autocommit=True) as conn:
            # A subscription to the same server cannot make its own slot (it would wait
            # for itself): the slot is made first.
            conn.execute("SELECT pg_create_logical_replication_slot('bench_ref', 'pgoutput')")
        with psycopg.connect(self.dsn("reference"), autocommit=True) as conn:
            conn.execute(
                f"CREATE SUBSCRIPTION bench_ref CONNECTION '{self.dsn('business')}' "
                "PUBLICATION bench_ref WITH (create_slot = false, slot_name = 'bench_ref')"
            )

    def connect(self, where: str) -> psycopg.Connection[Any]:
        """``where``: ``business``, ``target`` or ``reference`` (each a database)."""
        conn = psycopg.connect(self.dsn(where))
        conn.execute("SET synchronous_commit = on")
        conn.commit()
        return conn

    def scalar(self, conn: psycopg.Connection[Any], sql: str) -> Any:
        """The one value ``sql`` returns; None while the table does not exist. Each query
        ends its transaction, so the next one sees the latest commits."""
        try:
            row = conn.execute(sql).fetchone()
        except psycopg.errors.UndefinedTable:
            row = None
        conn.rollback()
        return row[0] if row else None

    def commit(self, conn: psycopg.Connection[Any], sql: str, params: tuple[Any, ...]) -> None:
        conn.execute(sql, params)
        conn.commit()

    def stop(self) -> None:
        if self.server is None:
            return
        with (
            contextlib.suppress(psycopg.Error),
            psycopg.connect(self.dsn("reference"), autocommit=True) as conn,
        ):
            conn.execute("DROP SUBSCRIPTION IF EXISTS bench_ref")
        self.server.stop()
        self.server = None


class ReplicaServer(mariadb.MariaDBServer):
    """A MariaDB started as a replica: its own server id, no binary log of its own, and
    only the ``business`` database applied (the node's target database is on the same
    primary and in its log too)."""

    def _binlog_options(self) -> list[str]:
        return [
            "--skip-log-bin",
            "--server-id=2",
            f"--relay-log={self.base / 'relay'}",
            "--replicate-wild-do-table=business.%",
        ]


def start_replica() -> ReplicaServer:
    """Started the way ``tests/mariadb.py``'s ``start_mariadb`` starts the primary."""
    mariadbd, install_db = mariadb.mariadbd_path(), mariadb.install_db_path()
    if mariadbd is None or install_db is None:
        raise RuntimeError("MariaDB binaries not found: apt-get install -y mariadb-server")
    replica = ReplicaServer(
        mariadbd=mariadbd,
        install_db=install_db,
        base=Path(tempfile.mkdtemp(prefix="govshare-mariadb-replica-")),
        port=free_port(),
        run_as="mysql" if os.geteuid() == 0 else None,
    )
    replica.start()
    return replica


class MariaDBEngine:
    """A MariaDB primary (tests/mariadb.py) with databases ``business`` and ``target``,
    and for the reference a second MariaDB replicating ``business`` from it."""

    name = "mysql"
    reference_label = "MariaDB replication"

    def __init__(self, work: Path) -> None:
        self.work = work
        self.primary: mariadb.MariaDBServer | None = None
        self.replica: ReplicaServer | None = None
        self.business_from: tuple[str, int] | None = None

    def start(self) -> None:
        self.primary = mariadb.start_mariadb()
        with self.primary.connect() as conn, conn.cursor() as cur:
            # The suite's 64 MiB pool suits its small tables; the business table, the
            # target and the node's reads share this one (as in bench/exchange.py).
            cur.execute(f"SET GLOBAL innodb_buffer_pool_size = {256 << 20}")

    def make_business(self, rows: int) -> str:
        assert self.primary is not None
        # The replica starts reading the log here, before the database exists: it makes
        # the table and copies its rows from the log, as PostgreSQL's subscription does.
        with self.primary.connect() as conn, conn.cursor() as cur:
            cur.execute("SHOW MASTER STATUS")
            file, position = cur.fetchone()[:2]
        self.business_from = (file, int(position))
        url = self.primary.create_database("business")
        with self.primary.connect("business") as conn, conn.cursor() as cur:
            cur.execute(TABLE.format(name="person") + " DEFAULT CHARSET=utf8mb4")
            cur.execute(
                "INSERT INTO person SELECT seq, CONCAT('3702021990', LPAD(seq, 8, '0')), "
                f"CONCAT('姓名', seq), '1', 0 FROM seq_1_to_{int(rows)}"
            )
        return url

    def make_target(self) -> str:
        assert self.primary is not None
        return self.primary.create_database("target")

    def start_reference(self) -> None:
        """A second mariadbd replicating ``business`` from the primary."""
        assert self.primary is not None
        assert self.business_from is not None
        self.replica = start_replica()
        file, position = self.business_from
        with self.replica.root() as conn, conn.cursor() as cur:
            cur.execute(
                "CHANGE MASTER TO MASTER_HOST = '127.0.0.1', MASTER_PORT = %s, "
                "MASTER_USER = %s, MASTER_PASSWORD = %s, "
                "MASTER_LOG_FILE = %s, MASTER_LOG_POS = %s",
                (self.primary.port, mariadb.USER, mariadb.PASSWORD, file, position),
            )
            cur.execute("START SLAVE")

    def connect(self, where: str) -> pymysql.connections.Connection[Any]:
        """``business`` and ``target``: those databases on the primary; ``reference``:
        ``business`` on the replica. Autocommit, so each query sees the latest commits."""
        server = self.replica if where == "reference" else self.primary
        assert server is not None
        return server.connect("business" if where == "reference" else where)

    def scalar(self, conn: pymysql.connections.Connection[Any], sql: str) -> Any:
        """The one value ``sql`` returns; None while the table does not exist."""
        with conn.cursor() as cur:
            try:
                cur.execute(sql)
            except pymysql.err.ProgrammingError as exc:
                if exc.args[0] == 1146:  # ER_NO_SUCH_TABLE
                    return None
                raise
            row = cur.fetchone()
        return row[0] if row else None

    def commit(
        self, conn: pymysql.connections.Connection[Any], sql: str, params: tuple[Any, ...]
    ) -> None:
        with conn.cursor() as cur:
            cur.execute(sql, params)  # autocommit: one statement, one transaction

    def replica_status(self) -> str:
        """The replica's threads and last errors, for a reference that falls behind."""
        if self.replica is None:
            return "no replica"
        with self.replica.root() as conn, conn.cursor(pymysql.cursors.DictCursor) as cur:
            cur.execute("SHOW SLAVE STATUS")
            row = cur.fetchone() or {}
        keys = ("Slave_IO_Running", "Slave_SQL_Running", "Last_IO_Error", "Last_SQL_Error")
        return ", ".join(f"{k}={row.get(k)!r}" for k in keys)

    def stop(self) -> None:
        for label, server in (("replica", self.replica), ("primary", self.primary)):
            if server is None:
                continue
            with contextlib.suppress(OSError):
                shutil.copy(server.base / "server.log", self.work / f"mariadb-{label}.log")
            server.stop()  # removes its directory
        self.replica = self.primary = None


Engine = PostgresEngine | MariaDBEngine
ENGINES: dict[str, type[PostgresEngine] | type[MariaDBEngine]] = {
    "postgresql": PostgresEngine,
    "mysql": MariaDBEngine,
}


def max_stamp(engine: Engine, conn: Any, table: str) -> int:
    stamp = engine.scalar(conn, f"SELECT max(version) FROM {table}")
    return int(stamp) if stamp is not None else -1


def wait_for_rows(engine: Engine, where: str, table: str, rows: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    with contextlib.closing(engine.connect(where)) as conn:
        while True:
            count = engine.scalar(conn, f"SELECT count(*) FROM {table}")
            if count is not None and count >= rows:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"{where}'s {table} did not reach {rows} rows in {timeout} s")
            time.sleep(0.2)


class Writer(threading.Thread):
    """Commits ``PER_SECOND`` transactions a second, transaction n stamping its rows
    with n; keeps each one's commit time."""

    def __init__(self, engine: Engine, rows: int, rate: int, seconds: float) -> None:
        super().__init__(daemon=True)
        self.engine, self.rows, self.seconds = engine, rows, seconds
        self.per_txn = max(1, rate // PER_SECOND)
        self.committed: dict[int, float] = {}

    def run(self) -> None:
        with contextlib.closing(self.engine.connect("business")) as conn:
            started = time.monotonic()
            n = 0
            while time.monotonic() - started < self.seconds:
                n += 1
                first = (n * self.per_txn) % (self.rows - self.per_txn) + 1
                self.engine.commit(conn, UPDATE, (n, f"改{n}", first, first + self.per_txn - 1))
                self.committed[n] = time.monotonic()
                pause = started + n / PER_SECOND - time.monotonic()
                if pause > 0:
                    time.sleep(pause)


class Poller(threading.Thread):
    """Reads a target's highest stamp every 20 ms; keeps when each was first seen."""

    def __init__(self, engine: Engine, where: str, table: str) -> None:
        super().__init__(daemon=True)
        self.engine, self.where, self.table = engine, where, table
        self.seen: dict[int, float] = {}
        self.halt = threading.Event()

    def run(self) -> None:
        with contextlib.closing(self.engine.connect(self.where)) as conn:
            last = -1
            while not self.halt.is_set():
                stamp = max_stamp(self.engine, conn, self.table)
                now = time.monotonic()
                for s in range(last + 1, stamp + 1):
                    self.seen.setdefault(s, now)
                last = max(last, stamp)
                time.sleep(0.02)


def lags_ms(writer: Writer, poller: Poller) -> list[float]:
    missing = [n for n in writer.committed if n not in poller.seen]
    if missing:
        raise RuntimeError(
            f"{poller.where}: {len(missing)} transactions never arrived (first {missing[0]})"
        )
    return sorted((poller.seen[n] - t) * 1000 for n, t in writer.committed.items())


def percentile(values: list[float], p: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(p) - 1]


def run(engine: Engine, work: Path, args: argparse.Namespace) -> None:
    engine.start()
    env = None
    try:
        source_url = engine.make_business(args.rows)
        env = setup_hub(
            work,
            source_url=source_url,
            target_url=engine.make_target(),
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
        engine.start_reference()
        t0 = time.monotonic()
        wait_for_rows(engine, "target", TARGET_TABLE, args.rows, timeout=600)
        wait_for_rows(engine, "reference", REFERENCE_TABLE, args.rows, timeout=600)
        print(f"first load of {args.rows:,} rows: {time.monotonic() - t0:.1f} s", flush=True)
        ours = Poller(engine, "target", TARGET_TABLE)
        ref = Poller(engine, "reference", REFERENCE_TABLE)
        writer = Writer(engine, args.rows, args.rate, args.seconds)
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
            f"{engine.reference_label}: p50 {percentile(theirs, 50):.0f} ms, "
            f"p95 {ref_p95:.0f} ms, max {theirs[-1]:.0f} ms"
        )
        print(
            f"engine={engine.name} capture=log changes_per_s={rate:.0f} "
            f"lag_p50_ms={percentile(mine, 50):.0f} lag_p95_ms={p95:.0f} "
            f"lag_max_ms={mine[-1]:.0f} ref_lag_p95_ms={ref_p95:.0f} "
            f"ratio={p95 / max(ref_p95, 1):.2f}"
        )
    finally:
        if env is not None:
            env.stop_all()
        engine.stop()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--engine", choices=sorted(ENGINES), default="postgresql", help="the business database"
    )
    parser.add_argument("--rows", type=int, default=100_000, help="rows in the source table")
    parser.add_argument("--rate", type=int, default=1000, help="changes a second")
    parser.add_argument("--seconds", type=float, default=60, help="how long changes go on")
    parser.add_argument("--keep", type=Path, help="work in this directory and keep it")
    args = parser.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="govshare-capture-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        run(ENGINES[args.engine](work), work, args)
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
