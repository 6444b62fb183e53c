"""The native read of a SQLite source: connectorx in a process of its own (never in the
node's, where a second SQLite library would break the first one's locks on the file),
giving the very packages the Python path gives, and the source back to the Python path
when a value does not fit its column."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from govshare.exchange.package import decode_rows, encode_rows
from govshare.node import native
from govshare.node import source as source_module
from govshare.node.source import SourceReader, make_engine
from tests.node.native_pages import pages_read

pytestmark = pytest.mark.skipif(
    not native.available() and not os.environ.get("CI"), reason="connectorx not installed"
)

TRICKY = ["张三·𠀀𝄞", 'O\'Brien "引号" \\ 反斜杠', "", "%s %(x)s _%", "行\n回车\r\tZ\x1a", None]
CONFIG = {"table": "person", "key": ["id"], "mode": "incremental", "cursor_column": "version"}
DDL = (
    "CREATE TABLE person (id INTEGER PRIMARY KEY, version INTEGER NOT NULL, name TEXT,"
    " note VARCHAR(200), score REAL, small SMALLINT)"
)


def _rows(n: int) -> Iterator[tuple[Any, ...]]:
    for i in range(1, n + 1):
        yield (
            i * 7,
            i % 40,
            TRICKY[i % len(TRICKY)],
            None if i % 9 == 0 else f"第{i}条" * (1 + i % 3),
            None if i % 11 == 0 else [0.1, -0.0, 1e300, 5e-324, 12345.678][i % 5] * i,
            (-1) ** i * (i % 32767),
        )


def _source(path: Path, rows: int, ddl: str = DDL) -> str:
    con = sqlite3.connect(path)
    con.execute(ddl)
    con.executemany(f"INSERT INTO person VALUES ({', '.join('?' * 6)})", _rows(rows))
    con.commit()
    con.close()
    return f"sqlite:///{path}"


def _ready(reader: SourceReader) -> native.NativeReader:
    """The reader with its reading process up (started by a first page, read the
    Python way)."""
    assert reader.native is not None
    if reader.native.worker is None:
        found = reader.next_batch(None, 1, columnar=True)
        assert found is not None
        assert isinstance(found[0], list)
    worker = reader.native.worker
    assert worker is not None
    deadline = time.monotonic() + 60
    while not worker.ready():
        assert time.monotonic() < deadline, "the reading process did not start"
        time.sleep(0.05)
    return reader.native


def _packages(reader: SourceReader, batch_rows: int) -> list[tuple[pa.Table, list[Any], bool]]:
    """Every batch as the node packages it (decoded again), its next cursor, and
    whether it came as Arrow columns (the native read) or as Python rows."""
    out, cursor = [], None
    while (found := reader.next_batch(cursor, batch_rows, columnar=True)) is not None:
        rows, cursor = found
        body = encode_rows(reader.columns, ["I"] * len(rows), rows)
        out.append((decode_rows(body), cursor, isinstance(rows, pa.Table)))
        if len(rows) < batch_rows:
            break
    return out


def test_the_native_read_packages_what_the_python_path_packages(tmp_path: Path) -> None:
    url = _source(tmp_path / "biz.db", 2500)
    fast = SourceReader(make_engine(url), CONFIG)
    slow = SourceReader(make_engine(url), CONFIG, fast_read=False)
    try:
        assert slow.native is None
        reader = _ready(fast)
        native_packages = _packages(fast, 400)
        python_packages = _packages(slow, 400)
        assert reader.gave_up is None
        assert [how for _, _, how in native_packages] == [True] * 7
        assert [how for _, _, how in python_packages] == [False] * 7
        for (got, got_cursor, _), (want, want_cursor, _) in zip(
            native_packages, python_packages, strict=True
        ):
            assert got.schema == want.schema
            assert got.to_pylist() == want.to_pylist()
            assert got_cursor == want_cursor
        keys = [k for table, _, _ in native_packages for k in table.column("id").to_pylist()]
        assert sorted(keys) == [i * 7 for i in range(1, 2501)]
    finally:
        fast.close()


@pytest.mark.parametrize(("prefix", "count"), [("第1", 100), ("第1_", 1)])
def test_a_grants_prefix_filter_comes_natively_as_the_python_path_gives_it(
    tmp_path: Path, prefix: str, count: int
) -> None:
    """A prefix filter's ``LIKE`` pattern, with its ``%`` and escaped ``_``, reaches the
    reading process; the same rows come as the Python path reads them."""
    url = _source(tmp_path / "biz.db", 500)
    con = sqlite3.connect(tmp_path / "biz.db")
    with con:  # "_" the character: LIKE's any-one-character would match 第10条… too
        con.execute("INSERT INTO person (id, version, note) VALUES (9999, 1, '第1_条')")
    con.close()
    scoped = {**CONFIG, "row_filter": [{"column": "note", "op": "prefix", "value": prefix}]}
    fast = SourceReader(make_engine(url), scoped)
    slow = SourceReader(make_engine(url), scoped, fast_read=False)
    try:
        _ready(fast)
        native_packages = _packages(fast, 50)
        python_packages = _packages(slow, 50)
        assert all(how for _, _, how in native_packages)
        assert [t.to_pylist() for t, _, _ in native_packages] == [
            t.to_pylist() for t, _, _ in python_packages
        ]
        notes = [r["note"] for t, _, _ in native_packages for r in t.to_pylist()]
        assert len(notes) == count
        assert all(n.startswith(prefix) for n in notes)
    finally:
        fast.close()


def test_a_key_scan_reads_through_the_reading_process_once_it_is_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The key scan's first pages go the Python way while the process starts (the scan
    starts it), the rest through it: every key once, the same strings either way."""
    url = _source(tmp_path / "biz.db", 2500)
    monkeypatch.setattr(source_module, "KEY_PAGE_ROWS", 300)
    fast = SourceReader(make_engine(url), {**CONFIG, "key": ["small", "id"]})
    slow = SourceReader(make_engine(url), {**CONFIG, "key": ["small", "id"]}, fast_read=False)
    try:
        assert fast.native is not None
        want = sorted(slow.live_key_strings())
        assert len(set(want)) == 2500
        assert "-1\x1f7" in want
        assert sorted(fast.live_key_strings()) == want
        assert fast.native.worker is not None  # the scan started it
        _ready(fast)
        pages = pages_read(fast.native, monkeypatch)
        assert fast.checksum() == slow.checksum()
        assert pages == [True] * 9
    finally:
        fast.close()


def test_pages_go_the_python_way_until_the_reading_process_is_up(tmp_path: Path) -> None:
    url = _source(tmp_path / "biz.db", 30)
    reader = SourceReader(make_engine(url), CONFIG)
    try:
        assert reader.native is not None
        first = reader.next_batch(None, 10, columnar=True)  # asked at once: not up yet
        assert first is not None
        assert isinstance(first[0], list)
        assert len(first[0]) == 10
        _ready(reader)
        second = reader.next_batch(first[1], 10, columnar=True)
        assert second is not None
        assert isinstance(second[0], pa.Table)
        assert second[0].column("id").to_pylist() == [i * 7 for i in range(11, 21)]
    finally:
        reader.close()


def test_what_the_native_read_is_not_taken_for_on_sqlite(tmp_path: Path) -> None:
    url = _source(tmp_path / "biz.db", 3)
    assert native.native_url(make_engine(url)) == "sqlite://" + str(tmp_path / "biz.db")
    # In memory, or with URI options the Python driver was told and connectorx would not be.
    assert native.native_url(make_engine("sqlite://")) is None
    assert native.native_url(make_engine(f"{url}?timeout=5")) is None
    # A BOOLEAN is an integer on the Python path and a boolean in connectorx; a DATE is
    # text to one and a date to the other.
    for ddl in ("flag BOOLEAN", "born DATE", "amount NUMERIC(10, 2)"):
        other = _source(
            tmp_path / f"{ddl.split()[0]}.db",
            0,
            f"CREATE TABLE person (id INTEGER PRIMARY KEY,"
            f" version INTEGER, {ddl}, a TEXT, b TEXT, c TEXT)",
        )
        reader = SourceReader(make_engine(other), CONFIG)
        assert reader.native is None, ddl


def test_a_value_that_does_not_fit_its_column_sends_the_source_back(tmp_path: Path) -> None:
    """SQLite keeps what it is given: text in an INTEGER column reads fine on the Python
    path (the package takes the column as text) but not in connectorx, which gives up for
    good; the page is read again the Python way and nothing is lost."""
    path = tmp_path / "biz.db"
    url = _source(path, 20)
    con = sqlite3.connect(path)
    con.execute("UPDATE person SET small = '十二' WHERE id = 70")
    con.commit()
    con.close()
    fast = SourceReader(make_engine(url), CONFIG)
    slow = SourceReader(make_engine(url), CONFIG, fast_read=False)
    try:
        reader = _ready(fast)
        got = _packages(fast, 50)
        want = _packages(slow, 50)
        assert reader.gave_up is not None
        assert reader.gave_up.startswith("connectorx 出错: RuntimeError")
        assert [how for _, _, how in got] == [False]
        assert got[0][0].to_pylist() == want[0][0].to_pylist()
        assert "十二" in got[0][0].column("small").to_pylist()
    finally:
        fast.close()


# A node reading its SQLite source natively: it says whether connectorx (and with it a
# second SQLite library) was ever loaded into its own process, then the worker's pid.
NODE = """
import sys, time
import pyarrow as pa
from govshare.node.source import SourceReader, make_engine
reader = SourceReader(make_engine(sys.argv[1]), {"table": "person", "key": ["id"]})
assert reader.native.worker is None  # a reader made for key scans alone starts none
reader.next_batch(None, 10, columnar=True)
worker = reader.native.worker
while not worker.ready():
    time.sleep(0.05)
rows, _ = reader.next_batch(None, 10, columnar=True)
print("native", isinstance(rows, pa.Table), "connectorx" in sys.modules, flush=True)
print("worker", worker._proc.pid, flush=True)
time.sleep(600)
"""


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state in "ZX"  # exited; left for its new parent to reap


def test_connectorx_reads_in_its_own_process_which_leaves_when_the_node_is_killed(
    tmp_path: Path,
) -> None:
    url = _source(tmp_path / "biz.db", 3)
    node = subprocess.Popen(
        [sys.executable, "-c", NODE, url],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    try:
        assert node.stdout is not None
        said: dict[str, list[str]] = {}
        while "worker" not in said:  # the node's log lines come first
            words = node.stdout.readline().split()
            assert words or node.poll() is None, "the node ended before its worker started"
            if words:
                said[words[0]] = words[1:]
        assert said["native"] == ["True", "False"]  # read natively, not in the node
        worker_pid = int(said["worker"][0])
        assert not _gone(worker_pid)
        node.send_signal(signal.SIGKILL)
        node.wait(10)
        deadline = time.monotonic() + 10
        while not _gone(worker_pid):
            assert time.monotonic() < deadline, "the reading process outlived the node"
            time.sleep(0.1)
    finally:
        node.kill()
        node.wait(10)
        if node.stdout is not None:
            node.stdout.close()
