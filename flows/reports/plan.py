"""The plan as people and machines read it: a Rich table, or JSON."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from rich.console import Console
from rich.text import Text

from flows.reports.table import Cell, CellValue, Column, ReportTable, to_rich
from retention_rules.clock import PolicyClock
from retention_rules.loader import LoadedPolicy
from retention_rules.model import Clock
from retention_rules.planner import PlanRow


def plan_json(loaded: LoadedPolicy, clock: PolicyClock, rows: list[PlanRow]) -> dict[str, Any]:
    policy = loaded.policy
    return {
        "policy": policy.name,
        "policy_file": str(loaded.path),
        "policy_sha256": loaded.sha256,
        "timezone": policy.timezone,
        "now": clock.local_now().isoformat(),
        "datasets": [_row_json(loaded, row) for row in rows],
    }


def _row_json(loaded: LoadedPolicy, row: PlanRow) -> dict[str, Any]:
    dataset = row.rule.dataset
    purpose = loaded.policy.purposes[dataset.purpose]
    return {
        "dataset": dataset.name,
        "store": dataset.store,
        "table": dataset.table,
        "purpose": dataset.purpose,
        "legal_basis": purpose.legal_basis,
        "clock": dataset.clock.model_dump(exclude_none=True),
        "retention": str(dataset.retention),
        "cutoff": row.rule.cutoff.isoformat(),
        "action": dataset.action.type,
        "consequence": row.consequence,
        "rows": row.counts.total,
        "expired": row.counts.expired,
        "held": row.counts.held,
        "kept": row.counts.kept,
        "clock_unreadable": row.counts.unreadable,
        "never_expires_no_event": row.counts.no_event,
        "skipped": dict(row.counts.skipped),
        "holds": [
            {"name": name, "reason": row.held_reasons[name], "rows": count}
            for name, count in row.counts.held_by.items()
        ],
        "lapsed_holds": [h.name for h in row.rule.lapsed_holds],
    }


def plan_table(loaded: LoadedPolicy, clock: PolicyClock, rows: list[PlanRow]) -> ReportTable:
    """One row per binding: its cut-off, its rows expired, held and kept, its action."""
    policy = loaded.policy
    # Rows that never expire for want of an event get a column of their own, apart
    # from the rows that are merely young.
    no_event = any(row.counts.no_event for row in rows)
    caption = "Dry run: nothing was changed. Expired excludes held rows."
    if no_event:
        caption += " Kept excludes rows that never expire (no event)."
    counted = ["Rows", "Expired", "Held", "Kept"] + (["Never (no event)"] if no_event else [])
    columns = [
        Column("Dataset", no_wrap=True),
        Column("Purpose"),
        Column("Clock"),
        Column("Kept for", no_wrap=True),
        Column("Cut-off", no_wrap=True),
        *(Column(header, numeric=True, no_wrap=True) for header in counted),
        Column("On expiry"),
    ]
    cells: list[tuple[CellValue, ...]] = []
    for row in rows:
        dataset = row.rule.dataset
        counts = row.counts
        never = [Cell(f"{counts.no_event:,}", "yellow") if counts.no_event else "0"]
        cells.append(
            (
                dataset.name,
                dataset.purpose,
                dataset.clock.describe(),
                str(dataset.retention),
                row.rule.cutoff.strftime("%Y-%m-%d"),
                f"{counts.total:,}",
                Cell(f"{counts.expired:,}", "bold red") if counts.expired else "0",
                Cell(f"{counts.held:,}", "yellow") if counts.held else "0",
                f"{counts.kept - counts.no_event:,}",
                *(never if no_event else []),
                dataset.action.type.replace("_", " "),
            )
        )
    title = f"Retention plan for {policy.name} at {_local(clock.local_now())} ({policy.timezone})"
    return ReportTable.of(title, columns, cells, caption)


def render_plan(
    console: Console, loaded: LoadedPolicy, clock: PolicyClock, rows: list[PlanRow]
) -> None:
    console.print(to_rich(plan_table(loaded, clock, rows)))
    for row in rows:
        if row.counts.no_event:
            dataset = row.rule.dataset
            line = no_event_line(dataset.name, row.counts.no_event, dataset.table, dataset.clock)
            console.print(line, markup=False, style="yellow")
        if row.counts.unreadable:
            line = unreadable_line(row.rule.dataset.name, row.counts.unreadable)
            console.print(line, markup=False, style="yellow")
        if row.counts.skipped:
            line = skipped_line(row.rule.dataset.name, row.counts.skipped)
            console.print(line, markup=False, style="yellow")
        for name, count in row.counts.held_by.items():
            if count:
                said = f" {row.rule.dataset.name}: {count:,} expired rows kept by {name} — "
                held = Text.assemble(("held", "yellow"), said + row.held_reasons[name])
                console.print(console.highlighter(held))  # a reason is text, never markup
        for hold in row.rule.lapsed_holds:
            said = f" hold {hold.name} on {row.rule.dataset.name} expired on {hold.expires}"
            console.print(console.highlighter(Text.assemble(("lapsed", "dim"), said)))


def unreadable_line(dataset: str, rows: int) -> str:
    """What the plan and the run report say of rows whose clock cannot be read."""
    return (
        f"{dataset}: clock unreadable: {rows:,} rows (not a timestamp in the store's form; "
        "never expired: fix them, or set clock.format)"
    )


def no_event_line(dataset: str, rows: int, table: str, clock: Clock) -> str:
    """What the plan and the run report say of rows whose event clock has no event row
    to count from: kept, and never expiring, unlike rows that are merely young."""
    head = f"{dataset}: never expires (no event): {rows:,} rows match no {clock.event_table} row"
    if clock.if_no_event == "never":
        return f"{head} (kept on purpose: if_no_event: never)"
    if clock.fallback is not None:
        return f"{head} and have no {clock.fallback.column} to count from instead (kept)"
    return (
        f"{head}, so their clock never starts (kept; set clock.if_no_event: {{column: ...}} "
        f"to count them from a timestamp of {table}, or if_no_event: never to keep them "
        "on purpose)"
    )


def skipped_line(dataset: str, skipped: dict[str, int]) -> str:
    """What the plan and the run report say of records a store left alone."""
    parts = ", ".join(f"{count:,} ({reason})" for reason, count in skipped.items())
    return f"{dataset}: skipped, never judged or changed: {parts}"


def _local(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M")
