"""The Prefect flow ``subject-request``: fulfil one verified request from the register.

Served beside the nightly flow by ``tenure serve`` as the deployment
``subject-request/requests``, so a privacy tool or a web form can trigger it through
Prefect's API with the request's id (``POST /deployments/{id}/create_flow_run`` with
``{"parameters": {"request_id": "2026-0001"}}``). Only the id travels: the identifiers
stay in the register, never in Prefect's stored parameters.
"""

# No ``from __future__ import annotations``: Prefect builds the parameter model from the
# annotations when a deployment's runner loads this file (see ``flows.nightly``).

from datetime import datetime
from typing import Any

from prefect import flow
from prefect.artifacts import create_markdown_artifact

from flows.cluster import ClusterOptions, cluster_workers
from flows.rights.fulfil import fulfil
from flows.run.types import RunOptions
from flows.state.location import STATE_VARIABLE, state_url_from
from flows.stores import given_policy_path

FLOW_NAME = "subject-request"
DEPLOYMENT_NAME = "requests"


@flow(name=FLOW_NAME, log_prints=False)
def subject_request(
    policy_path: str,
    request_id: str,
    out_dir: str = "requests",
    now: datetime | None = None,
    state_from: str = STATE_VARIABLE,
    dask: str | None = None,
    workers: int | None = None,
) -> dict[str, Any]:
    """Fulfil request ``request_id`` (verified in the register first); the package of an
    access request is written under ``out_dir``. Returns the status and counts.
    ``dask`` or ``workers`` redact the package's free text on a Dask cluster."""
    from pathlib import Path

    options = RunOptions(now=now, state_url=state_url_from(state_from))
    with cluster_workers(ClusterOptions(dask, workers)):
        done = fulfil(given_policy_path(policy_path), request_id, options, out=Path(out_dir))
    lines = [f"# Request {request_id}: {done.status}", ""]
    lines += [f"- {name}: failed ({why})" for name, why in sorted(done.failed.items())]
    if done.package is not None:
        lines.append(f"- package sha256 `{done.package.sha256}`")
    create_markdown_artifact("\n".join(lines), key="subject-request")
    return {"request_id": request_id, "status": done.status, "failed": sorted(done.failed)}
