"""The nightly run as plain functions: prepare, process each dataset, finish.

The Prefect flow wraps these (one task per dataset); tests and the crash harness call
them directly. Nothing here decides policy: the planner says what is expired, the
connectors change the stores, and this module keeps the books.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from sqlalchemy import Engine

from anonymizers.operators import OperatorError
from anonymizers.secrets import pseudonym_key
from connectors.errors import StoreError, StoreUnavailable
from connectors.protocol import ChunkWork, ColumnRewrite, Connector
from flows import audit, register
from flows.binding_operators import binding_operators
from flows.gate import GateVerdict, coverage_gate
from flows.ledger import ChunkRecord, Ledger, RunLocked, StateError, existing_state, open_state
from flows.register_records import register_record
from flows.releases import release_rollups
from flows.risk_check import table_risk
from flows.stores import default_state_dir, opened_stores
from retention_rules.clock import PolicyClock
from retention_rules.issues import PolicyIssue
from retention_rules.loader import LoadedPolicy, load_policy
from retention_rules.model import AggregateThenDeleteAction, AnonymizeAction, Dataset, Policy
from retention_rules.planner import (
    RulePlan,
    as_the_store_is,
    execution_order,
    foreign_key_parents,
    foresee_removals,
    plan_rules,
    protecting_holds,
    rollup_sinks,
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
            hold_reasons={h.name: h.reason for h in plan.holds},
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
    gate: GateVerdict | None = None

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
    gate: GateVerdict | None = None
    audit_key: audit.AuditKey | None = None
    """What the run's audit entries are chained with (a real run has one)."""

    @property
    def policy(self) -> Policy:
        return self.loaded.policy

    @property
    def refused(self) -> bool:
        """Whether the coverage gate stops every destructive step of this run."""
        return self.gate is not None and self.gate.blocks and not self.options.dry_run


def default_state_url(policy: Policy) -> str:
    """Beside the first SQLite store (the demo store); else in the working directory."""
    return f"sqlite:///{default_state_dir(policy) / 'tenure-state.sqlite'}"


@contextmanager
def run_context(
    path: str | Path, options: RunOptions, environ: Mapping[str, str] | None = None
) -> Iterator[RunContext]:
    """Load and check the policy, open the stores, take the locks, reconcile, start.

    Raises `PolicyError` for a policy that does not load (nothing is touched) and
    `RunLocked` when another run holds the policy.
    """
    loaded = load_policy(path, environ)
    policy = loaded.policy
    clock = PolicyClock.at(policy.timezone, options.now)
    run_id = str(uuid.uuid4())
    # A real run never proceeds unaudited: no audit key, nothing is opened or touched.
    key = None if options.dry_run else audit.current_key()
    with opened_stores(policy, read_only=options.dry_run) as (connectors, store_issues):
        issues = store_issues + check_live_schema(policy, connectors)
        failures = binding_failures(loaded, issues)
        broken = {issue.loc[1] for issue in issues if issue.loc[0] == "stores"}
        usable = {n: c for n, c in connectors.items() if n not in broken}
        plans = execution_order(
            foresee_removals(plan_rules(policy, clock), failures),
            foreign_key_parents(policy, usable, failures),
        )
        context = RunContext(run_id, loaded, clock, options, connectors, plans, failures)
        state_url = options.state_url or default_state_url(policy)
        if options.dry_run:
            if options.coverage_gate:  # the scan cache lives in the state database
                state = _cache_state(state_url)
                context.gate = coverage_gate(loaded, usable, state, read_only=True)
                if state is not None:
                    state.dispose()
            yield context
            return
        assert key is not None, "looked up above for every real run"
        context.audit_key = key
        context.state = state = open_state(state_url)
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
            context.reconciled_runs = reconcile(ledger, usable, policy, key)
            ledger.start_run(run_id, policy.name, loaded.sha256, clock.now, dry_run=False)
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


def _cache_state(url: str) -> Engine | None:
    """The state database of a dry run, for its scan cache: read, never created."""
    try:
        return existing_state(url)
    except StateError:
        return None


def binding_failures(loaded: LoadedPolicy, issues: list[PolicyIssue]) -> dict[str, str]:
    """Which bindings must not run, and why: a problem in a dataset stops that dataset; a
    problem in a store stops its datasets; a problem in a hold stops the datasets it
    protects (running them without the hold could destroy what it preserves)."""
    policy = loaded.policy
    failures: dict[str, list[str]] = {}
    for issue, located in zip(issues, loaded.locate(issues), strict=True):
        for dataset in _affected(policy, issue):
            failures.setdefault(dataset.name, []).append(str(located))
    return {name: "; ".join(messages) for name, messages in failures.items()}


def _affected(policy: Policy, issue: PolicyIssue) -> list[Dataset]:
    section, index = issue.loc[0], issue.loc[1] if len(issue.loc) > 1 else None
    if section == "datasets" and isinstance(index, int):
        first = policy.datasets[index]  # and the other bindings the problem stops
        return [first, *(d for d in policy.datasets if d.name in issue.datasets and d is not first)]
    if section == "stores":
        return [d for d in policy.datasets if d.store == index]
    if section == "holds" and isinstance(index, int):
        hold = policy.holds[index].name  # and the other bindings of its tables
        return [d for d in policy.datasets if hold in protecting_holds(policy, d)]
    return list(policy.datasets)


def reconcile(
    ledger: Ledger, connectors: Mapping[str, Connector], policy: Policy, key: audit.AuditKey
) -> list[str]:
    """Close runs that died: copy their committed chunks from the stores' journals into
    the ledger, and audit what they did, so that no destruction goes unrecorded. Runs
    the ledger never knew (their state database was lost) are found in the journals."""
    datasets = {d.name for d in policy.datasets}
    known = ledger.known_runs() | {e.get("run_id") for e in audit.entries(ledger.engine)}
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
    return [
        run_id
        for run_id in ledger.unfinished_runs(policy.name)
        if _close_from_journals(ledger, connectors, policy, run_id, "interrupted", key)
    ]


def _close_from_journals(
    ledger: Ledger,
    connectors: Mapping[str, Connector],
    policy: Policy,
    run_id: str,
    status: str,
    key: audit.AuditKey,
) -> bool:
    """Copy a run's chunks from the stores' journals into the ledger, audit them (unless
    the run's entries were written already) and close it; False, leaving the run open,
    when a store's journal cannot be read."""
    totals: dict[tuple[str, str], list[int]] = {}
    try:
        journals = [connector.journal(run_id) for connector in connectors.values()]
    except StoreError:
        return False
    for entry in (e for journal in journals for e in journal):
        record = ChunkRecord(run_id, entry.label, entry.chunk_no, entry.action, entry.rows)
        ledger.record_chunk(record, entry.committed_at)
        total = totals.setdefault((entry.label, entry.action), [0, 0])
        total[0] += entry.rows
        total[1] += 1
    if not audit.entries(ledger.engine, run_id):
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
    ledger.finish_run(run_id, status)
    return True


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
        selection = plan.selection if context.options.dry_run else as_the_store_is(plan.selection)
        counts = connector.count_expiry(selection)
        outcome.expired, outcome.held, outcome.held_by = counts.expired, counts.held, counts.held_by
        outcome.hold_reasons |= counts.reasons
        outcome.unreadable = counts.unreadable
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
        gate=context.gate,
    )
    if context.state is None:
        return report
    entries = [] if report.blocked else [audit_entry(report, o) for o in outcomes]
    if report.gate is not None and report.gate.gaps:
        entries.insert(0, gate_entry(report, report.gate))
    assert context.audit_key is not None, "a real run has its audit key"
    audit.append(context.state, audit.run_entries(entries), context.audit_key)
    records = [
        register_record(
            context.policy,
            context.policy.dataset(o.dataset),
            records=o.processed,
            risk=o.risk,
            status=o.status,
            error=o.error,
        )
        for o in outcomes
        if o.risk is not None
    ]
    if records:
        policy = context.policy
        redo_by = (
            report.evaluated_at + policy.anonymization_register.review_every.as_relativedelta()
        )
        register.append(
            context.state, register.entry_for_run(_run_fields(report), records, redo_by.date())
        )
    status = "blocked" if report.blocked else "failed" if report.failed else "succeeded"
    Ledger(context.state).finish_run(context.run_id, status)
    return report


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
