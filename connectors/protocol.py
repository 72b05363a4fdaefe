"""The one small protocol every store connector implements, and its vocabulary.

A connector knows nothing of policies: it is asked about tables, columns and row
selections described with the plain data classes below. The policy side translates
rules into these; the connector translates them into its store's own language
(SQL expressions with bound parameters for the SQL connector).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Literal, Protocol, runtime_checkable

TypeFamily = Literal["datetime", "date", "integer", "numeric", "text", "boolean", "other"]
ConditionOp = Literal["eq", "ne", "lt", "le", "gt", "ge", "in", "not_in", "is_null", "not_null"]
Scalar = str | int | float | bool | date | datetime


@dataclass(frozen=True)
class ColumnInfo:
    name: str
    family: TypeFamily
    type_name: str
    nullable: bool
    timezone_aware: bool = False


@dataclass(frozen=True)
class ForeignKeyInfo:
    columns: tuple[str, ...]
    referred_table: str
    referred_columns: tuple[str, ...]


@dataclass(frozen=True)
class TableInfo:
    name: str
    schema: str | None
    columns: dict[str, ColumnInfo]
    primary_key: tuple[str, ...]
    foreign_keys: tuple[ForeignKeyInfo, ...] = ()


@dataclass(frozen=True)
class Condition:
    """``column op value``; the value is always sent as a bound parameter."""

    column: str
    op: ConditionOp
    value: Scalar | tuple[Scalar, ...] | None = None


@dataclass(frozen=True)
class RowFilter:
    """A named conjunction of conditions (e.g. a legal hold)."""

    name: str
    conditions: tuple[Condition, ...]


@dataclass(frozen=True)
class EventClock:
    """The clock is a column of another table reached by ``local = event_key``.

    With several matching event rows a record expires only when every one of them is
    past the cut-off, and never while one has not happened (NULL).
    """

    table: str
    column: str
    local_key: str
    event_key: str


@dataclass(frozen=True)
class ExpirySelection:
    """Rows of `table` whose clock is strictly before `cutoff`, minus `exclusions`.

    `cutoff` is timezone-aware. Naive timestamp columns are compared in the store's
    configured zone; date columns against the cut-off's own calendar date.
    """

    table: str
    clock_column: str
    cutoff: datetime
    schema: str | None = None
    event: EventClock | None = None
    exclusions: tuple[RowFilter, ...] = ()


@dataclass(frozen=True)
class ExpiryCounts:
    """``expired`` excludes rows an exclusion protects; those are in ``held``."""

    total: int
    expired: int
    held: int
    held_by: dict[str, int] = field(default_factory=dict)

    @property
    def kept(self) -> int:
        return self.total - self.expired - self.held


@runtime_checkable
class Connector(Protocol):
    """What the planner and flows may ask of a store."""

    name: str

    @property
    def display_url(self) -> str:
        """Where the store is, with any password hidden."""
        ...

    def ping(self) -> None:
        """Raise `StoreUnavailable` unless the store answers; never writes."""
        ...

    def table_info(self, table: str, schema: str | None = None) -> TableInfo | None:
        """The table's columns and keys, or None when it does not exist."""
        ...

    def count_expiry(self, selection: ExpirySelection) -> ExpiryCounts:
        """Count total, expired and held rows in the store, in one pass."""
        ...

    def close(self) -> None: ...
