"""Business e-mail as a store: Maildir folders, mbox files and IMAP servers.

``maildir:///path``, ``mbox:///path`` (a file, or a directory of ``*.mbox`` files),
``imap://user:password@host:port/`` and ``imaps://...``: each folder is a collection
of messages keyed by ``message_key`` with the same fields whatever holds them (see
``connectors.mail.messages.FIELDS``). ``?internal_domains=example.com,360.agency``
names the company's own domains, so that ``correspondent`` is the outside party, the
person a message is about. The stores are in ``connectors.mail.maildir``,
``connectors.mail.mbox`` and ``connectors.mail.imap``; ``RecordConnector`` does the
rest (expiry, chunks, journal).

``update`` rewrites whole messages (``connectors.mail.messages.rebuild``): a new body
replaces the text and any HTML alternative, and drops attachments, which cannot be
redacted, marking the message ``X-Tenure-Redacted: attachments removed``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import make_url
from sqlalchemy.exc import ArgumentError

from connectors.errors import StoreError
from connectors.mail.imap import ImapStore
from connectors.mail.maildir import MaildirStore
from connectors.mail.mbox import MboxStore
from connectors.urls import mask_url

if TYPE_CHECKING:
    from connectors.protocol import Connector

_SCHEMES = ("maildir", "mbox", "imap", "imaps")


def open_store(
    name: str, url: str, *, read_only: bool = True
) -> MaildirStore | MboxStore | ImapStore:
    """The mail store for ``url``; writes are refused when ``read_only``."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise StoreError(name, url.split("://", 1)[0] + "://...", "not a valid URL") from None
    scheme = parsed.get_backend_name()
    if scheme == "maildir":
        return MaildirStore(name, parsed, read_only=read_only)
    if scheme == "mbox":
        return MboxStore(name, parsed, read_only=read_only)
    if scheme in ("imap", "imaps"):
        return ImapStore(name, parsed, read_only=read_only)
    shown = mask_url(parsed)
    raise StoreError(name, shown, f"not a mail URL (schemes: {', '.join(_SCHEMES)})")


def connector(name: str, url: str, **options: Any) -> Connector:
    """The entry point: a ``RecordConnector`` over the mail store named by ``url``."""
    from connectors.records.connector import RecordConnector

    store = open_store(name, url, read_only=bool(options.get("read_only", True)))
    return RecordConnector(store, **options)
