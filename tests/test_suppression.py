"""Small-cell suppression: no withheld cell can be recovered from known totals."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from anonymizers.suppression import suppressed_cells

K = 10
Cell = tuple[str, str, str]


def test_a_lone_small_cell_takes_the_smallest_of_its_line_with_it() -> None:
    counts: dict[Cell, int] = {
        ("2025-01", "export", "CA"): 20,
        ("2025-01", "export", "FR"): 4,
        ("2025-01", "export", "US"): 12,
        ("2025-01", "import", "CA"): 30,
        ("2025-01", "import", "FR"): 25,
        ("2025-01", "import", "US"): 40,
    }
    withheld = suppressed_cells(counts, K)
    # FR/export is small; US/export (12) is the smallest of its feature line, and the
    # country lines FR and US then each hide one more cell of import.
    assert ("2025-01", "export", "FR") in withheld
    assert ("2025-01", "export", "US") in withheld
    assert {("2025-01", "import", "FR"), ("2025-01", "import", "US")} <= withheld
    assert ("2025-01", "export", "CA") not in withheld


def test_nothing_small_nothing_withheld() -> None:
    counts = {("2025-01", "a", "x"): 10, ("2025-01", "b", "x"): 11}
    assert suppressed_cells(counts, K) == set()


def _lines(counts: dict[Cell, int]) -> list[list[Cell]]:
    """Independently: per period, each feature's cells, each country's cells, all cells."""
    lines: dict[tuple[str, ...], list[Cell]] = {}
    for key in counts:
        period, feature, country = key
        lines.setdefault(("f", period, feature), []).append(key)
        lines.setdefault(("c", period, country), []).append(key)
        lines.setdefault(("p", period), []).append(key)
    return list(lines.values())


_CELLS = st.dictionaries(
    st.tuples(
        st.sampled_from(["2025-01", "2025-02"]),
        st.sampled_from(["a", "b", "c", "d"]),
        st.sampled_from(["CA", "FR", "US"]),
    ),
    st.integers(min_value=1, max_value=40),
    max_size=24,
)


@settings(max_examples=300, deadline=None)
@given(_CELLS)
def test_no_line_ever_hides_exactly_one_cell(counts: dict[Cell, int]) -> None:
    withheld = suppressed_cells(counts, K)
    assert {key for key, n in counts.items() if n < K} <= withheld, "every small cell"
    for line in _lines(counts):
        hidden = [key for key in line if key in withheld]
        # One hidden cell in a line of several is its total minus the others.
        assert len(hidden) != 1 or len(line) == 1, (line, hidden)
    if not any(n < K for n in counts.values()):
        assert withheld == set()
