"""Map a dialect's reflected column type to a small family the rest of Tenure reasons on."""

from __future__ import annotations

from typing import Any

from sqlalchemy import types as sqltypes
from sqlalchemy.dialects import mysql

from connectors.protocol import TypeFamily

_FAMILIES: tuple[tuple[type[sqltypes.TypeEngine[Any]], TypeFamily], ...] = (
    (sqltypes.DateTime, "datetime"),
    (sqltypes.Date, "date"),
    (sqltypes.Boolean, "boolean"),
    (sqltypes.Integer, "integer"),
    (sqltypes.Numeric, "numeric"),
    (sqltypes.String, "text"),
)


def family_of(type_: sqltypes.TypeEngine[Any]) -> tuple[TypeFamily, bool]:
    """The type's family, and whether a timestamp carries its time zone.

    MySQL's and MariaDB's ``TIMESTAMP`` holds an instant (stored in UTC) although its
    values come back naive: it counts as aware, read in UTC (see `utc_sessions`).
    """
    for base, family in _FAMILIES:
        if isinstance(type_, base):
            aware = family == "datetime" and (
                bool(getattr(type_, "timezone", False)) or isinstance(type_, mysql.TIMESTAMP)
            )
            return family, aware
    return "other", False
