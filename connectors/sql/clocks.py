"""Reading a clock column in SQL: whether a stored value is a timestamp at all, and
comparing it with the cut-off exactly.

PostgreSQL holds only timestamps in a timestamp column, so every non-NULL value is
readable; MySQL and MariaDB also hold "zero" dates (``0000-00-00``, ``2020-00-10``),
which are not. SQLite's ``DATETIME`` and ``DATE`` columns hold anything
(integers, ``'01/02/2030'``, ``' 2020-01-01'``), and comparing those as text or numbers
with the cut-off's text decides nothing: a value is readable there only when it is text
in the form SQLAlchemy writes and reads (``YYYY-MM-DD``, ``YYYY-MM-DD HH:MM:SS``,
``YYYY-MM-DD HH:MM:SS.ffffff``) and names a real day and time. Each dialect's reading is
a ``@compiles`` of one construct; an unreadable value is never expired and is counted.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    ColumnElement,
    Integer,
    Numeric,
    String,
    and_,
    case,
    false,
    func,
    literal,
    or_,
    true,
    type_coerce,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import Grouping
from sqlalchemy.sql.functions import FunctionElement

from connectors.protocol import ClockFormat
from connectors.times import EPOCH_RANGE

_DIGITS4 = "[0-9][0-9][0-9][0-9]"
_DIGITS2 = "[0-9][0-9]"
_DATE = f"{_DIGITS4}-{_DIGITS2}-{_DIGITS2}"
_SECONDS = f"{_DATE} {_DIGITS2}:{_DIGITS2}:{_DIGITS2}"
_MICROSECONDS = f"{_SECONDS}.{_DIGITS2}{_DIGITS2}{_DIGITS2}"


class _Readable(FunctionElement[bool]):
    """True when the (non-NULL) clock value is readable in the construct's form."""

    type = Boolean()
    inherit_cache = True
    name = "tenure_clock_readable"

    @property
    def column(self) -> ColumnElement[Any]:
        column: ColumnElement[Any] = next(iter(self.clauses))
        return column


class timestamp_readable(_Readable):
    """A timestamp column's value; a date (midnight) or a timestamp."""

    inherit_cache = True


class date_readable(_Readable):
    """A date column's value: a calendar day only."""

    inherit_cache = True


class epoch_readable(_Readable):
    """Integer seconds since 1970-01-01 UTC (``clock: {format: epoch_seconds}``)."""

    inherit_cache = True


class clock_before(FunctionElement[bool]):
    """``column < cut-off``, exact for every readable form: (column, typed bound, the
    bound as the shortest canonical text that sorts right against every form)."""

    type = Boolean()
    inherit_cache = True
    name = "tenure_clock_before"


class comparable_timestamp(FunctionElement[Any]):
    """A timestamp column's value in one form for comparing with a bound value (a hold's):
    the column itself where the store types it; on SQLite, whose readable values come in
    three forms, each padded to ``YYYY-MM-DD HH:MM:SS.ffffff``, the form SQLAlchemy binds
    a ``datetime`` in, so ``2020-01-01`` equals midnight of that day."""

    inherit_cache = True
    name = "tenure_comparable_timestamp"

    def __init__(self, column: ColumnElement[Any]) -> None:
        super().__init__(column)
        self.type = column.type


@compiles(comparable_timestamp)
def _typed_comparable(element: comparable_timestamp, compiler: SQLCompiler, **kw: Any) -> str:
    return compiler.process(next(iter(element.clauses)), **kw)


@compiles(comparable_timestamp, "sqlite")
def _sqlite_comparable(element: comparable_timestamp, compiler: SQLCompiler, **kw: Any) -> str:
    x: ColumnElement[Any] = type_coerce(next(iter(element.clauses)), String())
    length = func.length(x)
    padded = case(
        (length == 10, x.concat(literal(" 00:00:00.000000"))),
        (length == 19, x.concat(literal(".000000"))),
        else_=x,
    )
    return compiler.process(padded, **kw)


def readable(column: ColumnElement[Any], family: str, clock_format: ClockFormat) -> _Readable:
    if clock_format == "epoch_seconds":
        return epoch_readable(column)
    return date_readable(column) if family == "date" else timestamp_readable(column)


def before(
    column: ColumnElement[Any], bound: datetime | date | int, clock_format: ClockFormat
) -> ColumnElement[bool]:
    """Whether the readable value is strictly before ``bound`` (as the column stores it)."""
    if clock_format == "epoch_seconds":
        return column < literal(bound, Integer())
    typed = literal(bound, column.type)
    return clock_before(column, typed, literal(_sortable_text(bound), String()))


def _sortable_text(bound: Any) -> str:
    """The cut-off as text that compares with ``YYYY-MM-DD[ HH:MM:SS[.ffffff]]`` values
    exactly: trailing zero parts are left off, so that ``2020-01-01`` (midnight) is not
    before ``2020-01-01 00:00:00.000000``."""
    if not isinstance(bound, datetime):
        return str(bound.isoformat()) if isinstance(bound, date) else str(bound)
    text = bound.strftime("%Y-%m-%d %H:%M:%S")
    if bound.microsecond:
        return f"{text}.{bound.microsecond:06d}"
    if (bound.hour, bound.minute, bound.second) == (0, 0, 0):
        return text[:10]
    return text


@compiles(timestamp_readable)
@compiles(date_readable)
def _typed_store(element: _Readable, compiler: SQLCompiler, **kw: Any) -> str:
    return compiler.process(true(), **kw)


@compiles(epoch_readable)
def _typed_epoch(element: _Readable, compiler: SQLCompiler, **kw: Any) -> str:
    numeric = isinstance(element.column.type, Integer | Numeric)
    return compiler.process(true() if numeric else false(), **kw)


@compiles(clock_before)
def _typed_before(element: clock_before, compiler: SQLCompiler, **kw: Any) -> str:
    column, typed, _ = list(element.clauses)
    return compiler.process(Grouping(column < typed), **kw)


@compiles(timestamp_readable, "mysql")
@compiles(timestamp_readable, "mariadb")
@compiles(date_readable, "mysql")
@compiles(date_readable, "mariadb")
def _mysql_readable(element: _Readable, compiler: SQLCompiler, **kw: Any) -> str:
    """MySQL and MariaDB keep "no date" as ``0000-00-00``, and, unless the SQL mode
    forbids it, dates with a zero month or day: none of them is an instant."""
    x = element.column
    named = and_(func.month(x) > literal(0), func.dayofmonth(x) > literal(0))
    return compiler.process(Grouping(named), **kw)


@compiles(timestamp_readable, "sqlite")
def _sqlite_timestamp(element: _Readable, compiler: SQLCompiler, **kw: Any) -> str:
    x = element.column
    seconds = func.substr(x, 1, 19)
    forms = or_(
        _sqlite_form(x, _DATE, func.date(x, literal("+0 days")), x),
        _sqlite_form(x, _SECONDS, func.datetime(x, literal("+0 days")), x),
        # The fraction is digits; SQLite's own functions would round it.
        _sqlite_form(x, _MICROSECONDS, func.datetime(seconds, literal("+0 days")), seconds),
    )
    return compiler.process(Grouping(and_(_sqlite_text(x), forms)), **kw)


@compiles(date_readable, "sqlite")
def _sqlite_date(element: _Readable, compiler: SQLCompiler, **kw: Any) -> str:
    x = element.column
    form = _sqlite_form(x, _DATE, func.date(x, literal("+0 days")), x)
    return compiler.process(Grouping(and_(_sqlite_text(x), form)), **kw)


@compiles(epoch_readable, "sqlite")
def _sqlite_epoch(element: _Readable, compiler: SQLCompiler, **kw: Any) -> str:
    x = element.column
    low, high = EPOCH_RANGE
    ok = and_(func.typeof(x) == literal("integer"), x.between(literal(low), literal(high)))
    return compiler.process(Grouping(ok), **kw)


@compiles(clock_before, "sqlite")
def _sqlite_before(element: clock_before, compiler: SQLCompiler, **kw: Any) -> str:
    column, _, text = list(element.clauses)
    return compiler.process(Grouping(column < text), **kw)


def _sqlite_text(x: ColumnElement[Any]) -> ColumnElement[bool]:
    """Text, from year 1 (Python's first)."""
    return and_(func.typeof(x) == literal("text"), x >= literal("0001"))


def _sqlite_form(
    x: ColumnElement[Any], pattern: str, normalized: ColumnElement[Any], part: ColumnElement[Any]
) -> ColumnElement[bool]:
    """``x`` has exactly the shape of ``pattern`` and names a real day and time: SQLite's
    own date functions, adding nothing, give the same text back (``2030-02-30`` becomes
    ``2030-03-02``, ``24:00:00`` the next day, ``13`` as a month NULL)."""
    return and_(
        func.length(x) == len(pattern.replace("[0-9]", "0")),
        x.op("GLOB")(literal(pattern)),
        normalized == part,
    )
