"""What a column's name says it holds, in English and French: candidate entities with priors.

A name is split into words (snake case, camel case, digits, accents folded, French and
English articles dropped) and each rule is a short phrase matched on whole words, joined
or not: ``first name`` matches ``first_name``, ``FirstName`` and ``firstname``. When
rules overlap, the longer phrase wins (``adresse_ip`` is an IP address, not a street
address). Words such as ``id``, ``count`` or ``verified`` mean the column is *about* the
entity, not a copy of it, and cancel every rule.

Priors are on the same scale as the classifier's confidences:

* ``STRONG`` and ``MEDIUM`` names label a column on their own (``courriel``, ``tel``);
* ``WEAK`` names (``name``, ``nom``, ``mail``) are below the labelling threshold: they
  only count once the column's values agree (see ``anonymizers.detection.classify``).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Final

from anonymizers.detection.entities import (
    CA_POSTAL_CODE,
    CA_QC_HEALTH_NUMBER,
    CA_SIN,
    CREDIT_CARD,
    DATE_OF_BIRTH,
    EMAIL_ADDRESS,
    IP_ADDRESS,
    LOCATION,
    PERSON,
    PHONE_NUMBER,
    URL,
)

STRONG: Final = 0.9
MEDIUM: Final = 0.75
WEAK: Final = 0.45
#: Longest rule phrase, in words: bounds the spans tried.
_MAX_WORDS: Final = 4
_STOP_WORDS: Final = frozenset({"de", "du", "des", "d", "la", "le", "l", "of", "the"})
# fmt: off
#: The column describes the entity (a count, a flag, a key into another table, a digest).
_ABOUT_WORDS: Final = frozenset({
    "id", "ids", "uuid", "key", "fk", "count", "nb", "nbr", "nombre", "total", "type",
    "status", "statut", "flag", "verified", "verifie", "valid", "valide", "validated",
    "confirmed", "confirme", "is", "has", "est", "opt", "optin", "optout", "consent",
    "consentement", "enabled", "active", "actif", "hash", "hashed", "masked", "masque",
    "encrypted", "chiffre", "token", "length", "len", "domain", "domaine", "country",
    "pays", "provider", "fournisseur", "format", "template", "modele", "kind", "sent",
    "envoye", "bounce", "bounced", "pref", "preference", "preferences", "subscribed",
    "unsubscribed", "allowed", "required", "requis", "version", "model", "range", "plage",
    "subnet", "cidr", "segment", "vlan", "label", "libelle",
})
#: ``name``/``nom`` of something that is not a person.
_NOT_A_PERSON: Final = frozenset({
    "product", "produit", "company", "compagnie", "entreprise", "societe", "business",
    "file", "fichier", "host", "hostname", "user", "utilisateur", "username", "login",
    "table", "column", "colonne", "field", "champ", "brand", "marque", "item", "article",
    "category", "categorie", "campaign", "campagne", "street", "rue", "city", "ville",
    "region", "province", "state", "place", "lieu", "bank", "banque", "app", "application",
    "device", "appareil", "plan", "project", "projet", "team", "equipe", "role", "tag",
    "label", "event", "evenement", "feature", "store", "magasin", "shop", "boutique", "site",
    "org", "organization", "organisation", "school", "ecole", "pet", "animal", "service",
    "package", "forfait", "model", "vendor", "supplier", "merchant", "marchand",
    "department", "departement", "course", "cours", "group", "groupe", "list", "liste",
    "topic", "sujet", "job", "task", "tache", "server", "serveur", "schema", "database",
    "bucket", "env", "variable", "param", "parameter", "setting", "config", "attribute",
    "attribut", "menu", "queue", "report", "rapport", "document", "image", "font", "police",
})
#: Cards that are not payment cards, and the parts of one that are not its number.
_NOT_A_PAYMENT_CARD: Final = frozenset({
    "gift", "cadeau", "loyalty", "fidelite", "member", "membre", "membership", "business",
    "affaires", "visite", "health", "sante", "expiry", "expiration", "exp", "last", "holder",
    "titulaire", "brand", "network", "reseau", "map", "geo", "graphics", "sd", "sim",
    "design", "style", "theme", "color", "colour", "couleur", "image", "template",
})
#: Qualifiers that make ``name``/``nom`` a person's name (``customer_name``, ``nom_client``).
_PERSON_QUALIFIERS: Final = (
    "customer", "client", "contact", "patient", "employee", "employe", "member", "membre",
    "holder", "titulaire", "person", "personne", "guardian", "tuteur", "parent", "spouse",
    "conjoint", "beneficiary", "beneficiaire", "doctor", "medecin", "owner",
    "proprietaire", "recipient", "destinataire", "sender", "expediteur", "buyer",
    "acheteur",
)
# fmt: on


@dataclass(frozen=True)
class NameRule:
    """``phrase`` (space-separated words) means ``entity``; ``None`` claims the words only.

    A claiming rule stops a shorter one: ``mac address`` keeps ``address`` from meaning
    a street address.
    """

    phrase: str
    entity: str | None
    prior: float = STRONG
    vetoes: frozenset[str] = frozenset()


@dataclass(frozen=True)
class NameMatch:
    """One entity a column name suggests; ``rule`` is the rule's phrase, not the name."""

    entity: str
    prior: float
    rule: str


def _rules(
    entity: str | None, prior: float, *phrases: str, vetoes: frozenset[str] = frozenset()
) -> list[NameRule]:
    return [NameRule(phrase, entity, prior, vetoes) for phrase in phrases]


RULES: Final[tuple[NameRule, ...]] = tuple(
    _rules(EMAIL_ADDRESS, STRONG, "email", "courriel", "email address", "adresse courriel",
           "adresse email", "adresse electronique", "courrier electronique")
    + _rules(EMAIL_ADDRESS, WEAK, "mail")
    + _rules(PHONE_NUMBER, STRONG, "phone", "telephone", "phone number", "telephone number",
             "numero telephone", "cellphone", "cellulaire", "fax", "telecopieur")
    + _rules(PHONE_NUMBER, MEDIUM, "tel", "cell", "mobile")
    + _rules(PHONE_NUMBER, WEAK, "portable")
    + _rules(PERSON, STRONG, "first name", "given name", "prenom", "last name", "surname",
             "family name", "nom famille", "full name", "nom complet", "middle name",
             "maiden name")
    + _rules(PERSON, MEDIUM, *(f"{qualifier} name" for qualifier in _PERSON_QUALIFIERS),
             *(f"nom {qualifier}" for qualifier in _PERSON_QUALIFIERS))
    + _rules(PERSON, WEAK, "name", "nom", vetoes=_NOT_A_PERSON)
    + _rules(LOCATION, STRONG, "street address", "adresse postale", "mailing address",
             "billing address", "shipping address", "home address", "adresse domicile",
             "adresse facturation", "adresse livraison", "address line", "adresse ligne")
    + _rules(LOCATION, MEDIUM, "address", "adresse", "street", "rue", "civic number",
             "numero civique")
    + _rules(None, STRONG, "mac address", "adresse mac", "web address", "adresse web",
             "adresse url")
    + _rules(CA_POSTAL_CODE, STRONG, "postal code", "code postal", "postcode", "zip code")
    + _rules(CA_POSTAL_CODE, MEDIUM, "zip", "postal")
    + _rules(CA_SIN, STRONG, "nas", "sin", "social insurance", "social insurance number",
             "assurance sociale", "numero assurance sociale")
    + _rules(IP_ADDRESS, STRONG, "ip address", "adresse ip", "ip addr", "ipv4", "ipv6")
    + _rules(IP_ADDRESS, MEDIUM, "ip", "remote addr")
    + _rules(CREDIT_CARD, STRONG, "card number", "numero carte", "credit card",
             "carte credit", "cc number", "cc num", vetoes=_NOT_A_PAYMENT_CARD)
    + _rules(CREDIT_CARD, MEDIUM, "card", "carte", "pan", vetoes=_NOT_A_PAYMENT_CARD)
    + _rules(DATE_OF_BIRTH, STRONG, "birth date", "birthdate", "date naissance", "dob",
             "date birth", "birthday", "naissance")
    + _rules(DATE_OF_BIRTH, MEDIUM, "ddn")
    + _rules(CA_QC_HEALTH_NUMBER, STRONG, "ramq", "health card", "carte soleil",
             "assurance maladie", "numero assurance maladie", "health insurance number",
             "health number", "carte assurance maladie")
    + _rules(CA_QC_HEALTH_NUMBER, MEDIUM, "nam")
    + _rules(URL, STRONG, "url", "website", "site web", "web site", "homepage", "page web")
)  # fmt: skip
_BY_JOINED: Final[dict[str, NameRule]] = {"".join(rule.phrase.split()): rule for rule in RULES}
_CAMEL = re.compile(r"(?<=[a-z])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])|(?<=\D)(?=\d)|(?<=\d)(?=\D)")
_NOT_ALNUM = re.compile(r"[^a-z0-9]+")


def tokenize(name: str) -> tuple[str, ...]:
    """The words of a column name: case boundaries split, accents folded, articles dropped."""
    folded = unicodedata.normalize("NFKD", name)
    ascii_name = "".join(char for char in folded if not unicodedata.combining(char))
    spaced = _CAMEL.sub(" ", ascii_name).lower()
    return tuple(word for word in _NOT_ALNUM.split(spaced) if word and word not in _STOP_WORDS)


def match_column_name(name: str) -> tuple[NameMatch, ...]:
    """The entities ``name`` suggests, one per entity (highest prior first)."""
    words = tokenize(name)
    if _ABOUT_WORDS.intersection(words):
        return ()
    found: list[tuple[int, int, NameRule]] = []
    for start in range(len(words)):
        for end in range(start + 1, min(start + _MAX_WORDS, len(words)) + 1):
            rule = _BY_JOINED.get("".join(words[start:end]))
            if rule is not None and not rule.vetoes.intersection(words):
                found.append((start, end, rule))
    best: dict[str, NameMatch] = {}
    for start, end, rule in found:
        inside_longer = any(
            other_start <= start and end <= other_end and other_end - other_start > end - start
            for other_start, other_end, _ in found
        )
        if rule.entity is None or inside_longer:
            continue
        if rule.entity not in best or rule.prior > best[rule.entity].prior:
            best[rule.entity] = NameMatch(rule.entity, rule.prior, rule.phrase)
    return tuple(sorted(best.values(), key=lambda match: -match.prior))
