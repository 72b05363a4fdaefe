"""SQLAlchemy Core expressions for the protocol's selections.

Every value is a bound parameter and every identifier comes from a reflected `Table`,
so the dialect quotes it: no SQL is ever assembled from strings.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, time
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, Table, and_, exists, false, not_, or_, true
from sqlalchemy.sql.elements import KeyedColumnElement

from connectors.protocol import ColumnInfo, Condition, ExpirySelection, RowFilter, Scalar
from connectors.type_families import family_of

_COMPARISONS: dict[str, Callable[[KeyedColumnElement[object], object], ColumnElement[bool]]] = {
    "eq": lambda c, v: c == v,
    "ne": lambda c, v: c != v,
    "lt": lambda c, v: c < v,
    "le": lambda c, v: c <= v,
    "gt": lambda c, v: c > v,
    "ge": lambda c, v: c >= v,
    "in": lambda c, v: c.in_(v),  # type: ignore[arg-type]
    "not_in": lambda c, v: c.not_in(v),  # type: ignore[arg-type]
}


class TimeContext:
    """How the store's values meet the policy's instants.

    Naive timestamp columns hold wall time in `naive_zone`; plain dates (date columns,
    date values in conditions) are calendar days in `local_zone`.
    """

    def __init__(self, naive_zone: str, local_zone: str) -> None:
        self.naive_zone = ZoneInfo(naive_zone)
        self.local_zone = ZoneInfo(local_zone)

    def bind_instant(self, column: ColumnInfo, moment: datetime) -> datetime | date:
        """`moment` (aware) as the column stores it."""
        if column.family == "date":
            return moment.astimezone(self.local_zone).date()
        if column.timezone_aware:
            return moment
        return moment.astimezone(self.naive_zone).replace(tzinfo=None)

    def bind_value(self, column: ColumnInfo, value: Scalar) -> Scalar:
        """A condition value as the column stores it: dates become local midnight for
        timestamp columns; digit strings become integers for integer columns."""
        if column.family == "datetime" and isinstance(value, date):
            if not isinstance(value, datetime):
                value = datetime.combine(value, time(), self.local_zone)
            elif value.tzinfo is None:
                value = value.replace(tzinfo=self.local_zone)
            return self.bind_instant(column, value)
        if column.family == "integer" and isinstance(value, str) and value.lstrip("-").isdigit():
            return int(value)
        return value


def condition(table: Table, cond: Condition, times: TimeContext) -> ColumnElement[bool]:
    """A condition that is never NULL: a NULL column matches only ``is_null``."""
    column = table.c[cond.column]
    if cond.op == "is_null":
        return column.is_(None)
    if cond.op == "not_null":
        return column.is_not(None)
    info = column_info(table, cond.column)
    if isinstance(cond.value, tuple):
        value: object = tuple(times.bind_value(info, v) for v in cond.value)
    else:
        assert cond.value is not None, "the policy model guarantees a value"
        value = times.bind_value(info, cond.value)
    return and_(column.is_not(None), _COMPARISONS[cond.op](column, value))


def matches_any(
    table: Table, filters: tuple[RowFilter, ...], times: TimeContext
) -> ColumnElement[bool]:
    if not filters:
        return false()
    return or_(*(matches(table, f, times) for f in filters))


def matches(table: Table, row_filter: RowFilter, times: TimeContext) -> ColumnElement[bool]:
    return and_(true(), *(condition(table, c, times) for c in row_filter.conditions))


def clock_expired(
    table: Table,
    selection: ExpirySelection,
    times: TimeContext,
    event_table: Table | None,
) -> ColumnElement[bool]:
    """True when the row's clock is strictly before the cut-off; never for a clock that
    has not started (NULL), including any one of several matching events."""
    if selection.event is None or event_table is None:
        column = table.c[selection.clock_column]
        bound = times.bind_instant(column_info(table, selection.clock_column), selection.cutoff)
        return and_(column.is_not(None), column < bound)
    event = selection.event
    bound = times.bind_instant(column_info(event_table, event.column), selection.cutoff)
    aliased = event_table.alias("clock_event")  # the event table may be the row's own
    clock = aliased.c[event.column]
    linked = aliased.c[event.event_key] == table.c[event.local_key]
    has_event = exists().where(linked)
    unfinished = exists().where(linked, or_(clock.is_(None), clock >= bound))
    return and_(has_event, not_(unfinished))


def column_info(table: Table, name: str) -> ColumnInfo:
    column = table.c[name]
    family, aware = family_of(column.type)
    return ColumnInfo(name, family, str(column.type), bool(column.nullable), aware)
