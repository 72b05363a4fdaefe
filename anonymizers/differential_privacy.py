"""Counts released under differential privacy, through OpenDP.

A release of one period is a vector of counts, one per cell of the declared domain,
each the number of people the cell counts. A person adds one to a cell at most (a
distinct count), and appears in at most ``sensitivity`` cells of the period (by default
every cell of the domain: no assumption on how people spread), so adding or removing a
person moves the vector by at most ``sensitivity`` in L1 distance. OpenDP's discrete
Laplace mechanism on that vector, its scale searched so that the privacy map at that
distance is within ``epsilon``, releases noisy integer counts; clipping them at zero is
post-processing and costs no privacy. The noise is drawn from OpenDP's own secure
source, never from a seeded generator.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    import opendp.prelude as dp

#: The error bound each released cell carries: the noise stays within it with this
#: probability (95%).
CONFIDENCE = 0.95


@dataclass(frozen=True)
class NoisyCounts:
    """One period's counts with noise: non-negative integers, the discrete Laplace
    scale used, the privacy loss it spends and the 95% bound of each count's noise."""

    counts: npt.NDArray[np.int64]
    scale: float
    epsilon: float
    margin: int


@cache
def _opendp() -> ModuleType:
    """OpenDP, loaded (and its contributed mechanisms enabled) by the first private
    release, not by every run that imports the releases."""
    import opendp.prelude as prelude

    prelude.enable_features("contrib")
    return prelude


def _mechanism(scale: float) -> dp.Measurement:
    dp_ = _opendp()
    space = dp_.vector_domain(dp_.atom_domain(T=int)), dp_.l1_distance(T=int)
    measurement: dp.Measurement = dp_.m.make_laplace(*space, scale=scale)
    return measurement


@cache
def laplace_scale(sensitivity: int, epsilon: float) -> float:
    """The smallest discrete Laplace scale whose privacy loss at ``sensitivity`` is at
    most ``epsilon``, as OpenDP's privacy map judges it (searched once per pair)."""
    if sensitivity < 1 or not epsilon > 0:
        raise ValueError("the sensitivity must be at least 1 and epsilon above 0")
    scale: float = _opendp().binary_search_param(
        _mechanism, d_in=sensitivity, d_out=epsilon, T=float
    )
    return scale


def margin(scale: float, confidence: float = CONFIDENCE) -> int:
    """The bound a count's noise stays within with probability ``confidence``."""
    bound = _opendp().discrete_laplacian_scale_to_accuracy(scale, alpha=1 - confidence)
    return int(np.ceil(bound))


@dataclass(frozen=True)
class _Calibrated:
    mechanism: Any
    scale: float
    spent: float
    margin: int


@cache
def _calibrated(sensitivity: int, epsilon: float) -> _Calibrated:
    """The mechanism for a pair, its scale, the loss OpenDP's map gives it and its 95%
    bound: the same for every period of a rollup, worked out once."""
    scale = laplace_scale(sensitivity, epsilon)
    mechanism = _mechanism(scale)
    spent = float(mechanism.map(sensitivity))  # type: ignore[no-untyped-call]
    if spent > epsilon:
        raise AssertionError(f"OpenDP spends {spent} > {epsilon}")  # the search guarantees it
    return _Calibrated(mechanism, scale, spent, margin(scale))


def noisy_counts(true: Sequence[int], *, sensitivity: int, epsilon: float) -> NoisyCounts:
    """``true`` released under ``epsilon``-differential privacy (see the module)."""
    calibrated = _calibrated(sensitivity, epsilon)
    drawn = calibrated.mechanism([int(value) for value in true]) if len(true) else []
    counts = np.maximum(np.asarray(drawn, dtype=np.int64), 0)
    return NoisyCounts(counts, calibrated.scale, calibrated.spent, calibrated.margin)
