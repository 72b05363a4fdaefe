"""The PII scan: in-database sampling, the inventory, incremental rescans, ``tenure scan``."""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, event, text
from typer.testing import CliRunner

import flows.scan
from anonymizers import detection
from anonymizers.detection.text_engine import text_engine
from connectors.sql.connector import SQLConnector
from connectors.sql.sampling import MAX_TEXT_CHARS
from flows.cli import app
from flows.reports.inventory import inventory_json, inventory_markdown
from flows.scan import Inventory
from flows.scan_runner import run_scan
from tests.support.backends import on_backends
from tests.support.demo import build_demo, demo_files_environ
from tests.support.network import OUTBOUND_ATTEMPTS
from tests.support.paths import SHIPPED_POLICY

runner = CliRunner()


def _column(url: str, sql: str) -> list[Any]:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return list(connection.execute(text(sql)).scalars())
    finally:
        engine.dispose()


# --- sampling inside the store ------------------------------------------------------


def test_a_sample_holds_only_the_columns_non_null_values(demo_url: str) -> None:
    connector = SQLConnector("crm", demo_url)
    try:
        sample = connector.sample_values("email_messages", ["from_address", "body", "id"], 50)
        referrers = connector.sample_values("web_clicks", ["referrer"], 10_000)
    finally:
        connector.close()
    assert {name: len(values) for name, values in sample.items()} == {
        "from_address": 50,
        "body": 50,
        "id": 50,
    }
    assert set(sample["from_address"]) <= set(
        _column(demo_url, "SELECT from_address FROM email_messages")
    )
    assert len(set(sample["id"])) == 50, "rows are drawn without replacement"
    bodies = {
        body[:MAX_TEXT_CHARS] for body in _column(demo_url, "SELECT body FROM email_messages")
    }
    assert set(sample["body"]) <= bodies
    # A limit above the row count returns every non-null value, and no NULL.
    everything = _column(demo_url, "SELECT referrer FROM web_clicks")
    assert None in everything
    assert sorted(referrers["referrer"]) == sorted(v for v in everything if v is not None)


@on_backends("sqlite", "mariadb", fixture="demo_url")
def test_samples_are_random_not_the_first_rows(demo_url: str) -> None:
    connector = SQLConnector("crm", demo_url)
    try:
        first = connector.sample_values("web_clicks", ["id"], 40)["id"]
        second = connector.sample_values("web_clicks", ["id"], 40)["id"]
    finally:
        connector.close()
    assert set(first) != set(second)
    assert max(first) > 40


@pytest.fixture(scope="module")
def big_pg_table(pg_server: Any) -> Iterator[str]:
    """200,000 rows in PostgreSQL, one column filled in one row out of a thousand."""
    admin = create_engine(pg_server.admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text('CREATE DATABASE "sampling"'))
    admin.dispose()
    url = pg_server.url("sampling")
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(
            text(
                "CREATE TABLE contacts AS SELECT i AS id, 'user' || i || '@example.ca' AS email, "
                "CASE WHEN i % 1000 = 0 THEN 'rare ' || i END AS rare "
                "FROM generate_series(1, 200000) AS i"
            )
        )
        connection.execute(text("ALTER TABLE contacts ADD PRIMARY KEY (id)"))
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("ANALYZE contacts"))
    engine.dispose()
    yield url


def test_postgres_samples_pages_with_tablesample_across_the_table(big_pg_table: str) -> None:
    connector = SQLConnector("big", big_pg_table)
    statements: list[str] = []
    event.listen(
        connector._engine,
        "before_cursor_execute",
        lambda _c, _cur, statement, *_: statements.append(statement),
    )
    try:
        rows = connector.estimate_rows("contacts")
        sample = connector.sample_values("contacts", ["id", "rare"], 500)
    finally:
        connector.close()
    assert 190_000 <= rows <= 210_000, "the planner's estimate, after ANALYZE"
    ids = sample["id"]
    assert len(ids) == 500 and len(set(ids)) == 500
    assert min(ids) < 40_000 and max(ids) > 160_000, "pages from all over the table"
    assert any("TABLESAMPLE system" in s for s in statements)
    # 200 non-null values in 200,000 rows: the rate grows until it finds them all.
    assert sorted(sample["rare"]) == sorted(f"rare {i}" for i in range(1000, 200_001, 1000))


# --- the scan and its inventory -----------------------------------------------------


@pytest.fixture(scope="module")
def scanned(
    tmp_path_factory: pytest.TempPathFactory, demo_files_template: Path
) -> Iterator[tuple[Inventory, Path]]:
    """One full scan of a fresh demo store, its mail and web logs, with the shipped policy
    (the mail and web logs stay shared: scans only read them)."""
    root = tmp_path_factory.mktemp("scan")
    store = root / "crm.sqlite"
    build_demo(f"sqlite:///{store}")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TENURE_CRM_URL", f"sqlite:///{store}")
        for name, value in demo_files_environ(demo_files_template).items():
            patch.setenv(name, value)
        inventory, _ = run_scan(SHIPPED_POLICY, state_url=f"sqlite:///{root / 'state.sqlite'}")
        yield inventory, root


def _labels(inventory: Inventory) -> dict[str, set[str]]:
    return {f"{t.table}.{c.column}": set(c.labels()) for t in inventory.tables for c in t.columns}


def test_the_demo_store_is_fully_covered_by_the_shipped_policy(
    scanned: tuple[Inventory, Path],
) -> None:
    inventory, _ = scanned
    assert inventory.coverage.passed, [str(gap) for gap in inventory.coverage.gaps]
    assert len(inventory.tables) == 14
    labels = _labels(inventory)
    assert labels["customers.email"] == {"EMAIL_ADDRESS"}
    assert labels["customers.phone"] == {"PHONE_NUMBER"}
    assert labels["login_events.ip_address"] == {"IP_ADDRESS"}
    assert labels["customers.postal_code"] == {"CA_POSTAL_CODE"}
    assert labels["payments.card_holder"] == {"PERSON"}
    assert {"PERSON", "EMAIL_ADDRESS", "PHONE_NUMBER"} <= labels["support_tickets.notes"]
    assert labels["invoices.amount"] == labels["customers.id"] == set()
    assert labels["email_messages.from_address"] == {"EMAIL_ADDRESS"}, "values overrule 'address'"
    assert {"PERSON", "EMAIL_ADDRESS", "PHONE_NUMBER"} <= labels["inbox.body"]
    assert labels["billing.correspondent"] == labels["inbox.from_address"] == {"EMAIL_ADDRESS"}
    assert labels["access_log.ip"] == {"IP_ADDRESS"}


def test_the_inventory_never_holds_a_sampled_value(scanned: tuple[Inventory, Path]) -> None:
    inventory, root = scanned
    url = f"sqlite:///{root / 'crm.sqlite'}"
    secrets = {
        *_column(url, "SELECT email FROM customers"),
        *_column(url, "SELECT phone FROM customers WHERE phone IS NOT NULL"),
        *_column(url, "SELECT last_name FROM customers WHERE length(last_name) > 4"),
        *_column(url, "SELECT ip_address FROM login_events"),
        *_column(url, "SELECT substr(notes, 1, 30) FROM support_tickets"),
    }
    written = json.dumps(inventory_json(inventory)) + inventory_markdown(inventory)
    leaked = sorted(value for value in secrets if value in written)
    assert not leaked, leaked[:5]


def test_the_same_backend_agnostic_labels_come_from_postgres(
    scanned: tuple[Inventory, Path], demo_pg_url: str, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.setenv("TENURE_CRM_URL", demo_pg_url)
    inventory, _ = run_scan(SHIPPED_POLICY, state_url=f"sqlite:///{tmp_path / 's.sqlite'}")
    assert inventory.coverage.passed
    bound = set(scanned[0].coverage.bound)
    pg, sqlite = _labels(inventory), _labels(scanned[0])
    differing = {
        column: (sqlite[column], pg[column])
        for column in sqlite
        if f"crm.{column}" in bound and sqlite[column] != pg[column]
    }
    assert not differing


def _store_copy(scanned: tuple[Inventory, Path], tmp_path: Path) -> Path:
    """A private copy of the scanned demo store, for a test to change."""
    store = tmp_path / "crm.sqlite"
    shutil.copy(scanned[1] / "crm.sqlite", store)
    return store


def _add_unbound_phones(store: Path) -> None:
    """``customers.cell``: the customers' phone numbers, in a column no binding lists."""
    with sqlite3.connect(store) as connection:
        connection.execute("ALTER TABLE customers ADD COLUMN cell TEXT")
        connection.execute("UPDATE customers SET cell = phone")


# --- incremental rescans --------------------------------------------------------------


def _forbid_classifying(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    classified: list[str] = []
    real = flows.scan.classify_table

    def spy(columns: Any, **kw: Any) -> Any:
        classified.extend(column.name for column in columns)
        return real(columns, **kw)

    monkeypatch.setattr(flows.scan, "classify_table", spy)
    return classified


def test_unchanged_tables_are_not_sampled_again_unless_full(
    scanned: tuple[Inventory, Path],
    demo_files: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    store, state = _store_copy(scanned, tmp_path), tmp_path / "state.sqlite"
    shutil.copy(scanned[1] / "state.sqlite", state)
    monkeypatch.setenv("TENURE_CRM_URL", f"sqlite:///{store}")
    classified = _forbid_classifying(monkeypatch)
    state_url = f"sqlite:///{state}"

    first, _ = run_scan(SHIPPED_POLICY, state_url=state_url)
    # The cache is keyed by the store's URL: a copy elsewhere is a new store.
    assert first.reused == 0
    classified.clear()
    again, _ = run_scan(SHIPPED_POLICY, state_url=state_url)
    assert (again.reused, classified) == (14, [])
    assert _labels(again) == _labels(first)

    _add_unbound_phones(store)
    changed, _ = run_scan(SHIPPED_POLICY, state_url=state_url)
    assert changed.reused == 13
    assert "cell" in classified and "body" not in classified
    assert [str(gap).split(":")[0] for gap in changed.coverage.gaps] == ["crm.customers.cell"]

    classified.clear()
    full, _ = run_scan(SHIPPED_POLICY, state_url=state_url, full=True)
    assert full.reused == 0 and "body" in classified

    # Findings of another classifier are not reused: it might label the values otherwise.
    monkeypatch.setattr(detection, "classifier_fingerprint", lambda: "another classifier")
    classified.clear()
    upgraded, _ = run_scan(SHIPPED_POLICY, state_url=state_url)
    assert upgraded.reused == 0 and "body" in classified
    assert run_scan(SHIPPED_POLICY, state_url=state_url)[0].reused == 14


# --- tenure scan ------------------------------------------------------------------------


def test_scan_check_passes_then_fails_on_an_unbound_phone_column(
    scanned: tuple[Inventory, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = _store_copy(scanned, tmp_path)
    monkeypatch.setenv("TENURE_CRM_URL", f"sqlite:///{store}")
    args = ["scan", str(SHIPPED_POLICY), "--check", "--state", f"sqlite:///{tmp_path / 's.db'}"]

    passed = runner.invoke(app, [*args, "--out", str(tmp_path / "a")])
    assert passed.exit_code == 0, passed.output
    assert "Coverage: every personal column is bound." in passed.stdout
    assert (tmp_path / "a" / "inventory.json").exists() and (
        tmp_path / "a" / "inventory.md"
    ).exists()

    with sqlite3.connect(store) as connection:
        connection.execute("ALTER TABLE payments ADD COLUMN telephone_client TEXT")
        connection.execute(
            "UPDATE payments SET telephone_client = "
            "(SELECT phone FROM customers WHERE customers.id = payments.customer_id)"
        )
    failed = runner.invoke(app, [*args, "--suggest", "--out", str(tmp_path / "b")])
    assert failed.exit_code == 1, failed.output
    gap_lines = [line for line in failed.stdout.splitlines() if ": unbound: " in line]
    assert len(gap_lines) == 1
    gap = re.fullmatch(
        r"crm\.payments\.telephone_client: unbound: holds PHONE_NUMBER \((\d\.\d\d)\); "
        r"no dataset binding covers it",
        gap_lines[0],
    )
    assert gap is not None, gap_lines[0]
    assert float(gap[1]) >= 0.5
    assert "#   telephone_client: contact.phone" in failed.stdout
    report = json.loads((tmp_path / "b" / "inventory.json").read_text())
    assert report["coverage"]["passed"] is False
    statuses = {
        (t["table"], c["column"]): c["status"] for t in report["tables"] for c in t["columns"]
    }
    assert statuses[("payments", "telephone_client")] == "unbound"
    assert statuses[("payments", "card_holder")] == "bound"


def test_a_scan_opens_no_outbound_connection(
    scanned: tuple[Inventory, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Presidio and tldextract are rebuilt from scratch, then a whole scan runs."""
    _, root = scanned
    monkeypatch.setenv("TENURE_CRM_URL", f"sqlite:///{root / 'crm.sqlite'}")
    text_engine.cache_clear()
    before = len(OUTBOUND_ATTEMPTS)
    inventory, _ = run_scan(SHIPPED_POLICY, state_url=f"sqlite:///{tmp_path / 's.db'}")
    assert inventory.reused == 0 and inventory.coverage.passed
    assert OUTBOUND_ATTEMPTS[before:] == []


@pytest.mark.usefixtures("pseudonym_keys")
def test_with_warn_the_run_goes_on_and_audits_the_gaps(
    scanned: tuple[Inventory, Path],
    demo_files: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from flows import audit
    from flows.run.lifecycle import run_policy
    from flows.run.types import RunOptions
    from flows.state.tables import open_state
    from tests.support.demo import DEMO_AS_OF

    store = _store_copy(scanned, tmp_path)
    _add_unbound_phones(store)
    policy = tmp_path / "policy.yaml"
    shipped = SHIPPED_POLICY.read_text()
    assert "on_coverage_gap: block" in shipped
    policy.write_text(shipped.replace("on_coverage_gap: block", "on_coverage_gap: warn"))
    state = f"sqlite:///{tmp_path / 'state.sqlite'}"

    report = run_policy(
        policy,
        RunOptions(now=DEMO_AS_OF, state_url=state),
        environ={"TENURE_CRM_URL": f"sqlite:///{store}", **demo_files},
    )
    assert report.gate is not None and report.gate.status == "warned"
    assert not report.blocked and not report.failed
    assert sum(o.processed for o in report.outcomes) > 0
    # The run's entries (the releases under differential privacy and the publication
    # write their own: another reader's)
    entries = audit.entries(open_state(state), report.run_id)
    assert (entries[0]["event"], entries[0]["status"]) == ("coverage_gate", "warned")
    assert entries[0]["gaps"][0].startswith("crm.customers.cell: unbound")
    assert len(entries) == 1 + len(report.outcomes)
