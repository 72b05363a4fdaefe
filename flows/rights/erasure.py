"""Erasure, consent withdrawal and correction: the retention engine run for one person.

Erasure runs every binding the person has rows in, with the binding's own action (delete,
anonymize with its operators, aggregate-then-delete into its rollups), children before
parents, chunked and journaled like the nightly run (``flows.run.lifecycle``): a crash
leaves a run the next one reconciles, and running the request again does what is left.
A record stays while a legal hold covers it, while other rows still refer to it, or while
its purpose's legal basis is a legal obligation whose minimum retention has not run (tax
records: six years). Afterwards the person's identifiers are searched for again in every
bound store, and what remains is counted by reason.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from sqlalchemy import ColumnElement, literal

from connectors.errors import StoreError
from connectors.protocol import ChunkWork, ColumnRewrite, Condition, Connector
from flows.rights.people import Person, Reach, RequestRefused, person_filters, resolve
from flows.run.lifecycle import finish, process_dataset, run_context
from flows.run.types import DatasetOutcome, RunContext, RunOptions, RunReport, first_line
from flows.state.ledger import ChunkRecord, Ledger
from retention_rules.model import AnonymizeAction, Dataset, Policy
from retention_rules.planner import (
    RulePlan,
    execution_order,
    foresee_removals,
    reference_parents,
    table_references,
)

#: Told the person's identifiers once they are found, before anything is changed.
Resolved = Callable[[Person], None]


@dataclass
class PersonRun:
    """What one request's run did, and what remains of the person afterwards."""

    report: RunReport
    person: Person
    changed: dict[str, int] = field(default_factory=dict)
    """Rows erased, anonymized or rewritten, by dataset."""
    remaining: dict[str, dict[str, int]] = field(default_factory=dict)
    """After the run: the person's rows left in each dataset, by reason (counts only)."""
    failed: dict[str, str] = field(default_factory=dict)
    """Datasets not done, and why (their stores are named in the register)."""
    skipped: list[str] = field(default_factory=list)
    """Columns left alone, and shown: a correction does not write into a column that
    holds several categories (``dataset.column``)."""

    @property
    def unexplained(self) -> int:
        """Rows of the person left for no stated reason: zero after a complete run."""
        return sum(
            n
            for reasons in self.remaining.values()
            for r, n in reasons.items()
            if r.startswith("not erased")
        )


def legal_minimum(policy: Policy, dataset: Dataset) -> str | None:
    """Why a record of this binding may have to be kept against an erasure: its
    purpose's legal basis is a legal obligation (GDPR art. 17(3)(b) and (e))."""
    purpose = policy.purposes[dataset.purpose]
    if purpose.legal_basis != "legal_obligation":
        return None
    return f"legal obligation ({dataset.purpose}): kept {purpose.min_retention} at least"


def person_plans(
    context: RunContext,
    person: Person,
    found: Reach,
    *,
    purposes: set[str] | None = None,
    whatever_the_law: bool = False,
) -> list[RulePlan]:
    """The run's plans for the person alone, in the run's order: every row of theirs,
    except in a binding whose purpose is a legal obligation, where only the rows past
    the purpose's minimum retention (``whatever_the_law``: every row, for a withdrawal
    of the consent the binding rests on)."""
    policy = context.policy
    plans = []
    for plan in context.plans:
        dataset = plan.dataset
        if purposes is not None and dataset.purpose not in purposes:
            continue
        filters = person_filters(dataset, found, person)
        if not filters:
            continue
        selection = replace(plan.selection, only=filters, every_row=True)
        if not whatever_the_law and legal_minimum(policy, dataset) is not None:
            minimum = policy.purposes[dataset.purpose].min_retention
            selection = replace(plan.selection, only=filters, cutoff=context.clock.cutoff(minimum))
        plans.append(replace(plan, selection=selection))
    references = table_references(policy, context.connectors)
    parents = reference_parents(policy, references, context.failures)
    return execution_order(foresee_removals(plans, context.failures, parents=parents), parents)


def erase(
    path: str | Path,
    identifiers: Mapping[str, Sequence[str]],
    options: RunOptions,
    *,
    purposes: set[str] | None = None,
    whatever_the_law: bool = False,
    environ: Mapping[str, str] | None = None,
    on_resolved: Resolved | None = None,
) -> PersonRun:
    """Run the person's bindings (all, or those of ``purposes``) now, and search for
    them again afterwards. Raises `RequestRefused` for a person who cannot be told apart."""
    with run_context(
        path, replace(options, coverage_gate=False, table_wide=False), environ
    ) as context:
        person, found = resolve(context.policy, context.connectors, identifiers)
        if on_resolved is not None:
            on_resolved(person)
        plans = person_plans(
            context, person, found, purposes=purposes, whatever_the_law=whatever_the_law
        )
        context.plans = plans
        outcomes = [process_dataset(context, plan) for plan in plans]
        outcomes += _unreadable(context, found, plans)
        report = finish(context, outcomes)
        run = PersonRun(report, person)
        for outcome in outcomes:
            done = outcome.expired if options.dry_run else outcome.processed
            if outcome.error:
                run.failed[outcome.dataset] = outcome.error
            elif done:
                run.changed[outcome.dataset] = done
        run.remaining = remaining(context, plans, run.failed)
        return run


def _unreadable(context: RunContext, found: Reach, plans: list[RulePlan]) -> list[DatasetOutcome]:
    """A binding whose store could not be read while looking the person up: failed."""
    ran = {plan.dataset.name for plan in plans}
    outcomes = []
    for dataset in context.policy.datasets:
        if dataset.name in found.failed and dataset.name not in ran:
            outcome = DatasetOutcome(
                dataset=dataset.name,
                purpose=dataset.purpose,
                action=dataset.action.type,
                store=dataset.store,
                table=dataset.table,
                cutoff=context.clock.now,
                retention=str(dataset.retention),
                error=found.failed[dataset.name],
            )
            outcomes.append(outcome)
    return outcomes


def remaining(
    context: RunContext,
    plans: Sequence[RulePlan],
    failed: Mapping[str, str],
) -> dict[str, dict[str, int]]:
    """The person's rows left in each dataset the run covered, counted in the stores by
    the same selections, by reason: a hold, a reference from other rows, a legal
    obligation's minimum, an anonymization (the row stays, its identifiers replaced),
    or not erased (a failed store)."""
    policy = context.policy
    left: dict[str, dict[str, int]] = {}
    for plan in plans:
        dataset = plan.dataset
        connector = context.connectors.get(dataset.store)
        if connector is None:
            continue
        try:
            found = _counted(connector, plan, policy)
        except StoreError as exc:
            left[dataset.name] = {f"not searched: {exc.reason}": 1}
            continue
        reasons = {why: n for why, n in found.items() if n}
        for why in list(reasons):
            if why == NOT_ERASED:
                said = (
                    "to be erased by the real run"
                    if context.options.dry_run
                    else f"not erased: {failed.get(dataset.name, 'left by the run')}"
                )
                reasons[said] = reasons.pop(why)
        if reasons:
            left[dataset.name] = reasons
    for name, why in failed.items():
        left.setdefault(name, {f"not erased: {why}": 0})
    return left


#: The reason of rows no stated reason keeps (`_counted`): the run did not erase them.
NOT_ERASED = "not erased"


def _counted(connector: Connector, plan: RulePlan, policy: Policy) -> dict[str, int]:
    """The person's rows of one binding (the plan's ``only``), each under the first
    reason that keeps it: a legal hold, the binding's anonymization (marked rows), a
    legal obligation's minimum retention, another row's reference; or `NOT_ERASED`.
    Counted in the store, three statements at most."""
    dataset = plan.dataset
    base = replace(plan.selection.as_the_store_is(), keep_referenced=False)
    everything = connector.count_expiry(replace(base, every_row=True))
    found: dict[str, int] = {}
    names = plan.hold_reasons
    holding = {names.get(n, n): k for n, k in everything.held_by.items() if k}
    if len(holding) == 1:
        found[f"held: {next(iter(holding))}"] = everything.held
    elif holding:  # a row may be held for several reasons: each named, counted once
        said = "; ".join(f"{why} ({n})" for why, n in sorted(holding.items()))
        found[f"held: {said}"] = everything.held
    if everything.kept:
        kept_for = getattr(dataset.action, "kept_for", "")
        if isinstance(dataset.action, AnonymizeAction):
            found[f"anonymized, kept: {kept_for}"] = everything.kept
        else:
            found[f"{NOT_ERASED}: its clock cannot be read"] = everything.kept
    free, past = everything.expired, everything.expired
    law = legal_minimum(policy, dataset)
    due = replace(base, every_row=True)
    if free and law is not None:
        due = base  # the erasure's own selection: past the minimum only
        past = connector.count_expiry(due).expired
        found[law] = free - past
    if past:
        referenced = connector.count_expiry(replace(due, keep_referenced=True))
        found[NOT_ERASED] = referenced.expired
        refs = {referenced.reasons.get(n, n): k for n, k in referenced.held_by.items() if k}
        refs = {why: k for why, k in refs.items() if f"held: {why}" not in found}
        if refs:
            found["held: " + "; ".join(sorted(refs))] = past - referenced.expired
    return found


def _write_values(
    context: RunContext,
    dataset: Dataset,
    found: Reach,
    person: Person,
    values: Mapping[str, Any],
    label: str,
    *,
    extra: tuple[Condition, ...] = (),
) -> DatasetOutcome:
    """Write ``values`` (column -> value) into every row of the person in ``dataset``,
    chunk by chunk, journaled under ``label`` (its outcome goes to the run's audit
    entries). Rows a legal hold covers are left as they are (counted as held), and so
    are rows the binding already anonymized: a correction must not give a pseudonymized
    row its identity back."""
    plan = next(p for p in context.plans if p.dataset.name == dataset.name)
    outcome = DatasetOutcome.for_plan(plan)
    outcome.dataset, outcome.action = label, "anonymize"
    filters = person_filters(dataset, found, person, extra=extra)
    if not filters:
        return outcome
    selection = replace(
        plan.selection.as_the_store_is(),
        only=filters,
        every_row=True,
        keep_referenced=False,
        skip_marked=dataset.name if isinstance(dataset.action, AnonymizeAction) else None,
    )
    connector: Connector = context.connectors[dataset.store]
    counts = connector.count_expiry(selection)
    outcome.expired, outcome.held, outcome.held_by = counts.expired, counts.held, counts.held_by
    if context.options.dry_run or not counts.expired:
        return outcome
    rewrites = tuple(_set_to(column, value) for column, value in values.items())
    ledger = Ledger(context.state) if context.state is not None else None
    done = [e for e in connector.journal(context.run_id) if e.label == label]
    outcome.chunks = max((e.chunk_no for e in done), default=0)
    outcome.processed = sum(e.rows for e in done)
    after = None
    while True:
        work = ChunkWork(
            run_id=context.run_id,
            label=label,
            chunk_no=outcome.chunks + 1,
            selection=selection,
            after=after,
            limit=context.options.chunk_size,
            action="anonymize",
            period_zone=context.policy.timezone,
            rewrites=rewrites,
        )
        result = connector.execute_chunk(work)
        if result.last is None:
            return outcome
        outcome.chunks, outcome.processed = work.chunk_no, outcome.processed + result.rows
        after = result.last
        if ledger is not None:
            ledger.record_chunk(
                ChunkRecord(context.run_id, label, work.chunk_no, "anonymize", result.rows)
            )


def _set_to(column: str, value: Any) -> ColumnRewrite:
    """Write ``value`` into ``column``, as a bound parameter of the column's type."""

    def in_sql(col: ColumnElement[Any], _dialect: str) -> ColumnElement[Any]:
        return literal(value, col.type)

    def in_frame(_old: Any) -> Any:
        return value

    return ColumnRewrite(column, sql=in_sql, transform=in_frame, fills_nulls=True)


def withdraw(
    path: str | Path,
    identifiers: Mapping[str, Sequence[str]],
    purposes: set[str],
    options: RunOptions,
    *,
    environ: Mapping[str, str] | None = None,
    on_resolved: Resolved | None = None,
) -> PersonRun:
    """Record the withdrawal (now, in the clock column of each of the purposes'
    bindings whose clock is the person's own and not yet set), then run the purposes'
    bindings for the person at once, whatever their clocks say."""
    with run_context(
        path, replace(options, coverage_gate=False, table_wide=False), environ
    ) as context:
        policy = context.policy
        unknown = sorted(purposes - set(policy.purposes))
        if unknown:
            raise RequestRefused(f"unknown purpose {unknown[0]!r}")
        not_consent = sorted(p for p in purposes if policy.purposes[p].legal_basis != "consent")
        if not_consent:
            raise RequestRefused(
                f"purpose {not_consent[0]} does not rest on consent "
                f"({policy.purposes[not_consent[0]].legal_basis}): there is no consent to withdraw"
            )
        person, found = resolve(policy, context.connectors, identifiers)
        if on_resolved is not None:
            on_resolved(person)
        changed: dict[str, int] = {}
        failed: dict[str, str] = {}
        writes: list[DatasetOutcome] = []
        written: set[tuple[str, str | None, str, str]] = set()
        due = [d for d in policy.datasets if d.purpose in purposes and d.clock.event_table is None]
        for dataset in due:  # checked before anything is written
            person_filters(
                dataset, found, person, extra=(Condition(dataset.clock.column, "is_null"),)
            )
        for dataset in due:
            clock = dataset.clock
            place = (dataset.store, dataset.db_schema, dataset.table, clock.column)
            if place in written or dataset.name in found.failed:
                if dataset.name in found.failed:
                    failed[dataset.name] = found.failed[dataset.name]
                continue
            written.add(place)
            try:
                outcome = _write_values(
                    context,
                    dataset,
                    found,
                    person,
                    {clock.column: context.clock.now},
                    _label(dataset, "withdrawn", context.run_id),
                    extra=(Condition(clock.column, "is_null"),),
                )
            except StoreError as exc:
                failed[dataset.name] = first_line(exc)
                continue
            writes.append(outcome)
            if outcome.processed:
                changed[f"{dataset.name}.{clock.column}"] = outcome.processed
        plans = person_plans(context, person, found, purposes=purposes, whatever_the_law=True)
        context.plans = plans
        outcomes = [process_dataset(context, plan) for plan in plans]
        report = finish(context, writes + outcomes)
        run = PersonRun(report, person, changed, failed=failed)
        for outcome in outcomes:
            if outcome.error:
                run.failed[outcome.dataset] = outcome.error
            elif outcome.processed:
                run.changed[outcome.dataset] = (
                    run.changed.get(outcome.dataset, 0) + outcome.processed
                )
        run.remaining = remaining(context, plans, run.failed)
        return run


def correct(
    path: str | Path,
    identifiers: Mapping[str, Sequence[str]],
    category: str,
    value: str,
    options: RunOptions,
    *,
    column: str | None = None,
    environ: Mapping[str, str] | None = None,
    on_resolved: Resolved | None = None,
) -> PersonRun:
    """Write the corrected ``value`` into the person's records holding ``category``, one
    transaction per chunk of each dataset; the old value is neither read out nor logged.

    Only what is the person's own is rewritten: in a column holding an identifier's
    category (an e-mail address), only the values that are the person's (a staff
    member's address in the same message row stays); a category spread over several
    columns of one dataset (first and last name) only in the ``column`` named
    (``dataset.column``), else left and said. Records kept for a legal obligation (an
    invoice's billing name) record what was true then and are not rewritten, nor are
    rows under a legal hold; nor stores without transactions (an archive of mail or
    logs records what was sent). Raises `RequestRefused` when nothing of theirs holds
    the category."""
    with run_context(
        path, replace(options, coverage_gate=False, table_wide=False), environ
    ) as context:
        policy = context.policy
        if category not in policy.categories:
            raise RequestRefused(f"unknown category {category!r}")
        person, found = resolve(policy, context.connectors, identifiers)
        if on_resolved is not None:
            on_resolved(person)
        subjects = policy.subjects
        own = {
            name
            for name, spec in (subjects.identifiers.items() if subjects is not None else ())
            if spec.category == category
        }
        theirs = tuple(sorted({v for name in own for v in person.values(name)}))
        changed: dict[str, int] = {}
        failed: dict[str, str] = {}
        skipped: list[str] = []
        kept: dict[str, dict[str, int]] = {}
        outcomes: list[DatasetOutcome] = []
        holding = [d for d in policy.datasets if any(category in c for c in d.columns.values())]
        for dataset in holding:
            columns = [c for c, cats in dataset.columns.items() if cats == [category]]
            if column is not None:
                columns = [c for c in columns if column in (c, f"{dataset.name}.{c}")]
            why = _not_corrected(context, dataset, columns, own, column)
            if why is not None:
                named = columns or [c for c, cats in dataset.columns.items() if category in cats]
                skipped.extend(f"{dataset.name}.{c}: {why}" for c in named)
                continue
            if dataset.name in found.failed:
                failed[dataset.name] = found.failed[dataset.name]
                continue
            for number, name in enumerate(columns, 1):
                extra = (Condition(name, "in", theirs),) if own else ()
                if own and not theirs:
                    continue
                try:
                    outcome = _write_values(
                        context,
                        dataset,
                        found,
                        person,
                        {name: value},
                        _label(dataset, f"corrected{number}", context.run_id),
                        extra=extra,
                    )
                except StoreError as exc:
                    failed[dataset.name] = first_line(exc)
                    continue
                outcomes.append(outcome)
                done = outcome.expired if options.dry_run else outcome.processed
                if done:
                    changed[f"{dataset.name}.{name}"] = done
                if outcome.held:
                    kept.setdefault(dataset.name, {})["held: not corrected"] = outcome.held
        if not changed and not failed:
            where = ", ".join(d.name for d in holding) or "no dataset binds it"
            raise RequestRefused(
                f"no record of this person that may be corrected holds {category} ({where})"
                + (f"; left: {'; '.join(skipped)}" if skipped else "")
            )
        report = finish(context, outcomes)
        return PersonRun(report, person, changed, kept, failed, skipped)


def _not_corrected(
    context: RunContext,
    dataset: Dataset,
    columns: list[str],
    own: set[str],
    named: str | None,
) -> str | None:
    """Why a dataset's columns of the category are not rewritten, or None."""
    policy = context.policy
    if not columns:
        return "holds it with other categories (e.g. an e-mail address or a phone number)"
    if legal_minimum(policy, dataset) is not None:
        return "kept for a legal obligation: records what was true then"
    connector = context.connectors.get(dataset.store)
    if connector is None or not connector.capabilities.transactions:
        return "an archive (mail, logs): records what was sent or seen"
    if len(columns) > 1 and not own and named is None:
        return "several columns hold it: name one with --detail column=dataset.column"
    return None


def _label(dataset: Dataset, what: str, run_id: str) -> str:
    """The journal label of a request's writes to a dataset: never the dataset's own
    (its marks mean "anonymized by the binding"), and the run's own (a row corrected
    twice is marked once under each)."""
    tail = f"~{what}-{run_id[:8]}"
    return f"{dataset.name[: 63 - len(tail)]}{tail}"
