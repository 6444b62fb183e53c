"""``govshare serve --workers N``: each worker listens on its own socket of one
SO_REUSEPORT group (so the kernel spreads connections over the workers instead of the
first awake worker taking every waiting one), a worker killed is replaced on its own
socket, and a port already in use is refused with a clear message."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from govshare.web.workers import PortInUse, check_port_free, reuse_port_sockets
from tests.conftest import TEST_SECRET
from tests.live import ServedHub, serve_workers
from tests.pg import free_port


def _listening_inodes(port: int) -> set[str]:
    """Inodes of the TCP sockets listening on ``port`` (IPv4)."""
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, state, inode = fields[1], fields[3], fields[9]
        if state == "0A" and int(local.split(":")[1], 16) == port:
            inodes.add(inode)
    return inodes


def _socket_inodes(pid: int) -> set[str]:
    found: set[str] = set()
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return found  # the process ended since it was listed (a worker being replaced)
    for fd in fds:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            found.add(target[8:-1])
    return found


def _children(pid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # "pid (comm) state ppid …": comm may hold spaces, so split after its ")".
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            out.append(int(entry))
    return out


def _workers(serve: subprocess.Popen[bytes], port: int) -> dict[int, set[str]]:
    """Each worker of the supervisor with the listening sockets it holds."""
    listening = _listening_inodes(port)
    held = {child: _socket_inodes(child) & listening for child in _children(serve.pid)}
    return {pid: inodes for pid, inodes in held.items() if inodes}


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[ServedHub]:
    with serve_workers(tmp_path / "data") as served:
        yield served


def _wait(condition: Callable[[], bool], what: str, served: ServedHub) -> None:
    deadline = time.time() + 90
    while not condition():
        assert served.process.poll() is None, served.log.read_text(errors="replace")
        tail = served.log.read_text(errors="replace")[-2000:]
        assert time.time() < deadline, f"{what}: {tail}"
        time.sleep(0.2)


def _answers(port: int, timeout: float = 2) -> bool:
    try:
        url = f"http://127.0.0.1:{port}/healthz"
        return httpx.get(url, timeout=timeout).status_code == 200
    except httpx.HTTPError:
        return False


# The process model does not depend on the database: these run once, on SQLite. (Taking
# the backend and skipping PostgreSQL started and stopped a hub of two workers for nothing.)
def test_each_worker_listens_on_its_own_socket_and_keeps_it_when_replaced(
    serve: ServedHub,
) -> None:
    proc, port = serve.process, serve.port
    serve.wait_ready()
    _wait(lambda: len(_workers(proc, port)) == 2, "two workers listening", serve)
    workers = _workers(proc, port)
    # One socket each, and not the same one: the kernel, not the accept race, splits.
    assert all(len(inodes) == 1 for inodes in workers.values()), workers
    slots = {next(iter(inodes)) for inodes in workers.values()}
    assert len(slots) == 2
    assert _listening_inodes(port) == slots
    victim, victim_slot = next(iter(workers.items()))
    os.kill(victim, signal.SIGKILL)
    _wait(
        lambda: victim not in _workers(proc, port) and len(_workers(proc, port)) == 2,
        "the killed worker replaced",
        serve,
    )
    replaced = _workers(proc, port)
    assert set().union(*replaced.values()) == slots
    newcomer = next(pid for pid in replaced if pid not in workers)
    assert replaced[newcomer] == victim_slot
    # A new connection each: both sockets answer. Those hashed to the new worker's
    # socket wait in its queue while it starts, and are answered, not refused.
    for _ in range(20):
        assert _answers(port, timeout=60)


def test_a_port_in_use_is_refused_before_the_workers_start(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {
            **os.environ,
            "GOVSHARE_SECRET_KEY": TEST_SECRET,
            "GOVSHARE_DATA_DIR": str(tmp_path / "data"),
            "GOVSHARE_LOG_FORMAT": "console",
        }
        done = subprocess.run(
            [sys.executable, "-m", "govshare.cli", "serve", "--workers", "2", "--port", str(port)],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert done.returncode == 1
    assert f"端口 127.0.0.1:{port} 已被占用" in done.stdout + done.stderr


def test_a_second_group_on_the_same_port_is_refused() -> None:
    """A SO_REUSEPORT socket would join a running hub's group without a word: the
    port is checked with a plain socket first."""
    port = free_port()
    group = reuse_port_sockets("127.0.0.1", port, 2)
    try:
        group[0].listen()
        with pytest.raises(PortInUse):
            check_port_free("127.0.0.1", port)
        with pytest.raises(PortInUse):
            reuse_port_sockets("127.0.0.1", port, 2)
    finally:
        for sock in group:
            sock.close()
