"""The planner on the demo store, checked against an independent computation in pandas."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pandas as pd
import pytest
from sqlalchemy import create_engine
from typer.testing import CliRunner

from connectors.protocol import ConnectorOptions
from connectors.sql.connector import SQLConnector
from flows.cli import app
from retention_rules.clock import PolicyClock
from retention_rules.loader import load_policy
from retention_rules.model import Dataset, Hold, Policy
from retention_rules.planner import PlanRow, evaluate, plan_rules
from tests.support.demo import DEMO_AS_OF
from tests.support.paths import SHIPPED_POLICY

MONTREAL = ZoneInfo("America/Montreal")
NOW = DEMO_AS_OF.astimezone(MONTREAL)


def _policy(url: str) -> Policy:
    return load_policy(SHIPPED_POLICY, environ={"TENURE_CRM_URL": url}).policy


def _plan(url: str, now: datetime = NOW) -> list[PlanRow]:
    """The CRM store's rules (the mail and web-log stores have their own tests)."""
    policy = _policy(url)
    connector = SQLConnector("crm", url, ConnectorOptions(local_timezone=policy.timezone))
    rules = plan_rules(policy, PolicyClock.at(policy.timezone, now))
    try:
        return evaluate([r for r in rules if r.dataset.store == "crm"], {"crm": connector})
    finally:
        connector.close()


def test_cutoffs_follow_the_frozen_clock() -> None:
    policy = load_policy(SHIPPED_POLICY).policy
    clock = PolicyClock.at("America/Montreal", datetime(2026, 11, 24, 2, 0))
    cutoffs = {p.dataset.name: p.cutoff for p in plan_rules(policy, clock)}
    assert cutoffs["invoices"] == datetime(2020, 11, 24, 2, 0, tzinfo=MONTREAL)
    assert cutoffs["web_clicks"] == datetime(2025, 10, 24, 2, 0, tzinfo=MONTREAL)
    assert cutoffs["marketing_contacts"] == datetime(2026, 11, 14, 2, 0, tzinfo=MONTREAL)
    # Summer cut-off, winter now: same wall time, different UTC offset.
    summer = PolicyClock.at("America/Montreal", datetime(2026, 7, 1, 2, 0)).cutoff(
        policy.dataset("invoices").retention
    )
    assert summer.utcoffset() == datetime(2020, 7, 1, tzinfo=MONTREAL).utcoffset()
    assert (summer.hour, summer.date()) == (2, date(2020, 7, 1))


def test_expired_holds_lapse() -> None:
    policy = load_policy(SHIPPED_POLICY).policy
    after = PolicyClock.at("America/Montreal", datetime(2027, 7, 1))
    invoices = next(p for p in plan_rules(policy, after) if p.dataset.name == "invoices")
    assert invoices.holds == ()
    assert {h.name for h in invoices.lapsed_holds} == {
        "dispute_500_17_123456", "revenu_quebec_audit_2020",
    }  # fmt: skip


def test_every_rule_has_rows_on_both_sides_of_its_cutoff(demo_url: str) -> None:
    for row in _plan(demo_url):
        assert row.counts.expired > 0, row.rule.dataset.name
        assert row.counts.kept > 0, row.rule.dataset.name


def test_counts_match_an_independent_computation(demo_url: str) -> None:
    policy = _policy(demo_url)
    engine = create_engine(demo_url)
    try:
        for row in _plan(demo_url):
            expected = _oracle(engine, policy, row.rule.dataset, row.rule.cutoff)
            got = (row.counts.total, row.counts.expired, row.counts.held)
            assert got == expected, row.rule.dataset.name
    finally:
        engine.dispose()


def test_the_plan_moves_with_the_clock(demo_sqlite_url: str) -> None:
    """A year later, more rows have expired in every rule with a row clock."""
    today = {r.rule.dataset.name: r.counts.expired + r.counts.held for r in _plan(demo_sqlite_url)}
    later_rows = _plan(demo_sqlite_url, NOW.replace(year=NOW.year + 1))
    later = {r.rule.dataset.name: r.counts.expired + r.counts.held for r in later_rows}
    assert all(later[name] >= today[name] for name in today)
    assert later["invoices"] > today["invoices"]


def test_plan_json_through_the_cli(
    demo_sqlite_url: str, demo_files: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TENURE_CRM_URL", demo_sqlite_url)
    now = NOW.replace(tzinfo=None).isoformat()
    result = CliRunner().invoke(app, ["plan", str(SHIPPED_POLICY), "--json", "--now", now])
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    rows = {r.rule.dataset.name: r for r in _plan(demo_sqlite_url)}
    assert report["policy"] == "crm_pro" and len(report["policy_sha256"]) == 64
    assert len(report["datasets"]) == len(rows) + 3  # and the mail and web-log bindings
    for entry in (e for e in report["datasets"] if e["dataset"] in rows):
        counts = rows[entry["dataset"]].counts
        assert (entry["rows"], entry["expired"], entry["held"], entry["kept"]) == (
            counts.total, counts.expired, counts.held, counts.kept,
        )  # fmt: skip
    invoices = next(e for e in report["datasets"] if e["dataset"] == "invoices")
    assert invoices["cutoff"] == "2020-11-23T19:00:00-05:00"
    assert {h["name"] for h in invoices["holds"]} == {
        "dispute_500_17_123456",
        "revenu_quebec_audit_2020",
        "referenced by payments.invoice_id",  # invoices whose held payments refer to them
    }


def test_plan_table_is_printed(
    demo_sqlite_url: str, demo_files: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TENURE_CRM_URL", demo_sqlite_url)
    result = CliRunner().invoke(app, ["plan", str(SHIPPED_POLICY)])
    assert result.exit_code == 0, result.stderr
    for name in ("customers", "web_clicks", "privacy_requests", "Dry run: nothing was changed"):
        assert name in result.stdout


# --- the oracle: plain pandas over every row, no SQL predicates -----------------------


def _utc(series: pd.Series) -> pd.Series:
    values = pd.to_datetime(series)
    if values.dt.tz is None:
        return values.dt.tz_localize("UTC")
    return values.dt.tz_convert("UTC")


def _oracle(engine: object, policy: Policy, ds: Dataset, cutoff: datetime) -> tuple[int, int, int]:
    rows = pd.read_sql_table(ds.table, engine)  # type: ignore[arg-type]
    limit = pd.Timestamp(cutoff.astimezone(UTC))
    if ds.clock.event_table is None:
        expired = _utc(rows[ds.clock.column]) < limit
    else:
        assert ds.clock.join is not None
        events = pd.read_sql_table(ds.clock.event_table, engine)  # type: ignore[arg-type]
        clock = _utc(events[ds.clock.column])
        done = clock.notna() & (clock < limit)
        per_key = done.groupby(events[ds.clock.join.event]).all()
        expired = rows[ds.clock.join.local].map(per_key).fillna(False).astype(bool)
    today = cutoff.astimezone(MONTREAL).date()
    held = pd.Series(False, index=rows.index)
    for hold in policy.holds:
        if hold.covers(ds.name) and today <= hold.expires:
            held |= _held(rows, ds, hold)
    return len(rows), int((expired & ~held).sum()), int((expired & held).sum())


def _held(rows: pd.DataFrame, ds: Dataset, hold: Hold) -> pd.Series:
    if hold.subject_keys is not None:
        return rows[ds.subject_key].isin(hold.subject_keys)
    mask = pd.Series(True, index=rows.index)
    for cond in hold.where or []:
        assert isinstance(cond.value, date) and cond.op in ("ge", "lt")
        bound = pd.Timestamp(
            datetime.combine(cond.value, datetime.min.time(), MONTREAL)
        ).tz_convert("UTC")
        values = _utc(rows[cond.column])
        mask &= (values >= bound) if cond.op == "ge" else (values < bound)
    return mask
