"""The little of the IMAP wire format that imaplib leaves to its caller: parsing FETCH
and LIST responses, UID sets, quoting, INTERNALDATE."""

from __future__ import annotations

import imaplib
import ipaddress
import re
import ssl
from collections.abc import Iterator, Sequence
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

_MONTHS = dict(
    zip(("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"),
        range(1, 13), strict=True)
)  # fmt: skip
LIST_LINE = re.compile(rb'^\((?P<flags>[^)]*)\)\s+(?:"(?:[^"\\]|\\.)*"|NIL)\s*(?P<name>.*)$', re.I)


@dataclass
class Fetched:
    """One message of a FETCH response: what was asked for, ``data`` its literal."""

    uid: int
    size: int = 0
    internal_date: str | None = None
    flags: tuple[str, ...] = ()
    data: bytes = b""


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
    return " ".join(text.split())


def quietly_close(conn: imaplib.IMAP4) -> None:
    with suppress(OSError):
        conn.shutdown()


def quote(name: str) -> str:
    """A folder name as an IMAP quoted string (imaplib sends arguments as they are)."""
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def unquote(token: bytes) -> bytes:
    token = token.strip()
    if token.startswith(b'"') and token.endswith(b'"'):
        return re.sub(rb"\\(.)", rb"\1", token[1:-1])
    return token


def uid_set(uids: Sequence[int]) -> str:
    """``1:4,7,9:10``: consecutive UIDs as ranges."""
    parts: list[str] = []
    ordered = sorted(set(uids))
    start = previous = ordered[0] if ordered else 0
    for uid in [*ordered[1:], None]:
        if uid is not None and uid == previous + 1:
            previous = uid
            continue
        parts.append(str(start) if start == previous else f"{start}:{previous}")
        if uid is not None:
            start = previous = uid
    return ",".join(parts)


def responses(data: list[Any]) -> Iterator[tuple[bytes, bytes | None]]:
    """imaplib's FETCH data as (text of the response, its literal): a response with a
    literal comes as a (text, literal) tuple followed by the rest of its line."""
    pending: list[Any] = []
    for item in data:
        if isinstance(item, tuple):
            if pending:
                yield pending[0], pending[1]
            pending = [item[0], item[1]]
        elif isinstance(item, bytes):
            if pending and not re.match(rb"\d+ \(", item):
                pending[0] += b" " + item
            else:
                if pending:
                    yield pending[0], pending[1]
                pending = [item, None]
    if pending:
        yield pending[0], pending[1]


def parse_fetch(meta: bytes, literal: bytes | None) -> Fetched | None:
    uid = re.search(rb"\bUID (\d+)", meta)
    if uid is None:
        return None  # an unsolicited flag update
    got = Fetched(int(uid[1]), data=literal or b"")
    if size := re.search(rb"RFC822\.SIZE (\d+)", meta):
        got.size = int(size[1])
    if stamp := re.search(rb'INTERNALDATE "([^"]+)"', meta):
        got.internal_date = stamp[1].decode("ascii", "replace")
    if flags := re.search(rb"FLAGS \(([^)]*)\)", meta):
        got.flags = tuple(flags[1].decode("utf-8", "replace").split())
    return got


def internal_date(text: str | None) -> datetime:
    """``17-Jul-1996 02:44:25 -0700`` as a UTC instant (now, should a server omit it)."""
    found = re.match(r"\s*(\d{1,2})-(\w{3})-(\d{4}) (\d\d):(\d\d):(\d\d) ([+-]\d{4})", text or "")
    if found is None or found[2] not in _MONTHS:
        return datetime.now(UTC)
    day, _, year, hour, minute, second, zone = found.groups()
    moment = datetime.strptime(
        f"{year}-{_MONTHS[found[2]]:02d}-{int(day):02d} {hour}:{minute}:{second} {zone}",
        "%Y-%m-%d %H:%M:%S %z",
    )
    return moment.astimezone(UTC)
