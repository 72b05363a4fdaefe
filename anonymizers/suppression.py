"""Small-cell suppression for published aggregates, primary and complementary.

A cell counting fewer than ``k`` rows is withheld (primary suppression). That alone is
not enough: if a row or column total is known (published by a coarser rollup, or simply
the number of rows of a period), a single withheld cell in a line is the total minus the
cells that were published. So whenever a line of cells — all cells of a period that agree
on every dimension but one, or all cells of a period — has exactly one withheld cell,
the smallest published cell of that line is withheld too (complementary suppression),
and so on until no line has exactly one. Every total is assumed known: the safe side.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import TypeVar

Key = TypeVar("Key", bound=tuple[Hashable, ...])


def suppressed_cells(counts: Mapping[Key, int], k: int) -> set[Key]:
    """The cells to withhold. Keys are ``(period, *dimensions)``; values are row counts."""
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    withheld = {key for key, n in counts.items() if n < k}
    lines = _lines(counts)
    changed = bool(withheld)
    while changed:
        changed = False
        for line in lines:
            hidden = [key for key in line if key in withheld]
            if len(hidden) != 1 or len(line) == 1:
                continue
            shown = [key for key in line if key not in withheld]
            withheld.add(min(shown, key=lambda key: (counts[key], repr(key))))
            changed = True
    return withheld


def _lines(counts: Mapping[Key, int]) -> list[list[Key]]:
    """Every group of cells whose sum an observer may know: per period, the cells that
    share all dimensions but one, and all of the period's cells."""
    groups: dict[tuple[object, ...], list[Key]] = {}
    for key in counts:
        period, *dimensions = key
        groups.setdefault(("period", period), []).append(key)
        for free in range(len(dimensions)):
            fixed = tuple(d for i, d in enumerate(dimensions) if i != free)
            groups.setdefault(("line", period, free, fixed), []).append(key)
    return list(groups.values())
