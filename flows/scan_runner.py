"""One scan from a policy path: load, open the stores read-only, scan with the cache.

Shared by ``tenure scan`` and the ``pii-scan`` flow. A policy that does not load, or a
store that cannot be opened, raises ``PolicyError`` before anything is sampled.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from flows.cluster import ClusterOptions, cluster_workers
from flows.scan import Inventory, TableScan, scan_policy
from flows.scan_cache import StateScanCache
from flows.state.location import state_location
from flows.stores import opened_stores, sqlite_store_dir
from retention_rules.issues import PolicyError
from retention_rules.loader import LoadedPolicy, load_policy


def run_scan(
    path: Path,
    *,
    full: bool = False,
    state_url: str | None = None,
    on_table: Callable[[TableScan], Any] | None = None,
    cluster: ClusterOptions = ClusterOptions(),
) -> tuple[Inventory, LoadedPolicy]:
    """With a ``cluster``, its workers classify the tables, several at once; a cluster
    that cannot be reached stops the scan before the policy's stores are opened."""
    with cluster_workers(cluster):
        return _run_scan(path, full=full, state_url=state_url, on_table=on_table)


def _run_scan(
    path: Path,
    *,
    full: bool,
    state_url: str | None,
    on_table: Callable[[TableScan], Any] | None,
) -> tuple[Inventory, LoadedPolicy]:
    loaded = load_policy(path)
    cache = StateScanCache(state_location(loaded, state_url).open(create=True))
    with opened_stores(loaded.policy) as (connectors, issues):
        if issues:
            raise PolicyError(loaded.locate(issues))
        for connector in connectors.values():
            connector.ping()
        inventory = scan_policy(loaded, connectors, cache=cache, full=full, on_table=on_table)
    return inventory, loaded


def default_output_dir(loaded: LoadedPolicy) -> Path:
    """Beside the policy's first SQLite store (the demo store's folder for the demo),
    else beside the policy file."""
    return sqlite_store_dir(loaded.policy) or loaded.path.absolute().parent
