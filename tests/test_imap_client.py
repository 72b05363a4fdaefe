"""What the IMAP store (``connectors.mail.imap``) leaves to IMAPClient, against the
session's Dovecot: folder names in modified UTF-7 (RFC 3501 5.1.3), headers that read
like IMAP syntax inside a FETCH literal, INTERNALDATE, and a password that no log record
holds now that the library logs the conversation at DEBUG level. And how a connector is
opened: each mail scheme's entry point names its own factory, and every factory receives
one frozen ``ConnectorOptions``.

The folders are created and the messages appended with the standard library's imaplib,
names written in modified UTF-7 by hand: the test's view of the server owes nothing to
the code under test.
"""

from __future__ import annotations

import dataclasses
import imaplib
import logging
import os
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from importlib.metadata import entry_points
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st
from imapclient import imap_utf7

from connectors.errors import StoreUnavailable
from connectors.mail.imap import ImapStore
from connectors.mail.mailboxes import open_store
from connectors.mail.maildir import MaildirStore
from connectors.mail.mbox import MboxStore
from connectors.mail.messages import decode_folder_name
from connectors.protocol import ConnectorOptions
from connectors.records.connector import RecordConnector
from connectors.registry import ENTRY_POINT_GROUP, open_connector
from tests.support.imap_server import PASSWORD, ImapServer
from tests.support.mail_fixtures import imap_login, imap_messages

#: A folder's name on the wire -> the collection the store calls it.
FOLDERS = {
    "&AMk-quipe": "équipe",
    "&ZeVnLIqe-": "日本語",
    "Clients.Qu&AOk-bec": "clients.québec",  # a child: "Clients" itself holds no mail
    "R&-D": "r&d",  # "&" is the shift character, written "&-"
    '"Devis \\"urgent\\""': 'devis "urgent"',  # quoted on the wire, with escapes
    '"back\\\\slash"': "back\\slash",
    '"&2D3cwQ- Archive 2023"': "📁 archive 2023",  # outside the BMP: a UTF-16 surrogate pair
}


def _quoted(wire: str) -> str:
    return wire if wire.startswith('"') else f'"{wire}"'


def _message(subject: str, *, extra: bytes = b"", date: bool = True) -> bytes:
    head = b"From: Ana Souza <ana.souza@cliente.example.br>\r\nTo: sales@example.com\r\n"
    if date:
        head += b"Date: Tue, 14 Mar 2023 09:26:00 +0000\r\n"
    head += f"Subject: {subject}\r\n".encode() + extra
    return head + b"\r\nPlease call me at 416-555-0142.\r\n"


def _store(server: ImapServer, user: str) -> ImapStore:
    store = open_store("mail", server.url(user) + "?internal_domains=example.com", read_only=False)
    assert isinstance(store, ImapStore)
    return store


def _scan(store: ImapStore, collection: str, fields: list[str]) -> pd.DataFrame:
    frames = list(store.scan(collection, fields, 100))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


@pytest.fixture
def conn(imap_server: ImapServer, imap_user: str) -> Iterator[imaplib.IMAP4]:
    """The test's own connection to the user's mailbox."""
    connection = imap_login("127.0.0.1", imap_server.port, imap_user, PASSWORD)
    yield connection
    connection.logout()


def test_folder_names_in_modified_utf7_are_listed_read_and_changed(
    imap_server: ImapServer, imap_user: str, conn: imaplib.IMAP4
) -> None:
    for wire in FOLDERS:
        assert conn.create(_quoted(wire))[0] == "OK"
        for n in range(2):
            status, _ = conn.append(_quoted(wire), None, None, _message(f"{wire} #{n}"))
            assert status == "OK"
    store = _store(imap_server, imap_user)
    assert store.collections() == sorted(["inbox", *FOLDERS.values()])
    for wire, collection in FOLDERS.items():
        subjects = sorted(_scan(store, collection, ["subject"])["subject"])
        assert subjects == [f"{wire} #0", f"{wire} #1"], collection

    # a change lands in the folder it was asked for, whatever its name
    equipe = _scan(store, "équipe", ["subject"]).sort_values("subject")
    key = equipe["message_key"].iloc[0]
    assert store.update("équipe", [(key,)], pd.DataFrame({"subject": ["[redacted]"]})) == 1
    archive = _scan(store, "📁 archive 2023", [])["message_key"]
    assert store.delete("📁 archive 2023", [(archive.iloc[0],)]) == 1
    on_server = [raw for _, raw in imap_messages(conn, "&AMk-quipe")]
    assert sum(b"Subject: [redacted]" in raw for raw in on_server) == 1 and len(on_server) == 2
    assert len(imap_messages(conn, "&2D3cwQ- Archive 2023")) == 1
    for wire in ("&ZeVnLIqe-", "Clients.Qu&AOk-bec", "R&-D"):
        assert len(imap_messages(conn, wire)) == 2, wire  # the others untouched

    # the Maildir Dovecot keeps them in names them alike (one decoder for both stores)
    maildir = open_store("mail", f"maildir:///{imap_server.root / 'mail' / imap_user}")
    assert maildir.collections() == store.collections()
    store.close()


@given(st.text(max_size=40))
def test_every_folder_name_reads_back_from_modified_utf7(name: str) -> None:
    """Whatever a mail program calls a folder, the name its server or Maildir stores
    (modified UTF-7) reads back as it; a name that holds no ``&`` is read as it is (a
    Maildir's UTF-8 names)."""
    assert decode_folder_name(imap_utf7.encode(name).decode("ascii")) == name
    if "&" not in name:
        assert decode_folder_name(name) == name


def test_a_header_that_reads_like_imap_syntax_is_read_and_kept_as_written(
    imap_server: ImapServer, imap_user: str, conn: imaplib.IMAP4
) -> None:
    """Inside the FETCH literal, text that looks like a response item (a literal's
    ``{5}`` ending a line, ``UID``, ``RFC822.SIZE``, ``FLAGS``, ``INTERNALDATE``) and raw
    8-bit bytes are the message's own: they neither change what the store reads of the
    response around them nor survive an update changed."""
    tricky = (
        b'X-Note: FLAGS (\\Deleted) INTERNALDATE "01-Jan-1990 00:00:00 +0000" {5}\r\n'
        b" UID 9) RFC822.SIZE 1 BODY[] {0}\r\n"
        b"X-Raw: Montr\xc3\xa9al, rue Saint-Denis\r\n"
    )
    raw = _message("UID 77 RFC822.SIZE 5 {12}", extra=tricky)
    stamp = '"14-Mar-2023 09:26:00 +0000"'
    assert conn.append("INBOX", r"(\Flagged $Customer)", stamp, raw)[0] == "OK"
    assert conn.append("INBOX", None, stamp, _message("Plain"))[0] == "OK"
    store = _store(imap_server, imap_user)
    data = _scan(store, "inbox", ["subject", "size", "sent_at", "body", "correspondent"])
    row = data[data["subject"] == "UID 77 RFC822.SIZE 5 {12}"].iloc[0]
    assert row["size"] == len(raw)
    assert row["sent_at"] == pd.Timestamp("2023-03-14 09:26:00", tz="UTC")
    assert row["body"] == "Please call me at 416-555-0142."
    assert row["correspondent"] == "ana.souza@cliente.example.br"

    key = row["message_key"]
    assert store.update("inbox", [(key,)], pd.DataFrame({"body": ["[redacted]"]})) == 1
    ((flags, rewritten),) = [m for m in imap_messages(conn, "INBOX") if b"UID 77" in m[1]]
    assert b"\\Flagged" in flags and b"$Customer" in flags and b"\\Deleted" not in flags
    assert b"X-Note: FLAGS (\\Deleted) INTERNALDATE" in rewritten
    assert b"Montr\xc3\xa9al" in rewritten and b"416-555-0142" not in rewritten
    assert len(_scan(store, "inbox", [])) == 2
    store.close()


@pytest.fixture
def montreal_clock() -> Iterator[None]:
    """The process's local zone is not UTC: an INTERNALDATE read as local wall time
    would be off by hours."""
    before = os.environ.get("TZ")
    os.environ["TZ"] = "America/Montreal"
    time.tzset()
    try:
        yield
    finally:
        if before is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = before
        time.tzset()


def test_internaldate_stands_for_a_missing_date_and_survives_an_update(
    imap_server: ImapServer, imap_user: str, conn: imaplib.IMAP4, montreal_clock: None
) -> None:
    """A message without a Date header was sent when the server received it: its
    INTERNALDATE (a one-digit day, an offset), read as the instant it names. An update
    appends the rewrite with the same INTERNALDATE."""
    stamped = ((" 5-Jul-2023 23:30:00 -0400", "No date"), ("29-Feb-2024 23:59:59 +0530", "Leap"))
    for day, subject in stamped:
        status, _ = conn.append("INBOX", None, f'"{day}"', _message(subject, date=False))
        assert status == "OK"
    store = _store(imap_server, imap_user)
    data = _scan(store, "inbox", ["subject", "sent_at"]).set_index("subject")
    assert data.loc["No date", "sent_at"] == pd.Timestamp(datetime(2023, 7, 6, 3, 30, tzinfo=UTC))
    assert data.loc["Leap", "sent_at"] == pd.Timestamp("2024-02-29 18:29:59", tz="UTC")

    def stamps() -> dict[str, bytes]:
        """INTERNALDATE as the server gives it, by subject."""
        conn.select("INBOX", readonly=True)
        _, found = conn.uid("FETCH", "1:*", "(INTERNALDATE BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        out = {}
        for item in found:
            if isinstance(item, tuple):
                stamp = re.search(rb'INTERNALDATE ("[^"]+")', item[0])
                assert stamp is not None
                out[item[1].decode().split(":", 1)[1].strip()] = stamp[1]
        return out

    before = stamps()
    keys = [(k,) for k in data["message_key"]]
    assert store.update("inbox", keys, pd.DataFrame({"body": ["[redacted]"] * 2})) == 2
    assert stamps() == before
    after = _scan(store, "inbox", ["subject", "sent_at", "body"]).set_index("subject")
    assert (after["body"] == "[redacted]").all()
    assert after["sent_at"].to_dict() == data["sent_at"].to_dict()
    store.close()


def test_no_log_record_holds_the_password(
    imap_server: ImapServer, imap_user: str, conn: imaplib.IMAP4, caplog: pytest.LogCaptureFixture
) -> None:
    """Logged at DEBUG level, the whole conversation (LOGIN included) holds no part of
    the password, right or wrong."""
    assert conn.append("INBOX", None, None, _message("Logged"))[0] == "OK"
    wrong = "N0t-The-Passw0rd-5e1d"
    caplog.set_level(logging.DEBUG)
    store = _store(imap_server, imap_user)
    key = _scan(store, "inbox", ["subject", "body"])["message_key"].iloc[0]
    store.update("inbox", [(key,)], pd.DataFrame({"subject": ["[redacted]"]}))
    store.close()
    with pytest.raises(StoreUnavailable, match="authentication failed"):
        open_store("mail", imap_server.url(imap_user, password=wrong)).ping()
    assert any(record.name.startswith("imapclient") for record in caplog.records)
    logged = "\n".join(record.getMessage() for record in caplog.records) + caplog.text
    for secret in (PASSWORD, wrong):
        assert secret not in logged


# opening connectors


@pytest.mark.parametrize(
    ("scheme", "store", "module"),
    [
        ("maildir", MaildirStore, "connectors.mail.maildir"),
        ("mbox", MboxStore, "connectors.mail.mbox"),
        ("imap", ImapStore, "connectors.mail.imap"),
        ("imaps", ImapStore, "connectors.mail.imap"),
    ],
)
def test_each_mail_scheme_names_its_own_factory(
    scheme: str, store: type, module: str, tmp_path: Path
) -> None:
    """The entry point opens the store of its scheme, with the options given (nothing
    is reached before the first question)."""
    (point,) = entry_points(group=ENTRY_POINT_GROUP, name=scheme)
    assert point.value == f"{module}:connector"
    where = "//u:pw@127.0.0.1:1/" if scheme.startswith("imap") else f"//{tmp_path}/m"
    options = ConnectorOptions(read_only=False, bookkeeping_dir=tmp_path / "books")
    opened = open_connector("mail", f"{scheme}:{where}", options)
    assert isinstance(opened, RecordConnector) and type(opened.store) is store
    assert opened.store.read_only is False
    assert opened.bookkeeping_path.parent == tmp_path / "books"
    opened.close()


def _probe(name: str, url: str, options: ConnectorOptions) -> tuple[str, str, ConnectorOptions]:
    """A third party's factory: what it was given."""
    return name, url, options


def test_a_factory_receives_the_name_the_url_and_one_frozen_options_object(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    info = tmp_path / "site" / "tenure_probe-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: tenure-probe\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        f"[{ENTRY_POINT_GROUP}]\nprobe = tests.test_imap_client:_probe\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    options = ConnectorOptions(
        read_only=False,
        naive_timezone="America/Montreal",
        local_timezone="Europe/Paris",
        bookkeeping_dir=tmp_path,
    )
    # The probe declares no `selects_subjects`: it comes back wrapped (refusing one
    # person's rows), and what its factory received is inside.
    opened = open_connector("probe", "probe:///x", options)
    assert opened.connector == ("probe", "probe:///x", options)  # type: ignore[attr-defined]
    default = open_connector("probe", "probe:///x")
    assert default.connector[2] == ConnectorOptions()  # type: ignore[attr-defined]
    assert ConnectorOptions().read_only  # by default nothing may change
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.read_only = True  # type: ignore[misc]
