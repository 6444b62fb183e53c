"""Exchange benchmark: a population table moved end to end through real processes.

Builds a provider's business database with ``--rows`` rows of a 15-column population
table (人口基本信息), then starts a hub (``govshare serve``) and two front-end nodes
(``govshare node run``: the police bureau's provider node and the human-resources
bureau's subscriber node) with ``tests/e2e/hubenv.py``'s ``setup_hub``. Packages are
signed, digested and encrypted with the hub's defaults (SM2, SM3, SM4).

``--engine`` chooses where the business database and the subscriber's target database
live: ``sqlite`` (the default: two files), ``postgresql`` (a real server started with
``tests/pg.py``'s ``start_postgres``, databases ``business`` and ``consumer``) or
``mysql`` (a real MariaDB started with ``tests/mariadb.py``'s ``start_mariadb``, the same
two databases). The server is started for each run and stopped at its end; the hub's own
database and the nodes' local stores are SQLite in every case. Each engine is one class
(``SqliteEngine``, ``PostgresEngine``, ``MariaDBEngine``) with the same methods.

Measured, in order:

* the reference: the same table copied by the engine itself, without Python in the
  data path — SQLite ``ATTACH`` + ``INSERT … SELECT`` into a fresh file; PostgreSQL
  ``COPY (SELECT …) TO STDOUT`` piped into ``COPY … FROM STDIN`` of the other database;
  MariaDB ``INSERT INTO consumer.reference SELECT * FROM business.person``;
* the full load: the nodes are started with the provider task stopped; once both have
  registered and report their tasks, the task is started and the clock runs until the
  subscriber's table has every row, equal to the source (row count and sum of versions
  while polling, then a checksum of every column of every row: a CRC in Python on
  SQLite, MD5 in SQL on PostgreSQL, CRC32 in SQL on MariaDB). The time including the
  nodes' start-up is printed beside it;
* CPU time of each process during the full load (``/proc/PID/stat``; a node's own
  child processes, such as a SQLite source's reading process, counted with it), and of
  the database server on PostgreSQL and MariaDB;
* peak memory (``VmHWM``) of the hub and both nodes (a node's child processes shown
  apart, and counted in ``max_rss_mb``), and their resident memory when
  25 %, 50 %, 75 % and 100 % of the rows had arrived; by default a 200,000-row run
  comes first and the peaks of the two sizes are compared, to show memory stays flat
  as the table grows;
* the reconciliation (桥接核对): the bench asks the hub for it as soon as the first rows
  have arrived, as the hub's monitor would for a task started during the day (the
  monitor itself is kept quiet, so that it lands at the same point in every run). The
  provider answers once it has caught up, with a scan of every source key, inside the
  full load's time; the subscriber checksums its keys once it has applied that package.
  The bench waits for the outcome, which must be ``match``, and prints the seconds from
  asking to completion. ``--reconcile after`` asks for it once the load is verified
  instead, to time the load without it;
* an incremental batch: 10,000 rows updated (new version) after the full load, timed
  until all 10,000 changes are visible in the target; then the target is checked
  against the source once more.

The last line of output is machine-readable (figures of the largest run)::

    engine=… rows_per_s=… raw_rows_per_s=… ratio=… max_rss_mb=… incr_10k_s=… reconcile_s=…

Usage: ``.venv/bin/python bench/exchange.py`` (1,000,000 rows after 200,000; about a
minute), ``--rows 200000`` for one quicker run, ``--engine postgresql`` or ``--engine
mysql`` for a server database, ``--keep DIR`` keeps the databases (SQLite) and the
process logs (the server's log too), ``--profile DIR`` runs the three processes under
py-spy.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # tests/e2e/hubenv.py holds the process setup

import httpx  # noqa: E402
import psycopg  # noqa: E402
import pymysql  # noqa: E402
from tests.e2e.hubenv import HubEnv, setup_hub  # noqa: E402
from tests.mariadb import PASSWORD as MARIADB_PASSWORD  # noqa: E402
from tests.mariadb import USER as MARIADB_USER  # noqa: E402
from tests.mariadb import MariaDBServer, start_mariadb  # noqa: E402
from tests.pg import PostgresServer, start_postgres  # noqa: E402

from govshare.catalog.schemas import ItemIn  # noqa: E402

TABLE = "person"
TARGET_TABLE = "person_copy"  # what setup_hub's subscriber task writes
INCREMENT = 10_000

# (column, 数据项名称, catalog type, length, SQLite type)
COLUMNS = [
    ("id", "编号", "I", 10, "INTEGER PRIMARY KEY"),
    ("sfzhm", "公民身份号码", "C", 18, "TEXT NOT NULL"),
    ("xm", "姓名", "C", 50, "TEXT NOT NULL"),
    ("xb", "性别", "C", 1, "TEXT NOT NULL"),
    ("mz", "民族", "C", 2, "TEXT"),
    ("csrq", "出生日期", "C", 10, "TEXT"),
    ("hjdz", "户籍地址", "C", 200, "TEXT"),
    ("xzqhdm", "行政区划代码", "C", 6, "TEXT"),
    ("hyzk", "婚姻状况", "C", 2, "TEXT"),
    ("whcd", "文化程度", "C", 2, "TEXT"),
    ("zy", "职业", "C", 100, "TEXT"),
    ("lxdh", "联系电话", "C", 20, "TEXT"),
    ("djrq", "登记日期", "C", 10, "TEXT"),
    ("version", "行版本(更新序号)", "I", 12, "INTEGER NOT NULL"),
    ("bz", "备注", "C", 200, "TEXT"),
]
NAMES = [c[0] for c in COLUMNS]

# 青岛市 districts: code, name (GB/T 2260).
DISTRICTS = [
    ("370202", "市南区"),
    ("370203", "市北区"),
    ("370211", "黄岛区"),
    ("370212", "崂山区"),
    ("370213", "李沧区"),
    ("370214", "城阳区"),
    ("370215", "即墨区"),
    ("370281", "胶州市"),
    ("370283", "平度市"),
    ("370285", "莱西市"),
]
# GB/T 3304 民族 (汉族 most of the time), GB/T 2261.2 婚姻状况, GB/T 4658 文化程度.
NATIONS = ["01"] * 40 + ["02", "03", "04", "05", "08", "11", "15"]
MARRIAGE = ["10"] * 3 + ["20"] * 6 + ["21", "22", "23", "30", "40", "90"]
EDUCATION = ["10", "20", "20", "20", "30", "30", "60", "60", "70", "70", "80", "90"]
PHONE_PREFIX = ["138", "139", "150", "151", "158", "186", "187", "133", "153", "177", "199"]
REMARKS = [None] * 12 + ["户口迁入", "户口迁出待核", "集体户", "曾用名已登记", "信息已核验"]
ID_WEIGHTS = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
ID_CHECK = "10X98765432"


def _weighted(digits: str, offset: int) -> int:
    return sum(int(d) * ID_WEIGHTS[offset + i] for i, d in enumerate(digits))


@dataclass
class Pools:
    """Small pools of realistic values (Faker zh_CN); rows are drawn from them."""

    names: list[str]
    jobs: list[str]
    streets: list[str]
    dates: list[str]  # YYYYMMDD
    region_w: list[int] = field(default_factory=list)
    date_w: list[int] = field(default_factory=list)
    seq_w: list[int] = field(default_factory=list)

    @classmethod
    def make(cls, seed: int) -> Pools:
        # The bench group's: imported here so that the command line can be checked (and
        # tested) where only the dev group is installed.
        from faker import Faker

        fake = Faker("zh_CN")
        fake.seed_instance(seed)
        first = date(1940, 1, 1)
        dates = [(first + timedelta(days=d)).strftime("%Y%m%d") for d in range(0, 365 * 68, 3)]
        pools = cls(
            names=list(dict.fromkeys(fake.name() for _ in range(6000))),
            jobs=list(dict.fromkeys(fake.job() for _ in range(600))),
            streets=list(dict.fromkeys(fake.street_name() for _ in range(800))),
            dates=dates,
        )
        # The ID number's check digit is a weighted sum: precompute each part's share.
        pools.region_w = [_weighted(code, 0) for code, _ in DISTRICTS]
        pools.date_w = [_weighted(d, 6) for d in dates]
        pools.seq_w = [_weighted(f"{q:03d}", 14) for q in range(1000)]
        return pools


def person_rows(
    pools: Pools, rng: random.Random, first_id: int, count: int, first_version: int
) -> list[tuple[object, ...]]:
    """``count`` rows, drawn column by column (``random.choices``), not row by row."""
    ids = range(first_id, first_id + count)
    regions = rng.choices(range(len(DISTRICTS)), k=count)
    births = rng.choices(range(len(pools.dates)), k=count)
    seqs = rng.choices(range(1000), k=count)
    sfzhm = [
        f"{DISTRICTS[r][0]}{pools.dates[b]}{q:03d}"
        f"{ID_CHECK[(pools.region_w[r] + pools.date_w[b] + pools.seq_w[q]) % 11]}"
        for r, b, q in zip(regions, births, seqs, strict=True)
    ]
    xb = ["1" if q % 2 else "2" for q in seqs]
    csrq = [f"{d[:4]}-{d[4:6]}-{d[6:]}" for d in (pools.dates[b] for b in births)]
    streets = rng.choices(pools.streets, k=count)
    numbers = rng.choices(range(1, 400), k=count)
    rooms = rng.choices(range(101, 2800), k=count)
    hjdz = [
        f"山东省青岛市{DISTRICTS[r][1]}{s}{n}号{m // 100}单元{m}户"
        for r, s, n, m in zip(regions, streets, numbers, rooms, strict=True)
    ]
    xzqhdm = [DISTRICTS[r][0] for r in regions]
    phones = [
        f"{p}{x:08d}"
        for p, x in zip(
            rng.choices(PHONE_PREFIX, k=count),
            rng.choices(range(100_000_000), k=count),
            strict=True,
        )
    ]
    registered = rng.choices(range(0, 365 * 20), k=count)
    djrq = [(date(2004, 1, 1) + timedelta(days=d)).isoformat() for d in registered]
    versions = range(first_version, first_version + count)
    return list(
        zip(
            ids,
            sfzhm,
            rng.choices(pools.names, k=count),
            xb,
            rng.choices(NATIONS, k=count),
            csrq,
            hjdz,
            xzqhdm,
            rng.choices(MARRIAGE, k=count),
            rng.choices(EDUCATION, k=count),
            rng.choices(pools.jobs, k=count),
            phones,
            djrq,
            versions,
            rng.choices(REMARKS, k=count),
            strict=True,
        )
    )


def person_chunks(
    rows: int, *, seed: int = 20241121, chunk: int = 100_000
) -> Iterator[list[tuple[object, ...]]]:
    """The table's rows, ``chunk`` at a time; the same rows for every engine."""
    pools = Pools.make(seed)
    rng = random.Random(seed)
    for start in range(1, rows + 1, chunk):
        yield person_rows(pools, rng, start, min(chunk, rows + 1 - start), start)


def make_source(path: Path, rows: int, *, seed: int = 20241121, chunk: int = 100_000) -> None:
    """The business database as a SQLite file (also bench/query_api.py's source)."""
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute(f"CREATE TABLE {TABLE} ({', '.join(f'{c[0]} {c[4]}' for c in COLUMNS)})")
    db.execute(f"CREATE INDEX ix_{TABLE}_version ON {TABLE} (version, id)")
    marks = ", ".join("?" * len(COLUMNS))
    for part in person_chunks(rows, seed=seed, chunk=chunk):
        with db:
            db.executemany(f"INSERT INTO {TABLE} VALUES ({marks})", part)
    db.close()


def raw_copy(source: Path, dest: Path) -> float:
    """The reference: the whole table copied by SQLite itself; returns seconds."""
    started = time.perf_counter()
    db = sqlite3.connect(dest)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute(f"ATTACH DATABASE '{source}' AS src")
    with db:
        db.execute(f"CREATE TABLE {TABLE} ({', '.join(f'{c[0]} {c[4]}' for c in COLUMNS)})")
        db.execute(f"INSERT INTO {TABLE} SELECT * FROM src.{TABLE}")
    db.execute("DETACH DATABASE src")
    db.close()
    return time.perf_counter() - started


def _crc(*values: object) -> int:
    return zlib.crc32("\x1f".join("" if v is None else str(v) for v in values).encode())


def table_checksum(path: Path, table: str) -> tuple[int, int]:
    """Row count and the sum of a CRC-32 of every row's columns (order-independent)."""
    db = sqlite3.connect(path, timeout=60)
    db.create_function("rowcrc", len(NAMES), _crc, deterministic=True)
    try:
        count, total = db.execute(
            f"SELECT count(*), coalesce(sum(rowcrc({', '.join(NAMES)})), 0) FROM {table}"
        ).fetchone()
    finally:
        db.close()
    return int(count), int(total)


def server_cpu_seconds(pid: int) -> float:
    """CPU time of a database server: the process (all its threads), the children it
    has reaped (PostgreSQL's ended backends) and the children still running."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return 0.0
    total = sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")
    return total + sum(cpu_seconds(int(child)) for child in children)


def _ddl_type(kind: str, length: int, sqlite_type: str) -> str:
    """A column's type in a server database: BIGINT for the catalog's integers,
    VARCHAR(length) for its characters, as a business system would declare them."""
    base = "BIGINT" if kind == "I" else f"VARCHAR({length})"
    return base + (" NOT NULL" if "NOT NULL" in sqlite_type or "PRIMARY" in sqlite_type else "")


def server_ddl(table: str, *, key: bool) -> str:
    """``CREATE TABLE`` for PostgreSQL and MariaDB (the same text for both)."""
    cols = [f"{name} {_ddl_type(kind, length, st)}" for name, _, kind, length, st in COLUMNS]
    return f"CREATE TABLE {table} ({', '.join(cols + (['PRIMARY KEY (id)'] if key else []))})"


# One class per engine: the business and subscriber databases, how the source table is
# built and filled, the raw reference copy, the checksum, the DB-API connections the bench
# polls and updates through. Every class has the same methods; ``run`` uses only those.


class SqliteEngine:
    """Two SQLite files (WAL); the reference is a third file written by ``ATTACH`` +
    ``INSERT … SELECT``."""

    name = "sqlite"
    mark = "?"  # the driver's parameter marker
    raw_label = "ATTACH + INSERT … SELECT"
    missing_table: tuple[type[Exception], ...] = (sqlite3.OperationalError,)

    def __init__(self, work: Path) -> None:
        self.source = work / "business.db"
        self.reference = work / "reference.db"
        self.target = work / "consumer.db"
        self.source_url = f"sqlite:///{self.source}"
        self.target_url = f"sqlite:///{self.target}"

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def build_source(self, rows: int) -> str:
        make_source(self.source, rows)
        return f"{self.source.stat().st_size / 2**20:.0f} MiB"

    def raw_copy(self) -> float:
        return raw_copy(self.source, self.reference)

    def checksum(self, side: str) -> tuple[int, int]:
        if side == "source":
            return table_checksum(self.source, TABLE)
        return table_checksum(self.target, TARGET_TABLE)

    def connect(self, side: str) -> Any:
        """The subscriber's file read-only (None until the node has made it)."""
        if side == "source":
            return sqlite3.connect(self.source, timeout=60)
        if not self.target.exists():
            return None
        return sqlite3.connect(f"file:{self.target}?mode=ro", uri=True, timeout=60)

    def update(self, changes: list[tuple[int, str, int]]) -> None:
        """The incremental batch: (version, bz, id) of each changed row, one UPDATE each."""
        db = self.connect("source")
        with db:
            db.executemany(
                f"UPDATE {TABLE} SET version = ?, hyzk = '20', bz = ? WHERE id = ?", changes
            )
        db.close()

    def server_cpu(self) -> float | None:
        return None


class PostgresEngine:
    """A real PostgreSQL (tests/pg.py: fsync off, as in the suite) with two databases,
    ``business`` and ``consumer``. The source is filled with ``COPY … FROM STDIN``, its
    key and index built afterwards, then ``VACUUM ANALYZE`` (a settled business table).
    The reference pipes ``COPY (SELECT …) TO STDOUT`` into ``COPY … FROM STDIN`` of a
    table with the same key in ``consumer`` (dropped after it is timed)."""

    name = "postgresql"
    mark = "%s"
    raw_label = "COPY TO STDOUT → COPY FROM STDIN"
    missing_table: tuple[type[Exception], ...] = (psycopg.errors.UndefinedTable,)

    def __init__(self, work: Path) -> None:
        self.work = work
        self.server: PostgresServer | None = None
        self.source_url = self.target_url = ""

    def start(self) -> None:
        self.server = start_postgres()
        self.source_url = self.server.create_database("business")
        self.target_url = self.server.create_database("consumer")

    def stop(self) -> None:
        if self.server is None:
            return
        self.server.stop()
        with contextlib.suppress(OSError):
            shutil.copy(self.server.data_dir / "server.log", self.work / "postgresql.log")
        shutil.rmtree(self.server.data_dir.parent, ignore_errors=True)
        self.server = None

    def connect(self, side: str) -> psycopg.Connection[Any]:
        assert self.server is not None
        dbname = "business" if side == "source" else "consumer"
        return psycopg.connect(
            f"host=127.0.0.1 port={self.server.port} user=postgres dbname={dbname}",
            autocommit=True,
        )

    def build_source(self, rows: int) -> str:
        with self.connect("source") as conn:
            conn.execute(server_ddl(TABLE, key=False))
            with conn.cursor().copy(f"COPY {TABLE} ({', '.join(NAMES)}) FROM STDIN") as copy:
                for chunk in person_chunks(rows):
                    for row in chunk:
                        copy.write_row(row)
            conn.execute(f"ALTER TABLE {TABLE} ADD PRIMARY KEY (id)")
            conn.execute(f"CREATE INDEX ix_{TABLE}_version ON {TABLE} (version, id)")
            conn.execute(f"VACUUM ANALYZE {TABLE}")
            size = conn.execute(f"SELECT pg_total_relation_size('{TABLE}')").fetchone()
        return f"{size[0] / 2**20:.0f} MiB (表 + 索引)" if size else "?"

    def raw_copy(self) -> float:
        with self.connect("source") as src, self.connect("target") as dst:
            started = time.perf_counter()
            dst.execute(server_ddl("reference", key=True))
            with (
                src.cursor().copy(
                    f"COPY (SELECT {', '.join(NAMES)} FROM {TABLE}) TO STDOUT"
                ) as out,
                dst.cursor().copy(f"COPY reference ({', '.join(NAMES)}) FROM STDIN") as into,
            ):
                for data in out:
                    into.write(data)
            elapsed = time.perf_counter() - started
            dst.execute("DROP TABLE reference")
        return elapsed

    def checksum(self, side: str) -> tuple[int, int]:
        """Count and the sum of the first 60 bits of each row's MD5 (columns as text,
        NULL as chr(30), joined by chr(31)), in SQL."""
        row_text = ", ".join(f"coalesce({n}::text, chr(30))" for n in NAMES)
        table = TABLE if side == "source" else TARGET_TABLE
        with self.connect(side) as conn:
            found = conn.execute(
                f"SELECT count(*), coalesce(sum(('x' || left(md5(concat_ws(chr(31), {row_text})),"
                f" 15))::bit(60)::bigint), 0) FROM {table}"
            ).fetchone()
        assert found is not None
        return int(found[0]), int(found[1])

    def update(self, changes: list[tuple[int, str, int]]) -> None:
        """One UPDATE from arrays (row-by-row statements, even pipelined, took 0.35 s of
        the incremental figure on a busy machine: the source's time, not the exchange's)."""
        versions, remarks, ids = (list(c) for c in zip(*changes, strict=True))
        with self.connect("source") as conn:
            conn.execute(
                f"UPDATE {TABLE} AS p SET version = c.version, hyzk = '20', bz = c.bz "
                "FROM unnest(%s::bigint[], %s::text[], %s::bigint[]) AS c (version, bz, id) "
                "WHERE p.id = c.id",
                (versions, remarks, ids),
            )

    def server_cpu(self) -> float | None:
        assert self.server is not None
        pid = int((self.server.data_dir / "postmaster.pid").read_text().split()[0])
        return server_cpu_seconds(pid)


class MariaDBEngine:
    """A real MariaDB (tests/mariadb.py, as the suite starts it) with two databases,
    ``business`` and ``consumer``. The source is filled with ``LOAD DATA LOCAL INFILE``
    (100,000 rows a file), its version index built afterwards, then ``ANALYZE TABLE``.
    The reference is ``INSERT INTO consumer.reference SELECT * FROM business.person``
    (same key; dropped after it is timed)."""

    name = "mysql"
    mark = "%s"
    raw_label = "INSERT INTO consumer.reference SELECT * FROM business.person"
    missing_table: tuple[type[Exception], ...] = (pymysql.err.ProgrammingError,)

    def __init__(self, work: Path) -> None:
        self.work = work
        self.server: MariaDBServer | None = None
        self.source_url = self.target_url = ""

    def start(self) -> None:
        self.server = start_mariadb()
        with self.server.connect() as conn, conn.cursor() as cur:
            # The suite's 64 MiB buffer pool and 32 MiB redo log suit its small tables.
            # InnoDB reads with O_DIRECT, so pages outside the pool come from disk, not
            # the page cache: at 1,000,000 rows (224 MiB) the reference took 6.3 s instead
            # of 3.7 s and the 10,000 updates 1.0 s instead of 0.15 s. A business server
            # holds its working set; both settings are dynamic, the fixture is untouched.
            cur.execute(f"SET GLOBAL innodb_buffer_pool_size = {1 << 30}")
            cur.execute(f"SET GLOBAL innodb_log_file_size = {512 << 20}")
        self.source_url = self.server.create_database("business")
        self.target_url = self.server.create_database("consumer")

    def stop(self) -> None:
        if self.server is None:
            return
        with contextlib.suppress(OSError):
            shutil.copy(self.server.base / "server.log", self.work / "mariadb.log")
        self.server.stop()  # removes its directory
        self.server = None

    def connect(self, side: str) -> pymysql.connections.Connection[Any]:
        assert self.server is not None
        return pymysql.connect(
            host="127.0.0.1",
            port=self.server.port,
            user=MARIADB_USER,
            password=MARIADB_PASSWORD,
            database="business" if side == "source" else "consumer",
            charset="utf8mb4",
            autocommit=True,  # every poll sees the latest commits (no REPEATABLE READ snapshot)
            local_infile=True,
        )

    def build_source(self, rows: int) -> str:
        infile = self.work / "load.tsv"
        with self.connect("source") as conn, conn.cursor() as cur:
            cur.execute(server_ddl(TABLE, key=True) + " DEFAULT CHARSET=utf8mb4")
            for chunk in person_chunks(rows):
                with infile.open("w", encoding="utf-8") as out:
                    out.writelines(
                        "\t".join("\\N" if v is None else str(v) for v in row) + "\n"
                        for row in chunk
                    )
                cur.execute(
                    f"LOAD DATA LOCAL INFILE '{infile}' INTO TABLE {TABLE} CHARACTER SET utf8mb4"
                )
            infile.unlink()
            cur.execute(f"CREATE INDEX ix_{TABLE}_version ON {TABLE} (version, id)")
            cur.execute(f"ANALYZE TABLE {TABLE}")
            cur.fetchall()
            cur.execute(
                "SELECT data_length + index_length FROM information_schema.tables "
                "WHERE table_schema = 'business' AND table_name = %s",
                (TABLE,),
            )
            size = cur.fetchone()
        return f"{size[0] / 2**20:.0f} MiB (表 + 索引, InnoDB 估计)" if size else "?"

    def raw_copy(self) -> float:
        with self.connect("target") as conn, conn.cursor() as cur:
            started = time.perf_counter()
            cur.execute(server_ddl("reference", key=True) + " DEFAULT CHARSET=utf8mb4")
            cur.execute(f"INSERT INTO consumer.reference SELECT * FROM business.{TABLE}")
            elapsed = time.perf_counter() - started
            cur.execute("DROP TABLE reference")
        return elapsed

    def checksum(self, side: str) -> tuple[int, int]:
        """Count and the sum of CRC32 of each row (columns as text, NULL as CHAR(30),
        joined by CHAR(31)), in SQL."""
        row_text = ", ".join(f"COALESCE({n}, CHAR(30))" for n in NAMES)
        table = TABLE if side == "source" else TARGET_TABLE
        with self.connect(side) as conn, conn.cursor() as cur:
            cur.execute(
                f"SELECT COUNT(*), COALESCE(SUM(CRC32(CONCAT_WS(CHAR(31), {row_text}))), 0) "
                f"FROM {table}"
            )
            found = cur.fetchone()
        assert found is not None
        return int(found[0]), int(found[1])

    def update(self, changes: list[tuple[int, str, int]]) -> None:
        """A temporary table (PyMySQL sends the rows as multi-row INSERTs) joined in one
        UPDATE: 10,000 single-row UPDATEs are 10,000 round trips, 1.6 s on a busy machine."""
        with self.connect("source") as conn, conn.cursor() as cur:
            cur.execute(
                "CREATE TEMPORARY TABLE changes "
                "(id BIGINT PRIMARY KEY, version BIGINT NOT NULL, bz VARCHAR(200))"
            )
            conn.begin()
            cur.executemany("INSERT INTO changes (version, bz, id) VALUES (%s, %s, %s)", changes)
            cur.execute(
                f"UPDATE {TABLE} AS p JOIN changes AS c ON p.id = c.id "
                "SET p.version = c.version, p.hyzk = '20', p.bz = c.bz"
            )
            conn.commit()

    def server_cpu(self) -> float | None:
        assert self.server is not None
        return server_cpu_seconds(int((self.server.base / "mariadb.pid").read_text().split()[0]))


Engine = SqliteEngine | PostgresEngine | MariaDBEngine
ENGINES: dict[str, type[Engine]] = {
    e.name: e for e in (SqliteEngine, PostgresEngine, MariaDBEngine)
}


def query_one(conn: Any, sql: str, params: tuple[object, ...] = ()) -> tuple[Any, ...] | None:
    """One row through any of the three drivers' DB-API cursors."""
    cur = conn.cursor()
    try:
        cur.execute(sql, params)
        row = cur.fetchone()
    finally:
        cur.close()
    return None if row is None else tuple(row)


class Target:
    """Read-only polling of the subscriber's table (cheap queries while it is written)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.db: Any = None

    def _row(self, sql: str, *params: object) -> tuple[Any, ...] | None:
        if self.db is None:
            self.db = self.engine.connect("target")
            assert self.db is not None
        return query_one(self.db, sql.replace("?", self.engine.mark), params)

    def progress(self) -> int:
        """The highest id arrived: during the full load rows come in id order (the
        version column starts equal to id), and this costs one index step, where
        ``count(*)`` would read the whole table each time."""
        if self.db is None:
            self.db = self.engine.connect("target")
            if self.db is None:  # a SQLite file the node has not made yet
                return 0
        try:
            row = self._row(f"SELECT coalesce(max(id), 0) FROM {TARGET_TABLE}")
        except self.engine.missing_table:  # not created yet
            return 0
        assert row is not None
        return int(row[0])

    def count_and_version_sum(self) -> tuple[int, int]:
        row = self._row(f"SELECT count(*), coalesce(sum(version), 0) FROM {TARGET_TABLE}")
        assert row is not None
        return int(row[0]), int(row[1])

    def version_of(self, row_id: int) -> int | None:
        row = self._row(f"SELECT version FROM {TARGET_TABLE} WHERE id = ?", row_id)
        return None if row is None else int(row[0])

    def changed(self, ids: list[int], above: int) -> int:
        listed = ",".join(map(str, ids))  # integers of our own making
        row = self._row(
            f"SELECT count(*) FROM {TARGET_TABLE} WHERE id IN ({listed}) AND version > ?", above
        )
        assert row is not None
        return int(row[0])

    def close(self) -> None:
        if self.db is not None:
            self.db.close()


def proc_status(pid: int, field_name: str) -> float:
    """A memory figure from /proc/PID/status, in MiB (0 when the process is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (/proc/PID/stat)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def descendants(pid: int) -> list[int]:
    """The processes a process started, and theirs (a SQLite source's reading process)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children = [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
        for child in children:
            found += [child, *descendants(child)]
    return found


def tree_cpu(pid: int) -> float:
    """CPU time of a process and of the processes it started that are still running."""
    return cpu_seconds(pid) + sum(cpu_seconds(child) for child in descendants(pid))


def pids(env: HubEnv, *, profiled: bool = False) -> dict[str, int]:
    """The Python process of each of hub, provider, consumer (under py-spy: its child)."""
    out = {}
    for name, p in env.procs.items():
        assert p.popen is not None
        pid = p.popen.pid
        if profiled:
            children = Path(f"/proc/{pid}/task/{pid}/children")
            deadline = time.monotonic() + 10
            while not children.read_text().split() and time.monotonic() < deadline:
                time.sleep(0.05)
            pid = int(children.read_text().split()[0])
        out[name] = pid
    return out


def wait_nodes_ready(env: HubEnv, api: httpx.Client, timeout: float = 120) -> None:
    """Both nodes registered and heartbeating, each reporting its task."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        check_alive(env)
        nodes = api.get("/api/v1/exchange/nodes").raise_for_status().json()
        ready = {n["id"] for n in nodes if n["online"] and n["report"].get("tasks")}
        if set(env.node_ids.values()) <= ready:
            return
        time.sleep(0.1)
    raise SystemExit("the nodes did not come up; see their logs in the work directory")


def check_alive(env: HubEnv) -> None:
    for p in env.procs.values():
        if not p.alive():
            raise SystemExit(f"{p.name} exited; see {p.log}")


@dataclass
class Result:
    engine: str
    rows: int
    load_s: float
    first_row_s: float
    raw_s: float
    hwm: dict[str, float]
    cpu: dict[str, float]
    rss_by_progress: dict[str, list[float]]
    incr_s: float
    reconcile_s: float

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.load_s

    @property
    def raw_rows_per_s(self) -> float:
        return self.rows / self.raw_s


def profiled(env: HubEnv, directory: Path) -> None:
    """Run every process under ``py-spy record`` (collapsed stacks, one file each)."""
    spy = Path(sys.executable).with_name("py-spy")
    directory.mkdir(parents=True, exist_ok=True)
    for name, proc in env.procs.items():
        out = directory / f"{name}.txt"
        record = [str(spy), "record", "--format", "raw", "-r", "50", "-o", str(out), "--"]
        proc.args = [*record, *proc.args]


def run(
    work: Path,
    rows: int,
    *,
    engine_name: str,
    batch_rows: int,
    interval: float,
    profile: Path | None = None,
    seal_stores: bool = True,
    reconcile: str = "during",
) -> Result:
    """One measurement on a fresh engine (a database server is started and stopped)."""
    engine = ENGINES[engine_name](work)
    try:
        engine.start()
        return measure(
            engine,
            work,
            rows,
            batch_rows=batch_rows,
            interval=interval,
            profile=profile,
            seal_stores=seal_stores,
            reconcile=reconcile,
        )
    finally:
        engine.stop()


def measure(
    engine: Engine,
    work: Path,
    rows: int,
    *,
    batch_rows: int,
    interval: float,
    profile: Path | None,
    seal_stores: bool,
    reconcile: str,
) -> Result:
    started = time.perf_counter()
    size = engine.build_source(rows)
    print(
        f"源库 ({engine.name}): {rows:,} 行 × {len(COLUMNS)} 列, {size}, "
        f"生成用时 {time.perf_counter() - started:.1f} s",
        flush=True,
    )
    raw_s = engine.raw_copy()
    print(f"参照 ({engine.raw_label}): {raw_s:.2f} s, {rows / raw_s:,.0f} 行/秒", flush=True)
    started = time.perf_counter()
    source_sum = engine.checksum("source")
    print(f"源库校验和: {time.perf_counter() - started:.2f} s", flush=True)

    items = [
        ItemIn(name=label, code=name, data_type=kind, length=length, is_key=name == "id")
        for name, label, kind, length, _ in COLUMNS
    ]
    env = setup_hub(
        work,
        source_url=engine.source_url,
        target_url=engine.target_url,
        provider_config={
            "source": "biz",
            "table": TABLE,
            "key": ["id"],
            "cursor_column": "version",
            "delete_detection": "keyset",
            "batch_rows": batch_rows,
            "schedule": {"interval_seconds": interval},
        },
        items=items,
        # No monitor tick during the run (setup_hub shortens the interval for the tests):
        # its day's reconciliation came at a random moment, in the load or after it. The
        # bench asks for the reconciliation itself, at a fixed point (``measure``).
        extra_env={"GOVSHARE_MONITOR_INTERVAL_SECONDS": "3600"},
        seal_stores=seal_stores,
    )
    if profile is not None:
        profiled(env, profile)
    poll = Target(engine)
    api: httpx.Client | None = None
    provider_task = env.task_ids["provider"]
    try:
        env.procs["hub"].start()
        env.wait_healthy()
        # One client for the whole run: each sign-in costs the hub a password hash's
        # memory, which would show in its peak if it came during the load.
        api = env.api()
        # The nodes start (interpreter, registration, first heartbeat) with the
        # provider task stopped; the clock starts when the task is started.
        api.post(f"/api/v1/exchange/tasks/{provider_task}/stop").raise_for_status()
        launched = time.perf_counter()
        env.procs["provider"].start()
        env.procs["consumer"].start()
        ids = pids(env, profiled=profile is not None)
        wait_nodes_ready(env, api)
        cpu_before = {name: tree_cpu(pid) for name, pid in ids.items()}
        server_before = engine.server_cpu()
        t0 = time.perf_counter()
        api.post(f"/api/v1/exchange/tasks/{provider_task}/start").raise_for_status()
        print(f"节点进程启动并就绪: {t0 - launched:.2f} s", flush=True)
        marks = [rows * q // 4 for q in (1, 2, 3, 4)]
        rss_by_progress: dict[str, list[float]] = {name: [] for name in ids}
        first_row_s = 0.0
        reconciling: tuple[set[int], float] | None = None
        last_report = t0
        expected = (rows, rows * (rows + 1) // 2)  # row count, sum of versions
        while True:
            check_alive(env)
            n = poll.progress()
            now = time.perf_counter()
            if n and not first_row_s:
                first_row_s = now - t0
                if reconcile == "during":
                    # As the hub's first tick would for a task started during the day: the
                    # provider catches up, then scans every key, while the load goes on.
                    reconciling = request_reconciliation(api, provider_task)
            while marks and n >= marks[0]:
                marks.pop(0)
                for name, pid in ids.items():
                    rss_by_progress[name].append(proc_status(pid, "VmRSS"))
            if n >= rows and poll.count_and_version_sum() == expected:
                break
            if now - last_report > 5:
                print(f"  {now - t0:5.1f} s: {n:,} 行", flush=True)
                last_report = now
            if now - t0 > 3600:
                raise SystemExit("the full load did not finish within an hour")
            time.sleep(0.1)
        load_s = time.perf_counter() - t0
        cpu = {name: tree_cpu(pid) - cpu_before[name] for name, pid in ids.items()}
        server_after = engine.server_cpu()
        if server_before is not None and server_after is not None:
            cpu["database"] = server_after - server_before
        print(
            f"全量 (自启动任务): {load_s:.2f} s, {rows / load_s:,.0f} 行/秒; 首行到达 "
            f"{first_row_s:.2f} s; 含节点进程启动 {t0 - launched + load_s:.2f} s, "
            f"{rows / (t0 - launched + load_s):,.0f} 行/秒",
            flush=True,
        )
        verify(engine, source_sum, "全量")
        if reconciling is None:
            reconciling = request_reconciliation(api, provider_task)
        reconcile_s = await_reconciliation(env, api, provider_task, *reconciling)
        when = "全量中" if reconcile == "during" else "全量后"
        print(f"核对 ({when}发起): 一致, 发起后 {reconcile_s:.2f} s 完成", flush=True)

        incr_s, commit_s = incremental(env, engine, poll, rows)
        print(
            f"增量: {INCREMENT:,} 行变更 {incr_s:.2f} s 后全部可见 "
            f"(其中源库执行并提交 UPDATE {commit_s:.2f} s)",
            flush=True,
        )
        verify(engine, engine.checksum("source"), "增量后")
        hwm = {name: proc_status(pid, "VmHWM") for name, pid in ids.items()}
        for name, pid in ids.items():
            # A node's own processes (a SQLite source's reading process) count apart.
            helpers = [proc_status(child, "VmHWM") for child in descendants(pid)]
            if any(helpers):
                hwm[f"{name}-helpers"] = max(helpers)
    finally:
        poll.close()
        if api is not None:
            api.close()
        if profile is not None:  # end the profiled processes so py-spy writes its file
            for proc in env.procs.values():
                if proc.popen is not None and proc.alive():
                    children = Path(f"/proc/{proc.popen.pid}/task/{proc.popen.pid}/children")
                    for child in children.read_text().split():
                        os.kill(int(child), signal.SIGTERM)
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        proc.popen.wait(timeout=30)
        env.stop_all()
    return Result(
        engine.name,
        rows,
        load_s,
        first_row_s,
        raw_s,
        hwm,
        cpu,
        rss_by_progress,
        incr_s,
        reconcile_s,
    )


def request_reconciliation(api: httpx.Client, provider_task: int) -> tuple[set[int], float]:
    """Ask the hub to reconcile the provider task with its subscriber (桥接核对); the
    reconciliations' ids and when they were asked for."""
    asked = api.post(f"/api/v1/exchange/tasks/{provider_task}/reconcile").raise_for_status()
    return {int(r["id"]) for r in asked.json()}, time.perf_counter()


def await_reconciliation(
    env: HubEnv, api: httpx.Client, provider_task: int, ids: set[int], asked: float
) -> float:
    """Seconds from asking until the reconciliations ``ids`` completed; each must match."""
    while True:
        check_alive(env)
        listed = api.get(
            "/api/v1/exchange/reconciliations", params={"task_id": provider_task}
        ).raise_for_status()
        ours = [r for r in listed.json() if r["id"] in ids]
        if len(ours) == len(ids) and all(r["outcome"] != "pending" for r in ours):
            break
        if time.perf_counter() - asked > 600:
            raise SystemExit("the reconciliation did not complete within 10 minutes")
        time.sleep(0.1)
    done = time.perf_counter() - asked
    failed = [f"#{r['id']} {r['outcome']}: {r['detail']}" for r in ours if r["outcome"] != "match"]
    if failed:
        raise SystemExit(f"reconciliation after the full load: {'; '.join(failed)}")
    return done


def verify(engine: Engine, source_sum: tuple[int, int], when: str) -> None:
    """The subscriber's table against the source: row count and the engine's checksum
    of every column of every row."""
    got = engine.checksum("target")
    if got != source_sum:
        raise SystemExit(f"{when}: target differs from source: {got} != {source_sum}")
    print(f"校验 ({when}): {got[0]:,} 行, 逐行校验和之和 {got[1]} 与源库一致", flush=True)


def incremental(env: HubEnv, engine: Engine, poll: Target, rows: int) -> tuple[float, float]:
    """Update 10,000 rows (each gets a new version); seconds until all are in the target,
    and of those the seconds the source took to run and commit the updates."""
    rng = random.Random(rows)
    ids = sorted(rng.sample(range(1, rows + 1), min(INCREMENT, rows)))
    db = engine.connect("source")
    try:
        found = query_one(db, f"SELECT max(version) FROM {TABLE}")
    finally:
        db.close()
    assert found is not None
    above = int(found[0])
    t0 = time.perf_counter()
    engine.update([(above + 1 + n, f"增量变更 {n}", i) for n, i in enumerate(ids)])
    commit_s = time.perf_counter() - t0
    last, last_version = ids[-1], above + len(ids)
    while poll.version_of(last) != last_version or poll.changed(ids, above) < len(ids):
        check_alive(env)
        if time.perf_counter() - t0 > 600:
            raise SystemExit("the incremental batch did not arrive within 10 minutes")
        time.sleep(0.01)
    return time.perf_counter() - t0, commit_s


def report(result: Result) -> None:
    names = [n for n in ("hub", "provider", "consumer", "database") if n in result.cpu]
    print(
        "全量期间 CPU 时间: "
        + ", ".join(f"{name} {result.cpu[name]:.1f} s" for name in names)
        + f" (墙钟 {result.load_s:.1f} s, {os.cpu_count()} 核)"
    )
    print(f"负载 (1 分钟平均, 结束时): {os.getloadavg()[0]:.2f}")
    print(f"峰值内存 (VmHWM, {result.rows:,} 行):")
    for name in ("hub", "provider", "consumer"):
        steps = " → ".join(f"{v:.0f}" for v in result.rss_by_progress.get(name, []))
        print(
            f"  {name:9s} 峰值 {result.hwm.get(name, 0):6.0f} MiB;  "
            f"到达 25/50/75/100 % 时 VmRSS {steps} MiB"
        )
        if f"{name}-helpers" in result.hwm:
            print(f"  {'':9s} 其子进程峰值 {result.hwm[f'{name}-helpers']:6.0f} MiB")


def _at_least_one(text: str) -> int:
    """A row count for ``--rows``: with none, the subscriber's table is never made."""
    rows = int(text)
    if rows < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {rows}")
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--engine",
        choices=list(ENGINES),
        default="sqlite",
        help="the business and subscriber databases: SQLite files, or two databases on a "
        "real PostgreSQL or MariaDB server started for the run",
    )
    parser.add_argument(
        "--rows", type=_at_least_one, default=1_000_000, help="rows in the source table"
    )
    parser.add_argument(
        "--compare-rows",
        type=int,
        default=200_000,
        help="first run a smaller table of this many rows (when smaller than --rows) and "
        "compare each process's peak memory; 0 to skip",
    )
    parser.add_argument("--batch-rows", type=int, default=50_000, help="provider batch size")
    parser.add_argument(
        "--interval",
        type=float,
        default=0.2,
        help="the provider task's schedule interval in seconds (the subscriber task polls "
        "every 0.2 s, as setup_hub configures it)",
    )
    parser.add_argument(
        "--unsealed-stores",
        action="store_true",
        help="run the nodes without a secret (local stores not sealed at rest), to measure "
        "what sealing costs",
    )
    parser.add_argument(
        "--reconcile",
        choices=["during", "after"],
        default="during",
        help="when the bench asks for the reconciliation (桥接核对): once the first rows "
        "have arrived, so that its scans run inside the full load (the default, as for a "
        "task started during the day), or after the load, to time the load alone",
    )
    parser.add_argument("--keep", type=Path, help="work in this directory and keep it")
    parser.add_argument(
        "--profile", type=Path, help="run the processes under py-spy; stacks go to this directory"
    )
    args = parser.parse_args(argv)

    sizes = ([args.compare_rows] if 0 < args.compare_rows < args.rows else []) + [args.rows]
    results = []
    for rows in sizes:
        if args.keep:
            work = args.keep / f"rows-{rows}"
            shutil.rmtree(work, ignore_errors=True)
            work.mkdir(parents=True)
        else:
            work = Path(tempfile.mkdtemp(prefix="govshare-bench-exchange-"))
        print(f"== {args.engine}, {rows:,} 行  (负载 {os.getloadavg()[0]:.2f})", flush=True)
        try:
            result = run(
                work,
                rows,
                engine_name=args.engine,
                batch_rows=args.batch_rows,
                interval=args.interval,
                profile=args.profile / f"rows-{rows}" if args.profile else None,
                seal_stores=not args.unsealed_stores,
                reconcile=args.reconcile,
            )
        finally:
            if not args.keep:
                shutil.rmtree(work, ignore_errors=True)
        report(result)
        results.append(result)
    if len(results) == 2:
        small, large = results
        print(f"内存随表增长 ({small.rows:,} → {large.rows:,} 行, 峰值 MiB):")
        for name in ("hub", "provider", "consumer"):
            a, b = small.hwm.get(name, 0), large.hwm.get(name, 0)
            print(f"  {name:9s} {a:6.0f} → {b:6.0f}  ({(b - a) / a * 100 if a else 0:+.0f} %)")
    r = results[-1]
    print(
        f"engine={r.engine} rows_per_s={r.rows_per_s:.0f} raw_rows_per_s={r.raw_rows_per_s:.0f} "
        f"ratio={r.rows_per_s / r.raw_rows_per_s:.3f} max_rss_mb={max(r.hwm.values()):.0f} "
        f"incr_10k_s={r.incr_s:.2f} reconcile_s={r.reconcile_s:.2f}"
    )


if __name__ == "__main__":
    main()
