"""The files store: a folder of CSV, JSON-lines or Parquet files, on any filesystem fsspec
reaches, as a ``RecordStore``.

Each top-level folder is a collection; below it, Hive-style ``name=value`` folders are
partitions whose values become fields, and each record is keyed by its file and its position
in the file. A file is the unit of change: deleting or updating records rewrites the file
beside the original and swaps it in atomically, so after a crash a file is either wholly old
or wholly new. Names starting with ``_`` or ``.`` are never data: they hold bookkeeping,
temporary files (``.<file>.tenure-tmp``) and partitions being dropped (``.tenure-drop``).

URLs: ``files:///relative/dir``, ``files:////absolute/dir``, ``files+PROTO://...`` for any
fsspec protocol (``files+s3://bucket/prefix``); ``?format=csv|jsonl|parquet`` forces a format,
other query options go to the fsspec filesystem.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import posixpath
import re
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from functools import partial
from pathlib import Path
from stat import S_ISREG
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import unquote

import fsspec.compression  # type: ignore[import-untyped]
import fsspec.core  # type: ignore[import-untyped]
import pandas as pd
from fsspec.implementations.local import LocalFileSystem  # type: ignore[import-untyped]
from sqlalchemy import make_url
from sqlalchemy.exc import ArgumentError

from connectors.errors import StoreError, StoreUnavailable
from connectors.files.formats import (
    DATE,
    FORMATS,
    BadFile,
    Format,
    Rewrite,
    convert,
    detect,
    infer_arrow,
    infer_json,
    infer_text,
    info,
    parquet_rows,
    parquet_schema,
    read,
    rewrite,
    sample,
)
from connectors.protocol import ColumnInfo, Key, Scalar
from connectors.records.store import SYMLINK, Capabilities, Collection, Partition, read_only_paths
from connectors.urls import hide_secrets, mask_url

if TYPE_CHECKING:
    from connectors.protocol import Connector

KEY = ("source_file", "row_number")
#: The column a scan adds: the version of each record's file as it was read.
VERSION = "_tenure_file_version"
COLLECTION_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}")
_SEGMENT = re.compile(r"(?P<name>[^=/]+)=(?P<value>[^/]*)")
TEMP_SUFFIX = ".tenure-tmp"
DROP_SUFFIX = ".tenure-drop"
HIVE_NULL = "__HIVE_DEFAULT_PARTITION__"
_FORMAT_NAMES = {"csv": "CSV", "jsonl": "JSON lines", "parquet": "Parquet"}


def _open_temp(path: str) -> IO[bytes]:
    """Open the local file a rewrite is written to (a seam the crash tests break)."""
    return open(path, "wb")


@dataclass(frozen=True)
class _File:
    rel: str
    """The path below the collection: the ``source_file`` key."""
    path: str
    format: Format
    compression: str | None
    partition: str
    """The leading ``name=value`` folders (``year=2024/month=05``), "" for none."""
    values: tuple[tuple[str, str | None], ...]


@dataclass(frozen=True)
class _Layout:
    collection: Collection
    files: list[_File]
    partition_fields: dict[str, ColumnInfo]


class FilesStore:
    """A folder of data files (see the module docstring)."""

    capabilities = Capabilities(transactions=False, pushdown=False, partitions=True)

    def __init__(self, name: str, url: str, *, read_only: bool = True) -> None:
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
        if forced is not None and forced not in FORMATS:
            raise StoreError(name, self._display, f"format must be one of {', '.join(FORMATS)}")
        self._format: Format | None = next((f for f in FORMATS if f == forced), None)
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
        self._layouts: dict[str, tuple[tuple[str, ...], _Layout]] = {}
        #: Symbolic links inside each collection, as its last listing found them.
        self._links: dict[str, int] = {}

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
        names = [n for n, is_dir in self._entries(self._root, links) if is_dir]
        names += [n for n in links if self._fs.isdir(f"{self._prefix}/{n}")]
        return sorted(n for n in names if _valid_name(n))

    def bookkeeping_home(self) -> Path | None:
        """``_tenure/`` in a local store's root (never read as data: names starting
        with ``_`` are not collections); None elsewhere."""
        return Path(self._root) / "_tenure" if self._local else None

    def write_problems(self, collection: str) -> list[str]:
        """Read-only folders of a local collection (a run replaces and removes files in
        each); a remote store's permissions are not checked."""
        base = Path(f"{self._prefix}/{collection}")
        if not self._local or not _valid_name(collection) or not base.is_dir():
            return []
        folders = [Path(folder) for folder, _, _ in os.walk(base)]  # links not followed
        return read_only_paths(f"collection {collection!r}", folders)

    def skipped(self, collection: str) -> dict[str, int]:
        """Symbolic links found inside the collection by its last listing: never
        followed, replaced or unlinked, and counted here (``ReportsSkipped``)."""
        links = self._links.get(collection, 0)
        return {SYMLINK: links} if links else {}

    def describe(self, collection: str) -> Collection | None:
        layout = self._layout(collection)
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
            files = [f for f in files if any(_within(f.partition, n) for n in names)]
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
        layout = self._layout(collection)
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
        if not _valid_name(collection):
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
        layout = self._layout(collection)
        if layout is None:
            return []
        grouped: dict[str, list[_File]] = {}
        for file in layout.files:
            if file.partition:
                grouped.setdefault(file.partition, []).append(file)
        found = []
        for name, files in sorted(grouped.items()):
            records: int | None = None
            if all(f.format == "parquet" for f in files):
                records = sum(self._with_file(collection, f, parquet_rows) for f in files)
            values = _typed_values(files[0].values, layout.partition_fields)
            found.append(Partition(name=name, values=values, records=records))
        return found

    def drop_partitions(self, collection: str, partitions: Sequence[Partition]) -> None:
        """Remove each partition's folder whole. Locally it is first renamed to a hidden
        ``.tenure-drop`` folder (atomic: scans stop seeing it at once), then deleted; one
        left by a crash is deleted by the next drop."""
        self._writable()
        if not _valid_name(collection):
            return
        base = f"{self._prefix}/{collection}"
        if self._local and os.path.isdir(base):
            for leftover in os.listdir(base):
                if leftover.startswith(".") and leftover.endswith(DROP_SUFFIX):
                    shutil.rmtree(os.path.join(base, leftover), ignore_errors=True)
        for partition in partitions:
            segments = partition.name.strip("/").split("/")
            if not all(_SEGMENT.fullmatch(s) and s[0] not in "._" for s in segments):
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
                    _fsync_dir(base)
                    shutil.rmtree(staged)
                else:
                    self._fs.rm(path, recursive=True)
                self._prune(base, path)
            except OSError as exc:
                raise self._error(collection, partition.name, self._clean(exc)) from None

    def close(self) -> None:
        self._layouts.clear()

    # --- layout ----------------------------------------------------------------------------

    def _entries(self, path: str, links: list[str] | None = None) -> list[tuple[str, bool]]:
        """The visible children of a folder (name, is a folder), sorted; symbolic links
        are left out (and named in ``links``, when given)."""
        try:
            listing = self._fs.ls(path, detail=True)
        except FileNotFoundError:
            return []
        found = []
        for entry in listing:
            full = str(entry["name"]).rstrip("/")
            base = posixpath.basename(full)
            if not base or base[0] in "._" or full == path.rstrip("/"):
                continue
            if entry.get("islink"):
                if links is not None:
                    links.append(base)
                continue
            found.append((base, entry["type"] == "directory"))
        return sorted(found)

    def _files(self, collection: str, base: str) -> list[_File]:
        files: list[_File] = []
        links: list[str] = []

        def walk(path: str, parts: list[str]) -> None:
            for name, is_dir in self._entries(path, links):
                child = f"{path}/{name}"
                if is_dir:
                    walk(child, [*parts, name])
                    continue
                rel = "/".join([*parts, name])
                detected = detect(name, self._format)
                if detected is None:
                    raise self._error(
                        collection,
                        rel,
                        "not a .csv, .jsonl, .ndjson or .parquet file "
                        "(optionally .gz, .bz2, .xz); set ?format= to read it as one",
                    )
                hive: list[tuple[str, str | None]] = []
                for part in parts:
                    segment = _SEGMENT.fullmatch(part)
                    if segment is None:
                        break
                    value = unquote(segment["value"])
                    hive.append((segment["name"], None if value in ("", HIVE_NULL) else value))
                partition = "/".join(parts[: len(hive)])
                files.append(_File(rel, child, *detected, partition, tuple(hive)))

        walk(base, [])
        self._links[collection] = len(links)
        files.sort(key=lambda f: f.rel)
        for file in files[1:]:
            if file.format != files[0].format:
                raise self._error(
                    collection,
                    file.rel,
                    f"{_FORMAT_NAMES[file.format]} among {_FORMAT_NAMES[files[0].format]} "
                    f"files ({collection}/{files[0].rel}): a collection's files share one format",
                )
        return files

    def _layout(self, collection: str) -> _Layout | None:
        """The collection's files and fields; fields are inferred again only when files were
        added or replaced, so that a scan, or a drop of partitions, does not sample every
        file anew (removing files cannot add a field)."""
        if not _valid_name(collection):
            return None
        base = f"{self._prefix}/{collection}"
        if self._local and os.path.islink(base):
            raise StoreError(
                self.name, self._display, f"{collection}: a symbolic link, not followed"
            )
        try:
            if not self._fs.isdir(base):
                return None
            files = self._files(collection, base)
        except OSError as exc:
            raise StoreError(
                self.name, self._display, f"{collection}: {self._clean(exc)}"
            ) from None
        signature = tuple(f.rel for f in files)
        cached = self._layouts.get(collection)
        if cached is not None and set(signature) <= set(cached[0]) and files:
            self._layouts[collection] = (signature, cached[1])
            return _Layout(cached[1].collection, files, cached[1].partition_fields)
        layout = self._infer(collection, files)
        self._layouts[collection] = (signature, layout)
        return layout

    def _require(self, collection: str) -> _Layout:
        layout = self._layout(collection)
        if layout is None:
            raise StoreError(self.name, self._display, f"no collection {collection!r}")
        return layout

    def _infer(self, collection: str, files: list[_File]) -> _Layout:
        partition_raw: dict[str, list[str]] = {}
        for file in files:
            for field, value in file.values:
                partition_raw.setdefault(field, []).extend([] if value is None else [value])
        partition_fields = {f: _partition_info(f, raw) for f, raw in partition_raw.items()}
        columns: dict[str, ColumnInfo] = {}
        samples: dict[str, list[Any]] = {}
        for file in files:
            if file.format == "parquet":
                schema = self._with_file(collection, file, parquet_schema)
                for field in schema:
                    found = infer_arrow(field.name, field.type)
                    columns[field.name] = _merge(columns.get(field.name), found)
                continue
            names, values = self._with_file(collection, file, partial(sample, file.format))
            for name in names:
                samples.setdefault(name, []).extend(values[name])
        infer = infer_text if files and files[0].format == "csv" else infer_json
        for name, values in samples.items():
            columns[name] = infer(name, values)
        clash = [c for c in columns if c in KEY or c in partition_fields]
        if clash:
            raise StoreError(
                self.name,
                self._display,
                f"{collection}: field {clash[0]!r} is both a column and a "
                + ("key field" if clash[0] in KEY else "partition folder"),
            )
        fields = {
            "source_file": ColumnInfo("source_file", "text", "string", nullable=False),
            "row_number": ColumnInfo("row_number", "integer", "integer", nullable=False),
            **partition_fields,
            **columns,
        }
        described = Collection(
            name=collection,
            fields=fields,
            key=KEY,
            unit=1,
            positional=True,
            partition_fields=tuple(partition_fields),
            version_field=VERSION,
        )
        return _Layout(described, files, partition_fields)

    # --- reading ----------------------------------------------------------------------------

    def _with_file(self, collection: str, file: _File, use: Any) -> Any:
        """``use(opened file)``, with the file's failures reported under its path."""
        try:
            with self._fs.open(file.path, "rb", compression=file.compression) as opened:
                return use(opened)
        except BadFile as exc:
            raise self._error(collection, file.rel, str(exc)) from None
        except (OSError, EOFError) as exc:
            raise self._error(collection, file.rel, self._clean(exc)) from None

    def _typed_frames(
        self,
        collection: str,
        layout: _Layout,
        file: _File,
        wanted: list[str],
        chunk_size: int,
        versioned: bool = False,
    ) -> Iterator[pd.DataFrame]:
        fields = layout.collection.fields
        offset = 0
        version = (self._version(collection, file.rel, file.path) or "") if versioned else None
        try:
            with self._fs.open(file.path, "rb", compression=file.compression) as opened:
                for raw in read(file.format, opened, wanted, chunk_size):
                    count = len(raw)
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
                        value = _typed_value(values.get(name), column)
                        frame[name] = pd.Series([value] * count, dtype=_dtype(column))
                    for name in wanted:
                        frame[name] = self._typed(collection, file, raw[name], fields[name], offset)
                    offset += count
                    yield frame
        except BadFile as exc:
            raise self._error(collection, file.rel, str(exc)) from None
        except (OSError, EOFError) as exc:
            raise self._error(collection, file.rel, self._clean(exc)) from None

    def _typed(
        self, collection: str, file: _File, raw: pd.Series, column: ColumnInfo, offset: int
    ) -> Any:
        raw = raw.reset_index(drop=True)
        try:
            if file.format == "parquet":
                return _arrow_typed(raw, column)
            return convert(raw, column)
        except ValueError as exc:
            row = f"row_number {offset + int(exc.args[0])}" if exc.args else "a value"
            raise self._error(
                collection, file.rel, f"field {column.name}: {row} is not {column.family}"
            ) from None
        except (TypeError, OverflowError):
            raise self._error(
                collection, file.rel, f"field {column.name}: values are not {column.family}"
            ) from None

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
        if not _valid_name(collection):
            return 0
        base = f"{self._prefix}/{collection}"
        done = 0
        for rel, change in sorted(changes.items()):
            name = posixpath.basename(rel)
            detected = detect(name, self._format)
            path = f"{base}/{rel}"
            if detected is None or not self._fs.isfile(path):
                continue  # gone already: a replay
            if self._local and os.path.islink(path):
                continue  # never replaced: its target would keep what was to go
            file = _File(rel, path, *detected, "", ())
            done += self._rewrite(collection, base, file, change)
        return done

    def _rewrite(self, collection: str, base: str, file: _File, change: Rewrite) -> int:
        """Write the new file beside the old (locally) or in a private temporary folder
        (elsewhere), then swap it in: ``os.replace`` after fsync, or one upload."""
        folder = posixpath.dirname(file.path)
        private = None if self._local else tempfile.mkdtemp(prefix="tenure-files-")
        name = posixpath.basename(file.path)
        temp = f"{folder}/.{name}{TEMP_SUFFIX}" if private is None else f"{private}/{name}"
        try:
            raw = _open_temp(temp)
            try:
                with self._fs.open(file.path, "rb", compression=file.compression) as opened:
                    out = raw
                    if file.compression:
                        out = fsspec.compression.compr[file.compression](raw, mode="wb")
                    rewrite(file.format, opened, out, change)
                    if out is not raw:
                        out.close()
                raw.flush()
                os.fsync(raw.fileno())
            finally:
                raw.close()
            if change.touched == 0:
                return 0
            if change.kept == 0:
                if private is None:
                    os.unlink(temp)  # before pruning, so that the folder can be empty
                self._fs.rm_file(file.path)
                self._prune(base, file.path)
            elif private is None:
                os.replace(temp, file.path)
                _fsync_dir(folder)
            else:
                self._fs.put_file(temp, file.path)
            return change.touched
        except BadFile as exc:
            raise self._error(collection, file.rel, str(exc)) from None
        except (OSError, EOFError) as exc:
            raise self._error(collection, file.rel, self._clean(exc)) from None
        finally:
            if private is None:
                with contextlib.suppress(OSError):  # gone, or never made (read-only)
                    os.unlink(temp)
            else:
                shutil.rmtree(private, ignore_errors=True)

    def _prune(self, base: str, path: str) -> None:
        """Remove the folders below the collection that ``path``'s removal left empty."""
        folder = posixpath.dirname(path)
        while folder.startswith(base + "/"):
            try:
                if self._fs.ls(folder):
                    return
                self._fs.rmdir(folder)
            except FileNotFoundError:
                pass  # object stores: a folder without objects is already gone
            except OSError:
                return
            folder = posixpath.dirname(folder)

    # --- errors -----------------------------------------------------------------------------

    def _clean(self, exc: BaseException) -> str:
        """One line of the error, with the URL's secrets (if any) blanked out."""
        text = str(exc).strip()
        line = text.splitlines()[0] if text else type(exc).__name__
        return hide_secrets(line, self._url)

    def _error(self, collection: str, rel: str, reason: str) -> StoreError:
        return StoreError(self.name, self._display, f"{collection}/{rel}: {reason}")


def _valid_name(name: str) -> bool:
    return bool(COLLECTION_NAME.fullmatch(name))


def _within(partition: str, name: str) -> bool:
    name = name.strip("/")
    return partition == name or partition.startswith(name + "/")


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


def _fsync_dir(path: str) -> None:
    """Make a rename in ``path`` durable (a no-op where folders cannot be opened)."""
    try:
        descriptor = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def _merge(seen: ColumnInfo | None, found: ColumnInfo) -> ColumnInfo:
    """A column typed differently by two Parquet files: integers widen to numeric, any other
    disagreement is read as it comes (family ``other``)."""
    if seen is None or seen == found:
        return found
    if seen.family == found.family:
        return seen
    if {seen.family, found.family} == {"integer", "numeric"}:
        return info(found.name, "numeric", type_name="double")
    return info(found.name, "other", type_name=f"{seen.type_name} | {found.type_name}")


def _partition_info(name: str, raw: list[str]) -> ColumnInfo:
    if raw and all(DATE.fullmatch(v) for v in raw):
        try:
            for value in raw:
                date.fromisoformat(value)
            return info(name, "date")
        except ValueError:
            pass
    if raw and all(re.fullmatch(r"-?\d{1,18}", v) for v in raw):
        return info(name, "integer")
    return info(name, "text")


def _typed_value(raw: str | None, column: ColumnInfo) -> Scalar | None:
    if raw is None:
        return None
    if column.family == "date":
        return date.fromisoformat(raw)
    if column.family == "integer":
        return int(raw)
    return raw


def _typed_values(
    values: tuple[tuple[str, str | None], ...], fields: dict[str, ColumnInfo]
) -> dict[str, Scalar]:
    typed = {name: _typed_value(raw, fields[name]) for name, raw in values}
    return {name: value for name, value in typed.items() if value is not None}


def _dtype(column: ColumnInfo) -> str:
    return {"integer": "Int64"}.get(column.family, "object")


def _arrow_typed(raw: pd.Series, column: ColumnInfo) -> Any:
    """A Parquet column as the other formats give it (a column a file lacks is all null)."""
    family = column.family
    if isinstance(raw.dtype, pd.CategoricalDtype):
        raw = raw.astype(object)  # dictionary-encoded columns read as their values
    if family == "datetime":
        if column.timezone_aware:
            stamps = pd.to_datetime(raw, utc=True)
            return stamps.astype("datetime64[us, UTC]")
        return pd.to_datetime(raw).astype("datetime64[us]")
    if family == "date":
        return pd.Series([None if pd.isna(v) else v for v in raw], dtype=object).to_numpy()
    if family == "integer":
        return raw.astype("Int64")
    if family == "numeric":
        return raw.astype("float64")
    if family == "boolean":
        return raw.astype("boolean")
    return raw


def connector(name: str, url: str, **options: Any) -> Connector:
    """The ``files`` entry point: a ``FilesStore`` behind the generic record connector."""
    from connectors.records.connector import RecordConnector

    store = FilesStore(name, url, read_only=bool(options.get("read_only", True)))
    return RecordConnector(store, **options)
