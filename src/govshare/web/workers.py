"""Worker processes of ``govshare serve --workers N``, each with its own listening socket.

uvicorn's supervisor hands every worker the same listening socket, and whichever worker's
event loop wakes first accepts every connection waiting (asyncio accepts up to the
backlog in one go). Clients that open their keep-alive connections together — an
application server's pool, a load balancer — then land unevenly: 8 against 24 over two
workers was measured (bench/README.md, ``query_api.py``), and the busier worker sets the
latency of all. Here each worker slot has its own socket in one ``SO_REUSEPORT`` group,
so the kernel spreads connections over the slots by their addresses. A worker that dies
is replaced on the same slot; its socket stays open in the supervisor meanwhile, so
connections hashed to it wait in its queue instead of being refused.
"""

from __future__ import annotations

import errno
import socket

from uvicorn.config import Config
from uvicorn.supervisors import Multiprocess
from uvicorn.supervisors.multiprocess import Process


class PortInUse(OSError):
    """The port already has a listener (another hub, or anything else)."""


def check_port_free(host: str, port: int) -> None:
    """PortInUse when something listens on ``host:port``, even a group that would let a
    ``SO_REUSEPORT`` socket join it silently (a second hub started by mistake)."""
    with socket.socket(_family(host)) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise PortInUse(exc.errno, f"端口 {host}:{port} 已被占用") from None
            raise


def reuse_port_sockets(host: str, port: int, count: int) -> list[socket.socket]:
    """``count`` sockets bound to ``host:port`` in one ``SO_REUSEPORT`` group (not yet
    listening: each worker's server starts listening on its own)."""
    check_port_free(host, port)
    sockets = []
    for _ in range(count):
        sock = socket.socket(_family(host))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        sock.set_inheritable(True)
        sockets.append(sock)
    return sockets


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


class SlotSupervisor(Multiprocess):
    """uvicorn's supervisor (restarts, signals, health checks unchanged), except that a
    worker is started with one slot's socket: the first slot no running worker holds.

    uvicorn creates every worker as ``Process(self.config, self.sockets)`` and starts it
    at once, one at a time; ``sockets`` is therefore read just before a worker is
    created, answers with a free slot, and the next worker that appears in
    ``processes`` is the one holding it. A worker added beyond the slots (SIGTTIN) or
    started while all are held (the overlap of a SIGHUP restart) gets every socket, as
    uvicorn would give it."""

    def __init__(self, config: Config, sockets: list[socket.socket]) -> None:
        self._slots = sockets
        self._slot_of: dict[Process, int | None] = {}
        self._given: int | None = None
        super().__init__(config, sockets=sockets)

    def held_slots(self) -> set[int]:
        """The slots of the workers that have not ended."""
        for worker in self.processes:
            if worker not in self._slot_of:
                self._slot_of[worker], self._given = self._given, None
        self._slot_of = {w: slot for w, slot in self._slot_of.items() if w in self.processes}
        return {
            slot
            for worker, slot in self._slot_of.items()
            if slot is not None and worker.exitcode is None
        }

    @property  # type: ignore[override]
    def sockets(self) -> list[socket.socket]:
        held = self.held_slots()
        free = [i for i in range(len(self._slots)) if i not in held]
        self._given = free[0] if free else None
        return [self._slots[free[0]]] if free else list(self._slots)

    @sockets.setter
    def sockets(self, value: list[socket.socket]) -> None:
        self._slots = value
