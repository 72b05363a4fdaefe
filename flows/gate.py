"""The coverage gate as the nightly run uses it: scan (incrementally), then judge.

Run before any destructive step. With ``on_coverage_gap: block`` (the default) a gap
turns the run into a count-only run that changes nothing and fails; with ``warn`` the
gaps are reported and audited and the run goes on.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import Engine

from connectors.protocol import Connector
from flows.scan import Inventory, scan_policy
from flows.scan_cache import StateScanCache
from retention_rules.loader import LoadedPolicy


@dataclass(frozen=True)
class GateVerdict:
    """The gate's outcome: the policy's setting, one line per gap, how much was scanned."""

    mode: str
    gaps: tuple[str, ...]
    tables: int
    reused: int

    @property
    def blocks(self) -> bool:
        return bool(self.gaps) and self.mode == "block"

    @property
    def status(self) -> str:
        if not self.gaps:
            return "passed"
        return "blocked" if self.blocks else "warned"

    @classmethod
    def of(cls, inventory: Inventory, mode: str) -> GateVerdict:
        return cls(
            mode=mode,
            gaps=tuple(str(gap) for gap in inventory.coverage.gaps),
            tables=len(inventory.tables),
            reused=inventory.reused,
        )


def coverage_gate(
    loaded: LoadedPolicy,
    connectors: Mapping[str, Connector],
    state: Engine | None,
    *,
    read_only: bool = False,
) -> GateVerdict:
    """Scan the stores (re-sampling only changed tables) and check the policy's coverage.

    Without a state database every table is sampled; with ``read_only`` (a dry run) the
    cache is read but not written."""
    cache = None if state is None else StateScanCache(state, read_only=read_only)
    inventory = scan_policy(loaded, connectors, cache=cache)
    return GateVerdict.of(inventory, loaded.policy.scan.on_coverage_gap)
