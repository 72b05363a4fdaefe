"""The demo store generator: deterministic, consistent, and useful to every retention rule."""

from __future__ import annotations

import ipaddress
import json
import mailbox
import re
from datetime import UTC, datetime
from email import message_from_bytes
from email.message import Message
from email.utils import getaddresses, parsedate_to_datetime
from pathlib import Path

import pytest
from dateutil.relativedelta import relativedelta
from sqlalchemy import create_engine, func, insert, select

from flows.demo import files_and_mail
from flows.demo.files_and_mail import DemoFilesExist, build_demo_files
from flows.demo.generate import DemoSpec, DemoStoreExists, build_demo_store
from flows.demo.schema import customers, login_events, metadata
from tests.support.demo import instants, rows, table_contents
from tests.support.planted import MARKETING_EMAIL

AS_OF = datetime(2026, 11, 24, tzinfo=UTC)
SMALL = DemoSpec(customers=60, as_of=AS_OF)
INSERTION_ORDER = [
    "customers", "accounts", "invoices", "payments", "login_events", "usage_events",
    "web_clicks", "support_tickets", "email_messages", "marketing_consents", "privacy_requests",
]  # fmt: skip
EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
PHONE = re.compile(r"\b\d{3}[- ]\d{3}-\d{4}\b")
POSTAL = re.compile(r"^[ABCEGHJ-NPRSTVXY]\d[ABCEGHJ-NPRSTV-Z] \d[ABCEGHJ-NPRSTV-Z]\d$")
FRENCH_WORDS = {"de", "du", "le", "la", "les", "au", "à", "nous", "est", "et", "ou", "sur"}

# The shipped policy's rules: (name, query returning the timestamp the rule keys on, period).
RULES = [
    ("accounts closed + 1y", "SELECT closed_at FROM accounts", relativedelta(years=1)),
    (
        "customers via account closed + 2y",
        "SELECT a.closed_at FROM customers c JOIN accounts a ON a.customer_id = c.id",
        relativedelta(years=2),
    ),
    ("invoices issued + 6y", "SELECT issued_at FROM invoices", relativedelta(years=6)),
    (
        "payments via invoice issued + 6y",
        "SELECT i.issued_at FROM payments p JOIN invoices i ON i.id = p.invoice_id",
        relativedelta(years=6),
    ),
    ("logins + 1y", "SELECT occurred_at FROM login_events", relativedelta(years=1)),
    ("usage + 13 months", "SELECT occurred_at FROM usage_events", relativedelta(months=13)),
    ("clicks + 13 months", "SELECT occurred_at FROM web_clicks", relativedelta(months=13)),
    ("tickets closed + 2y", "SELECT closed_at FROM support_tickets", relativedelta(years=2)),
    ("e-mails sent + 3y", "SELECT sent_at FROM email_messages", relativedelta(years=3)),
    (
        "consents withdrawn + 10d",
        "SELECT withdrawn_at FROM marketing_consents",
        relativedelta(days=10),
    ),
    (
        "consents withdrawn + 3y",
        "SELECT withdrawn_at FROM marketing_consents",
        relativedelta(years=3),
    ),
    ("requests answered + 3y", "SELECT responded_at FROM privacy_requests", relativedelta(years=3)),
]


def build(path: Path, spec: DemoSpec = SMALL, *, replace: bool = False) -> dict[str, int]:
    engine = create_engine(f"sqlite:///{path}")
    try:
        return build_demo_store(engine, spec, replace=replace)
    finally:
        engine.dispose()


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One small demo store shared by the read-only tests below."""
    path = tmp_path_factory.mktemp("demo") / "crm.sqlite"
    build(path)
    return path


def test_same_spec_gives_identical_tables_whatever_the_chunk_size(
    store: Path, tmp_path: Path
) -> None:
    counts = build(tmp_path / "again.sqlite", DemoSpec(customers=60, as_of=AS_OF, chunk_size=7))
    assert table_contents(tmp_path / "again.sqlite") == table_contents(store)
    assert counts == {name: len(content) for name, content in table_contents(store).items()}


def test_another_seed_gives_other_people(store: Path, tmp_path: Path) -> None:
    build(tmp_path / "other.sqlite", DemoSpec(customers=60, seed=7, as_of=AS_OF))
    query = "SELECT first_name, last_name, email, created_at FROM customers ORDER BY id"
    assert rows(tmp_path / "other.sqlite", query) != rows(store, query)


def test_counts_follow_insertion_order_and_rough_volumes(tmp_path: Path) -> None:
    counts = build(tmp_path / "crm.sqlite")
    assert list(counts) == INSERTION_ORDER
    for table in metadata.sorted_tables:  # parents are filled before their children
        for key in table.foreign_keys:
            assert list(counts).index(key.column.table.name) < list(counts).index(table.name)
    assert counts["customers"] == counts["accounts"] == 60
    assert 0.8 * counts["invoices"] < counts["payments"] < counts["invoices"]
    assert counts["web_clicks"] > counts["usage_events"] > counts["login_events"]
    assert 4 <= counts["privacy_requests"] <= 12


def test_foreign_keys_hold_and_payments_match_their_invoice(store: Path) -> None:
    assert rows(store, "PRAGMA foreign_key_check") == []
    mismatched = rows(
        store,
        "SELECT p.id FROM payments p JOIN invoices i ON i.id = p.invoice_id "
        "WHERE p.customer_id != i.customer_id OR p.amount != i.amount "
        "OR p.paid_at < i.issued_at",
    )
    assert mismatched == []


@pytest.mark.parametrize(
    ("table", "column"),
    [
        ("invoices", "issued_at"),
        ("login_events", "occurred_at"),
        ("usage_events", "occurred_at"),
        ("support_tickets", "opened_at"),
        ("email_messages", "sent_at"),
    ],
)
def test_activity_happens_while_the_account_is_open(store: Path, table: str, column: str) -> None:
    outside = rows(
        store,
        f"SELECT t.id FROM {table} t JOIN accounts a ON a.customer_id = t.customer_id "
        f"JOIN customers c ON c.id = t.customer_id "
        f"WHERE t.{column} < c.created_at OR t.{column} > coalesce(a.closed_at, ?)",
        AS_OF.strftime("%Y-%m-%d %H:%M:%S.%f"),
    )
    assert outside == []


def test_every_timestamp_lies_in_the_eight_years_and_recent_rows_abound(store: Path) -> None:
    start, recent = AS_OF - relativedelta(years=8), AS_OF - relativedelta(days=30)
    for table in metadata.sorted_tables:
        for column in (c.name for c in table.columns if c.name.endswith("_at")):
            moments = list(instants(store, f"SELECT {column} FROM {table.name}"))
            assert moments, f"{table.name}.{column} is never set"
            assert start <= min(moments) and max(moments) <= AS_OF, f"{table.name}.{column}"
    for name in ("login_events", "usage_events", "web_clicks", "email_messages"):
        column = "sent_at" if name == "email_messages" else "occurred_at"
        moments = list(instants(store, f"SELECT {column} FROM {name}"))
        assert sum(m >= recent for m in moments) >= 0.05 * len(moments), name


@pytest.mark.parametrize(("sql", "period"), [rule[1:] for rule in RULES], ids=[r[0] for r in RULES])
def test_each_retention_rule_has_rows_on_both_sides(
    store: Path, sql: str, period: relativedelta
) -> None:
    cutoff = AS_OF - period
    moments = list(instants(store, sql))
    expired = sum(moment < cutoff for moment in moments)
    assert expired > 0
    assert len(moments) - expired > 0


def test_a_filled_store_is_kept_unless_replace_is_asked(tmp_path: Path) -> None:
    path = tmp_path / "s3cr3t-dir" / "crm.sqlite"
    path.parent.mkdir()
    first = build(path)
    with pytest.raises(DemoStoreExists) as raised:
        build(path, DemoSpec(customers=10, as_of=AS_OF))
    assert "customers" in str(raised.value) and "s3cr3t" not in str(raised.value)
    assert rows(path, "SELECT count(*) FROM customers") == [(60,)]

    again = build(path, DemoSpec(customers=10, as_of=AS_OF), replace=True)
    assert again["customers"] == 10 != first["customers"]
    assert rows(path, "SELECT count(*) FROM customers") == [(10,)]


def test_empty_demo_tables_are_filled_without_replace(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'crm.sqlite'}")
    metadata.create_all(engine)
    counts = build_demo_store(engine, DemoSpec(customers=10, as_of=AS_OF))
    with engine.connect() as connection:
        assert connection.scalar(select(func.count()).select_from(customers)) == 10
    engine.dispose()
    assert counts["customers"] == 10


def test_people_look_canadian_in_english_and_french(store: Path) -> None:
    people = rows(store, "SELECT language, province, postal_code, phone FROM customers")
    french = [p for p in people if p[0] == "fr"]
    assert 0.15 * len(people) <= len(french) <= 0.45 * len(people)
    assert all(province == "QC" for _, province, _, _ in french)
    assert all(POSTAL.match(str(postal)) for _, _, postal, _ in people)
    assert all(PHONE.fullmatch(str(phone)) for _, _, _, phone in people)


@pytest.mark.parametrize(
    ("table", "text"), [("support_tickets", "notes"), ("email_messages", "body")]
)
def test_free_text_carries_contact_details(store: Path, table: str, text: str) -> None:
    texts = [str(value) for (value,) in rows(store, f"SELECT {text} FROM {table}")]
    assert sum(bool(EMAIL.search(t)) for t in texts) > 0.7 * len(texts)
    assert sum(bool(PHONE.search(t)) for t in texts) > 0.7 * len(texts)


def test_french_customers_notes_are_in_french(store: Path) -> None:
    notes = rows(
        store,
        "SELECT c.language, t.notes FROM support_tickets t "
        "JOIN customers c ON c.id = t.customer_id",
    )
    french = [str(note) for language, note in notes if language == "fr"]
    assert french
    for note in french:
        words = set(re.findall(r"[^\W\d_]+", note.lower()))
        assert len(words & FRENCH_WORDS) >= 2, note
        assert "the" not in words, note


def test_as_of_must_be_timezone_aware() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        DemoSpec(as_of=datetime(2026, 11, 24))


@pytest.mark.postgres
def test_postgres_store_matches_sqlite_and_keeps_accepting_rows(store: Path, pg_url: str) -> None:
    engine = create_engine(pg_url)
    try:
        counts = build_demo_store(engine, SMALL)
        with engine.begin() as connection:
            first = connection.scalar(
                select(login_events.c.occurred_at).order_by(login_events.c.id)
            )
            new_id = connection.scalar(
                insert(customers)
                .values(first_name="A", last_name="B", email="a@b.ca", language="en",
                        created_at=AS_OF)
                .returning(customers.c.id)
            )  # fmt: skip
    finally:
        engine.dispose()
    assert counts == {name: len(content) for name, content in table_contents(store).items()}
    assert first is not None and first.utcoffset() is not None
    assert first == next(instants(store, "SELECT occurred_at FROM login_events ORDER BY id"))
    assert new_id == 61


# --------------------------------------------------------------------------- mail and web logs


def file_contents(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` by relative path (names are deterministic too)."""
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def messages(folder: Path) -> list[tuple[Path, Message]]:
    """A Maildir folder's messages with their files, checked to read as a Maildir."""
    files = sorted(p for sub in ("cur", "new") for p in (folder / sub).iterdir())
    assert len(mailbox.Maildir(folder, create=False)) == len(files)
    return [(p, message_from_bytes(p.read_bytes())) for p in files]


@pytest.fixture(scope="module")
def demo_files_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("demo-files")
    build_demo_files(root, SMALL)
    return root


def test_files_and_mail_are_deterministic(demo_files_root: Path, tmp_path: Path) -> None:
    counts = build_demo_files(tmp_path, SMALL)
    assert file_contents(tmp_path / "mail") == file_contents(demo_files_root / "mail")
    assert file_contents(tmp_path / "weblogs") == file_contents(demo_files_root / "weblogs")
    # the inbox also holds the planted marketing-only visitor's question
    assert counts["inbox messages"] == 400 + 1 and counts["billing messages"] == 150
    assert counts["access_log days"] == 420
    lines = [len(p.read_text().splitlines()) for p in (tmp_path / "weblogs").rglob("part-0.jsonl")]
    assert len(lines) == 420 and sum(lines) == counts["access_log lines"]
    assert min(lines) >= 20 and max(lines) <= 60


def test_every_correspondent_is_a_demo_customer(store: Path, demo_files_root: Path) -> None:
    """... but the planted marketing-only visitor, who writes once to support."""
    emails = {str(e) for (e,) in rows(store, "SELECT email FROM customers")} | {MARKETING_EMAIL}
    for folder, count, years in ((demo_files_root / "mail", 400 + 1, 4.5), (
        demo_files_root / "mail" / ".Billing", 150, 6.0,
    )):  # fmt: skip
        found = messages(folder)
        assert len(found) == count
        sent = []
        for path, msg in found:
            addresses = getaddresses([str(v) for k in ("From", "To", "Cc") for v in
                                      msg.get_all(k, [])])  # fmt: skip
            outside = [a for _, a in addresses if not a.endswith("@360.agency")]
            assert outside and outside[0] in emails, msg["Subject"]
            moment = parsedate_to_datetime(msg["Date"])
            assert path.stat().st_mtime == moment.timestamp()  # mtime = Date
            assert re.fullmatch(r"\s*<\d+\.[0-9a-f]{16}@[\w.]+>", msg["Message-ID"])  # a host
            sent.append(moment)
        oldest = AS_OF - relativedelta(days=round(365.25 * years) + 1)
        assert oldest <= min(sent) and max(sent) <= AS_OF
        cutoff = AS_OF - relativedelta(years=3 if count == 401 else 2)
        assert any(s < cutoff for s in sent) and any(s >= cutoff for s in sent)
    assert mailbox.Maildir(demo_files_root / "mail", create=False).list_folders() == ["Billing"]
    html = [m for _, m in messages(demo_files_root / "mail") if m.is_multipart()]
    assert 0.2 * 400 < len(html) < 0.7 * 400


def test_web_logs_are_daily_partitions_free_of_personal_urls(
    store: Path, demo_files_root: Path
) -> None:
    days = sorted((demo_files_root / "weblogs" / "access_log").iterdir())
    assert days[-1].name == "date=2026-11-23" and days[0].name == "date=2025-09-30"
    cookies = set()
    for day in days:
        for line in (day / "part-0.jsonl").read_text().splitlines():
            record = json.loads(line)
            assert record["ts"].startswith(day.name[5:]) and record["ts"].endswith("Z")
            assert "@" not in record["url"] and "%40" not in record["url"]
            ipaddress.ip_address(record["ip"])
            cookies.add(record["visitor_id"])
    clicks = {str(v) for (v,) in rows(store, "SELECT DISTINCT visitor_id FROM web_clicks")}
    assert len(cookies & clicks) >= 10  # returning visitors of the click stream
    assert None in cookies  # crawlers keep no cookie


def test_demo_files_are_kept_unless_replace_is_asked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, small in (("INBOX_MESSAGES", 5), ("BILLING_MESSAGES", 3), ("LOG_DAYS", 3)):
        monkeypatch.setattr(files_and_mail, name, small)  # sizes do not matter here
    spec = DemoSpec(customers=10, as_of=AS_OF)
    build_demo_files(tmp_path, spec)
    (tmp_path / "tenure-bookkeeping").mkdir()
    with pytest.raises(DemoFilesExist, match="demo folder 'mail'"):
        build_demo_files(tmp_path, spec)
    (tmp_path / "weblogs" / "access_log" / "stray").mkdir()
    build_demo_files(tmp_path, spec, replace=True)
    assert not (tmp_path / "weblogs" / "access_log" / "stray").exists()
    assert not (tmp_path / "tenure-bookkeeping").exists()  # stale marks would hide messages
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mail", "weblogs"]
