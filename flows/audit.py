"""The append-only audit log: what was destroyed, anonymized or aggregated, and when.

Each entry is chained to the one before it by an HMAC-SHA256 under the **audit key**
(``TENURE_AUDIT_KEY`` or the Prefect Secret block ``tenure-audit-key``; another key id
through ``TENURE_AUDIT_KEY_ID``, see docs/scheduling.md) over every field: its number,
when it was recorded, its content, the previous entry's hash and the key id. Without the
key nobody can rewrite an entry and recompute the chain, as they could with a plain hash.

``verify`` checks the chain and then asks the other witnesses what the log should hold:
every finished run of the ledger has its entries, every chunk the ledger or a store's
journal says was committed is covered by an entry of its run and dataset with the same
row total, and no store journal names a run that neither the log nor the ledger knows.
What the chain alone cannot prove (the newest entries removed with every witness) is
caught by copying the head hash to an external record.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, func, insert, select

from anonymizers.secrets import (
    DEFAULT_KEY_ID,
    KEY_ID_RULE,
    MissingSecret,
    audit_key,
    is_valid_key_id,
)
from connectors.errors import StoreError
from connectors.protocol import Connector
from flows.ledger import audit, chunks, holder_gone, locks, runs

GENESIS = "0" * 64
KEY_ID_VARIABLE = "TENURE_AUDIT_KEY_ID"
#: The field of an audit entry that holds each action's row count.
ACTION_COUNTERS = {
    "delete": "deleted",
    "anonymize": "anonymized",
    "aggregate_then_delete": "aggregated",
}
#: Each entry of a run says how many entries the run wrote, so removing some is seen.
RUN_ENTRIES = "run_entries"


@dataclass(frozen=True)
class AuditKey:
    """The key new entries are chained with; the secret is never shown."""

    key_id: str
    secret: bytes = field(repr=False)


def current_key() -> AuditKey:
    """The audit key new entries use: key id ``TENURE_AUDIT_KEY_ID`` (default
    ``default``), its secret from the environment or a Prefect Secret block. Raises
    ``MissingSecret`` (one line, saying where the key belongs) when there is none."""
    key_id = os.environ.get(KEY_ID_VARIABLE) or DEFAULT_KEY_ID
    if not is_valid_key_id(key_id):
        raise MissingSecret(f"{KEY_ID_VARIABLE} must be {KEY_ID_RULE}")
    return AuditKey(key_id, audit_key(key_id))


def canonical(entry: Mapping[str, Any]) -> str:
    return json.dumps(entry, sort_keys=True, separators=(",", ":"), default=str, ensure_ascii=False)


def canonical_time(moment: datetime) -> str:
    """An instant as the chain hashes it: UTC, whole seconds (what every database keeps);
    a naive value read back from a database that drops the zone is UTC."""
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return aware.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def entry_hash(
    secret: bytes, *, seq: int, recorded_at: datetime, entry: str, prev_hash: str, key_id: str
) -> str:
    """HMAC-SHA256 under the audit key over every field of an entry."""
    fields = {
        "entry": entry,
        "key_id": key_id,
        "prev_hash": prev_hash,
        "recorded_at": canonical_time(recorded_at),
        "seq": seq,
    }
    return hmac.new(secret, canonical(fields).encode(), hashlib.sha256).hexdigest()


def append(engine: Engine, entries: Sequence[Mapping[str, Any]], key: AuditKey) -> None:
    """Append entries in one transaction, continuing the chain."""
    with engine.begin() as connection:
        last = connection.execute(
            select(audit.c.seq, audit.c.hash).order_by(audit.c.seq.desc()).limit(1)
        ).first()
        seq, prev = (last.seq, last.hash) if last else (0, GENESIS)
        for entry in entries:
            text = canonical(entry)
            now = datetime.now(UTC).replace(microsecond=0)
            seq += 1
            digest = entry_hash(
                key.secret, seq=seq, recorded_at=now, entry=text, prev_hash=prev, key_id=key.key_id
            )
            connection.execute(
                insert(audit).values(
                    seq=seq,
                    recorded_at=now,
                    entry=text,
                    prev_hash=prev,
                    hash=digest,
                    key_id=key.key_id,
                )
            )
            prev = digest


def run_entries(entries: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """A run's entries, each saying how many there are (checked by ``verify``)."""
    return [{**entry, RUN_ENTRIES: len(entries)} for entry in entries]


@dataclass(frozen=True)
class Verification:
    entries: int
    head: str
    problems: list[str]
    checked: list[str] = field(default_factory=list)
    """The witnesses compared with the log, and how much each holds."""
    unchecked: list[str] = field(default_factory=list)
    """Witnesses that could not be asked (an unreachable store), and why."""

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass
class _Log:
    """What the log says: rows per run and dataset, entries per run, and how many each
    run's entries say there are."""

    totals: dict[tuple[str, str], int] = field(default_factory=dict)
    entries: dict[str, int] = field(default_factory=dict)
    declared: dict[str, int] = field(default_factory=dict)

    def add(self, entry: Mapping[str, Any]) -> None:
        run_id = entry.get("run_id")
        if not isinstance(run_id, str):
            return
        self.entries[run_id] = self.entries.get(run_id, 0) + 1
        if isinstance(entry.get(RUN_ENTRIES), int):
            self.declared[run_id] = max(self.declared.get(run_id, 0), entry[RUN_ENTRIES])
        dataset = entry.get("dataset")
        if isinstance(dataset, str):
            rows = sum(int(entry.get(c) or 0) for c in ACTION_COUNTERS.values())
            self.totals[(run_id, dataset)] = self.totals.get((run_id, dataset), 0) + rows


def verify(
    engine: Engine,
    connectors: Mapping[str, Connector] | None = None,
    datasets: Collection[str] | None = None,
    key_for: Callable[[str], bytes] = audit_key,
) -> Verification:
    """Check the chain from the first entry, then compare the log with the ledger and
    with the journal of every store in ``connectors`` (entries of ``datasets`` only,
    when given: a store may be shared with another policy). Raises ``MissingSecret``
    when the key of an entry's key id is not available."""
    problems: list[str] = []
    keys: dict[str, bytes] = {}
    log = _Log()
    prev, expected_seq, count = GENESIS, 1, 0
    with engine.connect() as connection:
        for row in connection.execute(select(audit).order_by(audit.c.seq)):
            count += 1
            if row.seq != expected_seq:
                problems.append(
                    f"entry {row.seq}: expected entry {expected_seq} (removed or reordered)"
                )
            if row.prev_hash != prev:
                problems.append(f"entry {row.seq}: does not follow the entry before it")
            if row.key_id not in keys:
                keys[row.key_id] = key_for(row.key_id)
            digest = entry_hash(
                keys[row.key_id],
                seq=row.seq,
                recorded_at=row.recorded_at,
                entry=row.entry,
                prev_hash=row.prev_hash,
                key_id=row.key_id,
            )
            if not hmac.compare_digest(digest, row.hash):
                problems.append(
                    f"entry {row.seq}: does not match its HMAC under audit key "
                    f"{row.key_id!r} (edited, or chained without the key)"
                )
            prev, expected_seq = row.hash, row.seq + 1
            try:
                log.add(json.loads(row.entry))
            except ValueError:
                problems.append(f"entry {row.seq}: not JSON")
    for run_id, declared in sorted(log.declared.items()):
        found = log.entries.get(run_id, 0)
        if found < declared:
            problems.append(
                f"run {run_id}: {declared - found} of its {declared} audit entries are missing"
            )
    checked: list[str] = []
    problems += _against_ledger(engine, log, checked)
    unchecked: list[str] = []
    known = _ledger_runs(engine)
    busy = _runs_in_progress(engine)
    for name, connector in (connectors or {}).items():
        problems += _against_journal(
            name, connector, log, (known, busy), datasets, (checked, unchecked)
        )
    return Verification(count, prev, problems, checked, unchecked)


def _ledger_runs(engine: Engine) -> set[str]:
    with engine.connect() as connection:
        return set(connection.scalars(select(runs.c.run_id)))


def _runs_in_progress(engine: Engine) -> set[str]:
    """Runs holding their policy's lock right now: their entries are not written yet. A
    lock whose process is gone (a killed run) shelters nothing: its chunks are checked."""
    with engine.connect() as connection:
        held = connection.execute(select(locks.c.run_id, locks.c.host, locks.c.pid))
        return {row.run_id for row in held if not holder_gone(row.host, row.pid)}


def _against_ledger(engine: Engine, log: _Log, checked: list[str]) -> list[str]:
    """Every finished real run has entries; every chunk's rows are in its entries."""
    problems: list[str] = []
    busy = _runs_in_progress(engine)
    with engine.connect() as connection:
        finished = connection.execute(
            select(runs.c.run_id, runs.c.status, runs.c.started_at)
            .where(runs.c.dry_run.is_(False))
            .order_by(runs.c.started_at)
        ).all()
        committed = connection.execute(
            select(chunks.c.run_id, chunks.c.dataset, func.sum(chunks.c.rows), func.count())
            .group_by(chunks.c.run_id, chunks.c.dataset)
            .order_by(chunks.c.run_id, chunks.c.dataset)
        ).all()
    for run in finished:
        if run.run_id in busy:
            continue
        if run.run_id not in log.entries:
            problems.append(
                f"ledger: run {run.run_id} ({run.status}, started {run.started_at}) has no "
                "audit entry"
            )
    chunk_count = 0
    for run_id, dataset, rows, number in committed:
        chunk_count += number
        if run_id in busy or run_id not in log.entries:
            continue  # in progress, or reported above / below as a whole run
        audited = log.totals.get((run_id, dataset))
        if audited != rows:
            problems.append(
                f"ledger: run {run_id}, dataset {dataset}: {number} chunks of {rows} rows "
                f"committed, audit entries say {audited or 0} (row totals differ)"
            )
    for run_id in sorted({c.run_id for c in committed} - log.entries.keys() - busy):
        if run_id not in {r.run_id for r in finished}:
            problems.append(f"ledger: chunks of run {run_id}, which has no audit entry")
    checked.append(f"ledger: {len(finished)} runs, {chunk_count} chunks")
    return problems


def _against_journal(
    name: str,
    connector: Connector,
    log: _Log,
    runs_of_ledger: tuple[set[str], set[str]],
    datasets: Collection[str] | None,
    notes: tuple[list[str], list[str]],
) -> list[str]:
    """Every chunk the store committed is covered by an audit entry with the same rows.
    ``runs_of_ledger``: the ledger's runs, and those in progress; ``notes``: where to say
    what was checked, and what could not be."""
    (known, busy), (checked, unchecked) = runs_of_ledger, notes
    problems: list[str] = []
    where = f"journal of store {name!r}"
    try:
        run_ids = connector.journal_runs()
        journals = {run_id: connector.journal(run_id) for run_id in run_ids}
    except StoreError as exc:
        unchecked.append(f"{where}: {exc}")
        return []
    chunk_count = other = 0
    for run_id, journal in sorted(journals.items()):
        if run_id in busy:
            continue
        totals: dict[str, list[int]] = {}
        for entry in journal:
            if datasets is not None and entry.label not in datasets:
                other += 1
                continue
            total = totals.setdefault(entry.label, [0, 0])
            total[0] += entry.rows
            total[1] += 1
        if not totals:
            continue
        chunk_count += sum(n for _, n in totals.values())
        rows = sum(r for r, _ in totals.values())
        if run_id not in log.entries:
            status = (
                "but has no audit entry (the ledger knows it)"
                if run_id in known
                else "and is neither in the audit log nor in the ledger"
            )
            number = sum(n for _, n in totals.values())
            problems.append(
                f"{where}: run {run_id} committed {number} chunks of {rows} rows {status}"
            )
            continue
        for dataset, (committed, number) in sorted(totals.items()):
            audited = log.totals.get((run_id, dataset), 0)
            if audited != committed:
                problems.append(
                    f"{where}: run {run_id}, dataset {dataset}: {number} chunks of "
                    f"{committed} rows committed, audit entries say {audited} (row totals differ)"
                )
    note = f", {other} chunks of datasets not in this policy not checked" if other else ""
    checked.append(f"{where}: {len(journals)} runs, {chunk_count} chunks{note}")
    return problems


def audited_totals(engine: Engine, run_id: str) -> dict[str, int]:
    """Rows per dataset that the log's entries of ``run_id`` account for."""
    log = _Log()
    for entry in entries(engine, run_id):
        log.add(entry)
    return {dataset: rows for (_, dataset), rows in log.totals.items()}


def entries(engine: Engine, run_id: str | None = None) -> list[dict[str, Any]]:
    with engine.connect() as connection:
        texts = connection.scalars(select(audit.c.entry).order_by(audit.c.seq))
        decoded = [json.loads(text) for text in texts]
    return [e for e in decoded if run_id is None or e.get("run_id") == run_id]
