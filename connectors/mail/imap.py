"""Mail on an IMAP server as a ``RecordStore`` (``imap://`` and ``imaps://``).

Reads never change a message: folders are opened with EXAMINE and fetched with
``BODY.PEEK``, so nothing gets marked \\Seen. Deletes remove exactly the messages asked
for (``UID EXPUNGE``, RFC 4315), never others a mail program flagged \\Deleted.

IMAPClient speaks the protocol: it quotes the arguments, parses the FETCH and LIST
responses (literals included) and INTERNALDATE, and its modified UTF-7 codec decodes
folder names (``decode_folder_name``, shared with the Maildir store). A folder is always
opened by the name the server spelled it with.
"""

from __future__ import annotations

import ipaddress
import os
import re
import ssl
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any, TypeVar

import pandas as pd
from imapclient import DELETED, IMAPClient
from imapclient.exceptions import IMAPClientAbortError, IMAPClientError
from imapclient.imapclient import join_message_ids, seq_to_parenstr_upper
from imapclient.response_parser import parse_fetch_response
from sqlalchemy.engine import URL

from connectors.errors import StoreError
from connectors.mail.messages import (
    body_text,
    decode_folder_name,
    message_key,
    parse,
    rebuild,
    same_message,
)
from connectors.mail.stores import MailStore, mail_url
from connectors.protocol import Connector, ConnectorOptions, Key
from connectors.records.connector import RecordConnector
from connectors.records.store import Partition

#: Seconds to wait for the server before the store counts as unavailable.
TIMEOUT = 30.0
#: UIDs per FETCH or STORE command, to keep command lines short.
BATCH = 500
#: Whole messages fetched at once while scanning bodies, to bound the memory used.
BODY_BATCH = 50
#: What a scan reads of each message before its body; the whole message.
HEADERS = ("RFC822.SIZE", "INTERNALDATE", "FLAGS", "BODY.PEEK[HEADER]")
WHOLE = ("BODY.PEEK[]",)
T = TypeVar("T")


@dataclass(frozen=True)
class Fetched:
    """What a FETCH gave of one message; ``data`` is the body section asked for."""

    uid: int
    size: int = 0
    internal_date: datetime | None = None
    flags: tuple[bytes, ...] = ()
    data: bytes = b""

    @classmethod
    def of(cls, uid: int, items: Mapping[bytes, Any]) -> Fetched:
        """IMAPClient's parsed items of one message (``BODY[...]`` the section)."""
        stamp = items.get(b"INTERNALDATE")
        section = next((v for k, v in items.items() if k.startswith(b"BODY[")), None)
        return cls(
            uid,
            size=int(items.get(b"RFC822.SIZE") or 0),
            internal_date=stamp if isinstance(stamp, datetime) else None,
            flags=tuple(items.get(b"FLAGS") or ()),
            data=section if isinstance(section, bytes) else b"",
        )

    def received(self) -> datetime:
        """INTERNALDATE as a UTC instant (now, should a server omit it)."""
        if self.internal_date is None:
            return datetime.now(UTC)
        if self.internal_date.tzinfo is None:
            return self.internal_date.replace(tzinfo=UTC)
        return self.internal_date.astimezone(UTC)


def is_loopback(host: str) -> bool:
    """Plain IMAP and unverified TLS are only allowed to this machine."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def reason(exc: BaseException) -> str:
    """A short, one-line reason for a failed connection or command."""
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, ssl.SSLError):
        return f"TLS error: {exc.reason or exc.__class__.__name__}"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    text = str(exc.args[0] if exc.args else exc) or type(exc).__name__
    if text.startswith(("b'", 'b"')):
        text = text[2:-1]
    text = re.sub(
        r"^[a-z ]+ failed: ", "", text, flags=re.IGNORECASE
    )  # "select failed: ", "EXPUNGE failed: "
    return " ".join(text.split())


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
        self._client: IMAPClient | None = None
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

    def _connect(self) -> IMAPClient:
        if self._client is not None:
            return self._client
        password = self._password()
        where = f"{self.host}:{self.port}"
        client: IMAPClient | None = None
        try:
            tls = self._tls() if self.implicit_tls or self.starttls else None
            client = IMAPClient(
                self.host, self.port, ssl=self.implicit_tls, ssl_context=tls, timeout=TIMEOUT
            )
            if self.starttls:
                client.starttls(tls)
        except ssl.SSLCertVerificationError as exc:
            _shut(client)
            untrusted = f"TLS certificate of {where} not trusted ({exc.verify_message})"
            raise self.error(untrusted, unavailable=True) from None
        except (OSError, IMAPClientError) as exc:
            _shut(client)
            raise self.error(
                f"cannot connect to {where}: {reason(exc)}", unavailable=True
            ) from None
        try:
            client.login(str(self.url.username), password)
        except (IMAPClientAbortError, OSError) as exc:
            _shut(client)
            raise self.error(
                f"connection to {where} lost: {reason(exc)}", unavailable=True
            ) from None
        except IMAPClientError:
            _shut(client)
            raise self.error("authentication failed", unavailable=True) from None
        client.normalise_times = False  # INTERNALDATE with its offset, never local time
        client.folder_encode = False  # folders go back as the server spelled them
        self._client = client
        return client

    def _run(self, what: str, command: Callable[[], T]) -> T:
        """One IMAP command; a lost connection is ``StoreUnavailable`` (and is opened
        again next time), a refusal a ``StoreError``."""
        try:
            return command()
        except (IMAPClientAbortError, OSError) as exc:
            self._drop()
            raise self.error(f"{what}: connection lost: {reason(exc)}", unavailable=True) from None
        except IMAPClientError as exc:
            raise self.error(f"{what} refused: {reason(exc)}") from None

    def _drop(self) -> None:
        _shut(self._client)
        self._client = None

    def ping(self) -> None:
        client = self._connect()
        try:
            self._run("NOOP", client.noop)
        except StoreError:
            self._drop()  # a connection the server closed since: try a fresh one once
            client = self._connect()
            self._run("NOOP", client.noop)

    def close(self) -> None:
        if self._client is not None:
            with suppress(IMAPClientError, OSError):
                self._client.logout()
        self._client = None

    # folders

    def collections(self) -> list[str]:
        return sorted(self._folders())

    def _folders(self) -> dict[str, str]:
        """Collection name -> the folder's name as the server spells it."""
        client = self._connect()
        folders: dict[str, str] = {}
        for flags, _, spelled in self._run("LIST", client.list_folders):
            if {flag.lower() for flag in flags} & {b"\\noselect", b"\\nonexistent"}:
                continue
            real = (
                spelled.decode("utf-8", "surrogateescape")
                if isinstance(spelled, bytes)
                else str(spelled)
            )
            name = "inbox" if real.upper() == "INBOX" else decode_folder_name(real).lower()
            self.add_collection(folders, name, real)
        return folders

    def _real(self, collection: str) -> str:
        return self.located(self._folders(), collection)

    def _select(self, real: str, *, write: bool) -> str:
        """Open the folder (EXAMINE to read: read-only, nothing marked); its UIDVALIDITY."""
        client = self._connect()
        verb = "SELECT" if write else "EXAMINE"
        found = self._run(verb, lambda: client.select_folder(real, readonly=not write))
        return str(found.get(b"UIDVALIDITY", ""))

    def _uids(self, criteria: str) -> list[int]:
        client = self._connect()
        return sorted(int(uid) for uid in self._run("UID SEARCH", lambda: client.search(criteria)))

    def _fetch(self, uids: Sequence[int], items: Sequence[str]) -> list[Fetched]:
        """``UID FETCH`` in batches, in UID order; messages gone since are simply not
        returned, nor is what the server said of messages not asked (``uid_fetch``)."""
        client = self._connect()
        ordered = sorted(set(uids))
        out: list[Fetched] = []
        for start in range(0, len(ordered), BATCH):
            batch = ordered[start : start + BATCH]
            found = self._run("UID FETCH", partial(uid_fetch, client, batch, items))
            out += [Fetched.of(uid, found[uid]) for uid in batch if uid in found]
        return out

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
        for got in self._fetch(sorted(keys), HEADERS):
            if got.uid in keys:  # each message its own record, whatever its Message-ID
                rows[got.uid] = self.record(
                    got.data, header_fields, key=keys[got.uid], size=got.size,
                    fallback_sent_at=got.received(),
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
            for got in self._fetch(ordered[start : start + BODY_BATCH], WHOLE):
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
            for got in self._fetch(unknown[start : start + BODY_BATCH], WHOLE):
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
        client = self._connect()
        if not self._run("CAPABILITY", lambda: client.has_capability("UIDPLUS")):
            raise self.error("the server lacks UIDPLUS (UID EXPUNGE): refusing to change mail")
        return self._real(collection)

    def _expunge(self, real: str, uids: Sequence[int]) -> None:
        """Flag and expunge exactly these UIDs (the folder is selected for writing)."""
        client = self._connect()
        for start in range(0, len(uids), BATCH):
            batch = list(uids[start : start + BATCH])
            self._run("UID STORE", partial(client.add_flags, batch, [DELETED], silent=True))
            self._run("UID EXPUNGE", partial(client.uid_expunge, batch))
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
        present = self._fetch(sorted(wanted), ["UID"])
        if present:
            self._expunge(real, [got.uid for got in present])
        return len({wanted[got.uid] for got in present})

    def _interrupted_update(self, uids: Sequence[int]) -> bool:
        """Several messages with one key, all but the first carrying the key in
        ``X-Tenure-Key``: an update appended its rewrite and died before expunging."""
        if len(uids) < 2:
            return False
        found = self._fetch(uids, ["BODY.PEEK[HEADER.FIELDS (X-TENURE-KEY)]"])
        marked = [b"x-tenure-key" in got.data.lower() for got in found]
        return len(found) == len(uids) and not marked[0] and all(marked[1:])

    def update(self, collection: str, keys: Sequence[Key], values: pd.DataFrame) -> int:
        """Each changed message is appended anew (same folder, flags and INTERNALDATE),
        then its old UID expunged; its key (from the Message-ID) is the same. A crash in
        between leaves two copies, which a replay turns back into one."""
        changes = self.changes(keys, values)
        real = self._writable_folder(collection)
        index = self._index(real)
        client = self._connect()
        old: list[int] = []
        updated = 0
        for key, change in changes.items():
            uids = index.get(key, [])
            if len(uids) > 1 and not self._interrupted_update(uids):
                continue  # copies no one can tell apart: left alone
            copies = self._fetch(uids, ["FLAGS", "INTERNALDATE", *WHOLE])
            if not copies:
                continue
            updated += 1
            new = rebuild(copies[0].data, change, key)
            if len(copies) == 1 and same_message(new, copies[0].data):
                continue
            flags = [f for f in copies[0].flags if f.lower() != b"\\recent"]
            stamp = copies[0].internal_date  # with its offset: the same INTERNALDATE
            self._run("APPEND", partial(client.append, real, new, flags, stamp))
            old += [got.uid for got in copies]
        if old:
            self._expunge(real, old)
        return updated


def uid_fetch(
    client: IMAPClient, uids: Sequence[int], items: Sequence[str]
) -> dict[int, dict[bytes, Any]]:
    """``UID FETCH`` of these UIDs in the selected folder: UID -> its parsed items.

    Not ``IMAPClient.fetch``: that keys each response by its UID or, lacking one, by its
    sequence number, so an unsolicited FETCH (another client's flag change, which names
    the message by number and carries no UID) is merged into the asked message whose UID
    equals that number, and its FLAGS (``\\Deleted`` too) read as that message's. Here
    the command is sent through IMAPClient's imaplib connection (``_imap``, as its own
    ``fetch`` does; ``imapclient`` is pinned, and tests/test_imap_unsolicited.py fails
    should the library change the shape relied on) and the responses are read by number
    (``by_uid``). Those left from earlier commands are dropped first: an expunge since
    may have given their numbers to other messages."""
    imap = client._imap
    imap.response("FETCH")
    kind, data = imap.uid("FETCH", join_message_ids(uids), seq_to_parenstr_upper(items))
    if kind != "OK":
        said = data[0] if data else b""
        text = said.decode("utf-8", "replace") if isinstance(said, bytes) else str(said)
        raise IMAPClientError(f"fetch failed: {text}")
    return by_uid(data, uids, normalise_times=client.normalise_times)


def by_uid(
    data: Sequence[Any], uids: Sequence[int], *, normalise_times: bool
) -> dict[int, dict[bytes, Any]]:
    """imaplib's FETCH responses -> the items of each asked UID. Responses naming the
    same sequence number speak of the same message and are merged, later ones winning;
    only messages whose responses carry one of these UIDs are kept, keyed by it."""
    asked = set(uids)
    found: dict[int, dict[bytes, Any]] = {}
    for items in parse_fetch_response(list(data), normalise_times, uid_is_key=False).values():
        uid = items.get(b"UID")
        if isinstance(uid, int) and uid in asked:
            found[uid] = items
    return found


def _shut(client: IMAPClient | None) -> None:
    """Close a connection without a word to the server (it may be gone)."""
    if client is not None:
        with suppress(OSError):
            client.shutdown()


def connector(name: str, url: str, options: ConnectorOptions) -> Connector:
    """The ``imap`` and ``imaps`` entry point: a ``RecordConnector`` over the mailbox."""
    store = ImapStore(name, mail_url(name, url), read_only=options.read_only)
    return RecordConnector(store, options)
