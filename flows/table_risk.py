"""The re-identification risk of an anonymize binding's output.

The quasi identifiers (and sensitive columns) of the rows already anonymized are
grouped inside the store. When the binding has requirements (``k >= 10``), the rows a
run is about to anonymize are also read, put through the binding's own operators in
memory, and grouped: together they are what the table will hold after the run, so a
binding whose output would miss them is stopped before it writes anything.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from anonymizers.risk_measures import COUNT, RiskMeasures, combine, grouped_counts, measure
from connectors.protocol import Connector, ExpirySelection
from flows.binding_operators import binding_operators
from retention_rules.model import Category, Dataset, Policy, RiskRequirement

DIRECT_STATUS = ("removed", "pseudonymized", "kept")


@dataclass(frozen=True)
class TableRisk:
    """A binding's risk analysis: the measures, what they were taken over, the fate of
    each direct identifier, and the requirements it misses."""

    measures: RiskMeasures
    quasi_identifiers: tuple[str, ...]
    sensitive: tuple[str, ...]
    direct: dict[str, str] = field(default_factory=dict)
    unmet: tuple[str, ...] = ()

    @property
    def anonymized(self) -> bool:
        return is_anonymized(self.direct, self.unmet)

    def summary(self) -> dict[str, Any]:
        return {
            **self.measures.as_dict(),
            "quasi_identifiers": list(self.quasi_identifiers),
            "sensitive": list(self.sensitive),
            "direct_identifiers": dict(self.direct),
            "unmet": list(self.unmet),
            "anonymized": self.anonymized,
        }


def is_anonymized(direct: dict[str, str], missed: tuple[str, ...]) -> bool:
    """No direct identifier survives (pseudonymized counts as surviving) and every
    requirement holds."""
    return all(status == "removed" for status in direct.values()) and not missed


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
    return tuple(
        f"{requirement} (measured {requirement.metric} = {measures.value(requirement.metric)})"
        for requirement in requirements
        if not requirement.met_by(measures.value(requirement.metric))
    )


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
    sensitive = list(dataset.risk.sensitive)
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
    measures = measure(counts, qis, sensitive)
    return TableRisk(
        measures=measures,
        quasi_identifiers=tuple(qis),
        sensitive=tuple(sensitive),
        direct=direct_identifiers(policy, dataset),
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
