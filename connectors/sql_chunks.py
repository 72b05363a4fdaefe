"""One chunk of work in one transaction: recheck, summarise, delete or rewrite, journal.

Everything a chunk changes in the store commits together with its journal entry, so a
run killed at any instant leaves each chunk either wholly done and recorded, or not
started; a rerun selects only what is still expired and unmarked.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd
from sqlalchemy import (
    Column,
    ColumnElement,
    Connection,
    Engine,
    String,
    Table,
    bindparam,
    case,
    cast,
    delete,
    exists,
    insert,
    literal,
    not_,
    null,
    select,
    tuple_,
    update,
)

from connectors.protocol import ChunkWork, ExpirySelection, Key
from connectors.rollups import partial_cells, period_starts
from connectors.sql_bookkeeping import bookkeeping_metadata, rollup_table
from connectors.sql_expressions import TimeContext
from connectors.values import plain


@dataclass(frozen=True)
class Bookkeeping:
    """Tenure's tables for one label: the journal, the marks and its rollup tables."""

    journal: Table
    marks: Table
    rollups: dict[str, Table]

    @classmethod
    def ensure(cls, engine: Engine, source: Table, work: ChunkWork) -> Bookkeeping:
        metadata, journal, marks = bookkeeping_metadata(None)
        types = {c.name: c.type for c in source.columns}
        rollups = {
            sink.name: rollup_table(metadata, work.label, sink, types) for sink in work.rollups
        }
        metadata.create_all(engine, checkfirst=True)
        return cls(journal, marks, rollups)


def keys_in(columns: list[Column[Any]], keys: list[Key]) -> ColumnElement[bool]:
    if len(columns) == 1:
        return columns[0].in_([k[0] for k in keys])
    return tuple_(*columns).in_(keys)


def keys_after(columns: list[Column[Any]], after: Key) -> ColumnElement[bool]:
    if len(columns) == 1:
        return typing.cast(ColumnElement[bool], columns[0] > after[0])
    return tuple_(*columns) > tuple_(*(bindparam(None, v) for v in after))


def not_marked(table: Table, selection: ExpirySelection, marks: Table) -> ColumnElement[bool]:
    (key,) = selection.primary_key
    return not_(
        exists().where(
            marks.c.label == selection.skip_marked,
            marks.c.row_key == cast(table.c[key], String),
        )
    )


def execute_chunk(
    connection: Connection,
    table: Table,
    books: Bookkeeping,
    work: ChunkWork,
    actionable: ColumnElement[bool],
    times: TimeContext,
) -> int:
    """Run inside the caller's transaction; return the rows deleted or rewritten."""
    columns = [table.c[k] for k in work.selection.primary_key]
    recheck = select(*columns).where(keys_in(columns, list(work.keys)), actionable)
    if connection.dialect.name == "postgresql":
        recheck = recheck.with_for_update(of=table)
    live = [tuple(row) for row in connection.execute(recheck)]
    rows = 0
    if live:
        where = keys_in(columns, live)
        if work.action == "aggregate_then_delete":
            _aggregate(connection, table, books, work, where, times)
        if work.action == "anonymize":
            rows = _rewrite(connection, table, books, work, live)
        else:
            rows = connection.execute(delete(table).where(where)).rowcount
    connection.execute(
        insert(books.journal).values(
            run_id=work.run_id,
            label=work.label,
            chunk_no=work.chunk_no,
            action=work.action,
            rows=rows,
            committed_at=datetime.now(UTC),
        )
    )
    return rows


def _aggregate(
    connection: Connection,
    table: Table,
    books: Bookkeeping,
    work: ChunkWork,
    where: ColumnElement[bool],
    times: TimeContext,
) -> None:
    clock = work.selection.clock_column
    needed = {clock}
    for sink in work.rollups:
        needed.update(sink.dimensions, sink.sums, sink.distinct, sink.quantiles)
    result = connection.execute(select(*(table.c[c] for c in sorted(needed))).where(where))
    frame = pd.DataFrame(result.fetchall(), columns=list(result.keys()))
    periods: dict[str, pd.Series] = {}
    for sink in work.rollups:
        if sink.period not in periods:
            periods[sink.period] = period_starts(
                frame[clock], sink.period, ZoneInfo(work.period_zone), times.naive_zone
            )
        cells = partial_cells(frame, sink, periods[sink.period])
        for cell in cells:
            cell.update(run_id=work.run_id, chunk_no=work.chunk_no)
        connection.execute(insert(books.rollups[sink.name]), cells)


def _rewrite(
    connection: Connection, table: Table, books: Bookkeeping, work: ChunkWork, live: list[Key]
) -> int:
    (key,) = work.selection.primary_key
    where = keys_in([table.c[key]], live)
    constants = {
        r.column: case((table.c[r.column].is_(None), null()), else_=literal(r.constant[1]))
        for r in work.rewrites
        if r.constant[0]
    }  # a null stays null, as in the pandas path
    if constants:
        connection.execute(update(table).where(where).values(constants))
    transforms = [r for r in work.rewrites if not r.constant[0] and r.transform is not None]
    if transforms:
        names = [r.column for r in transforms]
        result = connection.execute(select(table.c[key], *(table.c[n] for n in names)).where(where))
        frame = pd.DataFrame(result.fetchall(), columns=[key, *names])
        for rewrite in transforms:
            assert rewrite.transform is not None
            frame[rewrite.column] = rewrite.transform(frame[rewrite.column])
        statement = (
            update(table)
            .where(table.c[key] == bindparam("_key"))
            .values({n: bindparam(f"_new_{n}") for n in names})
        )
        params = [
            {"_key": row[0], **{f"_new_{n}": plain(v) for n, v in zip(names, row[1:], strict=True)}}
            for row in frame.itertuples(index=False, name=None)
        ]
        connection.execute(statement, params)
    connection.execute(
        insert(books.marks),
        [{"label": work.label, "row_key": str(k[0]), "run_id": work.run_id} for k in live],
    )
    return len(live)
