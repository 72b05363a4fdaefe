"""Turn a policy into per-dataset selections, and count them into a plan.

`plan_rules` is pure (policy + clock in, selections out); `evaluate` asks each store,
through the connector protocol only, how many rows every selection holds.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from connectors.protocol import (
    Condition,
    Connector,
    EventClock,
    ExpiryCounts,
    ExpirySelection,
    RowFilter,
)
from retention_rules.clock import PolicyClock
from retention_rules.model import AnonymizeAction, Dataset, Hold, Policy


@dataclass(frozen=True)
class RulePlan:
    """What one dataset binding selects today, before anything is counted."""

    dataset: Dataset
    cutoff: datetime
    selection: ExpirySelection
    holds: tuple[Hold, ...]
    lapsed_holds: tuple[Hold, ...] = ()


@dataclass(frozen=True)
class PlanRow:
    """One line of the plan: a binding, its cut-off, its counts and its consequence."""

    rule: RulePlan
    counts: ExpiryCounts
    held_reasons: dict[str, str] = field(default_factory=dict)

    @property
    def consequence(self) -> str:
        return describe_action(self.rule.dataset, self.counts.expired)


def plan_rules(policy: Policy, clock: PolicyClock) -> list[RulePlan]:
    today = clock.today()
    plans = []
    for dataset in policy.datasets:
        covering = [h for h in policy.holds if h.covers(dataset.name)]
        active = tuple(h for h in covering if h.active_on(today))
        lapsed = tuple(h for h in covering if not h.active_on(today))
        cutoff = clock.cutoff(dataset.retention)
        plans.append(
            RulePlan(dataset, cutoff, selection_for(dataset, cutoff, active), active, lapsed)
        )
    return plans


def selection_for(dataset: Dataset, cutoff: datetime, holds: tuple[Hold, ...]) -> ExpirySelection:
    clock = dataset.clock
    event = None
    if clock.event_table is not None and clock.join is not None:
        event = EventClock(clock.event_table, clock.column, clock.join.local, clock.join.event)
    return ExpirySelection(
        table=dataset.table,
        schema=dataset.db_schema,
        clock_column=clock.column,
        cutoff=cutoff,
        event=event,
        exclusions=tuple(hold_filter(hold, dataset) for hold in holds),
    )


def hold_filter(hold: Hold, dataset: Dataset) -> RowFilter:
    if hold.subject_keys is not None:
        keys = tuple(hold.subject_keys)
        return RowFilter(hold.name, (Condition(dataset.subject_key, "in", keys),))
    conditions = tuple(
        Condition(c.column, c.op, tuple(c.value) if isinstance(c.value, list) else c.value)
        for c in hold.where or ()
    )
    return RowFilter(hold.name, conditions)


def evaluate(plans: list[RulePlan], connectors: Mapping[str, Connector]) -> list[PlanRow]:
    """Count every selection in its store (one statement per dataset)."""
    return [
        PlanRow(
            plan,
            connectors[plan.dataset.store].count_expiry(plan.selection),
            {h.name: h.reason for h in plan.holds},
        )
        for plan in plans
    ]


def describe_action(dataset: Dataset, rows: int) -> str:
    action = dataset.action
    if rows == 0:
        return "nothing to do"
    if isinstance(action, AnonymizeAction):
        return f"anonymize {', '.join(action.columns)} in {rows:,} rows"
    if action.type == "aggregate_then_delete":
        names = ", ".join(r.name for r in action.rollups)
        return f"aggregate {rows:,} rows into {names}, then delete them"
    return f"delete {rows:,} rows"
