"""Run the nightly job in a child process so a test can SIGKILL it mid-run.

Usage: python -m tests.support.crash_runner POLICY STORE_URL STATE_URL CHUNK_SIZE NOW_ISO

With ``KILL_BEFORE_LEDGER=DATASET:CHUNK_NO`` in its environment the run kills itself with
SIGKILL once that chunk has committed in the store, before the ledger records it: the
moment between a chunk's commit and the rest of its binding. Only this script reads it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, func, select

from flows.run.lifecycle import run_policy
from flows.run.types import RunOptions
from flows.state.ledger import ChunkRecord, Ledger
from flows.state.tables import chunks
from tests.support.keys import PSEUDONYM_KEYS
from tests.support.paths import REPO

KILL_BEFORE_LEDGER = "KILL_BEFORE_LEDGER"


def _kill_before_ledger(point: str) -> None:
    """Make the run SIGKILL itself when the chunk ``DATASET:CHUNK_NO`` is about to be
    written to the ledger (it has committed in the store)."""
    dataset, _, number = point.rpartition(":")
    record_chunk = Ledger.record_chunk

    def record_or_die(self: Ledger, record: ChunkRecord, *args: Any, **kw: Any) -> bool:
        if (record.dataset, record.chunk_no) == (dataset, int(number)):
            os.kill(os.getpid(), signal.SIGKILL)
        return record_chunk(self, record, *args, **kw)

    Ledger.record_chunk = record_or_die  # type: ignore[method-assign]


def kill_after(
    policy: Path, store: str, state: Path, chunk_size: int, now: datetime, after_chunks: int
) -> bool:
    """Run this script in a child and SIGKILL it once ``after_chunks`` chunks are
    committed (as the SQLite state at ``state`` records them); True if it was killed."""
    env = {**os.environ, **PSEUDONYM_KEYS}
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.support.crash_runner", str(policy), store, f"sqlite:///{state}",
         str(chunk_size), now.isoformat()],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while child.poll() is None and time.monotonic() < deadline:
        if _committed_chunks(state) >= after_chunks:
            child.send_signal(signal.SIGKILL)
            child.wait()
            return True
        time.sleep(0.01)
    child.wait()
    return False


def _committed_chunks(state: Path) -> int:
    if not state.exists():
        return 0
    try:
        engine = create_engine(f"sqlite:///{state}")
        with engine.connect() as c:
            return int(c.scalar(select(func.count()).select_from(chunks)) or 0)
    except Exception:
        return 0
    finally:
        engine.dispose()


def run_killed_before_ledger(
    policy: Path, store: str, state: str, chunk_size: int, now: datetime, point: str
) -> int:
    """Run this script in a child that kills itself at ``point`` (``DATASET:CHUNK_NO``);
    its exit code (``-SIGKILL`` when it got there)."""
    env = {**os.environ, KILL_BEFORE_LEDGER: point}
    command = [sys.executable, "-m", "tests.support.crash_runner", str(policy), store, state,
               str(chunk_size), now.isoformat()]  # fmt: skip
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, timeout=300).returncode


def main(argv: list[str]) -> int:
    policy, store, state, chunk_size, now = argv
    if point := os.environ.get(KILL_BEFORE_LEDGER):
        _kill_before_ledger(point)
    options = RunOptions(
        chunk_size=int(chunk_size),
        now=datetime.fromisoformat(now),
        state_url=state,
        coverage_gate=False,
    )
    report = run_policy(policy, options, environ={"TENURE_CRM_URL": store})
    return 1 if report.failed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
