"""Cheap per-value shapes: a value that could be a person's name, and nothing else.

A shape alone proves nothing ("Montréal" is shaped like a surname), so it only narrows
what else is asked: a column called ``nom`` whose values nearly all look like people's
names holds people's names (a ``nom`` column of "Chaise de bureau" does not), and only
name-shaped short values are worth the NER pass that tells "Eloy Zayas" from "Canada".
"""

from __future__ import annotations

import csv
import re
import unicodedata
from collections.abc import Callable, Sequence
from functools import lru_cache
from importlib import resources
from typing import Final, Literal

from anonymizers.detection.entities import PERSON

MAX_NAME_WORDS: Final = 5
_PARTICLES: Final = frozenset(
    {"de", "du", "des", "la", "le", "van", "von", "der", "den", "da", "di", "del", "della",
     "dos", "das", "do", "bin", "ben", "al", "el", "y", "e"}
)  # fmt: skip
_PARTS = re.compile(r"['\u2019-]")


def looks_like_person_name(value: str) -> bool:
    """One to five capitalised words, particles allowed, no digits: ``Marie de la Roche``.

    Any alphabet's letters count (``Nguyễn``, ``Pędzik``); an initial may end with a
    period and a surname with a comma (``Tremblay, M.``).
    """
    words = [word.rstrip(".,") for word in value.split()]
    named = [word for word in words if word not in _PARTICLES]
    return 0 < len(named) <= MAX_NAME_WORDS and all(map(_capitalised, named))


def _capitalised(word: str) -> bool:
    """``Tremblay``, ``McDonald``, ``O'Brien``, ``Jean-François``, ``TREMBLAY``, ``d'Amours``."""
    parts = _PARTS.split(word)
    if len(parts) > 1 and parts[0] in ("d", "l"):  # d'Amours, l'Heureux
        parts = parts[1:]
    return all(part.isalpha() and part[0].isupper() for part in parts)


#: The shape that confirms a weak name rule, per entity.
SHAPES: Final[dict[str, Callable[[str], bool]]] = {PERSON: looks_like_person_name}


#: English street types besides Faker's list, as people abbreviate them.
_ENGLISH_STREET_ABBREVIATIONS: Final = (
    "St", "Ave", "Av", "Rd", "Blvd", "Dr", "Cres", "Crt", "Ct", "Ln", "Hwy", "Pkwy", "Pl",
    "Terr", "Sq", "Cir",
)  # fmt: skip
#: French street types besides Faker's list (``rue``, ``chemin``...).
_FRENCH_STREET_TYPES: Final = (
    "allée", "boul", "boul.", "bd", "ch.", "av.", "place", "côte", "croissant", "impasse",
    "promenade", "terrasse", "montée", "ruelle", "carré", "rang", "autoroute", "square",
)  # fmt: skip
#: A civic number: ``1234``, ``12B``, ``10-1234`` (unit-number), ``1234,``.
_CIVIC = r"(?:^|(?<=[\s,]))\d{1,6}[A-Za-z]?(?:-\d{1,6}[A-Za-z]?)?,?"
#: Faker's English city shapes (``West Davidmouth``, ``Pearsonborough``) and French ones
#: (``Baie-Saint-Paul``, ``Lac-Mégantic``, ``Sainte-Julie``), as prefixes and endings.
_CITY_FIRST_WORDS: Final = frozenset(
    {"north", "east", "west", "south", "new", "lake", "port", "fort", "mount", "saint", "sainte",
     "st", "ste", "mont", "lac", "baie", "ville", "pointe", "riviere", "val", "cap", "ile",
     "notre", "grand", "grande", "petit", "petite", "haut", "bas"}
)  # fmt: skip
_CITY_LAST_WORDS: Final = frozenset({"est", "ouest", "nord", "sud", "mer", "city", "falls"})
_CITY_ENDINGS: Final = (
    "town", "ton", "ville", "berg", "burgh", "borough", "bury", "view", "port", "mouth",
    "stad", "furt", "chester", "fort", "haven", "shire", "field", "ford", "wood", "brook",
)  # fmt: skip


@lru_cache(maxsize=1)
def _street_address() -> re.Pattern[str]:
    from faker.providers.address.en_US import Provider as English
    from faker.providers.address.fr_CA import Provider as French

    english = sorted({*English.street_suffixes, *_ENGLISH_STREET_ABBREVIATIONS}, key=len)
    french = sorted({*French.street_prefixes, *_FRENCH_STREET_TYPES}, key=len)
    english_types = "|".join(re.escape(word) for word in reversed(english))
    french_types = "|".join(re.escape(word) for word in reversed(french))
    word = r"[^\W\d_][\w'\u2019.-]*"
    return re.compile(
        rf"{_CIVIC}\s+(?:(?:{french_types})(?=[\s,]|$)"
        rf"|(?:{word}\s+){{1,4}}(?:{english_types})\.?(?=[\s,]|$))",
        re.IGNORECASE,
    )


def looks_like_street_address(value: str) -> bool:
    """A value that *is* an address, starting with a civic number then a street:
    ``3608 rue Fullum``, ``12 boul. René-Lévesque O``, ``7835 Erica Trace Suite 158``,
    ``Unit 30, 10310 Yonge Street, Longueuil`` (Faker's street types of both languages,
    and their usual abbreviations). A sentence that mentions an address is not one."""
    if len(value) > MAX_ADDRESS_CHARS:
        return False
    found = _street_address().search(value)
    return found is not None and found.start() <= MAX_UNIT_CHARS


#: Longer values are sentences, not addresses.
MAX_ADDRESS_CHARS: Final = 120
#: What may come before the civic number: a unit (``app. 4,``, ``Unit 30 -``).
MAX_UNIT_CHARS: Final = 16


def looks_like_city_name(value: str) -> bool:
    """Capitalised words shaped like a town's name: a place word first (``North``,
    ``Lac``, ``Saint``), a direction last (``Est``, ``Ouest``), or one word with a town's
    ending (``Pearsonborough``, ``Fredericton``; ``Mark Crawford`` is a person)."""
    if not looks_like_person_name(value):
        return False
    words = [_fold(word) for word in re.split(r"[\s-]+", value) if word]
    if len(words) >= 2 and (words[0] in _CITY_FIRST_WORDS or words[-1] in _CITY_LAST_WORDS):
        return True
    last = words[-1].rstrip(".,")
    return len(words) == 1 and any(
        last.endswith(ending) and len(last) >= len(ending) + 3 for ending in _CITY_ENDINGS
    )


def fold(text: str) -> str:
    """Lower case without accents: ``Tél.`` and ``tel.``, ``Québec`` and ``quebec`` match."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(char for char in decomposed if not unicodedata.combining(char))


def _fold(word: str) -> str:
    """A word's ``fold``, without the apostrophes around it (``L'``, ``'Est``)."""
    return fold(word).strip("'\u2019")


@lru_cache(maxsize=1)
def _group_terms() -> tuple[frozenset[str], frozenset[str]]:
    """The folded terms of ``data/nrp_terms.csv`` (nationalities, religions and political
    affiliations in English and French, both genders), and those that are also a
    language's name."""
    path = resources.files("anonymizers") / "data" / "nrp_terms.csv"
    rows = list(csv.DictReader(path.read_text(encoding="utf-8").splitlines()))
    terms = {row["term"]: " ".join(map(_fold, row["term"].split())) for row in rows}
    languages = {terms[row["term"]] for row in rows if row["also_language"] == "yes"}
    return frozenset(terms.values()), frozenset(languages)


#: Words that say one belongs to a group: ``NDP supporter``, ``militante caquiste``.
_ADHERENT_WORDS: Final = frozenset(
    {"supporter", "supporters", "partisan", "partisane", "partisans", "militant", "militante",
     "militants", "member", "membre", "voter", "electeur", "electrice", "pratiquant",
     "pratiquante", "practising", "practicing"}
)  # fmt: skip
_GROUP_SEPARATORS = re.compile(r"\s*(?:[,;/&+]|\bet\b|\band\b)\s*", re.IGNORECASE)


def group_kind(value: str) -> Literal["group", "language"] | None:
    """What ``value`` names when it is nothing but nationalities, religions or political
    affiliations (``Haïtienne``, ``catholique``, ``Canadian / Lebanese``, ``NDP
    supporter``; plurals included): ``"group"``; ``"language"`` when every term is also a
    language's name (``Italian``, ``français``: a language or a cuisine column, which NER
    must not make a group either; ``French / Canadian`` is a group); else ``None``."""
    terms, languages = _group_terms()
    keys = []
    for part in _GROUP_SEPARATORS.split(value.strip()):
        words = [word for word in map(_fold, part.split()) if word not in _ADHERENT_WORDS]
        key = " ".join(words)
        if key not in terms and key.endswith("s") and key[:-1] in terms:
            key = key[:-1]
        if key not in terms:
            return None
        keys.append(key)
    if not keys:
        return None
    return "language" if all(key in languages for key in keys) else "group"


#: Faker's locales whose people's names (in Latin script) the name lists are built from:
#: Quebec's and Canada's languages and its largest immigrant communities.
NAME_LOCALES: Final = (
    "en_US", "en_GB", "en_IN", "fr_FR", "fr_CA", "es_MX", "es_ES", "pt_BR", "it_IT",
    "de_DE", "vi_VN", "ro_RO", "tr_TR",
)  # fmt: skip


@lru_cache(maxsize=1)
def given_names() -> frozenset[str]:
    """Given names of two letters or more from Faker's English and French lists (the
    given-name recognizer's)."""
    return frozenset(name for name in _faker_names("first_names", ("en_US", "fr_CA", "fr_FR")))


@lru_cache(maxsize=1)
def _name_parts() -> frozenset[str]:
    """The folded given names and surnames of every locale of ``NAME_LOCALES``."""
    names = _faker_names("first_names", NAME_LOCALES) | _faker_names("last_names", NAME_LOCALES)
    return frozenset(_fold(name) for name in names)


def _faker_names(kind: str, locales: Sequence[str]) -> frozenset[str]:
    import importlib

    names: set[str] = set()
    for locale in locales:
        provider = importlib.import_module(f"faker.providers.person.{locale}").Provider
        names.update(str(name) for name in getattr(provider, kind, ()) if len(str(name)) > 1)
    return frozenset(names)


#: Names that are also everyday words (colours, trades, sizes, seasons, brands): alone,
#: such a value is the word (a colour column of Black, White, Gray, Brown is no column of
#: surnames); beside another name it is a name (``Ruby Tremblay``).
_EVERYDAY_WORDS: Final = frozenset(
    {"black", "white", "gray", "grey", "brown", "green", "rose", "olive", "amber", "coral",
     "jade", "ruby", "tan", "violet", "blue", "pink", "gold", "silver", "blanc", "noir",
     "brun", "gris", "vert", "rouge", "baker", "carpenter", "mason", "miller", "fisher",
     "cook", "taylor", "porter", "hunter", "butler", "farmer", "gardner", "shepherd",
     "turner", "walker", "small", "long", "short", "petit", "grand", "young", "king",
     "winter", "summer", "may", "june", "april", "august", "bell", "rogers", "shaw", "ford",
     "ferrari", "mercedes", "desjardins", "sterling", "crystal", "diamond", "pearl",
     "star", "sky", "river", "stone", "wood", "hill", "lane", "field", "marine", "royal",
     "page", "price", "cash", "bond", "banks", "major", "noble", "rich", "dean", "chase"}
)  # fmt: skip


def names_people(value: str) -> bool:
    """A name-shaped value whose every word (and every part of a hyphenated one) is a
    known given name or surname: ``Dave``, ``Piché-Gosselin``, ``Nguyen Van An``; a
    single everyday word that is also a name (``Black``, ``Baker``) is not one."""
    if not looks_like_person_name(value):
        return False
    known = _name_parts()
    words = [word.rstrip(".,") for word in value.split()]
    parts = [
        _fold(part)
        for word in words
        if word not in _PARTICLES
        for part in re.split(r"-", word)
        if part
    ]
    if len(parts) == 1 and parts[0] in _EVERYDAY_WORDS:
        return False
    return bool(parts) and all(part in known for part in parts)


def is_canadian_phone_number(digits: str) -> bool:
    """Ten digits (or eleven, after a leading 1) that libphonenumber finds a valid number
    of a Canadian area code: random ten-digit numbers (order numbers, ids) are one in
    twenty."""
    if not digits.isdigit() or not (
        len(digits) == 10 or (len(digits) == 11 and digits.startswith("1"))
    ):
        return False
    import phonenumbers

    number = phonenumbers.parse(digits, "CA")
    return phonenumbers.is_valid_number(number) and (
        phonenumbers.region_code_for_number(number) == "CA"
    )
