"""The three criteria of Quebec's anonymization regulation, the measures that assess each,
and the verdict they lead to.

The regulation (Règlement sur l'anonymisation des renseignements personnels, 2024) asks a
re-identification risk analysis to consider *individualization* (can a person be singled
out), *correlation* (can records be linked to another data set that names people) and
*inference* (can information about a person be deduced). Each criterion is judged by
thresholds on measures (``k >= 11``); an output is *anonymized* only when every criterion
is met and no direct identifier survives. Plain Python: the policy model reads the
vocabulary without loading the measuring code.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

Criterion = Literal["individualization", "correlation", "inference"]
Status = Literal["met", "failed", "not assessed"]
Verdict = Literal["anonymized", "de-identified", "pseudonymized", "identifiable"]

#: The measures of each criterion, in the order reports show them.
CRITERIA: dict[Criterion, tuple[str, ...]] = {
    "individualization": ("k", "unique_share", "prosecutor_max", "prosecutor_avg"),
    "correlation": ("journalist_max", "marketer", "population_unique_share"),
    "inference": ("l", "t"),
}
#: Measures a threshold bounds from below (``k >= 11``); every other one from above.
LOWER_BOUNDED = frozenset({"k", "l"})
METRICS = tuple(metric for metrics in CRITERIA.values() for metric in metrics)
CRITERION_OF: dict[str, Criterion] = {
    metric: criterion for criterion, metrics in CRITERIA.items() for metric in metrics
}

#: Thresholds that apply when the policy states none for a measure (docs/risk.md says why).
#: A maximum re-identification probability of 0.09 (Health Canada's and the European
#: Medicines Agency's threshold for public release of clinical data), which their
#: guidance equates with equivalence classes of at least 11 records: ``k >= 11`` for a
#: record singled out in the table, the same 1/11 for one found from the population;
#: at most one record in twenty re-identified by linking the whole table; and no class
#: whose members all share a sensitive value.
DEFAULT_THRESHOLDS = ("k >= 11", "journalist_max <= 1/11", "marketer <= 0.05", "l >= 2")
#: The loosest a policy may state: no output is called anonymized with classes under five
#: records, or with a maximum risk above 1/5 (0.2, the loosest threshold of common
#: practice, for data shared under strong controls).
FLOORS: dict[str, float] = {"k": 5, "prosecutor_max": 0.2, "journalist_max": 0.2}


class Threshold(Protocol):
    """A bound on one measure (``retention_rules.model.RiskRequirement``)."""

    @property
    def metric(self) -> str: ...

    def met_by(self, measured: float | None) -> bool: ...


@dataclass(frozen=True)
class CriterionResult:
    """One criterion's measures, the thresholds it was held to, and what it found."""

    criterion: Criterion
    status: Status
    measures: dict[str, Any]
    thresholds: tuple[str, ...] = ()
    failed: tuple[str, ...] = ()
    """Each failed threshold with what was measured: ``k >= 11 (measured k = 1)``."""
    note: str = ""
    """Why it could not be assessed, or what it was assessed against."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "measures": dict(self.measures),
            "thresholds": list(self.thresholds),
            "failed": list(self.failed),
            "note": self.note,
        }


@dataclass(frozen=True)
class Assessment:
    """The three criteria of one output and the verdict they lead to."""

    criteria: tuple[CriterionResult, ...]
    verdict: Verdict

    @property
    def reasons(self) -> tuple[str, ...]:
        """Why the output is not anonymized on the criteria: each failed threshold, or the
        criterion that could not be assessed, named with its criterion."""
        found: list[str] = []
        for result in self.criteria:
            if result.status == "failed":
                found.extend(f"{result.criterion}: {failure}" for failure in result.failed)
            elif result.status == "not assessed":
                found.append(f"{result.criterion} not assessed: {result.note}")
        return tuple(found)

    def as_dict(self) -> dict[str, Any]:
        return {
            "criteria": {result.criterion: result.as_dict() for result in self.criteria},
            "verdict": self.verdict,
        }


def assess(
    measures: Mapping[str, Any],
    thresholds: Sequence[Threshold],
    *,
    notes: Mapping[Criterion, str] | None = None,
    not_assessed: Mapping[Criterion, str] | None = None,
    direct: Mapping[str, str] | None = None,
) -> Assessment:
    """Hold ``measures`` (by name) to ``thresholds``, criterion by criterion.

    ``notes``: what a criterion was assessed against. ``not_assessed``: the criteria that
    could not be, and why (the output is then at best de-identified: a verdict of
    anonymized cannot rest on a criterion nobody analysed). ``direct``: each direct
    identifier's fate (``removed``, ``pseudonymized``, ``kept``).
    """
    notes, not_assessed = notes or {}, not_assessed or {}
    results = []
    for criterion, metrics in CRITERIA.items():
        shown = {metric: measures.get(metric) for metric in metrics}
        applied = [t for t in thresholds if CRITERION_OF.get(t.metric) == criterion]
        if criterion in not_assessed:
            results.append(
                CriterionResult(criterion, "not assessed", shown, note=not_assessed[criterion])
            )
            continue
        failed = missed(applied, measures.get)
        results.append(
            CriterionResult(
                criterion,
                "failed" if failed else "met",
                shown,
                tuple(str(t) for t in applied),
                failed,
                notes.get(criterion, ""),
            )
        )
    return Assessment(tuple(results), verdict(direct or {}, results))


def verdict(direct: Mapping[str, str], criteria: Sequence[CriterionResult]) -> Verdict:
    """``identifiable`` while a direct identifier is kept, ``pseudonymized`` while one is
    pseudonymized (a pseudonym still tells people apart), else ``anonymized`` when every
    criterion is met and ``de-identified`` when one fails or could not be assessed."""
    if any(status == "kept" for status in direct.values()):
        return "identifiable"
    if any(status == "pseudonymized" for status in direct.values()):
        return "pseudonymized"
    if all(result.status == "met" for result in criteria):
        return "anonymized"
    return "de-identified"


def missed(thresholds: Sequence[Threshold], value: Callable[[str], Any]) -> tuple[str, ...]:
    """The thresholds a measure (``value(metric)``) misses, each with what was measured:
    ``k >= 11 (measured k = 1)``."""
    return tuple(
        f"{t} (measured {t.metric} = {_shown(value(t.metric))})"
        for t in thresholds
        if not t.met_by(value(t.metric))
    )


def _shown(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
