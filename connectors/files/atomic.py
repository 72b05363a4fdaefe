"""Changing a file of the files store all at once.

A file is the unit of change: its new version is written in full beside the old one and
swapped in, so that after a crash the file is either wholly old or wholly new. Locally the
new version is ``.<file>.tenure-tmp`` in the file's own folder (names starting with ``.``
are never data), fsynced, then renamed over the file with ``os.replace`` and the folder
fsynced; on any other fsspec filesystem it is written in a private temporary folder and
uploaded in one piece. No temporary file survives a failure.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import shutil
import tempfile
from collections.abc import Callable
from typing import IO, Any, Literal

import fsspec.compression  # type: ignore[import-untyped]

TEMP_SUFFIX = ".tenure-tmp"

Outcome = Literal["keep", "replace", "remove"]
"""What becomes of a rewritten file: ``keep`` the old one (nothing in it changed),
``replace`` it with the new version, or ``remove`` it (the new version holds no record)."""


def _open_temp(path: str) -> IO[bytes]:
    """Open the local file a rewrite is written to (a seam the crash tests break)."""
    return open(path, "wb")


def rewrite_file(
    fs: Any,
    path: str,
    *,
    local: bool,
    compression: str | None,
    write: Callable[[IO[bytes], IO[bytes]], Outcome],
) -> Outcome:
    """Write a new version of the file at ``path`` with ``write(old, new)``, which gets
    both streams decompressed (the new one is compressed as the old one was) and says what
    becomes of the file; then keep, replace or remove it, and return that outcome. A
    removed file's folders are the caller's to prune (``prune``). Errors propagate: the
    file is then as it was."""
    folder = posixpath.dirname(path)
    private = None if local else tempfile.mkdtemp(prefix="tenure-files-")
    name = posixpath.basename(path)
    temp = f"{folder}/.{name}{TEMP_SUFFIX}" if private is None else f"{private}/{name}"
    try:
        raw = _open_temp(temp)
        try:
            with fs.open(path, "rb", compression=compression) as opened:
                out = raw
                if compression:
                    out = fsspec.compression.compr[compression](raw, mode="wb")
                outcome = write(opened, out)
                if out is not raw:
                    out.close()
            raw.flush()
            os.fsync(raw.fileno())
        finally:
            raw.close()
        if outcome == "remove":
            if private is None:
                os.unlink(temp)  # before pruning, so that the folder can be empty
            fs.rm_file(path)
        elif outcome == "replace":
            if private is None:
                os.replace(temp, path)
                fsync_dir(folder)
            else:
                fs.put_file(temp, path)
        return outcome
    finally:
        if private is None:
            with contextlib.suppress(OSError):  # gone, or never made (read-only)
                os.unlink(temp)
        else:
            shutil.rmtree(private, ignore_errors=True)


def prune(fs: Any, base: str, path: str) -> None:
    """Remove the folders below ``base`` that ``path``'s removal left empty."""
    folder = posixpath.dirname(path)
    while folder.startswith(base + "/"):
        try:
            if fs.ls(folder):
                return
            fs.rmdir(folder)
        except FileNotFoundError:
            pass  # object stores: a folder without objects is already gone
        except OSError:
            return
        folder = posixpath.dirname(folder)


def fsync_dir(path: str) -> None:
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
