"""Legal hold values (issue 12, finding 5): parsed against their column's type, a hold
that can match nothing is an error, and a hold protects its rows from every binding of
the same table."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Column, DateTime, Integer, MetaData, Numeric, Table, create_engine, insert
from typer.testing import CliRunner

from flows.cli import app

runner = CliRunner()
NOW = "2026-06-01T12:00:00"
START = datetime(2018, 1, 1, tzinfo=UTC)

POLICY = """\
version: 1
name: holds
timezone: America/Montreal
categories:
  billing.transaction: {description: "Amounts", identifier: quasi}
purposes:
  tax:
    {description: Tax., legal_basis: legal_obligation, min_retention: 1 year,
     max_retention: 7 years}
  stats: {description: Stats., legal_basis: consent, min_retention: 30 days, max_retention: 2 years}
stores:
  db:
    url: ${DB_URL:-sqlite:///no-such-store.sqlite}
datasets:
  - name: invoices
    store: db
    table: invoices
    purpose: tax
    primary_key: id
    subject_key: customer_id
    columns: {amount: billing.transaction}
    clock: {column: issued_at}
    retention: 1 year
    action: delete
  - name: invoice_amounts
    store: db
    table: invoices
    purpose: stats
    primary_key: id
    subject_key: account_id
    columns: {amount: billing.transaction}
    clock: {column: issued_at}
    retention: 30 days
    action: delete
holds:
  - name: audit
    reason: Tax audit.
    expires: 2099-12-31
    datasets: [invoices]
HOLD
"""


def _store(path: Path) -> str:
    """252 invoices, one every ten days from 2018, customers 1-7, accounts 100-106."""
    url = f"sqlite:///{path}"
    metadata = MetaData()
    invoices = Table(
        "invoices",
        metadata,
        Column("id", Integer, primary_key=True),
        Column("customer_id", Integer, nullable=False),
        Column("account_id", Integer, nullable=False),
        Column("amount", Numeric(10, 2)),
        Column("issued_at", DateTime, nullable=False),
    )
    engine = create_engine(url)
    metadata.create_all(engine)
    rows = [
        {
            "id": i,
            "customer_id": i % 7 + 1,
            "account_id": i % 7 + 100,
            "amount": 10,
            "issued_at": (START + timedelta(days=10 * i)).replace(tzinfo=None),
        }
        for i in range(252)
    ]
    with engine.begin() as connection:
        connection.execute(insert(invoices), rows)
    engine.dispose()
    return url


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "holds.sqlite"
    monkeypatch.setenv("DB_URL", _store(path))
    return path


def _policy(tmp_path: Path, hold: str) -> tuple[Path, str]:
    text = POLICY.replace("HOLD\n", hold)
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    return path, text


def _plan(path: Path) -> dict[str, dict[str, Any]]:
    result = runner.invoke(app, ["plan", str(path), "--json", "--now", NOW])
    assert result.exit_code == 0, result.output
    return {d["dataset"]: d for d in json.loads(result.stdout)["datasets"]}


def _issued_since(day: date) -> int:
    """Invoices from local midnight of ``day`` (Montreal, UTC-5 in winter) onwards."""
    midnight = datetime(day.year, day.month, day.day, 5, tzinfo=UTC)
    return sum(START + timedelta(days=10 * i) >= midnight for i in range(252))


@pytest.mark.parametrize("written", ["'2020-1-1'", "'2020-01-01'", "2020-01-01", "' 2020-1-01 '"])
def test_a_date_is_compared_as_a_date(db: Path, tmp_path: Path, written: str) -> None:
    hold = f"    where: [{{column: issued_at, op: ge, value: {written}}}]\n"
    path, _ = _policy(tmp_path, hold)
    rows = _plan(path)["invoices"]
    expected = _issued_since(date(2020, 1, 1))
    expired_before_cutoff = sum(
        START + timedelta(days=10 * i) < datetime(2025, 6, 1, 16, tzinfo=UTC) for i in range(252)
    )
    assert rows["held"] + rows["expired"] == expired_before_cutoff
    assert rows["held"] == expected - (252 - expired_before_cutoff)


@pytest.mark.parametrize(
    ("hold", "needle", "field", "message"),
    [
        (
            "    where: [{column: issued_at, op: ge, value: 'January 1st 2020'}]\n",
            "January",
            "holds[0].where[0].value",
            "'January 1st 2020' is not a date",
        ),
        (
            "    where: [{column: issued_at, op: lt, value: '2020-02-30'}]\n",
            "2020-02-30",
            "holds[0].where[0].value",
            "day is out of range for month",
        ),
        (
            "    subject_keys: ['0x2A']\n",
            "0x2A",
            "holds[0].subject_keys[0]",
            "'0x2A' is not an integer",
        ),
        (
            "    where: [{column: customer_id, op: in, value: [1, 'two']}]\n",
            "two",
            "holds[0].where[0].value[1]",
            "'two' is not an integer",
        ),
    ],
)
def test_a_value_the_column_cannot_hold_is_a_policy_error(
    db: Path, tmp_path: Path, hold: str, needle: str, field: str, message: str
) -> None:
    path, text = _policy(tmp_path, hold)
    line = next(i for i, t in enumerate(text.splitlines(), 1) if needle in t)
    for command in ("validate", "plan"):
        result = runner.invoke(app, [command, str(path)])
        assert result.exit_code == 2, result.output
        assert "Traceback" not in result.output
        problems = [x for x in result.stderr.splitlines() if x.startswith(f"{path}:")]
        assert len(problems) == 1, result.stderr
        assert problems[0].startswith(f"{path}:{line}: {field}: "), problems
        assert message in problems[0]


@pytest.mark.parametrize(
    ("hold", "field", "message"),
    [
        ("    where: [{column: customer_id, op: in, value: []}]\n", "holds[0].where[0]", "empty"),
        (
            "    where: [{column: customer_id, op: not_in, value: []}]\n",
            "holds[0].where[0]",
            "empty",
        ),
        ("    subject_keys: []\n", "holds[0].subject_keys", "at least 1"),
    ],
)
def test_a_hold_that_can_match_nothing_is_an_error(
    tmp_path: Path, hold: str, field: str, message: str
) -> None:
    path, _ = _policy(tmp_path, hold)
    result = runner.invoke(app, ["validate", "--offline", str(path)])
    assert result.exit_code == 2, result.output
    problems = [x for x in result.stderr.splitlines() if x.startswith(f"{path}:")]
    assert len(problems) == 1 and f": {field}: " in problems[0], result.stderr
    assert message in problems[0]


def test_a_hold_on_no_dataset_is_an_error(tmp_path: Path) -> None:
    path, text = _policy(tmp_path, "    subject_keys: [1]\n")
    text = text.replace("datasets: [invoices]", "datasets: []")
    path.write_text(text)
    result = runner.invoke(app, ["validate", "--offline", str(path)])
    assert result.exit_code == 2, result.output
    line = next(i for i, t in enumerate(text.splitlines(), 1) if "datasets: []" in t)
    assert f"{path}:{line}: holds[0].datasets: " in result.stderr
    assert "protects nothing" in result.stderr


def test_a_hold_protects_its_rows_from_every_binding_of_the_table(db: Path, tmp_path: Path) -> None:
    path, _ = _policy(tmp_path, "    subject_keys: [3]\n")
    rows = _plan(path)
    of_customer_3 = {i for i in range(252) if i % 7 + 1 == 3}
    for name in ("invoices", "invoice_amounts"):
        assert rows[name]["held"] > 0, rows[name]
        holds = rows[name]["holds"]
        assert isinstance(holds, list) and holds[0]["name"] == "audit"
    # invoice_amounts keys its people by account_id; the hold names customer 3 through
    # the covering binding's subject key (customer_id), so the same rows are held.
    cutoff = datetime(2026, 5, 2, 16, tzinfo=UTC)
    expired_3 = sum(START + timedelta(days=10 * i) < cutoff for i in of_customer_3)
    assert rows["invoice_amounts"]["held"] == expired_3


@pytest.mark.parametrize(
    ("op", "value"),
    [("ge", "2020-01-01"), ("in", ("2020-01-05T10:00:00", "2020-01-01")), ("eq", "2020-01-01")],
)
def test_a_timestamp_hold_matches_every_form_sqlite_stores(
    tmp_path: Path, op: str, value: Any
) -> None:
    """SQLite keeps a DATETIME as ``2020-01-01``, ``2020-01-05 10:00:00`` or with
    microseconds, all readable clocks; a hold compares them as the instants they are
    (compared as text, ``2020-01-01`` was not ``>=`` midnight of that day and was
    deleted under its hold)."""
    import sqlite3

    from connectors.protocol import Condition, ExpirySelection, RowFilter
    from connectors.sql.connector import SQLConnector

    path = tmp_path / "forms.sqlite"
    with sqlite3.connect(path) as raw:
        raw.execute("create table t (id integer primary key, issued_at DATETIME)")
        raw.executemany(
            "insert into t values (?, ?)",
            [(1, "2020-01-01"), (2, "2020-01-05 10:00:00"), (3, "2019-12-31 23:59:59.000000")],
        )
    hold = RowFilter("audit", (Condition("issued_at", op, value),))
    selection = ExpirySelection(
        table="t",
        clock_column="issued_at",
        cutoff=datetime(2025, 1, 1, tzinfo=UTC),
        exclusions=(hold,),
        primary_key=("id",),
    )
    connector = SQLConnector("db", f"sqlite:///{path}")
    try:
        counts = connector.count_expiry(selection)
    finally:
        connector.close()
    held = {"ge": 2, "in": 2, "eq": 1}[op]
    assert (counts.expired, counts.held, counts.held_by) == (3 - held, held, {"audit": held})
