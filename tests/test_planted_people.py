"""The demo's three planted people exist, with the records that make each of them a case
for individual-rights requests, as an independent oracle finds them."""

from __future__ import annotations

import json
import mailbox
from datetime import datetime, timedelta
from email.utils import getaddresses, parsedate_to_datetime
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import pytest
from dateutil.relativedelta import relativedelta
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML
from sqlalchemy import create_engine
from typer.testing import CliRunner

from connectors.files.connector import FilesStore
from connectors.mail.maildir import MaildirStore
from connectors.mail.stores import mail_url
from flows.cli import app
from flows.demo import files_and_mail
from flows.demo.generate import DemoSpec, build_demo_store, planted_people
from tests.support.demo import DEMO_AS_OF, instants, rows
from tests.support.paths import SHIPPED_POLICY
from tests.support.planted import (
    ACCESS_LOG,
    DATASETS,
    DISPUTE_HOLD,
    DISPUTE_PARTIES,
    MARKETING_EMAIL,
    MARKETING_VISITOR,
    MARKETING_VISITOR_ID,
    DemoStores,
    Identifiers,
    Key,
    closed_account_customer,
    customer_identifiers,
    records_of,
    sql_records_of,
)

#: The hold's datasets, and the customer-keyed datasets no marketing-only visitor is in.
HELD = ("invoices", "payments", "email_messages", "support_tickets")
CUSTOMER_ONLY = (
    "customers", "accounts", "invoices", "payments", "login_events", "usage_events",
    "support_tickets", "email_messages", "privacy_requests",
)  # fmt: skip


@pytest.fixture(scope="module")
def stores(demo_sqlite_url: str, demo_files_template: Path) -> DemoStores:
    """The shared demo (60 customers up to ``DEMO_AS_OF``), read only."""
    return DemoStores(
        demo_sqlite_url, demo_files_template / "mail", demo_files_template / "weblogs"
    )


@pytest.fixture(scope="module")
def closed(stores: DemoStores) -> Identifiers:
    found = closed_account_customer(stores.crm_url, DEMO_AS_OF)
    assert found is not None, "no customer with a closed account and invoices under the minimum"
    return customer_identifiers(stores.crm_url, found)


def _path(url: str) -> Path:
    return Path(url.removeprefix("sqlite:///"))


def _policy() -> dict[str, Any]:
    loaded: dict[str, Any] = YAML(typ="safe").load(SHIPPED_POLICY.read_text())
    return loaded


def _counts(found: dict[str, set[Key]]) -> dict[str, int]:
    return {name: len(keys) for name, keys in found.items() if keys}


def test_the_oracle_names_every_dataset_of_the_shipped_policy() -> None:
    assert {d["name"] for d in _policy()["datasets"]} == DATASETS


def test_a_closed_account_with_invoices_under_the_tax_minimum(
    stores: DemoStores, closed: Identifiers
) -> None:
    (customer,) = closed.customer_ids
    crm = _path(stores.crm_url)
    (closed_at,) = instants(crm, f"SELECT closed_at FROM accounts WHERE customer_id = {customer}")
    assert closed_at < DEMO_AS_OF - relativedelta(years=2)  # maintain_account's two years
    issued = list(instants(crm, f"SELECT issued_at FROM invoices WHERE customer_id = {customer}"))
    young = [moment for moment in issued if moment > DEMO_AS_OF - relativedelta(years=6)]
    assert young and all(moment <= closed_at for moment in issued)  # billed while open
    found = records_of(closed, stores)
    counts = _counts(found)
    for dataset in ("customers", "accounts", "invoices", "login_events", "support_tickets",
                    "web_clicks", "email_messages", ACCESS_LOG):  # fmt: skip
        assert counts.get(dataset, 0) > 0, (dataset, counts)
    assert counts.get("business_email", 0) + counts.get("billing_email", 0) > 0, counts
    assert customer not in DISPUTE_PARTIES
    # the log lines carry a cookie their clicks tie to their customer id, after closure
    cookies = {str(c) for (c,) in rows(crm, "SELECT visitor_id FROM web_clicks "
                                            f"WHERE customer_id = {customer}")}  # fmt: skip
    lines = _log_lines(stores.weblogs, found[ACCESS_LOG])
    assert {line["visitor_id"] for line in lines} <= cookies
    assert all(datetime.fromisoformat(line["ts"]) > closed_at for line in lines)


def test_their_mail_names_them_as_the_correspondent(
    stores: DemoStores, closed: Identifiers
) -> None:
    found = records_of(closed, stores)
    (address,) = closed.emails
    correspondents = [
        _correspondent(stores.mail / folder, key)
        for dataset, folder in (("business_email", ""), ("billing_email", ".Billing"))
        for key in found[dataset]
    ]
    assert correspondents and set(correspondents) == {address}


@pytest.mark.parametrize("party", DISPUTE_PARTIES)
def test_the_dispute_parties_have_records_in_every_held_dataset(
    stores: DemoStores, party: int
) -> None:
    (hold,) = (h for h in _policy()["holds"] if h["name"] == DISPUTE_HOLD)
    assert party in hold["subject_keys"] and set(hold["datasets"]) == set(HELD)
    assert hold["expires"] > DEMO_AS_OF.date()  # the hold is in force on the demo's date
    counts = _counts(records_of(customer_identifiers(stores.crm_url, party), stores))
    for dataset in HELD:
        assert counts.get(dataset, 0) > 0, (party, dataset, counts)
    assert counts.get("business_email", 0) + counts.get("billing_email", 0) > 0, counts


def test_the_marketing_only_visitor_has_no_customer_row(stores: DemoStores) -> None:
    found = records_of(MARKETING_VISITOR, stores)
    for dataset in CUSTOMER_ONLY:
        assert found[dataset] == set(), dataset
    assert found["billing_email"] == set()
    crm = _path(stores.crm_url)
    clicks = rows(crm, "SELECT customer_id FROM web_clicks WHERE visitor_id = ?",
                  MARKETING_VISITOR_ID)  # fmt: skip
    assert clicks and {c for (c,) in clicks} == {None} and len(clicks) == len(found["web_clicks"])
    consents = rows(
        crm,
        "SELECT customer_id, channel, address, withdrawn_at FROM marketing_consents "
        "WHERE address = ?",
        MARKETING_EMAIL,
    )
    assert consents == [(None, "email", MARKETING_EMAIL, None)]  # consent still given
    assert found["marketing_contacts"] == found["marketing_consent_records"] != set()
    (key,) = found["business_email"]
    message = mailbox.Maildir(stores.mail, factory=None, create=False)[key]
    assert getaddresses([str(message["From"])])[0][1] == MARKETING_EMAIL
    assert "infolettre" in str(message["Subject"]).lower()
    lines = _log_lines(stores.weblogs, found[ACCESS_LOG])
    assert len(lines) >= 3 and {line["visitor_id"] for line in lines} == {MARKETING_VISITOR_ID}


def test_no_record_belongs_to_two_planted_people(stores: DemoStores, closed: Identifiers) -> None:
    people = [closed, MARKETING_VISITOR] + [
        customer_identifiers(stores.crm_url, party) for party in DISPUTE_PARTIES
    ]
    found = [records_of(person, stores) for person in people]
    for dataset in DATASETS:
        seen: set[Key] = set()
        for records in found:
            assert not seen & records[dataset], dataset
            seen |= records[dataset]


def test_the_oracle_names_records_as_tenure_reads_them(
    stores: DemoStores, closed: Identifiers
) -> None:
    """Tenure's stores list the oracle's keys with the same person in them: a comparison
    between the two fails on a missing record, never on a key spelt another way."""
    files = FilesStore("weblogs", f"files:///{stores.weblogs}")
    cookies = {
        (str(row.source_file), int(row.row_number)): row.visitor_id
        for frame in files.scan("access_log", ["visitor_id"], 5_000)
        for row in frame.itertuples()
    }
    url = mail_url("mail", f"maildir:///{stores.mail}?internal_domains=360.agency")
    mail = MaildirStore("mail", url)
    for person in (closed, MARKETING_VISITOR):
        found = records_of(person, stores)
        assert found[ACCESS_LOG] and {cookies[k] for k in found[ACCESS_LOG]} <= person.visitor_ids
        for dataset, collection in (("business_email", "inbox"), ("billing_email", "billing")):
            read = {
                str(row.message_key): row.correspondent
                for frame in mail.scan(collection, ["correspondent"], 5_000)
                for row in frame.itertuples()
            }
            assert {read[k] for k in found[dataset]} <= person.emails


def test_demo_build_names_the_planted_people(tmp_path: Path) -> None:
    """What a user who builds the demo needs to try a request on each of them."""
    result = CliRunner().invoke(
        app,
        ["demo", "build", "--path", str(tmp_path / "crm.sqlite"), "--customers", "60",
         "--as-of", DEMO_AS_OF.strftime("%Y-%m-%d")],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    customer = closed_account_customer(f"sqlite:///{tmp_path / 'crm.sqlite'}", DEMO_AS_OF)
    planted = [line for line in result.output.splitlines() if line.startswith("planted")]
    assert len(planted) == 3, result.output
    assert f"customer {customer}" in planted[0]
    assert "customers 17 and 42" in planted[1] and DISPUTE_HOLD in planted[1]
    assert MARKETING_EMAIL in planted[2] and MARKETING_VISITOR_ID in planted[2]


def test_a_closed_customer_the_mailbox_never_names_asks_about_their_last_invoice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no generated mail at all, person (a) still has a message: a billing question
    written two weeks after closing their account; the visitor's question is there too."""
    for name, size in (("INBOX_MESSAGES", 0), ("BILLING_MESSAGES", 0), ("LOG_DAYS", 3)):
        monkeypatch.setattr(files_and_mail, name, size)
    spec = DemoSpec(customers=60, as_of=DEMO_AS_OF)
    files_and_mail.build_demo_files(tmp_path, spec)
    planted = planted_people(spec)
    assert planted.closed is not None
    person = planted.closed.person
    assert person.closed is not None
    (billing,) = mailbox.Maildir(tmp_path / "mail" / ".Billing", factory=None, create=False)
    assert getaddresses([str(billing["From"])])[0][1] == person.email
    sent = parsedate_to_datetime(str(billing["Date"]))
    assert sent == person.closed + timedelta(days=14)
    (inbox,) = mailbox.Maildir(tmp_path / "mail", factory=None, create=False)
    assert getaddresses([str(inbox["From"])])[0][1] == MARKETING_EMAIL


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 10_000),
    customers=st.integers(10, 60),
    earlier=st.integers(0, 3 * 365),
)
def test_the_generator_plants_whom_the_oracle_finds(
    seed: int, customers: int, earlier: int
) -> None:
    """Whatever the seed, size and date of a demo, the customer it plants as person (a)
    is the one the oracle's SQL finds, and the dispute's parties it has are in every
    dataset the hold covers."""
    spec = DemoSpec(customers=customers, seed=seed, as_of=DEMO_AS_OF - timedelta(days=earlier))
    with TemporaryDirectory() as folder:
        url = f"sqlite:///{Path(folder) / 'crm.sqlite'}"
        engine = create_engine(url)
        try:
            build_demo_store(engine, spec)
        finally:
            engine.dispose()
        planted = planted_people(spec)
        chosen = planted.closed.person.id if planted.closed else None
        assert closed_account_customer(url, spec.as_of) == chosen
        assert planted.parties == tuple(p for p in DISPUTE_PARTIES if p <= customers)
        empty = DemoStores(url, Path(folder), Path(folder))  # SQL only: no mail, no logs
        for party in planted.parties:
            found = _sql_counts(customer_identifiers(url, party), empty)
            assert all(found.get(dataset, 0) > 0 for dataset in HELD), (party, found)


def _sql_counts(person: Identifiers, stores: DemoStores) -> dict[str, int]:
    return _counts(sql_records_of(person, stores.crm_url))


def _log_lines(weblogs: Path, keys: set[Key]) -> list[dict[str, Any]]:
    found = []
    for source, number in sorted(keys):
        lines = (weblogs / "access_log" / source).read_text(encoding="utf-8").splitlines()
        found.append(json.loads(lines[number]))
    return found


def _correspondent(folder: Path, key: str) -> str:
    """The first address of From, To, Cc outside 360 Agency."""
    message = mailbox.Maildir(folder, factory=None, create=False)[key]
    headers = [str(v) for name in ("From", "To", "Cc") for v in message.get_all(name, [])]
    outside = [a.lower() for _, a in getaddresses(headers) if not a.endswith("@360.agency")]
    return outside[0]
