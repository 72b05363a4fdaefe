"""Event clocks that go silent (issue 13, item 2).

A record whose clock is an event in another table used to never expire once that table
held no matching row: in the trial, customers expired three years after their last
login, the logins binding deleted logins after one year, and from then on those
customers could never expire while `plan` showed them as "Kept" like any young record.

Now such rows are counted and shown apart ("never expires (no event)"), the policy can
say what they count from (``if_no_event: {column: created_at}``) or that they are kept on
purpose (``if_no_event: never``), and `tenure validate` warns when a binding's event
table is cut by a shorter binding or bound by none.
"""

from __future__ import annotations

import json
import re
import sqlite3
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, create_engine, event, text
from typer.testing import CliRunner

from connectors.protocol import EventClock, ExpiryCounts, ExpirySelection
from connectors.registry import open_connector
from connectors.sql.connector import SQLConnector
from flows import audit
from flows.cli import app
from flows.reports.run import report_markdown
from flows.run.lifecycle import run_policy
from flows.run.types import RunOptions
from flows.state.tables import open_state

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


def _policy(tmp_path: Path, if_no_event: str = "", *, logins_bound: bool = True) -> Path:
    fallback = f"\n      if_no_event: {if_no_event}" if if_no_event else ""
    text = HEAD + CUSTOMERS_BINDING.format(if_no_event=fallback)
    if logins_bound:
        text += LOGINS_BINDING
    path = tmp_path / "shop.yaml"
    path.write_text(text)
    return path


def _fill(path: Path) -> str:
    with sqlite3.connect(path) as connection:
        connection.execute(
            "CREATE TABLE customers (id INTEGER PRIMARY KEY, email TEXT, created_at DATETIME)"
        )
        connection.execute(
            "CREATE TABLE logins (id INTEGER PRIMARY KEY, "
            "customer_id INTEGER REFERENCES customers(id), ip TEXT, logged_at DATETIME)"
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


@pytest.fixture
def shop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "shop.sqlite"
    monkeypatch.setenv("SHOP_URL", _fill(path))
    return path


def _ids(path: Path, table: str) -> list[int]:
    with sqlite3.connect(path) as connection:
        return [row[0] for row in connection.execute(f"SELECT id FROM {table} ORDER BY id")]


def _plan(policy: Path) -> dict[str, dict[str, Any]]:
    result = runner.invoke(app, ["plan", str(policy), "--json", "--now", NOW.isoformat()])
    assert result.exit_code == 0, result.output
    return {d["dataset"]: d for d in json.loads(result.stdout)["datasets"]}


def _plan_text(policy: Path) -> str:
    result = runner.invoke(app, ["plan", str(policy), "--now", NOW.isoformat()])
    assert result.exit_code == 0, result.output
    return " ".join(result.stdout.split())


def _run(policy: Path, tmp_path: Path) -> tuple[Any, str]:
    state = f"sqlite:///{tmp_path / 'state.sqlite'}"
    report = run_policy(policy, RunOptions(now=NOW, state_url=state, coverage_gate=False))
    assert [o.error for o in report.outcomes] == [None, None]
    return report, state


# The trial, reproduced


def test_customers_whose_logins_are_gone_are_shown_as_never_expiring(
    shop: Path, tmp_path: Path
) -> None:
    policy = _policy(tmp_path)
    before = _plan(policy)["customers"]
    # 3 and 6 never logged in; 1 and 2 lose theirs to the logins binding, which runs
    # first: the plan counts ahead what the run does (tests/test_event_foresight.py).
    assert (before["expired"], before["never_expires_no_event"]) == (0, 4)
    report, state = _run(policy, tmp_path)
    assert _ids(shop, "logins") == [4, 5]
    assert _ids(shop, "customers") == [1, 2, 3, 4, 5, 6]  # nothing can expire any more
    outcome = {o.dataset: o for o in report.outcomes}["customers"]
    assert (outcome.expired, outcome.no_event) == (0, 4)
    assert "customers: never expires (no event): 4 rows" in report_markdown(report)
    entries = {e["dataset"]: e for e in audit.entries(open_state(state))}
    assert entries["customers"]["never_expires_no_event"] == 4

    after = _plan(policy)["customers"]
    assert (after["expired"], after["kept"], after["never_expires_no_event"]) == (0, 6, 4)
    shown = _plan_text(policy)
    assert "customers: never expires (no event): 4 rows" in shown
    assert "if_no_event" in shown  # the line says how to give them a clock


def test_if_no_event_column_counts_them_from_their_own_timestamp(
    shop: Path, tmp_path: Path
) -> None:
    policy = _policy(tmp_path, "{column: created_at}")
    report, _ = _run(policy, tmp_path)
    # Logins go first (they refer to customers); customers 1 and 2 are then left with no
    # login and count from created_at (2015, 2016): gone in the same run. Customer 3 is
    # young by created_at; 4 has a recent login; 5's login has not happened (a NULL
    # event is "not yet", never "no event"); 6 has nothing to count from.
    assert _ids(shop, "customers") == [3, 4, 5, 6]
    outcome = {o.dataset: o for o in report.outcomes}["customers"]
    assert (outcome.processed, outcome.no_event) == (2, 1)
    after = _plan(policy)["customers"]
    assert (after["expired"], after["never_expires_no_event"]) == (0, 1)


def test_if_no_event_never_keeps_them_on_purpose_and_still_shows_them(
    shop: Path, tmp_path: Path
) -> None:
    policy = _policy(tmp_path, "never")
    _run(policy, tmp_path)
    assert _ids(shop, "customers") == [1, 2, 3, 4, 5, 6]
    assert _plan(policy)["customers"]["never_expires_no_event"] == 4
    shown = _plan_text(policy)
    assert "customers: never expires (no event): 4 rows" in shown
    assert "if_no_event: never" in shown


def test_holds_still_win_over_a_fallback_clock(shop: Path, tmp_path: Path) -> None:
    policy = _policy(tmp_path, "{column: created_at}")
    policy.write_text(
        policy.read_text()
        + "holds:\n  - {name: dispute, reason: Open dispute, expires: 2030-01-01, "
        "datasets: [customers], subject_keys: [1]}\n"
    )
    report, _ = _run(policy, tmp_path)
    assert _ids(shop, "customers") == [1, 3, 4, 5, 6]
    outcome = {o.dataset: o for o in report.outcomes}["customers"]
    assert outcome.held_by["dispute"] == 1


# validate


def _validate(policy: Path, *extra: str) -> tuple[int, str]:
    result = runner.invoke(app, ["validate", str(policy), *extra])
    return result.exit_code, result.output


@pytest.mark.parametrize("offline", [False, True])
def test_validate_warns_when_a_shorter_binding_cuts_the_event_table(
    shop: Path, tmp_path: Path, offline: bool
) -> None:
    policy = _policy(tmp_path)
    code, output = _validate(policy, *(["--offline"] if offline else []))
    assert code == 0, output
    lines = policy.read_text().splitlines()
    event_line = 1 + next(i for i, line in enumerate(lines) if "event_table: logins" in line)
    logins_line = 1 + next(i for i, line in enumerate(lines) if "- name: logins" in line)
    warning = next(line for line in output.splitlines() if line.startswith("warning:"))
    assert warning.startswith(f"warning: {policy}:{event_line}: datasets[0].clock.event_table: ")
    assert f"binding logins ({policy}:{logins_line})" in warning
    assert "deletes logins rows after 1 year" in warning
    assert "if_no_event" in warning


def test_validate_warns_when_the_event_table_is_bound_by_no_binding(
    shop: Path, tmp_path: Path
) -> None:
    code, output = _validate(_policy(tmp_path, logins_bound=False))
    assert code == 0, output
    assert re.search(
        r"warning: .*datasets\[0\]\.clock\.event_table: .*logins is bound by no binding.*"
        r"may be deleted by the application.*if_no_event",
        " ".join(output.split()),
    ), output


@pytest.mark.parametrize("if_no_event", ["never", "{column: created_at}"])
def test_validate_is_quiet_when_the_policy_says_what_no_event_means(
    shop: Path, tmp_path: Path, if_no_event: str
) -> None:
    code, output = _validate(_policy(tmp_path, if_no_event))
    assert code == 0, output
    assert "warning" not in output


def test_validate_checks_the_fallback_column(shop: Path, tmp_path: Path) -> None:
    policy = _policy(tmp_path, "{column: email}")
    code, output = _validate(policy)
    assert code == 2
    assert "datasets[0].clock.if_no_event.column: clock column customers.email has type" in output
    policy = _policy(tmp_path, "{column: signed_up}")
    code, output = _validate(policy)
    assert code == 2
    assert "if_no_event.column: column 'signed_up' does not exist in table 'customers'" in output


def test_if_no_event_needs_an_event_clock(shop: Path, tmp_path: Path) -> None:
    text = HEAD + LOGINS_BINDING.replace(
        "clock: {column: logged_at}", "clock: {column: logged_at, if_no_event: never}"
    )
    policy = tmp_path / "p.yaml"
    policy.write_text(text)
    code, output = _validate(policy, "--offline")
    assert code == 2
    assert "datasets[0].clock: if_no_event is for a clock that is another table's event" in output
    assert "1 problem(s) found." in output


# the connectors


def _selection(fallback: str | None) -> ExpirySelection:
    return ExpirySelection(
        "customers",
        "logged_at",
        datetime(2023, 1, 1, tzinfo=UTC),
        event=EventClock("logins", "logged_at", "id", "customer_id", fallback),
        primary_key=("id",),
    )


def _counts(connector: Any, fallback: str | None) -> tuple[int, int, int, int]:
    counts: ExpiryCounts = connector.count_expiry(_selection(fallback))
    return counts.total, counts.expired, counts.no_event, counts.unreadable


#: Before any run: customer 1's last login is old (expired); 3 and 6 have no login; with
#: the fallback, 3 is young by created_at and 6 has none.
EXPECTED = {None: (6, 1, 2, 0), "created_at": (6, 1, 1, 0)}


@pytest.mark.parametrize("fallback", [None, "created_at"])
def test_a_folder_of_files_judges_event_clocks_like_sqlite(
    shop: Path, tmp_path: Path, fallback: str | None
) -> None:
    sql = SQLConnector("shop", f"sqlite:///{shop}")
    assert _counts(sql, fallback) == EXPECTED[fallback]
    files = _as_files(shop, tmp_path / "files")
    try:
        assert _counts(files, fallback) == EXPECTED[fallback]
    finally:
        files.close()


def _as_files(database: Path, folder: Path) -> Any:
    """The database's two tables as a folder of JSON-lines files, one collection each."""
    folder.mkdir()
    with sqlite3.connect(database) as connection:
        for table in ("customers", "logins"):
            frame = pd.read_sql(f"SELECT * FROM {table}", connection)
            (folder / table).mkdir()
            frame.to_json(folder / table / "part.jsonl", orient="records", lines=True)
    return open_connector("files", f"files:///{folder}", bookkeeping_dir=str(folder / "_books"))


def test_an_unreadable_fallback_is_counted_as_unreadable(shop: Path) -> None:
    with sqlite3.connect(shop) as connection:
        connection.execute("UPDATE customers SET created_at = 'not a date' WHERE id = 3")
    sql = SQLConnector("shop", f"sqlite:///{shop}")
    assert _counts(sql, "created_at") == (6, 1, 1, 1)


@pytest.mark.postgres
def test_postgres_counts_and_falls_back_in_one_statement(pg_url: str) -> None:
    engine = create_engine(pg_url)
    with engine.begin() as connection:
        connection.execute(
            text(
                "CREATE TABLE customers (id INTEGER PRIMARY KEY, email TEXT, created_at TIMESTAMP)"
            )
        )
        connection.execute(
            text(
                "CREATE TABLE logins (id INTEGER PRIMARY KEY, "
                "customer_id INTEGER REFERENCES customers(id), ip TEXT, logged_at TIMESTAMP)"
            )
        )
        for i, at in CUSTOMERS:
            connection.execute(
                text("INSERT INTO customers VALUES (:i, 'x', CAST(:at AS TIMESTAMP))"),
                {"i": i, "at": at},
            )
        for i, customer, at in LOGINS:
            connection.execute(
                text("INSERT INTO logins VALUES (:i, :c, 'ip', CAST(:at AS TIMESTAMP))"),
                {"i": i, "c": customer, "at": at},
            )
    engine.dispose()
    connector = SQLConnector("shop", pg_url)
    try:
        for fallback, expected in EXPECTED.items():
            assert _counts(connector, fallback) == expected
    finally:
        connector.close()


def test_counting_is_one_statement(shop: Path) -> None:
    connector = SQLConnector("shop", f"sqlite:///{shop}")
    selection = _selection("created_at")
    connector.count_expiry(selection)  # reflects the tables first
    statements: list[str] = []

    def seen(*args: Any) -> None:
        statements.append(str(args[2]))

    event.listen(Engine, "before_cursor_execute", seen)
    try:
        connector.count_expiry(selection)
    finally:
        event.remove(Engine, "before_cursor_execute", seen)
    assert len(statements) == 1, statements


# the rule, for any records and events

OLD, YOUNG, BAD = "2015-01-01 00:00:00", "2025-06-01 00:00:00", "not a date"
CLOCK_VALUES = st.sampled_from([OLD, YOUNG, BAD, None])


def _oracle(
    customers: list[str | None], logins: list[tuple[int, str | None]], fallback: bool
) -> tuple[int, int, int, int]:
    """(total, expired, no event, unreadable), judged one record at a time."""
    expired = no_event = unreadable = 0
    for i, created in enumerate(customers):
        events = [at for customer, at in logins if customer == i]
        if events:
            expired += all(at == OLD for at in events)
            unreadable += BAD in events
        elif fallback:
            expired += created == OLD
            unreadable += created == BAD
            no_event += created is None
        else:
            no_event += 1
    return len(customers), expired, no_event, unreadable


@settings(max_examples=30, deadline=None)
@given(
    customers=st.lists(CLOCK_VALUES, min_size=1, max_size=6),
    logins=st.lists(st.tuples(st.integers(0, 7), CLOCK_VALUES), max_size=8),
    fallback=st.booleans(),
)
def test_sql_and_files_judge_no_event_as_the_rule_says(
    customers: list[str | None], logins: list[tuple[int, str | None]], fallback: bool
) -> None:
    """Customers 6, 7 and 99 do not exist: their logins match no record (a folder holds
    no empty table: the logins of 99 give it its fields)."""
    logins = [*logins, (99, OLD)]
    expected = _oracle(customers, logins, fallback)
    column = "created_at" if fallback else None
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        path = root / "store.sqlite"
        with sqlite3.connect(path) as connection:
            connection.execute(
                "CREATE TABLE customers (id INTEGER PRIMARY KEY, created_at DATETIME)"
            )
            connection.execute(
                "CREATE TABLE logins (id INTEGER PRIMARY KEY, customer_id INTEGER, "
                "logged_at DATETIME)"
            )
            connection.executemany("INSERT INTO customers VALUES (?, ?)", enumerate(customers))
            connection.executemany(
                "INSERT INTO logins VALUES (?, ?, ?)",
                [(i, customer, at) for i, (customer, at) in enumerate(logins)],
            )
        sql = SQLConnector("shop", f"sqlite:///{path}")
        try:
            assert _counts(sql, column) == expected
        finally:
            sql.close()
        files = _as_files(path, root / "files")
        try:
            assert _counts(files, column) == expected
        finally:
            files.close()
