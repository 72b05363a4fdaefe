"""Prefect's temporary API on a busy machine (issue 13, item 10): when it does not start
in time, `tenure run` tries once more, then says in one line what to set, instead of a
66-line traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.support.paths import FIXTURES, REPO

BIN = Path(sys.executable).parent


def test_a_temporary_api_that_does_not_start_is_one_line(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(
        PREFECT_HOME=str(tmp_path / "prefect-home"),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        # No time at all to start: the wait for the temporary API times out at once.
        PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="0",
        TENURE_CRM_URL=f"sqlite:///{tmp_path / 'none.sqlite'}",
    )
    tenure = BIN / "tenure"
    command = [str(tenure)] if tenure.exists() else [sys.executable, "-m", "flows.cli"]
    done = subprocess.run(
        [*command, "run", str(FIXTURES / "minimal.yaml"), "--dry-run"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: Prefect's temporary API did not start within 0 s")
    assert "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS" in lines[0]
    assert "PREFECT_API_URL" in lines[0]
