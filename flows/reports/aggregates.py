"""``tenure aggregates``: the released rollups, as a table per rollup or JSON lines."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from connectors.protocol import PublishedCell
from flows.reports.table import ReportTable


def release_table(dataset: str, rollup: str, cells: list[PublishedCell]) -> ReportTable:
    """One row per published cell: its period, its dimensions, its count and measures
    (distinct counts as whole numbers); under differential privacy its people, with
    noise, and the 95% bound of the noise."""
    private = bool(cells) and cells[0].margin is not None
    columns = ["period", *(cells[0].dimensions if cells else []), "people" if private else "count"]
    columns += list(cells[0].measures) if cells else []
    columns += ["± 95%"] if private else []
    rows = [
        (
            str(cell.period_start),
            *map(str, cell.dimensions.values()),
            f"{cell.count:,}",
            *(_shown(name, v) for name, v in cell.measures.items()),
            *([f"{cell.margin:,}"] if private else []),
        )
        for cell in cells
    ]
    return ReportTable.of(f"{dataset} · {rollup} ({len(cells)} published cells)", columns, rows)


def _shown(name: str, value: float | None) -> str:
    if value is None:
        return ""
    return f"{round(value):,}" if name.startswith("count_distinct_") else f"{value:,.2f}"


def release_records(dataset: str, rollup: str, cells: list[PublishedCell]) -> list[dict[str, Any]]:
    """One JSON line's content per published cell."""
    return [{"dataset": dataset, "rollup": rollup, **asdict(cell)} for cell in cells]
