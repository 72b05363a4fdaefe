"""A throwaway MariaDB server for the test session, from Debian's binaries.

``mariadb-install-db`` makes a data directory in a temporary directory and ``mariadbd``
serves it on 127.0.0.1 (a free port) and on its own Unix socket, with durability turned
off. Root logs in over that socket, without a password, only to create the ``tenure``
user, which has a password so that tests can check what a wrong one does. When the
tests run as root the server runs as the ``mysql`` system user that Debian's package
creates (``--user=mysql``: ``mariadbd`` drops root itself).

The server's own time zone is deliberately not UTC (``+05:00``), so a test fails if the
connector relied on it instead of setting its sessions' time zone.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pymysql

from tests.support.ports import free_port

SERVER_TIME_ZONE = "+05:00"
_READY_TIMEOUT = 30.0
_STOP_TIMEOUT = 10.0


class MariaDBUnavailable(RuntimeError):
    pass


@dataclass(frozen=True)
class MariaDBBinaries:
    server: Path  # mariadbd
    install_db: Path  # mariadb-install-db


def find_binaries() -> MariaDBBinaries:
    """``mariadbd`` and ``mariadb-install-db`` from TENURE_MARIADB_BINDIR, the PATH, or
    Debian's places (``/usr/sbin`` is often missing from a user's PATH)."""
    explicit = os.environ.get("TENURE_MARIADB_BINDIR")
    directories = [explicit] if explicit else ["/usr/sbin", "/usr/bin", "/usr/local/bin"]

    def find(program: str) -> Path | None:
        on_path = None if explicit else shutil.which(program)
        if on_path:
            return Path(on_path)
        for directory in directories:
            candidate = Path(directory) / program
            if candidate.is_file() and os.access(candidate, os.X_OK):
                return candidate
        return None

    server, install_db = find("mariadbd"), find("mariadb-install-db")
    if server is None or install_db is None:
        missing = [name for name, path in (("mariadbd", server), ("mariadb-install-db",
                   install_db)) if path is None]  # fmt: skip
        raise MariaDBUnavailable(
            f"{' and '.join(missing)} not found: run `make test`, which installs Debian's "
            "mariadb-server package, or set TENURE_MARIADB_BINDIR"
        )
    return MariaDBBinaries(server, install_db)


@dataclass
class MariaDBServer:
    binaries: MariaDBBinaries
    root: Path
    port: int
    password: str
    user: str = "tenure"
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def socket(self) -> Path:
        return self.root / "mariadbd.sock"

    @property
    def log(self) -> Path:
        return self.root / "error.log"

    def url(self, database: str, password: str | None = None) -> str:
        secret = self.password if password is None else password
        return f"mysql+pymysql://{self.user}:{secret}@127.0.0.1:{self.port}/{database}"

    @classmethod
    def start(cls, binaries: MariaDBBinaries | None = None) -> MariaDBServer:
        root = Path(tempfile.mkdtemp(prefix="tenure-mariadb-"))
        server = cls(binaries or find_binaries(), root, free_port(), secrets.token_hex(12))
        try:
            server._start()
        except BaseException:
            server.stop()
            raise
        return server

    def _start(self) -> None:
        as_mysql = self._as_mysql_user()
        data = self.root / "data"
        install = [
            str(self.binaries.install_db), "--no-defaults", f"--datadir={data}",
            "--auth-root-authentication-method=normal", "--skip-test-db",
            "--skip-name-resolve", *as_mysql,
        ]  # fmt: skip
        result = subprocess.run(install, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise MariaDBUnavailable(f"mariadb-install-db failed: {result.stderr.strip()}")
        command = [
            str(self.binaries.server), "--no-defaults", f"--datadir={data}",
            f"--socket={self.socket}", f"--port={self.port}", "--bind-address=127.0.0.1",
            f"--pid-file={self.root / 'mariadbd.pid'}", f"--log-error={self.log}",
            f"--tmpdir={self.root}", "--skip-name-resolve", "--skip-log-bin",
            "--character-set-server=utf8mb4", "--collation-server=utf8mb4_unicode_ci",
            f"--default-time-zone={SERVER_TIME_ZONE}",
            "--innodb-flush-log-at-trx-commit=0", "--innodb-doublewrite=0",
            "--innodb-flush-method=nosync", "--innodb-buffer-pool-size=64M",
            "--innodb-log-file-size=16M", "--innodb-fast-shutdown=2", *as_mysql,
        ]  # fmt: skip
        self.process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        admin = self._wait_for_root()
        try:
            with admin.cursor() as cursor:
                # The password is a generated hex token, passed as a parameter.
                cursor.execute("CREATE USER %s@'%%' IDENTIFIED BY %s", (self.user, self.password))
                cursor.execute("GRANT ALL PRIVILEGES ON *.* TO %s@'%%'", (self.user,))
        finally:
            admin.close()

    def _wait_for_root(self) -> pymysql.connections.Connection:
        """Root's connection over the socket, once the server accepts it."""
        assert self.process is not None
        deadline = time.monotonic() + _READY_TIMEOUT
        while True:
            try:
                return pymysql.connect(unix_socket=str(self.socket), user="root", autocommit=True)
            except pymysql.err.OperationalError:
                if self.process.poll() is not None:
                    raise MariaDBUnavailable(
                        f"mariadbd exited with status {self.process.returncode}:\n{self._tail()}"
                    ) from None
                if time.monotonic() > deadline:
                    raise MariaDBUnavailable(
                        f"mariadbd not ready after {_READY_TIMEOUT:.0f} s:\n{self._tail()}"
                    ) from None
                time.sleep(0.05)

    def create_database(self, name: str) -> str:
        """A new empty database (``name`` is a generated identifier); its URL."""
        if not name.isidentifier():
            raise ValueError(f"not a plain identifier: {name!r}")
        connection = pymysql.connect(unix_socket=str(self.socket), user="root", autocommit=True)
        try:
            with connection.cursor() as cursor:
                cursor.execute(f"CREATE DATABASE `{name}`")
        finally:
            connection.close()
        return self.url(name)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(_STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.root, ignore_errors=True)

    def _tail(self) -> str:
        return self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""

    def _as_mysql_user(self) -> list[str]:
        """Running as root: the server runs as ``mysql``, which must own the directory."""
        if os.geteuid() != 0:
            return []
        try:
            entry = pwd.getpwnam("mysql")
        except KeyError:
            raise MariaDBUnavailable(
                "running as root needs the 'mysql' user that Debian's mariadb-server "
                "package creates"
            ) from None
        os.chown(self.root, entry.pw_uid, entry.pw_gid)
        return ["--user=mysql"]
