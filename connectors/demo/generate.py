"""Fill the demo CRM schema with a deterministic, realistic fake store.

Tenure's examples, benchmarks and tests need a store whose rows straddle every retention
cut-off of the shipped policy (10 days to 7 years), in English and French, with personal
information buried in free text the way real support notes and e-mails carry it. The same
``DemoSpec`` always yields the same rows, so runs can be compared byte for byte.
"""

from __future__ import annotations

import ipaddress
import math
import random
import unicodedata
import uuid
from bisect import bisect
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from itertools import accumulate, islice
from typing import Any, Generic, TypeVar

import sqlalchemy as sa
from faker import Faker

from connectors.demo.schema import (
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

__all__ = ["DemoSpec", "DemoStoreExists", "build_demo_store"]

_Row = dict[str, Any]
_T = TypeVar("_T")

_YEARS = 8
_RECENT = timedelta(days=30)
_RECENT_SHARE = 0.12  # share of instants put in a window's final 30 days: fresh rows everywhere
_LEGACY_SHARE = 0.35  # customers imported at launch, so the oldest year is well populated
_LAUNCH = timedelta(days=45)  # how long that import took
_FRENCH_SHARE = 0.30
_CLOSED_SHARE = 0.35
_CHURN_SKEW = 3.0  # churn and unsubscribing come mostly early in a relationship
_AFTERMATH = timedelta(days=180)  # privacy requests still arrive this long after closure
_AGENCY = "360.agency"
_GOLDEN = 0.6180339887498949

_FEATURES = (
    "contacts",
    "pipeline",
    "email_campaigns",
    "reports",
    "calendar",
    "tasks",
    "forms",
    "automations",
    "landing_pages",
    "integrations",
)


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


# --------------------------------------------------------------------------- reference data


class _Odds(Generic[_T]):
    """A weighted choice whose cumulative weights are summed once: it runs for most rows."""

    __slots__ = ("_cumulative", "_values")

    def __init__(self, *options: tuple[_T, int]) -> None:
        self._values = [value for value, _ in options]
        self._cumulative = list(accumulate(weight for _, weight in options))

    def pick(self, rng: random.Random) -> _T:
        return self._values[bisect(self._cumulative, rng.random() * self._cumulative[-1])]


@dataclass(frozen=True)
class _Province:
    weight: int  # relative share of English-speaking customers
    area_codes: tuple[int, ...]
    cities: Mapping[str, str]  # city -> first letter of its postal codes
    time_zone: str
    tax: Decimal


_PROVINCES: Mapping[str, _Province] = {
    "ON": _Province(
        40,
        (416, 647, 437, 905, 289, 613, 519, 705),
        {
            "Toronto": "M",
            "Ottawa": "K",
            "Mississauga": "L",
            "Hamilton": "L",
            "London": "N",
            "Kingston": "K",
            "Sudbury": "P",
        },
        "America/Toronto",
        Decimal("0.13"),
    ),
    "BC": _Province(
        15,
        (604, 778, 250, 236),
        {"Vancouver": "V", "Victoria": "V", "Burnaby": "V", "Surrey": "V", "Kelowna": "V"},
        "America/Vancouver",
        Decimal("0.12"),
    ),
    "AB": _Province(
        12,
        (403, 587, 780, 825),
        {"Calgary": "T", "Edmonton": "T", "Red Deer": "T"},
        "America/Edmonton",
        Decimal("0.05"),
    ),
    "QC": _Province(
        8,
        (514, 438, 450, 418, 581, 819, 367),
        {
            "Montréal": "H",
            "Québec": "G",
            "Laval": "H",
            "Gatineau": "J",
            "Sherbrooke": "J",
            "Trois-Rivières": "G",
            "Longueuil": "J",
        },
        "America/Montreal",
        Decimal("0.14975"),
    ),
    "MB": _Province(
        4, (204, 431), {"Winnipeg": "R", "Brandon": "R"}, "America/Winnipeg", Decimal("0.12")
    ),
    "SK": _Province(
        3, (306, 639), {"Regina": "S", "Saskatoon": "S"}, "America/Regina", Decimal("0.11")
    ),
    "NS": _Province(
        4,
        (902, 782),
        {"Halifax": "B", "Dartmouth": "B", "Truro": "B"},
        "America/Halifax",
        Decimal("0.15"),
    ),
    "NB": _Province(
        3,
        (506,),
        {"Moncton": "E", "Saint John": "E", "Fredericton": "E"},
        "America/Moncton",
        Decimal("0.15"),
    ),
    "NL": _Province(
        2, (709,), {"St. John's": "A", "Mount Pearl": "A"}, "America/St_Johns", Decimal("0.15")
    ),
    "PE": _Province(
        1,
        (902, 782),
        {"Charlottetown": "C", "Summerside": "C"},
        "America/Halifax",
        Decimal("0.15"),
    ),
}
_PROVINCE_ODDS = _Odds(*((code, province.weight) for code, province in _PROVINCES.items()))
_POSTAL_LETTERS = "ABCEGHJKLMNPRSTVWXYZ"  # D, F, I, O, Q, U never appear in Canadian codes

_TIERS = (("starter", 29, 50), ("growth", 79, 35), ("enterprise", 249, 15))  # name, $/month, weight
_TIER_ODDS = _Odds(*((name, weight) for name, _, weight in _TIERS))
_CARDS = _Odds(("Visa", 50), ("Mastercard", 35), ("Amex", 15))
_FREE_MAIL = {
    "en": ("gmail.com", "outlook.com", "hotmail.com", "yahoo.ca", "icloud.com", "shaw.ca"),
    "fr": ("gmail.com", "videotron.ca", "hotmail.com", "outlook.com", "sympatico.ca"),
}
_IPV4_PREFIXES = {
    "CA": ("24.114", "70.49", "99.230", "142.114", "174.88", "184.146", "207.96"),
    "US": ("73.15", "98.204", "107.77", "172.58"),
    "FR": ("90.12", "82.64", "86.245", "109.190"),
}
_IPV6_PREFIXES = {
    "CA": ("2607:fea8", "2001:56a", "2605:8d80", "2604:3d08"),
    "US": ("2600:1700", "2601:646"),
    "FR": ("2a01:cb00", "2a01:e0a"),
}

# Browser versions in release order; a login's version follows its date across the 8 years.
_VERSIONS = {
    "Chrome": (
        "64.0.3282.186",
        "71.0.3578.98",
        "80.0.3987.149",
        "88.0.4324.150",
        "97.0.4692.99",
        "109.0.5414.120",
        "120.0.6099.129",
        "131.0.6778.205",
        "138.0.7204.157",
    ),
    "Firefox": ("58.0", "65.0", "73.0", "85.0", "96.0", "109.0", "121.0", "133.0", "140.0"),
    "Safari": ("11.0", "12.1", "13.1", "14.1", "15.6", "16.5", "17.4", "18.2", "18.5"),
    "Edge": (
        "79.0.309.71",
        "80.0.361.69",
        "88.0.705.81",
        "97.0.1072.69",
        "109.0.1518.78",
        "114.0.1823.82",
        "120.0.2210.91",
        "131.0.2903.112",
        "138.0.3351.95",
    ),
}
_PLATFORMS = {
    "Windows": "Windows NT 10.0; Win64; x64",
    "macOS": "Macintosh; Intel Mac OS X 10_15_7",
    "Linux": "X11; Linux x86_64",
    "Android": "Linux; Android 10; K",
}
_DEVICES = _Odds(  # (browser, os), weight
    (("Chrome", "Windows"), 30),
    (("Edge", "Windows"), 10),
    (("Firefox", "Windows"), 6),
    (("Chrome", "macOS"), 10),
    (("Safari", "macOS"), 10),
    (("Firefox", "macOS"), 2),
    (("Safari", "iOS"), 14),
    (("Chrome", "Android"), 12),
    (("Firefox", "Linux"), 3),
    (("Chrome", "Linux"), 3),
)
_CONSENT_CHANNELS = _Odds((("email",), 55), (("sms",), 15), (("email", "sms"), 30))
_PRIVACY_KINDS = _Odds(
    ("access", 35),
    ("correction", 15),
    ("withdrawal", 20),
    ("complaint", 10),
    ("deletion", 20),
)
_CONSENT_SOURCES = ("signup_form", "webinar", "trade_show", "newsletter_footer", "partner_referral")
_REFERRERS: _Odds[str | None] = _Odds(
    (None, 35),
    ("https://www.google.com/", 30),
    ("https://www.bing.com/", 5),
    ("https://www.linkedin.com/", 10),
    ("https://www.facebook.com/", 5),
    ("home", 15),
)
_UTM = (
    "utm_source=google&utm_medium=cpc",
    "utm_source=linkedin&utm_medium=social",
    "utm_source=newsletter&utm_medium=email",
    "utm_source=facebook&utm_medium=social",
)
_CAMPAIGNS = ("free-trial", "crm-switch", "spring-launch", "webinar-followup", "partner-week")
_COUNTRIES = {
    "en": _Odds(("CA", 85), ("US", 8), ("FR", 2)),
    "fr": _Odds(("CA", 85), ("US", 8), ("FR", 12)),
}
_FORM_FACTORS = _Odds(("desktop", 70), ("mobile", 22), ("tablet", 8))
_TICKET_CHANNELS = _Odds(("email", 40), ("phone", 30), ("chat", 22), ("sms", 8))


@dataclass(frozen=True)
class _Phrases:
    """Everything one language says; templates are filled from ``_Customer.facts()`` and more."""

    province_label: str
    ticket_subjects: tuple[str, ...]
    ticket_openers: Mapping[str, str]  # by channel
    ticket_details: tuple[str, ...]
    ticket_contacts: _Odds[str]
    ticket_extras: tuple[str, ...]  # postal code / colleague sentences added to some notes
    email_subjects: tuple[str, ...]
    agent_lines: tuple[str, ...]
    customer_lines: tuple[str, ...]
    colleague_lines: tuple[str, ...]
    agent_mail: str
    customer_mail: str
    to_colleague_mail: str
    from_colleague_mail: str
    privacy: Mapping[str, str]  # by kind


_EN = _Phrases(
    province_label="{city} {province}",
    ticket_subjects=(
        "Cannot import contacts from CSV",
        "Pipeline view does not load",
        "Question about an invoice",
        "Email campaign stuck in draft",
        "Report export is empty",
        "Change of billing address",
        "Reset two-factor authentication",
        "Cancel my subscription",
        "Calendar sync with Outlook",
        "Add a user to our account",
    ),
    ticket_openers={
        "email": "{name} wrote in: {topic}.",
        "phone": "{name} called about this: {topic}.",
        "chat": "Chat with {name}: {topic}.",
        "sms": "Text message from {name}: {topic}.",
    },
    ticket_details=(
        "Reproduced on our side and escalated to tier 2.",
        "Walked {first} through the settings; the issue seems fixed.",
        "Asked for a screenshot and the browser version.",
        "Issued a credit of ${credit} on the next invoice.",
        "The problem started after the last update of the {feature} page.",
    ),
    ticket_contacts=_Odds(
        ("Call back at {phone} or write to {email}.", 45),
        ("Best reached at {phone}; confirmation sent to {email}.", 25),
        ("Prefers e-mail: {email}.", 12),
        ("Left a voicemail at {phone}.", 10),
        ("{colleague} can also be reached at {colleague_email} or {colleague_phone}.", 8),
    ),
    ticket_extras=(
        "Mailing address on file: {address}.",
        "Identity confirmed with postal code {postal} and date of birth {birth}.",
        "{colleague} ({colleague_email}) is in copy and will test the fix.",
    ),
    email_subjects=(
        "Your 360 Agency invoice",
        "Follow-up on your support request",
        "Welcome to 360 Agency",
        "Renewal of your plan",
        "Re: {feature} question",
        "Meeting notes",
    ),
    agent_lines=(
        "Thanks for your call today. As discussed, your {feature} settings are updated.",
        "Your invoice is attached. Please confirm the billing address we have on file: {address}.",
        "Following up on your ticket: could you send us the CSV file you tried to import?",
        "I tried to reach you at {phone} but got your voicemail. When is a good time?",
    ),
    customer_lines=(
        "Our {feature} page has been very slow since Monday. Can someone call me at {phone}?",
        "Please add {colleague} ({colleague_email}) as a billing contact on our account.",
        "Could you send me a copy of last month's invoice?",
        "We would like to add two seats to our plan before the renewal.",
    ),
    colleague_lines=(
        "Can you take over the 360 Agency renewal? Call me at {phone} if anything is unclear.",
        "I exported the contact list from the CRM; it is on the shared drive.",
        "The {feature} report for the board is ready, have a look before Friday.",
    ),
    agent_mail="Hi {first},\n\n{line}\n\nBest regards,\n{agent}\nCustomer Success, 360 Agency\n"
    "{agent_phone} | {agent_email}\n1250 René-Lévesque Blvd W, Montréal QC H3B 4W8\n",
    customer_mail="Hello {agent_first},\n\n{line}\n\nThanks,\n{name}\n{company}\n"
    "{phone} | {email}\n{address}\n",
    to_colleague_mail="Hi {colleague_first},\n\n{line}\n\n{name}\n{phone} | {email}\n",
    from_colleague_mail="Hi {first},\n\n{line}\n\n{colleague}\n{company}\n"
    "{colleague_phone} | {colleague_email}\n",
    privacy={
        "access": "Please send me a copy of all the personal information you hold about me. "
        "Name: {name}, e-mail: {email}, phone: {phone}.",
        "correction": "My address is now {address}. Please correct it in all your systems. {name}",
        "withdrawal": "I withdraw my consent to marketing. Stop texting {phone} and "
        "e-mailing {email}.",
        "complaint": "I still receive newsletters at {email} after unsubscribing twice. "
        "{name}, {phone}",
        "deletion": "Close my account and delete my data. Account e-mail: {email}. "
        "{name}, born {birth}.",
    },
)

_FR = _Phrases(
    province_label="{city} (Québec)",
    ticket_subjects=(
        "Impossible d'importer mes contacts",
        "Le pipeline ne s'affiche plus",
        "Question sur une facture",
        "Campagne courriel bloquée en brouillon",
        "L'export du rapport est vide",
        "Changement d'adresse de facturation",
        "Réinitialiser la double authentification",
        "Annuler mon abonnement",
        "Synchronisation du calendrier avec Outlook",
        "Ajouter un utilisateur à notre compte",
    ),
    ticket_openers={
        "email": "{name} nous a écrit au sujet de ceci : {topic}.",
        "phone": "{name} a appelé au sujet de ceci : {topic}.",
        "chat": "Clavardage avec {name} à propos de ceci : {topic}.",
        "sms": "Texto de {name} au sujet de ceci : {topic}.",
    },
    ticket_details=(
        "Problème reproduit de notre côté et transféré au niveau 2.",
        "J'ai guidé {first} dans les paramètres; le problème semble réglé.",
        "Demandé une capture d'écran et la version du navigateur.",
        "Crédit de {credit} $ accordé sur la prochaine facture.",
        "Le problème a commencé après la dernière mise à jour de la page {feature}.",
    ),
    ticket_contacts=_Odds(
        ("Rappeler au {phone} ou écrire à {email}.", 45),
        ("Joignable au {phone}; confirmation envoyée à {email}.", 25),
        ("Préfère le courriel : {email}.", 12),
        ("Message laissé dans la boîte vocale au {phone}.", 10),
        ("On peut aussi joindre {colleague} à {colleague_email} ou au {colleague_phone}.", 8),
    ),
    ticket_extras=(
        "Adresse postale au dossier : {address}.",
        "Identité confirmée avec le code postal {postal} et la date de naissance {birth}.",
        "{colleague} ({colleague_email}) est en copie et testera le correctif.",
    ),
    email_subjects=(
        "Votre facture 360 Agency",
        "Suivi de votre demande de soutien",
        "Bienvenue chez 360 Agency",
        "Renouvellement de votre forfait",
        "Re : question sur {feature}",
        "Notes de la rencontre",
    ),
    agent_lines=(
        "Merci de votre appel. Comme convenu, les paramètres de {feature} sont à jour.",
        "Votre facture est jointe. Pouvez-vous confirmer l'adresse de facturation au dossier : "
        "{address}?",
        "Pour faire suite à votre billet : pourriez-vous nous envoyer le fichier CSV?",
        "J'ai tenté de vous joindre au {phone}, sans succès. Quand êtes-vous disponible?",
    ),
    customer_lines=(
        "La page {feature} est très lente depuis lundi. Pouvez-vous m'appeler au {phone}?",
        "Veuillez ajouter {colleague} ({colleague_email}) comme contact de facturation.",
        "Pourriez-vous m'envoyer une copie de la facture du mois dernier?",
        "Nous aimerions ajouter deux licences à notre forfait avant le renouvellement.",
    ),
    colleague_lines=(
        "Peux-tu t'occuper du renouvellement avec 360 Agency? Appelle-moi au {phone} au besoin.",
        "J'ai exporté la liste des contacts du CRM; elle est sur le disque partagé.",
        "Le rapport {feature} pour le conseil est prêt, jette un coup d'œil avant vendredi.",
    ),
    agent_mail="Bonjour {first},\n\n{line}\n\nCordialement,\n{agent}\nSuccès client, "
    "360 Agency\n{agent_phone} | {agent_email}\n1250, boul. René-Lévesque O., Montréal "
    "(Québec) H3B 4W8\n",
    customer_mail="Bonjour {agent_first},\n\n{line}\n\nMerci,\n{name}\n{company}\n"
    "{phone} | {email}\n{address}\n",
    to_colleague_mail="Salut {colleague_first},\n\n{line}\n\n{name}\n{phone} | {email}\n",
    from_colleague_mail="Salut {first},\n\n{line}\n\n{colleague}\n{company}\n"
    "{colleague_phone} | {colleague_email}\n",
    privacy={
        "access": "Veuillez me transmettre une copie de tous les renseignements personnels "
        "que vous détenez à mon sujet. Nom : {name}, courriel : {email}, tél. : {phone}.",
        "correction": "Mon adresse est maintenant {address}. Merci de la corriger dans tous "
        "vos systèmes. {name}",
        "withdrawal": "Je retire mon consentement au marketing. Cessez d'écrire au {phone} "
        "et à {email}.",
        "complaint": "Je reçois encore l'infolettre à {email} après deux désabonnements. "
        "{name}, {phone}",
        "deletion": "Fermez mon compte et supprimez mes données. Courriel du compte : "
        "{email}. {name}, né(e) le {birth}.",
    },
)
_PHRASES = {"en": _EN, "fr": _FR}


# --------------------------------------------------------------------------- people


@dataclass(frozen=True, slots=True)
class _Agent:
    name: str
    email: str
    phone: str


@dataclass(frozen=True, slots=True)
class _Customer:
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
        place = _PHRASES[self.lang].province_label.format(city=self.city, province=self.province)
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


class _Even:
    """Golden-ratio (Weyl) draws in [0, 1).

    They cover [0, 1) evenly even over a handful of rows, so small tables (a few privacy
    requests, a dozen withdrawals) still straddle every retention cut-off for any seed.
    """

    __slots__ = ("_u",)

    def __init__(self, rng: random.Random) -> None:
        self._u = rng.random()

    def __call__(self) -> float:
        self._u = (self._u + _GOLDEN) % 1.0
        return self._u


def _instant(
    start: datetime, end: datetime, u: float, recent: float = _RECENT_SHARE, skew: float = 1.0
) -> datetime:
    """The instant at draw ``u`` of [start, end], whole seconds.

    A ``recent`` share of draws lands in the window's final 30 days, denser towards ``end``, so
    every table has rows days old next to years-old ones; ``skew`` > 1 pulls the others towards
    ``start`` (things that happen soon after sign-up, such as churn or unsubscribing).
    """
    if u < recent:
        start, u = max(start, end - _RECENT), math.sqrt(u / recent)
    else:
        u = ((u - recent) / (1.0 - recent)) ** skew
    return start + timedelta(seconds=int((end - start).total_seconds() * u))


def _later(
    rng: random.Random, start: datetime, longest: timedelta, limit: datetime
) -> datetime | None:
    """``start`` plus a random delay up to ``longest``; None (still pending) past ``limit``."""
    moment = start + timedelta(seconds=int(longest.total_seconds() * rng.random()))
    return moment if moment <= limit else None


def _years_before(moment: datetime, years: int) -> datetime:
    try:
        return moment.replace(year=moment.year - years)
    except ValueError:  # 29 February
        return moment.replace(year=moment.year - years, day=28)


def _ascii(text: str) -> str:
    """Lower-case ASCII letters and digits only, for e-mail addresses and domains."""
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return "".join(ch for ch in folded.lower() if ch.isalnum())


def _phone(rng: random.Random, province: _Province, lang: str) -> str:
    area = rng.choice(province.area_codes)
    exchange, line = rng.randint(201, 989), rng.randint(0, 9999)
    return f"{area} {exchange}-{line:04d}" if lang == "fr" else f"{area}-{exchange}-{line:04d}"


def _postal(rng: random.Random, first: str) -> str:
    def letter() -> str:
        return rng.choice(_POSTAL_LETTERS)

    return f"{first}{rng.randint(0, 9)}{letter()} {rng.randint(0, 9)}{letter()}{rng.randint(0, 9)}"


def _ip(rng: random.Random, country: str, v6: bool = False) -> str:
    if v6:
        groups = ":".join(f"{rng.getrandbits(16):x}" for _ in range(6))
        return str(ipaddress.IPv6Address(f"{rng.choice(_IPV6_PREFIXES[country])}:{groups}"))
    return f"{rng.choice(_IPV4_PREFIXES[country])}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"


def _street(fake: Faker, lang: str) -> str:
    street = fake.street_address()
    if lang == "fr":  # fr_CA borrows English unit words
        street = street.replace(" Suite ", ", bureau ").replace(" Apt. ", ", app. ")
    return street


def _email(rng: random.Random, first: str, last: str, domain: str) -> str:
    local = rng.choice((f"{first}.{last}", f"{first[:1]}{last}", f"{first}{rng.randint(1, 99)}"))
    return f"{local}@{domain}"


def _created(rng: random.Random, even: _Even, start: datetime, as_of: datetime) -> datetime:
    """An import at launch plus steady sign-ups, so every year has customers and activity."""
    if rng.random() < _LEGACY_SHARE:
        return _instant(start, start + _LAUNCH, even(), recent=0.0)
    return _instant(start, as_of, even())


def _closed(rng: random.Random, even: _Even, created: datetime, as_of: datetime) -> datetime | None:
    opened_for = created + _RECENT
    if rng.random() >= _CLOSED_SHARE or opened_for >= as_of:
        return None
    return _instant(opened_for, as_of, even(), skew=_CHURN_SKEW)


@dataclass
class _PeopleMaker:
    """Builds customers one by one; the only place Faker is called, once per name or street."""

    rng: random.Random
    fakers: Mapping[str, Faker]
    as_of: datetime
    start: datetime

    def __post_init__(self) -> None:
        self.created_draws = _Even(self.rng)
        self.closed_draws = _Even(self.rng)

    def customer(self, ident: int) -> _Customer:
        rng = self.rng
        lang = "fr" if rng.random() < _FRENCH_SHARE else "en"
        fake = self.fakers[lang]
        code = "QC" if lang == "fr" else _PROVINCE_ODDS.pick(rng)
        province = _PROVINCES[code]
        city = rng.choice(list(province.cities))
        first, last = fake.first_name(), fake.last_name()
        colleague_first, colleague_last = fake.first_name(), fake.last_name()
        company = fake.company()
        work = f"{_ascii(company)[:20] or _ascii(last)}.{'ca' if rng.random() < 0.7 else 'com'}"
        mail_domain = work if rng.random() < 0.5 else rng.choice(_FREE_MAIL[lang])
        created = _created(rng, self.created_draws, self.start, self.as_of)
        closed = _closed(rng, self.closed_draws, created, self.as_of)
        tier = _TIER_ODDS.pick(rng)
        return _Customer(
            id=ident,
            lang=lang,
            first=first,
            last=last,
            email=_email(rng, _ascii(first), _ascii(last), mail_domain),
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
            colleague_email=f"{_ascii(colleague_first)}.{_ascii(colleague_last)}@{work}",
            colleague_phone=_phone(rng, province, lang),
            card_brand=_CARDS.pick(rng),
            card_last4=f"{rng.randint(0, 9999):04d}",
            ips=tuple(_ip(rng, "CA", v6=k == 2) for k in range(2 if rng.random() < 0.7 else 3)),
            devices=tuple(_DEVICES.pick(rng) for _ in range(rng.randint(1, 2))),
        )


def _faker(locale: str, seed: int) -> Faker:
    fake = Faker(locale)
    fake.seed_instance(seed)
    return fake


def _agents(seed: int) -> dict[str, tuple[_Agent, ...]]:
    """360 Agency's customer-success staff, who sign outbound mail with their direct line."""
    agents: dict[str, tuple[_Agent, ...]] = {}
    for lang, locale in (("en", "en_CA"), ("fr", "fr_CA")):
        fake = _faker(locale, seed + 1)
        people = [(fake.first_name(), fake.last_name()) for _ in range(5)]
        agents[lang] = tuple(
            _Agent(
                f"{first} {last}",
                f"{_ascii(first)}.{_ascii(last)}@{_AGENCY}",
                f"514-360-{4100 + n * 7:04d}",
            )
            for n, (first, last) in enumerate(people)
        )
    return agents


# --------------------------------------------------------------------------- world


@dataclass(frozen=True)
class _World:
    """Everything shared by the table generators; each table draws from its own Random."""

    seed: int
    as_of: datetime
    start: datetime
    people: tuple[_Customer, ...]
    agents: Mapping[str, tuple[_Agent, ...]]
    mean_window: float  # seconds; per-customer volumes scale with their active window

    @classmethod
    def create(cls, spec: DemoSpec) -> _World:
        as_of = spec.as_of.astimezone(UTC)
        start = _years_before(as_of, _YEARS)
        maker = _PeopleMaker(
            random.Random(f"{spec.seed}:customers"),
            {"en": _faker("en_CA", spec.seed), "fr": _faker("fr_CA", spec.seed)},
            as_of,
            start,
        )
        people = tuple(maker.customer(ident) for ident in range(1, spec.customers + 1))
        mean = sum(_window(p) for p in people) / len(people)
        return cls(spec.seed, as_of, start, people, _agents(spec.seed), mean)

    def rng(self, table: str) -> random.Random:
        """Each table its own stream, so changing one table never reshuffles another."""
        return random.Random(f"{self.seed}:{table}")

    def streams(self, table: str) -> tuple[random.Random, _Even]:
        """A table's Random, plus even draws for its timestamps."""
        return self.rng(table), _Even(self.rng(f"{table}:when"))

    def count(self, rng: random.Random, person: _Customer, mean: float) -> int:
        """About ``mean`` per customer overall; long-lived customers get proportionally more."""
        expected = mean * _window(person) / self.mean_window * rng.uniform(0.5, 1.5)
        whole = int(expected)
        return whole + (rng.random() < expected - whole)

    def soon_after(self, rng: random.Random, moment: datetime, seconds: int) -> datetime:
        """A few seconds to minutes later, yet never past ``as_of``."""
        return min(moment + timedelta(seconds=rng.randint(1, seconds)), self.as_of)

    def version(self, browser: str, moment: datetime) -> str:
        """The browser release current at ``moment``, so old logins carry old versions."""
        versions = _VERSIONS[browser]
        elapsed = (moment - self.start) / (self.as_of - self.start)
        return versions[min(int(elapsed * len(versions)), len(versions) - 1)]


def _window(person: _Customer) -> float:
    return max(person.end - person.created, _RECENT).total_seconds()


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
        first, last = _ascii(p.first), _ascii(p.last)
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
        monthly = next(price for name, price, _ in _TIERS if name == tier)
        base = Decimal(monthly * (10 if cycle == "annual" else 1))
        amount = (base * (1 + _PROVINCES[p.province].tax)).quantize(Decimal("0.01"))
        dates = sorted(_instant(p.created, p.end, even()) for _ in range(world.count(rng, p, 6)))
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
    for invoice in invoice_rows:
        terms = timedelta(days=3 if rng.random() < 0.7 else 45)  # most cards are auto-charged
        paid = _later(rng, invoice["issued_at"], terms, world.as_of)
        if paid is None or rng.random() >= 0.9:
            continue
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
    platform = _PLATFORMS[system]
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
        home_zone = _PROVINCES[p.province].time_zone
        for _ in range(world.count(rng, p, 10)):
            moment = _instant(p.created, p.end, even())
            browser, system = rng.choice(p.devices)
            version = world.version(browser, moment)
            abroad = p.lang == "fr" and rng.random() < 0.06
            yield {
                "customer_id": p.id,
                "occurred_at": moment,
                "ip_address": _ip(rng, "FR") if abroad else rng.choice(p.ips),
                "user_agent": _user_agent(browser, system, version),
                "browser": browser,
                "browser_version": version,
                "os": system,
                "time_zone": "Europe/Paris" if abroad else home_zone,
                "success": rng.random() < 0.95,
            }


def _country(rng: random.Random, lang: str) -> str:
    return _COUNTRIES[lang].pick(rng)


def _usage_rows(world: _World) -> Iterator[_Row]:
    rng, even = world.streams("usage_events")
    for p in world.people:
        for _ in range(world.count(rng, p, 30)):
            yield {
                "customer_id": p.id,
                "occurred_at": _instant(p.created, p.end, even()),
                "feature": rng.choice(_FEATURES),
                "country": _country(rng, p.lang),
                "duration_ms": int(rng.lognormvariate(9.5, 1.1)),
                "device": _FORM_FACTORS.pick(rng),
            }


def _click_url(rng: random.Random, lang: str, feature: str, email: str | None) -> str:
    slug = feature.replace("_", "-")
    path = rng.choice((f"features/{slug}", f"docs/{slug}", f"blog/{slug}-guide", "pricing"))
    url = f"https://{_AGENCY}/{lang}/{path}"
    if rng.random() < 0.35:
        url += f"?{rng.choice(_UTM)}&utm_campaign={rng.choice(_CAMPAIGNS)}"
        if email and "newsletter" in url and rng.random() < 0.3:  # trackers leak addresses
            url += "&subscriber=" + email.replace("@", "%40")
    return url


def _click(
    rng: random.Random, visitor: str, moment: datetime, lang: str, p: _Customer | None
) -> _Row:
    feature = rng.choice(_FEATURES)
    referrer = _REFERRERS.pick(rng)
    return {
        "visitor_id": visitor,
        "customer_id": p.id if p else None,
        "occurred_at": moment,
        "url": _click_url(rng, lang, feature, p.email if p else None),
        "referrer": f"https://{_AGENCY}/{lang}/" if referrer == "home" else referrer,
        "feature": feature,
        "country": _country(rng, lang),
        "ip_address": rng.choice(p.ips) if p else _ip(rng, "CA", v6=rng.random() < 0.2),
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
            moment = _instant(p.created, p.end, even())
            yield _click(rng, rng.choice(visitors), moment, p.lang, p)
    anonymous = round(clicks * 0.3)
    while anonymous > 0:
        visitor = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        lang = "fr" if rng.random() < _FRENCH_SHARE else "en"
        moment = _instant(world.start, world.as_of, even())
        for _ in range(min(anonymous, rng.randint(1, 8))):
            anonymous -= 1
            moment = world.soon_after(rng, moment, 240)
            yield _click(rng, visitor, moment, lang, None)


def _ticket_notes(rng: random.Random, p: _Customer, channel: str, topic: str) -> str:
    phrases = _PHRASES[p.lang]
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
        "feature": rng.choice(_FEATURES),
        "credit": str(rng.choice((10, 25, 50, 79))),
    }
    return " ".join(parts).format_map(values)


def _ticket_rows(world: _World) -> Iterator[_Row]:
    rng, even = world.streams("support_tickets")
    for p in world.people:
        for _ in range(world.count(rng, p, 2)):
            channel = _TICKET_CHANNELS.pick(rng)
            subject = rng.choice(_PHRASES[p.lang].ticket_subjects)
            opened = _instant(p.created, p.end, even())
            closed = _later(rng, opened, timedelta(days=20), world.as_of)
            yield {
                "customer_id": p.id,
                "channel": channel,
                "subject": subject,
                "notes": _ticket_notes(rng, p, channel, subject),
                "opened_at": opened,
                "closed_at": closed if rng.random() < 0.85 else None,
            }


def _message(rng: random.Random, world: _World, p: _Customer) -> dict[str, str]:
    """One e-mail between the customer and either 360 Agency staff or their colleague.

    ``direction`` is seen from the customer's mailbox: outbound means the customer sent it.
    """
    phrases = _PHRASES[p.lang]
    agent = rng.choice(world.agents[p.lang])
    values = {
        **p.facts(),
        "agent": agent.name,
        "agent_first": agent.name.split()[0],
        "agent_email": agent.email,
        "agent_phone": agent.phone,
        "feature": rng.choice(_FEATURES).replace("_", " "),
    }
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
            sent = _instant(p.created, p.end, even())
            yield {"customer_id": p.id, **_message(rng, world, p), "sent_at": sent}


def _consent_rows(world: _World) -> Iterator[_Row]:
    """Consents outlive accounts: withdrawals run to as_of, some days old, some years old."""
    rng, even = world.streams("marketing_consents")
    for p in world.people:
        if rng.random() >= 0.6:
            continue
        for channel in _CONSENT_CHANNELS.pick(rng):
            source = rng.choice(_CONSENT_SOURCES)
            consented = (
                world.soon_after(rng, p.created, 900)
                if source == "signup_form"
                else _instant(p.created, world.as_of, rng.random(), skew=_CHURN_SKEW)
            )
            withdrawn = (
                _instant(consented, world.as_of, even(), recent=0.3, skew=_CHURN_SKEW)
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


def _requester(rng: random.Random, people: Iterable[_Customer], moment: datetime) -> _Customer:
    """Someone who was a customer at ``moment``, or had left shortly before."""
    existing = [p for p in people if p.created <= moment]
    return rng.choice([p for p in existing if moment <= p.end + _AFTERMATH] or existing)


def _privacy_rows(world: _World) -> Iterator[_Row]:
    """About 13 requests per 100 customers, in date order.

    Dates are drawn first and then given to a customer around at the time, so that even a
    store with a handful of requests has them spread over the eight years.
    """
    rng, even = world.streams("privacy_requests")
    first = min(p.created for p in world.people)
    count = max(1, round(len(world.people) * 0.13))
    for received in sorted(_instant(first, world.as_of, even()) for _ in range(count)):
        p = _requester(rng, world.people, received)
        kind = _PRIVACY_KINDS.pick(rng)
        late = rng.random() < 0.08 and received + 2 * _RECENT <= world.as_of
        yield {
            "customer_id": p.id,
            "kind": kind,
            "details": _PHRASES[p.lang].privacy[kind].format_map(p.facts()),
            "received_at": received,  # a few recent ones are still unanswered
            "responded_at": _later(rng, received, _RECENT * (2 if late else 1), world.as_of),
        }


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
        (web_clicks, _numbered(_click_rows(world))),
        (support_tickets, _numbered(_ticket_rows(world))),
        (email_messages, _numbered(_email_rows(world))),
        (marketing_consents, _numbered(_consent_rows(world))),
        (privacy_requests, _numbered(_privacy_rows(world))),
    ]


# --------------------------------------------------------------------------- database


def _prepare_schema(conn: sa.Connection, replace: bool) -> None:
    """Refuse to touch a filled store unless asked; then (re)create the demo tables."""
    if replace:
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
