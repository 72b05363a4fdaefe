"""Every report's table: one value, rendered to the terminal, Markdown, JSON rows and Prefect
artifacts, whatever its cells hold (``|``, line breaks, Rich markup, HTML)."""

from __future__ import annotations

import io
import json
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import given
from hypothesis import strategies as st
from markdown_it import MarkdownIt
from rich.console import Console
from typer.testing import CliRunner

from anonymizers.risk_criteria import METRICS, assess
from anonymizers.risk_measures import RiskMeasures
from connectors.protocol import PublishedCell
from flows.cli import app
from flows.reports.aggregates import release_table
from flows.reports.risk import RiskLine, risk_table
from flows.reports.run import purpose_table, render_run, report_markdown, run_table
from flows.reports.table import (
    Cell,
    Column,
    ReportTable,
    markdown_lines,
    to_records,
    to_rich,
)
from flows.run.types import DatasetOutcome, RunReport
from retention_rules.model import RiskRequirement

runner = CliRunner()
#: Cells a value can bring into a report: a column separator, line breaks, Rich markup,
#: HTML, a Windows path, a trailing backslash.
AWKWARD = (
    "int64 | string",
    "first line\nsecond line",
    "[bold red]not markup[/]",
    "<b>not html</b> & co",
    "C:\\data\\",
)
_MARKDOWN = MarkdownIt("commonmark", {"html": True}).enable("table")


def markdown_tables(text: str) -> list[list[list[str]]]:
    """Each GFM table of a Markdown document as a reader's renderer sees it: rows of cell
    texts (entities decoded, ``<br>`` read as a line break), the header row first."""
    tables: list[list[list[str]]] = []
    for token in _MARKDOWN.parse(text):
        if token.type == "table_open":
            tables.append([])
        elif token.type == "tr_open":
            tables[-1].append([])
        elif token.type == "inline" and tables and tables[-1]:
            tables[-1][-1].append(_inline_text(token.children or []))
    return tables


def _inline_text(children: list[Any]) -> str:
    parts = []
    for child in children:
        if child.type == "html_inline" and child.content == "<br>":
            parts.append("\n")
        elif child.type in ("text", "text_special"):
            parts.append(child.content)
        else:
            raise AssertionError(f"a cell became Markdown: {child.type} {child.content!r}")
    return "".join(parts)


def rich_text(renderable: Any, width: int = 400) -> str:
    out = io.StringIO()
    Console(file=out, width=width, color_system=None).print(renderable)
    return out.getvalue()


# --- the inventory of a files store whose Parquet files disagree on a column's type ------------

POLICY = """\
version: 1
name: mixed_logs
timezone: UTC
categories:
  contact.phone: {{description: "Telephone number", identifier: direct, entities: [PHONE_NUMBER]}}
purposes:
  analytics:
    description: "Web analytics"
    legal_basis: legitimate_interest
    min_retention: 1 day
    max_retention: 2 years
stores:
  logs:
    url: files:///{root}
scan:
  exempt:
    - store: logs
      table: visits
      column: email
      reason: "shared desk | not a person\\nticket <42>"
datasets:
  - name: visits
    store: logs
    table: visits
    purpose: analytics
    primary_key: [source_file, row_number]
    subject_key: phone
    columns:
      phone: contact.phone
    clock: {{column: visited_at}}
    retention: 1 year
    action: delete
"""


def _mixed_parquet_store(root: Path) -> None:
    """Two Parquet files of one collection: ``phone`` is int64 in one, string in the other."""
    folder = root / "visits"
    folder.mkdir(parents=True)
    at = pa.timestamp("us", tz="UTC")
    emails = ["desk@example.com", "front@example.com"]
    first = {
        "visited_at": pa.array([datetime(2026, 1, 1, tzinfo=UTC)] * 2, at),
        "phone": pa.array([5145550101, 5145550102], pa.int64()),
        "email": emails,
    }
    second = {
        "visited_at": pa.array([datetime(2026, 1, 2, tzinfo=UTC)] * 2, at),
        "phone": pa.array(["514-555-0103", "514-555-0104"]),
        "email": emails,
    }
    pq.write_table(pa.table(first), folder / "a.parquet")
    pq.write_table(pa.table(second), folder / "b.parquet")


def test_a_mixed_type_parquet_column_keeps_its_row_in_inventory_md(tmp_path: Path) -> None:
    _mixed_parquet_store(tmp_path / "store")
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY.format(root=tmp_path / "store"), encoding="utf-8")
    out = tmp_path / "out"
    state = f"sqlite:///{tmp_path / 'state.sqlite'}"

    result = runner.invoke(app, ["scan", str(policy), "--out", str(out), "--state", state])

    assert result.exit_code == 0, result.output
    inventory = json.loads((out / "inventory.json").read_text(encoding="utf-8"))
    (visits,) = inventory["tables"]
    types = {column["column"]: column["type"] for column in visits["columns"]}
    assert "|" in types["phone"], types  # the connector's own name for a mixed column
    markdown = (out / "inventory.md").read_text(encoding="utf-8")
    raw = [line for line in markdown.splitlines() if line.startswith("| ")]
    assert [len(line[2:-2].split(" | ")) for line in raw] == [9] * len(raw), raw
    (table,) = markdown_tables(markdown)
    header, *rows = table
    assert all(len(row) == len(header) == 9 for row in rows), table
    by_column = {row[header.index("Column")]: dict(zip(header, row, strict=True)) for row in rows}
    assert by_column["phone"]["Type"] == types["phone"]
    assert by_column["phone"]["Status"] == "bound"
    status = "exempt: shared desk | not a person\nticket <42>"
    assert by_column["email"]["Status"] == status


# --- every renderer, whatever a cell holds --------------------------------------------------


def _awkward_table() -> ReportTable:
    columns = [Column("Value"), Column("Count", numeric=True), Column("Status | note")]
    rows = [(text, f"{n:,}", Cell(text, "red")) for n, text in enumerate(AWKWARD)]
    return ReportTable.of("Awkward [values]", columns, rows, caption="a | caption\nof two lines")


def test_markdown_escapes_every_cell() -> None:
    (table,) = markdown_tables("\n".join(markdown_lines(_awkward_table())))
    header, *rows = table
    assert header == ["Value", "Count", "Status | note"]
    assert rows == [[text, f"{n:,}", text] for n, text in enumerate(AWKWARD)]


def test_rich_shows_every_cell_as_text_never_as_markup() -> None:
    shown = to_rich(_awkward_table())
    assert [column.header.plain for column in shown.columns] == [  # type: ignore[union-attr]
        "Value",
        "Count",
        "Status | note",
    ]
    values = [[cell.plain for cell in column.cells] for column in shown.columns]  # type: ignore[union-attr]
    assert values[0] == values[2] == list(AWKWARD)
    printed = rich_text(shown)
    assert "Awkward [values]" in printed and "[bold red]not markup[/]" in printed
    assert "C:\\data\\" in printed and "<b>not html</b> & co" in printed
    lines = printed.splitlines()
    first = next(i for i, line in enumerate(lines) if "first line" in line)
    assert "second line" in lines[first + 1], "a line break is a second line of its cell"


def test_json_rows_and_artifact_rows_keep_every_cell_as_it_is() -> None:
    records = to_records(_awkward_table())
    assert records == [
        {"Value": text, "Count": f"{n:,}", "Status | note": text} for n, text in enumerate(AWKWARD)
    ]
    assert json.loads(json.dumps(records)) == records


def test_a_row_of_the_wrong_width_is_refused() -> None:
    try:
        ReportTable.of("t", ["a", "b"], [("1", "2"), ("3",)])
    except ValueError as exc:
        assert "row 2 has 1 cells for 2 columns" in str(exc)
    else:
        raise AssertionError("a short row was accepted")


_cell_text = st.text(alphabet=st.sampled_from(list("ab |\\\n\r<>&;#x[]")), max_size=12)


@given(st.lists(st.tuples(_cell_text, _cell_text), max_size=4), _cell_text)
def test_any_text_survives_markdown(rows: list[tuple[str, str]], header: str) -> None:
    """A renderer reading the Markdown sees the table's rows, cells and texts (but for the
    spaces Markdown trims around a cell)."""
    table = ReportTable.of("t", ["first", header or "h"], rows)
    (parsed,) = markdown_tables("\n".join(markdown_lines(table)))

    def seen(text: str) -> str:
        return text.replace("\r\n", "\n").replace("\r", "\n").strip(" ")

    assert parsed == [[seen(c) for c in row] for row in (table.headers, *table.texts())]


_printable = st.characters(blacklist_categories=("Cc", "Cs")) | st.just("\n")


@given(st.lists(st.text(alphabet=_printable, max_size=20), min_size=1, max_size=3))
def test_any_text_survives_rich(texts: list[str]) -> None:
    shown = to_rich(ReportTable.of("t", ["a"], [(text,) for text in texts]))
    assert [cell.plain for cell in shown.columns[0].cells] == texts  # type: ignore[union-attr]


# --- each report builds one table -----------------------------------------------------------


def _report(error: str) -> RunReport:
    cutoff = datetime(2025, 1, 1, tzinfo=UTC)
    outcomes = [
        DatasetOutcome("invoices", "legal | tax", "delete", "crm", "invoices", cutoff, "6y", 3, 3),
        DatasetOutcome("clicks", "analytics", "delete", "crm", "c", cutoff, "1y", 2, error=error),
    ]
    return RunReport("r1", "crm_pro", "0" * 64, False, cutoff, outcomes, state="sqlite://")


def test_the_run_report_renders_one_table_everywhere() -> None:
    error = "store 'crm': connection refused | retrying\nsecond line [red]"
    report = _report(error)

    (markdown,) = markdown_tables(report_markdown(report))
    assert [len(row) for row in markdown] == [8, 8, 8]
    assert markdown[2][-1] == error and markdown[1][1] == "legal | tax"
    table = run_table(report)
    assert markdown == [list(table.headers), *map(list, table.texts())]

    out = io.StringIO()
    render_run(Console(file=out, width=400, color_system=None), report)
    printed = out.getvalue()
    assert "connection refused | retrying" in printed and "second line [red]" in printed
    assert "By purpose" in printed and "legal | tax" in printed

    assert to_records(table)[1]["Status"] == error
    assert to_records(purpose_table(report))[0] == {
        "Purpose": "legal | tax",
        "Deleted": "3",
        "Anonymized": "0",
        "Aggregated": "0",
    }


def test_risk_and_aggregates_build_tables_of_their_own_width() -> None:
    measures = RiskMeasures(1200, 400, 3, None, 0.25, 1 / 3, 1 / 3, 1 / 3, 1 / 3, 0.25)
    judgement = assess(
        {name: measures.value(name) for name in METRICS},
        [RiskRequirement.model_validate("k >= 10")],
        not_assessed={"inference": "no sensitive column declared"},
        direct={"note": "kept | raw"},
    )
    judged = replace(measures, assessment=judgement).as_dict()
    line = RiskLine("customers", "table", judged, ("k >= 10",), {"note": "kept | raw"})
    risk = risk_table([line])
    assert risk.texts() == [
        (
            "customers",
            "table",
            "1,200",
            "failed: k 3, unique 25.0%, risk max 0.333, avg 0.333",
            "met: journalist 0.3333, marketer 0.3333, population uniques 25.0%",
            "not assessed (no sensitive column declared)",
            "note: kept | raw",
            "de-identified: individualization: k >= 10 (measured k = 3); inference not assessed"
            " (required: k >= 10)",
        )
    ]
    cell = PublishedCell(date(2025, 1, 1), {"page": "/a|b\n"}, 12, {"mean": 1.5})
    release = release_table("web_clicks", "daily", [cell])
    assert release.headers == ("period", "page", "count", "mean")
    assert release.texts() == [("2025-01-01", "/a|b\n", "12", "1.50")]
    for table in (risk, release):
        (parsed,) = markdown_tables("\n".join(markdown_lines(table)))
        assert all(len(row) == len(table.columns) for row in parsed)
    assert "note: kept | raw" in rich_text(to_rich(risk))
