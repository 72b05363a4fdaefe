"""Checks that relate one part of a policy to another.

They run on whatever parts of the file parsed, so a broken purpose does not hide an
unknown store three datasets later: the user sees every problem in one pass.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from anonymizers.operators import OperatorError
from anonymizers.registry import create_operator
from retention_rules.issues import PolicyIssue
from retention_rules.model import (
    AggregateThenDeleteAction,
    AnonymizeAction,
    Category,
    Dataset,
    Exemption,
    Hold,
    Policy,
    Purpose,
    RequestSettings,
    RiskSettings,
    Subjects,
)
from retention_rules.planner import declared_references, table_key


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
    subjects: Subjects | None = None
    requests: RequestSettings | None = None

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
            subjects=policy.subjects,
            requests=policy.requests,
        )


def check_references(parts: PolicyParts) -> list[PolicyIssue]:
    return [
        *_dataset_references(parts),
        *_duplicate_names("datasets", parts.datasets),
        *_duplicate_names("holds", parts.holds),
        *_hold_references(parts),
        *_exemption_references(parts),
        *_subjects_references(parts),
    ]


def event_clock_warnings(policy: Policy) -> list[PolicyIssue]:
    """Event clocks that can lose their events. One warning per binding of the event
    table that can leave a record with no event before the record's own turn, in a
    policy that does not say what such a record counts from (``clock.if_no_event``):

    - every binding that deletes its rows, whatever its retention: a shorter one cuts
      them before the clock runs out; an equal one cuts them the night the record
      expires, and runs first when the event table refers to the record's (children
      first); a longer one cuts the events of a record kept past its retention (held,
      or referred to), which then never expires once the hold lapses. Not when the
      record refers to its event row by the join (a reference the policy declares, or
      the clock read by the event binding's primary key): the store keeps a row another
      refers to;
    - an anonymizing binding that rewrites the join column: the rewritten rows match
      no record any more;
    - one when no binding covers the event table: the application may delete its rows.

    Whatever ``if_no_event`` says, an anonymizing binding that rewrites the clock's
    column is warned of too: a NULL event has not happened, so the record never
    expires (and is not counted as having no event); a generalized one counts from
    the rewritten time.

    Warnings, not problems: the rows are kept, counted and shown as "never expires (no
    event)" by `plan` and the run report, and ``if_no_event: never`` keeps them on
    purpose."""
    references = declared_references(policy)
    warnings: list[PolicyIssue] = []
    for i, ds in enumerate(policy.datasets):
        clock = ds.clock
        if clock.event_table is None or clock.join is None:
            continue
        events = clock.event_table
        at = ("datasets", i, "clock", "event_table")
        advice = (
            f"say what a {ds.table} row with no {events} row counts from "
            f"(if_no_event: {{column: <a timestamp column of {ds.table}>}}), or keep it on "
            "purpose (if_no_event: never)"
        )
        gone = f"a {ds.table} row whose {events} rows are all gone then never expires"
        binding = [
            (j, other) for j, other in enumerate(policy.datasets)
            if (other.store, other.db_schema, other.table) == (ds.store, ds.db_schema, events)
        ]  # fmt: skip
        for j, other in binding:
            if not isinstance(other.action, AnonymizeAction):
                continue
            rewritten = other.action.columns
            if clock.column in rewritten:
                operator = rewritten[clock.column].operator
                effect = (
                    "an event whose time is NULL has not happened yet, so a "
                    f"{ds.table} row whose {events} rows are rewritten never expires, "
                    "and is not counted as having no event"
                    if operator == "null"
                    else f"a {ds.table} row then counts from the rewritten time"
                )
                warnings.append(
                    PolicyIssue(
                        at,
                        f"binding {other.name} ({{see}}) anonymizes {events}.{clock.column}, "
                        f"this clock's event, with {operator} after {other.retention}: "
                        f"{effect}; leave {clock.column} out of its columns, or clock "
                        f"{ds.table} by a column that stays",
                        see=("datasets", j, "action", "columns", clock.column),
                    )
                )
            if clock.join.event in rewritten and clock.if_no_event is None:
                operator = rewritten[clock.join.event].operator
                warnings.append(
                    PolicyIssue(
                        at,
                        f"binding {other.name} ({{see}}) anonymizes {events}."
                        f"{clock.join.event}, which links {events} rows to {ds.table} rows, "
                        f"with {operator} after {other.retention}: a {ds.table} row whose "
                        f"{events} rows are all rewritten matches none, has no event and "
                        f"never expires; {advice}",
                        see=("datasets", j, "action", "columns", clock.join.event),
                    )
                )
        if clock.if_no_event is not None:
            continue
        if not binding:
            warnings.append(
                PolicyIssue(
                    at,
                    f"{events} is bound by no binding of this policy: its rows may be deleted "
                    f"by the application, and a {ds.table} row whose {events} rows are all "
                    f"gone never expires; {advice}",
                )
            )
            continue
        link = ((clock.join.local,), events, (clock.join.event,))
        if any(
            (key.columns, key.referred_table, key.referred_columns) == link
            for key in references.get(table_key(ds), ())
        ):
            continue  # the store keeps an event row a record refers to
        for j, other in binding:
            if isinstance(other.action, AnonymizeAction):
                continue
            theirs, ours = other.retention.sort_key(), ds.retention.sort_key()
            if theirs < ours:
                when = f"before this clock's {ds.retention} run out: {gone}"
            elif theirs == ours:
                when = (
                    f"as this clock expires its rows: when {other.name} runs first "
                    f"(children first: it does when {events} refers to {ds.table}), a "
                    f"{ds.table} row's last {events} rows go the night it expires, before "
                    f"its turn, and {gone}"
                )
            else:
                when = (
                    f"after this clock's {ds.retention}: a {ds.table} row kept past its "
                    f"retention (under a hold, or referred to) loses its {events} rows "
                    "then, and never expires once the hold lapses or the reference goes"
                )
            warnings.append(
                PolicyIssue(
                    at,
                    f"binding {other.name} ({{see}}) deletes {events} rows after "
                    f"{other.retention}, {when}; {advice}",
                    see=("datasets", j),
                )
            )
    return warnings


def reference_warnings(policy: Policy) -> list[PolicyIssue]:
    """A ``references:`` entry to a dataset of another store (or schema) only orders the
    run, children first: no store sees both tables, so a kept child cannot keep its
    parent, nor a hold on the parent reach the child. One warning each, at the entry."""
    bound = {d.name: d for d in policy.datasets}
    warnings = []
    for i, ds in enumerate(policy.datasets):
        for r, reference in enumerate(ds.references):
            parent = bound.get(reference.dataset)
            if parent is None or (parent.store, parent.db_schema) == (ds.store, ds.db_schema):
                continue
            where = "store" if parent.store != ds.store else "schema"
            warnings.append(
                PolicyIssue(
                    ("datasets", i, "references", r),
                    f"{parent.name} is in another {where} ({parent.store}"
                    f"{'.' + parent.db_schema if parent.db_schema else ''}): the reference "
                    f"will order only ({ds.name} runs first): rows of {ds.table} that are "
                    f"kept do not keep the {parent.table} rows they refer to, and a hold on "
                    f"{parent.name} does not reach {ds.name}",
                )
            )
    return warnings


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
        known = parts.declared.get("datasets", set())
        for r, reference in enumerate(ds.references):
            if reference.dataset not in known:
                yield PolicyIssue(
                    (*at, "references", r, "dataset"), _unknown("dataset", reference.dataset, known)
                )
        yield from _retention_within_purpose(ds, parts.purposes.get(ds.purpose), at)
        yield from _action_references(ds, parts.categories, at)
        yield from _risk_references(ds, at)


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


def _risk_references(ds: Dataset, at: tuple[str | int, ...]) -> Iterator[PolicyIssue]:
    """The risk analysis must look at columns the binding declares, and an aggregate's
    ``k`` cannot be promised above the suppression threshold that enforces it."""
    risk, action = ds.risk, ds.action
    if action.type == "delete":
        if risk != RiskSettings():
            yield PolicyIssue((*at, "risk"), "a delete action keeps nothing to analyse")
        return
    if isinstance(action, AggregateThenDeleteAction):
        if risk.quasi_identifiers is not None:
            yield PolicyIssue(
                (*at, "risk", "quasi_identifiers"),
                "an aggregate's quasi identifiers are its dimensions; do not list them",
            )
        dimensions = {d for rollup in action.rollups for d in rollup.dimensions}
        for s, column in enumerate(risk.sensitive_columns):
            if column not in dimensions:
                yield PolicyIssue(
                    (*at, "risk", "sensitive", s),
                    f"sensitive column {column!r} is not a dimension of any rollup",
                )
        for q, requirement in enumerate(risk.require):
            if requirement.metric == "k" and requirement.value > action.min_cell_size:
                yield PolicyIssue(
                    (*at, "risk", "require", q),
                    f"{requirement} cannot hold: cells of {action.min_cell_size} people are "
                    f"published (raise min_cell_size to {int(requirement.value)})",
                )
        return
    named = [
        ("quasi_identifiers", risk.quasi_identifiers or []),
        ("sensitive", risk.sensitive_columns),
    ]
    for field_name, columns in named:
        for c, column in enumerate(columns):
            if column not in ds.columns:
                yield PolicyIssue(
                    (*at, "risk", field_name, c),
                    f"column {column!r} is not among the dataset's columns",
                )


def _action_references(
    ds: Dataset, categories: dict[str, Category], at: tuple[str | int, ...]
) -> Iterator[PolicyIssue]:
    action = ds.action
    if isinstance(action, AnonymizeAction):
        for column, spec in action.columns.items():
            if column not in ds.columns:
                yield PolicyIssue(
                    (*at, "action", "columns", column),
                    f"column {column!r} has an operator but no category in the dataset's columns",
                )
            try:  # parameters are checked here, long before the operator meets a row
                create_operator(spec.operator, spec.params)
            except OperatorError as exc:
                yield PolicyIssue((*at, "action", "columns", column), str(exc))
        return
    if action.type != "aggregate_then_delete":
        return
    if ds.clock.event_table is not None:
        yield PolicyIssue(
            (*at, "clock", "event_table"),
            "aggregate_then_delete needs the clock on the row itself: its rollups are "
            "counted by the period of that timestamp",
        )
    if ds.clock.format != "timestamp":
        yield PolicyIssue(
            (*at, "clock", "format"),
            "aggregate_then_delete counts its rollups by a timestamp clock; "
            f"format {ds.clock.format} is for delete and anonymize",
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


def _subjects_references(parts: PolicyParts) -> Iterator[PolicyIssue]:
    """The ``subjects:`` section names declared identifiers, categories and datasets, and
    a ``found_in`` column the policy categorizes holds its identifier's category (another
    column is looked up in the live schema); ``requests.purpose`` is a declared purpose."""
    requests = parts.requests
    purposes = parts.declared.get("purposes", set())
    if requests is not None and requests.purpose is not None and requests.purpose not in purposes:
        yield PolicyIssue(("requests", "purpose"), _unknown("purpose", requests.purpose, purposes))
    subjects = parts.subjects
    if subjects is None:
        return
    identifiers = set(subjects.identifiers)
    if subjects.person not in identifiers:
        yield PolicyIssue(
            ("subjects", "person"),
            f"{subjects.person!r} is not one of the identifiers "
            f"(declared: {', '.join(sorted(identifiers))})",
        )
    categories = parts.declared.get("categories", set())
    for name, identifier in subjects.identifiers.items():
        if identifier.category not in categories:
            yield PolicyIssue(
                ("subjects", "identifiers", name, "category"),
                _unknown("category", identifier.category, categories),
            )
    known = parts.declared.get("datasets", set())
    bound = {d.name: d for d in parts.datasets.values()}
    for name, columns in subjects.found_in.items():
        at = ("subjects", "found_in", name)
        if name not in known:
            yield PolicyIssue(at, _unknown("dataset", name, known))
            continue
        if not columns:
            yield PolicyIssue(
                at,
                "names no column: give the columns that name the person ({column: "
                "identifier}), or leave the dataset out to reach it through a foreign key",
            )
        dataset = bound.get(name)
        for column, held in columns.items():
            if held not in identifiers:
                yield PolicyIssue((*at, column), _unknown("identifier", held, identifiers))
                continue
            wanted = subjects.identifiers[held].category
            categorized = dataset.columns.get(column) if dataset is not None else None
            if categorized and wanted not in categorized:
                yield PolicyIssue(
                    (*at, column),
                    f"column {dataset.table if dataset else name}.{column} is "
                    f"{', '.join(categorized)}; identifier {held} is {wanted}: name the "
                    f"identifier it holds, or add {wanted} to its categories",
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
