"""Shared fixtures: a real PostgreSQL server, demo stores, and a guard against network use."""

from __future__ import annotations

import ipaddress
import os
import shutil
import socket
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from tests.support.imap_server import ImapServer, ImapUnavailable, find_dovecot
from tests.support.mariadb_server import MariaDBServer, MariaDBUnavailable
from tests.support.mariadb_server import find_binaries as find_mariadb_binaries
from tests.support.pg_server import PostgresServer, wait_until_ready

REPO = Path(__file__).resolve().parent.parent
SHIPPED_POLICY = REPO / "retention_rules" / "policies" / "crm_pro.yaml"
FIXTURES = Path(__file__).resolve().parent / "fixtures"
# The demo data is generated up to this instant so that every expectation is fixed.
DEMO_AS_OF = datetime(2026, 11, 24, tzinfo=UTC)
#: The audit log's HMAC key (``flows.audit``): a real run refuses to start without one. Set
#: here, at import, so that module fixtures and the subprocesses tests start have it too.
AUDIT_KEY = "test-audit-key-0123456789abcdef"
os.environ.setdefault("TENURE_AUDIT_KEY", AUDIT_KEY)
#: The shipped policy's pseudonym keys: `validate`, `plan` and dry runs check that every
#: keyed operator's key can be found (``flows.preflight``), as the real run needs them.
os.environ.setdefault("TENURE_PSEUDONYM_KEY", "test-key-0123456789abcdef")
os.environ.setdefault("TENURE_PSEUDONYM_KEY_ACCOUNTS", "test-accounts-key-0123456789")


class OutboundConnection(AssertionError):
    pass


def _is_local(address: Any) -> bool:
    if not isinstance(address, tuple):
        return True  # a Unix socket path
    return _is_local_host(address[0])


def _is_local_host(host: Any) -> bool:
    if host is None or isinstance(host, bytes):
        host = host.decode() if host else ""
    if host in ("localhost", "", socket.gethostname()):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


#: Every refused attempt, so a test can see one that library code caught and ignored.
OUTBOUND_ATTEMPTS: list[str] = []


#: Fixtures that start a real server: a test using one (directly or through another
#: fixture) is marked ``servers``.
SERVER_FIXTURES = frozenset(
    {"pg_server", "demo_pg_url", "mariadb_server", "imap_server", "prefect_server"}
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that needs a server ``servers`` (``postgres`` tests, tests whose
    fixtures start one, and the PostgreSQL case of a backend-parametrized test)."""
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        params = getattr(getattr(item, "callspec", None), "params", {})
        if (
            item.get_closest_marker("postgres")
            or fixtures & SERVER_FIXTURES
            or "postgresql" in params.values()
        ):
            item.add_marker(pytest.mark.servers)


@pytest.fixture(autouse=True, scope="session")
def _no_outbound_network() -> Iterator[None]:
    """Fail any test that opens a connection beyond this machine's loopback."""
    original = socket.socket.connect
    original_ex = socket.socket.connect_ex

    def refuse(message: str) -> OutboundConnection:
        OUTBOUND_ATTEMPTS.append(message)  # kept even if the caller swallows the error
        return OutboundConnection(message)

    def guarded(sock: socket.socket, address: Any) -> Any:
        if not _is_local(address):
            raise refuse(f"outbound connection attempted to {address!r}")
        return original(sock, address)

    def guarded_ex(sock: socket.socket, address: Any) -> Any:
        if not _is_local(address):
            raise refuse(f"outbound connection attempted to {address!r}")
        return original_ex(sock, address)

    original_lookup = socket.getaddrinfo

    def guarded_lookup(host: Any, *args: Any, **kwargs: Any) -> Any:
        if not _is_local_host(host):
            raise refuse(f"name lookup of {host!r} attempted")
        return original_lookup(host, *args, **kwargs)

    socket.socket.connect = guarded  # type: ignore[method-assign]
    socket.socket.connect_ex = guarded_ex  # type: ignore[method-assign]
    socket.getaddrinfo = guarded_lookup
    try:
        yield
    finally:
        socket.socket.connect = original  # type: ignore[method-assign]
        socket.socket.connect_ex = original_ex  # type: ignore[method-assign]
        socket.getaddrinfo = original_lookup


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    server = PostgresServer.start()
    try:
        wait_until_ready(server.admin_url)
        yield server
    finally:
        server.stop()


@pytest.fixture
def pg_url(pg_server: PostgresServer) -> str:
    """A fresh, empty database on the session's server."""
    return pg_server.fresh_database()


def build_demo(url: str, customers: int = 60) -> dict[str, int]:
    from flows.demo.generate import DemoSpec, build_demo_store

    engine = create_engine(url)
    try:
        return build_demo_store(engine, DemoSpec(customers=customers, as_of=DEMO_AS_OF))
    finally:
        engine.dispose()


@pytest.fixture(scope="session")
def demo_sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A small demo store shared by read-only tests."""
    path = tmp_path_factory.mktemp("demo") / "crm.sqlite"
    url = f"sqlite:///{path}"
    build_demo(url)
    return url


@pytest.fixture(scope="session")
def demo_pg_url(pg_server: PostgresServer) -> str:
    """The same demo store in PostgreSQL, shared by read-only tests."""
    engine = create_engine(pg_server.admin_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(text('CREATE DATABASE "demo"'))
    engine.dispose()
    url = pg_server.url("demo")
    build_demo(url)
    return url


@pytest.fixture(params=["sqlite", "postgresql"])
def demo_url(request: pytest.FixtureRequest) -> str:
    """Each read-only demo test runs on both backends."""
    name = "demo_sqlite_url" if request.param == "sqlite" else "demo_pg_url"
    return str(request.getfixturevalue(name))


@pytest.fixture(scope="session")
def mariadb_server() -> Iterator[MariaDBServer]:
    """A MariaDB server for the session; skipped only when its binaries are not installed."""
    try:
        binaries = find_mariadb_binaries()
    except MariaDBUnavailable as exc:
        pytest.skip(f"MariaDB server binaries not installed: {exc}")
    server = MariaDBServer.start(binaries)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def mariadb_url(mariadb_server: MariaDBServer) -> str:
    """A fresh, empty database on the session's MariaDB server."""
    return mariadb_server.create_database(f"t_{uuid.uuid4().hex[:16]}")


# a real IMAP server (Dovecot) for the mail store tests


@pytest.fixture(scope="session")
def imap_server() -> Iterator[ImapServer]:
    """A Dovecot server for the session; skipped only when Dovecot is not installed."""
    try:
        find_dovecot()
    except ImapUnavailable as exc:
        pytest.skip(str(exc))
    server = ImapServer.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def imap_user(imap_server: ImapServer) -> str:
    """A new user of the session's server: an empty mailbox for one test."""
    return imap_server.new_user()


# the shipped policy's mail and weblogs stores: the demo's Maildir and web logs


def demo_files_environ(root: Path) -> dict[str, str]:
    """Point the shipped policy's ``mail`` and ``weblogs`` stores at demo files under
    ``root`` (their defaults are relative to the working directory)."""
    return {
        "TENURE_MAIL_URL": f"maildir:///{root / 'mail'}?internal_domains=360.agency",
        "TENURE_WEBLOGS_URL": f"files:///{root / 'weblogs'}",
    }


@pytest.fixture(scope="session")
def demo_files_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Maildir and web logs that go with ``build_demo``'s store, built once."""
    from flows.demo.files_and_mail import build_demo_files
    from flows.demo.generate import DemoSpec

    root = tmp_path_factory.mktemp("demo-files")
    build_demo_files(root, DemoSpec(customers=60, as_of=DEMO_AS_OF))
    return root


@pytest.fixture
def demo_files(
    demo_files_template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> dict[str, str]:
    """A test's own copy of the demo files (runs change them), with the environment
    pointing the shipped policy at it; returns those variables."""
    root = tmp_path / "demo-files"
    shutil.copytree(demo_files_template, root)  # copy2 keeps the messages' mtimes
    environ = demo_files_environ(root)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    return environ
