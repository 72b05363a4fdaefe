"""Run the nightly job in a child process so a test can SIGKILL it mid-run.

Usage: python -m tests.crash_runner POLICY STORE_URL STATE_URL CHUNK_SIZE NOW_ISO
"""

from __future__ import annotations

import sys
from datetime import datetime

from flows.engine import RunOptions, run_policy


def main(argv: list[str]) -> int:
    policy, store, state, chunk_size, now = argv
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
