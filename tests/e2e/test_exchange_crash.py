"""Kill -9 the hub and the nodes again and again while 200,000 rows move and the
business system keeps changing them: afterwards the target equals the source exactly
and reconciliation agrees."""

from __future__ import annotations

import random
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from tests.e2e.hubenv import HubEnv, setup_hub
from tests.exchange.scenario import make_source

ROWS = 200_000
KILLS = 12


class BusinessSystem(threading.Thread):
    """Updates, inserts and deletes rows the way a business application would."""

    def __init__(self, path: Path, seed: int) -> None:
        super().__init__(daemon=True)
        self.path = path
        self.rng = random.Random(seed)
        self.halt = threading.Event()
        self.changes = 0
        self.next_id = ROWS + 1

    def run(self) -> None:
        db = sqlite3.connect(self.path, timeout=30)
        while not self.halt.is_set():
            with db:
                version = db.execute("SELECT coalesce(max(version), 0) + 1 FROM person").fetchone()[
                    0
                ]
                action = self.rng.random()
                if action < 0.6:
                    ids = [self.rng.randrange(1, self.next_id) for _ in range(50)]
                    db.executemany(
                        "UPDATE person SET xm = ?, version = ? WHERE id = ?",
                        [(f"改{version}", version + n, i) for n, i in enumerate(ids)],
                    )
                elif action < 0.85:
                    db.executemany(
                        "INSERT INTO person VALUES (?, ?, ?, '2', ?)",
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
                    db.execute(f"DELETE FROM person WHERE id IN ({','.join(map(str, ids))})")
            self.changes += 1
            time.sleep(0.01)
        db.close()


def _rows(url_path: Path, table: str) -> list[tuple[object, ...]]:
    db = sqlite3.connect(url_path)
    try:
        return db.execute(f"SELECT id, sfzhm, xm, xb, version FROM {table} ORDER BY id").fetchall()
    except sqlite3.OperationalError:
        return []
    finally:
        db.close()


@pytest.mark.slow
def test_kill9_everything_during_a_busy_exchange(tmp_path: Path) -> None:
    source, target = tmp_path / "business.db", tmp_path / "consumer.db"
    make_source(source, ROWS)
    env: HubEnv = setup_hub(
        tmp_path,
        source_url=f"sqlite:///{source}",
        target_url=f"sqlite:///{target}",
        provider_config={
            "source": "biz",
            "table": "person",
            "key": ["id"],
            "cursor_column": "version",
            "delete_detection": "keyset",
            "keyset_every_seconds": 3,
            "batch_rows": 20_000,
            "schedule": {"interval_seconds": 0.2},
        },
    )
    rng = random.Random(20261121)
    business = BusinessSystem(source, seed=7)
    try:
        env.start_all()
        business.start()
        kills = {"hub": 0, "provider": 0, "consumer": 0}
        for _ in range(KILLS):
            time.sleep(rng.uniform(0.4, 2.5))
            victim = rng.choice(["hub", "provider", "consumer"])
            env.kill9_and_restart(victim, rng)
            kills[victim] += 1
        business.halt.set()
        business.join(timeout=30)
        assert business.changes > 50
        assert sum(kills.values()) == KILLS
        assert min(kills.values()) >= 1, kills

        env.wait_until(
            lambda: _rows(source, "person") == _rows(target, "person_copy"),
            "the target converging on the source",
        )
        source_rows = _rows(source, "person")
        assert len(source_rows) == len({r[0] for r in _rows(target, "person_copy")})

        done = env.reconcile()
        assert done["outcome"] == "match", done["detail"]
        assert done["source"]["count"] == len(source_rows)
        assert done["sent"] == done["received"]
    finally:
        business.halt.set()
        env.stop_all()
