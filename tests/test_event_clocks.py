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

import re
import sqlite3
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, create_engine, event, text
from typer.testing import CliRunner

from connectors.sql.connector import SQLConnector
from flows import audit
from flows.cli import app
from flows.reports.run import report_markdown
from flows.run.lifecycle import run_policy
from flows.run.types import RunOptions
from flows.state.tables import open_state
from tests.support.shop import (
    CUSTOMERS,
    HEAD,
    LOGINS,
    LOGINS_BINDING,
    NOW,
    fill_shop,
    no_event_counts,
    no_event_selection,
    plan_json,
    shop_as_files,
    shop_policy,
    table_ids,
)

runner = CliRunner()


@pytest.fixture
def shop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "shop.sqlite"
    monkeypatch.setenv("SHOP_URL", fill_shop(path))
    return path


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
    policy = shop_policy(tmp_path)
    before = plan_json(policy)["customers"]
    # 3 and 6 never logged in; 1 and 2 lose theirs to the logins binding, which runs
    # first: the plan counts ahead what the run does (tests/test_event_foresight.py).
    assert (before["expired"], before["never_expires_no_event"]) == (0, 4)
    report, state = _run(policy, tmp_path)
    assert table_ids(shop, "logins") == [4, 5]
    assert table_ids(shop, "customers") == [1, 2, 3, 4, 5, 6]  # nothing can expire any more
    outcome = {o.dataset: o for o in report.outcomes}["customers"]
    assert (outcome.expired, outcome.no_event) == (0, 4)
    assert "customers: never expires (no event): 4 rows" in report_markdown(report)
    entries = {e["dataset"]: e for e in audit.entries(open_state(state))}
    assert entries["customers"]["never_expires_no_event"] == 4

    after = plan_json(policy)["customers"]
    assert (after["expired"], after["kept"], after["never_expires_no_event"]) == (0, 6, 4)
    shown = _plan_text(policy)
    assert "customers: never expires (no event): 4 rows" in shown
    assert "if_no_event" in shown  # the line says how to give them a clock


def test_if_no_event_column_counts_them_from_their_own_timestamp(
    shop: Path, tmp_path: Path
) -> None:
    policy = shop_policy(tmp_path, "{column: created_at}")
    report, _ = _run(policy, tmp_path)
    # Logins go first (they refer to customers); customers 1 and 2 are then left with no
    # login and count from created_at (2015, 2016): gone in the same run. Customer 3 is
    # young by created_at; 4 has a recent login; 5's login has not happened (a NULL
    # event is "not yet", never "no event"); 6 has nothing to count from.
    assert table_ids(shop, "customers") == [3, 4, 5, 6]
    outcome = {o.dataset: o for o in report.outcomes}["customers"]
    assert (outcome.processed, outcome.no_event) == (2, 1)
    after = plan_json(policy)["customers"]
    assert (after["expired"], after["never_expires_no_event"]) == (0, 1)


def test_if_no_event_never_keeps_them_on_purpose_and_still_shows_them(
    shop: Path, tmp_path: Path
) -> None:
    policy = shop_policy(tmp_path, "never")
    _run(policy, tmp_path)
    assert table_ids(shop, "customers") == [1, 2, 3, 4, 5, 6]
    assert plan_json(policy)["customers"]["never_expires_no_event"] == 4
    shown = _plan_text(policy)
    assert "customers: never expires (no event): 4 rows" in shown
    assert "if_no_event: never" in shown


def test_holds_still_win_over_a_fallback_clock(shop: Path, tmp_path: Path) -> None:
    policy = shop_policy(tmp_path, "{column: created_at}")
    policy.write_text(
        policy.read_text()
        + "holds:\n  - {name: dispute, reason: Open dispute, expires: 2030-01-01, "
        "datasets: [customers], subject_keys: [1]}\n"
    )
    report, _ = _run(policy, tmp_path)
    assert table_ids(shop, "customers") == [1, 3, 4, 5, 6]
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
    policy = shop_policy(tmp_path)
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
    code, output = _validate(shop_policy(tmp_path, logins_bound=False))
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
    code, output = _validate(shop_policy(tmp_path, if_no_event))
    assert code == 0, output
    assert "warning" not in output


def test_validate_checks_the_fallback_column(shop: Path, tmp_path: Path) -> None:
    policy = shop_policy(tmp_path, "{column: email}")
    code, output = _validate(policy)
    assert code == 2
    assert "datasets[0].clock.if_no_event.column: clock column customers.email has type" in output
    policy = shop_policy(tmp_path, "{column: signed_up}")
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


#: Before any run: customer 1's last login is old (expired); 3 and 6 have no login; with
#: the fallback, 3 is young by created_at and 6 has none.
EXPECTED = {None: (6, 1, 2, 0), "created_at": (6, 1, 1, 0)}


@pytest.mark.parametrize("fallback", [None, "created_at"])
def test_a_folder_of_files_judges_event_clocks_like_sqlite(
    shop: Path, tmp_path: Path, fallback: str | None
) -> None:
    sql = SQLConnector("shop", f"sqlite:///{shop}")
    assert no_event_counts(sql, fallback) == EXPECTED[fallback]
    files = shop_as_files(shop, tmp_path / "files")
    try:
        assert no_event_counts(files, fallback) == EXPECTED[fallback]
    finally:
        files.close()


def test_an_unreadable_fallback_is_counted_as_unreadable(shop: Path) -> None:
    with sqlite3.connect(shop) as connection:
        connection.execute("UPDATE customers SET created_at = 'not a date' WHERE id = 3")
    sql = SQLConnector("shop", f"sqlite:///{shop}")
    assert no_event_counts(sql, "created_at") == (6, 1, 1, 1)


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
            assert no_event_counts(connector, fallback) == expected
    finally:
        connector.close()


def test_counting_is_one_statement(shop: Path) -> None:
    connector = SQLConnector("shop", f"sqlite:///{shop}")
    selection = no_event_selection("created_at")
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
            assert no_event_counts(sql, column) == expected
        finally:
            sql.close()
        files = shop_as_files(path, root / "files")
        try:
            assert no_event_counts(files, column) == expected
        finally:
            files.close()
