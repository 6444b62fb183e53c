"""Kill -9 the hub and both nodes while rows move from a real MariaDB to a real MariaDB
the fast way (the provider reads pages with connectorx, the subscriber writes INSERT
text built in Arrow) and the business system keeps changing them: afterwards the target
equals the source exactly and reconciliation agrees."""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path
from typing import Any

import pymysql
import pytest
from sqlalchemy.engine import make_url

from govshare.catalog.schemas import ItemIn
from govshare.node import native
from tests.e2e.hubenv import HubEnv, setup_hub
from tests.mariadb import MariaDBServer

pytestmark = [pytest.mark.slow, pytest.mark.mariadb, pytest.mark.xdist_group("mariadb")]

ROWS = 60_000
KILLS = 8
TRICKY = ["张三·𠀀", 'O\'Brien \\ "引"', "", "%s 100%", "行\n回\r\x1a", None]


def _connect(url: str) -> pymysql.connections.Connection[Any]:
    u = make_url(url)
    return pymysql.connect(
        host=u.host,
        port=u.port or 3306,
        user=u.username,
        password=u.password or "",
        database=u.database,
        charset="utf8mb4",
        autocommit=True,
    )


def _create_source(url: str) -> None:
    with _connect(url) as conn, conn.cursor() as cur:
        cur.execute(
            "CREATE TABLE person (id BIGINT PRIMARY KEY, sfzhm VARCHAR(18) NOT NULL, "
            "xm VARCHAR(60), xb CHAR(1), score DOUBLE, version BIGINT NOT NULL, "
            "KEY ix_version (version, id)) CHARACTER SET utf8mb4"
        )
        rows = [
            (i, f"3702021990{i:08d}", TRICKY[i % len(TRICKY)], "12"[i % 2], i / 7, i)
            for i in range(1, ROWS + 1)
        ]
        for start in range(0, ROWS, 5000):
            cur.executemany(
                "INSERT INTO person VALUES (%s, %s, %s, %s, %s, %s)", rows[start : start + 5000]
            )


class BusinessSystem(threading.Thread):
    """Updates, inserts and deletes rows the way a business application would."""

    def __init__(self, url: str, seed: int) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.rng = random.Random(seed)
        self.halt = threading.Event()
        self.changes = 0
        self.next_id = ROWS + 1

    def run(self) -> None:
        with _connect(self.url) as conn, conn.cursor() as cur:
            while not self.halt.is_set():
                cur.execute("SELECT coalesce(max(version), 0) + 1 FROM person")
                (version,) = cur.fetchone()  # type: ignore[misc]
                action = self.rng.random()
                if action < 0.6:
                    ids = [self.rng.randrange(1, self.next_id) for _ in range(50)]
                    cur.executemany(
                        "UPDATE person SET xm = %s, version = %s WHERE id = %s",
                        [(f"改'{version}\\", version + n, i) for n, i in enumerate(ids)],
                    )
                elif action < 0.85:
                    cur.executemany(
                        "INSERT INTO person VALUES (%s, %s, %s, '2', NULL, %s)",
                        [
                            (
                                self.next_id + n,
                                f"3702021990{self.next_id + n:08d}",
                                "新增",
                                version + n,
                            )
                            for n in range(40)
                        ],
                    )
                    self.next_id += 40
                else:
                    ids = [self.rng.randrange(1, self.next_id) for _ in range(20)]
                    cur.execute(f"DELETE FROM person WHERE id IN ({','.join(map(str, ids))})")
                self.changes += 1
                time.sleep(0.01)


def _rows(url: str, table: str) -> list[tuple[Any, ...]]:
    with _connect(url) as conn, conn.cursor() as cur:
        try:
            cur.execute(f"SELECT id, sfzhm, xm, xb, score, version FROM {table} ORDER BY id")
        except pymysql.err.ProgrammingError:
            return []
        return list(cur.fetchall())


def test_kill9_everything_during_a_fast_mariadb_exchange(
    tmp_path: Path, mariadb: MariaDBServer
) -> None:
    assert native.available()  # connectorx comes with the dev group: this is its path
    suffix = abs(hash(str(tmp_path))) % 10**8
    source_url = mariadb.create_database(f"biz_fast_{suffix}")
    target_url = mariadb.create_database(f"dst_fast_{suffix}")
    _create_source(source_url)
    env: HubEnv = setup_hub(
        tmp_path,
        source_url=source_url,
        target_url=target_url,
        provider_config={
            "source": "biz",
            "table": "person",
            "key": ["id"],
            "cursor_column": "version",
            "delete_detection": "keyset",
            "keyset_every_seconds": 3,
            "batch_rows": 5_000,
            "schedule": {"interval_seconds": 0.2},
        },
        items=[
            ItemIn(name="编号", code="id", data_type="I", length=10, is_key=True),
            ItemIn(name="公民身份号码", code="sfzhm", data_type="C", length=18),
            ItemIn(name="姓名", code="xm", data_type="C", length=60),
            ItemIn(name="性别", code="xb", data_type="C", length=1),
            ItemIn(name="评分", code="score", data_type="F", length=16),
            ItemIn(name="行版本", code="version", data_type="I", length=10),
        ],
    )
    rng = random.Random(20261206)
    business = BusinessSystem(source_url, seed=5)
    try:
        env.start_all()
        business.start()
        kills = {"hub": 0, "provider": 0, "consumer": 0}
        for _ in range(KILLS):
            time.sleep(rng.uniform(0.4, 2.0))
            victim = rng.choice(["hub", "provider", "consumer"])
            env.kill9_and_restart(victim, rng)
            kills[victim] += 1
        business.halt.set()
        business.join(timeout=30)
        assert business.changes > 50
        assert min(kills.values()) >= 1, kills

        env.wait_until(
            lambda: _rows(source_url, "person") == _rows(target_url, "person_copy"),
            "the target converging on the source",
        )
        source_rows = _rows(source_url, "person")
        assert {r[2] for r in source_rows} >= {t for t in TRICKY if t is not None}

        done = env.reconcile()
        assert done["outcome"] == "match", done["detail"]
        assert done["source"]["count"] == len(source_rows)
        # The fast path carried the rows: the provider never fell back to the driver.
        log = env.procs["provider"].log.read_text(encoding="utf-8", errors="replace")
        assert "native reader on for this source" in log
        assert "native reader off" not in log
    finally:
        business.halt.set()
        env.stop_all()
