"""Input that used to abort a whole run with a traceback (issue 12): each is now one line
naming the file and line, or the option, with exit code 2 and nothing touched."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flows.cli import app
from tests.support.paths import FIXTURES

runner = CliRunner()
MINIMAL = (FIXTURES / "minimal.yaml").read_text()


def _line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


def _policy(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    return path


def _one_problem(output: str, start: str) -> str:
    lines = [line for line in output.splitlines() if line.strip()]
    assert "Traceback" not in output
    found = [line for line in lines if line.startswith(start)]
    assert len(found) == 1, output
    return found[0]


@pytest.mark.parametrize("years", ["99999 years", "2100 years", "P1001Y", "12001 months"])
def test_a_duration_too_long_for_a_cutoff_is_a_policy_error(tmp_path: Path, years: str) -> None:
    text = MINIMAL.replace("max_retention: 7 years", f"max_retention: {years}").replace(
        "retention: 6 years\n    action: delete", f"retention: {years}\n    action: delete"
    )
    path = _policy(tmp_path, text)
    for args in (["validate", "--offline", str(path)], ["plan", str(path)]):
        result = runner.invoke(app, args)
        assert result.exit_code == 2, result.output
        line = _line_of(text, f"    retention: {years}")
        problem = _one_problem(result.stderr, f"{path}:{line}: datasets[0].retention: ")
        assert "too long: at most 1000 years" in problem


def test_a_thousand_years_is_still_a_duration(tmp_path: Path) -> None:
    text = MINIMAL.replace("max_retention: 7 years", "max_retention: 1000 years")
    result = runner.invoke(app, ["validate", "--offline", str(_policy(tmp_path, text))])
    assert result.exit_code == 0, result.output


def test_deep_yaml_nesting_is_one_line(tmp_path: Path) -> None:
    path = _policy(tmp_path, "version: 1\nname: deep\ndescription: " + "[" * 10_000 + "\n")
    result = runner.invoke(app, ["validate", "--offline", str(path)])
    assert result.exit_code == 2
    assert "nested deeper than 64 levels" in _one_problem(result.stderr, f"{path}:3: ")


def test_a_date_that_does_not_exist_is_one_line(tmp_path: Path) -> None:
    text = MINIMAL.replace("expires: 2099-12-31", "expires: 2027-02-30")
    path = _policy(tmp_path, text)
    result = runner.invoke(app, ["validate", "--offline", str(path)])
    assert result.exit_code == 2
    line = _line_of(text, "expires: 2027-02-30")
    problem = _one_problem(result.stderr, f"{path}:{line}: ")
    assert "invalid date '2027-02-30'" in problem


def test_an_integer_of_thousands_of_digits_is_one_line(tmp_path: Path) -> None:
    path = _policy(tmp_path, MINIMAL.replace("version: 1", "version: " + "9" * 5000))
    result = runner.invoke(app, ["validate", "--offline", str(path)])
    assert result.exit_code == 2
    _one_problem(result.stderr, f"{path}")


@pytest.fixture
def store(demo_sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TENURE_CRM_URL", demo_sqlite_url)
    return Path(demo_sqlite_url.removeprefix("sqlite:///"))


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("command", ["plan", "run"])
@pytest.mark.parametrize("now", ["0001-01-02", "0001-01-01T00:00:00", "9999-12-31"])
def test_a_now_at_which_no_cutoff_exists_is_one_line(
    store: Path, tmp_path: Path, command: str, now: str
) -> None:
    before = _digest(store)
    state = tmp_path / "state.sqlite"
    args = [command, str(FIXTURES / "minimal.yaml"), "--now", now]
    result = runner.invoke(
        app, args + (["--state", f"sqlite:///{state}"] if command == "run" else [])
    )
    assert result.exit_code == 2, result.output
    _one_problem(result.stderr, "error: --now ")
    assert _digest(store) == before
    assert not state.exists()


@pytest.mark.parametrize(
    "state",
    [
        "no/such/folder/state.sqlite",  # a path is a SQLite file: its folder must exist
        "sqlite:////no/such/folder/state.sqlite",
        "postgresql+psycopg://tenure:hunter2-secret@127.0.0.1:1/state",
        "nosuchdialect://x/y",
    ],
)
def test_a_bad_or_unreachable_state_stops_the_run_in_one_line(store: Path, state: str) -> None:
    before = _digest(store)
    args = ["run", str(FIXTURES / "minimal.yaml"), "--state", state]
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    _one_problem(result.stderr, "error: --state: ")
    assert "hunter2-secret" not in result.output
    assert _digest(store) == before


def test_a_relative_bookkeeping_folder_is_a_policy_error(tmp_path: Path) -> None:
    """A relative folder would be another folder, with another lock, for each folder a
    run starts from: two runs would both act on one store."""
    text = MINIMAL.replace(
        "    url: ${TENURE_CRM_URL:-sqlite:///tenure-demo/crm.sqlite}",
        "    url: ${TENURE_CRM_URL:-sqlite:///tenure-demo/crm.sqlite}\n    bookkeeping: books",
    )
    path = _policy(tmp_path, text)
    result = runner.invoke(app, ["validate", "--offline", str(path)])
    assert result.exit_code == 2, result.output
    line = _line_of(text, "bookkeeping: books")
    problem = _one_problem(result.stderr, f"{path}:{line}: stores.crm.bookkeeping: ")
    assert "relative path" in problem
    absolute = text.replace("bookkeeping: books", f"bookkeeping: {tmp_path / 'books'}")
    result = runner.invoke(app, ["validate", "--offline", str(_policy(tmp_path, absolute))])
    assert result.exit_code == 0, result.output
