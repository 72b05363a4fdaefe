"""Mail in mbox files (``mbox:///file.mbox`` or a directory of them) as a ``RecordStore``."""

from __future__ import annotations

import mailbox
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy.engine import URL

from connectors.errors import StoreError
from connectors.mail.messages import message_key, rebuild, same_message
from connectors.mail.stores import MailStore, mail_url
from connectors.protocol import Connector, ConnectorOptions, Key
from connectors.records.connector import RecordConnector
from connectors.records.store import Partition, read_only_paths

_FROM_DATE = re.compile(r"([A-Z][a-z]{2}) +([A-Z][a-z]{2}) +(\d{1,2}) +(\d\d:\d\d:\d\d) +(\d{4})")


def from_line_date(line: bytes) -> datetime | None:
    """The delivery time an mbox ``From `` line records (taken as UTC)."""
    found = _FROM_DATE.search(line.decode("ascii", "replace"))
    if found is None:
        return None
    try:
        return datetime.strptime(" ".join(found.groups()), "%a %b %d %H:%M:%S %Y").replace(
            tzinfo=UTC
        )
    except ValueError:
        return None


class MboxStore(MailStore):
    """``mbox:///file.mbox`` (one collection, named after the file) or ``mbox:///dir``
    (each ``*.mbox`` file in it). Changes hold the mailbox's lock (``fcntl`` and dot
    lock, as mail programs do) and Python rewrites the file through a temporary one that
    is renamed over it. Each message is a record, keyed by its content
    (``message_key``); byte-identical copies share a key, and ``delete`` and ``update``
    leave such a key alone (the connector refuses it). In a directory, a ``*.mbox`` that
    is a symbolic link is never followed (a rewrite would replace the link and leave the
    target): reading it is an error naming it. A file named by the URL is followed."""

    def __init__(self, name: str, url: URL, *, read_only: bool = True) -> None:
        super().__init__(name, url, read_only=read_only)
        self.path = Path(url.database or "")

    def bookkeeping_home(self) -> Path | None:
        """``.tenure/`` in the directory (only ``*.mbox`` files are read), or
        ``.<file>.tenure/`` beside a single mbox file."""
        if self.path.is_dir():
            return self.path / ".tenure"
        return self.path.parent / f".{self.path.name}.tenure"

    def ping(self) -> None:
        for path in self._boxes().values():
            try:
                with path.open("rb") as f:
                    start = f.read(5)
            except OSError as exc:
                raise self.error(f"cannot read {path}: {exc.strerror}", unavailable=True) from None
            if start not in (b"", b"From "):
                raise self.error(f"not an mbox file: {path}", unavailable=True)

    def collections(self) -> list[str]:
        return sorted(self._boxes())

    def _boxes(self) -> dict[str, Path]:
        if self.path.is_file():  # named by the URL: its target is the box
            return {self.path.stem.lower(): Path(os.path.realpath(self.path))}
        if self.path.is_dir():
            boxes: dict[str, Path] = {}
            for path in sorted(self.path.glob("*.mbox")):
                if path.is_file():
                    self.add_collection(boxes, path.stem.lower(), path)
            return boxes
        raise self.error(f"no such file or directory: {self.path}", unavailable=True)

    def write_problems(self, collection: str) -> list[str]:
        """An mbox file, or its folder, this process may not change (a run rewrites
        the file through a new one beside it)."""
        try:
            box = self._box(collection)
        except StoreError:
            return []  # no such mailbox: the schema check says so
        return read_only_paths(f"mailbox {collection!r}", (box, box.parent))

    def _box(self, collection: str) -> Path:
        path = self.located(self._boxes(), collection)
        if path.is_symlink():
            raise self.error(f"{path.name} is a symbolic link: not followed")
        return path

    @staticmethod
    def _index(box: mailbox.mbox) -> dict[str, list[Any]]:
        """Message key -> the mailbox's own keys of the messages with it, in file order
        (more than one only for byte-identical copies)."""
        index: dict[str, list[Any]] = {}
        for toc in box.iterkeys():
            index.setdefault(message_key(box.get_bytes(toc)), []).append(toc)
        return index

    def scan(
        self,
        collection: str,
        fields: Sequence[str],
        chunk_size: int,
        partitions: Sequence[Partition] | None = None,
    ) -> Iterator[pd.DataFrame]:
        wanted = self.wanted(fields, chunk_size)
        path = self._box(collection)
        modified = datetime.fromtimestamp(path.stat().st_mtime, UTC)
        box = mailbox.mbox(str(path), create=False)
        try:
            index = self._index(box)
            messages = [(key, toc) for key, tocs in index.items() for toc in tocs]

            def rows_of(chunk: list[tuple[str, Any]]) -> list[dict[str, Any]]:
                rows = []
                for key, toc in chunk:
                    first_line, _, raw = box.get_bytes(toc, from_=True).partition(b"\n")
                    delivered = from_line_date(first_line) or modified
                    rows.append(
                        self.record(raw, wanted, key=key, size=len(raw), fallback_sent_at=delivered)
                    )
                return rows

            yield from self.frames(messages, chunk_size, wanted, rows_of)
        finally:
            box.close()

    @contextmanager
    def _locked(self, collection: str) -> Iterator[mailbox.mbox]:
        """The mailbox under its lock; on leaving, the file is rewritten (a temporary
        file renamed over it: atomic) and the lock released."""
        self.require_writable()
        path = self._box(collection)
        box = mailbox.mbox(str(path), create=False)
        try:
            try:
                box.lock()
            except mailbox.ExternalClashError:
                raise self.error(f"mailbox is locked: {path}") from None
            except OSError as exc:
                raise self.error(f"cannot lock {path}: {exc.strerror}") from None
            yield box
            try:
                box.flush()
            except mailbox.ExternalClashError as exc:
                raise self.error(f"the mailbox changed under its lock: {exc}") from None
        finally:
            box.close()  # also flushes what a failure left pending: each change was meant

    def delete(self, collection: str, keys: Sequence[Key]) -> int:
        """Remove each message whose key names one message; returns how many went."""
        with self._locked(collection) as box:
            index = self._index(box)
            wanted = [k for k in dict.fromkeys(str(key[0]) for key in keys) if k in index]
            wanted = [k for k in wanted if len(index[k]) == 1]
            for key in wanted:
                box.remove(index[key][0])
        return len(wanted)

    def update(self, collection: str, keys: Sequence[Key], values: pd.DataFrame) -> int:
        changes = self.changes(keys, values)
        with self._locked(collection) as box:
            return self._rewrite(box, changes)

    @staticmethod
    def _rewrite(box: mailbox.mbox, changes: Mapping[str, Mapping[str, str | None]]) -> int:
        index = MboxStore._index(box)
        updated = 0
        for key, change in changes.items():
            copies = index.get(key, [])
            if len(copies) != 1:  # gone, or copies no one can tell apart: left alone
                continue
            updated += 1
            first_line, _, raw = box.get_bytes(copies[0], from_=True).partition(b"\n")
            new = rebuild(raw, change, key)
            if not same_message(new, raw):
                box[copies[0]] = first_line + b"\n" + new
        return updated


def connector(name: str, url: str, options: ConnectorOptions) -> Connector:
    """The ``mbox`` entry point: a ``RecordConnector`` over the mbox file or folder at ``url``."""
    store = MboxStore(name, mail_url(name, url), read_only=options.read_only)
    return RecordConnector(store, options)
