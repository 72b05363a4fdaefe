"""The PII scan as a Prefect flow, to schedule on its own (e.g. weekly, see prefect.yaml).

The nightly run already scans incrementally before it destroys anything; this flow
writes the full inventory (``inventory.json`` and Markdown) and publishes it as Prefect
table and markdown artifacts, so a privacy officer can see the map without a terminal.
"""

# No ``from __future__ import annotations``: a deployment's runner loads this file as a
# script and Prefect builds the flow's parameter model from its annotations, which as
# strings could not be resolved there (``datetime`` "not fully defined": every run failed).

from pathlib import Path

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from flows.cluster import ClusterOptions
from flows.reports.inventory import inventory_markdown, inventory_table, write_inventory
from flows.reports.table import to_records
from flows.scan import Inventory
from flows.scan_runner import default_output_dir, run_scan
from flows.state.location import STATE_VARIABLE, state_url_from
from flows.stores import given_policy_path


@flow(name="pii-scan", log_prints=False)
def pii_scan(
    policy_path: str,
    full: bool = False,
    state_from: str = STATE_VARIABLE,
    output_dir: str | None = None,
    dask: str | None = None,
    workers: int | None = None,
) -> Inventory:
    """Scan every store the policy names, write the inventory, check coverage.

    ``state_from`` names the environment variable or Prefect Secret block holding the
    state database's URL (``flows.state.location.state_url_from``), never the URL itself.
    ``dask`` or ``workers`` classify the tables on a Dask cluster (``flows.cluster``)."""
    state_url = state_url_from(state_from)
    inventory, loaded = run_scan(
        Path(given_policy_path(policy_path)),
        full=full,
        state_url=state_url,
        cluster=ClusterOptions(dask, workers),
    )
    directory = Path(output_dir) if output_dir else default_output_dir(loaded)
    write_inventory(inventory, directory)
    rows = to_records(inventory_table(inventory))
    create_table_artifact(rows, key="pii-inventory", description=loaded.policy.name)
    create_markdown_artifact(inventory_markdown(inventory), key="pii-inventory-report")
    if not inventory.coverage.passed:
        get_run_logger().warning(
            "coverage gate failed: %s", "; ".join(str(gap) for gap in inventory.coverage.gaps)
        )
    return inventory
