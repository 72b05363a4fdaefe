"""How a store's stored values meet the policy's instants, for every kind of connector."""

from __future__ import annotations

from datetime import date, datetime, time
from zoneinfo import ZoneInfo

from connectors.protocol import ColumnInfo, Scalar


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
