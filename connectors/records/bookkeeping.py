"""The bookkeeping database of a record store: journal, marks, rollups and intents.

A folder of files or a mailbox cannot hold Tenure's tables, and cannot commit a change
together with its journal entry. So a record store's bookkeeping lives in a SQLite file
of its own (one per store, in the directory the flows give), with the same journal,
marks and rollup tables as a SQL store, plus one more: the **intent** a chunk writes
before it touches the store. An intent holds everything needed to finish the chunk (its
keys, the new values, the version of each unit it touches), and the chunk's rollup cells
commit with it; after a crash the intent is replayed, so each chunk is done once and
counted once.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import (
    Boolean,
    Column,
    Date,
    DateTime,
    Engine,
    Float,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    delete,
    func,
    insert,
    inspect,
    select,
)
from sqlalchemy.types import TypeEngine

from connectors.protocol import ColumnInfo, JournalEntry, Key, PublishedCell, RollupSink
from connectors.rollups import merge_cells
from connectors.sql.bookkeeping import (
    add_missing_columns,
    bookkeeping_metadata,
    compact_rollup,
    journal_row,
    rollup_table,
    rollup_table_name,
)
from connectors.values import bytes_frame, frame_bytes, plain

INTENTS = "tenure_intents"

_TYPES: dict[str, TypeEngine[Any]] = {
    "date": Date(),
    "integer": Integer(),
    "numeric": Float(),
    "boolean": Boolean(),
    "text": Text(),
    "other": Text(),
}


def sql_type(info: ColumnInfo) -> TypeEngine[Any]:
    """The SQL type a rollup dimension of this field is stored as."""
    if info.family == "datetime":
        return DateTime(timezone=info.timezone_aware)
    return _TYPES[info.family]


def key_text(key: Key) -> str:
    """A record key as the marks table stores it (JSON, so composite keys round-trip)."""
    return json.dumps([plain(part) for part in key], default=str)


def unit_prefix(unit: Key) -> str:
    """The start of ``key_text`` for every key inside ``unit``."""
    return key_text(unit)[:-1] + ", "


@dataclass(frozen=True)
class Intent:
    """A chunk decided but perhaps not yet applied to the store."""

    id: int
    run_id: str
    label: str
    chunk_no: int
    action: str
    collection: str
    keys: list[Key]
    values: pd.DataFrame | None
    versions: dict[Key, str]
    partitions: bool
    """The keys name whole partitions (``(name,)``), dropped at once."""
    rows: int
    """The records the chunk deletes or rewrites (journaled as such)."""


class RecordBookkeeping:
    """One store's bookkeeping database (created on first write, read if present)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._engine: Engine | None = None
        self._metadata, self.journal_table, self.marks = bookkeeping_metadata(None)
        self.intents = Table(
            INTENTS,
            self._metadata,
            Column("id", Integer, primary_key=True, autoincrement=True),
            Column("run_id", String(36), nullable=False),
            Column("label", String(63), nullable=False),
            Column("chunk_no", Integer, nullable=False),
            Column("action", String(24), nullable=False),
            Column("collection", Text, nullable=False),
            Column("keys", Text, nullable=False),
            Column("new_values", LargeBinary, nullable=True),
            Column("versions", Text, nullable=False),
            Column("partitions", Boolean, nullable=False),
            Column("rows", Integer, nullable=False),
            Column("created_at", DateTime(timezone=True), nullable=False),
        )
        self._rollups: dict[str, Table] = {}

    @property
    def exists(self) -> bool:
        return self.path.exists()

    def engine(self) -> Engine:
        if self._engine is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._engine = create_engine(f"sqlite:///{self.path}")
            self._metadata.create_all(self._engine, checkfirst=True)
        return self._engine

    def rollup(self, label: str, sink: RollupSink, fields: dict[str, ColumnInfo]) -> Table:
        """The rollup table of ``sink`` (created when missing)."""
        name = rollup_table_name(label, sink.name)
        if name not in self._rollups:
            types = {d: sql_type(fields[d]) for d in sink.dimensions}
            table = rollup_table(MetaData(), label, sink, types)
            table.create(self.engine(), checkfirst=True)
            with self.engine().begin() as connection:
                add_missing_columns(connection, table)
            self._rollups[name] = table
        return self._rollups[name]

    # intents

    def open_intent(
        self,
        intent: Intent,
        cells: Sequence[tuple[Table, list[dict[str, Any]]]] = (),
    ) -> int:
        """Record the intent, and the chunk's rollup cells with it, in one transaction."""
        with self.engine().begin() as connection:
            inserted = connection.execute(
                insert(self.intents).values(
                    run_id=intent.run_id,
                    label=intent.label,
                    chunk_no=intent.chunk_no,
                    action=intent.action,
                    collection=intent.collection,
                    keys=json.dumps([[plain(p) for p in key] for key in intent.keys]),
                    new_values=None if intent.values is None else frame_bytes(intent.values),
                    versions=json.dumps([[list(u), v] for u, v in intent.versions.items()]),
                    partitions=intent.partitions,
                    rows=intent.rows,
                    created_at=datetime.now(UTC),
                )
            ).inserted_primary_key
            for table, rows in cells:
                if rows:
                    connection.execute(insert(table), rows)
        assert inserted is not None
        return int(inserted[0])

    def pending(self, label: str) -> Iterator[Intent]:
        """Intents of ``label`` not yet closed, oldest first."""
        if not self.exists:
            return
        statement = (
            select(self.intents).where(self.intents.c.label == label).order_by(self.intents.c.id)
        )
        with self.engine().connect() as connection:
            rows = list(connection.execute(statement).mappings())
        for row in rows:
            blob = row["new_values"]
            yield Intent(
                id=row["id"],
                run_id=row["run_id"],
                label=row["label"],
                chunk_no=row["chunk_no"],
                action=row["action"],
                collection=row["collection"],
                keys=[tuple(key) for key in json.loads(row["keys"])],
                values=None if blob is None else bytes_frame(blob),
                versions={tuple(u): v for u, v in json.loads(row["versions"])},
                partitions=bool(row["partitions"]),
                rows=int(row["rows"]),
            )

    def close_intent(self, intent: Intent, marked: Sequence[Key], shifted: dict[str, str]) -> None:
        """Journal the chunk, mark its rows, move shifted marks, drop the intent: one
        transaction. ``shifted`` maps old mark keys to new ones (``""``: mark removed)."""
        marks = self.marks
        with self.engine().begin() as connection:
            journal = journal_row(
                intent.run_id, intent.label, intent.chunk_no, intent.action, intent.rows
            )
            connection.execute(insert(self.journal_table).values(journal))
            moving = list(
                connection.execute(select(marks).where(marks.c.row_key.in_(list(shifted))))
            ) if shifted else []  # fmt: skip
            if moving:  # all removed first: a new key may be another mark's old one
                connection.execute(delete(marks).where(marks.c.row_key.in_(list(shifted))))
                moved = [
                    {"label": m.label, "row_key": shifted[m.row_key], "run_id": m.run_id}
                    for m in moving
                    if shifted[m.row_key]
                ]
                if moved:
                    connection.execute(insert(marks), moved)
            if marked:
                connection.execute(
                    insert(marks),
                    [
                        {"label": intent.label, "row_key": key_text(k), "run_id": intent.run_id}
                        for k in marked
                    ],
                )
            connection.execute(delete(self.intents).where(self.intents.c.id == intent.id))

    # reading

    def marked(self, label: str) -> set[str]:
        if not self.exists:
            return set()
        statement = select(self.marks.c.row_key).where(self.marks.c.label == label)
        with self.engine().connect() as connection:
            return set(connection.execute(statement).scalars())

    def marks_in_unit(self, unit: Key) -> list[str]:
        """Every mark (any label) of a record inside ``unit``."""
        if not self.exists:
            return []
        prefix = unit_prefix(unit)
        statement = select(self.marks.c.row_key).where(
            self.marks.c.row_key.startswith(prefix, autoescape=True)
        )
        with self.engine().connect() as connection:
            return sorted(set(connection.execute(statement).scalars()))

    def journal(self, run_id: str) -> list[JournalEntry]:
        if not self.exists:
            return []
        table = self.journal_table
        statement = (
            select(table).where(table.c.run_id == run_id).order_by(table.c.label, table.c.chunk_no)
        )
        with self.engine().connect() as connection:
            return [JournalEntry(**row) for row in connection.execute(statement).mappings()]

    def journal_runs(self) -> list[str]:
        if not self.exists:
            return []
        table = self.journal_table
        statement = (
            select(table.c.run_id)
            .group_by(table.c.run_id)
            .order_by(func.min(table.c.committed_at), table.c.run_id)
        )
        with self.engine().connect() as connection:
            return list(connection.scalars(statement))

    def rollup_cells(self, label: str, sink: RollupSink) -> list[PublishedCell]:
        if not self.exists:
            return []
        name = rollup_table_name(label, sink.name)
        engine = self.engine()
        if not inspect(engine).has_table(name):
            return []
        table = Table(name, MetaData(), autoload_with=engine)
        with engine.connect() as connection:
            rows = [dict(row) for row in connection.execute(select(table)).mappings()]
        return merge_cells(rows, sink)

    def compact_rollup(
        self, label: str, sink: RollupSink, sealed: Sequence[date], run_id: str
    ) -> int:
        """`Connector.compact_rollup` on this bookkeeping database."""
        if not self.exists:
            return 0
        name = rollup_table_name(label, sink.name)
        engine = self.engine()
        if not inspect(engine).has_table(name):
            return 0
        stored = Table(name, MetaData(), autoload_with=engine)
        types = {d: stored.c[f"dim_{d}"].type for d in sink.dimensions}
        wanted = rollup_table(MetaData(), label, sink, types)
        with engine.begin() as connection:
            add_missing_columns(connection, wanted)
            return compact_rollup(connection, wanted, sink, sealed, run_id)

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
