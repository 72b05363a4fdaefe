"""What every mail store shares: fields, key, URL options, errors, read-only refusal.

The Maildir (``connectors.mail.maildir``), mbox (``connectors.mail.mbox``) and IMAP
(``connectors.mail.imap``) stores build on ``MailStore``; each of those modules holds
its scheme's entry point, ``connector``; ``connectors.mail.mailboxes`` picks the store
for a URL.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd
from sqlalchemy import make_url
from sqlalchemy.engine import URL
from sqlalchemy.exc import ArgumentError

from connectors.errors import StoreError, StoreUnavailable
from connectors.mail.messages import FIELDS, KEY, WRITABLE, frame, record
from connectors.protocol import Key
from connectors.records.store import Capabilities, Collection, Partition
from connectors.urls import mask_url, secret_values
from connectors.values import plain

Changes = dict[str, dict[str, str | None]]
T = TypeVar("T")


def mail_url(name: str, url: str) -> URL:
    """``url`` parsed; when it is no URL, an error that shows its scheme alone."""
    try:
        return make_url(url)
    except ArgumentError:
        raise StoreError(name, url.split("://", 1)[0] + "://...", "not a valid URL") from None


class MailStore:
    """Fields, key, options and errors common to the Maildir, mbox and IMAP stores."""

    capabilities = Capabilities(transactions=False, pushdown=False, partitions=False)
    #: Query options of the URL besides ``internal_domains``.
    OPTIONS: frozenset[str] = frozenset()

    def __init__(self, name: str, url: URL, *, read_only: bool = True) -> None:
        self.name = name
        self.url = url
        self.read_only = read_only
        #: What each collection's last scan left out, by reason (symbolic links).
        self._skipped: dict[str, dict[str, int]] = {}
        self._secrets: list[str] = list(secret_values(url))
        unknown = sorted(set(url.query) - self.OPTIONS - {"internal_domains"})
        if unknown:
            raise self.error(f"unknown URL option {unknown[0]!r}")
        domains = self.option("internal_domains") or ""
        self.internal_domains = tuple(
            d.strip().lower().lstrip("@") for d in domains.split(",") if d.strip()
        )

    @property
    def display_url(self) -> str:
        return mask_url(self.url)

    def option(self, name: str) -> str | None:
        value = self.url.query.get(name)
        return value[-1] if isinstance(value, tuple) else value

    def error(self, reason: str, *, unavailable: bool = False) -> StoreError:
        """A one-line error, with any password masked should a reason echo it."""
        text = " ".join(reason.split())
        for secret in self._secrets:
            text = text.replace(secret, "***")
        kind = StoreUnavailable if unavailable else StoreError
        return kind(self.name, self.display_url, text)

    # the RecordStore primitives every mail store answers the same way

    def collections(self) -> list[str]:
        raise NotImplementedError

    def describe(self, collection: str) -> Collection | None:
        if collection not in self.collections():
            return None
        return Collection(collection, dict(FIELDS), KEY, unit=0, positional=False)

    def versions(self, collection: str, units: Sequence[Key]) -> dict[Key, str]:
        return {}  # keys never shift: replaying a delete or an update is harmless

    def partitions(self, collection: str) -> list[Partition]:
        return []

    def drop_partitions(self, collection: str, partitions: Sequence[Partition]) -> None:
        if partitions:
            raise self.error("a mailbox has no partitions")

    def close(self) -> None:
        pass

    # helpers for the stores

    def add_collection(self, found: dict[str, T], name: str, where: T) -> None:
        """Record a collection; two folders or files whose names read the same are
        refused rather than one of them silently skipped."""
        if name in found:
            raise self.error(f"two folders or files read as {name!r}: rename one")
        found[name] = where

    def located(self, found: dict[str, T], collection: str) -> T:
        """Where ``collection`` is, or the store's error naming it."""
        if collection not in found:
            raise self.error(f"collection {collection!r} does not exist")
        return found[collection]

    def wanted(self, fields: Sequence[str], chunk_size: int) -> list[str]:
        missing = [f for f in fields if f not in FIELDS]
        if missing:
            raise self.error(f"no field {missing[0]!r} in a mailbox")
        if chunk_size < 1:
            raise self.error("chunk_size must be at least 1")
        return list(dict.fromkeys(fields))

    @staticmethod
    def frames(
        messages: Iterable[tuple[str, T]],
        chunk_size: int,
        wanted: Sequence[str],
        rows_of: Callable[[list[tuple[str, T]]], list[dict[str, Any]]],
    ) -> Iterator[pd.DataFrame]:
        """The messages, each (its key, where it is), in key order, ``chunk_size`` at a
        time; ``rows_of`` reads a chunk of them (it may drop a message gone since the
        listing). Messages sharing a key each give a row: never merged into one."""
        ordered = sorted(messages, key=lambda message: message[0])
        for start in range(0, len(ordered), chunk_size):
            rows = rows_of(ordered[start : start + chunk_size])
            if rows:
                yield frame(rows, wanted)

    def skipped(self, collection: str) -> dict[str, int]:
        """What the last scan of ``collection`` left out, by reason (``ReportsSkipped``)."""
        return dict(self._skipped.get(collection, {}))

    def bookkeeping_home(self) -> Path | None:
        """The folder for Tenure's lock and journal of this store (``HasHome``); None
        for a remote store."""
        return None

    def record(self, raw: bytes, wanted: Sequence[str], **found: Any) -> dict[str, Any]:
        return record(raw, set(wanted), internal_domains=self.internal_domains, **found)

    def require_writable(self) -> None:
        if self.read_only:
            raise self.error("opened read-only")

    def changes(self, keys: Sequence[Key], values: pd.DataFrame) -> Changes:
        """The new field values by message key; refuses fields a message cannot hold."""
        self.require_writable()
        bad = [c for c in values.columns if c not in WRITABLE]
        if bad:
            raise self.error(f"field {bad[0]!r} cannot be updated in a mailbox")
        if len(keys) != len(values):
            raise self.error("update needs one row of values per key")
        out: Changes = {}
        for key, row in zip(keys, values.itertuples(index=False, name=None), strict=True):
            new = (plain(v) for v in row)
            out[str(key[0])] = {
                c: None if v is None else str(v) for c, v in zip(values.columns, new, strict=True)
            }
        return out
