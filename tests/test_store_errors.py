"""Bad input in one store stops that binding only, before it changes anything.

One policy binds six stores: a good SQLite database, a folder with a file that is not
valid CSV, a locked mbox, a MariaDB server and an IMAP server given a wrong password,
and an IMAP port with nothing listening. The good binding runs; every other binding
fails with one line naming its store and never its password; no bad store's bytes change;
the run reports failure (the CLI exits non-zero on it).
"""

from __future__ import annotations

import hashlib
import mailbox
from datetime import UTC, datetime
from pathlib import Path

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
from tests.support.imap_server import ImapServer
from tests.support.mail_fixtures import business_mails, write_mbox
from tests.support.ports import free_port

NOW = datetime(2026, 11, 1, tzinfo=UTC)
SECRET = "not-the-password-7f3a"


def digest(root: Path) -> str:
    """The store's data; Tenure's own folder in it (its lock and journal) left out."""
    hashed = hashlib.sha256()
    own = ("_tenure", ".tenure", ".sales.mbox.tenure")
    for path in sorted(p for p in root.rglob("*") if p.is_file() and not own_part(p, own)):
        hashed.update(str(path.relative_to(root)).encode() + path.read_bytes())
    return hashed.hexdigest()


def own_part(path: Path, names: tuple[str, ...]) -> bool:
    return any(part in names for part in path.parts)


def dataset(name: str, store: str, table: str, key: str, clock: str, column: str) -> str:
    return f"""
  - name: {name}
    store: {store}
    table: {table}
    purpose: security
    primary_key: [{key}]
    subject_key: {column}
    columns: {{{column}: contact.email}}
    clock: {{column: {clock}}}
    retention: 1 year
    action: delete"""


def test_each_bad_store_fails_alone_and_untouched(
    tmp_path: Path, mariadb_url: str, imap_server: ImapServer, imap_user: str
) -> None:
    crm = f"sqlite:///{tmp_path / 'crm.sqlite'}"
    events = Table("events", MetaData(), Column("id", Integer, primary_key=True),
                   Column("at", DateTime(timezone=True)), Column("email", String(80)))  # fmt: skip
    engine = create_engine(crm)
    events.metadata.create_all(engine)
    with engine.begin() as connection:
        connection.execute(insert(events), [
            {"id": 1, "at": datetime(2020, 1, 1, tzinfo=UTC), "email": "old@example.org"},
            {"id": 2, "at": datetime(2026, 10, 1, tzinfo=UTC), "email": "new@example.org"},
        ])  # fmt: skip
    logs = tmp_path / "logs" / "events"
    logs.mkdir(parents=True)
    (logs / "part-0.csv").write_text('at,email\n2020-01-01T00:00:00Z,"a@example.org\n')
    mbox_path = tmp_path / "mail" / "sales.mbox"
    mbox_path.parent.mkdir()
    write_mbox(mbox_path, business_mails())
    wrong_db = mariadb_url.replace("://tenure:", "://tenure:x", 1)
    assert wrong_db != mariadb_url, "the MariaDB fixture's URL carries a password"
    stores = {
        "crm": crm,
        "logs": f"files:///{tmp_path / 'logs'}",
        "mail": f"mbox:///{mbox_path}",
        "billing": wrong_db.replace("://tenure:x", f"://tenure:{SECRET}", 1),
        "inbox": imap_server.url(imap_user, password=SECRET),
        "archive": f"imap://{imap_user}:{SECRET}@127.0.0.1:{free_port()}/",
    }
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "version: 1\nname: bad_input\ntimezone: UTC\n"
        "categories:\n  contact.email: {description: E-mail, identifier: direct}\n"
        "purposes:\n  security: {description: Fraud., legal_basis: legitimate_interest, "
        "min_retention: 6 months, max_retention: 2 years}\n"
        "stores:\n"
        + "".join(f"  {name}: '{url}'\n" for name, url in stores.items())
        + "datasets:"
        + dataset("crm_events", "crm", "events", "id", "at", "email")
        + dataset("log_events", "logs", "events", "source_file, row_number", "at", "email")
        + dataset("sales_mail", "mail", "sales", "message_key", "sent_at", "correspondent")
        + dataset("billing_events", "billing", "events", "id", "at", "email")
        + dataset("inbox_mail", "inbox", "inbox", "message_key", "sent_at", "correspondent")
        + dataset("archive_mail", "archive", "inbox", "message_key", "sent_at", "correspondent")
        + "\n"
    )
    before = {"logs": digest(tmp_path / "logs"), "mail": digest(tmp_path / "mail")}
    locked = mailbox.mbox(str(mbox_path))
    locked.lock()
    try:
        report = run_policy(
            policy,
            RunOptions(now=NOW, state_url=f"sqlite:///{tmp_path / 'state.sqlite'}",
                       coverage_gate=False),
        )  # fmt: skip
    finally:
        locked.unlock()
    outcomes = {o.dataset: o for o in report.outcomes}
    assert report.failed
    assert outcomes["crm_events"].error is None and outcomes["crm_events"].processed == 1
    with engine.connect() as connection:
        assert connection.execute(select(events.c.id)).scalars().all() == [2]
    bad = {"log_events": "logs", "sales_mail": "mail", "billing_events": "billing",
           "inbox_mail": "inbox", "archive_mail": "archive"}  # fmt: skip
    for name, store in bad.items():
        error = outcomes[name].error
        assert error, name
        # unreachable at the start: "policy.yaml:12: stores.billing: store unreachable: ..."
        named = f"store '{store}'" in error or f"stores.{store}: " in error
        assert named and len(error.splitlines()) == 1, error
        assert SECRET not in error and outcomes[name].processed == 0, error
    assert "part-0.csv" in str(outcomes["log_events"].error)
    assert "locked" in str(outcomes["sales_mail"].error)
    assert {"logs": digest(tmp_path / "logs"), "mail": digest(tmp_path / "mail")} == before
