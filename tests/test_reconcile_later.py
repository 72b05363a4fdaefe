"""A run killed mid-way is closed only once every journal it may have written is read.

The next run reconciles a dead run from the stores' journals. When a store the dead run
wrote is down then, the dead run stays open (``running``, unaudited): ``audit verify``
says INCOMPLETE, not BROKEN, the run report says which store it waits for, and the first
run that can read that store's journal audits and registers the dead run's work.
"""

from __future__ import annotations

import io
import shutil
import signal
from pathlib import Path

import pytest
from rich.console import Console
from ruamel.yaml import YAML
from sqlalchemy import delete, select
from typer.testing import CliRunner

from flows.cli import app
from flows.reports.run import render_run, report_json
from flows.run.lifecycle import run_policy
from flows.run.types import RunOptions, RunReport
from flows.state.tables import open_state, run_stores, runs
from tests.support.books import books, journal
from tests.support.crash_runner import run_killed_before_ledger
from tests.support.demo import DEMO_AS_OF, build_demo
from tests.support.paths import FIXTURES

CHUNK = 10  # rows a chunk (a slice of about that many keys): a binding commits several
runner = CliRunner()


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("reconcile-later") / "pristine.sqlite"
    build_demo(f"sqlite:///{path}", customers=120)
    return path


@pytest.fixture
def stores(
    pseudonym_keys: dict[str, str], pristine: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[str, Path]:
    """Two stores: ``crm`` (its URL in TENURE_CRM_URL) and ``archive``, a SQLite file in a
    folder of its own, which a test takes away to take the store down."""
    crm = tmp_path / "crm.sqlite"
    shutil.copy(pristine, crm)
    (tmp_path / "archive").mkdir()
    shutil.copy(pristine, tmp_path / "archive" / "archive.sqlite")
    monkeypatch.setenv("TENURE_CRM_URL", f"sqlite:///{crm}")
    return f"sqlite:///{crm}", tmp_path / "archive"


def _archive_url(folder: Path) -> str:
    return f"sqlite:///{folder / 'archive.sqlite'}"


def _policy(tmp_path: Path, archive: Path, datasets: tuple[str, ...]) -> Path:
    """The run tests' policy with a second store: the anonymized ``customers`` live in
    ``archive``, the deleted ``invoices`` and ``payments`` in ``crm``."""
    yaml = YAML()
    policy = yaml.load((FIXTURES / "run_policy.yaml").read_text())
    policy["stores"]["archive"] = {"url": _archive_url(archive)}
    policy["datasets"] = [d for d in policy["datasets"] if d["name"] in datasets]
    for dataset in policy["datasets"]:
        if dataset["name"] == "customers":
            dataset["store"] = "archive"
    path = tmp_path / "policy.yaml"
    with path.open("w") as out:
        yaml.dump(policy, out)
    return path


def _state(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'tenure-state.sqlite'}"


def _run(policy: Path, tmp_path: Path) -> RunReport:
    options = RunOptions(
        now=DEMO_AS_OF, chunk_size=CHUNK, state_url=_state(tmp_path), coverage_gate=False
    )
    return run_policy(policy, options)


def _shown(report: RunReport) -> str:
    """The run report as ``tenure run`` prints it."""
    out = io.StringIO()
    render_run(Console(file=out, width=400, color_system=None), report)
    return out.getvalue()


def _verify(policy: Path, tmp_path: Path) -> tuple[int, str, str]:
    result = runner.invoke(app, ["audit", "verify", str(policy), "--state", _state(tmp_path)])
    return result.exit_code, result.stdout, result.stderr


def _status(tmp_path: Path, run_id: str) -> str:
    engine = open_state(_state(tmp_path))
    with engine.connect() as connection:
        status = connection.scalar(select(runs.c.status).where(runs.c.run_id == run_id))
    engine.dispose()
    return str(status)


@pytest.mark.parametrize("recorded", [True, False], ids=["stores-recorded", "earlier-ledger"])
def test_a_dead_run_waits_for_a_store_that_is_down_and_is_audited_when_it_is_back(
    recorded: bool, stores: tuple[str, Path], tmp_path: Path
) -> None:
    """Killed (SIGKILL) after a chunk committed in ``archive`` and before the ledger heard
    of it; the next run finds ``archive`` down; the one after finds it back. Without the
    ledger's record of the stores the dead run may write (a run of an earlier Tenure), the
    policy's stores are waited for instead."""
    crm, archive = stores
    policy = _policy(tmp_path, archive, ("customers", "invoices", "payments"))
    code = run_killed_before_ledger(policy, crm, _state(tmp_path), CHUNK, DEMO_AS_OF, "customers:2")
    assert code == -signal.SIGKILL, "the run must die at the kill point"
    (killed,) = {run_id for run_id, _ in journal(_archive_url(archive))}
    _, committed, chunks = journal(_archive_url(archive))[(killed, "customers")]
    assert committed > 0 and chunks == 2
    if not recorded:
        engine = open_state(_state(tmp_path))
        with engine.begin() as connection:
            connection.execute(delete(run_stores))
        engine.dispose()

    # The archive is down: the dead run is not closed from the crm's journal alone.
    archive.rename(tmp_path / "away")
    report = _run(policy, tmp_path)
    assert report.reconciled_runs == [] and list(report.unreconciled) == [killed]
    assert _status(tmp_path, killed) == "running"
    shown = _shown(report)
    assert f"interrupted run {killed} not reconciled yet: store 'archive'" in shown, shown
    assert report_json(report)["unreconciled_runs"] == report.unreconciled
    code, out, err = _verify(policy, tmp_path)
    assert code == 1 and "INCOMPLETE" in err and "BROKEN" not in err, err
    assert f"run {killed}" in err and "not yet audited" in err, err

    # The archive is back: the next run adopts its chunks and closes the dead run.
    (tmp_path / "away").rename(archive)
    code, out, err = _verify(policy, tmp_path)  # still behind, not wrong
    assert code == 1 and "INCOMPLETE" in err and "BROKEN" not in err, err
    later = _run(policy, tmp_path)
    assert not later.failed, [o.error for o in later.outcomes]
    assert later.reconciled_runs == [killed] and not later.unreconciled
    assert _status(tmp_path, killed) == "interrupted"
    code, out, err = _verify(policy, tmp_path)
    assert code == 0 and "audit log intact" in out, err

    audited, registered = books(_state(tmp_path))
    for store in (crm, _archive_url(archive)):
        for (run_id, dataset), (action, rows, number) in journal(store).items():
            where = f"run {run_id}, {dataset}: {number} chunks of {rows} rows in {store}"
            assert audited.get((run_id, dataset)) == rows, f"{where}, audited {audited}"
            if action != "delete":
                assert registered.get((run_id, dataset)) == rows, f"{where}, {registered}"
    assert registered[(killed, "customers")] == committed


def test_a_store_the_dead_run_never_wrote_does_not_hold_it_open(
    stores: tuple[str, Path], tmp_path: Path
) -> None:
    """The dead run recorded the stores it may write (``crm`` only): a store added to the
    policy since, and down, is not waited for."""
    crm, archive = stores
    policy = _policy(tmp_path, archive, ("invoices", "payments"))
    code = run_killed_before_ledger(policy, crm, _state(tmp_path), CHUNK, DEMO_AS_OF, "invoices:2")
    assert code == -signal.SIGKILL
    (killed,) = {run_id for run_id, _ in journal(crm)}
    policy = _policy(tmp_path, archive, ("customers", "invoices", "payments"))
    archive.rename(tmp_path / "away")
    report = _run(policy, tmp_path)
    assert report.reconciled_runs == [killed] and not report.unreconciled
    code, out, err = _verify(policy, tmp_path)  # the archive is not checked: it is down
    assert code == 0 and "audit log intact" in out and "not checked" in err, err


def test_a_binding_removed_since_the_dead_run_is_audited_and_its_missing_record_shown(
    stores: tuple[str, Path], tmp_path: Path
) -> None:
    """The dead run anonymized with a binding the policy no longer has: its rows are
    audited; the register cannot hold them (the binding's purpose and operators are
    gone), and the run report says so."""
    crm, archive = stores
    policy = _policy(tmp_path, archive, ("customers", "invoices", "payments"))
    code = run_killed_before_ledger(policy, crm, _state(tmp_path), CHUNK, DEMO_AS_OF, "customers:2")
    assert code == -signal.SIGKILL
    (killed,) = {run_id for run_id, _ in journal(_archive_url(archive))}
    committed = journal(_archive_url(archive))[(killed, "customers")][1]
    policy = _policy(tmp_path, archive, ("invoices", "payments"))  # customers removed
    report = _run(policy, tmp_path)
    assert report.reconciled_runs == [killed]
    audited, registered = books(_state(tmp_path))
    assert audited[(killed, "customers")] == committed and (killed, "customers") not in registered
    line = (
        f"interrupted run {killed}: {committed} rows anonymized by binding 'customers', which the "
        "policy no longer has: audited, not in the register"
    )
    assert report.reconcile_warnings == [line]
    assert line in _shown(report) and report_json(report)["reconcile_warnings"] == [line]
