"""SQLAlchemy Core expressions for the protocol's selections.

Every value is a bound parameter and every identifier comes from a reflected `Table`,
so the dialect quotes it: no SQL is ever assembled from strings.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, Final, TypeVar

from sqlalchemy import (
    ColumnElement,
    Engine,
    Table,
    and_,
    event,
    exists,
    false,
    not_,
    or_,
    select,
    true,
    tuple_,
)
from sqlalchemy.sql.expression import FromClause

from connectors.protocol import COMPARISONS, ColumnInfo, Condition, ExpirySelection, RowFilter
from connectors.sql.clocks import before, comparable_timestamp, readable
from connectors.times import TimeContext, epoch_bound
from connectors.type_families import family_of

#: SQLAlchemy names the dialect ``mariadb`` for ``mariadb+pymysql://`` URLs and ``mysql``
#: for ``mysql+pymysql://`` ones, whichever server answers.
MYSQL_DIALECTS: Final = frozenset({"mysql", "mariadb"})
_Value = TypeVar("_Value")


def condition(table: Table, cond: Condition, times: TimeContext) -> ColumnElement[bool]:
    """A condition that is never NULL: a NULL column matches only ``is_null``. The op
    compares as `COMPARISONS` says (as it does in ``connectors.records.predicates``)."""
    column = table.c[cond.column]
    how = COMPARISONS[cond.op]
    if how.takes == "nothing":
        return column.is_not(None) if how.negated else column.is_(None)
    info = column_info(table, cond.column)
    compared: ColumnElement[Any] = column
    if info.family == "datetime":  # in the one form a bound timestamp has (SQLite)
        compared = comparable_timestamp(column)
    assert cond.value is not None, "the policy model guarantees a value"
    if how.takes == "values":
        options = cond.value if isinstance(cond.value, tuple) else (cond.value,)
        bound = tuple(in_utc(times.bind_value(info, v)) for v in options)
        test = compared.not_in(bound) if how.negated else compared.in_(bound)
    else:
        assert how.compare is not None and not isinstance(cond.value, tuple)
        test = how.compare(compared, in_utc(times.bind_value(info, cond.value)))
    return and_(column.is_not(None), test)


def matches_any(
    table: Table,
    filters: tuple[RowFilter, ...],
    times: TimeContext,
    tables: Callable[[str], Table] | None = None,
    *,
    correlated: bool = False,
) -> ColumnElement[bool]:
    if not filters:
        return false()
    return or_(*(matches(table, f, times, tables, correlated=correlated) for f in filters))


def matches(
    table: Table,
    row_filter: RowFilter,
    times: TimeContext,
    tables: Callable[[str], Table] | None = None,
    *,
    correlated: bool = False,
) -> ColumnElement[bool]:
    """The filter's conditions on the row, or, for a filter ``through`` references, on
    the row they lead to (``tables`` names the referred tables): the referring keys are
    one uncorrelated subquery per step, like ``still_referred``'s, read once for a whole
    table; or, ``correlated``, an ``EXISTS`` per row that finds its parent by its key
    (for a few rows, such as one person's: the uncorrelated list would read every row
    the conditions hold for, through an index or not)."""
    if not row_filter.through:
        return and_(true(), *(condition(table, c, times) for c in row_filter.conditions))
    assert tables is not None, "a filter through references needs its tables"
    key, rest = row_filter.through[0], row_filter.through[1:]
    parent = tables(key.referred_table)  # its own scope: the subquery is uncorrelated
    deeper = replace(row_filter, through=rest)
    held = matches(parent, deeper, times, tables, correlated=correlated)
    if correlated and parent is not table:
        pairs = [
            parent.c[referred] == table.c[referring]
            for referring, referred in zip(key.columns, key.referred_columns, strict=True)
        ]
        return exists().where(*pairs, held)
    referring = [table.c[c] for c in key.columns]
    target = referring[0] if len(referring) == 1 else tuple_(*referring)
    keys = select(*(parent.c[c] for c in key.referred_columns)).where(held).correlate(None)
    return and_(*(c.is_not(None) for c in referring), target.in_(keys))


def in_selection(
    table: Table,
    selection: ExpirySelection,
    times: TimeContext,
    tables: Callable[[str], Table] | None = None,
) -> ColumnElement[bool]:
    """Whether the row is one the selection is about: one of its `only` filters matches
    it (bound parameters; a list of values is one expanding ``IN``), or, without them,
    every row."""
    if not selection.only:
        return true()
    return matches_any(table, selection.only, times, tables)


#: "The run deletes this event row before the record's turn" (counting ahead).
Gone = Callable[[Table], ColumnElement[bool]]


def clock_expired(
    table: Table,
    selection: ExpirySelection,
    times: TimeContext,
    event_table: Table | None,
    gone: Gone | None = None,
) -> ColumnElement[bool]:
    """True when the row's clock is readable and strictly before the cut-off; never for
    a clock that has not started (NULL) or cannot be read (`connectors.sql.clocks`),
    including any one of several matching events. A row with no event row at all counts
    from the event clock's ``fallback`` column, if it has one. Event rows ``gone``
    selects are not counted (`_events`). With ``every_row``, every row, unread."""
    if selection.every_row:
        return true()
    if selection.event is None or event_table is None:
        return _own_clock_expired(table, selection, times)
    event = selection.event
    aliased, linked = _events(table, selection, event_table, gone)
    clock = aliased.c[event.column]
    readable, before = _clock_tests(aliased, event.column, selection, times)
    has_event = exists().where(linked)
    unfinished = exists().where(linked, or_(clock.is_(None), not_(before), not_(readable)))
    expired = and_(has_event, not_(unfinished))
    fallback = selection.by_fallback()
    if fallback is None:
        return expired
    return or_(expired, and_(not_(has_event), _own_clock_expired(table, fallback, times)))


def _own_clock_expired(
    table: Table, selection: ExpirySelection, times: TimeContext
) -> ColumnElement[bool]:
    column = table.c[selection.clock_column]
    readable, before = _clock_tests(table, selection.clock_column, selection, times)
    # The cheap comparison first: SQLite reads the value's form only for rows it
    # passes (an unreadable value compares either way; it is never expired).
    return and_(column.is_not(None), before, readable)


def clock_unreadable(
    table: Table,
    selection: ExpirySelection,
    times: TimeContext,
    event_table: Table | None,
    gone: Gone | None = None,
) -> ColumnElement[bool]:
    """True when the row's clock (or one of its events', or its fallback column when it
    has no event) holds a value that is not a timestamp in the selection's form: such a
    row is never expired, and is counted. With ``every_row`` the clock is not read."""
    if selection.every_row:
        return false()
    if selection.event is None or event_table is None:
        return _own_clock_unreadable(table, selection, times)
    aliased, linked = _events(table, selection, event_table, gone)
    clock = aliased.c[selection.event.column]
    readable, _ = _clock_tests(aliased, selection.event.column, selection, times)
    unreadable = exists().where(linked, clock.is_not(None), not_(readable))
    fallback = selection.by_fallback()
    if fallback is None:
        return unreadable
    no_event = not_(exists().where(linked))
    return or_(unreadable, and_(no_event, _own_clock_unreadable(table, fallback, times)))


def _own_clock_unreadable(
    table: Table, selection: ExpirySelection, times: TimeContext
) -> ColumnElement[bool]:
    column = table.c[selection.clock_column]
    readable, _ = _clock_tests(table, selection.clock_column, selection, times)
    return and_(column.is_not(None), not_(readable))


def clock_no_event(
    table: Table,
    selection: ExpirySelection,
    times: TimeContext,
    event_table: Table | None,
    gone: Gone | None = None,
) -> ColumnElement[bool]:
    """True for a row of an event clock that no event row matches, and that has no
    value in the clock's fallback column to count from instead: it never expires. (An
    event row whose column is NULL is an event that has not happened yet, not this.)
    With ``every_row`` the clock is not read."""
    if selection.every_row or selection.event is None or event_table is None:
        return false()
    _, linked = _events(table, selection, event_table, gone)
    no_event = not_(exists().where(linked))
    fallback = selection.event.fallback
    return no_event if fallback is None else and_(no_event, table.c[fallback].is_(None))


def _events(
    table: Table, selection: ExpirySelection, event_table: Table, gone: Gone | None = None
) -> tuple[FromClause, ColumnElement[bool]]:
    """The event rows and the condition linking one to the record: its key, and, when
    counting ahead, not among those ``gone`` selects (deleted by a binding that runs
    before this one; never the record's own table)."""
    assert selection.event is not None
    event = selection.event
    if gone is not None and event_table is not table:
        link = event_table.c[event.event_key] == table.c[event.local_key]
        return event_table, and_(link, not_(gone(event_table)))
    aliased = event_table.alias("clock_event")  # the event table may be the row's own
    return aliased, aliased.c[event.event_key] == table.c[event.local_key]


def _clock_tests(
    table: FromClause, name: str, selection: ExpirySelection, times: TimeContext
) -> tuple[ColumnElement[bool], ColumnElement[bool]]:
    """Whether the clock value is readable, and whether it is before the cut-off."""
    column = table.c[name]
    family, aware = family_of(column.type)
    if selection.clock_format == "epoch_seconds":
        bound: object = epoch_bound(selection.cutoff)
    else:
        info = ColumnInfo(name, family, str(column.type), bool(column.nullable), aware)
        bound = in_utc(times.bind_cutoff(info, selection.cutoff))
    return (
        readable(column, family, selection.clock_format),
        before(column, bound, selection.clock_format),  # type: ignore[arg-type]
    )


def column_info(table: Table, name: str) -> ColumnInfo:
    column = table.c[name]
    family, aware = family_of(column.type)
    return ColumnInfo(name, family, str(column.type), bool(column.nullable), aware)


def is_mysql(dialect_name: str) -> bool:
    """Whether a dialect name is MySQL's or MariaDB's (see `MYSQL_DIALECTS`)."""
    return dialect_name in MYSQL_DIALECTS


def utc_sessions(engine: Engine) -> None:
    """On MySQL and MariaDB, every connection's session time zone becomes UTC.

    ``DATETIME`` columns are naive: they hold whatever wall time the application wrote,
    read in the connector's ``naive_timezone`` like any naive column. ``TIMESTAMP``
    columns hold an instant, stored in UTC but converted from and to the *session's*
    time zone, which defaults to the server's. With the session in UTC (``+00:00``, which
    needs no time zone tables), a ``TIMESTAMP`` value read back is its UTC wall time and
    one sent is taken as UTC wall time, whatever the server's setting: `family_of` counts
    such columns as timezone-aware and `in_utc` converts their bound instants, since the
    drivers drop a ``datetime``'s offset. Other dialects are left alone.
    """
    if is_mysql(engine.dialect.name):
        on_connect(engine, "SET time_zone = '+00:00'")


def on_connect(engine: Engine, statement: str) -> None:
    """Run a constant session statement on every new connection of ``engine``."""

    def run(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(statement)
        finally:
            cursor.close()

    event.listen(engine, "connect", run)


def in_utc(value: _Value) -> _Value:
    """An aware timestamp as the same instant in UTC, anything else unchanged.

    PostgreSQL compares instants either way; MySQL's drivers send only a timestamp's wall
    time, which the connector's sessions read as UTC (`utc_sessions`).
    """
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(UTC)
    return value
