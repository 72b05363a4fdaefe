"""``tenure scan --suggest``: a policy stub that would bind the columns the scan found unbound.

The stub is YAML to review, not to paste blindly: the purpose, subject key, clock and
retention of a new dataset are decisions the scan cannot make, so they are ``TODO``
(which the policy loader rejects until they are filled in). Categories are picked from
the policy where one declares the entity found; otherwise a new category is proposed,
named after the entity's kind in the scan's catalogue (``financial.iban_code``).

It also proposes where the identifiers of ``subjects:`` are found in each dataset that
has no ``found_in`` entry: a column whose foreign key (or the policy's reference) leads
to a column holding an identifier, and a column whose category is an identifier's.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence

from anonymizers.detection.entities import entry
from connectors.protocol import TableInfo
from retention_rules.coverage import CoverageGap
from retention_rules.model import Policy
from retention_rules.planner import references_of, table_key

TableKey = tuple[str, str | None, str]
_PLAIN = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*$")


def suggest_bindings(
    policy: Policy,
    gaps: Iterable[CoverageGap],
    primary_keys: Mapping[TableKey, Sequence[str]],
    direct: Iterable[str],
    tables: Mapping[str, TableInfo] | None = None,
) -> str:
    """YAML binding the unbound columns of ``gaps``; contradictions are listed as
    comments. Then the ``subjects.found_in`` entries the datasets without one could have
    (``tables``: dataset name -> its table as the store describes it, for its foreign
    keys)."""
    direct_entities = frozenset(direct)
    unbound: dict[TableKey, list[CoverageGap]] = {}
    lines = ["# Proposed by `tenure scan --suggest`: review every TODO before use."]
    for gap in gaps:
        evidence = gap.evidence
        if gap.kind == "unbound":
            unbound.setdefault((evidence.store, evidence.schema, evidence.table), []).append(gap)
        else:
            lines.append(f"# Review the categories of {gap}")
    new_categories: dict[str, str] = {}
    stubs: list[str] = []
    for key, table_gaps in unbound.items():
        columns = [_column_line(policy, gap, new_categories, direct_entities) for gap in table_gaps]
        existing = [d.name for d in policy.datasets if (d.store, d.db_schema, d.table) == key]
        if existing:
            lines.append(f"# Add to the columns of dataset {existing[0]!r}:")
            lines.extend(f"#   {line}" for line in columns)
        else:
            stubs.extend(_dataset_stub(key, primary_keys.get(key, ()), columns))
    if new_categories:
        lines.append("categories:")
        lines.extend(f"  {_quoted(name)}: {spec}" for name, spec in new_categories.items())
    if stubs:
        lines.append("datasets:")
        lines.extend(stubs)
    lines.extend(suggest_subjects(policy, tables))
    return "\n".join(lines) + "\n"


def suggest_subjects(policy: Policy, tables: Mapping[str, TableInfo] | None = None) -> list[str]:
    """``subjects.found_in`` entries for the datasets that have none: each column whose
    foreign key (the store's, from ``tables``, or the policy's reference) leads to a
    column that holds an identifier, and each column of an identifier's category; a
    dataset with an entry was decided on and is left alone."""
    subjects = policy.subjects
    if subjects is None:
        return [
            "# No subjects: section: declare the identifiers that name a person, and "
            "--suggest proposes where each dataset holds them."
        ]
    held = {
        (*table_key(d), column): identifier
        for d in policy.datasets
        for column, identifier in (subjects.found_in.get(d.name) or {}).items()
    }
    by_category: dict[str, str] = {}
    for name, declared in subjects.identifiers.items():
        by_category.setdefault(declared.category, name)
    keys = references_of(policy, tables)
    entries: list[str] = []
    for dataset in policy.datasets:
        if subjects.found_in.get(dataset.name):
            continue
        store, schema, table = table_key(dataset)
        found: dict[str, tuple[str, str]] = {}
        for key in keys.get(table_key(dataset), ()):
            if len(key.columns) != 1:
                continue
            identifier = held.get((store, schema, key.referred_table, key.referred_columns[0]))
            if identifier is not None:
                whose = "the policy's reference" if key.declared else "foreign key"
                route = (
                    f"{table}.{key.columns[0]} -> {key.referred_table}.{key.referred_columns[0]}"
                )
                found.setdefault(key.columns[0], (identifier, f"{whose} {route}"))
        for column, categories in dataset.columns.items():
            for category in categories:
                if category in by_category and column not in found:
                    found[column] = (by_category[category], f"{column} is {category}")
        if found:
            mapping = ", ".join(f"{_quoted(c)}: {i}" for c, (i, _) in found.items())
            why = "; ".join(reason for _, reason in found.values())
            entries.append(f"    {dataset.name}: {{{mapping}}}   # {why}")
    if not entries:
        return []
    return ["# Where the person is found (review: a column may name someone else):",
            "subjects:", "  found_in:", *entries]  # fmt: skip


def _column_line(
    policy: Policy, gap: CoverageGap, new: dict[str, str], direct: frozenset[str]
) -> str:
    categories = [_category_for(policy, entity, new, direct) for entity in gap.entities]
    found = ", ".join(f"{e} {gap.evidence.entities[e]:.2f}" for e in gap.entities)
    listed = categories[0] if len(categories) == 1 else f"[{', '.join(categories)}]"
    return f"{_quoted(gap.evidence.column)}: {listed}   # found: {found}"


def _category_for(policy: Policy, entity: str, new: dict[str, str], direct: frozenset[str]) -> str:
    listing = [
        (len(category.entities), name)
        for name, category in policy.categories.items()
        if isinstance(category.entities, list) and entity in category.entities
    ]
    if listing:  # the most specific category: the one listing fewest entities
        return min(listing)[1]
    kind = entry(entity)  # the scan's catalogue: a kind of information for every entity
    name = f"{kind.kind}.{entity.lower()}"
    identifier = "direct" if entity in direct else "quasi"
    new[name] = (
        f'{{description: "TODO: describe ({kind.description})", identifier: {identifier}, '
        f"entities: [{entity}]}}"
    )
    return name


def _dataset_stub(key: TableKey, primary_key: Sequence[str], columns: list[str]) -> list[str]:
    store, schema, table = key
    keys = ", ".join(map(_quoted, primary_key)) or "TODO"
    stub = [
        f"  - name: {_dataset_name(table)}",
        f"    store: {store}",
        *([f"    schema: {_quoted(schema)}"] if schema else []),
        f"    table: {_quoted(table)}",
        "    purpose: TODO",
        f"    primary_key: [{keys}]",
        "    subject_key: TODO",
        "    columns:",
        *(f"      {line}" for line in columns),
        "    clock: {column: TODO}",
        "    retention: TODO",
        "    action: delete",
    ]
    return stub


def _dataset_name(table: str) -> str:
    name = re.sub(r"[^a-z0-9_]+", "_", table.lower()).strip("_") or "table"
    return name if name[0].isalpha() else f"t_{name}"


def _quoted(name: str) -> str:
    return name if _PLAIN.match(name) else '"' + name.replace('"', '\\"') + '"'
