"""``tenure risk``: the re-identification risk of everything a policy keeps anonymized.

For each anonymize binding, the rows already anonymized; for each aggregate, everything
released so far. Each line says which requirements it misses, so the command can fail a
scheduled check as the nightly run fails a binding.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine

from connectors.protocol import Connector
from flows.releases import released_cells, rollup_risk
from flows.reports.table import ReportTable
from flows.table_risk import is_anonymized, table_risk
from retention_rules.model import AggregateThenDeleteAction, AnonymizeAction, Policy
from retention_rules.planner import rollup_sinks


@dataclass(frozen=True)
class RiskLine:
    """The risk of one anonymized table or one published aggregate."""

    dataset: str
    output: str
    """``table`` or the rollup's name."""
    measures: dict[str, Any]
    unmet: tuple[str, ...]
    direct: dict[str, str]

    @property
    def anonymized(self) -> bool:
        return is_anonymized(self.direct, self.unmet)

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
                measures, missing = rollup_risk(periods, sink, dataset)
                lines.append(RiskLine(dataset.name, sink.name, measures.as_dict(), missing, {}))
    return lines


_RISK_HEADERS = (
    "dataset",
    "output",
    "records",
    "k",
    "l",
    "unique",
    "direct identifiers",
    "verdict",
)


def risk_table(lines: list[RiskLine]) -> ReportTable:
    """One row per anonymized table or released aggregate: its measures and verdict."""
    rows = []
    for line in lines:
        m = line.measures
        direct = ", ".join(f"{c}: {s}" for c, s in line.direct.items() if s != "removed")
        verdict = "anonymized" if line.anonymized else "; ".join(line.unmet) or "pseudonymized"
        rows.append(
            (
                line.dataset,
                line.output,
                f"{m['records']:,}",
                "-" if m["k"] is None else str(m["k"]),
                "-" if m["l"] is None else str(m["l"]),
                f"{m['unique_share']:.1%}",
                direct or "none survive",
                verdict,
            )
        )
    return ReportTable.of("Re-identification risk", _RISK_HEADERS, rows)
