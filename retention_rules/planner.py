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
    ForeignKeyInfo,
    RollupSink,
    RowFilter,
    TableInfo,
)
from connectors.sql.references import with_declared
from retention_rules.clock import PolicyClock
from retention_rules.model import (
    AggregateThenDeleteAction,
    AnonymizeAction,
    Dataset,
    DifferentialPrivacy,
    Hold,
    Policy,
    Rollup,
    Suppression,
)


@dataclass(frozen=True)
class RulePlan:
    """What one dataset binding selects today, before anything is counted."""

    dataset: Dataset
    cutoff: datetime
    selection: ExpirySelection
    holds: tuple[Hold, ...]
    lapsed_holds: tuple[Hold, ...] = ()
    inherited: dict[str, str] = field(default_factory=dict)
    """The holds reaching these rows through the rows they refer to (`inherited_holds`):
    each filter's name and its reason."""

    @property
    def hold_reasons(self) -> dict[str, str]:
        """Why rows are held, by filter name: the holds' own reasons, and theirs."""
        return {h.name: h.reason for h in self.holds} | self.inherited


@dataclass(frozen=True)
class PlanRow:
    """One line of the plan: a binding, its cut-off, its counts and its consequence."""

    rule: RulePlan
    counts: ExpiryCounts
    held_reasons: dict[str, str] = field(default_factory=dict)

    @property
    def consequence(self) -> str:
        return describe_action(self.rule.dataset, self.counts.expired)


def plan_rules(
    policy: Policy, clock: PolicyClock, references: References | None = None
) -> list[RulePlan]:
    """`references`: every bound table's references (`table_references`, with the
    stores' foreign keys); by default those the policy declares."""
    today = clock.today()
    known = declared_references(policy) if references is None else references
    plans = []
    for dataset in policy.datasets:
        protecting = protecting_holds(policy, dataset)
        covering = [h for h in policy.holds if h.name in protecting]
        active = tuple(h for h in covering if h.active_on(today))
        lapsed = tuple(h for h in covering if not h.active_on(today))
        cutoff = clock.cutoff(dataset.retention)
        selection = selection_for(dataset, cutoff, active, protecting)
        inherited = [
            (row_filter, reason)
            for hold, row_filter, reason in inherited_holds(policy, dataset, known)
            if hold.active_on(today)
        ]
        selection = replace(
            selection,
            exclusions=selection.exclusions + tuple(f for f, _ in inherited),
            declared_references=_declared_into(dataset, known),
        )
        reasons = {f.name: reason for f, reason in inherited}
        plans.append(RulePlan(dataset, cutoff, selection, active, lapsed, reasons))
    return foresee_removals(plans, parents=reference_parents(policy, known))


def foresee_removals(
    plans: list[RulePlan], failing: Iterable[str] = (), *, parents: Mapping[str, set[str]]
) -> list[RulePlan]:
    """Each plan learns what the run deletes in its store before it, so that counts
    made ahead of the run match it: a deleting plan, the other tables' deleting
    selections (the store keeps only those that refer to it); a plan with an event
    clock, the deleting selections of its event table that run before it in
    `execution_order` by `parents` (`reference_parents`), whose rows are gone by its
    turn. The bindings in `failing` delete nothing. A real run judges the store as it is
    then (`as_the_store_is`)."""
    failed = set(failing)
    deleting = [p for p in plans if p.selection.keep_referenced and p.dataset.name not in failed]
    foreseen = [
        replace(
            plan,
            selection=replace(
                plan.selection,
                removed_first=tuple(
                    other.selection
                    for other in deleting
                    if plan.selection.keep_referenced
                    and other.dataset.store == plan.dataset.store
                    and other.dataset.table != plan.dataset.table
                ),
                events_removed_first=(),  # foreseen below, in the run's order
            ),
        )
        for plan in plans
    ]
    turn = {id(plan): i for i, plan in enumerate(execution_order(foreseen, dict(parents)))}
    return [
        replace(plan, selection=replace(plan.selection, events_removed_first=removing))
        if (removing := _event_removals(plan, foreseen, turn, failed))
        else plan
        for plan in foreseen
    ]


def _event_removals(
    plan: RulePlan, plans: list[RulePlan], turn: Mapping[int, int], failed: set[str]
) -> tuple[ExpirySelection, ...]:
    """The deleting selections of the plan's event table that run before it, each as
    the run will judge it (with its own foreseen removals)."""
    event = plan.selection.event
    if event is None:
        return ()
    events = (plan.dataset.store, plan.dataset.db_schema, event.table)
    return tuple(
        other.selection
        for other in plans
        if other.selection.keep_referenced
        and other.dataset.name not in failed
        and table_key(other.dataset) == events
        and other.dataset.table != plan.dataset.table
        and turn[id(other)] < turn[id(plan)]
    )


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
        fallback = clock.fallback
        event = EventClock(
            clock.event_table,
            clock.column,
            clock.join.local,
            clock.join.event,
            fallback=None if fallback is None else fallback.column,
            fallback_format="timestamp" if fallback is None else fallback.format,
        )
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
        reasons = plan.hold_reasons | counts.reasons
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
    counted distinct, or kept for a median. A rollup released under differential
    privacy counts its people exactly at any size (``exact_people``): its noise assumes
    one person changes a cell's count by exactly one, which an estimate does not keep."""
    action = dataset.action
    if not isinstance(action, AggregateThenDeleteAction):
        return ()

    sinks = []
    for rollup in action.rollups:
        disclosure = action.disclosure(rollup)
        private = isinstance(disclosure, DifferentialPrivacy)
        sinks.append(
            RollupSink(
                name=rollup.name,
                period=rollup.period,
                dimensions=tuple(rollup.dimensions),
                sums=_measure_columns(rollup, "sum", "mean"),
                # a private rollup's one measure is its people, the exact set kept anyway
                distinct=() if private else _measure_columns(rollup, "count_distinct"),
                quantiles=_measure_columns(rollup, "median"),
                min_cell_size=_min_cell_size(disclosure),
                subject=action.people or dataset.subject_key,
                exact_people=private,
            )
        )
    return tuple(sinks)


def _min_cell_size(disclosure: Suppression | DifferentialPrivacy) -> int:
    """The fewest people a shown cell counts; under differential privacy every cell is
    shown (with noise), so nothing is withheld for its size."""
    return disclosure.min_cell_size or 1 if isinstance(disclosure, Suppression) else 1


def _measure_columns(rollup: Rollup, *functions: str) -> tuple[str, ...]:
    found = (m.column for m in rollup.measures if m.function in functions)
    return tuple(dict.fromkeys(c for c in found if c is not None))


def store_lanes(policy: Policy, plans: list[RulePlan]) -> list[list[int]]:
    """The plans (by position) in lanes that may run side by side: one lane per store,
    each in the plans' order (children first, `execution_order`). Stores a policy
    reference links (a dataset referring to one of another store, which orders the run)
    share a lane. Holds and event clocks read the binding's own store."""
    lead: dict[str, str] = {}

    def root(store: str) -> str:
        while lead.setdefault(store, store) != store:
            store = lead[store]
        return store

    bound = {d.name: d for d in policy.datasets}
    for dataset in policy.datasets:
        for reference in dataset.references:
            parent = bound.get(reference.dataset)
            if parent is not None:
                lead[root(dataset.store)] = root(parent.store)
    lanes: dict[str, list[int]] = {}
    for position, plan in enumerate(plans):
        lanes.setdefault(root(plan.dataset.store), []).append(position)
    return list(lanes.values())


def execution_order(plans: list[RulePlan], parents: dict[str, set[str]]) -> list[RulePlan]:
    """Children first: a table whose rows point at another table's rows is processed
    before it, so that the children a run deletes are gone when their parent's turn
    comes (a parent row a remaining child refers to is kept by the store).

    `parents` maps each table to the tables its rows refer to (`reference_parents`:
    foreign keys, and the policy's references). Plans on unrelated tables keep the
    policy's order; tables in a cycle
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


#: A bound table: its store, schema and name.
TableKey = tuple[str, str | None, str]
#: For each bound table, the references of its rows to other tables' rows.
References = Mapping[TableKey, tuple[ForeignKeyInfo, ...]]


def table_key(dataset: Dataset) -> TableKey:
    return (dataset.store, dataset.db_schema, dataset.table)


def declared_references(policy: Policy) -> dict[TableKey, tuple[ForeignKeyInfo, ...]]:
    """The references the policy gives bound tables, as keys marked ``declared``: each
    ``references:`` entry to a dataset of the same store and schema (one across stores
    only orders the run: `reference_parents`), and a clock read from another bound
    table by that binding's primary key: a row clocked by its parent's date is its
    parent's child (order lines clocked by their order's ``ordered_at``)."""
    found: list[tuple[TableKey, ForeignKeyInfo]] = []
    bound = {d.name: d for d in policy.datasets}
    for dataset in policy.datasets:
        home = table_key(dataset)
        for reference in dataset.references:
            parent = bound.get(reference.dataset)
            if parent is None or table_key(parent)[:2] != home[:2]:
                continue
            found.append(
                (
                    home,
                    ForeignKeyInfo(
                        tuple(reference.columns),
                        parent.table,
                        tuple(reference.columns.values()),
                        declared=True,
                    ),
                )
            )
        clock = dataset.clock
        if clock.event_table is None or clock.join is None or clock.event_table == dataset.table:
            continue
        event = (dataset.store, dataset.db_schema, clock.event_table)
        if any(
            table_key(d) == event and d.primary_key == [clock.join.event] for d in bound.values()
        ):
            key = ForeignKeyInfo(
                (clock.join.local,), clock.event_table, (clock.join.event,), declared=True
            )
            found.append((home, key))
    return with_declared({}, found)


def table_references(
    policy: Policy, connectors: Mapping[str, Connector]
) -> dict[TableKey, tuple[ForeignKeyInfo, ...]]:
    """For each bound table, its rows' references: the foreign keys its store declares
    (reflected; stores not in `connectors` have none) and those the policy declares
    (`declared_references`), one input for ordering, cycles, kept parents and holds."""
    return references_of(policy, bound_tables(policy, connectors))


def bound_tables(policy: Policy, connectors: Mapping[str, Connector]) -> dict[str, TableInfo]:
    """Each binding's table as its store describes it, by dataset name (a connector keeps
    what it reflected once); bindings whose store is not in ``connectors`` or fails, or
    whose table is missing, are left out (the binding's own check reports them)."""
    tables: dict[str, TableInfo] = {}
    for dataset in policy.datasets:
        connector = connectors.get(dataset.store)
        if connector is None:
            continue
        try:
            info = connector.table_info(dataset.table, dataset.db_schema)
        except StoreError:
            continue
        if info is not None:
            tables[dataset.name] = info
    return tables


def references_of(
    policy: Policy, tables: Mapping[str, TableInfo] | None = None
) -> dict[TableKey, tuple[ForeignKeyInfo, ...]]:
    """`table_references` from tables already described (``tables``: dataset name -> its
    table; None: the policy's own references alone)."""
    reflected: dict[TableKey, tuple[ForeignKeyInfo, ...]] = {}
    for dataset in policy.datasets:
        info = (tables or {}).get(dataset.name)
        if info is not None:
            reflected[table_key(dataset)] = info.foreign_keys
    declared = [(table, key) for table, keys in declared_references(policy).items() for key in keys]
    return with_declared(reflected, declared)


def reference_parents(
    policy: Policy, references: References, skip: Iterable[str] = ()
) -> dict[str, set[str]]:
    """For each bound table, the tables its rows refer to (`execution_order`'s and
    `reference_cycles`' input): `references`, and the policy's references to a dataset
    of another store, which can only order the run. Tables bound only by the bindings
    in `skip` (they will not run) are left out."""
    skipped = set(skip)
    running = {table_key(d) for d in policy.datasets if d.name not in skipped}
    parents: dict[str, set[str]] = {}
    for table, keys in references.items():
        if table in running:
            parents.setdefault(table[2], set()).update(k.referred_table for k in keys)
    bound = {d.name: d for d in policy.datasets}
    for dataset in policy.datasets:
        if dataset.name in skipped:
            continue
        for reference in dataset.references:
            parent = bound.get(reference.dataset)
            if parent is not None:
                parents.setdefault(dataset.table, set()).add(parent.table)
    return parents


def _declared_into(
    dataset: Dataset, references: References
) -> tuple[tuple[str, ForeignKeyInfo], ...]:
    """The references the policy declares into the binding's table, for the store to
    count with its own foreign keys: ``(child table, key)``."""
    store, schema, table = table_key(dataset)
    return tuple(
        (child, key)
        for (child_store, child_schema, child), keys in references.items()
        if (child_store, child_schema) == (store, schema)
        for key in keys
        if key.declared and key.referred_table == table
    )


def inherited_holds(
    policy: Policy, dataset: Dataset, references: References
) -> list[tuple[Hold, RowFilter, str]]:
    """Every hold protecting a row the binding's rows refer to (their parent, its own
    parent, through bound tables), as a filter through those references, with its
    reason: the lines of a held order are held with it. A table's references to itself
    are not followed (its rows are judged one by one)."""
    found: list[tuple[Hold, RowFilter, str]] = []
    names: set[str] = set()
    by_table: dict[TableKey, Dataset] = {}
    for bound in policy.datasets:
        by_table.setdefault(table_key(bound), bound)

    def walk(table: TableKey, path: tuple[ForeignKeyInfo, ...], seen: frozenset[str]) -> None:
        for key in references.get(table, ()):
            parent = (table[0], table[1], key.referred_table)
            owner = by_table.get(parent)
            if key.referred_table in seen or owner is None:
                continue  # an unbound table: no hold names its rows
            chain = (*path, key)
            steps = [dataset.table, *(k.referred_table for k in chain)]
            route = ", ".join(
                f"{child}.{'+'.join(k.columns)} -> {to}.{'+'.join(k.referred_columns)}"
                for child, to, k in zip(steps[:-1], steps[1:], chain, strict=True)
            )
            for name, holder in protecting_holds(policy, owner).items():
                hold = next(h for h in policy.holds if h.name == name)
                label = f"{name} via {' via '.join(steps[1:])}"
                if label in names:  # two references to one table: say which
                    label = f"{label} ({route})"
                names.add(label)
                conditions = hold_filter(hold, holder).conditions
                reason = (
                    f"{hold.reason} (held with the {key.referred_table} row it refers to: {route})"
                )
                found.append((hold, RowFilter(label, conditions, chain), reason))
            walk(parent, chain, seen | {key.referred_table})

    walk(table_key(dataset), (), frozenset({dataset.table}))
    return found
