"""The entity types the scan labels columns with, and which type family can hold which.

The connector reports a column's type family before any value is read; the family
already rules most entity types out (a ``DATE`` holds no e-mail address), so the
classifier asks this table first and only then looks at names and values.
"""

from __future__ import annotations

from typing import Final, get_args

from connectors.protocol import TypeFamily

EMAIL_ADDRESS: Final = "EMAIL_ADDRESS"
PHONE_NUMBER: Final = "PHONE_NUMBER"
PERSON: Final = "PERSON"
LOCATION: Final = "LOCATION"
CA_POSTAL_CODE: Final = "CA_POSTAL_CODE"
CA_SIN: Final = "CA_SIN"
CREDIT_CARD: Final = "CREDIT_CARD"
IP_ADDRESS: Final = "IP_ADDRESS"
DATE_OF_BIRTH: Final = "DATE_OF_BIRTH"
CA_QC_HEALTH_NUMBER: Final = "CA_QC_HEALTH_NUMBER"
URL: Final = "URL"

#: Every entity a column can be labelled with, in report order.
SCANNED_ENTITIES: Final = (
    EMAIL_ADDRESS,
    PHONE_NUMBER,
    PERSON,
    LOCATION,
    CA_POSTAL_CODE,
    CA_SIN,
    CREDIT_CARD,
    IP_ADDRESS,
    DATE_OF_BIRTH,
    CA_QC_HEALTH_NUMBER,
    URL,
)
#: Entities that identify a person on their own (the scan's quality target is on these).
DIRECT_IDENTIFIERS: Final = frozenset(
    {EMAIL_ADDRESS, PHONE_NUMBER, CA_SIN, CREDIT_CARD, IP_ADDRESS, PERSON, CA_POSTAL_CODE}
)
#: Entities that are personal information: all but URLs, which name pages, not people.
PERSONAL_ENTITIES: Final = frozenset(SCANNED_ENTITIES) - {URL}
#: Entities that Presidio finds in text (``DATE_OF_BIRTH`` is a date's meaning, which only
#: a column name tells).
TEXT_ENTITIES: Final = tuple(entity for entity in SCANNED_ENTITIES if entity != DATE_OF_BIRTH)

#: The type families a connector reports (see ``connectors.protocol.TypeFamily``).
FAMILIES: Final[frozenset[str]] = frozenset(get_args(TypeFamily))
_NUMBERS: Final = frozenset({PHONE_NUMBER, CA_SIN, CREDIT_CARD, IP_ADDRESS, DATE_OF_BIRTH})
#: What a column of each family can hold at all, whatever its name says: numbers can be
#: phone, SIN or card numbers, an IPv4 address or a ``yyyymmdd`` birth date; a date only
#: a birth date; a boolean nothing that identifies anyone.
ENTITIES_BY_FAMILY: Final[dict[TypeFamily, frozenset[str]]] = {
    "text": frozenset(SCANNED_ENTITIES),
    "other": frozenset(SCANNED_ENTITIES),
    "integer": _NUMBERS,
    "numeric": _NUMBERS,
    "date": frozenset({DATE_OF_BIRTH}),
    "datetime": frozenset({DATE_OF_BIRTH}),
    "boolean": frozenset(),
}
