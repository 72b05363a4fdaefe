"""Seeded data the benchmarks share: support notes and the people in them, a Maildir of
business e-mail, what is left of planted values after redaction, and the labelled
evaluation set of the column classifier.

Everything here is deterministic for a seed and a Faker version; nothing reaches the
network. A benchmark's own data (a click-stream table, a log folder) stays in its script;
what more than one benchmark uses is here.
"""

from __future__ import annotations

import html
import os
import random
import re
import string
import unicodedata
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import format_datetime
from pathlib import Path
from typing import Final

import pandas as pd
from faker import Faker

from anonymizers.detection.entities import (
    CA_POSTAL_CODE,
    CA_QC_HEALTH_NUMBER,
    CA_SIN,
    CREDIT_CARD,
    DATE_OF_BIRTH,
    DATE_TIME,
    EMAIL_ADDRESS,
    IP_ADDRESS,
    LOCATION,
    PERSON,
    PHONE_NUMBER,
    URL,
)
from connectors.protocol import TypeFamily

#: Where names come from with ``unseen_names``: Montreal's other languages, whose given
#: names the given-name recognizer (built from Faker's en/fr lists) does not list.
UNSEEN_NAME_LOCALES: Final = ("es_MX", "pt_BR", "it_IT", "vi_VN", "ro_RO", "pl_PL")
#: Share of the benchmark notes that hold a name, an e-mail or a phone.
TEXT_PII_SHARE: Final = 0.85

# ---------------------------------------------------------------------------- support notes
_FIELDS: Final = {"name": PERSON, "email": EMAIL_ADDRESS, "phone": PHONE_NUMBER}
_TEMPLATES: Final[dict[str, tuple[tuple[str, ...], tuple[str, ...]]]] = {
    "en": (
        (
            "Called {name} about invoice {n}; she asked us to e-mail {email} or call {phone}.",
            "{name} phoned about order {n}: the parcel arrived damaged. Call back at {phone}.",
            "Left a voicemail for {name} at {phone} regarding the delayed delivery.",
            "Customer {name} ({email}) wants the delivery window moved to mornings.",
            "Spoke with {name}, new contact details: {email} / {phone}.",
            "Refund of ${amount} approved for {name}; confirmation sent to {email}.",
            "Escalated ticket {n}: {name} says nobody called back. Best number is {phone}.",
            "Per {name}, send the quote to {email} before {day}.",
            "Meeting with {name} moved to {day}; her assistant can be reached at {phone}.",
            "{name} cancelled the subscription because of the price increase.",
            "Bounced e-mail to {email}, please confirm the address with the customer.",
            "Customer asked for a callback at {phone} after 5 pm about ticket {n}.",
        ),
        (
            "Password reset done for account {n}, no callback needed.",
            "Customer asked whether the warranty covers order {n}; answered by e-mail.",
            "Duplicate ticket, merged into {n}.",
            "Shipping label reprinted for order {n}, the parcel leaves on {day}.",
        ),
    ),
    "fr": (
        (
            "Appel de {name} au sujet de la facture {n}; courriel {email}, tél. {phone}.",
            "{name} a appelé : la commande {n} est arrivée brisée. Rappeler au {phone}.",
            "Message laissé à {name} au {phone} concernant la livraison en retard.",
            "Le client {name} ({email}) souhaite recevoir ses livraisons le matin.",
            "Discussion avec {name}, nouvelles coordonnées : {email} / {phone}.",
            "Remboursement de {amount} $ approuvé pour {name}; confirmation envoyée à {email}.",
            "Billet {n} transmis au superviseur : {name} dit que personne ne l'a rappelé. "
            "Meilleur numéro : {phone}.",
            "Selon {name}, envoyer la soumission à {email} avant {day}.",
            "Rencontre avec {name} déplacée à {day}; joindre son adjointe au {phone}.",
            "{name} a annulé son abonnement à cause de la hausse de prix.",
            "Courriel retourné pour {email}, confirmer l'adresse avec le client.",
            "Le client demande d'être rappelé au {phone} après 17 h pour le billet {n}.",
        ),
        (
            "Mot de passe réinitialisé pour le compte {n}, aucun suivi requis.",
            "Le client demande si la garantie couvre la commande {n}; réponse par courriel.",
            "Billet en double, fusionné avec {n}.",
            "Étiquette réimprimée pour la commande {n}, le colis part {day}.",
        ),
    ),
}
_DAYS: Final = {
    "en": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday"),
    "fr": ("lundi", "mardi", "mercredi", "jeudi", "vendredi"),
}
_EXTENSION: Final = {"en": "ext.", "fr": "poste"}
_AREA_CODES: Final = ("514", "438", "450", "579", "418", "581", "819", "873", "613", "416")
_PHONE_LAYOUTS: Final = (
    "({a}) {b}-{c}",
    "{a}.{b}.{c}",
    "+1 {a} {b} {c}",
    "{a}-{b}-{c}",
    "{a}-{b}-{c} {ext} {x}",
    "1-{a}-{b}-{c}",
    "{a} {b}-{c}",
    "{a}{b}{c}",
)


@dataclass(frozen=True)
class Span:
    """A planted value: its entity type and character offsets in the note."""

    entity: str
    start: int
    end: int


@dataclass(frozen=True)
class Note:
    text: str
    language: str
    spans: tuple[Span, ...]


@dataclass(frozen=True)
class Person:
    name: str
    email: str
    phone: str


class NoteWriter:
    """Seeded people and support notes in English (en_CA) and French (fr_CA).

    With ``unseen_names`` people's names come from ``UNSEEN_NAME_LOCALES`` instead,
    whose given names the given-name recognizer does not list.
    """

    def __init__(self, seed: int, *, unseen_names: bool = False) -> None:
        self.rng = random.Random(seed)
        self.fakers = {"en": Faker("en_CA"), "fr": Faker("fr_CA")}
        for offset, faker in enumerate(self.fakers.values()):
            faker.seed_instance(seed + offset)
        self.namers = [Faker(locale) for locale in UNSEEN_NAME_LOCALES] if unseen_names else []
        for offset, namer in enumerate(self.namers, start=2):
            namer.seed_instance(seed + offset)

    def language(self) -> str:
        return self.rng.choice(("en", "fr"))

    def person(self, language: str) -> Person:
        faker = self.rng.choice(self.namers) if self.namers else self.fakers[language]
        first, last = faker.first_name(), faker.last_name()
        return Person(f"{first} {last}", self.email(first, last, faker), self.phone(language))

    def email(self, first: str, last: str, faker: Faker) -> str:
        domain = self.rng.choice(
            (faker.free_email_domain(), faker.domain_name(), "example.ca", "videotron.ca")
        )
        first, last = _mailbox(first), _mailbox(last)
        local = self.rng.choice(
            (f"{first}.{last}", f"{first[0]}{last}", f"{first}.{last[0]}", f"{last}{first[0]}")
        )
        return f"{local}{self.rng.randint(1, 99) if self.rng.random() < 0.2 else ''}@{domain}"

    def phone(self, language: str) -> str:
        rng = self.rng
        return rng.choice(_PHONE_LAYOUTS).format(
            a=rng.choice(_AREA_CODES),
            b=f"{rng.randint(2, 9)}{rng.randint(0, 99):02d}",
            c=f"{rng.randint(0, 9999):04d}",
            ext=_EXTENSION[language],
            x=rng.randint(1, 999),
        )

    def note(self, pii_share: float) -> Note:
        language = self.language()
        with_pii, without = _TEMPLATES[language]
        template = self.rng.choice(with_pii if self.rng.random() < pii_share else without)
        person = self.person(language)
        amount = self.rng.uniform(10, 2_000)
        values = {
            "name": person.name,
            "email": person.email,
            "phone": person.phone,
            "n": str(self.rng.randint(1_000, 99_999)),
            "day": self.rng.choice(_DAYS[language]),
            "amount": f"{amount:,.2f}" if language == "en" else _french_amount(amount),
        }
        note_text, spans = fill_template(template, values)
        return Note(note_text, language, spans)


def fill_template(template: str, values: dict[str, str]) -> tuple[str, tuple[Span, ...]]:
    """The template filled in, and the span of every name, e-mail and phone put in it."""
    parts: list[str] = []
    spans: list[Span] = []
    position = 0
    for literal, name, _, _ in string.Formatter().parse(template):
        parts.append(literal)
        position += len(literal)
        if name is None:
            continue
        value = values[name]
        if name in _FIELDS:
            spans.append(Span(_FIELDS[name], position, position + len(value)))
        parts.append(value)
        position += len(value)
    return "".join(parts), tuple(spans)


def _mailbox(word: str) -> str:
    decomposed = unicodedata.normalize("NFKD", word.lower())
    return "".join(c for c in decomposed if c.isascii() and (c.isalnum() or c == "-")) or "x"


def _french_amount(amount: float) -> str:
    return f"{amount:,.2f}".replace(",", "\u202f").replace(".", ",")


def write_notes(
    count: int, seed: int, pii_share: float, *, unseen_names: bool = False
) -> list[Note]:
    writer = NoteWriter(seed, unseen_names=unseen_names)
    return [writer.note(pii_share) for _ in range(count)]


# ---------------------------------------------------------------------------- business e-mail
#
# A Maildir inbox of business e-mail from customers (``NoteWriter``'s people) to staff at
# ``MAIL_DOMAIN``: a subject that sometimes names the customer, a body of 3 to 10 sentences
# with the customer's name, phone and e-mail address, an HTML alternative in
# ``MAIL_HTML_SHARE`` of them, every one sent between ``MAIL_OLDEST`` and ``MAIL_NEWEST``.

MAIL_DOMAIN: Final = "360.agency"
MAIL_OLDEST: Final = datetime(2023, 1, 2, tzinfo=UTC)
MAIL_NEWEST: Final = datetime(2024, 12, 20, tzinfo=UTC)
MAIL_HTML_SHARE: Final = 0.3
MAIL_PARSER: Final = BytesParser(policy=policy.default)

# fmt: off
_MAIL_SUBJECTS: Final = {
    "en": (
        ("Question about invoice {n}", "Order {n}: delivery date", "Quote request for {day}",
         "Follow-up on ticket {n}", "Change of contact details", "Meeting next {day}"),
        ("{name} - order {n}", "Re: invoice {n} ({name})", "Callback request from {name}"),
    ),
    "fr": (
        ("Question sur la facture {n}", "Commande {n} : date de livraison",
         "Demande de soumission pour {day}", "Suivi du billet {n}",
         "Changement de coordonnées", "Rencontre {day} prochain"),
        ("{name} - commande {n}", "Re : facture {n} ({name})", "Demande de rappel de {name}"),
    ),
}
_SENTENCES: Final = {
    "en": {
        "name": ("My name is {name} and I am writing about order {n}.",
                 "This is {name} again, following up on ticket {n}.",
                 "Please note that {name} is now the contact for our account."),
        "phone": ("You can reach me at {phone} any weekday before 5 pm.",
                  "My direct line is {phone}.",
                  "Please call me back at {phone} when you have a moment."),
        "email": ("Please send the revised quote to {email}.",
                  "My new e-mail address is {email}; please update your records.",
                  "Copy {email} on your reply, please."),
        "other": ("The parcel arrived on {day} but two items were missing.",
                  "We would like to move the delivery window to the morning.",
                  "The invoice total of ${amount} does not match the quote we received.",
                  "Could you confirm the new price before we sign?",
                  "Our team meets on {day}, so a reply before then would help.",
                  "Thank you for your patience with this.",
                  "The tracking number you gave me does not work.",
                  "We are happy with the service overall.",
                  "Reference number {n} appears on the last statement.",
                  "Let me know if you need anything else from us."),
    },
    "fr": {
        "name": ("Je m'appelle {name} et je vous écris au sujet de la commande {n}.",
                 "C'est encore {name}, pour faire suite au billet {n}.",
                 "Veuillez noter que {name} est maintenant la personne-ressource du compte."),
        "phone": ("Vous pouvez me joindre au {phone} en semaine avant 17 h.",
                  "Ma ligne directe est le {phone}.",
                  "Merci de me rappeler au {phone} quand vous aurez un moment."),
        "email": ("Veuillez envoyer la soumission révisée à {email}.",
                  "Ma nouvelle adresse courriel est {email}; merci de mettre votre dossier à jour.",
                  "Mettez {email} en copie de votre réponse, s'il vous plaît."),
        "other": ("Le colis est arrivé {day}, mais il manquait deux articles.",
                  "Nous aimerions déplacer la livraison en matinée.",
                  "Le total de la facture, {amount} $, ne correspond pas à la soumission.",
                  "Pouvez-vous confirmer le nouveau prix avant la signature?",
                  "Notre équipe se réunit {day}; une réponse d'ici là nous aiderait.",
                  "Merci de votre patience.",
                  "Le numéro de suivi que vous m'avez donné ne fonctionne pas.",
                  "Nous sommes satisfaits du service dans l'ensemble.",
                  "Le numéro de référence {n} figure sur le dernier relevé.",
                  "Dites-moi s'il vous faut autre chose de notre part."),
    },
}
# fmt: on
_GREETING: Final = {"en": "Hello {staff},", "fr": "Bonjour {staff},"}
_SIGN_OFF: Final = {"en": "Regards,", "fr": "Cordialement,"}


@dataclass(frozen=True)
class Planted:
    """The customer's values put in one message, by the message's file key."""

    key: str
    language: str
    person: Person
    values: dict[str, str] = field(default_factory=dict)
    """Entity type -> the planted value."""


class MailWriter:
    """Seeded business e-mails from customers (``NoteWriter``'s people) to staff."""

    def __init__(self, seed: int) -> None:
        self.people = NoteWriter(seed)
        self.rng = random.Random(seed + 7)
        staff = self.people.fakers["en"]
        self.staff = [(staff.first_name(), staff.last_name()) for _ in range(12)]

    def message(self, number: int) -> tuple[bytes, Planted, datetime]:
        rng = self.rng
        language = self.people.language()
        person = self.people.person(language)
        first, last = rng.choice(self.staff)
        values = {
            "name": person.name,
            "phone": person.phone,
            "email": person.email,
            "n": str(rng.randint(1_000, 99_999)),
            "day": rng.choice(_DAYS[language]),
            "amount": f"{rng.uniform(10, 5_000):,.2f}",
            "staff": first,
        }
        if language == "fr":
            values["amount"] = values["amount"].replace(",", "\u202f").replace(".", ",")
        plain_subjects, named_subjects = _MAIL_SUBJECTS[language]
        subject = rng.choice(named_subjects if rng.random() < 0.3 else plain_subjects)
        sentences = _SENTENCES[language]
        count = rng.randint(3, 10)
        chosen = [rng.choice(sentences[kind]) for kind in ("name", "phone", "email")]
        kinds = rng.choices(("name", "phone", "email", "other"), (1, 1, 1, 6), k=count - 3)
        chosen += [rng.choice(sentences[kind]) for kind in kinds]
        rng.shuffle(chosen)
        paragraphs = [
            _GREETING[language].format(**values),
            " ".join(s.format(**values) for s in chosen),
            f"{_SIGN_OFF[language]}\n{person.name}\n{person.phone}",
        ]
        sent = MAIL_OLDEST + timedelta(
            seconds=rng.randint(0, int((MAIL_NEWEST - MAIL_OLDEST).total_seconds()))
        )
        msg = EmailMessage()
        msg["From"] = f"{person.name} <{person.email}>"
        msg["To"] = f"{first} {last} <{first.lower()}.{last.lower()}@{MAIL_DOMAIN}>"
        msg["Subject"] = subject.format(**values)
        msg["Date"] = format_datetime(sent)
        msg["Message-ID"] = f"<{uuid.UUID(int=rng.getrandbits(128))}@mail.{MAIL_DOMAIN}>"
        msg.set_content("\n\n".join(paragraphs))
        if rng.random() < MAIL_HTML_SHARE:
            markup = "".join(
                f"<p>{html.escape(p).replace(chr(10), '<br>')}</p>" for p in paragraphs
            )
            msg.add_alternative(f"<html><body>{markup}</body></html>", subtype="html")
        key = f"{int(sent.timestamp())}.M{number:06d}P4242Q{rng.randint(0, 999)}.bench"
        planted = Planted(key, language, person, {
            "PERSON": person.name, "PHONE_NUMBER": person.phone, "EMAIL_ADDRESS": person.email,
        })  # fmt: skip
        return msg.as_bytes(policy=msg.policy.clone(linesep="\n")), planted, sent


def write_maildir(root: Path, count: int, seed: int) -> list[Planted]:
    """``count`` messages in ``root/cur`` (seen, so ``:2,S``), dated their sent time."""
    for sub in ("cur", "new", "tmp"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    writer = MailWriter(seed)
    planted = []
    for number in range(count):
        raw, found, sent = writer.message(number)
        path = root / "cur" / f"{found.key},S={len(raw)}:2,S"
        path.write_bytes(raw)
        os.utime(path, (sent.timestamp(), sent.timestamp()))
        planted.append(found)
    return planted


def visible_texts(raw: bytes) -> list[str]:
    """The decoded subject and every text part (HTML unescaped) of a message."""
    msg = MAIL_PARSER.parsebytes(raw)
    assert isinstance(msg, EmailMessage)
    texts = [str(msg["Subject"] or "")]
    for part in msg.walk():
        if part.get_content_maintype() == "text":
            content = part.get_content()
            texts.append(
                html.unescape(content) if part.get_content_subtype() == "html" else content
            )
    return texts


# ---------------------------------------------------------------------------- table scan


# ---------------------------------------------------------------------------- what is left

#: What "nothing left" looks for: runs of 3+ letters or digits, only digits in a phone
#: (its "ext." or "poste" is not personal).
_PIECE: Final = re.compile(r"[^\W_]{3,}")
_PHONE_PIECE: Final = re.compile(r"\d{3,}")


@dataclass
class Recall:
    """Planted values per entity: how many are *gone* from the output (the value no
    longer appears), and how many left *nothing* behind either (no run of three or more
    letters or digits of it, digits only for a phone, survives as a word)."""

    planted: Counter[str] = field(default_factory=Counter)
    gone: Counter[str] = field(default_factory=Counter)
    nothing_left: Counter[str] = field(default_factory=Counter)
    missed: list[str] = field(default_factory=list)
    """``ENTITY 'value' in <where>`` for each value still there."""

    def add(self, entity: str, value: str, output: str, where: str) -> None:
        """Score one planted ``value`` against the ``output`` it was redacted into."""
        self.planted[entity] += 1
        if value in output:
            self.missed.append(f"{entity} {value!r} in {where}")
            return
        self.gone[entity] += 1
        pieces = (_PHONE_PIECE if entity == PHONE_NUMBER else _PIECE).findall(value)
        if not any(_survives(piece, output) for piece in pieces):
            self.nothing_left[entity] += 1

    @property
    def survivors(self) -> int:
        return len(self.missed)

    def share(self, counts: Counter[str], entity: str | None = None) -> float:
        """``counts`` over the values planted (of ``entity``, or all); NaN if none were."""
        planted = self.planted[entity] if entity else sum(self.planted.values())
        found = counts[entity] if entity else sum(counts.values())
        return found / planted if planted else float("nan")

    def figures(self) -> dict[str, object]:
        return {
            "planted": dict(self.planted),
            "gone": dict(self.gone),
            "nothing_left": dict(self.nothing_left),
            "survivors": self.survivors,
        }


def _survives(piece: str, text: str) -> bool:
    return re.search(rf"(?<![^\W_]){re.escape(piece)}(?![^\W_])", text) is not None


# ---------------------------------------------------------------------------- evaluation set
#
# Six tables of a bilingual (en_CA / fr_CA) CRM, clinic and web shop, ``rows`` rows each
# (products: a fifth of that), built with Faker and a fixed seed. The set is meant to be
# hard where real schemas are: misleading column names (``c1``, ``info``, ``contact``,
# ``ref``), numbers shaped like phone numbers (order numbers, amounts, ids), identifiers
# stored as integers, English and French notes with names, phones and e-mails in them, a
# column of sentences with one stray e-mail address, free text without any PII, and text
# that is no identifier but looks like one to NER (employers, job titles, product names
# in a column called ``name``, user agents). A town or a country is a quasi identifier
# (LOCATION); a date column holds dates (DATE_TIME, not personal on its own).
#
# Truth is what the generator planted, with one rule for free text: a notes column is
# labelled with an entity when at least a fifth of its values hold one (a meaningful part
# of a column whose values are personal; one stray e-mail among a thousand notes does
# not make an e-mail column). The planted shares are far from one fifth (about 0.3, 0.7
# or all), so that the rule decides nothing by a hair.

EVAL_SEED: Final = 20_241_124
EVAL_ROWS: Final = 1_000
#: A free-text column is labelled with an entity planted in at least this share of values:
#: a meaningful part of a column whose values are personal (the classifier's rule for
#: columns judged by people; it was one half when each entity was judged alone).
FREE_TEXT_LABEL_SHARE: Final = 0.2
TODAY: Final = date(2026, 6, 1)

Key = tuple[str, str]


@dataclass(frozen=True)
class EvalSet:
    """Tables, each column's type family (what a SQL connector reports) and true labels."""

    tables: dict[str, pd.DataFrame]
    families: dict[Key, TypeFamily]
    truth: dict[Key, set[str]]


@dataclass
class _Builder:
    rng: random.Random
    en: Faker
    fr: Faker
    namers: tuple[Faker, ...]
    rows: int
    tables: dict[str, dict[str, Sequence[object]]]
    families: dict[Key, TypeFamily]
    truth: dict[Key, set[str]]

    def faker(self, row: int) -> Faker:
        """Every other row is French-speaking."""
        return self.fr if row % 2 else self.en

    def name(self, row: int) -> tuple[str, str]:
        """A given name and a surname."""
        namer = self.namers[row % len(self.namers)]
        return namer.first_name(), namer.last_name()

    def column(
        self, table: str, name: str, family: TypeFamily, values: Sequence[object], *truth: str
    ) -> None:
        self.tables.setdefault(table, {})[name] = values
        self.families[(table, name)] = family
        self.truth[(table, name)] = set(truth)

    def notes(
        self,
        table: str,
        name: str,
        render: Callable[[int, bool, bool], str],
        phone_share: float,
        email_share: float,
    ) -> None:
        """Free text with a person's name in every value, phones and e-mails in some."""
        phones = [self.rng.random() < phone_share for _ in range(self.rows)]
        emails = [self.rng.random() < email_share for _ in range(self.rows)]
        values: list[object] = [render(i, phones[i], emails[i]) for i in range(self.rows)]
        planted = {PERSON: self.rows, PHONE_NUMBER: sum(phones), EMAIL_ADDRESS: sum(emails)}
        labels = [e for e, count in planted.items() if count >= FREE_TEXT_LABEL_SHARE * self.rows]
        self.column(table, name, "text", values, *labels)


def ramq_number(last: str, first: str, birth: date, female: bool, rng: random.Random) -> str:
    """A Quebec health-insurance number as printed on the card: ``TREM 8551 0112``."""
    letters = "".join(char for char in _ascii(last).upper() if char.isalpha())[:3].ljust(3, "X")
    month = birth.month + (50 if female else 0)
    return (
        f"{letters}{_ascii(first)[0].upper()} {birth.year % 100:02d}{month:02d} "
        f"{birth.day:02d}{rng.randint(10, 99)}"
    )


def _ascii(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(char for char in decomposed if not unicodedata.combining(char))


def _birth_date(rng: random.Random) -> date:
    return TODAY - timedelta(days=rng.randint(18 * 365, 90 * 365))


def _digits(text: str) -> str:
    return "".join(char for char in text if char.isdigit())


def _quebec_phone_digits(rng: random.Random) -> str:
    """Ten digits, as a phone number typed without separators: ``5145550123``."""
    area = rng.choice(("514", "438", "450", "579", "418", "581", "819", "873"))
    return f"{area}{rng.randint(2, 9)}{rng.randint(0, 99):02d}{rng.randint(0, 9999):04d}"


def _spaced_card(number: str) -> str:
    """Grouped as embossed: 4-6-5 (American Express), 4-6-4 (Diners), else by fours."""
    if len(number) in (14, 15):
        return f"{number[:4]} {number[4:10]} {number[10:]}"
    return " ".join(number[i : i + 4] for i in range(0, len(number), 4))


def _customers(b: _Builder) -> None:
    t = "customers"
    people = [b.faker(i) for i in range(b.rows)]
    firsts, lasts = zip(*(b.name(i) for i in range(b.rows)), strict=True)
    b.column(t, "customer_id", "integer", list(range(1, b.rows + 1)))
    b.column(t, "prenom", "text", list(firsts), PERSON)
    b.column(t, "nom", "text", list(lasts), PERSON)
    b.column(t, "courriel", "text", [f.email() for f in people], EMAIL_ADDRESS)
    b.column(t, "telephone", "text", [f.phone_number() for f in people], PHONE_NUMBER)
    b.column(t, "cell", "integer", [int(_quebec_phone_digits(b.rng)) for _ in people],
             PHONE_NUMBER)  # fmt: skip
    b.column(t, "date_naissance", "date", [_birth_date(b.rng) for _ in people], DATE_OF_BIRTH)
    b.column(t, "code_postal", "text", [b.en.postcode() for _ in people], CA_POSTAL_CODE)
    b.column(t, "nas", "integer", [int(_digits(b.en.ssn())) for _ in people], CA_SIN)
    b.column(t, "adresse", "text", [f.street_address() for f in people], LOCATION)
    b.column(t, "created_at", "datetime",
             [datetime(2020, 1, 1, tzinfo=UTC) + timedelta(minutes=b.rng.randint(0, 3_000_000))
              for _ in people], DATE_TIME)  # fmt: skip
    b.column(t, "c1", "text", [f"{a} {z}" for a, z in zip(firsts, lasts, strict=True)], PERSON)
    b.column(t, "contact", "text", [f.free_email() for f in people], EMAIL_ADDRESS)
    b.column(t, "c5", "text", [_quebec_phone_digits(b.rng) for _ in people], PHONE_NUMBER)
    # A person's town or country is a quasi identifier: LOCATION, like a street address.
    b.column(t, "country", "text", [f.country() for f in people], LOCATION)
    b.column(t, "ville", "text", [f.city() for f in people], LOCATION)
    b.column(t, "employeur", "text", [f.company() for f in people])
    b.column(t, "job_title", "text", [b.en.job() for _ in people])
    b.column(t, "is_active", "boolean", [b.rng.random() < 0.8 for _ in people])
    b.column(t, "email_opt_in", "boolean", [b.rng.random() < 0.4 for _ in people])


def _orders(b: _Builder) -> None:
    t = "orders"
    rng = b.rng
    cards = [b.faker(i).credit_card_number() for i in range(b.rows)]
    b.column(t, "order_id", "integer", list(range(10_001, 10_001 + b.rows)))
    b.column(t, "order_number", "integer",
             [rng.randint(2_000_000_000, 9_999_999_999) for _ in range(b.rows)])  # fmt: skip
    b.column(t, "amount", "numeric", [round(rng.uniform(5, 5_000), 2) for _ in range(b.rows)])
    b.column(t, "total_cents", "integer", [rng.randint(500, 9_999_999) for _ in range(b.rows)])
    b.column(t, "ref", "text", [f"CMD-{rng.randint(2020, 2026)}-{rng.randint(0, 999_999):06d}"
                                for _ in range(b.rows)])  # fmt: skip
    b.column(t, "card_number", "text", cards, CREDIT_CARD)
    b.column(t, "info", "text", [b.faker(i).phone_number() for i in range(b.rows)], PHONE_NUMBER)
    b.column(t, "product_code", "text",
             [b.en.ean13() if rng.random() < 0.5 else b.en.bothify("SKU-#####-?").upper()
              for _ in range(b.rows)])  # fmt: skip
    b.column(t, "tracking", "text", [b.en.bothify("LM#########CA") for _ in range(b.rows)])
    b.column(t, "shipped_on", "date",
             [TODAY - timedelta(days=rng.randint(0, 900)) for _ in range(b.rows)],
             DATE_TIME)  # fmt: skip
    b.column(t, "c3", "text",
             [_spaced_card(b.faker(i).credit_card_number()) for i in range(b.rows)],
             CREDIT_CARD)  # fmt: skip


_VISIT_FR = (
    "Patient(e) {name} vu(e) pour un suivi de la tension artérielle.{phone}",
    "{name} se plaint de douleurs lombaires depuis deux semaines.{phone}",
    "Renouvellement de l'ordonnance pour {name}, aucun effet secondaire rapporté.{phone}",
    "Vaccin antigrippal administré à {name} ce matin, à revoir dans un an.{phone}",
    "Résultats sanguins de {name} dans les normes; prochain rendez-vous en mars.{phone}",
)
_VISIT_PHONE_FR = (
    " Rappeler au {phone}.", " Tél. : {phone}", " Joindre au cellulaire {phone}.",
    " Appelez sa fille au {phone} au besoin.",
)  # fmt: skip


def _patients(b: _Builder) -> None:
    t = "patients"
    rng = b.rng
    people = [b.faker(i) for i in range(b.rows)]
    names = [b.name(i) for i in range(b.rows)]
    births = [_birth_date(rng) for _ in people]
    ramq = [
        ramq_number(last, first, birth, rng.random() < 0.5, rng)
        for (first, last), birth in zip(names, births, strict=True)
    ]
    b.column(t, "patient_id", "integer", list(range(1, b.rows + 1)))
    b.column(t, "ramq", "text", ramq, CA_QC_HEALTH_NUMBER)
    b.column(t, "ref", "text", [number.replace(" ", "") for number in reversed(ramq)],
             CA_QC_HEALTH_NUMBER)  # fmt: skip
    b.column(t, "numero_assurance_sociale", "text", [b.en.ssn() for _ in people], CA_SIN)
    b.column(t, "c4", "integer", [int(_digits(b.en.ssn())) for _ in people], CA_SIN)
    b.column(t, "dob", "date", births, DATE_OF_BIRTH)
    b.column(t, "weight_kg", "numeric", [round(rng.uniform(45, 130), 1) for _ in people])
    b.column(t, "birth_year", "integer", [birth.year for birth in births])

    def visit(i: int, phone: bool, _email: bool) -> str:
        first, last = names[i]
        suffix = rng.choice(_VISIT_PHONE_FR).format(phone=b.fr.phone_number()) if phone else ""
        return rng.choice(_VISIT_FR).format(name=f"{first} {last}", phone=suffix)

    b.notes(t, "visit_notes", visit, phone_share=0.7, email_share=0.0)


def _web_logs(b: _Builder) -> None:
    t = "web_logs"
    rng = b.rng
    b.column(t, "id", "integer", list(range(1, b.rows + 1)))
    b.column(t, "ip_address", "text", [b.en.ipv4() for _ in range(b.rows)], IP_ADDRESS)
    b.column(t, "c2", "text", [b.en.ipv6() for _ in range(b.rows)], IP_ADDRESS)
    b.column(t, "url", "text", [b.faker(i).uri() for i in range(b.rows)], URL)
    b.column(t, "referrer", "text", [b.faker(i).url() for i in range(b.rows)], URL)
    b.column(t, "user_agent", "text", [b.en.user_agent() for _ in range(b.rows)])
    b.column(
        t, "session_id", "text", [str(uuid.UUID(int=rng.getrandbits(128))) for _ in range(b.rows)]
    )
    b.column(t, "status_code", "integer",
             [rng.choice((200, 200, 200, 301, 304, 404, 500)) for _ in range(b.rows)])  # fmt: skip
    b.column(t, "bytes_sent", "integer", [rng.randint(200, 5_000_000) for _ in range(b.rows)])


_NOTES_EN = (
    "{name} called about invoice {n}; wants a refund before Friday.{extra}",
    "Left a voicemail for {name} regarding the delayed delivery.{extra}",
    "Customer {name} asked to change the delivery window to mornings.{extra}",
    "Spoke with {name}: the replacement part arrived damaged, new one shipped.{extra}",
    "{name} is unhappy with the subscription renewal and asked for a callback.{extra}",
)
_NOTES_FR = (
    "{name} a appelé au sujet de la facture {n}; souhaite un remboursement.{extra}",
    "Message laissé à {name} concernant la livraison en retard.{extra}",
    "Le client {name} demande de changer l'adresse de livraison.{extra}",
    "Discussion avec {name} : la pièce de remplacement est arrivée brisée.{extra}",
    "{name} n'est pas satisfait du renouvellement et veut être rappelé.{extra}",
)
_SUBJECTS = (
    "Password reset", "Problème de facturation", "Delivery delayed", "Demande de remboursement",
    "Damaged item", "Changement d'adresse", "Subscription renewal", "Question sur un produit",
)  # fmt: skip
_SENTENCE_PARTS = (
    ("The shipment", "Our team", "The new release", "The warehouse", "This quarter's report",
     "La livraison", "Notre équipe", "La nouvelle version", "L'entrepôt", "Le rapport"),
    ("was delayed because of", "improved thanks to", "needs another review after",
     "will be discussed during", "est retardée à cause de", "s'est améliorée grâce à",
     "sera revue après", "sera discutée pendant"),
    ("the snow storm", "the inventory count", "the holiday season", "the supplier change",
     "the last software update", "la tempête de neige", "l'inventaire annuel",
     "la période des fêtes", "le changement de fournisseur", "la dernière mise à jour"),
    (".", ", as expected.", " again this week.", ", selon le plan.", " cette semaine."),
)  # fmt: skip
_REVIEW_PARTS = (
    ("Great product,", "Disappointed,", "Works as described,", "Excellent produit,",
     "Déçu,", "Conforme à la description,", "Good value,", "Bon rapport qualité-prix,"),
    ("the battery lasts all week", "the strap broke after a month", "setup took five minutes",
     "la batterie tient toute la semaine", "la courroie a cassé après un mois",
     "l'installation a pris cinq minutes", "the colour is darker than in the pictures",
     "la couleur est plus foncée que sur les photos"),
    ("and shipping was fast.", "but support answered quickly.", "; would buy again.",
     "et la livraison était rapide.", "mais le service a répondu vite.", "; je recommande."),
)  # fmt: skip


def _sentence(rng: random.Random, parts: Sequence[Sequence[str]]) -> str:
    return " ".join(rng.choice(part) for part in parts).replace(" .", ".").replace(" ,", ",")


def _support_tickets(b: _Builder) -> None:
    t = "support_tickets"
    rng = b.rng

    def note(templates: tuple[str, ...], faker: Faker) -> Callable[[int, bool, bool], str]:
        def render(i: int, phone: bool, email: bool) -> str:
            extra = (f" Phone: {faker.phone_number()}." if phone else "") + (
                f" Courriel / email: {faker.email()}" if email else ""
            )
            name = " ".join(b.name(i))
            return rng.choice(templates).format(name=name, n=rng.randint(1000, 99999), extra=extra)

        return render

    b.column(t, "ticket_id", "integer", list(range(1, b.rows + 1)))
    b.column(t, "subject", "text", [rng.choice(_SUBJECTS) for _ in range(b.rows)])
    b.notes(t, "notes_en", note(_NOTES_EN, b.en), phone_share=0.7, email_share=0.3)
    b.notes(t, "notes_fr", note(_NOTES_FR, b.fr), phone_share=0.3, email_share=0.7)
    body = [_sentence(rng, _SENTENCE_PARTS) for _ in range(b.rows)]
    stray = rng.randrange(b.rows)
    body[stray] = f"{body[stray][:-1]}, write to {b.en.email()} for details."
    b.column(t, "body", "text", list(body))
    b.column(t, "review", "text", [_sentence(rng, _REVIEW_PARTS) for _ in range(b.rows)])
    b.column(
        t, "country_code", "text", [rng.choice(("CA", "CA", "FR", "US")) for _ in range(b.rows)]
    )


_PRODUCT_WORDS = (
    ("Ergonomic", "Wireless", "Compact", "Chaise", "Lampe", "Clavier", "Smart", "Casque"),
    ("Desk Chair", "Keyboard", "Speaker", "de bureau", "de table", "sans fil", "Watch",
     "Bluetooth X2", "Water Bottle", "ergonomique"),
)  # fmt: skip


def _products(b: _Builder) -> None:
    t = "products"
    rng = b.rng
    b.column(t, "product_id", "integer", list(range(1, b.rows // 5 + 1)))
    b.column(t, "name", "text", [_sentence(rng, _PRODUCT_WORDS) for _ in range(b.rows // 5)])
    b.column(t, "price", "numeric", [round(rng.uniform(5, 900), 2) for _ in range(b.rows // 5)])
    b.column(t, "description", "text",
             [_sentence(rng, _REVIEW_PARTS[1:]) + " " + _sentence(rng, _SENTENCE_PARTS)
              for _ in range(b.rows // 5)])  # fmt: skip


def build_eval_set(
    seed: int = EVAL_SEED, *, unseen_names: bool = False, rows: int = EVAL_ROWS
) -> EvalSet:
    """The tables, families and truth; the same for the same seed, size and Faker version.

    ``unseen_names`` draws people's names from other locales' lists: the given-name
    recognizer is built from Faker's en/fr lists, so with en_CA/fr_CA names the set
    cannot tell how names it does not know fare (then only NER finds them).
    """
    en, fr = Faker("en_CA"), Faker("fr_CA")
    en.seed_instance(seed)
    fr.seed_instance(seed + 1)
    namers: tuple[Faker, ...] = (en, fr)
    if unseen_names:
        namers = tuple(Faker(locale) for locale in UNSEEN_NAME_LOCALES)
        for offset, namer in enumerate(namers, start=2):
            namer.seed_instance(seed + offset)
    builder = _Builder(random.Random(seed), en, fr, namers, rows, {}, {}, {})
    for build in (_customers, _orders, _patients, _web_logs, _support_tickets, _products):
        build(builder)
    tables = {name: pd.DataFrame(columns) for name, columns in builder.tables.items()}
    return EvalSet(tables, builder.families, builder.truth)
