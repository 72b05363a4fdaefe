"""The ``tenure`` command line.

Every failure the user can cause (a bad policy, an unreachable store) ends in one line
per problem on stderr and exit code 2, with no traceback unless ``--debug``.
"""

from __future__ import annotations

import json
import os
import re
import sys
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, nullcontext
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from sqlalchemy import Engine

from anonymizers.secrets import MissingSecret
from connectors.errors import StoreError
from connectors.protocol import Connector
from connectors.workers import WorkersLost
from flows.cluster import ClusterError, ClusterOptions, reach
from flows.cluster_cli import DaskOption, WorkersOption
from flows.preflight import preflight
from flows.reports.plan import plan_json, render_plan
from flows.reports.summaries import demo_lines, validated_line, verify_lines
from flows.rights.cli import request_app, requests_command
from flows.state.location import STATE_VARIABLE, StateLocation, state_location
from flows.state.tables import StateError
from flows.stores import opened_stores, working_directory_warnings
from retention_rules.clock import PolicyClock
from retention_rules.disclosure import budget_warnings
from retention_rules.issues import LocatedIssue, PolicyError, PolicyIssue
from retention_rules.loader import LoadedPolicy, load_policy, salvage_policy
from retention_rules.model import Policy
from retention_rules.planner import bound_tables, evaluate, plan_rules, table_references
from retention_rules.references import event_clock_warnings, reference_warnings
from retention_rules.schema_check import (
    cascade_warnings,
    check_live_schema,
    subject_problems,
    subject_warnings,
)
from retention_rules.subjects import unreached

EXIT_FAILED = 1
EXIT_INVALID = 2
EXIT_LOCKED = 3
DEFAULT_DEMO_PATH = Path("tenure-demo/crm.sqlite")

app = typer.Typer(
    help="Tenure: make a privacy policy executable.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
demo_app = typer.Typer(help="The embedded demo store.", no_args_is_help=True)
app.add_typer(demo_app, name="demo")
audit_app = typer.Typer(help="The audit log of what was destroyed, and when.", no_args_is_help=True)
app.add_typer(audit_app, name="audit")
register_app = typer.Typer(help="The anonymization register.", no_args_is_help=True)
app.add_typer(register_app, name="register")
app.add_typer(request_app, name="request")
app.command("requests")(requests_command)

stdout = Console()
if not stdout.is_terminal:  # logs and pipes are not width-limited; keep tables on one line
    stdout = Console(width=160)
stderr = Console(stderr=True, highlight=False, soft_wrap=True)
_state = {"debug": False}

PolicyArg = Annotated[Path, typer.Argument(help="Retention policy YAML file.", show_default=False)]
NowOption = Annotated[
    datetime | None,
    typer.Option(help="Evaluate as if it were this instant (ISO 8601; naive = policy time zone)."),
]
StateOption = Annotated[
    str | None,
    typer.Option(
        envvar="TENURE_STATE_URL",
        help="State database (ledger, lock, audit log, scan cache, register): a SQLAlchemy "
        "URL or a SQLite file's path. Default: the policy's state:, else beside its SQLite "
        "store, else $XDG_STATE_HOME/tenure/ (~/.local/state/tenure/).",
        show_default=False,
    ),
]


@app.callback()
def main(
    debug: Annotated[bool, typer.Option(help="Show tracebacks on errors.")] = False,
) -> None:
    _state["debug"] = debug


@contextmanager
def _reported() -> Iterator[None]:
    """Turn user-caused failures into one line each and exit code 2."""
    try:
        yield
    except PolicyError as exc:
        if _state["debug"]:
            raise
        for issue in exc.issues:
            stderr.print(str(issue), markup=False)
        stderr.print(f"{len(exc.issues)} problem(s) found.", markup=False)
        raise typer.Exit(EXIT_INVALID) from None
    except StoreError as exc:
        if _state["debug"]:
            raise
        stderr.print(f"error: {exc}", markup=False)
        raise typer.Exit(EXIT_INVALID) from None
    except StateError as exc:
        if _state["debug"]:
            raise
        stderr.print(f"error: --state: {exc}", markup=False)
        raise typer.Exit(EXIT_INVALID) from None
    except MissingSecret as exc:  # no audit key: a real run must not proceed unaudited
        if _state["debug"]:
            raise
        stderr.print(f"error: {exc}", markup=False)
        raise typer.Exit(EXIT_INVALID) from None
    except (ClusterError, WorkersLost) as exc:  # a Dask cluster that does not answer
        if _state["debug"]:
            raise
        stderr.print(f"error: {exc}", markup=False)
        raise typer.Exit(EXIT_INVALID) from None


@contextmanager
def _checked_stores(
    loaded: LoadedPolicy,
    location: StateLocation | None = None,
    also: Callable[[Policy, Mapping[str, Connector]], list[PolicyIssue]] | None = None,
) -> Iterator[Mapping[str, Connector]]:
    """The policy's stores, open and checked against its schema: each store is connected
    and reflected once, for the check and whatever the command does next. With the
    state database's ``location``, the real run's preflight too (``flows.preflight``);
    with ``also``, its problems in the same report."""
    with opened_stores(loaded.policy) as (connectors, issues):
        issues += check_live_schema(loaded.policy, connectors)
        if also is not None:
            issues += also(loaded.policy, connectors)
        if location is not None:
            issues += preflight(loaded, connectors, location, issues)
        if issues:
            raise PolicyError(loaded.locate(issues))
        yield connectors


def _partial_problems(path: Path) -> list[LocatedIssue]:
    """The live schema's problems, and the preflight's, of what parsed of a policy file
    that has problems of its own: `validate` reports both kinds in one pass."""
    partial = salvage_policy(path)
    if partial is None:
        return []
    loaded = partial.loaded
    try:
        with opened_stores(loaded.policy) as (connectors, issues):
            issues += check_live_schema(loaded.policy, connectors)
            issues += preflight(loaded, connectors, None, issues)
    except Exception as exc:  # a check that needs the whole policy: say it was not made
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return [LocatedIssue(str(path), None, "", f"live schema not checked: {reason}")]
    return partial.locate(issues)


def _print_state(location: StateLocation, console: Console | None = None) -> None:
    """Where the state database is: one line in every report (the URL masked)."""
    (console or stdout).print(f"state: {location}", markup=False, soft_wrap=True)


def _policy_clock(loaded: LoadedPolicy, now: datetime | None) -> PolicyClock:
    """The policy's clock at ``--now``; an instant at which a cut-off cannot be computed
    is one line per problem and exit code 2."""
    from retention_rules.clock import clock_problems

    try:
        clock = PolicyClock.at(loaded.policy.timezone, now)
        problems = clock_problems(loaded.policy, clock)
    except (OverflowError, ValueError) as exc:
        problems = [str(exc)]
    if problems:
        shown = "now" if now is None else f"--now {now.isoformat()}"
        stderr.print(f"error: {shown}: {'; '.join(problems)}", markup=False)
        raise typer.Exit(EXIT_INVALID)
    return clock


@app.command()
def validate(
    policy: PolicyArg,
    offline: Annotated[
        bool,
        typer.Option(help="Check the file only: no store, key or state database is looked at."),
    ] = False,
    state: StateOption = None,
) -> None:
    """Check a policy file and, unless --offline, the live schema of its stores and what
    a real run needs before its first write (keys, writable stores and bookkeeping
    folders, the state database).

    Reports every problem at once as file:line: field: message. Never writes to a store.
    """
    with _reported():
        try:
            loaded = load_policy(policy)
        except PolicyError as exc:
            if offline:
                raise
            raise PolicyError(exc.issues + _partial_problems(policy)) from None
        location = None if offline else state_location(loaded, state)
        # Warnings do not fail validation (see `event_clock_warnings`).
        warnings = (
            event_clock_warnings(loaded.policy)
            + reference_warnings(loaded.policy)
            + working_directory_warnings(loaded.policy)
            + budget_warnings(loaded.policy)
        )
        if offline:  # the stores' foreign keys may reach what the file does not
            warnings += unreached(loaded.policy, keys_read=False)
        for warning in loaded.locate(warnings):
            stderr.print(f"warning: {warning}", markup=False)
        if location is not None:
            with _checked_stores(loaded, location, also=subject_problems) as connectors:
                # Warnings do not fail validation (see `cascade_warnings`, `subject_warnings`).
                found = cascade_warnings(loaded.policy, connectors)
                found += subject_warnings(loaded.policy, connectors)
                for warning in loaded.locate(found):
                    stderr.print(f"warning: {warning}", markup=False)
        if loaded.policy.subjects is None:
            stderr.print(
                f"note: {policy}: no subjects: section: requests from people (access, "
                "correction, erasure, withdrawal) cannot be answered until it says which "
                "identifiers name a person and where each dataset holds them",
                markup=False,
            )
        stdout.print(validated_line(policy, loaded.policy, offline), markup=False)
        if location is not None:
            _print_state(location)


@app.command()
def plan(
    policy: PolicyArg,
    as_json: Annotated[bool, typer.Option("--json", help="Print the plan as JSON.")] = False,
    now: NowOption = None,
    state: StateOption = None,
) -> None:
    """Dry run: for every dataset, the cut-off and how many rows are expired, held and kept.

    The counts are computed in the database; nothing is changed. What the real run needs
    before its first write is checked too, as by `validate`.
    """
    with _reported():
        loaded = load_policy(policy)
        clock = _policy_clock(loaded, now)
        location = state_location(loaded, state)
        with _checked_stores(loaded, location) as connectors:
            references = table_references(loaded.policy, connectors)
            rows = evaluate(plan_rules(loaded.policy, clock, references), connectors)
        if as_json:
            json.dump(
                {**plan_json(loaded, clock, rows), "state": location.shown}, sys.stdout, indent=2
            )
            sys.stdout.write("\n")
        else:
            render_plan(stdout, loaded, clock, rows)
            _print_state(location)


@app.command()
def run(
    policy: PolicyArg,
    dry_run: Annotated[bool, typer.Option(help="Count what would happen; change nothing.")] = False,
    now: NowOption = None,
    chunk_size: Annotated[int, typer.Option(min=1, help="Rows per transaction.")] = 10_000,
    state: StateOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    dask: DaskOption = None,
    workers: WorkersOption = None,
) -> None:
    """Run the nightly retention flow now, with Prefect's temporary local API.

    Exit 0 when every binding succeeded, 1 when one failed, 2 on an invalid policy or a
    Dask scheduler that cannot be reached, 3 when another run of the policy is in
    progress.
    """
    if not _state["debug"]:
        os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    # Before Prefect reads its settings: its 20 s for the temporary API is too short on a
    # busy machine.
    os.environ.setdefault(STARTUP_SETTING, STARTUP_SECONDS)
    from flows.nightly import nightly_retention, show_progress
    from flows.reports.run import RichRunProgress, render_run, report_json
    from flows.state.ledger import RunLocked

    with _reported():
        # Contradicting cluster options, a policy that does not load, an instant no
        # cut-off can be computed at, a failed preflight or a state database that cannot
        # be opened stops here, before Prefect starts and before anything is written.
        cluster = ClusterOptions(dask, workers)
        loaded = load_policy(policy)
        _policy_clock(loaded, now)
        if not dry_run:
            from flows.audit import current_key

            current_key()  # no audit key: one line, exit 2, nothing created or touched
        reach(cluster)  # a scheduler that does not answer: one line, nothing created
        location = state_location(loaded, state)
        _run_preflight(loaded, location)
        if not dry_run:  # a dry run only reads the state database, if there is one
            location.open(create=True).dispose()
        given = location.url if location.source in ("--state", STATE_VARIABLE) else None
        try:
            with RichRunProgress(stderr) as progress, _state_reference(given) as state_from:
                show_progress(None if as_json else progress)
                report = _on_temporary_api(
                    lambda: nightly_retention(
                        str(policy), dry_run, now, chunk_size, state_from, dask, workers
                    )
                )
        except RunLocked as exc:
            stderr.print(f"error: {exc}", markup=False)
            raise typer.Exit(EXIT_LOCKED) from None
        finally:
            show_progress(None)
    if as_json:
        json.dump(report_json(report), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        render_run(stdout, report)
        _print_state(location)
    if report.failed:
        raise typer.Exit(EXIT_FAILED)


def _run_preflight(loaded: LoadedPolicy, location: StateLocation) -> None:
    """The run's preflight (``flows.preflight``), with the stores opened read-only: one
    line per problem and exit code 2, nothing written. Live schema problems are not
    among them: they stop their own bindings, reported by the run."""
    with opened_stores(loaded.policy) as (connectors, issues):
        issues += check_live_schema(loaded.policy, connectors)
        refused = preflight(loaded, connectors, location, issues)
    if refused:
        raise PolicyError(loaded.locate(refused))


T = TypeVar("T")

#: How long a run waits for Prefect's temporary API to start (when no PREFECT_API_URL
#: names a server), unless the environment says otherwise.
STARTUP_SETTING = "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"
STARTUP_SECONDS = "90"
_STARTUP_TIMED_OUT = "Timed out while attempting to connect to ephemeral Prefect API server"


def _on_temporary_api(flow_call: Callable[[], T]) -> T:
    """Call a flow; if Prefect's temporary API did not start in time, try once more, then
    stop with one line saying what to set (the flow never began: nothing was touched)."""
    for attempt in (1, 2):
        try:
            return flow_call()
        except RuntimeError as exc:
            if _STARTUP_TIMED_OUT not in str(exc):
                raise
            from prefect.server.api.server import SubprocessASGIServer

            SubprocessASGIServer().stop()  # Prefect leaves the server it gave up on running
            if attempt == 2:
                stderr.print(
                    f"error: Prefect's temporary API did not start within "
                    f"{os.environ.get(STARTUP_SETTING, '20')} s, twice: set {STARTUP_SETTING} "
                    "higher, or PREFECT_API_URL to a running Prefect server",
                    markup=False,
                )
                raise typer.Exit(EXIT_FAILED) from None
    raise AssertionError("unreachable")


@app.command()
def serve(
    policy: PolicyArg,
    cron: Annotated[str, typer.Option(help="When to run, as a cron expression.")] = "0 2 * * *",
    timezone: Annotated[
        str | None, typer.Option(help="Time zone of the cron schedule (default: the policy's).")
    ] = None,
    name: Annotated[str, typer.Option(help="Deployment name.")] = "nightly",
    dask: DaskOption = None,
    workers: WorkersOption = None,
) -> None:
    """Serve the nightly flow as a Prefect deployment against the configured server
    (PREFECT_API_URL, e.g. a `prefect server start`); runs never overlap.

    Serves only when the server answers and the real run's preflight passes (the audit
    key, every keyed operator's key, writable stores, the state database): a schedule
    must not fail every night for a reason known now."""
    from prefect.settings import PREFECT_API_URL

    from flows.audit import current_key
    from flows.nightly import serve as serve_flow
    from flows.preflight import prefect_problem

    with _reported():
        cluster = ClusterOptions(dask, workers)
        loaded = load_policy(policy)
        if not PREFECT_API_URL.value():
            stderr.print(
                "error: tenure serve needs a Prefect server, whose scheduler a temporary API "
                "lacks: run `prefect server start` and set PREFECT_API_URL "
                "(e.g. http://127.0.0.1:4200/api)",
                markup=False,
            )
            raise typer.Exit(EXIT_INVALID)
        unreachable = prefect_problem(str(PREFECT_API_URL.value()))
        if unreachable is not None:
            stderr.print(f"error: {unreachable}", markup=False)
            raise typer.Exit(EXIT_INVALID)
        current_key()
        reach(cluster)
        location = state_location(loaded, os.environ.get(STATE_VARIABLE))
        _run_preflight(loaded, location)
        _print_state(location)
        serve_flow(str(policy.resolve()), cron, timezone or loaded.policy.timezone, name, cluster)


@app.command()
def scan(
    policy: PolicyArg,
    check: Annotated[
        bool, typer.Option(help="Exit 1 when a personal column is unbound or contradicts.")
    ] = False,
    suggest: Annotated[
        bool, typer.Option(help="Print a policy stub binding the unbound columns.")
    ] = False,
    full: Annotated[bool, typer.Option(help="Re-sample tables that have not changed.")] = False,
    out: Annotated[
        Path | None,
        typer.Option(
            help="Directory for inventory.json and inventory.md (default: beside "
            "the policy's SQLite store, else beside the policy file)."
        ),
    ] = None,
    state: StateOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the inventory as JSON.")] = False,
    dask: DaskOption = None,
    workers: WorkersOption = None,
) -> None:
    """Find the personal information in every table of the policy's stores.

    Samples each column inside the store, classifies it (names, types, Presidio), writes
    the inventory and checks the policy covers every personal column. Never writes to a
    store and never prints a sampled value. Exit 0, 1 with --check when there is a gap,
    2 on an invalid policy or an unreachable store.
    """
    from flows.reports.inventory import inventory_json, scan_summary_lines, write_inventory
    from flows.scan_runner import default_output_dir, run_scan
    from retention_rules.suggest import suggest_bindings

    with _reported(), _table_progress(stderr) as on_table:
        cluster = ClusterOptions(dask, workers)  # reached before the policy's stores open
        inventory, loaded = run_scan(
            policy, full=full, state_url=state, on_table=on_table, cluster=cluster
        )
    json_path, markdown_path = write_inventory(inventory, out or default_output_dir(loaded))
    location = state_location(loaded, state)  # as the scan found it
    coverage = inventory.coverage
    if as_json:
        json.dump(inventory_json(inventory), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        for line in scan_summary_lines(inventory, json_path, markdown_path):
            stdout.print(line, markup=False)
    _print_state(location, stderr if as_json else stdout)
    if suggest:
        from anonymizers.detection.entities import DIRECT_IDENTIFIERS

        with _reported(), opened_stores(loaded.policy) as (connectors, _):
            tables = bound_tables(loaded.policy, connectors)  # their foreign keys
        stub = suggest_bindings(
            loaded.policy, coverage.gaps, inventory.primary_keys, DIRECT_IDENTIFIERS, tables
        )
        sys.stdout.write(stub)
    if check and not coverage.passed:
        raise typer.Exit(EXIT_FAILED)


@contextmanager
def _table_progress(console: Console) -> Iterator[Callable[[Any], None]]:
    """A spinner naming each table as it is scanned (on stderr, so stdout stays clean)."""
    from rich.progress import Progress, SpinnerColumn, TextColumn

    from retention_rules.coverage import qualified_table

    columns = (SpinnerColumn(), TextColumn("{task.description}"))
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task("scanning", total=None)

        def on_table(scan: Any) -> None:
            how = "unchanged" if scan.reused else f"{scan.seconds:.1f} s"
            where = f"{scan.store}.{qualified_table(scan.schema, scan.table)}"
            bar.update(task, description=f"scanned {where} ({how})")

        yield on_table


def _state_database(policy: Path, state: str | None) -> Engine:
    """The state database named by --state, or the policy's one (`state_location`)."""
    with _reported():
        loaded = load_policy(policy)
    return _state_of(loaded, state)


def _state_of(loaded: LoadedPolicy, state: str | None) -> Engine:
    """The state database, for a command that only reads it (`_opened_state`)."""
    return _opened_state(loaded, state)[1]


def _opened_state(
    loaded: LoadedPolicy, state: str | None, *, write: bool = False
) -> tuple[StateLocation, Engine]:
    """Where the state database is, and the database: never created (a missing one is
    one line, "no state database at …", and exit code 2), opened to write when
    ``write``; where it is goes to stderr, so that stdout stays the command's output."""
    with _reported():
        location = state_location(loaded, state)
        engine = location.open()
        if write:
            engine.dispose()
            engine = location.open(create=True)
    _print_state(location, stderr)
    return location, engine


@contextmanager
def _state_reference(state: str | None) -> Iterator[str]:
    """Hand a --state URL to the in-process flow by reference: the flow's parameter is
    the environment variable's name, so Prefect never stores the URL or its password."""
    from flows.state.location import STATE_VARIABLE

    if state is None:
        yield STATE_VARIABLE
        return
    before = os.environ.get(STATE_VARIABLE)
    os.environ[STATE_VARIABLE] = state
    try:
        yield STATE_VARIABLE
    finally:
        if before is None:
            os.environ.pop(STATE_VARIABLE, None)
        else:
            os.environ[STATE_VARIABLE] = before


@audit_app.command("verify")
def audit_verify(
    policy: PolicyArg,
    state: StateOption = None,
    head: Annotated[
        str | None,
        typer.Option(
            metavar="HASH",
            help="A head recorded outside the state database (a run report prints it): "
            "the log must still hold that entry.",
        ),
    ] = None,
    since_run: Annotated[
        str | None,
        typer.Option(
            metavar="RUN_ID",
            help="A run recorded outside the state database: the log must hold its entries.",
        ),
    ] = None,
) -> None:
    """Check the audit log's keyed chain (no entry edited, removed or reordered), and
    that it accounts for every run of the ledger and every chunk each store's journal
    says was committed; with --head or --since-run, that it still holds an anchor
    recorded elsewhere (removing the newest entries is seen only so). Exit 1 when it
    does not, 2 without the audit key."""
    from flows import audit
    from flows.state.tables import StateMissing

    if head is not None:
        head = head.strip().lower()
        if not re.fullmatch(r"[0-9a-f]{64}", head):
            stderr.print(
                "error: --head: expected the 64 hexadecimal characters of an audit entry's "
                "hash, as a run report or `tenure audit verify` prints the head",
                markup=False,
            )
            raise typer.Exit(EXIT_INVALID)
    with _reported():
        loaded = load_policy(policy)
        location = state_location(loaded, state)
        try:
            engine = location.open()
        except StateMissing as exc:  # the log is gone: that is what verify is for
            stderr.print(f"audit log BROKEN: {exc}", markup=False)
            raise typer.Exit(EXIT_FAILED) from None
        _print_state(location)
        try:
            with opened_stores(loaded.policy) as (connectors, issues):
                datasets = {d.name for d in loaded.policy.datasets}
                result = audit.verify(engine, connectors, datasets, head=head, since_run=since_run)
        finally:
            engine.dispose()
    for issue in loaded.locate(issues):
        stderr.print(f"not checked: {issue}", markup=False)
    verdict = verify_lines(result, head_given=head is not None)
    for line in verdict.problems:
        stderr.print(line, markup=False)
    if not result.ok:
        raise typer.Exit(EXIT_FAILED)
    for line in verdict.intact:
        stdout.print(line, markup=False)


@audit_app.command("show")
def audit_show(
    policy: PolicyArg,
    state: StateOption = None,
    run_id: Annotated[str | None, typer.Option("--run", help="Only this run.")] = None,
) -> None:
    """Print the audit entries as JSON lines."""
    from flows import audit

    engine = _state_database(policy, state)
    for entry in audit.entries(engine, run_id):
        sys.stdout.write(json.dumps(entry, sort_keys=True) + "\n")
    engine.dispose()


@register_app.command("export")
def register_export(
    policy: PolicyArg,
    state: StateOption = None,
    lines: Annotated[bool, typer.Option("--jsonl", help="One entry per line.")] = False,
) -> None:
    """Print the anonymization register (JSON, each entry checked against its schema)."""
    from flows import register

    engine = _state_database(policy, state)
    entries = register.entries(engine)
    engine.dispose()
    if lines:
        for entry in entries:
            sys.stdout.write(json.dumps(entry, sort_keys=True, ensure_ascii=False) + "\n")
    else:
        sys.stdout.write(json.dumps(entries, indent=2, sort_keys=True, ensure_ascii=False) + "\n")


@app.command()
def aggregates(
    policy: PolicyArg,
    dataset: Annotated[str | None, typer.Argument(help="Only this dataset.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON lines.")] = False,
    state: StateOption = None,
) -> None:
    """Print the released rollups: closed periods only, small cells withheld."""
    from flows.releases import published_release
    from flows.reports.aggregates import release_records, release_table
    from flows.reports.table import to_rich
    from retention_rules.planner import rollup_sinks

    with _reported():
        loaded = load_policy(policy)
    engine = _state_of(loaded, state)
    for bound in loaded.policy.datasets:
        if dataset not in (None, bound.name):
            continue
        for sink in rollup_sinks(bound):
            cells = published_release(engine, bound.name, sink.name)
            if as_json:
                for record in release_records(bound.name, sink.name, cells):
                    sys.stdout.write(json.dumps(record, default=str, sort_keys=True) + "\n")
            else:
                stdout.print(to_rich(release_table(bound.name, sink.name, cells)))
    engine.dispose()


@app.command()
def publish(
    policy: PolicyArg,
    state: StateOption = None,
    dry_run: Annotated[
        bool,
        typer.Option(
            help="Check the destination can be written and say what would be; write nothing."
        ),
    ] = False,
) -> None:
    """Publish the released rollups to the policy's publish: destination (a SQL store
    or a folder of Parquet files), one table per rollup and a data dictionary, replacing
    the previous release whole; a release the destination already holds changes nothing.

    Exit 2 when the policy has no publish: section or the destination cannot be written
    (nothing is left half written)."""
    from flows.publish import PublishError
    from flows.publish import publish as publish_release
    from flows.state.ledger import Ledger, RunLocked

    with _reported():
        loaded = load_policy(policy)
    target = loaded.policy.publish
    if target is None:
        stderr.print(
            f"error: {policy}: no publish: section: say where the released rollups go "
            "(publish: {sql: URL} or publish: {parquet: folder})",
            markup=False,
        )
        raise typer.Exit(EXIT_INVALID)
    # A real publish appends its audit entry, and holds the policy's run lock (a run
    # publishes under it too); a dry run only reads.
    engine = _opened_state(loaded, state, write=not dry_run)[1]
    held = (
        nullcontext()
        if dry_run
        else Ledger(engine).locked(loaded.policy.name, f"publish-{uuid.uuid4().hex[:20]}")
    )
    try:
        with _reported(), held:
            done = publish_release(engine, loaded.path, loaded.policy, dry_run=dry_run)
    except RunLocked as exc:
        stderr.print(f"error: {exc}: publish once it is done", markup=False)
        raise typer.Exit(EXIT_LOCKED) from None
    except PublishError as exc:
        for issue in loaded.locate([PolicyIssue(exc.loc, exc.message)]):
            stderr.print(f"error: {issue}", markup=False)
        raise typer.Exit(EXIT_INVALID) from None
    finally:
        engine.dispose()
    for line in done.lines():
        stdout.print(line, markup=False, soft_wrap=True)


@app.command()
def risk(
    policy: PolicyArg,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON lines.")] = False,
    state: StateOption = None,
) -> None:
    """Re-identification risk of every anonymized table and released aggregate, by the
    three criteria (individualization: k, unique share, prosecutor risk; correlation:
    journalist and marketer risk, population uniqueness; inference: l, t-closeness),
    surviving direct identifiers, and the verdict (anonymized, de-identified,
    pseudonymized, identifiable) with the criterion that failed. Exit 1 when a
    requirement is missed."""
    from flows.reports.risk import risk_lines, risk_table
    from flows.reports.table import to_rich

    with _reported():
        loaded = load_policy(policy)
        engine = _state_of(loaded, state)
        with _checked_stores(loaded) as connectors:
            lines = risk_lines(loaded.policy, connectors, engine)
    engine.dispose()
    if as_json:
        for line in lines:
            sys.stdout.write(json.dumps(line.as_dict(), sort_keys=True) + "\n")
    else:
        stdout.print(to_rich(risk_table(lines)))
    if any(line.unmet for line in lines):
        raise typer.Exit(EXIT_FAILED)


@app.command()
def report(
    policy: PolicyArg,
    state: StateOption = None,
    lang: Annotated[
        str | None,
        typer.Option(
            "--lang",
            help="fr or en (default: the policy's language:, else that of its requests:).",
            show_default=False,
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(help="The HTML file (default: tenure-report.html beside the state database)."),
    ] = None,
    now: NowOption = None,
) -> None:
    """Write one self-contained HTML report for the privacy officer and analysts: what
    was deleted, anonymized, aggregated and held per purpose and month; what expires in
    each of the next twelve months; coverage, re-identification risk and legal holds;
    the released statistics; the audit chain's head and whether it verifies. Prints the
    file's path. Reads the state database (never creates it) and counts in the stores
    without changing them."""
    from flows.reports.html import make_report, report_language

    if lang not in (None, "fr", "en"):
        stderr.print(f"error: --lang: expected fr or en, not {lang!r}", markup=False)
        raise typer.Exit(EXIT_INVALID)
    with _reported():
        loaded = load_policy(policy)
        _policy_clock(loaded, now)
        location, engine = _opened_state(loaded, state)
        try:
            path, made = make_report(
                loaded, engine, location, language=report_language(loaded, lang), out=out, now=now
            )
        finally:
            engine.dispose()
    for line in made.stores_unread:
        stderr.print(f"not read: {line}", markup=False)
    stdout.print(str(path), markup=False, soft_wrap=True)


@demo_app.command("build")
def demo_build(
    path: Annotated[Path, typer.Option(help="SQLite file to create.")] = DEFAULT_DEMO_PATH,
    url: Annotated[
        str | None, typer.Option(help="Build into this SQLAlchemy URL instead of --path.")
    ] = None,
    customers: Annotated[int, typer.Option(min=10, help="Number of customers.")] = 500,
    seed: Annotated[int, typer.Option(help="Random seed; same seed, same data.")] = 2025,
    as_of: Annotated[
        datetime | None,
        typer.Option(help="Date the data is generated up to (default: today, UTC)."),
    ] = None,
    replace: Annotated[bool, typer.Option(help="Replace an existing demo store.")] = False,
) -> None:
    """Build the demo CRM store with Faker (English and French Canadian customers), and
    beside --path its mailbox (mail/, a Maildir) and web server logs (weblogs/)."""
    from sqlalchemy import create_engine

    from connectors.urls import mask_url
    from flows.demo.files_and_mail import build_demo_files, check_demo_files_free
    from flows.demo.generate import DemoSpec, DemoStoreExists, build_demo_store, planted_people

    if url is None:
        path.parent.mkdir(parents=True, exist_ok=True)
        url = f"sqlite:///{path}"
    moment = as_of or datetime.combine(date.today(), time())
    spec = DemoSpec(customers=customers, seed=seed, as_of=moment.replace(tzinfo=UTC))
    engine = create_engine(url)
    try:
        if not replace:
            check_demo_files_free(path.parent)  # before the SQL store: refuse, write nothing
        counts = build_demo_store(engine, spec, replace=replace)
        files = build_demo_files(path.parent, spec, replace=replace)
    except DemoStoreExists as exc:
        stderr.print(f"error: {exc} (use --replace to rebuild it)", markup=False)
        raise typer.Exit(EXIT_INVALID) from None
    finally:
        engine.dispose()
    for line in [
        *demo_lines(mask_url(engine.url), counts, path.parent, files),
        *planted_people(spec).lines(),
    ]:
        stdout.print(line, markup=False)


if __name__ == "__main__":
    app()
