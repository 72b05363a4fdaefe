"""The demo CRM schema: the stores a CRM and marketing software company keeps.

Every table that holds personal information carries ``customer_id`` so that legal holds
and subject-access requests can name a person with one key; a website visitor or a
newsletter subscriber who is not a customer is known by a cookie (``web_clicks``) or an
address (``marketing_consents``) instead, their ``customer_id`` NULL. Timestamps are
timezone-aware: PostgreSQL stores them as ``timestamptz``; SQLite stores naive UTC text.
"""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
)

metadata = MetaData()


def _ts(name: str, nullable: bool = False) -> Column[object]:
    return Column(name, DateTime(timezone=True), nullable=nullable)


customers = Table(
    "customers",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("first_name", String(80), nullable=False),
    Column("last_name", String(80), nullable=False),
    Column("email", String(200), nullable=False),
    Column("phone", String(40)),
    Column("street_address", String(200)),
    Column("city", String(100)),
    Column("province", String(2)),
    Column("postal_code", String(7)),
    Column("language", String(2), nullable=False),
    Column("birth_date", Date),
    _ts("created_at"),
)

accounts = Table(
    "accounts",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("customer_id", ForeignKey("customers.id"), nullable=False, unique=True),
    Column("username", String(80), nullable=False),
    Column("password_hash", String(200), nullable=False),
    Column("plan", String(20), nullable=False),
    Column("status", String(10), nullable=False),
    _ts("created_at"),
    _ts("closed_at", nullable=True),
)

invoices = Table(
    "invoices",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("customer_id", ForeignKey("customers.id"), nullable=False),
    Column("number", String(20), nullable=False, unique=True),
    Column("billing_name", String(160), nullable=False),
    Column("billing_address", String(300), nullable=False),
    Column("amount", Numeric(12, 2), nullable=False),
    Column("currency", String(3), nullable=False),
    _ts("issued_at"),
)

payments = Table(
    "payments",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("invoice_id", ForeignKey("invoices.id"), nullable=False),
    Column("customer_id", ForeignKey("customers.id"), nullable=False),
    Column("card_brand", String(20), nullable=False),
    Column("card_last4", String(4), nullable=False),
    Column("card_holder", String(160), nullable=False),
    Column("amount", Numeric(12, 2), nullable=False),
    _ts("paid_at"),
)

login_events = Table(
    "login_events",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("customer_id", ForeignKey("customers.id"), nullable=False),
    _ts("occurred_at"),
    Column("ip_address", String(45), nullable=False),
    Column("user_agent", String(300), nullable=False),
    Column("browser", String(40), nullable=False),
    Column("browser_version", String(20), nullable=False),
    Column("os", String(40), nullable=False),
    Column("time_zone", String(40), nullable=False),
    Column("success", Boolean, nullable=False),
)

usage_events = Table(
    "usage_events",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("customer_id", ForeignKey("customers.id"), nullable=False),
    _ts("occurred_at"),
    Column("feature", String(60), nullable=False),
    Column("country", String(2), nullable=False),
    Column("duration_ms", Integer, nullable=False),
    Column("device", String(20), nullable=False),
)

web_clicks = Table(
    "web_clicks",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("visitor_id", String(36), nullable=False),
    Column("customer_id", ForeignKey("customers.id"), nullable=True),
    _ts("occurred_at"),
    Column("url", String(300), nullable=False),
    Column("referrer", String(300)),
    Column("feature", String(60), nullable=False),
    Column("country", String(2), nullable=False),
    Column("ip_address", String(45), nullable=False),
    Column("response_ms", Integer, nullable=False),
)

support_tickets = Table(
    "support_tickets",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("customer_id", ForeignKey("customers.id"), nullable=False),
    Column("channel", String(10), nullable=False),
    Column("subject", String(200), nullable=False),
    Column("notes", Text, nullable=False),
    _ts("opened_at"),
    _ts("closed_at", nullable=True),
)

email_messages = Table(
    "email_messages",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("customer_id", ForeignKey("customers.id"), nullable=False),
    Column("direction", String(8), nullable=False),
    Column("from_address", String(200), nullable=False),
    Column("to_address", String(200), nullable=False),
    Column("subject", String(200), nullable=False),
    Column("body", Text, nullable=False),
    _ts("sent_at"),
)

marketing_consents = Table(
    "marketing_consents",
    metadata,
    Column("id", Integer, primary_key=True),
    # NULL for a newsletter subscriber who never became a customer (known by the address)
    Column("customer_id", ForeignKey("customers.id"), nullable=True),
    Column("channel", String(5), nullable=False),
    Column("address", String(200), nullable=True),
    Column("source", String(40), nullable=False),
    _ts("consented_at"),
    _ts("withdrawn_at", nullable=True),
)

privacy_requests = Table(
    "privacy_requests",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("customer_id", ForeignKey("customers.id"), nullable=False),
    Column("kind", String(20), nullable=False),
    Column("details", Text, nullable=False),
    _ts("received_at"),
    _ts("responded_at", nullable=True),
)

# The columns a person's request looks them up by (the shipped policy's `subjects:`),
# indexed so that answering one person reads their rows, not whole tables
# (`tenure validate` warns of each one missing).
for _table, _column in (
    (customers, "email"), (customers, "phone"), (invoices, "customer_id"),
    (payments, "customer_id"), (login_events, "customer_id"), (usage_events, "customer_id"),
    (web_clicks, "customer_id"), (web_clicks, "visitor_id"), (support_tickets, "customer_id"),
    (email_messages, "customer_id"), (marketing_consents, "customer_id"),
    (marketing_consents, "address"), (privacy_requests, "customer_id"),
):  # fmt: skip
    Index(f"ix_{_table.name}_{_column}", _table.c[_column])
