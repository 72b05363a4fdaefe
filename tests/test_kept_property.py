"""The promise behind every nightly run, for all inputs: nothing kept is ever destroyed.

For random stores (records, their people and clocks, some exactly at the cut-off), a random
legal hold (sometimes lapsed) and a random ``now`` and chunk size, a real run of the engine
leaves every record that was held or not yet expired at ``now`` in place and unchanged,
and removes every other one, on every kind of store: SQLite, PostgreSQL, MariaDB, CSV and
Parquet files, Maildir, mbox and IMAP (Dovecot).
"""

from __future__ import annotations

import email
import mailbox
import tempfile
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from email.message import EmailMessage, Message
from email.utils import format_datetime, parsedate_to_datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import (
    Column,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    create_engine,
    insert,
    select,
)

from flows.run.lifecycle import run_policy
from flows.run.types import RunOptions
from retention_rules.clock import PolicyClock
from retention_rules.durations import Duration
from tests.support.imap_server import PASSWORD, ImapServer
from tests.support.mail_fixtures import imap_login, imap_messages
from tests.support.mariadb_server import MariaDBServer
from tests.support.pg_server import PostgresServer

ZONE = "America/Montreal"
RETENTION = "1 year"
SUBJECTS = 5


@dataclass(frozen=True)
class Row:
    id: int
    subject: int
    clock: datetime  # aware, UTC, whole seconds
    note: str


Snapshot = dict[int, tuple[int, datetime, str]]


@dataclass(frozen=True)
class Backend:
    """Writes rows into a fresh store in a folder; reads back what is left."""

    kind: str
    write: Callable[[Path, list[Row]], str]  # the store URL
    read: Callable[[str], Snapshot]
    table: str
    key: str
    subject: str
    clock: str
    columns: dict[str, str]


# --- SQL ----------------------------------------------------------------------------------


def _events(metadata: MetaData) -> Table:
    return Table(
        "events",
        metadata,
        Column("id", Integer, primary_key=True),
        Column("subject", Integer, nullable=False),
        Column("happened_at", DateTime(timezone=True), nullable=False),
        Column("note", String(40), nullable=False),
    )


def _sql_write(url: str, rows: list[Row]) -> str:
    engine = create_engine(url)
    events = _events(MetaData())
    events.create(engine)
    with engine.begin() as connection:
        connection.execute(
            insert(events),
            [
                {
                    "id": r.id,
                    "subject": r.subject,
                    "happened_at": _stored(url, r.clock),
                    "note": r.note,
                }
                for r in rows
            ],
        )
    engine.dispose()
    return url


def _stored(url: str, clock: datetime) -> datetime:
    """SQLite and MariaDB keep a naive UTC wall time (the store's ``naive_timezone`` is
    UTC)."""
    return clock if url.startswith("postgresql") else clock.replace(tzinfo=None)


def _sql_read(url: str) -> Snapshot:
    engine = create_engine(url)
    events = _events(MetaData())
    with engine.connect() as connection:
        found = {
            row.id: (row.subject, _utc(row.happened_at), row.note)
            for row in connection.execute(select(events))
        }
    engine.dispose()
    return found


def _utc(value: Any) -> datetime:
    moment = pd.Timestamp(value).to_pydatetime()
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


# --- files --------------------------------------------------------------------------------


def _files_write(fmt: str) -> Callable[[Path, list[Row]], str]:
    def write(folder: Path, rows: list[Row]) -> str:
        events = folder / "store" / "events"
        events.mkdir(parents=True)
        for part in (0, 1):  # two files: a chunk never splits one, a run may touch both
            chosen = [r for r in rows if r.id % 2 == part]
            frame = pd.DataFrame(
                {
                    "id": [r.id for r in chosen],
                    "subject": [r.subject for r in chosen],
                    "happened_at": pd.to_datetime([r.clock for r in chosen], utc=True),
                    "note": [r.note for r in chosen],
                }
            )
            path = events / f"part-{part}.{fmt}"
            if fmt == "csv":
                frame.to_csv(path, index=False, date_format="%Y-%m-%dT%H:%M:%S+00:00")
            else:
                frame.to_parquet(path, index=False)
        return f"files:///{folder / 'store'}"

    return write


def _files_read(url: str) -> Snapshot:
    events = Path(url.removeprefix("files://")) / "events"
    found: Snapshot = {}
    for path in sorted(events.glob("part-*")):
        if path.suffix == ".csv":
            frame = pd.read_csv(path, keep_default_na=False, dtype={"note": str})
        else:
            frame = pd.read_parquet(path)
        for row in frame.itertuples(index=False):
            found[int(row.id)] = (int(row.subject), _utc(row.happened_at), str(row.note))
    return found


# --- mailboxes ------------------------------------------------------------------------------


def _message(row: Row) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = f"person{row.subject}@customers.test"
    msg["To"] = "desk@example.com"
    msg["Subject"] = f"Order {row.id}"
    msg["Date"] = format_datetime(row.clock)
    msg["Message-ID"] = f"<m{row.id}@customers.test>"
    msg.set_content(row.note)
    return msg


def _mail_write(kind: str) -> Callable[[Path, list[Row]], str]:
    def write(folder: Path, rows: list[Row]) -> str:
        path = folder / ("maildir" if kind == "maildir" else "inbox.mbox")
        box: mailbox.Mailbox = (  # type: ignore[type-arg]
            mailbox.Maildir(path, create=True) if kind == "maildir" else mailbox.mbox(path)
        )
        for row in rows:
            box.add(_message(row))
        box.close()
        return f"{kind}:///{path}?internal_domains=example.com"

    return write


def _mail_read(url: str) -> Snapshot:
    kind, rest = url.split(":///", 1)
    path = rest.split("?", 1)[0]
    box: mailbox.Mailbox = (  # type: ignore[type-arg]
        mailbox.Maildir(path, create=False) if kind == "maildir" else mailbox.mbox(path)
    )
    try:
        return _snapshot(iter(box))
    finally:
        box.close()


def _snapshot(messages: Iterable[Message]) -> Snapshot:
    found: Snapshot = {}
    for msg in messages:
        ident = int(str(msg["Message-ID"]).strip("<>").split("@")[0][1:])
        subject = int(str(msg["From"]).split("@")[0].removeprefix("person"))
        payload = msg.get_payload(decode=True)
        note = payload.decode().rstrip("\n") if isinstance(payload, bytes) else ""
        found[ident] = (subject, parsedate_to_datetime(str(msg["Date"])).astimezone(UTC), note)
    return found


def _imap_write(server: ImapServer) -> Callable[[Path, list[Row]], str]:
    def write(_folder: Path, rows: list[Row]) -> str:
        user = server.new_user()
        conn = imap_login("127.0.0.1", server.port, user, PASSWORD)
        for row in rows:
            status, _ = conn.append('"INBOX"', None, row.clock, _message(row).as_bytes())
            assert status == "OK"
        conn.logout()
        return f"{server.url(user)}?internal_domains=example.com"

    return write


def _imap_read(server: ImapServer) -> Callable[[str], Snapshot]:
    def read(url: str) -> Snapshot:
        user = url.split("://", 1)[1].split(":", 1)[0]
        conn = imap_login("127.0.0.1", server.port, user, PASSWORD)
        try:
            raw = [message for _, message in imap_messages(conn, "INBOX")]
        finally:
            conn.logout()
        return _snapshot(email.message_from_bytes(message) for message in raw)

    return read


_SQL_FIELDS = {"table": "events", "key": "id", "subject": "subject", "clock": "happened_at"}
_FILE_FIELDS = {
    "table": "events",
    "key": "[source_file, row_number]",
    "subject": "subject",
    "clock": "happened_at",
}
_MAIL_FIELDS = {
    "table": "inbox",
    "key": "message_key",
    "subject": "correspondent",
    "clock": "sent_at",
}


def _backends(
    pg: Callable[[], str], mariadb: Callable[[], str], imap: ImapServer
) -> dict[str, Backend]:
    def sql(kind: str, url_for: Callable[[Path], str]) -> Backend:
        return Backend(
            kind,
            lambda folder, rows: _sql_write(url_for(folder), rows),
            _sql_read,
            columns={"note": "contact.note"},
            **_SQL_FIELDS,
        )

    return {
        "sqlite": sql("sqlite", lambda folder: f"sqlite:///{folder / 'store.sqlite'}"),
        "postgresql": sql("postgresql", lambda _folder: pg()),
        "mariadb": sql("mariadb", lambda _folder: mariadb()),
        **{
            fmt: Backend(
                fmt,
                _files_write(fmt),
                _files_read,
                columns={"note": "contact.note"},
                **_FILE_FIELDS,
            )
            for fmt in ("csv", "parquet")
        },
        **{
            kind: Backend(
                kind,
                _mail_write(kind),
                _mail_read,
                columns={"body": "contact.note", "correspondent": "contact.email"},
                **_MAIL_FIELDS,
            )
            for kind in ("maildir", "mbox")
        },
        "imap": Backend(
            "imap",
            _imap_write(imap),
            _imap_read(imap),
            columns={"body": "contact.note", "correspondent": "contact.email"},
            **_MAIL_FIELDS,
        ),
    }


_POLICY = """\
version: 1
name: kept_property
timezone: {zone}
categories:
  contact.note: {{description: A note, identifier: direct, entities: any}}
  contact.email: {{description: An address, identifier: direct}}
purposes:
  service:
    {{description: Service., legal_basis: contract, min_retention: 30 days, max_retention: 2 years}}
stores:
  store: {{url: "{url}"}}
datasets:
  - name: events
    store: store
    table: {table}
    purpose: service
    primary_key: {key}
    subject_key: {subject}
    columns: {columns}
    clock: {{column: {clock}}}
    retention: {retention}
    action: delete
holds: {holds}
"""


# --- the property ---------------------------------------------------------------------------

_NOW = st.datetimes(
    min_value=datetime(2025, 1, 1), max_value=datetime(2027, 12, 31), timezones=st.just(UTC)
).map(lambda moment: moment.replace(microsecond=0))
_OFFSETS = st.one_of(
    st.sampled_from([0, -1, 1]),  # exactly at the cut-off, and a second either side
    st.integers(-400 * 86_400, 400 * 86_400),
)
_ROWS = st.lists(
    st.tuples(st.integers(0, SUBJECTS - 1), _OFFSETS, st.sampled_from(["a", "b b", "c,d", "é"])),
    min_size=1,
    max_size=25,
)
_HOLD = st.one_of(
    st.none(),
    st.tuples(
        st.sets(st.integers(0, SUBJECTS - 1), min_size=1, max_size=3),
        st.integers(-20, 20),  # days from today to its expiry: negative means lapsed
    ),
)


@dataclass(frozen=True)
class Scenario:
    now: datetime
    rows: list[Row]
    held: frozenset[int]
    hold_expires: date | None
    chunk_size: int

    def kept(self) -> set[int]:
        """What must survive: not expired at ``now``, or held by an active hold."""
        cutoff = _cutoff(self.now)
        return {r.id for r in self.rows if r.clock >= cutoff or r.subject in self.held}


def _cutoff(now: datetime) -> datetime:
    return PolicyClock.at(ZONE, now).cutoff(Duration.parse(RETENTION))


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    now = draw(_NOW)
    cutoff = _cutoff(now)
    rows = [
        Row(i + 1, subject, (cutoff + timedelta(seconds=offset)).astimezone(UTC), note)
        for i, (subject, offset, note) in enumerate(draw(_ROWS))
    ]
    hold = draw(_HOLD)
    today = PolicyClock.at(ZONE, now).today()
    held: frozenset[int] = frozenset()
    expires = None
    if hold is not None:
        expires = today + timedelta(days=hold[1])
        held = frozenset(hold[0]) if expires >= today else frozenset()
    return Scenario(now, rows, held, expires, draw(st.integers(1, 7)))


def _holds(backend: Backend, scenario: Scenario, subjects: set[int]) -> str:
    if scenario.hold_expires is None:
        return "[]"
    if backend.subject == "correspondent":
        keys = ", ".join(f'"person{s}@customers.test"' for s in sorted(subjects))
    else:
        keys = ", ".join(str(s) for s in sorted(subjects))
    return (
        f"[{{name: audit, reason: Tax audit., expires: {scenario.hold_expires.isoformat()}, "
        f"subject_keys: [{keys}]}}]"
    )


@pytest.fixture(scope="module")
def backends(
    pg_server: PostgresServer, mariadb_server: MariaDBServer, imap_server: ImapServer
) -> dict[str, Backend]:
    def fresh_mariadb() -> str:
        return mariadb_server.create_database(f"p_{uuid.uuid4().hex[:16]}")

    return _backends(pg_server.fresh_database, fresh_mariadb, imap_server)


@pytest.fixture(autouse=True)
def _keys(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    monkeypatch.setenv("TENURE_AUDIT_KEY", "test-audit-key-0123456789abcdef")
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state-home"))  # IMAP bookkeeping
    yield


@pytest.mark.parametrize(
    "kind", ["sqlite", "postgresql", "mariadb", "csv", "parquet", "maildir", "mbox", "imap"]
)
@given(scenario=scenarios(), hold_subjects=st.sets(st.integers(0, SUBJECTS - 1), min_size=1))
@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_a_run_keeps_every_held_or_unexpired_record_unchanged(
    backends: dict[str, Backend], kind: str, scenario: Scenario, hold_subjects: set[int]
) -> None:
    backend = backends[kind]
    subjects = set(scenario.held) or hold_subjects  # a lapsed hold still names people
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        url = backend.write(root, scenario.rows)
        before = backend.read(url)
        assert set(before) == {r.id for r in scenario.rows}
        policy = root / "policy.yaml"
        policy.write_text(
            _POLICY.format(
                zone=ZONE,
                url=url,
                table=backend.table,
                key=backend.key,
                subject=backend.subject,
                clock=backend.clock,
                columns="{" + ", ".join(f"{c}: {k}" for c, k in backend.columns.items()) + "}",
                retention=RETENTION,
                holds=_holds(backend, scenario, subjects),
            )
        )
        options = RunOptions(
            now=scenario.now,
            chunk_size=scenario.chunk_size,
            state_url=f"sqlite:///{root / 'state.sqlite'}",
            coverage_gate=False,
        )
        report = run_policy(policy, options)
        assert not report.failed, [o.error for o in report.outcomes]
        after = backend.read(url)
    kept = scenario.kept()
    assert set(after) == kept
    assert {i: after[i] for i in kept} == {i: before[i] for i in kept}  # unchanged
    assert report.outcomes[0].processed == len(before) - len(kept)
