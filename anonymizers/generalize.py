"""``generalize``: keep a coarser, less identifying version of a value.

Dates keep their type (a ``date`` stays a ``date``, an aware timestamp stays aware in its
own zone), so the column can be written back unchanged; postal codes keep their forward
sortation area and IP addresses their network, which is what statistics usually need.
"""

from __future__ import annotations

import ipaddress
from datetime import date, datetime
from typing import ClassVar

import numpy as np
import pandas as pd

from anonymizers.operators import Operator, OperatorError, map_non_null, map_unique, register

DATE_LEVELS = ("day", "month", "year", "decade")
LEVELS = frozenset({*DATE_LEVELS, "fsa", "ip_prefix"})
_NUMPY_UNIT = {"day": "D", "month": "M", "year": "Y", "decade": "Y"}
_IPV4_MASK = (2**32 - 1) ^ (2 ** (32 - 24) - 1)
_IPV6_MASK = (2**128 - 1) ^ (2 ** (128 - 48) - 1)


@register
class Generalize(Operator):
    """Truncate dates (``day``/``month``/``year``/``decade``), postal codes (``fsa``), IPs."""

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
        if pd.api.types.is_datetime64_any_dtype(values.dtype):
            return truncate_datetime64(values, self.to)
        return map_non_null(values, lambda present: map_unique(present, self._truncate_one))

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
    # Midnight can be repeated or skipped on a DST change in a few zones: resolve, never fail.
    return result.dt.tz_localize(
        tz, ambiguous=np.ones(len(result), dtype=bool), nonexistent="shift_forward"
    )


def truncate_date(value: date, level: str) -> date:
    """Truncate one ``date``/``datetime``/``Timestamp``, keeping its type and time zone."""
    if isinstance(value, pd.Timestamp):
        value = value.replace(hour=0, minute=0, second=0, microsecond=0, nanosecond=0)
    elif isinstance(value, datetime):
        value = value.replace(hour=0, minute=0, second=0, microsecond=0, fold=0)
    if level == "day":
        return value
    if level == "month":
        return value.replace(day=1)
    year = value.year - value.year % 10 if level == "decade" else value.year
    return value.replace(year=year, month=1, day=1)


def forward_sortation_area(values: pd.Series) -> pd.Series:
    """A Canadian postal code's first three characters, upper case; null if not one."""
    area = values.astype(str).str.extract(r"^\s*([A-Za-z]\d[A-Za-z])", expand=False)
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
