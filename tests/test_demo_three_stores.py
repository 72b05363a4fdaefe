"""One nightly run of the shipped policy over the demo's three kinds of store: the SQLite
CRM, the Maildir of business e-mail and the date-partitioned web logs."""

from __future__ import annotations

import email
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from email import policy
from email.parser import BytesParser
from email.utils import getaddresses, parsedate_to_datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import create_engine, func, select

from flows import audit
from flows.demo.schema import customers
from flows.run.lifecycle import run_policy
from flows.run.types import DatasetOutcome, RunOptions, RunReport
from flows.state.tables import chunks, open_state
from tests.support.demo import DEMO_AS_OF, build_demo, demo_files_environ
from tests.support.paths import SHIPPED_POLICY

MONTREAL = ZoneInfo("America/Montreal")
CRM_DATASETS = {
    "customers", "accounts", "invoices", "payments", "login_events", "usage_events",
    "web_clicks", "support_tickets", "email_messages", "marketing_contacts",
    "marketing_consent_records", "privacy_requests",
}  # fmt: skip

Messages = dict[str, tuple[bytes, float]]  # by Maildir unique name: bytes and mtime


@dataclass(frozen=True)
class Demo:
    root: Path
    state_url: str
    before: dict[str, Messages]
    partitions_before: dict[date, bytes]
    customers: dict[str, tuple[str, str]]  # e-mail -> full name, phone (before the run)
    report: RunReport
    rerun: RunReport

    def outcome(self, dataset: str) -> DatasetOutcome:
        return next(o for o in self.report.outcomes if o.dataset == dataset)


def _messages(folder: Path) -> Messages:
    return {
        p.name.split(":")[0]: (p.read_bytes(), p.stat().st_mtime)
        for sub in ("cur", "new")
        for p in (folder / sub).iterdir()
    }


def _partitions(root: Path) -> dict[date, bytes]:
    folders = (root / "weblogs" / "access_log").iterdir()
    return {date.fromisoformat(f.name[5:]): (f / "part-0.jsonl").read_bytes() for f in folders}


def _sent(raw: bytes) -> datetime:
    return parsedate_to_datetime(str(email.message_from_bytes(raw)["Date"]))


def _readable(raw: bytes) -> str:
    """Everything a reader of the file could see: raw bytes, decoded headers, every part."""
    msg = BytesParser(policy=policy.default).parsebytes(raw)
    headers = "\n".join(f"{k}: {v}" for k, v in msg.items())
    parts = [str(p.get_content()) for p in msg.walk() if p.get_content_maintype() == "text"]
    return "\n".join([raw.decode("utf-8", "replace"), headers, *parts])


@pytest.fixture(scope="module")
def demo(
    tmp_path_factory: pytest.TempPathFactory,
    demo_files_template: Path,
    pseudonym_keys: dict[str, str],
) -> Iterator[Demo]:
    root = tmp_path_factory.mktemp("three-stores")
    crm = f"sqlite:///{root / 'crm.sqlite'}"
    build_demo(crm)
    shutil.copytree(demo_files_template, root, dirs_exist_ok=True)
    environ = {"TENURE_CRM_URL": crm, **demo_files_environ(root)}
    state_url = f"sqlite:///{root / 'state.sqlite'}"
    engine = create_engine(crm)
    with engine.connect() as c:
        rows = c.execute(select(customers.c.email, customers.c.first_name,
                                customers.c.last_name, customers.c.phone))  # fmt: skip
        people = {r.email: (f"{r.first_name} {r.last_name}", r.phone) for r in rows}
    engine.dispose()
    before = {"inbox": _messages(root / "mail"), "billing": _messages(root / "mail" / ".Billing")}
    partitions = _partitions(root)
    options = RunOptions(now=DEMO_AS_OF, state_url=state_url, coverage_gate=False)
    report = run_policy(SHIPPED_POLICY, options, environ=environ)
    after_first = _messages(root / "mail" / ".Billing")
    rerun = run_policy(SHIPPED_POLICY, options, environ=environ)
    assert _messages(root / "mail" / ".Billing") == after_first  # marked: not redone
    yield Demo(root, state_url, before, partitions, people, report, rerun)


def test_every_binding_ran_and_a_rerun_finds_nothing(demo: Demo) -> None:
    assert not demo.report.failed, [(o.dataset, o.error) for o in demo.report.outcomes]
    assert {o.store for o in demo.report.outcomes} == {"crm", "mail", "weblogs"}
    for outcome in demo.report.outcomes:
        assert outcome.processed == outcome.expired > 0, outcome.dataset
    assert {o.dataset for o in demo.report.outcomes if o.store == "crm"} == CRM_DATASETS
    assert not demo.rerun.failed
    assert {o.dataset: o.processed for o in demo.rerun.outcomes} == {
        o.dataset: 0 for o in demo.report.outcomes
    }


def test_web_log_partitions_past_the_cutoff_are_dropped_whole(demo: Demo) -> None:
    outcome = demo.outcome("web_access_log")
    cutoff = outcome.cutoff.astimezone(MONTREAL).date()
    after = _partitions(demo.root)
    expected = {day: data for day, data in demo.partitions_before.items() if day >= cutoff}
    assert after == expected  # newer days byte for byte, older days gone
    dropped = [data for day, data in demo.partitions_before.items() if day < cutoff]
    assert len(dropped) >= 20 and len(after) >= 390
    assert outcome.processed == sum(len(data.splitlines()) for data in dropped)
    leftovers = [p.name for p in (demo.root / "weblogs" / "access_log").iterdir()]
    assert all(name.startswith("date=") for name in leftovers)


def test_inbox_messages_past_three_years_are_deleted_the_rest_untouched(demo: Demo) -> None:
    cutoff = demo.outcome("business_email").cutoff
    before = demo.before["inbox"]
    kept = {k: v for k, v in before.items() if _sent(v[0]) >= cutoff}
    assert _messages(demo.root / "mail") == kept  # bytes and mtimes
    assert demo.outcome("business_email").processed == len(before) - len(kept) > 50


def test_billing_messages_past_two_years_are_redacted_and_kept(demo: Demo) -> None:
    cutoff = demo.outcome("billing_email").cutoff
    before, after = demo.before["billing"], _messages(demo.root / "mail" / ".Billing")
    assert after.keys() == before.keys()
    old = [k for k, (raw, _) in before.items() if _sent(raw) < cutoff]
    assert len(old) == demo.outcome("billing_email").processed > 50
    for key, (raw, mtime) in before.items():
        if key not in old:
            assert after[key] == (raw, mtime)
            continue
        new, new_mtime = after[key]
        assert new_mtime == mtime and _sent(new) == _sent(raw)  # still dated, still filed
        original = email.message_from_bytes(raw)
        assert email.message_from_bytes(new)["Message-ID"] == original["Message-ID"]
        addresses = [a for _, a in getaddresses(original.get_all("From", []) +
                                                original.get_all("To", []))]  # fmt: skip
        customer = next(a for a in addresses if not a.endswith("@360.agency"))
        name, phone = demo.customers[customer]
        text = _readable(new).replace(original["Message-ID"].strip(), "")
        for value in (customer, name, phone):
            assert value not in text, key
        assert "@" not in text.replace("@360.agency", ""), key  # no address survives


def test_ledger_and_audit_record_all_three_stores(demo: Demo) -> None:
    state = open_state(demo.state_url)
    try:
        entries = audit.entries(state, demo.report.run_id)
        with state.connect() as c:
            rows = c.execute(
                select(chunks.c.dataset, func.sum(chunks.c.rows))
                .where(chunks.c.run_id == demo.report.run_id)
                .group_by(chunks.c.dataset)
            )
            ledger = {dataset: int(total) for dataset, total in rows}
        assert audit.verify(state).ok
    finally:
        state.dispose()
    by_dataset = {e["dataset"]: e for e in entries if "dataset" in e}
    counters = {
        "delete": "deleted",
        "anonymize": "anonymized",
        "aggregate_then_delete": "aggregated",
    }
    for outcome in demo.report.outcomes:
        entry = by_dataset[outcome.dataset]
        assert entry["store"] == outcome.store and entry["status"] == "ok"
        assert entry[counters[outcome.action]] == outcome.processed == ledger[outcome.dataset]
    assert by_dataset["billing_email"]["risk"]["direct_identifiers"]["body"] == "removed"
