"""Any ``RecordStore`` as a full ``Connector``: predicates in pandas, crash-safe chunks.

A chunk on a store without transactions goes in three steps:

1. its intent (keys, new values, unit versions) and its rollup cells commit to the
   bookkeeping database;
2. the store deletes or rewrites the records, one unit (file, message) at a time,
   each atomically;
3. the journal entry and the marks commit, and the intent is removed.

A crash before 1 leaves nothing done; after 1, the next run replays the intent first
(skipping units already rewritten, by their version), so no record that should go is
kept and no cell is counted twice. The rows a pass works through are chosen once, when
the pass starts (``after`` is None), not rechecked per chunk as a SQL store does.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import random
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from connectors.errors import StoreError, StoreUnavailable
from connectors.protocol import (
    Capabilities,
    ChunkResult,
    ChunkWork,
    ColumnInfo,
    ConnectorOptions,
    ExpiryCounts,
    ExpirySelection,
    JournalEntry,
    Key,
    PublishedCell,
    RollupSink,
    RowFilter,
    TableInfo,
    WriteTarget,
)
from connectors.records.bookkeeping import Intent, RecordBookkeeping, key_text
from connectors.records.predicates import (
    EventKeys,
    clock_judgement,
    clock_mask,
    event_keys,
    event_masks,
    held_masks,
    unreadable_mask,
)
from connectors.records.store import (
    Collection,
    HasHome,
    Partition,
    RecordStore,
    ReportsSkipped,
    ScansUnits,
    read_only_paths,
)
from connectors.rollups import cell_records, chunk_cells, rollup_columns
from connectors.times import TimeContext
from connectors.values import plain

#: Records read per frame while judging a collection.
SCAN_CHUNK = 50_000
#: At most this many records are read to draw a sample.
SAMPLE_READ_LIMIT = 200_000
#: The reason records that share a key are refused.
DUPLICATE_KEY = "duplicate key"
#: How many times a chunk's units are judged again before the binding gives up on them.
REJUDGE_ATTEMPTS = 3
#: Where a frame's records are in a selection (its ``only`` filters).
Keep = Callable[[pd.DataFrame], np.ndarray]


class RecordConnector:
    """The ``Connector`` protocol over a ``RecordStore``, opened with the factory's
    ``options`` (the store itself is opened read-only or not by the factory).

    ``options.bookkeeping_dir`` is where the store's bookkeeping database and lock live
    (the policy's ``bookkeeping:`` setting). Without it they belong to the store, whatever
    folder a run starts from: in its own folder (``HasHome``), or else in a per-machine
    folder named by a digest of its password-free URL (``store_home``).
    """

    selects_subjects = True
    """It judges `ExpirySelection.only` and `every_row` in every pass (`_judged`), so any
    ``RecordStore`` implements them without a line of its own."""

    def __init__(self, store: RecordStore, options: ConnectorOptions = ConnectorOptions()) -> None:
        self.store = store
        self.name = store.name
        self._times = TimeContext(options.naive_timezone, options.local_timezone)
        self._read_only = options.read_only
        # a shared folder names each store's files; the store's own folder needs not
        chosen = options.bookkeeping_dir
        stem = "store" if chosen is None else store.name
        self._dir = store_home(store) if chosen is None else Path(chosen)
        self._books: RecordBookkeeping | None = RecordBookkeeping(
            self._dir / f"{stem}.bookkeeping.sqlite"
        )
        self._lock = self._dir / f"{stem}.lock"
        #: What the last judging of each collection refused, by reason (duplicate keys).
        self._refused: dict[str, dict[str, int]] = {}
        self._collections: dict[str, Collection | None] = {}
        self._passes: dict[tuple[str, str], tuple[pd.DataFrame, int]] = {}
        #: Records per partition (by its fields' values), as the last count_expiry read them.
        self._partition_rows: dict[str, dict[tuple[Any, ...], int]] = {}
        self._restart_after: dict[tuple[str, str], Key | None] = {}

    @property
    def display_url(self) -> str:
        return self.store.display_url

    @property
    def bookkeeping_path(self) -> Path:
        """The bookkeeping database (journal, marks, rollups, intents) of this store."""
        assert self._books is not None
        return self._books.path

    @property
    def capabilities(self) -> Capabilities:
        return self.store.capabilities

    def ping(self) -> None:
        self.store.ping()

    def table_info(self, table: str, schema: str | None = None) -> TableInfo | None:
        collection = self._describe(table)
        if collection is None:
            return None
        return TableInfo(table, schema, dict(collection.fields), collection.key)

    def table_names(self, schema: str | None = None) -> list[str]:
        return sorted(self.store.collections())

    def estimate_rows(self, table: str, schema: str | None = None) -> int:
        collection = self._require(table)
        partitions = self.store.partitions(table)
        if partitions and all(p.records is not None for p in partitions):
            return sum(p.records or 0 for p in partitions)
        return sum(len(frame) for frame in self.store.scan(collection.name, [], SCAN_CHUNK))

    def sample_values(
        self, table: str, columns: Sequence[str], limit: int, schema: str | None = None
    ) -> dict[str, list[Any]]:
        """A reservoir sample per column over at most ``SAMPLE_READ_LIMIT`` records (of
        randomly ordered partitions, when the collection has some)."""
        collection = self._require(table)
        missing = [c for c in columns if c not in collection.fields]
        if missing:
            raise StoreError(self.name, self.display_url, f"no field {missing[0]!r} in {table!r}")
        partitions = self.store.partitions(table) or None
        rng = random.Random(0x7E17)
        if partitions:
            partitions = rng.sample(partitions, len(partitions))
        reservoirs: dict[str, list[Any]] = {c: [] for c in columns}
        seen = dict.fromkeys(columns, 0)
        read = 0
        for frame in self.store.scan(table, list(columns), SCAN_CHUNK, partitions):
            for column in columns:
                for value in frame[column].dropna().tolist():
                    seen[column] += 1
                    chosen = reservoirs[column]
                    if len(chosen) < limit:
                        chosen.append(plain(value))
                    else:
                        slot = rng.randrange(seen[column])
                        if slot < limit:
                            chosen[slot] = plain(value)
            read += len(frame)
            if read >= SAMPLE_READ_LIMIT:
                break
        return reservoirs

    def count_expiry(self, selection: ExpirySelection) -> ExpiryCounts:
        """Counted in one read of the collection, which also counts each partition's
        records, so that dropping partitions right after need not read them again."""
        total = expired = held = 0
        held_by = dict.fromkeys((f.name for f in selection.exclusions), 0)
        fields = self._require(selection.table).partition_fields
        sizes: dict[tuple[Any, ...], int] = {}
        unreadable = no_event = 0
        for frame, due, holds, unread, missing in self._judged(selection, fields):
            total += len(frame)
            unreadable += int(unread.sum())
            no_event += int(missing.sum())
            for values in frame[list(fields)].itertuples(index=False, name=None) if fields else ():
                place = tuple(plain(v) for v in values)
                sizes[place] = sizes.get(place, 0) + 1
            protected = np.logical_or.reduce(holds) if holds else np.zeros(len(frame), bool)
            expired += int((due & ~protected).sum())
            held += int((due & protected).sum())
            for row_filter, mask in zip(selection.exclusions, holds, strict=True):
                held_by[row_filter.name] += int((due & mask).sum())
        if not selection.only:  # one person's records are not a partition's size
            self._partition_rows[selection.table] = sizes
        return ExpiryCounts(
            total,
            expired,
            held,
            held_by,
            unreadable=unreadable,
            skipped=self._skipped(selection.table),
            no_event=no_event,
        )

    def count_groups(
        self, table: str, columns: Sequence[str], marked: str, schema: str | None = None
    ) -> list[tuple[tuple[Any, ...], int]]:
        collection = self._require(table)
        marks = self._books.marked(marked) if self._books is not None else set()
        if not marks:
            return []
        counts: dict[tuple[Any, ...], int] = {}
        for frame in self.store.scan(table, list(columns), SCAN_CHUNK):
            chosen = frame[_key_texts(frame, collection.key).isin(marks).to_numpy()]
            for row in chosen[list(columns)].itertuples(index=False, name=None):
                group = tuple(plain(v) for v in row)
                counts[group] = counts.get(group, 0) + 1
        return sorted(counts.items(), key=lambda item: tuple(map(str, item[0])))

    def read_rows(
        self, selection: ExpirySelection, columns: Sequence[str], chunk_size: int
    ) -> Iterator[list[tuple[Any, ...]]]:
        for frame, due, holds, _, _ in self._judged(selection, columns):
            protected = np.logical_or.reduce(holds) if holds else np.zeros(len(frame), bool)
            chosen = frame[due & ~protected]
            rows = [
                tuple(plain(v) for v in row)
                for row in chosen[list(columns)].itertuples(index=False, name=None)
            ]
            for start in range(0, len(rows), chunk_size):
                yield rows[start : start + chunk_size]

    def execute_chunk(self, work: ChunkWork) -> ChunkResult:
        """The next chunk; but first, as a chunk of this run, any chunk a crash left
        half done (its intent), so that it is finished and journaled before anything
        new is chosen. A bookkeeping database that cannot be written (a read-only or
        full disk) is this store's ``StoreError``. It judges the store as it is, whatever
        was foreseen."""
        try:
            return self._execute_chunk(replace(work, selection=work.selection.as_the_store_is()))
        except SQLAlchemyError as exc:
            where = self._books.path if self._books is not None else "?"
            reason = str(exc.orig if isinstance(exc, DBAPIError) else exc).splitlines()[0]
            reason = f"bookkeeping {where}: {reason}"
            raise StoreError(self.name, self.display_url, reason) from None

    def _execute_chunk(self, work: ChunkWork) -> ChunkResult:
        books = self._writable()
        collection = self._require(work.selection.table)
        pass_key = (work.run_id, work.label)
        replayed = self._replay(books, collection, work)
        if replayed is not None:
            self._passes.pop(pass_key, None)
            self._restart_after[pass_key] = replayed.last
            return replayed
        after = work.after
        if pass_key in self._restart_after and self._restart_after[pass_key] == after:
            after = None  # the chunk before was a replay: start a pass
            del self._restart_after[pass_key]
        if self._droppable(work, collection):
            return self._drop_chunk(books, replace(work, after=after), collection)
        if after is None or pass_key not in self._passes:
            self._passes[pass_key] = (self._actionable(work, collection), 0)
        rows = self._next_rows(work, collection, pass_key)
        if rows is None:
            self._passes.pop(pass_key, None)
            return ChunkResult(0, None)
        keys = _keys(rows, collection.key)
        intent = self._intent(books, work, collection, rows, keys)
        done = self._apply(books, collection, intent)
        return ChunkResult(done, keys[-1])

    def journal(self, run_id: str) -> list[JournalEntry]:
        return [] if self._books is None else self._books.journal(run_id)

    def journal_runs(self) -> list[str]:
        return [] if self._books is None else self._books.journal_runs()

    def rollup_cells(self, label: str, rollup: RollupSink) -> list[PublishedCell]:
        return [] if self._books is None else self._books.rollup_cells(label, rollup)

    def compact_rollup(
        self, label: str, rollup: RollupSink, sealed: Sequence[date], run_id: str
    ) -> int:
        if self._books is None:
            return 0
        return self._books.compact_rollup(label, rollup, sealed, run_id)

    @contextmanager
    def exclusive(self, name: str) -> Iterator[bool]:
        """An advisory file lock beside the bookkeeping database, which belongs to the
        store (see the class docstring): every run of any policy against this store
        shares it. The kernel releases it if this process dies. A lock that cannot be
        created (a read-only filesystem) is this store's ``StoreError``."""
        try:
            self._dir.mkdir(parents=True, exist_ok=True)
            handle = self._lock.open("a")
        except OSError as exc:
            reason = f"cannot create its lock {self._lock}: {exc.strerror or exc}"
            raise StoreError(self.name, self.display_url, reason) from None
        with handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def write_problems(self, targets: Sequence[WriteTarget]) -> list[str]:
        """The bookkeeping folder (created if missing: its nearest existing folder must
        be writable), the bookkeeping database and lock if they exist, and the store's
        own files and folders (``write_problems`` of a store that has it; a remote
        store's permissions are not checked): by their permissions, changing nothing."""
        problems = []
        folder = self._dir
        while not folder.is_dir() and folder != folder.parent:
            folder = folder.parent
        if not os.access(folder, os.W_OK | os.X_OK):
            verb = "written" if folder == self._dir else "created"
            problems.append(f"its bookkeeping folder {self._dir} cannot be {verb}: read-only")
        books = [self._lock] + ([self._books.path] if self._books is not None else [])
        problems += read_only_paths("its bookkeeping", books)
        check = getattr(self.store, "write_problems", None)
        changed = (t.table for t in targets if t.deletes or t.columns)  # not those only read
        for table in dict.fromkeys(changed):
            problems += check(table) if check is not None else []
        return problems

    def close(self) -> None:
        if self._books is not None:
            self._books.close()
        self.store.close()

    # choosing records

    def _judged(
        self,
        selection: ExpirySelection,
        columns: Sequence[str],
        units: Sequence[Key] | None = None,
    ) -> Iterator[tuple[pd.DataFrame, np.ndarray, list[np.ndarray], np.ndarray, np.ndarray]]:
        """Each frame of the collection (of some units only, when given) with where it
        is expired, where each exclusion holds it, where its clock cannot be read, and
        where it has no event to count from (`event_masks`). Records sharing a key are
        left out (``_scan``), and so are those outside the selection's ``only`` filters;
        with ``every_row`` every record is due and its clock is not read."""
        if selection.keep_referenced and selection.declared_references:
            child, key = selection.declared_references[0]
            raise StoreError(
                self.name,
                self.display_url,
                f"{child}.{','.join(key.columns)} refers to {selection.table} (references: in "
                "the policy), but this store cannot keep the records other records refer to; "
                "nothing is deleted (declare it only between SQL tables)",
            )
        collection = self._require(selection.table)
        fields = collection.fields
        filters = (*selection.exclusions, *selection.only)
        needed = set(columns) | {c for f in filters for c in _read_by(f)}
        referred = self._held_parents(selection.exclusions)
        keep = self._only(selection, fields)
        events: EventKeys | None = None
        if selection.every_row:
            pass  # the clock is not read
        elif selection.event is not None:
            event = selection.event
            needed.add(event.local_key)
            if event.fallback is not None:
                needed.add(event.fallback)
            events = self._expired_events(selection)
        else:
            needed.add(selection.clock_column)
        marks = (
            self._books.marked(selection.skip_marked)
            if selection.skip_marked is not None and self._books is not None
            else set()
        )
        if collection.version_field is not None:
            needed.add(collection.version_field)  # the pass applies positions to it only
        wanted = sorted(needed - set(collection.key))
        for frame in self._scan(collection, wanted, units, keep):
            if selection.every_row:
                due = np.ones(len(frame), dtype=bool)
                unread = missing = np.zeros(len(frame), dtype=bool)
            elif events is not None:
                due, unread, missing = event_masks(frame, selection, fields, self._times, events)
            else:
                info = fields[selection.clock_column]
                due = clock_mask(frame, selection, info, self._times)
                unread = unreadable_mask(frame, selection, info, self._times)
                missing = np.zeros(len(frame), dtype=bool)
            if marks:
                due &= ~_key_texts(frame, collection.key).isin(marks).to_numpy(dtype=bool)
            holds = self._held(frame, selection.exclusions, fields, referred)
            yield frame, due, holds, unread, missing

    def _held(
        self,
        frame: pd.DataFrame,
        filters: tuple[RowFilter, ...],
        fields: Mapping[str, ColumnInfo],
        referred: Mapping[int, set[Key]],
    ) -> list[np.ndarray]:
        """One mask per filter: its conditions, or, through references, whether the
        record refers to one of the held records at their end (`_held_parents`)."""
        own = iter(
            held_masks(frame, tuple(f for f in filters if not f.through), fields, self._times)
        )
        return [
            _referring(frame, f.through[0].columns, referred[i]) if f.through else next(own)
            for i, f in enumerate(filters)
        ]

    def _only(self, selection: ExpirySelection, fields: Mapping[str, ColumnInfo]) -> Keep | None:
        """Where a frame's records are in the selection (one of its ``only`` filters
        matches them, through references as holds are: `_held`); None: every record."""
        if not selection.only:
            return None
        referred = self._held_parents(selection.only)

        def keep(frame: pd.DataFrame) -> np.ndarray:
            matched: np.ndarray = np.logical_or.reduce(
                self._held(frame, selection.only, fields, referred)
            )
            return matched

        return keep

    def _held_parents(self, filters: tuple[RowFilter, ...]) -> dict[int, set[Key]]:
        """For each filter through references (by position): the values of the first
        reference's referred columns in the records the rest of it holds (the held
        parents' keys), read once per judging."""
        found: dict[int, set[Key]] = {}
        for i, row_filter in enumerate(filters):
            if not row_filter.through:
                continue
            key, rest = row_filter.through[0], replace(row_filter, through=row_filter.through[1:])
            parent = self._require(key.referred_table)
            deeper = self._held_parents((rest,))
            wanted = sorted(set(key.referred_columns) | _read_by(rest))
            held: set[Key] = set()
            for frame in self.store.scan(key.referred_table, wanted, SCAN_CHUNK):
                (mask,) = self._held(frame, (rest,), parent.fields, deeper)
                held.update(_keys(frame[mask], key.referred_columns))
            found[i] = held
        return found

    def _scan(
        self,
        collection: Collection,
        wanted: list[str],
        units: Sequence[Key] | None,
        keep: Keep | None = None,
    ) -> Iterator[pd.DataFrame]:
        """The store's frames without the records whose key another record shares: the
        store cannot tell them apart, so none of them is judged, changed or marked; they
        are counted under ``duplicate key`` (``_skipped``). Frames come in key order, so
        a run of equal keys is held back until the next frame shows where it ends. With
        ``keep`` (a selection's ``only``), only the records it keeps are yielded or
        counted: a key is still refused when a record outside shares it."""
        name = collection.name
        if units is None:
            self._refused[name] = {}
            frames = self.store.scan(name, wanted, SCAN_CHUNK)
        else:
            if not isinstance(self.store, ScansUnits):
                raise StoreError(self.name, self.display_url, f"{name}: cannot read units again")
            frames = self.store.scan_units(name, wanted, SCAN_CHUNK, units)
        refused = self._refused.setdefault(name, {})
        key = list(collection.key)
        pending: pd.DataFrame | None = None
        for frame in frames:
            if pending is not None and len(pending):
                frame = pd.concat([pending, frame], ignore_index=True)
            if not len(frame):
                continue
            keys = frame[key]
            last = (keys == keys.iloc[-1]).all(axis=1).to_numpy(dtype=bool)
            pending, frame = frame[last], frame[~last]
            repeated = frame[key].duplicated(keep=False).to_numpy(dtype=bool)
            if keep is not None:  # one person's records: the others are not counted
                inside = keep(frame)
                frame, repeated = frame[inside], repeated[inside]
            if repeated.any():  # a nightly scan copies a frame only when keys repeat
                refused[DUPLICATE_KEY] = refused.get(DUPLICATE_KEY, 0) + int(repeated.sum())
                frame = frame[~repeated]
            if len(frame):
                yield frame.reset_index(drop=True)
        if pending is None or not len(pending):
            return
        inside = np.ones(len(pending), dtype=bool) if keep is None else keep(pending)
        if len(pending) > 1:
            refused[DUPLICATE_KEY] = refused.get(DUPLICATE_KEY, 0) + int(inside.sum())
        elif inside.all():
            yield pending.reset_index(drop=True)

    def _skipped(self, table: str) -> dict[str, int]:
        """What the last judging of ``table`` left out, by reason: records sharing a key,
        and what the store's scan left out itself (symbolic links)."""
        found = dict(self._refused.get(table, {}))
        if isinstance(self.store, ReportsSkipped):
            for reason, count in self.store.skipped(table).items():
                found[reason] = found.get(reason, 0) + count
        return {reason: count for reason, count in sorted(found.items()) if count}

    def _expired_events(self, selection: ExpirySelection) -> EventKeys:
        """The event collection judged (`event_keys`), without the records that the
        bindings running before this one delete, when counting ahead
        (`events_removed_first`)."""
        assert selection.event is not None
        event = selection.event
        events = self._require(event.table)
        frames = list(self.store.scan(event.table, [event.event_key, event.column], SCAN_CHUNK))
        if not frames:
            return EventKeys(set(), set(), set())
        data = pd.concat(frames, ignore_index=True)
        gone: set[Key] = set()
        for leaving in selection.events_removed_first:
            if leaving.table != event.table:
                continue
            for rows in self._selected(leaving, []):
                gone.update(_keys(rows, events.key))
        if gone:
            staying = [key not in gone for key in _keys(data, events.key)]
            data = data[np.array(staying, dtype=bool)].reset_index(drop=True)
        info = events.fields[event.column]
        return event_keys(data, event.event_key, event.column, info, selection, self._times)

    def _selected(
        self,
        selection: ExpirySelection,
        columns: Sequence[str],
        units: Sequence[Key] | None = None,
    ) -> Iterator[pd.DataFrame]:
        """Frame by frame, the records the selection acts on: expired and not held."""
        for frame, due, holds, _, _ in self._judged(selection, columns, units):
            protected = np.logical_or.reduce(holds) if holds else np.zeros(len(frame), bool)
            yield frame[due & ~protected]

    def _actionable(
        self, work: ChunkWork, collection: Collection, units: Sequence[Key] | None = None
    ) -> pd.DataFrame:
        """The pass's records (selected, not held), with what the action reads (and the
        version of their unit as read, for positional stores that give it); of some
        units only, when given."""
        columns = {r.column for r in work.rewrites}
        if work.action == "aggregate_then_delete":
            columns.update(rollup_columns(work))
        parts = list(self._selected(work.selection, sorted(columns), units))
        if not parts:
            return pd.DataFrame(columns=[*collection.key, *sorted(columns)])
        rows = pd.concat(parts, ignore_index=True)
        return rows.sort_values(list(collection.key), kind="stable", ignore_index=True)

    def _next_rows(
        self, work: ChunkWork, collection: Collection, pass_key: tuple[str, str]
    ) -> pd.DataFrame | None:
        """The pass's next chunk (None: the pass is done), every unit of it still the
        version its records were chosen from. A unit changed since (by the application,
        by anyone) is judged again and its old positions are dropped, so a position is
        only ever applied to the very file it was read from."""
        key = list(collection.key)
        stale: list[Key] = []
        for _ in range(REJUDGE_ATTEMPTS):
            actionable, start = self._passes[pass_key]
            end = _chunk_end(actionable, collection, start, work.limit)
            if end == start:
                return None
            rows = actionable.iloc[start:end]
            stale = self._stale_units(collection, rows)
            if not stale:
                self._passes[pass_key] = (actionable, end)
                return rows
            rest = actionable.iloc[start:]
            gone = set(stale)
            rest = rest[[unit not in gone for unit in _unit_keys(rest, collection)]]
            again = self._actionable(work, collection, stale)
            merged = pd.concat([rest, again], ignore_index=True)
            self._passes[pass_key] = (merged.sort_values(key, ignore_index=True), 0)
        unit = "/".join(str(part) for part in stale[0])
        reason = f"{collection.name}/{unit}: changed each time it was read; left for the next run"
        raise StoreError(self.name, self.display_url, reason)

    def _stale_units(self, collection: Collection, rows: pd.DataFrame) -> list[Key]:
        """The units of ``rows`` whose version is no longer the one they were read at."""
        if collection.version_field is None or not collection.positional:
            return []
        read = _unit_versions(rows, collection)
        current = self.store.versions(collection.name, list(read))
        return [unit for unit, version in read.items() if current.get(unit) != version]

    # whole partitions

    def _droppable(self, work: ChunkWork, collection: Collection) -> bool:
        """A delete whose clock is a partition field, with nothing that could hold or
        skip single records: whole partitions go (never for one person's records)."""
        selection = work.selection
        return (
            work.action == "delete"
            and not selection.only
            and self.capabilities.partitions
            and selection.clock_column in collection.partition_fields
            and selection.event is None
            and not selection.exclusions
            and selection.skip_marked is None
        )

    def _drop_chunk(
        self, books: RecordBookkeeping, work: ChunkWork, collection: Collection
    ) -> ChunkResult:
        selection = work.selection
        info = collection.fields[selection.clock_column]
        partitions = [
            p
            for p in sorted(self.store.partitions(collection.name), key=lambda p: p.name)
            if work.after is None or (p.name,) > work.after
        ]
        clocks = pd.DataFrame(
            {selection.clock_column: [p.values.get(selection.clock_column) for p in partitions]}
        )
        due = (  # once for all partitions
            np.ones(len(clocks), dtype=bool)
            if selection.every_row
            else clock_mask(clocks, selection, info, self._times)
        )
        chosen: list[Partition] = []
        rows = 0
        for partition, expired in zip(partitions, due, strict=True):
            if expired:
                chosen.append(partition)
                rows += self._partition_size(collection, partition)
                if rows >= work.limit:
                    break
        if not chosen:
            return ChunkResult(0, None)
        intent = Intent(
            0,
            work.run_id,
            work.label,
            work.chunk_no,
            "delete",
            collection.name,
            [(p.name,) for p in chosen],
            None,
            {},
            partitions=True,
            rows=rows,
        )
        intent = replace(intent, id=books.open_intent(intent))
        self._apply(books, collection, intent)
        return ChunkResult(rows, (chosen[-1].name,))

    def _partition_size(self, collection: Collection, partition: Partition) -> int:
        """The partition's records: known to the store, counted by ``count_expiry``, or
        else read."""
        if partition.records is not None:
            return partition.records
        place = tuple(plain(partition.values.get(f)) for f in collection.partition_fields)
        counted = self._partition_rows.get(collection.name, {})
        if place not in counted:
            frames = self.store.scan(collection.name, [], SCAN_CHUNK, [partition])
            counted[place] = sum(len(frame) for frame in frames)
        return counted[place]

    # applying a chunk

    def _intent(
        self,
        books: RecordBookkeeping,
        work: ChunkWork,
        collection: Collection,
        rows: pd.DataFrame,
        keys: list[Key],
    ) -> Intent:
        values = None
        if work.action == "anonymize":
            values = pd.DataFrame(index=rows.index)
            for rewrite in work.rewrites:
                if rewrite.transform is None:
                    raise StoreError(
                        self.name,
                        self.display_url,
                        f"no way to rewrite {rewrite.column!r} outside SQL",
                    )
                values[rewrite.column] = rewrite.transform(rows[rewrite.column])
        versions: dict[Key, str] = {}
        if collection.positional and collection.version_field is not None:
            versions = _unit_versions(rows, collection)  # as read when chosen
        elif collection.positional:
            units = sorted({key[: collection.unit] for key in keys})
            versions = self.store.versions(collection.name, units)
        intent = Intent(
            0,
            work.run_id,
            work.label,
            work.chunk_no,
            work.action,
            collection.name,
            keys,
            values,
            versions,
            partitions=False,
            rows=len(keys),
        )
        cells = []
        if work.action == "aggregate_then_delete":
            cells = self._rollup_cells(books, work, collection, rows)
        return replace(intent, id=books.open_intent(intent, cells))

    def _rollup_cells(
        self, books: RecordBookkeeping, work: ChunkWork, collection: Collection, rows: pd.DataFrame
    ) -> list[tuple[Any, list[dict[str, Any]]]]:
        selection = work.selection
        if selection.every_row:  # a clock that is no timestamp places its record nowhere
            clock = selection.clock_column
            info = collection.fields[clock]
            readable, _ = clock_judgement(rows[clock], info, selection, self._times)
            rows = rows.assign(**{clock: rows[clock].where(readable)})
        return [
            (books.rollup(work.label, sink, collection.fields), cell_records(cells))
            for sink, cells in chunk_cells(rows, work, self._times.naive_zone)
        ]

    def _apply(
        self,
        books: RecordBookkeeping,
        collection: Collection,
        intent: Intent,
        *,
        replay: bool = False,
    ) -> int:
        """Steps 2 and 3 of a chunk; also the replay of an intent after a crash. Units
        whose version is no longer the intent's are left alone: on a replay they were
        rewritten by the crashed run (its count and marks stand); otherwise someone
        changed them since they were read, so only what the store really deleted or
        rewrote is journaled and marked. Returns the records journaled."""
        if intent.partitions:  # a partition is named by its key; no need to list them again
            partitions = [Partition(str(key[0]), {}) for key in intent.keys]
            self.store.drop_partitions(collection.name, partitions)
            books.close_intent(intent, (), {})
            return intent.rows
        chosen = list(range(len(intent.keys)))
        if intent.versions:
            current = self.store.versions(collection.name, list(intent.versions))
            stale = {u for u, version in intent.versions.items() if current.get(u) != version}
            chosen = [i for i in chosen if intent.keys[i][: collection.unit] not in stale]
        keys = [intent.keys[i] for i in chosen]
        if intent.action == "anonymize":
            assert intent.values is not None, "an anonymize intent carries its new values"
            done = self.store.update(collection.name, keys, intent.values.iloc[chosen])
            rows = intent.rows if replay else done
            books.close_intent(replace(intent, rows=rows), intent.keys if replay else keys, {})
            return rows
        shifted = _shifted_marks(books, collection, keys) if collection.positional else {}
        done = self.store.delete(collection.name, keys)
        rows = intent.rows if replay else done
        books.close_intent(replace(intent, rows=rows), (), shifted)
        return rows

    def _replay(
        self, books: RecordBookkeeping, collection: Collection, work: ChunkWork
    ) -> ChunkResult | None:
        """Finish the oldest intent a crash left for this binding, journaled as this
        chunk of this run (the run that wrote it has ended and will not journal it)."""
        for intent in books.pending(work.label):
            if intent.collection == collection.name:
                intent = replace(intent, run_id=work.run_id, chunk_no=work.chunk_no)
                done = self._apply(books, collection, intent, replay=True)
                return ChunkResult(done, intent.keys[-1])
        return None

    # plumbing

    def _writable(self) -> RecordBookkeeping:
        if self._read_only:
            raise StoreError(self.name, self.display_url, "opened read-only")
        if self._books is None:
            raise StoreError(self.name, self.display_url, "no bookkeeping directory given")
        return self._books

    def _describe(self, table: str) -> Collection | None:
        if table not in self._collections:
            self._collections[table] = self.store.describe(table)
        return self._collections[table]

    def _require(self, table: str) -> Collection:
        collection = self._describe(table)
        if collection is None:
            raise StoreUnavailable(
                self.name, self.display_url, f"collection {table!r} does not exist"
            )
        return collection


def store_home(store: RecordStore) -> Path:
    """Where a store's bookkeeping lives unless the policy says: its own folder, or a
    per-machine folder named by a digest of its URL without password or options (so
    that every policy and every run on this machine that reaches the store shares it)."""
    if isinstance(store, HasHome):
        home = store.bookkeeping_home()
        if home is not None:
            return home
    identity = store.display_url.split("?", 1)[0]
    return user_state_home() / "stores" / hashlib.sha256(identity.encode()).hexdigest()[:24]


def user_state_home() -> Path:
    """Tenure's per-user folder for what belongs to no store and no policy file:
    ``$XDG_STATE_HOME/tenure``, by default ``~/.local/state/tenure``."""
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "tenure"


def _unit_keys(frame: pd.DataFrame, collection: Collection) -> pd.Series:
    """Each record's unit (its leading key fields), as ``Key`` tuples."""
    columns = list(collection.key[: collection.unit])
    rows = frame[columns].itertuples(index=False, name=None)
    units = [tuple(plain(v) for v in row) for row in rows]
    return pd.Series(units, index=frame.index, dtype=object)


def _unit_versions(rows: pd.DataFrame, collection: Collection) -> dict[Key, str]:
    """The version each unit of ``rows`` was read at ("" for a unit read at two
    versions, which then matches none)."""
    assert collection.version_field is not None
    columns = [*collection.key[: collection.unit], collection.version_field]
    pairs = rows[columns].drop_duplicates()
    found: dict[Key, str] = {}
    units = _unit_keys(pairs, collection)
    for unit, version in zip(units, pairs[collection.version_field].astype(str), strict=True):
        found[unit] = version if found.get(unit, version) == version else ""
    return found


def _read_by(row_filter: RowFilter) -> set[str]:
    """The columns of the judged records a filter reads."""
    if row_filter.through:
        return set(row_filter.through[0].columns)
    return {c.column for c in row_filter.conditions}


def _referring(frame: pd.DataFrame, columns: tuple[str, ...], keys: set[Key]) -> np.ndarray:
    """Where the record's ``columns`` hold one of ``keys`` (a NULL refers to nothing)."""
    present: np.ndarray = frame[list(columns)].notna().all(axis=1).to_numpy(dtype=bool)
    inside = np.fromiter((k in keys for k in _keys(frame, columns)), dtype=bool, count=len(frame))
    referring: np.ndarray = present & inside
    return referring


def _key_texts(frame: pd.DataFrame, key: tuple[str, ...]) -> pd.Series:
    rows = frame[list(key)].itertuples(index=False, name=None)
    return pd.Series([key_text(row) for row in rows], index=frame.index, dtype=object)


def _keys(rows: pd.DataFrame, key: tuple[str, ...]) -> list[Key]:
    return [
        tuple(plain(v) for v in row) for row in rows[list(key)].itertuples(index=False, name=None)
    ]


def _chunk_end(rows: pd.DataFrame, collection: Collection, start: int, limit: int) -> int:
    """Where a chunk starting at ``start`` ends: ``limit`` rows on, extended to the end
    of the last unit so that a unit is never split between chunks."""
    end = min(start + limit, len(rows))
    if collection.unit == 0 or end in (start, len(rows)):
        return end
    units = rows[list(collection.key[: collection.unit])].iloc[end - 1 :]
    same = (units == units.iloc[0]).all(axis=1).to_numpy(dtype=bool)
    differs = np.flatnonzero(~same)
    return end - 1 + (int(differs[0]) if differs.size else len(same))


def _shifted_marks(
    books: RecordBookkeeping, collection: Collection, deleted: Sequence[Key]
) -> dict[str, str]:
    """Where the marks of a positional unit's surviving records move when ``deleted``
    records leave it ("" for the deleted records' own marks)."""
    by_unit: dict[Key, list[int]] = {}
    for key in deleted:
        by_unit.setdefault(key[: collection.unit], []).append(int(key[-1]))
    moves: dict[str, str] = {}
    for unit, positions in by_unit.items():
        gone = np.sort(np.asarray(positions))
        gone_set = set(positions)
        for text in books.marks_in_unit(unit):
            key = tuple(json.loads(text))
            position = int(key[-1])
            if position in gone_set:
                moves[text] = ""
                continue
            new = position - int(np.searchsorted(gone, position))
            if new != position:
                moves[text] = key_text((*key[:-1], new))
    return moves
