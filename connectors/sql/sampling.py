"""Random samples of a column's values, drawn inside the database, and cheap row counts.

A scan must cost the same on a table of a hundred thousand rows as on one of a
hundred million, so nothing here reads a whole table when the store can do better:

* PostgreSQL samples pages with ``TABLESAMPLE SYSTEM`` at a rate chosen from the
  planner's row estimate (``pg_class.reltuples``) to return about twenty times the
  values wanted, then picks the values at random among those; a column too sparse for
  that rate is sampled again at ten times the rate, up to the whole table.
* Other stores (SQLite, MySQL, MariaDB) have no ``TABLESAMPLE``; they read the column
  once and keep a random ``limit`` of its values (``ORDER BY random() LIMIT n``, a
  bounded sort; SQLAlchemy writes ``RAND()`` for MySQL and MariaDB).
* MySQL and MariaDB estimate a table's rows in ``information_schema.TABLES``.

Long texts are cut in the database (``substr``) so that a column of e-mail bodies does
not bring megabytes back for a classifier that reads the first few thousand characters.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from sqlalchemy import (
    ColumnElement,
    Connection,
    FromClause,
    Table,
    Text,
    cast,
    func,
    select,
    tablesample,
)

from connectors.sql.functions import estimated_rows
from connectors.type_families import family_of

#: Characters of a text value the sample keeps.
MAX_TEXT_CHARS: Final = 2_000
#: The page sample aims at this many times the values wanted, and the database keeps a
#: random ``limit`` of them (``ORDER BY random() LIMIT``, so only those travel): rows
#: written together sit on the same page and look alike, so the values must come from
#: many pages, and NULLs rarely force a second query.
OVERSAMPLE: Final = 20.0
#: How much the sampling rate grows when a column came back short.
RATE_GROWTH: Final = 10.0


def estimate_rows(connection: Connection, table: Table) -> int:
    """The store's own row estimate (`estimated_rows`: PostgreSQL's planner, the storage
    engine's on MySQL and MariaDB); an exact count where it has none (none yet, or a
    store without one, such as SQLite)."""
    estimate = estimated_rows(table)
    if estimate.renders_on(connection.dialect.name):
        rows = connection.execute(select(estimate)).scalar()
        if rows is not None:
            return int(float(rows))
    return int(connection.execute(select(func.count()).select_from(table)).scalar() or 0)


def sample_values(
    connection: Connection, table: Table, columns: Sequence[str], limit: int
) -> dict[str, list[Any]]:
    """Up to ``limit`` non-null values of each of ``columns``, drawn at random."""
    if limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit}")
    if connection.dialect.name != "postgresql":
        return {name: _fetch(connection, table, name, limit) for name in columns}
    rows = estimate_rows(connection, table)  # sets the page-sampling rate
    return {name: _sample_pages(connection, table, name, limit, rows) for name in columns}


def _sample_pages(
    connection: Connection, table: Table, name: str, limit: int, rows: int
) -> list[Any]:
    rate = min(100.0, 100.0 * OVERSAMPLE * limit / max(rows, 1))
    while True:
        source = table if rate >= 100.0 else tablesample(table, func.system(rate))
        values = _fetch(connection, source, name, limit)
        if len(values) >= limit or rate >= 100.0:
            return values
        rate = min(100.0, rate * RATE_GROWTH)


def _fetch(connection: Connection, source: FromClause, name: str, limit: int) -> list[Any]:
    column = source.c[name]
    statement = (
        select(_readable(column))
        .select_from(source)
        .where(column.is_not(None))
        .order_by(func.random())
        .limit(limit)
    )
    return list(connection.execute(statement).scalars())


def _readable(column: ColumnElement[Any]) -> ColumnElement[Any]:
    """Text cut to ``MAX_TEXT_CHARS``; types without a family (JSON, UUID) as text."""
    family, _ = family_of(column.type)
    if family == "text":
        return func.substr(column, 1, MAX_TEXT_CHARS)
    if family == "other":
        return func.substr(cast(column, Text), 1, MAX_TEXT_CHARS)
    return column
