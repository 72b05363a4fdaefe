"""What the anonymization register says about one binding in one run.

Built from the policy (information concerned, purposes, techniques) and the run's risk
analysis; never from the data, so no personal value can reach the register.
"""

from __future__ import annotations

from typing import Any

from flows.binding_operators import operator_params
from retention_rules.model import AggregateThenDeleteAction, AnonymizeAction, Dataset, Policy


def register_record(
    policy: Policy,
    dataset: Dataset,
    *,
    records: int,
    risk: dict[str, Any] | list[dict[str, Any]] | None,
    status: str,
    error: str | None,
) -> dict[str, Any]:
    """One binding's part of a register entry (see ``flows/schemas/register.schema.json``);
    ``risk`` None when no analysis could be taken (``error`` says why)."""
    purpose = policy.purposes[dataset.purpose]
    action = dataset.action
    assert isinstance(action, AnonymizeAction | AggregateThenDeleteAction)
    return {
        "dataset": dataset.name,
        "store": dataset.store,
        "table": dataset.table,
        "action": action.type,
        "information": [
            {"column": column, "categories": list(categories)}
            for column, categories in dataset.columns.items()
        ],
        "collected_for": {"purpose": dataset.purpose, "description": purpose.description},
        "kept_for": action.kept_for,
        "techniques": techniques(policy, dataset),
        "records_this_run": records,
        "risk": risk,
        "status": status,
        "error": error,
    }


def techniques(policy: Policy, dataset: Dataset) -> list[dict[str, Any]]:
    """The operators with their parameters, or the rollups with their suppression."""
    action = dataset.action
    if isinstance(action, AnonymizeAction):
        return [
            {
                "column": column,
                "operator": spec.operator,
                "params": {k: str(v) for k, v in operator_params(policy, dataset, spec).items()},
            }
            for column, spec in action.columns.items()
        ]
    if isinstance(action, AggregateThenDeleteAction):
        suppression = (
            f"cells of fewer than {action.min_cell_size} people withheld, with complementary "
            "suppression along every line; closed periods only; a later release changes a "
            f"cell only by 0 or at least {action.min_cell_size} people"
        )
        return [
            {
                "rollup": rollup.name,
                "period": rollup.period,
                "dimensions": list(rollup.dimensions),
                "measures": [measure.label for measure in rollup.measures],
                "suppression": suppression,
            }
            for rollup in action.rollups
        ]
    return []
