"""Rollup rows written before sketches were keyed still count, and their sketches go.

A store that aggregated with an earlier Tenure holds, per chunk and cell, DataSketches
HLL sketches of the raw values: anyone with a list of identifiers could test them. The
first compaction after the upgrade turns each cell's such rows into one sealed row
(people and distinct counts estimated by DataSketches' union, the median from the KLL
sketches), so what the cell publishes stays, and the sketches leave the store.
"""

from __future__ import annotations

from datetime import date

import datasketches as ds
import pandas as pd

from connectors.rollups import (
    PEOPLE,
    SEALED,
    SUBJECTS,
    compacted_rows,
    merge_cells,
    partial_cells,
)
from tests.support.rollups import views_by_feature

SINK = views_by_feature(b"a test key for legacy rollup rows", min_cell_size=1)
JANUARY = date(2024, 1, 1)


def _hll(values: list[str]) -> bytes:
    sketch = ds.hll_sketch(12)
    for value in values:
        sketch.update(value)
    return bytes(sketch.serialize_compact())


def _kll(values: list[float]) -> bytes:
    sketch = ds.kll_floats_sketch(200)
    for value in values:
        sketch.update(value)
    return bytes(sketch.serialize())


def _legacy_row(feature: str, visitors: list[str], ms: list[float]) -> dict[str, object]:
    """One chunk's row of a cell as an earlier Tenure wrote it."""
    return {
        "run_id": "old-run",
        "chunk_no": 1,
        "period_start": JANUARY,
        "dim_feature": feature,
        "n": len(visitors),
        "sum_ms": float(sum(ms)),
        "hll_visitor": _hll(visitors),
        "kll_ms": _kll(ms),
        SUBJECTS: _hll(visitors),
    }


def _legacy_rows() -> pd.DataFrame:
    return pd.DataFrame(
        [
            _legacy_row("a", [f"v{i}" for i in range(30)], [10.0] * 30),
            _legacy_row("a", [f"v{i}" for i in range(20, 50)], [30.0] * 30),  # v20-v29 again
            _legacy_row("b", ["w1", "w2", "w3"], [5.0, 6.0, 7.0]),
        ]
    )


def _new_rows() -> pd.DataFrame:
    frame = pd.DataFrame({"feature": ["a"] * 4, "visitor": ["v1", "x1", "x2", "x3"], "ms": [1] * 4})
    return partial_cells(frame, SINK, pd.Series([JANUARY] * 4))


def test_legacy_rows_publish_their_counts() -> None:
    cells = {c.dimensions["feature"]: c for c in merge_cells(_legacy_rows(), SINK)}
    assert cells["a"].count == 60 and cells["a"].subjects == 50
    assert cells["a"].measures["count_distinct_visitor"] == 50
    assert cells["a"].measures["sum_ms"] == 1200.0
    assert cells["a"].measures["median_ms"] in (10.0, 30.0)
    assert cells["b"].count == 3 and cells["b"].subjects == 3


def test_new_rows_of_a_legacy_cell_count_people_as_a_lower_bound() -> None:
    rows = pd.concat([_legacy_rows(), _new_rows()], ignore_index=True)
    cells = {c.dimensions["feature"]: c for c in merge_cells(rows, SINK)}
    assert cells["a"].count == 64
    assert cells["a"].subjects == 50  # max(50 before, 4 after): nobody counted twice


def test_compaction_leaves_no_legacy_sketch() -> None:
    rows = pd.concat([_legacy_rows(), _new_rows()], ignore_index=True)
    before = merge_cells(rows, SINK)
    compacted = pd.DataFrame(compacted_rows(rows, SINK, [], "new-run"))
    for column in ("hll_visitor", SUBJECTS):
        for blob in compacted[column].dropna():
            assert bytes(blob)[0] in (1, 2), "a DataSketches sketch is still stored"
    legacy_part = compacted[compacted[SEALED].fillna(False).astype(bool)]
    assert sorted(legacy_part["dim_feature"]) == ["a", "b"]
    assert legacy_part[PEOPLE].tolist() != [] and legacy_part["kll_ms"].isna().all()
    assert merge_cells(compacted, SINK) == before
