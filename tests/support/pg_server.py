"""A throwaway PostgreSQL server for the test session, from Debian's binaries.

PostgreSQL refuses to run as root, so when the tests run as root the server runs as
the ``postgres`` system user that Debian's package creates.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from tests.support.ports import free_port

#: The server settings that make a commit durable; `PostgresServer.start` turns all three
#: off unless asked for a durable server.
DURABILITY_SETTINGS = ("fsync", "synchronous_commit", "full_page_writes")


class PostgresUnavailable(RuntimeError):
    pass


def find_bindir() -> Path:
    explicit = os.environ.get("TENURE_PG_BINDIR")
    candidates = [explicit] if explicit else []
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
        candidates.append(out.stdout.strip())
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    for candidate in candidates:
        if candidate and (Path(candidate) / "initdb").exists():
            return Path(candidate)
    raise PostgresUnavailable(
        "PostgreSQL server binaries (initdb, pg_ctl) not found: run `make test`, which "
        "installs Debian's postgresql package, or set TENURE_PG_BINDIR"
    )


@dataclass
class PostgresServer:
    bindir: Path
    root: Path
    port: int
    user: str = "tenure"

    @property
    def admin_url(self) -> str:
        return self.url("postgres")

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://{self.user}@127.0.0.1:{self.port}/{database}"

    def fresh_database(self, prefix: str = "t") -> str:
        """The URL of a new, empty database on this server."""
        from sqlalchemy import create_engine, text

        name = f"{prefix}_{uuid.uuid4().hex[:16]}"
        engine = create_engine(self.admin_url, isolation_level="AUTOCOMMIT")
        with engine.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))  # generated hex name
        engine.dispose()
        return self.url(name)

    @classmethod
    def start(cls, *, durable: bool = False) -> PostgresServer:
        """A new server on a free loopback port. By default it skips what makes a commit
        survive a crash (``fsync``, ``synchronous_commit`` and ``full_page_writes`` off:
        nothing it holds is worth keeping); ``durable=True`` turns the three on, as a
        production server runs."""
        bindir = find_bindir()
        setting = "on" if durable else "off"
        durability = " ".join(f"-c {name}={setting}" for name in DURABILITY_SETTINGS)
        root = Path(tempfile.mkdtemp(prefix="tenure-pg-"))
        server = cls(bindir, root, free_port())
        server._chown(root)
        data = root / "data"
        server._run("initdb", "-D", str(data), "-U", server.user, "-A", "trust", "-E", "UTF8",
                    "--no-sync", "--locale=C.UTF-8")  # fmt: skip
        server._run(
            "pg_ctl", "-D", str(data), "-l", str(root / "server.log"), "-w", "-t", "60",
            "-o", f"-h 127.0.0.1 -p {server.port} -k {root} {durability}",
            "start",
        )  # fmt: skip
        return server

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.root / "data"), "-m", "immediate", "-w", "stop",
                  check=False)  # fmt: skip
        shutil.rmtree(self.root, ignore_errors=True)

    def _run(self, program: str, *args: str, check: bool = True) -> None:
        command = [str(self.bindir / program), *args]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if check and result.returncode != 0:
            log = self.root / "server.log"
            tail = log.read_text()[-2000:] if log.exists() else ""
            raise PostgresUnavailable(f"{program} failed: {result.stderr.strip()}\n{tail}")

    @staticmethod
    def _chown(path: Path) -> None:
        if os.geteuid() == 0:
            try:
                entry = pwd.getpwnam("postgres")
            except KeyError:
                raise PostgresUnavailable(
                    "running as root needs the 'postgres' user that Debian's postgresql "
                    "package creates"
                ) from None
            os.chown(path, entry.pw_uid, entry.pw_gid)


def wait_until_ready(url: str, timeout: float = 30.0) -> None:
    import psycopg

    deadline = time.monotonic() + timeout
    dsn = url.replace("postgresql+psycopg://", "postgresql://")
    while True:
        try:
            psycopg.connect(dsn).close()
            return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
