"""``tenure aggregates``: the released rollups, as a table per rollup or JSON lines."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from connectors.protocol import PublishedCell
from flows.reports.table import ReportTable


def release_table(dataset: str, rollup: str, cells: list[PublishedCell]) -> ReportTable:
    """One row per published cell: its period, its dimensions, its count and measures."""
    columns = ["period", *(cells[0].dimensions if cells else []), "count"]
    columns += list(cells[0].measures) if cells else []
    rows = [
        (
            str(cell.period_start),
            *map(str, cell.dimensions.values()),
            f"{cell.count:,}",
            *(f"{v:,.2f}" if v is not None else "" for v in cell.measures.values()),
        )
        for cell in cells
    ]
    return ReportTable.of(f"{dataset} · {rollup} ({len(cells)} published cells)", columns, rows)


def release_records(dataset: str, rollup: str, cells: list[PublishedCell]) -> list[dict[str, Any]]:
    """One JSON line's content per published cell."""
    return [{"dataset": dataset, "rollup": rollup, **asdict(cell)} for cell in cells]
