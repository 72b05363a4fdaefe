"""The Prefect flow `subject-request`, served by `tenure serve` beside the nightly one and
triggered through a real Prefect server's API with a request id, as a privacy tool or a
web form would; the register and the package show it ran."""

from __future__ import annotations

import json
import re
import sys
import zipfile
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from flows.cli import app
from tests.support.demo import build_demo
from tests.support.paths import REPO, SHIPPED_POLICY
from tests.support.prefect_server import (
    PREFECT,
    RUN_KEYS,
    TENURE,
    Process,
    find_deployment,
    run_to_the_end,
    running_server,
    wait_for,
)

pytestmark = pytest.mark.skipif(not PREFECT.exists(), reason=f"{PREFECT} not found")


def test_a_request_triggered_through_the_api_is_fulfilled(
    tmp_path: Path, demo_files: dict[str, str]
) -> None:
    crm = f"sqlite:///{tmp_path / 'crm.sqlite'}"
    build_demo(crm)
    state = f"sqlite:///{tmp_path / 'state.sqlite'}"
    stores = {**demo_files, "TENURE_CRM_URL": crm, "TENURE_STATE_URL": state, **RUN_KEYS}
    runner = CliRunner()
    policy = str(SHIPPED_POLICY)
    opened = runner.invoke(
        app, ["request", "open", policy, "--kind", "access", "--id", "customer_id=17"], env=stores
    )
    assert opened.exit_code == 0, opened.output
    request_id = re.search(r"request (\d{4}-\d{4}) opened", opened.output).group(1)  # type: ignore[union-attr]
    verified = runner.invoke(
        app,
        ["request", "verify", policy, request_id, "--method", "signed form", "--by", "officer"],
        env=stores,
    )
    assert verified.exit_code == 0, verified.output
    out = tmp_path / "packages"
    with running_server(tmp_path) as (api_url, env, processes):
        env = {**env, **stores}
        command = [str(TENURE)] if TENURE.exists() else [sys.executable, "-m", "flows.cli"]
        args = [*command, "serve", str(SHIPPED_POLICY.relative_to(REPO)), "--cron", "0 2 * * *"]
        processes.append(Process.start("tenure-serve", args, env, tmp_path))
        with httpx.Client(base_url=api_url, timeout=10) as api:
            served = wait_for(
                "deployment subject-request/requests",
                lambda: find_deployment(api, "subject-request", "requests"),
                40.0,
                processes,
            )
            assert served["schedules"] == []  # triggered, never scheduled
            final = run_to_the_end(
                api,
                served["id"],
                processes,
                parameters={"request_id": request_id, "out_dir": str(out)},
            )
        logs = "\n".join(p.output() for p in processes[1:])
    assert final["type"] == "COMPLETED", f"{final}\n{logs}"
    shown = runner.invoke(app, ["request", "show", policy, request_id, "--json"], env=stores)
    register = json.loads(shown.stdout)
    assert register["status"] == "fulfilled"
    (package,) = out.glob("*.zip")
    with zipfile.ZipFile(package) as bundle:
        content = json.loads(bundle.read("package.json"))
    assert {s["dataset"] for s in content["datasets"]} >= {"customers", "invoices"}
    assert register["package_sha256"]
