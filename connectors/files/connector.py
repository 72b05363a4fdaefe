"""The files store: a folder of CSV, JSON-lines or Parquet files, on any filesystem fsspec
reaches, as a ``RecordStore``.

Each top-level folder is a collection; below it, Hive-style ``name=value`` folders are
partitions whose values become fields, and each record is keyed by its file and its position
in the file (``connectors.files.layout``). A file is the unit of change: deleting or updating
records rewrites the file beside the original and swaps it in atomically, so after a crash a
file is either wholly old or wholly new (``connectors.files.atomic``). Names starting with
``_`` or ``.`` are never data: they hold bookkeeping, temporary files (``.<file>.tenure-tmp``)
and partitions being dropped (``.tenure-drop``). Files are read and written by their format
(``connectors.files.formats``: CSV, JSON lines, Parquet, and any format added to its
registry).

URLs: ``files:///relative/dir``, ``files:////absolute/dir``, ``files+PROTO://...`` for any
fsspec protocol (``files+s3://bucket/prefix``); ``?format=csv|jsonl|parquet`` (a registered
format's name) forces a format, other query options go to the fsspec filesystem.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import posixpath
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path
from stat import S_ISREG
from typing import IO, TYPE_CHECKING

import fsspec.core  # type: ignore[import-untyped]
import pandas as pd
from fsspec.implementations.local import LocalFileSystem  # type: ignore[import-untyped]
from sqlalchemy import make_url
from sqlalchemy.exc import ArgumentError

from connectors import workers
from connectors.errors import StoreError, StoreUnavailable
from connectors.files.atomic import Outcome, fsync_dir, prune, rewrite_file
from connectors.files.formats import FORMATS, BadFile, FileFormats, Rewrite
from connectors.files.layout import (
    KEY,
    SEGMENT,
    VERSION,
    DataFile,
    Layout,
    Layouts,
    dtype,
    typed_value,
    typed_values,
    valid_name,
    within,
)
from connectors.protocol import Key
from connectors.records.store import SYMLINK, Capabilities, Collection, Partition, read_only_paths
from connectors.urls import hide_secrets, mask_url

if TYPE_CHECKING:
    from connectors.protocol import Connector, ConnectorOptions

DROP_SUFFIX = ".tenure-drop"


class FilesStore:
    """A folder of data files (see the module docstring)."""

    capabilities = Capabilities(transactions=False, pushdown=False, partitions=True)

    def __init__(
        self, name: str, url: str, *, read_only: bool = True, formats: FileFormats = FORMATS
    ) -> None:
        """``formats``: the file formats it reads (by default the registry ``FORMATS``,
        so that a format added to it is read by every store)."""
        self.name = name
        self.read_only = read_only
        try:
            parsed = make_url(url)
        except ArgumentError:
            raise StoreError(name, "files://", "not a files URL") from None
        self._display = mask_url(parsed)
        self._url = parsed
        query = {k: v for k, v in parsed.query.items() if k != "format"}
        forced = parsed.query.get("format")
        if forced is not None and formats.get(forced) is None:
            raise StoreError(
                name, self._display, f"format must be one of {', '.join(formats.names)}"
            )
        driver, _, protocol = parsed.drivername.partition("+")
        if driver != "files":
            raise StoreError(name, self._display, "not a files URL")
        if protocol:
            target = url.split("+", 1)[1].split("?", 1)[0]
        else:
            target = os.path.abspath(parsed.database or ".")
        try:
            self._fs, root = fsspec.core.url_to_fs(target, **query)
        except (ImportError, ValueError, TypeError) as exc:
            raise StoreError(name, self._display, self._clean(exc)) from None
        self._root: str = root.rstrip("/") or "/"
        self._prefix = self._root.rstrip("/")  # what paths below the root start with
        self._local = isinstance(self._fs, LocalFileSystem)
        self._layouts = Layouts(
            self._fs,
            self._prefix,
            local=self._local,
            formats=formats,
            forced=formats.get(forced),
            fail=self._fail,
            clean=self._clean,
        )

    @property
    def display_url(self) -> str:
        return self._display

    def ping(self) -> None:
        try:
            if not self._fs.isdir(self._root):
                raise StoreUnavailable(self.name, self._display, "the folder does not exist")
            self._fs.ls(self._root)
            if self._local and not os.access(self._root, os.R_OK | os.X_OK):
                raise PermissionError("the folder cannot be read")
        except StoreUnavailable:
            raise
        except Exception as exc:
            raise StoreUnavailable(self.name, self._display, self._clean(exc)) from None

    def collections(self) -> list[str]:
        """Folders below the root; a folder that is a symbolic link is listed too, so
        that reading it reports it (it is never followed)."""
        self.ping()
        links: list[str] = []
        names = [n for n, is_dir in self._layouts.entries(self._root, links) if is_dir]
        names += [n for n in links if self._fs.isdir(f"{self._prefix}/{n}")]
        return sorted(n for n in names if valid_name(n))

    def bookkeeping_home(self) -> Path | None:
        """``_tenure/`` in a local store's root (never read as data: names starting
        with ``_`` are not collections); None elsewhere."""
        return Path(self._root) / "_tenure" if self._local else None

    def write_problems(self, collection: str) -> list[str]:
        """Read-only folders of a local collection (a run replaces and removes files in
        each); a remote store's permissions are not checked."""
        base = Path(f"{self._prefix}/{collection}")
        if not self._local or not valid_name(collection) or not base.is_dir():
            return []
        folders = [Path(folder) for folder, _, _ in os.walk(base)]  # links not followed
        return read_only_paths(f"collection {collection!r}", folders)

    def skipped(self, collection: str) -> dict[str, int]:
        """Symbolic links found inside the collection by its last listing: never
        followed, replaced or unlinked, and counted here (``ReportsSkipped``)."""
        links = self._layouts.links.get(collection, 0)
        return {SYMLINK: links} if links else {}

    def describe(self, collection: str) -> Collection | None:
        layout = self._layouts.get(collection)
        return None if layout is None else layout.collection

    def scan(
        self,
        collection: str,
        fields: Sequence[str],
        chunk_size: int,
        partitions: Sequence[Partition] | None = None,
        units: Sequence[Key] | None = None,
    ) -> Iterator[pd.DataFrame]:
        """Files in order of their relative path, records in file order; files are streamed
        in pieces of ``chunk_size`` rows, never read whole. Asked for ``VERSION``, frames
        hold the version of each record's file as it was read (taken before it is opened,
        so that a file changed while being read never matches it again)."""
        if chunk_size < 1:
            raise ValueError("chunk_size must be at least 1")
        layout = self._require(collection)
        if not layout.files:
            return  # emptied by deletes: its fields are gone with its files
        known = layout.collection.fields
        unknown = [f for f in fields if f not in known and f != VERSION]
        if unknown:
            raise StoreError(self.name, self._display, f"{collection}: no field {unknown[0]!r}")
        wanted = [
            f
            for f in dict.fromkeys(fields)
            if f not in KEY and f not in layout.partition_fields and f != VERSION
        ]
        versioned = VERSION in fields
        files = layout.files
        if partitions is not None:
            names = [p.name for p in partitions]
            files = [f for f in files if any(within(f.partition, n) for n in names)]
        if units is not None:
            chosen = {str(unit[0]) for unit in units}
            files = [f for f in files if f.rel in chosen]
        pending: list[pd.DataFrame] = []
        held = 0
        for file in files:
            frames = self._typed_frames(collection, layout, file, wanted, chunk_size, versioned)
            for frame in frames:
                while len(frame):
                    piece, frame = frame.iloc[: chunk_size - held], frame.iloc[chunk_size - held :]
                    pending.append(piece)
                    held += len(piece)
                    if held == chunk_size:
                        yield pd.concat(pending, ignore_index=True)
                        pending, held = [], 0
        if pending:
            yield pd.concat(pending, ignore_index=True)

    def scan_units(
        self, collection: str, fields: Sequence[str], chunk_size: int, units: Sequence[Key]
    ) -> Iterator[pd.DataFrame]:
        """As ``scan``, for these files only (``ScansUnits``)."""
        return self.scan(collection, fields, chunk_size, units=units)

    def delete(self, collection: str, keys: Sequence[Key]) -> int:
        """Rewrite each file named by ``keys`` without those rows; keys whose file or row is
        gone are ignored. Row numbers shift once a file is rewritten, so replaying a delete
        is only harmless on a file whose rewrite did not complete. That is the caller's
        contract, not recorded here: the connector's intent holds each file's ``versions``
        and replays keys only for files whose version is unchanged; since a rewrite is
        atomic, such a file is still the original."""
        self._writable()
        changes: dict[str, Rewrite] = {}
        for rel, row in self._positions(keys):
            changes.setdefault(rel, Rewrite(drop=set(), updates={})).drop.add(row)
        return self._apply(collection, changes)

    def update(self, collection: str, keys: Sequence[Key], values: pd.DataFrame) -> int:
        """Overwrite the fields named by ``values``' columns; writing the same values twice
        gives the same file, so a replay is harmless. Other cells keep their bytes (CSV, JSON
        lines) or their Arrow type (Parquet)."""
        self._writable()
        if len(values) != len(keys):
            raise StoreError(self.name, self._display, "update: one row of values per key")
        layout = self._layouts.get(collection)
        if layout is None:
            return 0
        for field in values.columns:
            if field in KEY or field in layout.partition_fields:
                raise StoreError(
                    self.name, self._display, f"{collection}: field {field!r} cannot be updated"
                )
            if field not in layout.collection.fields:
                raise StoreError(self.name, self._display, f"{collection}: no field {field!r}")
        changes: dict[str, Rewrite] = {}
        rows = values.to_dict("records")
        for (rel, row), fields in zip(self._positions(keys), rows, strict=True):
            change = changes.setdefault(rel, Rewrite(drop=set(), updates={}))
            change.updates.setdefault(row, {}).update({str(k): v for k, v in fields.items()})
        return self._apply(collection, changes)

    def versions(self, collection: str, units: Sequence[Key]) -> dict[Key, str]:
        """A file's identity on disk (inode, size, mtime in ns) locally, or what the
        filesystem reports (ETag, modification time, size) elsewhere. A rewrite always
        makes a new file, so the version changes even when the bytes come out the same."""
        found: dict[Key, str] = {}
        if not valid_name(collection):
            return found
        for unit in units:
            rel = str(unit[0])
            if rel.startswith("/") or any(not p or p[0] in "._" for p in rel.split("/")):
                continue
            version = self._version(collection, rel, f"{self._prefix}/{collection}/{rel}")
            if version is not None:
                found[tuple(unit)] = version
        return found

    def _version(self, collection: str, rel: str, path: str) -> str | None:
        """The file's version as ``versions`` gives it; None when it is gone (or is a
        symbolic link, never this store's to change)."""
        try:
            if self._local:
                stat = os.lstat(path)
                if not S_ISREG(stat.st_mode):
                    return None
                return f"{stat.st_ino}-{stat.st_size}-{stat.st_mtime_ns}"
            details = self._fs.info(path)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise self._error(collection, rel, self._clean(exc)) from None
        if details.get("type") != "file":
            return None
        described = sorted((str(k), str(v)) for k, v in details.items() if k != "name")
        return hashlib.sha256(repr(described).encode()).hexdigest()[:32]

    def partitions(self, collection: str) -> list[Partition]:
        layout = self._layouts.get(collection)
        if layout is None:
            return []
        grouped: dict[str, list[DataFile]] = {}
        for file in layout.files:
            if file.partition:
                grouped.setdefault(file.partition, []).append(file)
        found = []
        for name, files in sorted(grouped.items()):
            records: int | None = None
            if all(f.format.counts_rows for f in files):
                records = sum(self._layouts.read(collection, f, f.format.rows) for f in files)
            values = typed_values(files[0].values, layout.partition_fields)
            found.append(Partition(name=name, values=values, records=records))
        return found

    def drop_partitions(self, collection: str, partitions: Sequence[Partition]) -> None:
        """Remove each partition's folder whole. Locally it is first renamed to a hidden
        ``.tenure-drop`` folder (atomic: scans stop seeing it at once), then deleted; one
        left by a crash is deleted by the next drop."""
        self._writable()
        if not valid_name(collection):
            return
        base = f"{self._prefix}/{collection}"
        if self._local and os.path.isdir(base):
            for leftover in os.listdir(base):
                if leftover.startswith(".") and leftover.endswith(DROP_SUFFIX):
                    shutil.rmtree(os.path.join(base, leftover), ignore_errors=True)
        for partition in partitions:
            segments = partition.name.strip("/").split("/")
            if not all(SEGMENT.fullmatch(s) and s[0] not in "._" for s in segments):
                raise StoreError(
                    self.name, self._display, f"{collection}: not a partition: {partition.name!r}"
                )
            path = f"{base}/{'/'.join(segments)}"
            try:
                if not self._fs.isdir(path) or (self._local and os.path.islink(path)):
                    continue  # gone, or a link: never followed nor unlinked
                if self._local and _links_below(path):
                    _remove_files_below(path)  # the links stay: never unlinked
                elif self._local:
                    staged = os.path.join(base, f".{'%2F'.join(segments)}{DROP_SUFFIX}")
                    os.rename(path, staged)
                    fsync_dir(base)
                    shutil.rmtree(staged)
                else:
                    self._fs.rm(path, recursive=True)
                prune(self._fs, base, path)
            except OSError as exc:
                raise self._error(collection, partition.name, self._clean(exc)) from None

    def close(self) -> None:
        self._layouts.clear()

    def _require(self, collection: str) -> Layout:
        layout = self._layouts.get(collection)
        if layout is None:
            raise StoreError(self.name, self._display, f"no collection {collection!r}")
        return layout

    # --- reading ----------------------------------------------------------------------------

    def _typed_frames(
        self,
        collection: str,
        layout: Layout,
        file: DataFile,
        wanted: list[str],
        chunk_size: int,
        versioned: bool = False,
    ) -> Iterator[pd.DataFrame]:
        fields = layout.collection.fields
        columns = [fields[name] for name in wanted]
        offset = 0
        version = (self._version(collection, file.rel, file.path) or "") if versioned else None
        try:
            with self._fs.open(file.path, "rb", compression=file.compression) as opened:
                for typed in file.format.read(opened, columns, chunk_size):
                    count = len(typed)
                    frame = pd.DataFrame(
                        {
                            "source_file": pd.Series([file.rel] * count, dtype=object),
                            "row_number": pd.RangeIndex(offset, offset + count).to_numpy(),
                        }
                    )
                    if version is not None:
                        frame[VERSION] = pd.Series([version] * count, dtype=object)
                    values = dict(file.values)
                    for name, column in layout.partition_fields.items():
                        value = typed_value(values.get(name), column)
                        frame[name] = pd.Series([value] * count, dtype=dtype(column))
                    for name in wanted:
                        frame[name] = typed[name]
                    offset += count
                    yield frame
        except BadFile as exc:
            raise self._error(collection, file.rel, str(exc)) from None
        except (OSError, EOFError) as exc:
            raise self._error(collection, file.rel, self._clean(exc)) from None

    # --- writing ----------------------------------------------------------------------------

    def _writable(self) -> None:
        if self.read_only:
            raise StoreError(self.name, self._display, "opened read-only")

    def _positions(self, keys: Sequence[Key]) -> Iterator[tuple[str, int]]:
        for key in keys:
            rel, row = str(key[0]), int(key[1])
            parts = rel.split("/")
            if rel.startswith("/") or any(not p or p[0] in "._" for p in parts):
                raise StoreError(self.name, self._display, f"not a data file: {rel!r}")
            yield rel, row

    def _apply(self, collection: str, changes: dict[str, Rewrite]) -> int:
        if not valid_name(collection):
            return 0
        base = f"{self._prefix}/{collection}"
        folders: dict[str, list[tuple[DataFile, Rewrite]]] = {}
        for rel, change in sorted(changes.items()):
            name = posixpath.basename(rel)
            detected = self._layouts.detect(name)
            path = f"{base}/{rel}"
            if detected is None or not self._fs.isfile(path):
                continue  # gone already: a replay
            if self._local and os.path.islink(path):
                continue  # never replaced: its target would keep what was to go
            folder = folders.setdefault(posixpath.dirname(rel), [])
            folder.append((DataFile(rel, path, *detected, "", ()), change))
        # Each file is replaced whole and atomically, so partitions (folders) are rewritten
        # side by side, with a cluster's width; a folder's files one after another, since
        # the last one out removes the folder. A failure leaves each file old or new, and
        # the chunk's intent finishes the rest.

        def rewrite(files: list[tuple[DataFile, Rewrite]]) -> int:
            return sum(self._rewrite(collection, base, file, change) for file, change in files)

        return sum(workers.side_by_side(rewrite, list(folders.values())))

    def _rewrite(self, collection: str, base: str, file: DataFile, change: Rewrite) -> int:
        """Rewrite one file atomically (``rewrite_file``) by its format; a file left
        without records is removed, with the folders that leaves empty."""

        def write(opened: IO[bytes], out: IO[bytes]) -> Outcome:
            file.format.rewrite(opened, out, change)
            if change.touched == 0:
                return "keep"
            return "remove" if change.kept == 0 else "replace"

        try:
            outcome = rewrite_file(
                self._fs, file.path, local=self._local, compression=file.compression, write=write
            )
            if outcome == "remove":
                prune(self._fs, base, file.path)
            return change.touched
        except BadFile as exc:
            raise self._error(collection, file.rel, str(exc)) from None
        except (OSError, EOFError) as exc:
            raise self._error(collection, file.rel, self._clean(exc)) from None

    # --- errors -----------------------------------------------------------------------------

    def _clean(self, exc: BaseException) -> str:
        """One line of the error, with the URL's secrets (if any) blanked out."""
        text = str(exc).strip()
        line = text.splitlines()[0] if text else type(exc).__name__
        return hide_secrets(line, self._url)

    def _error(self, collection: str, rel: str, reason: str) -> StoreError:
        return self._fail(f"{collection}/{rel}", reason)

    def _fail(self, where: str, reason: str) -> StoreError:
        return StoreError(self.name, self._display, f"{where}: {reason}")


def _links_below(path: str) -> bool:
    """Whether a local folder holds a symbolic link anywhere below it."""
    for folder, dirs, files in os.walk(path):
        if any(os.path.islink(os.path.join(folder, name)) for name in [*dirs, *files]):
            return True
    return False


def _remove_files_below(path: str) -> None:
    """Remove the regular files below a local folder, and the folders left empty; the
    symbolic links (and the folders holding them) stay."""
    for folder, _, files in os.walk(path, topdown=False):
        for name in files:
            full = os.path.join(folder, name)
            if not os.path.islink(full):
                os.unlink(full)
        with contextlib.suppress(OSError):
            os.rmdir(folder)


def connector(name: str, url: str, options: ConnectorOptions) -> Connector:
    """The ``files`` entry point: a ``FilesStore`` behind the generic record connector."""
    from connectors.records.connector import RecordConnector

    return RecordConnector(FilesStore(name, url, read_only=options.read_only), options)
