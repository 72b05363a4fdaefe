"""``generalize``: keep a coarser, less identifying version of a value.

Dates keep their type (a ``date`` stays a ``date``, an aware timestamp stays aware in its
own zone), so the column can be written back unchanged; postal codes keep their forward
sortation area and IP addresses their network, which is what statistics usually need.
"""

from __future__ import annotations

import ipaddress
from datetime import date, datetime
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from sqlalchemy import (
    ColumnElement,
    Date,
    DateTime,
    Integer,
    case,
    cast,
    collate,
    extract,
    func,
    literal,
    null,
)
from sqlalchemy.dialects import postgresql, sqlite

from anonymizers.operators import (
    Operator,
    OperatorError,
    is_plain_text,
    map_non_null,
    map_unique,
    register,
)
from anonymizers.regions import region_of
from connectors.times import wall_instant, wall_instants

DATE_LEVELS = ("day", "month", "year", "decade")
TEXT_LEVELS = frozenset({"fsa", "ip_prefix", "region"})
LEVELS = frozenset({*DATE_LEVELS, *TEXT_LEVELS})
_NUMPY_UNIT = {"day": "D", "month": "M", "year": "Y", "decade": "Y"}
_IPV4_PREFIX, _IPV6_PREFIX = 24, 48
_IPV4_MASK = (2**32 - 1) ^ (2 ** (32 - _IPV4_PREFIX) - 1)
_IPV6_MASK = (2**128 - 1) ^ (2 ** (128 - _IPV6_PREFIX) - 1)
# ASCII whitespace and digits only, not Python's Unicode \s and \d: PostgreSQL's classes
# depend on its locale and SQLite has no regular expressions, and this way all three agree.
_FSA_SPACE = " \t\n\r\f\v"
_FSA_PATTERN = r"^[ \t\n\r\f\v]*([A-Za-z][0-9][A-Za-z])"  # Python re and PostgreSQL alike


@register
class Generalize(Operator):
    """Truncate dates (``day``/``month``/``year``/``decade``), postal codes (``fsa``), IPs
    (``ip_prefix``), and reduce a free-form location to its province or territory
    (``region``, see ``anonymizers.regions``)."""

    name: ClassVar[str] = "generalize"
    allowed_params: ClassVar[frozenset[str]] = frozenset({"to"})
    to: str

    def validate(self) -> None:
        super().validate()
        self.to = self._choice("to", LEVELS)

    def operate(self, values: pd.Series) -> pd.Series:
        if self.to == "fsa":
            return map_non_null(values, forward_sortation_area)
        if self.to == "ip_prefix":
            return map_non_null(values, lambda present: map_unique(present.astype(str), ip_prefix))
        if self.to == "region":
            return map_non_null(values, region_of)
        if pd.api.types.is_datetime64_any_dtype(values.dtype):
            return truncate_datetime64(values, self.to)
        return map_non_null(values, lambda present: map_unique(present, self._truncate_one))

    def writes_text(self) -> bool:
        return self.to in TEXT_LEVELS

    def sql_expression(self, column: ColumnElement[Any], dialect: str) -> ColumnElement[Any] | None:
        if self.to == "fsa":
            return forward_sortation_area_sql(column, dialect)
        if self.to == "ip_prefix":
            return ip_prefix_sql(column, dialect)
        if self.to in DATE_LEVELS:
            return truncate_date_sql(column, self.to, dialect)
        return None

    def _truncate_one(self, value: object) -> date:
        if not isinstance(value, date):
            raise OperatorError(
                f"operator 'generalize': parameter 'to'={self.to!r} needs date or datetime "
                f"values, not {type(value).__name__}"
            )
        return truncate_date(value, self.to)


def truncate_datetime64(values: pd.Series, level: str) -> pd.Series:
    """Vectorized truncation of a ``datetime64`` column, in the values' own time zone."""
    tz = values.dt.tz
    unit = values.dt.unit
    local = values.dt.tz_localize(None) if tz is not None else values
    stamps = local.to_numpy(dtype=f"datetime64[{unit}]")
    truncated = stamps.astype(f"datetime64[{_NUMPY_UNIT[level]}]")
    if level == "decade":
        year = truncated.astype("int64") + 1970  # numpy years count from 1970
        decade = (year - year % 10 - 1970).astype("datetime64[Y]")
        truncated = np.where(np.isnat(truncated), truncated, decade)
    result = pd.Series(truncated.astype(f"datetime64[{unit}]"), index=values.index)
    if tz is None:
        return result
    # Midnight is repeated or skipped on a change of offset in a few zones: the one rule.
    return wall_instants(result, tz)


def truncate_date(value: date, level: str) -> date:
    """Truncate one ``date``/``datetime``/``Timestamp``, keeping its type and time zone
    (an aware value's new wall time is read by `wall_instant`'s rule)."""
    zone = value.tzinfo if isinstance(value, datetime) else None
    wall = value
    if isinstance(value, pd.Timestamp):
        wall = (
            value.tz_localize(None)
            .replace(hour=0, minute=0, second=0, microsecond=0, nanosecond=0)
            .to_pydatetime()
        )
    elif isinstance(value, datetime):
        wall = value.replace(tzinfo=None, hour=0, minute=0, second=0, microsecond=0, fold=0)
    if level == "month":
        wall = wall.replace(day=1)
    elif level in ("year", "decade"):
        year = wall.year - wall.year % 10 if level == "decade" else wall.year
        wall = wall.replace(year=year, month=1, day=1)
    if zone is None or not isinstance(wall, datetime):
        return wall
    moment = wall_instant(wall, zone)
    return pd.Timestamp(moment) if isinstance(value, pd.Timestamp) else moment


def forward_sortation_area(values: pd.Series) -> pd.Series:
    """A Canadian postal code's first three characters, upper case; null if not one."""
    area = values.astype(str).str.extract(_FSA_PATTERN, expand=False)
    return area.str.upper()


def ip_prefix(text: str) -> str | None:
    """The /24 (IPv4) or /48 (IPv6) network address, compressed; None if not an address.

    Accepts ``addr/len`` too, as PostgreSQL ``inet`` values print that way.
    """
    try:
        address = ipaddress.ip_interface(text.strip()).ip
    except ValueError:
        return None
    if address.version == 4:
        return str(ipaddress.IPv4Address(int(address) & _IPV4_MASK))
    return str(ipaddress.IPv6Address(int(address) & _IPV6_MASK))


def forward_sortation_area_sql(
    column: ColumnElement[Any], dialect: str
) -> ColumnElement[Any] | None:
    """``forward_sortation_area`` in SQL, on plain text columns."""
    if not is_plain_text(column):
        return None
    if dialect == "postgresql":
        # The "C" collation keeps upper() to ASCII whatever the database's locale.
        return func.upper(func.substring(collate(column, "C"), literal(_FSA_PATTERN)))
    if dialect == "sqlite":
        area = func.substr(func.ltrim(column, literal(_FSA_SPACE)), 1, 3)
        matches = area.op("GLOB")(literal("[A-Za-z][0-9][A-Za-z]"))
        return case((matches, func.upper(area)), else_=null())
    return None


def ip_prefix_sql(column: ColumnElement[Any], dialect: str) -> ColumnElement[Any] | None:
    """``ip_prefix`` for PostgreSQL ``inet``/``cidr`` columns, read back as the same address.

    Not for text columns: a string that is not an address would fail the cast to ``inet``
    where ``ip_prefix`` returns None.
    """
    if dialect != "postgresql" or not isinstance(column.type, postgresql.INET | postgresql.CIDR):
        return None
    prefix = case((func.family(column) == 4, _IPV4_PREFIX), else_=_IPV6_PREFIX)
    return cast(func.host(func.network(func.set_masklen(column, prefix))), column.type)


def truncate_date_sql(
    column: ColumnElement[Any], level: str, dialect: str
) -> ColumnElement[Any] | None:
    """``truncate_date`` for date and naive timestamp columns, keeping the column's type.

    Not for aware timestamps: pandas truncates them in each value's own zone, which the
    database does not keep.
    """
    kind = column.type
    if not isinstance(kind, Date | DateTime) or getattr(kind, "timezone", False):
        return None
    if dialect == "postgresql":
        return _truncate_postgresql(column, level)
    if dialect == "sqlite" and _sqlite_stores_iso(column):
        return _truncate_sqlite(column, level)
    return None


def _truncate_postgresql(column: ColumnElement[Any], level: str) -> ColumnElement[Any]:
    if level == "decade":
        # make_date fails for years 1 to 9, as pandas does: there is no year 0.
        year = cast(extract("year", column), Integer)
        start = func.make_date(year - year % 10, 1, 1)
    else:
        # A date would reach date_trunc as a timestamp with time zone, in the session's zone.
        start = func.date_trunc(level, cast(column, DateTime()))
    return cast(start, column.type)


_SQLITE_FORMATS = {"day": "%Y-%m-%d", "month": "%Y-%m-01", "year": "%Y-01-01"}
_SQLITE_MIDNIGHT = " 00:00:00.000000"


def _truncate_sqlite(column: ColumnElement[Any], level: str) -> ColumnElement[Any]:
    """Text in SQLAlchemy's storage format, which it reads back and compares as text.

    Exact for values SQLAlchemy stored; the decade of years 1 to 9 gives year 0000 where
    pandas fails (SQLite cannot raise an error from an expression).
    """
    time = _SQLITE_MIDNIGHT if isinstance(column.type, DateTime) else ""
    if level == "decade":
        century_and_decade = func.substr(func.strftime("%Y", column), 1, 3)
        return century_and_decade.concat(literal("0-01-01" + time))
    return func.strftime(_SQLITE_FORMATS[level] + time, column)


def _sqlite_stores_iso(column: ColumnElement[Any]) -> bool:
    """Whether the column's type stores SQLAlchemy's default SQLite text format, which
    ``_truncate_sqlite`` writes (a type may declare another)."""
    dialect = sqlite.dialect()
    sample = datetime(2001, 2, 3, 4, 5, 6, 7)
    expected = "2001-02-03" + (" 04:05:06.000007" if isinstance(column.type, DateTime) else "")
    store = column.type.dialect_impl(dialect).bind_processor(dialect)
    return store is not None and store(sample) == expected
