"""k, l and t measured on grouped counts equal what pycanon, a maintained library of
anonymity measures, finds on the same records row by row.

Where the definitions meet: no NULLs (pycanon's classes leave out a NULL quasi
identifier; Tenure's keep it as a value of its own), and a numeric sensitive column with
two values at least (pycanon divides by the number of values less one)."""

from __future__ import annotations

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pycanon import anonymity  # type: ignore[import-untyped]

from anonymizers.risk_measures import combine, grouped_counts, measure

# pycanon groups by a one-item list, which pandas 3 warns about.
pytestmark = pytest.mark.filterwarnings("ignore:In a future version, the keys of `groups`")
COLUMNS = ["q1", "q2", "word", "amount"]

records = st.lists(
    st.tuples(
        st.sampled_from(["a", "b", "c"]),
        st.integers(min_value=0, max_value=3),
        st.sampled_from(["flu", "cold", "rash", "none"]),
        st.integers(min_value=0, max_value=5),
    ),
    min_size=2,
    max_size=60,
)


@settings(max_examples=150, deadline=None)
@given(records, st.integers(min_value=0, max_value=60), st.booleans())
def test_k_l_and_t_equal_pycanon(
    data: list[tuple[str, int, str, int]], cut: int, one_quasi_identifier: bool
) -> None:
    frame = pd.DataFrame(data, columns=COLUMNS)
    quasi = ["q1"] if one_quasi_identifier else ["q1", "q2"]
    # Grouped in two parts, as the store's groups and the rows about to be anonymized are.
    parts = [grouped_counts(frame.iloc[:cut], COLUMNS), grouped_counts(frame.iloc[cut:], COLUMNS)]
    counts = combine(parts, COLUMNS)
    for sensitive in (["word"], ["amount"], ["word", "amount"]):
        if "amount" in sensitive and frame["amount"].nunique() < 2:
            continue
        ours = measure(counts, quasi, sensitive)
        assert ours.k == anonymity.k_anonymity(frame, quasi)
        assert ours.l == anonymity.l_diversity(frame, quasi, sensitive)
        assert ours.t == pytest.approx(anonymity.t_closeness(frame, quasi, sensitive), abs=1e-9)
