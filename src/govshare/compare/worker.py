"""The worker process of one comparison run: snapshot, then DuckDB.

Started by the runner as ``python -m govshare.compare.worker SPEC.json``; it writes its
progress as JSON lines on stdout and its result to a Parquet file, and nothing else.
When an input keeps sealed items (字段加密), the spec names the field key's data dir and
the runner writes the secret that opens the key on stdin: not into the spec file, which
stays in the run's folder, nor on the command line, which any user can list. A
run is cancelled by killing this process: nothing it wrote reaches the hub database, so
a cancelled or killed run leaves no partial result. DuckDB is held to the memory limit
the spec gives and spills to the run's folder beyond it.
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from govshare.compare.snapshot import export
from govshare.compare.sql import InputPlan, macros, view_sql
from govshare.security.fieldseal import FieldSealer
from govshare.sharing.shared_db import shared_engine

SNAPSHOT_SHARE = 0.6  # of the progress bar: exporting is most of a run's time


def say(**message: Any) -> None:
    sys.stdout.buffer.write(orjson.dumps(message) + b"\n")
    sys.stdout.flush()


def sealer(spec: dict[str, Any], secrets: dict[str, Any]) -> FieldSealer | None:
    """The field sealer the inputs' sealed items are opened with (None: none sealed)."""
    sealing = spec.get("field_seal")
    if not sealing:
        return None
    return FieldSealer(Path(sealing["data_dir"]), str(secrets["secret_key"]), sealing["alg"])


def run(spec: dict[str, Any], secrets: dict[str, Any] | None = None) -> None:
    folder = Path(spec["folder"])
    inputs = [InputPlan(**{**i, "required": tuple(i["required"])}) for i in spec["inputs"]]
    totals = {i.alias: 0 for i in inputs}
    last = [0.0]

    def exported(alias: str, done: int, total: int) -> None:
        totals[alias] = total
        now = time.monotonic()
        if now - last[0] < 0.3:
            return
        last[0] = now
        share = 1 / len(inputs)
        index = [i.alias for i in inputs].index(alias)
        part = (index + (done / total if total else 1)) * share
        say(phase=f"导出快照: {alias}", progress=round(SNAPSHOT_SHARE * part, 4))

    engine = shared_engine(spec["shared_url"], pool_size=1, mmap_bytes=0)
    try:
        say(phase="导出快照", progress=0.0)
        taken = export(
            engine,
            inputs,
            folder / "snapshot",
            spec["cursor_table"],
            exported,
            sealer(spec, secrets or {}),
        )
    finally:
        engine.dispose()
    say(phase="比对", progress=SNAPSHOT_SHARE, inputs=taken)
    con = duckdb.connect(config={"memory_limit": f"{int(spec['memory_mb'])}MB"})
    try:
        con.execute(f"SET threads = {int(spec['threads'])}")
        con.execute("SET temp_directory = ?", [str(folder / "spill")])
        con.execute("SET preserve_insertion_order = false")
        # query_progress() reports nothing unless progress is tracked (not printed).
        con.execute("SET enable_progress_bar = true")
        con.execute("SET enable_progress_bar_print = false")
        for statement in macros():
            con.execute(statement)
        files = {i.alias: str(folder / "snapshot" / f"{i.alias}.parquet") for i in inputs}
        for i in inputs:
            con.execute(view_sql(i, files[i.alias]))
        done = threading.Event()

        def watch() -> None:
            while not done.wait(0.5):
                try:
                    pct = con.query_progress()
                except duckdb.Error:
                    continue
                if pct and pct > 0:
                    share = SNAPSHOT_SHARE + (1 - SNAPSHOT_SHARE) * min(pct, 100) / 100
                    say(phase="比对", progress=round(share * 0.99, 4))

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        try:
            result: pa.Table = con.sql(spec["sql"], params=spec["params"]).to_arrow_table()
        finally:
            done.set()
            watcher.join()
        pq.write_table(result, folder / "result.parquet")
    finally:
        con.close()
    say(phase="保存结果", progress=0.99, rows=result.num_rows, done=True)


def main() -> None:
    spec = orjson.loads(Path(sys.argv[1]).read_bytes())
    try:
        secrets = orjson.loads(sys.stdin.buffer.read()) if spec.get("field_seal") else {}
        run(spec, secrets)
    except Exception as exc:  # reported to the runner, which records it on the run
        say(error=f"{type(exc).__name__}: {exc}")
        sys.exit(1)


if __name__ == "__main__":
    main()
