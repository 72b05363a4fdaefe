"""`tenure serve` against a real Prefect server: the deployment, its cron schedule in the
policy's time zone (or the one given), its concurrency limit of 1 and its parameters.

The server runs on loopback with its own temporary home and SQLite database, analytics
off and the scheduler service off, so no flow run is ever created while the test runs.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from tests.conftest import REPO, SHIPPED_POLICY, demo_files_environ
from tests.ports import free_port

BIN = Path(sys.executable).parent
PREFECT = BIN / "prefect"
TENURE = BIN / "tenure"
FLOW_NAME = "nightly-retention"
POLICY_ARG = str(SHIPPED_POLICY.relative_to(REPO))
SERVER_START_TIMEOUT = 60.0
DEPLOYMENT_TIMEOUT = 40.0  # worst case, with the server's and STOP_TIMEOUT: < 120 s
STOP_TIMEOUT = 10.0

T = TypeVar("T")

pytestmark = pytest.mark.skipif(not PREFECT.exists(), reason=f"{PREFECT} not found")


def _offline_env(home: Path) -> dict[str, str]:
    """This process's environment minus any Prefect setting, plus an isolated, quiet one."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(
        PREFECT_HOME=str(home / "prefect-home"),
        PREFECT_API_DATABASE_CONNECTION_URL=f"sqlite+aiosqlite:///{home / 'prefect.db'}",
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_SERVER_UI_ENABLED="false",
        PREFECT_UI_ENABLED="false",
        PREFECT_SERVER_UI_SHOW_PROMOTIONAL_CONTENT="false",
        # Schedules are stored but never turned into runs: nothing executes the policy.
        PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED="false",
        PREFECT_CLI_PROMPT="false",
        DO_NOT_TRACK="1",
        # Should a run start anyway, it would touch a throwaway store, not the demo one.
        TENURE_CRM_URL=f"sqlite:///{home / 'crm.sqlite'}",
        **demo_files_environ(home),  # and throwaway mail and web logs
    )
    return env


@dataclass
class Process:
    """A subprocess in its own process group, its output captured to a file."""

    name: str
    log: Path
    popen: subprocess.Popen[bytes] = field(repr=False)

    @classmethod
    def start(cls, name: str, args: list[str], env: dict[str, str], logs: Path) -> Process:
        log = logs / f"{name}.log"
        with log.open("wb") as out:
            popen = subprocess.Popen(
                args,
                cwd=REPO,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return cls(name, log, popen)

    def check_alive(self) -> None:
        code = self.popen.poll()
        if code is not None:
            pytest.fail(f"{self.name} exited with code {code}:\n{self.output()}")

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-6000:]

    def signal(self, sig: signal.Signals) -> None:
        """Signal the whole process group (its children too), if it still exists."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, sig)


def _stop_all(processes: list[Process]) -> None:
    """SIGTERM every process at once; SIGKILL what is left after STOP_TIMEOUT in all."""
    for process in reversed(processes):  # the server last: the others talk to it
        if process.popen.poll() is None:
            process.signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT
    for process in processes:
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.popen.wait(max(0.1, deadline - time.monotonic()))
        process.signal(signal.SIGKILL)  # the leader if stuck, and children that outlived it
        process.popen.wait(5)


def _wait_for(
    what: str, probe: Callable[[], T | None], timeout: float, watched: list[Process]
) -> T:
    """Poll `probe` until it returns a value; fail early if a watched process died."""
    deadline = time.monotonic() + timeout
    while True:
        for process in watched:
            process.check_alive()
        value = probe()
        if value is not None:
            return value
        if time.monotonic() > deadline:
            logs = "\n".join(f"--- {p.name}:\n{p.output()}" for p in watched)
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}\n{logs}")
        time.sleep(0.5)


def _healthy(api: httpx.Client) -> bool | None:
    try:
        response = api.get("/health")
    except httpx.TransportError:
        return None
    return True if response.status_code == 200 and response.json() is True else None


def _deployment(api: httpx.Client, name: str) -> dict[str, Any] | None:
    try:
        response = api.get(f"/deployments/name/{FLOW_NAME}/{name}")
    except httpx.TransportError:
        return None
    if response.status_code == 404:
        return None
    response.raise_for_status()
    found: dict[str, Any] = response.json()
    return found


def _deployments(api: httpx.Client, *names: str) -> list[dict[str, Any]] | None:
    """All the named deployments once every one of them exists, else None."""
    found = [_deployment(api, name) for name in names]
    return [d for d in found if d is not None] if all(found) else None


@pytest.fixture
def prefect_server(tmp_path: Path) -> Iterator[tuple[str, dict[str, str], list[Process]]]:
    """A Prefect server on a free loopback port; yields its API URL, env and processes.

    Every process the test appends to the list is stopped, with the server, at the end.
    """
    port = free_port()
    api_url = f"http://127.0.0.1:{port}/api"
    env = _offline_env(tmp_path)
    args = [str(PREFECT), "server", "start", "--host", "127.0.0.1", "--port", str(port)]
    processes = [Process.start("prefect-server", args, env, tmp_path)]
    try:
        with httpx.Client(base_url=api_url, timeout=5) as api:
            _wait_for("the Prefect server", lambda: _healthy(api), SERVER_START_TIMEOUT, processes)
        yield api_url, {**env, "PREFECT_API_URL": api_url}, processes
    finally:
        _stop_all(processes)


def _serve(env: dict[str, str], logs: Path, name: str, *options: str) -> Process:
    command = [str(TENURE)] if TENURE.exists() else [sys.executable, "-m", "flows.cli"]
    args = [*command, "serve", POLICY_ARG, "--cron", "0 2 * * *", *options]
    return Process.start(f"tenure-serve-{name}", args, env, logs)


def test_serve_creates_scheduled_deployment_with_concurrency_limit(
    prefect_server: tuple[str, dict[str, str], list[Process]], tmp_path: Path
) -> None:
    api_url, env, processes = prefect_server
    processes.append(_serve(env, tmp_path, "nightly"))
    processes.append(
        _serve(env, tmp_path, "paris", "--timezone", "Europe/Paris", "--name", "paris")
    )

    with httpx.Client(base_url=api_url, timeout=5) as api:
        nightly, paris = _wait_for(
            f"deployments {FLOW_NAME}/nightly and {FLOW_NAME}/paris",
            lambda: _deployments(api, "nightly", "paris"),
            DEPLOYMENT_TIMEOUT,
            processes,
        )

    for deployment, timezone in ((nightly, "America/Montreal"), (paris, "Europe/Paris")):
        context = f"{deployment['name']}: {deployment}"
        schedules = deployment["schedules"]
        assert len(schedules) == 1, context
        assert schedules[0]["active"] is True, context
        assert schedules[0]["schedule"]["cron"] == "0 2 * * *", context
        assert schedules[0]["schedule"]["timezone"] == timezone, context
        # Prefect 3 keeps a deployment's concurrency limit in a global concurrency limit
        # named after it; the legacy top-level `concurrency_limit` field stays null.
        limit = deployment["global_concurrency_limit"]
        assert limit is not None, context
        assert limit["limit"] == 1, context
        assert limit["active"] is True, context
        assert deployment["parameters"] == {"policy_path": str(SHIPPED_POLICY)}, context
        assert Path(deployment["parameters"]["policy_path"]).is_absolute(), context
        assert deployment["entrypoint"] == "flows/nightly.py:nightly_retention", context
        assert deployment["paused"] is False, context


RUN_TIMEOUT = 240.0


def _answer(response: httpx.Response) -> dict[str, Any] | None:
    """The JSON answer, or None while the server is busy (503: its database is locked)."""
    if response.status_code == 503:
        return None
    response.raise_for_status()
    answer: dict[str, Any] = response.json()
    return answer


def _flow_run_state(api: httpx.Client, run_id: str) -> dict[str, Any] | None:
    """The run's state once it is final, else None."""
    answer = _answer(api.get(f"/flow_runs/{run_id}"))
    if answer is None:
        return None
    state: dict[str, Any] = answer["state"]
    return state if state["type"] in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED") else None


def test_a_run_of_the_served_deployment_runs_the_policy(
    prefect_server: tuple[str, dict[str, str], list[Process]],
    tmp_path: Path,
    demo_files: dict[str, str],
) -> None:
    """Issue 13, 1: the nightly deployment's runs failed before doing anything
    (``Nightly_RetentionModel is not fully defined``). A run is triggered through the
    API as the schedule would, `tenure serve` executes it, and the stores show it."""
    from flows import audit
    from flows.ledger import open_state
    from retention_rules.clock import PolicyClock
    from retention_rules.loader import load_policy
    from retention_rules.planner import evaluate, plan_rules
    from tests.conftest import DEMO_AS_OF, build_demo

    api_url, env, processes = prefect_server
    crm = f"sqlite:///{tmp_path / 'served-crm.sqlite'}"
    build_demo(crm)
    state = f"sqlite:///{tmp_path / 'served-state.sqlite'}"
    env = {
        **env,
        **demo_files,
        "TENURE_CRM_URL": crm,
        "TENURE_STATE_URL": state,
        "TENURE_PSEUDONYM_KEY": "test-key-0123456789abcdef",
        "TENURE_PSEUDONYM_KEY_ACCOUNTS": "test-accounts-key-0123456789",
        "TENURE_AUDIT_KEY": "test-audit-key-0123456789abcdef",
    }
    processes.append(_serve(env, tmp_path, "nightly"))
    with httpx.Client(base_url=api_url, timeout=10) as api:
        deployment = _wait_for(
            f"deployment {FLOW_NAME}/nightly",
            lambda: _deployment(api, "nightly"),
            DEPLOYMENT_TIMEOUT,
            processes,
        )
        created = _wait_for(
            "a flow run of the deployment",
            lambda: _answer(
                api.post(
                    f"/deployments/{deployment['id']}/create_flow_run",
                    json={"parameters": {"now": DEMO_AS_OF.isoformat()}},
                )
            ),
            DEPLOYMENT_TIMEOUT,
            processes,
        )
        run_id = created["id"]
        final = _wait_for(
            "the served flow run to finish",
            lambda: _flow_run_state(api, run_id),
            RUN_TIMEOUT,
            processes,
        )
    logs = "\n".join(p.output() for p in processes[1:])
    assert final["type"] == "COMPLETED", f"{final}\n{logs}"

    environ = {**demo_files, "TENURE_CRM_URL": crm}
    loaded = load_policy(SHIPPED_POLICY, environ=environ)
    from flows.stores import opened_stores

    with opened_stores(loaded.policy) as (connectors, issues):
        assert not issues
        rows = evaluate(plan_rules(loaded.policy, PolicyClock.at("UTC", DEMO_AS_OF)), connectors)
    assert {r.rule.dataset.name: r.counts.expired for r in rows} == {
        d.name: 0 for d in loaded.policy.datasets
    }
    entries = audit.entries(open_state(state))
    assert {e["dataset"] for e in entries if "dataset" in e} == {
        d.name for d in loaded.policy.datasets
    }
    assert all(e["status"] == "ok" for e in entries if "dataset" in e)
