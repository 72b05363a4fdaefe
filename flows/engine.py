"""The nightly run as plain functions: prepare, process each dataset, finish.

The Prefect flow wraps these (one task per dataset); tests and the crash harness call
them directly. Nothing here decides policy: the planner says what is expired, the
connectors change the stores, and this module keeps the books.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Collection, Iterator, Mapping
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from anonymizers.operators import OperatorError
from anonymizers.secrets import pseudonym_key
from connectors.errors import StoreError, StoreUnavailable
from connectors.protocol import ChunkWork, ColumnRewrite, Connector
from flows import audit, register
from flows.binding_operators import binding_operators
from flows.gate import GateVerdict, coverage_gate
from flows.ledger import (
    ChunkRecord,
    Ledger,
    RunLocked,
    StateError,
    StateLocation,
    state_location,
)
from flows.preflight import preflight
from flows.register_records import register_record
from flows.releases import release_rollups
from flows.risk_check import table_risk
from flows.stores import opened_stores
from retention_rules.clock import PolicyClock
from retention_rules.issues import PolicyError, PolicyIssue
from retention_rules.loader import LoadedPolicy, load_policy
from retention_rules.model import (
    AggregateThenDeleteAction,
    AnonymizeAction,
    Clock,
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
    table_references,
)
from retention_rules.schema_check import check_live_schema

DEFAULT_CHUNK_SIZE = 10_000
_log = logging.getLogger(__name__)
ACTION_COUNTERS = audit.ACTION_COUNTERS


@dataclass(frozen=True)
class RunOptions:
    dry_run: bool = False
    chunk_size: int = DEFAULT_CHUNK_SIZE
    now: datetime | None = None
    state_url: str | None = field(default=None, repr=False)
    """May hold a password: kept out of reprs (and of Prefect's parameters, see
    ``flows.nightly``)."""
    raise_transient: bool = False
    """Let a lost connection propagate (for an orchestrator to retry) instead of
    recording it as the binding's error."""
    coverage_gate: bool = True
    """Scan the stores and check the policy covers every personal column before any
    destructive step (``flows.gate``)."""


class Progress(Protocol):
    """Told how far each dataset has gone (a Rich progress bar, a Prefect log)."""

    def start(self, dataset: str, total: int) -> None: ...

    def advance(self, dataset: str, rows: int) -> None: ...


class _Silent:
    def start(self, dataset: str, total: int) -> None:
        return None

    def advance(self, dataset: str, rows: int) -> None:
        return None


@dataclass
class DatasetOutcome:
    """What happened to one dataset binding in one run."""

    dataset: str
    purpose: str
    action: str
    store: str
    table: str
    cutoff: datetime
    retention: str
    expired: int = 0
    processed: int = 0
    chunks: int = 0
    held: int = 0
    held_by: dict[str, int] = field(default_factory=dict)
    hold_reasons: dict[str, str] = field(default_factory=dict)
    unreadable: int = 0
    """Rows whose clock is not a timestamp in the store's form: never expired."""
    no_event: int = 0
    """Rows whose event clock has no event row (nor fallback value) to count from:
    never expired."""
    clock: Clock | None = field(default=None, repr=False)
    skipped: dict[str, int] = field(default_factory=dict)
    """Records the store left alone, by reason (a duplicate key, a symbolic link)."""
    error: str | None = None
    refused: bool = False
    """Counted only: the coverage gate blocked destructive steps."""
    risk: dict[str, Any] | list[dict[str, Any]] | None = None
    """The re-identification risk analysis: of the anonymized table, or per rollup of
    what has been released (``flows.risk_check``, ``flows.releases``)."""

    @property
    def status(self) -> str:
        if self.error:
            return "error"
        return "refused" if self.refused else "ok"

    @classmethod
    def for_plan(cls, plan: RulePlan, error: str | None = None) -> DatasetOutcome:
        dataset = plan.dataset
        return cls(
            dataset=dataset.name,
            purpose=dataset.purpose,
            action=dataset.action.type,
            store=dataset.store,
            table=dataset.table,
            cutoff=plan.cutoff,
            retention=str(dataset.retention),
            clock=dataset.clock,
            hold_reasons=dict(plan.hold_reasons),
            error=error,
        )

    def summary(self) -> dict[str, Any]:
        """Counts, cut-offs and reasons, for the audit log and reports; never a personal
        value."""
        return {
            "dataset": self.dataset,
            "purpose": self.purpose,
            "store": self.store,
            "table": self.table,
            "action": self.action,
            "retention": self.retention,
            "cutoff": self.cutoff.isoformat(),
            ACTION_COUNTERS[self.action]: self.processed,
            "chunks": self.chunks,
            "held": self.held,
            "clock_unreadable": self.unreadable,
            "never_expires_no_event": self.no_event,
            "skipped": dict(self.skipped),
            "holds": [
                {"hold": name, "reason": self.hold_reasons.get(name, ""), "rows": rows}
                for name, rows in self.held_by.items()
            ],
            "status": self.status,
            "error": self.error,
            **({"risk": self.risk} if self.risk is not None else {}),
        }


@dataclass
class RunReport:
    run_id: str
    policy: str
    policy_sha256: str
    dry_run: bool
    evaluated_at: datetime
    outcomes: list[DatasetOutcome]
    reconciled_runs: list[str] = field(default_factory=list)
    unreconciled: dict[str, str] = field(default_factory=dict)
    """Runs that died and stay open, each with why (a store's journal unread)."""
    reconcile_warnings: list[str] = field(default_factory=list)
    """What the reconciled runs' records lack (``Reconciliation.warnings``)."""
    gate: GateVerdict | None = None
    state: str = ""
    """Where the state database is, its URL masked."""
    audit_head: str | None = None
    """The audit log's head once a real run wrote its entries, to record outside the
    state database: ``tenure audit verify --head`` checks the log still holds it."""

    @property
    def blocked(self) -> bool:
        """The coverage gate refused destructive steps."""
        return self.gate is not None and self.gate.blocks and not self.dry_run

    @property
    def failed(self) -> bool:
        return self.blocked or any(o.error for o in self.outcomes)


@dataclass
class RunContext:
    """Everything a dataset task needs, prepared once per run."""

    run_id: str
    loaded: LoadedPolicy
    clock: PolicyClock
    options: RunOptions
    connectors: Mapping[str, Connector]
    plans: list[RulePlan]
    failures: dict[str, str]
    state: Engine | None = None
    reconciled_runs: list[str] = field(default_factory=list)
    unreconciled: dict[str, str] = field(default_factory=dict)
    reconcile_warnings: list[str] = field(default_factory=list)
    gate: GateVerdict | None = None
    audit_key: audit.AuditKey | None = None
    """What the run's audit entries are chained with (a real run has one)."""
    location: StateLocation | None = None
    """Where the state database is (``flows.ledger.state_location``)."""

    @property
    def policy(self) -> Policy:
        return self.loaded.policy

    @property
    def refused(self) -> bool:
        """Whether the coverage gate stops every destructive step of this run."""
        return self.gate is not None and self.gate.blocks and not self.options.dry_run


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
                    _close_from_journals(ledger, usable, policy, run_id, "failed", key)
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


class JournalUnread(Exception):
    """A journal a run's closing needs cannot be read: the store is down, or this run
    could not open it. The message names the store."""


@dataclass
class Reconciliation:
    """What ``reconcile`` did with the runs that died."""

    closed: list[str] = field(default_factory=list)
    waiting: dict[str, str] = field(default_factory=dict)
    """Runs left open (``running``, unaudited), each with why: a store they may have
    written whose journal cannot be read now. The next run tries again."""
    warnings: list[str] = field(default_factory=list)
    """What the closed runs' records lack: rows of a binding the policy no longer has
    (audited, not registered), a store the policy no longer names (not read)."""


def reconcile(
    ledger: Ledger, connectors: Mapping[str, Connector], policy: Policy, key: audit.AuditKey
) -> Reconciliation:
    """Close runs that died: copy their committed chunks from the stores' journals into
    the ledger, and audit what they did, so that no destruction goes unrecorded. Runs
    the ledger never knew (their state database was lost) are found in the journals.

    A dead run is closed only once the journal of every store it may have written has
    been read: the stores it recorded when it started (``Ledger.stores_of``), else every
    store the policy's bindings use. Until then it stays open, and ``audit verify`` shows
    its work as not yet audited; ``connectors`` are the stores this run could open."""
    datasets = {d.name for d in policy.datasets}
    audited = {e.get("run_id") for e in audit.entries(ledger.engine)}
    known = ledger.known_runs() | audited
    for connector in connectors.values():
        try:
            found = connector.journal_runs()
        except StoreError:
            continue  # unreachable now: the next run looks again
        for run_id in found:
            if run_id in known:
                continue
            journal = [e for e in connector.journal(run_id) if e.label in datasets]
            if journal:
                ledger.adopt_run(run_id, policy.name, min(e.committed_at for e in journal))
                known.add(run_id)
    done = Reconciliation()
    for run_id in ledger.unfinished_runs(policy.name):
        recorded = ledger.stores_of(run_id)
        stores = {d.store for d in policy.datasets} if recorded is None else recorded
        gone = sorted(stores - policy.stores.keys())  # no run can read them again
        try:
            warnings = _close_from_journals(
                ledger, connectors, policy, run_id, "interrupted", key, stores - set(gone), audited
            )
        except JournalUnread as exc:
            done.waiting[run_id] = str(exc)
            continue
        done.closed.append(run_id)
        done.warnings += [
            f"interrupted run {run_id}: store {name!r} is no longer in the policy, its "
            "journal was not read: what the run committed there is not audited"
            for name in gone
        ]
        done.warnings += warnings
    return done


def _close_from_journals(
    ledger: Ledger,
    connectors: Mapping[str, Connector],
    policy: Policy,
    run_id: str,
    status: str,
    key: audit.AuditKey,
    stores: Collection[str] | None = None,
    audited: Collection[str | None] | None = None,
) -> list[str]:
    """Copy a run's chunks from the journals of ``stores`` (default: every store in
    ``connectors``) into the ledger, audit them and register those that anonymized or
    aggregated (unless the run wrote its entries already) and close it. Raises
    `JournalUnread`, recording nothing and leaving the run open, when one of those
    journals cannot be read. ``audited``: the runs the audit log has entries of, when the
    caller has decoded it already. Returns warnings: rows of bindings the policy no longer
    has, audited but not registered."""
    needed = sorted(connectors.keys() if stores is None else stores)
    for name in needed:
        if name not in connectors:
            raise JournalUnread(f"store {name!r} could not be opened by this run")
    _journals_into_ledger(ledger, {name: connectors[name] for name in needed}, run_id)
    totals = ledger.committed(run_id)
    warnings: list[str] = []
    if audited is None:
        audited = {run_id} if audit.entries(ledger.engine, run_id) else set()
    if run_id not in audited:
        entries: list[dict[str, Any]] = [
            {
                "run_id": run_id,
                "policy": policy.name,
                "dataset": label,
                "action": action,
                ACTION_COUNTERS[action]: rows,
                "chunks": chunk_count,
                "status": status,
            }
            for (label, action), (rows, chunk_count) in sorted(totals.items())
        ]
        if not entries:  # nothing committed: the run is still on record
            entries = [{"run_id": run_id, "policy": policy.name, "chunks": 0, "status": status}]
        audit.append(ledger.engine, audit.run_entries(entries), key)
    if not register.recorded(ledger.engine, run_id):
        records = [
            _register_record(
                policy,
                connectors,
                label,
                rows,
                status="interrupted" if status == "interrupted" else "error",
                error=f"the run {'was ' if status == 'interrupted' else ''}{status} after "
                f"committing {chunk_count} chunks; recorded from the stores' journals",
            )
            for (label, action), (rows, chunk_count) in sorted(totals.items())
            if action != "delete"
        ]
        bound = {d.name for d in policy.datasets}
        warnings = [
            f"{status} run {run_id}: {rows:,} rows {ACTION_COUNTERS[action]} by binding "
            f"{label!r}, which the policy no longer has: audited, not in the register"
            for (label, action), (rows, _) in sorted(totals.items())
            if action != "delete" and label not in bound
        ]
        _append_register(ledger.engine, policy, ledger.run_fields(run_id), records)
    ledger.finish_run(run_id, status)
    return warnings


def _journals_into_ledger(ledger: Ledger, connectors: Mapping[str, Connector], run_id: str) -> None:
    """Record in the ledger every chunk the stores' journals hold for ``run_id`` (each
    once); raises `JournalUnread`, recording nothing, when a journal cannot be read."""
    journals = []
    for name, connector in connectors.items():
        try:
            journals.append(connector.journal(run_id))
        except StoreError as exc:
            raise JournalUnread(
                f"the journal of store {name!r} cannot be read: {first_line(exc)}"
            ) from None
    for entry in (e for journal in journals for e in journal):
        record = ChunkRecord(run_id, entry.label, entry.chunk_no, entry.action, entry.rows)
        ledger.record_chunk(record, entry.committed_at)


def _register_record(
    policy: Policy,
    connectors: Mapping[str, Connector],
    name: str,
    rows: int,
    *,
    status: str,
    error: str | None,
    risk: dict[str, Any] | list[dict[str, Any]] | None = None,
) -> dict[str, Any] | None:
    """A binding's record for the register. Without ``risk`` (a binding that failed, a
    run that died, after committing records) an anonymized table's analysis is taken now,
    if the store answers. None for a binding the policy no longer has."""
    dataset = next((d for d in policy.datasets if d.name == name), None)
    if dataset is None:
        return None
    if risk is None and isinstance(dataset.action, AnonymizeAction):
        try:
            risk = table_risk(connectors[dataset.store], policy, dataset).summary()
        except Exception as exc:  # the record is written all the same, saying why
            _log.warning("risk analysis of %s not taken: %s", name, first_line(exc))
            error = f"{error}; risk analysis not taken: {first_line(exc)}"
    return register_record(policy, dataset, records=rows, risk=risk, status=status, error=error)


def _append_register(
    state: Engine, policy: Policy, run: dict[str, Any], records: list[dict[str, Any] | None]
) -> None:
    """Append the run's register entry, when it has records; the analysis is to be
    redone ``review_every`` after the run's evaluation."""
    kept = [record for record in records if record is not None]
    if not kept:
        return
    evaluated = datetime.fromisoformat(str(run["evaluated_at"]))
    redo_by = evaluated + policy.anonymization_register.review_every.as_relativedelta()
    register.append(state, register.entry_for_run(run, kept, redo_by.date()))


def process_dataset(
    context: RunContext, plan: RulePlan, progress: Progress | None = None
) -> DatasetOutcome:
    """Work through one binding's expired rows chunk by chunk (a dry run only counts)."""
    progress = progress or _Silent()
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
        if anonymize:  # for the register: counted in the store, after this run's rewrites
            outcome.risk = table_risk(connector, context.policy, dataset).summary()
        if isinstance(dataset.action, AggregateThenDeleteAction):
            _release(context, plan, connector, outcome)
    except (StoreError, OperatorError) as exc:
        if isinstance(exc, StoreUnavailable) and context.options.raise_transient:
            raise
        outcome.error = first_line(exc)
    except Exception as exc:  # a defect must not stop retention for the other bindings
        _log.exception("binding %s failed", dataset.name)
        outcome.error = f"unexpected {type(exc).__name__}: {first_line(exc)}"
    return outcome


def first_line(exc: BaseException, limit: int = 300) -> str:
    """An exception's first line, bounded: what a report shows of it (a driver's later
    lines may quote row values)."""
    lines = str(exc).strip().splitlines()
    text = lines[0] if lines else type(exc).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"


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
    missing = [f"{r.rollup}: {u}" for r in released for u in r.unmet]
    if missing:
        outcome.error = "risk requirement not met, no new release: " + "; ".join(missing)


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
    sinks = rollup_sinks(plan.dataset)
    # A retried task goes on from the chunks its earlier attempts committed in this run
    # (they were expired when the binding started, too).
    done = [e for e in connector.journal(context.run_id) if e.label == plan.dataset.name]
    outcome.chunks = max((e.chunk_no for e in done), default=0)
    outcome.processed = sum(e.rows for e in done)
    outcome.expired += outcome.processed
    after = None
    while True:
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
    _count_committed(context, outcomes)
    entries = [] if report.blocked else [audit_entry(report, o) for o in outcomes]
    if report.gate is not None and report.gate.gaps:
        entries.insert(0, gate_entry(report, report.gate))
    assert context.audit_key is not None, "a real run has its audit key"
    report.audit_head = audit.append(context.state, audit.run_entries(entries), context.audit_key)
    records = [
        _register_record(
            context.policy,
            context.connectors,
            o.dataset,
            o.processed,
            status=o.status,
            error=o.error,
            risk=o.risk,
        )
        for o in outcomes
        if o.risk is not None or (o.processed and o.action != "delete")
    ]
    _append_register(context.state, context.policy, _run_fields(report), records)
    status = "blocked" if report.blocked else "failed" if report.failed else "succeeded"
    Ledger(context.state).finish_run(context.run_id, status)
    return report


def _count_committed(context: RunContext, outcomes: list[DatasetOutcome]) -> None:
    """Make each outcome count every chunk its binding committed in this run, as the
    stores' journals and the ledger say: a binding whose task failed after committing
    chunks (its outcome rebuilt from the error alone) is audited and registered for them."""
    assert context.state is not None, "a real run has a state database"
    ledger = Ledger(context.state)
    ran = {
        context.policy.dataset(o.dataset).store
        for o in outcomes
        if (o.chunks or o.error) and o.dataset not in context.failures
    }
    for name in sorted(ran & context.connectors.keys()):
        # A store that cannot be read now, or a state database that refuses the write,
        # leaves the ledger with what the run recorded; the outcomes already count every
        # chunk committed before its ledger write, and the next run reconciles the rest.
        try:
            _journals_into_ledger(ledger, {name: context.connectors[name]}, context.run_id)
        except (SQLAlchemyError, OSError, JournalUnread) as exc:
            _log.warning(
                "journal of store %s not brought into the ledger: %s", name, first_line(exc)
            )
    committed = ledger.committed(context.run_id)
    for outcome in outcomes:
        rows, number = committed.get((outcome.dataset, outcome.action), (0, 0))
        if number > outcome.chunks:
            outcome.processed, outcome.chunks = rows, number


def _run_fields(report: RunReport) -> dict[str, Any]:
    """What every audit entry of a run starts with."""
    return {
        "run_id": report.run_id,
        "policy": report.policy,
        "policy_sha256": report.policy_sha256,
        "evaluated_at": report.evaluated_at.isoformat(),
    }


def gate_entry(report: RunReport, gate: GateVerdict) -> dict[str, Any]:
    """The coverage gate's gaps (column names and entity types, never a value)."""
    return {
        **_run_fields(report),
        "event": "coverage_gate",
        "status": gate.status,
        "gaps": list(gate.gaps),
        "tables_scanned": gate.tables,
    }


def audit_entry(report: RunReport, outcome: DatasetOutcome) -> dict[str, Any]:
    return {
        **_run_fields(report),
        **outcome.summary(),
    }


def run_policy(
    path: str | Path,
    options: RunOptions,
    progress: Progress | None = None,
    environ: Mapping[str, str] | None = None,
) -> RunReport:
    """The whole nightly job without an orchestrator."""
    with run_context(path, options, environ) as context:
        outcomes = [process_dataset(context, plan, progress) for plan in context.plans]
        return finish(context, outcomes)
