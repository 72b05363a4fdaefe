"""Closing runs that died: the stores' journals brought into the ledger, then audited.

A run killed between a store's commit and the ledger's write left chunks only the store's
journal knows; the next run reads every journal of the dead run's stores before it
closes it, so each committed chunk is audited and registered once.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from connectors.errors import StoreError
from connectors.protocol import Connector
from flows import audit, register
from flows.run.records import append_register, binding_record
from flows.run.types import ACTION_COUNTERS, DatasetOutcome, RunContext, first_line
from flows.state.ledger import ChunkRecord, Ledger
from retention_rules.model import (
    Policy,
)

_log = logging.getLogger(__name__)


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
            warnings = close_from_journals(
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


def close_from_journals(
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
    journals_into_ledger(ledger, {name: connectors[name] for name in needed}, run_id)
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
            binding_record(
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
        append_register(ledger.engine, policy, ledger.run_fields(run_id), records)
    ledger.finish_run(run_id, status)
    return warnings


def journals_into_ledger(ledger: Ledger, connectors: Mapping[str, Connector], run_id: str) -> None:
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


def count_committed(context: RunContext, outcomes: list[DatasetOutcome]) -> None:
    """Make each outcome count every chunk its binding committed in this run, as the
    stores' journals and the ledger say: a binding whose task failed after committing
    chunks (its outcome rebuilt from the error alone) is audited and registered for them."""
    assert context.state is not None, "a real run has a state database"
    ledger = Ledger(context.state)
    ran = {o.store for o in outcomes if (o.chunks or o.error) and o.dataset not in context.failures}
    for name in sorted(ran & context.connectors.keys()):
        # A store that cannot be read now, or a state database that refuses the write,
        # leaves the ledger with what the run recorded; the outcomes already count every
        # chunk committed before its ledger write, and the next run reconciles the rest.
        try:
            journals_into_ledger(ledger, {name: context.connectors[name]}, context.run_id)
        except (SQLAlchemyError, OSError, JournalUnread) as exc:
            _log.warning(
                "journal of store %s not brought into the ledger: %s", name, first_line(exc)
            )
    committed = ledger.committed(context.run_id)
    for outcome in outcomes:
        rows, number = committed.get((outcome.dataset, outcome.action), (0, 0))
        if number > outcome.chunks:
            outcome.processed, outcome.chunks = rows, number
