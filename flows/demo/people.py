"""The demo store's people: its customers and 360 Agency's customer-success agents.

Each customer is drawn once, with every personal detail the tables later quote (name,
address, phone, colleague, card, devices) and the dates that bound their activity, so all
rows about one person agree with each other. The helpers that place instants in time live
here too, since customers' sign-up and closure dates are the first thing drawn with them.
"""

from __future__ import annotations

import ipaddress
import math
import random
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from faker import Faker

from flows.demo.vocabulary import (
    AGENCY,
    CARDS,
    CHURN_SKEW,
    CLOSED_SHARE,
    DEVICES,
    FREE_MAIL,
    FRENCH_SHARE,
    GOLDEN,
    IPV4_PREFIXES,
    IPV6_PREFIXES,
    LAUNCH,
    LEGACY_SHARE,
    PHRASES,
    POSTAL_LETTERS,
    PROVINCE_ODDS,
    PROVINCES,
    RECENT,
    RECENT_SHARE,
    TIER_ODDS,
    Province,
)


@dataclass(frozen=True, slots=True)
class Agent:
    name: str
    email: str
    phone: str


@dataclass(frozen=True, slots=True)
class Customer:
    id: int
    lang: str
    first: str
    last: str
    email: str
    phone: str
    street: str
    city: str
    province: str
    postal: str
    birth: date
    created: datetime
    closed: datetime | None
    end: datetime  # when the customer's activity stops: account closure or as_of
    plan: str
    company: str
    colleague_first: str
    colleague_last: str
    colleague_email: str
    colleague_phone: str
    card_brand: str
    card_last4: str
    ips: tuple[str, ...]
    devices: tuple[tuple[str, str], ...]

    @property
    def name(self) -> str:
        return f"{self.first} {self.last}"

    @property
    def address(self) -> str:
        place = PHRASES[self.lang].province_label.format(city=self.city, province=self.province)
        return f"{self.street}, {place} {self.postal}"

    def facts(self) -> dict[str, str]:
        """The personal details that templates may quote."""
        return {
            "name": self.name,
            "first": self.first,
            "email": self.email,
            "phone": self.phone,
            "address": self.address,
            "postal": self.postal,
            "birth": self.birth.isoformat(),
            "company": self.company,
            "colleague": f"{self.colleague_first} {self.colleague_last}",
            "colleague_first": self.colleague_first,
            "colleague_email": self.colleague_email,
            "colleague_phone": self.colleague_phone,
            "city": self.city,
            "province": self.province,
        }


class Even:
    """Golden-ratio (Weyl) draws in [0, 1).

    They cover [0, 1) evenly even over a handful of rows, so small tables (a few privacy
    requests, a dozen withdrawals) still straddle every retention cut-off for any seed.
    """

    __slots__ = ("_u",)

    def __init__(self, rng: random.Random) -> None:
        self._u = rng.random()

    def __call__(self) -> float:
        self._u = (self._u + GOLDEN) % 1.0
        return self._u


def instant(
    start: datetime, end: datetime, u: float, recent: float = RECENT_SHARE, skew: float = 1.0
) -> datetime:
    """The instant at draw ``u`` of [start, end], whole seconds.

    A ``recent`` share of draws lands in the window's final 30 days, denser towards ``end``, so
    every table has rows days old next to years-old ones; ``skew`` > 1 pulls the others towards
    ``start`` (things that happen soon after sign-up, such as churn or unsubscribing).
    """
    if u < recent:
        start, u = max(start, end - RECENT), math.sqrt(u / recent)
    else:
        u = ((u - recent) / (1.0 - recent)) ** skew
    return start + timedelta(seconds=int((end - start).total_seconds() * u))


def later(
    rng: random.Random, start: datetime, longest: timedelta, limit: datetime
) -> datetime | None:
    """``start`` plus a random delay up to ``longest``; None (still pending) past ``limit``."""
    moment = start + timedelta(seconds=int(longest.total_seconds() * rng.random()))
    return moment if moment <= limit else None


def years_before(moment: datetime, years: int) -> datetime:
    try:
        return moment.replace(year=moment.year - years)
    except ValueError:  # 29 February
        return moment.replace(year=moment.year - years, day=28)


def asciify(text: str) -> str:
    """Lower-case ASCII letters and digits only, for e-mail addresses and domains."""
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return "".join(ch for ch in folded.lower() if ch.isalnum())


def _phone(rng: random.Random, province: Province, lang: str) -> str:
    area = rng.choice(province.area_codes)
    exchange, line = rng.randint(201, 989), rng.randint(0, 9999)
    return f"{area} {exchange}-{line:04d}" if lang == "fr" else f"{area}-{exchange}-{line:04d}"


def _postal(rng: random.Random, first: str) -> str:
    def letter() -> str:
        return rng.choice(POSTAL_LETTERS)

    return f"{first}{rng.randint(0, 9)}{letter()} {rng.randint(0, 9)}{letter()}{rng.randint(0, 9)}"


def ip_address(rng: random.Random, country: str, v6: bool = False) -> str:
    if v6:
        groups = ":".join(f"{rng.getrandbits(16):x}" for _ in range(6))
        return str(ipaddress.IPv6Address(f"{rng.choice(IPV6_PREFIXES[country])}:{groups}"))
    return f"{rng.choice(IPV4_PREFIXES[country])}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"


def _street(fake: Faker, lang: str) -> str:
    street = fake.street_address()
    if lang == "fr":  # fr_CA borrows English unit words
        street = street.replace(" Suite ", ", bureau ").replace(" Apt. ", ", app. ")
    return street


def _email(rng: random.Random, first: str, last: str, domain: str) -> str:
    local = rng.choice((f"{first}.{last}", f"{first[:1]}{last}", f"{first}{rng.randint(1, 99)}"))
    return f"{local}@{domain}"


def _created(rng: random.Random, even: Even, start: datetime, as_of: datetime) -> datetime:
    """An import at launch plus steady sign-ups, so every year has customers and activity."""
    if rng.random() < LEGACY_SHARE:
        return instant(start, start + LAUNCH, even(), recent=0.0)
    return instant(start, as_of, even())


def _closed(rng: random.Random, even: Even, created: datetime, as_of: datetime) -> datetime | None:
    opened_for = created + RECENT
    if rng.random() >= CLOSED_SHARE or opened_for >= as_of:
        return None
    return instant(opened_for, as_of, even(), skew=CHURN_SKEW)


@dataclass
class PeopleMaker:
    """Builds customers one by one; the only place Faker is called, once per name or street."""

    rng: random.Random
    fakers: Mapping[str, Faker]
    as_of: datetime
    start: datetime

    def __post_init__(self) -> None:
        self.created_draws = Even(self.rng)
        self.closed_draws = Even(self.rng)

    def customer(self, ident: int) -> Customer:
        rng = self.rng
        lang = "fr" if rng.random() < FRENCH_SHARE else "en"
        fake = self.fakers[lang]
        code = "QC" if lang == "fr" else PROVINCE_ODDS.pick(rng)
        province = PROVINCES[code]
        city = rng.choice(list(province.cities))
        first, last = fake.first_name(), fake.last_name()
        colleague_first, colleague_last = fake.first_name(), fake.last_name()
        company = fake.company()
        work = f"{asciify(company)[:20] or asciify(last)}.{'ca' if rng.random() < 0.7 else 'com'}"
        mail_domain = work if rng.random() < 0.5 else rng.choice(FREE_MAIL[lang])
        created = _created(rng, self.created_draws, self.start, self.as_of)
        closed = _closed(rng, self.closed_draws, created, self.as_of)
        tier = TIER_ODDS.pick(rng)
        return Customer(
            id=ident,
            lang=lang,
            first=first,
            last=last,
            email=_email(rng, asciify(first), asciify(last), mail_domain),
            phone=_phone(rng, province, lang),
            street=_street(fake, lang),
            city=city,
            province=code,
            postal=_postal(rng, province.cities[city]),
            birth=date(1950, 1, 1) + timedelta(days=rng.randint(0, 19_000)),
            created=created,
            closed=closed,
            end=closed or self.as_of,
            plan=f"{tier}-{'annual' if rng.random() < 0.3 else 'monthly'}",
            company=company,
            colleague_first=colleague_first,
            colleague_last=colleague_last,
            colleague_email=f"{asciify(colleague_first)}.{asciify(colleague_last)}@{work}",
            colleague_phone=_phone(rng, province, lang),
            card_brand=CARDS.pick(rng),
            card_last4=f"{rng.randint(0, 9999):04d}",
            ips=tuple(
                ip_address(rng, "CA", v6=k == 2) for k in range(2 if rng.random() < 0.7 else 3)
            ),
            devices=tuple(DEVICES.pick(rng) for _ in range(rng.randint(1, 2))),
        )


def seeded_faker(locale: str, seed: int) -> Faker:
    fake = Faker(locale)
    fake.seed_instance(seed)
    return fake


def agency_staff(seed: int) -> dict[str, tuple[Agent, ...]]:
    """360 Agency's customer-success staff, who sign outbound mail with their direct line."""
    agents: dict[str, tuple[Agent, ...]] = {}
    for lang, locale in (("en", "en_CA"), ("fr", "fr_CA")):
        fake = seeded_faker(locale, seed + 1)
        people = [(fake.first_name(), fake.last_name()) for _ in range(5)]
        agents[lang] = tuple(
            Agent(
                f"{first} {last}",
                f"{asciify(first)}.{asciify(last)}@{AGENCY}",
                f"514-360-{4100 + n * 7:04d}",
            )
            for n, (first, last) in enumerate(people)
        )
    return agents
