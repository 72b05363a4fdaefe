"""Verdicts that follow the measures: an output is *anonymized* only when the regulation's
three criteria (individualization, correlation, inference) meet their thresholds and no
direct identifier survives; `tenure risk` names what failed, and the register lists the
measures of each criterion for every output."""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import (
    Column,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    create_engine,
    insert,
    text,
)
from typer.testing import CliRunner

from anonymizers.risk_criteria import METRICS, assess
from anonymizers.risk_measures import expected_inverse, grouped_counts, measure
from connectors.protocol import PublishedCell, RollupSink
from flows.cli import app
from flows.releases import rollup_risk
from flows.run.lifecycle import run_policy
from flows.run.types import RunOptions
from retention_rules.loader import load_policy
from retention_rules.model import RiskRequirement
from tests.support.paths import SHIPPED_POLICY

runner = CliRunner()
NOW = datetime(2026, 1, 15, 2, 0, tzinfo=UTC)

# --- the trial: state and a three-digit ZIP code left in place -----------------------

#: 50 shoppers: 48 alone in their (state, zip3), two sharing one: k = 1, 96% unique;
#: by state alone, classes of 12 to 14.
STATES = ["CA", "NY", "TX", "FL"]


def _shoppers() -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for i in range(50):
        state, zip3 = STATES[i % 4], f"{100 + i:03d}"
        if i == 49:
            state, zip3 = STATES[44 % 4], f"{100 + 44:03d}"  # the one class of two
        closed = datetime(2020, 1, 1)
        rows.append(
            {"id": i + 1, "email": f"s{i}@example.com", "state": state, "zip3": zip3,
             "plan": ["basic", "pro", "team"][i % 3], "closed_at": closed}
        )  # fmt: skip
    return rows


TRIAL_POLICY = """\
version: 1
name: trial
categories:
  contact.email: {description: "E-mail", identifier: direct}
  contact.location: {description: "State and ZIP", identifier: quasi}
  account.profile: {description: "Plan", identifier: none}
purposes:
  service:
    description: The service.
    legal_basis: contract
    min_retention: 30 days
    max_retention: 2 years
stores:
  shop:
    url: sqlite:///STORE
datasets:
  - name: shoppers
    store: shop
    table: shoppers
    purpose: service
    primary_key: id
    subject_key: id
    columns:
      email: contact.email
      state: contact.location
      zip3: contact.location
      plan: account.profile
    clock: {column: closed_at}
    retention: 1 year
    action:
      type: anonymize
      columns:
        email: "null"
RISK"""


def _trial(tmp_path: Path, risk: str = "") -> tuple[Path, str]:
    store = tmp_path / "shop.sqlite"
    engine = create_engine(f"sqlite:///{store}")
    table = Table(
        "shoppers",
        MetaData(),
        Column("id", Integer, primary_key=True),
        Column("email", String(60)),
        Column("state", String(2)),
        Column("zip3", String(3)),
        Column("plan", String(10)),
        Column("closed_at", DateTime),
    )
    table.metadata.create_all(engine)
    with engine.begin() as connection:
        connection.execute(insert(table), _shoppers())
    engine.dispose()
    path = tmp_path / "trial.yaml"
    path.write_text(
        TRIAL_POLICY.replace("STORE", str(store)).replace("RISK", risk), encoding="utf-8"
    )
    return path, f"sqlite:///{tmp_path / 'state.sqlite'}"


def _run(path: Path, state: str) -> int:
    report = run_policy(path, RunOptions(now=NOW, state_url=state, coverage_gate=False))
    (outcome,) = report.outcomes
    assert outcome.error is None, outcome.error
    return outcome.processed


def test_the_trial_table_is_de_identified_and_risk_names_the_failed_criterion(
    tmp_path: Path,
) -> None:
    """k = 1 and 96% unique with no requirement declared: today's code called it
    anonymized. The defaults judge it; they do not stop the run."""
    path, state = _trial(tmp_path)
    assert _run(path, state) == 50  # the defaults never stop a run

    result = runner.invoke(app, ["risk", str(path), "--json", "--state", state])
    assert result.exit_code == 0, result.output  # no explicit requirement was missed
    (line,) = [json.loads(text) for text in result.stdout.splitlines()]
    assert (line["k"], line["unique_share"]) == (1, 0.96)
    assert line["anonymized"] is False and line["verdict"] == "de-identified"
    criteria = line["criteria"]
    assert criteria["individualization"]["status"] == "failed"
    assert "k >= 11 (measured k = 1)" in criteria["individualization"]["failed"]
    assert criteria["correlation"]["status"] == "failed"  # no population: the table is it
    assert "no population stated" in criteria["correlation"]["note"]
    assert criteria["inference"]["status"] == "not assessed"
    assert "no sensitive column declared" in criteria["inference"]["note"]

    table = runner.invoke(app, ["risk", str(path), "--state", state]).stdout
    assert "de-identified:" in table and "individualization: k >=" in table
    assert "failed: k 1, unique" in table and "not assessed (no" in table

    exported = runner.invoke(app, ["register", "export", str(path), "--state", state])
    assert exported.exit_code == 0, exported.output
    (entry,) = json.loads(exported.stdout)
    (record,) = entry["datasets"]
    assert record["risk"]["verdict"] == "de-identified"
    registered = record["risk"]["criteria"]
    assert set(registered) == {"individualization", "correlation", "inference"}
    assert registered["individualization"]["measures"]["k"] == 1
    assert set(registered["correlation"]["measures"]) == {
        "journalist_max", "marketer", "population_unique_share",
    }  # fmt: skip


def test_the_trial_table_generalized_with_a_population_and_its_sensitive_column_is_anonymized(
    tmp_path: Path,
) -> None:
    risk = (
        "    risk:\n      quasi_identifiers: [state]\n      sensitive: [plan]\n"
        "      population: 250000\n"
    )
    path, state = _trial(tmp_path, risk)
    _run(path, state)
    result = runner.invoke(app, ["risk", str(path), "--json", "--state", state])
    (line,) = [json.loads(text) for text in result.stdout.splitlines()]
    assert line["verdict"] == "anonymized", line["criteria"]
    assert line["k"] == 12
    assert {c["status"] for c in line["criteria"].values()} == {"met"}
    assert line["l"] == 3 and line["population"] == 250_000


def test_an_explicit_requirement_still_stops_the_run_before_it_writes(tmp_path: Path) -> None:
    path, state = _trial(tmp_path, '    risk:\n      require: ["k >= 11"]\n')
    report = run_policy(path, RunOptions(now=NOW, state_url=state, coverage_gate=False))
    (outcome,) = report.outcomes
    assert outcome.processed == 0 and outcome.error is not None
    assert "k >= 11 (measured k = 1)" in outcome.error
    engine = create_engine(f"sqlite:///{tmp_path / 'shop.sqlite'}")
    with engine.connect() as connection:
        kept = connection.execute(text("SELECT count(*) FROM shoppers WHERE email IS NOT NULL"))
        assert kept.scalar_one() == 50  # nothing written
    engine.dispose()


# --- the policy's thresholds: bad input is one line with its place --------------------


@pytest.mark.parametrize(
    ("risk", "expected"),
    [
        ("      population: 0\n", "risk.population: Input should be greater than or equal to 1"),
        ('      thresholds: ["k >= 3"]\n', "k >= 3 is looser than k >= 5, the floor"),
        ('      thresholds: ["journalist_max <= 0.5"]\n', "journalist_max <= 0.2, the floor"),
        ('      require: ["t >= 0.2"]\n', "t is bounded with <= or <, not >="),
        ('      thresholds: ["risk <= 0.1"]\n', "'risk <= 0.1' is not a requirement"),
        ('      thresholds: ["marketer <= 1/0"]\n', "divides by zero"),
    ],
)
def test_a_bad_threshold_or_population_is_refused_with_its_place(
    tmp_path: Path, risk: str, expected: str
) -> None:
    path, _ = _trial(tmp_path, "    risk:\n" + risk)
    result = runner.invoke(app, ["validate", str(path), "--offline"])
    assert result.exit_code == 2, result.output
    (problem,) = [line for line in result.stderr.splitlines() if "trial.yaml:" in line]
    assert re.search(r"trial\.yaml:\d+: datasets\[0\]\.risk\.", problem), problem
    assert expected in problem


def test_a_binding_states_its_own_thresholds_measure_by_measure() -> None:
    policy = load_policy(SHIPPED_POLICY).policy
    web = policy.dataset("web_clicks")
    stated = [str(t) for t in web.risk.verdict_thresholds]
    assert stated[0] == "k >= 10"  # the binding's k replaces the default k >= 11
    assert "k >= 11" not in stated and "journalist_max <= 1/11" in stated


# --- verdicts --------------------------------------------------------------------------


def _assessed(direct: dict[str, str], k: int, sensitive_declared: bool = True) -> str:
    counts = grouped_counts(pd.DataFrame({"q": ["a"] * k + ["b"] * k}), ["q"])
    measures = measure(counts, ["q"])
    thresholds = [RiskRequirement.model_validate(text) for text in ("k >= 11",)]
    missing = {} if sensitive_declared else {"inference": "no sensitive column declared"}
    return assess(
        {name: measures.value(name) for name in METRICS},
        thresholds,
        not_assessed=missing,  # type: ignore[arg-type]
        direct=direct,
    ).verdict


def test_the_verdict_follows_direct_identifiers_first_then_every_criterion() -> None:
    assert _assessed({"email": "removed"}, 12) == "anonymized"
    assert _assessed({"email": "removed"}, 3) == "de-identified"
    assert _assessed({"email": "removed"}, 12, sensitive_declared=False) == "de-identified"
    assert _assessed({"email": "pseudonymized", "phone": "removed"}, 12) == "pseudonymized"
    assert _assessed({"email": "kept", "name": "pseudonymized"}, 12) == "identifiable"


def _cells(people: list[int]) -> dict[date, list[PublishedCell]]:
    start = date(2024, 1, 1)
    return {
        start: [
            PublishedCell(start, {"feature": f"f{i}"}, n, {}, subjects=n)
            for i, n in enumerate(people)
        ]
    }


def test_a_release_of_cells_of_ten_needs_a_population_to_be_anonymized() -> None:
    """Cells of ten people meet the binding's k >= 10, but with no population stated the
    cells are taken as the whole population: a journalist's risk is 1/10 > 1/11."""
    policy = load_policy(SHIPPED_POLICY).policy
    web = policy.dataset("web_clicks")
    sink = RollupSink("by_feature", "month", ("feature",), min_cell_size=10)
    loose = [RiskRequirement.model_validate("marketer <= 0.1")]
    declared = {"population": None, "sensitive": [], "thresholds": loose}
    unstated = web.model_copy(update={"risk": web.risk.model_copy(update=declared)})
    measures, missing = rollup_risk(_cells([10, 12, 15]), sink, unstated)
    assert missing == () and measures.assessment is not None
    assert measures.assessment.verdict == "de-identified"
    assert measures.assessment.reasons == (
        "correlation: journalist_max <= 1/11 (measured journalist_max = 0.1)",
    )
    declared = {"population": 250_000, "sensitive": []}  # type: ignore[dict-item]
    stated = web.model_copy(update={"risk": web.risk.model_copy(update=declared)})
    measures, _ = rollup_risk(_cells([10, 12, 15]), sink, stated)
    assert measures.assessment is not None and measures.assessment.verdict == "anonymized"
    assert measures.journalist_max is not None and measures.journalist_max < 0.001


# --- the measures ------------------------------------------------------------------------

classes = st.lists(st.integers(min_value=1, max_value=30), min_size=1, max_size=25)


@settings(max_examples=200, deadline=None)
@given(classes, st.integers(min_value=0, max_value=5_000))
def test_correlation_risk_never_exceeds_prosecutor_risk_and_equals_it_without_population(
    sizes: list[int], extra: int
) -> None:
    frame = pd.DataFrame({"q": [i for i, n in enumerate(sizes) for _ in range(n)]})
    counts = grouped_counts(frame, ["q"])
    alone = measure(counts, ["q"])
    assert alone.journalist_max == pytest.approx(alone.prosecutor_max)
    assert alone.marketer == pytest.approx(alone.prosecutor_avg)
    assert alone.population_unique_share == pytest.approx(alone.unique_share)
    drawn = measure(counts, ["q"], population=len(frame) + extra)
    assert drawn.journalist_max is not None and alone.journalist_max is not None
    assert drawn.journalist_max <= alone.journalist_max + 1e-12
    assert drawn.marketer is not None and alone.marketer is not None
    assert drawn.marketer <= alone.marketer + 1e-12
    assert drawn.population_unique_share is not None
    assert drawn.population_unique_share <= alone.unique_share + 1e-12


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=1, max_value=120), st.floats(min_value=0.01, max_value=1.0))
def test_the_expected_inverse_population_size_is_the_negative_binomial_mean(
    f: int, p: float
) -> None:
    """E[1/F] for F - f negative binomial(f, p), summed term by term."""
    h = np.arange(f, f + 20_000)
    log_pmf = (
        np.array([math.lgamma(x) for x in h])
        - math.lgamma(f)
        - np.array([math.lgamma(x - f + 1) for x in h])
        + f * math.log(p)
        + (h - f) * (math.log1p(-p) if p < 1 else 0.0)
    )
    pmf = np.exp(log_pmf) if p < 1 else (h == f).astype(float)
    assert expected_inverse(f, p) == pytest.approx(float((pmf / h).sum()), rel=1e-6, abs=1e-12)
