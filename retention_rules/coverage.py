"""The coverage gate: does the policy's map of personal information match the stores?

The scan says what each column holds; the policy says which columns it governs and
under which categories. Two disagreements are gaps:

* **unbound** — a column holds personal information and no dataset binding lists it
  (nor an exemption), so no retention rule will ever delete or anonymize it;
* **contradiction** — a bound column holds a direct identifier that none of its
  declared categories admits (``Category.admits``), e.g. phone numbers in a column
  declared ``account.profile``: the rule written for it was written for other data.

This module knows entity names only as strings and takes the scan's findings as plain
data, so the policy side depends on no detector.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from retention_rules.model import Category, Dataset, Exemption, Policy

GapKind = Literal["unbound", "contradiction"]


@dataclass(frozen=True)
class ColumnEvidence:
    """What the scan labelled one column with: entity type → confidence."""

    store: str
    schema: str | None
    table: str
    column: str
    entities: Mapping[str, float]

    @property
    def where(self) -> str:
        return f"{self.store}.{qualified_table(self.schema, self.table)}.{self.column}"


def qualified_table(schema: str | None, table: str) -> str:
    """``schema.table``, or the table alone in the store's default schema."""
    return f"{schema}.{table}" if schema else table


@dataclass(frozen=True)
class CoverageGap:
    """One line of ``tenure scan --check``: where, what was found, what the policy says."""

    kind: GapKind
    evidence: ColumnEvidence
    entities: tuple[str, ...]
    datasets: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()

    def __str__(self) -> str:
        found = ", ".join(f"{e} ({self.evidence.entities[e]:.2f})" for e in self.entities)
        if self.kind == "unbound":
            return f"{self.evidence.where}: unbound: holds {found}; no dataset binding covers it"
        return (
            f"{self.evidence.where}: contradiction: holds {found}; "
            f"dataset {', '.join(self.datasets)} declares {', '.join(self.categories)}"
        )


@dataclass(frozen=True)
class Coverage:
    """The gate's verdict over every scanned column."""

    gaps: tuple[CoverageGap, ...]
    exempt: tuple[tuple[ColumnEvidence, Exemption], ...] = ()
    bound: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """Each bound column's categories, by ``ColumnEvidence.where``."""

    @property
    def passed(self) -> bool:
        return not self.gaps


def check_coverage(
    policy: Policy, evidence: Iterable[ColumnEvidence], direct: Iterable[str]
) -> Coverage:
    """Compare the scan's ``evidence`` with ``policy``'s bindings.

    ``evidence`` holds only the entities the scan counts as personal information;
    ``direct`` names those that identify a person alone, the ones a category must admit.
    """
    direct_entities = frozenset(direct)
    gaps: list[CoverageGap] = []
    exempt: list[tuple[ColumnEvidence, Exemption]] = []
    bound: dict[str, tuple[str, ...]] = {}
    for item in evidence:
        bindings = _bindings(policy, item)
        if bindings:
            categories = tuple(dict.fromkeys(c for d in bindings for c in d.columns[item.column]))
            bound[item.where] = categories
            gap = _contradiction(policy.categories, item, bindings, categories, direct_entities)
        elif item.entities:
            exemption = _exemption(policy.scan.exempt, item)
            if exemption is not None:
                exempt.append((item, exemption))
                continue
            gap = CoverageGap("unbound", item, _by_confidence(item.entities))
        else:
            gap = None
        if gap is not None:
            gaps.append(gap)
    return Coverage(tuple(gaps), tuple(exempt), bound)


def _bindings(policy: Policy, item: ColumnEvidence) -> list[Dataset]:
    table = (item.store, item.schema, item.table)
    return [
        dataset
        for dataset in policy.datasets
        if (dataset.store, dataset.db_schema, dataset.table) == table
        and item.column in dataset.columns
    ]


def _contradiction(
    categories: Mapping[str, Category],
    item: ColumnEvidence,
    bindings: Sequence[Dataset],
    declared: tuple[str, ...],
    direct: frozenset[str],
) -> CoverageGap | None:
    unexpected = tuple(
        entity
        for entity in _by_confidence(item.entities)
        if entity in direct and not any(categories[c].admits(entity) for c in declared)
    )
    if not unexpected:
        return None
    return CoverageGap(
        "contradiction",
        item,
        unexpected,
        datasets=tuple(d.name for d in bindings),
        categories=declared,
    )


def _exemption(exemptions: Sequence[Exemption], item: ColumnEvidence) -> Exemption | None:
    return next(
        (e for e in exemptions if e.covers(item.store, item.schema, item.table, item.column)),
        None,
    )


def _by_confidence(entities: Mapping[str, float]) -> tuple[str, ...]:
    return tuple(sorted(entities, key=lambda entity: (-entities[entity], entity)))
