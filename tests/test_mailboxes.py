"""The mail stores (``connectors.mail.mailboxes``): Maildir, mbox and a real IMAP server.

The same tests run over the three kinds of store, holding the same business e-mails
(``tests/support/mail_fixtures.py``); IMAP runs against the session's Dovecot server.
"""

from __future__ import annotations

import imaplib
import mailbox
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email import policy
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from sqlalchemy import make_url

from connectors.conformance import ConformanceFixture, ConnectorConformance, Record
from connectors.errors import StoreError, StoreUnavailable
from connectors.mail.imap import ImapStore
from connectors.mail.mailboxes import open_store
from connectors.mail.messages import FIELDS, message_key, rebuild
from connectors.mail.stores import MailStore
from connectors.protocol import ConnectorOptions, ExpirySelection
from connectors.records.connector import RecordConnector
from connectors.registry import open_connector
from tests.support.imap_server import PASSWORD, ImapServer
from tests.support.mail_fixtures import (
    INTERNAL,
    Mail,
    business_mails,
    fill_imap,
    imap_login,
    imap_messages,
    write_maildir,
    write_mbox,
)

KINDS = ["maildir", "mbox", "imap"]
READ = [f for f in FIELDS if f != "message_key"]
REDACTED = {
    "subject": "[subject redacted]",
    "body": "Message redacted: <PERSON> called from <PHONE_NUMBER>.\nÀ bientôt.",
    "from_address": "redacted@invalid.example",
    "to_addresses": "redacted@invalid.example",
    "cc_addresses": None,
}


@dataclass
class MailSetup:
    """A store of one kind holding ``business_mails()``: ``sales`` holds the internal
    message, ``inbox`` the others."""

    kind: str
    url: str
    mails: dict[str, Mail]
    raw_messages: Callable[[], list[bytes]]
    """Every stored message, raw."""
    stored_files: Callable[[], list[bytes]] | None = None
    """Every file of the store (also what lies between the messages)."""

    def store(self, *, read_only: bool = False) -> Any:
        return open_store("mail", self.url, read_only=read_only)

    def everything(self) -> bytes:
        return b"\n".join((self.stored_files or self.raw_messages)())

    def readable(self) -> bytes:
        """Every stored byte, and every message decoded: where personal data could hide."""
        decoded = "\n".join(texts_of(raw) for raw in self.raw_messages())
        return self.everything() + decoded.encode()


def _folders() -> tuple[dict[str, Mail], dict[str, list[Mail]]]:
    mails = {m.name: m for m in business_mails()}
    inbox = [m for m in mails.values() if m.name != "internal"]
    return mails, {"inbox": inbox, "sales": [mails["internal"]]}


@pytest.fixture(params=KINDS)
def setup(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[MailSetup]:
    mails, folders = _folders()
    query = f"?internal_domains={INTERNAL}"
    if request.param == "maildir":
        root = tmp_path / "Maildir"
        write_maildir(root, folders)

        def files() -> list[bytes]:
            return [p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()]

        def messages() -> list[bytes]:
            found = sorted(root.rglob("*"))
            return [
                p.read_bytes() for p in found if p.is_file() and p.parent.name in ("cur", "new")
            ]

        yield MailSetup("maildir", f"maildir:///{root}{query}", mails, messages, files)
    elif request.param == "mbox":
        folder = tmp_path / "mail"
        folder.mkdir()
        for name, box in folders.items():
            write_mbox(folder / f"{name.capitalize()}.mbox", box)

        def boxes() -> list[bytes]:
            return [p.read_bytes() for p in sorted(folder.glob("*.mbox"))]

        def in_boxes() -> list[bytes]:
            found = []
            for path in sorted(folder.glob("*.mbox")):
                box = mailbox.mbox(path)
                found += [box.get_bytes(key) for key in box.iterkeys()]
                box.close()
            return found

        yield MailSetup("mbox", f"mbox:///{folder}{query}", mails, in_boxes, boxes)
    else:
        server: ImapServer = request.getfixturevalue("imap_server")
        user: str = request.getfixturevalue("imap_user")
        conn = imap_login("127.0.0.1", server.port, user, PASSWORD)
        fill_imap(conn, folders)

        def on_server() -> list[bytes]:
            return [raw for f in ("INBOX", "Sales") for _, raw in imap_messages(conn, f)]

        yield MailSetup("imap", server.url(user) + query, mails, on_server)
        conn.logout()


def scan_all(store: Any, collection: str = "inbox", fields: list[str] | None = None,
             chunk: int = 100) -> pd.DataFrame:  # fmt: skip
    frames = list(store.scan(collection, READ if fields is None else fields, chunk))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def by_name(frame: pd.DataFrame, mails: dict[str, Mail]) -> dict[str, pd.Series]:
    """Rows by the name of the test message they hold (matched by subject)."""
    names = {m.subject: m.name for m in mails.values()}
    return {names[row["subject"]]: row for _, row in frame.iterrows()}


def texts_of(raw: bytes) -> str:
    """Every header and every part of a message, decoded: what a reader could see."""
    msg = BytesParser(policy=policy.default).parsebytes(raw)
    out = [f"{k}: {v}" for k, v in msg.items()]
    for part in msg.walk():
        if not part.is_multipart():
            payload = part.get_payload(decode=True)
            if isinstance(payload, bytes):
                out.append(payload.decode("utf-8", "replace"))
    return "\n".join(out)


# discovery and reading


def test_collections_and_description(setup: MailSetup) -> None:
    store = setup.store()
    store.ping()
    assert store.collections() == ["inbox", "sales"]
    described = store.describe("inbox")
    assert described is not None
    assert described.key == ("message_key",) and described.unit == 0
    assert not described.positional
    assert set(described.fields) == set(FIELDS)
    assert described.fields["sent_at"].family == "datetime"
    assert described.fields["sent_at"].timezone_aware
    assert described.fields["size"].family == "integer"
    assert store.describe("no_such_folder") is None
    assert store.partitions("inbox") == []
    assert not store.capabilities.transactions and not store.capabilities.pushdown
    store.drop_partitions("inbox", [])
    store.close()


def test_scan_reads_every_field_in_key_order_and_chunks(setup: MailSetup) -> None:
    store = setup.store(read_only=True)
    frames = list(store.scan("inbox", READ, 2))
    assert [len(f) for f in frames] == [2, 2, 1]
    assert all(list(f.columns) == ["message_key", *READ] for f in frames)
    data = pd.concat(frames, ignore_index=True)
    keys = list(data["message_key"])
    assert keys == sorted(keys) and len(set(keys)) == 5
    assert (
        str(data["sent_at"].dtype).startswith("datetime64") and str(data["sent_at"].dt.tz) == "UTC"
    )
    assert data["size"].dtype == "int64" and (data["size"] > 200).all()
    rows = by_name(data, setup.mails)
    for name, row in rows.items():
        mail = setup.mails[name]
        assert row["sent_at"] == pd.Timestamp(mail.sent_at)
        assert row["correspondent"] == mail.correspondent
        assert row["message_id"] == mail.message_id or (
            mail.message_id is None and pd.isna(row["message_id"])
        )
    quote = rows["quote"]
    assert quote["from_address"] == "m.holloway@brightwater-logistics.co.uk"  # lower case
    assert quote["to_addresses"] == "sales@example.com"
    assert quote["cc_addresses"] == "tom.baker@example.com"
    assert "call me back at 416-555-0142" in quote["body"] and "<p>" not in quote["body"]
    assert rows["devis"]["subject"] == "Devis n°42 \u2013 rénovation de la cuisine à Montréal"
    assert "Saint-Denis, Montréal, téléphone 514-555-0199" in rows["devis"]["body"]
    assert (
        rows["invoice"]["to_addresses"] == "priya.raman@northwind-traders.com, finance@example.com"
    )
    assert (
        rows["invoice"]["body"]
        == "Dear Priya Raman,\n\nPlease find attached invoice INV-2024-0107."
    )
    no_id_key = rows["no_id"]["message_key"]  # Maildir: the file's unique name
    assert no_id_key.startswith("msg:") or (setup.kind == "maildir" and "." in no_id_key)
    html = rows["html_only"]["body"]
    assert "Je réserve pour 20 personnes. Rappelez-moi au 438-555-0123." in html
    assert "<" not in html and "color" not in html
    assert pd.isna(rows["quote"]["to_addresses"]) is False
    internal = scan_all(store, "sales")
    assert len(internal) == 1 and pd.isna(internal["correspondent"].iloc[0])


def test_scan_gives_the_key_and_the_fields_asked_only(setup: MailSetup) -> None:
    store = setup.store(read_only=True)
    assert list(scan_all(store, fields=["sent_at"]).columns) == ["message_key", "sent_at"]
    assert list(scan_all(store, fields=[]).columns) == ["message_key"]
    first = list(scan_all(store, fields=[])["message_key"])
    again = list(scan_all(setup.store(read_only=True), fields=["subject"])["message_key"])
    assert first == again  # stable across runs
    with pytest.raises(StoreError, match="no field 'recipient'"):
        list(store.scan("inbox", ["recipient"], 10))
    with pytest.raises(StoreError, match="'archive' does not exist"):
        list(store.scan("archive", [], 10))


# changing


def test_delete_by_keys_leaves_the_others(setup: MailSetup) -> None:
    store = setup.store()
    rows = by_name(scan_all(store), setup.mails)
    gone = [(rows[n]["message_key"],) for n in ("quote", "no_id")]
    assert store.delete("inbox", gone) == 2
    left = by_name(scan_all(store), setup.mails)
    assert sorted(left) == ["devis", "html_only", "invoice"]
    assert store.delete("inbox", gone) == 0  # replayed after a crash: harmless
    assert store.delete("inbox", [("mid:0000",)]) == 0
    stored = setup.everything()
    for secret in (b"416-555-0142", b"Rua das Flores", b"Harbour Street"):
        assert secret not in stored
    assert b"514-555-0199" in stored  # the others are untouched
    assert len(scan_all(store, "sales")) == 1


def test_update_by_keys_rewrites_the_messages(setup: MailSetup) -> None:
    store = setup.store()
    before = by_name(scan_all(store), setup.mails)
    changed = ["quote", "devis", "invoice", "no_id"]
    keys = [(before[n]["message_key"],) for n in changed]
    values = pd.DataFrame([REDACTED] * len(changed), index=[7, 3, 9, 1])  # any index
    assert store.update("inbox", keys, values) == 4
    after = scan_all(store)
    assert sorted(after["message_key"]) == sorted(before[n]["message_key"] for n in before)
    rows = {row["message_key"]: row for _, row in after.iterrows()}
    for name in changed:
        row = rows[before[name]["message_key"]]
        assert row["subject"] == REDACTED["subject"]
        assert row["body"] == REDACTED["body"]
        assert row["from_address"] == row["to_addresses"] == "redacted@invalid.example"
        assert pd.isna(row["cc_addresses"])
        assert row["sent_at"] == before[name]["sent_at"]
        same_id = row["message_id"] == before[name]["message_id"]
        assert same_id or (pd.isna(row["message_id"]) and pd.isna(before[name]["message_id"]))
    untouched = rows[before["html_only"]["message_key"]]
    assert untouched["body"] == before["html_only"]["body"]

    stored = setup.raw_messages()
    everything = setup.readable()
    for name in changed:
        for secret in setup.mails[name].secrets:
            assert secret.encode() not in everything, (name, secret)
    assert b"438-555-0123" in everything  # not asked for: kept
    parsed = [BytesParser(policy=policy.default).parsebytes(raw) for raw in stored]
    by_id = {str(msg["Message-ID"]): msg for msg in parsed}
    quote = by_id[str(setup.mails["quote"].message_id)]
    html = quote.get_body(preferencelist=("html",))
    assert (
        html is not None and "&lt;PERSON&gt; called from &lt;PHONE_NUMBER&gt;" in html.get_content()
    )
    assert quote["Message-ID"] == setup.mails["quote"].message_id
    invoice = by_id[str(setup.mails["invoice"].message_id)]
    assert invoice["X-Tenure-Redacted"] == "attachments removed"
    assert not any(part.is_attachment() for part in invoice.walk())
    assert "X-Tenure-Redacted" not in quote

    # replayed after a crash: the same messages, once each
    assert store.update("inbox", keys, values) == 4
    assert sorted(scan_all(store)["message_key"]) == sorted(after["message_key"])
    assert sorted(setup.raw_messages()) == sorted(stored) or setup.kind == "imap"
    assert store.update("inbox", [("mid:gone",)], values.iloc[:1]) == 0


def test_identical_copies_are_never_merged(setup: MailSetup, tmp_path: Path) -> None:
    """Two byte-identical messages cannot be told apart: the scan gives both (one key),
    the store leaves that key alone, and the connector refuses both and reports them."""
    if setup.kind == "maildir":
        pytest.skip("a Maildir message's key is its file name (see test_record_store_safety)")
    copy = setup.mails["devis"]
    if setup.kind == "mbox":
        write_mbox(Path(make_url(setup.url).database or "") / "Inbox.mbox", [copy])
    else:
        url = make_url(setup.url)
        conn = imap_login("127.0.0.1", url.port or 0, url.username or "", PASSWORD)
        fill_imap(conn, {"inbox": [copy]})
        conn.logout()
    store = setup.store()
    data = scan_all(store)
    assert len(data) == 6 and len(setup.raw_messages()) == 7  # 6 + the copy
    key = data[data["subject"] == copy.subject]["message_key"]
    assert len(key) == 2 and key.nunique() == 1
    assert store.update("inbox", [(key.iloc[0],)], pd.DataFrame({"subject": ["x"]})) == 0
    assert store.delete("inbox", [(key.iloc[0],)]) == 0
    assert len(setup.raw_messages()) == 7 and setup.readable().count(b"cuisine") >= 2
    connector = RecordConnector(
        store, ConnectorOptions(bookkeeping_dir=tmp_path / "books", read_only=False)
    )
    selection = ExpirySelection("inbox", "sent_at", datetime(2100, 1, 1, tzinfo=UTC))
    counts = connector.count_expiry(selection)
    assert counts.skipped == {"duplicate key": 2} and counts.total == 4  # 5 - 1, no copy


def test_an_interrupted_imap_update_is_finished_by_its_replay(
    imap_server: ImapServer, imap_user: str, filled_imap: imaplib.IMAP4
) -> None:
    """A crash between an update's APPEND and its EXPUNGE leaves the message and its
    rewrite (which records the key): one record to replay, never two refused ones."""
    store = imap_store(imap_server, imap_user)
    first = scan_all(store).sort_values("message_key").iloc[0]
    key = first["message_key"]
    ((_, raw),) = [m for m in imap_messages(filled_imap, "INBOX") if message_key(m[1]) == key]
    rewritten = rebuild(raw, {"subject": "[redacted]"}, key)
    assert filled_imap.append("INBOX", None, None, rewritten)[0] == "OK"
    assert (scan_all(store)["message_key"] == key).sum() == 2
    assert store.update("inbox", [(key,)], pd.DataFrame({"subject": ["[redacted]"]})) == 1
    assert (scan_all(store)["message_key"] == key).sum() == 1
    assert store.delete("inbox", [(key,)]) == 1


def test_update_refuses_fields_a_message_cannot_hold(setup: MailSetup) -> None:
    store = setup.store()
    key = scan_all(store, fields=[])["message_key"].iloc[0]
    with pytest.raises(StoreError, match="'sent_at' cannot be updated"):
        store.update("inbox", [(key,)], pd.DataFrame({"sent_at": [datetime.now(UTC)]}))


def test_read_only_refuses_changes(setup: MailSetup) -> None:
    store = setup.store(read_only=True)
    key = scan_all(store, fields=[])["message_key"].iloc[0]
    before = setup.everything()
    with pytest.raises(StoreError, match="read-only"):
        store.delete("inbox", [(key,)])
    with pytest.raises(StoreError, match="read-only"):
        store.update("inbox", [(key,)], pd.DataFrame({"subject": ["x"]}))
    assert setup.everything() == before


def test_the_connector_entry_point(setup: MailSetup, tmp_path: Path) -> None:
    opened = open_connector(
        "mail", setup.url, ConnectorOptions(read_only=True, bookkeeping_dir=tmp_path)
    )
    assert opened.table_names() == ["inbox", "sales"]
    info = opened.table_info("inbox")
    assert info is not None and info.primary_key == ("message_key",)
    assert PASSWORD not in opened.display_url
    opened.close()


# file stores


def test_missing_paths_are_unavailable(tmp_path: Path) -> None:
    for url in (f"maildir:///{tmp_path}/nowhere", f"mbox:///{tmp_path}/none.mbox"):
        with pytest.raises(StoreUnavailable, match="no such"):
            open_store("mail", url).ping()
    (tmp_path / "plain").mkdir()
    with pytest.raises(StoreUnavailable, match="not a Maildir"):
        open_store("mail", f"maildir:///{tmp_path}/plain").ping()


def test_maildir_update_keeps_the_file_name(tmp_path: Path) -> None:
    write_maildir(tmp_path, _folders()[1])
    store = open_store("mail", f"maildir:///{tmp_path}", read_only=False)
    row = scan_all(store, fields=["subject", "sent_at"]).iloc[0]
    (old,) = [p for p in tmp_path.glob("*/*") if p.name.startswith(row["message_key"])]
    store.update("inbox", [(row["message_key"],)], pd.DataFrame({"subject": ["[redacted]"]}))
    (new,) = [p for p in tmp_path.glob("*/*") if p.name.startswith(row["message_key"])]
    assert new.parent == old.parent and new.name.split(":")[1:] == old.name.split(":")[1:]
    assert f",S={new.stat().st_size}" in new.name  # Dovecot's size stays true
    assert datetime.fromtimestamp(new.stat().st_mtime, UTC) == row["sent_at"]
    assert not list((tmp_path / "tmp").iterdir())


def test_a_single_mbox_file_is_one_collection(tmp_path: Path) -> None:
    write_mbox(tmp_path / "Archive-2023.mbox", business_mails()[:2])
    store = open_store("mail", f"mbox:///{tmp_path}/Archive-2023.mbox")
    assert store.collections() == ["archive-2023"]
    assert len(scan_all(store, "archive-2023")) == 2


def test_a_locked_mbox_is_refused_at_once(tmp_path: Path) -> None:
    path = tmp_path / "Inbox.mbox"
    write_mbox(path, business_mails())
    store = open_store("mail", f"mbox:///{tmp_path}", read_only=False)
    key = scan_all(store, fields=[])["message_key"].iloc[0]
    holder = subprocess.Popen(
        [sys.executable, "-c", "import mailbox, sys, time\n"
         f"box = mailbox.mbox({str(path)!r}); box.lock(); print('locked', flush=True)\n"
         "sys.stdin.read(); box.unlock()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        started = time.monotonic()
        with pytest.raises(StoreError, match=f"mailbox is locked: {path}"):
            store.delete("inbox", [(key,)])
        assert time.monotonic() - started < 1
    finally:
        holder.communicate("")  # it unlocks and exits
    assert store.delete("inbox", [(key,)]) == 1


# IMAP


def imap_store(server: ImapServer, user: str, **query: str) -> ImapStore:
    url = server.url(user) + "?" + "&".join(f"{k}={v}" for k, v in query.items())
    store = open_store("mail", url.rstrip("?"), read_only=False)
    assert isinstance(store, ImapStore)
    return store


@pytest.fixture
def filled_imap(imap_server: ImapServer, imap_user: str) -> Iterator[imaplib.IMAP4]:
    conn = imap_login("127.0.0.1", imap_server.port, imap_user, PASSWORD)
    fill_imap(conn, _folders()[1])
    yield conn
    conn.logout()


def test_imap_scan_marks_nothing_seen(
    imap_server: ImapServer, imap_user: str, filled_imap: imaplib.IMAP4
) -> None:
    filled_imap.select("INBOX")
    filled_imap.uid("STORE", "1", "+FLAGS", r"(\Seen)")
    store = imap_store(imap_server, imap_user)
    assert len(scan_all(store)) == 5  # headers, sizes and bodies
    flags = [f for f, _ in imap_messages(filled_imap, "INBOX")]
    assert sum(b"\\Seen" in f for f in flags) == 1 and len(flags) == 5


def test_imap_update_keeps_flags_and_date_and_others_deleted(
    imap_server: ImapServer, imap_user: str, filled_imap: imaplib.IMAP4
) -> None:
    filled_imap.select("INBOX")
    filled_imap.uid("STORE", "1", "+FLAGS", r"(\Flagged \Seen)")
    filled_imap.uid("STORE", "5", "+FLAGS", r"(\Deleted)")  # a mail program's, not expunged
    store = imap_store(imap_server, imap_user)
    data = scan_all(store, fields=["subject", "sent_at"])
    first = data[data["subject"] == "Quote request for warehouse shelving"].iloc[0]
    store.update("inbox", [(first["message_key"],)], pd.DataFrame({"subject": ["[redacted]"]}))
    flags = {f for f, raw in imap_messages(filled_imap, "INBOX") if b"[redacted]" in raw}
    assert len(flags) == 1 and b"\\Flagged" in next(iter(flags)) and b"\\Seen" in next(iter(flags))
    filled_imap.select("INBOX", readonly=True)
    _, found = filled_imap.uid("SEARCH", "SUBJECT", '"[redacted]"')
    _, stamp = filled_imap.uid("FETCH", found[0].decode(), "(INTERNALDATE)")
    assert b'"14-Mar-2023 09:26:00 +0000"' in stamp[0]
    assert store.delete("inbox", [(first["message_key"],)]) == 1
    _, deleted = filled_imap.uid("SEARCH", "DELETED")
    assert deleted[0].split() == [b"5"]  # UID EXPUNGE left the other \Deleted message


def test_imaps_with_a_private_ca(
    imap_server: ImapServer, imap_user: str, filled_imap: imaplib.IMAP4
) -> None:
    store = open_store("mail", imap_server.url(imap_user, tls=True))
    store.ping()
    assert len(scan_all(store)) == 5
    starttls = f"{imap_server.url(imap_user)}?starttls=true&cafile={imap_server.cafile}"
    assert open_store("mail", starttls).collections() == ["inbox", "sales"]
    untrusted = f"imaps://{imap_user}:{PASSWORD}@127.0.0.1:{imap_server.tls_port}/"
    with pytest.raises(StoreUnavailable, match=r"certificate .* not trusted"):
        open_store("mail", untrusted).ping()
    open_store("mail", untrusted + "?verify=false").ping()  # allowed on loopback


def test_imap_wrong_password_is_a_clear_error(imap_server: ImapServer, imap_user: str) -> None:
    wrong = "N0t-The-Passw0rd"
    store = open_store("mail", imap_server.url(imap_user, password=wrong))
    with pytest.raises(StoreUnavailable) as failed:
        store.ping()
    message = str(failed.value)
    assert "authentication failed" in message and wrong not in message
    assert len(message.splitlines()) == 1 and "***" in message


def test_imap_unreachable_port_is_unavailable() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, never listening: refused
        store = open_store("mail", f"imap://someone:secret-pw@127.0.0.1:{port}/")
        with pytest.raises(StoreUnavailable, match="connection refused") as failed:
            store.ping()
    assert "secret-pw" not in str(failed.value)


def test_imap_url_rules(monkeypatch: pytest.MonkeyPatch, imap_server: ImapServer,
                        imap_user: str) -> None:  # fmt: skip
    with pytest.raises(StoreError, match=r"plain IMAP is allowed on 127\.0\.0\.1/localhost only"):
        open_store("mail", "imap://a:pw@mail.example.net/")
    with pytest.raises(StoreError, match="verify=false is allowed"):
        open_store("mail", "imaps://a:pw@mail.example.net/?verify=false")
    with pytest.raises(StoreError, match="unknown URL option 'internal_domain'"):
        open_store("mail", "imaps://a:pw@mail.example.net/?internal_domain=x.com")
    shown = open_store("mail", "imaps://a:s3cret@mail.example.net:993/").display_url
    assert "s3cret" not in shown and "***" in shown
    by_env = f"imap://{imap_user}@127.0.0.1:{imap_server.port}/?password_env=TENURE_TEST_IMAP_PW"
    with pytest.raises(StoreError, match="TENURE_TEST_IMAP_PW is not set"):
        open_store("mail", by_env).ping()
    monkeypatch.setenv("TENURE_TEST_IMAP_PW", PASSWORD)
    assert open_store("mail", by_env).collections() == ["inbox"]


# the conformance suite, with a message per record: the record's text is its subject,
# its group its body


def _record_mails(records: list[Record]) -> list[Mail]:
    from email.message import EmailMessage
    from email.utils import format_datetime

    out = []
    for i, r in enumerate(records):
        msg = EmailMessage()
        msg["From"] = f"person{i}@customer.example.org"
        msg["To"] = "team@example.com"
        msg["Subject"] = r.text
        msg["Date"] = format_datetime(r.clock)
        msg["Message-ID"] = f"<record-{i}@customer.example.org>"
        msg.set_content(r.group)
        out.append(Mail(f"r{i}", msg, r.clock, r.text, None, ()))
    return out


def _fixture(url: str, books: Path) -> ConformanceFixture:
    return ConformanceFixture(
        open=lambda read_only: open_connector(
            "mail", url, ConnectorOptions(read_only=read_only, bookkeeping_dir=books)
        ),
        collection="inbox",
        key=("message_key",),
        clock="sent_at",
        text="subject",
        group="body",
    )


class TestMaildirConformance(ConnectorConformance):
    CAPABILITIES = MailStore.capabilities

    @pytest.fixture
    def make_store(self, tmp_path: Path) -> Callable[[list[Record]], ConformanceFixture]:
        def make(records: list[Record]) -> ConformanceFixture:
            write_maildir(tmp_path / "Maildir", {"inbox": _record_mails(records)})
            return _fixture(f"maildir:///{tmp_path}/Maildir", tmp_path / "books")

        return make


class TestMboxConformance(ConnectorConformance):
    CAPABILITIES = MailStore.capabilities

    @pytest.fixture
    def make_store(self, tmp_path: Path) -> Callable[[list[Record]], ConformanceFixture]:
        def make(records: list[Record]) -> ConformanceFixture:
            write_mbox(tmp_path / "inbox.mbox", _record_mails(records))
            return _fixture(f"mbox:///{tmp_path}/inbox.mbox", tmp_path / "books")

        return make


class TestImapConformance(ConnectorConformance):
    CAPABILITIES = MailStore.capabilities

    @pytest.fixture
    def make_store(
        self, tmp_path: Path, imap_server: ImapServer, imap_user: str
    ) -> Callable[[list[Record]], ConformanceFixture]:
        def make(records: list[Record]) -> ConformanceFixture:
            conn = imap_login("127.0.0.1", imap_server.port, imap_user, PASSWORD)
            fill_imap(conn, {"inbox": _record_mails(records)})
            conn.logout()
            return _fixture(imap_server.url(imap_user), tmp_path / "books")

        return make


def test_sent_at_falls_back_to_the_delivery_time(tmp_path: Path) -> None:
    mail = business_mails()[0]
    del mail.message["Date"]
    write_maildir(tmp_path, {"inbox": [mail]})
    write_mbox(tmp_path / "box.mbox", [mail])
    for url in (f"maildir:///{tmp_path}", f"mbox:///{tmp_path}/box.mbox"):
        store = open_store("mail", url)
        (collection,) = store.collections()
        sent = scan_all(store, collection, ["sent_at"])["sent_at"].iloc[0]
        assert abs(sent - pd.Timestamp(mail.sent_at)) < timedelta(seconds=1)
