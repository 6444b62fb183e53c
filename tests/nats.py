"""Real NATS servers for the tests (Debian ``nats-server``), on free loopback ports with
JetStream file storage in temporary directories: one server, or a three-node cluster."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.pg import free_port


def nats_server_bin() -> str | None:
    found = shutil.which("nats-server")
    if found:
        return found
    return "/usr/sbin/nats-server" if Path("/usr/sbin/nats-server").exists() else None


def require_nats_server() -> str:
    """The binary; skip where it is missing, except in CI (which installs it)."""
    found = nats_server_bin()
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("nats-server is missing in CI (.ci/run installs the Debian package)")
        pytest.skip("nats-server is not installed here (CI installs it and never skips)")
    return found


@dataclass
class NatsServer:
    binary: str
    name: str
    store_dir: Path
    port: int = field(default_factory=free_port)
    monitor_port: int = field(default_factory=free_port)
    extra_args: list[str] = field(default_factory=list)
    config: dict[str, int | str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    @property
    def log_file(self) -> Path:
        return self.store_dir.parent / f"{self.name}.log"

    def start(self) -> NatsServer:
        self.store_dir.mkdir(parents=True, exist_ok=True)
        args = [
            self.binary,
            "-js",
            "-a",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-m",
            str(self.monitor_port),
            "-sd",
            str(self.store_dir),
            "--server_name",
            self.name,
            *self.extra_args,
        ]
        if self.config:
            conf = self.store_dir.parent / f"{self.name}.conf"
            conf.write_text("".join(f"{k}: {v}\n" for k, v in self.config.items()))
            args += ["-c", str(conf)]
        with self.log_file.open("ab") as log:
            self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        return self

    def healthy(self) -> bool:
        """The server answers and its JetStream is current (with the cluster's leader)."""
        if self.proc is None or self.proc.poll() is not None:
            return False
        try:
            r = httpx.get(f"http://127.0.0.1:{self.monitor_port}/healthz", timeout=1)
        except httpx.TransportError:
            return False
        return r.status_code == 200

    def wait_healthy(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not self.healthy():
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"nats-server {self.name} exited:\n{self.log_text()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"nats-server {self.name} not healthy:\n{self.log_text()}")
            time.sleep(0.1)

    def log_text(self) -> str:
        return self.log_file.read_text(errors="replace")[-4000:] if self.log_file.exists() else ""

    def stop(self) -> None:
        """Orderly shutdown (SIGTERM), as an operator would."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None

    def kill(self) -> None:
        """A crash: SIGKILL, nothing flushed or handed over."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.proc = None


def start_nats(base: Path, name: str = "n1", **config: int | str) -> NatsServer:
    """One JetStream server; ``config`` goes to a config file (e.g. ``max_payload``)."""
    server = NatsServer(require_nats_server(), name, base / name / "store", config=config)
    server.start().wait_healthy()
    return server


@dataclass
class NatsCluster:
    servers: list[NatsServer]

    @property
    def url(self) -> str:
        return ",".join(s.url for s in self.servers)

    def by_name(self, name: str) -> NatsServer:
        return next(s for s in self.servers if s.name == name)

    def wait_healthy(self, timeout: float = 60) -> None:
        for s in self.servers:
            if s.proc is not None:
                s.wait_healthy(timeout)

    def stop(self) -> None:
        for s in self.servers:
            s.stop()


def start_cluster(base: Path, size: int = 3, attempts: int = 3) -> NatsCluster:
    """A JetStream cluster of ``size`` servers routed to each other over loopback.

    Ports are picked free one by one before the servers bind them, so another process
    (or one of this cluster's own servers) may take one in between; a cluster whose
    server then fails with "address already in use" is stopped and started again on
    fresh ports and directories."""
    for attempt in range(attempts):
        cluster = _cluster(base if attempt == 0 else base / f"again{attempt}", size)
        try:
            for s in cluster.servers:
                s.start()
            cluster.wait_healthy()
        except RuntimeError as exc:
            cluster.stop()
            if "address already in use" not in str(exc) or attempt == attempts - 1:
                raise
            continue
        return cluster
    raise AssertionError("unreachable")


def _cluster(base: Path, size: int) -> NatsCluster:
    binary = require_nats_server()
    cluster_ports = [free_port() for _ in range(size)]
    servers = []
    for i, cport in enumerate(cluster_ports):
        routes = ",".join(f"nats://127.0.0.1:{p}" for p in cluster_ports if p != cport)
        name = f"n{i + 1}"
        servers.append(
            NatsServer(
                binary,
                name,
                base / name / "store",
                extra_args=[
                    "--cluster_name",
                    "govshare",
                    "--cluster",
                    f"nats://127.0.0.1:{cport}",
                    "--routes",
                    routes,
                ],
            )
        )
    return NatsCluster(servers)
