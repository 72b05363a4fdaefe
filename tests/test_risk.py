"""Risk measures, releases that cannot be subtracted, requirements that stop a binding,
the anonymization register, and ``tenure risk`` on the demo after a nightly run."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from datetime import UTC, date, datetime
from itertools import pairwise
from pathlib import Path
from zoneinfo import ZoneInfo

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import create_engine, select
from typer.testing import CliRunner

from anonymizers.risk_measures import combine, grouped_counts, measure
from connectors.protocol import PublishedCell, RollupSink
from connectors.rollups import merge_cells, partial_cells, period_starts
from connectors.sketches import PeopleKey
from flows import register
from flows.cli import app
from flows.demo.schema import customers
from flows.releases import candidate_release, withhold_small_cells
from flows.run.lifecycle import run_policy
from flows.run.types import RunOptions
from flows.state.tables import open_state
from retention_rules.issues import PolicyError
from retention_rules.loader import load_policy
from tests.support.demo import DEMO_AS_OF, build_demo
from tests.support.paths import SHIPPED_POLICY

runner = CliRunner()
ZONE = ZoneInfo("America/Montreal")

# --- k, l and the unique share against a brute-force oracle -------------------------

rows = st.lists(
    st.tuples(st.sampled_from("abc"), st.sampled_from([1, 2, None]), st.sampled_from("xyz")),
    min_size=1,
    max_size=40,
)


@settings(max_examples=200, deadline=None)
@given(rows, st.integers(min_value=0, max_value=40))
def test_measures_equal_a_brute_force_count(data: list[tuple[object, ...]], cut: int) -> None:
    frame = pd.DataFrame(data, columns=["q1", "q2", "s"], dtype=object)
    classes: dict[tuple[object, ...], list[object]] = {}
    for q1, q2, s in data:
        classes.setdefault((q1, q2), []).append(s)
    # Counted in two parts, as the store's groups and the pending rows are.
    parts = [grouped_counts(frame.iloc[:cut], ["q1", "q2", "s"])]
    parts.append(grouped_counts(frame.iloc[cut:], ["q1", "q2", "s"]))
    result = measure(combine(parts, ["q1", "q2", "s"]), ["q1", "q2"], ["s"])
    assert result.records == len(data)
    assert result.classes == len(classes)
    assert result.k == min(len(members) for members in classes.values())
    assert result.l == min(len(set(members)) for members in classes.values())
    alone = sum(1 for members in classes.values() if len(members) == 1)
    assert result.unique_share == pytest.approx(alone / len(data))


def test_no_quasi_identifier_makes_one_class() -> None:
    result = measure(grouped_counts(pd.DataFrame({"x": [1, 2, 3]}), []), [])
    assert (result.records, result.classes, result.k, result.unique_share) == (3, 1, 3, 0.0)


# --- cells count people, not rows ----------------------------------------------------


def test_a_cell_of_many_rows_from_few_people_is_withheld() -> None:
    key = PeopleKey.from_secret(b"a test key for people sketches")
    sink = RollupSink(
        "views", "month", ("feature",), min_cell_size=10, subject="visitor", people_key=key
    )
    frame = pd.DataFrame(
        {
            "at": pd.to_datetime(["2024-01-05T12:00:00Z"] * 40),
            "feature": ["one"] * 25 + ["two"] * 15,
            "visitor": ["v1"] * 25 + [f"v{i}" for i in range(2, 17)],
        }
    )
    periods = period_starts(frame["at"], "month", ZONE, ZoneInfo("UTC"))
    merged = merge_cells(partial_cells(frame, sink, periods), sink)
    cells = {c.dimensions["feature"]: c for c in withhold_small_cells(merged, sink)}
    assert (cells["one"].count, cells["one"].subjects, cells["one"].withheld) == (25, 1, True)
    # "two" has 15 people but is the only other cell of the month: withheld with it.
    assert (cells["two"].subjects, cells["two"].withheld) == (15, True)
    assert cells["one"].measures == {}


# --- releases: closed periods only, and never a small difference ---------------------


def _cells(period: date, counts: dict[str, tuple[int, int]], k: int) -> list[PublishedCell]:
    return [
        PublishedCell(period, {"feature": f}, rows, {}, subjects=people, withheld=people < k)
        for f, (rows, people) in counts.items()
    ]


growth = st.lists(
    st.dictionaries(
        st.sampled_from(["a", "b", "c"]),
        st.tuples(st.integers(0, 6), st.integers(0, 6)),
    ),
    min_size=1,
    max_size=6,
)


@settings(max_examples=200, deadline=None)
@given(growth, st.integers(min_value=2, max_value=5))
def test_two_releases_of_a_period_differ_by_nothing_or_by_k_people(
    steps: list[dict[str, tuple[int, int]]], k: int
) -> None:
    """Whatever late rows arrive, run after run, consecutive releases of a period differ
    in every cell by no row at all or by at least k people."""
    start = date(2024, 1, 1)
    closed = datetime(2024, 3, 1, tzinfo=ZONE)
    totals: Counter[str] = Counter()
    people: Counter[str] = Counter()
    released: list[dict[str, tuple[int, int]]] = []
    previous: dict[date, list[PublishedCell]] = {}
    for step in steps:
        for feature, (extra_people, extra_rows) in step.items():
            people[feature] += extra_people
            totals[feature] += extra_people + extra_rows  # rows >= people
        current = {f: (totals[f], people[f]) for f in totals}
        due, _ = candidate_release(_cells(start, current, k), previous, closed, "month", ZONE, k)
        if start in due:
            previous = {start: due[start]}
            released.append(
                {c.dimensions["feature"]: (c.count, c.subjects or 0) for c in due[start]}
            )
    for before, after in pairwise(released):
        for feature in before.keys() | after.keys():
            rows_then, people_then = before.get(feature, (0, 0))
            rows_now, people_now = after.get(feature, (0, 0))
            assert (rows_now, people_now) == (rows_then, people_then) or (
                people_now - people_then >= k
            )


def test_an_open_period_is_not_released() -> None:
    cells = _cells(date(2024, 2, 1), {"a": (50, 40)}, 10)
    almost = datetime(2024, 2, 29, 23, 59, tzinfo=ZONE)
    assert candidate_release(cells, {}, almost, "month", ZONE, 10) == ({}, [])
    due, _ = candidate_release(cells, {}, datetime(2024, 3, 1, tzinfo=ZONE), "month", ZONE, 10)
    assert list(due) == [date(2024, 2, 1)]


def test_a_small_late_change_is_deferred_and_the_old_release_stands() -> None:
    start = date(2024, 1, 1)
    closed = datetime(2024, 6, 1, tzinfo=ZONE)
    first = _cells(start, {"a": (30, 20), "b": (30, 20)}, 10)
    later = _cells(start, {"a": (33, 22), "b": (30, 20)}, 10)
    assert candidate_release(later, {start: first}, closed, "month", ZONE, 10) == ({}, [start])
    enough = _cells(start, {"a": (45, 30), "b": (30, 20)}, 10)
    due, deferred = candidate_release(enough, {start: first}, closed, "month", ZONE, 10)
    assert (list(due), deferred) == ([start], [])


# --- policy checks -------------------------------------------------------------------


RESPONSE_TIME_K = '{mean: response_ms}]\n    risk:\n      require: ["k >= 10"]\n'


def _policy_with(tmp_path: Path, old: str, new: str) -> Path:
    text = SHIPPED_POLICY.read_text(encoding="utf-8")
    assert text.count(old) == 1, old
    path = tmp_path / "policy.yaml"
    path.write_text(text.replace(old, new), encoding="utf-8")
    return path


def test_a_requirement_is_parsed_and_checked_with_its_place(tmp_path: Path) -> None:
    path = _policy_with(tmp_path, RESPONSE_TIME_K, RESPONSE_TIME_K.replace(">=", "<="))
    with pytest.raises(PolicyError) as caught:
        load_policy(path)
    message = str(caught.value.issues[0])
    assert "policy.yaml:" in message and "risk.require" in message and "k is bounded" in message


def test_an_aggregate_cannot_promise_k_above_its_threshold(tmp_path: Path) -> None:
    path = _policy_with(tmp_path, RESPONSE_TIME_K, RESPONSE_TIME_K.replace("10", "20"))
    with pytest.raises(PolicyError, match="raise min_cell_size to 20"):
        load_policy(path)


# --- the nightly run, the register, and `tenure risk` ---------------------------------


@pytest.fixture
def demo(
    pseudonym_keys: dict[str, str],
    tmp_path: Path,
    demo_files: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> tuple[str, str]:
    url = f"sqlite:///{tmp_path / 'crm.sqlite'}"
    build_demo(url, customers=150)
    monkeypatch.setenv("TENURE_CRM_URL", url)
    return url, f"sqlite:///{tmp_path / 'state.sqlite'}"


def _customers_digest(url: str) -> str:
    engine = create_engine(url)
    with engine.connect() as connection:
        rows = connection.execute(select(customers).order_by(customers.c.id)).all()
    engine.dispose()
    return hashlib.sha256(repr(rows).encode()).hexdigest()


def _options(state: str) -> RunOptions:
    return RunOptions(now=DEMO_AS_OF, state_url=state, coverage_gate=False)


def test_a_binding_whose_output_would_miss_k_is_stopped_untouched(
    demo: tuple[str, str], tmp_path: Path
) -> None:
    url, state = demo
    path = _policy_with(
        tmp_path,
        "        birth_date: {operator: generalize, to: year}",
        "        birth_date: {operator: generalize, to: year}\n"
        '    risk:\n      require: ["k >= 5"]',
    )
    before = _customers_digest(url)
    report = run_policy(path, _options(state))
    outcome = next(o for o in report.outcomes if o.dataset == "customers")
    assert outcome.error is not None and "k >= 5 (measured k = 1)" in outcome.error
    assert outcome.processed == 0 and _customers_digest(url) == before
    others = [o for o in report.outcomes if o.dataset != "customers"]
    assert all(o.error is None for o in others) and sum(o.processed for o in others) > 0
    assert report.failed


def test_every_run_adds_a_register_entry_and_risk_reports_k_of_the_aggregates(
    demo: tuple[str, str],
) -> None:
    _, state = demo
    first = run_policy(SHIPPED_POLICY, _options(state))
    second = run_policy(SHIPPED_POLICY, _options(state))
    assert not first.failed and not second.failed
    entries = register.entries(open_state(state))
    assert [e["run_id"] for e in entries] == [first.run_id, second.run_id]
    first_entry = {d["dataset"]: d for d in entries[0]["datasets"]}
    assert set(first_entry) == {
        "customers", "accounts", "usage_events", "web_clicks", "support_tickets",
        "billing_email", "marketing_contacts",
    }  # fmt: skip
    customers_risk = first_entry["customers"]["risk"]
    assert customers_risk["direct_identifiers"]["email"] == "pseudonymized"
    assert customers_risk["direct_identifiers"]["phone"] == "removed"
    assert not customers_risk["anonymized"]
    assert (
        entries[0]["redo_by"]
        == date(DEMO_AS_OF.year + 1, DEMO_AS_OF.month, DEMO_AS_OF.day).isoformat()
    )

    exported = runner.invoke(app, ["register", "export", str(SHIPPED_POLICY), "--state", state])
    assert exported.exit_code == 0, exported.output
    assert [e["run_id"] for e in json.loads(exported.stdout)] == [first.run_id, second.run_id]

    result = runner.invoke(app, ["risk", str(SHIPPED_POLICY), "--json", "--state", state])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    aggregates = [line for line in lines if line["output"] != "table"]
    private = "monthly_active_customers_by_feature"  # under differential privacy
    assert {line["output"] for line in aggregates} == {
        private, "feature_usage_time", "page_views_by_feature", "response_time_by_feature",
    }  # fmt: skip
    suppressed = [line for line in aggregates if line["output"] != private]
    assert all(line["records"] > 0 and line["k"] >= 10 for line in suppressed)
    (noisy,) = [line for line in aggregates if line["output"] == private]
    assert noisy["records"] > 0 and noisy["k"] is None and noisy["verdict"] == "anonymized"
    assert sum(noisy["differential_privacy"]["spent"].values()) > 0
    assert all(v <= 12 for v in noisy["differential_privacy"]["spent"].values())
    shown_cells = runner.invoke(
        app, ["aggregates", str(SHIPPED_POLICY), "--json", "--state", state]
    )
    cells = [json.loads(line) for line in shown_cells.stdout.splitlines()]
    assert cells and not any(c["withheld"] for c in cells)
    assert all(c["subjects"] >= 10 for c in cells if c["rollup"] != private)
    assert all(
        c["count"] >= 0 and c["margin"] > 0 and c["subjects"] is None
        for c in cells
        if c["rollup"] == private
    )


def test_a_register_entry_missing_a_field_is_refused_with_its_place() -> None:
    entry = {
        "run_id": "r",
        "policy": "p",
        "policy_sha256": "0" * 64,
        "recorded_at": datetime.now(UTC).isoformat(),
        "analysis_date": "2026-01-01",
        "redo_by": "2027-01-01",
        "datasets": [{"dataset": "d"}],
    }
    with pytest.raises(register.RegisterError, match=r"datasets/0: 'store' is a required"):
        register.check(entry)
    register.check({**entry, "datasets": [_complete_dataset()]})


def _complete_dataset() -> dict[str, object]:
    return {
        "dataset": "d",
        "store": "s",
        "table": "t",
        "action": "anonymize",
        "information": [{"column": "c", "categories": ["contact.email"]}],
        "collected_for": {"purpose": "p", "description": "why"},
        "kept_for": "statistics",
        "techniques": [{"column": "c", "operator": "null", "params": {}}],
        "records_this_run": 3,
        "risk": {
            "records": 3,
            "classes": 1,
            "k": 3,
            "l": None,
            "unique_share": 0.0,
            "quasi_identifiers": [],
            "sensitive": [],
            "direct_identifiers": {"c": "removed"},
            "unmet": [],
            "anonymized": True,
        },
        "status": "ok",
        "error": None,
    }
