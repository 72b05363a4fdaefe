"""How a store's stored values meet the policy's instants, for every kind of connector."""

from __future__ import annotations

import math
import re
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from decimal import Decimal, InvalidOperation
from zoneinfo import ZoneInfo

import pandas as pd

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


_MICROSECOND = timedelta(microseconds=1)


def wall_instant(wall: datetime, zone: tzinfo) -> datetime:
    """A naive wall time read in ``zone``, as an aware instant in ``zone``.

    The one rule for the wall times a change of UTC offset makes ambiguous or
    impossible (`wall_instants` is the same rule for a pandas Series):

    - a **repeated** wall time (the hour the clocks go back) is its *second*
      occurrence, after the change: ``2025-11-02 01:47:24`` in Montreal is 01:47:24
      EST (06:47:24 UTC). PostgreSQL reads it the same way.
    - a **skipped** wall time (the hour the clocks go forward) is the instant of the
      change, the end of the gap: ``2025-03-09 02:30`` in Montreal is 03:00 EDT
      (07:00 UTC), like 02:00 and 03:00.

    A record is so never read as older than it can be, and a later wall time is never
    an earlier instant, which keeps comparing stored wall times with a bound
    (`wall_bound`) exact.
    """
    return _utc_instant(wall, zone).astimezone(zone)


def _utc_instant(wall: datetime, zone: tzinfo) -> datetime:
    first = wall.replace(tzinfo=zone, fold=0)
    second = wall.replace(tzinfo=zone, fold=1)
    if first.utcoffset() == second.utcoffset():
        return first.astimezone(UTC)
    # Compared in UTC: aware values sharing one tzinfo compare as wall times.
    readings = sorted((first.astimezone(UTC), second.astimezone(UTC)))
    if readings[1].astimezone(zone).replace(tzinfo=None) == wall:
        return readings[1]  # repeated: the second occurrence
    return _change_between(readings[0], readings[1], zone)  # skipped


def _change_between(before: datetime, after: datetime, zone: tzinfo) -> datetime:
    """The first instant after ``before`` with ``after``'s UTC offset in ``zone``."""
    offset = after.astimezone(zone).utcoffset()
    while after - before > _MICROSECOND:
        middle = before + (after - before) // 2
        if middle.astimezone(zone).utcoffset() == offset:
            after = middle
        else:
            before = middle
    return after


def wall_instants(walls: pd.Series, zone: tzinfo) -> pd.Series:
    """`wall_instant` for a Series of naive ``datetime64`` values: aware, in ``zone``.
    pandas reads the unambiguous values; those it cannot (repeated or skipped) follow
    `wall_instant`, once per distinct value."""
    local = walls.dt.tz_localize(zone, ambiguous="NaT", nonexistent="NaT")
    odd = local.isna() & walls.notna()
    if odd.any():
        resolved = {wall: _resolved(wall, zone) for wall in walls[odd].unique()}
        local = local.copy()
        local[odd] = [resolved[wall] for wall in walls[odd]]
    return local


def _resolved(wall: pd.Timestamp, zone: tzinfo) -> pd.Timestamp:
    whole = wall.floor("us")  # a Python datetime holds microseconds
    moment = pd.Timestamp(wall_instant(whole.to_pydatetime(), zone))
    if moment.tz_localize(None) == whole:  # repeated: keep any nanoseconds
        moment += wall - whole
    return moment


def wall_bound(cutoff: datetime, zone: tzinfo) -> datetime:
    """The naive wall time ``b`` such that a wall time ``w`` in ``zone`` is read
    (`wall_instant`) as an instant strictly before the aware ``cutoff`` exactly when
    ``w < b``: the cut-off as a naive clock column is compared with it. Most often
    the cut-off's own wall time; a cut-off in the first occurrence of a repeated hour
    is the hour's start (its wall times are read as the second occurrence), and a
    cut-off at the end of a gap is the gap's start."""
    wall = cutoff.astimezone(zone).replace(tzinfo=None)
    instant = cutoff.astimezone(UTC)
    try:
        if (
            _utc_instant(wall, zone) == instant
            and _utc_instant(wall - _MICROSECOND, zone) < instant
        ):
            return wall
        low, high = wall - timedelta(days=2), wall + timedelta(days=2)
    except OverflowError:
        return wall
    while high - low > _MICROSECOND:  # the rule is monotonic: low is before, high is not
        middle = low + (high - low) // 2
        if _utc_instant(middle, zone) < instant:
            low = middle
        else:
            high = middle
    return high


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

    def bind_cutoff(self, column: ColumnInfo, cutoff: datetime) -> datetime | date:
        """The cut-off (aware) as a bound the column's values are compared with (``<``):
        `bind_instant`, except that a naive column's bound is `wall_bound`, so that a
        wall time is before it exactly when `wall_instant` reads it before the cut-off."""
        if column.family == "datetime" and not column.timezone_aware:
            return wall_bound(cutoff, self.naive_zone)
        return self.bind_instant(column, cutoff)

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
            if self._as_written(column, value):
                return parse_instant(value) if isinstance(value, str) else value
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

    def _as_written(self, column: ColumnInfo, value: Scalar) -> bool:
        """Whether a hold's timestamp is a naive wall time for a naive column kept in the
        policy's own zone: then it is compared as written, even in an hour a change of
        offset repeats or skips (no instant names ``02:30`` on the night 02:00 is 03:00)."""
        if column.timezone_aware or self.naive_zone.key != self.local_zone.key:
            return False
        moment = parse_instant(value) if isinstance(value, str) else value
        return isinstance(moment, datetime) and moment.tzinfo is None

    def _instant(self, value: Scalar) -> datetime:
        if isinstance(value, str):
            value = parse_instant(value)
        if isinstance(value, datetime):
            return value if value.tzinfo is not None else wall_instant(value, self.local_zone)
        if isinstance(value, date):
            return wall_instant(datetime.combine(value, time()), self.local_zone)
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
