"""The demo's three planted people, and an independent oracle of the records held on them.

The demo plants (``flows/demo/planted.py``, ``docs/demo.md``):

a. a customer whose account closed more than two years ago but who has invoices younger
   than the six-year tax minimum, with logins, support tickets, e-mail in the shared
   mailbox and lines of the web access log carrying their cookie;
b. the two parties of the legal hold ``dispute_500_17_123456`` (customers 17 and 42);
c. a marketing-only visitor, known by a cookie and an e-mail address and nothing else.

The oracle finds a person's records the plain way, sharing no code with Tenure: one
hand-written ``SELECT`` per table, the Maildir read with the standard library's
``mailbox`` (a message is theirs when their address is in From, To or Cc), the access
log's partition files read line by line (their cookie). It names each record by the
shipped policy's dataset and primary key, so its answer can be compared with what
Tenure's request engine finds: a SQL row by its ``id``, a message by its Maildir key
(the file's unique name, before flags and sizes), a log line by ``(source_file,
row_number)`` (the file's path below the collection, the line's place in it from 0).
"""

from __future__ import annotations

import json
import mailbox
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime
from email.utils import getaddresses
from pathlib import Path
from typing import Any

from dateutil.relativedelta import relativedelta
from sqlalchemy import DateTime, bindparam, create_engine, text

#: The legal hold of the shipped policy that covers person (b), and its parties.
DISPUTE_HOLD = "dispute_500_17_123456"
DISPUTE_PARTIES = (17, 42)
#: Person (c): a newsletter subscriber with no customer row.
MARKETING_VISITOR_ID = "5f0c8e2a-7d3b-4c1e-9a6f-2b8d4e1c3a70"
MARKETING_EMAIL = "marie.lavoie.infolettre@example.ca"
#: Person (a) is chosen this far clear of the two cut-offs that make them interesting.
MARGIN = relativedelta(days=30)

#: The shipped policy's datasets, by where their records live.
CUSTOMER_TABLES = {  # dataset: table, rows found by customer_id
    "accounts": "accounts",
    "invoices": "invoices",
    "payments": "payments",
    "login_events": "login_events",
    "usage_events": "usage_events",
    "support_tickets": "support_tickets",
    "privacy_requests": "privacy_requests",
}
CONSENT_DATASETS = ("marketing_contacts", "marketing_consent_records")
MAIL_FOLDERS = {"business_email": "", "billing_email": ".Billing"}  # below the Maildir root
ACCESS_LOG = "web_access_log"
DATASETS = frozenset(
    {
        "customers",
        *CUSTOMER_TABLES,
        "web_clicks",
        "email_messages",
        *CONSENT_DATASETS,
        *MAIL_FOLDERS,
        ACCESS_LOG,
    }
)

Key = Any  # an int id, a Maildir key, or (source_file, row_number)


@dataclass(frozen=True)
class Identifiers:
    """What names a person: any of these values is theirs."""

    customer_ids: frozenset[int] = frozenset()
    emails: frozenset[str] = frozenset()
    phones: frozenset[str] = frozenset()
    visitor_ids: frozenset[str] = frozenset()


MARKETING_VISITOR = Identifiers(
    emails=frozenset({MARKETING_EMAIL}), visitor_ids=frozenset({MARKETING_VISITOR_ID})
)


@dataclass(frozen=True)
class DemoStores:
    """Where a built demo is: its CRM database, Maildir root and web-log root."""

    crm_url: str
    mail: Path
    weblogs: Path


def _rows(url: str, sql: str, **values: Any) -> list[tuple[Any, ...]]:
    """The rows of one hand-written statement; list values bind as ``IN`` lists."""
    values = {name: value for name, value in values.items() if f":{name}" in sql}
    statement = text(sql).bindparams(
        *(bindparam(n, expanding=True) for n, v in values.items() if isinstance(v, Collection)
          and not isinstance(v, str)),
        *(bindparam(n, type_=DateTime(timezone=True)) for n, v in values.items()
          if isinstance(v, datetime)),
    )  # fmt: skip
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return [tuple(row) for row in connection.execute(statement, values)]
    finally:
        engine.dispose()


def closed_account_customer(crm_url: str, as_of: datetime) -> int | None:
    """Person (a) in a demo built up to ``as_of``: the lowest customer id whose account
    closed more than two years (and a month) before, with an invoice issued less than six
    years (less a month) before, a login, a support ticket, a click, an e-mail in the CRM,
    an address no other customer has, and no part in the dispute. None if nobody fits."""
    found = _rows(
        crm_url,
        """
        SELECT c.id FROM customers c JOIN accounts a ON a.customer_id = c.id
        WHERE a.closed_at < :closed_before
          AND c.id NOT IN :parties
          AND EXISTS (SELECT 1 FROM invoices i
                      WHERE i.customer_id = c.id AND i.issued_at > :issued_after)
          AND EXISTS (SELECT 1 FROM login_events l WHERE l.customer_id = c.id)
          AND EXISTS (SELECT 1 FROM support_tickets t WHERE t.customer_id = c.id)
          AND EXISTS (SELECT 1 FROM web_clicks w WHERE w.customer_id = c.id)
          AND EXISTS (SELECT 1 FROM email_messages e WHERE e.customer_id = c.id)
          AND (SELECT count(*) FROM customers o WHERE lower(o.email) = lower(c.email)) = 1
        ORDER BY c.id
        """,
        closed_before=as_of - relativedelta(years=2) - MARGIN,
        issued_after=as_of - relativedelta(years=6) + MARGIN,
        parties=list(DISPUTE_PARTIES),
    )
    return int(found[0][0]) if found else None


def customer_identifiers(crm_url: str, customer_id: int) -> Identifiers:
    """A customer's identifiers as the CRM knows them: the id, the e-mail address and
    phone of the customer row, and the cookies their clicks carry."""
    contact = _rows(crm_url, "SELECT email, phone FROM customers WHERE id = :id", id=customer_id)
    cookies = _rows(
        crm_url,
        "SELECT DISTINCT visitor_id FROM web_clicks WHERE customer_id = :id",
        id=customer_id,
    )
    return Identifiers(
        customer_ids=frozenset({customer_id}),
        emails=frozenset(str(email).lower() for email, _ in contact),
        phones=frozenset(str(phone) for _, phone in contact if phone is not None),
        visitor_ids=frozenset(str(cookie) for (cookie,) in cookies),
    )


def records_of(person: Identifiers, stores: DemoStores) -> dict[str, set[Key]]:
    """Every record of ``person`` in the demo's stores, by the shipped policy's dataset
    name (every dataset, an empty set where they have none)."""
    found: dict[str, set[Key]] = {name: set() for name in DATASETS}
    found.update(sql_records_of(person, stores.crm_url))
    for dataset, folder in MAIL_FOLDERS.items():
        found[dataset] = _messages_of(stores.mail / folder if folder else stores.mail, person)
    found[ACCESS_LOG] = _log_lines_of(stores.weblogs / "access_log", person.visitor_ids)
    return found


def sql_records_of(person: Identifiers, url: str) -> dict[str, set[Key]]:
    """The person's records in the CRM database at ``url``, by dataset."""
    values = {
        "ids": sorted(person.customer_ids),
        "emails": sorted(e.lower() for e in person.emails),
        "phones": sorted(person.phones),
        "cookies": sorted(person.visitor_ids),
    }

    def ids(sql: str) -> set[Key]:
        return {int(row[0]) for row in _rows(url, sql, **values)}

    found = {
        "customers": ids(
            "SELECT id FROM customers "
            "WHERE id IN :ids OR lower(email) IN :emails OR phone IN :phones"
        ),
        "web_clicks": ids(
            "SELECT id FROM web_clicks WHERE customer_id IN :ids OR visitor_id IN :cookies"
        ),
        "email_messages": ids(
            "SELECT id FROM email_messages WHERE customer_id IN :ids "
            "OR lower(from_address) IN :emails OR lower(to_address) IN :emails"
        ),
    }
    for dataset, table in CUSTOMER_TABLES.items():
        found[dataset] = ids(f"SELECT id FROM {table} WHERE customer_id IN :ids")
    consents = ids(
        "SELECT id FROM marketing_consents WHERE customer_id IN :ids "
        "OR lower(address) IN :emails OR address IN :phones"
    )
    for dataset in CONSENT_DATASETS:  # two bindings of one table
        found[dataset] = set(consents)
    return found


def _messages_of(folder: Path, person: Identifiers) -> set[Key]:
    """The Maildir keys of the messages with one of the person's addresses in From, To
    or Cc. ``mailbox`` keys a message by its file name up to the ``:`` of its flags; a
    Maildir key also stops at a ``,`` (Dovecot's ``S=``/``W=`` sizes)."""
    wanted = {e.lower() for e in person.emails}
    box = mailbox.Maildir(folder, factory=None, create=False)
    found: set[Key] = set()
    for key in box.iterkeys():
        message = box.get_message(key)
        headers = [str(v) for name in ("From", "To", "Cc") for v in message.get_all(name, [])]
        if any(address.lower() in wanted for _, address in getaddresses(headers)):
            found.add(key.split(",", 1)[0])
    return found


def _log_lines_of(collection: Path, cookies: Iterable[str]) -> set[Key]:
    """``(source_file, row_number)`` of every access-log line carrying one of ``cookies``."""
    wanted = set(cookies)
    found: set[Key] = set()
    for path in sorted(collection.rglob("*.jsonl")):
        source = path.relative_to(collection).as_posix()
        with path.open(encoding="utf-8") as lines:
            for number, line in enumerate(lines):
                if json.loads(line).get("visitor_id") in wanted:
                    found.add((source, number))
    return found
