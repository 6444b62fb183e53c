"""Node key-mirror benchmark: what sealing the front-end node's key mirror costs.

A front-end node keeps every key it has sent (the key mirror) to tell inserts from
updates and to find the rows deleted at the source. In a sealed store
(``secret_file``) each key that is not a row number is kept as a keyed tag beside a
sealed copy (``govshare.node.store.MirrorKeys``). This bench drives ``LocalStore`` the
way an extraction does — ``--rows`` keys in batches of ``--batch`` (50,000, a provider
task's default), each batch looked up, then added, in one transaction — and then the
key scan that finds the deleted rows (one key in a thousand gone), for:

* a sealed store with 公民身份号码 keys (tagged and sealed);
* a sealed store with row numbers (kept as they are);
* the reference: a store in the clear with the same 公民身份号码 keys.

The last line::

    rows=… sealed_keys_per_s=… sealed_scan_keys_per_s=… row_number_keys_per_s=…
    clear_keys_per_s=… clear_scan_keys_per_s=… ratio=…

``ratio`` is the sealed store's rate over the clear store's for 公民身份号码 keys. There
is no target; the figure tells an operator what a sealed node pays per row of a table
keyed by a text key (docs/operator.md, 本地库静态加密).

Usage: ``.venv/bin/python bench/node_mirror.py`` (1,000,000 keys, about half a minute),
``--rows 200000`` for a quick run.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from govshare.node.store import LocalStore
from govshare.security.atrest import AtRestCipher

SECRET = "bench-node-secret-0123456789abcdef"


def id_number(i: int) -> str:
    return f"3702021990{i:08d}"


def measure(
    directory: Path, rows: int, batch: int, key: Callable[[int], str], *, sealed: bool
) -> tuple[float, float]:
    """(keys looked up and added per second, keys scanned for deletions per second)."""
    store = LocalStore(directory, AtRestCipher(directory, SECRET, "sm4") if sealed else None)
    try:
        started = time.perf_counter()
        for first in range(0, rows, batch):
            keys = [key(i) for i in range(first, min(first + batch, rows))]
            with store.transaction() as conn:
                store.existing_keys(conn, 1, keys)
                store.add_keys(conn, 1, keys)
        added = time.perf_counter() - started
        started = time.perf_counter()
        gone = store.missing_keys(1, (key(i) for i in range(rows) if i % 1000))
        scanned = time.perf_counter() - started
        assert len(gone) == len(range(0, rows, 1000)), len(gone)
        assert sorted(gone) == sorted(key(i) for i in range(0, rows, 1000))
    finally:
        store.close()
    return rows / added, rows / scanned


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000, help="keys sent")
    parser.add_argument("--batch", type=int, default=50_000, help="keys per extraction batch")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="govshare-bench-mirror-") as tmp:
        runs = {
            "sealed": (id_number, True),
            "row_number": (str, True),
            "clear": (id_number, False),
        }
        rates: dict[str, tuple[float, float]] = {}
        for name, (key, sealed) in runs.items():
            rates[name] = measure(Path(tmp) / name, args.rows, args.batch, key, sealed=sealed)
            print(
                f"{name:>10}: 查找并记入 {rates[name][0]:>12,.0f} 键/秒, "
                f"删除比对 {rates[name][1]:>12,.0f} 键/秒",
                flush=True,
            )
    print(
        f"rows={args.rows} sealed_keys_per_s={rates['sealed'][0]:.0f} "
        f"sealed_scan_keys_per_s={rates['sealed'][1]:.0f} "
        f"row_number_keys_per_s={rates['row_number'][0]:.0f} "
        f"clear_keys_per_s={rates['clear'][0]:.0f} clear_scan_keys_per_s={rates['clear'][1]:.0f} "
        f"ratio={rates['sealed'][0] / rates['clear'][0]:.3f}"
    )


if __name__ == "__main__":
    main()
