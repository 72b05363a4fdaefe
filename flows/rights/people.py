"""Who a request is about: the person's identifiers across stores, and their rows.

A request gives some identifiers (an e-mail address, a cookie, a customer number). The
policy's ``subjects:`` section says which columns of each dataset hold which identifier;
a row holding two identifiers links them (a customer row links its number and its
address). `resolve` follows those links until nothing new is found, reading only the rows
that hold a value already known, and refuses to go on when the identifiers lead to two
different people: it never merges them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from connectors.errors import StoreError
from connectors.protocol import (
    ColumnInfo,
    Condition,
    Connector,
    ExpirySelection,
    RowFilter,
    TableInfo,
)
from retention_rules.model import Dataset, Policy
from retention_rules.planner import selection_for
from retention_rules.subjects import SubjectColumn, subject_columns

#: Rows read per chunk while looking a person up (a person has few rows).
LOOKUP_CHUNK = 1_000


class RequestRefused(Exception):
    """A request Tenure must not act on as asked: one line says why."""


@dataclass(frozen=True)
class Person:
    """Every value of every identifier found for one person, as text."""

    identifiers: dict[str, frozenset[str]]
    found_through: dict[str, list[str]] = field(default_factory=dict)
    """For each identifier found beyond those given: the datasets that linked it."""

    def values(self, identifier: str) -> frozenset[str]:
        return self.identifiers.get(identifier, frozenset())


@dataclass
class Reach:
    """What the stores say of each dataset's table, and the columns naming a person."""

    columns: dict[str, tuple[SubjectColumn, ...]]
    tables: dict[str, TableInfo]
    parents: dict[tuple[str, str], TableInfo] = field(default_factory=dict)
    """The tables reached through foreign keys, by (store, table)."""
    failed: dict[str, str] = field(default_factory=dict)
    """Datasets whose store could not be read, and why."""


def reach(policy: Policy, connectors: Mapping[str, Connector]) -> Reach:
    """Reflect each bound table once, and the columns that name a person in each."""
    tables: dict[str, TableInfo] = {}
    failed: dict[str, str] = {}
    for dataset in policy.datasets:
        connector = connectors.get(dataset.store)
        if connector is None:
            failed[dataset.name] = f"store {dataset.store} could not be opened"
            continue
        try:
            info = connector.table_info(dataset.table, dataset.db_schema)
        except StoreError as exc:
            failed[dataset.name] = exc.reason
            continue
        if info is None:
            failed[dataset.name] = f"no table {dataset.table} in store {dataset.store}"
            continue
        tables[dataset.name] = info
    found = Reach(subject_columns(policy, tables), tables, failed=failed)
    for dataset in policy.datasets:
        for column in found.columns.get(dataset.name, ()):
            for key in column.through:
                place = (dataset.store, key.referred_table)
                if place not in found.parents and dataset.name not in failed:
                    parent = connectors[dataset.store].table_info(
                        key.referred_table, dataset.db_schema
                    )
                    if parent is not None:
                        found.parents[place] = parent
    return found


def typed(value: str, info: ColumnInfo | None) -> Any:
    """An identifier's text as the column holds it (a customer number in an integer
    column is compared as an integer); None when it cannot be such a value."""
    if info is None or info.family in ("text", "other"):
        return value
    try:
        if info.family == "integer":
            return int(value)
        if info.family == "numeric":
            return Decimal(value)
    except (ValueError, InvalidOperation):
        return None
    return value


def person_filters(
    dataset: Dataset, found: Reach, person: Person, *, extra: tuple[Condition, ...] = ()
) -> tuple[RowFilter, ...]:
    """The filters selecting the person's rows of ``dataset``: one per column naming
    them (ORed), each with ``extra`` conditions on the row itself."""
    filters = []
    info = found.tables.get(dataset.name)
    for column in found.columns.get(dataset.name, ()):
        holder = info
        if column.through:
            holder = found.parents.get((dataset.store, column.through[-1].referred_table))
        spec = holder.columns.get(column.column) if holder is not None else None
        values = sorted(
            {
                v
                for v in (typed(t, spec) for t in person.values(column.identifier))
                if v is not None
            },
            key=str,
        )
        if not values:
            continue
        condition = Condition(column.column, "in", tuple(values))
        if column.through:
            filters.append(
                RowFilter(f"{column.identifier}:{column.column}", (condition,), column.through)
            )
        else:
            filters.append(RowFilter(f"{column.identifier}:{column.column}", (condition,)))
    if extra and any(f.through for f in filters):
        raise RequestRefused(
            f"dataset {dataset.name} names the person through another table: a condition on "
            "its own rows cannot be added there"
        )
    return tuple(RowFilter(f.name, (*f.conditions, *extra), f.through) for f in filters)


def person_selection(
    dataset: Dataset, found: Reach, person: Person, now: datetime
) -> ExpirySelection | None:
    """Every row of the person in the dataset, whatever its clock and holds (None: the
    person's identifiers name no column of it)."""
    filters = person_filters(dataset, found, person)
    if not filters:
        return None
    base = selection_for(dataset, now, ())
    return replace(
        base, only=filters, every_row=True, keep_referenced=False, skip_marked=None, exclusions=()
    )


def resolve(
    policy: Policy,
    connectors: Mapping[str, Connector],
    given: Mapping[str, Iterable[str]],
) -> tuple[Person, Reach]:
    """Follow the links between identifiers from those ``given`` until nothing new is
    found. Raises `RequestRefused` when the policy cannot tell who people are, an
    identifier is not the policy's, or the identifiers lead to two different people."""
    subjects = policy.subjects
    if subjects is None:
        raise RequestRefused(
            f"policy {policy.name} has no subjects: section: it cannot tell whose records are whose"
        )
    unknown = sorted(set(given) - set(subjects.identifiers))
    if unknown:
        known = ", ".join(sorted(subjects.identifiers))
        raise RequestRefused(f"unknown identifier {unknown[0]!r} (the policy's: {known})")
    found = reach(policy, connectors)
    caseless = {
        name
        for name, spec in subjects.identifiers.items()
        if "EMAIL_ADDRESS" in (policy.categories[spec.category].entities or [])
    }
    values = {name: _variants(name, map(str, v), caseless) for name, v in given.items() if v}
    if not any(values.values()):
        raise RequestRefused("a request needs at least one identifier value")
    through: dict[str, list[str]] = {}
    person = subjects.person
    changed = True
    asked: dict[str, dict[str, frozenset[str]]] = {}  # what each dataset was read for
    while changed:
        changed = False
        for dataset in policy.datasets:
            columns = [c for c in found.columns.get(dataset.name, ()) if not c.through]
            if len({c.identifier for c in columns}) < 2 or dataset.name in found.failed:
                continue
            wanted = {c.identifier: frozenset(values.get(c.identifier, ())) for c in columns}
            place = repr((dataset.store, dataset.db_schema, dataset.table, columns))
            if asked.get(place) == wanted:
                continue  # nothing new to look it up by since it (its table) was read
            asked[place] = wanted
            current = Person({k: frozenset(v) for k, v in values.items()})
            selection = person_selection(dataset, found, current, datetime.now(UTC))
            if selection is None:
                continue
            names = [c.column for c in columns]
            try:
                chunks = connectors[dataset.store].read_rows(selection, names, LOOKUP_CHUNK)
                rows = [row for chunk in chunks for row in chunk]
            except StoreError as exc:
                found.failed[dataset.name] = exc.reason
                continue
            for row in rows:
                for column, value in zip(columns, row, strict=True):
                    if value is None:
                        continue
                    bucket = values.setdefault(column.identifier, set())
                    for text in _variants(column.identifier, [_text(value)], caseless):
                        if text not in bucket:
                            bucket.add(text)
                            through.setdefault(column.identifier, []).append(dataset.name)
                            changed = True
            people = {v.lower() for v in values.get(person, set())}
            if len(people) > 1:  # named by counts: another person's number is theirs
                via = ", ".join(sorted(set(through.get(person, [dataset.name]))))
                raise RequestRefused(
                    f"the identifiers given lead to {len(people)} different people "
                    f"({len(people)} values of {person}, linked through {via}); Tenure never "
                    "merges people: open one request per person"
                )
    return Person({k: frozenset(v) for k, v in values.items()}, through), found


def _variants(identifier: str, texts: Iterable[str], caseless: set[str]) -> set[str]:
    """An e-mail address as written and in lower case: stores differ in case, the
    address does not (its domain never, its local part in practice)."""
    found = set(texts)
    if identifier in caseless:
        found |= {text.lower() for text in found}
    return found


def _text(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def rows_of(
    policy: Policy, connectors: Mapping[str, Connector], person: Person, found: Reach
) -> int:
    """How many rows of the person the readable stores hold (one count per dataset)."""
    total = 0
    for dataset in policy.datasets:
        if dataset.name in found.failed:
            continue
        selection = person_selection(dataset, found, person, datetime.now(UTC))
        if selection is None:
            continue
        try:
            total += connectors[dataset.store].count_expiry(selection).total
        except StoreError as exc:
            found.failed[dataset.name] = exc.reason
    return total


def check_person(policy: Policy, given: Mapping[str, Iterable[str]]) -> None:
    """Before anything is started: refuse (`RequestRefused`) identifiers that lead to two
    people, or to no record in any store that could be read."""
    from flows.stores import opened_stores

    with opened_stores(policy, read_only=True) as (connectors, _issues):
        person, found = resolve(policy, connectors, given)
        if not rows_of(policy, connectors, person, found) and not found.failed:
            shown = ", ".join(sorted(given))  # the names, never the values
            raise RequestRefused(
                f"no record of anyone with the identifiers given ({shown}) in any bound store"
            )
