"""Turn a policy into per-dataset selections, and count them into a plan.

`plan_rules` is pure (policy + clock in, selections out); `evaluate` asks each store,
through the connector protocol only, how many rows every selection holds.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from graphlib import TopologicalSorter

from connectors.protocol import (
    Condition,
    Connector,
    EventClock,
    ExpiryCounts,
    ExpirySelection,
    RollupSink,
    RowFilter,
)
from retention_rules.clock import PolicyClock
from retention_rules.model import (
    AggregateThenDeleteAction,
    AnonymizeAction,
    Dataset,
    Hold,
    Policy,
    Rollup,
)


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
        primary_key=tuple(dataset.primary_key),
        skip_marked=dataset.name if isinstance(dataset.action, AnonymizeAction) else None,
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


def rollup_sinks(dataset: Dataset) -> tuple[RollupSink, ...]:
    """The policy's rollups in the connector's vocabulary: which columns are summed,
    counted distinct, or kept for a median."""
    action = dataset.action
    if not isinstance(action, AggregateThenDeleteAction):
        return ()

    return tuple(
        RollupSink(
            name=rollup.name,
            period=rollup.period,
            dimensions=tuple(rollup.dimensions),
            sums=_measure_columns(rollup, "sum", "mean"),
            distinct=_measure_columns(rollup, "count_distinct"),
            quantiles=_measure_columns(rollup, "median"),
            min_cell_size=action.min_cell_size,
            subject=action.people or dataset.subject_key,
        )
        for rollup in action.rollups
    )


def _measure_columns(rollup: Rollup, *functions: str) -> tuple[str, ...]:
    found = (m.column for m in rollup.measures if m.function in functions)
    return tuple(dict.fromkeys(c for c in found if c is not None))


def execution_order(plans: list[RulePlan], parents: dict[str, set[str]]) -> list[RulePlan]:
    """Children first: a table whose rows point at another table's rows is processed
    before it, so a parent row is never deleted while a child still refers to it.

    `parents` maps each table to the tables its foreign keys refer to. Plans on tables
    unrelated by foreign keys keep the policy's order.
    """
    tables = list(dict.fromkeys(p.dataset.table for p in plans))
    sorter: TopologicalSorter[str] = TopologicalSorter()
    for table in tables:
        # A parent depends on its children having gone first.
        sorter.add(table)
        for parent in parents.get(table, set()) & set(tables):
            if parent != table:
                sorter.add(parent, table)
    sorter.prepare()
    ranked: dict[str, int] = {}
    while sorter.is_active():
        ready = sorted(sorter.get_ready(), key=tables.index)
        for table in ready:
            ranked[table] = len(ranked)
            sorter.done(table)
    return sorted(plans, key=lambda p: ranked[p.dataset.table])
