"""Tenure's own tables inside a SQL store: the chunk journal, row marks and rollups.

They live in the store, not the state database, because they must change in the same
transaction as the rows they describe: a chunk's deletion, its journal entry and its
contribution to an aggregate commit together or not at all.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Any

import pandas as pd
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Connection,
    Date,
    DateTime,
    Double,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    Select,
    String,
    Table,
    Text,
    and_,
    delete,
    false,
    insert,
    inspect,
    or_,
    select,
    text,
)
from sqlalchemy.dialects import mysql
from sqlalchemy.types import NullType, TypeEngine, UserDefinedType

from connectors.protocol import RollupSink
from connectors.rollups import PEOPLE, SEALED, SUBJECTS, compacted_rows, folded, period_date
from connectors.values import bytes_frame

JOURNAL = "tenure_journal"
MARKS = "tenure_marks"
STAGE = "tenure_stage"
#: A staged payload is cut into parts of at most this many bytes: one statement stays
#: far under MariaDB's default ``max_allowed_packet`` (16 MiB).
_PART_BYTES = 1 << 20
#: Staged chunks merged at a time when a rollup is read or compacted.
_FOLD_CHUNKS = 16
#: MySQL's and MariaDB's BLOB holds 64 KiB; LONGBLOB holds a part.
_PAYLOAD = LargeBinary().with_variant(mysql.LONGBLOB(), "mysql", "mariadb")
_IDENTIFIER_LIMIT = 63  # PostgreSQL's; the tightest of the supported dialects
#: A row's key as text. On MySQL and MariaDB it is compared case- and accent-sensitively
#: (``utf8mb4_bin``), as elsewhere: keys that differ only by case stay distinct, and a
#: binary collation may meet the connection's collation in ``row_key = CAST(id AS CHAR)``
#: where the server's default collation would be refused as an "illegal mix".
_ROW_KEY = String(200).with_variant(
    mysql.VARCHAR(200, charset="utf8mb4", collation="utf8mb4_bin"), "mysql", "mariadb"
)


def bookkeeping_metadata(schema: str | None) -> tuple[MetaData, Table, Table]:
    metadata = MetaData(schema=schema)
    journal = Table(
        JOURNAL,
        metadata,
        Column("run_id", String(36), nullable=False),
        Column("label", String(63), nullable=False),
        Column("chunk_no", Integer, nullable=False),
        Column("action", String(24), nullable=False),
        Column("rows", Integer, nullable=False),
        Column("committed_at", DateTime(timezone=True), nullable=False),
        PrimaryKeyConstraint("run_id", "label", "chunk_no"),
    )
    marks = Table(
        MARKS,
        metadata,
        Column("label", String(63), nullable=False),
        Column("row_key", _ROW_KEY, nullable=False),
        Column("run_id", String(36), nullable=False),
        PrimaryKeyConstraint("label", "row_key"),
    )
    return metadata, journal, marks


def stage_table(metadata: MetaData) -> Table:
    """A chunk's cells of each rollup as one payload (`connectors.values.frame_bytes`, cut
    into parts), written with the chunk's deletion: a few rows per chunk instead of one
    per cell. `compact_rollup` folds them into the rollup's table."""
    return Table(
        STAGE,
        metadata,
        Column("label", String(63), nullable=False),
        Column("rollup", String(63), nullable=False),
        Column("run_id", String(36), nullable=False),
        Column("chunk_no", Integer, nullable=False),
        Column("part", Integer, nullable=False),
        Column("payload", _PAYLOAD, nullable=False),
        PrimaryKeyConstraint("label", "rollup", "run_id", "chunk_no", "part"),
    )


def stage_rows(
    label: str, rollup: str, run_id: str, chunk_no: int, payload: bytes
) -> list[dict[str, Any]]:
    """The stage's rows for one chunk's payload of one rollup."""
    parts = [payload[at : at + _PART_BYTES] for at in range(0, len(payload), _PART_BYTES)]
    key = {"label": label, "rollup": rollup, "run_id": run_id, "chunk_no": chunk_no}
    return [{**key, "part": number, "payload": part} for number, part in enumerate(parts)]


def staged_frame(
    connection: Connection,
    stage: Table | None,
    label: str,
    sink: RollupSink,
    read: dict[str, int] | None = None,
) -> pd.DataFrame:
    """The cells the staged chunks of a rollup hold, as `partial_cells` made them. They
    are read as they come and merged every `_FOLD_CHUNKS` chunks (one row per cell), so
    memory is bounded by the number of cells, not by the number of chunks. ``read``
    receives the last chunk read of each run (a run numbers its chunks upwards)."""
    if stage is None:
        return pd.DataFrame()
    c = stage.c
    found = connection.execute(
        select(c.run_id, c.chunk_no, c.payload)
        .where(c.label == label, c.rollup == sink.name)
        .order_by(c.run_id, c.chunk_no, c.part)
        .execution_options(stream_results=True, yield_per=8)
    )
    merged: list[pd.DataFrame] = []
    waiting: list[pd.DataFrame] = []
    for (run, chunk), parts in itertools.groupby(found, key=lambda row: (row[0], row[1])):
        waiting.append(bytes_frame(b"".join(bytes(row[2]) for row in parts)))
        if read is not None:
            read[run] = max(chunk, read.get(run, chunk))
        if len(waiting) == _FOLD_CHUNKS:
            merged.append(_merged(waiting, sink))
            waiting = []
    if waiting:
        merged.append(_merged(waiting, sink) if merged else pd.concat(waiting, ignore_index=True))
    return pd.concat(merged, ignore_index=True) if merged else pd.DataFrame()


def _merged(frames: list[pd.DataFrame], sink: RollupSink) -> pd.DataFrame:
    """Staged cells merged into one partial row per cell."""
    return folded(pd.concat(frames, ignore_index=True), sink)


def rollup_rows(
    connection: Connection, table: Table, stage: Table | None, label: str, sink: RollupSink
) -> pd.DataFrame:
    """Every row of a rollup: its table's and its staged chunks' cells."""
    stored = _frame(connection, select(table))
    return _together(stored, staged_frame(connection, stage, label, sink))


def _frame(connection: Connection, statement: Select[Any]) -> pd.DataFrame:
    """A query's rows as a frame, one column per selected column."""
    result = connection.execute(statement)
    return pd.DataFrame(result.fetchall(), columns=list(result.keys()))


def _together(stored: pd.DataFrame, staged: pd.DataFrame) -> pd.DataFrame:
    """A rollup table's rows and staged cells in one frame."""
    parts = [
        frame for frame in (stored.drop(columns=["id"], errors="ignore"), staged) if len(frame)
    ]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def journal_row(run_id: str, label: str, chunk_no: int, action: str, rows: int) -> dict[str, Any]:
    """A journal entry for a chunk committing now."""
    return {
        "run_id": run_id,
        "label": label,
        "chunk_no": chunk_no,
        "action": action,
        "rows": rows,
        "committed_at": datetime.now(UTC),
    }


def is_bookkeeping(table: str) -> bool:
    """Whether ``table`` is one of Tenure's own tables in the store (journal, marks, rollups)."""
    return table in (JOURNAL, MARKS, STAGE) or table.startswith("tenure_agg_")


def rollup_table_name(label: str, rollup: str) -> str:
    """``tenure_agg_<dataset>_<rollup>``, shortened with a hash when too long to quote."""
    name = f"tenure_agg_{label}_{rollup}"
    if len(name) <= _IDENTIFIER_LIMIT:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{name[: _IDENTIFIER_LIMIT - 9]}_{digest}"


def rollup_table(
    metadata: MetaData, label: str, sink: RollupSink, dimension_types: dict[str, TypeEngine[object]]
) -> Table:
    """One row per cell (and per chunk and cell until compaction, for chunks written cell by
    cell: record stores, and a dimension the stage cannot hold): partial counts and sums,
    serialized sketches, and the final figures of a sealed cell."""
    columns: list[Column[Any]] = [
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("run_id", String(36), nullable=False),
        Column("chunk_no", Integer, nullable=False),
        Column("period_start", Date, nullable=False),
        *(
            Column(f"dim_{d}", _declared(dimension_types[d]), nullable=True)
            for d in sink.dimensions
        ),
        Column("n", BigInteger, nullable=False),
        # Double, not Float: MySQL's FLOAT is single precision.
        *(Column(f"sum_{c}", Double, nullable=True) for c in sink.sums),
        *(Column(f"hll_{c}", LargeBinary, nullable=True) for c in sink.distinct),
        *(Column(f"kll_{c}", LargeBinary, nullable=True) for c in sink.quantiles),
        # A sealed row: a released cell's final figures, its sketches gone.
        Column(SEALED, Boolean, nullable=True),
        *(Column(f"count_distinct_{c}", BigInteger, nullable=True) for c in sink.distinct),
        *(Column(f"median_{c}", Double, nullable=True) for c in sink.quantiles),
    ]
    if sink.subject is not None:
        # An exact sink's people sketch grows 8 bytes a person: past MySQL's BLOB.
        people = _PAYLOAD if sink.exact_people else LargeBinary
        columns.append(Column(SUBJECTS, people, nullable=True))
        columns.append(Column(PEOPLE, BigInteger, nullable=True))
    return Table(rollup_table_name(label, sink.name), metadata, *columns)


class _Untyped(UserDefinedType[Any]):
    """A column declared without a type: SQLite keeps each value as it was given (no
    affinity), as in the source column, so a cell keyed by the number 1 stays 1."""

    cache_ok = True

    def get_col_spec(self, **kw: Any) -> str:
        return ""


def _declared(kind: TypeEngine[Any]) -> TypeEngine[Any]:
    """A dimension's type in the rollup table: its column's; for a column reflected
    without one, none in SQLite (each value kept as given, like the source's) and text
    elsewhere."""
    if isinstance(kind, NullType):
        return Text().with_variant(_Untyped(), "sqlite")
    return kind


def add_missing_columns(connection: Connection, wanted: Table) -> None:
    """Add to the table in the store the nullable columns of ``wanted`` it lacks (a rollup
    table written by an earlier version of Tenure), and on MySQL and MariaDB widen to
    LONGBLOB a BLOB column ``wanted`` declares LONGBLOB (a rollup whose people became
    exact: its BLOB would refuse or cut a sketch past 64 KiB)."""
    found = {c["name"]: c for c in inspect(connection).get_columns(wanted.name, wanted.schema)}
    preparer = connection.dialect.identifier_preparer
    for column in wanted.columns:
        kind = column.type.compile(dialect=connection.dialect)
        if column.name not in found:
            verb = "ADD"
        elif _needs_longblob(connection, column, found[column.name]["type"]):
            verb, kind = "MODIFY", kind if column.nullable else f"{kind} NOT NULL"
        else:
            continue
        connection.execute(
            text(
                f"ALTER TABLE {preparer.format_table(wanted)} "
                f"{verb} COLUMN {preparer.quote(column.name)} {kind}"
            )
        )


def _needs_longblob(connection: Connection, column: Column[Any], present: Any) -> bool:
    """Whether ``column`` is declared LONGBLOB on MySQL or MariaDB but the store's is
    a smaller binary type."""
    if connection.dialect.name not in ("mysql", "mariadb"):
        return False
    declared = column.type.dialect_impl(connection.dialect)
    return isinstance(declared, mysql.LONGBLOB) and not isinstance(present, mysql.LONGBLOB)


def compact_rollup(
    connection: Connection,
    table: Table,
    sink: RollupSink,
    sealed: Sequence[date],
    run_id: str,
    stage: tuple[Table, str] | None = None,
) -> int:
    """In the caller's transaction: replace the rows of every period that has partial
    rows, in the table or among the ``(stage, label)``'s chunks of the rollup, by
    `compacted_rows` (one partial row per cell; one sealed row per cell of the
    ``sealed`` periods, their sketches destroyed), and delete the staged chunks it
    read. The number of cells written."""
    read: dict[str, int] = {}
    staged = pd.DataFrame() if stage is None else staged_frame(connection, *stage, sink, read)
    is_open = or_(table.c[SEALED].is_(None), table.c[SEALED] == false())
    periods = set(connection.scalars(select(table.c.period_start).where(is_open).distinct()))
    if len(staged):
        periods |= {period_date(p) for p in staged["period_start"].unique()}
    if not periods:
        return 0
    chosen = table.c.period_start.in_(sorted(periods))
    rows = _together(_frame(connection, select(table).where(chosen)), staged)
    written = compacted_rows(rows, sink, sealed, run_id)
    # The run holds the store's lock: these are the rows just read.
    connection.execute(delete(table).where(chosen))
    if stage is not None:
        staging, label = stage
        mine = and_(staging.c.label == label, staging.c.rollup == sink.name)
        for run, last in read.items():  # the chunks read, not one committed since
            run_chunks = and_(staging.c.run_id == run, staging.c.chunk_no <= last)
            connection.execute(delete(staging).where(mine, run_chunks))
    if written:
        connection.execute(insert(table), written)
    return len(written)
