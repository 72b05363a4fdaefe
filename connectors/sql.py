"""The SQL connector: any database SQLAlchemy 2 reaches (SQLite, PostgreSQL and MariaDB
tested; MySQL through the same dialect).

Tables are reflected once per connector and every query is built from SQLAlchemy Core
expressions, so counting expired rows happens in the database with one statement.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import (
    URL,
    ColumnElement,
    MetaData,
    String,
    Table,
    and_,
    case,
    cast,
    create_engine,
    exists,
    func,
    inspect,
    make_url,
    not_,
    select,
)
from sqlalchemy.exc import (
    DisconnectionError,
    InterfaceError,
    NoSuchTableError,
    OperationalError,
    SQLAlchemyError,
)

from connectors.errors import StoreError, StoreUnavailable
from connectors.protocol import (
    Capabilities,
    ChunkResult,
    ChunkWork,
    ExpiryCounts,
    ExpirySelection,
    ForeignKeyInfo,
    JournalEntry,
    PublishedCell,
    RollupSink,
    TableInfo,
)
from connectors.rollups import merge_cells
from connectors.sql_bookkeeping import JOURNAL, MARKS, is_bookkeeping, rollup_table_name
from connectors.sql_chunks import Bookkeeping, execute_chunk, not_marked
from connectors.sql_expressions import (
    clock_expired,
    column_info,
    is_mysql,
    matches,
    matches_any,
    utc_sessions,
)
from connectors.sql_sampling import estimate_rows, sample_values
from connectors.times import TimeContext

_LOCK_NAME_LIMIT = 64  # MySQL's, for GET_LOCK


class SQLConnector:
    """A store behind a SQLAlchemy URL.

    With ``read_only`` (the default) a SQLite file is opened in read-only mode, so that
    asking about a store never creates or changes it.
    """

    def __init__(
        self,
        name: str,
        url: str,
        *,
        naive_timezone: str = "UTC",
        local_timezone: str = "UTC",
        read_only: bool = True,
        bookkeeping_dir: str | None = None,
    ) -> None:
        # ``bookkeeping_dir`` is for stores without SQL: a database keeps its own
        # bookkeeping tables, in the same transactions as its rows.
        self.name = name
        self._url = make_url(url)
        self._password = self._url.password
        self._times = TimeContext(naive_timezone, local_timezone)
        self._engine = create_engine(_read_only(self._url) if read_only else self._url)
        utc_sessions(self._engine)
        self._tables: dict[tuple[str | None, str], Table | None] = {}
        self._books: dict[tuple[str, str], Bookkeeping] = {}

    @property
    def display_url(self) -> str:
        return self._url.render_as_string(hide_password=True)

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(transactions=True, pushdown=True, partitions=False)

    def ping(self) -> None:
        try:
            with self._engine.connect() as connection:
                connection.execute(select(1))
        except SQLAlchemyError as exc:
            raise self._unavailable(exc) from None

    def table_info(self, table: str, schema: str | None = None) -> TableInfo | None:
        reflected = self._table(table, schema)
        if reflected is None:
            return None
        return TableInfo(
            name=table,
            schema=schema,
            columns={c.name: column_info(reflected, c.name) for c in reflected.columns},
            primary_key=tuple(c.name for c in reflected.primary_key.columns),
            foreign_keys=tuple(
                ForeignKeyInfo(
                    columns=tuple(c.name for c in fk.columns),
                    referred_table=fk.referred_table.name,
                    referred_columns=tuple(e.column.name for e in fk.elements),
                )
                for fk in reflected.foreign_key_constraints
            ),
        )

    def table_names(self, schema: str | None = None) -> list[str]:
        with self._translated_errors():
            names = inspect(self._engine).get_table_names(schema)
        return sorted(name for name in names if not is_bookkeeping(name))

    def estimate_rows(self, table: str, schema: str | None = None) -> int:
        reflected = self._require(table, schema)
        with self._translated_errors(), self._engine.connect() as connection:
            return estimate_rows(connection, reflected)

    def sample_values(
        self, table: str, columns: Sequence[str], limit: int, schema: str | None = None
    ) -> dict[str, list[Any]]:
        reflected = self._require(table, schema)
        missing = [name for name in columns if name not in reflected.c]
        if missing:
            raise StoreError(self.name, self.display_url, f"no column {missing[0]!r} in {table!r}")
        with self._translated_errors(), self._engine.connect() as connection:
            return sample_values(connection, reflected, columns, limit)

    def count_expiry(self, selection: ExpirySelection) -> ExpiryCounts:
        table = self._require(selection.table, selection.schema)
        expired, held = self._expired_and_held(table, selection)

        def count_if(condition: ColumnElement[bool]) -> ColumnElement[int]:
            return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)

        statement = select(
            func.count(),
            count_if(and_(expired, not_(held))),
            count_if(and_(expired, held)),
            *(
                count_if(and_(expired, matches(table, f, self._times)))
                for f in selection.exclusions
            ),
        ).select_from(table)
        with self._translated_errors(), self._engine.connect() as connection:
            row = connection.execute(statement).one()
        total, expired_count, held_count, *per_filter = (int(v) for v in row)
        return ExpiryCounts(
            total=total,
            expired=expired_count,
            held=held_count,
            held_by={f.name: n for f, n in zip(selection.exclusions, per_filter, strict=True)},
        )

    def count_groups(
        self, table: str, columns: Sequence[str], marked: str, schema: str | None = None
    ) -> list[tuple[tuple[Any, ...], int]]:
        reflected = self._require(table, schema)
        marks = self._table(MARKS, None)
        if marks is None:
            return []
        (key,) = reflected.primary_key.columns  # marks exist for one-column keys only
        chosen = [reflected.c[c] for c in columns]
        statement = (
            select(*chosen, func.count())
            .select_from(reflected)
            .where(exists().where(marks.c.label == marked, marks.c.row_key == cast(key, String)))
            .group_by(*chosen)
        )
        with self._translated_errors(), self._engine.connect() as connection:
            return [(tuple(row[:-1]), int(row[-1])) for row in connection.execute(statement)]

    def read_rows(
        self, selection: ExpirySelection, columns: Sequence[str], chunk_size: int
    ) -> Iterator[list[tuple[Any, ...]]]:
        table = self._require(selection.table, selection.schema)
        keys = [table.c[k] for k in selection.primary_key]
        statement = (
            select(*(table.c[c] for c in columns))
            .where(self._actionable(table, selection))
            .order_by(*keys)
        )
        with self._translated_errors(), self._engine.connect() as connection:
            result = connection.execution_options(yield_per=chunk_size).execute(statement)
            for partition in result.partitions(chunk_size):
                yield [tuple(row) for row in partition]

    def execute_chunk(self, work: ChunkWork) -> ChunkResult:
        table = self._require(work.selection.table, work.selection.schema)
        books = self._bookkeeping(work)
        with self._translated_errors(), self._engine.begin() as connection:
            rows = execute_chunk(
                connection, table, books, work, self._actionable(table, work.selection), self._times
            )
        return rows

    def journal(self, run_id: str) -> list[JournalEntry]:
        journal = self._table(JOURNAL, None)
        if journal is None:
            return []
        statement = (
            select(journal)
            .where(journal.c.run_id == run_id)
            .order_by(journal.c.label, journal.c.chunk_no)
        )
        with self._translated_errors(), self._engine.connect() as connection:
            return [JournalEntry(**row) for row in connection.execute(statement).mappings()]

    def rollup_cells(self, label: str, rollup: RollupSink) -> list[PublishedCell]:
        table = self._table(rollup_table_name(label, rollup.name), None)
        if table is None:
            return []
        with self._translated_errors(), self._engine.connect() as connection:
            rows = [dict(row) for row in connection.execute(select(table)).mappings()]
        return merge_cells(rows, rollup)

    @contextmanager
    def exclusive(self, name: str) -> Iterator[bool]:
        """A lock in the database server, held by one connection and released by the
        server if this process dies: PostgreSQL's advisory lock, MySQL's and MariaDB's
        named lock (``GET_LOCK`` without waiting). Other stores (SQLite) have none."""
        digest = hashlib.sha256(name.encode()).digest()
        backend = self._url.get_backend_name()
        if backend == "postgresql":
            key = int.from_bytes(digest[:8], "big", signed=True)
            take, release = func.pg_try_advisory_lock(key), func.pg_advisory_unlock(key)
        elif is_mysql(backend):
            # A lock's name is at most 64 characters.
            lock = name if len(name) <= _LOCK_NAME_LIMIT else f"tenure:{digest.hex()[:57]}"
            take, release = func.get_lock(lock, 0), func.release_lock(lock)
        else:
            yield True
            return
        with self._translated_errors(), self._engine.connect() as connection:
            acquired = bool(connection.execute(select(take)).scalar())
            connection.commit()
            try:
                yield acquired
            finally:
                if acquired:
                    connection.execute(select(release))
                    connection.commit()

    def close(self) -> None:
        self._engine.dispose()

    def _expired_and_held(
        self, table: Table, selection: ExpirySelection
    ) -> tuple[ColumnElement[bool], ColumnElement[bool]]:
        event_table = (
            self._require(selection.event.table, selection.schema) if selection.event else None
        )
        expired = clock_expired(table, selection, self._times, event_table)
        if selection.skip_marked is not None:
            marks = self._table(MARKS, None)
            if marks is not None:
                expired = and_(expired, not_marked(table, selection, marks))
        return expired, matches_any(table, selection.exclusions, self._times)

    def _actionable(self, table: Table, selection: ExpirySelection) -> ColumnElement[bool]:
        expired, held = self._expired_and_held(table, selection)
        return and_(expired, not_(held))

    def _bookkeeping(self, work: ChunkWork) -> Bookkeeping:
        """Create Tenure's tables in the store the first time a label needs them."""
        key = (work.label, work.action)
        if key not in self._books:
            source = self._require(work.selection.table, work.selection.schema)
            with self._translated_errors():
                self._books[key] = Bookkeeping.ensure(self._engine, source, work)
            self._tables.pop((None, MARKS), None)
            self._tables.pop((None, JOURNAL), None)
        return self._books[key]

    @contextmanager
    def _translated_errors(self) -> Iterator[None]:
        try:
            yield
        except SQLAlchemyError as exc:
            raise self._unavailable(exc) from None

    def _require(self, table: str, schema: str | None) -> Table:
        reflected = self._table(table, schema)
        if reflected is None:
            raise StoreUnavailable(self.name, self.display_url, f"table {table!r} does not exist")
        return reflected

    def _table(self, table: str, schema: str | None) -> Table | None:
        key = (schema, table)
        if key not in self._tables:
            try:
                self._tables[key] = Table(
                    table, MetaData(), schema=schema, autoload_with=self._engine
                )
            except NoSuchTableError:
                self._tables[key] = None
            except SQLAlchemyError as exc:
                raise self._unavailable(exc) from None
        return self._tables[key]

    def _unavailable(self, exc: SQLAlchemyError) -> StoreError:
        """Lost or refused connections are `StoreUnavailable` (worth a retry); any other
        database error is a `StoreError` (retrying would fail the same way)."""
        transient = isinstance(exc, OperationalError | InterfaceError | DisconnectionError)
        kind = StoreUnavailable if transient else StoreError
        return kind(self.name, self.display_url, self._reason(exc))

    def _reason(self, exc: SQLAlchemyError) -> str:
        """The driver's first line, with the password masked should a driver echo it."""
        original = getattr(exc, "orig", None) or exc
        text = (str(original).strip().splitlines() or [type(original).__name__])[0]
        match original.args:
            case (int(code), str(message)):  # MySQL's drivers: (error number, message)
                text = f"{message} (error {code})"
        if self._password:
            text = text.replace(str(self._password), "***")
        if self._url.get_backend_name() == "sqlite" and "unable to open" in text:
            text += f" (does {self._url.database} exist?)"
        return text


def _read_only(url: URL) -> URL:
    """SQLite opened through a ``file:`` URI with ``mode=ro`` fails instead of creating
    a missing file; other backends are only ever sent SELECTs by a read-only connector."""
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return url
    path = Path(url.database or "")
    return url.set(database=f"file:{path}", query={**url.query, "mode": "ro", "uri": "true"})
