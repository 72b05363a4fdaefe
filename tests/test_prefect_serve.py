"""`tenure serve` against a real Prefect server (``tests.support.prefect_server``): the deployment,
its cron schedule in the policy's time zone (or the one given), its concurrency limit of 1
and its parameters, and a run of it that applies the policy.
"""

from __future__ import annotations

import json
import re
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from flows.cli import app
from tests.support.paths import REPO, SHIPPED_POLICY
from tests.support.prefect_server import (
    PREFECT,
    RUN_KEYS,
    TENURE,
    Process,
    Server,
    assert_policy_applied,
    find_deployment,
    run_to_the_end,
    running_server,
    wait_for,
)

FLOW_NAME = "nightly-retention"
POLICY_ARG = str(SHIPPED_POLICY.relative_to(REPO))
DEPLOYMENT_TIMEOUT = 40.0  # worst case, with the server's and STOP_TIMEOUT: < 120 s

pytestmark = pytest.mark.skipif(not PREFECT.exists(), reason=f"{PREFECT} not found")


def _deployment(api: httpx.Client, name: str) -> dict[str, Any] | None:
    return find_deployment(api, FLOW_NAME, name)


def _deployments(api: httpx.Client, *names: str) -> list[dict[str, Any]] | None:
    """All the named deployments once every one of them exists, else None."""
    found = [_deployment(api, name) for name in names]
    return [d for d in found if d is not None] if all(found) else None


@pytest.fixture
def prefect_server(tmp_path: Path) -> Iterator[Server]:
    with running_server(tmp_path) as server:
        yield server


def _serve(env: dict[str, str], logs: Path, name: str, *options: str) -> Process:
    command = [str(TENURE)] if TENURE.exists() else [sys.executable, "-m", "flows.cli"]
    args = [*command, "serve", POLICY_ARG, "--cron", "0 2 * * *", *options]
    return Process.start(f"tenure-serve-{name}", args, env, logs)


def test_serve_creates_scheduled_deployment_with_concurrency_limit(
    prefect_server: Server, tmp_path: Path
) -> None:
    api_url, env, processes = prefect_server
    processes.append(_serve(env, tmp_path, "nightly"))
    processes.append(
        _serve(env, tmp_path, "paris", "--timezone", "Europe/Paris", "--name", "paris")
    )

    with httpx.Client(base_url=api_url, timeout=5) as api:
        nightly, paris = wait_for(
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


def test_a_run_of_the_served_deployment_runs_the_policy(
    prefect_server: Server,
    tmp_path: Path,
    demo_files: dict[str, str],
) -> None:
    """Issue 13, 1: the nightly deployment's runs failed before doing anything
    (``Nightly_RetentionModel is not fully defined``). A run is triggered through the
    API as the schedule would, `tenure serve` executes it, and the stores show it.

    Issue 16: the `subject-request` deployment served beside it is triggered through the
    API with a verified request's id alone, as a privacy tool or a web form would; the
    register and the package show it ran. (Its runs once failed: the package named
    ``flows.requests`` shadowed the ``requests`` library on the runner's path.)

    Issue 19: served with ``--workers 2``, both deployments carry the parameter, and each
    run puts its text redaction on a local cluster of two worker processes."""
    from tests.support.demo import build_demo

    api_url, env, processes = prefect_server
    crm = f"sqlite:///{tmp_path / 'served-crm.sqlite'}"
    build_demo(crm)
    state = f"sqlite:///{tmp_path / 'served-state.sqlite'}"
    env = {
        **env,
        **demo_files,
        "TENURE_CRM_URL": crm,
        "TENURE_STATE_URL": state,
        **RUN_KEYS,
    }
    request_id = _verified_access_request(env)
    out = tmp_path / "packages"
    processes.append(_serve(env, tmp_path, "nightly", "--workers", "2"))
    with httpx.Client(base_url=api_url, timeout=10) as api:
        served = wait_for(
            f"deployment {FLOW_NAME}/nightly",
            lambda: _deployment(api, "nightly"),
            DEPLOYMENT_TIMEOUT,
            processes,
        )
        assert served["parameters"]["workers"] == 2, served["parameters"]
        final = run_to_the_end(api, served["id"], processes)
        requests = find_deployment(api, "subject-request", "requests")
        assert requests is not None and requests["schedules"] == []  # triggered, never timed
        assert requests["parameters"]["workers"] == 2, requests["parameters"]
        answered = run_to_the_end(
            api,
            requests["id"],
            processes,
            parameters={"request_id": request_id, "out_dir": str(out)},
        )
    logs = "\n".join(p.output() for p in processes[1:])
    assert final["type"] == "COMPLETED", f"{final}\n{logs}"
    assert_policy_applied(SHIPPED_POLICY, {**demo_files, "TENURE_CRM_URL": crm}, state)

    assert answered["type"] == "COMPLETED", f"{answered}\n{logs}"
    shown = CliRunner().invoke(
        app, ["request", "show", str(SHIPPED_POLICY), request_id, "--json"], env=env
    )
    register = json.loads(shown.stdout)
    assert register["status"] == "fulfilled" and register["package_sha256"]
    (package,) = out.glob("*.zip")
    with zipfile.ZipFile(package) as bundle:
        content = json.loads(bundle.read("package.json"))
    assert {s["dataset"] for s in content["datasets"]} >= {"customers", "invoices"}


def _verified_access_request(env: dict[str, str]) -> str:
    """Customer 17's access request, opened and verified in the register."""
    runner, policy = CliRunner(), str(SHIPPED_POLICY)
    opened = runner.invoke(
        app, ["request", "open", policy, "--kind", "access", "--id", "customer_id=17"], env=env
    )
    assert opened.exit_code == 0, opened.output
    found = re.search(r"request (\d{4}-\d{4}) opened", opened.output)
    assert found, opened.output
    verified = runner.invoke(
        app,
        ["request", "verify", policy, found.group(1), "--method", "signed form", "--by", "officer"],
        env=env,
    )
    assert verified.exit_code == 0, verified.output
    return found.group(1)
