"""The audit log checked against an anchor kept outside the state database: the head hash
the run report and the Prefect artifact print after each run (`tenure audit verify
--head`), or a run's id (`--since-run`). Removing the newest entries together with every
witness in the state database passes the plain check, and only an anchor can catch it."""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import create_engine, delete, select
from typer.testing import CliRunner

from flows.cli import app
from flows.state.tables import audit as audit_table
from flows.state.tables import runs
from tests.support.demo import DEMO_AS_OF, build_demo
from tests.support.paths import FIXTURES

runner = CliRunner()
NOW = DEMO_AS_OF.strftime("%Y-%m-%dT%H:%M")
HEAD = re.compile(r"\b[0-9a-f]{64}\b")


@dataclass(frozen=True)
class TwoRuns:
    """Two real runs of the run tests' policy (the second finds nothing left to do)."""

    policy: Path
    store: str
    state: Path
    run_ids: tuple[str, str]
    heads: tuple[str, str]
    """The log's head after each run, read from the state database."""
    printed: tuple[str | None, str | None]
    """The head each run's report printed: the terminal report, then the JSON one."""
    artifacts: dict[str, str]
    """The Markdown artifact of each run, by run id."""


def _artifacts() -> dict[str, str]:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        found = [a for a in client.read_artifacts() if a.key == "retention-report"]
    return {str(a.flow_run_id): str(a.data) for a in found}


@pytest.fixture(scope="module")
def two_runs(
    tmp_path_factory: pytest.TempPathFactory, pseudonym_keys: dict[str, str], prefect_api: None
) -> Iterator[TwoRuns]:
    root = tmp_path_factory.mktemp("anchor")
    store = f"sqlite:///{root / 'crm.sqlite'}"
    build_demo(store, customers=120)
    policy = root / "policy.yaml"  # the demo leaves columns unbound: the gate warns
    policy.write_text(
        (FIXTURES / "run_policy.yaml").read_text() + "\nscan: {on_coverage_gap: warn}\n"
    )
    state = root / "state.sqlite"
    with pytest.MonkeyPatch.context() as env:
        env.setenv("TENURE_CRM_URL", store)
        env.delenv("TENURE_STATE_URL", raising=False)
        command = ["run", str(policy), "--now", NOW, "--state", f"sqlite:///{state}"]
        first = runner.invoke(app, command, terminal_width=200)  # the terminal report
        assert first.exit_code == 0, first.output
        head = _newest(state)
        second = runner.invoke(app, [*command, "--json"])
        assert second.exit_code == 0, second.output
        artifacts = _artifacts()
    report = json.loads(second.stdout)
    (run_id,) = {
        i for i in re.findall(r"[0-9a-f]{8}(?:-[0-9a-f]{4}){3}-[0-9a-f]{12}", first.stdout)
    }
    printed = [
        h for line in first.stdout.splitlines() if "head" in line for h in HEAD.findall(line)
    ]
    yield TwoRuns(
        policy,
        store,
        state,
        (run_id, report["run_id"]),
        (head, _newest(state)),
        (printed[0] if len(printed) == 1 else None, report.get("audit_head")),
        artifacts,
    )


@pytest.fixture
def log(two_runs: TwoRuns, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the two runs' state database, for one test to tamper with."""
    copy = tmp_path / "state.sqlite"
    with sqlite3.connect(two_runs.state) as source, sqlite3.connect(copy) as target:
        source.backup(target)  # with what its write-ahead log holds
    monkeypatch.setenv("TENURE_CRM_URL", two_runs.store)
    monkeypatch.delenv("TENURE_STATE_URL", raising=False)
    return copy


def _verify(two_runs: TwoRuns, state: Path, *options: str) -> tuple[int, str, str]:
    result = runner.invoke(
        app,
        ["audit", "verify", str(two_runs.policy), "--state", f"sqlite:///{state}", *options],
    )
    return result.exit_code, result.stdout, result.stderr


def _remove_run(state: Path, run_id: str) -> None:
    """Delete a run's audit entries and its ledger record (it committed no chunk, so no
    store journal names it): every witness the state database holds."""
    engine = create_engine(f"sqlite:///{state}")
    with engine.begin() as connection:
        removed = connection.execute(
            delete(audit_table).where(audit_table.c.entry.like(f'%"run_id":"{run_id}"%'))
        ).rowcount
        assert removed > 0
        connection.execute(delete(runs).where(runs.c.run_id == run_id))
    engine.dispose()


def _newest(state: Path) -> str:
    engine = create_engine(f"sqlite:///{state}")
    with engine.connect() as connection:
        head = connection.execute(
            select(audit_table.c.hash).order_by(audit_table.c.seq.desc()).limit(1)
        ).scalar_one()
    engine.dispose()
    return str(head)


def test_the_run_report_and_the_artifact_print_the_new_head(two_runs: TwoRuns) -> None:
    assert two_runs.printed == two_runs.heads  # the terminal report, then the JSON one
    assert two_runs.heads[0] != two_runs.heads[1]
    for run_id, head in zip(two_runs.run_ids, two_runs.heads, strict=True):
        (markdown,) = [text for text in two_runs.artifacts.values() if run_id in text]
        assert head in markdown, markdown


def test_plain_verify_prints_the_head_to_record(two_runs: TwoRuns, log: Path) -> None:
    code, out, err = _verify(two_runs, log)
    assert code == 0, err
    assert f"head {two_runs.heads[1]}" in out


def test_an_untouched_log_passes_every_anchor(two_runs: TwoRuns, log: Path) -> None:
    first, second = two_runs.run_ids
    for options in (
        ["--head", two_runs.heads[1]],
        ["--head", two_runs.heads[0]],  # an older record: newer entries followed it
        ["--head", two_runs.heads[1].upper()],
        ["--since-run", second],
        ["--since-run", first],
        ["--head", two_runs.heads[1], "--since-run", first],
    ):
        code, out, err = _verify(two_runs, log, *options)
        assert code == 0, (options, err)
        assert "audit log intact" in out


def test_removing_the_newest_entries_is_caught_by_the_recorded_head(
    two_runs: TwoRuns, log: Path
) -> None:
    _remove_run(log, two_runs.run_ids[1])
    code, out, err = _verify(two_runs, log)
    assert code == 0 and "audit log intact" in out  # no witness left in the database
    code, out, err = _verify(two_runs, log, "--head", two_runs.heads[1])
    assert code == 1 and "intact" not in out
    said = [line for line in err.splitlines() if two_runs.heads[1] in line]
    assert len(said) == 1 and "not in the audit log" in said[0], err
    # The head recorded after the first run is still there, with all before it.
    code, out, err = _verify(two_runs, log, "--head", two_runs.heads[0])
    assert code == 0, err


def test_removing_a_run_is_caught_by_its_id(two_runs: TwoRuns, log: Path) -> None:
    second = two_runs.run_ids[1]
    _remove_run(log, second)
    code, out, err = _verify(two_runs, log, "--since-run", second)
    assert code == 1 and "intact" not in out
    said = [line for line in err.splitlines() if second in line]
    assert len(said) == 1 and "no audit entry" in said[0], err
    code, _, err = _verify(two_runs, log, "--since-run", two_runs.run_ids[0])
    assert code == 0, err


def test_an_anchor_past_a_rewritten_log_fails(two_runs: TwoRuns, log: Path) -> None:
    """Cut back to before the recorded head: the entries up to it are gone too."""
    _remove_run(log, two_runs.run_ids[1])
    _remove_run(log, two_runs.run_ids[0])
    code, _, err = _verify(two_runs, log, "--head", two_runs.heads[0])
    assert code == 1 and "not in the audit log" in err


@pytest.mark.parametrize("head", ["abc", "g" * 64, ""])
def test_a_head_that_is_no_hash_is_bad_input(two_runs: TwoRuns, log: Path, head: str) -> None:
    code, out, err = _verify(two_runs, log, "--head", head)
    assert code == 2 and not out
    assert len(err.strip().splitlines()) == 1 and "--head" in err, err
