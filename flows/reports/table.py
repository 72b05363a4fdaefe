"""One table value for every report, and the renderers that show it.

A report builds its ``ReportTable`` once (title, columns, rows of text); where it goes
only picks the renderer: ``to_rich`` for the terminal, ``markdown_lines`` for files and
Prefect markdown artifacts (every cell escaped, so a ``|`` or a line break in a value
never splits a row), ``to_records`` for JSON rows and Prefect table artifacts. A new
report adds a function returning a ``ReportTable`` beside its data, in ``flows/reports/``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TypeAlias

from rich.table import Table
from rich.text import Text


@dataclass(frozen=True)
class Column:
    """A column's header and how the terminal lays it out."""

    header: str
    numeric: bool = False
    """Right-aligned in the terminal."""
    no_wrap: bool = False
    """Never folded onto a second line in the terminal."""


@dataclass(frozen=True)
class Cell:
    """A cell's text with the style the terminal shows it in (``"bold red"``); the other
    renderers show the text alone."""

    text: str
    style: str = ""


CellValue: TypeAlias = str | Cell


def cell_text(cell: CellValue) -> str:
    return cell.text if isinstance(cell, Cell) else cell


@dataclass(frozen=True)
class ReportTable:
    """A report's table: every row has one cell per column."""

    title: str
    columns: tuple[Column, ...]
    rows: tuple[tuple[CellValue, ...], ...]
    caption: str = ""

    def __post_init__(self) -> None:
        width = len(self.columns)
        for number, row in enumerate(self.rows, 1):
            if len(row) != width:
                raise ValueError(
                    f"table {self.title!r}: row {number} has {len(row)} cells for {width} columns"
                )

    @classmethod
    def of(
        cls,
        title: str,
        columns: Iterable[Column | str],
        rows: Iterable[Sequence[CellValue]],
        caption: str = "",
    ) -> ReportTable:
        """A table from column headers (or ``Column``s) and rows of any sequence."""
        shaped = tuple(c if isinstance(c, Column) else Column(c) for c in columns)
        return cls(title, shaped, tuple(tuple(row) for row in rows), caption)

    @property
    def headers(self) -> tuple[str, ...]:
        return tuple(column.header for column in self.columns)

    def texts(self) -> list[tuple[str, ...]]:
        """The rows as plain text, styles dropped."""
        return [tuple(cell_text(cell) for cell in row) for row in self.rows]


def to_rich(table: ReportTable) -> Table:
    """The table for a Rich console. Cells are text, never markup: a ``[`` in a value is
    shown as it is."""
    shown = Table(
        title=Text(table.title, style="table.title") if table.title else None,
        caption=Text(table.caption, style="table.caption") if table.caption else None,
    )
    for column in table.columns:
        shown.add_column(
            Text(column.header),
            justify="right" if column.numeric else "left",
            no_wrap=column.no_wrap,
        )
    for row in table.rows:
        shown.add_row(*(_rich_cell(cell) for cell in row))
    return shown


def _rich_cell(cell: CellValue) -> Text:
    text = Text(cell_text(cell))
    if isinstance(cell, Cell) and cell.style:
        text.stylize(cell.style)  # the text alone, not the padding that aligns it
    return text


def markdown_cell(text: str) -> str:
    """A value as the text of a Markdown table cell that shows it as it is: a backslash
    and ``|`` escaped, ``&``, ``<`` and ``>`` as entities, each line break as ``<br>``."""
    escaped = text.replace("\\", "\\\\").replace("|", "\\|")
    escaped = escaped.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return "<br>".join(escaped.replace("\r\n", "\n").replace("\r", "\n").split("\n"))


def markdown_lines(table: ReportTable) -> list[str]:
    """The header, its separator and one line per row (the title is the document's)."""
    lines = [_markdown_row(table.headers), "|" + "---|" * len(table.columns)]
    return lines + [_markdown_row(row) for row in table.texts()]


def _markdown_row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(markdown_cell(cell) for cell in cells) + " |"


def to_records(table: ReportTable) -> list[dict[str, str]]:
    """One mapping of header to text per row: JSON rows, a Prefect table artifact."""
    if len(set(table.headers)) != len(table.headers):
        raise ValueError(f"table {table.title!r}: two columns are called the same")
    return [dict(zip(table.headers, row, strict=True)) for row in table.texts()]
