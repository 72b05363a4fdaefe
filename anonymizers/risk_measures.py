"""Re-identification risk of anonymized records, by the regulation's three criteria.

The measures work on *grouped counts* — one row per distinct combination of quasi
identifiers and sensitive values, with how many records share it — so a store can
group inside the database and only the groups travel; groups from several sources
(rows already anonymized, rows about to be) add up with ``combine``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from anonymizers.risk_criteria import Assessment

COUNT = "_records"


@dataclass(frozen=True)
class RiskMeasures:
    """The measures of the regulation's three criteria (``anonymizers.risk_criteria``).

    Individualization: ``k``, the fewest records sharing one combination of quasi
    identifiers (None: no records); ``unique_share``, records alone in their class;
    ``prosecutor_max`` and ``prosecutor_avg``, the chance of re-identifying a record known
    to be in the table (1/k, and classes/records on average).

    Correlation, against ``population`` people (None: the table is the population):
    ``journalist_max``, the highest chance that a person of the population matched on the
    quasi identifiers is the record, and ``marketer``, the expected share of records a
    linkage of the whole table re-identifies, both from the Benedetti-Franconi estimate of
    E[1/F] (F: a class's size in the population); ``population_unique_share``, records
    estimated unique in the population (Zayatz, 1991).

    Inference: ``l``, the fewest distinct values of a sensitive column within a class, and
    ``t``, the largest earth mover's distance between a class's distribution of a
    sensitive column and the whole table's (None: no sensitive column).
    """

    records: int
    classes: int
    k: int | None
    l: int | None  # noqa: E741  (the measure is called l in the literature)
    unique_share: float
    prosecutor_max: float | None = None
    prosecutor_avg: float | None = None
    journalist_max: float | None = None
    marketer: float | None = None
    population_unique_share: float | None = None
    t: float | None = None
    population: int | None = None
    assessment: Assessment | None = None
    """The criteria held to their thresholds, once judged (``flows.table_risk``)."""

    def as_dict(self) -> dict[str, Any]:
        rounded = {
            name: None if value is None else round(value, 6)
            for name, value in (
                ("unique_share", self.unique_share),
                ("prosecutor_max", self.prosecutor_max),
                ("prosecutor_avg", self.prosecutor_avg),
                ("journalist_max", self.journalist_max),
                ("marketer", self.marketer),
                ("population_unique_share", self.population_unique_share),
                ("t", self.t),
            )
        }
        judged = self.assessment.as_dict() if self.assessment is not None else {}
        return {
            "records": self.records,
            "classes": self.classes,
            "k": self.k,
            "l": self.l,
            **rounded,
            "population": self.population,
            **judged,
        }

    def value(self, metric: str) -> float | None:
        """A measure by name (``k``, ``journalist_max``, ...), for thresholds."""
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
    counts: pd.DataFrame,
    quasi_identifiers: Sequence[str],
    sensitive: Sequence[str] = (),
    population: int | None = None,
    drawn_by: Sequence[str] = (),
) -> RiskMeasures:
    """The measures of the records that ``counts`` describes.

    ``population``: how many people the records are drawn from (None: the records are the
    population). ``drawn_by``: quasi identifiers that split the records into separate
    draws from that population (a rollup's period: each period's cells count people of
    the same population again), so the sampling fraction is taken per draw.
    """
    records = int(counts[COUNT].sum()) if len(counts) else 0
    if records == 0:
        return RiskMeasures(0, 0, None, None, 0.0, population=population)
    keys = list(quasi_identifiers)
    if keys:
        grouped = counts.groupby(keys, dropna=False, sort=False)[COUNT].sum()
        sizes = grouped.to_numpy(dtype=np.int64)
    else:
        grouped, sizes = None, np.array([records], dtype=np.int64)
    diversity: int | None = None
    closeness: float | None = None
    for column in sensitive:
        if keys:
            distinct = counts.groupby(keys, dropna=False, sort=False)[column].nunique(dropna=False)
            least = int(distinct.min())
        else:
            least = int(counts[column].nunique(dropna=False))
        diversity = least if diversity is None else min(diversity, least)
        farthest = t_closeness(counts, keys, column)
        closeness = farthest if closeness is None else max(closeness, farthest)
    k = int(sizes.min())
    fractions = _sampling_fractions(grouped, sizes, records, population, drawn_by)
    risk = _expected_inverse(sizes, fractions)
    return RiskMeasures(
        records=records,
        classes=len(sizes),
        k=k,
        l=diversity,
        unique_share=int(sizes[sizes == 1].sum()) / records,
        prosecutor_max=1 / k,
        prosecutor_avg=len(sizes) / records,
        journalist_max=float(risk.max()),
        marketer=float((sizes * risk).sum()) / records,
        population_unique_share=_population_uniques(sizes, fractions, population) / records,
        t=closeness,
        population=population,
    )


def t_closeness(counts: pd.DataFrame, keys: Sequence[str], column: str) -> float:
    """The largest earth mover's distance between one class's distribution of ``column``
    and the whole table's (Li, Li and Venkatasubramanian, 2007). Values that are all
    numbers are ordered (the distance of moving a record to the next value is 1/(m-1));
    any other value is at the same distance from every other (half the L1 distance)."""
    weights = counts[COUNT].to_numpy(dtype=np.float64)
    values = counts[column]
    numbers = pd.to_numeric(values, errors="coerce")
    ordered = bool(numbers.notna().all()) and not pd.api.types.is_bool_dtype(values)
    if ordered:
        levels, codes = np.unique(numbers.to_numpy(dtype=np.float64), return_inverse=True)
        m = len(levels)
    else:
        codes, uniques = pd.factorize(values.astype(object), use_na_sentinel=False)
        m = len(uniques)
    if m <= 1:
        return 0.0
    if keys:
        classes = counts.groupby(list(keys), dropna=False, sort=False).ngroup().to_numpy()
    else:
        classes = np.zeros(len(counts), dtype=np.int64)
    overall = np.bincount(codes, weights=weights, minlength=m) / weights.sum()
    totals = np.bincount(classes, weights=weights)
    farthest = 0.0
    batch = max(1, 2_000_000 // m)  # classes at a time: a batch's table stays small
    for start in range(0, len(totals), batch):
        end = min(start + batch, len(totals))
        chosen = (classes >= start) & (classes < end)
        table = np.zeros((end - start, m))
        np.add.at(table, (classes[chosen] - start, codes[chosen]), weights[chosen])
        gap = table / totals[start:end, None] - overall
        if ordered:
            distance = np.abs(np.cumsum(gap, axis=1)).sum(axis=1) / (m - 1)
        else:
            distance = np.abs(gap).sum(axis=1) / 2
        farthest = max(farthest, float(distance.max()))
    return farthest


def _sampling_fractions(
    grouped: pd.Series | None,
    sizes: np.ndarray,
    records: int,
    population: int | None,
    drawn_by: Sequence[str],
) -> np.ndarray:
    """Each class's sampling fraction: its draw's records over the population, at most 1
    (a population smaller than the records counted is taken as the records)."""
    if population is None:
        return np.ones(len(sizes))
    if grouped is None or not drawn_by:
        return np.full(len(sizes), min(1.0, records / population))
    draws = grouped.groupby(level=list(drawn_by), dropna=False, sort=False).transform("sum")
    fractions: np.ndarray = np.minimum(1.0, draws.to_numpy(dtype=np.float64) / population)
    return fractions


def _expected_inverse(sizes: np.ndarray, fractions: np.ndarray) -> np.ndarray:
    """E[1/F] for each class: F, its size in the population, given ``f`` records of it in a
    sample drawn with fraction ``p`` (Benedetti and Franconi, 1998: F - f is negative
    binomial, so E[1/F] = p * integral of u^(f-1) / (p + (1-p) u) over [0, 1])."""
    pairs = zip(sizes.tolist(), fractions.tolist(), strict=True)
    return np.fromiter((expected_inverse(int(f), float(p)) for f, p in pairs), float, len(sizes))


@functools.lru_cache(maxsize=4096)
def expected_inverse(f: int, p: float) -> float:
    """E[1/F] for a class of ``f`` sampled records drawn with fraction ``p`` (see above).

    The integral I_f obeys I_1 = ln(1/p)/q and I_(f+1) = (1/f - p I_f)/q (q = 1 - p),
    stable while p < q; otherwise, and for large f, the series I_f = sum over j of
    q^j j! / (f (f+1) ... (f+j)) converges fast."""
    if p >= 1:
        return 1 / f
    q = 1 - p
    if q <= 0.5 or f > 64:  # also for f = 1: ln(1/p) / q loses every digit as q -> 0
        total, term, j = 0.0, 1 / f, 0
        while term > 1e-16 * total or j == 0:
            total += term
            term *= q * (j + 1) / (f + j + 1)
            j += 1
        return p * total
    integral = math.log(1 / p) / q
    for g in range(1, f):
        integral = (1 / g - p * integral) / q
    return p * integral


def _population_uniques(sizes: np.ndarray, fractions: np.ndarray, population: int | None) -> float:
    """How many records are estimated unique in the population (Zayatz, 1991): a sample
    unique comes from a population class of size i with a probability proportional to the
    share of classes of size i and to the hypergeometric chance of drawing exactly one
    record of such a class; summed over draws. Without a population, the sample uniques."""
    if population is None:
        return float((sizes == 1).sum())
    found = 0.0
    for fraction in np.unique(fractions):
        draw = sizes[fractions == fraction]
        uniques = int((draw == 1).sum())
        if uniques == 0:
            continue
        drawn = int(draw.sum())
        total = max(population, drawn)
        sizes_seen, classes_seen = np.unique(draw, return_counts=True)
        chances = [_one_of(int(i), total, drawn) for i in sizes_seen]
        weighted = sum(c * ch for c, ch in zip(classes_seen.tolist(), chances, strict=True))
        found += uniques * (classes_seen[0] * chances[0]) / weighted if weighted else 0.0
    return float(found)


def _one_of(size: int, population: int, drawn: int) -> float:
    """Hypergeometric: the chance that ``drawn`` of ``population`` hold exactly one member
    of a class of ``size``."""
    if drawn - 1 > population - size:
        return 0.0
    log = (
        math.log(size) + _log_choose(population - size, drawn - 1) - _log_choose(population, drawn)
    )
    return math.exp(log)


def _log_choose(n: int, r: int) -> float:
    return math.lgamma(n + 1) - math.lgamma(r + 1) - math.lgamma(n - r + 1)


def _empty(columns: Sequence[str]) -> pd.DataFrame:
    return pd.DataFrame({**{c: pd.Series(dtype=object) for c in columns}, COUNT: []})
