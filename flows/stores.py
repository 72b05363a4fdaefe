"""Open the connectors a policy names; the one place flows turn store URLs into objects."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import make_url

from connectors.errors import StoreError
from connectors.protocol import Connector, ConnectorOptions
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
            options = ConnectorOptions(
                read_only=read_only,
                naive_timezone=store.naive_timezone,
                local_timezone=policy.timezone,
                bookkeeping_dir=bookkeeping_dir(policy, name),
            )
            connectors[name] = open_connector(name, store.url, options)
        except StoreError as exc:
            issues.append(PolicyIssue(("stores", name, "url"), exc.reason))
        except ImportError as exc:
            issues.append(PolicyIssue(("stores", name, "url"), f"driver not installed: {exc.name}"))
        else:
            issues.extend(_earlier_bookkeeping(policy, name, connectors[name]))
    try:
        yield connectors, issues
    finally:
        for connector in connectors.values():
            connector.close()


def _earlier_bookkeeping(policy: Policy, name: str, connector: Connector) -> list[PolicyIssue]:
    """Earlier versions kept a store's journal, marks and pending intents beside the state
    database, in ``tenure-bookkeeping/``; they now belong to the store. Found there, they
    would be silently ignored (a pending intent never replayed, a marked record rewritten
    again): the store's bindings stop, saying where to move them."""
    current = getattr(connector, "bookkeeping_path", None)
    earlier = (default_state_dir(policy) / "tenure-bookkeeping").resolve() / (
        f"{name}.bookkeeping.sqlite"
    )
    if policy.stores[name].bookkeeping is not None or current is None or not earlier.is_file():
        return []
    if earlier == Path(current).resolve():
        return []
    return [
        PolicyIssue(
            ("stores", name, "bookkeeping"),
            f"an earlier Tenure kept this store's journal, marks and pending intents in "
            f"{earlier}: move it to {current}, or set bookkeeping: {earlier.parent}",
        )
    ]


def default_state_dir(policy: Policy) -> Path:
    """Where earlier versions kept the state database and ``tenure-bookkeeping/`` by
    default: beside the first SQLite store, else the working directory (the state
    database's location is now ``flows.state.location.state_location``)."""
    return sqlite_store_dir(policy) or Path()


def sqlite_store_dir(policy: Policy) -> Path | None:
    """The folder of the policy's first SQLite store (the demo store), if it has one."""
    for store in policy.stores.values():
        url = make_url(store.url)
        if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
            return Path(url.database or "").parent
    return None


#: Stores whose URL names a local file or folder by its path (``files+s3://`` does not).
_LOCAL_PATHS = {"sqlite": "SQLite file", "files": "folder", "maildir": "Maildir", "mbox": "mbox"}


def working_directory_warnings(policy: Policy) -> list[PolicyIssue]:
    """A store URL naming its file or folder by a relative path: each run finds it in
    the folder it starts from, and a Prefect worker starts each flow run in a new
    temporary one (there, an empty SQLite file would be created, or nothing found). One
    warning per store, at its URL: the demo's relative paths are meant for its folder."""
    warnings = []
    for name, store in policy.stores.items():
        url = make_url(store.url)
        kind = _LOCAL_PATHS.get(url.get_backend_name())
        database = url.database or ""
        if kind is None or (kind == "folder" and "+" in url.drivername):
            continue  # files+s3:// and the like: not a local path
        if kind == "SQLite file" and database in ("", ":memory:"):
            continue
        if database.startswith("file:") or os.path.isabs(database):
            continue
        warnings.append(
            PolicyIssue(
                ("stores", name, "url"),
                f"the {kind} {database or '.'!r} is relative to the working directory, "
                "which differs between runs (a Prefect worker starts each flow run in a "
                f"new temporary one): give an absolute path ({url.drivername}:////…)",
            )
        )
    return warnings


def bookkeeping_dir(policy: Policy, store: str) -> Path | None:
    """Where a store without SQL keeps its lock, journal, marks, rollups and intents:
    the store's ``bookkeeping:`` directory; else None, and the connector keeps them with
    the store itself (``connectors.records.connector.store_home``), never in a folder a
    run happens to start from: two runs from two folders must share one lock."""
    chosen = policy.stores[store].bookkeeping
    return Path(chosen) if chosen else None


def given_policy_path(policy_path: str) -> str:
    """A flow's ``policy_path`` parameter, refused in one line when empty: a deployment
    made from ``prefect.yaml`` while ``TENURE_POLICY`` was unset has ``''`` (Prefect only
    warns), which would otherwise read as the working directory."""
    if not policy_path.strip():
        raise ValueError(
            "policy_path is empty: set TENURE_POLICY to the policy file's absolute path "
            "and run `prefect deploy` again, or give policy_path when starting the run"
        )
    return policy_path
