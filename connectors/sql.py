"""The SQL connector: any database SQLAlchemy 2 reaches (SQLite and PostgreSQL tested).

Tables are reflected once per connector and every query is built from SQLAlchemy Core
expressions, so counting expired rows happens in the database with one statement.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import (
    URL,
    ColumnElement,
    Engine,
    MetaData,
    Table,
    and_,
    case,
    create_engine,
    func,
    make_url,
    not_,
    select,
)
from sqlalchemy.exc import NoSuchTableError, SQLAlchemyError

from connectors.errors import StoreUnavailable
from connectors.protocol import (
    ExpiryCounts,
    ExpirySelection,
    ForeignKeyInfo,
    TableInfo,
)
from connectors.sql_expressions import (
    TimeContext,
    clock_expired,
    column_info,
    matches,
    matches_any,
)


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
    ) -> None:
        self.name = name
        self._url = make_url(url)
        self._password = self._url.password
        self._times = TimeContext(naive_timezone, local_timezone)
        self._engine = create_engine(_read_only(self._url) if read_only else self._url)
        self._tables: dict[tuple[str | None, str], Table | None] = {}

    @property
    def display_url(self) -> str:
        return self._url.render_as_string(hide_password=True)

    @property
    def engine(self) -> Engine:
        return self._engine

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

    def count_expiry(self, selection: ExpirySelection) -> ExpiryCounts:
        table = self._require(selection.table, selection.schema)
        event_table = (
            self._require(selection.event.table, selection.schema).alias("clock_event")
            if selection.event
            else None
        )
        expired = clock_expired(table, selection, self._times, event_table)  # type: ignore[arg-type]
        held = matches_any(table, selection.exclusions, self._times)

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
        try:
            with self._engine.connect() as connection:
                row = connection.execute(statement).one()
        except SQLAlchemyError as exc:
            raise self._unavailable(exc) from None
        total, expired_count, held_count, *per_filter = (int(v) for v in row)
        return ExpiryCounts(
            total=total,
            expired=expired_count,
            held=held_count,
            held_by={f.name: n for f, n in zip(selection.exclusions, per_filter, strict=True)},
        )

    def close(self) -> None:
        self._engine.dispose()

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

    def _unavailable(self, exc: SQLAlchemyError) -> StoreUnavailable:
        return StoreUnavailable(self.name, self.display_url, self._reason(exc))

    def _reason(self, exc: SQLAlchemyError) -> str:
        """The driver's first line, with the password masked should a driver echo it."""
        original = getattr(exc, "orig", None) or exc
        text = (str(original).strip().splitlines() or [type(original).__name__])[0]
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
