"""Every committed chunk is audited, and for anonymization and aggregation registered: by
the run itself, by its own error handling when a binding fails after committing chunks,
and, when the run was killed between a chunk's commit and the end of its binding, by the
next run's reconciliation of the dead run's journal."""

from __future__ import annotations

import shutil
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML
from sqlalchemy import func, select
from typer.testing import CliRunner

from connectors.errors import StoreUnavailable
from connectors.protocol import ChunkResult, ChunkWork
from connectors.sql.connector import SQLConnector
from flows import audit, register
from flows.cli import app
from flows.reports.run import report_json
from flows.run.lifecycle import run_policy
from flows.run.types import RunOptions, RunReport
from flows.state.tables import chunks, open_state
from tests.support.books import books, journal
from tests.support.crash_runner import run_killed_before_ledger
from tests.support.demo import DEMO_AS_OF, build_demo
from tests.support.paths import FIXTURES

CHUNK = 10
#: A part of the run tests' policy: an anonymize binding (3 chunks), two delete bindings,
#: an aggregate binding; the kill tests leave out the aggregate (hundreds of chunks).
DATASETS = ("payments", "invoices", "customers", "web_clicks")
runner = CliRunner()


def _policy(path: Path, datasets: tuple[str, ...]) -> Path:
    yaml = YAML()
    policy = yaml.load((FIXTURES / "run_policy.yaml").read_text())
    policy["datasets"] = [d for d in policy["datasets"] if d["name"] in datasets]
    with path.open("w") as out:
        yaml.dump(policy, out)
    return path


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("crash-audit") / "pristine.sqlite"
    build_demo(f"sqlite:///{path}", customers=120)
    return path


@pytest.fixture
def store(
    pseudonym_keys: dict[str, str], pristine: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> str:
    path = tmp_path / "crm.sqlite"
    shutil.copy(pristine, path)
    url = f"sqlite:///{path}"
    monkeypatch.setenv("TENURE_CRM_URL", url)
    return url


def _state(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'tenure-state.sqlite'}"


def _run(policy: Path, store: str, tmp_path: Path) -> RunReport:
    options = RunOptions(
        now=DEMO_AS_OF, chunk_size=CHUNK, state_url=_state(tmp_path), coverage_gate=False
    )
    return run_policy(policy, options, environ={"TENURE_CRM_URL": store})


def _verify(policy: Path, tmp_path: Path) -> tuple[int, str, str]:
    result = runner.invoke(app, ["audit", "verify", str(policy), "--state", _state(tmp_path)])
    return result.exit_code, result.stdout, result.stderr


def _assert_every_chunk_accounted_for(store: str, tmp_path: Path) -> None:
    audited, registered = books(_state(tmp_path))
    for (run_id, dataset), (action, rows, number) in journal(store).items():
        where = f"run {run_id}, {dataset}: {number} chunks of {rows} rows committed"
        assert audited.get((run_id, dataset)) == rows, f"{where}, audited {audited}"
        if action != "delete":
            assert registered.get((run_id, dataset)) == rows, f"{where}, registered {registered}"


def _register(tmp_path: Path, run_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The run's register entry, and its records by dataset."""
    engine = open_state(_state(tmp_path))
    (entry,) = [e for e in register.entries(engine) if e["run_id"] == run_id]
    engine.dispose()
    return entry, {record["dataset"]: record for record in entry["datasets"]}


def _ledger_rows(tmp_path: Path, run_id: str) -> int:
    engine = open_state(_state(tmp_path))
    with engine.connect() as c:
        rows = c.scalar(select(func.sum(chunks.c.rows)).where(chunks.c.run_id == run_id))
    engine.dispose()
    return int(rows or 0)


@pytest.mark.parametrize("point", ["customers:2", "invoices:3"])
def test_every_committed_chunk_is_audited_and_registered(
    point: str, store: str, tmp_path: Path
) -> None:
    """The README's promise, at its hardest moment: SIGKILL after a chunk committed in the
    store and before the ledger, the audit log or the register heard of it."""
    policy = _policy(tmp_path / "policy.yaml", DATASETS[:3])
    code = run_killed_before_ledger(policy, store, _state(tmp_path), CHUNK, DEMO_AS_OF, point)
    assert code == -signal.SIGKILL, "the run must die at the kill point"
    (killed,) = {run_id for run_id, _ in journal(store)}
    dataset, _, number = point.partition(":")
    journaled = journal(store)[(killed, dataset)]
    assert journaled[2] == int(number)  # the chunk committed in the store ...
    assert _ledger_rows(tmp_path, killed) < sum(r for _, r, _ in journal(store).values())

    # ... and before the next run, verify does not call the log intact: it names the run,
    # what it committed, and what will audit it.
    code, out, err = _verify(policy, tmp_path)
    assert code == 1 and "intact" not in out, out
    assert f"run {killed}" in err and "not yet audited" in err, err
    assert "the next `tenure run`" in err and "BROKEN" not in err, err

    rerun = _run(policy, store, tmp_path)
    assert not rerun.failed and rerun.reconciled_runs == [killed]
    _assert_every_chunk_accounted_for(store, tmp_path)
    if dataset == "customers":
        record = _register(tmp_path, killed)[1]["customers"]
        assert record["status"] == "interrupted" and "after committing 2 chunks" in record["error"]
        assert record["risk"]["records"] >= journaled[1]  # the analysis, taken then
    code, out, err = _verify(policy, tmp_path)
    assert code == 0 and "audit log intact" in out, err


def test_a_killed_anonymization_whose_state_database_was_lost_is_registered(
    store: str, tmp_path: Path
) -> None:
    policy = _policy(tmp_path / "policy.yaml", DATASETS[:3])
    run_killed_before_ledger(policy, store, _state(tmp_path), CHUNK, DEMO_AS_OF, "customers:2")
    for path in tmp_path.glob("tenure-state.sqlite*"):
        path.unlink()
    (killed,) = {run_id for run_id, _ in journal(store)}
    rerun = _run(policy, store, tmp_path)
    assert not rerun.failed and rerun.reconciled_runs == [killed]
    _assert_every_chunk_accounted_for(store, tmp_path)
    entry, records = _register(tmp_path, killed)
    assert entry["policy_sha256"] == ""  # unknown: the ledger that had it is lost
    # What the two chunks committed (a chunk is a slice of about CHUNK rows).
    assert records["customers"]["records_this_run"] == journal(store)[(killed, "customers")][1]
    code, out, err = _verify(policy, tmp_path)
    assert code == 0 and "audit log intact" in out, err


def test_a_run_stopped_mid_binding_records_what_it_committed_before_it_stops(
    store: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An exception no binding catches (here an interrupt) ends the run; on its way out
    the run audits and registers the chunks the stores committed, from their journals."""
    policy = _policy(tmp_path / "policy.yaml", DATASETS[:3])
    _failing_chunks(monkeypatch, "customers", lambda n: KeyboardInterrupt() if n == 3 else None)
    with pytest.raises(KeyboardInterrupt):
        _run(policy, store, tmp_path)
    (run_id,) = {run_id for run_id, _ in journal(store)}
    _assert_every_chunk_accounted_for(store, tmp_path)
    engine = open_state(_state(tmp_path))
    statuses = {e["status"] for e in audit.entries(engine, run_id)}
    engine.dispose()
    assert statuses == {"failed"}
    record = _register(tmp_path, run_id)[1]["customers"]
    committed = journal(store)[(run_id, "customers")][1]
    assert record["status"] == "error" and record["records_this_run"] == committed
    assert (
        record["error"]
        == "the run failed after committing 2 chunks; recorded from the stores' journals"
    )
    code, out, err = _verify(policy, tmp_path)
    assert code == 0 and "audit log intact" in out, err


def _failing_chunks(
    monkeypatch: pytest.MonkeyPatch, dataset: str, failing: Callable[[int], BaseException | None]
) -> None:
    """The store raises ``failing(n)`` (when not None) at the n-th chunk of ``dataset``."""
    execute_chunk = SQLConnector.execute_chunk
    calls: dict[str, int] = {}

    def execute(self: SQLConnector, work: ChunkWork) -> ChunkResult:
        if work.label == dataset:
            calls[dataset] = calls.get(dataset, 0) + 1
            error = failing(calls[dataset])
            if error is not None:
                raise error
        return execute_chunk(self, work)

    monkeypatch.setattr(SQLConnector, "execute_chunk", execute)


@pytest.mark.parametrize("dataset", ["customers", "web_clicks"])
def test_a_binding_that_fails_after_committing_chunks_records_them_before_it_is_reported(
    dataset: str, store: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    policy = _policy(tmp_path / "policy.yaml", DATASETS)
    _failing_chunks(monkeypatch, dataset, lambda n: RuntimeError("boom") if n == 3 else None)
    report = _run(policy, store, tmp_path)
    assert report.failed
    (failed,) = [o for o in report.outcomes if o.error]
    assert failed.dataset == dataset and failed.error == "unexpected RuntimeError: boom"
    _, rows, number = journal(store)[(report.run_id, dataset)]
    assert number == 2 and failed.chunks == 2 and failed.processed == rows
    shown = next(d for d in report_json(report)["datasets"] if d["dataset"] == dataset)
    assert shown["status"] == "error" and shown["processed"] == rows
    others = [o for o in report.outcomes if o.dataset != dataset]
    assert all(o.error is None for o in others) and all(o.processed > 0 for o in others)

    _assert_every_chunk_accounted_for(store, tmp_path)
    engine = open_state(_state(tmp_path))
    (record,) = [
        r
        for e in register.entries(engine)
        if e["run_id"] == report.run_id
        for r in e["datasets"]
        if r["dataset"] == dataset
    ]
    (entry,) = [e for e in audit.entries(engine, report.run_id) if e.get("dataset") == dataset]
    engine.dispose()
    assert entry["status"] == "error" and entry["chunks"] == 2
    assert record["status"] == "error" and record["error"] == failed.error
    if dataset == "customers":  # the store still answers: the analysis is taken
        assert record["risk"]["records"] >= rows
    code, out, err = _verify(policy, tmp_path)
    assert code == 0 and "audit log intact" in out, err


def _flow_run(policy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> RunReport:
    """The Prefect flow as scheduled, its retries without their delay, no coverage gate
    (the policy is a part of the run tests' policy, the demo store has more)."""
    from flows import nightly
    from flows.run import lifecycle

    monkeypatch.setattr(lifecycle, "coverage_gate", lambda *_a, **_k: None)
    monkeypatch.setattr(
        nightly, "retain_dataset", nightly.retain_dataset.with_options(retry_delay_seconds=0)
    )
    monkeypatch.setenv("TENURE_STATE_URL", _state(tmp_path))
    report: Any = nightly.nightly_retention(str(policy), now=DEMO_AS_OF, chunk_size=CHUNK)
    return report  # type: ignore[no-any-return]


@pytest.mark.parametrize("lost", [1, 3], ids=["once", "every-retry"])
def test_a_flow_task_that_loses_its_store_after_committing_chunks_is_audited(
    lost: int, prefect_api: None, store: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The task retries a lost connection (twice): a retry goes on from the chunks
    already committed, and a task that fails for good still has them audited and
    registered."""
    policy = _policy(tmp_path / "policy.yaml", DATASETS[:3])
    failures = iter(range(lost))

    def failing(n: int) -> BaseException | None:
        if n >= 3 and next(failures, None) is not None:
            return StoreUnavailable("crm", "sqlite:///crm.sqlite", "connection lost")
        return None

    _failing_chunks(monkeypatch, "customers", failing)
    dry = run_policy(
        policy, RunOptions(dry_run=True, now=DEMO_AS_OF), environ={"TENURE_CRM_URL": store}
    )
    expired = next(o.expired for o in dry.outcomes if o.dataset == "customers")
    report = _flow_run(policy, tmp_path, monkeypatch)
    (customers,) = [o for o in report.outcomes if o.dataset == "customers"]
    _, rows, number = journal(store)[(report.run_id, "customers")]
    if lost == 1:
        assert not report.failed and customers.error is None
        assert number >= 3 and customers.processed == rows == customers.expired == expired
    else:
        assert (
            report.failed
            and customers.error == "store 'crm' (sqlite:///crm.sqlite): connection lost"
        )
        assert number == 2 and customers.processed == rows and customers.chunks == 2
    _assert_every_chunk_accounted_for(store, tmp_path)
    code, out, err = _verify(policy, tmp_path)
    assert code == 0 and "audit log intact" in out, err
