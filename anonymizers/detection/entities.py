"""Every entity type the scan can label a column with, what kind of information it is, and
which type family can hold which.

The catalogue (``CATALOGUE``) maps each entity the text engine's recognizer registry can
return (Presidio's predefined generic recognizers, its Canadian ones and Tenure's own, see
``anonymizers.detection.recognizers``) to a category kind and to how well it identifies a
person: ``direct`` (alone), ``quasi`` (in combination) or ``none`` (not personal
information on its own: a URL names a page, a UUID a row, a date an event, an organisation
a company). The scan asks the registry which entities it can find; a test keeps the two in
step, and an entity the registry returns that the catalogue lacks is treated as a direct
identifier of kind ``other`` (``entry``), never dropped.

The connector reports a column's type family before any value is read; the family already
rules most entity types out (a ``DATE`` holds no e-mail address), so the classifier asks
``ENTITIES_BY_FAMILY`` first and only then looks at names and values.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal, get_args

from connectors.protocol import TypeFamily

Identifier = Literal["direct", "quasi", "none"]

EMAIL_ADDRESS: Final = "EMAIL_ADDRESS"
PHONE_NUMBER: Final = "PHONE_NUMBER"
PERSON: Final = "PERSON"
LOCATION: Final = "LOCATION"
CA_POSTAL_CODE: Final = "CA_POSTAL_CODE"
CA_SIN: Final = "CA_SIN"
CREDIT_CARD: Final = "CREDIT_CARD"
IBAN_CODE: Final = "IBAN_CODE"
CRYPTO: Final = "CRYPTO"
IP_ADDRESS: Final = "IP_ADDRESS"
MAC_ADDRESS: Final = "MAC_ADDRESS"
DATE_OF_BIRTH: Final = "DATE_OF_BIRTH"
CA_QC_HEALTH_NUMBER: Final = "CA_QC_HEALTH_NUMBER"
NRP: Final = "NRP"
URL: Final = "URL"
UUID: Final = "UUID"
DATE_TIME: Final = "DATE_TIME"
ORGANIZATION: Final = "ORGANIZATION"


@dataclass(frozen=True)
class EntityKind:
    """What an entity type is: its category kind (the first part of the category
    ``--suggest`` proposes) and how well it identifies a person."""

    kind: str
    identifier: Identifier
    description: str

    @property
    def personal(self) -> bool:
        return self.identifier != "none"


#: Every entity the scan knows, in report order.
CATALOGUE: Final[dict[str, EntityKind]] = {
    EMAIL_ADDRESS: EntityKind("contact", "direct", "e-mail address"),
    PHONE_NUMBER: EntityKind("contact", "direct", "phone number"),
    PERSON: EntityKind("identity", "direct", "a person's name"),
    LOCATION: EntityKind("location", "quasi", "street address, city, province or country"),
    CA_POSTAL_CODE: EntityKind("location", "direct", "Canadian postal code"),
    CA_SIN: EntityKind("government_id", "direct", "Canadian social insurance number"),
    CA_QC_HEALTH_NUMBER: EntityKind("health", "direct", "Quebec health insurance number"),
    CREDIT_CARD: EntityKind("financial", "direct", "payment card number"),
    IBAN_CODE: EntityKind("financial", "direct", "bank account number (IBAN)"),
    CRYPTO: EntityKind("financial", "direct", "crypto-currency wallet address"),
    IP_ADDRESS: EntityKind("online", "direct", "IP address"),
    MAC_ADDRESS: EntityKind("device", "direct", "network card (MAC) address"),
    DATE_OF_BIRTH: EntityKind("identity", "quasi", "date of birth"),
    NRP: EntityKind("sensitive", "quasi", "nationality, religious or political group"),
    URL: EntityKind("online", "none", "web address"),
    UUID: EntityKind("technical", "none", "universally unique identifier"),
    DATE_TIME: EntityKind("time", "none", "date or time"),
    ORGANIZATION: EntityKind("organization", "none", "company or organisation"),
}
#: An entity the registry returns that the catalogue does not list: kept, as direct.
UNKNOWN_KIND: Final = EntityKind("other", "direct", "recognized by a registry recognizer")


def entry(entity: str) -> EntityKind:
    """The catalogue's entry for ``entity`` (``UNKNOWN_KIND`` for one it lacks)."""
    return CATALOGUE.get(entity, UNKNOWN_KIND)


#: Every entity a column can be labelled with, in report order.
SCANNED_ENTITIES: Final = tuple(CATALOGUE)
#: Entities that identify a person on their own: a bound column holding one must be
#: declared under a category admitting it (the coverage gate's contradictions).
DIRECT_IDENTIFIERS: Final = frozenset(e for e, k in CATALOGUE.items() if k.identifier == "direct")
#: Entities that are personal information (direct or quasi identifiers).
PERSONAL_ENTITIES: Final = frozenset(e for e, k in CATALOGUE.items() if k.personal)
#: Entities whose values are never there by accident: a checksum (card, SIN, IBAN, wallet)
#: or a form nothing else has (an e-mail or MAC address, a RAMQ number). A column of
#: which a fifth holds one is personal whatever the rest holds (``classify``).
#: (Not IP addresses: software versions such as ``120.0.0.0`` have their shape.)
UNMISTAKABLE: Final = frozenset(
    {EMAIL_ADDRESS, CREDIT_CARD, CA_SIN, IBAN_CODE, CRYPTO, MAC_ADDRESS, CA_QC_HEALTH_NUMBER}
)  # fmt: skip
#: A more specific entity and the general one it is a case of: a birth date is a date.
SUBSUMES: Final = {DATE_OF_BIRTH: DATE_TIME}
#: An entity only a column's name tells: a date's meaning.
NAME_ONLY_ENTITIES: Final = frozenset({DATE_OF_BIRTH})

#: The type families a connector reports (see ``connectors.protocol.TypeFamily``).
FAMILIES: Final[frozenset[str]] = frozenset(get_args(TypeFamily))
_NUMBERS: Final = frozenset({PHONE_NUMBER, CA_SIN, CREDIT_CARD, IP_ADDRESS, DATE_OF_BIRTH})
_DATES: Final = frozenset({DATE_OF_BIRTH, DATE_TIME})
#: What a column of each family can hold at all, whatever its name says: numbers can be
#: phone, SIN or card numbers, an IPv4 address or a ``yyyymmdd`` birth date; a date only
#: a date (a birth date, by its name or its spread); a boolean nothing that identifies
#: anyone.
ENTITIES_BY_FAMILY: Final[dict[TypeFamily, frozenset[str]]] = {
    "text": frozenset(SCANNED_ENTITIES),
    "other": frozenset(SCANNED_ENTITIES),
    "integer": _NUMBERS,
    "numeric": _NUMBERS,
    "date": _DATES,
    "datetime": _DATES,
    "boolean": frozenset(),
}
