"""Kill -9 the provider node (and the hub and subscriber) again and again while it reads a
busy PostgreSQL table by logical decoding: afterwards the target equals the source,
deletions included (no key-set scan runs), no package reached the hub twice, and the
replication slot still exists and was advanced."""

from __future__ import annotations

import random
import sqlite3
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from tests.e2e.hubenv import HubEnv, setup_hub
from tests.exchange.scenario import drop_replication_slots, make_pg_source
from tests.pg import PostgresServer

ROWS = 20_000
KILLS = 8


class BusinessSystem(threading.Thread):
    """Updates, inserts and deletes rows of the PostgreSQL table, committing each
    transaction durably (as a business system's database would)."""

    def __init__(self, url: str, seed: int) -> None:
        super().__init__(daemon=True)
        self.engine = create_engine(url)
        self.rng = random.Random(seed)
        self.halt = threading.Event()
        self.changes = 0
        self.next_id = ROWS + 1

    def run(self) -> None:
        while not self.halt.is_set():
            with self.engine.begin() as conn:
                conn.execute(text("SET LOCAL synchronous_commit = on"))
                action = self.rng.random()
                if action < 0.6:
                    ids = [self.rng.randrange(1, self.next_id) for _ in range(30)]
                    conn.execute(
                        text("UPDATE person SET xm = :x, version = version + 1 WHERE id = ANY(:i)"),
                        {"x": f"改{self.changes}", "i": ids},
                    )
                elif action < 0.85:
                    conn.execute(
                        text(
                            "INSERT INTO person SELECT g, '3702021990' || lpad(g::text, 8, '0'), "
                            "'新增', '2', 1 "
                            "FROM generate_series(CAST(:a AS integer), CAST(:b AS integer)) g"
                        ),
                        {"a": self.next_id, "b": self.next_id + 24},
                    )
                    self.next_id += 25
                else:
                    ids = [self.rng.randrange(1, self.next_id) for _ in range(10)]
                    conn.execute(text("DELETE FROM person WHERE id = ANY(:i)"), {"i": ids})
            self.changes += 1
            time.sleep(0.01)
        self.engine.dispose()


def _source_rows(url: str) -> list[tuple[object, ...]]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return [
                tuple(r)
                for r in conn.execute(
                    text("SELECT id, sfzhm, xm, xb, version FROM person ORDER BY id")
                )
            ]
    finally:
        engine.dispose()


def _target_rows(path: Path) -> list[tuple[object, ...]]:
    db = sqlite3.connect(path)
    try:
        return db.execute(
            "SELECT id, sfzhm, xm, xb, version FROM person_copy ORDER BY id"
        ).fetchall()
    except sqlite3.OperationalError:
        return []
    finally:
        db.close()


@pytest.mark.slow
@pytest.mark.postgres
def test_kill9_during_log_capture_loses_and_doubles_nothing(
    tmp_path: Path, postgres: PostgresServer
) -> None:
    source_url = postgres.create_database(f"biz_crash_{abs(hash(str(tmp_path))) % 10**8}")
    make_pg_source(source_url, ROWS)
    engine = create_engine(source_url)
    target = tmp_path / "consumer.db"
    env: HubEnv = setup_hub(
        tmp_path,
        source_url=source_url,
        target_url=f"sqlite:///{target}",
        provider_config={
            "source": "biz",
            "table": "person",
            "key": ["id"],
            "mode": "log",
            "delete_detection": "none",
            "batch_rows": 2_000,
            "schedule": {"interval_seconds": 0.2},
        },
    )
    rng = random.Random(20261203)
    business = BusinessSystem(source_url, seed=11)
    try:
        env.start_all()
        business.start()
        kills = {"hub": 0, "provider": 0, "consumer": 0}
        for n in range(KILLS):
            time.sleep(rng.uniform(0.3, 2.0))
            # The provider, whose position in the log is what is at stake, most often.
            victim = "provider" if n % 2 == 0 else rng.choice(["hub", "consumer"])
            env.kill9_and_restart(victim, rng)
            kills[victim] += 1
        business.halt.set()
        business.join(timeout=30)
        assert business.changes > 50
        assert kills["provider"] >= KILLS // 2
        with engine.begin() as conn:  # one last change, after a mark in the log
            mark = conn.execute(text("SELECT pg_current_wal_lsn()::text")).scalar_one()
            conn.execute(text("SET LOCAL synchronous_commit = on"))
            conn.execute(text("UPDATE person SET xm = '最后' WHERE id = 1"))

        env.wait_until(
            lambda: _source_rows(source_url) == _target_rows(target),
            "the target converging on the source",
            timeout=240,
        )
        deadline = time.monotonic() + 240

        with env.api() as c:
            packages = c.get(
                f"/api/v1/exchange/tasks/{env.task_ids['provider']}/packages",
                params={"limit": 1000},
            ).json()
        seqs = sorted(p["seq"] for p in packages)
        assert seqs == list(range(1, len(seqs) + 1)), "the node skipped or repeated a package"
        # The one slot of the task survived every restart and is released past the last
        # change once the hub has it.
        while True:
            with engine.connect() as conn:
                slots = conn.execute(
                    text(
                        "SELECT confirmed_flush_lsn > CAST(:mark AS pg_lsn) FROM "
                        "pg_replication_slots WHERE database = current_database()"
                    ),
                    {"mark": mark},
                ).all()
            assert len(slots) == 1
            if slots[0][0]:
                break
            assert time.monotonic() < deadline, "the slot was never advanced"
            time.sleep(0.5)
    finally:
        business.halt.set()
        env.stop_all()
        drop_replication_slots(source_url)
        engine.dispose()
