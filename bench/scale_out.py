"""Beyond one machine: redaction and the scan in this process, on one and on two Dask workers.

    .venv/bin/python -m bench.scale_out            # 20,000 notes, 5,000 messages, 200 tables
    .venv/bin/python -m bench.scale_out --smoke    # 200 notes, 50 messages, 10 tables

Everything is measured in one run, each figure a ratio to a baseline of the same run:

* **Redaction.** A SQLite store of ``--notes`` bilingual support notes
  (``bench.data.write_notes``) and a Maildir of ``--messages`` business e-mails
  (``bench.data.write_maildir``), every record older than the cut-off, and a policy (written
  to the work folder) with two bindings: ``redact_text`` on the notes' ``note`` column and
  on the messages' ``body``. The real nightly path, ``run_policy(path, RunOptions(now=...,
  coverage_gate=False), cluster=...)``, runs on a fresh copy of both stores for each
  configuration: in this process, on a local cluster of one worker, of ``--workers``
  workers. A cluster is started (``flows.cluster.cluster_workers``) and its workers are
  warmed up (models loaded, a few texts redacted) before the timer starts; the timed run
  reaches it by its address, as ``tenure run --dask`` does, so no figure includes loading
  the models (the start and warm-up are shown apart). The in-process engine is warmed up
  likewise. After each run the notes and the messages' text parts are read back: the three
  configurations must leave the same text, value for value, or the script stops. Each
  worker's peak memory (``VmHWM``) is read when half of the texts are done and at the end.
* **The scan.** A SQLite store of ``--tables`` tables (``bench.independent_set``'s
  fourteen tables of personal and neutral columns, free text in some, copied under new
  names from one seed per copy), scanned by ``flows.scan_runner.run_scan(path, full=True,
  cluster=...)`` on one and on ``--workers`` warmed workers; both must give every column
  the same labels.
* **Capacity inputs.** The same bindings with ``pseudonym`` (an HMAC computed in Python,
  so every row makes the same round trip as under ``redact_text``: read, rewritten,
  written back, journalled, committed per chunk) measure the rows per second each store
  commits when the rewrite costs nearly nothing; sampling every table alone measures how
  fast the store hands the scan its samples; a burst of empty tasks measures the
  scheduler's cost per task. From these and the one-worker rates the script extrapolates
  ten million messages and a 10,000-table warehouse on 1, 8 and 64 workers.

``--part redaction`` or ``--part scan`` runs one half (no capacity table then). The
figures go to ``bench/results/scale_out.json``; see bench/README.md.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import resource
import shutil
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any, Final, TypeVar

from anonymizers.detection import ColumnSample, classify_table
from anonymizers.text_redaction import redact_texts
from bench import harness
from bench.data import (
    MAIL_DOMAIN,
    MAIL_NEWEST,
    MAIL_OLDEST,
    TEXT_PII_SHARE,
    visible_texts,
    write_maildir,
    write_notes,
)
from bench.independent_set import build_independent_set, write_sqlite
from connectors import workers as work
from connectors.protocol import ConnectorOptions
from connectors.sql.connector import SQLConnector
from flows.cluster import ClusterOptions, DaskWorkers, cluster_workers
from flows.run.lifecycle import run_policy
from flows.run.types import RunOptions
from flows.scan import sample_table
from flows.scan_runner import run_scan

SEED: Final = 20_261_219
#: The run's instant: every note and message is more than a year older.
NOW: Final = datetime(2026, 6, 1, 2, 0, tzinfo=UTC)
SPEED_UP: Final = harness.Target(1.7, at_least=True)
SCAN_SPEED_UP: Final = harness.Target(1.6, at_least=True)
OVERHEAD: Final = harness.Target(1.05)
NOTES, MAIL = "support_notes", "business_email"
#: Rows per chunk: smaller than the nightly's default (10,000) so that each worker's memory
#: can be read near half of the texts (after a chunk), and the stores commit as they go.
CHUNK_SIZE: Final = 10_000  # the nightly run's default chunk
#: Empty tasks timed to measure the scheduler's cost per task.
EMPTY_TASKS: Final = 2_000
#: What the capacity table extrapolates to.
CAPACITY_MESSAGES: Final = 10_000_000
CAPACITY_TABLES: Final = 10_000
CAPACITY_WORKERS: Final = (1, 8, 64)
SMOKE: Final = {
    "notes": 200,
    "messages": 50,
    "tables": 10,
    "table_rows": 40,
    "chunk_size": 50,
    "empty_tasks": 100,
}
KEPT: Final = "work here instead of a temporary folder, and keep the stores"

POLICY: Final = """\
version: 1
name: bench_scale_out
timezone: UTC
categories:
  communications.support_notes:
    {description: "Free-text notes of a support ticket", identifier: direct, entities: any}
  communications.email_body:
    {description: "Body of business e-mail", identifier: direct, entities: any}
purposes:
  support:
    description: Answer customers' requests.
    legal_basis: contract
    min_retention: 30 days
    max_retention: 2 years
stores:
  crm: {url: "sqlite:///@CRM@"}
  mail: {url: "maildir:///@MAIL@?internal_domains=@DOMAIN@"}
datasets:
  - name: support_notes
    store: crm
    table: support_notes
    purpose: support
    primary_key: id
    subject_key: customer_id
    columns: {note: communications.support_notes}
    clock: {column: written_at}
    retention: 1 year
    action:
      type: anonymize
      kept_for: "Support history without the people in it"
      columns: {note: @OPERATOR@}
  - name: business_email
    store: mail
    table: inbox
    purpose: support
    primary_key: message_key
    subject_key: correspondent
    columns: {body: communications.email_body}
    clock: {column: sent_at}
    retention: 1 year
    action:
      type: anonymize
      kept_for: "What was asked, without the people in it"
      columns: {body: @OPERATOR@}
"""
SCAN_POLICY: Final = """\
version: 1
name: bench_scale_out_scan
timezone: UTC
categories:
  usage.activity: {description: "What was done", identifier: none}
purposes:
  support:
    description: Answer customers' requests.
    legal_basis: contract
    min_retention: 30 days
    max_retention: 2 years
stores:
  warehouse: {url: "sqlite:///@STORE@"}
datasets:
  - name: client_status
    store: warehouse
    table: clients_00
    purpose: support
    primary_key: id
    subject_key: id
    columns: {etat: usage.activity}
    clock: {column: cree_le}
    retention: 1 year
    action: delete
"""

# ---------------------------------------------------------------------------- the stores


@dataclass(frozen=True)
class Sources:
    """The seeded stores every configuration copies, and the texts to warm engines on."""

    crm: Path
    mail: Path
    warm: list[str]
    body_batches: int
    """The batches (cluster tasks) the messages' bodies make (``text_batches``)."""


def write_sources(folder: Path, notes: int, messages: int, seed: int) -> Sources:
    crm, mail = folder / "source-crm.sqlite", folder / "source-mail"
    shutil.rmtree(mail, ignore_errors=True)
    crm.unlink(missing_ok=True)
    rng = random.Random(seed)
    span = int((MAIL_NEWEST - MAIL_OLDEST).total_seconds())
    rows = [
        (
            number,
            rng.randint(1, max(notes // 3, 1)),
            note.text,
            (MAIL_OLDEST + timedelta(seconds=rng.randint(0, span))).strftime("%Y-%m-%d %H:%M:%S"),
        )
        for number, note in enumerate(write_notes(notes, seed, TEXT_PII_SHARE), start=1)
    ]
    with sqlite3.connect(crm) as connection:
        connection.execute(
            "CREATE TABLE support_notes (id INTEGER PRIMARY KEY, customer_id INTEGER NOT NULL,"
            " note TEXT, written_at DATETIME NOT NULL)"
        )
        connection.executemany("INSERT INTO support_notes VALUES (?, ?, ?, ?)", rows)
    connection.close()
    write_maildir(mail, messages, seed)
    warm = [note.text for note in write_notes(harness.WARM_UP, seed + 1, 1.0)]
    warm_mail = folder / "warm-mail"
    shutil.rmtree(warm_mail, ignore_errors=True)
    write_maildir(warm_mail, harness.WARM_UP // 4, seed + 1)
    warm += [visible_texts(p.read_bytes())[1] for p in sorted((warm_mail / "cur").iterdir())]
    bodies = [visible_texts(p.read_bytes())[1] for p in sorted((mail / "cur").iterdir())]
    return Sources(crm, mail, warm, len(work.text_batches(bodies)))


def fresh_copy(sources: Sources, folder: Path, operator: str) -> Path:
    """Both stores copied into ``folder`` (emptied first), and the policy over them."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    shutil.copyfile(sources.crm, folder / "crm.sqlite")
    shutil.copytree(sources.mail, folder / "mail")
    policy = folder / "policy.yaml"
    text = POLICY.replace("@CRM@", str(folder / "crm.sqlite")).replace("@DOMAIN@", MAIL_DOMAIN)
    policy.write_text(text.replace("@MAIL@", str(folder / "mail")).replace("@OPERATOR@", operator))
    return policy


@dataclass(frozen=True)
class Contents:
    """What a run left: every note by id, every message's text parts by its file key."""

    notes: dict[int, str]
    messages: dict[str, tuple[str, ...]]


def read_contents(folder: Path) -> Contents:
    with sqlite3.connect(folder / "crm.sqlite") as connection:
        notes = dict(connection.execute("SELECT id, note FROM support_notes"))
    connection.close()
    messages = {}
    for path in (folder / "mail" / "cur").iterdir():
        messages[path.name.split(":")[0].split(",")[0]] = tuple(visible_texts(path.read_bytes()))
    return Contents(notes, messages)


def differences(run: Contents, baseline: Contents) -> list[str]:
    """Where ``run`` left other text than ``baseline`` (ids and keys only)."""
    found = [f"note {i}" for i in sorted(baseline.notes) if run.notes.get(i) != baseline.notes[i]]
    found += [f"note {i} (extra)" for i in sorted(set(run.notes) - set(baseline.notes))]
    found += [
        f"message {key}"
        for key in sorted(set(baseline.messages) | set(run.messages))
        if run.messages.get(key) != baseline.messages.get(key)
    ]
    return found


# ---------------------------------------------------------------------------- workers


def warm_worker(texts: list[str], sample: list[ColumnSample]) -> int:
    """Load the text engine and the classifier here (on a worker); this process's RSS in kB."""
    redact_texts(texts)
    classify_table(sample)
    return harness.status_kb("VmRSS")


def peak_kb() -> int:
    """This process's peak resident memory (``VmHWM``), in kB."""
    return harness.status_kb("VmHWM")


def empty_task(item: int) -> int:
    return item


def cpu_seconds() -> float:
    """CPU seconds this process has used (user and system, every thread)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


T = TypeVar("T")


@dataclass(frozen=True)
class Usage:
    """What a timed run used: CPU seconds of each worker and of this process (which reads
    and writes the stores), and the machine's load average (1 min) before and after. On a
    machine shared with other jobs, a worker's CPU seconds over the wall time says how
    much of a core it got."""

    workers_cpu_s: dict[str, float]
    main_cpu_s: float
    load_before: float
    load_after: float

    def busy(self, seconds: float) -> str:
        """Each worker's CPU seconds over the wall time: ``97%, 95%``."""
        shares = (cpu / seconds for cpu in self.workers_cpu_s.values())
        return ", ".join(f"{share:.0%}" for share in shares) or "-"


def metered(cluster: Cluster | None, function: Callable[[], T]) -> tuple[float, T, Usage]:
    """``function`` timed, with the CPU it and the cluster's workers used meanwhile."""
    before = cluster.cpu() if cluster is not None else {}
    load, main = os.getloadavg()[0], cpu_seconds()
    seconds, result = harness.timed(function)
    main = cpu_seconds() - main
    after = cluster.cpu() if cluster is not None else {}
    spent = {name: after[name] - before.get(name, 0.0) for name in after}
    return seconds, result, Usage(spent, main, load, os.getloadavg()[0])


def dask_workers(workers: work.Workers) -> DaskWorkers:
    harness.check(isinstance(workers, DaskWorkers), f"not a Dask cluster: {workers!r}")
    assert isinstance(workers, DaskWorkers)
    return workers


@dataclass(frozen=True)
class Cluster:
    """A started, warmed-up local cluster: its address, and each worker's RSS after warming."""

    workers: DaskWorkers
    address: str
    start_s: float
    warm_mb: dict[str, float]

    def run_on_each(self, function: Callable[[], int]) -> dict[str, float]:
        """``function`` on every worker, in MB by worker (kB in, MB out)."""
        found = self.workers.client.run(function)
        return {name: kb / 1024 for name, kb in sorted(found.items())}

    def cpu(self) -> dict[str, float]:
        """Each worker's CPU seconds so far."""
        return dict(sorted(self.workers.client.run(cpu_seconds).items()))


def warm_cluster(workers: work.Workers, warm: list[str], sample: list[ColumnSample]) -> Cluster:
    started = time.perf_counter()
    dask = dask_workers(workers)
    dask.client.wait_for_workers(1)
    found = dask.client.run(warm_worker, warm, sample)
    address = str(dask.client.scheduler_info()["address"])
    warm_mb = {name: kb / 1024 for name, kb in sorted(found.items())}
    return Cluster(dask, address, time.perf_counter() - started, warm_mb)


def scheduling_cost(cluster: Cluster, tasks: int) -> float:
    """Seconds per task of ``tasks`` empty tasks through the cluster (after a first burst)."""
    cluster.workers.map(empty_task, list(range(min(tasks, 100))))
    seconds, _ = harness.timed(lambda: cluster.workers.map(empty_task, list(range(tasks))))
    return seconds / tasks


# ---------------------------------------------------------------------------- redaction


class Timeline:
    """The run's progress: when each binding started and last advanced, and each worker's
    peak memory once half of the texts are done."""

    def __init__(self, texts: int, probe: Callable[[], dict[str, float]] | None) -> None:
        self.half = texts // 2
        self.probe = probe
        self.lock = threading.Lock()
        self.started: dict[str, float] = {}
        self.last: dict[str, float] = {}
        self.done: dict[str, int] = {}
        self.at_half: tuple[int, dict[str, float]] | None = None

    def start(self, dataset: str, total: int) -> None:
        with self.lock:
            self.started.setdefault(dataset, time.perf_counter())
            self.done.setdefault(dataset, 0)

    def advance(self, dataset: str, rows: int) -> None:
        with self.lock:
            self.last[dataset] = time.perf_counter()
            self.done[dataset] = self.done.get(dataset, 0) + rows
            total = sum(self.done.values())
            if self.probe is not None and self.at_half is None and total >= self.half:
                self.at_half = (total, self.probe())

    def seconds(self, dataset: str) -> float:
        return self.last.get(dataset, math.nan) - self.started.get(dataset, math.nan)


@dataclass
class Memory:
    """One worker's resident memory: after the warm-up, its peak at about half of the
    texts and at the end of the run (MB)."""

    worker: str
    warm_mb: float
    texts_at_half: int
    peak_half_mb: float
    texts_at_end: int
    peak_end_mb: float


@dataclass
class RedactionRun:
    configuration: str
    workers: int
    """0: in this process."""
    seconds: float
    notes: int
    messages: int
    binding_s: dict[str, float]
    start_s: float
    """Starting the cluster and warming its workers up (or the engine here), untimed."""
    usage: Usage
    memory: list[Memory] = field(default_factory=list)

    @property
    def texts(self) -> int:
        return self.notes + self.messages


def redact_once(
    label: str, policy: Path, cluster: Cluster | None, texts: int, chunk_size: int
) -> tuple[float, Timeline, dict[str, int], Usage]:
    """One ``run_policy`` over fresh stores, in this process or reaching ``cluster`` by
    its address: its seconds, its timeline, rows per binding, what it used."""
    state = f"sqlite:///{policy.parent / 'state.sqlite'}"
    options = RunOptions(now=NOW, state_url=state, coverage_gate=False, chunk_size=chunk_size)
    at = ClusterOptions() if cluster is None else ClusterOptions(dask=cluster.address)
    probe = None if cluster is None else partial(cluster.run_on_each, peak_kb)
    timeline = Timeline(texts, probe)
    seconds, report, usage = metered(
        cluster, lambda: run_policy(policy, options, timeline, None, at)
    )
    done = {}
    for outcome in report.outcomes:
        harness.check(outcome.error is None, f"{label}, {outcome.dataset}: {outcome.error}")
        done[outcome.dataset] = outcome.processed
    return seconds, timeline, done, usage


class Measurement:
    """The configurations one after another, each checked against the first: the same
    text after every redaction, the same labels after every scan."""

    def __init__(self, args: argparse.Namespace, base: Path, sources: Sources, store: Path) -> None:
        self.args = args
        self.base = base
        self.sources = sources
        self.scan_policy = base / "scan-policy.yaml"
        self.scan_policy.write_text(SCAN_POLICY.replace("@STORE@", str(store)))
        self.redaction: list[RedactionRun] = []
        self.scans: list[ScanRun] = []
        self.contents: Contents | None = None
        self.labels: Labels | None = None
        self.per_task = math.nan
        self.parts: dict[str, float] = {}

    def spent(self, part: str, seconds: float) -> None:
        self.parts[part] = self.parts.get(part, 0.0) + seconds

    def run(self, sample: list[ColumnSample]) -> None:
        """In this process, then on one and on ``--workers`` workers, each cluster started
        and warmed up once for its redaction and its scan."""
        redaction = self.args.part in ("all", "redaction")
        scan = self.args.part in ("all", "scan")
        if redaction:
            self.redact(0, None)
        for count in (1, self.args.workers):
            step = time.perf_counter()
            with cluster_workers(ClusterOptions(workers=count)) as started:
                cluster = warm_cluster(started, self.sources.warm, sample)
                self.spent("cluster_start_s", time.perf_counter() - step)
                print(f"{count} worker(s): started and warmed up in {cluster.start_s:.1f} s")
                if redaction:
                    self.redact(count, cluster)
                if scan:
                    self.scan(count, cluster)
                if count == self.args.workers:
                    self.per_task = scheduling_cost(cluster, self.args.empty_tasks)

    def redact(self, count: int, cluster: Cluster | None) -> None:
        args = self.args
        texts = args.notes + args.messages
        label = "in-process" if count == 0 else f"{count} worker{'s' if count > 1 else ''}"
        step = time.perf_counter()
        policy = fresh_copy(self.sources, self.base / f"redact-{count}", "redact_text")
        memory: list[Memory] = []
        if cluster is None:
            start_s, _ = harness.timed(lambda: redact_texts(self.sources.warm))
            print(f"in-process: engine warmed up in {start_s:.1f} s")
            seconds, timeline, done, usage = redact_once(
                label, policy, None, texts, args.chunk_size
            )
        else:
            start_s = cluster.start_s
            seconds, timeline, done, usage = redact_once(
                label, policy, cluster, texts, args.chunk_size
            )
            at_end = cluster.run_on_each(peak_kb)
            half_texts, at_half = timeline.at_half or (0, {})
            memory = [
                Memory(name, warm, half_texts, at_half.get(name, math.nan), texts, at_end[name])
                for name, warm in cluster.warm_mb.items()
            ]
        expected = {NOTES: args.notes, MAIL: args.messages}
        harness.check(done == expected, f"{label}: rows rewritten {done}, expected {expected}")
        contents = read_contents(policy.parent)
        if self.contents is None:
            self.contents = contents
        else:
            changed = differences(contents, self.contents)
            harness.check(
                not changed,
                f"{label} left other text than in-process in {len(changed):,} records, e.g. "
                + ", ".join(changed[:5]),
            )
        binding_s = {name: timeline.seconds(name) for name in (NOTES, MAIL)}
        self.redaction.append(
            RedactionRun(
                label, count, seconds, args.notes, args.messages, binding_s, start_s, usage, memory
            )
        )
        self.spent("redaction_s", time.perf_counter() - step)
        print(
            f"{label}: redaction {seconds:.1f} s"
            f" (notes binding {binding_s[NOTES]:.1f} s, mail binding {binding_s[MAIL]:.1f} s)"
        )

    def scan(self, count: int, cluster: Cluster) -> None:
        step = time.perf_counter()
        state = self.base / f"scan-state-{count}.sqlite"
        state.unlink(missing_ok=True)
        scan = partial(
            run_scan,
            self.scan_policy,
            full=True,
            state_url=f"sqlite:///{state}",
            cluster=ClusterOptions(dask=cluster.address),
        )
        seconds, (inventory, _), usage = metered(cluster, scan)
        found: Labels = {
            (table.table, column.column): tuple(sorted(column.labels()))
            for table in inventory.tables
            for column in table.columns
        }
        harness.check(
            len(inventory.tables) == self.args.tables,
            f"the scan on {count} worker(s) read {len(inventory.tables)} tables",
        )
        if self.labels is None:
            self.labels = found
        else:
            keys = self.labels.keys() | found.keys()
            differing = sorted(k for k in keys if self.labels.get(k) != found.get(k))
            harness.check(
                not differing,
                f"the scan on {count} workers labels {len(differing)} columns otherwise than on"
                f" one, e.g. {differing[:5]}",
            )
        self.scans.append(ScanRun(count, seconds, len(inventory.tables), cluster.start_s, usage))
        self.spent("scan_s", time.perf_counter() - step)
        print(f"{count} worker(s): scan {seconds:.1f} s")


@dataclass(frozen=True)
class CommitRates:
    """Rows per second each store rewrote and committed with a nearly free operator."""

    notes_s: float
    messages_s: float
    notes_per_s: float
    messages_per_s: float


def measure_commit_rates(args: argparse.Namespace, base: Path, sources: Sources) -> CommitRates:
    policy = fresh_copy(sources, base / "commit-rate", "pseudonym")
    _, timeline, done, _ = redact_once(
        "pseudonym", policy, None, args.notes + args.messages, args.chunk_size
    )
    harness.check(done == {NOTES: args.notes, MAIL: args.messages}, f"pseudonym run: {done}")
    notes_s, messages_s = timeline.seconds(NOTES), timeline.seconds(MAIL)
    return CommitRates(
        notes_s,
        messages_s,
        harness.ratio(args.notes, notes_s),
        harness.ratio(args.messages, messages_s),
    )


# ---------------------------------------------------------------------------- the scan


def write_warehouse(path: Path, tables: int, rows: int, seed: int) -> int:
    """``tables`` tables: the independent set's fourteen, copied under new names, one seed
    per copy. Returns the number of columns."""
    path.unlink(missing_ok=True)
    columns = 0
    copy = 0
    while tables > 0:
        data = build_independent_set(rows=rows, seed=seed + copy)
        names = list(data.tables)[:tables]
        renamed = {name: f"{name}_{copy:02d}" for name in names}
        data = replace(
            data,
            tables={renamed[n]: data.tables[n] for n in names},
            declared={renamed[n]: data.declared[n] for n in names},
        )
        write_sqlite(data, path)
        columns += sum(len(frame.columns) for frame in data.tables.values())
        tables -= len(names)
        copy += 1
    return columns


Labels = dict[tuple[str, str], tuple[str, ...]]


@dataclass
class ScanRun:
    workers: int
    seconds: float
    tables: int
    start_s: float
    usage: Usage

    @property
    def tables_per_s(self) -> float:
        return harness.ratio(self.tables, self.seconds)


def warm_sample(store: Path) -> list[ColumnSample]:
    """The samples of one small table of the warehouse, to warm the classifier up on."""
    connector = SQLConnector("warehouse", f"sqlite:///{store}", ConnectorOptions(read_only=True))
    try:
        name = sorted(connector.table_names(None))[0]
        info = connector.table_info(name, None)
        assert info is not None
        return list(sample_table(connector, info, 100, 100, "warehouse").samples)
    finally:
        connector.close()


def sampling_seconds(store: Path, sample_size: int) -> tuple[float, int]:
    """Seconds to read every table's samples in this process, as the scan does before it
    hands them to the workers; and the number of tables."""
    connector = SQLConnector("warehouse", f"sqlite:///{store}", ConnectorOptions(read_only=True))
    try:

        def read_all() -> int:
            count = 0
            for name in connector.table_names(None):
                info = connector.table_info(name, None)
                assert info is not None
                rows = connector.estimate_rows(name, None)
                sample_table(connector, info, rows, sample_size, "warehouse")
                count += 1
            return count

        return harness.timed(read_all)
    finally:
        connector.close()


# ---------------------------------------------------------------------------- capacity


@dataclass(frozen=True)
class Bound:
    name: str
    seconds: float


@dataclass(frozen=True)
class Estimate:
    workload: str
    workers: int
    bounds: tuple[Bound, ...]

    @property
    def limit(self) -> Bound:
        return max(self.bounds, key=lambda bound: bound.seconds)


def capacity(
    per_worker: dict[str, float],
    store_rate: dict[str, float],
    tasks: dict[str, float],
    per_task: float,
) -> list[Estimate]:
    """Each workload on 1, 8 and 64 workers: the slowest of the workers' compute, the
    store's rate and the scheduler's cost per task."""
    work = {"messages": CAPACITY_MESSAGES, "tables": CAPACITY_TABLES}
    estimates = []
    for kind, amount in work.items():
        for count in CAPACITY_WORKERS:
            bounds = (
                Bound("workers", amount / (per_worker[kind] * count)),
                Bound("store", amount / store_rate[kind]),
                Bound("scheduler", tasks[kind] * per_task),
            )
            estimates.append(Estimate(kind, count, bounds))
    return estimates


def duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "-"
    if seconds >= 2 * 3600:
        return f"{seconds / 3600:,.1f} h"
    if seconds >= 120:
        return f"{seconds / 60:,.0f} min"
    return f"{seconds:,.0f} s"


# ---------------------------------------------------------------------------- report


def print_redaction(runs: Sequence[RedactionRun]) -> dict[str, float]:
    by_workers = {run.workers: run for run in runs}
    one, many = by_workers[1], by_workers[max(by_workers)]
    speed_up = harness.ratio(one.seconds, many.seconds)
    overhead = harness.ratio(one.seconds, by_workers[0].seconds)
    rows = [
        [
            run.configuration,
            f"{run.seconds:.1f}",
            f"{run.binding_s[NOTES]:.1f}",
            f"{run.binding_s[MAIL]:.1f}",
            f"{run.notes / run.seconds:,.0f}",
            f"{run.messages / run.seconds:,.1f}",
            f"{run.texts / run.seconds:,.0f}",
            f"{run.start_s:.1f}",
            f"{run.usage.main_cpu_s:.0f}",
            run.usage.busy(run.seconds),
            f"{run.usage.load_before:.1f} / {run.usage.load_after:.1f}",
        ]
        for run in runs
    ]
    print(
        f"\nRedaction, measured: {one.notes:,} notes and {one.messages:,} messages in one run"
        " (both bindings; on a cluster they run side by side). Wall seconds exclude model"
        " loading: the last column, not timed, is the warm-up before the run.\n"
    )
    headers = ["Configuration", "Wall s", "Notes binding s", "Mail binding s", "Notes/s",
               "Messages/s", "Texts/s", "Warm-up s (untimed)", "This process CPU s",
               "Workers busy (CPU / wall)", "Load before / after"]  # fmt: skip
    print(harness.markdown_table(headers, rows, "lrrrrrrrrrr"))
    print()
    ratios = [
        [f"{many.workers} workers against 1 (speed-up)", f"{speed_up:.2f}x", str(SPEED_UP),
         SPEED_UP.verdict(speed_up)],
        ["1 worker against in-process (cost of the cluster)", f"{overhead:.3f}x", str(OVERHEAD),
         OVERHEAD.verdict(overhead)],
    ]  # fmt: skip
    print(harness.markdown_table(["Ratio (same run)", "Value", "Goal", "Verdict"], ratios, "lrll"))
    print("\nThe three configurations left the same text in every note and message.")
    return {"speed_up": speed_up, "overhead": overhead}


def print_memory(runs: Sequence[RedactionRun]) -> None:
    rows = [
        [
            run.configuration,
            m.worker.rsplit(":", 1)[-1],
            f"{m.warm_mb:.0f}",
            f"{m.texts_at_half:,}",
            f"{m.peak_half_mb:.0f}",
            f"{m.texts_at_end:,}",
            f"{m.peak_end_mb:.0f}",
            f"{m.peak_end_mb - m.peak_half_mb:+.0f}",
        ]
        for run in runs
        for m in run.memory
    ]
    print("\nWorkers' memory, measured (VmHWM of each worker process, MB):\n")
    headers = ["Configuration", "Worker (port)", "After warm-up", "Texts (N)", "Peak at N",
               "Texts (2N)", "Peak at 2N", "Growth N to 2N"]  # fmt: skip
    print(harness.markdown_table(headers, rows, "llrrrrrr"))


def print_scans(runs: Sequence[ScanRun]) -> float:
    one, many = runs[0], runs[-1]
    speed_up = harness.ratio(one.seconds, many.seconds)
    rows = [
        [f"{run.workers} worker(s)", f"{run.tables}", f"{run.seconds:.1f}",
         f"{run.tables_per_s:.2f}", f"{run.start_s:.1f}", f"{run.usage.main_cpu_s:.0f}",
         run.usage.busy(run.seconds),
         f"{run.usage.load_before:.1f} / {run.usage.load_after:.1f}"]
        for run in runs
    ]  # fmt: skip
    print(f"\nThe scan, measured ({one.tables} tables, `run_scan(full=True)`):\n")
    headers = ["Cluster", "Tables", "Wall s", "Tables/s", "Warm-up s (untimed)",
               "This process CPU s", "Workers busy (CPU / wall)",
               "Load before / after"]  # fmt: skip
    print(harness.markdown_table(headers, rows, "lrrrrrrr"))
    print(
        f"\n{many.workers} workers against 1: **{speed_up:.2f}x** (goal {SCAN_SPEED_UP},"
        f" {SCAN_SPEED_UP.verdict(speed_up)}); every column has the same labels on both."
    )
    return speed_up


def print_capacity(inputs: dict[str, Any], estimates: Sequence[Estimate]) -> None:
    print("\nCapacity inputs, measured in this run:\n")
    rows = [[name, value] for name, value in inputs["shown"]]
    print(harness.markdown_table(["Input", "Value"], rows, "lr"))
    print(
        "\nCapacity, extrapolated (not measured): max(work / (per-worker rate x workers),"
        " work / store rate, tasks x scheduler cost per task).\n"
    )
    rows = []
    for e in estimates:
        cells = [duration(bound.seconds) for bound in e.bounds]
        rows.append([inputs["workloads"][e.workload], str(e.workers), *cells,
                     f"**{duration(e.limit.seconds)}**", e.limit.name])  # fmt: skip
    headers = ["Workload", "Workers", "Workers' compute", "Store", "Scheduler", "Estimate",
               "Limited by"]  # fmt: skip
    print(harness.markdown_table(headers, rows, "lrrrrrl"))
    print(
        f"\nTasks: {inputs['tasks']['messages']:,.0f} for the messages (batches of"
        f" {work.BATCH_CHARS:,} characters, {inputs['per_batch']:.1f} messages each as"
        f" measured), {inputs['tasks']['tables']:,.0f} for the tables (one per table). The"
        " scheduler's cost per task was measured with empty tasks on this machine's"
        " local cluster; a scheduler on a machine of its own is faster per task."
    )


# ---------------------------------------------------------------------------- main


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--notes", type=int, default=20_000, help="support notes to redact")
    parser.add_argument("--messages", type=int, default=5_000, help="mail messages to redact")
    parser.add_argument("--tables", type=int, default=200, help="tables of the scanned store")
    parser.add_argument("--table-rows", type=int, default=300, help="rows of each table")
    parser.add_argument("--workers", type=int, default=2, help="the larger cluster (2 or more)")
    parser.add_argument(
        "--chunk-size",
        type=int,
        default=CHUNK_SIZE,
        help="rows per chunk of the runs (the memory is read after the chunk that passes half)",
    )
    parser.add_argument(
        "--empty-tasks", type=int, default=EMPTY_TASKS, help="empty tasks timed per burst"
    )
    parser.add_argument(
        "--part", choices=("all", "redaction", "scan"), default="all", help="what to measure"
    )
    args = harness.parse_args(parser, argv, SMOKE, seed=SEED, work_dir=KEPT)
    if args.workers < 2:
        parser.error("--workers must be 2 or more: it is compared with one worker")
    with (
        harness.Benchmark("scale_out", args) as bench,
        harness.work_folder(args.dir, "tenure-scale-out-") as base,
    ):
        step = time.perf_counter()
        store = base / "warehouse.sqlite"
        columns = write_warehouse(store, args.tables, args.table_rows, args.seed)
        sample = warm_sample(store)
        sources = write_sources(base, args.notes, args.messages, args.seed)
        print(
            f"{args.notes:,} notes, {args.messages:,} messages and {args.tables} tables"
            f" ({columns:,} columns) written in {time.perf_counter() - step:.1f} s"
        )
        measured = Measurement(args, base, sources, store)
        measured.parts["data_s"] = time.perf_counter() - step
        measured.run(sample)
        redaction, scans, per_task = measured.redaction, measured.scans, measured.per_task
        parts = measured.parts
        if redaction:
            ratios = print_redaction(redaction)
            print_memory(redaction)
            bench.figures.update(redaction=redaction, redaction_ratios=ratios)
            assert measured.contents is not None
            bench.figures["identical_output"] = {
                "notes": len(measured.contents.notes),
                "messages": len(measured.contents.messages),
            }
        if scans:
            bench.figures.update(scan=scans, scan_speed_up=print_scans(scans))
        bench.figures["scheduler_s_per_task"] = per_task
        if args.part == "all":
            step = time.perf_counter()
            commit = measure_commit_rates(args, base, sources)
            sampling_s, sampled = sampling_seconds(store, 1_000)
            parts["capacity_s"] = time.perf_counter() - step
            inputs = capacity_inputs(
                args, redaction, scans, commit, sources, sampling_s, sampled, per_task
            )
            estimates = capacity(
                inputs["per_worker"], inputs["store_rate"], inputs["tasks"], per_task
            )
            print_capacity(inputs, estimates)
            bench.figures.update(
                commit_rates=commit,
                capacity_inputs={k: v for k, v in inputs.items() if k != "shown"},
                capacity=[
                    {"workload": e.workload, "workers": e.workers,
                     "bounds": {b.name: b.seconds for b in e.bounds},
                     "estimate_s": e.limit.seconds, "limited_by": e.limit.name}
                    for e in estimates
                ],
            )  # fmt: skip
        bench.figures["parts_s"] = parts
        print(
            "\nParts: " + ", ".join(f"{k.removesuffix('_s')} {v:.0f} s" for k, v in parts.items())
        )


def capacity_inputs(
    args: argparse.Namespace,
    redaction: Sequence[RedactionRun],
    scans: Sequence[ScanRun],
    commit: CommitRates,
    sources: Sources,
    sampling_s: float,
    sampled: int,
    per_task: float,
) -> dict[str, Any]:
    """The measured rates the capacity table extrapolates from.

    One worker's rates: the one-worker run's wall time, split between notes and messages
    in the proportion of their bindings' times in the in-process run (where they ran one
    after the other on one core)."""
    here = next(run for run in redaction if run.workers == 0)
    one = next(run for run in redaction if run.workers == 1)
    share = here.binding_s[MAIL] / (here.binding_s[MAIL] + here.binding_s[NOTES])
    messages_per_s = harness.ratio(one.messages, one.seconds * share)
    notes_per_s = harness.ratio(one.notes, one.seconds * (1 - share))
    tables_per_s = scans[0].tables_per_s
    sampling_rate = harness.ratio(sampled, sampling_s)
    per_batch = harness.ratio(args.messages, sources.body_batches)
    tasks = {"messages": CAPACITY_MESSAGES / per_batch, "tables": float(CAPACITY_TABLES)}
    shown = [
        ("One worker: notes/s", f"{notes_per_s:,.0f}"),
        ("One worker: messages/s", f"{messages_per_s:,.1f}"),
        ("One worker: tables/s (scan)", f"{tables_per_s:,.2f}"),
        ("SQLite store: notes rewritten and committed/s (pseudonym)", f"{commit.notes_per_s:,.0f}"),
        ("Maildir store: messages rewritten and committed/s (pseudonym)",
         f"{commit.messages_per_s:,.0f}"),
        ("SQLite store: tables sampled/s (the scan's reads)", f"{sampling_rate:,.1f}"),
        ("Scheduler: ms per task (empty tasks)", f"{per_task * 1000:.2f}"),
    ]  # fmt: skip
    return {
        "per_worker": {"messages": messages_per_s, "notes": notes_per_s, "tables": tables_per_s},
        "store_rate": {
            "messages": commit.messages_per_s,
            "notes": commit.notes_per_s,
            "tables": sampling_rate,
        },
        "per_task_s": per_task,
        "per_batch": per_batch,
        "tasks": tasks,
        "workloads": {
            "messages": f"{CAPACITY_MESSAGES:,} messages",
            "tables": f"{CAPACITY_TABLES:,}-table warehouse",
        },
        "shown": shown,
    }


if __name__ == "__main__":
    main()
