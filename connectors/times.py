"""How a store's stored values meet the policy's instants, for every kind of connector."""

from __future__ import annotations

import math
import re
from datetime import UTC, date, datetime, time
from decimal import Decimal, InvalidOperation
from zoneinfo import ZoneInfo

from connectors.protocol import ColumnInfo, Scalar

#: The seconds Python's ``datetime`` can hold (years 1 to 9999), for epoch clocks.
EPOCH_RANGE = (
    int(datetime(1, 1, 1, tzinfo=UTC).timestamp()),
    int(datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC).timestamp()),
)


def epoch_bound(cutoff: datetime) -> int:
    """The integer ``n`` such that an integer epoch value (seconds since 1970-01-01 UTC)
    is before the aware ``cutoff`` exactly when it is below ``n``."""
    return math.ceil(cutoff.timestamp())


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
        """A condition value (a legal hold's) as the column stores it, so that it is
        compared as what it means, never as text: dates and timestamps are parsed
        (`parse_day`, `parse_instant`; a date is local midnight for a timestamp column),
        integers as integers (``'0x2A'`` is not one), numbers as numbers, and a number
        for a text column as its text. Raises ``ValueError`` for a value the column's
        type cannot hold (``tenure validate`` reports it at the value's line)."""
        family = column.family
        if isinstance(value, bool) and family not in ("boolean", "text", "other"):
            raise ValueError(f"{value!r} is not a value of a {family} column")
        if family == "datetime":
            return self.bind_instant(column, self._instant(value))
        if family == "date":
            return parse_day(value)
        if family == "integer":
            return _integer(value)
        if family == "numeric":
            return _number(value)
        if family == "text" and isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)
        return value

    def _instant(self, value: Scalar) -> datetime:
        if isinstance(value, str):
            value = parse_instant(value)
        if isinstance(value, datetime):
            return value if value.tzinfo is not None else value.replace(tzinfo=self.local_zone)
        if isinstance(value, date):
            return datetime.combine(value, time(), self.local_zone)
        raise ValueError(f"{value!r} is not a date or timestamp (use YYYY-MM-DD)")


_DAY = re.compile(r"(\d{4})-(\d{1,2})-(\d{1,2})")
_INSTANT = re.compile(
    r"(\d{4}-\d{1,2}-\d{1,2})(?:[T ](\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?)(Z|[+-]\d{2}:\d{2})?)?"
)
_INTEGER = re.compile(r"[+-]?\d+")


def parse_day(value: Scalar) -> date:
    """A calendar day: a ``date``, or text ``YYYY-MM-DD`` whose month and day may have
    one digit (``2020-1-1`` is 2020-01-01); anything else (``January 1st 2020``,
    ``2020-02-30``) is a ``ValueError``."""
    if isinstance(value, datetime):
        raise ValueError(f"{value.isoformat()} is a timestamp; a date column needs a day")
    if isinstance(value, date):
        return value
    match = _DAY.fullmatch(value.strip()) if isinstance(value, str) else None
    if match is None:
        raise ValueError(f"{value!r} is not a date (use YYYY-MM-DD)")
    try:
        return date(*(int(part) for part in match.groups()))
    except ValueError as exc:
        raise ValueError(f"{value!r} is not a date: {exc}") from None


def parse_instant(text: str) -> date | datetime:
    """A day (`parse_day`) or an ISO 8601 timestamp, with an offset or without one
    (then wall time in the policy's zone)."""
    match = _INSTANT.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"{text!r} is not a date or timestamp (use YYYY-MM-DD or ISO 8601)")
    day, clock, offset = match.groups()
    parsed = parse_day(day)
    if clock is None:
        return parsed
    try:
        moment = datetime.fromisoformat(f"{parsed.isoformat()}T{clock}{offset or ''}")
    except ValueError as exc:
        raise ValueError(f"{text!r} is not a timestamp: {exc}") from None
    return moment


def _integer(value: Scalar) -> int:
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and _INTEGER.fullmatch(value.strip()):
        return int(value)
    raise ValueError(f"{value!r} is not an integer")


def _number(value: Scalar) -> int | float:
    if isinstance(value, int | float):
        return value
    if isinstance(value, str):
        try:
            number = Decimal(value.strip())
        except InvalidOperation:
            pass
        else:
            if number.is_finite():
                return int(number) if number == number.to_integral_value() else float(number)
    raise ValueError(f"{value!r} is not a number")
