"""Fill the demo CRM schema with a deterministic, realistic fake store.

Tenure's examples, benchmarks and tests need a store whose rows straddle every retention
cut-off of the shipped policy (10 days to 7 years), in English and French, with personal
information buried in free text the way real support notes and e-mails carry it. The same
``DemoSpec`` always yields the same rows, so runs can be compared byte for byte.

Three people are planted for individual-rights requests (``flows.demo.planted``): a
customer chosen for a long-closed account with invoices still under the tax minimum
(``closed_account_customer``), the two parties of the shipped policy's legal hold, who
get rows in every table, and a marketing-only visitor whose clicks and consent carry no
customer id.
"""

from __future__ import annotations

import random
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import chain, islice
from typing import Any

import sqlalchemy as sa

from flows.demo.people import (
    Agent,
    Customer,
    Even,
    PeopleMaker,
    agency_staff,
    asciify,
    instant,
    ip_address,
    later,
    seeded_faker,
    years_before,
)
from flows.demo.planted import (
    CLOSED_FOR_YEARS,
    CLOSED_MARGIN,
    DISPUTE_HOLD,
    DISPUTE_PARTIES,
    MARKETING_PAGES,
    MARKETING_SOURCE,
    MARKETING_VISITOR,
    TAX_YEARS,
    visit_moments,
)
from flows.demo.schema import (
    accounts,
    customers,
    email_messages,
    invoices,
    login_events,
    marketing_consents,
    metadata,
    payments,
    privacy_requests,
    support_tickets,
    usage_events,
    web_clicks,
)
from flows.demo.vocabulary import (
    AFTERMATH,
    AGENCY,
    CAMPAIGNS,
    CHURN_SKEW,
    CONSENT_CHANNELS,
    CONSENT_SOURCES,
    COUNTRIES,
    FEATURES,
    FORM_FACTORS,
    FRENCH_SHARE,
    PHRASES,
    PLATFORMS,
    PRIVACY_KINDS,
    PROVINCES,
    RECENT,
    REFERRERS,
    TICKET_CHANNELS,
    TIERS,
    UTM,
    VERSIONS,
    YEARS,
)

__all__ = [
    "ClosedAccount",
    "DemoSpec",
    "DemoStoreExists",
    "Planted",
    "build_demo_store",
    "closed_account_customer",
    "planted_people",
]

_Row = dict[str, Any]


@dataclass(frozen=True, kw_only=True)
class DemoSpec:
    """What to generate; the caller passes ``as_of`` (timezone-aware), so no clock leaks in."""

    customers: int = 500
    seed: int = 2025
    as_of: datetime
    chunk_size: int = 5_000

    def __post_init__(self) -> None:
        if self.as_of.tzinfo is None or self.as_of.utcoffset() is None:
            raise ValueError("DemoSpec.as_of must be timezone-aware")
        if self.customers < 1 or self.chunk_size < 1:
            raise ValueError("DemoSpec.customers and DemoSpec.chunk_size must be positive")


class DemoStoreExists(Exception):
    """Refuses to mix a new demo into a store that holds rows; ``replace=True`` rebuilds."""

    def __init__(self, table: str) -> None:
        super().__init__(f"demo table {table!r} already holds rows; not overwriting it")
        self.table = table


# --------------------------------------------------------------------------- world


@dataclass(frozen=True)
class _World:
    """Everything shared by the table generators; each table draws from its own Random."""

    seed: int
    as_of: datetime
    start: datetime
    people: tuple[Customer, ...]
    agents: Mapping[str, tuple[Agent, ...]]
    mean_window: float  # seconds; per-customer volumes scale with their active window

    @classmethod
    def create(cls, spec: DemoSpec) -> _World:
        as_of = spec.as_of.astimezone(UTC)
        start = years_before(as_of, YEARS)
        maker = PeopleMaker(
            random.Random(f"{spec.seed}:customers"),
            {"en": seeded_faker("en_CA", spec.seed), "fr": seeded_faker("fr_CA", spec.seed)},
            as_of,
            start,
        )
        people = tuple(maker.customer(ident) for ident in range(1, spec.customers + 1))
        mean = sum(_window(p) for p in people) / len(people)
        return cls(spec.seed, as_of, start, people, agency_staff(spec.seed), mean)

    def rng(self, table: str) -> random.Random:
        """Each table its own stream, so changing one table never reshuffles another."""
        return random.Random(f"{self.seed}:{table}")

    def streams(self, table: str) -> tuple[random.Random, Even]:
        """A table's Random, plus even draws for its timestamps."""
        return self.rng(table), Even(self.rng(f"{table}:when"))

    def count(self, rng: random.Random, person: Customer, mean: float) -> int:
        """About ``mean`` per customer overall; long-lived customers get proportionally more.
        A party to the dispute gets at least one (the same draws either way)."""
        expected = mean * _window(person) / self.mean_window * rng.uniform(0.5, 1.5)
        whole = int(expected)
        drawn = whole + (rng.random() < expected - whole)
        return max(drawn, 1) if person.id in DISPUTE_PARTIES else drawn

    def soon_after(self, rng: random.Random, moment: datetime, seconds: int) -> datetime:
        """A few seconds to minutes later, yet never past ``as_of``."""
        return min(moment + timedelta(seconds=rng.randint(1, seconds)), self.as_of)

    def version(self, browser: str, moment: datetime) -> str:
        """The browser release current at ``moment``, so old logins carry old versions."""
        versions = VERSIONS[browser]
        elapsed = (moment - self.start) / (self.as_of - self.start)
        return versions[min(int(elapsed * len(versions)), len(versions) - 1)]


def _window(person: Customer) -> float:
    return max(person.end - person.created, RECENT).total_seconds()


# --------------------------------------------------------------------------- table rows


def _customer_rows(world: _World) -> Iterator[_Row]:
    for p in world.people:
        yield {
            "id": p.id,
            "first_name": p.first,
            "last_name": p.last,
            "email": p.email,
            "phone": p.phone,
            "street_address": p.street,
            "city": p.city,
            "province": p.province,
            "postal_code": p.postal,
            "language": p.lang,
            "birth_date": p.birth,
            "created_at": p.created,
        }


def _account_rows(world: _World) -> Iterator[_Row]:
    rng = world.rng("accounts")
    alphabet = "./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    for p in world.people:
        first, last = asciify(p.first), asciify(p.last)
        username = rng.choice((f"{first}.{last}", f"{first[:1]}{last}", f"{first}_{last[:1]}"))
        yield {
            "id": p.id,
            "customer_id": p.id,
            "username": username[:80],
            "password_hash": "$2b$12$" + "".join(rng.choices(alphabet, k=53)),
            "plan": p.plan,
            "status": "closed" if p.closed else "active",
            "created_at": world.soon_after(rng, p.created, 600),
            "closed_at": p.closed,
        }


def _invoice_rows(world: _World) -> Iterator[_Row]:
    rng, even = world.streams("invoices")
    number = 0
    for p in world.people:
        tier, cycle = p.plan.split("-")
        monthly = next(price for name, price, _ in TIERS if name == tier)
        base = Decimal(monthly * (10 if cycle == "annual" else 1))
        amount = (base * (1 + PROVINCES[p.province].tax)).quantize(Decimal("0.01"))
        dates = sorted(instant(p.created, p.end, even()) for _ in range(world.count(rng, p, 6)))
        for issued in dates:
            number += 1
            yield {
                "customer_id": p.id,
                "number": f"INV-{number:06d}",
                "billing_name": p.name,
                "billing_address": p.address,
                "amount": amount,
                "currency": "CAD",
                "issued_at": issued,
            }


def _payment_rows(world: _World, invoice_rows: Iterable[_Row]) -> Iterator[_Row]:
    rng = world.rng("payments")
    by_id = {p.id: p for p in world.people}
    unpaid = set(DISPUTE_PARTIES)  # their first invoice due is paid: the hold covers payments
    for invoice in invoice_rows:
        terms = timedelta(days=3 if rng.random() < 0.7 else 45)  # most cards are auto-charged
        paid = later(rng, invoice["issued_at"], terms, world.as_of)
        if paid is None and invoice["customer_id"] in unpaid:
            paid = world.as_of  # a party's first invoice falls due after as_of: paid then
        if paid is None or (rng.random() >= 0.9 and invoice["customer_id"] not in unpaid):
            continue
        unpaid.discard(invoice["customer_id"])
        p = by_id[invoice["customer_id"]]
        holder = rng.choice((p.name, p.name.upper(), f"{p.colleague_first} {p.colleague_last}"))
        yield {
            "invoice_id": invoice["id"],
            "customer_id": p.id,
            "card_brand": p.card_brand,
            "card_last4": p.card_last4,
            "card_holder": holder,
            "amount": invoice["amount"],
            "paid_at": paid,
        }


def _user_agent(browser: str, system: str, version: str) -> str:
    webkit = "AppleWebKit/537.36 (KHTML, like Gecko)"
    if system == "iOS":
        ios = version.replace(".", "_")
        return (
            f"Mozilla/5.0 (iPhone; CPU iPhone OS {ios} like Mac OS X) AppleWebKit/605.1.15 "
            f"(KHTML, like Gecko) Version/{version} Mobile/15E148 Safari/604.1"
        )
    platform = PLATFORMS[system]
    if browser == "Firefox":
        return f"Mozilla/5.0 ({platform}; rv:{version}) Gecko/20100101 Firefox/{version}"
    if browser == "Safari":
        return (
            f"Mozilla/5.0 ({platform}) AppleWebKit/605.1.15 (KHTML, like Gecko) "
            f"Version/{version} Safari/605.1.15"
        )
    mobile = " Mobile" if system == "Android" else ""
    if browser == "Edge":
        major = version.split(".")[0]
        return f"Mozilla/5.0 ({platform}) {webkit} Chrome/{major}.0.0.0 Safari/537.36 Edg/{version}"
    return f"Mozilla/5.0 ({platform}) {webkit} Chrome/{version}{mobile} Safari/537.36"


def _login_rows(world: _World) -> Iterator[_Row]:
    rng, even = world.streams("login_events")
    for p in world.people:
        home_zone = PROVINCES[p.province].time_zone
        for _ in range(world.count(rng, p, 10)):
            moment = instant(p.created, p.end, even())
            browser, system = rng.choice(p.devices)
            version = world.version(browser, moment)
            abroad = p.lang == "fr" and rng.random() < 0.06
            yield {
                "customer_id": p.id,
                "occurred_at": moment,
                "ip_address": ip_address(rng, "FR") if abroad else rng.choice(p.ips),
                "user_agent": _user_agent(browser, system, version),
                "browser": browser,
                "browser_version": version,
                "os": system,
                "time_zone": "Europe/Paris" if abroad else home_zone,
                "success": rng.random() < 0.95,
            }


def _country(rng: random.Random, lang: str) -> str:
    return COUNTRIES[lang].pick(rng)


def _usage_rows(world: _World) -> Iterator[_Row]:
    rng, even = world.streams("usage_events")
    for p in world.people:
        for _ in range(world.count(rng, p, 30)):
            yield {
                "customer_id": p.id,
                "occurred_at": instant(p.created, p.end, even()),
                "feature": rng.choice(FEATURES),
                "country": _country(rng, p.lang),
                "duration_ms": int(rng.lognormvariate(9.5, 1.1)),
                "device": FORM_FACTORS.pick(rng),
            }


def _click_url(rng: random.Random, lang: str, feature: str, email: str | None) -> str:
    slug = feature.replace("_", "-")
    path = rng.choice((f"features/{slug}", f"docs/{slug}", f"blog/{slug}-guide", "pricing"))
    url = f"https://{AGENCY}/{lang}/{path}"
    if rng.random() < 0.35:
        url += f"?{rng.choice(UTM)}&utm_campaign={rng.choice(CAMPAIGNS)}"
        if email and "newsletter" in url and rng.random() < 0.3:  # trackers leak addresses
            url += "&subscriber=" + email.replace("@", "%40")
    return url


def _click(
    rng: random.Random, visitor: str, moment: datetime, lang: str, p: Customer | None
) -> _Row:
    feature = rng.choice(FEATURES)
    referrer = REFERRERS.pick(rng)
    return {
        "visitor_id": visitor,
        "customer_id": p.id if p else None,
        "occurred_at": moment,
        "url": _click_url(rng, lang, feature, p.email if p else None),
        "referrer": f"https://{AGENCY}/{lang}/" if referrer == "home" else referrer,
        "feature": feature,
        "country": _country(rng, lang),
        "ip_address": rng.choice(p.ips) if p else ip_address(rng, "CA", v6=rng.random() < 0.2),
        "response_ms": int(rng.lognormvariate(5.2, 0.7)) + 20,
    }


def _click_rows(world: _World) -> Iterator[_Row]:
    """Customers' clicks, then ~30% more from anonymous visitors browsing in short sessions."""
    rng, even = world.streams("web_clicks")
    clicks = 0
    for p in world.people:
        visitors = [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(2)]
        for _ in range(world.count(rng, p, 40)):
            clicks += 1
            moment = instant(p.created, p.end, even())
            yield _click(rng, rng.choice(visitors), moment, p.lang, p)
    anonymous = round(clicks * 0.3)
    while anonymous > 0:
        visitor = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        lang = "fr" if rng.random() < FRENCH_SHARE else "en"
        moment = instant(world.start, world.as_of, even())
        for _ in range(min(anonymous, rng.randint(1, 8))):
            anonymous -= 1
            moment = world.soon_after(rng, moment, 240)
            yield _click(rng, visitor, moment, lang, None)


def _ticket_notes(rng: random.Random, p: Customer, channel: str, topic: str) -> str:
    phrases = PHRASES[p.lang]
    parts = [
        phrases.ticket_openers[channel],
        rng.choice(phrases.ticket_details),
        phrases.ticket_contacts.pick(rng),
    ]
    if rng.random() < 0.35:
        parts.append(rng.choice(phrases.ticket_extras))
    values = {
        **p.facts(),
        "topic": topic[:1].lower() + topic[1:],
        "feature": rng.choice(FEATURES),
        "credit": str(rng.choice((10, 25, 50, 79))),
    }
    return " ".join(parts).format_map(values)


def _ticket_rows(world: _World) -> Iterator[_Row]:
    rng, even = world.streams("support_tickets")
    for p in world.people:
        for _ in range(world.count(rng, p, 2)):
            channel = TICKET_CHANNELS.pick(rng)
            subject = rng.choice(PHRASES[p.lang].ticket_subjects)
            opened = instant(p.created, p.end, even())
            closed = later(rng, opened, timedelta(days=20), world.as_of)
            yield {
                "customer_id": p.id,
                "channel": channel,
                "subject": subject,
                "notes": _ticket_notes(rng, p, channel, subject),
                "opened_at": opened,
                "closed_at": closed if rng.random() < 0.85 else None,
            }


def mail_values(rng: random.Random, world: _World, p: Customer) -> tuple[Agent, dict[str, str]]:
    """The agent writing to (or written to by) the customer, and the values an e-mail
    template is filled with: the customer's facts, the agent's, a feature."""
    agent = rng.choice(world.agents[p.lang])
    values = {
        **p.facts(),
        "agent": agent.name,
        "agent_first": agent.name.split()[0],
        "agent_email": agent.email,
        "agent_phone": agent.phone,
        "feature": rng.choice(FEATURES).replace("_", " "),
    }
    return agent, values


def _message(rng: random.Random, world: _World, p: Customer) -> dict[str, str]:
    """One e-mail between the customer and either 360 Agency staff or their colleague.

    ``direction`` is seen from the customer's mailbox: outbound means the customer sent it.
    """
    phrases = PHRASES[p.lang]
    agent, values = mail_values(rng, world, p)
    outbound = rng.random() < 0.45
    if rng.random() < 0.2:  # with a colleague
        template = phrases.to_colleague_mail if outbound else phrases.from_colleague_mail
        other, line = p.colleague_email, rng.choice(phrases.colleague_lines)
    else:
        template = phrases.customer_mail if outbound else phrases.agent_mail
        other = agent.email
        line = rng.choice(phrases.customer_lines if outbound else phrases.agent_lines)
    body = template.format_map({**values, "line": line.format_map(values)})
    return {
        "direction": "outbound" if outbound else "inbound",
        "from_address": p.email if outbound else other,
        "to_address": other if outbound else p.email,
        "subject": rng.choice(phrases.email_subjects).format_map(values),
        "body": body,
    }


def _email_rows(world: _World) -> Iterator[_Row]:
    rng, even = world.streams("email_messages")
    for p in world.people:
        for _ in range(world.count(rng, p, 5)):
            sent = instant(p.created, p.end, even())
            yield {"customer_id": p.id, **_message(rng, world, p), "sent_at": sent}


def _consent_rows(world: _World) -> Iterator[_Row]:
    """Consents outlive accounts: withdrawals run to as_of, some days old, some years old."""
    rng, even = world.streams("marketing_consents")
    for p in world.people:
        if rng.random() >= 0.6:
            continue
        for channel in CONSENT_CHANNELS.pick(rng):
            source = rng.choice(CONSENT_SOURCES)
            consented = (
                world.soon_after(rng, p.created, 900)
                if source == "signup_form"
                else instant(p.created, world.as_of, rng.random(), skew=CHURN_SKEW)
            )
            withdrawn = (
                instant(consented, world.as_of, even(), recent=0.3, skew=CHURN_SKEW)
                if rng.random() < 0.4
                else None
            )
            yield {
                "customer_id": p.id,
                "channel": channel,
                "address": p.phone if channel == "sms" else p.email,
                "source": source,
                "consented_at": consented,
                "withdrawn_at": withdrawn,
            }


def _requester(rng: random.Random, people: Iterable[Customer], moment: datetime) -> Customer:
    """Someone who was a customer at ``moment``, or had left shortly before."""
    existing = [p for p in people if p.created <= moment]
    return rng.choice([p for p in existing if moment <= p.end + AFTERMATH] or existing)


def _privacy_rows(world: _World) -> Iterator[_Row]:
    """About 13 requests per 100 customers, in date order.

    Dates are drawn first and then given to a customer around at the time, so that even a
    store with a handful of requests has them spread over the eight years.
    """
    rng, even = world.streams("privacy_requests")
    first = min(p.created for p in world.people)
    count = max(1, round(len(world.people) * 0.13))
    for received in sorted(instant(first, world.as_of, even()) for _ in range(count)):
        p = _requester(rng, world.people, received)
        kind = PRIVACY_KINDS.pick(rng)
        late = rng.random() < 0.08 and received + 2 * RECENT <= world.as_of
        yield {
            "customer_id": p.id,
            "kind": kind,
            "details": PHRASES[p.lang].privacy[kind].format_map(p.facts()),
            "received_at": received,  # a few recent ones are still unanswered
            "responded_at": later(rng, received, RECENT * (2 if late else 1), world.as_of),
        }


# --------------------------------------------------------------------------- planted people


def _planted_clicks(world: _World) -> Iterator[_Row]:
    """The marketing-only visitor's clicks: her cookie, no customer id."""
    rng, visitor = world.rng("planted:web_clicks"), MARKETING_VISITOR
    for days in visitor.visits:
        moments = visit_moments(world.as_of, days, len(MARKETING_PAGES))
        referrer = "https://www.google.com/"
        for moment, (path, feature) in zip(moments, MARKETING_PAGES, strict=True):
            url = f"https://{AGENCY}/{visitor.lang}/{path}"
            yield {
                "visitor_id": visitor.visitor_id,
                "customer_id": None,
                "occurred_at": moment,
                "url": url,
                "referrer": referrer,
                "feature": feature,
                "country": "CA",
                "ip_address": visitor.ip,
                "response_ms": int(rng.lognormvariate(5.2, 0.7)) + 20,
            }
            referrer = url


def _planted_consents(world: _World) -> Iterator[_Row]:
    """The marketing-only visitor's consent, given on a visit and not withdrawn."""
    visitor = MARKETING_VISITOR
    subscribed = visit_moments(world.as_of, visitor.subscribed_on, len(MARKETING_PAGES))[-1]
    yield {
        "customer_id": None,
        "channel": "email",
        "address": visitor.email,
        "source": MARKETING_SOURCE,
        "consented_at": subscribed + timedelta(seconds=30),
        "withdrawn_at": None,
    }


@dataclass(frozen=True)
class ClosedAccount:
    """Planted person (a), and the cookie of their last click: their browser keeps it."""

    person: Customer
    cookie: str


def closed_account_customer(world: _World) -> ClosedAccount | None:
    """Planted person (a): the lowest customer id whose account closed more than two years
    before ``as_of`` with an invoice issued less than six years before (each a month clear
    of its cut-off), a login, a support ticket, a click and an e-mail in the CRM, an
    address no other customer has, and no part in the dispute. None if nobody fits."""
    closed_before = years_before(world.as_of, CLOSED_FOR_YEARS) - CLOSED_MARGIN
    issued_after = years_before(world.as_of, TAX_YEARS) + CLOSED_MARGIN
    addresses = Counter(p.email.lower() for p in world.people)
    candidates = {
        p.id: p
        for p in world.people
        if p.closed is not None
        and p.closed < closed_before
        and p.id not in DISPUTE_PARTIES
        and addresses[p.email.lower()] == 1
    }
    if not candidates:
        return None
    active = {r["customer_id"] for r in _invoice_rows(world) if r["issued_at"] > issued_after}
    for rows in (_login_rows(world), _ticket_rows(world), _email_rows(world)):
        active &= {r["customer_id"] for r in rows}
    last_click: dict[int, tuple[datetime, str]] = {}
    for click in _click_rows(world):
        ident = click["customer_id"]
        if ident in candidates and click["occurred_at"] >= last_click.get(ident, (_NEVER,))[0]:
            last_click[ident] = (click["occurred_at"], click["visitor_id"])
    fits = sorted(set(candidates) & active & set(last_click))
    return ClosedAccount(candidates[fits[0]], last_click[fits[0]][1]) if fits else None


_NEVER = datetime.min.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Planted:
    """Who a demo plants: person (a) if a customer fits, the dispute's parties it has,
    and the marketing-only visitor (always)."""

    closed: ClosedAccount | None
    parties: tuple[int, ...]
    customers: int

    def lines(self) -> list[str]:
        """One line each, for ``tenure demo build`` to say whom to try requests on."""
        if self.closed is None or self.closed.person.closed is None:
            first = f"none of the {self.customers} customers fits; build more customers"
        else:
            closed = self.closed.person.closed.date().isoformat()
            first = (
                f"customer {self.closed.person.id} "
                f"(account closed {closed}, cookie {self.closed.cookie})"
            )
        parties = [str(p) for p in self.parties]
        held = (
            f"customers {' and '.join(parties)}" if len(parties) > 1
            else f"customer {parties[0]}" if parties
            else f"none of the {self.customers} customers is a party"
        )  # fmt: skip
        visitor = MARKETING_VISITOR
        return [
            f"planted, closed account with invoices under the tax minimum: {first}",
            f"planted, under legal hold {DISPUTE_HOLD}: {held}",
            f"planted, marketing only (no customer row): {visitor.email}, "
            f"cookie {visitor.visitor_id}",
        ]


def planted_people(spec: DemoSpec) -> Planted:
    """Who the demo built from ``spec`` plants."""
    world = _World.create(spec)
    parties = tuple(p.id for p in world.people if p.id in DISPUTE_PARTIES)
    return Planted(closed_account_customer(world), parties, len(world.people))


def _numbered(rows: Iterable[_Row]) -> Iterator[_Row]:
    """Give rows ids 1, 2, ... in order: deterministic, and known before insertion."""
    for ident, row in enumerate(rows, start=1):
        row["id"] = ident
        yield row


def _table_rows(world: _World) -> list[tuple[sa.Table, Iterable[_Row]]]:
    """Tables in foreign-key order, each paired with its (lazy) rows."""
    invoice_rows = list(_numbered(_invoice_rows(world)))
    return [
        (customers, _customer_rows(world)),
        (accounts, _account_rows(world)),
        (invoices, invoice_rows),
        (payments, _numbered(_payment_rows(world, invoice_rows))),
        (login_events, _numbered(_login_rows(world))),
        (usage_events, _numbered(_usage_rows(world))),
        (web_clicks, _numbered(chain(_click_rows(world), _planted_clicks(world)))),
        (support_tickets, _numbered(_ticket_rows(world))),
        (email_messages, _numbered(_email_rows(world))),
        (marketing_consents, _numbered(chain(_consent_rows(world), _planted_consents(world)))),
        (privacy_requests, _numbered(_privacy_rows(world))),
    ]


# --------------------------------------------------------------------------- database


def _prepare_schema(conn: sa.Connection, replace: bool) -> None:
    """Refuse to touch a filled store unless asked; then (re)create the demo tables.

    Replacing also drops Tenure's own tables (journal, marks, rollups): they describe the
    rows being replaced, and stale marks would hide new rows from the next run.
    """
    if replace:
        for name in sa.inspect(conn).get_table_names():
            if name.startswith("tenure_"):
                sa.Table(name, sa.MetaData()).drop(conn)
        metadata.drop_all(conn)
    else:
        existing = set(sa.inspect(conn).get_table_names())
        for table in metadata.sorted_tables:
            filled = sa.select(sa.exists().select_from(table))
            if table.name in existing and conn.execute(filled).scalar():
                raise DemoStoreExists(table.name)
    metadata.create_all(conn)


def _insert(conn: sa.Connection, table: sa.Table, rows: Iterable[_Row], chunk_size: int) -> int:
    written = 0
    iterator = iter(rows)
    while chunk := list(islice(iterator, chunk_size)):
        conn.execute(table.insert(), chunk)
        written += len(chunk)
    return written


def _advance_sequences(conn: sa.Connection) -> None:
    """Explicit ids leave PostgreSQL's serial sequences at 1; move them past the demo rows."""
    for table in metadata.sorted_tables:
        sequence = sa.func.pg_get_serial_sequence(table.name, "id")
        after = sa.func.coalesce(sa.func.max(table.c.id), 0) + 1
        conn.execute(sa.select(sa.func.setval(sequence, after, False)))


def build_demo_store(engine: sa.Engine, spec: DemoSpec, *, replace: bool = False) -> dict[str, int]:
    """Create the schema and fill it; returns rows written per table (in insertion order).

    Everything happens in one transaction, so a failure leaves no half-filled demo behind.
    """
    with engine.begin() as conn:
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql("PRAGMA foreign_keys=ON")  # before any DML opens a transaction
        _prepare_schema(conn, replace)
        world = _World.create(spec)
        counts = {
            table.name: _insert(conn, table, rows, spec.chunk_size)
            for table, rows in _table_rows(world)
        }
        if conn.dialect.name == "postgresql":
            _advance_sequences(conn)
    return counts
