"""``tenure risk``: the re-identification risk of everything a policy keeps anonymized.

For each anonymize binding, the rows already anonymized; for each aggregate, everything
released so far. Each line shows the regulation's three criteria (individualization,
correlation, inference) with their measures, and the verdict with the criterion, the
threshold and the measure that kept it from *anonymized*. A missed explicit requirement
(``risk.require``) fails the command, as the nightly run fails a binding; the defaults
change the verdict only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine

from anonymizers.risk_criteria import CRITERIA
from connectors.protocol import Connector
from flows.releases import private_risk, released_cells, rollup_risk
from flows.reports.table import ReportTable
from flows.table_risk import table_risk
from retention_rules.model import (
    AggregateThenDeleteAction,
    AnonymizeAction,
    DifferentialPrivacy,
    Policy,
)
from retention_rules.planner import rollup_sinks


@dataclass(frozen=True)
class RiskLine:
    """The risk of one anonymized table or one published aggregate."""

    dataset: str
    output: str
    """``table`` or the rollup's name."""
    measures: dict[str, Any]
    """The measures (``RiskMeasures.as_dict``), with ``criteria`` and ``verdict``."""
    unmet: tuple[str, ...]
    """The explicit requirements (``risk.require``) missed: ``tenure risk`` exits 1."""
    direct: dict[str, str]

    @property
    def verdict(self) -> str:
        return str(self.measures.get("verdict", "not assessed"))

    @property
    def anonymized(self) -> bool:
        return self.verdict == "anonymized"

    def as_dict(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "output": self.output,
            **self.measures,
            "direct_identifiers": self.direct,
            "unmet": list(self.unmet),
            "anonymized": self.anonymized,
        }


def risk_lines(
    policy: Policy, connectors: Mapping[str, Connector], state: Engine
) -> list[RiskLine]:
    lines: list[RiskLine] = []
    for dataset in policy.datasets:
        action = dataset.action
        if isinstance(action, AnonymizeAction):
            risk = table_risk(connectors[dataset.store], policy, dataset)
            lines.append(
                RiskLine(dataset.name, "table", risk.measures.as_dict(), risk.unmet, risk.direct)
            )
        elif isinstance(action, AggregateThenDeleteAction):
            for sink in rollup_sinks(dataset):
                periods = released_cells(state, dataset.name, sink.name)
                method = action.disclosure(action.rollup(sink.name))
                if isinstance(method, DifferentialPrivacy):
                    private = private_risk(state, dataset.name, sink.name, method, periods)
                    lines.append(RiskLine(dataset.name, sink.name, private, (), {}))
                    continue
                measures, missing = rollup_risk(periods, sink, dataset)
                lines.append(RiskLine(dataset.name, sink.name, measures.as_dict(), missing, {}))
    return lines


_RISK_HEADERS = (
    "dataset",
    "output",
    "records",
    "individualization",
    "correlation",
    "inference",
    "direct identifiers",
    "verdict",
)
#: How each measure is shown in a criterion's cell.
_LABELS = {
    "k": ("k", "{:d}"),
    "unique_share": ("unique", "{:.1%}"),
    "prosecutor_max": ("risk max", "{:.3f}"),
    "prosecutor_avg": ("avg", "{:.3f}"),
    "journalist_max": ("journalist", "{:.4f}"),
    "marketer": ("marketer", "{:.4f}"),
    "population_unique_share": ("population uniques", "{:.1%}"),
    "l": ("l", "{:d}"),
    "t": ("t", "{:.3f}"),
}


def risk_table(lines: list[RiskLine]) -> ReportTable:
    """One row per anonymized table or released aggregate: each criterion's status and
    measures, the surviving direct identifiers, and the verdict with what failed (the
    criterion, the threshold and the measure)."""
    rows = []
    for line in lines:
        m = line.measures
        criteria: dict[str, dict[str, Any]] = m.get("criteria", {})
        direct = ", ".join(f"{c}: {s}" for c, s in line.direct.items() if s != "removed")
        failures = [
            f"{name}: {failure}"
            for name, result in criteria.items()
            for failure in result["failed"]
        ] + [
            f"{name} not assessed"
            for name, result in criteria.items()
            if result["status"] == "not assessed"
        ]
        verdict = line.verdict if not failures else f"{line.verdict}: " + "; ".join(failures)
        if line.unmet:
            verdict += " (required: " + "; ".join(line.unmet) + ")"
        rows.append(
            (
                line.dataset,
                line.output,
                f"{m['records']:,}",
                *(_criterion(criteria.get(name)) for name in CRITERIA),
                direct or "none survive",
                verdict,
            )
        )
    return ReportTable.of("Re-identification risk", _RISK_HEADERS, rows)


def _criterion(result: dict[str, Any] | None) -> str:
    """``met: k 12, unique 0.0%, ...`` with the note (what it was assessed against, or
    why it could not be)."""
    if result is None:
        return "-"
    shown = [
        f"{_LABELS[name][0]} {_LABELS[name][1].format(value)}"
        for name, value in result["measures"].items()
        if value is not None
    ]
    text = f"{result['status']}: {', '.join(shown)}" if shown else str(result["status"])
    return f"{text} ({result['note']})" if result["note"] else text
