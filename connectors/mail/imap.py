"""Mail on an IMAP server as a ``RecordStore`` (``imap://`` and ``imaps://``).

Reads never change a message: folders are opened with EXAMINE and fetched with
``BODY.PEEK``, so nothing gets marked \\Seen. Deletes remove exactly the messages asked
for (``UID EXPUNGE``, RFC 4315), never others a mail program flagged \\Deleted.
"""

from __future__ import annotations

import imaplib
import os
import re
import ssl
from collections.abc import Callable, Iterator, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import pandas as pd
from sqlalchemy.engine import URL

from connectors.errors import StoreError
from connectors.mail.imap_wire import (
    LIST_LINE,
    Fetched,
    internal_date,
    is_loopback,
    parse_fetch,
    quietly_close,
    quote,
    reason,
    responses,
    uid_set,
    unquote,
)
from connectors.mail.messages import (
    body_text,
    decode_folder_name,
    message_key,
    parse,
    rebuild,
    same_message,
)
from connectors.mail.stores import MailStore
from connectors.protocol import Key
from connectors.records.store import Partition

#: Seconds to wait for the server before the store counts as unavailable.
TIMEOUT = 30.0
#: UIDs per FETCH or STORE command, to keep command lines short.
BATCH = 500
#: Whole messages fetched at once while scanning bodies, to bound the memory used.
BODY_BATCH = 50


@dataclass
class _Index:
    """UID -> message key in a folder. A UID's message never changes and UIDs are never
    reused while the folder's UIDVALIDITY stays, so a message is read whole (its key
    needs its body) once per process."""

    uidvalidity: str
    keys: dict[int, str] = field(default_factory=dict)


class ImapStore(MailStore):
    """``imaps://user:password@host:port/`` (implicit TLS), ``imap://...?starttls=true``,
    or plain ``imap://`` on the loopback interface only. Options: ``cafile`` (a private
    CA), ``verify=false`` (loopback only), ``password_env`` (the password's variable).
    Each server folder is a collection, named in lower case."""

    OPTIONS = frozenset({"starttls", "cafile", "verify", "password_env"})

    def __init__(self, name: str, url: URL, *, read_only: bool = True) -> None:
        super().__init__(name, url, read_only=read_only)
        self.implicit_tls = url.get_backend_name() == "imaps"
        self.host = url.host or ""
        self.port = url.port or (993 if self.implicit_tls else 143)
        if not self.host or not url.username:
            raise self.error("the URL needs a user and a host")
        loopback = is_loopback(self.host)
        self.starttls = self._flag("starttls", False)
        self.verify = self._flag("verify", True)
        if self.implicit_tls and self.starttls:
            raise self.error("imaps:// is TLS already: drop starttls")
        if not (self.implicit_tls or self.starttls or loopback):
            raise self.error(
                "plain IMAP is allowed on 127.0.0.1/localhost only: use imaps:// or ?starttls=true"
            )
        if not self.verify and not loopback:
            raise self.error("verify=false is allowed for 127.0.0.1/localhost only")
        env = self.option("password_env")
        if env and os.environ.get(env):
            self._secrets.append(os.environ[env])
        self._connection: imaplib.IMAP4 | None = None
        self._indexes: dict[str, _Index] = {}

    def _flag(self, name: str, default: bool) -> bool:
        value = self.option(name)
        if value is None:
            return default
        if value.lower() in ("true", "1", "yes"):
            return True
        if value.lower() in ("false", "0", "no"):
            return False
        raise self.error(f"option {name!r} must be true or false")

    # connection

    def _password(self) -> str:
        if self.url.password is not None:
            return str(self.url.password)
        env = self.option("password_env")
        if not env:
            raise self.error("no password: give one in the URL or ?password_env=VARIABLE")
        password = os.environ.get(env)
        if not password:
            raise self.error(f"environment variable {env} is not set")
        if password not in self._secrets:
            self._secrets.append(password)
        return password

    def _tls(self) -> ssl.SSLContext:
        cafile = self.option("cafile")
        try:
            context = ssl.create_default_context(cafile=cafile)
        except (OSError, ssl.SSLError) as exc:
            raise self.error(f"cannot load cafile {cafile}: {reason(exc)}") from None
        if not self.verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    def _connect(self) -> imaplib.IMAP4:
        if self._connection is not None:
            return self._connection
        password = self._password()
        where = f"{self.host}:{self.port}"
        conn: imaplib.IMAP4
        try:
            if self.implicit_tls:
                conn = imaplib.IMAP4_SSL(
                    self.host, self.port, ssl_context=self._tls(), timeout=TIMEOUT
                )
            else:
                conn = imaplib.IMAP4(self.host, self.port, timeout=TIMEOUT)
                if self.starttls:
                    conn.starttls(self._tls())
        except ssl.SSLCertVerificationError as exc:
            untrusted = f"TLS certificate of {where} not trusted ({exc.verify_message})"
            raise self.error(untrusted, unavailable=True) from None
        except (OSError, imaplib.IMAP4.error) as exc:
            raise self.error(
                f"cannot connect to {where}: {reason(exc)}", unavailable=True
            ) from None
        try:
            conn.login(str(self.url.username), password)
        except imaplib.IMAP4.abort as exc:
            raise self.error(
                f"connection to {where} lost: {reason(exc)}", unavailable=True
            ) from None
        except imaplib.IMAP4.error:
            quietly_close(conn)
            raise self.error("authentication failed", unavailable=True) from None
        self._connection = conn
        found = self._run("CAPABILITY", conn.capability)  # they change once logged in
        conn.capabilities = tuple(found[-1].decode("ascii", "replace").upper().split())
        return conn

    def _run(self, what: str, command: Callable[[], tuple[str, list[Any]]]) -> list[Any]:
        """One IMAP command; a lost connection is ``StoreUnavailable`` (and is opened
        again next time), a refusal a ``StoreError``."""
        try:
            status, data = command()
        except (imaplib.IMAP4.abort, OSError) as exc:
            self._drop()
            raise self.error(f"{what}: connection lost: {reason(exc)}", unavailable=True) from None
        except imaplib.IMAP4.error as exc:
            raise self.error(f"{what} refused: {reason(exc)}") from None
        if status != "OK":
            detail = data[0] if data and isinstance(data[0], bytes) else b""
            raise self.error(f"{what} refused: {detail.decode('utf-8', 'replace')}")
        return data

    def _drop(self) -> None:
        if self._connection is not None:
            quietly_close(self._connection)
        self._connection = None

    def ping(self) -> None:
        conn = self._connect()
        try:
            self._run("NOOP", conn.noop)
        except StoreError:
            self._drop()  # a connection the server closed since: try a fresh one once
            conn = self._connect()
            self._run("NOOP", conn.noop)

    def close(self) -> None:
        if self._connection is not None:
            with suppress(imaplib.IMAP4.error, OSError):
                self._connection.logout()
        self._connection = None

    # folders

    def collections(self) -> list[str]:
        return sorted(self._folders())

    def _folders(self) -> dict[str, str]:
        """Collection name -> the folder's name as the server spells it."""
        conn = self._connect()
        folders: dict[str, str] = {}
        for item in self._run("LIST", lambda: conn.list('""', '"*"')):
            if item is None:
                continue
            line, literal = (item[0], item[1]) if isinstance(item, tuple) else (item, None)
            found = LIST_LINE.match(line)
            if found is None or re.search(rb"\\noselect|\\nonexistent", found["flags"], re.I):
                continue
            raw = literal if literal is not None else unquote(found["name"])
            real = raw.decode("utf-8", "surrogateescape")
            name = "inbox" if real.upper() == "INBOX" else decode_folder_name(real).lower()
            self.add_collection(folders, name, real)
        return folders

    def _real(self, collection: str) -> str:
        return self.located(self._folders(), collection)

    def _select(self, real: str, *, write: bool) -> str:
        """Open the folder (EXAMINE to read: read-only, nothing marked); its UIDVALIDITY."""
        conn = self._connect()
        verb = "SELECT" if write else "EXAMINE"
        self._run(verb, lambda: conn.select(quote(real), readonly=not write))
        validity = conn.untagged_responses.get("UIDVALIDITY") or [b""]
        last = validity[-1]
        return last.decode("ascii", "replace") if isinstance(last, bytes) else ""

    def _uids(self, criteria: str) -> list[int]:
        conn = self._connect()
        data = self._run("UID SEARCH", lambda: conn.uid("SEARCH", criteria))
        return sorted(int(u) for chunk in data if chunk for u in chunk.split())

    def _fetch(self, uids: Sequence[int], items: str) -> list[Fetched]:
        """``UID FETCH`` in batches; messages gone since are simply not returned."""
        conn = self._connect()
        out: dict[int, Fetched] = {}
        asked = set(uids)
        for start in range(0, len(uids), BATCH):
            batch = uid_set(uids[start : start + BATCH])
            data = self._run("UID FETCH", partial(conn.uid, "FETCH", batch, items))
            for meta, literal in responses(data):
                got = parse_fetch(meta, literal)
                if got is not None and got.uid in asked:
                    out.setdefault(got.uid, got)
        return [out[uid] for uid in sorted(out)]

    # reading

    def scan(
        self,
        collection: str,
        fields: Sequence[str],
        chunk_size: int,
        partitions: Sequence[Partition] | None = None,
    ) -> Iterator[pd.DataFrame]:
        """Headers of the whole folder first (the key order needs every key), then the
        bodies chunk by chunk when asked for."""
        wanted = self.wanted(fields, chunk_size)
        real = self._real(collection)
        keys = self._keys(real, write=False)
        header_fields = [f for f in wanted if f != "body"]
        rows: dict[int, dict[str, Any]] = {}
        items = "(UID RFC822.SIZE INTERNALDATE FLAGS BODY.PEEK[HEADER])"
        for got in self._fetch(sorted(keys), items):
            if got.uid in keys:  # each message its own record, whatever its Message-ID
                received = internal_date(got.internal_date)
                rows[got.uid] = self.record(
                    got.data, header_fields, key=keys[got.uid], size=got.size,
                    fallback_sent_at=received,
                )  # fmt: skip

        def rows_of(chunk: list[tuple[str, int]]) -> list[dict[str, Any]]:
            found = [rows[uid] for _, uid in chunk]
            if "body" not in wanted:
                return found
            return self._with_bodies(real, found, [uid for _, uid in chunk])

        yield from self.frames(((keys[uid], uid) for uid in rows), chunk_size, wanted, rows_of)

    def _with_bodies(
        self, real: str, rows: list[dict[str, Any]], uids: list[int]
    ) -> list[dict[str, Any]]:
        self._select(real, write=False)  # the caller may have used the connection meanwhile
        ordered = sorted(uids)
        bodies: dict[int, str | None] = {}
        for start in range(0, len(ordered), BODY_BATCH):
            for got in self._fetch(ordered[start : start + BODY_BATCH], "(UID BODY.PEEK[])"):
                bodies[got.uid] = body_text(parse(got.data))
        out = []
        for row, uid in zip(rows, uids, strict=True):
            if uid in bodies:  # gone since the headers were read: leave it out
                out.append({**row, "body": bodies[uid]})
        return out

    # changing

    def _keys(self, real: str, *, write: bool) -> dict[int, str]:
        """UID -> key of every message in the folder (selected, for writing or not);
        only messages not seen before are fetched, whole, in batches."""
        validity = self._select(real, write=write)
        index = self._indexes.get(real)
        if index is None or index.uidvalidity != validity:
            index = self._indexes[real] = _Index(validity)
        present = self._uids("ALL")
        listed = set(present)
        index.keys = {uid: key for uid, key in index.keys.items() if uid in listed}
        unknown = [uid for uid in present if uid not in index.keys]
        for start in range(0, len(unknown), BODY_BATCH):
            for got in self._fetch(unknown[start : start + BODY_BATCH], "(UID BODY.PEEK[])"):
                index.keys[got.uid] = message_key(got.data)
        return {uid: index.keys[uid] for uid in present if uid in index.keys}

    def _index(self, real: str) -> dict[str, list[int]]:
        """Key -> UIDs of the folder, selected for writing."""
        found: dict[str, list[int]] = {}
        for uid, key in self._keys(real, write=True).items():
            found.setdefault(key, []).append(uid)
        return found

    def _writable_folder(self, collection: str) -> str:
        """The folder's real name, once sure the store may and can remove exactly the
        messages it means to: a server without UIDPLUS only has the plain EXPUNGE, which
        would also remove messages others flagged \\Deleted."""
        self.require_writable()
        if "UIDPLUS" not in self._connect().capabilities:
            raise self.error("the server lacks UIDPLUS (UID EXPUNGE): refusing to change mail")
        return self._real(collection)

    def _expunge(self, real: str, uids: Sequence[int]) -> None:
        """Flag and expunge exactly these UIDs (the folder is selected for writing)."""
        conn = self._connect()
        for start in range(0, len(uids), BATCH):
            batch = uid_set(uids[start : start + BATCH])
            store = partial(conn.uid, "STORE", batch, "+FLAGS.SILENT", r"(\Deleted)")
            self._run("UID STORE", store)
            self._run("UID EXPUNGE", partial(conn.uid, "EXPUNGE", batch))
        index = self._indexes.get(real)
        if index is not None:
            for uid in uids:
                index.keys.pop(uid, None)

    def delete(self, collection: str, keys: Sequence[Key]) -> int:
        """Expunge each message whose key names one message, or one message and the
        rewritten copies a crashed ``update`` left of it; returns how many records went.
        Copies no one can tell apart are left alone (the connector refuses them)."""
        real = self._writable_folder(collection)
        index = self._index(real)
        wanted: dict[int, str] = {}
        for key in dict.fromkeys(str(k[0]) for k in keys):
            uids = index.get(key, [])
            if len(uids) == 1 or self._interrupted_update(uids):
                wanted.update(dict.fromkeys(uids, key))
        present = self._fetch(sorted(wanted), "(UID)")
        if present:
            self._expunge(real, [got.uid for got in present])
        return len({wanted[got.uid] for got in present})

    def _interrupted_update(self, uids: Sequence[int]) -> bool:
        """Several messages with one key, all but the first carrying the key in
        ``X-Tenure-Key``: an update appended its rewrite and died before expunging."""
        if len(uids) < 2:
            return False
        found = self._fetch(sorted(uids), "(UID BODY.PEEK[HEADER.FIELDS (X-TENURE-KEY)])")
        marked = [b"x-tenure-key" in got.data.lower() for got in found]
        return len(found) == len(uids) and not marked[0] and all(marked[1:])

    def update(self, collection: str, keys: Sequence[Key], values: pd.DataFrame) -> int:
        """Each changed message is appended anew (same folder, flags and INTERNALDATE),
        then its old UID expunged; its key (from the Message-ID) is the same. A crash in
        between leaves two copies, which a replay turns back into one."""
        changes = self.changes(keys, values)
        real = self._writable_folder(collection)
        index = self._index(real)
        conn = self._connect()
        old: list[int] = []
        updated = 0
        for key, change in changes.items():
            uids = index.get(key, [])
            if len(uids) > 1 and not self._interrupted_update(uids):
                continue  # copies no one can tell apart: left alone
            copies = self._fetch(uids, "(UID FLAGS INTERNALDATE BODY.PEEK[])")
            if not copies:
                continue
            updated += 1
            new = rebuild(copies[0].data, change, key)
            if len(copies) == 1 and same_message(new, copies[0].data):
                continue
            flags = " ".join(f for f in copies[0].flags if f.lower() != "\\recent")
            stamp = f'"{copies[0].internal_date}"' if copies[0].internal_date else None
            marks = f"({flags})" if flags else None
            self._run("APPEND", partial(conn.append, quote(real), marks, stamp, new))
            old += [got.uid for got in copies]
        if old:
            self._expunge(real, old)
        return updated
