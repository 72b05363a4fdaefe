"""What a files store holds: its collections, their files and fields.

Each top-level folder below the store's root is a collection; below it, Hive-style
``name=value`` folders are partitions whose values become fields (``__HIVE_DEFAULT_PARTITION__``
or an empty value is null), and each record is keyed by its file and its position in the
file. Names starting with ``_`` or ``.`` are never data, and symbolic links are never
followed: they are counted, per collection, as the last listing found them. A collection's
files share one format (``connectors.files.formats``), whose ``infer`` types its columns
from a sample of every file.
"""

from __future__ import annotations

import os
import posixpath
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import IO, Any, TypeVar
from urllib.parse import unquote

from connectors.errors import StoreError
from connectors.files.formats import DATE, BadFile, FileFormat, FileFormats, info
from connectors.protocol import ColumnInfo, Scalar
from connectors.records.store import Collection

KEY = ("source_file", "row_number")
#: The column a scan adds: the version of each record's file as it was read.
VERSION = "_tenure_file_version"
COLLECTION_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}")
SEGMENT = re.compile(r"(?P<name>[^=/]+)=(?P<value>[^/]*)")
HIVE_NULL = "__HIVE_DEFAULT_PARTITION__"

Fail = Callable[[str, str], StoreError]
"""The store's error for a place (``collection`` or ``collection/file``) and a reason."""
T = TypeVar("T")


@dataclass(frozen=True)
class DataFile:
    rel: str
    """The path below the collection: the ``source_file`` key."""
    path: str
    format: FileFormat
    compression: str | None
    partition: str
    """The leading ``name=value`` folders (``year=2024/month=05``), "" for none."""
    values: tuple[tuple[str, str | None], ...]


@dataclass(frozen=True)
class Layout:
    collection: Collection
    files: list[DataFile]
    partition_fields: dict[str, ColumnInfo]


class Layouts:
    """The collections below one store's root, on its fsspec filesystem ``fs``: each one's
    layout is found when first asked for, and inferred again only when files were added or
    replaced, so that a scan, or a drop of partitions, does not sample every file anew
    (removing files cannot add a field). Failures are one line, made by ``fail`` with
    ``clean``'s text of an exception (no secret of the store's URL)."""

    def __init__(
        self,
        fs: Any,
        prefix: str,
        *,
        local: bool,
        formats: FileFormats,
        forced: FileFormat | None,
        fail: Fail,
        clean: Callable[[BaseException], str],
    ) -> None:
        self._fs = fs
        self._prefix = prefix
        self._local = local
        self._formats = formats
        self._forced = forced
        self._fail = fail
        self._clean = clean
        self._cache: dict[str, tuple[tuple[str, ...], Layout]] = {}
        #: Symbolic links inside each collection, as its last listing found them.
        self.links: dict[str, int] = {}

    def clear(self) -> None:
        self._cache.clear()

    def entries(self, path: str, links: list[str] | None = None) -> list[tuple[str, bool]]:
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

    def get(self, collection: str) -> Layout | None:
        """The collection's files and fields; None when there is no such folder."""
        if not valid_name(collection):
            return None
        base = f"{self._prefix}/{collection}"
        if self._local and os.path.islink(base):
            raise self._fail(collection, "a symbolic link, not followed")
        try:
            if not self._fs.isdir(base):
                return None
            files = self._files(collection, base)
        except OSError as exc:
            raise self._fail(collection, self._clean(exc)) from None
        signature = tuple(f.rel for f in files)
        cached = self._cache.get(collection)
        if cached is not None and set(signature) <= set(cached[0]) and files:
            self._cache[collection] = (signature, cached[1])
            return Layout(cached[1].collection, files, cached[1].partition_fields)
        layout = self._infer(collection, files)
        self._cache[collection] = (signature, layout)
        return layout

    def read(self, collection: str, file: DataFile, use: Callable[[IO[bytes]], T]) -> T:
        """``use(opened file)``, with the file's failures reported under its path."""
        try:
            with self._fs.open(file.path, "rb", compression=file.compression) as opened:
                return use(opened)
        except BadFile as exc:
            raise self._fail(f"{collection}/{file.rel}", str(exc)) from None
        except (OSError, EOFError) as exc:
            raise self._fail(f"{collection}/{file.rel}", self._clean(exc)) from None

    def detect(self, name: str) -> tuple[FileFormat, str | None] | None:
        """A file's format and compression by its name (or the store's forced format)."""
        return self._formats.detect(name, self._forced)

    def _files(self, collection: str, base: str) -> list[DataFile]:
        files: list[DataFile] = []
        links: list[str] = []

        def walk(path: str, parts: list[str]) -> None:
            for name, is_dir in self.entries(path, links):
                child = f"{path}/{name}"
                if is_dir:
                    walk(child, [*parts, name])
                    continue
                rel = "/".join([*parts, name])
                detected = self.detect(name)
                if detected is None:
                    raise self._fail(f"{collection}/{rel}", self._formats.unknown())
                hive: list[tuple[str, str | None]] = []
                for part in parts:
                    segment = SEGMENT.fullmatch(part)
                    if segment is None:
                        break
                    value = unquote(segment["value"])
                    hive.append((segment["name"], None if value in ("", HIVE_NULL) else value))
                partition = "/".join(parts[: len(hive)])
                files.append(DataFile(rel, child, *detected, partition, tuple(hive)))

        walk(base, [])
        self.links[collection] = len(links)
        files.sort(key=lambda f: f.rel)
        for file in files[1:]:
            first = files[0]
            if file.format.name != first.format.name:
                raise self._fail(
                    f"{collection}/{file.rel}",
                    f"{file.format.title} among {first.format.title} files "
                    f"({collection}/{first.rel}): a collection's files share one format",
                )
        return files

    def _infer(self, collection: str, files: list[DataFile]) -> Layout:
        partition_raw: dict[str, list[str]] = {}
        for file in files:
            for field, value in file.values:
                partition_raw.setdefault(field, []).extend([] if value is None else [value])
        partition_fields = {f: _partition_info(f, raw) for f, raw in partition_raw.items()}
        columns: dict[str, ColumnInfo] = {}
        if files:
            fmt = files[0].format
            columns = fmt.infer([self.read(collection, file, fmt.sample) for file in files])
        clash = [c for c in columns if c in KEY or c in partition_fields]
        if clash:
            raise self._fail(
                collection,
                f"field {clash[0]!r} is both a column and a "
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
        return Layout(described, files, partition_fields)


def valid_name(name: str) -> bool:
    return bool(COLLECTION_NAME.fullmatch(name))


def within(partition: str, name: str) -> bool:
    """Whether a file's partition is the partition ``name`` or lies below it."""
    name = name.strip("/")
    return partition == name or partition.startswith(name + "/")


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


def typed_value(raw: str | None, column: ColumnInfo) -> Scalar | None:
    """A partition folder's value as its field's type."""
    if raw is None:
        return None
    if column.family == "date":
        return date.fromisoformat(raw)
    if column.family == "integer":
        return int(raw)
    return raw


def typed_values(
    values: tuple[tuple[str, str | None], ...], fields: dict[str, ColumnInfo]
) -> dict[str, Scalar]:
    typed = {name: typed_value(raw, fields[name]) for name, raw in values}
    return {name: value for name, value in typed.items() if value is not None}


def dtype(column: ColumnInfo) -> str:
    """The pandas dtype of a partition field's column."""
    return {"integer": "Int64"}.get(column.family, "object")
