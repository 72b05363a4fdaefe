"""`tenure request fulfil` on the demo's three planted people, checked against an
independent oracle (``tests.support.planted``) and against the planner's own cut-offs.

Each test drives the commands a privacy officer types: open, verify, fulfil.
"""

from __future__ import annotations

import json
import re
import shutil
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import create_engine, text
from typer.testing import CliRunner

from connectors.protocol import Condition, RowFilter
from flows.cli import app
from flows.stores import opened_stores
from retention_rules.clock import PolicyClock
from retention_rules.loader import load_policy
from retention_rules.planner import plan_rules
from tests.support.demo import DEMO_AS_OF, build_demo, demo_files_environ
from tests.support.paths import SHIPPED_POLICY
from tests.support.planted import (
    DISPUTE_PARTIES,
    MARKETING_EMAIL,
    MARKETING_VISITOR_ID,
    DemoStores,
    Identifiers,
    closed_account_customer,
    customer_identifiers,
    records_of,
)

NOW = DEMO_AS_OF.isoformat()
ZONE = ZoneInfo("America/Montreal")


@dataclass
class Demo:
    root: Path
    stores: DemoStores
    environ: dict[str, str]
    state: str

    def invoke(self, *args: str) -> Any:
        result = CliRunner().invoke(app, [*args], env=self.environ)
        return result

    def request(self, kind: str, *ids: str, detail: tuple[str, ...] = ()) -> str:
        """Open and verify a request; its id."""
        args = ["request", "open", str(SHIPPED_POLICY), "--kind", kind, "--received", "2026-11-20"]
        for given in ids:
            args += ["--id", given]
        for pair in detail:
            args += ["--detail", pair]
        opened = self.invoke(*args, "--state", self.state)
        assert opened.exit_code == 0, opened.output
        found = re.search(r"request (\d{4}-\d{4}) opened", opened.output)
        assert found, opened.output
        request_id = found.group(1)
        verified = self.invoke(
            "request", "verify", str(SHIPPED_POLICY), request_id,
            "--method", "photo ID checked at the counter", "--by", "J. Tremblay",
            "--state", self.state,
        )  # fmt: skip
        assert verified.exit_code == 0, verified.output
        return request_id

    def fulfil(self, request_id: str, *extra: str) -> Any:
        return self.invoke(
            "request", "fulfil", str(SHIPPED_POLICY), request_id, "--now", NOW,
            "--state", self.state, "--out", str(self.root / "out"), "--json", *extra,
        )  # fmt: skip


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory, demo_files_template: Path) -> Path:
    root = tmp_path_factory.mktemp("requests-demo")
    build_demo(f"sqlite:///{root / 'crm.sqlite'}")
    shutil.copytree(demo_files_template, root, dirs_exist_ok=True)
    return root


@pytest.fixture
def demo(template: Path, tmp_path: Path, pseudonym_keys: dict[str, str]) -> Iterator[Demo]:
    root = tmp_path / "demo"
    shutil.copytree(template, root)
    crm = f"sqlite:///{root / 'crm.sqlite'}"
    environ = {"TENURE_CRM_URL": crm, **demo_files_environ(root), **pseudonym_keys}
    stores = DemoStores(crm, root / "mail", root / "weblogs")
    yield Demo(root, stores, environ, f"sqlite:///{root / 'state.sqlite'}")


def _closed(demo: Demo) -> tuple[int, Identifiers]:
    found = closed_account_customer(demo.stores.crm_url, DEMO_AS_OF)
    assert found is not None, "the demo plants a closed account with recent invoices"
    return found, customer_identifiers(demo.stores.crm_url, found)


def _package(out: dict[str, Any]) -> dict[str, Any]:
    with zipfile.ZipFile(out["package"]["path"]) as bundle:
        loaded: dict[str, Any] = json.loads(bundle.read("package.json"))
        return loaded


def _keys(section: dict[str, Any]) -> set[Any]:
    keys = set()
    for record in section["records"]:
        values = record["values"]
        if "id" in values:
            keys.add(int(values["id"]))
        elif "message_key" in values:
            keys.add(str(values["message_key"]).split(",", 1)[0])
        else:
            keys.add((values["source_file"], int(values["row_number"])))
    return keys


def test_access_lists_every_record_the_oracle_finds_with_the_plans_dates(demo: Demo) -> None:
    customer, person = _closed(demo)
    request_id = demo.request("access", f"customer_id={customer}")
    done = demo.fulfil(request_id)
    assert done.exit_code == 0, done.output
    out = json.loads(done.stdout)
    package = _package(out)
    found = {s["dataset"]: _keys(s) for s in package["datasets"]}
    expected = {d: keys for d, keys in records_of(person, demo.stores).items() if keys}
    assert {d: k for d, k in found.items() if k} == expected
    # Each record's date is the day the planner's cut-off passes it: selected (expired or
    # held) by the end of that day, not by the end of the day before.
    loaded = load_policy(SHIPPED_POLICY, demo.environ)
    checked = 0
    with opened_stores(loaded.policy) as (connectors, _):
        for section in package["datasets"]:
            dataset = loaded.policy.dataset(section["dataset"])
            if dataset.store != "crm":
                continue
            for record in section["records"][:2]:
                if record.get("destroyed_on") is None:
                    assert record["until_event"], record
                    continue
                day = date.fromisoformat(record["destroyed_on"])
                key = Condition("id", "eq", int(record["values"]["id"]))
                # Not yet by the end of the day before; past it by the end of the day.
                for moment, selected in ((day - timedelta(days=1), 0), (day, 1)):
                    clock = PolicyClock.at(
                        loaded.policy.timezone, datetime.combine(moment, time(23, 59, 59))
                    )
                    plan = next(p for p in plan_rules(loaded.policy, clock) if p.dataset is dataset)
                    selection = replace(plan.selection, only=(RowFilter("one", (key,)),))
                    counts = connectors["crm"].count_expiry(selection.as_the_store_is())
                    assert counts.expired + counts.held == selected, (dataset.name, record, moment)
                checked += 1
    assert checked >= 5
    # Other people inside the person's records (a colleague in Cc, a name in a note) are
    # not given away: no other customer's address appears anywhere in the package.
    engine = create_engine(demo.stores.crm_url)
    with engine.connect() as c:
        others = {
            str(e).lower()
            for (e,) in c.execute(
                text("SELECT email FROM customers WHERE id != :i"), {"i": customer}
            )
        }
    engine.dispose()
    written = json.dumps(package).lower()
    assert not {e for e in others if e in written}
    # A password hash is never handed out, and the package says it left it out.
    (accounts,) = [s for s in package["datasets"] if s["dataset"] == "accounts"]
    assert accounts["undisclosed_columns"] == ["password_hash"]
    assert all("password_hash" not in r["values"] for r in accounts["records"])
    assert "$2b$" not in written and "pbkdf2" not in written
    shown = demo.invoke(
        "request", "show", str(SHIPPED_POLICY), request_id, "--json", "--state", demo.state
    )
    register = json.loads(shown.stdout)
    assert register["status"] == "fulfilled"
    assert register["package_sha256"] == out["package"]["sha256"]


def _left(demo: Demo, person: Identifiers) -> dict[str, int]:
    return {d: len(k) for d, k in records_of(person, demo.stores).items() if k}


def test_erasure_keeps_only_what_a_stated_reason_keeps(demo: Demo) -> None:
    customer, person = _closed(demo)
    before = _left(demo, person)
    request_id = demo.request("erasure", f"customer_id={customer}")
    dry = demo.fulfil(request_id, "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert _left(demo, person) == before  # a dry run changes nothing
    foreseen = json.loads(dry.stdout)["remaining"]
    said = {why for reasons in foreseen.values() for why in reasons}
    assert "to be erased by the real run" in said
    assert not any(why.startswith("not erased") for why in said), foreseen
    done = demo.fulfil(request_id)
    assert done.exit_code == 0, done.output
    out = json.loads(done.stdout)
    remaining = out["remaining"]
    reasons = {d: set(r) for d, r in remaining.items()}
    assert not any(r.startswith("not erased") for rs in reasons.values() for r in rs), remaining
    # Invoices younger than six years stay for tax law; the customer row stays,
    # pseudonymized, because those invoices refer to it.
    assert any("legal obligation" in r for r in reasons["invoices"])
    assert any(r.startswith("anonymized") for r in reasons["customers"])
    # What the oracle still finds is exactly what the run says it kept, and why.
    after = _left(demo, person)
    for dataset, n in after.items():
        assert sum(remaining.get(dataset, {}).values()) == n, (dataset, n, remaining)
    for gone in ("login_events", "usage_events", "web_clicks", "business_email", "web_access_log"):
        assert gone not in after, (gone, after)
    assert "email_messages" not in after


def test_erasure_of_a_party_to_the_dispute_keeps_the_held_records(demo: Demo) -> None:
    party = DISPUTE_PARTIES[0]
    person = customer_identifiers(demo.stores.crm_url, party)
    request_id = demo.request("erasure", f"customer_id={party}")
    done = demo.fulfil(request_id)
    assert done.exit_code == 0, done.output
    remaining = json.loads(done.stdout)["remaining"]
    for dataset in ("invoices", "payments", "email_messages", "support_tickets"):
        if dataset in _left(demo, person):
            assert any("Superior Court" in r for r in remaining[dataset]), remaining[dataset]
    assert "login_events" not in _left(demo, person)


def test_withdrawal_anonymizes_the_marketing_contact_at_once(demo: Demo) -> None:
    request_id = demo.request(
        "consent_withdrawal",
        f"email={MARKETING_EMAIL}",
        f"visitor_id={MARKETING_VISITOR_ID}",
        detail=("purpose=marketing",),
    )
    engine = create_engine(demo.stores.crm_url)
    query = text("SELECT address, withdrawn_at FROM marketing_consents WHERE lower(address) = :a")
    with engine.connect() as c:
        assert c.execute(query, {"a": MARKETING_EMAIL}).all()
    done = demo.fulfil(request_id)
    assert done.exit_code == 0, done.output
    with engine.connect() as c:
        assert not c.execute(query, {"a": MARKETING_EMAIL}).all()
        rows = c.execute(
            text("SELECT address, withdrawn_at FROM marketing_consents WHERE customer_id IS NULL")
        ).all()
    engine.dispose()
    assert rows and all(r.address is None and r.withdrawn_at is not None for r in rows), done.stdout


def test_two_people_behind_one_request_are_refused_and_nothing_changes(demo: Demo) -> None:
    other = customer_identifiers(demo.stores.crm_url, DISPUTE_PARTIES[1])
    email = sorted(other.emails)[0]
    request_id = demo.request("erasure", f"customer_id={DISPUTE_PARTIES[0]}", f"email={email}")
    before = (demo.root / "crm.sqlite").read_bytes()
    done = demo.fulfil(request_id)
    assert done.exit_code == 2, done.output
    assert "2 different people" in done.output and "never merges" in done.output
    assert len(done.output.strip().splitlines()) <= 2
    assert (demo.root / "crm.sqlite").read_bytes() == before


def test_an_unverified_request_is_refused(demo: Demo) -> None:
    opened = demo.invoke(
        "request", "open", str(SHIPPED_POLICY), "--kind", "erasure", "--id", "customer_id=3",
        "--state", demo.state,
    )  # fmt: skip
    request_id = re.search(r"request (\d{4}-\d{4}) opened", opened.output).group(1)  # type: ignore[union-attr]
    done = demo.fulfil(request_id)
    assert done.exit_code == 2
    assert "verif" in done.output


def test_a_mailbox_down_leaves_the_request_partial_and_a_rerun_finishes_it(demo: Demo) -> None:
    customer, person = _closed(demo)
    mail = {d for d in ("business_email", "billing_email") if d in _left(demo, person)}
    assert mail, "person (a) has messages in the shared mailbox"
    request_id = demo.request("erasure", f"customer_id={customer}")
    good = demo.environ["TENURE_MAIL_URL"]
    demo.environ["TENURE_MAIL_URL"] = good.replace("/mail?", "/no-such-mail?")
    partial = demo.fulfil(request_id)
    assert partial.exit_code == 1, partial.output
    out = json.loads(partial.stdout)
    assert out["status"] == "partial"
    assert {"business_email", "billing_email"} <= set(out["failed"])
    assert "login_events" not in _left(demo, person)  # the other stores were done
    assert mail <= set(_left(demo, person))  # the mailbox was not touched
    shown = demo.invoke(
        "request", "show", str(SHIPPED_POLICY), request_id, "--json", "--state", demo.state
    )
    assert json.loads(shown.stdout)["failed_stores"] == ["mail"]
    demo.environ["TENURE_MAIL_URL"] = good
    again = demo.fulfil(request_id)
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["status"] == "fulfilled"
    assert not mail & set(_left(demo, person))


def test_identifiers_nobody_has_are_refused_before_anything_runs(demo: Demo) -> None:
    request_id = demo.request("erasure", "email=nobody.at.all@example.org")
    done = demo.fulfil(request_id)
    assert done.exit_code == 2, done.output
    assert "no record of anyone with the identifiers given (email)" in done.output
    assert "nobody.at.all" not in done.output  # values are not echoed (they reach logs)
    engine = create_engine(demo.state)
    with engine.connect() as c:  # no run was started for it
        assert c.execute(text("SELECT count(*) FROM tenure_runs")).scalar() == 0
    engine.dispose()


def test_a_correction_reaches_every_record_of_that_category(demo: Demo) -> None:
    customer, person = _closed(demo)
    phone = sorted(person.phones)[0]
    request_id = demo.request(
        "correction",
        f"customer_id={customer}",
        detail=("category=contact.phone", "value=514-555-0199"),
    )
    done = demo.fulfil(request_id)
    assert done.exit_code == 0, done.output
    out = json.loads(done.stdout)
    assert out["changed"] == {"customers.phone": 1}
    # The consent address holds an e-mail address or a phone number: never overwritten,
    # and said.
    assert [s.split(":")[0] for s in out["skipped"]] == ["marketing_contacts.address"]
    engine = create_engine(demo.stores.crm_url)
    query = text("SELECT phone FROM customers WHERE id = :i")
    with engine.connect() as c:
        assert c.execute(query, {"i": customer}).scalar() == "514-555-0199"
    engine.dispose()
    assert phone not in done.output  # the old value is never shown
    engine = create_engine(demo.state)
    with engine.connect() as c:
        logged = " ".join(str(r[0]) for r in c.execute(text("SELECT entry FROM tenure_audit")))
    engine.dispose()
    assert phone not in logged and "514-555-0199" not in logged


def test_a_correction_of_a_category_they_have_no_record_in_is_refused(demo: Demo) -> None:
    request_id = demo.request(
        "correction",
        f"email={MARKETING_EMAIL}",
        detail=("category=identity.birth_date", "value=1990-01-01"),
    )
    done = demo.fulfil(request_id)
    assert done.exit_code == 2, done.output
    assert "no record of this person that may be corrected holds identity.birth_date" in done.output


def test_portability_gives_only_what_the_person_provided(demo: Demo) -> None:
    request_id = demo.request(
        "portability", f"email={MARKETING_EMAIL}", f"visitor_id={MARKETING_VISITOR_ID}"
    )
    done = demo.fulfil(request_id)
    assert done.exit_code == 0, done.output
    package = _package(json.loads(done.stdout))
    loaded = load_policy(SHIPPED_POLICY, demo.environ).policy
    for section in package["datasets"]:
        dataset = loaded.dataset(section["dataset"])
        for record in section["records"]:
            for column in record["values"]:
                categories = dataset.columns[column]
                assert all(loaded.categories[c].provided for c in categories), (column, categories)
    # Her click stream is derived data: not portable; her consent's address is hers.
    assert "web_clicks" not in {s["dataset"] for s in package["datasets"] if s["records"]}


def _audit_verifies(demo: Demo) -> None:
    checked = demo.invoke("audit", "verify", str(SHIPPED_POLICY), "--state", demo.state)
    assert checked.exit_code == 0, checked.output


def test_a_name_is_corrected_where_it_is_theirs_and_nowhere_else(demo: Demo) -> None:
    customer, _ = _closed(demo)
    engine = create_engine(demo.stores.crm_url)
    names = text(
        "SELECT (SELECT group_concat(billing_name) FROM invoices WHERE customer_id = :i),"
        " (SELECT group_concat(card_holder) FROM payments WHERE customer_id = :i),"
        " (SELECT first_name FROM customers WHERE id = :i)"
    )
    with engine.connect() as c:
        before = c.execute(names, {"i": customer}).one()
    wide = demo.request(
        "correction", f"customer_id={customer}",
        detail=("category=identity.name", "value=Salazar"),
    )  # fmt: skip
    refused = demo.fulfil(wide)
    assert refused.exit_code == 2, refused.output
    assert "several columns hold it" in refused.output
    narrow = demo.request(
        "correction", f"customer_id={customer}",
        detail=("category=identity.name", "value=Salazar", "column=customers.last_name"),
    )  # fmt: skip
    done = demo.fulfil(narrow)
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout)["changed"] == {"customers.last_name": 1}
    with engine.connect() as c:
        after = c.execute(names, {"i": customer}).one()
        last = c.execute(text("SELECT last_name FROM customers WHERE id = :i"), {"i": customer})
        assert last.scalar() == "Salazar"
    engine.dispose()
    # Tax records say what was true then; the first name was not asked for.
    assert tuple(after) == tuple(before)
    _audit_verifies(demo)


def test_an_address_is_corrected_only_where_it_is_theirs(demo: Demo) -> None:
    customer, person = _closed(demo)
    (old,) = sorted(person.emails)
    engine = create_engine(demo.stores.crm_url)
    staff = text(
        "SELECT count(*) FROM email_messages WHERE customer_id = :i"
        " AND (from_address LIKE '%@360.agency' OR to_address LIKE '%@360.agency')"
    )
    with engine.connect() as c:
        staff_before = c.execute(staff, {"i": customer}).scalar()
    request_id = demo.request(
        "correction", f"customer_id={customer}",
        detail=("category=contact.email", "value=new.address@example.org"),
    )  # fmt: skip
    done = demo.fulfil(request_id)
    assert done.exit_code == 0, done.output
    changed = json.loads(done.stdout)["changed"]
    assert changed["customers.email"] == 1
    with engine.connect() as c:
        assert c.execute(staff, {"i": customer}).scalar() == staff_before  # staff untouched
        left = c.execute(
            text("SELECT count(*) FROM email_messages WHERE lower(from_address) = :a"
                 " OR lower(to_address) = :a"), {"a": old},
        ).scalar()  # fmt: skip
    engine.dispose()
    assert left == 0
    # Mail archives record what was sent: not rewritten, and said.
    skipped = json.loads(done.stdout)["skipped"]
    assert any(s.startswith("business_email.") and "archive" in s for s in skipped)
    assert old not in done.output and "new.address" not in done.output
    _audit_verifies(demo)


def test_every_kind_of_request_leaves_an_audit_log_that_verifies(demo: Demo) -> None:
    withdrawal = demo.request(
        "consent_withdrawal", f"email={MARKETING_EMAIL}", detail=("purpose=marketing",)
    )
    assert demo.fulfil(withdrawal).exit_code == 0
    customer, _ = _closed(demo)
    erasure = demo.request("erasure", f"customer_id={customer}")
    assert demo.fulfil(erasure).exit_code == 0
    _audit_verifies(demo)
