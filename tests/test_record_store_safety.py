"""Stores without SQL stay safe when others touch them (issue 12: findings 2, 3-mail, 7).

- Two real ``tenure run`` processes of one policy, started from two working folders,
  share the store's lock: exactly the expired rows go, each deletion is audited once.
- A file changed by "the application" after a pass chose its rows is judged again:
  row numbers read from the old file are never applied to the new one.
- Mail keys are unique by construction: three messages sharing a Message-ID (one old,
  one recent, one held) are three records, and only the old one goes; two Maildir files
  with one unique name are reported, never marked done unprocessed.
- Symbolic links inside a store are reported and never followed, replaced or unlinked.
- A full disk fails that binding alone, in one line naming the store and the file, with
  no temporary file left; the other bindings run. A read-only folder is found by the
  preflight (issue 13, item 7): the run stops before any write, in any store.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.errors import StoreError
from connectors.mail.messages import message_key, rebuild
from connectors.protocol import ChunkWork, Connector, ConnectorOptions, ExpirySelection
from connectors.records.connector import RecordConnector
from connectors.registry import open_connector
from flows.run.lifecycle import run_policy
from flows.run.types import RunOptions
from tests.support.imap_server import PASSWORD, ImapServer
from tests.support.mail_fixtures import imap_login, write_mbox

REPO = Path(__file__).resolve().parent.parent
TENURE = REPO / ".venv" / "bin" / "tenure"
NOW = datetime(2026, 11, 1, tzinfo=UTC)
OLD = datetime(2020, 3, 1, 9, 30, tzinfo=UTC)
RECENT = datetime(2026, 10, 1, 9, 30, tzinfo=UTC)
CUTOFF = datetime(2025, 11, 1, tzinfo=UTC)


# --------------------------------------------------------------------------- helpers


def policy_yaml(stores: dict[str, str], datasets: str, holds: str = "") -> str:
    return (
        "version: 1\nname: safety\ntimezone: UTC\n"
        "scan: {on_coverage_gap: warn}\n"
        "categories:\n"
        "  contact.email: {description: E-mail, identifier: direct}\n"
        "  usage.amount: {description: An amount, identifier: none}\n"
        "purposes:\n  security: {description: Fraud., legal_basis: legitimate_interest, "
        "min_retention: 6 months, max_retention: 2 years}\n"
        "stores:\n"
        + "".join(f"  {name}: '{url}'\n" for name, url in stores.items())
        + "datasets:"
        + datasets
        + ("\nholds:" + holds if holds else "")
        + "\n"
    )


def binding(
    name: str,
    store: str,
    table: str,
    key: str,
    clock: str,
    columns: str,
    subject: str,
    action: str = "delete",
) -> str:
    return f"""
  - name: {name}
    store: {store}
    table: {table}
    purpose: security
    primary_key: [{key}]
    subject_key: {subject}
    columns: {{{columns}}}
    clock: {{column: {clock}}}
    retention: 1 year
    action: {action}"""


def csv_rows(count: int, start: int, *, expired_every: int = 2) -> str:
    """``count`` rows; every ``expired_every``-th (from the first) is old, the rest recent.
    Each row's ``amount`` is unique, so a row that went can be told from one that stayed."""
    lines = ["at,amount,account"]
    for i in range(count):
        at = OLD if i % expired_every == 0 else RECENT
        lines.append(f"{at.isoformat()},{start + i},{(start + i) % 97}")
    return "\n".join(lines) + "\n"


def amounts(root: Path) -> set[int]:
    found: set[int] = set()
    for path in sorted(root.rglob("*.csv")):
        for line in path.read_text().splitlines()[1:]:
            found.add(int(line.split(",")[1]))
    return found


def expired_amounts(files: int, rows: int, *, expired_every: int = 2) -> set[int]:
    return {f * rows + i for f in range(files) for i in range(rows) if i % expired_every == 0}


def drain(
    connector: Connector,
    selection: ExpirySelection,
    *,
    label: str = "events",
    action: Any = "delete",
    limit: int = 1,
    run_id: str = "run-1",
    between: Any = None,
) -> tuple[int, int]:
    """Every chunk of a pass; ``between(chunk_no)`` runs after each chunk."""
    after, rows, chunks = None, 0, 0
    while True:
        result = connector.execute_chunk(
            ChunkWork(run_id, label, chunks + 1, selection, after, limit, action)
        )
        if result.last is None:
            return rows, chunks
        rows, chunks, after = rows + result.rows, chunks + 1, result.last
        if between is not None:
            between(chunks)


def files_connector(root: Path, books: Path | None = None) -> RecordConnector:
    connector = open_connector(
        "logs", f"files:///{root}", ConnectorOptions(read_only=False, bookkeeping_dir=books)
    )
    assert isinstance(connector, RecordConnector)
    return connector


def mail(
    subject: str, sent_at: datetime, sender: str, *, message_id: str | None, text: str
) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = "sales@example.com"
    msg["Subject"] = subject
    msg["Date"] = format_datetime(sent_at)
    if message_id is not None:
        msg["Message-ID"] = message_id
    msg.set_content(text)
    return msg


def three_sharing_one_id() -> list[EmailMessage]:
    """One old, one recent and one held message (by its sender), one Message-ID."""
    shared = "<same@sender.example>"
    return [
        mail(
            "Old quote",
            OLD,
            "old.customer@client.example",
            message_id=shared,
            text="Call me at 416-555-0001.",
        ),
        mail(
            "Recent quote",
            RECENT,
            "new.customer@client.example",
            message_id=shared,
            text="Call me at 416-555-0002.",
        ),
        mail(
            "Disputed invoice",
            OLD,
            "disputed@client.example",
            message_id=shared,
            text="Call me at 416-555-0003.",
        ),
    ]


HELD_SENDER = """
  - name: dispute
    reason: Litigation about an invoice
    expires: 2030-01-01
    datasets: [mail]
    where: [{column: from_address, op: eq, value: disputed@client.example}]"""


def run(policy: Path, tmp_path: Path, **options: Any) -> Any:
    state = f"sqlite:///{tmp_path / 'state.sqlite'}"
    return run_policy(policy, RunOptions(now=NOW, state_url=state, coverage_gate=False, **options))


# --------------------------------------------------------------------------- finding 2


def test_bookkeeping_belongs_to_the_store_not_the_working_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whatever folder a run starts from, a local store's lock and journal are in one
    place inside it (a name the store never reads as data); a remote store's are in one
    per-machine folder keyed by its password-free URL."""
    from connectors.mail.mailboxes import open_store

    root = tmp_path / "logs"
    (root / "events").mkdir(parents=True)
    (root / "events" / "a.csv").write_text(csv_rows(4, 0))
    homes = set()
    for folder in ("one", "two"):
        (tmp_path / folder).mkdir()
        monkeypatch.chdir(tmp_path / folder)
        connector = files_connector(Path("..") / "logs")
        with connector.exclusive("tenure:safety") as mine:
            assert mine
            other = files_connector(root.resolve())
            with other.exclusive("tenure:safety") as theirs:
                assert not theirs  # one lock, wherever the run started
            other.close()
        homes.add(connector.bookkeeping_path)
        connector.close()
    assert len(homes) == 1
    home = homes.pop()
    assert home.is_relative_to(root.resolve())
    assert files_connector(root).table_names() == ["events"]  # not a collection
    state = tmp_path / "state-home"
    monkeypatch.setenv("XDG_STATE_HOME", str(state))
    secret = "s3cret-pw"
    imap = RecordConnector(open_store("m", f"imap://u:{secret}@127.0.0.1:1/"))
    again = RecordConnector(open_store("other", f"imap://u:{secret}x@127.0.0.1:1/"))
    assert imap.bookkeeping_path == again.bookkeeping_path  # one store, any alias, any password
    assert imap.bookkeeping_path.is_relative_to(state) and secret not in str(imap.bookkeeping_path)


def test_bookkeeping_left_where_an_earlier_version_kept_it_stops_the_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Earlier versions kept a store's journal, marks and pending intents in
    ``tenure-bookkeeping/`` beside the state database; ignored, a pending intent would
    never be replayed. The store's bindings stop, naming where to move it; nothing else
    is touched and the other stores run."""
    from flows.run.lifecycle import run_policy
    from flows.run.types import RunOptions

    root = tmp_path / "logs"
    (root / "events").mkdir(parents=True)
    (root / "events" / "a.csv").write_text(csv_rows(4, 0))
    other = tmp_path / "other"
    (other / "events").mkdir(parents=True)
    (other / "events" / "a.csv").write_text(csv_rows(4, 100))
    monkeypatch.chdir(tmp_path)  # the state database's folder, for a policy without SQLite
    earlier = tmp_path / "tenure-bookkeeping" / "logs.bookkeeping.sqlite"
    earlier.parent.mkdir()
    earlier.write_bytes(b"")
    policy = tmp_path / "policy.yaml"
    columns = "amount: usage.amount"
    policy.write_text(
        policy_yaml(
            {"logs": f"files:///{root}", "other": f"files:///{other}"},
            binding("logs", "logs", "events", "source_file, row_number", "at", columns, "account")
            + binding(
                "other", "other", "events", "source_file, row_number", "at", columns, "account"
            ),
        )
    )
    before = amounts(root)
    options = RunOptions(now=NOW, state_url=f"sqlite:///{tmp_path / 's.sqlite'}")
    report = run_policy(policy, options)
    outcome = {o.dataset: o for o in report.outcomes}
    assert outcome["logs"].error is not None
    assert str(earlier) in outcome["logs"].error and "move it to" in outcome["logs"].error
    assert amounts(root) == before
    assert outcome["other"].error is None and outcome["other"].processed == 2


def test_two_concurrent_runs_from_two_folders_delete_only_the_expired_rows(
    tmp_path: Path,
) -> None:
    """Issue 12, finding 2: two ``tenure run`` processes of one policy, from two working
    folders (so two state databases), against one CSV store of 40,000 rows."""
    files, rows = 20, 2_000
    root = tmp_path / "store"
    (root / "events").mkdir(parents=True)
    for f in range(files):
        (root / "events" / f"part-{f:03}.csv").write_text(csv_rows(rows, f * rows))
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        policy_yaml(
            {"logs": f"files:///{root}"},
            binding(
                "events",
                "logs",
                "events",
                "source_file, row_number",
                "at",
                "amount: usage.amount",
                "account",
            ),
        )
    )
    everything = set(range(files * rows))
    expired = expired_amounts(files, rows)
    children = []
    for folder in ("night-a", "night-b"):
        (tmp_path / folder).mkdir()
        children.append(
            subprocess.Popen(
                [
                    str(TENURE),
                    "run",
                    str(policy),
                    "--now",
                    NOW.isoformat(),
                    "--chunk-size",
                    "500",
                    "--json",
                ],
                cwd=tmp_path / folder,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env={**os.environ, "PREFECT_LOGGING_LEVEL": "WARNING"},
            )
        )
    deleted = 0
    codes = []
    for child in children:
        out, err = child.communicate(timeout=600)
        codes.append(child.returncode)
        assert child.returncode in (0, 3), err.decode()[-2000:]
        if child.returncode == 0:
            report = json.loads(out)
            deleted += sum(d.get("deleted", 0) for d in report["datasets"])
        else:
            assert b"being run" in err or b"locked" in err or b"in progress" in err, err
    assert 0 in codes
    assert amounts(root) == everything - expired  # every kept row is still there
    assert deleted == len(expired)  # audited once in total


def test_a_file_changed_after_its_rows_were_chosen_is_judged_again(tmp_path: Path) -> None:
    """The pass chooses rows from two files; before the second file's chunk, the
    application inserts a recent row at its top and removes an old one. The old row
    numbers must not be applied: the file is judged again and only its expired rows go."""
    root = tmp_path / "store"
    (root / "events").mkdir(parents=True)
    (root / "events" / "a.csv").write_text(csv_rows(6, 0))
    (root / "events" / "b.csv").write_text(csv_rows(6, 100))
    connector = files_connector(root, tmp_path / "books")
    selection = ExpirySelection("events", "at", CUTOFF, primary_key=("source_file", "row_number"))

    def application(chunk: int) -> None:
        if chunk == 1:
            path = root / "events" / "b.csv"
            header, *lines = path.read_text().splitlines()
            lines = [f"{RECENT.isoformat()},999,1", *lines[1:]]  # 100 (old) gone, 999 new
            path.write_text("\n".join([header, *lines]) + "\n")

    done, chunks = drain(connector, selection, between=application)
    connector.close()
    assert amounts(root) == {1, 3, 5, 101, 103, 105, 999}
    assert done == 3 + 2 and chunks == 2  # 0, 2, 4 and then 102, 104: what really went


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    edits=st.lists(
        st.tuples(st.integers(0, 7), st.sampled_from(["old", "new", "drop"])), max_size=5
    )
)
def test_whatever_the_application_does_between_chunks_only_expired_rows_go(
    tmp_path_factory: pytest.TempPathFactory, edits: list[tuple[int, str]]
) -> None:
    """For any edits of the not-yet-processed file between two chunks (rows inserted old
    or recent, rows removed), every row that goes was expired when it went, every
    expired row still in the file at that time goes, and the count is what went."""
    tmp_path = tmp_path_factory.mktemp("edits")
    root = tmp_path / "store"
    (root / "events").mkdir(parents=True)
    (root / "events" / "a.csv").write_text(csv_rows(4, 0))
    (root / "events" / "b.csv").write_text(csv_rows(8, 100))
    connector = files_connector(root, tmp_path / "books")
    selection = ExpirySelection("events", "at", CUTOFF, primary_key=("source_file", "row_number"))
    added = iter(range(1000, 2000))
    before: set[int] = set()
    old_after_edit: set[int] = set()

    def application(chunk: int) -> None:
        if chunk != 1:
            return
        path = root / "events" / "b.csv"
        header, *lines = path.read_text().splitlines()
        for position, kind in edits:
            spot = min(position, len(lines))
            if kind == "drop":
                if lines:
                    del lines[min(spot, len(lines) - 1)]
                continue
            at = OLD if kind == "old" else RECENT
            lines.insert(spot, f"{at.isoformat()},{next(added)},1")
        path.write_text("\n".join([header, *lines]) + ("\n" if lines else ""))
        before.update(amounts(root))
        for line in lines:
            at, amount, _ = line.split(",")
            if at == OLD.isoformat():
                old_after_edit.add(int(amount))

    done, _ = drain(connector, selection, between=application)
    connector.close()
    left = amounts(root)
    assert left == before - old_after_edit - {0, 2}
    assert done == 2 + len(old_after_edit)


# --------------------------------------------------------------------------- finding 3


def test_message_keys_tell_apart_messages_sharing_a_message_id() -> None:
    first, second, third = (m.as_bytes() for m in three_sharing_one_id())
    keys = {message_key(first), message_key(second), message_key(third)}
    assert len(keys) == 3
    # stable across Tenure's own redaction, and across a mail program's status headers
    key = message_key(first)
    redacted = rebuild(first, {"subject": "[redacted]", "from_address": None, "body": "x"}, key)
    assert message_key(redacted) == key
    assert message_key(b"Status: RO\n" + first) == key
    assert message_key(first.replace(b"\n", b"\r\n")) == key  # an IMAP server's line ends


@pytest.mark.parametrize("kind", ["mbox", "imap"])
def test_duplicate_message_ids_old_recent_held_only_the_old_one_goes(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 12, finding 3: three messages share a Message-ID; before, the first one's
    headers judged all three and all three went while the audit said 1."""
    messages = three_sharing_one_id()
    if kind == "mbox":
        path = tmp_path / "mail" / "inbox.mbox"
        path.parent.mkdir()
        write_mbox(path, [_Mail(m) for m in messages])
        url = f"mbox:///{path}"

        def left() -> list[str]:
            import mailbox

            box = mailbox.mbox(str(path))
            try:
                return sorted(str(box.get_message(k)["Subject"]) for k in box.iterkeys())
            finally:
                box.close()
    else:
        server: ImapServer = request.getfixturevalue("imap_server")
        user: str = request.getfixturevalue("imap_user")
        conn = imap_login("127.0.0.1", server.port, user, PASSWORD)
        for message in messages:
            assert conn.append("INBOX", None, None, message.as_bytes())[0] == "OK"
        url = server.url(user)

        def left() -> list[str]:
            from email import message_from_bytes

            conn.select("INBOX", readonly=True)
            _, data = conn.uid("FETCH", "1:*", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
            found = [message_from_bytes(i[1]) for i in data if isinstance(i, tuple)]
            return sorted(str(m["Subject"]) for m in found)

    policy = tmp_path / "policy.yaml"
    policy.write_text(
        policy_yaml(
            {"mailbox": url},
            binding(
                "mail",
                "mailbox",
                "inbox",
                "message_key",
                "sent_at",
                "from_address: contact.email",
                "from_address",
            ),
            HELD_SENDER,
        )
    )
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state-home"))  # IMAP's bookkeeping
    report = run(policy, tmp_path)
    outcome = report.outcomes[0]
    assert outcome.error is None
    assert left() == ["Disputed invoice", "Recent quote"]
    assert outcome.processed == 1 and outcome.expired == 1 and outcome.held == 1


def test_a_maildir_unique_name_used_twice_is_reported_never_marked(tmp_path: Path) -> None:
    """Two files with one unique part (one in new/, one in cur/ with flags): both are
    reported as a duplicate key; neither is anonymized nor marked, so the next run
    reports them again instead of calling them done."""
    root = tmp_path / "Maildir"
    for sub in ("cur", "new", "tmp"):
        (root / sub).mkdir(parents=True)
    first, second, _ = three_sharing_one_id()
    (root / "new" / "1700000000.M1P1.host").write_bytes(first.as_bytes())
    (root / "cur" / "1700000000.M1P1.host:2,S").write_bytes(second.as_bytes())
    other = mail("Another", OLD, "x@client.example", message_id="<x@y>", text="Hi 514-555-0100")
    (root / "cur" / "1700000001.M2P1.host:2,S").write_bytes(other.as_bytes())
    for path in (root / "cur").iterdir():
        os.utime(path, (OLD.timestamp(), OLD.timestamp()))
    connector = open_connector(
        "mail",
        f"maildir:///{root}",
        ConnectorOptions(read_only=False, bookkeeping_dir=tmp_path / "books"),
    )
    selection = ExpirySelection(
        "inbox", "sent_at", NOW, primary_key=("message_key",), skip_marked="mail"
    )
    for expired in (1, 0):  # the second run: the other message is done, the pair is not
        counts = connector.count_expiry(selection)
        assert counts.skipped == {"duplicate key": 2}
        assert counts.expired == expired and counts.total == 1
        assert _anonymize(connector, selection, _redact_subject()) == expired
    connector.close()
    texts = sorted(p.read_bytes() for p in root.rglob("*") if p.is_file())
    assert (
        sum(b"Old quote" in t for t in texts) == 1 and sum(b"Recent quote" in t for t in texts) == 1
    )


# --------------------------------------------------------------------------- finding 7


def test_symlinks_inside_a_store_are_reported_never_followed(tmp_path: Path) -> None:
    """A symlinked message file and a symlinked partition file: their targets (holding
    personal data) stay, the links stay, nothing is audited as deleted for them, and the
    run reports each as skipped."""
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    # a Maildir with one real old message and one symlinked old message
    root = tmp_path / "Maildir"
    for sub in ("cur", "new", "tmp"):
        (root / sub).mkdir(parents=True)
    old, _, _ = three_sharing_one_id()
    (root / "cur" / "1700000000.M1P1.host:2,S").write_bytes(old.as_bytes())
    target = outside / "message.eml"
    other = mail("Linked", OLD, "linked@client.example", message_id="<l@x>", text="SIN 046 454 286")
    target.write_bytes(other.as_bytes())
    (root / "cur" / "1700000002.M3P1.host:2,S").symlink_to(target)
    # a files store whose partition file is a link to a file elsewhere
    logs = tmp_path / "logs" / "events" / "date=2020-03-01"
    logs.mkdir(parents=True)
    (logs / "part-0.csv").write_text(csv_rows(4, 0, expired_every=1))
    linked = outside / "part-1.csv"
    linked.write_text(csv_rows(4, 100, expired_every=1))
    (logs / "part-1.csv").symlink_to(linked)
    linked_dir = tmp_path / "logs" / "events" / "date=2020-03-02"
    linked_dir.symlink_to(outside)  # a whole partition folder that is a link
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        policy_yaml(
            {"mailbox": f"maildir:///{root}", "logs": f"files:///{tmp_path / 'logs'}"},
            binding(
                "mail",
                "mailbox",
                "inbox",
                "message_key",
                "sent_at",
                "from_address: contact.email",
                "from_address",
            )
            + binding(
                "events",
                "logs",
                "events",
                "source_file, row_number",
                "at",
                "amount: usage.amount",
                "account",
            ),
        )
    )
    target_bytes, linked_bytes = target.read_bytes(), linked.read_bytes()
    report = run(policy, tmp_path)
    outcomes = {o.dataset: o for o in report.outcomes}
    assert outcomes["mail"].error is None and outcomes["events"].error is None
    assert outcomes["mail"].processed == 1 and outcomes["events"].processed == 4
    assert outcomes["mail"].skipped == {"symbolic link": 1}
    assert outcomes["events"].skipped == {"symbolic link": 2}
    assert target.read_bytes() == target_bytes and linked.read_bytes() == linked_bytes
    assert (root / "cur" / "1700000002.M3P1.host:2,S").is_symlink()
    assert (logs / "part-1.csv").is_symlink() and linked_dir.is_symlink()
    assert report.outcomes[0].summary()["skipped"] == {"symbolic link": 1}


def test_a_symlinked_mbox_is_reported_and_never_replaced(tmp_path: Path) -> None:
    """In an mbox directory, a ``*.mbox`` that is a link would be replaced by a rewrite
    (the target keeping the messages): reading it is an error naming it, the other
    boxes are worked through, and the target never changes."""
    folder = tmp_path / "mail"
    folder.mkdir()
    outside = tmp_path / "elsewhere.mbox"
    write_mbox(outside, [_Mail(m) for m in three_sharing_one_id()[:1]])
    write_mbox(folder / "inbox.mbox", [_Mail(m) for m in three_sharing_one_id()[:1]])
    (folder / "linked.mbox").symlink_to(outside)
    before = outside.read_bytes()
    connector = open_connector(
        "mail",
        f"mbox:///{folder}",
        ConnectorOptions(read_only=False, bookkeeping_dir=tmp_path / "books"),
    )
    assert connector.table_names() == ["inbox", "linked"]  # listed, so scans report it
    selection = ExpirySelection("inbox", "sent_at", NOW, primary_key=("message_key",))
    linked = ExpirySelection("linked", "sent_at", NOW, primary_key=("message_key",))
    with pytest.raises(StoreError, match=r"store 'mail' .*linked\.mbox is a symbolic link"):
        connector.count_expiry(linked)
    with pytest.raises(StoreError, match="symbolic link"):
        drain(connector, linked, label="linked", limit=10)
    assert connector.count_expiry(selection).expired == 1
    assert drain(connector, selection, label="mail", limit=10)[0] == 1
    connector.close()
    assert outside.read_bytes() == before and (folder / "linked.mbox").is_symlink()


# --------------------------------------------------------------------------- disk errors


def _two_bindings(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A Maildir binding that anonymizes, and a files binding that deletes."""
    root = tmp_path / "Maildir"
    for sub in ("cur", "new", "tmp"):
        (root / sub).mkdir(parents=True)
    old, _, _ = three_sharing_one_id()
    (root / "cur" / "1700000000.M1P1.host:2,S").write_bytes(old.as_bytes())
    logs = tmp_path / "logs" / "events"
    logs.mkdir(parents=True)
    (logs / "part-0.csv").write_text(csv_rows(4, 0))
    other = tmp_path / "other" / "events"
    other.mkdir(parents=True)
    (other / "part-0.csv").write_text(csv_rows(4, 0))
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        policy_yaml(
            {
                "mailbox": f"maildir:///{root}",
                "logs": f"files:///{tmp_path / 'logs'}",
                "other": f"files:///{tmp_path / 'other'}",
            },
            binding(
                "mail",
                "mailbox",
                "inbox",
                "message_key",
                "sent_at",
                "subject: contact.email",
                "from_address",
                action=ANONYMIZE,
            )
            + binding(
                "events",
                "logs",
                "events",
                "source_file, row_number",
                "at",
                "amount: usage.amount",
                "account",
            )
            + binding(
                "other_events",
                "other",
                "events",
                "source_file, row_number",
                "at",
                "amount: usage.amount",
                "account",
            ),
        )
    )
    return policy, root, logs


ANONYMIZE = "{type: anonymize, columns: {subject: {operator: redact}}}"


def test_a_full_disk_fails_that_binding_alone_and_leaves_no_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import connectors.files.atomic as atomic
    import connectors.mail.maildir as maildir_module

    policy, root, logs = _two_bindings(tmp_path)
    real_open = atomic._open_temp

    class Full:
        def __init__(self, path: str) -> None:
            self.inner = real_open(path)

        def write(self, data: bytes) -> int:
            self.inner.write(data[:3])
            raise OSError(errno.ENOSPC, "No space left on device")

        def __getattr__(self, name: str) -> Any:
            return getattr(self.inner, name)

    def full_maildir(path: Path, data: bytes) -> None:
        with path.open("wb") as out:
            out.write(data[:10])
        raise OSError(errno.ENOSPC, "No space left on device")

    def full_files(path: str) -> Any:
        return Full(path) if "/logs/" in path else real_open(path)

    monkeypatch.setattr(atomic, "_open_temp", full_files)
    monkeypatch.setattr(maildir_module, "_write_new", full_maildir)
    report = run(policy, tmp_path)
    outcomes = {o.dataset: o for o in report.outcomes}
    for name, where in (("mail", "1700000000.M1P1.host"), ("events", "events/part-0.csv")):
        error = outcomes[name].error
        assert error and len(error.splitlines()) == 1, error
        assert "No space left on device" in error and where in error, error
        assert outcomes[name].processed == 0
    assert outcomes["other_events"].error is None and outcomes["other_events"].processed == 2
    leftovers = [p for p in tmp_path.rglob("*") if "tenure-tmp" in p.name or p.suffix == ".tenure"]
    assert leftovers == []
    assert list((root / "tmp").iterdir()) == []
    assert b"Old quote" in next((root / "cur").iterdir()).read_bytes()  # untouched
    assert amounts(logs.parent) == set(range(4))


@contextlib.contextmanager
def read_only_folder(path: Path) -> Iterator[None]:
    """``path`` on a read-only filesystem (root: a tmpfs remounted read-only), or made
    read-only by its mode (anyone else)."""
    if os.geteuid() != 0:
        modes = {p: p.stat().st_mode for p in [path, *path.rglob("*")]}
        for p in [*path.rglob("*"), path]:
            if p.is_dir():
                p.chmod(0o555)
        try:
            yield
        finally:
            for p, mode in modes.items():
                p.chmod(mode)
        return
    staged = path.with_name(path.name + ".staged")
    path.rename(staged)
    path.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(path)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        path.rmdir()
        staged.rename(path)
        pytest.skip("cannot mount a read-only filesystem here: " + mounted.stderr.decode())
    try:
        subprocess.run(["cp", "-a", f"{staged}/.", str(path)], check=True)
        subprocess.run(["mount", "-o", "remount,ro", str(path)], check=True)
        yield
    finally:
        subprocess.run(["umount", str(path)], check=False)
        path.rmdir()
        staged.rename(path)


def test_a_read_only_store_stops_the_run_before_any_write(tmp_path: Path) -> None:
    """Known before the first write, a read-only store stops the whole run: the other
    bindings, which could run, do not either (they could need what it keeps)."""
    from retention_rules.issues import PolicyError

    policy, _, logs = _two_bindings(tmp_path)
    store = logs.parent
    other = tmp_path / "other"
    mail = sorted(p.read_bytes() for p in (tmp_path / "Maildir").rglob("*") if p.is_file())
    with read_only_folder(store):
        before = amounts(store)
        with pytest.raises(PolicyError) as raised:
            run(policy, tmp_path)
        assert amounts(store) == before
    problems = [str(issue) for issue in raised.value.issues]
    assert problems and all("stores.logs: not writable: " in p for p in problems), problems
    assert amounts(other) == set(range(4))
    assert sorted(p.read_bytes() for p in (tmp_path / "Maildir").rglob("*") if p.is_file()) == mail
    assert not (tmp_path / "state.sqlite").exists()


# --------------------------------------------------------------------------- small helpers


class _Mail:
    """What ``write_mbox`` needs of a test message."""

    def __init__(self, message: EmailMessage) -> None:
        self.message = message
        self.sent_at = OLD


def _redact_subject() -> Any:
    from connectors.protocol import ColumnRewrite

    return (ColumnRewrite("subject", transform=lambda s: s.map(lambda _: "[redacted]")),)


def _anonymize(connector: Connector, selection: ExpirySelection, rewrites: Any) -> int:
    after, rows, chunk = None, 0, 0
    while True:
        chunk += 1
        result = connector.execute_chunk(
            ChunkWork("r", "mail", chunk, selection, after, 10, "anonymize", "UTC", rewrites)
        )
        if result.last is None:
            return rows
        rows, after = rows + result.rows, result.last


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))
