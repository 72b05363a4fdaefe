"""Where the state database lives (issue 13, item 8): one place per policy whatever
folder a run starts from, `state:` in the policy, a path for `--state`, and every report
saying where it is."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flows.cli import app
from tests.support.demo import DEMO_AS_OF

runner = CliRunner()
NOW = DEMO_AS_OF.replace(tzinfo=None).isoformat()

#: A policy over a files store only: there is no SQLite store to keep the state beside.
POLICY = """\
version: 1
name: state_location
categories:
  usage.ip_address: {description: "IP", identifier: direct}
  web.clickstream: {description: "Pages", identifier: none}
purposes:
  website_analytics:
    description: Audience measurement.
    legal_basis: consent
    min_retention: 30 days
    max_retention: 13 months
stores:
  weblogs:
    url: ${TENURE_WEBLOGS_URL}
scan: {on_coverage_gap: warn}
datasets:
  - name: web_access_log
    store: weblogs
    table: access_log
    purpose: website_analytics
    primary_key: [source_file, row_number]
    subject_key: visitor_id
    columns:
      ip: usage.ip_address
      url: web.clickstream
    clock: {column: date}
    retention: 13 months
    action: delete
"""


@pytest.fixture
def policy(demo_files: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The policy in a folder of its own; the per-user state folder in the test's."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("TENURE_STATE_URL", raising=False)
    folder = tmp_path / "policies"
    folder.mkdir()
    path = folder / "policy.yaml"
    path.write_text(POLICY)
    return path


def _run(policy: Path, *args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["run", str(policy), "--now", NOW, *args])
    return result.exit_code, result.stdout, result.stderr


def _line_of(path: Path, needle: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if needle in line)


def _state_line(output: str) -> str:
    found = [line for line in output.splitlines() if line.startswith("state: ")]
    assert len(found) == 1, output
    return found[0]


def test_two_working_directories_share_one_state_database(
    prefect_api: None, policy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shown = set()
    for folder in ("first", "second"):
        cwd = tmp_path / folder
        cwd.mkdir()
        monkeypatch.chdir(cwd)
        code, out, err = _run(policy)
        assert code == 0, out + err
        shown.add(_state_line(out))
        assert not list(cwd.iterdir()), f"the run from {cwd} left files there"
    (line,) = shown  # both runs named the same database
    (database,) = (tmp_path / "xdg" / "tenure").glob("*.sqlite")
    assert str(database) in line
    verify = runner.invoke(app, ["audit", "verify", str(policy)])
    assert verify.exit_code == 0, verify.output
    assert "audit log intact: 2 entries" in verify.stdout  # one binding, twice
    assert _state_line(verify.stdout) == line


def test_the_policy_names_its_state_database(
    prefect_api: None, policy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`state:` is a path relative to the policy file (or a URL, with ${VAR})."""
    text = POLICY.replace("scan:", "state: ${STATE_FOLDER:-books}/state.sqlite\nscan:")
    policy.write_text(text)
    (policy.parent / "books").mkdir()
    monkeypatch.chdir(tmp_path)
    code, out, err = _run(policy)
    assert code == 0, out + err
    database = policy.parent / "books" / "state.sqlite"
    assert database.is_file()
    assert _state_line(out) == f"state: sqlite:///{database} (policy state:)"
    plan = runner.invoke(app, ["plan", str(policy), "--now", NOW, "--json"])
    assert json.loads(plan.stdout)["state"] == f"sqlite:///{database}", plan.output
    # the command line still wins over the policy
    code, out, err = _run(policy, "--dry-run", "--state", str(tmp_path / "other.sqlite"))
    assert code == 0, out + err
    assert _state_line(out).startswith(f"state: sqlite:///{tmp_path / 'other.sqlite'} (--state")


def test_state_accepts_a_path(
    prefect_api: None, policy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, err = _run(policy, "--state", "some/path.db")
    assert code == 2 and "some" in err  # its folder does not exist: one line
    assert len([line for line in err.splitlines() if line.strip()]) == 1, err
    (tmp_path / "some").mkdir()
    code, out, err = _run(policy, "--state", "some/path.db")
    assert code == 0, out + err
    assert (tmp_path / "some" / "path.db").is_file()
    verify = runner.invoke(app, ["audit", "verify", str(policy), "--state", "some/path.db"])
    assert verify.exit_code == 0 and "intact: 1 entries" in verify.stdout, verify.output


@pytest.mark.parametrize(
    "state",
    ["nosuchdialect://x/y", "postgresql+psycopg://tenure:hunter2-secret@[::1", "no/such/dir/s.db"],
)
def test_a_bad_state_is_one_line_and_exit_2(policy: Path, state: str) -> None:
    commands = [["run"], ["run", "--dry-run"], ["scan"], ["plan"], ["validate"]]
    if "://" in state:  # a path in no folder names no log: verify says it is gone (exit 1)
        commands.append(["audit", "verify"])
    for command in commands:
        result = runner.invoke(app, [*command, str(policy), "--state", state])
        assert result.exit_code == 2, (command, result.output)
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: --state: "), (command, lines)
        assert "hunter2-secret" not in result.output
        assert "Traceback" not in result.output


def test_the_location_is_printed_masked(
    demo_files: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A state URL with a password, where nothing listens: every command says so at the
    policy's line, the password masked."""
    monkeypatch.setenv("TENURE_WEBLOGS_URL", demo_files["TENURE_WEBLOGS_URL"])
    monkeypatch.setenv("STATE_PASSWORD", "hunter2-state-secret")
    text = POLICY.replace(
        "scan:", "state: postgresql+psycopg://tenure:${STATE_PASSWORD}@127.0.0.1:1/state\nscan:"
    )
    policy = tmp_path / "policy.yaml"
    policy.write_text(text)
    shown = "postgresql+psycopg://tenure:***@127.0.0.1:1/state"
    line = _line_of(policy, "state: ")
    for command in (["plan"], ["run", "--dry-run"], ["run"], ["validate"]):
        now = [] if command == ["validate"] else ["--now", NOW]
        result = runner.invoke(app, [*command, str(policy), *now])
        assert result.exit_code == 2, result.output
        problem = f"{policy}:{line}: state: state database at {shown}: "
        assert [x for x in result.stderr.splitlines() if x.startswith(problem)], result.stderr
        assert "hunter2-state-secret" not in result.output
