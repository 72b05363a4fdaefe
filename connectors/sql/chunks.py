"""One chunk of work in one transaction: recheck, summarise, delete or rewrite, journal.

Everything a chunk changes in the store commits together with its journal entry, so a
run killed at any instant leaves each chunk either wholly done and recorded, or not
started; a rerun selects only what is still expired and unmarked.
"""

from __future__ import annotations

import typing
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import timedelta
from functools import reduce
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

import pandas as pd
from sqlalchemy import (
    Column,
    ColumnElement,
    Connection,
    Date,
    DateTime,
    Engine,
    Integer,
    String,
    Table,
    and_,
    bindparam,
    case,
    cast,
    delete,
    exists,
    func,
    insert,
    literal,
    not_,
    null,
    select,
    tuple_,
    update,
)
from sqlalchemy import cast as sa_cast
from sqlalchemy.engine import CursorResult, Dialect
from sqlalchemy.engine.cursor import CursorFetchStrategy
from sqlalchemy.sql import operators
from sqlalchemy.sql.elements import BinaryExpression, BindParameter
from sqlalchemy.sql.visitors import replacement_traverse

from connectors.protocol import (
    ChunkResult,
    ChunkWork,
    ColumnInfo,
    ColumnRewrite,
    ExpirySelection,
    Key,
    RollupSink,
)
from connectors.rollups import cell_records, chunk_cells, rollup_columns
from connectors.sql.bookkeeping import (
    add_missing_columns,
    bookkeeping_metadata,
    journal_row,
    rollup_table,
    stage_rows,
    stage_table,
)
from connectors.sql.clocks import readable
from connectors.sql.expressions import column_info
from connectors.sql.functions import order_correlation
from connectors.sql.sampling import estimate_rows
from connectors.times import TimeContext
from connectors.values import frame_bytes, plain


@dataclass(frozen=True)
class Bookkeeping:
    """Tenure's tables for one label: the journal, the marks and its rollup tables."""

    journal: Table
    marks: Table
    rollups: dict[str, Table]
    stage: Table | None
    """The rollups' staged chunks (`stage_table`); None when the label has no rollup."""

    @classmethod
    def ensure(cls, engine: Engine, source: Table, work: ChunkWork) -> Bookkeeping:
        metadata, journal, marks = bookkeeping_metadata(None)
        types = {c.name: c.type for c in source.columns}
        rollups = {
            sink.name: rollup_table(metadata, work.label, sink, types) for sink in work.rollups
        }
        stage = stage_table(metadata) if rollups else None
        metadata.create_all(engine, checkfirst=True)
        with engine.begin() as connection:
            for table in rollups.values():
                add_missing_columns(connection, table)
        return cls(journal, marks, rollups, stage)


def keys_after(columns: list[Column[Any]], after: Key) -> ColumnElement[bool]:
    if len(columns) == 1:
        return typing.cast(ColumnElement[bool], columns[0] > after[0])
    return tuple_(*columns) > tuple_(*(bindparam(None, v) for v in after))


def keys_up_to(columns: list[Column[Any]], last: Key) -> ColumnElement[bool]:
    if len(columns) == 1:
        return typing.cast(ColumnElement[bool], columns[0] <= last[0])
    return tuple_(*columns) <= tuple_(*(bindparam(None, v) for v in last))


def keys_in(columns: list[Column[Any]], keys: Sequence[Key]) -> ColumnElement[bool]:
    if len(columns) == 1:
        return columns[0].in_([key[0] for key in keys])
    return tuple_(*columns).in_(list(keys))


def row_key(columns: Sequence[ColumnElement[Any]]) -> ColumnElement[str]:
    """A row's key as the text of its mark, computed by the database on both sides of
    every comparison: one column's value as text; for several, each value's text after
    its length and a colon, so that no two keys share a text ((1, 23) is ``1:12:23``,
    (12, 3) is ``2:121:3``)."""
    texts: list[ColumnElement[str]] = [cast(c, String) for c in columns]
    if len(texts) == 1:
        return texts[0]
    parts = [p for t in texts for p in (cast(func.length(t), String), literal(":", String), t)]
    return reduce(lambda left, right: left + right, parts)


def not_marked(table: Table, selection: ExpirySelection, marks: Table) -> ColumnElement[bool]:
    key = row_key([table.c[k] for k in selection.primary_key])
    return not_(exists().where(marks.c.label == selection.skip_marked, marks.c.row_key == key))


@dataclass(frozen=True)
class _Chunk:
    """One chunk being worked on: where, with what, and which rows (`rows`: the key range
    or slice with the selection applied again; before a walk has chosen its chunk, the
    whole selection)."""

    connection: Connection
    table: Table
    books: Bookkeeping
    work: ChunkWork
    times: TimeContext
    rows: ColumnElement[bool]


class Slice(NamedTuple):
    """Where a slice walk stands: the next slice starts at `start` on `column` (the
    primary key's or the clock's values) and is `width` wide; the walk ends after `end`,
    the column's greatest value when it began. Handed back as `ChunkResult.last` and
    received as `ChunkWork.after`: the flow treats it as an opaque position."""

    column: str
    start: Any
    width: Any
    end: Any


#: How far one slice's width may move from the last: a slice holding no selected row
#: doubles the width; otherwise it is scaled towards `ChunkWork.limit` rows within these.
_NARROWEST, _WIDEST = 0.25, 2.0


def execute_chunk(
    connection: Connection,
    table: Table,
    books: Bookkeeping,
    work: ChunkWork,
    actionable: ColumnElement[bool],
    times: TimeContext,
) -> ChunkResult:
    """Run inside the caller's transaction: take the next chunk of selected rows, delete
    or rewrite it, journal it.

    Where the table has a single integer primary key or a timestamp clock, a chunk is a
    *slice* of that column's values (`slice_column`), bounded by one range condition that
    the statement itself applies with the selection, so each chunk costs one statement;
    the width adapts so that a slice holds about `work.limit` rows. Otherwise the page's
    last key is read first, then the statements bound the chunk by key range and apply
    the selection again.
    """
    selected = _Chunk(connection, table, books, work, times, actionable)
    if isinstance(work.after, Slice):
        return _execute_slice(selected, work.after)
    if work.after is None and (column := slice_column(connection, table, work)) is not None:
        return _execute_slice(selected, column)
    columns = [table.c[k] for k in work.selection.primary_key]
    window = actionable
    if work.after is not None:
        window = and_(keys_after(columns, work.after), actionable)
    last = _page_end(connection, columns, window, work.limit)
    if last is None:
        return ChunkResult(0, None)
    chunk = replace(selected, rows=and_(window, keys_up_to(columns, last)))
    return ChunkResult(_journaled(chunk, always=True), last)


def slice_column(connection: Connection, table: Table, work: ChunkWork) -> str | None:
    """The column a slice walk follows: the single integer primary key, or the clock
    (a timestamp column of the table itself) where the store says the clock follows the
    rows' physical order more closely (`order_correlation`); None: neither can be sliced,
    so the walk goes page by page in key order. One person's rows (`only`) are few and
    scattered over the whole range: they go page by page, each page found through the
    filter (an index on the person's key) rather than by slices of the table."""
    selection = work.selection
    if selection.only:
        return None
    key = selection.primary_key[0] if len(selection.primary_key) == 1 else None
    candidates = []
    if key is not None and isinstance(table.c[key].type, Integer):
        candidates.append(key)
    clock = selection.clock_column
    if (
        selection.event is None
        and selection.clock_format == "timestamp"
        and clock in table.c
        and column_info(table, clock).family == "datetime"
        and isinstance(table.c[clock].type, DateTime)
    ):
        candidates.append(clock)
    if len(candidates) < 2 or not order_correlation.has_rendering(connection.dialect.name):
        # Nothing to compare, or a store that keeps rows in key order (InnoDB, SQLite).
        return key if key in candidates else None
    found = {
        name: connection.execute(select(order_correlation(table, name))).scalar()
        for name in candidates
    }
    ranked = sorted(candidates, key=lambda name: abs(found[name] or 0.0), reverse=True)
    return ranked[0]


def _execute_slice(selected: _Chunk, position: Slice | str) -> ChunkResult:
    """The next slice after `position` (a column name: the walk's first) that holds a
    selected row; `selected.rows` is the whole selection."""
    if isinstance(position, str):
        started = _first_slice(selected, position)
        if started is None:
            return ChunkResult(0, None)
        position = started
    column, limit = selected.table.c[position.column], selected.work.limit
    start, width = position.start, position.width
    while start <= position.end:
        stop = start + width
        chunk = replace(selected, rows=and_(column >= start, column < stop, selected.rows))
        done = _journaled(chunk)
        width = _next_width(width, done, limit)
        if done:
            return ChunkResult(done, Slice(position.column, stop, width, position.end))
        start = stop
    return ChunkResult(0, None)


def _first_slice(selected: _Chunk, name: str) -> Slice | None:
    """The walk's start (the least selected value), its end (the column's greatest value)
    and a first width that would hold `limit` rows if the values were evenly spread."""
    connection, table, limit = selected.connection, selected.table, selected.work.limit
    column = table.c[name]
    low = connection.execute(select(func.min(column)).where(selected.rows)).scalar()
    if low is None:
        return None
    high = connection.execute(select(func.max(column))).scalar()
    if isinstance(low, int):
        return Slice(name, low, max(limit, 1), high)
    rows = max(estimate_rows(connection, table), 1)
    span = (high - low) if high > low else timedelta(seconds=1)
    return Slice(name, low, max(span * min(limit / rows, 1.0), _TICK), high)


_TICK = timedelta(microseconds=1)


def _next_width(width: Any, rows: int, limit: int) -> Any:
    factor = _WIDEST if rows == 0 else min(max(limit / rows, _NARROWEST), _WIDEST)
    if isinstance(width, int):
        return max(int(width * factor), 1)
    return max(width * factor, _TICK)


def _journaled(chunk: _Chunk, *, always: bool = False) -> int:
    """Process the chunk and journal it (a slice that changed no row is not a chunk)."""
    rows = _process(chunk)
    if rows or always:
        work = chunk.work
        journal = journal_row(work.run_id, work.label, work.chunk_no, work.action, rows)
        chunk.connection.execute(insert(chunk.books.journal).values(journal))
    return rows


def _page_end(
    connection: Connection, columns: list[Column[Any]], window: ColumnElement[bool], limit: int
) -> Key | None:
    page = select(*columns).where(window).order_by(*columns).limit(limit).subquery()
    last = select(*page.c).order_by(*(c.desc() for c in page.c)).limit(1)
    row = connection.execute(last).first()
    return None if row is None else tuple(row)


def _process(chunk: _Chunk) -> int:
    work = chunk.work
    if work.action == "anonymize":
        return _rewrite(chunk)
    if work.action == "aggregate_then_delete":
        sketches = any(sink.distinct or sink.quantiles or sink.subject for sink in work.rollups)
        in_database = chunk.connection.dialect.name == "postgresql" and not sketches
        if in_database and not _skipped_wall_times(chunk):
            return _delete_and_aggregate_in_database(chunk)
        return _delete_and_aggregate(chunk)
    return int(chunk.connection.execute(delete(chunk.table).where(chunk.rows)).rowcount)


def _delete_and_aggregate(chunk: _Chunk) -> int:
    work, table = chunk.work, chunk.table
    info = column_info(table, work.selection.clock_column)
    in_database = _periods_in_database(chunk, info)
    names = rollup_columns(work, clock=not in_database)
    columns: list[ColumnElement[Any]] = [_read_for_rollups(table, c, work, info) for c in names]
    periods: list[str] = sorted({sink.period for sink in work.rollups}) if in_database else []
    naive_zone = None if info.timezone_aware else str(chunk.times.naive_zone)
    clock = table.c[work.selection.clock_column]
    columns += [_period_start(clock, p, work.period_zone, naive_zone) for p in periods]
    gone = _delete_returning(chunk, columns)
    if not gone:
        return 0
    labels = [f"{_PERIOD}{p}" for p in periods]  # no column of the table: they are named
    frame = pd.DataFrame.from_records(gone, columns=[*names, *labels])
    starts = {p: frame.pop(label) for p, label in zip(periods, labels, strict=True)}
    # Naive values of an aware column (MySQL's TIMESTAMP) are UTC wall time.
    zone = ZoneInfo("UTC") if info.timezone_aware else chunk.times.naive_zone
    for sink, cells in chunk_cells(frame, work, zone, starts):
        _stage(chunk, sink, cells)
    return len(gone)


def _read_for_rollups(
    table: Table, name: str, work: ChunkWork, info: ColumnInfo
) -> ColumnElement[Any]:
    """A column the rollups read. The clock of a selection of `every_row` may hold a
    value that is no timestamp (SQLite): read as NULL, it places its row in no period
    (`chunk_cells`) instead of failing the chunk."""
    column = table.c[name]
    if not work.selection.every_row or name != work.selection.clock_column:
        return column
    test = readable(column, info.family, work.selection.clock_format)
    return case((test, column), else_=null()).label(name)


#: Before a period's name: the frame column of the period starts the store computed.
_PERIOD = "\x00period:"


def _periods_in_database(chunk: _Chunk, info: ColumnInfo) -> bool:
    """Whether the store computes each row's period starts (`_period_start`) instead of
    sending its clock: a timestamp read as pandas reads it (PostgreSQL), and a
    timestamp travels and converts several times slower than a date."""
    if chunk.connection.dialect.name != "postgresql" or info.family != "datetime":
        return False
    return info.timezone_aware or not _skipped_wall_times(chunk)


def _stage(chunk: _Chunk, sink: RollupSink, cells: pd.DataFrame) -> None:
    """The chunk's cells of one rollup as one payload in the stage (a few rows, however
    many cells); a payload Arrow cannot type (a dimension mixing text and numbers) is
    written as one row per cell in the rollup's table instead."""
    work = chunk.work
    assert chunk.books.stage is not None, "a label with rollups has a stage"
    try:
        payload = frame_bytes(cells)
    except (ValueError, TypeError):
        chunk.connection.execute(insert(chunk.books.rollups[sink.name]), cell_records(cells))
        return
    rows = stage_rows(work.label, sink.name, work.run_id, work.chunk_no, payload)
    chunk.connection.execute(insert(chunk.books.stage), rows)


def _delete_returning(
    chunk: _Chunk, columns: Sequence[ColumnElement[Any]]
) -> list[tuple[Any, ...]]:
    """Delete the chunk's rows, returning `columns` of each.

    ``DELETE ... RETURNING`` where the dialect has it (PostgreSQL, SQLite, MariaDB);
    elsewhere (MySQL) the rows are read with ``SELECT ... FOR UPDATE``, which locks them
    and the gaps between them until the commit, then deleted by the same predicate.
    """
    connection, table = chunk.connection, chunk.table
    if connection.dialect.delete_returning:
        statement = delete(table).where(chunk.rows).returning(*columns)
        return _fetched(connection.execute(statement), columns, connection.dialect)
    locked = select(*columns).where(chunk.rows).with_for_update(of=table)
    chosen = _fetched(connection.execute(locked), columns, connection.dialect)
    deleted = connection.execute(delete(table).where(chunk.rows)).rowcount
    if deleted != len(chosen):  # the caller's transaction rolls back: nothing is lost
        raise RuntimeError(f"{len(chosen)} rows read for deletion but {deleted} deleted")
    return chosen


def _fetched(
    result: CursorResult[Any], columns: Sequence[ColumnElement[Any]], dialect: Dialect
) -> list[tuple[Any, ...]]:
    """Every row of ``result`` as a tuple. When no column's type changes what the driver
    returns (no result processor: PostgreSQL's text, numbers, dates and timestamps) and
    SQLAlchemy has not buffered the rows, they are the driver's own tuples: building a
    ``Row`` for each of a million deleted rows costs more than their transfer."""
    description = result.cursor.description if result.cursor is not None else None
    unbuffered = type(result.cursor_strategy) is CursorFetchStrategy
    if description is not None and unbuffered and len(description) == len(columns):
        processors = [
            column.type.dialect_impl(dialect).result_processor(dialect, described[1])
            for column, described in zip(columns, description, strict=True)
        ]
        if not any(processors):
            try:
                return list(result.cursor.fetchall())
            finally:
                result.close()
    return [tuple(row) for row in result.fetchall()]


def _delete_and_aggregate_in_database(chunk: _Chunk) -> int:
    """PostgreSQL: one statement deletes the chunk and adds its counts and sums to every
    rollup (data-modifying CTEs), so no row travels to Python."""
    work, table = chunk.work, chunk.table
    returned = (table.c[c] for c in rollup_columns(work))
    gone = delete(table).where(chunk.rows).returning(*returned).cte("gone")
    statement = select(func.count()).select_from(gone)
    clock_name = work.selection.clock_column
    aware = getattr(table.c[clock_name].type, "timezone", False)
    naive_zone = None if aware else str(chunk.times.naive_zone)
    for i, sink in enumerate(work.rollups):
        period = _period_start(gone.c[clock_name], sink.period, work.period_zone, naive_zone)
        dimensions = [gone.c[d] for d in sink.dimensions]
        summary = (
            select(
                literal(work.run_id),
                literal(work.chunk_no),
                period,
                *dimensions,
                func.count(),
                *(func.sum(gone.c[c]) for c in sink.sums),
            )
            .where(gone.c[clock_name].is_not(None))  # no period (`every_row`): no cell
            .group_by(period, *dimensions)
        )
        names = ["run_id", "chunk_no", "period_start"]
        names += [f"dim_{d}" for d in sink.dimensions] + ["n"]
        names += [f"sum_{c}" for c in sink.sums]
        target = chunk.books.rollups[sink.name]
        statement = statement.add_cte(insert(target).from_select(names, summary).cte(f"rollup_{i}"))
    return int(chunk.connection.execute(statement).scalar_one())


def _skipped_wall_times(chunk: _Chunk) -> bool:
    """Whether a naive clock of the chunk is a wall time its zone skips. PostgreSQL reads
    a repeated wall time as `wall_instant` does (its second occurrence) but a skipped
    one with the offset before the change (``02:30`` as 03:30 EDT, not 03:00), so such
    a chunk is bucketed by the pandas path instead."""
    name = chunk.work.selection.clock_column
    info = column_info(chunk.table, name)
    zone = str(chunk.times.naive_zone)
    if info.family != "datetime" or info.timezone_aware or zone == "UTC":
        return False
    clock = chunk.table.c[name]
    skipped = func.timezone(zone, func.timezone(zone, clock)) != clock  # not read back
    found = select(literal(1)).where(chunk.rows, skipped).limit(1)
    return chunk.connection.execute(found).first() is not None


def _period_start(
    clock: ColumnElement[Any], period: str, zone: str, naive_zone: str | None
) -> ColumnElement[Any]:
    """The period's first day in the policy's zone, as `period_starts` computes it; a
    naive timestamp is first read in the store's zone (`naive_zone`), as `wall_instant`
    reads it when no value of the chunk is a skipped wall time (`_skipped_wall_times`)."""
    instant = clock if naive_zone is None else func.timezone(naive_zone, clock)
    return sa_cast(func.date_trunc(period, func.timezone(zone, instant)), Date)


def _split_rewrites(
    table: Table, rewrites: tuple[ColumnRewrite, ...], dialect: str
) -> tuple[dict[str, ColumnElement[Any]], list[ColumnRewrite]]:
    """The new values the database computes itself, by column, and the rewrites left to
    pandas: those columns alone are read out."""
    in_database: dict[str, ColumnElement[Any]] = {}
    in_pandas: list[ColumnRewrite] = []
    for rewrite in rewrites:
        column = table.c[rewrite.column]
        expression = None if rewrite.sql is None else rewrite.sql(column, dialect)
        if expression is not None and rewrite.fills_nulls:
            in_database[rewrite.column] = expression
        elif expression is not None:  # a null stays null, as in the pandas path
            in_database[rewrite.column] = case((column.is_(None), null()), else_=expression)
        elif rewrite.transform is not None:
            in_pandas.append(rewrite)
    return in_database, in_pandas


def _rewrite(chunk: _Chunk) -> int:
    """Rewrite the chunk's rows in place and mark them. Every statement applies the
    chunk's selection again besides the key, so a key that names more than one row never
    reaches a row that is held, young or outside the chunk."""
    work, table, connection = chunk.work, chunk.table, chunk.connection
    keys = [table.c[k] for k in work.selection.primary_key]
    in_database, transforms = _split_rewrites(table, work.rewrites, connection.dialect.name)
    names = [r.column for r in transforms]
    # Locks the rows where the database can; SQLAlchemy leaves FOR UPDATE out on SQLite,
    # whose writer holds the whole database.
    chosen = select(*keys, *(table.c[n] for n in names)).where(chunk.rows).with_for_update(of=table)
    rows = [tuple(row) for row in connection.execute(chosen)]
    if not rows:
        return 0
    live = [row[: len(keys)] for row in rows]
    if transforms:
        frame = pd.DataFrame.from_records([row[len(keys) :] for row in rows], columns=names)
        for rewrite in transforms:
            assert rewrite.transform is not None
            frame[rewrite.column] = rewrite.transform(frame[rewrite.column])
        statement = (
            update(table)
            .where(*(k == bindparam(f"_key_{i}") for i, k in enumerate(keys)))
            .where(_listed_parameters(chunk.rows))
            .values({**in_database, **{n: bindparam(f"_new_{n}") for n in names}})
        )
        params = [
            {
                **{f"_key_{i}": v for i, v in enumerate(key)},
                **{f"_new_{n}": plain(v) for n, v in zip(names, new, strict=True)},
            }
            for key, new in zip(live, frame.itertuples(index=False, name=None), strict=True)
        ]
        written = connection.execute(statement, params).rowcount
        sane = connection.dialect.supports_sane_multi_rowcount
    elif in_database:
        statement = update(table).where(keys_in(keys, live), chunk.rows).values(in_database)
        written, sane = connection.execute(statement).rowcount, True
    else:
        written, sane = len(rows), True
    if sane and written != len(rows):  # the caller's transaction rolls back: nothing is lost
        raise RuntimeError(
            f"{len(rows)} rows chosen for rewriting but {written} rewritten: the key "
            f"({', '.join(work.selection.primary_key)}) does not name one row"
        )
    marked = select(literal(work.label, String), row_key(keys), literal(work.run_id, String))
    connection.execute(
        insert(chunk.books.marks).from_select(
            ["label", "row_key", "run_id"], marked.where(keys_in(keys, live)).distinct()
        )
    )
    return len(rows)


def _listed_parameters(condition: ColumnElement[bool]) -> ColumnElement[bool]:
    """`condition` with every ``IN`` list (a hold's subject keys) sent as one parameter
    per value: a statement run once per row (``executemany``) cannot expand a list."""

    def listed(element: Any, **_: Any) -> Any:
        if (
            isinstance(element, BinaryExpression)
            and isinstance(element.right, BindParameter)
            and element.right.expanding
        ):
            listed_values = element.right.value or ()
            values = [bindparam(None, v, type_=element.left.type) for v in listed_values]
            if element.operator is operators.in_op:
                return element.left.in_(values)
            if element.operator is operators.not_in_op:
                return element.left.not_in(values)
        return None

    return replacement_traverse(condition, {}, listed)
