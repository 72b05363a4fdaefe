"""`tenure validate`: every broken policy gets its file:line message and exit code 2."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flows.cli import app
from retention_rules.issues import PolicyError
from tests.support.backends import on_backends
from tests.support.paths import FIXTURES, SHIPPED_POLICY

BROKEN = sorted((FIXTURES / "broken").glob("*.yaml"))
EXPECT = re.compile(r"^# expect(?P<live>-live)?: (?P<line>\d+): (?P<field>[^:]*): (?P<message>.*)$")
runner = CliRunner()


def test_there_are_enough_broken_policies() -> None:
    assert len(BROKEN) >= 15


@pytest.mark.parametrize("path", BROKEN, ids=lambda p: p.stem)
def test_broken_policy(path: Path, demo_sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    expect = EXPECT.match(path.read_text().splitlines()[0])
    assert expect, f"{path} lacks its '# expect: LINE: FIELD: MESSAGE' header"
    monkeypatch.setenv("TENURE_CRM_URL", demo_sqlite_url)
    monkeypatch.delenv("TENURE_TEST_UNSET_PASSWORD", raising=False)
    args = ["validate", str(path)] + ([] if expect["live"] else ["--offline"])
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    where = f"{path}:{expect['line']}: " + (f"{expect['field']}: " if expect["field"] else "")
    lines = [line for line in result.stderr.splitlines() if line.startswith(where)]
    assert lines, f"no line starting {where!r} in:\n{result.stderr}"
    assert any(expect["message"] in line for line in lines), result.stderr
    assert "Traceback" not in result.output + result.stderr


def test_shipped_policy_is_valid_offline() -> None:
    result = runner.invoke(app, ["validate", "--offline", str(SHIPPED_POLICY)])
    assert result.exit_code == 0, result.stderr
    assert "15 datasets" in result.stdout


@on_backends("sqlite", "postgresql", fixture="demo_url")
def test_shipped_policy_matches_the_demo_schema_on_both_backends(
    demo_url: str, demo_files: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TENURE_CRM_URL", demo_url)
    result = runner.invoke(app, ["validate", str(SHIPPED_POLICY)])
    assert result.exit_code == 0, result.stderr
    assert "schema checked in 3 store(s)" in result.stdout


def test_many_problems_are_reported_in_one_pass(tmp_path: Path) -> None:
    text = (FIXTURES / "minimal.yaml").read_text()
    text = text.replace("legal_basis: consent", "legal_basis: because")  # structural
    text = text.replace("purpose: legal_obligations", "purpose: taxes")  # reference
    text = text.replace("retention: 13 months", "retention: 13 mnths")  # structural
    text = text.replace("datasets: [invoices]", "datasets: [invoicez]")  # reference
    path = tmp_path / "many.yaml"
    path.write_text(text)
    result = runner.invoke(app, ["validate", "--offline", str(path)])
    assert result.exit_code == 2
    fields = {
        line.split(": ")[1] for line in result.stderr.splitlines() if line.startswith(str(path))
    }
    assert {
        "purposes.website_analytics.legal_basis", "datasets[0].purpose",
        "datasets[1].retention", "holds[0].datasets[0]",
    } <= fields  # fmt: skip


def test_missing_file() -> None:
    result = runner.invoke(app, ["validate", "no/such/policy.yaml"])
    assert result.exit_code == 2
    assert "no/such/policy.yaml: policy file not found" in result.stderr


def test_debug_shows_the_exception() -> None:
    result = runner.invoke(app, ["--debug", "validate", "no/such/policy.yaml"])
    assert isinstance(result.exception, PolicyError)


def test_validation_never_writes_to_the_store(
    demo_sqlite_url: str, demo_files: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = Path(demo_sqlite_url.removeprefix("sqlite:///"))
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    monkeypatch.setenv("TENURE_CRM_URL", demo_sqlite_url)
    for args in (["validate", str(SHIPPED_POLICY)], ["plan", str(SHIPPED_POLICY), "--json"]):
        assert runner.invoke(app, args).exit_code == 0
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # no journal left


def test_a_password_never_reaches_the_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = (
        (FIXTURES / "minimal.yaml")
        .read_text()
        .replace(
            "${TENURE_CRM_URL:-sqlite:///tenure-demo/crm.sqlite}",
            "postgresql+psycopg://tenure:${TENURE_TEST_DB_PASSWORD}@127.0.0.1:1/crm",
        )
    )
    path = tmp_path / "secret.yaml"
    path.write_text(text)
    monkeypatch.setenv("TENURE_TEST_DB_PASSWORD", "hunter2-very-secret")
    for command in ("validate", "plan"):
        result = runner.invoke(app, [command, str(path)])
        assert result.exit_code == 2
        assert "store unreachable" in result.stderr
        assert "hunter2-very-secret" not in result.output + result.stderr
