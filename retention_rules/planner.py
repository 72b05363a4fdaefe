"""Turn a policy into per-dataset selections, and count them into a plan.

`plan_rules` is pure (policy + clock in, selections out); `evaluate` asks each store,
through the connector protocol only, how many rows every selection holds.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from graphlib import TopologicalSorter

from connectors.errors import StoreError
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
        protecting = protecting_holds(policy, dataset)
        covering = [h for h in policy.holds if h.name in protecting]
        active = tuple(h for h in covering if h.active_on(today))
        lapsed = tuple(h for h in covering if not h.active_on(today))
        cutoff = clock.cutoff(dataset.retention)
        selection = selection_for(dataset, cutoff, active, protecting)
        plans.append(RulePlan(dataset, cutoff, selection, active, lapsed))
    return foresee_removals(plans)


def foresee_removals(plans: list[RulePlan], failing: Iterable[str] = ()) -> list[RulePlan]:
    """Each deleting plan learns what the run deletes in its store before it (the other
    tables' deleting selections, but not those of the bindings in `failing`; the store
    keeps only those that refer to it), so that counts made ahead of the run match it.
    A real run judges the store as it is then (`as_the_store_is`)."""
    failed = set(failing)
    deleting = [p for p in plans if p.selection.keep_referenced and p.dataset.name not in failed]
    return [
        replace(
            plan,
            selection=replace(
                plan.selection,
                removed_first=tuple(
                    other.selection
                    for other in deleting
                    if other.dataset.store == plan.dataset.store
                    and other.dataset.table != plan.dataset.table
                ),
            ),
        )
        if plan.selection.keep_referenced
        else plan
        for plan in plans
    ]


def as_the_store_is(selection: ExpirySelection) -> ExpirySelection:
    """The selection judged on the store as it is, without foreseen removals: what a
    real run counts just before acting."""
    return replace(selection, removed_first=())


def protecting_holds(policy: Policy, dataset: Dataset) -> dict[str, Dataset]:
    """Every hold protecting the binding's rows, with the binding whose subject key
    names them: a hold covering one binding of a table protects those rows from every
    binding of the same store, schema and table, its subject keys read in the covering
    binding's subject key column (the first such binding, when the hold names several)."""
    same_table = [
        d for d in policy.datasets
        if (d.store, d.db_schema, d.table) == (dataset.store, dataset.db_schema, dataset.table)
    ]  # fmt: skip
    protecting: dict[str, Dataset] = {}
    for hold in policy.holds:
        if hold.covers(dataset.name):
            protecting[hold.name] = dataset
            continue
        owner = next((d for d in same_table if hold.covers(d.name)), None)
        if owner is not None:
            protecting[hold.name] = owner
    return protecting


def selection_for(
    dataset: Dataset,
    cutoff: datetime,
    holds: tuple[Hold, ...],
    owners: Mapping[str, Dataset] | None = None,
) -> ExpirySelection:
    """`owners`: by hold name, the binding each hold names its rows through
    (`protecting_holds`); by default the dataset itself."""
    owned = owners or {}
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
        exclusions=tuple(hold_filter(hold, owned.get(hold.name, dataset)) for hold in holds),
        primary_key=tuple(dataset.primary_key),
        skip_marked=dataset.name if isinstance(dataset.action, AnonymizeAction) else None,
        keep_referenced=not isinstance(dataset.action, AnonymizeAction),
        clock_format=clock.format,
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
    rows = []
    for plan in plans:
        counts = connectors[plan.dataset.store].count_expiry(plan.selection)
        reasons = {h.name: h.reason for h in plan.holds} | counts.reasons
        rows.append(PlanRow(plan, counts, reasons))
    return rows


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
    before it, so that the children a run deletes are gone when their parent's turn
    comes (a parent row a remaining child refers to is kept by the store).

    `parents` maps each table to the tables its foreign keys refer to. Plans on tables
    unrelated by foreign keys keep the policy's order; tables in a cycle
    (`reference_cycles`, which validation reports) keep it among themselves.
    """
    tables = list(dict.fromkeys(p.dataset.table for p in plans))
    cycles = reference_cycles(tables, parents)
    cycle_of = {table: i for i, cycle in enumerate(cycles) for table in cycle}
    sorter: TopologicalSorter[str] = TopologicalSorter()
    for table in tables:
        # A parent depends on its children having gone first.
        sorter.add(table)
        for parent in parents.get(table, set()) & set(tables):
            same_cycle = table in cycle_of and cycle_of.get(parent) == cycle_of[table]
            if parent != table and not same_cycle:
                sorter.add(parent, table)
    sorter.prepare()
    ranked: dict[str, int] = {}
    while sorter.is_active():
        ready = sorted(sorter.get_ready(), key=tables.index)
        for table in ready:
            ranked[table] = len(ranked)
            sorter.done(table)
    return sorted(plans, key=lambda p: ranked[p.dataset.table])


def reference_cycles(tables: Iterable[str], parents: Mapping[str, set[str]]) -> list[list[str]]:
    """The groups of `tables` whose foreign keys lead from each back to itself through
    the others (strongly connected, more than one table), each in the given order.
    A table referring to itself is not a cycle: its rows are judged one by one."""
    order = list(dict.fromkeys(tables))
    known = set(order)
    edges = {t: sorted(parents.get(t, set()) & known, key=order.index) for t in order}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(table: str) -> None:  # Tarjan's algorithm
        index[table] = low[table] = len(index)
        stack.append(table)
        for parent in edges[table]:
            if parent not in index:
                visit(parent)
                low[table] = min(low[table], low[parent])
            elif parent in stack:
                low[table] = min(low[table], index[parent])
        if low[table] == index[table]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == table:
                    break
            if len(group) > 1:
                cycles.append(sorted(group, key=order.index))

    for table in order:
        if table not in index:
            visit(table)
    return sorted(cycles, key=lambda c: order.index(c[0]))


def foreign_key_parents(
    policy: Policy, connectors: Mapping[str, Connector], skip: Iterable[str] = ()
) -> dict[str, set[str]]:
    """For each bound table, the tables its foreign keys refer to, as reflected; bindings
    named in `skip` (they will not run) and stores not in `connectors` are left out."""
    skipped = set(skip)
    parents: dict[str, set[str]] = {}
    for dataset in policy.datasets:
        connector = connectors.get(dataset.store)
        if connector is None or dataset.name in skipped:
            continue
        try:
            info = connector.table_info(dataset.table, dataset.db_schema)
        except StoreError:
            continue  # the binding's own check reports it
        if info is not None:
            parents[dataset.table] = {fk.referred_table for fk in info.foreign_keys}
    return parents
