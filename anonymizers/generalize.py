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
from sqlalchemy import ColumnElement, Date, DateTime

from anonymizers.operators import (
    Operator,
    OperatorError,
    is_plain_text,
    map_non_null,
    map_unique,
)
from anonymizers.regions import region_of
from connectors.sql import functions as sql_functions
from connectors.sql.functions import DATE_LEVELS, FSA_PATTERN, portable
from connectors.times import wall_instant, wall_instants

TEXT_LEVELS = frozenset({"fsa", "ip_prefix", "region"})
LEVELS = frozenset({*DATE_LEVELS, *TEXT_LEVELS})
_NUMPY_UNIT = {"day": "D", "month": "M", "year": "Y", "decade": "Y"}
_IPV4_PREFIX, _IPV6_PREFIX = 24, 48
_IPV4_MASK = (2**32 - 1) ^ (2 ** (32 - _IPV4_PREFIX) - 1)
_IPV6_MASK = (2**128 - 1) ^ (2 ** (128 - _IPV6_PREFIX) - 1)


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
        """The level's function (`connectors.sql.functions`), where the dialect renders
        it: the forward sortation area of plain text, the network of an address column,
        the truncation of a date or naive timestamp. Not for aware timestamps: pandas
        truncates them in each value's own zone, which the database does not keep."""
        expression: ColumnElement[Any] | None = None
        kind = column.type
        naive = isinstance(kind, Date | DateTime) and not getattr(kind, "timezone", False)
        if self.to == "fsa" and is_plain_text(column):
            expression = sql_functions.forward_sortation_area(column)
        elif self.to == "ip_prefix":
            expression = sql_functions.network_address(column, _IPV4_PREFIX, _IPV6_PREFIX)
        elif self.to in DATE_LEVELS and naive:
            expression = sql_functions.truncated_date(column, self.to)
        return None if expression is None else portable(expression, dialect)

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
    area = values.astype(str).str.extract(FSA_PATTERN, expand=False)
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
