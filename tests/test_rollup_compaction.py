"""Compaction: a rollup's rows merged into one per cell, released periods sealed.

Sealing replaces a cell's sketches by its final figures; what the cell publishes must
not change, whatever the chunks were. Rows that arrive for a sealed cell (a lifted hold)
count their people as a lower bound, never more than the cell's rows.
"""

from __future__ import annotations

from datetime import date

import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.rollups import SEALED, compacted_rows, merge_cells, partial_cells
from tests.support.rollups import views_by_feature

SINK = views_by_feature(b"a test key for rollup compaction", min_cell_size=2)
JANUARY, FEBRUARY = date(2024, 1, 1), date(2024, 2, 1)

rows = st.lists(
    st.tuples(
        st.sampled_from([JANUARY, FEBRUARY]),
        st.sampled_from(["a", "b"]),
        st.integers(1, 40).map(lambda i: f"v{i}"),
        st.integers(0, 500),
    ),
    min_size=1,
    max_size=120,
)


def _partials(data: list[tuple[date, str, str, int]], chunks: int) -> pd.DataFrame:
    frame = pd.DataFrame(data, columns=["period", "feature", "visitor", "ms"])
    parts = []
    for i in range(chunks):
        part = frame.iloc[i::chunks]
        if len(part):
            parts.append(partial_cells(part, SINK, part["period"]))
    return pd.concat(parts, ignore_index=True)


@settings(max_examples=40, deadline=None)
@given(rows, st.integers(1, 4))
def test_sealing_a_period_keeps_what_its_cells_publish(
    data: list[tuple[date, str, str, int]], chunks: int
) -> None:
    stored = _partials(data, chunks)
    before = merge_cells(stored, SINK)
    compacted = pd.DataFrame(compacted_rows(stored, SINK, [JANUARY], "run-1"))
    after = merge_cells(compacted, SINK)
    assert after == before
    sealed = compacted[compacted["period_start"] == JANUARY]
    assert sealed[SEALED].all() and sealed["subjects_hll"].isna().all()
    assert sealed["hll_visitor"].isna().all() and sealed["kll_ms"].isna().all()
    still_open = compacted[compacted["period_start"] == FEBRUARY]
    assert not still_open[SEALED].any()
    # one row per cell
    assert not compacted.duplicated(["period_start", "dim_feature"]).any()


def test_rows_arriving_after_sealing_count_people_as_a_lower_bound() -> None:
    first = [(JANUARY, "a", f"v{i}", 10) for i in range(12)]
    sealed = pd.DataFrame(compacted_rows(_partials(first, 1), SINK, [JANUARY], "run-1"))
    late = [(JANUARY, "a", f"v{i}", 20) for i in range(8, 16)]  # 4 of them already counted
    stored = pd.concat([sealed, _partials(late, 1)], ignore_index=True)
    (cell,) = merge_cells(stored, SINK)
    assert cell.count == 20 and cell.measures["sum_ms"] == 12 * 10 + 8 * 20
    # The truth is 16 people; once sealed, the overlap cannot be seen: at least 12.
    assert cell.subjects == 12
    resealed = pd.DataFrame(compacted_rows(stored, SINK, [JANUARY], "run-2"))
    assert len(resealed) == 1 and merge_cells(resealed, SINK) == [cell]
