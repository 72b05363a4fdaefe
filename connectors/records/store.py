"""The record-store kit: the few primitives a store without SQL implements.

A store that is not a SQL database (a folder of files, a mailbox, an event log) gives
Tenure a ``RecordStore``: it lists its collections, describes their fields and keys,
streams records as pandas DataFrames, and deletes or updates records by key.
``connectors.records.connector.RecordConnector`` turns any ``RecordStore`` into a full
``Connector``: it evaluates expiry predicates in pandas, cuts chunks, keeps the journal,
marks and rollups in a bookkeeping database of its own, and makes every chunk
crash-safe with a write-ahead intent. A store only promises that a single ``delete`` or
``update`` of one unit (a file, a message) is atomic and that repeating it is harmless.

Two optional protocols a store may also answer: ``HasHome`` (a local folder of its own
where its lock, journal and intents live, so that every run of any policy, from any
working folder, shares them) and ``ReportsSkipped`` (what its scans left out and why:
symbolic links, unreadable entries), so that nothing is ever left out silently.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import pandas as pd

from connectors.protocol import Capabilities, ColumnInfo, Key, Scalar

__all__ = [
    "SYMLINK",
    "Capabilities",
    "Collection",
    "HasHome",
    "Partition",
    "RecordStore",
    "ReportsSkipped",
    "ScansUnits",
]

#: Why a symbolic link inside a store is skipped: never followed, replaced or unlinked.
SYMLINK = "symbolic link"


@dataclass(frozen=True)
class Collection:
    """One collection of a record store: its fields and how its records are keyed."""

    name: str
    fields: dict[str, ColumnInfo]
    key: tuple[str, ...]
    """The fields that identify a record; every scanned frame holds them."""
    unit: int = 0
    """How many leading key fields name the unit a store rewrites at once (a file: 1).
    0 means each record is its own unit. A chunk never splits a unit."""
    positional: bool = False
    """The key's last field is the record's position inside its unit, which shifts when
    records before it are deleted (a line number in a file)."""
    partition_fields: tuple[str, ...] = ()
    """Fields whose value comes from the partition a record lives in."""
    version_field: str | None = None
    """A positional store that names this field puts it in a scanned frame when asked
    for it: the version (as ``versions`` gives it) of each record's unit *as it was
    read*, and it
    answers ``ScansUnits.scan_units`` to read some units again. A unit whose version changed
    after its records were chosen is then judged again before its positions are used.
    Not one of ``fields``: a policy never sees it."""


@dataclass(frozen=True)
class Partition:
    """A group of records that can be dropped whole, and the field values it fixes."""

    name: str
    values: dict[str, Scalar]
    records: int | None = None
    """How many records it holds, when the store knows without reading them."""


@runtime_checkable
class RecordStore(Protocol):
    """The primitives of a store without SQL (see the module docstring)."""

    name: str
    capabilities: Capabilities

    @property
    def display_url(self) -> str:
        """Where the store is, with any password hidden."""
        ...

    def ping(self) -> None:
        """Raise ``StoreUnavailable`` unless the store can be read; never writes."""
        ...

    def collections(self) -> list[str]:
        """The names of the store's collections."""
        ...

    def describe(self, collection: str) -> Collection | None:
        """The collection's fields and key, or None when it does not exist."""
        ...

    def scan(
        self,
        collection: str,
        fields: Sequence[str],
        chunk_size: int,
        partitions: Sequence[Partition] | None = None,
    ) -> Iterator[pd.DataFrame]:
        """Records in key order, in frames of at most ``chunk_size`` rows (a unit may
        be split across frames), holding the key fields and ``fields``; only the given
        ``partitions`` when not None. Read only. Two records may share a key only when
        the store cannot tell them apart: ``RecordConnector`` then refuses both and
        reports them (a store must never merge them into one)."""
        ...

    def delete(self, collection: str, keys: Sequence[Key]) -> int:
        """Delete the records with these keys; keys already gone are ignored, so that
        replaying a delete after a crash is harmless. Each unit changes atomically
        (a file is replaced whole). Returns how many records were deleted."""
        ...

    def update(self, collection: str, keys: Sequence[Key], values: pd.DataFrame) -> int:
        """Set the fields named by ``values``' columns; row ``i`` of ``values`` belongs
        to ``keys[i]``. Keys already gone are ignored; each unit changes atomically.
        Returns how many records were updated."""
        ...

    def versions(self, collection: str, units: Sequence[Key]) -> dict[Key, str]:
        """An opaque version of each unit that exists (it changes whenever the unit is
        rewritten), keyed by the unit's leading key fields. Positional stores need it, so
        that a delete replayed after a crash never hits a unit rewritten since; stores
        whose keys never shift may return {}."""
        ...

    def partitions(self, collection: str) -> list[Partition]:
        """The collection's partitions ([] when it has none)."""
        ...

    def drop_partitions(self, collection: str, partitions: Sequence[Partition]) -> None:
        """Remove these partitions whole, found by name; ones already gone are ignored."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class HasHome(Protocol):
    """A store that has a local folder of its own for Tenure's bookkeeping."""

    def bookkeeping_home(self) -> Path | None:
        """A folder inside (or beside) the store that the store never reads as data,
        where every run keeps the store's lock, journal and intents; None when the store
        is not local (the connector then uses a per-machine folder keyed by its URL)."""
        ...


@runtime_checkable
class ReportsSkipped(Protocol):
    """A store whose scans may leave entries out (a symbolic link, which is never
    followed, replaced or unlinked): it says how many, by reason."""

    def skipped(self, collection: str) -> dict[str, int]:
        """What the last complete scan of ``collection`` left out, by reason."""
        ...


@runtime_checkable
class ScansUnits(Protocol):
    """A positional store that can read some of its units again (see
    ``Collection.version_field``)."""

    def scan_units(
        self, collection: str, fields: Sequence[str], chunk_size: int, units: Sequence[Key]
    ) -> Iterator[pd.DataFrame]:
        """As ``scan``, for these units only (their leading key fields)."""
        ...


def read_only_paths(what: str, paths: Iterable[Path]) -> list[str]:
    """One reason when this process may not change some of ``paths`` (the folders a
    run deletes, replaces or moves files in, or files it rewrites), naming the first
    and counting the others; [] when it may change all of them."""
    found = [
        path
        for path in paths
        if path.exists() and not os.access(path, os.W_OK | (os.X_OK if path.is_dir() else 0))
    ]
    if not found:
        return []
    more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
    return [f"{what} is read-only: {found[0]}{more}"]
