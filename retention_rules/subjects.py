"""Who a person is across stores: where each dataset holds the identifiers of the
policy's ``subjects:`` section, directly or through foreign keys.

A dataset with a ``subjects.found_in`` entry holds them in those columns (as does any
other binding of the same table). One without is reached by following its table's
foreign keys (the store's, reflected, and the policy's ``references:``) to a table
that holds them, in the same store: one key away, else two, and so on; the nearest
level wins. A dataset no identifier reaches cannot be searched for a person, and
`unreached` says so at its ``name:`` line.

Pure: the tables' reflected keys and indexes are given (`tables`), never read here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace

from connectors.protocol import ForeignKeyInfo, TableInfo
from retention_rules.issues import Loc, PolicyIssue
from retention_rules.model import Dataset, Policy
from retention_rules.planner import TableKey, references_of, table_key


@dataclass(frozen=True)
class SubjectColumn:
    """A column naming the person: ``column`` holds ``identifier``, on the dataset's own
    row, or on the row its ``through`` keys lead to, one after the other (the parent,
    then the grandparent), as a `connectors.protocol.RowFilter`'s ``through``."""

    column: str
    identifier: str
    through: tuple[ForeignKeyInfo, ...] = ()


def subject_columns(
    policy: Policy, tables: Mapping[str, TableInfo] | None = None
) -> dict[str, tuple[SubjectColumn, ...]]:
    """For each dataset name, the columns that name the person: its ``found_in``
    columns (or those of another binding of its table); else those reached through the
    fewest foreign keys (``tables``: dataset name -> its reflected table; the policy's
    declared references are followed in any case). A dataset no identifier reaches is
    absent; without a ``subjects:`` section, every dataset is."""
    subjects = policy.subjects
    if subjects is None:
        return {}
    direct = _direct(policy)
    links = references_of(policy, tables)
    found: dict[str, tuple[SubjectColumn, ...]] = {}
    for dataset in policy.datasets:
        own = subjects.found_in.get(dataset.name)
        if own:
            found[dataset.name] = tuple(SubjectColumn(c, i) for c, i in own.items())
            continue
        reached = _nearest(table_key(dataset), direct, links)
        if reached and not _ambiguous_keys(table_key(dataset), direct, links):
            found[dataset.name] = reached
    return found


def _direct(policy: Policy) -> dict[TableKey, tuple[SubjectColumn, ...]]:
    """By table, the columns its bindings' ``found_in`` entries name (every binding of
    a table shares them)."""
    subjects = policy.subjects
    direct: dict[TableKey, tuple[SubjectColumn, ...]] = {}
    for dataset in policy.datasets:
        entry = (subjects.found_in.get(dataset.name) if subjects is not None else None) or {}
        columns = tuple(SubjectColumn(c, i) for c, i in entry.items())
        key = table_key(dataset)
        direct[key] = tuple(dict.fromkeys((*direct.get(key, ()), *columns)))
    return direct


def _several_paths(policy: Policy, tables: Mapping[str, TableInfo] | None) -> dict[str, list[str]]:
    """The datasets the fewest keys reach one table of people by more than one path (a
    table with two keys to customers, ``referrer_id`` and ``referred_id``): ORing them
    would take the other person's rows too, so they are left unreached; by name, the
    paths."""
    subjects = policy.subjects
    if subjects is None:
        return {}
    direct = _direct(policy)
    links = references_of(policy, tables)
    several: dict[str, list[str]] = {}
    for dataset in policy.datasets:
        if subjects.found_in.get(dataset.name):
            continue
        keys = _ambiguous_keys(table_key(dataset), direct, links)
        if keys:
            several[dataset.name] = [",".join(key.columns) for key in keys]
    return several


def _ambiguous_keys(
    start: TableKey,
    direct: Mapping[TableKey, tuple[SubjectColumn, ...]],
    references: Mapping[TableKey, tuple[ForeignKeyInfo, ...]],
) -> list[ForeignKeyInfo]:
    """The table's own keys that lead, by the fewest keys, to a table of people another
    of its keys also leads to as directly (an order's buyer and gift recipient, both
    customers); [] when each table of people is reached through one key of its own (a
    key to customers and one to visitors name the same person's row)."""
    if direct.get(start):
        return []
    reach: list[tuple[ForeignKeyInfo, int, frozenset[str]]] = []
    for key in references.get(start, ()):
        parent = (start[0], start[1], key.referred_table)
        found = _people_tables(parent, direct, references, start)
        if found is not None:
            reach.append((key, *found))
    if not reach:
        return []
    fewest = min(distance for _, distance, _ in reach)
    nearest = [(key, tables) for key, distance, tables in reach if distance == fewest]
    return sorted(
        (key for key, tables in nearest if any(tables & other for k, other in nearest if k != key)),
        key=lambda key: key.columns,
    )


def _people_tables(
    node: TableKey,
    direct: Mapping[TableKey, tuple[SubjectColumn, ...]],
    references: Mapping[TableKey, tuple[ForeignKeyInfo, ...]],
    start: TableKey,
) -> tuple[int, frozenset[str]] | None:
    """How many keys from ``node`` to the nearest tables holding identifiers, and which
    (breadth first, not back through ``start``); None when none is reached."""
    level, frontier, seen = 0, {node}, {node, start}
    while frontier:
        holding = frozenset(table[2] for table in frontier if direct.get(table))
        if holding:
            return level, holding
        nxt = {
            (table[0], table[1], key.referred_table)
            for table in frontier
            for key in references.get(table, ())
        } - seen
        seen |= nxt
        frontier, level = nxt, level + 1
    return None


def _nearest(
    start: TableKey,
    direct: Mapping[TableKey, tuple[SubjectColumn, ...]],
    references: Mapping[TableKey, tuple[ForeignKeyInfo, ...]],
) -> tuple[SubjectColumn, ...]:
    """The columns of the tables holding identifiers that the fewest keys lead to from
    ``start`` (breadth first; each table is walked through once, by its first path)."""
    if direct.get(start):
        return direct[start]
    frontier: list[tuple[TableKey, tuple[ForeignKeyInfo, ...]]] = [(start, ())]
    seen = {start}
    while frontier:
        reached: list[SubjectColumn] = []
        following: list[tuple[TableKey, tuple[ForeignKeyInfo, ...]]] = []
        for table, path in frontier:
            for key in references.get(table, ()):
                parent = (table[0], table[1], key.referred_table)
                if parent in seen:
                    continue
                chain = (*path, key)
                if direct.get(parent):
                    reached += [replace(column, through=chain) for column in direct[parent]]
                elif all(parent != step for step, _ in following):
                    following.append((parent, chain))
        if reached:
            return tuple(dict.fromkeys(reached))
        seen.update(step for step, _ in following)
        frontier = following
    return ()


def unreached(
    policy: Policy, tables: Mapping[str, TableInfo] | None = None, *, keys_read: bool = True
) -> list[PolicyIssue]:
    """One problem per dataset no identifier reaches (`subject_columns`), at its
    ``name:`` line; none without a ``subjects:`` section. With ``keys_read=False`` (the
    store's foreign keys could not be read: ``validate --offline``) the message says
    that only the policy's own links were followed."""
    if policy.subjects is None:
        return []
    found = subject_columns(policy, tables)
    advice = (
        "add it to subjects.found_in, or a foreign key to a dataset that has one"
        if keys_read
        else "through subjects.found_in or the policy's references (the store's foreign "
        "keys are not read with --offline)"
    )
    several = _several_paths(policy, tables)
    return [
        PolicyIssue(
            ("datasets", i, "name"),
            f"dataset {dataset.name} reaches people through several keys "
            f"({', '.join(several[dataset.name])}): whose rows are whose is ambiguous; name "
            "the column in subjects.found_in"
            if dataset.name in several
            else f"no identifier in subjects: reaches dataset {dataset.name}"
            + (f"; {advice}" if keys_read else f" {advice}"),
        )
        for i, dataset in enumerate(policy.datasets)
        if dataset.name not in found
    ]


@dataclass(frozen=True)
class NeededIndex:
    """A column a search for one person filters on, which an index should begin with
    for the search to read only that person's rows."""

    store: str
    schema: str | None
    table: str
    column: str
    loc: Loc
    """Where the policy asks for the search: the ``found_in`` entry, or the binding of
    the table whose foreign key is followed."""
    why: str

    def statement(self) -> str:
        """The ``CREATE INDEX`` that gives the search its index."""
        name = re.sub(r"[^a-z0-9_]+", "_", f"ix_{self.table}_{self.column}".lower())[:63]
        table = ".".join(_quoted(part) for part in (self.schema, self.table) if part)
        return f"CREATE INDEX {name} ON {table} ({_quoted(self.column)})"


def needed_indexes(
    policy: Policy, tables: Mapping[str, TableInfo] | None = None
) -> list[NeededIndex]:
    """Every column a search for one person filters on, once each: the ``found_in``
    columns, and the referring columns of the foreign keys followed to them (the
    referred columns are a key of their table, indexed by the store)."""
    subjects = policy.subjects
    if subjects is None:
        return []
    first: dict[TableKey, int] = {}
    for i, dataset in enumerate(policy.datasets):
        first.setdefault(table_key(dataset), i)
    needed: dict[tuple[str, str | None, str, str], NeededIndex] = {}
    for dataset in policy.datasets:
        store, schema, table = table_key(dataset)
        for name, identifier in (subjects.found_in.get(dataset.name) or {}).items():
            needed.setdefault(
                (store, schema, table, name),
                NeededIndex(
                    store, schema, table, name,
                    ("subjects", "found_in", dataset.name, name),
                    f"which holds identifier {identifier}",
                ),
            )  # fmt: skip
    for dataset, columns in _by_dataset(policy, subject_columns(policy, tables)):
        store, schema, _ = table_key(dataset)
        for column in columns:
            child = dataset.table
            for key in column.through:
                whose = "the policy's reference" if key.declared else "the foreign key"
                why = (
                    f"{whose} {child}.{'+'.join(key.columns)} -> {key.referred_table}."
                    f"{'+'.join(key.referred_columns)} leading to the person"
                )
                loc: Loc = ("datasets", first[(store, schema, child)], "table")
                needed.setdefault(
                    (store, schema, child, key.columns[0]),
                    NeededIndex(store, schema, child, key.columns[0], loc, why),
                )
                child = key.referred_table
    return list(needed.values())


def _by_dataset(
    policy: Policy, found: Mapping[str, tuple[SubjectColumn, ...]]
) -> list[tuple[Dataset, tuple[SubjectColumn, ...]]]:
    return [(d, found[d.name]) for d in policy.datasets if d.name in found]


def index_warnings(policy: Policy, tables: Mapping[str, TableInfo]) -> list[PolicyIssue]:
    """One warning per `needed_indexes` column of a table whose store keeps indexes
    (``TableInfo.indexes`` is not None) when no index begins with it."""
    by_table: dict[TableKey, TableInfo] = {}
    for dataset in policy.datasets:
        info = tables.get(dataset.name)
        if info is not None:
            by_table[table_key(dataset)] = info
    warnings = []
    for need in needed_indexes(policy, tables):
        info = by_table.get((need.store, need.schema, need.table))
        if info is None or info.indexes is None or need.column not in info.columns:
            continue  # a store without indexes, or a missing column, reported elsewhere
        if any(index[0] == need.column for index in info.indexes):
            continue
        warnings.append(
            PolicyIssue(
                need.loc,
                f"no index of {need.table} begins with {need.column}, {need.why}: finding "
                f"one person's rows reads the whole table; add one: {need.statement()}",
            )
        )
    return warnings


_PLAIN = re.compile(r"^[a-z_][a-z0-9_]*$")


def _quoted(name: str) -> str:
    return name if _PLAIN.match(name) else '"' + name.replace('"', '""') + '"'
