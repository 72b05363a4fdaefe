"""Rollups released under differential privacy: every cell of the domain with noise, the
privacy loss recorded in the state database and the audit log, the yearly budget kept.

Driven as a nightly run is: the run policy with its click rollup switched to
differential privacy, on a demo store, and what the state database then holds.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import date
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import create_engine, select, text

from anonymizers.differential_privacy import laplace_scale, margin, noisy_counts
from flows import audit
from flows.demo.vocabulary import FEATURES
from flows.releases import budget_spent, release_tables, released_cells
from flows.run.lifecycle import run_policy
from flows.run.types import RunOptions
from flows.state.tables import audit as audit_table
from flows.state.tables import open_state, privacy_loss
from retention_rules.loader import load_policy
from tests.support.demo import DEMO_AS_OF, build_demo
from tests.support.paths import FIXTURES

pytestmark = pytest.mark.usefixtures("pseudonym_keys")

COUNTRIES = ["CA", "US", "FR"]
SINCE = date(2018, 1, 1)  # the demo's clicks begin in November 2018
CELLS = len(FEATURES) * len(COUNTRIES)
ROLLUP = """        - name: views
          period: year
          dimensions: [country]
          measures: [count, {count_distinct: visitor_id}, {sum: response_ms}]"""


def _private_policy(tmp_path: Path, budget: float = 12, countries: list[str] = COUNTRIES) -> Path:
    private = f"""        - name: views
          period: month
          dimensions: [feature, country]
          measures: [{{count_distinct: customer_id}}]
          disclosure:
            method: differential_privacy
            epsilon: 1.0
            per: month
            budget: {{epsilon: {budget:g}, per: year}}
            since: {SINCE.isoformat()}
          domain:
            feature: [{", ".join(FEATURES)}]
            country: [{", ".join(countries)}]"""
    source = (FIXTURES / "run_policy.yaml").read_text()
    assert ROLLUP in source
    path = tmp_path / "private.yaml"
    path.write_text(source.replace(ROLLUP, private))
    return path


@pytest.fixture
def store(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'crm.sqlite'}"
    build_demo(url)
    return url


def _run(policy: Path, store: str, tmp_path: Path):  # type: ignore[no-untyped-def]
    options = RunOptions(
        now=DEMO_AS_OF, state_url=f"sqlite:///{tmp_path / 'state.sqlite'}", coverage_gate=False
    )
    return run_policy(policy, options, environ={"TENURE_CRM_URL": store})


def _true_people(store: str) -> dict[tuple[str, str, str], int]:
    """Distinct customers per month, feature and country among the store's clicks."""
    engine = create_engine(store)
    with engine.connect() as c:
        rows = c.execute(
            text(
                "SELECT strftime('%Y-%m-01', occurred_at), feature, country, "
                "COUNT(DISTINCT customer_id) FROM web_clicks GROUP BY 1, 2, 3"
            )
        ).all()
    engine.dispose()
    return {(m, f, c): n for m, f, c, n in rows}


def test_every_cell_of_the_domain_is_released_with_noise_and_the_loss_is_audited(
    store: str, tmp_path: Path
) -> None:
    truth = _true_people(store)
    report = _run(_private_policy(tmp_path), store, tmp_path)
    clicks = next(o for o in report.outcomes if o.dataset == "web_clicks")
    assert clicks.error is None and clicks.processed > 0
    state = open_state(f"sqlite:///{tmp_path / 'state.sqlite'}")
    periods = released_cells(state, "web_clicks", "views")
    # every month from since to the last closed one (13 months before the run), with
    # rows or without: which months appear says nothing about the data
    months = pd.period_range(SINCE, "2025-09", freq="M").start_time.date.tolist()
    assert sorted(periods) == months
    assert min(m for m, *_ in truth) > "2018-10-01"  # the first ten months had no rows
    bound = margin(laplace_scale(CELLS, 1.0))
    errors = []
    for start, cells in periods.items():
        # every cell of the domain, in the domain's order, whatever the data holds
        assert [(c.dimensions["feature"], c.dimensions["country"]) for c in cells] == [
            (f, c) for f in FEATURES for c in COUNTRIES
        ]
        for cell in cells:
            assert isinstance(cell.count, int) and cell.count >= 0
            assert cell.margin == bound and not cell.withheld and cell.measures == {}
            true = truth.get((start.isoformat(), *cell.dimensions.values()), 0)
            errors.append(abs(cell.count - true))
    # the noise is there (not the true counts) and mostly within its 95% bound
    assert any(errors)
    assert sum(e <= bound for e in errors) / len(errors) >= 0.9
    # the loss: one epsilon per period released, per calendar year of the periods
    years = Counter(start.year for start in periods)
    assert budget_spent(state, "web_clicks", "views") == {y: float(n) for y, n in years.items()}
    with state.connect() as c:
        logged = [json.loads(e) for e in c.scalars(select(audit_table.c.entry))]
        exact = c.execute(select(privacy_loss.c.exact)).scalars().first()
    private = [e for e in logged if e.get("event") == "privacy_loss"]
    assert sorted(date.fromisoformat(e["period_start"]) for e in private) == sorted(periods)
    assert {e["epsilon"] for e in private} == {1.0} and {e["budget"] for e in private} == {12.0}
    assert exact is not None
    assert audit.verify(state).ok
    risk = next(r for r in clicks.risk if r["rollup"] == "views")  # type: ignore[union-attr]
    assert risk["differential_privacy"]["spent"] == {str(y): float(n) for y, n in years.items()}
    # as analysts read it: typed columns, integer counts, the bound beside each
    policy = load_policy(tmp_path / "private.yaml", environ={"TENURE_CRM_URL": store}).policy
    (table,) = [t for t in release_tables(state, policy) if t.rollup == "views"]
    assert list(table.frame.columns) == [
        "period",
        "feature",
        "country",
        "people",
        "people_margin95",
    ]
    assert str(table.frame["people"].dtype) == "Int64" and len(table.frame) == CELLS * len(periods)
    assert (table.frame["people_margin95"] == bound).all()
    assert table.disclosure["left"] == {str(y): 12.0 - n for y, n in years.items()}
    assert set(table.columns) == set(table.frame.columns)
    state.dispose()


def test_a_second_run_with_no_new_closed_period_spends_nothing(store: str, tmp_path: Path) -> None:
    policy = _private_policy(tmp_path)
    _run(policy, store, tmp_path)
    state = open_state(f"sqlite:///{tmp_path / 'state.sqlite'}")
    first = released_cells(state, "web_clicks", "views")
    spent = budget_spent(state, "web_clicks", "views")
    report = _run(policy, store, tmp_path)
    assert not report.failed
    assert released_cells(state, "web_clicks", "views") == first
    assert budget_spent(state, "web_clicks", "views") == spent
    state.dispose()


def test_each_year_releases_what_its_budget_pays_for_and_says_what_it_does_not(
    store: str, tmp_path: Path
) -> None:
    report = _run(_private_policy(tmp_path, budget=3), store, tmp_path)
    clicks = next(o for o in report.outcomes if o.dataset == "web_clicks")
    assert clicks.error is not None and report.failed
    assert "rollup views: the privacy budget of 2018, 2019" in clicks.error
    assert "(epsilon 3 a year, 1 a month) is spent" in clicks.error
    state = open_state(f"sqlite:///{tmp_path / 'state.sqlite'}")
    periods = released_cells(state, "web_clicks", "views")
    # January to March of every year: a spent year blocks no other
    assert sorted(periods) == [
        m for m in pd.period_range(SINCE, "2025-09", freq="M").start_time.date if m.month <= 3
    ]
    assert set(budget_spent(state, "web_clicks", "views").values()) == {3.0}
    # the next night, nothing more is paid for and nothing more is spent
    again = _run(_private_policy(tmp_path, budget=3), store, tmp_path)
    assert next(o for o in again.outcomes if o.dataset == "web_clicks").error is not None
    assert set(budget_spent(state, "web_clicks", "views").values()) == {3.0}
    state.dispose()


def test_a_value_outside_the_declared_domain_refuses_the_release(
    store: str, tmp_path: Path
) -> None:
    report = _run(_private_policy(tmp_path, countries=["CA", "US"]), store, tmp_path)
    clicks = next(o for o in report.outcomes if o.dataset == "web_clicks")
    assert clicks.error is not None
    assert "rollup views: column country holds values outside its declared domain" in (clicks.error)
    assert "FR" not in clicks.error  # a rare value may be a person's: never in the audit
    state = open_state(f"sqlite:///{tmp_path / 'state.sqlite'}")
    assert released_cells(state, "web_clicks", "views") == {}
    state.dispose()


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.integers(0, 10_000), max_size=40),
    st.integers(1, 200),
    st.floats(0.05, 5.0),
)
def test_noisy_counts_are_non_negative_integers_within_the_loss_asked(
    true: list[int], sensitivity: int, epsilon: float
) -> None:
    drawn = noisy_counts(true, sensitivity=sensitivity, epsilon=epsilon)
    assert len(drawn.counts) == len(true)
    assert all(int(c) == c and c >= 0 for c in drawn.counts)
    assert drawn.epsilon <= epsilon * (1 + 1e-9)
    assert drawn.margin >= drawn.scale  # the 95% bound of a discrete Laplace: about 3 scales


def test_the_margin_holds_about_95_percent_of_the_noise() -> None:
    true = [1_000] * 4_000  # far from zero: the clipping does not help
    drawn = noisy_counts(true, sensitivity=30, epsilon=1.0)
    within = sum(abs(int(c) - 1_000) <= drawn.margin for c in drawn.counts) / len(true)
    assert 0.94 <= within <= 0.97


def test_removing_a_release_s_privacy_loss_is_caught_by_the_audit_check(
    store: str, tmp_path: Path
) -> None:
    _run(_private_policy(tmp_path), store, tmp_path)
    state = open_state(f"sqlite:///{tmp_path / 'state.sqlite'}")
    assert audit.verify(state).ok
    with state.begin() as c:  # someone gives the budget of one month back
        first = c.execute(select(privacy_loss.c.period_start).limit(1)).scalar_one()
        c.execute(privacy_loss.delete().where(privacy_loss.c.period_start == first))
    problems = audit.verify(state).problems
    assert any("privacy loss" in p and first in p and "removed" in p for p in problems), problems
    with state.begin() as c:  # or moves a year's spending to a year nobody reads
        c.execute(privacy_loss.update().where(privacy_loss.c.year == 2024).values(year=1999))
    problems = audit.verify(state).problems
    assert any("budget year 1999" in p and "edited outside" in p for p in problems), problems
    state.dispose()


def test_a_released_period_is_never_released_again_and_its_late_rows_are_shown(
    store: str, tmp_path: Path
) -> None:
    policy = _private_policy(tmp_path)
    _run(policy, store, tmp_path)
    state = open_state(f"sqlite:///{tmp_path / 'state.sqlite'}")
    before = budget_spent(state, "web_clicks", "views")
    first = released_cells(state, "web_clicks", "views")
    late = max(first)  # as if late rows (a lifted hold) had joined its newest period:
    with state.begin() as c:  # what the release knew of it differs from the rollup now
        c.execute(
            privacy_loss.update()
            .where(privacy_loss.c.period_start == late.isoformat())
            .values(exact="[]")
        )
    report = _run(policy, store, tmp_path)
    clicks = next(o for o in report.outcomes if o.dataset == "web_clicks")
    (views,) = [r for r in clicks.risk if r["rollup"] == "views"]  # type: ignore[union-attr]
    assert views["differential_privacy"]["late_periods"] == [late.isoformat()]
    assert views["released_periods"] == []
    # a second release would tell that rows arrived: the first stands, nothing is spent
    assert budget_spent(state, "web_clicks", "views") == before
    assert released_cells(state, "web_clicks", "views") == first
    state.dispose()


def test_validate_warns_of_a_budget_that_cannot_pay_for_a_year(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from flows.cli import app

    monkeypatch.setenv("TENURE_CRM_URL", "sqlite:///unused.sqlite")
    result = CliRunner().invoke(
        app, ["validate", "--offline", str(_private_policy(tmp_path, budget=6))]
    )
    assert result.exit_code == 0, result.output
    (line,) = [w for w in result.stderr.splitlines() if "pays for" in w]
    assert line.startswith(f"warning: {tmp_path / 'private.yaml'}:")
    assert "disclosure.budget: epsilon 6 a year pays for 6 of the 12 months" in line
    fine = CliRunner().invoke(app, ["validate", "--offline", str(_private_policy(tmp_path))])
    assert "pays for" not in fine.stderr


def test_a_domain_may_hold_null_and_nothing_else_is_let_in() -> None:
    from connectors.protocol import PublishedCell
    from flows.releases import outside_domain
    from retention_rules.model import Rollup

    rollup = Rollup.model_validate(
        {
            "name": "views",
            "period": "month",
            "dimensions": ["country"],
            "measures": [{"count_distinct": "customer_id"}],
            "domain": {"country": ["CA", None]},
        }
    )

    def cell(country: str | None) -> PublishedCell:
        return PublishedCell(date(2024, 1, 1), {"country": country}, 3, {}, subjects=3)

    assert outside_domain([cell("CA"), cell(None)], rollup) is None
    refused = outside_domain([cell("CA"), cell("US")], rollup)
    assert refused is not None and "1 cell(s)" in refused and "US" not in refused
