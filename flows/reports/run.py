"""A run's outcome for people (Rich table, Markdown artifact) and machines (JSON)."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from flows.gate import GateVerdict
from flows.reports.plan import no_event_line, skipped_line, unreadable_line
from flows.reports.table import Cell, CellValue, Column, ReportTable, markdown_lines, to_rich
from flows.run.types import ACTION_COUNTERS, DatasetOutcome, RunReport

_COLUMNS = (
    Column("Dataset"),
    Column("Purpose"),
    Column("Action"),
    Column("Cut-off"),
    Column("Expired", numeric=True),
    Column("Done"),
    Column("Held", numeric=True),
    Column("Status"),
)


def run_table(report: RunReport) -> ReportTable:
    """One row per binding: what expired, what was done, what was held, how it ended."""
    kind = "Dry run" if report.dry_run else "Run"
    rows = [_cells(report, outcome) for outcome in report.outcomes]
    return ReportTable.of(f"{kind} of {report.policy} — {report.run_id}", _COLUMNS, rows)


def _cells(report: RunReport, outcome: DatasetOutcome) -> tuple[CellValue, ...]:
    done = "—" if report.dry_run else f"{outcome.processed:,} {ACTION_COUNTERS[outcome.action]}"
    return (
        outcome.dataset,
        outcome.purpose,
        outcome.action.replace("_", " "),
        outcome.cutoff.strftime("%Y-%m-%d"),
        f"{outcome.expired:,}",
        done,
        f"{outcome.held:,}",
        Cell(outcome.error, "red") if outcome.error else outcome.status,
    )


def report_markdown(report: RunReport) -> str:
    kind = "Dry run" if report.dry_run else "Run"
    lines = [
        f"# {kind} {report.run_id} of policy `{report.policy}`",
        "",
        f"Evaluated at {report.evaluated_at.isoformat()}; policy sha256 `{report.policy_sha256}`.",
        "",
        f"State database: `{report.state}`.",
        "",
        *markdown_lines(run_table(report)),
    ]
    if report.audit_head is not None:
        lines.append(f"\n{audit_head_line(report.audit_head, '`')}")
    lines += [f"\n{line}" for line in publish_lines(report)]
    lines += [f"\n{line}" for line in gate_lines(report)]
    lines += [f"\n- {line}" for line in unreadable_lines(report)]
    lines += [f"\n- {line}" for line in reconcile_lines(report)]
    for outcome in report.outcomes:
        for hold, rows in outcome.held_by.items():
            if rows:
                reason = outcome.hold_reasons.get(hold, "")
                lines.append(f"\n- {outcome.dataset}: {rows:,} rows held by `{hold}`: {reason}")
    return "\n".join(lines) + "\n"


def report_json(report: RunReport) -> dict[str, Any]:
    return {
        "run_id": report.run_id,
        "policy": report.policy,
        "policy_sha256": report.policy_sha256,
        "dry_run": report.dry_run,
        "evaluated_at": report.evaluated_at.isoformat(),
        "reconciled_runs": report.reconciled_runs,
        "unreconciled_runs": report.unreconciled,
        "reconcile_warnings": report.reconcile_warnings,
        "failed": report.failed,
        "coverage_gate": None if report.gate is None else _gate_json(report.gate),
        "audit_head": report.audit_head,
        "state": report.state,
        "published": report.publication,
        "publish_error": report.publish_error,
        "datasets": [
            {**o.summary(), "expired": o.expired, "processed": o.processed} for o in report.outcomes
        ],
    }


def _gate_json(gate: GateVerdict) -> dict[str, Any]:
    return {"status": gate.status, "mode": gate.mode, "gaps": list(gate.gaps)}


def render_run(console: Console, report: RunReport) -> None:
    console.print(to_rich(run_table(report)))
    for line in gate_lines(report):
        console.print(line, markup=False, style="red" if report.blocked else "yellow")
    for line in unreadable_lines(report):
        console.print(line, markup=False, style="yellow")
    if not report.dry_run and not report.blocked:
        console.print(to_rich(purpose_table(report)))
    for run_id in report.reconciled_runs:
        console.print(f"[yellow]reconciled[/] interrupted run {run_id} from the stores' journals")
    for line in reconcile_lines(report):
        console.print(line, markup=False, style="yellow")
    if report.audit_head is not None:
        console.print(audit_head_line(report.audit_head), markup=False, soft_wrap=True)
    for line in publish_lines(report):
        style = "red" if report.publish_error else None
        console.print(line, markup=False, soft_wrap=True, style=style)


def publish_lines(report: RunReport) -> list[str]:
    """Where the released rollups were published after the run, or why they were not."""
    if report.publish_error is not None:
        return [f"Publishing FAILED ({report.publish_error}); the run's retention stands"]
    done = report.publication
    if done is None:
        return []
    tables = done["tables"]
    what = f"{len(tables)} table(s), {sum(tables.values()):,} row(s)"
    if not done["changed"]:
        return [f"Published statistics: {done['destination']} unchanged ({what})"]
    return [f"Published statistics: {what} to {done['destination']}"]


def audit_head_line(head: str, quote: str = "") -> str:
    """The audit log's head after a run, and what to do with it."""
    return (
        f"Audit log head: {quote}{head}{quote} (record it outside the state database; "
        f"{quote}tenure audit verify --head HASH{quote} shows that no entry up to it was removed)"
    )


def reconcile_lines(report: RunReport) -> list[str]:
    """One line per run that died and could not be reconciled yet (its work stays
    unaudited until a run reads every journal it needs), then what the reconciled runs'
    records lack."""
    waiting = [
        f"interrupted run {run_id} not reconciled yet: {why}; its committed work stays "
        "unaudited until a run can read that journal"
        for run_id, why in report.unreconciled.items()
    ]
    return waiting + list(report.reconcile_warnings)


def unreadable_lines(report: RunReport) -> list[str]:
    """One line per binding with rows that never expire for want of an event, one per
    binding whose clock could not be read in some rows, and one per binding whose store
    left records alone (duplicate keys, symbolic links)."""
    unreadable = [
        no_event_line(o.dataset, o.no_event, o.table, o.clock)
        for o in report.outcomes
        if o.no_event and o.clock is not None
    ]
    unreadable += [
        unreadable_line(o.dataset, o.unreadable) for o in report.outcomes if o.unreadable
    ]
    return unreadable + [skipped_line(o.dataset, o.skipped) for o in report.outcomes if o.skipped]


def gate_lines(report: RunReport) -> list[str]:
    """The coverage gate's verdict when it found gaps: what it did, then one line per gap."""
    gate = report.gate
    if gate is None or not gate.gaps:
        return []
    if report.blocked:
        head = "Coverage gate failed: no row was deleted, anonymized or aggregated"
    else:
        head = "Coverage gate found gaps (on_coverage_gap: warn, or a dry run)"
    return [f"{head} ({len(gate.gaps)} gap(s)):", *(f"  {gap}" for gap in gate.gaps)]


def purpose_table(report: RunReport) -> ReportTable:
    """What each purpose's expiry did, the view a privacy officer reports on."""
    counters = list(ACTION_COUNTERS.values())
    totals: dict[str, dict[str, int]] = {}
    for outcome in report.outcomes:
        row = totals.setdefault(outcome.purpose, dict.fromkeys(counters, 0))
        row[ACTION_COUNTERS[outcome.action]] += outcome.processed
    columns = [Column("Purpose"), *(Column(c.capitalize(), numeric=True) for c in counters)]
    rows = [(purpose, *(f"{row[c]:,}" for c in counters)) for purpose, row in totals.items()]
    return ReportTable.of("By purpose", columns, rows)


class RichRunProgress:
    """One progress bar per dataset, drawn while the run works through its chunks."""

    def __init__(self, console: Console) -> None:
        self._progress = Progress(
            TextColumn("{task.description:<28}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        )
        self._tasks: dict[str, Any] = {}

    def __enter__(self) -> RichRunProgress:
        self._progress.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._progress.stop()

    def start(self, dataset: str, total: int) -> None:
        self._tasks[dataset] = self._progress.add_task(dataset, total=max(total, 0) or None)
        if total == 0:
            self._progress.update(self._tasks[dataset], total=1, completed=1)

    def advance(self, dataset: str, rows: int) -> None:
        self._progress.advance(self._tasks[dataset], rows)
