"""The shop of the event-clock trial (issue 13): customers clocked by their last login,
logins kept one year, in a SQLite file or a folder of JSON-lines files, and its policy."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
from typer.testing import CliRunner

from connectors.protocol import ConnectorOptions, EventClock, ExpiryCounts, ExpirySelection
from connectors.registry import open_connector
from flows.cli import app

runner = CliRunner()
NOW = datetime(2026, 1, 1, 12, tzinfo=UTC)
# customers: 3 years after the last login -> cut-off 2023-01-01
# logins:    1 year after the login       -> cut-off 2025-01-01

#: (id, created_at) of each customer, and (id, customer_id, logged_at) of each login.
CUSTOMERS = [
    (1, "2015-03-01 09:00:00"),  # last login 2018: its logins go; counts from 2015
    (2, "2016-01-01 09:00:00"),  # last login mid-2024 (young) but its logins go too
    (3, "2025-06-01 09:00:00"),  # never logged in, created recently: young
    (4, "2014-01-01 09:00:00"),  # logged in last October: young, logins stay
    (5, "2015-01-01 09:00:00"),  # a login row whose time is not set: not happened yet
    (6, None),  # never logged in, no creation time: nothing to count from
]
LOGINS = [
    (1, 1, "2018-05-01 10:00:00"),
    (2, 2, "2019-01-01 10:00:00"),
    (3, 2, "2024-06-01 10:00:00"),
    (4, 4, "2025-10-01 10:00:00"),
    (5, 5, None),
]

CUSTOMERS_BINDING = """\
  - name: customers
    store: shop
    table: customers
    purpose: account
    primary_key: id
    subject_key: id
    columns: {{email: contact.email}}
    clock:
      column: logged_at
      event_table: logins
      join: {{local: id, event: customer_id}}{if_no_event}
    retention: 3 years
    action: delete
"""
LOGINS_BINDING = """\
  - name: logins
    store: shop
    table: logins
    purpose: security
    primary_key: id
    subject_key: customer_id
    columns: {ip: usage.ip_address}
    clock: {column: logged_at}
    retention: 1 year
    action: delete
"""
HEAD = """\
version: 1
name: shop
timezone: UTC
categories:
  contact.email: {description: "E-mail", identifier: direct}
  usage.ip_address: {description: "IP", identifier: direct}
purposes:
  account: {description: A., legal_basis: contract, min_retention: 1 year, max_retention: 5 years}
  security: {description: S., legal_basis: legitimate_interest, min_retention: 30 days,
             max_retention: 2 years}
stores:
  shop:
    url: ${SHOP_URL}
datasets:
"""


def shop_policy(tmp_path: Path, if_no_event: str = "", *, logins_bound: bool = True) -> Path:
    fallback = f"\n      if_no_event: {if_no_event}" if if_no_event else ""
    text = HEAD + CUSTOMERS_BINDING.format(if_no_event=fallback)
    if logins_bound:
        text += LOGINS_BINDING
    path = tmp_path / "shop.yaml"
    path.write_text(text)
    return path


def fill_shop(path: Path, *, foreign_key: bool = True) -> str:
    """The trial's customers and logins in a SQLite file; its URL. Without the foreign
    key, nothing orders a run but the policy."""
    reference = " REFERENCES customers(id)" if foreign_key else ""
    with sqlite3.connect(path) as connection:
        connection.execute(
            "CREATE TABLE customers (id INTEGER PRIMARY KEY, email TEXT, created_at DATETIME)"
        )
        connection.execute(
            "CREATE TABLE logins (id INTEGER PRIMARY KEY, "
            f"customer_id INTEGER{reference}, ip TEXT, logged_at DATETIME)"
        )
        connection.executemany(
            "INSERT INTO customers VALUES (?, ?, ?)",
            [(i, f"c{i}@example.com", at) for i, at in CUSTOMERS],
        )
        connection.executemany(
            "INSERT INTO logins VALUES (?, ?, '192.0.2.1', ?)",
            [(i, customer, at) for i, customer, at in LOGINS],
        )
    return f"sqlite:///{path}"


def table_ids(path: Path, table: str) -> list[int]:
    with sqlite3.connect(path) as connection:
        return [row[0] for row in connection.execute(f"SELECT id FROM {table} ORDER BY id")]


def plan_json(policy: Path) -> dict[str, dict[str, Any]]:
    result = runner.invoke(app, ["plan", str(policy), "--json", "--now", NOW.isoformat()])
    assert result.exit_code == 0, result.output
    return {d["dataset"]: d for d in json.loads(result.stdout)["datasets"]}


def no_event_selection(fallback: str | None) -> ExpirySelection:
    return ExpirySelection(
        "customers",
        "logged_at",
        datetime(2023, 1, 1, tzinfo=UTC),
        event=EventClock("logins", "logged_at", "id", "customer_id", fallback),
        primary_key=("id",),
    )


def no_event_counts(connector: Any, fallback: str | None) -> tuple[int, int, int, int]:
    counts: ExpiryCounts = connector.count_expiry(no_event_selection(fallback))
    return counts.total, counts.expired, counts.no_event, counts.unreadable


def shop_as_files(database: Path, folder: Path) -> Any:
    """The database's two tables as a folder of JSON-lines files, one collection each."""
    folder.mkdir()
    with sqlite3.connect(database) as connection:
        for table in ("customers", "logins"):
            frame = pd.read_sql(f"SELECT * FROM {table}", connection)
            (folder / table).mkdir()
            frame.to_json(folder / table / "part.jsonl", orient="records", lines=True)
    return open_connector(
        "files", f"files:///{folder}", ConnectorOptions(bookkeeping_dir=folder / "_books")
    )
