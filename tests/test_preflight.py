"""The preflight (issue 13, item 7): what `validate`, `plan` and `run --dry-run` say is
ready is what the real run finds; a real run whose preflight fails writes nothing."""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flows.cli import app
from flows.run.lifecycle import run_policy
from flows.run.types import RunOptions
from retention_rules.issues import PolicyError
from tests.support.demo import DEMO_AS_OF, build_demo
from tests.support.paths import REPO

runner = CliRunner()
NOW = DEMO_AS_OF.replace(tzinfo=None).isoformat()
KEY_VARIABLE = "TENURE_PSEUDONYM_KEY_SHOP"

#: A pseudonym binding whose purpose's key lives in TENURE_PSEUDONYM_KEY_SHOP, and a
#: delete binding that does not need it. `{store}` is the SQLite store's URL.
POLICY = """\
version: 1
name: preflight
timezone: America/Montreal
categories:
  identity.name: {description: "Name", identifier: direct}
  contact.email: {description: "E-mail", identifier: direct}
  billing.transaction: {description: "Amounts", identifier: quasi}
purposes:
  legal_obligations:
    description: Tax records.
    legal_basis: legal_obligation
    min_retention: 6 years
    max_retention: 7 years
  account:
    description: Account upkeep.
    legal_basis: contract
    min_retention: 30 days
    max_retention: 2 years
    pseudonym_key: shop
stores:
  crm:
    url: {store}
scan: {on_coverage_gap: warn}
datasets:
  - name: invoices
    store: crm
    table: invoices
    purpose: legal_obligations
    primary_key: id
    subject_key: customer_id
    columns:
      billing_name: identity.name
      amount: billing.transaction
    clock: {column: issued_at}
    retention: 6 years
    action: delete
  - name: customers
    store: crm
    table: customers
    purpose: account
    primary_key: id
    subject_key: id
    columns:
      email: contact.email
    clock:
      column: closed_at
      event_table: accounts
      join: {local: id, event: customer_id}
    retention: 30 days
    action:
      type: anonymize
      columns:
        email: pseudonym
"""


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("preflight") / "pristine.sqlite"
    build_demo(f"sqlite:///{path}")
    return path


@pytest.fixture
def store(pristine: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh copy of the demo store; no pseudonym key anywhere."""
    path = tmp_path / "store" / "crm.sqlite"
    path.parent.mkdir()
    shutil.copy(pristine, path)
    for name in (KEY_VARIABLE, "TENURE_PSEUDONYM_KEY", "TENURE_STATE_URL", "PREFECT_API_URL"):
        monkeypatch.delenv(name, raising=False)
    return path


def _policy(tmp_path: Path, store: Path | str, text: str = POLICY) -> Path:
    path = tmp_path / "policy.yaml"
    url = store if isinstance(store, str) else f"sqlite:///{store}"
    path.write_text(text.replace("{store}", url))
    return path


def _line_of(path: Path, needle: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if needle in line)


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _key_line(policy: Path, stderr: str) -> str:
    """The one line naming the missing key, at the binding's operator."""
    where = f"{policy}:{_line_of(policy, 'email: pseudonym')}: datasets[1].action.columns.email: "
    found = [line for line in stderr.splitlines() if line.startswith(where)]
    assert len(found) == 1, stderr
    assert KEY_VARIABLE in found[0] and "tenure-pseudonym-key-shop" in found[0]
    return found[0]


def test_validate_plan_and_a_dry_run_report_the_missing_pseudonym_key(
    store: Path, tmp_path: Path
) -> None:
    policy = _policy(tmp_path, store)
    state = tmp_path / "state.sqlite"
    for args in (
        ["validate", str(policy)],
        ["plan", str(policy), "--now", NOW],
        ["run", str(policy), "--dry-run", "--now", NOW, "--state", str(state)],
    ):
        result = runner.invoke(app, args)
        assert result.exit_code == 2, (args, result.output)
        _key_line(policy, result.stderr)
        assert "Traceback" not in result.output
    assert not state.exists()


def test_a_dry_run_needs_the_audit_key_as_the_run_does(
    store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_VARIABLE, "a-shop-key-0123456789abcdef")
    monkeypatch.delenv("TENURE_AUDIT_KEY")
    policy = _policy(tmp_path, store)
    for args in (["validate", str(policy)], ["plan", str(policy), "--now", NOW]):
        result = runner.invoke(app, args)
        assert result.exit_code == 2, result.output
        lines = result.stderr.strip().splitlines()
        # Listed with the preflight's other problems (here none), at the whole file.
        line, total = [line for line in lines if not line.startswith("warning: ")]
        assert line.startswith(f"{policy}: no audit key") and "TENURE_AUDIT_KEY" in line
        assert total == "1 problem(s) found."


def test_a_run_whose_preflight_fails_writes_nothing(
    store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The trial: the delete binding would have run, and the pseudonym binding failed
    after it. Now neither runs, and the missing key is reported before any write."""
    policy = _policy(tmp_path, store)
    state = tmp_path / "state.sqlite"
    before = _digest(store)
    result = runner.invoke(app, ["run", str(policy), "--now", NOW, "--state", str(state)])
    assert result.exit_code == 2, result.output
    _key_line(policy, result.stderr)
    assert _digest(store) == before
    assert not state.exists()
    assert sorted(p.name for p in store.parent.iterdir()) == ["crm.sqlite"]
    # Without an orchestrator (a deployment's run) the same preflight stops it.
    options = RunOptions(now=DEMO_AS_OF, state_url=f"sqlite:///{state}")
    with pytest.raises(PolicyError, match=KEY_VARIABLE):
        run_policy(policy, options)
    assert _digest(store) == before
    assert not state.exists()
    # With the key, the very same run deletes invoices: the preflight is what stopped it.
    monkeypatch.setenv(KEY_VARIABLE, "a-shop-key-0123456789abcdef")
    report = run_policy(policy, options)
    assert not report.failed, report
    assert {o.dataset: o.processed > 0 for o in report.outcomes}["invoices"]
    assert _digest(store) != before


def test_validate_reports_file_level_and_live_schema_problems_in_one_pass(
    store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_VARIABLE, "a-shop-key-0123456789abcdef")
    text = POLICY.replace("    retention: 30 days\n", "    retention: 30 dayz\n")  # in the file
    text = text.replace("billing_name: identity.name", "billing_nam: identity.name")  # live
    policy = _policy(tmp_path, store, text)
    result = runner.invoke(app, ["validate", str(policy)])
    assert result.exit_code == 2, result.output
    lines = result.stderr.splitlines()
    file_level = f"{policy}:{_line_of(policy, '30 dayz')}: datasets[1].retention: "
    live = f"{policy}:{_line_of(policy, 'billing_nam:')}: datasets[0].columns.billing_nam: "
    assert any(line.startswith(file_level) for line in lines), result.stderr
    assert any(line.startswith(live) and "does not exist" in line for line in lines), result.stderr
    assert "Traceback" not in result.output


# read-only stores: the checks a dry run makes without writing


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The CLI in a process of its own; as root, without the capabilities that let root
    write where a file's or folder's permissions say it may not (what any other user
    would meet)."""
    command = [sys.executable, "-m", "flows.cli", *args]
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root without setpriv: permissions cannot be tested")
        command = [setpriv, "--bounding-set", "-dac_override,-dac_read_search", *command]
    environ = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        command, cwd=cwd, env=environ, capture_output=True, text=True, timeout=300
    )


def _store_line(policy: Path, stderr: str, store: str) -> str:
    """The store's lines, one per problem, at the store."""
    where = f"{policy}:{_line_of(policy, f'  {store}:')}: stores.{store}: not writable: "
    found = [line for line in stderr.splitlines() if line.startswith(where)]
    assert found, stderr
    return "\n".join(found)


def test_a_read_only_sqlite_file_is_reported_by_the_dry_run(
    store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_VARIABLE, "a-shop-key-0123456789abcdef")
    policy = _policy(tmp_path, store)
    store.chmod(0o444)
    before = _digest(store)
    state = tmp_path / "state.sqlite"
    for args in (
        ["run", str(policy), "--dry-run", "--now", NOW, "--state", str(state)],
        ["validate", str(policy)],
    ):
        result = _cli(*args, cwd=tmp_path)
        assert result.returncode == 2, result.stdout + result.stderr
        assert "read-only" in _store_line(policy, result.stderr, "crm"), result.stderr
    assert _digest(store) == before and not state.exists()


def test_a_sqlite_store_in_a_read_only_folder_is_reported(
    store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite writes its journal beside the file: a read-only folder fails the run."""
    monkeypatch.setenv(KEY_VARIABLE, "a-shop-key-0123456789abcdef")
    policy = _policy(tmp_path, store)
    store.parent.chmod(0o555)
    try:
        state = tmp_path / "state.sqlite"  # not beside the store: that folder is read-only
        result = _cli("plan", str(policy), "--now", NOW, "--state", str(state), cwd=tmp_path)
    finally:
        store.parent.chmod(0o755)
    assert result.returncode == 2, result.stdout + result.stderr
    assert str(store.parent) in _store_line(policy, result.stderr, "crm")


FILES_POLICY = """\
version: 1
name: preflight_files
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
    url: {store}
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


def test_a_read_only_files_store_folder_is_reported_by_the_dry_run(
    demo_files: dict[str, str], tmp_path: Path
) -> None:
    url = demo_files["TENURE_WEBLOGS_URL"]
    root = Path(url.removeprefix("files:///"))
    policy = _policy(tmp_path, url, FILES_POLICY)
    folders = [root, *(p for p in root.rglob("*") if p.is_dir())]
    for folder in folders:
        folder.chmod(0o555)
    try:
        state = tmp_path / "state.sqlite"
        args = ["run", str(policy), "--dry-run", "--now", NOW, "--state", str(state)]
        result = _cli(*args, cwd=tmp_path)
    finally:
        for folder in folders:
            folder.chmod(0o755)
    assert result.returncode == 2, result.stdout + result.stderr
    lines = _store_line(policy, result.stderr, "weblogs")
    assert f"collection 'access_log' is read-only: {root / 'access_log'}" in lines, lines
    assert f"its bookkeeping folder {root / '_tenure'} cannot be created" in lines, lines


def test_serve_says_in_one_line_when_prefect_is_unreachable(
    store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_VARIABLE, "a-shop-key-0123456789abcdef")
    policy = _policy(tmp_path, store)
    with socket.socket() as sock:  # a loopback port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    api = f"http://127.0.0.1:{port}/api"
    environ = {**os.environ, "PYTHONPATH": str(REPO), "PREFECT_API_URL": api}
    result = subprocess.run(
        [sys.executable, "-m", "flows.cli", "serve", str(policy)],
        cwd=tmp_path,
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and api in lines[0] and "not reachable" in lines[0], result.stderr
