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
The register of requests from people is a witness too: each of a request's events has
its entry (request id, event, its number, dates, counts: never an identifier or a value)
and each entry its event, unless the register's own retention deleted the request (itself
audited), and a request's status and due dates are those of its latest entry.
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

from sqlalchemy import Connection, Engine, func, insert, inspect, select

from anonymizers.secrets import (
    DEFAULT_KEY_ID,
    KEY_ID_RULE,
    MissingSecret,
    audit_key,
    is_valid_key_id,
)
from connectors.errors import StoreError
from connectors.protocol import Connector
from flows.state.ledger import Ledger, holder_gone
from flows.state.tables import (
    audit,
    chunks,
    locks,
    privacy_loss,
    request_events,
    requests,
    runs,
)

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
#: The fields of an entry recording an event of a person's request (flows.rights.register):
#: the request, the event, its number among the request's events (its row in
#: ``tenure_request_events``); ``deleted`` records the request's whole record deleted by
#: the register's own retention.
REQUEST_ID = "request_id"
REQUEST_EVENT = "request_event"
EVENT_SEQ = "event_seq"
REQUEST_DELETED = "deleted"
#: The event of an entry recording the privacy loss one release of a period spent
#: (flows.releases), checked against ``tenure_privacy_loss``: a row removed there would
#: give the budget back.
PRIVACY_LOSS = "privacy_loss"
#: The event of an entry recording a release published to the policy's destination
#: (flows.publish): where (masked), each table's rows and the content's SHA-256.
PUBLISHED = "published"


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


def append(engine: Engine, entries: Sequence[Mapping[str, Any]], key: AuditKey) -> str:
    """Append entries in one transaction, continuing the chain; the new head, the hash
    to record outside the state database (see ``verify``'s ``head``)."""
    with engine.begin() as connection:
        return append_on(connection, entries, key)


def append_on(connection: Connection, entries: Sequence[Mapping[str, Any]], key: AuditKey) -> str:
    """``append`` inside a transaction the caller holds, so that the change the entries
    record and the entries commit together (a request's event and its entry)."""
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
    return str(prev)


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
    unaudited: list[str] = field(default_factory=list)
    """Committed work of runs that died (the ledger has them running, their process is
    gone) that no entry covers yet: the next run of the policy audits it from the
    stores' journals. Not tampering, but the log does not account for it yet."""
    interrupted: list[str] = field(default_factory=list)
    """The runs ``unaudited`` speaks of."""

    @property
    def ok(self) -> bool:
        return not self.problems and not self.unaudited


@dataclass
class _Log:
    """What the log says: rows per run and dataset, entries per run, and how many each
    run's entries say there are; the events of each request of a person, and the
    requests whose records the register's own retention deleted."""

    totals: dict[tuple[str, str], int] = field(default_factory=dict)
    entries: dict[str, int] = field(default_factory=dict)
    declared: dict[str, int] = field(default_factory=dict)
    by_request: dict[str, dict[int, Mapping[str, Any]]] = field(default_factory=dict)
    deleted_requests: set[str] = field(default_factory=set)
    privacy: dict[tuple[str, str, str, int], Mapping[str, Any]] = field(default_factory=dict)

    def add(self, entry: Mapping[str, Any]) -> None:
        if entry.get("event") == PRIVACY_LOSS:
            binding, rollup, start = (
                str(entry.get(f)) for f in ("binding", "rollup", "period_start")
            )
            self.privacy[(binding, rollup, start, int(entry.get("release_no") or 0))] = entry
            return
        request_id, event = entry.get(REQUEST_ID), entry.get(REQUEST_EVENT)
        if isinstance(request_id, str) and isinstance(event, str):
            if event == REQUEST_DELETED:
                self.deleted_requests.add(request_id)
            elif isinstance(entry.get(EVENT_SEQ), int):
                self.by_request.setdefault(request_id, {})[entry[EVENT_SEQ]] = entry
            return
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
    *,
    head: str | None = None,
    since_run: str | None = None,
) -> Verification:
    """Check the chain from the first entry, then compare the log with the ledger and
    with the journal of every store in ``connectors`` (entries of ``datasets`` only,
    when given: a store may be shared with another policy). Raises ``MissingSecret``
    when the key of an entry's key id is not available.

    Anchors recorded outside the state database catch what no witness inside it can
    (the newest entries removed with the ledger's record of their run): ``head``, a hash
    a run report printed, must be an entry of the log (the chain, checked to its end,
    then vouches for every entry up to it); ``since_run``, a run's id, must have its
    entries in the log, all of them."""
    problems: list[str] = []
    keys: dict[str, bytes] = {}
    log = _Log()
    prev, expected_seq, count = GENESIS, 1, 0
    head_at: int | None = None  # the recorded head's place in the log, once found
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
            if row.hash == head:
                head_at = count
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
    unaudited: list[str] = []
    busy = _runs_in_progress(engine)
    problems += _against_ledger(engine, log, busy, checked, unaudited)
    problems += _against_requests(engine, log, checked)
    problems += _against_privacy_loss(engine, log, checked)
    unchecked: list[str] = []
    known = Ledger(engine).known_runs()
    interrupted = _interrupted_runs(engine, busy) - log.entries.keys()
    for name, connector in (connectors or {}).items():
        differences = _against_journal(
            name, connector, log, (known, busy, interrupted), datasets, (checked, unchecked)
        )
        for run_id, problem in differences:
            (unaudited if run_id in interrupted else problems).append(problem)
    problems += _against_anchors(
        engine, log, (head, head_at, since_run), (count, prev, busy), checked
    )
    return Verification(
        count,
        prev,
        problems,
        checked,
        unchecked,
        unaudited,
        sorted(run_id for run_id in interrupted if any(run_id in u for u in unaudited)),
    )


def _against_anchors(
    engine: Engine,
    log: _Log,
    anchors: tuple[str | None, int | None, str | None],
    end: tuple[int, str, set[str]],
    checked: list[str],
) -> list[str]:
    """What no witness in the state database can show: that the log still holds an
    anchor recorded outside it. ``anchors``: the recorded head, where the log holds it
    (None: nowhere), and a run id; ``end``: the log's entries, its head, and the runs in
    progress."""
    (head, head_at, run_id), (count, last, busy) = anchors, end
    problems: list[str] = []
    if head is not None and head_at is None:
        problems.append(
            f"recorded head {head} is not in the audit log, whose {count} entries end at "
            f"{last}: the log was cut back to before it, or rewritten"
        )
    elif head is not None and head_at is not None:
        checked.append(f"recorded head: entry {head_at} of {count}")
    if run_id is None:
        return problems
    found = log.entries.get(run_id, 0)
    if found:
        checked.append(f"run {run_id}: {found} entries")
        return problems  # missing ones are reported with every run's
    with engine.connect() as connection:
        run = connection.execute(
            select(runs.c.dry_run, runs.c.status).where(runs.c.run_id == run_id)
        ).first()
    if run is not None and run.dry_run:
        why = "it is a dry run, which writes none: name a real run"
    elif run_id in busy:
        why = "it is still running: its entries are written when it ends"
    elif run is not None and run.status == "running":
        why = "it was interrupted: the next run of the policy audits it"
    else:
        unknown = "" if run is not None else " (or no run of this state database had that id)"
        why = f"the log was cut back to before it, or rewritten{unknown}"
    problems.append(f"run {run_id}: no audit entry; {why}")
    return problems


def _interrupted_runs(engine: Engine, busy: set[str]) -> set[str]:
    """Real runs the ledger still has running whose process is gone."""
    statement = select(runs.c.run_id).where(runs.c.status == "running", runs.c.dry_run.is_(False))
    with engine.connect() as connection:
        return set(connection.scalars(statement)) - busy


def _runs_in_progress(engine: Engine) -> set[str]:
    """Runs holding their policy's lock right now: their entries are not written yet. A
    lock whose process is gone (a killed run) shelters nothing: its chunks are checked."""
    with engine.connect() as connection:
        held = connection.execute(select(locks.c.run_id, locks.c.host, locks.c.pid))
        return {row.run_id for row in held if not holder_gone(row.host, row.pid)}


def _against_ledger(
    engine: Engine, log: _Log, busy: set[str], checked: list[str], unaudited: list[str]
) -> list[str]:
    """Every finished real run has entries; every chunk's rows are in its entries. A run
    that died before writing its entries goes to ``unaudited``."""
    problems: list[str] = []
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
        if run.run_id in log.entries:
            continue
        if run.status == "running":  # and its process is gone: a killed run
            rows = sum(int(c[2]) for c in committed if c.run_id == run.run_id)
            number = sum(int(c[3]) for c in committed if c.run_id == run.run_id)
            unaudited.append(
                f"ledger: run {run.run_id} (started {run.started_at}) was interrupted: "
                f"{number} chunks of {rows} rows recorded, not yet audited"
            )
        else:
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


def _against_requests(engine: Engine, log: _Log, checked: list[str]) -> list[str]:
    """Every event of the register of requests has its entry, and every entry its event
    (but for requests whose record the register's retention deleted, itself audited); a
    request's status and due dates are those its latest entry recorded."""
    if not inspect(engine).has_table(request_events.name):
        return []  # a state database made before requests were registered
    with engine.connect() as connection:
        events = connection.execute(
            select(request_events.c.request_id, request_events.c.seq, request_events.c.event)
        ).all()
        rows = connection.execute(
            select(
                requests.c.request_id, requests.c.status, requests.c.due, requests.c.extended_due
            )
        ).all()
    problems: list[str] = []
    where = "register of requests"
    held = {(e.request_id, e.seq): e.event for e in events}
    for (request_id, seq), event in sorted(held.items()):
        logged = log.by_request.get(request_id, {}).get(seq)
        if logged is None or logged.get(REQUEST_EVENT) != event:
            problems.append(
                f"{where}: request {request_id}, event {seq} ({event}) has no audit entry "
                "(written outside Tenure, or its entry removed)"
            )
    for request_id, logged_events in sorted(log.by_request.items()):
        if request_id in log.deleted_requests:
            continue
        for seq, entry in sorted(logged_events.items()):
            if (request_id, seq) not in held:
                problems.append(
                    f"{where}: request {request_id}, event {seq} ({entry.get(REQUEST_EVENT)}) "
                    "is in the audit log but not in the register (removed)"
                )
    for row in rows:
        entries_of = log.by_request.get(row.request_id)
        if not entries_of:
            continue  # its events are reported above
        last = entries_of[max(entries_of)]
        recorded = (last.get("status"), last.get("due"), last.get("extended_due"))
        held_now = (
            row.status,
            row.due.isoformat(),
            None if row.extended_due is None else row.extended_due.isoformat(),
        )
        if recorded != held_now:
            problems.append(
                f"{where}: request {row.request_id} says status {row.status}, due {held_now[1]}"
                f"{'' if held_now[2] is None else f' (extended to {held_now[2]})'}; its latest "
                f"audit entry says {recorded[0]}, due {recorded[1]} (edited outside Tenure)"
            )
    checked.append(f"{where}: {len(rows)} requests, {len(events)} events")
    return problems


def _against_privacy_loss(engine: Engine, log: _Log, checked: list[str]) -> list[str]:
    """Every release under differential privacy recorded in the state database has its
    entry with the same loss, and every entry its row: a row removed would give back the
    budget it spent, a row edited would misstate it."""
    if not inspect(engine).has_table(privacy_loss.name):
        return []  # a state database made before releases spent privacy loss
    with engine.connect() as connection:
        rows = connection.execute(
            select(
                privacy_loss.c.dataset,
                privacy_loss.c.rollup,
                privacy_loss.c.period_start,
                privacy_loss.c.release_no,
                privacy_loss.c.epsilon,
                privacy_loss.c.year,
                privacy_loss.c.sensitivity,
            )
        ).all()
    problems: list[str] = []
    where = "privacy loss"
    held = {
        (r.dataset, r.rollup, r.period_start, r.release_no): (r.epsilon, r.year, r.sensitivity)
        for r in rows
    }
    for (dataset, rollup, start, number), (epsilon, year, sensitivity) in sorted(held.items()):
        logged = log.privacy.get((dataset, rollup, start, number))
        recorded = (
            None
            if logged is None
            else (logged.get("epsilon"), logged.get("year"), logged.get("sensitivity"))
        )
        if recorded != (epsilon, year, sensitivity):
            problems.append(
                f"{where}: {dataset}.{rollup} period {start} release {number} (epsilon "
                f"{epsilon:g}, budget year {year}) has no audit entry with that loss, year "
                "and sensitivity (written or edited outside Tenure)"
            )
    for (dataset, rollup, start, number), entry in sorted(log.privacy.items()):
        if (dataset, rollup, start, number) not in held:
            problems.append(
                f"{where}: {dataset}.{rollup} period {start} release {number} (epsilon "
                f"{entry.get('epsilon')}) is in the audit log but not in the state database "
                "(removed: its budget would be spent again)"
            )
    checked.append(f"{where}: {len(rows)} releases")
    return problems


def _against_journal(
    name: str,
    connector: Connector,
    log: _Log,
    runs_of_ledger: tuple[set[str], set[str], set[str]],
    datasets: Collection[str] | None,
    notes: tuple[list[str], list[str]],
) -> list[tuple[str, str]]:
    """Every chunk the store committed is covered by an audit entry with the same rows;
    each problem with the run it concerns. ``runs_of_ledger``: the ledger's runs, those
    in progress and those interrupted; ``notes``: where to say what was checked, and what
    could not be."""
    (known, busy, interrupted), (checked, unchecked) = runs_of_ledger, notes
    problems: list[tuple[str, str]] = []
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
                ", not yet audited (the run was interrupted)"
                if run_id in interrupted
                else " but has no audit entry (the ledger knows it)"
                if run_id in known
                else " and is neither in the audit log nor in the ledger"
            )
            number = sum(n for _, n in totals.values())
            problems.append(
                (run_id, f"{where}: run {run_id} committed {number} chunks of {rows} rows{status}")
            )
            continue
        for dataset, (committed, number) in sorted(totals.items()):
            audited = log.totals.get((run_id, dataset), 0)
            if audited != committed:
                problems.append(
                    (
                        run_id,
                        f"{where}: run {run_id}, dataset {dataset}: {number} chunks of "
                        f"{committed} rows committed, audit entries say {audited} (row totals "
                        "differ)",
                    )
                )
    note = f", {other} chunks of datasets not in this policy not checked" if other else ""
    checked.append(f"{where}: {len(journals)} runs, {chunk_count} chunks{note}")
    return problems


def entries(engine: Engine, run_id: str | None = None) -> list[dict[str, Any]]:
    with engine.connect() as connection:
        texts = connection.scalars(select(audit.c.entry).order_by(audit.c.seq))
        decoded = [json.loads(text) for text in texts]
    return [e for e in decoded if run_id is None or e.get("run_id") == run_id]
