"""The shipped ``prefect.yaml`` used the way its users use it: `prefect deploy` from a
directory of their own (not the checkout) with their own policy, a process work pool,
`prefect worker start`, and a run of the nightly deployment triggered through the API of a
real Prefect server on loopback (``tests.support.prefect_server``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.demo import build_demo
from tests.support.paths import REPO, SHIPPED_POLICY
from tests.support.prefect_server import (
    PREFECT,
    RUN_KEYS,
    STOP_TIMEOUT,
    Process,
    Server,
    assert_policy_applied,
    expired_counts,
    find_deployment,
    run_to_the_end,
    running_server,
    wait_for,
)

PREFECT_YAML = REPO / "prefect.yaml"
POOL = "tenure"  # the work pool prefect.yaml names
CLI_TIMEOUT = 120.0  # one `prefect` command (deploy imports the flows)
#: prefect.yaml's deployments: name, flow and entrypoint (a module path), parameters.
DEPLOYMENTS = {
    "nightly": ("nightly-retention", "flows.nightly.nightly_retention", {}),
    "weekly-pii-scan": ("pii-scan", "flows.scan_flow.pii_scan", {"full": True}),
}
DEPLOY_TIMEOUT = 40.0  # for the server to answer (a busy one says 503)
WORKER_STOP_TIMEOUT = 30.0  # SIGTERM: the worker cancels its loops and says "stopped!"

pytestmark = pytest.mark.skipif(not PREFECT.exists(), reason=f"{PREFECT} not found")


@pytest.fixture
def prefect_server(tmp_path: Path) -> Iterator[Server]:
    with running_server(tmp_path) as server:
        yield server


def _prefect(env: dict[str, str], cwd: Path, *args: str) -> str:
    """Run a `prefect` command as a user types it, in `cwd`; its output, or fail with it."""
    done = subprocess.run(
        [str(PREFECT), *args],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT,
        check=False,
    )
    output = done.stdout + done.stderr
    if done.returncode != 0:
        pytest.fail(f"`prefect {' '.join(args)}` exited with {done.returncode}:\n{output[-6000:]}")
    return output


def _deployed(api: httpx.Client) -> dict[str, dict[str, Any]] | None:
    """prefect.yaml's deployments once the server has them all, else None."""
    found = {name: find_deployment(api, flow, name) for name, (flow, *_) in DEPLOYMENTS.items()}
    return {n: d for n, d in found.items() if d is not None} if all(found.values()) else None


def _group_gone(process: Process) -> bool | None:
    """True once no process of the group is left (the worker and its flow-run processes)."""
    try:
        os.killpg(process.popen.pid, 0)
    except ProcessLookupError:
        return True
    return None


def test_the_shipped_prefect_yaml_runs_a_users_policy_on_a_process_worker(
    prefect_server: Server, tmp_path: Path, demo_files: dict[str, str]
) -> None:
    """Issue 13, 1: the shipped prefect.yaml named the demo policy and a file entrypoint
    relative to the checkout, where every run also started. Deployed from elsewhere with
    TENURE_POLICY naming a policy elsewhere, a worker started in yet another directory
    runs it, and the stores and the audit log show it."""
    api_url, env, processes = prefect_server
    policy = tmp_path / "privacy" / "shop.yaml"  # the user's policy, outside the checkout
    policy.parent.mkdir()
    shutil.copy(SHIPPED_POLICY, policy)
    project = tmp_path / "deploy"  # where the user keeps their copy of prefect.yaml
    project.mkdir()
    shutil.copy(PREFECT_YAML, project / "prefect.yaml")
    worker_home = tmp_path / "worker"
    worker_home.mkdir()
    crm = f"sqlite:///{tmp_path / 'crm.sqlite'}"
    build_demo(crm)
    state = f"sqlite:///{tmp_path / 'state' / 'tenure-state.sqlite'}"
    (tmp_path / "state").mkdir()
    stores = {**demo_files, "TENURE_CRM_URL": crm}
    assert any(expired_counts(policy, stores).values())

    _prefect(env, project, "work-pool", "create", POOL, "--type", "process")
    # The worker's environment holds the stores, the keys and the state database's URL,
    # never the policy path: that is the deployment's parameter.
    worker_env = {
        **env,
        **stores,
        "TENURE_STATE_URL": state,
        **RUN_KEYS,
        "PREFECT_WORKER_QUERY_SECONDS": "1",
    }
    worker_args = [str(PREFECT), "worker", "start", "--pool", POOL]
    worker = Process.start("prefect-worker", worker_args, worker_env, tmp_path, cwd=worker_home)
    processes.append(worker)
    output = _prefect(
        {**env, "TENURE_POLICY": str(policy)}, project, "--no-prompt", "deploy", "--all"
    )

    with httpx.Client(base_url=api_url, timeout=10) as api:
        deployed = wait_for(
            f"prefect.yaml's deployments (deployed: {output})",
            lambda: _deployed(api),
            DEPLOY_TIMEOUT,
            processes,
        )
        for name, (_, entrypoint, parameters) in DEPLOYMENTS.items():
            found = deployed[name]
            context = f"{name}: {found}"
            assert found["entrypoint"] == entrypoint, context
            assert found["parameters"] == {
                "policy_path": str(policy),
                "state_from": "TENURE_STATE_URL",
                **parameters,
            }, context
            assert found["pull_steps"] == [], context  # runs never go back to `project`
            assert found["work_pool_name"] == POOL, context
            assert found["global_concurrency_limit"]["limit"] == 1, context
        final = run_to_the_end(api, deployed["nightly"]["id"], processes)
    assert final["type"] == "COMPLETED", f"{final}\n{worker.output()}"

    # The worker stops on SIGTERM by itself, and leaves no flow-run process behind.
    worker.signal(signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        worker.popen.wait(WORKER_STOP_TIMEOUT)
    assert worker.popen.poll() is not None, f"the worker ignored SIGTERM:\n{worker.output()}"
    wait_for("the worker's processes to end", lambda: _group_gone(worker), STOP_TIMEOUT, [])

    assert_policy_applied(policy, stores, state)
    # Nothing was written where the user deployed from, or where the worker was started.
    assert sorted(p.name for p in project.iterdir()) == ["prefect.yaml"]
    assert not any(worker_home.iterdir())


@pytest.mark.parametrize("flow_name", ["nightly_retention", "pii_scan"])
def test_a_deployment_made_without_tenure_policy_fails_in_one_line(flow_name: str) -> None:
    """`prefect deploy` with TENURE_POLICY unset stores ``policy_path: ''`` (Prefect only
    warns): its runs say what to set, instead of reading the working directory."""
    from flows.nightly import nightly_retention
    from flows.scan_flow import pii_scan

    flow = {"nightly_retention": nightly_retention, "pii_scan": pii_scan}[flow_name]
    with pytest.raises(ValueError, match=r"^policy_path is empty: set TENURE_POLICY"):
        flow.fn("")
