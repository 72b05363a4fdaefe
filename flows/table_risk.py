"""The re-identification risk of an anonymize binding's output, and its verdict.

The quasi identifiers (and sensitive columns) of the rows already anonymized are
grouped inside the store, measured on the regulation's three criteria and held to the
binding's thresholds (``RiskSettings.verdict_thresholds``): the output is *anonymized*
only when every criterion is met and no direct identifier survives. When the binding has
explicit requirements (``risk.require``, e.g. ``k >= 10``), the rows a run is about to
anonymize are also read, put through the binding's own operators in memory, and
grouped: together they are what the table will hold after the run, so a binding whose
output would miss them is stopped before it writes anything. The defaults only judge the
verdict: they never stop a run.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import pandas as pd

from anonymizers.risk_criteria import METRICS, Assessment, Criterion, assess, missed
from anonymizers.risk_measures import COUNT, RiskMeasures, combine, grouped_counts, measure
from connectors.protocol import Connector, ExpirySelection
from flows.binding_operators import binding_operators
from retention_rules.model import Category, Dataset, Policy, RiskRequirement

DIRECT_STATUS = ("removed", "pseudonymized", "kept")


@dataclass(frozen=True)
class TableRisk:
    """A binding's risk analysis: the measures with their assessment, what they were
    taken over, the fate of each direct identifier, and the explicit requirements
    (``risk.require``) it misses, which stop a run."""

    measures: RiskMeasures
    quasi_identifiers: tuple[str, ...]
    sensitive: tuple[str, ...]
    direct: dict[str, str] = field(default_factory=dict)
    unmet: tuple[str, ...] = ()

    @property
    def verdict(self) -> str:
        assert self.measures.assessment is not None, "table_risk assesses its measures"
        return self.measures.assessment.verdict

    @property
    def anonymized(self) -> bool:
        return self.verdict == "anonymized"

    def summary(self) -> dict[str, Any]:
        return {
            **self.measures.as_dict(),
            "quasi_identifiers": list(self.quasi_identifiers),
            "sensitive": list(self.sensitive),
            "direct_identifiers": dict(self.direct),
            "unmet": list(self.unmet),
            "anonymized": self.anonymized,
        }


def judged(
    measures: RiskMeasures,
    dataset: Dataset,
    direct: dict[str, str] | None = None,
    draws: str = "",
) -> RiskMeasures:
    """``measures`` with their assessment against the binding's thresholds: each
    criterion met, failed or not assessed, and the verdict. ``draws``: what splits the
    records into separate draws from the population (a rollup's periods)."""
    return replace(measures, assessment=assessment(measures, dataset, direct, draws))


def assessment(
    measures: RiskMeasures,
    dataset: Dataset,
    direct: dict[str, str] | None = None,
    draws: str = "",
) -> Assessment:
    notes: dict[Criterion, str] = {}
    not_assessed: dict[Criterion, str] = {}
    if dataset.risk.sensitive is None:
        not_assessed["inference"] = (
            "no sensitive column declared (risk.sensitive, or sensitive: [] for none)"
        )
    elif not dataset.risk.sensitive:
        notes["inference"] = "no sensitive column kept (sensitive: [])"
    else:
        notes["inference"] = "sensitive: " + ", ".join(dataset.risk.sensitive)
    if measures.population is None:
        notes["correlation"] = "no population stated: the records taken as the whole population"
    elif draws:
        notes["correlation"] = f"against a population of {measures.population:,}, {draws}"
    elif measures.records > measures.population:
        notes["correlation"] = (
            f"population {measures.population:,} is under the {measures.records:,} records "
            "counted: the records taken as the whole population"
        )
    else:
        notes["correlation"] = f"against a population of {measures.population:,}"
    return assess(
        {name: measures.value(name) for name in METRICS},
        dataset.risk.verdict_thresholds,
        notes=notes,
        not_assessed=not_assessed,
        direct=direct,
    )


def quasi_identifiers(policy: Policy, dataset: Dataset) -> list[str]:
    """The declared ones, else the columns bound to ``identifier: quasi`` categories,
    except free text (``entities: any``): no two texts group, so it would only ever
    report k = 1; what free text holds is the redaction's business."""
    if dataset.risk.quasi_identifiers is not None:
        return list(dataset.risk.quasi_identifiers)
    found = []
    for column, names in dataset.columns.items():
        categories = _categories(policy, names)
        if any(c.identifier == "direct" or c.entities == "any" for c in categories):
            continue
        if any(c.identifier == "quasi" for c in categories):
            found.append(column)
    return found


def direct_identifiers(policy: Policy, dataset: Dataset) -> dict[str, str]:
    """Each column bound to a direct-identifier category, and what anonymizing does to it:
    ``removed``, ``pseudonymized`` (still one value per person) or ``kept``."""
    operators = binding_operators(policy, dataset)
    status = {}
    for column, names in dataset.columns.items():
        if not any(c.identifier == "direct" for c in _categories(policy, names)):
            continue
        operator = operators.get(column)
        if operator is None:
            status[column] = "kept"
        else:
            status[column] = "pseudonymized" if operator.identifies() else "removed"
    return status


def unmet(requirements: list[RiskRequirement], measures: RiskMeasures) -> tuple[str, ...]:
    """The requirements ``measures`` miss, each with what was measured."""
    return missed(requirements, measures.value)


def table_risk(
    connector: Connector,
    policy: Policy,
    dataset: Dataset,
    pending: ExpirySelection | None = None,
    chunk_size: int = 50_000,
) -> TableRisk:
    """The risk of the rows marked anonymized under the binding, plus (with ``pending``)
    the rows the run is about to anonymize, transformed as the run will."""
    qis = quasi_identifiers(policy, dataset)
    sensitive = dataset.risk.sensitive_columns
    columns = list(dict.fromkeys([*qis, *sensitive]))
    groups = connector.count_groups(dataset.table, columns, dataset.name, dataset.db_schema)
    parts = [
        pd.DataFrame(
            [(*values, n) for values, n in groups], columns=[*columns, COUNT], dtype=object
        )
    ]
    if pending is not None:
        operators = binding_operators(policy, dataset)
        read = columns or list(dataset.primary_key)  # with no column, the rows still count
        for rows in connector.read_rows(pending, read, chunk_size):
            frame = pd.DataFrame.from_records(rows, columns=read)
            for column in columns:
                if column in operators:
                    frame[column] = operators[column].operate(frame[column])
            parts.append(grouped_counts(frame, columns))
    counts = combine([_comparable(part, columns) for part in parts], columns)
    measures = measure(counts, qis, sensitive, dataset.risk.population)
    direct = direct_identifiers(policy, dataset)
    return TableRisk(
        measures=judged(measures, dataset, direct),
        quasi_identifiers=tuple(qis),
        sensitive=tuple(sensitive),
        direct=direct,
        unmet=unmet(dataset.risk.require, measures),
    )


def _comparable(part: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """Values as text, so a value read back from the store and one just transformed in
    memory (a date and its ISO string, 42 and 42.0) fall in the same class."""
    result = part.copy()
    for column in columns:
        result[column] = result[column].map(_as_text).astype(object)
    result[COUNT] = result[COUNT].astype("int64")
    return result


def _as_text(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and pd.isna(value)) or value is pd.NaT:
        return None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _categories(policy: Policy, names: list[str]) -> list[Category]:
    return [policy.categories[name] for name in names if name in policy.categories]
