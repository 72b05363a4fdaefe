"""A password with every reserved character, kept in the environment and named by
``${VAR}`` in a store URL: it reaches the database whole (percent-encoded where the URL
needs it), and no output, log record, exception, report, audit entry or name lookup ever
holds any part of it."""

from __future__ import annotations

import json
import logging
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg
import pytest
from hypothesis import given
from hypothesis import strategies as st
from psycopg import sql
from rich.console import Console
from sqlalchemy import URL, create_engine, make_url, text
from typer.testing import CliRunner

from connectors.urls import hide_secrets, mask_url
from flows.cli import app
from flows.reports.run import render_run, report_json
from flows.run.lifecycle import run_policy
from flows.run.types import RunOptions
from flows.state.tables import open_state
from retention_rules.interpolation import interpolate, interpolate_url
from tests.support.demo import DEMO_AS_OF, build_demo
from tests.support.network import OUTBOUND_ATTEMPTS
from tests.support.paths import FIXTURES
from tests.support.pg_server import PostgresServer
from tests.support.ports import free_port

#: Every reserved character of RFC 3986, ``%``, a space and non-ASCII letters, between
#: letters no output holds by chance.
PASSWORD = "Zq7:/?#[]@!$&'()*+,;=% wörd-密碼-Kx9"
VARIABLE = "TENURE_TEST_DB_PASSWORD"
ROLE = "tenure_pw"
runner = CliRunner()


def _pieces(secret: str, size: int = 4) -> set[str]:
    """Every part of ``secret`` of ``size`` characters (a longer part holds one), and of
    its percent-encoded form, which a URL carries."""
    encoded = quote(secret, safe="")
    return {secret[i : i + size] for i in range(len(secret) - size + 1)} | {
        encoded[i : i + 3 * size] for i in range(len(encoded) - 3 * size + 1)
    }


def _assert_hidden(secret: str, where: str, shown: str | bytes) -> None:
    data = shown if isinstance(shown, str) else shown.decode("utf-8", "replace")
    leaked = sorted(piece for piece in _pieces(secret) if piece in data)
    assert not leaked, f"{where} holds parts of the password: {leaked}"


@pytest.fixture
def lookups(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Every host name looked up during the test (loopback ones too), and every lookup
    the network guard refused."""
    seen: list[str] = []
    guarded = socket.getaddrinfo

    def recording(host: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append(host.decode() if isinstance(host, bytes) else str(host))
        return guarded(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", recording)
    refused_before = len(OUTBOUND_ATTEMPTS)
    yield seen
    seen += OUTBOUND_ATTEMPTS[refused_before:]


def _policy(tmp_path: Path, url: str) -> Path:
    """The run tests' policy with its store at ``url`` (a ``${VAR}`` template); the
    coverage gate warns (the demo has columns that policy leaves unbound)."""
    source = (FIXTURES / "run_policy.yaml").read_text()
    assert "url: ${TENURE_CRM_URL}" in source and "\nscan:" not in source
    path = tmp_path / "policy.yaml"
    path.write_text(
        source.replace("url: ${TENURE_CRM_URL}", f"url: {url}")
        + "\nscan: {on_coverage_gap: warn}\n"
    )
    return path


@pytest.fixture
def keys(pseudonym_keys: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TENURE_STATE_URL", raising=False)


# --- interpolation into a URL, for every value ---------------------------------------

_values = st.text(alphabet=st.characters(exclude_categories=["Cs"]), min_size=1)


@given(user=_values, password=_values, token=_values)
def test_interpolated_credentials_come_back_whole(user: str, password: str, token: str) -> None:
    environ = {"U": user, "PW": password, "TOKEN": token, "HOST": "db.internal:5433"}
    template = "postgresql+psycopg://${U}:${PW}@${HOST}/crm?sslmode=require&password=${TOKEN}"
    parsed = make_url(interpolate_url(template, environ))
    assert (parsed.username, parsed.password) == (user, password)
    assert (parsed.host, parsed.port, parsed.database) == ("db.internal", 5433, "crm")
    assert dict(parsed.query) == {"sslmode": "require", "password": token}
    masked = make_url(mask_url(parsed))
    assert (masked.password, masked.query["password"]) == ("***", "***")


@given(user=_values.filter(lambda v: ":" not in v), password=_values)
def test_one_variable_for_the_whole_user_info_is_user_colon_password(
    user: str, password: str
) -> None:
    url = interpolate_url(
        "mysql+pymysql://${CREDENTIALS}@h/db", {"CREDENTIALS": f"{user}:{password}"}
    )
    parsed = make_url(url)
    assert (parsed.username, parsed.password, parsed.host) == (user, password, "h")


@given(password=_values.filter(lambda v: "}" not in v))
def test_a_default_is_encoded_like_a_value(password: str) -> None:
    url = interpolate_url("postgresql://u:${PW:-" + password + "}@h/db", {})
    assert make_url(url).password == password


@pytest.mark.parametrize(
    ("template", "environ", "expected"),
    [
        # A whole URL in one variable is the URL, as written.
        ("${DATABASE_URL}", {"DATABASE_URL": "postgresql://u:p%40ss@h/db"}, "postgresql://u:p%40ss@h/db"),
        ("${U:-sqlite:///tenure-demo/crm.sqlite}", {}, "sqlite:///tenure-demo/crm.sqlite"),
        ("${SCHEME}://u@h/db", {"SCHEME": "postgresql+psycopg"}, "postgresql+psycopg://u@h/db"),
        # Hosts, ports, paths, and query names or whole pairs are the URL's structure.
        ("postgresql://u@${HOST}/db", {"HOST": "[::1]:5433"}, "postgresql://u@[::1]:5433/db"),
        ("sqlite:///${DIR}/crm.sqlite", {"DIR": "/srv/a b+c"}, "sqlite:////srv/a b+c/crm.sqlite"),
        ("files+s3://${BUCKET}/logs", {"BUCKET": "my-bucket"}, "files+s3://my-bucket/logs"),
        ("postgresql://u@h/db?${OPTIONS}", {"OPTIONS": "sslmode=require&x=1"}, "postgresql://u@h/db?sslmode=require&x=1"),
        # Values in the user-info or a query value are encoded.
        ("postgresql://${U}@h/db", {"U": "a@b"}, "postgresql://a%40b@h/db"),
        ("postgresql://u@h/db?password=${PW}&x=1", {"PW": "a&b=c d"}, "postgresql://u@h/db?password=a%26b%3Dc%20d&x=1"),
    ],
)  # fmt: skip
def test_only_credentials_and_query_values_are_encoded(
    template: str, environ: dict[str, str], expected: str
) -> None:
    assert interpolate_url(template, environ) == expected


def test_a_setting_that_is_not_a_url_is_never_encoded() -> None:
    assert interpolate("/srv/${DIR}/books", {"DIR": "a b@c:d"}) == "/srv/a b@c:d/books"


def test_hide_secrets_masks_the_password_as_a_url_carries_it_too() -> None:
    url = interpolate_url("postgresql://u:${PW}@h/db", {"PW": PASSWORD})
    said = f"could not connect to {url}; password {PASSWORD}"
    _assert_hidden(PASSWORD, "the masked message", hide_secrets(said, url))


# --- a store that cannot be reached: nothing of the password anywhere -------------------


def _commands(policy: Path) -> list[list[str]]:
    return [
        ["validate", str(policy)],
        ["--debug", "validate", str(policy)],
        ["plan", str(policy)],
        ["plan", str(policy), "--json"],
        ["scan", str(policy)],
        ["risk", str(policy)],
        ["run", str(policy), "--dry-run"],
        ["audit", "verify", str(policy)],
    ]


def _check_nothing_shows(
    secret: str,
    policy: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    lookups: list[str],
    environ: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every command and a real run fail, or (audit verify) cannot check the store, and
    none shows the password."""
    caplog.set_level(logging.DEBUG)
    state = tmp_path / "state.sqlite"
    state_url = f"sqlite:///{state}"
    open_state(state_url).dispose()  # so that every command gets as far as the store
    monkeypatch.setenv("TENURE_STATE_URL", state_url)
    for args in _commands(policy):
        result = runner.invoke(app, args)
        assert result.exit_code != 0 or args[0] == "audit", (args, result.output)
        shown = f"{result.output}\n{result.exception!r}\n{result.exception}"
        assert "127.0.0.1" in shown, (args, shown)  # the error says where it tried
        _assert_hidden(secret, f"`tenure {' '.join(args)}`", shown)
    report = run_policy(policy, RunOptions(now=DEMO_AS_OF, state_url=state_url), environ=environ)
    assert report.failed and all("127.0.0.1" in (o.error or "") for o in report.outcomes)
    console = Console(record=True, width=200)
    render_run(console, report)
    _assert_hidden(secret, "the run report", console.export_text())
    _assert_hidden(secret, "the JSON report", json.dumps(report_json(report), ensure_ascii=False))
    audit = runner.invoke(app, ["audit", "show", str(policy), "--state", state_url])
    assert audit.exit_code == 0 and audit.stdout.strip()
    _assert_hidden(secret, "the audit log", audit.stdout)
    _assert_hidden(secret, "the state database", state.read_bytes())
    _assert_hidden(secret, "the log records", caplog.text)
    for host in lookups:
        _assert_hidden(secret, f"the name lookup of {host!r}", host)


@pytest.mark.parametrize("where", ["user-info", "query"])
def test_an_unreachable_store_never_shows_the_password(
    where: str,
    keys: None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    lookups: list[str],
) -> None:
    port = free_port()
    url = (
        f"postgresql+psycopg://tenure:${{{VARIABLE}}}@127.0.0.1:{port}/crm"
        if where == "user-info"
        else f"postgresql+psycopg://tenure@127.0.0.1:{port}/crm?password=${{{VARIABLE}}}"
    )
    monkeypatch.setenv(VARIABLE, PASSWORD)
    policy = _policy(tmp_path, url)
    environ = {VARIABLE: PASSWORD}
    _check_nothing_shows(PASSWORD, policy, tmp_path, caplog, lookups, environ, monkeypatch)


# --- the real server: a role whose password is that string ---------------------------


def _admin(server: PostgresServer) -> psycopg.Connection[Any]:
    return psycopg.connect(
        server.admin_url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True
    )


@pytest.fixture(scope="module")
def password_role(pg_server: PostgresServer) -> Iterator[str]:
    """A login role whose password is ``PASSWORD``, checked (SCRAM) by the server, which
    trusts its other users; returns a new database the role owns, holding the demo."""
    hba = pg_server.root / "data" / "pg_hba.conf"
    original = hba.read_text()
    only_this_role = "".join(
        f"host all {ROLE} {net} scram-sha-256\n" for net in ("127.0.0.1/32", "::1/128")
    )
    hba.write_text(only_this_role + original)  # the first matching line decides
    database = f"pw_{uuid.uuid4().hex[:12]}"
    with _admin(pg_server) as admin:
        admin.execute(
            sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                sql.Identifier(ROLE), sql.Literal(PASSWORD)
            )
        )
        admin.execute(
            sql.SQL("CREATE DATABASE {} OWNER {}").format(
                sql.Identifier(database), sql.Identifier(ROLE)
            )
        )
        admin.execute("SELECT pg_reload_conf()")
    try:
        yield database
    finally:
        hba.write_text(original)
        with _admin(pg_server) as admin:
            admin.execute("SELECT pg_reload_conf()")


@pytest.fixture
def role_store(pg_server: PostgresServer, password_role: str) -> str:
    """A fresh copy of the demo in the role's database, built through the role itself."""
    url = URL.create(
        "postgresql+psycopg",
        username=ROLE,
        password=PASSWORD,
        host="127.0.0.1",
        port=pg_server.port,
        database=password_role,
    )
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text("DROP SCHEMA public CASCADE"))
        connection.execute(text("CREATE SCHEMA public"))
    engine.dispose()
    build_demo(url.render_as_string(hide_password=False))
    return password_role


def _server_url(server: PostgresServer, database: str, where: str) -> str:
    reference = f"${{{VARIABLE}}}"
    if where == "user-info":
        return f"postgresql+psycopg://{ROLE}:{reference}@127.0.0.1:{server.port}/{database}"
    return f"postgresql+psycopg://{ROLE}@127.0.0.1:{server.port}/{database}?password={reference}"


@pytest.mark.postgres
def test_the_server_refuses_a_wrong_password(pg_server: PostgresServer, password_role: str) -> None:
    """The role's password really is checked (the test server trusts its other users)."""
    dsn = f"host=127.0.0.1 port={pg_server.port} dbname={password_role} user={ROLE}"
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(f"{dsn} password=wrong").close()
    psycopg.connect(dsn, password=PASSWORD).close()


@pytest.mark.postgres
@pytest.mark.parametrize("where", ["user-info", "query"])
def test_a_password_with_every_reserved_character_connects_and_runs(
    where: str,
    pg_server: PostgresServer,
    role_store: str,
    keys: None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    lookups: list[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv(VARIABLE, PASSWORD)
    policy = _policy(tmp_path, _server_url(pg_server, role_store, where))
    state = tmp_path / "state.sqlite"
    for args in (["validate", str(policy)], ["plan", str(policy)]):
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
        _assert_hidden(PASSWORD, f"`tenure {' '.join(args)}`", result.output)
    result = runner.invoke(
        app,
        ["run", str(policy), "--now", "2026-11-24T00:00", "--state", f"sqlite:///{state}",
         "--json"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    _assert_hidden(PASSWORD, "`tenure run`", result.output)
    report = json.loads(result.stdout)
    assert sum(d["processed"] for d in report["datasets"]) > 0
    shown = runner.invoke(app, ["audit", "show", str(policy), "--state", f"sqlite:///{state}"])
    _assert_hidden(PASSWORD, "the audit log", shown.stdout)
    _assert_hidden(PASSWORD, "the state database", state.read_bytes())
    _assert_hidden(PASSWORD, "the log records", caplog.text)
    for host in lookups:
        _assert_hidden(PASSWORD, f"the name lookup of {host!r}", host)


@pytest.mark.postgres
@pytest.mark.parametrize("where", ["user-info", "query"])
def test_a_wrong_password_is_refused_and_never_shown(
    where: str,
    pg_server: PostgresServer,
    password_role: str,
    keys: None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    lookups: list[str],
) -> None:
    wrong = PASSWORD.replace("Zq7", "Wv3").replace("Kx9", "Jy8")
    monkeypatch.setenv(VARIABLE, wrong)
    policy = _policy(tmp_path, _server_url(pg_server, password_role, where))
    _check_nothing_shows(wrong, policy, tmp_path, caplog, lookups, {VARIABLE: wrong}, monkeypatch)
