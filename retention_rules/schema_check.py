"""Check a policy against the live schema of its stores, through the connector protocol.

A binding to a renamed column would otherwise select nothing, silently keeping data
the policy says must go; so every name the policy uses is looked up before any work.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from anonymizers.operators import OperatorError, create_operator
from connectors.errors import StoreError
from connectors.protocol import Connector, TableInfo
from retention_rules.issues import Loc, PolicyIssue
from retention_rules.model import AggregateThenDeleteAction, AnonymizeAction, Dataset, Policy

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
    return issues


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
    yield from _check_clock(dataset, at, table, connector)
    yield from _check_operators(dataset, at, table)
    yield from _check_measures(dataset, at, table)
    for h, hold in enumerate(policy.holds):
        if hold.covers(dataset.name):
            for c, cond in enumerate(hold.where or ()):
                if cond.column not in table.columns:
                    yield _missing(("holds", h, "where", c, "column"), table, cond.column)


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
    if dataset.clock.join is not None:
        yield (*at, "clock", "join", "local"), dataset.clock.join.local
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
    info = clock_table.columns.get(clock.column)
    if info is not None and info.family not in _CLOCK_FAMILIES:
        yield PolicyIssue(
            (*at, "clock", "column"),
            f"clock column {clock_table.name}.{clock.column} has type {info.type_name}; "
            "a clock must be a date or timestamp column",
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
