"""The Prefect flow a company schedules every night: one task per dataset binding.

The flow is thin: `flows.run.lifecycle` holds the logic. Tasks run one after another, in the
children-first order the planner chose, and retry when a store connection drops.
"""

# No ``from __future__ import annotations``: a deployment's runner loads this file as a
# script and Prefect builds the flow's parameter model from its annotations, which as
# strings could not be resolved there (``datetime`` "not fully defined": every run failed).

from datetime import datetime
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import State
from prefect.schedules import Cron

from connectors.errors import StoreUnavailable
from flows.cluster import ClusterOptions, cluster_workers
from flows.publish import publish_after_run
from flows.reports.html import report_after_run
from flows.reports.run import report_markdown, run_table
from flows.reports.table import to_records
from flows.run.lifecycle import each_binding, finish, process_dataset, run_context
from flows.run.types import DatasetOutcome, Progress, RunContext, RunOptions, RunReport, first_line
from flows.state.location import STATE_VARIABLE, state_url_from
from flows.stores import given_policy_path
from retention_rules.planner import RulePlan

DEPLOYMENT_NAME = "nightly"
_display: dict[str, Progress] = {}


def _transient(_task: Any, _run: Any, state: State[Any]) -> bool:
    """Retry only when the store could not be reached, never on a data error."""
    try:
        state.result()
    except StoreUnavailable:
        return True
    except Exception:
        return False
    return False


@task(
    name="retain-dataset",
    task_run_name="{plan.dataset.name}",
    retries=2,
    retry_delay_seconds=10,
    retry_condition_fn=_transient,
    cache_policy=NO_CACHE,
)
def retain_dataset(context: RunContext, plan: RulePlan) -> DatasetOutcome:
    return process_dataset(context, plan, _display.get("progress"))


@flow(name="nightly-retention", log_prints=False)
def nightly_retention(
    policy_path: str,
    dry_run: bool = False,
    now: datetime | None = None,
    chunk_size: int = 10_000,
    state_from: str = STATE_VARIABLE,
    dask: str | None = None,
    workers: int | None = None,
) -> RunReport:
    """Apply a retention policy: delete, anonymize, aggregate-then-delete what expired.

    The coverage gate runs first (inside ``run_context``) and cannot be switched off
    here; when it blocks, every task only counts. ``state_from`` names where the state
    database's URL is (an environment variable or a Prefect Secret block): Prefect
    stores and shows a flow's parameters, so the URL and its password are never one.
    ``dask`` (a scheduler's address) or ``workers`` (a local cluster of that many
    processes) put the text redaction on a Dask cluster and run the bindings of
    different stores side by side (``flows.cluster``); the cluster is reached before
    anything is opened.
    """
    options = RunOptions(dry_run, chunk_size, now, state_url_from(state_from), raise_transient=True)
    cluster = ClusterOptions(dask, workers)
    with (
        cluster_workers(cluster),
        run_context(given_policy_path(policy_path), options) as context,
    ):
        if context.gate is not None and context.gate.gaps:
            get_run_logger().warning(
                "coverage gate %s: %s", context.gate.status, "; ".join(context.gate.gaps)
            )
        outcomes = each_binding(
            context,
            lambda plan: _outcome(retain_dataset(context, plan, return_state=True), plan),
            concurrently=cluster.distributed,
        )
        report = finish(context, outcomes)
        # After the releases and the audit: a destination that cannot be written fails
        # the run's outcome but undoes nothing (``flows.publish``).
        publish_after_run(context, report)
        page = report_after_run(context, report)  # the HTML report, beside the state database
    create_table_artifact(
        to_records(run_table(report)), key="retention-summary", description=report.policy
    )
    create_markdown_artifact(report_markdown(report), key="retention-report")
    if page is not None:
        create_link_artifact(
            page.as_uri(),
            link_text=page.name,
            key="retention-html-report",
            description=f"{report.policy}: what was done, what expires next, what was released",
        )
    return report


def _outcome(state: State[DatasetOutcome], plan: RulePlan) -> DatasetOutcome:
    """A task that failed after its retries still yields an outcome: the error. Any
    exception fails its binding alone: the flow goes on with the next one."""
    try:
        return state.result()
    except StoreUnavailable as exc:
        return DatasetOutcome.for_plan(plan, error=str(exc))
    except Exception as exc:
        error = f"unexpected {type(exc).__name__}: {first_line(exc)}"
        return DatasetOutcome.for_plan(plan, error=error)


def show_progress(progress: Progress | None) -> None:
    """Let the CLI draw progress bars for the flow it runs in this process."""
    _display.pop("progress", None)
    if progress is not None:
        _display["progress"] = progress


def serve(
    policy_path: str,
    cron: str,
    timezone: str,
    name: str = DEPLOYMENT_NAME,
    cluster: ClusterOptions = ClusterOptions(),
) -> None:
    """Serve the nightly flow as a deployment with a cron schedule, and the `subject-request`
    flow beside it (triggered through the API); at most one run of each at a time. A
    ``cluster`` becomes both deployments' ``dask``/``workers`` parameters."""
    parameters: dict[str, Any] = {"policy_path": policy_path}
    if cluster.dask is not None:
        parameters["dask"] = cluster.dask
    if cluster.workers is not None:
        parameters["workers"] = cluster.workers
    from prefect import serve as serve_all
    from prefect.deployments.runner import RunnerDeployment

    from flows.rights.flow import DEPLOYMENT_NAME as REQUESTS
    from flows.rights.flow import subject_request

    nightly = nightly_retention.to_deployment(
        name=name,
        schedules=[Cron(cron, timezone=timezone)],
        parameters=parameters,
        concurrency_limit=1,
    )
    # Requests are triggered through the API with a request id, never on a schedule.
    requests = subject_request.to_deployment(
        name=REQUESTS, parameters=parameters, concurrency_limit=1
    )
    assert isinstance(nightly, RunnerDeployment) and isinstance(requests, RunnerDeployment)
    serve_all(nightly, requests, pause_on_shutdown=False, print_starting_message=True)
