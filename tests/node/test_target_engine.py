"""A subscriber's target engine is set up once, where it is made: building a writer on
an engine other threads connect through (the hub's shared-store engine, used by the
feeders, base assembly and the data services at once) leaves its listeners alone."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event, text
from sqlalchemy.pool import NullPool

from govshare.node.target import TargetWriter, target_engine


def test_a_writer_built_while_another_thread_connects_leaves_the_engine_alone(
    tmp_path: Path,
) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'shared.db'}", poolclass=NullPool)
    inside = threading.Event()

    def slow_setup(_dbapi_conn: Any, _record: Any) -> None:
        inside.set()
        time.sleep(0.3)  # the connecting thread is among the engine's listeners now

    event.listen(engine, "connect", slow_setup)
    failures: list[BaseException] = []

    def connect() -> None:
        try:
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except BaseException as exc:  # reported below
            failures.append(exc)

    other = threading.Thread(target=connect)
    other.start()
    assert inside.wait(5)
    TargetWriter(engine, 1, {"table": "person_copy"}, ["id"])
    other.join()
    assert failures == []  # was: RuntimeError: deque mutated during iteration


def test_a_node_target_in_sqlite_is_written_in_wal_mode(tmp_path: Path) -> None:
    engine = target_engine(f"sqlite:///{tmp_path / 'target.db'}")
    with engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA synchronous")).scalar() == 1  # NORMAL
    engine.dispose()
