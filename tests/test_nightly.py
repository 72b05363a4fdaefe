"""The nightly run on real SQLite, PostgreSQL and MariaDB stores, through the plain engine."""

from __future__ import annotations

from datetime import UTC, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select, text, update

from connectors.protocol import ConnectorOptions
from connectors.sql.connector import SQLConnector
from flows import audit
from flows.demo.schema import customers, login_events, web_clicks
from flows.releases import shown, withhold_small_cells
from flows.run.lifecycle import run_policy
from flows.run.types import RunOptions
from flows.state.ledger import Ledger, RunLocked
from flows.state.tables import audit as audit_table
from flows.state.tables import open_state
from retention_rules.clock import PolicyClock
from retention_rules.loader import load_policy
from retention_rules.planner import evaluate, plan_rules, rollup_sinks
from tests.support.backends import on_backends
from tests.support.demo import DEMO_AS_OF, build_demo
from tests.support.paths import FIXTURES

RUN_POLICY = FIXTURES / "run_policy.yaml"
NOW = DEMO_AS_OF
pytestmark = pytest.mark.usefixtures("pseudonym_keys")


@pytest.fixture
def store(store_url: str) -> str:
    """A fresh demo store for each test, on each backend of the matrix: the checks of
    what a run does to a store's rows run on all of them, the others on SQLite and
    PostgreSQL."""
    build_demo(store_url)
    return store_url


def _options(tmp_path: Path, **kw: object) -> RunOptions:
    kw.setdefault("coverage_gate", False)  # the gate has its own tests (test_scan_gate)
    return RunOptions(now=NOW, state_url=f"sqlite:///{tmp_path / 'state.sqlite'}", **kw)  # type: ignore[arg-type]


def _run(store: str, tmp_path: Path, policy: Path = RUN_POLICY, **kw: object):  # type: ignore[no-untyped-def]
    return run_policy(policy, _options(tmp_path, **kw), environ={"TENURE_CRM_URL": store})


def _expired_now(store: str) -> dict[str, int]:
    policy = load_policy(RUN_POLICY, environ={"TENURE_CRM_URL": store}).policy
    connector = SQLConnector("crm", store, ConnectorOptions(local_timezone=policy.timezone))
    try:
        rows = evaluate(
            plan_rules(policy, PolicyClock.at(policy.timezone, NOW)), {"crm": connector}
        )
    finally:
        connector.close()
    return {r.rule.dataset.name: r.counts.expired for r in rows}


def test_run_processes_every_expired_row_and_a_rerun_changes_nothing(
    store: str, tmp_path: Path
) -> None:
    before = _expired_now(store)
    report = _run(store, tmp_path, chunk_size=50)
    assert not report.failed, [o.error for o in report.outcomes]
    done = {o.dataset: o.processed for o in report.outcomes}
    assert done == before
    assert all(n > 0 for n in done.values())
    assert _expired_now(store) == {name: 0 for name in before}
    again = _run(store, tmp_path)
    assert {o.dataset: o.processed for o in again.outcomes} == {name: 0 for name in before}


@on_backends("sqlite", "postgresql")
def test_children_are_processed_before_their_parents(store: str, tmp_path: Path) -> None:
    order = [o.dataset for o in _run(store, tmp_path).outcomes]
    assert order.index("payments") < order.index("invoices")


@on_backends("sqlite", "postgresql")
def test_dry_run_changes_nothing(store: str, tmp_path: Path) -> None:
    before = _expired_now(store)
    report = _run(store, tmp_path, dry_run=True)
    assert {o.dataset: o.expired for o in report.outcomes} == before
    assert all(o.processed == 0 for o in report.outcomes)
    assert _expired_now(store) == before
    assert not (tmp_path / "state.sqlite").exists()


def test_held_rows_survive_and_are_reported(store: str, tmp_path: Path) -> None:
    engine = create_engine(store)
    with engine.connect() as c:
        logins_of_17 = c.scalar(select(func.count()).where(login_events.c.customer_id == 17))
    report = _run(store, tmp_path)
    held = {o.dataset: o.held_by.get("lawsuit", 0) for o in report.outcomes}
    with engine.connect() as c:
        assert (
            c.scalar(select(func.count()).where(login_events.c.customer_id == 17)) == logins_of_17
        )
    engine.dispose()
    assert sum(held.values()) > 0
    entries = audit.entries(open_state(f"sqlite:///{tmp_path / 'state.sqlite'}"))
    reasons = {h["reason"] for e in entries for h in e.get("holds", []) if h["rows"]}
    # The hold, and the same hold followed to the rows referring to held rows.
    assert "Preserve the records of customer 17." in reasons
    assert all(r.startswith("Preserve the records of customer 17.") for r in reasons), reasons


def test_only_expired_rows_are_touched(store: str, tmp_path: Path) -> None:
    """Clicks one day before, exactly at, and one day after the cut-off."""
    cutoff = PolicyClock.at("America/Montreal", NOW).cutoff(
        load_policy(RUN_POLICY, environ={"TENURE_CRM_URL": store})
        .policy.dataset("web_clicks")
        .retention
    )
    engine = create_engine(store)
    with engine.begin() as c:
        for offset, click_id in ((-1, 1), (0, 2), (1, 3)):
            c.execute(
                update(web_clicks)
                .where(web_clicks.c.id == click_id)
                .values(occurred_at=(cutoff + timedelta(days=offset)).astimezone(UTC))
            )
    _run(store, tmp_path)
    with engine.connect() as c:
        left = set(c.scalars(select(web_clicks.c.id).where(web_clicks.c.id.in_([1, 2, 3]))))
    engine.dispose()
    assert left == {2, 3}


def test_anonymized_rows_are_rewritten_once(store: str, tmp_path: Path) -> None:
    engine = create_engine(store)
    with engine.connect() as c:
        emails_before = dict(c.execute(select(customers.c.id, customers.c.email)).all())
    report = _run(store, tmp_path)
    anonymized = next(o for o in report.outcomes if o.dataset == "customers").processed
    with engine.connect() as c:
        after = {r.id: r for r in c.execute(select(customers))}
    engine.dispose()
    changed = [i for i, e in emails_before.items() if after[i].email != e]
    assert len(changed) == anonymized > 0
    for i in changed:
        assert after[i].email.startswith("psn_default_")
        assert after[i].phone is None
        assert after[i].postal_code is None or len(after[i].postal_code) == 3
    assert emails_before[17] == after[17].email  # held


def test_aggregates_account_for_every_deleted_row_and_hide_small_cells(
    store: str, tmp_path: Path
) -> None:
    report = _run(store, tmp_path, chunk_size=200)
    deleted = next(o for o in report.outcomes if o.dataset == "web_clicks").processed
    policy = load_policy(RUN_POLICY, environ={"TENURE_CRM_URL": store}).policy
    (sink,) = rollup_sinks(policy.dataset("web_clicks"))
    engine = create_engine(store)
    with engine.connect() as c:
        partial_sum = c.scalar(text("SELECT SUM(n) FROM tenure_agg_web_clicks_views"))
        cells = c.execute(
            text(
                "SELECT COUNT(*) FROM (SELECT period_start, dim_country, SUM(n) AS n "
                "FROM tenure_agg_web_clicks_views GROUP BY 1, 2) AS cells"
            )
        ).scalar()
    engine.dispose()
    assert partial_sum == deleted > 0
    connector = SQLConnector("crm", store)
    published = shown(withhold_small_cells(connector.rollup_cells("web_clicks", sink), sink))
    connector.close()
    assert published and all(cell.count >= sink.min_cell_size for cell in published)
    assert len(published) < cells  # some cells were small and are suppressed
    assert all(0 < cell.measures["count_distinct_visitor_id"] <= cell.count for cell in published)


@on_backends("sqlite", "postgresql")
def test_a_second_run_is_refused_while_one_holds_the_lock(store: str, tmp_path: Path) -> None:
    ledger = Ledger(open_state(f"sqlite:///{tmp_path / 'state.sqlite'}"))
    with ledger.locked("run_tests", "someone-else"), pytest.raises(RunLocked, match="being run"):
        _run(store, tmp_path)


@on_backends("sqlite", "postgresql")
def test_a_broken_binding_stops_alone(store: str, tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text(
        RUN_POLICY.read_text().replace("{ip_address: usage.ip_address}", "{ip: usage.ip_address}")
    )
    report = _run(store, tmp_path, policy=broken)
    errors = {o.dataset: o.error for o in report.outcomes if o.error}
    assert list(errors) == ["login_events"]
    assert "column 'ip' does not exist" in (errors["login_events"] or "")
    assert report.failed
    assert next(o for o in report.outcomes if o.dataset == "web_clicks").processed > 0
    assert _expired_now(store)["login_events"] > 0


@on_backends("sqlite", "postgresql")
def test_audit_log_detects_edits_removals_and_reordering(store: str, tmp_path: Path) -> None:
    _run(store, tmp_path)
    _run(store, tmp_path)
    state = open_state(f"sqlite:///{tmp_path / 'state.sqlite'}")
    intact = audit.verify(state)
    assert intact.ok and intact.entries == 10
    with state.begin() as c:
        c.execute(update(audit_table).where(audit_table.c.seq == 3).values(
            entry=audit_table.c.entry.op("||")(" ")))  # fmt: skip
    assert any("entry 3" in p and "edited" in p for p in audit.verify(state).problems)
    with state.begin() as c:
        c.execute(audit_table.delete().where(audit_table.c.seq == 3))
    assert any("removed or reordered" in p for p in audit.verify(state).problems)


@on_backends("sqlite", "postgresql")
def test_audit_entries_hold_no_personal_values(store: str, tmp_path: Path) -> None:
    engine = create_engine(store)
    with engine.connect() as c:
        emails = list(c.scalars(select(customers.c.email)))
        names = list(c.scalars(select(customers.c.last_name)))
    engine.dispose()
    _run(store, tmp_path)
    state = tmp_path / "state.sqlite"
    dump = state.read_bytes().decode("utf-8", "replace")
    assert not [e for e in emails if e in dump]
    assert not [n for n in names if len(n) > 4 and n in dump]


@on_backends("postgresql", "mariadb")
def test_the_stores_lock_keeps_a_second_runner_out(store_url: str, tmp_path: Path) -> None:
    """Two machines with separate state databases still cannot run one policy at once:
    the store's own lock (PostgreSQL's advisory lock, MariaDB's named lock) says no."""
    build_demo(store_url)
    holder = SQLConnector("crm", store_url)
    with holder.exclusive("tenure:run_tests") as acquired:
        assert acquired
        with pytest.raises(RunLocked, match="store 'crm'"):
            _run(store_url, tmp_path)
    holder.close()
    assert not _run(store_url, tmp_path).failed


@on_backends("postgresql", "mariadb", "mariadb-as-mysql")
def test_server_rollups_equal_the_sqlite_pandas_path(store_url: str, tmp_path: Path) -> None:
    """Counts and sums are computed by PostgreSQL itself; SQLite's come from pandas.
    MariaDB hands the deleted rows back with ``DELETE ... RETURNING``, MySQL from a
    locking read before the delete. The same demo data must give the same published
    cells, period boundaries included."""
    policy = tmp_path / "sums.yaml"
    policy.write_text(
        RUN_POLICY.read_text()
        .replace("measures: [count, {count_distinct: visitor_id}, {sum: response_ms}]",
                 "measures: [count, {sum: response_ms}]")
        .replace("period: year", "period: month")
        .replace("min_cell_size: 10", "min_cell_size: 2")
    )  # fmt: skip
    sqlite_url = f"sqlite:///{tmp_path / 'crm.sqlite'}"
    published = []
    for url, state in ((sqlite_url, "a"), (store_url, "b")):
        build_demo(url)
        run_policy(
            policy,
            RunOptions(
                now=NOW,
                chunk_size=97,
                state_url=f"sqlite:///{tmp_path / state}.sqlite",
                coverage_gate=False,
            ),
            environ={"TENURE_CRM_URL": url},
        )
        loaded = load_policy(policy, environ={"TENURE_CRM_URL": url}).policy
        (sink,) = rollup_sinks(loaded.dataset("web_clicks"))
        connector = SQLConnector("crm", url)
        published.append(
            shown(withhold_small_cells(connector.rollup_cells("web_clicks", sink), sink))
        )
        connector.close()
    assert len(published[0]) > 20
    assert published[0] == published[1]
    assert _expired_now(store_url)["web_clicks"] == 0
