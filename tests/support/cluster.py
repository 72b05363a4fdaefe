"""A real local Dask cluster for the tests, a small policy whose run redacts enough text
to keep its workers busy, and the comparison of two runs' stores with the run ids and the
wall-clock columns masked (a cluster run and a run in one process must leave the same)."""

from __future__ import annotations

import os
import signal
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import create_engine, inspect, text

from flows import audit
from flows.state.tables import open_state

if TYPE_CHECKING:
    from distributed import Client, LocalCluster

#: Two stores, so that a cluster run puts their bindings side by side: support notes
#: redacted with surrogates (a note rewritten twice would read differently, since a
#: surrogate name is a name), and clicks rolled up and deleted.
NOTES_POLICY = """\
version: 1
name: faults
timezone: UTC
categories:
  communications.support_notes: {description: "Support notes", identifier: direct, entities: any}
  usage.page: {description: "Page visited", identifier: none}
purposes:
  support: {description: S., legal_basis: contract, min_retention: 1 day, max_retention: 2 years}
  analytics: {description: A., legal_basis: consent, min_retention: 1 day, max_retention: 2 years}
stores:
  desk: {url: "${DESK_URL}"}
  web: {url: "${WEB_URL}"}
datasets:
  - name: tickets
    store: desk
    table: tickets
    purpose: support
    primary_key: id
    subject_key: customer_id
    columns: {notes: communications.support_notes}
    clock: {column: closed_at}
    retention: 1 year
    action:
      type: anonymize
      kept_for: "Support history without the people in it"
      columns:
        notes: {operator: redact_text, replace_with: surrogate}
  - name: clicks
    store: web
    table: clicks
    purpose: analytics
    primary_key: id
    subject_key: visitor_id
    columns: {page: usage.page}
    clock: {column: happened_at}
    retention: 1 year
    action:
      type: aggregate_then_delete
      min_cell_size: 2
      rollups:
        - {name: by_page, period: month, dimensions: [page], measures: [count]}
publish:
  parquet: ${PUBLISH_DIR}
"""
#: The instant the notes policy is run at: every note but one in ten has expired.
NOTES_NOW = datetime(2026, 11, 24)
_OLD = datetime(2020, 1, 1)
_YOUNG = "2026-06-01 00:00:00"


def notes_stores(root: Path, notes: int, seed: int = 19) -> None:
    """``root/policy.yaml`` (`NOTES_POLICY`) and its two SQLite stores: ``notes``
    bilingual support notes, most with a name, a phone or an e-mail (``bench.data``),
    nine in ten closed long ago; 3,000 clicks, all old."""
    from bench.data import TEXT_PII_SHARE, write_notes  # Faker: only when building

    root.mkdir(parents=True, exist_ok=True)
    written = write_notes(notes, seed, TEXT_PII_SHARE)
    tickets = [
        (i + 1, i % 97, _YOUNG if i % 10 == 0 else _stamp(_OLD + timedelta(hours=i)), note.text)
        for i, note in enumerate(written)
    ]
    with sqlite3.connect(root / "desk.sqlite") as connection:
        connection.execute(
            "CREATE TABLE tickets (id INTEGER PRIMARY KEY, customer_id INTEGER NOT NULL, "
            "closed_at DATETIME, notes TEXT)"
        )
        connection.executemany("INSERT INTO tickets VALUES (?, ?, ?, ?)", tickets)
    clicks = [
        (i + 1, i % 53, f"/page/{i % 5}", _stamp(_OLD + timedelta(hours=7 * i)))
        for i in range(3_000)
    ]
    with sqlite3.connect(root / "web.sqlite") as connection:
        connection.execute(
            "CREATE TABLE clicks (id INTEGER PRIMARY KEY, visitor_id INTEGER NOT NULL, "
            "page TEXT, happened_at DATETIME)"
        )
        connection.executemany("INSERT INTO clicks VALUES (?, ?, ?, ?)", clicks)
    connection.close()
    (root / "policy.yaml").write_text(NOTES_POLICY)


def _stamp(moment: datetime) -> str:
    return moment.isoformat(sep=" ")


def notes_environ(root: Path) -> dict[str, str]:
    """The environment `NOTES_POLICY` reads its stores and its destination from."""
    return {
        "DESK_URL": f"sqlite:///{root / 'desk.sqlite'}",
        "WEB_URL": f"sqlite:///{root / 'web.sqlite'}",
        "PUBLISH_DIR": str(root / "published"),
    }


def file_bytes(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` and its bytes: what "nothing was written" compares."""
    return {
        str(path.relative_to(root)): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


# ------------------------------------------------------------------ comparing two runs


def run_ids(state_url: str) -> set[str]:
    """The ids of the runs a state database recorded."""
    engine = open_state(state_url)
    with engine.connect() as connection:
        ids = {r[0] for r in connection.execute(text("SELECT run_id FROM tenure_runs"))}
    engine.dispose()
    return ids


def is_clock(column: str) -> bool:
    """A column holding a wall-clock instant of the run (never the same twice)."""
    return column.endswith(("_at", "_time")) or column in ("at", "written", "committed")


def masked_tables(
    url: str, ids: set[str], only: Callable[[str], bool] = lambda table: True
) -> dict[str, list[tuple[Any, ...]]]:
    """Every table's rows (those ``only`` keeps), sorted, with the runs' ``ids`` and the
    wall-clock columns masked."""
    engine = create_engine(url)
    dumped = {}
    with engine.connect() as connection:
        for table in inspect(engine).get_table_names():
            if not only(table):
                continue
            rows = connection.execute(text(f'SELECT * FROM "{table}"'))
            keys = list(rows.keys())
            masked = [
                tuple(
                    "RUN" if value in ids else "WHEN" if is_clock(key) else value
                    for key, value in zip(keys, row, strict=True)
                )
                for row in rows
            ]
            dumped[table] = sorted(masked, key=repr)
    engine.dispose()
    return dumped


def audit_counts(state_url: str) -> list[tuple[str, Any, Any]]:
    """Each audit entry's binding, processed and expired counts, sorted."""
    engine = open_state(state_url)
    entries = audit.entries(engine)
    engine.dispose()
    return sorted((str(e.get("dataset")), e.get("processed"), e.get("expired")) for e in entries)


# ------------------------------------------------------------------ a real local cluster


@contextmanager
def local_cluster(workers: int = 2) -> Iterator[tuple[LocalCluster, Client]]:
    """A local Dask cluster of ``workers`` single-threaded worker processes on loopback,
    each under a nanny (a worker that dies is started again), and a client for the test
    alone: never the default one, which Prefect's Dask task runner would pick up."""
    from distributed import Client, LocalCluster

    cluster = LocalCluster(  # type: ignore[no-untyped-call]
        n_workers=workers,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
    )
    try:
        client = Client(cluster, set_as_default=False)  # type: ignore[no-untyped-call]
        try:
            client.wait_for_workers(workers, timeout=60)
            yield cluster, client
        finally:
            client.close()  # type: ignore[no-untyped-call]
    finally:
        cluster.close()


def executing(dask_worker: Any) -> tuple[list[str], int, int]:
    """On a worker: the keys of the tasks it is executing, how many it has finished, and
    its process id."""
    state = dask_worker.state
    return [str(task.key) for task in state.executing], int(state.executed_count), os.getpid()


@dataclass(frozen=True)
class Killed:
    """The worker a test killed: its address, its process, the tasks it was running."""

    address: str
    pid: int
    keys: frozenset[str]


def kill_mid_task(
    client: Client,
    prefix: str,
    running: Callable[[], bool],
    ready: Callable[[], bool] = lambda: True,
    timeout: float = 180,
) -> Killed:
    """SIGKILL a worker process while it executes a task whose key starts with
    ``prefix``, once ``ready()`` and after the worker has finished one task (so that its
    engines are loaded). The worker is frozen (SIGSTOP) first, and killed only if the
    scheduler, once every message the worker sent has arrived, still has that task
    processing on it: its result is lost with the process. Fails when ``running()``
    turns false first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not running():
            raise AssertionError(f"the run ended before a {prefix} task could be interrupted")
        if not ready():
            time.sleep(0.05)
            continue
        busy = client.run(executing, on_error="ignore")
        for address, (keys, done, pid) in busy.items():
            wanted = {key for key in keys if key.startswith(prefix)}
            if not wanted or done < 1:
                continue
            os.kill(pid, signal.SIGSTOP)
            time.sleep(0.5)  # a result it sent before it stopped reaches the scheduler
            processing = client.processing([address]).get(address, ())  # type: ignore[no-untyped-call]
            interrupted = wanted & {str(key) for key in processing}
            if interrupted:
                os.kill(pid, signal.SIGKILL)
                return Killed(address, pid, frozenset(interrupted))
            os.kill(pid, signal.SIGCONT)  # it finished in between: try the next one
        time.sleep(0.05)
    raise AssertionError(f"no {prefix} task ran within {timeout} s")


def journalled(store: Path, label: str) -> int:
    """How many chunks of binding ``label`` the SQLite ``store``'s journal holds now."""
    connection = sqlite3.connect(f"file:{store}?mode=ro", uri=True, timeout=5)
    try:
        (count,) = connection.execute(
            "SELECT count(*) FROM tenure_journal WHERE label = ?", (label,)
        ).fetchone()
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):  # no chunk yet
            return 0
        raise
    finally:
        connection.close()
    return int(count)


def removal(client: Client, address: str) -> dict[str, Any]:
    """The scheduler's record of removing the worker at ``address``."""
    for _, event in client.get_events("all"):
        if event.get("action") == "remove-worker" and event.get("worker") == address:
            return dict(event)
    raise AssertionError(f"the scheduler never removed {address}")


def recomputed(client: Client, key: str) -> list[tuple[str, str, str]]:
    """The scheduler's transitions of task ``key``: (from, to, stimulus)."""

    def story(dask_scheduler: Any) -> list[tuple[str, str, str]]:
        return [
            (str(t[1]), str(t[2]), str(t[4]))
            for t in dask_scheduler.transition_log
            if str(t[0]) == key
        ]

    return list(client.run_on_scheduler(story))  # type: ignore[no-untyped-call]
