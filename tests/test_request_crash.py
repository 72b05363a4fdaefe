"""Kill `tenure request fulfil` (an erasure) with SIGKILL at random points, again and
again, fulfil the request to the end, and compare the three stores with those an
uninterrupted erasure leaves."""

from __future__ import annotations

import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, func, select
from typer.testing import CliRunner

from connectors.sql.connector import SQLConnector
from flows import audit
from flows.cli import app
from flows.state.tables import chunks, open_state
from retention_rules.loader import load_policy
from retention_rules.planner import rollup_sinks
from tests.support.demo import DEMO_AS_OF, build_demo, demo_files_environ, table_contents
from tests.support.paths import REPO, SHIPPED_POLICY
from tests.support.planted import closed_account_customer

KILL_POINTS = 5
CHUNK = "1"  # one row per transaction: many points to die at


def _environ(root: Path) -> dict[str, str]:
    return {"TENURE_CRM_URL": f"sqlite:///{root / 'crm.sqlite'}", **demo_files_environ(root)}


def _cli(root: Path, *args: str) -> Any:
    result = CliRunner().invoke(app, list(args), env=_environ(root))
    return result


def _opened(root: Path, customer: int) -> str:
    state = f"sqlite:///{root / 'state.sqlite'}"
    opened = _cli(
        root, "request", "open", str(SHIPPED_POLICY), "--kind", "erasure",
        "--received", "2026-11-20", "--id", f"customer_id={customer}", "--state", state,
    )  # fmt: skip
    assert opened.exit_code == 0, opened.output
    request_id = re.search(r"request (\d{4}-\d{4}) opened", opened.output).group(1)  # type: ignore[union-attr]
    verified = _cli(
        root, "request", "verify", str(SHIPPED_POLICY), request_id,
        "--method", "signed form", "--by", "privacy officer", "--state", state,
    )  # fmt: skip
    assert verified.exit_code == 0, verified.output
    return request_id


def _fulfil_args(root: Path, request_id: str) -> list[str]:
    return [
        "request", "fulfil", str(SHIPPED_POLICY), request_id, "--now", DEMO_AS_OF.isoformat(),
        "--chunk-size", CHUNK, "--state", f"sqlite:///{root / 'state.sqlite'}",
    ]  # fmt: skip


def _chunks(state: Path) -> int:
    if not state.exists():
        return 0
    engine = create_engine(f"sqlite:///{state}")
    try:
        with engine.connect() as c:
            return int(c.scalar(select(func.count()).select_from(chunks)) or 0)
    except Exception:
        return 0
    finally:
        engine.dispose()


def _killed_after(root: Path, request_id: str, after: int) -> bool:
    """Fulfil in a child process and SIGKILL it once ``after`` chunks are in the ledger."""
    env = {**os.environ, **_environ(root)}
    command = [sys.executable, "-m", "flows.cli", *_fulfil_args(root, request_id)]
    child = subprocess.Popen(
        command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 180
    while child.poll() is None and time.monotonic() < deadline:
        if _chunks(root / "state.sqlite") >= after:
            child.send_signal(signal.SIGKILL)
            child.wait()
            return True
        time.sleep(0.005)
    child.wait()
    return False


def _snapshot(root: Path) -> dict[str, Any]:
    """The demo's tables, its messages and log files, and its rollups merged by cell."""
    crm = f"sqlite:///{root / 'crm.sqlite'}"
    found: dict[str, Any] = dict(table_contents(root / "crm.sqlite"))
    found["files"] = {
        str(p.relative_to(root)): p.read_bytes()
        for folder in ("mail", "weblogs")
        for p in sorted((root / folder).rglob("*"))
        if p.is_file() and not any("tenure" in part for part in p.relative_to(root).parts)
    }  # Tenure's own bookkeeping (journal, marks, intents) names run ids: left out
    policy = load_policy(SHIPPED_POLICY, environ=_environ(root)).policy
    connector = SQLConnector("crm", crm)
    for name in ("usage_events", "web_clicks"):
        for sink in rollup_sinks(policy.dataset(name)):
            found[f"rollup {sink.name}"] = sorted(
                (c.period_start, tuple(sorted(c.dimensions.items())), c.count, c.subjects)
                for c in connector.rollup_cells(name, sink)
            )
    connector.close()
    return found


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory, demo_files_template: Path) -> Path:
    root = tmp_path_factory.mktemp("request-crash") / "pristine"
    root.mkdir()
    build_demo(f"sqlite:///{root / 'crm.sqlite'}")
    shutil.copytree(demo_files_template, root, dirs_exist_ok=True)
    return root


@pytest.mark.usefixtures("pseudonym_keys")
def test_a_killed_erasure_resumes_and_ends_as_an_uninterrupted_one(
    pristine: Path, tmp_path: Path
) -> None:
    customer = closed_account_customer(f"sqlite:///{pristine / 'crm.sqlite'}", DEMO_AS_OF)
    assert customer is not None
    clean = tmp_path / "clean"
    shutil.copytree(pristine, clean)
    request_id = _opened(clean, customer)
    done = _cli(clean, *_fulfil_args(clean, request_id))
    assert done.exit_code == 0, done.output
    expected = _snapshot(clean)
    total = _chunks(clean / "state.sqlite")
    assert total > 3 * KILL_POINTS, f"{total} chunks: too few points to die at"
    # One store killed again and again: at random points of the ledger's chunk count
    # (each resumed run goes on from what the last one committed), then fulfilled to
    # the end. Crashes that pile up are the harder case, and one copy of the demo and one
    # process per kill keep the test short.
    points = sorted(random.Random(16).sample(range(1, total - 1), KILL_POINTS))
    root = tmp_path / "killed"
    shutil.copytree(pristine, root)
    request_id = _opened(root, customer)
    killed = 0
    for point in points:
        killed += _killed_after(root, request_id, point)
    again = _cli(root, *_fulfil_args(root, request_id))
    assert again.exit_code == 0, (points, again.output)
    found = _snapshot(root)
    differ = sorted(k for k in expected.keys() | found.keys() if expected.get(k) != found.get(k))
    if differ == ["files"]:
        differ = sorted(
            k
            for k in expected["files"].keys() | found["files"].keys()
            if expected["files"].get(k) != found["files"].get(k)
        )
    assert not differ, f"stores differ after kills at chunks {points}: {differ}"
    engine = open_state(f"sqlite:///{root / 'state.sqlite'}")
    assert audit.verify(engine).ok
    engine.dispose()
    assert killed == KILL_POINTS, f"every run must really be killed mid-way: {killed} of {points}"
