"""Clocks that go silent when their events are cut at equal retention or anonymized, and a
dead run that stays open while one store's journal cannot be read. (A relative state path
from the environment is refused: tests/test_state_review.py.) SQLite stores, no servers."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import create_engine, delete, select

from connectors.protocol import ConnectorOptions
from connectors.registry import open_connector
from flows import audit
from flows.run import lifecycle, reconcile
from flows.run.lifecycle import run_policy
from flows.run.types import RunOptions
from flows.state.tables import chunks, runs
from retention_rules.loader import load_policy
from retention_rules.references import event_clock_warnings
from tests.support.shop import NOW, fill_shop, shop_policy, table_ids


def _shop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "shop.sqlite"
    monkeypatch.setenv("SHOP_URL", fill_shop(path))
    return path


def _state(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'state.sqlite'}"


# An event table cut at the same retention: with equal retentions the event rows and the
# records expire at the same cut-off, and the event table's binding runs first (logins
# refer to customers), so a customer due tonight loses its logins first and would never
# expire again. `validate` must say so.
def test_equal_retention_event_table_cut_first_is_warned(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shop = _shop(tmp_path, monkeypatch)
    policy = shop_policy(tmp_path)
    policy.write_text(policy.read_text().replace("retention: 3 years", "retention: 1 year"))
    warnings = event_clock_warnings(load_policy(policy).policy)
    report = run_policy(
        policy, RunOptions(now=NOW, state_url=_state(tmp_path), coverage_gate=False)
    )
    customers = {o.dataset: o for o in report.outcomes}["customers"]
    # Customers 1 (last login 2018) and 2 (last login mid-2024) are past the 1-year
    # cut-off (2025-01-01); their logins went first, so they now have no event.
    # The situation the warning is about: customer 1 stays, now with no event.
    assert table_ids(shop, "customers") == [1, 2, 3, 4, 5, 6]  # customer 1 among them
    assert customers.no_event == 4
    assert [w.loc for w in warnings] == [("datasets", 0, "clock", "event_table")], warnings
    message = warnings[0].message
    assert "binding logins" in message and "as this clock expires its rows" in message
    assert "if_no_event" in message


# Anonymizing the event column itself ("null") turns each event into one that has not
# happened yet: the records would never expire, and are not counted as "never expires (no
# event)" either. `validate` must say so.
def test_anonymizing_the_event_column_is_warned(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shop = _shop(tmp_path, monkeypatch)
    policy = shop_policy(tmp_path)
    text = policy.read_text().replace(
        "columns: {ip: usage.ip_address}",
        "columns: {ip: usage.ip_address, logged_at: usage.ip_address}",
    )
    text = text.replace(
        "    retention: 1 year\n    action: delete\n",
        "    retention: 1 year\n    action:\n      type: anonymize\n      columns:\n"
        '        logged_at: "null"\n        ip: "null"\n',
    )
    policy.write_text(text)
    warnings = event_clock_warnings(load_policy(policy).policy)
    report = run_policy(
        policy, RunOptions(now=NOW, state_url=_state(tmp_path), coverage_gate=False)
    )
    customers = {o.dataset: o for o in report.outcomes}["customers"]
    # Customer 1's last login (2018) is past the 3-year cut-off: it should have expired.
    # The situation the warning is about: customer 1 stays, and is not even counted.
    assert table_ids(shop, "customers") == [1, 2, 3, 4, 5, 6]  # customer 1 among them
    assert customers.no_event == 2
    messages = [w.message for w in warnings]
    assert any("logged_at" in m and "null" in m for m in messages), messages


# A run killed between a store's commit and the ledger's record of it, with that store
# down during the next run: the dead run must stay open (not closed from the other stores'
# journals), so that its chunks are audited once the store is back and `audit verify` never
# reports a row-total difference.
def test_dead_run_is_not_closed_while_a_store_journal_is_unreadable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = tmp_path / "a.sqlite", tmp_path / "b.sqlite"
    monkeypatch.setenv("SHOP_URL", fill_shop(first))
    b_url = fill_shop(second)
    policy = shop_policy(tmp_path)
    text = policy.read_text().replace(
        "    url: ${SHOP_URL}\n", "    url: ${SHOP_URL}\n  other:\n    url: ${OTHER_URL}\n"
    )
    other = text[text.index("  - name: logins") :]
    other = other.replace("name: logins", "name: other_logins").replace(
        "store: shop", "store: other"
    )
    text = text[: text.index("  - name: customers")] + text[text.index("  - name: logins") :]
    policy.write_text(text + other)
    monkeypatch.setenv("OTHER_URL", b_url)
    options = RunOptions(now=NOW, state_url=_state(tmp_path), coverage_gate=False)

    # Run 1 commits its chunks in both stores, then dies before it audits anything.
    def killed(*_: object, **__: object) -> object:
        raise KeyboardInterrupt

    with monkeypatch.context() as dying:
        dying.setattr(lifecycle, "finish", killed)
        dying.setattr(reconcile, "close_from_journals", lambda *a, **k: False)
        with pytest.raises(KeyboardInterrupt):
            run_policy(policy, options)
    assert table_ids(second, "logins") == [4, 5]  # committed in store "other"
    # ... and was killed between that store's commit and the ledger's record of it.
    with create_engine(_state(tmp_path)).begin() as connection:
        connection.execute(delete(chunks).where(chunks.c.dataset == "other_logins"))

    # Run 2 while store "other" is down: it reconciles run 1 from store "shop" alone.
    monkeypatch.setenv("OTHER_URL", f"sqlite:///{tmp_path / 'gone' / 'b.sqlite'}")
    run_policy(policy, options)

    # Store "other" is back: its committed chunks of run 1 must be in the audit log.
    state = create_engine(_state(tmp_path))
    with state.connect() as connection:
        statuses = dict(connection.execute(select(runs.c.run_id, runs.c.status)).all())
    connector = open_connector(
        "other", b_url, ConnectorOptions(naive_timezone="UTC", local_timezone="UTC")
    )
    try:
        result = audit.verify(state, {"other": connector}, {"logins", "other_logins"})
    finally:
        connector.close()
    assert not result.problems, (statuses, result.problems)
