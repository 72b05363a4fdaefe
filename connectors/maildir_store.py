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

from connectors.mail_messages import decode_folder_name, rebuild, same_message
from connectors.mail_stores import MailStore
from connectors.protocol import Key
from connectors.records import Partition


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

    def _folders(self) -> dict[str, Path]:
        if not self.root.is_dir():
            raise self.error(f"no such directory: {self.root}", unavailable=True)
        if not (self.root / "cur").is_dir() or not (self.root / "new").is_dir():
            raise self.error(f"not a Maildir (no cur/ and new/): {self.root}", unavailable=True)
        folders = {"inbox": self.root}
        for entry in sorted(self.root.iterdir()):
            if entry.name.startswith(".") and entry.name != ".." and (entry / "cur").is_dir():
                self.add_collection(folders, decode_folder_name(entry.name[1:]).lower(), entry)
        return folders

    def _folder(self, collection: str) -> Path:
        return self.located(self._folders(), collection)

    @staticmethod
    def _files(folder: Path) -> dict[str, Path]:
        files: dict[str, Path] = {}
        for sub in ("cur", "new"):
            with os.scandir(folder / sub) as entries:
                for entry in entries:
                    if not entry.name.startswith(".") and entry.is_file():
                        files.setdefault(maildir_key(entry.name), Path(entry.path))
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
        files = self._files(folder)

        def rows_of(keys: list[str]) -> list[dict[str, Any]]:
            rows = []
            for key in keys:
                found = self._read(folder, key, files)
                if found is not None:
                    path, raw = found
                    mtime = datetime.fromtimestamp(path.stat().st_mtime, UTC)
                    rows.append(
                        self.record(raw, wanted, key=key, size=len(raw), fallback_sent_at=mtime)
                    )
            return rows

        yield from self.frames(files, chunk_size, wanted, rows_of)

    def _read(self, folder: Path, key: str, files: dict[str, Path]) -> tuple[Path, bytes] | None:
        """The message's file and bytes, looked for again should a mail program have
        moved it (new/ to cur/, new flags) since the folder was listed."""
        for attempt in range(2):
            path = files.get(key)
            if path is not None:
                try:
                    return path, path.read_bytes()
                except FileNotFoundError:
                    pass
            if attempt == 0:
                files.clear()
                files.update(self._files(folder))
        return None

    def delete(self, collection: str, keys: Sequence[Key]) -> int:
        self.require_writable()
        folder = self._folder(collection)
        files = self._files(folder)
        deleted = 0
        for key in dict.fromkeys(str(k[0]) for k in keys):
            for attempt in range(2):
                path = files.get(key)
                if path is not None:
                    try:
                        path.unlink()
                        deleted += 1
                        break
                    except FileNotFoundError:
                        pass
                if attempt == 0:  # moved by a mail program since listed: look again
                    files.clear()
                    files.update(self._files(folder))
        return deleted

    def update(self, collection: str, keys: Sequence[Key], values: pd.DataFrame) -> int:
        """Each message is written to ``tmp/`` and renamed over its own file: a reader
        sees the old message or the new one, never a torn one, and the key stays."""
        changes = self.changes(keys, values)
        folder = self._folder(collection)
        files = self._files(folder)
        updated = 0
        for key, change in changes.items():
            found = self._read(folder, key, files)
            if found is None:
                continue
            path, raw = found
            updated += 1
            new = rebuild(raw, change, key)
            if not same_message(new, raw):
                self._replace(folder, path, new)
        return updated

    @staticmethod
    def _replace(folder: Path, path: Path, data: bytes) -> None:
        stat = path.stat()
        (folder / "tmp").mkdir(exist_ok=True)
        temporary = folder / "tmp" / f"{time.time_ns()}.R{secrets.token_hex(8)}.tenure"
        with temporary.open("wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temporary, stat.st_mode & 0o7777)
        if hasattr(os, "chown") and (stat.st_uid, stat.st_gid) != (os.getuid(), os.getgid()):
            with suppress(PermissionError):
                os.chown(temporary, stat.st_uid, stat.st_gid)
        os.utime(temporary, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # the received time
        os.replace(temporary, path)
        sized = _sized_name(path.name, data)
        if sized != path.name:  # Dovecot trusts S=/W= sizes: keep them true (same key)
            os.replace(path, path.with_name(sized))


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
