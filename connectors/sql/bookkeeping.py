"""Tenure's own tables inside a SQL store: the chunk journal, row marks and rollups.

They live in the store, not the state database, because they must change in the same
transaction as the rows they describe: a chunk's deletion, its journal entry and its
contribution to an aggregate commit together or not at all.
"""

from __future__ import annotations

import hashlib
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
    String,
    Table,
    delete,
    false,
    insert,
    inspect,
    or_,
    select,
    text,
)
from sqlalchemy.dialects import mysql
from sqlalchemy.types import TypeEngine

from connectors.protocol import RollupSink
from connectors.rollups import PEOPLE, SEALED, SUBJECTS, compacted_rows

JOURNAL = "tenure_journal"
MARKS = "tenure_marks"
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
    return table in (JOURNAL, MARKS) or table.startswith("tenure_agg_")


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
    """One row per chunk and cell: partial counts and sums, and serialized sketches."""
    columns: list[Column[Any]] = [
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("run_id", String(36), nullable=False),
        Column("chunk_no", Integer, nullable=False),
        Column("period_start", Date, nullable=False),
        *(Column(f"dim_{d}", dimension_types[d], nullable=True) for d in sink.dimensions),
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
        columns.append(Column(SUBJECTS, LargeBinary, nullable=True))
        columns.append(Column(PEOPLE, BigInteger, nullable=True))
    return Table(rollup_table_name(label, sink.name), metadata, *columns)


def add_missing_columns(connection: Connection, wanted: Table) -> None:
    """Add to the table in the store the nullable columns of ``wanted`` it lacks (a rollup
    table written by an earlier version of Tenure)."""
    present = {c["name"] for c in inspect(connection).get_columns(wanted.name, wanted.schema)}
    preparer = connection.dialect.identifier_preparer
    for column in wanted.columns:
        if column.name not in present:
            kind = column.type.compile(dialect=connection.dialect)
            connection.execute(
                text(
                    f"ALTER TABLE {preparer.format_table(wanted)} "
                    f"ADD COLUMN {preparer.quote(column.name)} {kind}"
                )
            )


def compact_rollup(
    connection: Connection,
    table: Table,
    sink: RollupSink,
    sealed: Sequence[date],
    run_id: str,
) -> int:
    """In the caller's transaction: replace the rows of every period that has partial
    rows by `compacted_rows` (one partial row per cell; one sealed row per cell of the
    ``sealed`` periods, their sketches destroyed). The number of cells written."""
    is_open = or_(table.c[SEALED].is_(None), table.c[SEALED] == false())
    periods = list(connection.scalars(select(table.c.period_start).where(is_open).distinct()))
    if not periods:
        return 0
    chosen = table.c.period_start.in_(periods)
    found = connection.execute(select(table).where(chosen)).mappings()
    rows = pd.DataFrame([dict(row) for row in found])
    written = compacted_rows(rows.drop(columns=["id"]), sink, sealed, run_id)
    # The run holds the store's lock: these are the rows just read.
    connection.execute(delete(table).where(chosen))
    if written:
        connection.execute(insert(table), written)
    return len(written)
