"""Resealing benchmark: how fast a shared store is copied to a table of its new sealing
(``govshare stores reseal``, ``govshare.sharing.reseal.StoreCopy``).

A store of ``--rows`` persons (id, 公民身份号码, 姓名, 性别) is written in the clear by
the exchange's writer into a shared-store database (a SQLite file by default, or
``--url``). Then, timed:

* **seal**: the copy that seals 公民身份号码 and 姓名 (items marked sensitive after the
  store was set up): key-ordered batches read, two columns sealed, rows inserted;
* **rekey**: the copy of that sealed table under the next field key (after
  ``govshare keys rotate field-seal``): both columns opened and sealed again;
* the references: the database copying the table by itself (``INSERT INTO … SELECT``,
  no row leaving the database), and the field sealer alone sealing the same cells.

The last line::

    rows=… seal_rows_per_s=… rekey_rows_per_s=… db_copy_rows_per_s=…
    seal_cells_per_s=… ratio=…

``ratio`` is the sealing copy's rate over the database's own copy. There is no target:
the figure tells an operator how long a store is copied while its packages wait
(docs/operations.md, 重新加密).

Usage: ``.venv/bin/python bench/reseal.py`` (1,000,000 rows), ``--rows 100000`` for a
quick run.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import pyarrow as pa
from sqlalchemy import MetaData, text

from govshare.exchange.package import OP_COLUMN
from govshare.node.target import TargetWriter
from govshare.security.fieldseal import FieldSealer, rotate
from govshare.sharing.reseal import Sealing, StoreCopy
from govshare.sharing.store import SharedDatabase, make_table, retired_tables

SECRET = "bench-field-seal-secret-0123456789abcdef"
BATCH = 50_000
STORE = 1


def fill(db: SharedDatabase, rows: int) -> None:
    """The store's table as the feed leaves it: packages of ``BATCH`` rows applied."""
    writer = TargetWriter(db.engine, STORE, {"table": "ss_1", "mapping": {}}, ["id"])
    for seq, first in enumerate(range(0, rows, BATCH), start=1):
        ids = list(range(first, min(first + BATCH, rows)))
        package = pa.table(
            {
                "id": pa.array(ids, pa.int64()),
                "sfzhm": [f"3702021990{i:08d}" for i in ids],
                "xm": [f"姓名{i}" for i in ids],
                "xb": ["1" if i % 2 else "2" for i in ids],
                OP_COLUMN: ["I"] * len(ids),
            }
        )
        writer.apply(seq, package)


def copy(db: SharedDatabase, old: str, new: str, before: Sealing, after: Sealing) -> float:
    retired = retired_tables(MetaData())
    make_table(db.engine, retired)
    started = time.perf_counter()
    rows = StoreCopy(db, STORE, old, new, before, after, retired).run(None)
    elapsed = time.perf_counter() - started
    return rows / elapsed


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows in the store")
    parser.add_argument("--url", help="the shared-store database (default: a SQLite file)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="govshare-bench-reseal-") as tmp:
        url = args.url or f"sqlite:///{Path(tmp) / 'shared.db'}"
        sealer = FieldSealer(Path(tmp) / "data", SECRET)
        db = SharedDatabase(url, sealer)
        try:
            fill(db, args.rows)
            started = time.perf_counter()
            with db.engine.begin() as conn:
                conn.execute(text("CREATE TABLE ref_copy AS SELECT * FROM ss_1 WHERE 1 = 0"))
                conn.execute(text("INSERT INTO ref_copy SELECT * FROM ss_1"))
            db_copy = args.rows / (time.perf_counter() - started)
            names = pa.array([f"姓名{i}" for i in range(args.rows)])
            started = time.perf_counter()
            sealer.under(1).seal_array(names)
            seal_cells = args.rows / (time.perf_counter() - started)
            sealed = {"sfzhm": "string", "xm": "string"}
            seal = copy(db, "ss_1", "ss_1_r2", Sealing({}, 1), Sealing(dict(sealed), 1))
            rotate(Path(tmp) / "data", SECRET, "sm4")
            rekey = copy(db, "ss_1_r2", "ss_1_r3", Sealing(sealed, 1), Sealing(dict(sealed), 2))
            with db.engine.connect() as conn:
                found = conn.execute(text("SELECT COUNT(*), MIN(sfzhm) FROM ss_1_r3")).one()
            assert found[0] == args.rows, found
            assert str(found[1]).startswith("~2."), found
        finally:
            db.close()
    print(
        f"rows={args.rows} seal_rows_per_s={seal:.0f} rekey_rows_per_s={rekey:.0f} "
        f"db_copy_rows_per_s={db_copy:.0f} seal_cells_per_s={seal_cells:.0f} "
        f"ratio={seal / db_copy:.3f}"
    )


if __name__ == "__main__":
    main()
