"""What a run leaves for proof: its audit entries and its register records."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Engine

from connectors.protocol import Connector
from flows import register
from flows.binding_operators import operator_params
from flows.gate import GateVerdict
from flows.run.types import DatasetOutcome, RunReport, first_line
from flows.table_risk import table_risk
from retention_rules.model import (
    AggregateThenDeleteAction,
    AnonymizeAction,
    Dataset,
    DifferentialPrivacy,
    Policy,
    Rollup,
    Suppression,
)

_log = logging.getLogger(__name__)


def binding_record(
    policy: Policy,
    connectors: Mapping[str, Connector],
    name: str,
    rows: int,
    *,
    status: str,
    error: str | None,
    risk: dict[str, Any] | list[dict[str, Any]] | None = None,
) -> dict[str, Any] | None:
    """A binding's record for the register. Without ``risk`` (a binding that failed, a
    run that died, after committing records) an anonymized table's analysis is taken now,
    if the store answers. None for a binding the policy no longer has."""
    dataset = next((d for d in policy.datasets if d.name == name), None)
    if dataset is None:
        return None
    if risk is None and isinstance(dataset.action, AnonymizeAction):
        try:
            risk = table_risk(connectors[dataset.store], policy, dataset).summary()
        except Exception as exc:  # the record is written all the same, saying why
            _log.warning("risk analysis of %s not taken: %s", name, first_line(exc))
            error = f"{error}; risk analysis not taken: {first_line(exc)}"
    return register_record(policy, dataset, records=rows, risk=risk, status=status, error=error)


def append_register(
    state: Engine, policy: Policy, run: dict[str, Any], records: list[dict[str, Any] | None]
) -> None:
    """Append the run's register entry, when it has records; the analysis is to be
    redone ``review_every`` after the run's evaluation."""
    kept = [record for record in records if record is not None]
    if not kept:
        return
    evaluated = datetime.fromisoformat(str(run["evaluated_at"]))
    redo_by = evaluated + policy.anonymization_register.review_every.as_relativedelta()
    register.append(state, register.entry_for_run(run, kept, redo_by.date()))


def run_fields(report: RunReport) -> dict[str, Any]:
    """What every audit entry of a run starts with."""
    return {
        "run_id": report.run_id,
        "policy": report.policy,
        "policy_sha256": report.policy_sha256,
        "evaluated_at": report.evaluated_at.isoformat(),
    }


def gate_entry(report: RunReport, gate: GateVerdict) -> dict[str, Any]:
    """The coverage gate's gaps (column names and entity types, never a value)."""
    return {
        **run_fields(report),
        "event": "coverage_gate",
        "status": gate.status,
        "gaps": list(gate.gaps),
        "tables_scanned": gate.tables,
    }


def audit_entry(report: RunReport, outcome: DatasetOutcome) -> dict[str, Any]:
    return {
        **run_fields(report),
        **outcome.summary(),
    }


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
        return [
            {
                "rollup": rollup.name,
                "period": rollup.period,
                "dimensions": list(rollup.dimensions),
                "measures": [measure.label for measure in rollup.measures],
                **_disclosure(action.disclosure(rollup), rollup),
            }
            for rollup in action.rollups
        ]
    return []


def _disclosure(method: Suppression | DifferentialPrivacy, rollup: Rollup) -> dict[str, str]:
    """How a rollup's cells are protected, in the register's words."""
    if isinstance(method, DifferentialPrivacy):
        return {
            "differential_privacy": (
                f"every cell of the declared domain released with its people counted with "
                f"discrete Laplace noise (OpenDP), epsilon {method.epsilon:g} per "
                f"{rollup.period}, a person counted at most once per cell and in at most "
                f"{rollup.cells_per_period} cells of a period; budget epsilon "
                f"{method.budget.epsilon:g} per year; counts clipped at zero; every closed "
                f"period since {method.since.isoformat()} released once, with rows or not"
            )
        }
    size = method.min_cell_size
    return {
        "suppression": (
            f"cells of fewer than {size} people withheld, with complementary "
            "suppression along every line; closed periods only; a later release changes a "
            f"cell only by 0 or at least {size} people"
        )
    }
