"""Check a policy against the live schema of its stores, through the connector protocol.

A binding to a renamed column would otherwise select nothing, silently keeping data
the policy says must go; so every name the policy uses is looked up before any work.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from anonymizers.operators import OperatorError
from anonymizers.registry import create_operator
from connectors.errors import StoreError
from connectors.protocol import Connector, TableInfo
from connectors.times import TimeContext
from retention_rules.issues import Loc, PolicyIssue
from retention_rules.model import AggregateThenDeleteAction, AnonymizeAction, Dataset, Policy
from retention_rules.planner import (
    bound_tables,
    protecting_holds,
    reference_cycles,
    reference_parents,
    table_references,
)
from retention_rules.subjects import index_warnings, unreached

_CLOCK_FAMILIES = ("datetime", "date")
_NUMERIC_FAMILIES = ("integer", "numeric")


def check_live_schema(policy: Policy, connectors: Mapping[str, Connector]) -> list[PolicyIssue]:
    """Every problem found; stores that cannot be reached are one problem each."""
    issues: list[PolicyIssue] = []
    reachable: set[str] = set()
    for name, connector in connectors.items():
        try:
            connector.ping()
            reachable.add(name)
        except StoreError as exc:
            issues.append(PolicyIssue(("stores", name, "url"), f"store unreachable: {exc.reason}"))
    for i, dataset in enumerate(policy.datasets):
        if dataset.store in reachable:
            issues.extend(_check_dataset(policy, i, dataset, connectors[dataset.store]))
            issues.extend(_referred_columns(policy, i, dataset, connectors, reachable))
    issues.extend(_cycles(policy, {n: c for n, c in connectors.items() if n in reachable}))
    return list(dict.fromkeys(issues))  # a hold on two bindings of a table is checked twice


#: ``ON DELETE`` rules that change the referring rows.
_CHANGING_RULES = ("CASCADE", "SET NULL", "SET DEFAULT")


def cascade_warnings(policy: Policy, connectors: Mapping[str, Connector]) -> list[PolicyIssue]:
    """Every foreign key with ``ON DELETE CASCADE``, ``SET NULL`` or ``SET DEFAULT`` that
    leads from a table a binding deletes from, or into a bound table: one warning each,
    at the deleting binding (else at the bound child).

    Warnings, not problems: a run never deletes a row another row still refers to (it
    is kept and counted as ``referenced by <table>.<columns>``), so the database's rule
    never fires on Tenure's deletes. What is named is what the database would do if
    anything else deleted the parent, and why some expired rows will be kept."""
    warnings: list[PolicyIssue] = []
    for store, connector in connectors.items():
        bound = [(i, d) for i, d in enumerate(policy.datasets) if d.store == store]
        if not bound:
            continue
        try:
            tables = {t: connector.table_info(t) for t in connector.table_names()}
        except StoreError:
            continue  # reported by the schema check
        for child, info in sorted(tables.items()):
            for key in info.foreign_keys if info is not None else ():
                rule = (key.on_delete or "").upper()
                if rule not in _CHANGING_RULES:
                    continue
                deleting = [
                    (i, d) for i, d in bound if d.table == key.referred_table and _deletes(d)
                ]
                children = [(i, d) for i, d in bound if d.table == child]
                if not deleting and not children:
                    continue
                columns = ", ".join(f"{child}.{c}" for c in key.columns)
                held = [h.name for h in policy.holds for _, d in children if h.covers(d.name)]
                into = (
                    f"bound by {', '.join(d.name for _, d in children)}"
                    + (f", held by {', '.join(dict.fromkeys(held))}" if held else "")
                    if children
                    else "not bound"
                )
                if deleting:
                    effect = (
                        f"a {key.referred_table} row a {child} row refers to is kept "
                        f"(counted as 'referenced by {child}.{','.join(key.columns)}')"
                    )
                else:
                    effect = f"Tenure does not delete {key.referred_table} rows"
                index = (deleting or children)[0][0]
                warnings.append(
                    PolicyIssue(
                        ("datasets", index, "table"),
                        f"ON DELETE {rule} from {key.referred_table} into {columns} ({into}): "
                        f"deleting a {key.referred_table} row {_effect(rule, child)}; "
                        f"{effect}",
                    )
                )
    return warnings


def _effect(rule: str, child: str) -> str:
    return f"deletes its {child} rows" if rule == "CASCADE" else f"unlinks its {child} rows"


def _deletes(dataset: Dataset) -> bool:
    return not isinstance(dataset.action, AnonymizeAction)


def _cycles(policy: Policy, connectors: Mapping[str, Connector]) -> Iterator[PolicyIssue]:
    """Bound tables whose references (foreign keys, the policy's `references:`, clocks
    read from a parent) form a cycle cannot be processed children first:
    when one of their bindings deletes, one problem, at the first of them, stops them
    all (the other bindings still run)."""
    tables = [d.table for d in policy.datasets if d.store in connectors]
    parents = reference_parents(policy, table_references(policy, connectors))
    for cycle in reference_cycles(tables, parents):
        bound = [(i, d) for i, d in enumerate(policy.datasets) if d.table in cycle]
        if not any(_deletes(d) for _, d in bound):
            continue  # rewritten in place: the order does not matter
        names = [d.name for _, d in bound]
        yield PolicyIssue(
            ("datasets", bound[0][0], "table"),
            f"the references (foreign keys, or the policy's) of tables {', '.join(cycle)} "
            "form a cycle "
            f"({' -> '.join([*cycle, cycle[0]])}): their rows cannot be processed children "
            f"first, so bindings {', '.join(names)} do not run",
            datasets=tuple(names[1:]),
        )


def _check_key(at: Loc, dataset: Dataset, table: TableInfo) -> Iterator[PolicyIssue]:
    """The policy's primary_key must name one row: a key two rows share would delete or
    rewrite both. It must contain the table's primary key or one of its unique keys."""
    key = set(dataset.primary_key)
    if not key <= set(table.columns):
        return  # each missing column is reported on its own
    candidates = [k for k in (table.primary_key, *table.unique_keys) if k]
    if any(set(candidate) <= key for candidate in candidates):
        return
    named = ", ".join(dataset.primary_key)
    if candidates:
        use = " or ".join("[" + ", ".join(repr(c) for c in k) + "]" for k in candidates)
        advice = f"use its primary or a unique key: {use}"
    else:
        advice = "the table has no primary or unique key; add one"
    yield PolicyIssue(
        (*at, "primary_key"),
        f"primary_key [{named}] is not unique in table {table.name!r} (two rows may share "
        f"it, and would be deleted or rewritten together); {advice}",
    )


def _check_dataset(
    policy: Policy, index: int, dataset: Dataset, connector: Connector
) -> Iterator[PolicyIssue]:
    at: Loc = ("datasets", index)
    try:
        table = connector.table_info(dataset.table, dataset.db_schema)
    except StoreError as exc:  # an unreadable file, a mailbox that cannot be parsed
        yield PolicyIssue((*at, "table"), str(exc))
        return
    if table is None:
        yield PolicyIssue(
            (*at, "table"), f"table {dataset.table!r} does not exist in store {dataset.store!r}"
        )
        return
    for loc, column in _columns_named(dataset, at):
        if column not in table.columns:
            yield _missing(loc, table, column)
    yield from _check_key(at, dataset, table)
    yield from _check_clock(dataset, at, table, connector)
    yield from _check_operators(dataset, at, table)
    yield from _check_measures(dataset, at, table)
    yield from _check_holds(policy, dataset, table)
    yield from _check_found_in(policy, dataset, table)


def _check_found_in(policy: Policy, dataset: Dataset, table: TableInfo) -> Iterator[PolicyIssue]:
    """The columns ``subjects.found_in`` names in the binding's table exist (the file
    check knows only those the binding categorizes or keys)."""
    subjects = policy.subjects
    for column in (subjects.found_in.get(dataset.name) or {}) if subjects else {}:
        if column not in table.columns:
            yield _missing(("subjects", "found_in", dataset.name, column), table, column)


def subject_problems(policy: Policy, connectors: Mapping[str, Connector]) -> list[PolicyIssue]:
    """The datasets no identifier of ``subjects:`` reaches, following the stores' foreign
    keys too (`retention_rules.subjects.unreached`); a binding whose table could not be
    read is left to the schema check's own problem."""
    tables = bound_tables(policy, connectors)
    names = {d.name for d in policy.datasets if d.name not in tables}
    return [
        issue
        for issue in unreached(policy, tables)
        if not (issue.loc[:1] == ("datasets",) and _named(policy, issue.loc) in names)
    ]


def subject_warnings(policy: Policy, connectors: Mapping[str, Connector]) -> list[PolicyIssue]:
    """Each column a search for one person filters on that no index of its table
    begins with, in stores that keep indexes (`retention_rules.subjects.index_warnings`)."""
    return index_warnings(policy, bound_tables(policy, connectors))


def _named(policy: Policy, loc: Loc) -> str:
    index = loc[1]
    return policy.datasets[index].name if isinstance(index, int) else ""


def _check_holds(policy: Policy, dataset: Dataset, table: TableInfo) -> Iterator[PolicyIssue]:
    """Every hold protecting the binding's rows names columns of its table, and values
    those columns can hold, read as the run binds them (`TimeContext.bind_value`: dates
    in the policy's zone, integers as integers)."""
    times = TimeContext(policy.stores[dataset.store].naive_timezone, policy.timezone)
    owners = protecting_holds(policy, dataset)
    for h, hold in enumerate(policy.holds):
        if hold.name not in owners:
            continue
        at: Loc = ("holds", h)
        tested: list[tuple[Loc, str, Any]] = []
        if hold.subject_keys is not None:
            column = owners[hold.name].subject_key
            tested += [
                ((*at, "subject_keys", k), column, v) for k, v in enumerate(hold.subject_keys)
            ]
        for c, cond in enumerate(hold.where or ()):
            if cond.column not in table.columns:
                yield _missing((*at, "where", c, "column"), table, cond.column)
                continue
            if isinstance(cond.value, list):
                tested += [
                    ((*at, "where", c, "value", v), cond.column, value)
                    for v, value in enumerate(cond.value)
                ]
            elif cond.value is not None:
                tested.append(((*at, "where", c, "value"), cond.column, cond.value))
        for loc, column, value in tested:
            info = table.columns.get(column)
            if info is None:
                continue  # the binding's own columns are checked on their own
            try:
                times.bind_value(info, value)
            except ValueError as exc:
                yield PolicyIssue(
                    loc, f"{exc}: column {table.name}.{column} has type {info.type_name}"
                )


def _referred_columns(
    policy: Policy,
    index: int,
    dataset: Dataset,
    connectors: Mapping[str, Connector],
    reachable: set[str],
) -> Iterator[PolicyIssue]:
    """The columns a ``references:`` entry names in the other binding's table exist
    (those of the binding's own table are among `_columns_named`)."""
    bound = {d.name: d for d in policy.datasets}
    for r, reference in enumerate(dataset.references):
        parent = bound.get(reference.dataset)
        if parent is None or parent.store not in reachable:
            continue  # an unknown dataset is the file check's; a store's own problem
        try:
            table = connectors[parent.store].table_info(parent.table, parent.db_schema)
        except StoreError:
            continue  # reported at the parent's binding
        if table is None:
            continue
        for column, referred in reference.columns.items():
            if referred not in table.columns:
                yield _missing(
                    ("datasets", index, "references", r, "columns", column), table, referred
                )


def read_columns(policy: Policy, dataset: Dataset) -> tuple[str, ...]:
    """The columns of a binding's own table a run reads to choose and change its rows:
    every one the policy names (keys, clock, references, what it rewrites or
    aggregates, the columns of the holds protecting it) but its ``columns:`` list, which
    only classifies."""
    at: Loc = ("datasets", 0)
    named = [column for loc, column in _columns_named(dataset, at) if loc[2] != "columns"]
    owners = protecting_holds(policy, dataset)
    named += [c.column for h in policy.holds if h.name in owners for c in h.where or ()]
    return tuple(dict.fromkeys(named))


def _columns_named(dataset: Dataset, at: Loc) -> Iterator[tuple[Loc, str]]:
    """Every column of the dataset's own table the policy mentions, with its place."""
    for k, key in enumerate(dataset.primary_key):
        yield (*at, "primary_key", k), key
    yield (*at, "subject_key"), dataset.subject_key
    for column in dataset.columns:
        yield (*at, "columns", column), column
    action = dataset.action
    if isinstance(action, AnonymizeAction):
        for column in action.columns:
            yield (*at, "action", "columns", column), column
    if isinstance(action, AggregateThenDeleteAction):
        if action.people is not None:
            yield (*at, "action", "people"), action.people
        for r, rollup in enumerate(action.rollups):
            for d, dimension in enumerate(rollup.dimensions):
                yield (*at, "action", "rollups", r, "dimensions", d), dimension
            for m, measure in enumerate(rollup.measures):
                if measure.column is not None:
                    yield (*at, "action", "rollups", r, "measures", m), measure.column
    for r, reference in enumerate(dataset.references):
        for column in reference.columns:
            yield (*at, "references", r, "columns", column), column
    if dataset.clock.join is not None:
        yield (*at, "clock", "join", "local"), dataset.clock.join.local
        if dataset.clock.fallback is not None:
            yield (*at, "clock", "if_no_event", "column"), dataset.clock.fallback.column
    else:
        yield (*at, "clock", "column"), dataset.clock.column


def _check_clock(
    dataset: Dataset, at: Loc, table: TableInfo, connector: Connector
) -> Iterator[PolicyIssue]:
    clock = dataset.clock
    clock_table = table
    if clock.event_table is not None and clock.join is not None:
        event_table = connector.table_info(clock.event_table, dataset.db_schema)
        if event_table is None:
            yield PolicyIssue(
                (*at, "clock", "event_table"),
                f"table {clock.event_table!r} does not exist in store {dataset.store!r}",
            )
            return
        for loc, column in (
            ((*at, "clock", "column"), clock.column),
            ((*at, "clock", "join", "event"), clock.join.event),
        ):
            if column not in event_table.columns:
                yield _missing(loc, event_table, column)
        clock_table = event_table
    yield from _clock_type((*at, "clock", "column"), clock_table, clock.column, clock.format)
    if clock.fallback is not None:  # the record's own column
        loc = (*at, "clock", "if_no_event", "column")
        yield from _clock_type(loc, table, clock.fallback.column, clock.fallback.format)


def _clock_type(
    loc: Loc, table: TableInfo, column: str, clock_format: str
) -> Iterator[PolicyIssue]:
    """A clock column must hold what its format reads."""
    info = table.columns.get(column)
    if clock_format == "epoch_seconds":  # integers, or SQLite's untyped DATETIME
        if info is not None and info.family not in (*_NUMERIC_FAMILIES, *_CLOCK_FAMILIES):
            yield PolicyIssue(
                loc,
                f"clock column {table.name}.{column} has type {info.type_name}; "
                "epoch_seconds needs an integer column",
            )
    elif info is not None and info.family not in _CLOCK_FAMILIES:
        yield PolicyIssue(
            loc,
            f"clock column {table.name}.{column} has type {info.type_name}; "
            "a clock must be a date or timestamp column (or set format: epoch_seconds)",
        )


def _check_operators(dataset: Dataset, at: Loc, table: TableInfo) -> Iterator[PolicyIssue]:
    """An operator's output must fit its column: NULL into a NOT NULL column, or text
    into a date or number column, would fail half-way through a run."""
    if not isinstance(dataset.action, AnonymizeAction):
        return
    for column, spec in dataset.action.columns.items():
        info = table.columns.get(column)
        if info is None:
            continue
        loc = (*at, "action", "columns", column)
        if spec.operator == "null" and not info.nullable:
            yield PolicyIssue(
                loc,
                f"column {table.name}.{column} is NOT NULL; use redact or replace instead of null",
            )
        try:
            operator = create_operator(spec.operator, spec.params)
        except OperatorError:
            continue  # the loader reports bad parameters with their place
        if operator.writes_text() and info.family != "text":
            yield PolicyIssue(
                loc,
                f"operator {spec.operator} writes text; column {table.name}.{column} has type "
                f"{info.type_name}",
            )


def _check_measures(dataset: Dataset, at: Loc, table: TableInfo) -> Iterator[PolicyIssue]:
    if not isinstance(dataset.action, AggregateThenDeleteAction):
        return
    for r, rollup in enumerate(dataset.action.rollups):
        for m, measure in enumerate(rollup.measures):
            info = table.columns.get(measure.column or "")
            numeric_needed = measure.function in ("sum", "mean", "median")
            if numeric_needed and info is not None and info.family not in _NUMERIC_FAMILIES:
                yield PolicyIssue(
                    (*at, "action", "rollups", r, "measures", m),
                    f"{measure.function} needs a numeric column; "
                    f"{table.name}.{info.name} has type {info.type_name}",
                )


def _missing(loc: Loc, table: TableInfo, column: str) -> PolicyIssue:
    return PolicyIssue(loc, f"column {column!r} does not exist in table {table.name!r}")
