"""A real Prefect server on loopback, and the processes the scheduling tests start
against it (`tenure serve`, `prefect worker start`), each stopped at the end.

The server runs with its own temporary home and SQLite database, analytics off and the
scheduler service off, so no flow run is created unless a test asks for one.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from tests.support.demo import DEMO_AS_OF, demo_files_environ
from tests.support.keys import AUDIT_KEY, PSEUDONYM_KEYS
from tests.support.paths import REPO
from tests.support.ports import free_port

BIN = Path(sys.executable).parent
PREFECT = BIN / "prefect"
TENURE = BIN / "tenure"
SERVER_START_TIMEOUT = 60.0
STOP_TIMEOUT = 10.0
RUN_TIMEOUT = 240.0

#: The keys a real run of the shipped policy needs, in the environment that runs it.
RUN_KEYS = {**PSEUDONYM_KEYS, "TENURE_AUDIT_KEY": AUDIT_KEY}

T = TypeVar("T")


def offline_env(home: Path) -> dict[str, str]:
    """This process's environment minus any Prefect or proxy setting, plus an isolated,
    quiet one that reaches nothing beyond loopback."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("PREFECT_") and not k.lower().endswith("_proxy")
    }
    # Prefect's own requests beyond this machine (`prefect work-pool create` has the server
    # read Prefect's integrations list from GitHub) go to a loopback port nothing listens
    # on, and fail at once; Prefect then uses its bundled copy. The API is not proxied.
    nowhere = f"http://127.0.0.1:{free_port()}"
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        env[name] = env[name.lower()] = nowhere
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    env.update(
        PREFECT_HOME=str(home / "prefect-home"),
        PREFECT_API_DATABASE_CONNECTION_URL=f"sqlite+aiosqlite:///{home / 'prefect.db'}",
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_SERVER_UI_ENABLED="false",
        PREFECT_UI_ENABLED="false",
        PREFECT_SERVER_UI_SHOW_PROMOTIONAL_CONTENT="false",
        # Schedules are stored but never turned into runs: only the test starts runs.
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
    def start(
        cls, name: str, args: list[str], env: dict[str, str], logs: Path, cwd: Path = REPO
    ) -> Process:
        log = logs / f"{name}.log"
        with log.open("wb") as out:
            popen = subprocess.Popen(
                args,
                cwd=cwd,
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


def stop_all(processes: list[Process]) -> None:
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


def wait_for(what: str, probe: Callable[[], T | None], timeout: float, watched: list[Process]) -> T:
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


def healthy(api: httpx.Client) -> bool | None:
    try:
        response = api.get("/health")
    except httpx.TransportError:
        return None
    return True if response.status_code == 200 and response.json() is True else None


def answer(response: httpx.Response) -> dict[str, Any] | None:
    """The JSON answer, or None while the server is busy (503: its database is locked)."""
    if response.status_code == 503:
        return None
    response.raise_for_status()
    found: dict[str, Any] = response.json()
    return found


def find_deployment(api: httpx.Client, flow: str, name: str) -> dict[str, Any] | None:
    """The deployment `flow/name`, or None while it does not exist (or the server is busy)."""
    try:
        response = api.get(f"/deployments/name/{flow}/{name}")
    except httpx.TransportError:
        return None
    if response.status_code == 404:
        return None
    return answer(response)


def flow_run_state(api: httpx.Client, run_id: str) -> dict[str, Any] | None:
    """The run's state once it is final, else None."""
    found = answer(api.get(f"/flow_runs/{run_id}"))
    if found is None:
        return None
    state: dict[str, Any] = found["state"]
    return state if state["type"] in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED") else None


#: The server's API URL, the environment for processes that talk to it, and the
#: processes to stop at the end (the server first in the list).
Server = tuple[str, dict[str, str], list[Process]]


@contextlib.contextmanager
def running_server(home: Path) -> Iterator[Server]:
    """A Prefect server on a free loopback port, its home and logs under `home`.

    Every process the caller appends to the list is stopped, with the server, at the end.
    """
    port = free_port()
    api_url = f"http://127.0.0.1:{port}/api"
    env = offline_env(home)
    args = [str(PREFECT), "server", "start", "--host", "127.0.0.1", "--port", str(port)]
    processes = [Process.start("prefect-server", args, env, home)]
    try:
        with httpx.Client(base_url=api_url, timeout=5) as api:
            wait_for("the Prefect server", lambda: healthy(api), SERVER_START_TIMEOUT, processes)
        yield api_url, {**env, "PREFECT_API_URL": api_url}, processes
    finally:
        stop_all(processes)


def run_to_the_end(
    api: httpx.Client,
    deployment_id: str,
    watched: list[Process],
    timeout: float = RUN_TIMEOUT,
    parameters: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Create a run of the deployment through the API, as its schedule would (at the demo's
    instant, with ``parameters`` besides), and wait for its final state."""
    given = {"now": DEMO_AS_OF.isoformat(), **(parameters or {})}
    created = wait_for(
        "a flow run of the deployment",
        lambda: answer(
            api.post(f"/deployments/{deployment_id}/create_flow_run", json={"parameters": given})
        ),
        timeout,
        watched,
    )
    run_id = created["id"]
    return wait_for("the flow run to finish", lambda: flow_run_state(api, run_id), timeout, watched)


def expired_counts(policy: Path, environ: Mapping[str, str]) -> dict[str, int]:
    """How many records of each dataset are expired at the demo's instant."""
    from flows.stores import opened_stores
    from retention_rules.clock import PolicyClock
    from retention_rules.loader import load_policy
    from retention_rules.planner import evaluate, plan_rules

    loaded = load_policy(policy, environ=environ)
    with opened_stores(loaded.policy) as (connectors, issues):
        assert not issues
        rows = evaluate(plan_rules(loaded.policy, PolicyClock.at("UTC", DEMO_AS_OF)), connectors)
    return {r.rule.dataset.name: r.counts.expired for r in rows}


def assert_policy_applied(policy: Path, environ: Mapping[str, str], state: str) -> None:
    """No dataset holds an expired record any more, and the audit log in the state
    database `state` has an entry for every dataset, each ok."""
    from flows import audit
    from flows.state.tables import open_state

    counts = expired_counts(policy, environ)
    assert counts == dict.fromkeys(counts, 0)
    entries = [e for e in audit.entries(open_state(state)) if "dataset" in e]
    assert {e["dataset"] for e in entries} == set(counts)
    assert all(e["status"] == "ok" for e in entries), entries
