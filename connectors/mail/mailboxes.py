"""Business e-mail as a store: Maildir folders, mbox files and IMAP servers.

``maildir:///path``, ``mbox:///path`` (a file, or a directory of ``*.mbox`` files),
``imap://user:password@host:port/`` and ``imaps://...``: each folder is a collection
of messages keyed by ``message_key`` with the same fields whatever holds them (see
``connectors.mail.messages.FIELDS``). ``?internal_domains=example.com,360.agency``
names the company's own domains, so that ``correspondent`` is the outside party, the
person a message is about. The stores are in ``connectors.mail.maildir``,
``connectors.mail.mbox`` and ``connectors.mail.imap``, each with its scheme's entry
point (``connector``); ``RecordConnector`` does the rest (expiry, chunks, journal).

``update`` rewrites whole messages (``connectors.mail.messages.rebuild``): a new body
replaces the text and any HTML alternative, and drops attachments, which cannot be
redacted, marking the message ``X-Tenure-Redacted: attachments removed``.
"""

from __future__ import annotations

from connectors.errors import StoreError
from connectors.mail.imap import ImapStore
from connectors.mail.maildir import MaildirStore
from connectors.mail.mbox import MboxStore
from connectors.mail.stores import mail_url
from connectors.urls import mask_url

_SCHEMES = ("maildir", "mbox", "imap", "imaps")


def open_store(
    name: str, url: str, *, read_only: bool = True
) -> MaildirStore | MboxStore | ImapStore:
    """The mail store for ``url``; writes are refused when ``read_only``."""
    parsed = mail_url(name, url)
    scheme = parsed.get_backend_name()
    if scheme == "maildir":
        return MaildirStore(name, parsed, read_only=read_only)
    if scheme == "mbox":
        return MboxStore(name, parsed, read_only=read_only)
    if scheme in ("imap", "imaps"):
        return ImapStore(name, parsed, read_only=read_only)
    shown = mask_url(parsed)
    raise StoreError(name, shown, f"not a mail URL (schemes: {', '.join(_SCHEMES)})")
