"""Open the connectors a policy names; the one place flows turn store URLs into objects."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from connectors.errors import StoreError
from connectors.protocol import Connector
from connectors.registry import open_connector
from retention_rules.issues import PolicyIssue
from retention_rules.model import Policy


@contextmanager
def opened_stores(
    policy: Policy, *, read_only: bool = True
) -> Iterator[tuple[dict[str, Connector], list[PolicyIssue]]]:
    """Yield the connectors that could be created, and a problem for each that could not
    (an unknown scheme, a missing driver). Connectors are closed on exit."""
    connectors: dict[str, Connector] = {}
    issues: list[PolicyIssue] = []
    for name, store in policy.stores.items():
        try:
            connectors[name] = open_connector(
                name,
                store.url,
                naive_timezone=store.naive_timezone,
                local_timezone=policy.timezone,
                read_only=read_only,
            )
        except StoreError as exc:
            issues.append(PolicyIssue(("stores", name, "url"), exc.reason))
        except ImportError as exc:
            issues.append(PolicyIssue(("stores", name, "url"), f"driver not installed: {exc.name}"))
    try:
        yield connectors, issues
    finally:
        for connector in connectors.values():
            connector.close()
