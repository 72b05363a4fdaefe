"""Checks that relate one part of a policy to another.

They run on whatever parts of the file parsed, so a broken purpose does not hide an
unknown store three datasets later: the user sees every problem in one pass.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from retention_rules.issues import PolicyIssue
from retention_rules.model import (
    AnonymizeAction,
    Category,
    Dataset,
    Exemption,
    Hold,
    Policy,
    Purpose,
)


@dataclass
class PolicyParts:
    """The parsed pieces of a policy, with holes where a piece failed to parse.

    `declared` keeps every name written in the file, parsed or not, so that a reference
    to a broken purpose is not reported a second time as an unknown one.
    """

    declared: dict[str, set[str]] = field(default_factory=dict)
    categories: dict[str, Category] = field(default_factory=dict)
    purposes: dict[str, Purpose] = field(default_factory=dict)
    datasets: dict[int, Dataset] = field(default_factory=dict)
    holds: dict[int, Hold] = field(default_factory=dict)
    exemptions: dict[int, Exemption] = field(default_factory=dict)

    @classmethod
    def of(cls, policy: Policy) -> PolicyParts:
        return cls(
            declared={
                "categories": set(policy.categories),
                "purposes": set(policy.purposes),
                "stores": set(policy.stores),
                "datasets": {d.name for d in policy.datasets},
            },
            categories=dict(policy.categories),
            purposes=dict(policy.purposes),
            datasets=dict(enumerate(policy.datasets)),
            holds=dict(enumerate(policy.holds)),
            exemptions=dict(enumerate(policy.scan.exempt)),
        )


def check_references(parts: PolicyParts) -> list[PolicyIssue]:
    return [
        *_dataset_references(parts),
        *_duplicate_names("datasets", parts.datasets),
        *_duplicate_names("holds", parts.holds),
        *_hold_references(parts),
        *_exemption_references(parts),
    ]


def _unknown(kind: str, name: str, known: set[str]) -> str:
    listed = ", ".join(sorted(known)) or "none declared"
    return f"unknown {kind} {name!r} (declared: {listed})"


def _dataset_references(parts: PolicyParts) -> Iterator[PolicyIssue]:
    for i, ds in parts.datasets.items():
        at = ("datasets", i)
        for kind, section, name in (
            ("store", "stores", ds.store),
            ("purpose", "purposes", ds.purpose),
        ):
            if name not in parts.declared.get(section, set()):
                yield PolicyIssue(
                    (*at, kind), _unknown(kind, name, parts.declared.get(section, set()))
                )
        for column, categories in ds.columns.items():
            for category in categories:
                if category not in parts.declared.get("categories", set()):
                    yield PolicyIssue(
                        (*at, "columns", column),
                        _unknown("category", category, parts.declared.get("categories", set())),
                    )
        yield from _retention_within_purpose(ds, parts.purposes.get(ds.purpose), at)
        yield from _action_references(ds, parts.categories, at)


def _retention_within_purpose(
    ds: Dataset, purpose: Purpose | None, at: tuple[str | int, ...]
) -> Iterator[PolicyIssue]:
    if purpose is None:
        return
    if ds.retention.sort_key() > purpose.max_retention.sort_key():
        yield PolicyIssue(
            (*at, "retention"),
            f"retention {ds.retention} exceeds purpose {ds.purpose!r} "
            f"max_retention {purpose.max_retention}",
        )
    if ds.retention.sort_key() < purpose.min_retention.sort_key():
        yield PolicyIssue(
            (*at, "retention"),
            f"retention {ds.retention} is shorter than purpose {ds.purpose!r} "
            f"min_retention {purpose.min_retention}",
        )


def _action_references(
    ds: Dataset, categories: dict[str, Category], at: tuple[str | int, ...]
) -> Iterator[PolicyIssue]:
    action = ds.action
    if isinstance(action, AnonymizeAction):
        for column in action.columns:
            if column not in ds.columns:
                yield PolicyIssue(
                    (*at, "action", "columns", column),
                    f"column {column!r} has an operator but no category in the dataset's columns",
                )
        return
    if action.type != "aggregate_then_delete":
        return
    if ds.clock.event_table is not None:
        yield PolicyIssue(
            (*at, "clock", "event_table"),
            "aggregate_then_delete needs the clock on the row itself: its rollups are "
            "counted by the period of that timestamp",
        )
    for r, rollup in enumerate(action.rollups):
        for d, dimension in enumerate(rollup.dimensions):
            direct = [
                c for c in ds.columns.get(dimension, [])
                if c in categories and categories[c].identifier == "direct"
            ]  # fmt: skip
            if direct:
                yield PolicyIssue(
                    (*at, "action", "rollups", r, "dimensions", d),
                    f"dimension {dimension!r} is a direct identifier ({', '.join(direct)}); "
                    "an aggregate must not keep it",
                )
    yield from _duplicate_names("rollups", dict(enumerate(action.rollups)), prefix=(*at, "action"))


def _hold_references(parts: PolicyParts) -> Iterator[PolicyIssue]:
    known = parts.declared.get("datasets", set())
    for i, hold in parts.holds.items():
        if hold.datasets == "all":
            continue
        for j, name in enumerate(hold.datasets):
            if name not in known:
                yield PolicyIssue(("holds", i, "datasets", j), _unknown("dataset", name, known))


def _exemption_references(parts: PolicyParts) -> Iterator[PolicyIssue]:
    known = parts.declared.get("stores", set())
    for i, exemption in parts.exemptions.items():
        if exemption.store not in known:
            yield PolicyIssue(
                ("scan", "exempt", i, "store"), _unknown("store", exemption.store, known)
            )


class _Named(Protocol):
    @property
    def name(self) -> str: ...


def _duplicate_names(
    section: str, items: Mapping[int, _Named], prefix: tuple[str | int, ...] = ()
) -> Iterator[PolicyIssue]:
    """Every repeat of a name after its first use."""
    seen: set[str] = set()
    for i, item in items.items():
        if item.name in seen:
            yield PolicyIssue((*prefix, section, i, "name"), f"duplicate name {item.name!r}")
        seen.add(item.name)
