"""The nightly run as plain functions: prepare, process each dataset, finish.

The Prefect flow wraps these (one task per dataset); tests and the crash harness call
them directly. Nothing here decides policy: the planner says what is expired, the
connectors change the stores, and this module keeps the books.
"""

from __future__ import annotations

import contextvars
import logging
import uuid
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager, suppress
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import Engine

from anonymizers.operators import OperatorError
from anonymizers.secrets import pseudonym_key
from connectors.errors import StoreError, StoreUnavailable
from connectors.protocol import ChunkWork, ColumnRewrite, Connector
from connectors.workers import WorkersLost
from flows import audit
from flows.binding_operators import binding_operators, keyed_rollup_sinks
from flows.cluster import ClusterOptions, cluster_workers
from flows.gate import coverage_gate
from flows.preflight import preflight
from flows.publish import publish_after_run
from flows.releases import release_rollups
from flows.run.reconcile import close_from_journals, count_committed, reconcile
from flows.run.records import (
    append_register,
    audit_entry,
    binding_record,
    gate_entry,
    run_fields,
)
from flows.run.types import (
    DatasetOutcome,
    Progress,
    RunContext,
    RunOptions,
    RunReport,
    Silent,
    first_line,
)
from flows.state.ledger import ChunkRecord, Ledger, RunLocked
from flows.state.location import StateLocation, state_location
from flows.state.tables import StateError
from flows.stores import opened_stores
from flows.table_risk import table_risk
from retention_rules.clock import PolicyClock
from retention_rules.issues import PolicyError, PolicyIssue
from retention_rules.loader import LoadedPolicy, load_policy
from retention_rules.model import (
    AggregateThenDeleteAction,
    AnonymizeAction,
    Dataset,
    Policy,
)
from retention_rules.planner import (
    References,
    RulePlan,
    execution_order,
    foresee_removals,
    inherited_holds,
    plan_rules,
    protecting_holds,
    reference_parents,
    rollup_sinks,
    store_lanes,
    table_references,
)
from retention_rules.schema_check import check_live_schema

_log = logging.getLogger(__name__)


@contextmanager
def run_context(
    path: str | Path, options: RunOptions, environ: Mapping[str, str] | None = None
) -> Iterator[RunContext]:
    """Load and check the policy, open the stores, take the locks, reconcile, start.

    Raises `PolicyError` for a policy that does not load or a failed preflight
    (``flows.preflight``: a missing key, a store that refuses writes; nothing is
    touched, not even the bindings that could run), `StateError` for a state database
    that cannot be used, and `RunLocked` when another run holds the policy.
    """
    loaded = load_policy(path, environ)
    policy = loaded.policy
    clock = PolicyClock.at(policy.timezone, options.now)
    run_id = str(uuid.uuid4())
    # A real run never proceeds unaudited: no audit key, nothing is opened or touched.
    key = None if options.dry_run else audit.current_key()
    location = state_location(loaded, options.state_url)
    with opened_stores(policy, read_only=options.dry_run) as (connectors, store_issues):
        issues = store_issues + check_live_schema(policy, connectors)
        refused = preflight(loaded, connectors, location, issues)
        if refused:
            raise PolicyError(loaded.locate(refused))
        broken = {issue.loc[1] for issue in issues if issue.loc[0] == "stores"}
        usable = {n: c for n, c in connectors.items() if n not in broken}
        references = table_references(policy, usable)  # reflected and declared
        failures = binding_failures(loaded, issues, references)
        parents = reference_parents(policy, references, failures)
        plans = execution_order(
            foresee_removals(plan_rules(policy, clock, references), failures, parents=parents),
            parents,
        )
        context = RunContext(run_id, loaded, clock, options, connectors, plans, failures)
        context.location = location
        if options.dry_run:
            if options.coverage_gate:  # the scan cache lives in the state database
                state = _cache_state(location)
                context.gate = coverage_gate(loaded, usable, state, read_only=True)
                if state is not None:
                    state.dispose()
            yield context
            return
        assert key is not None, "looked up above for every real run"
        context.audit_key = key
        context.state = state = location.open(create=True)
        ledger = Ledger(context.state)
        with ledger.locked(policy.name, run_id), ExitStack() as stack:
            for name, connector in usable.items():
                try:
                    mine = stack.enter_context(connector.exclusive(f"tenure:{policy.name}"))
                except StoreError as exc:  # no lock to be had (a read-only store): its
                    for dataset in policy.datasets:  # bindings fail, the others run
                        if dataset.store == name:
                            failures.setdefault(dataset.name, first_line(exc))
                    continue
                if not mine:
                    raise RunLocked(f"policy {policy.name!r} is being run against store {name!r}")
            reconciled = reconcile(ledger, usable, policy, key)
            context.reconciled_runs = reconciled.closed
            context.unreconciled = reconciled.waiting
            context.reconcile_warnings = reconciled.warnings
            writes = {d.store for d in policy.datasets} & usable.keys()
            ledger.start_run(
                run_id, policy.name, loaded.sha256, clock.now, dry_run=False, stores=writes
            )
            try:
                if options.coverage_gate:
                    context.gate = coverage_gate(loaded, usable, state)
                yield context
            except BaseException:
                # Audit what the stores committed; if even that fails, the run stays
                # 'running' and the next run's reconcile audits it.
                with suppress(Exception):
                    close_from_journals(ledger, usable, policy, run_id, "failed", key)
                raise


def _cache_state(location: StateLocation) -> Engine | None:
    """The state database of a dry run, for its scan cache: read, never created."""
    try:
        return location.open()
    except StateError:
        return None


def binding_failures(
    loaded: LoadedPolicy, issues: list[PolicyIssue], references: References | None = None
) -> dict[str, str]:
    """Which bindings must not run, and why: a problem in a dataset stops that dataset; a
    problem in a store stops its datasets; a problem in a hold stops the datasets it
    protects, directly or through `references` (running them without the hold could
    destroy what it preserves)."""
    policy = loaded.policy
    failures: dict[str, list[str]] = {}
    for issue, located in zip(issues, loaded.locate(issues), strict=True):
        for dataset in _affected(policy, issue, references or {}):
            failures.setdefault(dataset.name, []).append(str(located))
    return {name: "; ".join(messages) for name, messages in failures.items()}


def _affected(policy: Policy, issue: PolicyIssue, references: References) -> list[Dataset]:
    section, index = issue.loc[0], issue.loc[1] if len(issue.loc) > 1 else None
    if section == "datasets" and isinstance(index, int):
        first = policy.datasets[index]  # and the other bindings the problem stops
        return [first, *(d for d in policy.datasets if d.name in issue.datasets and d is not first)]
    if section == "stores":
        return [d for d in policy.datasets if d.store == index]
    if section == "holds" and isinstance(index, int):
        hold = policy.holds[index].name  # and the other bindings of its tables, and
        return [  # those of the tables referring to its rows
            d
            for d in policy.datasets
            if hold in protecting_holds(policy, d)
            or any(h.name == hold for h, _, _ in inherited_holds(policy, d, references))
        ]
    return list(policy.datasets)


def process_dataset(
    context: RunContext, plan: RulePlan, progress: Progress | None = None
) -> DatasetOutcome:
    """Work through one binding's expired rows chunk by chunk (a dry run only counts)."""
    progress = progress or Silent()
    dataset = plan.dataset
    outcome = DatasetOutcome.for_plan(plan)
    if dataset.name in context.failures:
        outcome.error = context.failures[dataset.name]
        return outcome
    connector = context.connectors[dataset.store]
    try:
        # A real run counts the store as it is now: the children that went first are gone.
        selection = plan.selection if context.options.dry_run else plan.selection.as_the_store_is()
        counts = connector.count_expiry(selection)
        outcome.expired, outcome.held, outcome.held_by = counts.expired, counts.held, counts.held_by
        outcome.hold_reasons |= counts.reasons
        outcome.unreadable = counts.unreadable
        outcome.no_event = counts.no_event
        outcome.skipped = dict(counts.skipped)
        outcome.refused = context.refused
        if context.options.dry_run or context.refused:
            return outcome
        anonymize = isinstance(dataset.action, AnonymizeAction)
        if anonymize and dataset.risk.require and counts.expired:
            # The table as it will be: rows anonymized so far plus this run's, transformed.
            foreseen = table_risk(connector, context.policy, dataset, plan.selection)
            if foreseen.unmet:
                outcome.risk = foreseen.summary()
                outcome.error = "risk requirement not met, nothing anonymized: " + "; ".join(
                    foreseen.unmet
                )
                return outcome
        if counts.expired:
            progress.start(dataset.name, counts.expired)
            rewrites = column_rewrites(context.policy, dataset)
            _work_through(context, plan, connector, rewrites, outcome, progress)
        if not context.options.table_wide or context.stopping.is_set():
            return outcome  # interrupted: no release of periods half aggregated
        if anonymize:  # for the register: counted in the store, after this run's rewrites
            outcome.risk = table_risk(connector, context.policy, dataset).summary()
        if isinstance(dataset.action, AggregateThenDeleteAction):
            _release(context, plan, connector, outcome)
    except (StoreError, OperatorError, WorkersLost) as exc:
        if isinstance(exc, StoreUnavailable) and context.options.raise_transient:
            raise
        outcome.error = first_line(exc)
    except Exception as exc:  # a defect must not stop retention for the other bindings
        _log.exception("binding %s failed", dataset.name)
        outcome.error = f"unexpected {type(exc).__name__}: {first_line(exc)}"
    return outcome


def _release(
    context: RunContext, plan: RulePlan, connector: Connector, outcome: DatasetOutcome
) -> None:
    """Release the binding's closed periods, and record the releases' risk."""
    assert context.state is not None, "a real run has a state database"
    released = release_rollups(
        context.state,
        connector,
        plan.dataset,
        rollup_sinks(plan.dataset),
        plan.cutoff,
        ZoneInfo(context.policy.timezone),
        context.run_id,
    )
    outcome.risk = [release.summary() for release in released]
    missing = [f"{r.rollup}: {u}" for r in released if r.privacy is None for u in r.unmet]
    problems = [u for r in released if r.privacy is not None for u in r.unmet]
    if missing:
        problems.insert(0, "risk requirement not met, no new release: " + "; ".join(missing))
    if problems:
        outcome.error = "; ".join(problems)


def _work_through(
    context: RunContext,
    plan: RulePlan,
    connector: Connector,
    rewrites: tuple[ColumnRewrite, ...],
    outcome: DatasetOutcome,
    progress: Progress,
) -> None:
    assert context.state is not None, "a real run has a state database"
    ledger = Ledger(context.state)
    sinks = keyed_rollup_sinks(context.policy, plan.dataset)
    # A retried task goes on from the chunks its earlier attempts committed in this run
    # (they were expired when the binding started, too).
    done = [e for e in connector.journal(context.run_id) if e.label == plan.dataset.name]
    outcome.chunks = max((e.chunk_no for e in done), default=0)
    outcome.processed = sum(e.rows for e in done)
    outcome.expired += outcome.processed
    after = None
    while not context.stopping.is_set():
        work = ChunkWork(
            run_id=context.run_id,
            label=plan.dataset.name,
            chunk_no=outcome.chunks + 1,
            selection=plan.selection,
            after=after,
            limit=context.options.chunk_size,
            action=plan.dataset.action.type,
            period_zone=context.policy.timezone,
            rewrites=rewrites,
            rollups=sinks,
        )
        result = connector.execute_chunk(work)
        if result.last is None:
            return
        # Committed in the store: counted before anything else can fail, so the run's
        # audit entry holds it even if the ledger cannot be written now.
        outcome.chunks = work.chunk_no
        outcome.processed += result.rows
        ledger.record_chunk(
            ChunkRecord(context.run_id, plan.dataset.name, work.chunk_no, work.action, result.rows)
        )
        progress.advance(plan.dataset.name, result.rows)
        after = result.last


def column_rewrites(policy: Policy, dataset: Dataset) -> tuple[ColumnRewrite, ...]:
    """The anonymize action's operators, built (and their keys looked up) before any
    write, so a missing key stops the binding with nothing touched."""
    rewrites = []
    for column, operator in binding_operators(policy, dataset).items():
        for key_id in operator.required_keys():
            pseudonym_key(key_id)  # raises MissingSecret, naming where the key belongs
        rewrites.append(
            ColumnRewrite(column, sql=operator.sql_expression, transform=operator.operate)
        )
    return tuple(rewrites)


def finish(context: RunContext, outcomes: list[DatasetOutcome]) -> RunReport:
    """Close the run in the ledger and append one audit entry per binding."""
    report = RunReport(
        run_id=context.run_id,
        policy=context.policy.name,
        policy_sha256=context.loaded.sha256,
        dry_run=context.options.dry_run,
        evaluated_at=context.clock.now,
        outcomes=outcomes,
        reconciled_runs=context.reconciled_runs,
        unreconciled=context.unreconciled,
        reconcile_warnings=context.reconcile_warnings,
        gate=context.gate,
        state="" if context.location is None else context.location.shown,
    )
    if context.state is None:
        return report
    count_committed(context, outcomes)
    entries = [] if report.blocked else [audit_entry(report, o) for o in outcomes]
    if report.gate is not None and report.gate.gaps:
        entries.insert(0, gate_entry(report, report.gate))
    assert context.audit_key is not None, "a real run has its audit key"
    report.audit_head = audit.append(context.state, audit.run_entries(entries), context.audit_key)
    bound = {d.name for d in context.policy.datasets}
    records = [
        binding_record(
            context.policy,
            context.connectors,
            o.dataset,
            o.processed,
            status=o.status,
            error=o.error,
            risk=o.risk,
        )
        for o in outcomes
        # A request's own writes (a correction, a withdrawal's date: labels that are no
        # binding's) are audited above; the register lists what bindings anonymized.
        if (o.risk is not None or (o.processed and o.action != "delete")) and o.dataset in bound
    ]
    append_register(context.state, context.policy, run_fields(report), records)
    status = "blocked" if report.blocked else "failed" if report.failed else "succeeded"
    Ledger(context.state).finish_run(context.run_id, status)
    return report


def each_binding(
    context: RunContext,
    process: Callable[[RulePlan], DatasetOutcome],
    *,
    concurrently: bool = False,
) -> list[DatasetOutcome]:
    """``process`` each plan, outcomes in the plans' order. ``concurrently``, the stores'
    lanes (`store_lanes`) run side by side, one thread each, every lane in its order:
    a store's connection is only ever used by its lane's thread."""
    plans = context.plans
    lanes = store_lanes(context.policy, plans)
    if not concurrently or len(lanes) < 2:
        return [process(plan) for plan in plans]

    def run_lane(lane: list[int]) -> list[tuple[int, DatasetOutcome]]:
        return [
            (position, process(plans[position]))
            for position in lane
            if not context.stopping.is_set()
        ]

    pool = ThreadPoolExecutor(len(lanes), thread_name_prefix="tenure-store")
    try:
        # Each thread its own copy of the caller's context (Prefect's run context, the
        # run's workers).
        futures = [pool.submit(contextvars.copy_context().run, run_lane, lane) for lane in lanes]
        done = dict(pair for future in futures for pair in future.result())
    except BaseException:  # an interrupt: every lane stops before its next chunk
        context.stopping.set()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return [done[position] for position in range(len(plans))]


def run_policy(
    path: str | Path,
    options: RunOptions,
    progress: Progress | None = None,
    environ: Mapping[str, str] | None = None,
    cluster: ClusterOptions = ClusterOptions(),
) -> RunReport:
    """The whole nightly job without an orchestrator: the bindings, the releases, the
    audit, then the publication of the released rollups (`flows.publish`). With a
    ``cluster``, its workers redact, and bindings on different stores run side by side;
    a cluster that cannot be reached stops the run before anything is opened."""
    with cluster_workers(cluster), run_context(path, options, environ) as context:
        outcomes = each_binding(
            context,
            lambda plan: process_dataset(context, plan, progress),
            concurrently=cluster.distributed,
        )
        report = finish(context, outcomes)
        publish_after_run(context, report)
        return report
