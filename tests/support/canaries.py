"""Planted canary identities, and a search for them in every byte Tenure leaves behind.

A canary is a made-up person whose every value (name, e-mail, phone, SIN, RAMQ number,
address, IP, cookie id, password hash) is distinctive enough never to occur by chance.
``plant`` writes them into rows the shipped policy must delete or anonymize on
``DEMO_AS_OF``; ``Needles`` reports each place a canary value is still
found, case-insensitively and also with separators squeezed out, so that
``819 373-4419`` or ``QUIM54601734`` left behind is still caught.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from flows.demo.schema import (
    accounts,
    customers,
    email_messages,
    invoices,
    login_events,
    marketing_consents,
    payments,
    privacy_requests,
    support_tickets,
    web_clicks,
)

_SEPARATORS = re.compile(r"[\W_]+")
#: Squeezed forms shorter than this would match by chance (in hashes, timings).
_MIN_SQUEEZED = 6


def squeeze(text: str) -> str:
    """Lower case, letters and digits only: the form that survives any re-spacing."""
    return _SEPARATORS.sub("", text.casefold())


@dataclass(frozen=True)
class Canary:
    """One planted person. Values are chosen so that Tenure's detection should find them
    in free text: a given name Faker's lists know, NANP phone layouts, a SIN that passes
    Luhn (and starts with 1-7 or 9, as issued ones do), a RAMQ number as printed."""

    lang: str
    first: str
    last: str
    email: str
    username: str
    phone: str
    sin: str
    ramq: str
    birth: date
    street: str
    street_word: str
    city: str
    postal: str
    ip: str
    visitor_id: str
    password_hash: str

    @property
    def name(self) -> str:
        return f"{self.first} {self.last}"

    def needles(self) -> dict[str, tuple[str, ...]]:
        """What must not be found after the run, by label: values and fragments."""
        local, domain = self.email.split("@")
        return {
            "name": (self.name,),
            "surname": (self.last,),
            "e-mail": (self.email,),
            "e-mail local part": (local,),
            "e-mail domain": (domain,),
            "username": (self.username,),
            "phone": (self.phone, self.phone[-8:]),  # and the seven-digit local number
            "SIN": (self.sin,),
            "RAMQ number": (self.ramq,),
            "birth date": (self.birth.isoformat(),),
            "street": (self.street, self.street_word),
            "postal code": (self.postal,),
            "IP address": (self.ip,),
            "visitor id": (self.visitor_id,),
            "password hash": (self.password_hash,),
        }


ENGLISH = Canary(
    lang="en",
    first="Margaret",
    last="Quillfeather",
    email="margaret.quillfeather@canary-test.ca",
    username="margaret.quillfeather",
    phone="819-373-4419",  # surrogate phones are NNN-555-01NN: this cannot be one
    sin="273 819 466",
    ramq="QUIM 5460 1734",  # QUI + M, born 1954-10-17 (women: month + 50)
    birth=date(1954, 10, 17),
    street="77 Wrenfeather Crescent",
    street_word="Wrenfeather",
    city="Gatineau",
    postal="J8Y 3Z9",
    ip="203.0.113.77",
    visitor_id="ca1a7e00-c4a4-4e57-9b1d-c0ffee000077",
    password_hash="$2b$12$" + "CanaryHashOfMargaretQuillfeather".ljust(53, "Q"),
)
FRENCH = Canary(
    lang="fr",
    first="Geneviève",
    last="Vermandoux",
    email="genevieve.vermandoux@canari-essai.qc.ca",
    username="gvermandoux",
    phone="450 682-3197",
    sin="562 194 738",
    ramq="VERG 7152 2318",  # VER + G, born 1971-02-23
    birth=date(1971, 2, 23),
    street="1187 rue des Canaris-Siffleurs",
    street_word="Canaris-Siffleurs",
    city="Longueuil",
    postal="J4K 2W7",
    ip="198.51.100.23",
    visitor_id="ca1a7e00-c4a4-4e57-9b1d-c0ffee000023",
    password_hash="$2b$12$" + "CanaryHashOfGenevieveVermandoux".ljust(53, "V"),
)
CANARIES = (ENGLISH, FRENCH)


def _at(year: int, month: int, day: int) -> datetime:
    return datetime(year, month, day, 15, 30, tzinfo=UTC)


def _ticket_texts(c: Canary) -> list[tuple[str, str]]:
    """(subject, notes) of two tickets, in the canary's language, quoting everything."""
    if c.lang == "en":
        return [
            (
                f"{c.name} cannot log in",
                f"{c.name} called about this: cannot log in. Call back at {c.phone} or write "
                f"to {c.email}. For the tax receipt she gave her SIN {c.sin} and her RAMQ "
                f"health card {c.ramq}.",
            ),
            (
                "Change of address",
                f"Ms. {c.last} lives at {c.street}, {c.city} QC {c.postal}. Walked {c.first} "
                f"through the settings. {c.name} prefers e-mail: {c.email}; cell "
                f"({c.phone[:3]}) {c.phone[4:]}.",
            ),
        ]
    return [
        (
            f"Facture de {c.name}",
            f"{c.name} a appelé au sujet de ceci : facture en double. Rappeler au {c.phone} "
            f"ou écrire à {c.email}. Son numéro d'assurance sociale est le {c.sin} et sa "
            f"carte d'assurance maladie {c.ramq}.",
        ),
        (
            "Changement d'adresse",
            f"Mme {c.last} a écrit; elle habite au {c.street}, {c.city} {c.postal}. Joignable "
            f"au {c.phone}; confirmation envoyée à {c.email}.",
        ),
    ]


@dataclass
class Planted:
    """Ids of the planted rows, by table: those the run must delete, and those it must
    rewrite in place (with the columns that must no longer hold the planted value)."""

    deleted: dict[str, list[int]] = field(default_factory=dict)
    rewritten: dict[str, dict[int, dict[str, Any]]] = field(default_factory=dict)


def plant(url: str, canaries: Iterable[Canary] = CANARIES) -> Planted:
    """Insert each canary as a customer whose account closed in 2023, with rows in every
    table, each dated so the shipped policy acts on it at ``DEMO_AS_OF`` (2026-11-24):
    clocks are past their cut-offs, outside every hold (customers 17 and 42, 2020's
    invoices and payments)."""
    planted = Planted()
    engine = sa.create_engine(url)
    try:
        with engine.begin() as c:
            login_template = dict(c.execute(sa.select(login_events).limit(1)).one()._mapping)
            click_template = dict(
                c.execute(
                    sa.select(web_clicks).where(web_clicks.c.customer_id.is_not(None)).limit(1)
                )
                .one()
                ._mapping
            )
            for canary in canaries:
                _plant_one(c, canary, planted, login_template, click_template)
    finally:
        engine.dispose()
    return planted


def _plant_one(
    c: sa.Connection,
    canary: Canary,
    planted: Planted,
    login_template: dict[str, Any],
    click_template: dict[str, Any],
) -> None:
    def insert(table: sa.Table, fate: str, **values: Any) -> int:
        key = c.execute(table.insert().values(**values)).inserted_primary_key
        assert key is not None
        ident = int(key[0])
        if fate == "deleted":
            planted.deleted.setdefault(table.name, []).append(ident)
        else:
            columns = {k: values[k] for k in fate.split(",")}
            planted.rewritten.setdefault(table.name, {})[ident] = columns
        return ident

    address = f"{canary.street}, {canary.city} QC {canary.postal}"
    # customers: anonymized two years after the account closed (2023-03-01).
    customer = insert(
        customers,
        "first_name,last_name,email,phone,street_address,postal_code,birth_date",
        first_name=canary.first,
        last_name=canary.last,
        email=canary.email,
        phone=canary.phone,
        street_address=canary.street,
        city=canary.city,
        province="QC",
        postal_code=canary.postal,
        language=canary.lang,
        birth_date=canary.birth,
        created_at=_at(2019, 1, 10),
    )
    # accounts: username pseudonymized, password hash emptied one year after closure.
    insert(
        accounts,
        "username,password_hash",
        customer_id=customer,
        username=canary.username,
        password_hash=canary.password_hash,
        plan="growth-monthly",
        status="closed",
        created_at=_at(2019, 1, 10),
        closed_at=_at(2023, 3, 1),
    )
    # invoices and payments: deleted after six years (2019, outside the 2020 audit hold).
    invoice = insert(
        invoices,
        "deleted",
        customer_id=customer,
        number=f"INV-CANARY-{canary.lang.upper()}",
        billing_name=canary.name,
        billing_address=address,
        amount=Decimal("91.00"),
        currency="CAD",
        issued_at=_at(2019, 6, 15),
    )
    insert(
        payments,
        "deleted",
        invoice_id=invoice,
        customer_id=customer,
        card_brand="Visa",
        card_last4="0147",
        card_holder=canary.name.upper(),
        amount=Decimal("91.00"),
        paid_at=_at(2019, 6, 18),
    )
    # login events: deleted after one year.
    login = {k: v for k, v in login_template.items() if k != "id"}
    login.update(customer_id=customer, ip_address=canary.ip, occurred_at=_at(2024, 6, 1))
    insert(login_events, "deleted", **login)
    # web clicks: aggregated (by visitor) then deleted after 13 months, the customer's
    # and the same cookie's before it logged in.
    click = {k: v for k, v in click_template.items() if k != "id"}
    click.update(visitor_id=canary.visitor_id, ip_address=canary.ip, occurred_at=_at(2025, 6, 1))
    for who in (customer, None):
        insert(web_clicks, "deleted", **{**click, "customer_id": who})
    # support tickets: subject and notes redacted two years after closure.
    for subject, notes in _ticket_texts(canary):
        insert(
            support_tickets,
            "subject,notes" if canary.last in subject else "notes",
            customer_id=customer,
            channel="phone",
            subject=subject,
            notes=notes,
            opened_at=_at(2023, 12, 1),
            closed_at=_at(2024, 1, 10),
        )
    # e-mail messages: deleted after three years.
    insert(
        email_messages,
        "deleted",
        customer_id=customer,
        direction="outbound",
        from_address=canary.email,
        to_address="support@360.agency",
        subject=f"{canary.name}: T4A",
        body=(
            f"Hello,\n\nPlease update my phone to {canary.phone} and send the slip to "
            f"{canary.email}; my SIN is {canary.sin}, RAMQ {canary.ramq}.\n\n"
            f"{canary.name}\n{address}\n"
        ),
        sent_at=_at(2022, 5, 10),
    )
    # marketing consents: the address is nulled ten days after withdrawal; the proof
    # of consent is deleted three years after it.
    for channel, value, withdrawn, fate in (
        ("email", canary.email, _at(2026, 10, 1), "address"),
        ("sms", canary.phone, _at(2026, 9, 15), "address"),
        ("email", canary.email, _at(2022, 1, 5), "deleted"),
    ):
        insert(
            marketing_consents,
            fate,
            customer_id=customer,
            channel=channel,
            address=value,
            source="signup_form",
            consented_at=_at(2019, 1, 10),
            withdrawn_at=withdrawn,
        )
    # privacy requests: deleted three years after the answer.
    insert(
        privacy_requests,
        "deleted",
        customer_id=customer,
        kind="access",
        details=f"{canary.name} ({canary.email}, {canary.phone}) asks for a copy of her file.",
        received_at=_at(2022, 3, 1),
        responded_at=_at(2022, 3, 20),
    )


# --------------------------------------------------------------------------- search


@dataclass(frozen=True)
class Hit:
    where: str
    canary: str
    label: str
    form: str
    context: str

    def __str__(self) -> str:
        return f"{self.where}: {self.canary} {self.label} {self.form!r} in {self.context!r}"


@dataclass(frozen=True)
class _Needle:
    canary: str
    label: str
    folded: str
    squeezed: str | None


class Needles:
    """The canaries' values and fragments, compiled once: one regular expression finds
    whether a text holds any of them, then each is looked for on its own."""

    def __init__(self, canaries: Iterable[Canary] = CANARIES) -> None:
        self.items = tuple(
            _Needle(
                canary.name,
                label,
                form.casefold(),
                squeeze(form) if len(squeeze(form)) >= _MIN_SQUEEZED else None,
            )
            for canary in canaries
            for label, forms in canary.needles().items()
            for form in forms
        )
        self._folded = re.compile("|".join(re.escape(n.folded) for n in self.items))
        self._squeezed = re.compile(
            "|".join(re.escape(n.squeezed) for n in self.items if n.squeezed)
        )
        self._bytes = re.compile(
            b"|".join(
                re.escape(variant.encode())
                for n in self.items
                for variant in (n.folded, n.squeezed)
                if variant
            )
        )

    def in_text(self, where: str, text: str) -> list[Hit]:
        """Each needle in ``text``: as written, then with separators squeezed out of each
        piece (JSON leaf or line, so that neighbouring values are never joined)."""
        folded = text.casefold()
        squeezed = "\x00".join(squeeze(piece) for piece in _pieces(text))
        if not (self._folded.search(folded) or self._squeezed.search(squeezed)):
            return []
        hits = []
        for n in self.items:
            at = folded.find(n.folded)
            if at >= 0:
                hits.append(Hit(where, n.canary, n.label, n.folded, _excerpt(text, at, n)))
            elif n.squeezed and (at := squeezed.find(n.squeezed)) >= 0:
                excerpt = squeezed[max(0, at - 40) : at + len(n.squeezed) + 40]
                hits.append(Hit(where, n.canary, n.label, n.squeezed, excerpt))
        return hits

    def in_bytes(self, where: str, data: bytes) -> list[Hit]:
        """Each needle in raw bytes (UTF-8, ASCII letters in any case), as written or
        squeezed, with the offset of its first occurrence."""
        lowered = data.lower()
        if not self._bytes.search(lowered):
            return []
        hits = []
        for n in self.items:
            for variant in (n.folded, n.squeezed or n.folded):
                at = lowered.find(variant.encode())
                if at >= 0:
                    excerpt = data[max(0, at - 40) : at + len(variant) + 40]
                    context = excerpt.decode("utf-8", "replace")
                    hits.append(Hit(f"{where} @ byte {at}", n.canary, n.label, variant, context))
                    break
        return hits

    def in_database(self, url: str, label: str) -> list[Hit]:
        """Each needle in the logical content of every table: every row, every column."""
        hits: list[Hit] = []
        engine = sa.create_engine(url)
        try:
            metadata = sa.MetaData()
            metadata.reflect(engine)
            with engine.connect() as c:
                for table in metadata.sorted_tables:
                    keys = [column.name for column in table.primary_key.columns]
                    for number, row in enumerate(c.execute(sa.select(table)).mappings()):
                        key = ",".join(f"{k}={row[k]}" for k in keys) or f"row {number}"
                        for column, value in row.items():
                            where = f"{label}: {table.name}.{column} [{key}]"
                            if isinstance(value, bytes | memoryview):
                                hits += self.in_bytes(where, bytes(value))
                            elif value is not None:
                                hits += self.in_text(where, str(value))
        finally:
            engine.dispose()
        return hits

    def in_files(self, root: Path) -> list[Hit]:
        """Each needle in the raw bytes of every file under ``root``."""
        hits: list[Hit] = []
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            hits += self.in_bytes(f"file {path.relative_to(root)}", path.read_bytes())
        return hits


def _excerpt(text: str, at: int, needle: _Needle) -> str:
    return text[max(0, at - 40) : at + len(needle.folded) + 40]


def _leaves(value: Any) -> Iterator[str]:
    """Every key and scalar of a JSON value, as text."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield str(key)
            yield from _leaves(item)
    elif isinstance(value, list):
        for item in value:
            yield from _leaves(item)
    elif value is not None:
        yield str(value)


def _pieces(text: str) -> Iterator[str]:
    """The leaves of a JSON document or of JSON lines, else the lines of the text."""
    if text[:1] in ("{", "["):
        try:
            yield from _leaves(json.loads(text))
            return
        except ValueError:
            pass
    for line in text.splitlines():
        if line[:1] in ("{", "["):
            try:
                yield from _leaves(json.loads(line))
                continue
            except ValueError:
                pass
        yield line
