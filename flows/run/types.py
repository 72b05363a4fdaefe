"""What a run is made of: its options, its context, each binding's outcome, the report."""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import Engine

from connectors.protocol import Connector
from flows import audit
from flows.gate import GateVerdict
from flows.state.location import StateLocation
from retention_rules.clock import PolicyClock
from retention_rules.loader import LoadedPolicy
from retention_rules.model import (
    Clock,
    Policy,
)
from retention_rules.planner import (
    RulePlan,
)

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
    table_wide: bool = True
    """After its chunks, each binding does the work that concerns its whole table: the
    re-identification risk of an anonymized table, the release of a rollup's closed
    periods. A person's request (a handful of rows) leaves it to the nightly run."""


class Progress(Protocol):
    """Told how far each dataset has gone (a Rich progress bar, a Prefect log)."""

    def start(self, dataset: str, total: int) -> None: ...

    def advance(self, dataset: str, rows: int) -> None: ...


class Silent:
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
    what has been released (``flows.table_risk``, ``flows.releases``)."""

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
    publication: dict[str, Any] | None = None
    """Where the released rollups were published after the run (``flows.publish``:
    the destination masked, each table's rows, the content's SHA-256, changed or not)."""
    publish_error: str | None = None
    """Why they could not be published: the run counts as failed; retention stays done."""

    @property
    def blocked(self) -> bool:
        """The coverage gate refused destructive steps."""
        return self.gate is not None and self.gate.blocks and not self.dry_run

    @property
    def failed(self) -> bool:
        return self.blocked or any(o.error for o in self.outcomes) or self.publish_error is not None


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
    """Where the state database is (``flows.state.location.state_location``)."""
    stopping: threading.Event = field(default_factory=threading.Event)
    """Set when the run is interrupted while stores' lanes run side by side: each lane
    stops before its next chunk."""

    @property
    def policy(self) -> Policy:
        return self.loaded.policy

    @property
    def refused(self) -> bool:
        """Whether the coverage gate stops every destructive step of this run."""
        return self.gate is not None and self.gate.blocks and not self.options.dry_run


def first_line(exc: BaseException, limit: int = 300) -> str:
    """An exception's first line, bounded: what a report shows of it (a driver's later
    lines may quote row values)."""
    lines = str(exc).strip().splitlines()
    text = lines[0] if lines else type(exc).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"
