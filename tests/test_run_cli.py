"""`tenure run`: the Prefect flow end to end, on the demo store, with the shipped policy."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select
from typer.testing import CliRunner

from flows.cli import app
from flows.state.ledger import Ledger
from flows.state.tables import open_state, privacy_loss
from tests.support.demo import DEMO_AS_OF, build_demo
from tests.support.paths import SHIPPED_POLICY

runner = CliRunner()
NOW = DEMO_AS_OF.replace(tzinfo=None).isoformat()


@pytest.fixture
def demo(
    pseudonym_keys: dict[str, str],
    tmp_path: Path,
    demo_files: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> tuple[str, str]:
    url = f"sqlite:///{tmp_path / 'crm.sqlite'}"
    build_demo(url)
    monkeypatch.setenv("TENURE_CRM_URL", url)
    return url, f"sqlite:///{tmp_path / 'state.sqlite'}"


def _run(*args: str) -> tuple[int, dict[str, object] | None, str]:
    result = runner.invoke(app, ["run", str(SHIPPED_POLICY), "--now", NOW, *args])
    report = json.loads(result.stdout) if result.exit_code in (0, 1) and "--json" in args else None
    return result.exit_code, report, result.stderr


def test_run_then_nothing_left_to_do(prefect_api: None, demo: tuple[str, str]) -> None:
    _, state = demo
    code, report, err = _run("--json", "--state", state)
    assert code == 0, err
    assert report is not None
    done = {d["dataset"]: d["processed"] for d in report["datasets"]}  # type: ignore[index]
    assert all(n > 0 for n in done.values()), done
    code, again, err = _run("--json", "--state", state)
    assert code == 0, err
    assert again is not None
    assert {d["dataset"]: d["processed"] for d in again["datasets"]} == dict.fromkeys(done, 0)  # type: ignore[index]
    plan = runner.invoke(app, ["plan", str(SHIPPED_POLICY), "--json", "--now", NOW])
    assert plan.exit_code == 0, plan.stderr
    assert {d["expired"] for d in json.loads(plan.stdout)["datasets"]} == {0}
    verify = runner.invoke(app, ["audit", "verify", str(SHIPPED_POLICY), "--state", state])
    # 15 bindings, twice, one entry per period released under differential privacy and
    # one for the publication (by the first run: the second had nothing new)
    engine = create_engine(state)
    with engine.connect() as c:
        private = c.scalar(select(func.count()).select_from(privacy_loss))
    engine.dispose()
    assert private and private > 12
    assert verify.exit_code == 0 and f"{30 + private + 1} entries" in verify.stdout
    assert _artifact_keys() >= {"retention-summary", "retention-report"}


def _artifact_keys() -> set[str]:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        return {a.key for a in client.read_artifacts() if a.key}


def test_dry_run_prints_the_table_and_changes_nothing(
    prefect_api: None, demo: tuple[str, str]
) -> None:
    _, state = demo
    before = runner.invoke(app, ["plan", str(SHIPPED_POLICY), "--json", "--now", NOW]).stdout
    result = runner.invoke(
        app, ["run", str(SHIPPED_POLICY), "--dry-run", "--now", NOW, "--state", state]
    )
    assert result.exit_code == 0, result.stderr
    assert "Dry run of crm_pro" in result.stdout
    after = runner.invoke(app, ["plan", str(SHIPPED_POLICY), "--json", "--now", NOW]).stdout
    assert json.loads(before)["datasets"] == json.loads(after)["datasets"]


def test_a_second_run_exits_with_a_clear_message(prefect_api: None, demo: tuple[str, str]) -> None:
    _, state = demo
    with Ledger(open_state(state)).locked("crm_pro", "a-running-night"):
        code, _, err = _run("--state", state)
    assert code == 3
    assert "is being run by run a-running-night" in err


def test_an_invalid_policy_stops_before_prefect(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("version: 1\nname: x\n")
    result = runner.invoke(app, ["run", str(broken)])
    assert result.exit_code == 2
    assert "broken.yaml:1: categories: Field required" in result.stderr


def _add_unbound_phone_column(url: str) -> None:
    import sqlite3

    with sqlite3.connect(url.removeprefix("sqlite:///")) as connection:
        connection.execute("ALTER TABLE customers ADD COLUMN cellulaire TEXT")
        connection.execute("UPDATE customers SET cellulaire = phone")


def test_the_coverage_gate_refuses_every_destructive_step(
    prefect_api: None, demo: tuple[str, str]
) -> None:
    import hashlib

    from flows import audit

    url, state = demo
    _add_unbound_phone_column(url)
    store = Path(url.removeprefix("sqlite:///"))
    before = hashlib.sha256(store.read_bytes()).hexdigest()

    code, report, _ = _run("--json", "--state", state)
    assert code == 1 and report is not None
    gate = report["coverage_gate"]
    assert isinstance(gate, dict) and gate["status"] == "blocked"
    assert [g.split(":")[0] for g in gate["gaps"]] == ["crm.customers.cellulaire"]
    datasets = report["datasets"]
    assert isinstance(datasets, list)
    assert {d["status"] for d in datasets} == {"refused"}
    assert sum(d["expired"] for d in datasets) > 0, "there was work to refuse"
    assert hashlib.sha256(store.read_bytes()).hexdigest() == before, "the store is untouched"

    engine = open_state(state)
    entries = audit.entries(engine)
    assert [(e.get("event"), e["status"]) for e in entries] == [("coverage_gate", "blocked")]
    assert "crm.customers.cellulaire: unbound: holds PHONE_NUMBER" in entries[0]["gaps"][0]
    with engine.connect() as connection:
        from sqlalchemy import select

        from flows.state.tables import runs

        assert connection.execute(select(runs.c.status)).scalars().all() == ["blocked"]

    # A dry run still counts, and says what the gate found.
    dry = runner.invoke(
        app, ["run", str(SHIPPED_POLICY), "--dry-run", "--now", NOW, "--state", state]
    )
    assert dry.exit_code == 0, dry.output
    assert "crm.customers.cellulaire: unbound" in dry.stdout


def test_the_scan_flow_publishes_the_inventory(
    prefect_api: None, demo: tuple[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flows.scan_flow import pii_scan

    _, state = demo
    monkeypatch.setenv("TENURE_STATE_URL", state)  # flows take the state URL by reference
    inventory = pii_scan(str(SHIPPED_POLICY), output_dir=str(tmp_path / "inv"))
    assert inventory.coverage.passed
    assert (tmp_path / "inv" / "inventory.json").exists()
    assert _artifact_keys() >= {"pii-inventory", "pii-inventory-report"}
