"""Shared fixtures: a real PostgreSQL server, demo stores, and a guard against network use."""

from __future__ import annotations

import ipaddress
import socket
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from tests.pg_server import PostgresServer, wait_until_ready

REPO = Path(__file__).resolve().parent.parent
SHIPPED_POLICY = REPO / "retention_rules" / "policies" / "crm_pro.yaml"
FIXTURES = Path(__file__).resolve().parent / "fixtures"
# The demo data is generated up to this instant so that every expectation is fixed.
DEMO_AS_OF = datetime(2026, 11, 24, tzinfo=UTC)


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
    name = f"t_{uuid.uuid4().hex[:16]}"
    engine = create_engine(pg_server.admin_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))  # generated hex name
    engine.dispose()
    return pg_server.url(name)


def build_demo(url: str, customers: int = 60) -> dict[str, int]:
    from connectors.demo.generate import DemoSpec, build_demo_store

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
