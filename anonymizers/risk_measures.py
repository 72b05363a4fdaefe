"""Re-identification risk of anonymized records: k-anonymity, l-diversity, uniqueness.

The measures work on *grouped counts* — one row per distinct combination of quasi
identifiers and sensitive values, with how many records share it — so a store can
group inside the database and only the groups travel; groups from several sources
(rows already anonymized, rows about to be) add up with ``combine``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

COUNT = "_records"


@dataclass(frozen=True)
class RiskMeasures:
    """What the Quebec regulation's individualization criterion asks about a data set.

    ``k``: the fewest records sharing one combination of quasi identifiers (None: no
    records); ``l``: the fewest distinct values of a sensitive column within such a
    class (None: no sensitive column); ``unique_share``: records alone in their class.
    """

    records: int
    classes: int
    k: int | None
    l: int | None  # noqa: E741  (the measure is called l in the literature)
    unique_share: float

    def as_dict(self) -> dict[str, float | int | None]:
        return {
            "records": self.records,
            "classes": self.classes,
            "k": self.k,
            "l": self.l,
            "unique_share": round(self.unique_share, 6),
        }

    def value(self, metric: str) -> float | None:
        """A measure by name (``k``, ``l`` or ``unique_share``), for requirements."""
        measured: float | int | None = getattr(self, metric)
        return measured


def grouped_counts(frame: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """``frame``'s rows grouped by ``columns`` (nulls are a value), counted in ``COUNT``."""
    if not columns:
        return pd.DataFrame({COUNT: [len(frame)]}) if len(frame) else _empty(columns)
    counts = frame.groupby(list(columns), dropna=False, sort=False).size()
    return counts.rename(COUNT).reset_index()


def combine(parts: Sequence[pd.DataFrame], columns: Sequence[str]) -> pd.DataFrame:
    """Grouped counts of several sources as one (same combination: counts add up)."""
    present = [part for part in parts if len(part)]
    if not present:
        return _empty(columns)
    stacked = pd.concat(present, ignore_index=True)
    if not columns:
        return pd.DataFrame({COUNT: [int(stacked[COUNT].sum())]})
    summed = stacked.groupby(list(columns), dropna=False, sort=False)[COUNT].sum()
    return summed.reset_index()


def measure(
    counts: pd.DataFrame, quasi_identifiers: Sequence[str], sensitive: Sequence[str] = ()
) -> RiskMeasures:
    """k, l and the unique share of the records that ``counts`` describes."""
    records = int(counts[COUNT].sum()) if len(counts) else 0
    if records == 0:
        return RiskMeasures(0, 0, None, None, 0.0)
    keys = list(quasi_identifiers)
    if keys:
        sizes = counts.groupby(keys, dropna=False, sort=False)[COUNT].sum()
    else:
        sizes = pd.Series([records])
    diversity: int | None = None
    for column in sensitive:
        if keys:
            distinct = counts.groupby(keys, dropna=False, sort=False)[column].nunique(dropna=False)
            least = int(distinct.min())
        else:
            least = int(counts[column].nunique(dropna=False))
        diversity = least if diversity is None else min(diversity, least)
    unique = int(sizes[sizes == 1].sum())
    return RiskMeasures(
        records=records,
        classes=len(sizes),
        k=int(sizes.min()),
        l=diversity,
        unique_share=unique / records,
    )


def _empty(columns: Sequence[str]) -> pd.DataFrame:
    return pd.DataFrame({**{c: pd.Series(dtype=object) for c in columns}, COUNT: []})
