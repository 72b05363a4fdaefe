"""Shared fixtures: real servers, the backend matrix, demo stores, the pseudonym keys,
and a guard against network use. Test modules import helpers from ``tests/support/``,
never from here or from each other (an import-linter contract in pyproject.toml)."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.dialects.mysql.base import MySQLDialect

from tests.support.backends import STORE_BACKENDS
from tests.support.demo import DEMO_AS_OF, build_demo, demo_files_environ
from tests.support.imap_server import ImapServer, ImapUnavailable, find_dovecot
from tests.support.keys import AUDIT_KEY, PSEUDONYM_KEYS
from tests.support.mariadb_server import MariaDBServer, MariaDBUnavailable
from tests.support.mariadb_server import find_binaries as find_mariadb_binaries
from tests.support.network import loopback_only
from tests.support.paths import REPO
from tests.support.pg_server import PostgresServer, wait_until_ready

# The keys, set here at import so that module fixtures and the subprocesses tests start
# have them too (a value already in the environment is kept; ``pseudonym_keys`` forces them).
os.environ.setdefault("TENURE_AUDIT_KEY", AUDIT_KEY)
for _name, _value in PSEUDONYM_KEYS.items():
    os.environ.setdefault(_name, _value)


#: Fixtures that start a real server: a test using one (directly or through another
#: fixture) is marked ``servers``.
SERVER_FIXTURES = frozenset(
    {"pg_server", "demo_pg_url", "mariadb_server", "imap_server", "prefect_server"}
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that needs a server ``servers``: ``postgres`` tests and tests whose
    fixtures start one. (The server cases of the backend matrix carry the mark from their
    parameters, ``tests/support/backends.py``: a fixture that asks for a server only when
    it runs is not seen here.)"""
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        if item.get_closest_marker("postgres") or fixtures & SERVER_FIXTURES:
            item.add_marker(pytest.mark.servers)


@pytest.fixture(autouse=True, scope="session")
def _no_outbound_network() -> Iterator[None]:
    """Fail any test that opens a connection beyond this machine's loopback."""
    with loopback_only():
        yield


@pytest.fixture(autouse=True, scope="session")
def _repository_demo_untouched() -> Iterator[None]:
    """Fail the session if a test published into the repository's own demo folder (the
    shipped policy's default destination): tests point ``TENURE_PUBLISH_URL`` at theirs
    (``tests.support.demo.demo_files_environ``)."""
    published = REPO / "tenure-demo" / "published"

    def seen() -> dict[str, int]:
        return {p.name: p.stat().st_mtime_ns for p in published.glob("*")}

    before = seen()
    yield
    assert seen() == before, f"a test wrote into {published}: give it TENURE_PUBLISH_URL"


@pytest.fixture(scope="session")
def prefect_api() -> Iterator[None]:
    """Prefect's test harness: one API for every flow the tests run in this process,
    started once (each start costs seconds). Tests that read what Prefect keeps
    (artifacts, flow runs) find other tests' there too, and pick out their own."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(scope="session")
def pseudonym_keys() -> Iterator[dict[str, str]]:
    """The pseudonym keys of the shipped and test policies, in the environment (whatever
    it held before) from the first test that asks until the session ends; returns them."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in PSEUDONYM_KEYS.items():
            patch.setenv(name, value)
        yield dict(PSEUDONYM_KEYS)


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


@pytest.fixture(scope="session")
def demo_mariadb_url(mariadb_server: MariaDBServer) -> str:
    """The same demo store in MariaDB, shared by read-only tests."""
    url = mariadb_server.create_database("demo_shared")
    build_demo(url)
    return url


# the backend matrix (tests/support/backends.py)


@pytest.fixture(params=STORE_BACKENDS)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty store: the test runs once on each backend of the matrix (or on
    those its ``on_backends`` names)."""
    backend = request.param
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'store.sqlite'}"
    if backend == "postgresql":
        return str(request.getfixturevalue("pg_url"))
    url = str(request.getfixturevalue("mariadb_url"))
    if backend == "mariadb-as-mysql":
        _without_delete_returning(request.getfixturevalue("monkeypatch"))
    return url


def _without_delete_returning(monkeypatch: pytest.MonkeyPatch) -> None:
    """MariaDB as MySQL sees it: no ``DELETE ... RETURNING`` (SQLAlchemy turns it on for
    MariaDB when it first connects)."""
    initialize = MySQLDialect.initialize

    def as_mysql(dialect: MySQLDialect, connection: Any) -> None:
        initialize(dialect, connection)
        dialect.delete_returning = False

    monkeypatch.setattr(MySQLDialect, "initialize", as_mysql)


#: The shared demo store of each backend of the matrix.
DEMO_STORES = {
    "sqlite": "demo_sqlite_url",
    "postgresql": "demo_pg_url",
    "mariadb": "demo_mariadb_url",
}


@pytest.fixture(params=STORE_BACKENDS)
def demo_url(request: pytest.FixtureRequest) -> str:
    """The demo store, shared by read-only tests: each runs once on every backend."""
    return str(request.getfixturevalue(DEMO_STORES[request.param]))


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
