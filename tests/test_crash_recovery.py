"""Kill the nightly run with SIGKILL after a random committed chunk, rerun, compare.

After the rerun, the store and its aggregates must equal those of a run that was never
interrupted, exactly, and the audit log must account for the interrupted run's work.
"""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect, text

from connectors.sql.connector import SQLConnector
from flows import audit
from flows.releases import shown, withhold_small_cells
from flows.run.lifecycle import run_policy
from flows.run.types import RunOptions
from flows.state.tables import open_state
from retention_rules.loader import load_policy
from retention_rules.planner import rollup_sinks
from tests.support.crash_runner import kill_after
from tests.support.demo import DEMO_AS_OF, build_demo
from tests.support.paths import FIXTURES

RUN_POLICY = FIXTURES / "run_policy.yaml"
CHUNK = 40
KILL_POINTS = 10
SKIP_TABLES = {"tenure_journal", "tenure_marks"}  # they name run ids, which differ


def _snapshot(url: str) -> dict[str, list[tuple[object, ...]]]:
    """Every row of every table, rollups merged by cell so chunk boundaries do not matter."""
    engine = create_engine(url)
    snapshot: dict[str, list[tuple[object, ...]]] = {}
    with engine.connect() as c:
        for table in sorted(inspect(engine).get_table_names()):
            if table in SKIP_TABLES or table.startswith("tenure_agg_"):
                continue
            snapshot[table] = [
                tuple(r) for r in c.execute(text(f'SELECT * FROM "{table}" ORDER BY 1'))
            ]
        snapshot["marks"] = sorted(
            tuple(r) for r in c.execute(text("SELECT label, row_key FROM tenure_marks"))
        )
    engine.dispose()
    policy = load_policy(RUN_POLICY, environ={"TENURE_CRM_URL": url}).policy
    connector = SQLConnector("crm", url)
    (sink,) = rollup_sinks(policy.dataset("web_clicks"))
    snapshot["published"] = [
        (
            c.period_start,
            tuple(sorted(c.dimensions.items())),
            c.count,
            tuple(sorted(c.measures.items())),
        )
        for c in shown(withhold_small_cells(connector.rollup_cells("web_clicks", sink), sink))
    ]
    connector.close()
    return snapshot


@pytest.fixture(scope="module")
def reference(
    tmp_path_factory: pytest.TempPathFactory, pseudonym_keys: dict[str, str]
) -> tuple[Path, dict[str, list[tuple[object, ...]]], int]:
    """A pristine demo store, and the snapshot an uninterrupted run leaves."""
    root = tmp_path_factory.mktemp("crash")
    pristine = root / "pristine.sqlite"
    build_demo(f"sqlite:///{pristine}", customers=120)
    clean = root / "clean.sqlite"
    shutil.copy(pristine, clean)
    report = run_policy(
        RUN_POLICY,
        RunOptions(
            chunk_size=CHUNK,
            now=DEMO_AS_OF,
            state_url=f"sqlite:///{root / 'clean-state.sqlite'}",
            coverage_gate=False,
        ),
        environ={"TENURE_CRM_URL": f"sqlite:///{clean}"},
    )
    assert not report.failed
    total_chunks = sum(o.chunks for o in report.outcomes)
    return pristine, _snapshot(f"sqlite:///{clean}"), total_chunks


@pytest.mark.usefixtures("pseudonym_keys")
def test_kill_at_random_chunks_then_rerun_matches_an_uninterrupted_run(
    reference: tuple[Path, dict[str, list[tuple[object, ...]]], int], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    pristine, expected, total_chunks = reference
    assert total_chunks > 20, "the store must need many chunks for the kill points to spread"
    points = sorted(random.Random(2025).sample(range(1, total_chunks), KILL_POINTS))
    killed = 0
    for point in points:
        store, state = tmp_path / f"store-{point}.sqlite", tmp_path / f"state-{point}.sqlite"
        shutil.copy(pristine, store)
        url = f"sqlite:///{store}"
        killed += kill_after(RUN_POLICY, url, state, CHUNK, DEMO_AS_OF, point)
        rerun = run_policy(
            RUN_POLICY,
            RunOptions(
                chunk_size=CHUNK,
                now=DEMO_AS_OF,
                state_url=f"sqlite:///{state}",
                coverage_gate=False,
            ),
            environ={"TENURE_CRM_URL": url},
        )
        assert not rerun.failed, point
        assert _snapshot(url) == expected, f"store differs after a kill at chunk {point}"
        engine = open_state(f"sqlite:///{state}")
        assert audit.verify(engine).ok
        done = audit.entries(engine)
        engine.dispose()
        assert len(rerun.reconciled_runs) == 1
        interrupted = [e for e in done if e.get("status") == "interrupted"]
        # What the killed run did plus what the rerun did is everything, counted once.
        deleted = sum(e.get("deleted", 0) + e.get("aggregated", 0) for e in done)
        assert interrupted and deleted == _expected_deletions(expected, pristine)
    assert killed >= KILL_POINTS - 1, "the runs must really be killed mid-way"


def _expected_deletions(expected: dict[str, list[tuple[object, ...]]], pristine: Path) -> int:
    engine = create_engine(f"sqlite:///{pristine}")
    with engine.connect() as c:
        before = sum(
            int(c.scalar(text(f'SELECT COUNT(*) FROM "{t}"')) or 0)
            for t in ("invoices", "payments", "login_events", "web_clicks")
        )
    engine.dispose()
    after = sum(len(expected[t]) for t in ("invoices", "payments", "login_events", "web_clicks"))
    return before - after
