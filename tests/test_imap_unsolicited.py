"""What the IMAP store (``connectors.mail.imap``) reads of a message while another mail
program changes other messages of the folder.

A server tells every connection that has a folder selected of the flag changes other
clients make, with an unsolicited ``FETCH`` response named by the message's *sequence
number* and carrying no UID (RFC 3501 7.4.2). Such a response arrives in the middle of
the store's own ``UID FETCH``; it must never be read as news of the asked message whose
UID happens to equal that number. Here UIDs 1 and 2 are expunged, so UIDs 3, 4 and 5 sit
at sequence numbers 1, 2 and 3: a flag change of UID 5 is sent as ``* 3 FETCH (FLAGS
...)``, the number of UID 3.

The folder is filled and changed with the standard library's imaplib, a second
connection: the test's view of the server owes nothing to the code under test.
"""

from __future__ import annotations

import imaplib
import re
import tomllib
from collections.abc import Iterator

import imapclient
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from imapclient.imapclient import join_message_ids, seq_to_parenstr_upper
from imapclient.response_parser import parse_fetch_response

from connectors.mail.imap import ImapStore, by_uid
from connectors.mail.mailboxes import open_store
from tests.support.imap_server import PASSWORD, ImapServer
from tests.support.mail_fixtures import imap_login, imap_messages
from tests.support.paths import REPO

#: Flags another mail program gives UID 5 while the store is at work.
OTHERS = r"(\Flagged \Deleted $Elsewhere)"


def _message(n: int) -> bytes:
    return (
        f"From: Ana Souza <ana.souza@cliente.example.br>\r\nTo: sales@example.com\r\n"
        f"Date: Tue, 14 Mar 2023 09:2{n}:00 +0000\r\nMessage-ID: <m{n}@cliente.example.br>\r\n"
        f"Subject: Message {n}\r\n\r\nPlease call me at 416-555-014{n}.\r\n"
    ).encode()


@pytest.fixture
def other(imap_server: ImapServer, imap_user: str) -> Iterator[imaplib.IMAP4]:
    """Another mail program's connection to a folder of five messages, of which UIDs 1
    and 2 are expunged: UID 3 (\\Seen, its own flag) is sequence number 1, UID 5 is 3."""
    conn = imap_login("127.0.0.1", imap_server.port, imap_user, PASSWORD)
    for n in range(1, 6):
        assert conn.append("INBOX", None, None, _message(n))[0] == "OK"
    conn.select("INBOX")
    conn.uid("STORE", "1:2", "+FLAGS", r"(\Deleted)")
    conn.expunge()
    conn.uid("STORE", "3", "+FLAGS", r"(\Seen)")
    _, found = conn.fetch("1:*", "(UID)")
    assert found == [b"1 (UID 3)", b"2 (UID 4)", b"3 (UID 5)"]
    yield conn
    conn.logout()


def _store(server: ImapServer, user: str) -> ImapStore:
    store = open_store("mail", server.url(user), read_only=False)
    assert isinstance(store, ImapStore)
    return store


def _flags(conn: imaplib.IMAP4) -> dict[str, set[bytes]]:
    """Each message's flags on the server, by subject."""
    out = {}
    for flags, raw in imap_messages(conn, "INBOX"):
        subject = next(line for line in raw.split(b"\r\n") if line.startswith(b"Subject: "))
        listed = flags[flags.index(b"FLAGS (") + 7 :].split(b")")[0]
        out[subject[9:].decode()] = set(listed.split())
    return out


def test_a_flag_change_of_another_message_is_not_read_as_the_asked_ones(
    imap_server: ImapServer, imap_user: str, other: imaplib.IMAP4
) -> None:
    store = _store(imap_server, imap_user)
    store._select("INBOX", write=False)
    assert other.uid("STORE", "5", "+FLAGS", OTHERS)[0] == "OK"
    (got,) = store._fetch([3], ["FLAGS", "INTERNALDATE"])
    assert (got.uid, set(got.flags)) == (3, {b"\\Seen"})

    # the asked message's own change, sent the same way, is its own
    assert other.uid("STORE", "3", "+FLAGS", r"(\Answered)")[0] == "OK"
    (got,) = store._fetch([3], ["FLAGS"])
    assert set(got.flags) == {b"\\Seen", b"\\Answered"}
    store.close()


def test_an_update_copies_the_messages_own_flags(
    imap_server: ImapServer, imap_user: str, other: imaplib.IMAP4
) -> None:
    """The rewrite of UID 3 is appended with UID 3's flags, whatever another mail
    program did to UID 5 while the store was reading the folder."""
    store = _store(imap_server, imap_user)
    frames = list(store.scan("inbox", ["subject"], 100))
    keys = dict(zip(frames[0]["subject"], frames[0]["message_key"], strict=True))
    client = store._connect()
    search = client.search

    def search_then_other_flags_uid_5(*args: object) -> object:
        found = search(*args)
        assert other.uid("STORE", "5", "+FLAGS", OTHERS)[0] == "OK"
        return found

    client.search = search_then_other_flags_uid_5  # the folder is selected, UIDs listed
    changed = pd.DataFrame({"subject": ["[redacted]"]})
    assert store.update("inbox", [(keys["Message 3"],)], changed) == 1
    store.close()
    assert _flags(other) == {
        "[redacted]": {b"\\Seen"},
        "Message 4": set(),
        "Message 5": {b"\\Flagged", b"\\Deleted", b"$Elsewhere"},
    }


def test_responses_left_from_an_earlier_command_are_not_read(
    imap_server: ImapServer, imap_user: str, other: imaplib.IMAP4
) -> None:
    """A flag change reported during an earlier command, before an expunge renumbered
    the folder, names a message by a number that now belongs to another."""
    store = _store(imap_server, imap_user)
    store._select("INBOX", write=False)
    assert other.uid("STORE", "5", "+FLAGS", r"(\Flagged)")[0] == "OK"  # UID 5: number 3
    assert other.append("INBOX", None, None, _message(6))[0] == "OK"  # UID 6: number 4
    other.uid("STORE", "3", "+FLAGS", r"(\Deleted)")
    other.expunge()  # UID 5 is number 2, UID 6 number 3
    assert store._uids("ALL") == [3, 4, 5]  # answered as before, then told of the changes
    assert store._uids("ALL") == [4, 5, 6]
    (got,) = store._fetch([6], ["UID", "INTERNALDATE"])
    assert (got.uid, got.flags) == (6, ())
    store.close()


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_each_asked_uid_gets_what_was_said_of_its_own_number(data: st.DataObject) -> None:
    """Whatever the folder, the UIDs asked (some gone since) and the unsolicited FETCH
    responses mixed into the answer: each asked message present gets the items the last
    response naming *its* sequence number gave, never another message's; messages not
    asked, or gone, are not returned."""
    uids = sorted(data.draw(st.sets(st.integers(1, 60), min_size=1, max_size=8)))
    present = data.draw(st.lists(st.sampled_from(uids), unique=True))
    gone = data.draw(st.sets(st.integers(61, 70), max_size=2))
    stream = [
        (seq, f"{seq} (UID {uid} FLAGS (\\Seen $uid{uid}))")
        for seq, uid in enumerate(uids, start=1)
        if uid in present
    ]
    for n in range(data.draw(st.integers(0, 6))):
        seq = data.draw(st.integers(1, len(uids) + 2), label="unsolicited number")
        at = data.draw(st.integers(0, len(stream)), label="where")
        stream.insert(at, (seq, f"{seq} (FLAGS (\\Flagged $news{n}))"))
    asked = [*present, *gone]
    found = by_uid([line.encode() for _, line in stream], asked, normalise_times=False)
    assert sorted(found) == sorted(present)
    for uid, items in found.items():
        seq = uids.index(uid) + 1
        last = [line for number, line in stream if number == seq][-1]
        flags = last[last.index("FLAGS (") + 7 : -2].encode().split()
        assert (items[b"UID"], items[b"SEQ"], list(items[b"FLAGS"])) == (uid, seq, flags)


def test_the_pinned_imapclient_has_the_shape_uid_fetch_relies_on(
    imap_server: ImapServer, imap_user: str
) -> None:
    """``connectors.mail.imap.uid_fetch`` sends the command through IMAPClient's imaplib
    connection and parses the answer with IMAPClient's parser, by number: a new version
    of the library that changes any of it fails here first, by name."""
    dependencies = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    (pin,) = [d for d in dependencies if re.match(r"imapclient\b", d, re.IGNORECASE)]
    assert pin.replace(" ", "").lower() == f"imapclient=={imapclient.__version__}"

    assert join_message_ids([3, 500]) == b"3,500"
    assert seq_to_parenstr_upper(["flags", "BODY.PEEK[]"]) == "(FLAGS BODY.PEEK[])"
    parsed = parse_fetch_response(
        [b"1 (UID 3 FLAGS ())", b"3 (FLAGS (\\Seen))", b"1 (FLAGS (\\Answered))"],
        False,
        uid_is_key=False,
    )
    assert dict(parsed) == {
        1: {b"SEQ": 1, b"UID": 3, b"FLAGS": (b"\\Answered",)},
        3: {b"SEQ": 3, b"FLAGS": (b"\\Seen",)},
    }

    store = _store(imap_server, imap_user)
    connection = store._connect()._imap
    assert isinstance(connection, imaplib.IMAP4)
    store._select("INBOX", write=False)
    assert connection.response("FETCH") == ("FETCH", [None])
    asked = join_message_ids([1]), seq_to_parenstr_upper(["FLAGS"])  # as uid_fetch sends
    assert connection.uid("FETCH", *asked) == ("OK", [None])  # an empty folder
    store.close()
