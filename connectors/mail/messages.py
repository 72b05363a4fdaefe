"""E-mail messages as records: the fields Tenure reads, the key, and redacted rebuilds.

Shared by the Maildir, mbox and IMAP stores (``connectors.mail.mailboxes``), so that a
message reads the same, has the same key and is rewritten the same wherever it is kept.
The standard library's ``email`` package, and IMAPClient's modified UTF-7 codec for
folder names.
"""

from __future__ import annotations

import hashlib
import html
import re
from collections.abc import Collection as AbstractSet
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from email import policy
from email.header import decode_header, make_header
from email.message import EmailMessage, Message, MIMEPart
from email.parser import BytesHeaderParser, BytesParser
from email.utils import getaddresses, parsedate_to_datetime
from html.parser import HTMLParser
from typing import Any, ClassVar

import pandas as pd
from imapclient import imap_utf7

from connectors.protocol import ColumnInfo, TypeFamily

_TEXT: TypeFamily = "text"
FIELDS: dict[str, ColumnInfo] = {
    "message_key": ColumnInfo("message_key", _TEXT, _TEXT, nullable=False),
    "message_id": ColumnInfo("message_id", _TEXT, _TEXT, nullable=True),
    "sent_at": ColumnInfo(
        "sent_at", "datetime", "timestamp with time zone", nullable=False, timezone_aware=True
    ),
    "from_address": ColumnInfo("from_address", _TEXT, _TEXT, nullable=True),
    "to_addresses": ColumnInfo("to_addresses", _TEXT, _TEXT, nullable=True),
    "cc_addresses": ColumnInfo("cc_addresses", _TEXT, _TEXT, nullable=True),
    "subject": ColumnInfo("subject", _TEXT, _TEXT, nullable=True),
    "body": ColumnInfo("body", _TEXT, _TEXT, nullable=True),
    "correspondent": ColumnInfo("correspondent", _TEXT, _TEXT, nullable=True),
    "size": ColumnInfo("size", "integer", "integer", nullable=False),
}
KEY = ("message_key",)
#: The fields ``update`` can set, and the header each one lives in.
WRITABLE = {
    "subject": "Subject",
    "from_address": "From",
    "to_addresses": "To",
    "cc_addresses": "Cc",
    "body": None,
}
REDACTED_HEADER = "X-Tenure-Redacted"
KEY_HEADER = "X-Tenure-Key"
#: Headers left out of a message's fingerprint: mail programs rewrite them (mbox
#: status, sizes) or ``rebuild`` does, and the key must survive both.
_UNSTABLE = {
    "status", "x-status", "x-keywords", "x-uid", "x-imap", "x-imapbase", "lines",
    "content-length", KEY_HEADER.lower(), REDACTED_HEADER.lower(),
}  # fmt: skip
_OWN_KEY = re.compile(r"(?:msg|hdr):[0-9a-f]{32}")
_HEADER_END = re.compile(rb"\r?\n\r?\n")
_HEADERS_ONLY = BytesHeaderParser(policy=policy.compat32)
_SHIFTED = re.compile(r"&[A-Za-z0-9+,]*-")


def split_header(raw: bytes) -> bytes:
    """The header section of a raw message (all of it when there is no body)."""
    found = _HEADER_END.search(raw)
    return raw[: found.end()] if found else raw


def message_key(raw: bytes) -> str:
    """A message's key: a digest of everything that makes it distinct, its headers
    (Message-ID, Date, From, ... but those mail programs rewrite, see ``_UNSTABLE``) and
    its body (line endings aside). Two different messages never share it, whatever
    Message-ID their senders chose; byte-identical copies do, and are refused as
    records no one can tell apart (``RecordConnector``). ``rebuild`` records the key in
    ``X-Tenure-Key``, which then stands for it: a redacted message keeps its key.
    Digests keep personal data out of journals and intents."""
    header = split_header(raw)
    msg = _HEADERS_ONLY.parsebytes(header)
    own = _unfold(msg.get(KEY_HEADER))
    if own and _OWN_KEY.fullmatch(own):
        return own
    canonical = "\n".join(
        f"{name.lower()}:{_unfold(value)}"
        for name, value in msg.items()
        if name.lower() not in _UNSTABLE
    )
    body = raw[len(header) :].replace(b"\r\n", b"\n").rstrip(b"\n")
    return "msg:" + _digest(canonical + "\n" + hashlib.sha256(body).hexdigest())


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()[:32]


def _unfold(value: Any) -> str:
    return " ".join(str(value).split()) if value is not None else ""


def parse(raw: bytes, *, headers_only: bool = False) -> EmailMessage:
    msg = BytesParser(policy=policy.default).parsebytes(raw, headersonly=headers_only)
    assert isinstance(msg, EmailMessage)
    return msg


def record(
    raw: bytes,
    wanted: AbstractSet[str],
    *,
    key: str,
    size: int,
    fallback_sent_at: datetime,
    internal_domains: Sequence[str],
) -> dict[str, Any]:
    """The wanted fields of one message (``raw`` may be its header section alone when
    ``body`` is not wanted)."""
    msg = parse(raw, headers_only="body" not in wanted)
    row: dict[str, Any] = {"message_key": key}
    senders, recipients, copies = (_addresses(msg, h) for h in ("From", "To", "Cc"))
    for name in wanted:
        if name == "message_id":
            row[name] = _unfold(_raw_value(msg, "Message-ID")) or None
        elif name == "sent_at":
            row[name] = sent_at(_raw_value(msg, "Date")) or fallback_sent_at
        elif name == "from_address":
            row[name] = senders[0] if senders else None
        elif name == "to_addresses":
            row[name] = ", ".join(recipients) or None
        elif name == "cc_addresses":
            row[name] = ", ".join(copies) or None
        elif name == "subject":
            row[name] = _subject(msg)
        elif name == "body":
            row[name] = body_text(msg)
        elif name == "correspondent":
            row[name] = correspondent([*senders, *recipients, *copies], internal_domains)
        elif name == "size":
            row[name] = size
    return row


def frame(rows: Sequence[Mapping[str, Any]], wanted: Sequence[str]) -> pd.DataFrame:
    """Rows as a frame with ``message_key`` first; ``sent_at`` as UTC datetimes."""
    columns = ["message_key", *(name for name in wanted if name != "message_key")]
    out = pd.DataFrame({name: [row.get(name) for row in rows] for name in columns})
    if "sent_at" in out.columns:
        out["sent_at"] = pd.to_datetime(out["sent_at"], utc=True)
    if "size" in out.columns:
        out["size"] = out["size"].astype("int64")
    return out


def sent_at(value: str | None) -> datetime | None:
    """The Date header as an aware UTC instant (a zone-less date counts as UTC)."""
    if not value:
        return None
    try:
        moment = parsedate_to_datetime(_unfold(value))
    except (TypeError, ValueError, IndexError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _raw_value(msg: Message, name: str) -> str | None:
    for header, value in msg.raw_items():
        if header.lower() == name.lower():
            return str(value)
    return None


def _addresses(msg: EmailMessage, name: str) -> list[str]:
    """Lower-cased addresses of every ``name`` header, read from the raw values so that a
    malformed display name never hides an address."""
    values = [str(v) for k, v in msg.raw_items() if k.lower() == name.lower()]
    found = [address.strip().lower() for _, address in getaddresses(values)]
    return [address for address in found if address]


def _subject(msg: EmailMessage) -> str | None:
    raw = _raw_value(msg, "Subject")
    if raw is None:
        return None
    try:
        return str(msg["Subject"])
    except Exception:  # a malformed encoded word: decode what can be
        try:
            return str(make_header(decode_header(_unfold(raw))))
        except Exception:
            return _unfold(raw)


def correspondent(addresses: Iterable[str], internal_domains: Sequence[str]) -> str | None:
    """The first address outside the internal domains (or their subdomains): whom the
    message is about, to be matched to a customer."""
    for address in addresses:
        domain = address.rpartition("@")[2]
        if not any(domain == d or domain.endswith("." + d) for d in internal_domains):
            return address
    return None


def body_text(msg: EmailMessage) -> str | None:
    """The text/plain body, or the text of the HTML one; None when there is neither."""
    part = msg.get_body(preferencelist=("plain",))
    if part is not None:
        text = _part_text(part)
    else:
        part = msg.get_body(preferencelist=("html",))
        if part is None:
            return None
        text = html_to_text(_part_text(part))
    # the trailing newline MIME adds is not content: an updated body reads back unchanged
    return text.replace("\r\n", "\n").rstrip("\n")


def _part_text(part: MIMEPart) -> str:
    try:
        content = part.get_content()
        if isinstance(content, str):
            return content
    except Exception:  # unknown charset, broken transfer encoding
        pass
    payload = part.get_payload(decode=True)
    data = payload if isinstance(payload, bytes) else b""
    return data.decode(part.get_content_charset() or "utf-8", errors="replace")


class _HtmlText(HTMLParser):
    _BLOCKS: ClassVar[frozenset[str]] = frozenset({
        "p", "div", "br", "li", "tr", "table", "blockquote", "pre", "ul", "ol", "section",
        "article", "header", "footer", "h1", "h2", "h3", "h4", "h5", "h6", "hr",
    })  # fmt: skip
    _HIDDEN: ClassVar[frozenset[str]] = frozenset({"script", "style", "head", "title"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "body":
            self.hidden = 0
        elif tag in self._HIDDEN:
            self.hidden += 1
        elif tag in self._BLOCKS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._HIDDEN:
            self.hidden = max(0, self.hidden - 1)
        elif tag in self._BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self.hidden:
            self.parts.append(data)


def html_to_text(markup: str) -> str:
    """Visible text of an HTML body: tags, scripts and styles gone, one line per block."""
    parser = _HtmlText()
    parser.feed(markup)
    parser.close()
    lines = [" ".join(line.split()) for line in "".join(parser.parts).splitlines()]
    text = re.sub(r"\n{3,}", "\n\n", "\n".join(lines))
    return text.strip("\n")


def rebuild(raw: bytes, values: Mapping[str, str | None], key: str) -> bytes:
    """The message with the given fields replaced; every other header, the Message-ID
    included, stays, and ``X-Tenure-Key`` records the message's key, which the new
    content no longer gives.

    A new ``body`` replaces the whole MIME structure: a text/plain part, plus the same
    text escaped as HTML when the message had an HTML alternative (the original HTML
    never survives). Attachments and inline parts are dropped, since their contents
    cannot be redacted, and ``X-Tenure-Redacted: attachments removed`` says so.
    """
    msg = parse(raw)
    # headers first, the body last: a replay then writes the headers in the same order
    if _OWN_KEY.fullmatch(key) and KEY_HEADER not in msg:  # a Maildir's key is its name
        msg[KEY_HEADER] = key
    for name, header in WRITABLE.items():
        if header is not None and name in values:
            _set_header(msg, header, values[name])
    if "subject" in values and "Thread-Topic" in msg:  # Outlook repeats the subject
        _set_header(msg, "Thread-Topic", values["subject"])
    if "body" in values:
        _replace_body(msg, values["body"] or "")
    return msg.as_bytes(policy=msg.policy.clone(linesep="\n"))


def same_message(a: bytes, b: bytes) -> bool:
    """Equal but for line endings (IMAP servers hand messages out with CRLF)."""
    return a.replace(b"\r\n", b"\n") == b.replace(b"\r\n", b"\n")


def _set_header(msg: EmailMessage, name: str, value: str | None) -> None:
    if value is None:
        del msg[name]
        return
    text = " ".join(str(value).split())
    if len(msg.get_all(name) or []) == 1:
        msg.replace_header(name, text)  # in place: the other headers keep their order
    else:
        del msg[name]
        msg[name] = text


def _replace_body(msg: EmailMessage, text: str) -> None:
    bodies = [msg.get_body(preferencelist=(kind,)) for kind in ("plain", "html")]
    had_html = bodies[1] is not None
    kept = {id(part) for part in bodies if part is not None}
    dropped = any(id(part) not in kept for part in msg.walk() if not part.is_multipart())
    msg.clear_content()
    if dropped and REDACTED_HEADER not in msg:
        msg[REDACTED_HEADER] = "attachments removed"
    msg.set_content(text, subtype="plain", charset="utf-8")
    if had_html:
        # a boundary derived from the text: replaying the same update writes the same bytes
        msg.make_alternative(boundary="=_tenure_" + _digest(text))
        escaped = html.escape(text).replace("\n", "<br>\n")
        msg.add_alternative(f"<html><body><p>{escaped}</p></body></html>\n", subtype="html")
        for part in msg.iter_parts():
            del part["MIME-Version"]


# IMAP folder names (and Maildir++ folder names) are in "modified UTF-7" (RFC 3501 5.1.3)


def decode_folder_name(name: str) -> str:
    """A folder's name as a mail program shows it: each ``&...-`` shift sequence
    decoded by IMAPClient's modified UTF-7 codec, other characters (a Maildir's UTF-8
    names) left as they are; a name that is not modified UTF-7 after all stays whole."""
    try:
        return _SHIFTED.sub(lambda found: imap_utf7.decode(found[0].encode("ascii")), name)
    except ValueError:  # UnicodeError is a ValueError
        return name
