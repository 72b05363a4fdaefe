"""Faults of a Dask cluster, against a real one on loopback.

A worker process killed (SIGKILL) in the middle of a redaction task is replaced, its task
runs again elsewhere, and the run ends with the stores, rollups, journals and audit counts
of an uninterrupted run, no chunk applied twice. A scheduler that cannot be reached stops
``tenure run`` and ``tenure scan`` with one line, exit 2, before anything is written."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import psutil  # type: ignore[import-untyped]
import pytest
from typer.testing import CliRunner

from flows.cli import app
from flows.cluster import ClusterOptions, DaskWorkers, cluster_workers
from flows.run.lifecycle import run_policy
from flows.run.types import RunOptions
from tests.support.cluster import (
    NOTES_NOW,
    Killed,
    audit_counts,
    file_bytes,
    journalled,
    kill_mid_task,
    local_cluster,
    masked_tables,
    notes_environ,
    notes_stores,
    recomputed,
    removal,
    run_ids,
)
from tests.support.ports import free_port

pytestmark = pytest.mark.servers  # starts real Dask clusters (and Prefect's temporary API)

runner = CliRunner()

#: Enough notes for several chunks of a few redaction batches each.
NOTES = 1_500
CHUNK = 300  # rows per transaction
REDACTION = "redact_texts"  # the key prefix of a batch's task (`redact_batched`)
TENURE = Path(sys.executable).with_name("tenure")


@dataclass(frozen=True)
class Ran:
    root: Path
    state_url: str
    counts: dict[str, tuple[int, int]]  # by binding: expired, processed


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("faults") / "template"
    notes_stores(root, NOTES)
    return root


def _copy(template: Path, root: Path) -> dict[str, str]:
    shutil.copytree(template, root)
    return notes_environ(root)


@pytest.fixture(scope="module")
def here(template: Path, pseudonym_keys: dict[str, str]) -> Ran:
    """The uninterrupted run, in this process."""
    root = template.parent / "here"
    environ = _copy(template, root)
    state_url = f"sqlite:///{root / 'state.sqlite'}"
    options = RunOptions(now=NOTES_NOW, chunk_size=CHUNK, state_url=state_url)
    report = run_policy(root / "policy.yaml", options, environ=environ)
    assert not report.failed, [(o.dataset, o.error) for o in report.outcomes]
    counts = {o.dataset: (o.expired, o.processed) for o in report.outcomes}
    return Ran(root, state_url, counts)


# ------------------------------------------------------------------ a worker killed mid-task


def test_a_worker_killed_mid_task_is_replaced_and_the_run_ends_as_an_uninterrupted_one(
    template: Path, here: Ran
) -> None:
    """``tenure run --dask ADDRESS`` on a cluster of two workers under nannies; once the
    first chunk of notes has committed, the worker running a redaction batch is killed.
    The scheduler gives the batch to another worker, the nanny starts a new one, and the
    stores, the journals, the marks, the rollups, the ledger, the publication and the
    audit counts are those of the run in one process, every chunk applied once."""
    root = template.parent / "killed"
    environ = _copy(template, root)
    state_url = f"sqlite:///{root / 'state.sqlite'}"
    with local_cluster(2) as (cluster, client):
        before = set(client.scheduler_info()["workers"])
        command = [str(TENURE), "run", "policy.yaml", "--now", NOTES_NOW.isoformat()]
        command += ["--state", state_url, "--chunk-size", str(CHUNK), "--json"]
        run = subprocess.Popen(
            [*command, "--dask", cluster.scheduler_address],
            cwd=root,
            env={**os.environ, **environ},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            killed = kill_mid_task(
                client,
                REDACTION,
                running=lambda: run.poll() is None,
                ready=lambda: journalled(root / "desk.sqlite", "tickets") >= 1,
            )
            committed = journalled(root / "desk.sqlite", "tickets")
        finally:
            out, err = run.communicate(timeout=300)
        assert run.returncode == 0, err
        assert all(key.startswith(REDACTION) for key in killed.keys), killed
        chunks = journalled(here.root / "desk.sqlite", "tickets")
        # `ready` waited for a committed chunk; the killed task's chunk was not yet one.
        assert committed < chunks, (committed, chunks)
        assert journalled(root / "desk.sqlite", "tickets") == chunks

        # The scheduler lost the task with the worker, and ran it again on another.
        removed = removal(client, killed.address)
        assert not removed["expected"]
        assert killed.keys <= set(map(str, removed["processing-tasks"]))
        for key in killed.keys:
            story = recomputed(client, key)
            back = [i for i, (_, to, _) in enumerate(story) if to == "released"]
            assert back, story
            assert ("processing", "memory") in [(s, t) for s, t, _ in story[back[0] :]], story

        # The nanny started a new worker process in its place.
        client.wait_for_workers(2, timeout=60)
        after = client.scheduler_info()["workers"]
        assert len(after) == 2
        assert killed.address not in after
        assert killed.pid not in client.run(os.getpid).values()
        assert before - {killed.address} <= set(after)

    outcomes = json.loads(out)["datasets"]
    counts = {o["dataset"]: (o["expired"], o["processed"]) for o in outcomes}
    _same_as_uninterrupted(here, Ran(root, state_url, counts), killed)


def _same_as_uninterrupted(here: Ran, cluster: Ran, killed: Killed) -> None:
    assert cluster.counts == here.counts
    for binding, (expired, processed) in cluster.counts.items():
        assert processed == expired > 0, binding
    here_ids, cluster_ids = run_ids(here.state_url), run_ids(cluster.state_url)
    for store in ("desk", "web"):  # the rows, the journals, the marks, the rollups
        here_tables = masked_tables(f"sqlite:///{here.root / store}.sqlite", here_ids)
        cluster_tables = masked_tables(f"sqlite:///{cluster.root / store}.sqlite", cluster_ids)
        assert here_tables.keys() == cluster_tables.keys(), store
        for table in here_tables:
            assert here_tables[table] == cluster_tables[table], (store, table, killed)
    ledger = masked_tables(cluster.state_url, cluster_ids, lambda table: table == "tenure_chunks")
    assert ledger == masked_tables(here.state_url, here_ids, lambda table: table == "tenure_chunks")
    assert audit_counts(cluster.state_url) == audit_counts(here.state_url)
    assert _published(cluster.root) == _published(here.root)
    _each_chunk_once(cluster)


def _each_chunk_once(ran: Ran) -> None:
    """Every binding's chunks numbered 1..n, once each, in its store's journal and in the
    ledger, their rows adding up to what the binding processed; one mark per row."""
    (run_id,) = run_ids(ran.state_url)
    ledger = masked_tables(ran.state_url, set(), lambda table: table == "tenure_chunks")
    for binding, store in (("tickets", "desk"), ("clicks", "web")):
        books = masked_tables(f"sqlite:///{ran.root / store}.sqlite", set(), _bookkeeping)
        journal = [row for row in books["tenure_journal"] if row[:2] == (run_id, binding)]
        numbers = sorted(row[2] for row in journal)
        assert numbers == list(range(1, len(numbers) + 1)), (binding, numbers)
        assert sum(row[4] for row in journal) == ran.counts[binding][1], binding
        in_ledger = [row for row in ledger["tenure_chunks"] if row[:2] == (run_id, binding)]
        assert sorted(row[2:5] for row in in_ledger) == sorted(row[2:5] for row in journal)
        if binding == "tickets":  # one mark per anonymized row
            keys = [row[1] for row in books["tenure_marks"] if row[0] == binding]
            assert len(keys) == len(set(keys)) == ran.counts[binding][1]


def _bookkeeping(table: str) -> bool:
    return table in ("tenure_journal", "tenure_marks")


def _published(root: Path) -> dict[str, list[dict[str, Any]]]:
    folder = root / "published"
    frames = {
        path.name: pd.read_parquet(path).to_dict("records")
        for path in sorted(folder.glob("*.parquet"))
    }
    assert frames, f"nothing published in {folder}"
    return frames


# ------------------------------------------------------------------ a scheduler out of reach


def test_a_scheduler_that_cannot_be_reached_stops_run_and_scan_before_anything_is_written(
    template: Path, here: Ran
) -> None:
    """``tenure run`` on fresh stores and on stores already run once (a state database
    with its audit and ledger), and ``tenure scan``: each exits 2 with one line naming
    the address, and every file under the stores' folder keeps its bytes (no state
    database, no journal, no publication, no inventory)."""
    nobody = f"tcp://127.0.0.1:{free_port()}"
    fresh = template.parent / "unreached-fresh"
    again = template.parent / "unreached-again"
    scanned = template.parent / "unreached-scan"
    environs = {
        fresh: _copy(template, fresh),
        scanned: _copy(template, scanned),
        again: notes_environ(again),
    }
    shutil.copytree(here.root, again)
    assert (again / "state.sqlite").exists() and (again / "published").exists()
    run = ["run", "policy.yaml", "--now", NOTES_NOW.isoformat(), "--dask", nobody]
    commands = {
        fresh: run,
        again: [*run, "--state", f"sqlite:///{again / 'state.sqlite'}"],
        scanned: ["scan", "policy.yaml", "--dask", nobody],
    }
    before = {root: file_bytes(root) for root in commands}
    started = time.monotonic()
    processes = {  # side by side: each waits for the scheduler's connect timeout
        root: subprocess.Popen(
            [str(TENURE), *command],
            cwd=root,
            env={**os.environ, **environs[root]},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for root, command in commands.items()
    }
    for root, process in processes.items():
        out, err = process.communicate(timeout=60)
        took = time.monotonic() - started
        assert process.returncode == 2, (root.name, out, err)
        assert took < 30, (root.name, took)  # the 10 s connect timeout, the CLI's start
        (line,) = [line for line in err.splitlines() if line.strip()]
        assert line.startswith(f"error: the Dask scheduler at {nobody} could not be reached")
        assert out == "", (root.name, out)
        assert file_bytes(root) == before[root], root.name
    assert not (fresh / "tenure-state.sqlite").exists()
    assert not (scanned / "tenure-state.sqlite").exists()


def test_dask_and_workers_together_are_refused_in_one_line(template: Path) -> None:
    before = file_bytes(template)
    for command in ("run", "scan"):
        result = runner.invoke(
            app,
            [
                command,
                str(template / "policy.yaml"),
                "--dask",
                "tcp://127.0.0.1:1",
                "--workers",
                "2",
            ],
            env=notes_environ(template),
        )
        assert result.exit_code == 2, result.output
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert lines == [
            "error: --dask and --workers exclude each other: a run uses the cluster at an "
            "address, or starts one of N local workers"
        ], command
    assert file_bytes(template) == before


# ------------------------------------------------------------------ the run's own cluster


def test_the_local_cluster_of_a_run_listens_on_loopback_only() -> None:
    """``--workers N``: the scheduler, the nannies (in the run's process) and the worker
    processes listen on 127.0.0.1 alone."""
    this = psutil.Process()
    listening_before = _listening(this)
    with cluster_workers(ClusterOptions(workers=2)) as workers:
        assert isinstance(workers, DaskWorkers)
        info: dict[str, Any] = workers.client.scheduler_info()
        assert info["address"].startswith("tcp://127.0.0.1:")
        assert len(info["workers"]) == 2
        for address in info["workers"]:
            assert address.startswith("tcp://127.0.0.1:"), address
        assert workers.count == 2
        pids = workers.client.run(os.getpid)
        opened = _listening(this) - listening_before
        for pid in pids.values():
            opened |= _listening(psutil.Process(pid))
    assert len(opened) >= 5  # the scheduler, two nannies, two workers at least
    assert {host for host, _ in opened} == {"127.0.0.1"}, opened


def _listening(process: psutil.Process) -> set[tuple[str, int]]:
    return {
        (c.laddr.ip, c.laddr.port)
        for c in process.net_connections(kind="inet")
        if c.status == psutil.CONN_LISTEN
    }
