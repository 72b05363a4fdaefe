"""The scan's inventory for machines (``inventory.json``) and people (Markdown, Prefect).

Only names, types, entity labels, confidences and counts appear: the sampled values
never reach an ``Inventory``, so they cannot reach a report.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from anonymizers.detection import LABEL_THRESHOLD
from flows.reports.table import ReportTable, markdown_lines
from flows.scan import ColumnScan, Inventory, TableScan
from retention_rules.coverage import ColumnEvidence, CoverageGap, qualified_table

INVENTORY_JSON = "inventory.json"
INVENTORY_MARKDOWN = "inventory.md"
_HEADERS = ("Store", "Table", "Column", "Type", "Entities", "Sample", "Hits", "Bound to", "Status")


def _where(table: TableScan, column: ColumnScan) -> str:
    """The column's address as the coverage gate writes it (``ColumnEvidence.where``)."""
    return ColumnEvidence(table.store, table.schema, table.table, column.column, {}).where


def _statuses(inventory: Inventory) -> dict[str, str]:
    """Each column's standing with the gate, by ``ColumnEvidence.where``."""
    coverage = inventory.coverage
    statuses = {where: "bound" for where in coverage.bound}
    statuses.update({item.where: f"exempt: {e.reason}" for item, e in coverage.exempt})
    statuses.update({gap.evidence.where: gap.kind for gap in coverage.gaps})
    return statuses


def inventory_json(inventory: Inventory) -> dict[str, Any]:
    statuses = _statuses(inventory)
    bound = inventory.coverage.bound
    return {
        "policy": inventory.policy,
        "policy_sha256": inventory.policy_sha256,
        "scanned_at": inventory.scanned_at.isoformat(),
        "label_threshold": LABEL_THRESHOLD,
        "sample_size": inventory.sample_size,
        "coverage": {
            "passed": inventory.coverage.passed,
            "gaps": [_gap_json(gap) for gap in inventory.coverage.gaps],
        },
        "unreadable": list(inventory.unreadable),
        "tables": [
            {
                "store": table.store,
                "schema": table.schema,
                "table": table.table,
                "rows_estimate": table.rows,
                "schema_hash": table.schema_hash,
                "row_bucket": table.row_bucket,
                "scanned_at": table.scanned_at.isoformat(),
                "reused": table.reused,
                "seconds": round(table.seconds, 3),
                "columns": [
                    {
                        "column": column.column,
                        "type": column.type_name,
                        "family": column.family,
                        "entities": {e: round(c, 4) for e, c in column.entities.items()},
                        "labels": sorted(column.labels()),
                        "sample_size": column.sample_size,
                        "hits": column.hits,
                        "free_text": column.free_text,
                        "categories": list(bound.get(_where(table, column), ())),
                        "status": statuses.get(_where(table, column), "clean"),
                    }
                    for column in table.columns
                ],
            }
            for table in inventory.tables
        ],
    }


def _gap_json(gap: CoverageGap) -> dict[str, Any]:
    evidence = gap.evidence
    return {
        "kind": gap.kind,
        "store": evidence.store,
        "schema": evidence.schema,
        "table": evidence.table,
        "column": evidence.column,
        "entities": {e: round(evidence.entities[e], 4) for e in gap.entities},
        "datasets": list(gap.datasets),
        "categories": list(gap.categories),
        "message": str(gap),
    }


def _cells(inventory: Inventory, statuses: dict[str, str]) -> list[tuple[str, ...]]:
    """A row per column that is labelled or bound; unremarkable columns are left out."""
    bound = inventory.coverage.bound
    rows: list[tuple[str, ...]] = []
    for table in inventory.tables:
        for column in table.columns:
            where = _where(table, column)
            labels = column.labels()
            if not labels and where not in bound:
                continue
            rows.append(
                (
                    table.store,
                    qualified_table(table.schema, table.table),
                    column.column,
                    column.type_name,
                    ", ".join(f"{e} {c:.2f}" for e, c in labels.items()) or "—",
                    str(column.sample_size),
                    ", ".join(f"{e} {column.hits[e]}" for e in labels if e in column.hits) or "—",
                    ", ".join(bound.get(where, ())) or "—",
                    statuses.get(where, "clean"),
                )
            )
    return rows


def inventory_table(inventory: Inventory) -> ReportTable:
    """One row per column that is labelled or bound, with its standing with the gate."""
    title = f"PII inventory of policy {inventory.policy}"
    return ReportTable.of(title, _HEADERS, _cells(inventory, _statuses(inventory)))


def inventory_markdown(inventory: Inventory) -> str:
    coverage = inventory.coverage
    verdict = "passed" if coverage.passed else f"failed: {len(coverage.gaps)} gap(s)"
    lines = [
        f"# PII inventory of policy `{inventory.policy}`",
        "",
        f"Scanned at {inventory.scanned_at.isoformat()}: {len(inventory.tables)} tables "
        f"({inventory.reused} unchanged since the last scan), up to {inventory.sample_size:,} "
        f"sampled values per column, labels at confidence ≥ {LABEL_THRESHOLD}. "
        f"Policy sha256 `{inventory.policy_sha256}`.",
        "",
        f"Coverage gate: **{verdict}**.",
        "",
    ]
    lines += [f"- {gap}" for gap in coverage.gaps]
    lines += [f"- unreadable, not scanned: {reason}" for reason in inventory.unreadable]
    lines += ["", *markdown_lines(inventory_table(inventory))]
    return "\n".join(lines) + "\n"


def write_inventory(inventory: Inventory, directory: Path) -> tuple[Path, Path]:
    """Write ``inventory.json`` and ``inventory.md`` into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    json_path = directory / INVENTORY_JSON
    markdown_path = directory / INVENTORY_MARKDOWN
    json_path.write_text(json.dumps(inventory_json(inventory), indent=2) + "\n", encoding="utf-8")
    markdown_path.write_text(inventory_markdown(inventory), encoding="utf-8")
    return json_path, markdown_path


def scan_summary_lines(inventory: Inventory, json_path: Path, markdown_path: Path) -> list[str]:
    """What ``tenure scan`` prints: how much was scanned, where the inventory is, each gap
    and the coverage verdict."""
    coverage = inventory.coverage
    labelled = sum(bool(c.labels()) for t in inventory.tables for c in t.columns)
    head = (
        f"Scanned {len(inventory.tables)} tables ({inventory.reused} unchanged, reused): "
        f"{labelled} columns hold personal information; inventory in {json_path} and "
        f"{markdown_path}"
    )
    verdict = (
        "Coverage: every personal column is bound."
        if coverage.passed
        else f"Coverage: {len(coverage.gaps)} gap(s)."
    )
    return [head, *(str(gap) for gap in coverage.gaps), verdict]
