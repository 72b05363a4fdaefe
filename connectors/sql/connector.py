"""The SQL connector: any database SQLAlchemy 2 reaches (SQLite, PostgreSQL and MariaDB
tested; MySQL through the same dialect).

Tables are reflected once per connector and every query is built from SQLAlchemy Core
expressions, so counting expired rows happens in the database with one statement.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import date
from typing import Any

from sqlalchemy import (
    Column,
    ColumnElement,
    Index,
    MetaData,
    Table,
    UniqueConstraint,
    and_,
    case,
    create_engine,
    exists,
    func,
    inspect,
    make_url,
    not_,
    or_,
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
    ConnectorOptions,
    ExpiryCounts,
    ExpirySelection,
    ForeignKeyInfo,
    JournalEntry,
    PublishedCell,
    RollupSink,
    TableInfo,
    WriteTarget,
)
from connectors.rollups import merge_cells
from connectors.sql.bookkeeping import (
    JOURNAL,
    MARKS,
    STAGE,
    add_missing_columns,
    compact_rollup,
    is_bookkeeping,
    rollup_rows,
    rollup_table,
    rollup_table_name,
)
from connectors.sql.chunks import Bookkeeping, execute_chunk, not_marked, row_key
from connectors.sql.expressions import (
    Gone,
    clock_expired,
    clock_no_event,
    clock_unreadable,
    column_info,
    in_selection,
    matches,
    matches_any,
    utc_sessions,
)
from connectors.sql.functions import try_lock, unlock
from connectors.sql.references import (
    enforce_foreign_keys,
    other_schema_children,
    reference_name,
    reference_reason,
    referring_to,
    still_referred,
    store_foreign_keys,
    with_declared,
)
from connectors.sql.sampling import estimate_rows, sample_values
from connectors.sql.write_checks import write_problems
from connectors.times import TimeContext
from connectors.urls import hide_secrets, mask_url, read_only_url

#: A reference into a selection's table: the name its kept rows are counted under, the
#: reason, and the condition "a row that is not leaving refers to this one".
Reference = tuple[str, str, ColumnElement[bool]]


#: A schema of at most this many tables is reflected in one pass (`SQLConnector._read_schema`).
BULK_REFLECTION = 200


class SQLConnector:
    """A store behind a SQLAlchemy URL; the class is the SQL schemes' entry point.

    With ``options.read_only`` (the default) a SQLite file is opened in read-only mode,
    so that asking about a store never creates or changes it.
    """

    selects_subjects = True
    """It judges `ExpirySelection.only` and `every_row` in every statement."""

    def __init__(self, name: str, url: str, options: ConnectorOptions = ConnectorOptions()) -> None:
        # ``options.bookkeeping_dir`` is for stores without SQL: a database keeps its own
        # bookkeeping tables, in the same transactions as its rows.
        self.name = name
        self._url = make_url(url)
        self._times = TimeContext(options.naive_timezone, options.local_timezone)
        self._engine = create_engine(read_only_url(self._url) if options.read_only else self._url)
        utc_sessions(self._engine)
        enforce_foreign_keys(self._engine)
        self._tables: dict[tuple[str | None, str], Table | None] = {}
        # One MetaData for the store's own tables: a table reflected as the one a foreign
        # key refers to is not reflected again (customers, which every table refers to,
        # was read eleven times for the demo).
        self._metadata = MetaData()
        self._schemas_read: set[str | None] = set()
        self._foreign_keys: dict[str | None, dict[str, tuple[ForeignKeyInfo, ...]]] = {}
        self._foreign_children: dict[str | None, list[tuple[str, str, ForeignKeyInfo]]] = {}
        self._books: dict[tuple[str, str], Bookkeeping] = {}

    @property
    def display_url(self) -> str:
        return mask_url(self._url)

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
            foreign_keys=self._store_foreign_keys(schema).get(table, ()),
            unique_keys=tuple(
                dict.fromkeys(
                    tuple(c.name for c in unique.columns)
                    for unique in (*reflected.constraints, *reflected.indexes)
                    if isinstance(unique, UniqueConstraint)
                    or (isinstance(unique, Index) and unique.unique)
                )
            ),
            indexes=_indexes(reflected),
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
        expired, held, references = self._expired_and_held(table, selection)

        def count_if(condition: ColumnElement[bool]) -> ColumnElement[int]:
            return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)

        event_table = self._event_table(selection)
        gone = self._events_gone(selection)
        unreadable = clock_unreadable(table, selection, self._times, event_table, gone)
        no_event = clock_no_event(table, selection, self._times, event_table, gone)
        # The expiry test (on SQLite, reading the clock's form) once per row: rows that
        # would expire are counted whole, and the cheaper hold tests go first elsewhere.
        statement = select(
            func.count(),
            count_if(expired),
            count_if(and_(held, expired)),
            count_if(unreadable),
            count_if(no_event),
            *(
                count_if(
                    and_(
                        matches(
                            table,
                            f,
                            self._times,
                            self._in(selection),
                            correlated=bool(selection.only),
                        ),
                        expired,
                    )
                )
                for f in selection.exclusions
            ),
            *(count_if(and_(referred, expired)) for _, _, referred in references),
        ).select_from(table)
        if selection.only:  # the other rows are counted nowhere, not even in the total
            statement = statement.where(self._in_selection(table, selection))
        with self._translated_errors(), self._engine.connect() as connection:
            row = connection.execute(statement).one()
        total, due, held_count, unreadable_count, no_event_count, *per_filter = (
            int(v) for v in row
        )
        expired_count = due - held_count
        per_filter, per_reference = (
            per_filter[: len(selection.exclusions)],
            per_filter[len(selection.exclusions) :],
        )
        kept_by = [(r, n) for r, n in zip(references, per_reference, strict=True) if n]
        return ExpiryCounts(
            total=total,
            expired=expired_count,
            held=held_count,
            held_by={f.name: n for f, n in zip(selection.exclusions, per_filter, strict=True)}
            | {name: n for (name, _, _), n in kept_by},
            reasons={name: reason for (name, reason, _), _ in kept_by},
            unreadable=unreadable_count,
            no_event=no_event_count,
        )

    def count_groups(
        self, table: str, columns: Sequence[str], marked: str, schema: str | None = None
    ) -> list[tuple[tuple[Any, ...], int]]:
        reflected = self._require(table, schema)
        marks = self._table(MARKS, None)
        if marks is None:
            return []
        key = row_key(list(reflected.primary_key.columns))
        chosen = [reflected.c[c] for c in columns]
        statement = (
            select(*chosen, func.count())
            .select_from(reflected)
            .where(exists().where(marks.c.label == marked, marks.c.row_key == key))
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
        # The store as it is: rows that still refer to a row keep it, whatever was
        # foreseen; and no chunk deletes a row another row refers to.
        deletes = work.action != "anonymize"
        selection = replace(
            work.selection.as_the_store_is(),
            keep_referenced=work.selection.keep_referenced or deletes,
        )
        work = replace(work, selection=selection)
        with self._translated_errors(), self._engine.begin() as connection:
            rows = execute_chunk(
                connection, table, books, work, self._actionable(table, selection), self._times
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

    def journal_runs(self) -> list[str]:
        journal = self._table(JOURNAL, None)
        if journal is None:
            return []
        statement = (
            select(journal.c.run_id)
            .group_by(journal.c.run_id)
            .order_by(func.min(journal.c.committed_at), journal.c.run_id)
        )
        with self._translated_errors(), self._engine.connect() as connection:
            return list(connection.scalars(statement))

    def rollup_cells(self, label: str, rollup: RollupSink) -> list[PublishedCell]:
        table = self._table(rollup_table_name(label, rollup.name), None)
        if table is None:
            return []
        stage = self._stage()
        with self._translated_errors(), self._engine.connect() as connection:
            rows = rollup_rows(connection, table, stage, label, rollup)
        return merge_cells(rows, rollup)

    def compact_rollup(
        self, label: str, rollup: RollupSink, sealed: Sequence[date], run_id: str
    ) -> int:
        stored = self._table(rollup_table_name(label, rollup.name), None)
        if stored is None:
            return 0
        types = {d: stored.c[f"dim_{d}"].type for d in rollup.dimensions}
        wanted = rollup_table(MetaData(), label, rollup, types)
        stage = self._stage()
        staged = None if stage is None else (stage, label)
        with self._translated_errors(), self._engine.begin() as connection:
            add_missing_columns(connection, wanted)
            written = compact_rollup(connection, wanted, rollup, sealed, run_id, staged)
        self._tables.pop((None, wanted.name), None)
        return written

    def _stage(self) -> Table | None:
        """The rollups' stage; looked up again next time while it does not exist (the
        first chunk that aggregates creates it)."""
        stage = self._table(STAGE, None)
        if stage is None:
            self._tables.pop((None, STAGE), None)
        return stage

    @contextmanager
    def exclusive(self, name: str) -> Iterator[bool]:
        """A lock in the database server, held by one connection and released by the
        server if this process dies: PostgreSQL's advisory lock, MySQL's and MariaDB's
        named lock (``GET_LOCK`` without waiting). Other stores (SQLite) have none."""
        take, release = try_lock(name), unlock(name)
        if not take.renders_on(self._engine.dialect.name):
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

    def write_problems(self, targets: Sequence[WriteTarget]) -> list[str]:
        """Asked without changing anything (``connectors.sql.write_checks``)."""
        return write_problems(self._engine, self._url, targets, self._table, self._reason)

    def close(self) -> None:
        self._engine.dispose()

    def _expired_and_held(
        self, table: Table, selection: ExpirySelection, outer: frozenset[str] = frozenset()
    ) -> tuple[ColumnElement[bool], ColumnElement[bool], list[Reference]]:
        event_table = self._event_table(selection)
        gone = self._events_gone(selection, outer)
        expired = clock_expired(table, selection, self._times, event_table, gone)
        if selection.only:  # first: the test an index on the person's key answers
            expired = and_(self._in_selection(table, selection), expired)
        if selection.skip_marked is not None:
            marks = self._table(MARKS, None)
            if marks is not None:
                expired = and_(expired, not_marked(table, selection, marks))
        held = matches_any(
            table,
            selection.exclusions,
            self._times,
            self._in(selection),
            correlated=bool(selection.only),  # one person's rows: find each one's parent
        )
        references = self._references(table, selection, outer)
        if references:
            held = or_(held, *(referred for _, _, referred in references))
        return expired, held, references

    def _event_table(self, selection: ExpirySelection) -> Table | None:
        """The event clock's table, when the clock is read (not with ``every_row``)."""
        if selection.event is None or selection.every_row:
            return None
        return self._require(selection.event.table, selection.schema)

    def _in_selection(self, table: Table, selection: ExpirySelection) -> ColumnElement[bool]:
        """The rows of the selection's ``only`` filters (`in_selection`)."""
        return in_selection(table, selection, self._times, self._in(selection))

    def _actionable(
        self, table: Table, selection: ExpirySelection, outer: frozenset[str] = frozenset()
    ) -> ColumnElement[bool]:
        expired, held, _ = self._expired_and_held(table, selection, outer)
        return and_(expired, not_(held))

    def _events_gone(
        self, selection: ExpirySelection, outer: frozenset[str] = frozenset()
    ) -> Gone | None:
        """Counting ahead: "a binding that runs before this one deletes this event row"
        (`events_removed_first`, each judged as the run will judge it), or None."""
        leaving = [
            s
            for s in selection.events_removed_first
            if selection.event is not None
            and (s.table, s.schema) == (selection.event.table, selection.schema)
        ]
        if not leaving:
            return None
        inside = outer | {selection.table}

        def gone(rows: Table) -> ColumnElement[bool]:
            return or_(*(self._actionable(rows, s, inside) for s in leaving))

        return gone

    def _references(
        self, table: Table, selection: ExpirySelection, outer: frozenset[str] = frozenset()
    ) -> list[Reference]:
        """For a selection that deletes: each foreign key pointing at its table, as the
        name its kept rows are counted under, the reason, and the condition "a row that
        is not leaving refers to this one". Rows of `removed_first` leave (judged as the
        run will judge them, with their own references); tables of the enclosing
        selections (`outer`) are not judged again, so a cycle of keys ends."""
        if not selection.keep_referenced:
            return []
        inside = outer | {selection.table}
        found = []
        keys = with_declared(
            self._store_foreign_keys(selection.schema), selection.declared_references
        )
        for child_name, key in referring_to(selection.table, keys):
            child = self._require(child_name, selection.schema)
            leaving = [
                replace(s, removed_first=selection.removed_first)
                for s in selection.removed_first
                if s.table == child_name and s.schema == selection.schema
            ]

            def departs(
                rows: Table, leaving: list[ExpirySelection] = leaving
            ) -> ColumnElement[bool]:
                return or_(*(self._actionable(rows, s, inside) for s in leaving))

            judged = departs if leaving and child_name not in inside else None
            found.append(
                (
                    reference_name(child_name, key),
                    reference_reason(child_name, key),
                    still_referred(table, child, key, judged, few=bool(selection.only)),
                )
            )
        # Other schemas' rows never leave with this run: they keep what they refer to.
        for child_schema, child_name, key in self._other_schema_children(selection.schema):
            if key.referred_table != selection.table:
                continue
            child = self._require(child_name, child_schema)
            qualified = f"{child_schema}.{child_name}"
            found.append(
                (
                    reference_name(qualified, key),
                    reference_reason(qualified, key),
                    still_referred(table, child, key, None, few=bool(selection.only)),
                )
            )
        return found

    def _in(self, selection: ExpirySelection) -> Callable[[str], Table]:
        """The tables of the selection's schema, by name (for holds through references)."""
        return lambda name: self._require(name, selection.schema)

    def _other_schema_children(self, schema: str | None) -> list[tuple[str, str, ForeignKeyInfo]]:
        """Foreign keys of other schemas' tables into ``schema``, read once per schema."""
        if schema not in self._foreign_children:
            with self._translated_errors(), self._engine.connect() as connection:
                self._foreign_children[schema] = other_schema_children(inspect(connection), schema)
        return self._foreign_children[schema]

    def _store_foreign_keys(self, schema: str | None) -> dict[str, tuple[ForeignKeyInfo, ...]]:
        """Every foreign key of the schema's tables, read once per connector."""
        if schema not in self._foreign_keys:
            with self._translated_errors(), self._engine.connect() as connection:
                self._foreign_keys[schema] = store_foreign_keys(
                    inspect(connection), connection, schema
                )
        return self._foreign_keys[schema]

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
        if key not in self._tables and not is_bookkeeping(table):
            self._read_schema(schema)
        if key not in self._tables:
            try:
                # Tenure's bookkeeping tables are read afresh when they change.
                metadata = MetaData() if is_bookkeeping(table) else self._metadata
                self._tables[key] = Table(
                    table, metadata, schema=schema, autoload_with=self._engine
                )
            except NoSuchTableError:
                self._tables[key] = None
            except SQLAlchemyError as exc:
                raise self._unavailable(exc) from None
        return self._tables[key]

    def _read_schema(self, schema: str | None) -> None:
        """The first time a table of ``schema`` is asked for, reflect all of the schema's
        tables (not Tenure's own) at once when there are at most `BULK_REFLECTION`:
        PostgreSQL then reads every table's columns, keys and indexes in a handful of
        statements instead of several per table (0.1 s for the demo's eleven). A larger
        schema, or one that cannot be read in one go, is reflected table by table."""
        if schema in self._schemas_read:
            return
        self._schemas_read.add(schema)
        try:
            names = [
                n for n in inspect(self._engine).get_table_names(schema) if not is_bookkeeping(n)
            ]
            if not names or len(names) > BULK_REFLECTION:
                return
            self._metadata.reflect(bind=self._engine, schema=schema, only=names)
        except SQLAlchemyError:
            return  # each table is reflected on its own when asked, with its own error
        for name in names:
            found = self._metadata.tables.get(f"{schema}.{name}" if schema else name)
            if found is not None:
                self._tables.setdefault((schema, name), found)

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
        text = hide_secrets(text, self._url)
        if self._url.get_backend_name() == "sqlite" and "unable to open" in text:
            text += f" (does {self._url.database} exist?)"
        return text


def _indexes(reflected: Table) -> tuple[tuple[str, ...], ...]:
    """The leading plain columns of each index of the table: its primary key's, its
    unique constraints' and its indexes' (an index on an expression, ``lower(email)``,
    counts up to its first expression)."""
    found: list[tuple[str, ...]] = [tuple(c.name for c in reflected.primary_key.columns)]
    found += [
        tuple(c.name for c in unique.columns)
        for unique in reflected.constraints
        if isinstance(unique, UniqueConstraint)
    ]
    for index in reflected.indexes:
        leading: list[str] = []
        for expression in index.expressions:
            if not isinstance(expression, Column):
                break
            leading.append(expression.name)
        found.append(tuple(leading))
    return tuple(dict.fromkeys(columns for columns in found if columns))
