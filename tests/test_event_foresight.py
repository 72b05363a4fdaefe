"""A plan made before a run foresees the event rows the run deletes first (issue 13,
item 2).

In the trial, customers were clocked by their last login (3 years) and the logins
binding (1 year) ran first: by the customers' turn their old logins were gone, so the run
kept them as "never expires (no event)" (or, with ``if_no_event: {column: created_at}``,
deleted them by their sign-up date) while `tenure plan` and `run --dry-run`, made before
the run, counted them by the logins still there. A plan counts ahead what the run does:
the event rows a binding running *earlier* deletes are counted as gone; those of a
binding running later are not.
"""

from __future__ import annotations

import sqlite3
import tempfile
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, event
from typer.testing import CliRunner

from connectors.protocol import ExpirySelection
from connectors.sql.connector import SQLConnector
from flows.cli import app
from flows.run.lifecycle import run_policy
from flows.run.types import RunOptions
from tests.support.shop import (
    CUSTOMERS_BINDING,
    HEAD,
    LOGINS_BINDING,
    NOW,
    fill_shop,
    no_event_counts,
    no_event_selection,
    plan_json,
    shop_as_files,
    table_ids,
)

#: What each count is called in the plan's JSON and in the run's outcome.
COUNTS = {"expired": "expired", "held": "held", "never_expires_no_event": "no_event"}


def _trial_policy(
    folder: Path,
    if_no_event: str = "",
    *,
    customers: str = "3 years",
    logins: str = "1 year",
    logins_first: bool = False,
) -> Path:
    fallback = f"\n      if_no_event: {if_no_event}" if if_no_event else ""
    clocked = CUSTOMERS_BINDING.format(if_no_event=fallback).replace(
        "retention: 3 years", f"retention: {customers}"
    )
    events = LOGINS_BINDING.replace("retention: 1 year", f"retention: {logins}")
    path = folder / "shop.yaml"
    path.write_text(HEAD + (events + clocked if logins_first else clocked + events))
    return path


def _counted(policy: Path, state: str) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """The plan (`tenure plan --json`), the dry run's and the real run's counts, by
    binding, each as the plan names them."""
    planned = {name: {key: row[key] for key in COUNTS} for name, row in plan_json(policy).items()}
    runs = []
    for dry_run in (True, False):
        options = RunOptions(now=NOW, state_url=state, coverage_gate=False, dry_run=dry_run)
        report = run_policy(policy, options)
        assert [o.error for o in report.outcomes] == [None] * len(report.outcomes)
        runs.append(
            {
                o.dataset: {key: getattr(o, name) for key, name in COUNTS.items()}
                for o in report.outcomes
            }
        )
        if not dry_run:
            assert all(o.processed == o.expired for o in report.outcomes)
    return planned, runs[0], runs[1]


@pytest.mark.parametrize(
    ("if_no_event", "customers_run"),
    [
        # Customers 1 and 2 lose every login before their turn: no event (3, 6 had none).
        ("", {"expired": 0, "held": 0, "never_expires_no_event": 4}),
        ("never", {"expired": 0, "held": 0, "never_expires_no_event": 4}),
        # ... and count from created_at (2015, 2016): both expire; 6 has no date.
        ("{column: created_at}", {"expired": 2, "held": 0, "never_expires_no_event": 1}),
    ],
)
def test_the_plan_foresees_the_event_rows_an_earlier_binding_deletes(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    if_no_event: str,
    customers_run: dict[str, int],
) -> None:
    shop = tmp_path / "shop.sqlite"
    monkeypatch.setenv("SHOP_URL", fill_shop(shop))
    policy = _trial_policy(tmp_path, if_no_event)
    planned, dry, done = _counted(policy, f"sqlite:///{tmp_path / 'state.sqlite'}")
    assert table_ids(shop, "logins") == [4, 5]  # logins went first (they refer to customers)
    assert done["customers"] == customers_run
    assert planned == done, "the plan made before the run said otherwise"
    assert dry == done, "the dry run made before the run said otherwise"


ORDERS_POLICY = """\
version: 1
name: orders
timezone: UTC
categories:
  billing.transaction: {description: "Amount", identifier: none}
purposes:
  sales: {description: S., legal_basis: contract, min_retention: 1 year, max_retention: 5 years}
stores:
  shop:
    url: ${SHOP_URL}
datasets:
  - name: orders
    store: shop
    table: orders
    purpose: sales
    primary_key: id
    subject_key: customer_id
    columns: {amount: billing.transaction}
    clock: {column: ordered_at}
    retention: 1 year
    action: delete
  - name: order_items
    store: shop
    table: order_items
    purpose: sales
    primary_key: id
    subject_key: order_id
    columns: {price: billing.transaction}
    clock:
      column: ordered_at
      event_table: orders
      join: {local: order_id, event: id}
    retention: 1 year
    action: delete
"""


def test_event_rows_a_later_binding_deletes_are_not_foreseen_gone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Order lines clocked by their order's date are the orders' children (no foreign
    key needed): they run first, while their orders are all there, and the orders go
    after them. Counting the orders' expired rows as gone would make the old lines "no
    event" in the plan, yet the run deletes them."""
    shop = tmp_path / "shop.sqlite"
    with sqlite3.connect(shop) as connection:
        connection.execute(
            "CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER, "
            "amount NUMERIC, ordered_at DATETIME)"
        )
        connection.execute(
            "CREATE TABLE order_items (id INTEGER PRIMARY KEY, order_id INTEGER, price NUMERIC)"
        )
        connection.executemany(
            "INSERT INTO orders VALUES (?, 1, 10, ?)",
            [(1, "2018-05-01 10:00:00"), (2, "2025-10-01 10:00:00")],
        )
        connection.executemany(
            "INSERT INTO order_items VALUES (?, ?, 5)", [(1, 1), (2, 1), (3, 2), (4, 99)]
        )
    monkeypatch.setenv("SHOP_URL", f"sqlite:///{shop}")
    policy = tmp_path / "orders.yaml"
    policy.write_text(ORDERS_POLICY)
    planned, dry, done = _counted(policy, f"sqlite:///{tmp_path / 'state.sqlite'}")
    assert done["order_items"] == {"expired": 2, "held": 0, "never_expires_no_event": 1}
    assert done["orders"]["expired"] == 1
    assert (table_ids(shop, "orders"), table_ids(shop, "order_items")) == ([2], [3, 4])
    assert planned == done
    assert dry == done


#: Within the purposes' bounds (account: 1 to 5 years; security: 30 days to 2 years).
CUSTOMERS_RETENTIONS = st.sampled_from(["1 year", "3 years", "5 years"])
LOGINS_RETENTIONS = st.sampled_from(["30 days", "1 year", "2 years"])


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    customers=CUSTOMERS_RETENTIONS,
    logins=LOGINS_RETENTIONS,
    if_no_event=st.sampled_from(["", "never", "{column: created_at}"]),
    foreign_key=st.booleans(),
    logins_first=st.booleans(),
)
def test_plan_counts_are_what_the_run_does(
    customers: str, logins: str, if_no_event: str, foreign_key: bool, logins_first: bool
) -> None:
    """For any retentions, fallback and order (the foreign key orders logins first;
    without it, the policy's order does): the plan made before the run counts what the
    run then does, binding by binding."""
    with tempfile.TemporaryDirectory() as scratch, pytest.MonkeyPatch.context() as patch:
        folder = Path(scratch)
        patch.setenv("SHOP_URL", fill_shop(folder / "shop.sqlite", foreign_key=foreign_key))
        policy = _trial_policy(
            folder, if_no_event, customers=customers, logins=logins, logins_first=logins_first
        )
        planned, dry, done = _counted(policy, f"sqlite:///{folder / 'state.sqlite'}")
    assert planned == done
    assert dry == done


#: The logins binding's selection (1 year: logins 1, 2 and 3 go), as a plan hands it to
#: the customers' count.
LOGINS_GO_FIRST = ExpirySelection(
    "logins",
    "logged_at",
    datetime(2025, 1, 1, tzinfo=UTC),
    primary_key=("id",),
    keep_referenced=True,
)
#: (total, expired, no event, unreadable) of the customers once their logins 1-3 are
#: gone: customers 1 and 2 have no event; by created_at (2015, 2016) both expire.
FORESEEN = {None: (6, 0, 4, 0), "created_at": (6, 2, 1, 0)}


@pytest.mark.parametrize("fallback", [None, "created_at"])
def test_sql_and_files_count_foreseen_event_removals_alike(
    tmp_path: Path, fallback: str | None
) -> None:
    path = tmp_path / "shop.sqlite"
    fill_shop(path)
    ahead = replace(no_event_selection(fallback), events_removed_first=(LOGINS_GO_FIRST,))
    sql = SQLConnector("shop", f"sqlite:///{path}")
    files = shop_as_files(path, tmp_path / "files")
    try:
        for connector in (sql, files):
            counts = connector.count_expiry(ahead)
            found = (counts.total, counts.expired, counts.no_event, counts.unreadable)
            assert found == FORESEEN[fallback], connector
            # A real run's chunk judges the store as it is: customer 1 still has its login.
            assert no_event_counts(connector, fallback)[1] == 1
        statements: list[str] = []

        def seen(*args: Any) -> None:
            statements.append(str(args[2]))

        event.listen(Engine, "before_cursor_execute", seen)
        try:
            sql.count_expiry(ahead)
        finally:
            event.remove(Engine, "before_cursor_execute", seen)
        assert len(statements) == 1, statements  # still one statement
    finally:
        sql.close()
        files.close()


# validate: every binding that can take a record's events before its turn


def _warnings(policy: Path) -> list[str]:
    result = CliRunner().invoke(app, ["validate", "--offline", str(policy)])
    assert result.exit_code == 0, result.output
    text = result.output.replace("\n", " ")
    return [" ".join(w.split()) for w in text.split("warning: ")[1:]]


@pytest.mark.parametrize(
    ("customers", "logins", "said"),
    [
        ("3 years", "1 year", "deletes logins rows after 1 year, before this clock's 3 years"),
        ("1 year", "1 year", "deletes logins rows after 1 year, as this clock expires its rows"),
        ("1 year", "2 years", "deletes logins rows after 2 years, after this clock's 1 year"),
    ],
)
def test_validate_warns_of_any_binding_that_deletes_the_event_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, customers: str, logins: str, said: str
) -> None:
    """Shorter: the events go before the clock runs out. Equal: they go the night the
    record expires, before its turn when the event binding runs first. Longer: a record
    kept past its retention (a hold) loses them, and never expires once the hold lapses."""
    monkeypatch.setenv("SHOP_URL", fill_shop(tmp_path / "shop.sqlite"))
    (warning,) = _warnings(_trial_policy(tmp_path, customers=customers, logins=logins))
    assert said in warning
    assert "datasets[0].clock.event_table" in warning and "if_no_event" in warning


def test_validate_is_quiet_when_records_refer_to_their_event_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Order lines clocked by their order (read by the orders binding's primary key)
    refer to it: the store keeps an order a line refers to, so no line loses its event."""
    monkeypatch.setenv("SHOP_URL", f"sqlite:///{tmp_path / 'shop.sqlite'}")
    policy = tmp_path / "orders.yaml"
    policy.write_text(ORDERS_POLICY)
    assert _warnings(policy) == []


def _anonymizing_logins(folder: Path, columns: dict[str, str], if_no_event: str = "") -> Path:
    policy = _trial_policy(folder, if_no_event)
    bound = ", ".join(["ip: usage.ip_address", *(f"{c}: usage.ip_address" for c in columns)])
    rewrites = "".join(f"        {c}: {op}\n" for c, op in {"ip": '"null"', **columns}.items())
    text = policy.read_text().replace("columns: {ip: usage.ip_address}", f"columns: {{{bound}}}")
    text = text.replace(
        "    retention: 1 year\n    action: delete\n",
        f"    retention: 1 year\n    action:\n      type: anonymize\n      columns:\n{rewrites}",
    )
    policy.write_text(text)
    return policy


def test_anonymizing_the_event_time_is_warned_whatever_if_no_event_says(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A NULL event has not happened: no fallback applies, the record never expires."""
    monkeypatch.setenv("SHOP_URL", fill_shop(tmp_path / "shop.sqlite"))
    policy = _anonymizing_logins(tmp_path, {"logged_at": '"null"'}, "never")
    (warning,) = _warnings(policy)
    lines = policy.read_text().splitlines()
    rewritten = 1 + next(i for i, line in enumerate(lines) if 'logged_at: "null"' in line)
    assert f"binding logins ({policy}:{rewritten}) anonymizes logins.logged_at" in warning
    assert "never expires, and is not counted as having no event" in warning
    generalized = _anonymizing_logins(
        tmp_path, {"logged_at": "{operator: generalize, params: {to: year}}"}, "never"
    )
    (warning,) = _warnings(generalized)
    assert "with generalize after 1 year: a customers row then counts from the rewritten" in (
        warning
    )


def test_anonymizing_the_join_column_is_warned_unless_if_no_event_says(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rewritten links match no record: it has no event, which `if_no_event` covers."""
    monkeypatch.setenv("SHOP_URL", fill_shop(tmp_path / "shop.sqlite"))
    (warning,) = _warnings(_anonymizing_logins(tmp_path, {"customer_id": "pseudonym"}))
    assert "anonymizes logins.customer_id, which links logins rows to customers rows" in warning
    assert "has no event and never expires" in warning and "if_no_event" in warning
    policy = _anonymizing_logins(tmp_path, {"customer_id": "pseudonym"}, "{column: created_at}")
    assert _warnings(policy) == []
