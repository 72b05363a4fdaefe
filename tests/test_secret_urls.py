"""Secrets stay secret: a password in a store URL, as its password or as a query parameter
(``?password=``, ``?token=``, an fsspec ``secret``), never appears in output, logs, the
scan cache or the audit log; the state URL reaches Prefect by reference, never by value."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import URL, create_engine, make_url, select
from typer.testing import CliRunner

from connectors.errors import StoreError
from connectors.urls import SECRET_PARAMETERS, mask_url
from flows.cli import app
from flows.run.lifecycle import run_policy
from flows.run.types import RunOptions
from flows.state.tables import open_state, scan_cache
from tests.support.demo import DEMO_AS_OF, build_demo
from tests.support.paths import FIXTURES
from tests.support.ports import free_port

RUN_POLICY = FIXTURES / "run_policy.yaml"
SECRET = "s3cret"
runner = CliRunner()

# --- the one masking function -------------------------------------------------------

_secret_values = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1
).map(lambda text: f"Zq9{text}")  # never found by chance in the rest of the URL


@st.composite
def _secret_names(draw: st.DrawFn) -> str:
    name = draw(st.sampled_from(sorted(SECRET_PARAMETERS)))
    flips = draw(st.lists(st.booleans(), min_size=len(name), max_size=len(name)))
    return "".join(c.upper() if up else c for c, up in zip(name, flips, strict=True))


@given(
    password=st.none() | _secret_values,
    secrets=st.dictionaries(_secret_names(), _secret_values, max_size=3),
    plain=st.sampled_from(["require", "disable", "en_CA"]),
)
def test_mask_url_hides_every_secret_part(
    password: str | None, secrets: dict[str, str], plain: str
) -> None:
    url = URL.create(
        "postgresql+psycopg",
        username="tenure",
        password=password,
        host="db.internal",
        port=5432,
        database="crm",
        query={**secrets, "sslmode": plain},
    )
    masked = mask_url(url)
    assert masked == mask_url(url.render_as_string(hide_password=False))  # str or URL
    for value in [password, *secrets.values()]:
        if value is not None:
            assert value not in masked
    parsed = make_url(masked)  # still a URL, with everything else intact
    assert (parsed.host, parsed.port, parsed.database) == ("db.internal", 5432, "crm")
    assert parsed.query["sslmode"] == plain
    assert set(parsed.query) == {*secrets, "sslmode"}
    assert all(parsed.query[name] == "***" for name in secrets)
    assert (parsed.password is None) == (password is None)


def test_mask_url_of_a_url_that_does_not_parse_shows_only_its_scheme() -> None:
    assert mask_url("postgresql://u:s3cret@host:notaport/crm") == "postgresql://..."
    assert mask_url("s3cret, not a URL") == "..."


def test_every_connector_masks_query_secrets() -> None:
    from connectors.files.connector import FilesStore
    from connectors.mail.mailboxes import open_store
    from connectors.registry import open_connector
    from connectors.sql.connector import SQLConnector
    from retention_rules.model import Store

    shown = [
        SQLConnector(
            "crm", f"postgresql+psycopg://u@127.0.0.1:1/crm?password={SECRET}"
        ).display_url,
        FilesStore("logs", f"files+memory://bucket/logs?secret={SECRET}&key=AKIA").display_url,
        Store(url=f"mysql+pymysql://u@h/db?passwd={SECRET}").display_url,
    ]
    for opening in (
        lambda: open_connector("x", f"nosuch://u@h/?api_key={SECRET}"),
        lambda: open_store("mail", f"imaps://a@mail.example.net:993/?Token={SECRET}"),
    ):
        with pytest.raises(StoreError) as raised:
            opening()
        shown.append(str(raised.value))
    for text in shown:
        assert SECRET not in text and "***" in text, text
    assert "AKIA" not in shown[1]


# --- a store URL with ?password= that cannot be reached -------------------------------


@pytest.fixture
def unreachable(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    url = f"postgresql+psycopg://tenure@127.0.0.1:{free_port()}/crm?password={SECRET}"
    monkeypatch.setenv("TENURE_CRM_URL", url)
    state = f"sqlite:///{tmp_path / 'state.sqlite'}"
    open_state(state).dispose()  # so that every command gets as far as the store
    monkeypatch.setenv("TENURE_STATE_URL", state)
    return url


@pytest.mark.parametrize(
    "args",
    [
        ["validate", str(RUN_POLICY)],
        ["plan", str(RUN_POLICY)],
        ["scan", str(RUN_POLICY)],
        ["risk", str(RUN_POLICY)],
        ["--debug", "validate", str(RUN_POLICY)],
    ],
    ids=lambda a: " ".join(a[:2]),
)
def test_an_unreachable_store_never_shows_its_password(
    args: list[str], unreachable: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    result = runner.invoke(app, args)
    assert result.exit_code != 0
    text = f"{result.output}\n{result.exception!r}\n{caplog.text}"
    assert "127.0.0.1" in text  # the error names where it tried
    assert SECRET not in text


def test_a_run_against_an_unreachable_store_audits_no_password(
    unreachable: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    report = run_policy(
        RUN_POLICY,
        RunOptions(now=DEMO_AS_OF, state_url=f"sqlite:///{tmp_path / 'state.sqlite'}"),
        environ={"TENURE_CRM_URL": unreachable},
    )
    assert report.failed
    errors = [o.error or "" for o in report.outcomes]
    assert all("127.0.0.1" in e for e in errors) and not any(SECRET in e for e in errors)
    assert SECRET not in caplog.text
    assert SECRET.encode() not in (tmp_path / "state.sqlite").read_bytes()
    shown = runner.invoke(app, ["audit", "show", str(RUN_POLICY)])
    assert shown.exit_code == 0 and "127.0.0.1" in shown.stdout
    assert SECRET not in shown.stdout


# --- a reachable store with ?password=: the scan cache and the audit ------------------


@pytest.mark.usefixtures("pseudonym_keys")
def test_the_scan_cache_and_audit_of_a_reachable_store_hold_no_password(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    build_demo(pg_url)
    url = f"{pg_url}?password={SECRET}"  # the test server trusts loopback: any password
    monkeypatch.setenv("TENURE_CRM_URL", url)
    state = tmp_path / "state.sqlite"
    scanned = runner.invoke(
        app, ["scan", str(RUN_POLICY), "--state", f"sqlite:///{state}", "--out", str(tmp_path)]
    )
    assert scanned.exit_code in (0, 1), scanned.output
    engine = create_engine(f"sqlite:///{state}")
    with engine.connect() as connection:
        keys = set(connection.execute(select(scan_cache.c.store_url)).scalars())
    engine.dispose()
    assert keys and all(SECRET not in key and "password=***" in key for key in keys)
    report = run_policy(
        RUN_POLICY,
        RunOptions(now=DEMO_AS_OF, state_url=f"sqlite:///{state}", coverage_gate=False),
        environ={"TENURE_CRM_URL": url},
    )
    assert sum(o.processed for o in report.outcomes) > 0
    for path in [state, *tmp_path.glob("inventory.*")]:
        assert SECRET.encode() not in path.read_bytes(), path


# --- the state URL reaches Prefect by reference -------------------------------------


def _flow_run_parameters() -> list[dict[str, object]]:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        return [dict(run.parameters) for run in client.read_flow_runs()]


@pytest.mark.usefixtures("pseudonym_keys")
def test_the_state_url_is_never_a_flow_run_parameter(
    prefect_api: None,
    pg_url: str,
    pristine_store: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = tmp_path / "crm.sqlite"
    shutil.copy(pristine_store, store)
    monkeypatch.setenv("TENURE_CRM_URL", f"sqlite:///{store}")
    monkeypatch.delenv("TENURE_STATE_URL", raising=False)
    state = make_url(pg_url).set(password=SECRET).render_as_string(hide_password=False)
    result = runner.invoke(
        app, ["run", str(RUN_POLICY), "--now", "2026-11-24T00:00", "--state", state]
    )
    assert result.exit_code in (0, 1), result.output
    assert SECRET not in result.output
    parameters = _flow_run_parameters()
    assert parameters, "the run was recorded"
    assert all(SECRET not in json.dumps(p, default=str) for p in parameters), parameters
    # The state database really was the one named, reached through the reference.
    engine = create_engine(pg_url)
    with engine.connect() as connection:
        from flows.state.tables import runs

        assert connection.execute(select(runs.c.status)).scalars().all()
    engine.dispose()


@pytest.fixture(scope="module")
def pristine_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("secret-urls") / "crm.sqlite"
    build_demo(f"sqlite:///{path}")
    return path
