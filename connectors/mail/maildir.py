"""Mail in a Maildir (``maildir:///path``) as a ``RecordStore``."""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Iterator, Sequence
from contextlib import suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy.engine import URL

from connectors.errors import StoreError
from connectors.mail.messages import decode_folder_name, rebuild, same_message
from connectors.mail.stores import MailStore, mail_url
from connectors.protocol import Connector, ConnectorOptions, Key
from connectors.records.connector import RecordConnector
from connectors.records.store import SYMLINK, Partition, read_only_paths

#: The folder in a Maildir's root that holds Tenure's lock and journal for it.
BOOKKEEPING = "tenure-bookkeeping"


class MaildirStore(MailStore):
    """``maildir:///path``: the root is ``inbox``, each Maildir++ subfolder (``.Sales``)
    a collection (``sales``). A message's key is its unique file name, up to the first
    ``,`` or ``:`` (flags and Dovecot's ``S=``/``W=`` sizes may change; the key must not).

    For a Maildir that an IMAP server serves, prefer the ``imap(s)://`` store: the
    server's index and cache files may keep copies of headers rewritten here.
    """

    def __init__(self, name: str, url: URL, *, read_only: bool = True) -> None:
        super().__init__(name, url, read_only=read_only)
        self.root = Path(url.database or "")

    def ping(self) -> None:
        self._folders()

    def collections(self) -> list[str]:
        return sorted(self._folders())

    def bookkeeping_home(self) -> Path | None:
        """``tenure-bookkeeping/`` in the Maildir's root: no leading dot, so neither a
        Maildir++ folder nor read by this store."""
        return self.root / BOOKKEEPING

    def write_problems(self, collection: str) -> list[str]:
        """A mail folder whose ``cur``, ``new`` or ``tmp`` this process may not change (a
        run deletes messages there and writes rewritten ones through ``tmp``)."""
        try:
            folder = self._folder(collection)
        except StoreError:
            return []  # no such folder: the schema check says so
        paths = (folder / part for part in ("cur", "new", "tmp"))
        return read_only_paths(f"mail folder {collection!r}", paths)

    def _folders(self) -> dict[str, Path]:
        if not self.root.is_dir():
            raise self.error(f"no such directory: {self.root}", unavailable=True)
        if not (self.root / "cur").is_dir() or not (self.root / "new").is_dir():
            raise self.error(f"not a Maildir (no cur/ and new/): {self.root}", unavailable=True)
        folders = {"inbox": self.root}
        for entry in sorted(self.root.iterdir()):
            if entry.is_symlink():
                continue  # never followed: its messages are not this store's to change
            if entry.name.startswith(".") and entry.name != ".." and (entry / "cur").is_dir():
                self.add_collection(folders, decode_folder_name(entry.name[1:]).lower(), entry)
        return folders

    def _folder(self, collection: str) -> Path:
        return self.located(self._folders(), collection)

    def _listing(self, collection: str, folder: Path) -> dict[str, list[Path]]:
        """Message files by key. Two files with one unique name both stay listed (the
        connector refuses them as a duplicate key); symbolic links are counted as
        skipped, never followed, replaced or unlinked."""
        files: dict[str, list[Path]] = {}
        links = 0
        for sub in ("cur", "new"):
            with os.scandir(folder / sub) as entries:
                for entry in entries:
                    if entry.name.startswith("."):
                        continue
                    if entry.is_symlink():
                        links += 1
                    elif entry.is_file(follow_symlinks=False):
                        files.setdefault(maildir_key(entry.name), []).append(Path(entry.path))
        self._skipped[collection] = {SYMLINK: links} if links else {}
        return files

    def scan(
        self,
        collection: str,
        fields: Sequence[str],
        chunk_size: int,
        partitions: Sequence[Partition] | None = None,
    ) -> Iterator[pd.DataFrame]:
        wanted = self.wanted(fields, chunk_size)
        folder = self._folder(collection)
        files = self._listing(collection, folder)
        messages = [(key, path) for key, paths in files.items() for path in sorted(paths)]

        def rows_of(chunk: list[tuple[str, Path]]) -> list[dict[str, Any]]:
            rows = []
            for key, listed in chunk:
                found = self._read(collection, folder, key, listed)
                if found is not None:
                    path, raw = found
                    mtime = datetime.fromtimestamp(path.stat().st_mtime, UTC)
                    rows.append(
                        self.record(raw, wanted, key=key, size=len(raw), fallback_sent_at=mtime)
                    )
            return rows

        yield from self.frames(messages, chunk_size, wanted, rows_of)

    def _read(
        self, collection: str, folder: Path, key: str, path: Path | None
    ) -> tuple[Path, bytes] | None:
        """The message's file and bytes, looked for again should a mail program have
        moved it (new/ to cur/, new flags) since the folder was listed; None when it is
        gone, or when its key now names several files."""
        for attempt in range(2):
            if path is not None:
                try:
                    return path, path.read_bytes()
                except FileNotFoundError:
                    pass
            if attempt == 0:
                path = self._only(collection, folder, key)
        return None

    def _only(self, collection: str, folder: Path, key: str) -> Path | None:
        """The one file ``key`` names now (listed again), or None."""
        paths = self._listing(collection, folder).get(key, [])
        return paths[0] if len(paths) == 1 else None

    def delete(self, collection: str, keys: Sequence[Key]) -> int:
        """Unlink each message whose key names one file (a key naming several is
        refused: the connector never chooses one); returns how many went."""
        self.require_writable()
        folder = self._folder(collection)
        files = self._listing(collection, folder)
        deleted = 0
        for key in dict.fromkeys(str(k[0]) for k in keys):
            paths = files.get(key, [])
            path = paths[0] if len(paths) == 1 else None
            for attempt in range(2):
                if path is not None:
                    try:
                        path.unlink()
                        deleted += 1
                        break
                    except FileNotFoundError:
                        pass
                    except OSError as exc:
                        raise self._failed(path, exc) from None
                if attempt == 0 and len(paths) <= 1:  # moved by a mail program since listed
                    path = self._only(collection, folder, key)
        return deleted

    def update(self, collection: str, keys: Sequence[Key], values: pd.DataFrame) -> int:
        """Each message is written to ``tmp/`` and renamed over its own file: a reader
        sees the old message or the new one, never a torn one, and the key stays. A key
        naming several files is refused, as in ``delete``."""
        changes = self.changes(keys, values)
        folder = self._folder(collection)
        files = self._listing(collection, folder)
        updated = 0
        for key, change in changes.items():
            paths = files.get(key, [])
            if len(paths) > 1:
                continue
            found = self._read(collection, folder, key, paths[0] if paths else None)
            if found is None:
                continue
            path, raw = found
            updated += 1
            new = rebuild(raw, change, key)
            if not same_message(new, raw):
                self._replace(folder, path, new)
        return updated

    def _replace(self, folder: Path, path: Path, data: bytes) -> None:
        """Write ``data`` to ``tmp/`` and rename it over ``path``. A failure (a full
        disk, a read-only filesystem) leaves the message as it was and no temporary
        file, and is this store's one-line error naming the file."""
        temporary = folder / "tmp" / f"{time.time_ns()}.R{secrets.token_hex(8)}.tenure"
        try:
            stat = path.stat()
            (folder / "tmp").mkdir(exist_ok=True)
            _write_new(temporary, data)
            os.chmod(temporary, stat.st_mode & 0o7777)
            if hasattr(os, "chown") and (stat.st_uid, stat.st_gid) != (os.getuid(), os.getgid()):
                with suppress(PermissionError):
                    os.chown(temporary, stat.st_uid, stat.st_gid)
            os.utime(temporary, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # the received time
            os.replace(temporary, path)
            sized = _sized_name(path.name, data)
            if sized != path.name:  # Dovecot trusts S=/W= sizes: keep them true (same key)
                os.replace(path, path.with_name(sized))
        except OSError as exc:
            with suppress(OSError):
                temporary.unlink()
            raise self._failed(path, exc) from None

    def _failed(self, path: Path, exc: OSError) -> StoreError:
        where = path.relative_to(self.root) if path.is_relative_to(self.root) else path.name
        return self.error(f"{where}: {exc.strerror or exc}")


def _write_new(path: Path, data: bytes) -> None:
    """Write a new file durably (a seam the disk-error tests break)."""
    with path.open("xb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())


def maildir_key(filename: str) -> str:
    return filename.split(":", 1)[0].split(",", 1)[0]


def _sized_name(name: str, data: bytes) -> str:
    base, colon, info = name.partition(":")
    unique, *extensions = base.split(",")
    virtual = len(data) + data.count(b"\n") - data.count(b"\r\n")
    sized = [
        f"S={len(data)}" if e.startswith("S=") else f"W={virtual}" if e.startswith("W=") else e
        for e in extensions
    ]
    return ",".join([unique, *sized]) + colon + info


def connector(name: str, url: str, options: ConnectorOptions) -> Connector:
    """The ``maildir`` entry point: a ``RecordConnector`` over the Maildir at ``url``."""
    store = MaildirStore(name, mail_url(name, url), read_only=options.read_only)
    return RecordConnector(store, options)
