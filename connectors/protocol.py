"""The one small protocol every store connector implements, and its vocabulary.

A connector knows nothing of policies: it is asked about tables, columns and row
selections described with the plain data classes below. The policy side translates
rules into these; the connector translates them into its store's own language
(SQL expressions with bound parameters for the SQL connector).
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

if TYPE_CHECKING:
    from sqlalchemy import ColumnElement

    from connectors.sketches import PeopleKey

TypeFamily = Literal["datetime", "date", "integer", "numeric", "text", "boolean", "other"]
ConditionOp = Literal["eq", "ne", "lt", "le", "gt", "ge", "in", "not_in", "is_null", "not_null"]
Scalar = str | int | float | bool | date | datetime
Key = tuple[Any, ...]
Period = Literal["day", "week", "month", "quarter", "year"]
ChunkAction = Literal["delete", "anonymize", "aggregate_then_delete"]
ClockFormat = Literal["timestamp", "epoch_seconds"]


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
    on_delete: str | None = None
    """What the database does to these rows when the row they refer to is deleted:
    ``CASCADE``, ``SET NULL``, ``SET DEFAULT``, ``RESTRICT`` or None (no action)."""
    declared: bool = False
    """Declared by the policy, not by the store: the store knows nothing of it and
    does nothing when the referred row goes."""


@dataclass(frozen=True)
class TableInfo:
    name: str
    schema: str | None
    columns: dict[str, ColumnInfo]
    primary_key: tuple[str, ...]
    foreign_keys: tuple[ForeignKeyInfo, ...] = ()
    unique_keys: tuple[tuple[str, ...], ...] = ()
    """Other column sets no two rows share (unique constraints and unique indexes)."""
    indexes: tuple[tuple[str, ...], ...] | None = None
    """The leading plain columns of each index the store keeps on the table (its primary
    and unique keys' included), in index order; None when the store keeps no indexes a
    lookup could use (files, mailboxes)."""


@dataclass(frozen=True)
class Condition:
    """``column op value``; the value is always sent as a bound parameter."""

    column: str
    op: ConditionOp
    value: Scalar | tuple[Scalar, ...] | None = None


@dataclass(frozen=True)
class Comparison:
    """What a condition op takes and how it tests a stored value (see `COMPARISONS`)."""

    takes: Literal["value", "values", "nothing"]
    """One value, a non-empty list of them (membership), or none (a NULL test)."""
    compare: Callable[[Any, Any], Any] | None = None
    """With one value: a Python operator, which SQLAlchemy column expressions and pandas
    Series both overload, so both compilers apply this same function."""
    negated: bool = False
    """``not_in`` is ``in`` negated, ``not_null`` is ``is_null`` negated."""


#: Every condition op: the SQL compiler (``connectors.sql.expressions``) and the pandas one
#: (``connectors.records.predicates``) both read it, and the policy checks a condition's
#: value against ``takes``. A NULL value matches only ``is_null``, whatever the op.
COMPARISONS: dict[ConditionOp, Comparison] = {
    "eq": Comparison("value", operator.eq),
    "ne": Comparison("value", operator.ne),
    "lt": Comparison("value", operator.lt),
    "le": Comparison("value", operator.le),
    "gt": Comparison("value", operator.gt),
    "ge": Comparison("value", operator.ge),
    "in": Comparison("values"),
    "not_in": Comparison("values", negated=True),
    "is_null": Comparison("nothing"),
    "not_null": Comparison("nothing", negated=True),
}


@dataclass(frozen=True)
class RowFilter:
    """A named conjunction of conditions (e.g. a legal hold)."""

    name: str
    conditions: tuple[Condition, ...]
    through: tuple[ForeignKeyInfo, ...] = ()
    """The conditions are tested on the row these keys lead to, one after the other
    (the parent, then the grandparent, in the selection's schema): the filter matches
    the rows that refer, through them, to a row the conditions hold for (the children
    of a held parent)."""


@dataclass(frozen=True)
class EventClock:
    """The clock is a column of another table reached by ``local = event_key``.

    With several matching event rows a record expires only when every one of them is
    past the cut-off, and never while one has not happened (NULL). A record that no
    event row matches at all (none was ever written, or they were deleted) has *no
    event*: it counts from its own column ``fallback`` when given (read in
    ``fallback_format``), and otherwise never expires and is counted as ``no_event``.
    """

    table: str
    column: str
    local_key: str
    event_key: str
    fallback: str | None = None
    """A column of the record's own table its clock counts from when it has no event."""
    fallback_format: ClockFormat = "timestamp"


@dataclass(frozen=True)
class ExpirySelection:
    """Rows of `table` whose clock is strictly before `cutoff`, minus `exclusions`.

    `cutoff` is timezone-aware. Naive timestamp columns are compared in the store's
    configured zone; date columns against the cut-off's own calendar date.

    With `only` and `every_row`, the selection is one person's rows, all of them due
    now (an erasure): every connector judges both wherever it judges a selection
    (counting, reading, each chunk). A connector that cannot must refuse such a
    selection with a `StoreError` rather than act on every row (`selects_subjects`).
    """

    table: str
    clock_column: str
    cutoff: datetime
    schema: str | None = None
    event: EventClock | None = None
    exclusions: tuple[RowFilter, ...] = ()
    primary_key: tuple[str, ...] = ()
    skip_marked: str | None = None
    """Leave out rows already marked under this label (rows rewritten in place)."""
    keep_referenced: bool = False
    """The selected rows are to be deleted: leave out (count as held, under
    ``referenced by <table>.<columns>``) every row another row of the store still refers
    to by a foreign key, since the database would delete, unlink or orphan that row.
    ``execute_chunk`` applies it to every chunk that deletes. Stores without foreign
    keys have nothing to leave out."""
    removed_first: tuple[ExpirySelection, ...] = ()
    """For counting ahead of a run (a plan, a dry run): the selections of other tables
    that the run deletes before this one. A row referred to only by rows they select is
    counted as expired, as it will be by then. ``execute_chunk`` ignores it and judges
    the store as it is."""
    events_removed_first: tuple[ExpirySelection, ...] = ()
    """For counting ahead of a run, as `removed_first`: the selections that delete rows
    of the event clock's table (``event.table``, in this selection's schema) and that
    the run executes before this one. The event rows they select are counted as gone: a
    record whose every event row they select has no event by its turn. ``execute_chunk``
    ignores it too."""
    declared_references: tuple[tuple[str, ForeignKeyInfo], ...] = ()
    """``(child table, key)``: references into this table that the store does not
    declare (the policy does). With ``keep_referenced`` they keep a row like the store's
    own foreign keys."""
    clock_format: ClockFormat = "timestamp"
    """How the clock's values are read (the record's own clock or the event's):
    ``timestamp``, a timestamp in the store's canonical form (on SQLite, whose columns
    hold anything, ISO text as SQLAlchemy writes it); ``epoch_seconds``, integer seconds
    since 1970-01-01 UTC. Any other value is *unreadable*: never expired, counted."""
    only: tuple[RowFilter, ...] = ()
    """Only the rows one of these filters matches are in the selection: one person's rows
    (each filter usually one condition, ``column in (values...)``, possibly ``through``
    references to a parent row that holds it). The other rows are outside the selection and
    counted nowhere, not even in ``total``. (): every row."""
    every_row: bool = False
    """The clock is not read: every row (of ``only``) counts as expired now, as a person's
    erasure asks; none is unreadable or without event, and ``cutoff`` is not used."""

    @property
    def picks_rows(self) -> bool:
        """Whether the selection names its rows (`only`) or ignores the clock
        (`every_row`): what a connector that does not implement them must refuse."""
        return bool(self.only) or self.every_row

    def as_the_store_is(self) -> ExpirySelection:
        """The selection without foreseen removals (`removed_first`,
        `events_removed_first`): judged on the store as it is, as a real run does."""
        return replace(self, removed_first=(), events_removed_first=())

    def by_fallback(self) -> ExpirySelection | None:
        """The selection judged by the record's own column its event clock falls back
        on, for the rows that have no event (None: the clock has no fallback)."""
        event = self.event
        if event is None or event.fallback is None:
            return None
        return replace(
            self, clock_column=event.fallback, clock_format=event.fallback_format, event=None
        )


@dataclass(frozen=True)
class ExpiryCounts:
    """``expired`` excludes rows an exclusion protects; those are in ``held``."""

    total: int
    expired: int
    held: int
    held_by: dict[str, int] = field(default_factory=dict)
    reasons: dict[str, str] = field(default_factory=dict)
    """Why rows are held under the names in ``held_by`` the store chose itself (rows
    other rows refer to); a hold's reason is the policy's."""
    unreadable: int = 0
    """Rows whose clock holds a value that is not a timestamp in the selection's
    ``clock_format`` (``20300101``, ``'not a date'``): never expired, so among the kept."""
    skipped: dict[str, int] = field(default_factory=dict)
    """Records the store left alone and outside ``total``, by reason: two records it
    cannot tell apart (``duplicate key``), a ``symbolic link`` it will not follow."""
    no_event: int = 0
    """Rows whose event clock has no event row to count from (and no ``fallback`` value,
    when the clock has one): never expired, so among the kept."""

    @property
    def kept(self) -> int:
        return self.total - self.expired - self.held


@dataclass(frozen=True)
class ColumnRewrite:
    """How one column is rewritten in place: in the database when ``sql`` gives an
    expression for the column and dialect (it may give None), otherwise by ``transform``
    applied to the chunk's values in pandas. Both keep NULL as NULL."""

    column: str
    sql: Callable[[ColumnElement[Any], str], ColumnElement[Any] | None] | None = None
    transform: Callable[[Any], Any] | None = None
    fills_nulls: bool = False
    """The new value is written into NULL cells too: a value set (a correction, the date
    of a withdrawal), not a value transformed."""


@dataclass(frozen=True)
class RollupSink:
    """A statistic a chunk's rows are added to before they are deleted.

    Counts and sums add up across chunks exactly; distinct counts (keyed sketches: exact
    up to 512 values, HyperLogLog beyond, or exact at any size for the people of an
    ``exact_people`` sink) and medians (KLL) are kept as mergeable sketches.
    """

    name: str
    period: Period
    dimensions: tuple[str, ...]
    sums: tuple[str, ...] = ()
    distinct: tuple[str, ...] = ()
    quantiles: tuple[str, ...] = ()
    min_cell_size: int = 10
    subject: str | None = None
    """The column naming whom a row is about: cells are then withheld by how many people
    they count, not rows (twelve clicks may be one visitor's)."""
    people_key: PeopleKey | None = field(default=None, repr=False, compare=False)
    """The key every value going into a distinct count (people included) is hashed with
    before it reaches a sketch (`connectors.sketches`): needed to add rows to the rollup,
    not to read it. Without it, a chunk that would build a sketch is refused."""
    exact_people: bool = False
    """The cell's people are kept as an exact set of keyed hashes at any size (a sparse
    sketch, never HyperLogLog registers), for a release whose privacy guarantee needs a
    person to change the count by exactly one (differential privacy). It costs 8 bytes
    per person and cell until the cell is sealed."""


@dataclass(frozen=True)
class ChunkWork:
    """One chunk of keys and what to do with them, in one transaction of the store."""

    run_id: str
    label: str
    chunk_no: int
    selection: ExpirySelection
    after: Key | None
    """The chunk is the first `limit` selected rows, in key order, after this key."""
    limit: int
    action: ChunkAction
    period_zone: str = "UTC"
    rewrites: tuple[ColumnRewrite, ...] = ()
    rollups: tuple[RollupSink, ...] = ()


@dataclass(frozen=True)
class ChunkResult:
    """Rows deleted or rewritten, and the key the chunk ended at (None: nothing was left,
    nothing was done)."""

    rows: int
    last: Key | None


@dataclass(frozen=True)
class JournalEntry:
    """The store's own record of a committed chunk, written in the chunk's transaction."""

    run_id: str
    label: str
    chunk_no: int
    action: str
    rows: int
    committed_at: datetime


@dataclass(frozen=True)
class PublishedCell:
    period_start: date
    dimensions: dict[str, Any]
    count: int
    measures: dict[str, float | None]
    subjects: int | None = None
    """How many people the cell counts (None: the rollup does not track them)."""
    withheld: bool = False
    """Suppressed: never shown; its counts are kept only to compare with a later release."""
    margin: int | None = None
    """Released under differential privacy: ``count`` is the cell's people with noise,
    which stays within this bound with 95% probability."""


@dataclass(frozen=True)
class Capabilities:
    """What a connector can do beyond the protocol's minimum, so that the flows and the
    conformance suite know what to expect of it."""

    transactions: bool
    """A chunk's change and its journal entry commit together (a SQL database). Without
    it, chunks are made safe by a write-ahead intent that is replayed after a crash."""
    pushdown: bool
    """Expiry predicates are evaluated inside the store; otherwise records are streamed
    and filtered in pandas."""
    partitions: bool
    """Whole partitions (``date=2024-05-01/`` folders) can be dropped without reading
    their records."""


@dataclass(frozen=True)
class WriteTarget:
    """A change a run will make to a table: delete rows, or rewrite these columns; and
    what it reads there to choose them."""

    table: str
    schema: str | None = None
    deletes: bool = True
    columns: tuple[str, ...] = ()
    """The columns an anonymization rewrites (when it does not delete)."""
    reads: tuple[str, ...] = ()
    """The columns the run reads to choose and change the rows (keys, clock, holds): a
    table a binding only reads (its event table) neither deletes nor rewrites."""


@dataclass(frozen=True)
class ConnectorOptions:
    """What Tenure tells a connector factory besides the store's name and URL: the one
    argument a ``tenure.connectors`` entry point receives after them
    (``factory(name, url, options)``, see ``ConnectorFactory``). Fields may be added with
    defaults; a factory reads the ones it needs and ignores the rest."""

    read_only: bool = True
    """Refuse every change to the store (True for all but a real run)."""
    naive_timezone: str = "UTC"
    """The zone of the store's timestamps that carry none (the store's
    ``naive_timezone:``)."""
    local_timezone: str = "UTC"
    """The policy's time zone: where dates are calendar days."""
    bookkeeping_dir: Path | None = None
    """Where a store without SQL keeps its lock, journal, marks, rollups and intents (the
    store's ``bookkeeping:``); None: beside the store (a database keeps its own tables)."""


@runtime_checkable
class Connector(Protocol):
    """What the planner and flows may ask of a store.

    A connector that implements `ExpirySelection.only` and `every_row` (one person's
    rows) says so with a class attribute ``selects_subjects = True``; for one that does
    not, ``open_connector`` refuses such selections (`StoreError`) before they reach it.
    """

    name: str

    @property
    def display_url(self) -> str:
        """Where the store is, with any password hidden."""
        ...

    @property
    def capabilities(self) -> Capabilities:
        """What the store can do beyond the minimum (transactions, push-down, partitions)."""
        ...

    def ping(self) -> None:
        """Raise `StoreUnavailable` unless the store answers; never writes."""
        ...

    def table_info(self, table: str, schema: str | None = None) -> TableInfo | None:
        """The table's columns and keys, or None when it does not exist."""
        ...

    def table_names(self, schema: str | None = None) -> list[str]:
        """The tables (not views) of ``schema``, or of the default schema, without
        Tenure's own bookkeeping tables."""
        ...

    def estimate_rows(self, table: str, schema: str | None = None) -> int:
        """About how many rows the table holds, as cheaply as the store can tell."""
        ...

    def sample_values(
        self, table: str, columns: Sequence[str], limit: int, schema: str | None = None
    ) -> dict[str, list[Any]]:
        """Up to ``limit`` non-null values of each column, drawn at random *inside* the
        store, at a cost that does not grow with the table (where the store allows).

        Fewer than ``limit`` values mean the column holds no more: the scan then reads
        their shares as exact (a three-row table is all there is)."""
        ...

    def count_expiry(self, selection: ExpirySelection) -> ExpiryCounts:
        """Count total, expired and held rows in the store, in one pass."""
        ...

    def count_groups(
        self, table: str, columns: Sequence[str], marked: str, schema: str | None = None
    ) -> list[tuple[tuple[Any, ...], int]]:
        """The rows marked under ``marked`` (rewritten in place), grouped by ``columns``
        inside the store: each distinct combination of values and how many rows share it
        (NULL is a value). Only the groups leave the store."""
        ...

    def read_rows(
        self, selection: ExpirySelection, columns: Sequence[str], chunk_size: int
    ) -> Iterator[list[tuple[Any, ...]]]:
        """The values of ``columns`` of the rows a run would act on now (selected, not
        held), in chunks of at most ``chunk_size`` rows; read only, nothing changes."""
        ...

    def execute_chunk(self, work: ChunkWork) -> ChunkResult:
        """Choose the next chunk and do `work` on it in one transaction, with its journal
        entry. The chunk is chosen and changed under one snapshot, so a row that stopped
        being expired (or became held) is left alone; chunks are key ranges, never lists
        of keys sent back and forth."""
        ...

    def journal(self, run_id: str) -> list[JournalEntry]:
        """The chunks this store committed for `run_id`."""
        ...

    def journal_runs(self) -> list[str]:
        """Every run id the store's journal holds (a run whose state database was lost
        is found here), oldest first."""
        ...

    def rollup_cells(self, label: str, rollup: RollupSink) -> list[PublishedCell]:
        """Every cell of the rollup, merged over all runs, with all its measures: none is
        withheld here (disclosure control is the release's, not the store's)."""
        ...

    def compact_rollup(
        self, label: str, rollup: RollupSink, sealed: Sequence[date], run_id: str
    ) -> int:
        """In one transaction, merge the rollup's rows (with whatever the store staged
        for it, chunk by chunk) into one partial row per cell and seal the cells of the
        ``sealed`` periods (released): their final figures stay, their sketches are
        destroyed. The number of cells written."""
        ...

    def exclusive(self, name: str) -> AbstractContextManager[bool]:
        """Hold a store-wide lock named `name` while inside; yields False if another
        session holds it. Stores without such locks yield True."""
        ...

    def write_problems(self, targets: Sequence[WriteTarget]) -> list[str]:
        """Why a run could not make these changes, or keep its bookkeeping (journal,
        marks, rollups, lock), in this store: one reason each, found without changing
        anything, whether or not the connector was opened read-only. [] when it can."""
        ...

    def close(self) -> None: ...


#: A ``tenure.connectors`` entry point: a connector for the store ``name`` at ``url``.
ConnectorFactory = Callable[[str, str, ConnectorOptions], Connector]
