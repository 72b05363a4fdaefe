"""The preflight: what a real run needs before its first write, checked without writing.

`tenure validate`, `tenure plan`, `tenure run --dry-run`, `tenure serve` and the start of
every real run (the command line's and a deployment's, in ``flows.run.lifecycle.run_context``)
call `preflight`, so that a dry run that passes means the run will not stop half-way,
after other bindings have already deleted rows, for a reason that could be known in
advance. A real run whose preflight fails writes nothing at all.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from anonymizers.operators import OperatorError
from anonymizers.secrets import MissingSecret, pseudonym_key
from connectors.errors import StoreError
from connectors.protocol import Connector, WriteTarget
from connectors.urls import mask_url
from flows.audit import current_key
from flows.binding_operators import binding_operators, keyed_rollup_sinks
from flows.state.location import StateLocation, state_problem
from flows.state.tables import StateError
from flows.stores import sqlite_store_dir
from retention_rules.issues import PolicyIssue
from retention_rules.loader import LoadedPolicy
from retention_rules.model import AnonymizeAction, Policy
from retention_rules.schema_check import read_columns

#: What earlier versions named the state database in the working directory.
EARLIER_STATE = "tenure-state.sqlite"


def preflight(
    loaded: LoadedPolicy,
    connectors: Mapping[str, Connector],
    location: StateLocation | None,
    schema_issues: list[PolicyIssue],
) -> list[PolicyIssue]:
    """Every problem that would stop a binding of the real run once it has started:

    - no audit key: a problem of the whole file (no line), naming the environment
      variable and the Prefect Secret block that would hold it;
    - a keyed operator (pseudonym, surrogate) whose key cannot be found (the
      environment variable or Prefect Secret block is named, never a key), at the
      operator's column;
    - a store a binding changes that would refuse the change, its bookkeeping folder
      included (``Connector.write_problems``), at the store;
    - the state database (``state_problem``): at the policy's ``state:`` when it names
      it, else raised as ``StateError`` (one line, like a bad ``--state``); not checked
      without a ``location``.

    Stores ``schema_issues`` already found unusable are not asked again."""
    state = None
    if location is not None:
        state = state_problem(location) or _earlier_default(loaded, location)
    issues = []
    try:
        current_key()  # the audit key: a real run without it writes nothing
    except MissingSecret as exc:
        issues.append(PolicyIssue((), str(exc)))
    if location is not None and state is not None:
        if location.source != "policy state:":
            raise StateError(state)
        issues.append(PolicyIssue(("state",), state))
    unusable = {issue.loc[1] for issue in schema_issues if issue.loc[0] == "stores"}
    issues += key_problems(loaded.policy)
    for name, targets in write_targets(loaded.policy).items():
        if name in unusable or name not in connectors:
            continue
        try:
            reasons = connectors[name].write_problems(targets)
        except StoreError as exc:
            reasons = [exc.reason]
        issues += [PolicyIssue(("stores", name), f"not writable: {r}") for r in reasons]
    return issues


def key_problems(policy: Policy) -> list[PolicyIssue]:
    """A missing key of each keyed operator, once per binding and key id."""
    issues = []
    for i, dataset in enumerate(policy.datasets):
        try:
            operators = binding_operators(policy, dataset)
        except OperatorError:
            continue  # a bad parameter: the file check reports it
        seen: set[str] = set()
        for column, operator in operators.items():
            for key_id in operator.required_keys():
                if key_id in seen:
                    continue
                seen.add(key_id)
                try:
                    pseudonym_key(key_id)
                except MissingSecret as exc:
                    at = ("datasets", i, "action", "columns", column)
                    issues.append(PolicyIssue(at, str(exc)))
        try:
            keyed_rollup_sinks(policy, dataset)  # people are counted with a keyed hash
        except MissingSecret as exc:
            issues.append(PolicyIssue(("datasets", i, "action", "rollups"), str(exc)))
    return issues


def write_targets(policy: Policy) -> dict[str, list[WriteTarget]]:
    """What each store's bindings change (rows deleted, or columns rewritten) and read
    to choose them (``read_columns``; an event table's join and clock columns)."""
    targets: dict[str, list[WriteTarget]] = {}
    for dataset in policy.datasets:
        action = dataset.action
        rewrites = tuple(action.columns) if isinstance(action, AnonymizeAction) else ()
        reads = read_columns(policy, dataset)
        target = WriteTarget(
            dataset.table, dataset.db_schema, deletes=not rewrites, columns=rewrites, reads=reads
        )
        found = targets.setdefault(dataset.store, [])
        found.append(target)
        clock = dataset.clock
        if clock.event_table is not None and clock.join is not None:
            event = (clock.join.event, clock.column)
            found.append(WriteTarget(clock.event_table, dataset.db_schema, False, (), event))
    return targets


def _earlier_default(loaded: LoadedPolicy, location: StateLocation) -> str | None:
    """Earlier versions kept the state database of a policy without a SQLite store in
    the working directory: found there while the default location has none, a run
    would silently start a new audit log and lock. Say where to move it."""
    path = location.sqlite_path
    earlier = Path(EARLIER_STATE).absolute()
    if location.source != "default" or sqlite_store_dir(loaded.policy) is not None:
        return None
    if path is None or path.exists() or not earlier.is_file():
        return None
    return (
        f"no state database at {location.shown} yet, but {earlier} is one, where earlier "
        f"versions kept it: move it to {path}, or name it with state: in the policy or "
        "--state"
    )


def prefect_problem(api_url: str) -> str | None:
    """Why the Prefect server a schedule needs cannot be reached (None when it answers
    its health check), in one line, its URL masked."""
    from prefect.client.orchestration import get_client

    try:
        with get_client(sync_client=True) as client:
            failure = client.api_healthcheck()
    except Exception as exc:  # a malformed URL, a refused connection: not reachable
        failure = exc
    if failure is None:
        return None
    reason = (str(failure).strip().splitlines() or [type(failure).__name__])[0]
    return (
        f"Prefect's API at {mask_url(api_url)} is not reachable ({reason}): start the "
        "server (`prefect server start`) or set PREFECT_API_URL to a running one"
    )
