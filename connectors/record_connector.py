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
import json
import random
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from connectors.errors import StoreError, StoreUnavailable
from connectors.frame_predicates import clock_mask, expired_event_keys, held_masks
from connectors.protocol import (
    Capabilities,
    ChunkResult,
    ChunkWork,
    ExpiryCounts,
    ExpirySelection,
    JournalEntry,
    Key,
    PublishedCell,
    RollupSink,
    TableInfo,
)
from connectors.record_bookkeeping import Intent, RecordBookkeeping, key_text
from connectors.records import Collection, Partition, RecordStore
from connectors.rollups import partial_cells, period_starts, rollup_columns
from connectors.times import TimeContext
from connectors.values import plain

#: Records read per frame while judging a collection.
SCAN_CHUNK = 50_000
#: At most this many records are read to draw a sample.
SAMPLE_READ_LIMIT = 200_000


class RecordConnector:
    """The ``Connector`` protocol over a ``RecordStore``.

    ``bookkeeping_dir`` is where the store's bookkeeping database lives (the flows pass
    the state database's directory); without it the connector can read but not write.
    """

    def __init__(
        self,
        store: RecordStore,
        *,
        bookkeeping_dir: str | Path | None = None,
        naive_timezone: str = "UTC",
        local_timezone: str = "UTC",
        read_only: bool = True,
    ) -> None:
        self.store = store
        self.name = store.name
        self._times = TimeContext(naive_timezone, local_timezone)
        self._read_only = read_only
        self._dir = None if bookkeeping_dir is None else Path(bookkeeping_dir)
        self._books = (
            None
            if self._dir is None
            else RecordBookkeeping(self._dir / f"{store.name}.bookkeeping.sqlite")
        )
        self._collections: dict[str, Collection | None] = {}
        self._passes: dict[tuple[str, str], tuple[pd.DataFrame, int]] = {}
        #: Records per partition (by its fields' values), as the last count_expiry read them.
        self._partition_rows: dict[str, dict[tuple[Any, ...], int]] = {}
        self._restart_after: dict[tuple[str, str], Key | None] = {}

    @property
    def display_url(self) -> str:
        return self.store.display_url

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
        for frame, due, holds in self._judged(selection, fields):
            total += len(frame)
            for values in frame[list(fields)].itertuples(index=False, name=None) if fields else ():
                place = tuple(plain(v) for v in values)
                sizes[place] = sizes.get(place, 0) + 1
            protected = np.logical_or.reduce(holds) if holds else np.zeros(len(frame), bool)
            expired += int((due & ~protected).sum())
            held += int((due & protected).sum())
            for row_filter, mask in zip(selection.exclusions, holds, strict=True):
                held_by[row_filter.name] += int((due & mask).sum())
        self._partition_rows[selection.table] = sizes
        return ExpiryCounts(total, expired, held, held_by)

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
        for frame, due, holds in self._judged(selection, columns):
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
        new is chosen."""
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
        actionable, start = self._passes[pass_key]
        end = _chunk_end(actionable, collection, start, work.limit)
        if end == start:
            self._passes.pop(pass_key, None)
            return ChunkResult(0, None)
        self._passes[pass_key] = (actionable, end)
        rows = actionable.iloc[start:end]
        keys = _keys(rows, collection.key)
        intent = self._intent(books, work, collection, rows, keys)
        self._apply(books, collection, intent)
        return ChunkResult(intent.rows, keys[-1])

    def journal(self, run_id: str) -> list[JournalEntry]:
        return [] if self._books is None else self._books.journal(run_id)

    def rollup_cells(self, label: str, rollup: RollupSink) -> list[PublishedCell]:
        return [] if self._books is None else self._books.rollup_cells(label, rollup)

    @contextmanager
    def exclusive(self, name: str) -> Iterator[bool]:
        """An advisory file lock beside the bookkeeping database; the kernel releases it
        if this process dies."""
        if self._dir is None:
            yield True
            return
        self._dir.mkdir(parents=True, exist_ok=True)
        path = self._dir / f"{self.name}.lock"
        with path.open("a") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def close(self) -> None:
        if self._books is not None:
            self._books.close()
        self.store.close()

    # choosing records

    def _judged(
        self, selection: ExpirySelection, columns: Sequence[str]
    ) -> Iterator[tuple[pd.DataFrame, np.ndarray, list[np.ndarray]]]:
        """Each frame of the collection with where it is expired and where each
        exclusion holds it."""
        collection = self._require(selection.table)
        fields = collection.fields
        needed = set(columns) | {c.column for f in selection.exclusions for c in f.conditions}
        event_keys: set[Any] | None = None
        if selection.event is not None:
            event = selection.event
            needed.add(event.local_key)
            event_keys = self._expired_events(selection)
        else:
            needed.add(selection.clock_column)
        marks = (
            self._books.marked(selection.skip_marked)
            if selection.skip_marked is not None and self._books is not None
            else set()
        )
        wanted = sorted(needed - set(collection.key))
        for frame in self.store.scan(selection.table, wanted, SCAN_CHUNK):
            if event_keys is not None:
                assert selection.event is not None
                local = frame[selection.event.local_key]
                due = local.isin(event_keys).to_numpy(dtype=bool) & local.notna().to_numpy(bool)
            else:
                info = fields[selection.clock_column]
                due = clock_mask(frame, selection, info, self._times)
            if marks:
                due &= ~_key_texts(frame, collection.key).isin(marks).to_numpy(dtype=bool)
            yield frame, due, held_masks(frame, selection.exclusions, fields, self._times)

    def _expired_events(self, selection: ExpirySelection) -> set[Any]:
        assert selection.event is not None
        event = selection.event
        events = self._require(event.table)
        frames = list(self.store.scan(event.table, [event.event_key, event.column], SCAN_CHUNK))
        if not frames:
            return set()
        data = pd.concat(frames, ignore_index=True)
        info = events.fields[event.column]
        return expired_event_keys(
            data, event.event_key, event.column, info, selection.cutoff, self._times
        )

    def _actionable(self, work: ChunkWork, collection: Collection) -> pd.DataFrame:
        """The pass's records (selected, not held), with what the action reads."""
        columns = {r.column for r in work.rewrites}
        if work.action == "aggregate_then_delete":
            columns.update(rollup_columns(work))
        parts = []
        for frame, due, holds in self._judged(work.selection, sorted(columns)):
            protected = np.logical_or.reduce(holds) if holds else np.zeros(len(frame), bool)
            parts.append(frame[due & ~protected])
        if not parts:
            return pd.DataFrame(columns=[*collection.key, *sorted(columns)])
        rows = pd.concat(parts, ignore_index=True)
        return rows.sort_values(list(collection.key), kind="stable", ignore_index=True)

    # whole partitions

    def _droppable(self, work: ChunkWork, collection: Collection) -> bool:
        """A delete whose clock is a partition field, with nothing that could hold or
        skip single records: whole partitions go."""
        selection = work.selection
        return (
            work.action == "delete"
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
        due = clock_mask(clocks, selection, info, self._times)  # once for all partitions
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
        if collection.positional:
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
        clock = rows[work.selection.clock_column]
        periods: dict[str, pd.Series] = {}
        out = []
        for sink in work.rollups:
            if sink.period not in periods:
                periods[sink.period] = period_starts(
                    clock, sink.period, ZoneInfo(work.period_zone), self._times.naive_zone
                )
            cells = partial_cells(rows, sink, periods[sink.period])
            for cell in cells:
                cell.update(run_id=work.run_id, chunk_no=work.chunk_no)
            out.append((books.rollup(work.label, sink, collection.fields), cells))
        return out

    def _apply(self, books: RecordBookkeeping, collection: Collection, intent: Intent) -> None:
        """Steps 2 and 3 of a chunk; also the replay of an intent after a crash, which
        leaves alone the units rewritten since the intent was written."""
        if intent.partitions:  # a partition is named by its key; no need to list them again
            partitions = [Partition(str(key[0]), {}) for key in intent.keys]
            self.store.drop_partitions(collection.name, partitions)
            books.close_intent(intent, (), {})
            return
        chosen = list(range(len(intent.keys)))
        if intent.versions:
            current = self.store.versions(collection.name, list(intent.versions))
            stale = {u for u, version in intent.versions.items() if current.get(u) != version}
            chosen = [i for i in chosen if intent.keys[i][: collection.unit] not in stale]
        keys = [intent.keys[i] for i in chosen]
        if intent.action == "anonymize":
            assert intent.values is not None, "an anonymize intent carries its new values"
            self.store.update(collection.name, keys, intent.values.iloc[chosen])
            books.close_intent(intent, intent.keys, {})
            return
        shifted = _shifted_marks(books, collection, keys) if collection.positional else {}
        self.store.delete(collection.name, keys)
        books.close_intent(intent, (), shifted)

    def _replay(
        self, books: RecordBookkeeping, collection: Collection, work: ChunkWork
    ) -> ChunkResult | None:
        """Finish the oldest intent a crash left for this binding, journaled as this
        chunk of this run (the run that wrote it has ended and will not journal it)."""
        for intent in books.pending(work.label):
            if intent.collection == collection.name:
                intent = replace(intent, run_id=work.run_id, chunk_no=work.chunk_no)
                self._apply(books, collection, intent)
                return ChunkResult(intent.rows, intent.keys[-1])
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
