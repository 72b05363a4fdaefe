"""Realistic business e-mails, and ways to put them in a Maildir, an mbox or an IMAP server.

``example.com`` is the company (its internal domain); customers write from elsewhere.
Every message carries personal data that a redaction must remove.
"""

from __future__ import annotations

import imaplib
import mailbox
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path

INTERNAL = "example.com"


@dataclass(frozen=True)
class Mail:
    """A test message, what a store should read from it, and the personal data it holds."""

    name: str
    message: EmailMessage
    sent_at: datetime
    subject: str
    correspondent: str | None
    secrets: tuple[str, ...]
    """Personal data in the message (subject, body, HTML or attachment)."""

    @property
    def message_id(self) -> str | None:
        value = self.message["Message-ID"]
        return str(value) if value is not None else None

    def as_bytes(self) -> bytes:
        return self.message.as_bytes()


def _message(
    sender: str, to: str, subject: str, sent_at: datetime, text: str, *, cc: str | None = None,
    message_id: str | None = None,
) -> EmailMessage:  # fmt: skip
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    if cc:
        msg["Cc"] = cc
    msg["Subject"] = subject
    msg["Date"] = format_datetime(sent_at)
    if message_id:
        msg["Message-ID"] = message_id
    msg.set_content(text)
    return msg


def business_mails() -> list[Mail]:
    """Six messages: English and French, HTML alternative, HTML only, an attachment, one
    without Message-ID, an RFC 2047 subject, an internal-only one."""
    quote = datetime(2023, 3, 14, 9, 26, tzinfo=UTC)
    quote_msg = _message(
        "Margaret Holloway <M.Holloway@Brightwater-Logistics.co.uk>",
        "Sales Team <sales@example.com>",
        "Quote request for warehouse shelving",
        quote,
        "Hello,\n\nPlease call me back at 416-555-0142 about the shelving quote.\n"
        "Our site is at 88 Harbour Street, Toronto.\n\nMargaret Holloway\n",
        cc="Tom Baker <tom.baker@example.com>",
        message_id="<20230314092600.4421@brightwater-logistics.co.uk>",
    )
    quote_msg.add_alternative(
        "<html><body><p>Hello,</p><p>Please call me back at <b>416-555-0142</b> about the "
        "shelving quote.</p><p>Margaret Holloway</p></body></html>",
        subtype="html",
    )
    devis_at = datetime(2023, 6, 2, 15, 4, 11, tzinfo=UTC)
    devis = _message(
        "Jean-François Lévesque <jf.levesque@renovations-levesque.qc.ca>",
        "ventes@example.com",
        "Devis n°42 \u2013 rénovation de la cuisine à Montréal",
        devis_at,
        "Bonjour,\n\nVoici mes coordonnées : 1234, rue Saint-Denis, Montréal, "
        "téléphone 514-555-0199.\nMon NAS est 046 454 286.\n\nMerci, Jean-François Lévesque\n",
        message_id="<devis-42.8812@renovations-levesque.qc.ca>",
    )
    invoice_at = datetime(2024, 1, 9, 11, 0, tzinfo=UTC)
    invoice = _message(
        "Accounts <accounts@example.com>",
        "Priya Raman <priya.raman@northwind-traders.com>, finance@example.com",
        "Invoice INV-2024-0107",
        invoice_at,
        "Dear Priya Raman,\n\nPlease find attached invoice INV-2024-0107.\n",
        message_id="<inv-2024-0107@example.com>",
    )
    invoice.add_attachment(
        b"INVOICE INV-2024-0107\nBill to: Priya Raman, 12 Elm Road, Leeds\n",
        maintype="text",
        subtype="plain",
        filename="INV-2024-0107.txt",
    )
    no_id_at = datetime(2023, 11, 20, 8, 15, tzinfo=UTC)
    no_id = _message(
        "carlos.mendes@portoverde.pt",
        "support@example.com",
        "Order 5531 not delivered",
        no_id_at,
        "My order 5531 never arrived. Deliver to Carlos Mendes, Rua das Flores 12, Porto.\n",
    )
    html_at = datetime(2024, 5, 6, 17, 45, tzinfo=UTC)
    html_only = EmailMessage()
    html_only["From"] = "Émilie Gagnon <emilie.gagnon@cafe-gagnon.ca>"
    html_only["To"] = "sales@example.com"
    html_only["Subject"] = "Réservation pour 20 personnes"
    html_only["Date"] = format_datetime(html_at)
    html_only["Message-ID"] = "<resa-20@cafe-gagnon.ca>"
    html_only.set_content(
        "<html><head><style>p {color: red}</style></head><body><p>Bonjour,</p>"
        "<p>Je r&eacute;serve pour 20 personnes. Rappelez-moi au 438-555-0123.</p>"
        "<p>&Eacute;milie Gagnon</p></body></html>",
        subtype="html",
    )
    internal_at = datetime(2024, 2, 1, 10, 30, tzinfo=UTC)
    internal = _message(
        "Tom Baker <tom.baker@example.com>",
        "sales@example.com",
        "Team lunch",
        internal_at,
        "Lunch on Friday at noon.\n",
        message_id="<lunch-0201@example.com>",
    )
    return [
        Mail("quote", quote_msg, quote, "Quote request for warehouse shelving",
             "m.holloway@brightwater-logistics.co.uk",
             ("416-555-0142", "Harbour Street", "Margaret Holloway")),
        Mail("devis", devis, devis_at, "Devis n°42 \u2013 rénovation de la cuisine à Montréal",
             "jf.levesque@renovations-levesque.qc.ca",
             ("514-555-0199", "Saint-Denis", "046 454 286", "cuisine")),
        Mail("invoice", invoice, invoice_at, "Invoice INV-2024-0107",
             "priya.raman@northwind-traders.com", ("Priya Raman", "Elm Road")),
        Mail("no_id", no_id, no_id_at, "Order 5531 not delivered", "carlos.mendes@portoverde.pt",
             ("Carlos Mendes", "Rua das Flores")),
        Mail("html_only", html_only, html_at, "Réservation pour 20 personnes",
             "emilie.gagnon@cafe-gagnon.ca", ("438-555-0123", "Gagnon")),
        Mail("internal", internal, internal_at, "Team lunch", None, ("Friday",)),
    ]  # fmt: skip


# writing them into stores


def write_maildir(root: Path, folders: dict[str, Sequence[Mail]]) -> None:
    """A Maildir: ``inbox`` is the root, any other name a Maildir++ folder ``.Name``.
    File names follow Dovecot (``S=`` size), file times are the messages' dates."""
    for folder, mails in folders.items():
        path = root if folder == "inbox" else root / f".{folder.capitalize()}"
        for sub in ("cur", "new", "tmp"):
            (path / sub).mkdir(parents=True, exist_ok=True)
        for number, mail in enumerate(mails):
            data = mail.as_bytes()
            unique = f"{1700000000 + number}.M{number}P1.test,S={len(data)}"
            sub, info = ("cur", ":2,S") if number % 2 else ("new", "")
            file = path / sub / f"{unique}{info}"
            file.write_bytes(data)
            stamp = mail.sent_at.timestamp()
            os.utime(file, (stamp, stamp))


def write_mbox(path: Path, mails: Iterable[Mail]) -> None:
    box = mailbox.mbox(str(path), create=True)
    try:
        for mail in mails:
            entry = mailbox.mboxMessage(mail.message)
            entry.set_from("MAILER-DAEMON", time.gmtime(mail.sent_at.timestamp()))
            box.add(entry)
        box.flush()
    finally:
        box.close()


def imap_login(host: str, port: int, user: str, password: str) -> imaplib.IMAP4:
    conn = imaplib.IMAP4(host, port)
    conn.login(user, password)
    return conn


def fill_imap(conn: imaplib.IMAP4, folders: dict[str, Sequence[Mail]]) -> None:
    """APPEND the messages (INTERNALDATE = their date); other folders are created."""
    for folder, mails in folders.items():
        real = "INBOX" if folder == "inbox" else folder.capitalize()
        if real != "INBOX":
            conn.create(f'"{real}"')
        for mail in mails:
            status, _ = conn.append(f'"{real}"', None, mail.sent_at, mail.as_bytes())
            assert status == "OK"


def imap_messages(conn: imaplib.IMAP4, folder: str) -> list[tuple[bytes, bytes]]:
    """(FLAGS text, raw message) of every message in a folder, read without marking."""
    status, _ = conn.select(f'"{folder}"', readonly=True)
    assert status == "OK"
    status, data = conn.uid("FETCH", "1:*", "(FLAGS BODY.PEEK[])")
    return [(item[0], item[1]) for item in data if isinstance(item, tuple)]
