"""Review of issue 13 items 7 and 8: where the state database is must not depend on the
folder a run starts from, and the preflight must find what the real run needs (the audit
key listed with the other problems; the privileges a PostgreSQL state database and store
need) without writing anything."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import create_engine, make_url, text
from typer.testing import CliRunner

from flows.cli import app
from flows.state.location import state_location, state_problem, state_url_from
from flows.state.tables import StateError
from retention_rules.loader import load_policy
from tests.support.pg_server import PostgresServer
from tests.support.shop import fill_shop, shop_policy

runner = CliRunner()
NOW = "2025-06-01T00:00:00"


def _shop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SHOP_URL", fill_shop(tmp_path / "shop.sqlite"))
    return shop_policy(tmp_path)


def _lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.strip()]


# --- 1. A relative state path that does not come from the command line -------------


def test_a_relative_state_path_from_the_environment_is_refused_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    policy = _shop(tmp_path, monkeypatch)
    loaded = load_policy(policy)
    monkeypatch.setenv("TENURE_STATE_URL", "tenure-state.sqlite")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(StateError, match=r"TENURE_STATE_URL .*relative path"):
        state_location(loaded, state_url_from("TENURE_STATE_URL"))  # a flow run's way
    for command in (["validate", str(policy)], ["run", str(policy), "--now", NOW]):
        result = runner.invoke(app, command)  # the command line reads the variable too
        assert result.exit_code == 2, result.output
        (line,) = _lines(result.stderr)
        assert "TENURE_STATE_URL" in line and "absolute path" in line, line
    assert not list(tmp_path.rglob("tenure-state.sqlite*"))


def test_a_relative_state_path_in_a_secret_block_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import anonymizers.secrets

    monkeypatch.setattr(anonymizers.secrets, "_prefect_secret", lambda _: "state.sqlite")
    with pytest.raises(StateError, match=r"'tenure-state-url' .*relative path"):
        state_url_from("tenure-state-url")


def test_absolute_paths_and_urls_from_the_environment_are_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    loaded = load_policy(_shop(tmp_path, monkeypatch))
    for value in (str(tmp_path / "s.sqlite"), f"sqlite:///{tmp_path / 's.sqlite'}"):
        monkeypatch.setenv("TENURE_STATE_URL", value)
        found = []
        for run in ("run-1", "run-2"):
            (tmp_path / run).mkdir(exist_ok=True)
            monkeypatch.chdir(tmp_path / run)
            found.append(state_location(loaded, state_url_from("TENURE_STATE_URL")))
        assert found[0].url == found[1].url == f"sqlite:///{tmp_path / 's.sqlite'}"
        assert found[0].source == "TENURE_STATE_URL"


def test_a_relative_state_path_typed_on_the_command_line_is_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    policy = _shop(tmp_path, monkeypatch)
    monkeypatch.delenv("TENURE_STATE_URL", raising=False)
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["validate", str(policy), "--state", "here.sqlite"])
    assert result.exit_code == 0, result.output
    assert f"state: sqlite:///{tmp_path / 'here.sqlite'} (--state)" in result.stdout


# --- 2. Relative store paths ----------------------------------------------------------


def test_a_relative_bookkeeping_folder_is_refused_at_its_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    policy = _shop(tmp_path, monkeypatch)
    text_ = policy.read_text().replace(
        "    url: ${SHOP_URL}\n",
        "    url: ${SHOP_URL}\n  mail:\n    url: maildir:////srv/mail\n    bookkeeping: books\n",
    )
    policy.write_text(text_)
    result = runner.invoke(app, ["validate", str(policy), "--offline"])
    assert result.exit_code == 2
    line = next(x for x in _lines(result.stderr) if "bookkeeping" in x)
    number = text_.splitlines().index("    bookkeeping: books") + 1
    assert line.startswith(f"{policy}:{number}: stores.mail.bookkeeping: ")
    assert "relative path" in line


def test_a_relative_sqlite_store_path_is_warned_at_its_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    policy = _shop(tmp_path, monkeypatch)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SHOP_URL", "sqlite:///shop.sqlite")  # the same file, relative
    for offline in ([], ["--offline"]):
        result = runner.invoke(app, ["validate", str(policy), *offline])
        assert result.exit_code == 0, result.output
        number = policy.read_text().splitlines().index("    url: ${SHOP_URL}") + 1
        (warning,) = [x for x in _lines(result.stderr) if "working directory" in x]
        assert warning.startswith(f"warning: {policy}:{number}: stores.shop.url: "), warning
        assert "shop.sqlite" in warning and "absolute" in warning
    monkeypatch.setenv("SHOP_URL", f"sqlite:///{tmp_path / 'shop.sqlite'}")
    result = runner.invoke(app, ["validate", str(policy)])
    assert result.exit_code == 0 and "working directory" not in result.stderr


# --- 3. The audit key, listed with the other preflight problems -----------------------


def test_validate_without_the_audit_key_lists_it_with_the_other_problems(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TENURE_AUDIT_KEY")
    monkeypatch.delenv("TENURE_PSEUDONYM_KEY", raising=False)
    monkeypatch.delenv("TENURE_STATE_URL", raising=False)
    policy = _shop(tmp_path, monkeypatch)
    # A second problem of the preflight: the anonymization needs a pseudonym key.
    text_ = policy.read_text().replace(
        "    retention: 1 year\n    action: delete\n",
        "    retention: 1 year\n    action:\n      type: anonymize\n      columns:\n"
        "        ip: pseudonym\n",
    )
    policy.write_text(text_)
    state = tmp_path / "state.sqlite"
    for command in (
        ["validate", str(policy)],
        ["plan", str(policy), "--now", NOW],
        ["run", str(policy), "--dry-run", "--now", NOW, "--state", str(state)],
    ):
        result = runner.invoke(app, command)
        assert result.exit_code == 2, (command, result.output)
        lines = [x for x in _lines(result.stderr) if not x.startswith("warning: ")]
        audit = [x for x in lines if "TENURE_AUDIT_KEY" in x]
        assert len(audit) == 1, (command, result.stderr)
        assert audit[0].startswith(f"{policy}: no audit key") and "'tenure-audit-key'" in audit[0]
        assert any("TENURE_PSEUDONYM_KEY" in x for x in lines), (command, result.stderr)
        assert lines[-1] == "2 problem(s) found.", (command, result.stderr)
        assert "Traceback" not in result.output
    assert not state.exists()
    result = runner.invoke(app, ["validate", str(policy), "--offline"])
    assert result.exit_code == 0, result.output


# --- 4. A PostgreSQL state database the role may not create Tenure's tables in -------


def _role(admin_url: str, name: str, *grants: str) -> str:
    """A login role with only ``grants`` (run in ``admin_url``'s database); its URL."""
    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    database = make_url(admin_url).database
    with engine.connect() as connection:
        connection.execute(text(f'CREATE ROLE "{name}" LOGIN'))
        connection.execute(text(f'GRANT CONNECT ON DATABASE "{database}" TO "{name}"'))
        for grant in grants:
            connection.execute(text(grant.format(role=f'"{name}"')))
    engine.dispose()
    return make_url(admin_url).set(username=name).render_as_string(hide_password=False)


def test_a_postgresql_state_database_without_create_on_its_schema_is_a_problem(
    pg_server: PostgresServer,
) -> None:
    from flows.state.location import StateLocation
    from flows.state.tables import open_state

    admin = pg_server.fresh_database("state")
    url = _role(admin, "state_reader")  # PostgreSQL 15: no CREATE on public for PUBLIC
    location = StateLocation(url, "--state")
    problem = state_problem(location)
    assert problem is not None and "CREATE" in problem, problem
    with pytest.raises(StateError):  # what the real run would have met
        open_state(url).dispose()
    tables = "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
    engine = create_engine(admin, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        assert connection.execute(text(tables)).scalar() == 0  # nothing was created
        connection.execute(text('GRANT CREATE ON SCHEMA public TO "state_reader"'))
    assert state_problem(location) is None  # allowed to create them now
    with engine.connect() as connection:
        assert connection.execute(text(tables)).scalar() == 0  # and the check wrote nothing
    engine.dispose()


def test_a_postgresql_state_database_whose_tables_the_role_cannot_write_is_a_problem(
    pg_server: PostgresServer,
) -> None:
    from flows.state.location import StateLocation
    from flows.state.tables import open_state

    admin = pg_server.fresh_database("state")
    open_state(admin).dispose()  # Tenure's tables, made by their owner
    url = _role(admin, "state_viewer", "GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}")
    problem = state_problem(StateLocation(url, "--state"))
    assert problem is not None and "INSERT" in problem, problem


# --- 5. SELECT on the columns a binding's WHERE clause reads --------------------------

PG_POLICY = """\
version: 1
name: privileges
timezone: UTC
categories:
  contact.email: {{description: "E-mail", identifier: direct}}
purposes:
  account:
    description: Accounts.
    legal_basis: contract
    min_retention: 30 days
    max_retention: 2 years
stores:
  shop:
    url: {url}
scan: {{on_coverage_gap: warn}}
datasets:
  - name: people
    store: shop
    table: people
    purpose: account
    primary_key: id
    subject_key: id
    columns:
      email: contact.email
    clock: {{column: closed_at}}
    retention: 1 year
    action: delete
holds:
  - name: litigation
    reason: A court case.
    expires: 2099-01-01
    where:
      - {{column: region, value: QC}}
"""


def test_a_postgresql_store_without_select_on_the_clock_is_found_by_validate(
    pg_server: PostgresServer, tmp_path: Path
) -> None:
    admin = pg_server.fresh_database("shop")
    with create_engine(admin, isolation_level="AUTOCOMMIT").connect() as connection:
        connection.execute(
            text(
                "CREATE TABLE people (id int PRIMARY KEY, email text, region text, "
                "closed_at timestamptz)"
            )
        )
        connection.execute(
            text("INSERT INTO people VALUES (1, 'a@example.com', 'QC', '2020-01-01Z')")
        )
    url = _role(
        admin,
        "clerk",
        "GRANT USAGE, CREATE ON SCHEMA public TO {role}",
        "GRANT DELETE ON people TO {role}",
        "GRANT SELECT (id, email) ON people TO {role}",  # not closed_at, nor region
    )
    policy = tmp_path / "policy.yaml"
    policy.write_text(PG_POLICY.format(url=url))
    state = tmp_path / "state.sqlite"
    result = runner.invoke(app, ["validate", str(policy), "--state", str(state)])
    assert result.exit_code == 2, result.output
    lines = [x for x in _lines(result.stderr) if "not writable" in x]
    assert any("SELECT" in x and "closed_at" in x for x in lines), result.stderr
    assert any("SELECT" in x and "region" in x for x in lines), result.stderr
    assert not any("email" in x for x in lines), result.stderr  # not read by a delete
    engine = create_engine(admin)
    with engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM people")).scalar() == 1
    engine.dispose()
