"""A real MariaDB server for the test suite, started on a free loopback port.

As root the server runs as the ``mysql`` user (Debian's package creates it), the way a
department's DBA would run it; the suite connects over TCP as a user it creates.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pymysql

from tests.pg import free_port

USER = "govshare"
PASSWORD = "govshare-test"


def mariadbd_path() -> Path | None:
    for name in ("mariadbd", "mysqld"):
        found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/local/sbin")
        if found:
            return Path(found)
    return None


def install_db_path() -> Path | None:
    found = shutil.which("mariadb-install-db") or shutil.which("mysql_install_db")
    return Path(found) if found else None


@dataclass
class MariaDBServer:
    mariadbd: Path
    install_db: Path
    base: Path
    port: int
    run_as: str | None
    binlog: bool = True
    process: subprocess.Popen[bytes] | None = None

    @property
    def data_dir(self) -> Path:
        return self.base / "data"

    @property
    def socket(self) -> Path:
        return self.base / "mariadb.sock"

    def _cmd(self, *args: str) -> list[str]:
        return ["runuser", "-u", self.run_as, "--", *args] if self.run_as else list(args)

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.run_as:
            shutil.chown(self.base, self.run_as)
            shutil.chown(self.data_dir, self.run_as)
        subprocess.run(
            self._cmd(
                str(self.install_db),
                "--no-defaults",
                f"--datadir={self.data_dir}",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
                "--skip-name-resolve",
            ),
            check=True,
            capture_output=True,
        )
        log = open(self.base / "server.log", "wb")  # noqa: SIM115 - the server keeps it
        self.process = subprocess.Popen(
            self._cmd(
                str(self.mariadbd),
                "--no-defaults",
                f"--datadir={self.data_dir}",
                f"--socket={self.socket}",
                f"--port={self.port}",
                "--bind-address=127.0.0.1",
                f"--pid-file={self.base / 'mariadb.pid'}",
                # Its own directory for internal temporary tables (Aria #sql-temptable-…
                # files): with the default /tmp, another server or a cleanup of /tmp on
                # the same machine took one away mid-statement (errno 2 on delete).
                f"--tmpdir={self.base}",
                "--skip-name-resolve",
                *self._binlog_options(),
                # Durability is not what these tests are about: fast commits on 2 cores.
                "--innodb-flush-log-at-trx-commit=0",
                "--innodb-doublewrite=0",
                "--innodb-buffer-pool-size=64M",
                "--innodb-log-file-size=32M",
                "--character-set-server=utf8mb4",
                "--collation-server=utf8mb4_unicode_ci",
                "--max-connections=200",
            ),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.time() + 60
        while not self._listening():
            if self.process.poll() is not None or time.time() > deadline:
                tail = (self.base / "server.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"MariaDB did not start:\n{tail}")
            time.sleep(0.2)
        # Root may only come in over the socket; it creates the suite's TCP user.
        conn = pymysql.connect(unix_socket=str(self.socket), user="root", connect_timeout=10)
        with conn, conn.cursor() as cur:
            cur.execute(f"CREATE USER '{USER}'@'127.0.0.1' IDENTIFIED BY '{PASSWORD}'")
            cur.execute(f"GRANT ALL PRIVILEGES ON *.* TO '{USER}'@'127.0.0.1'")

    def _binlog_options(self) -> list[str]:
        if not self.binlog:
            return ["--skip-log-bin"]
        # The binary log as a department's server keeps it for its replicas, so that the
        # node's log capture (node/binlog.py) reads it: row events with the whole row and
        # the column names (without FULL metadata the log has no names).
        return [
            f"--log-bin={self.base / 'binlog'}",
            "--binlog-format=ROW",
            "--binlog-row-image=FULL",
            "--binlog-row-metadata=FULL",
            "--server-id=1",
        ]

    def root(self) -> pymysql.connections.Connection:  # type: ignore[type-arg]
        """A connection as root (over the socket): for what the suite's user may not do,
        such as granting privileges to another user or purging the binary log."""
        return pymysql.connect(
            unix_socket=str(self.socket), user="root", autocommit=True, charset="utf8mb4"
        )

    def _listening(self) -> bool:
        """The server accepts on its socket (probed by hand: PyMySQL leaves the socket of
        a refused attempt open)."""
        with socket.socket(socket.AF_UNIX) as probe:
            try:
                probe.connect(str(self.socket))
            except OSError:
                return False
        return True

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None
        shutil.rmtree(self.base, ignore_errors=True)

    def url(self, dbname: str) -> str:
        return f"mysql+pymysql://{USER}:{PASSWORD}@127.0.0.1:{self.port}/{dbname}?charset=utf8mb4"

    def connect(self, dbname: str | None = None) -> pymysql.connections.Connection:  # type: ignore[type-arg]
        return pymysql.connect(
            host="127.0.0.1",
            port=self.port,
            user=USER,
            password=PASSWORD,
            database=dbname,
            charset="utf8mb4",
            autocommit=True,
        )

    def create_database(self, name: str) -> str:
        with self.connect() as conn, conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
            cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
        return self.url(name)


def start_mariadb(*, binlog: bool = True) -> MariaDBServer:
    mariadbd, install_db = mariadbd_path(), install_db_path()
    if mariadbd is None or install_db is None:
        raise RuntimeError("MariaDB binaries not found: apt-get install -y mariadb-server")
    run_as = "mysql" if os.geteuid() == 0 else None
    server = MariaDBServer(
        mariadbd=mariadbd,
        install_db=install_db,
        base=Path(tempfile.mkdtemp(prefix="govshare-mariadb-")),
        port=free_port(),
        run_as=run_as,
        binlog=binlog,
    )
    server.start()
    return server
