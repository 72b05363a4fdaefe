"""One scan from a policy path: load, open the stores read-only, scan with the cache.

Shared by ``tenure scan`` and the ``pii-scan`` flow. A policy that does not load, or a
store that cannot be opened, raises ``PolicyError`` before anything is sampled.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import make_url

from flows.engine import default_state_url
from flows.ledger import open_state
from flows.scan import Inventory, TableScan, scan_policy
from flows.scan_cache import StateScanCache
from flows.stores import opened_stores
from retention_rules.issues import PolicyError
from retention_rules.loader import LoadedPolicy, load_policy
from retention_rules.model import Policy


def run_scan(
    path: Path,
    *,
    full: bool = False,
    state_url: str | None = None,
    on_table: Callable[[TableScan], Any] | None = None,
) -> tuple[Inventory, LoadedPolicy]:
    loaded = load_policy(path)
    cache = StateScanCache(open_state(state_url or default_state_url(loaded.policy)))
    with opened_stores(loaded.policy) as (connectors, issues):
        if issues:
            raise PolicyError(loaded.locate(issues))
        for connector in connectors.values():
            connector.ping()
        inventory = scan_policy(loaded, connectors, cache=cache, full=full, on_table=on_table)
    return inventory, loaded


def default_output_dir(policy: Policy) -> Path:
    """Beside the default state database (the demo store's directory for the demo)."""
    url = make_url(default_state_url(policy))
    return Path(url.database or "tenure-state.sqlite").parent
