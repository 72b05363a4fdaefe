"""``region_of``: generalize a free-form location to its Canadian province or territory.

An address, a city or a postal code identifies a person far better than the province it
lies in, and statistics by region rarely need more. The result is always one of the closed
set ``REGIONS`` or ``None``: the input text itself never reaches the output.

Text is compared accent- and case-insensitively, as tokens (hyphens, apostrophes, dots and
commas separate them; ``St``/``Ste``/``Mt``/``Ft`` read as Saint/Sainte/Mount/Fort), and
names of up to ``MAX_TOKENS`` tokens are matched whole, longest first: never by substring.

Precedence, highest first; a tier is consulted only when the ones above found nothing:

1. Canadian postal codes, full (``H2X 1Y4``) or forward sortation area alone (``H2X``):
   the first letter gives the province, and ``X0A``-``X0C`` are Nunavut.
2. Explicit regions: province and territory names (English and French), postal and old
   abbreviations, foreign countries and US states (``Outside Canada``). One written before
   the first recognized place does not count: in ``Ontario St, Montréal`` it is a street.
3. Places: the Canadian municipalities of ``data/ca_places.csv`` and a few foreign cities.

Ambiguity gives ``None`` rather than a guess: within a tier, mentions of two different
regions (``Toronto, Ontario, Quebec``; ``Toronto, Montréal``), or a place name found in
several regions (``Waterloo``: Ontario or Quebec; ``London``: Ontario or abroad), are
unknown. A name right after a French street type (``rue``, ``boulevard``...) or right
before an English one (``Street``, ``Avenue``...) is a street and is ignored. Abbreviations
that are also words (``on``, ``que``, ``ont``, ``man``, ``us``...) count only in capitals or
followed by a dot (``ON``, ``Qué.``).
"""

from __future__ import annotations

import csv
import enum
import re
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Final

import pandas as pd

from anonymizers.operators import map_unique

PROVINCES: Final[dict[str, str]] = {
    "AB": "Alberta",
    "BC": "British Columbia",
    "MB": "Manitoba",
    "NB": "New Brunswick",
    "NL": "Newfoundland and Labrador",
    "NS": "Nova Scotia",
    "NT": "Northwest Territories",
    "NU": "Nunavut",
    "ON": "Ontario",
    "PE": "Prince Edward Island",
    "QC": "Quebec",
    "SK": "Saskatchewan",
    "YT": "Yukon",
}
OUTSIDE_CANADA: Final = "Outside Canada"
#: Every value ``region_of`` can return, besides ``None``.
REGIONS: Final[frozenset[str]] = frozenset({*PROVINCES.values(), OUTSIDE_CANADA})
#: The longest name matched, in tokens.
MAX_TOKENS: Final = 5

# Besides the two-letter code and the English name (the region label itself).
_PROVINCE_ALIASES: Final[dict[str, tuple[str, ...]]] = {
    "AB": ("Alta.",),
    "BC": ("Colombie-Britannique", "B.C.", "C.-B."),
    "MB": ("Man.",),
    "NB": ("Nouveau-Brunswick", "N.B."),
    "NL": ("Terre-Neuve-et-Labrador", "Terre-Neuve", "Newfoundland", "Labrador", "Nfld.",
           "N.L.", "T.-N.-L."),
    "NS": ("Nouvelle-Écosse", "N.S."),
    "NT": ("Territoires du Nord-Ouest", "N.W.T.", "NWT", "T.N.-O."),
    "NU": (),
    "ON": ("Ont.",),
    "PE": ("Île-du-Prince-Édouard", "P.E.I.", "PEI", "Î.-P.-É."),
    "QC": ("Québec", "Que.", "PQ", "P.Q."),
    "SK": ("Sask.",),
    "YT": ("Yukon Territory", "Y.T."),
}  # fmt: skip
# Explicit "Outside Canada" names that Faker's country lists lack.
_FOREIGN_REGIONS: Final = (
    "Outside Canada", "Hors Canada", "Hors du Canada",
    "USA", "U.S.A.", "US", "U.S.", "United States", "United States of America", "États-Unis",
    "États-Unis d'Amérique",
    "UK", "U.K.", "Great Britain", "Britain", "England", "Scotland", "Wales",
    "Northern Ireland", "Angleterre", "Écosse", "Pays de Galles", "Grande-Bretagne",
    "Chine", "China", "Corée", "Corée du Sud", "South Korea", "Russia", "Holland", "Hollande",
    "Bermudes", "Fidji", "Maldives", "Vatican", "Europe", "Asia", "Asie", "Africa", "Afrique",
    "Florida", "Floride", "California", "Californie", "Texas", "New York", "New Jersey",
    "Vermont", "Maine", "New Hampshire", "Massachusetts", "Michigan", "Ohio", "Illinois",
    "Washington", "Arizona", "Nevada", "Louisiana", "Louisiane", "Pennsylvania",
    "Pennsylvanie", "Connecticut", "Oregon", "Colorado", "Hawaii", "Alaska",
)  # fmt: skip
# Faker country names that are also common words or first names in Quebec.
_NOT_COUNTRIES: Final = frozenset({"canada", "maurice", "dominique", "reunion", "christmas"})
_FOREIGN_CITIES: Final = (
    "New York", "NYC", "Los Angeles", "Chicago", "Boston", "Miami", "San Francisco",
    "Seattle", "Detroit", "Buffalo", "Plattsburgh", "Philadelphia", "Atlanta", "Dallas",
    "Houston", "Denver", "Las Vegas", "Orlando", "Phoenix", "Fort Lauderdale", "Minneapolis",
    "Portland", "London", "Londres", "Manchester", "Edinburgh", "Édimbourg", "Cambridge",
    "Paris", "Lyon", "Marseille", "Bordeaux", "Toulouse", "Lille", "Nantes", "Strasbourg",
    "Dieppe", "Brussels", "Bruxelles", "Geneva", "Genève", "Zurich", "Berlin", "Munich",
    "Madrid", "Barcelona", "Barcelone", "Lisbon", "Lisbonne", "Rome", "Milan", "Amsterdam",
    "Dublin", "Tokyo", "Beijing", "Pékin", "Shanghai", "Hong Kong", "Seoul", "Mumbai",
    "Delhi", "New Delhi", "Sydney", "Melbourne", "Perth", "Dubai", "Mexico City", "Cancún",
    "Casablanca", "Algiers", "Alger", "Tunis", "Dakar", "Port-au-Prince", "Hamilton",
    "Kingston", "Manila", "Bangkok", "Cairo", "Le Caire", "Istanbul", "Moscow", "Moscou",
    "Havana", "La Havane", "Bogotá", "São Paulo", "Buenos Aires", "Rio de Janeiro",
)  # fmt: skip

_TOKEN: Final = re.compile(r"[^\W_]+")
_LIGATURES: Final = str.maketrans({"œ": "oe", "Œ": "OE", "æ": "ae", "Æ": "AE"})
_TOKEN_ALIASES: Final = {"st": "saint", "ste": "sainte", "mt": "mount", "ft": "fort"}
# Only deliberate (capitals, or a dot after) when they are also everyday words.
_WORDLIKE: Final = frozenset({"on", "ont", "que", "man", "nu", "us", "alta"})
_STREET_BEFORE: Final = frozenset(
    {"rue", "ruelle", "avenue", "av", "boulevard", "boul", "blvd", "chemin", "route", "rang",
     "montee", "croissant", "impasse", "allee", "promenade", "autoroute", "terrasse"}
)  # fmt: skip
_STREET_AFTER: Final = frozenset(
    {"street", "avenue", "ave", "road", "rd", "boulevard", "blvd", "drive", "crescent", "cres",
     "lane", "court", "highway", "hwy", "parkway", "pkwy", "terrace", "way", "trail"}
)  # fmt: skip
_STREET_FILLERS: Final = frozenset({"de", "du", "des", "d", "la", "le", "l"})
# Letters D, F, I, O, Q, U never occur in Canadian postal codes, W and Z never first.
_LETTER: Final = "[ABCEGHJ-NPRSTV-Z]"
_POSTAL_CODE: Final = re.compile(
    rf"(?<![A-Z0-9])([ABCEGHJ-NPRSTVXY]\d{_LETTER})(?:[ -]?\d{_LETTER}\d)?(?![A-Z0-9])"
)
_POSTAL_PROVINCE: Final = {
    letter: code
    for letters, code in (("A", "NL"), ("B", "NS"), ("C", "PE"), ("E", "NB"), ("GHJ", "QC"),
                          ("KLMNP", "ON"), ("R", "MB"), ("S", "SK"), ("T", "AB"), ("V", "BC"),
                          ("X", "NT"), ("Y", "YT"))
    for letter in letters
}  # fmt: skip
_NUNAVUT_FSAS: Final = frozenset({"X0A", "X0B", "X0C"})


class _Kind(enum.Enum):
    EXPLICIT = "explicit"
    PLACE = "place"


@dataclass(frozen=True, slots=True)
class _Token:
    key: str
    #: Written in capitals or followed by a dot: a deliberate abbreviation.
    strict: bool
    #: Only spaces or dots between it and the previous token: same phrase (``rue Ontario``).
    joined: bool


@dataclass(frozen=True, slots=True)
class _Mention:
    start: int
    end: int
    kind: _Kind
    regions: frozenset[str]


_Lexicon = dict[str, tuple[_Kind, frozenset[str]]]


def region_of(values: pd.Series) -> pd.Series:
    """The region of each (non-null) cell: a label of ``REGIONS`` or ``None``, same index.

    Computed once per distinct value; cells that are not strings are read as ``str(value)``.
    """
    return map_unique(values.astype(str), region_of_text)


def region_of_text(text: str) -> str | None:
    """The region of one free-form location, or ``None`` when unknown or ambiguous."""
    normalized = _normalize(text)
    postal = _postal_regions(normalized)
    if postal:
        return _only(postal)
    tokens = _tokens(normalized)
    mentions = [m for m in _mentions(tokens, _lexicon()) if not _is_street(tokens, m)]
    first_place = min((m.start for m in mentions if m.kind is _Kind.PLACE), default=-1)
    explicit = [m for m in mentions if m.kind is _Kind.EXPLICIT and m.start > first_place]
    if explicit:
        return _only(_union(explicit))
    return _only(_union(m for m in mentions if m.kind is _Kind.PLACE))


def names_places(text: str) -> bool:
    """Whether ``text`` is nothing but known places: municipalities, provinces, states,
    countries (``Montréal``, ``St-Jérôme, QC``, ``Colombie-Britannique``, ``France``), each
    matched whole, in any case and with or without accents, as ``region_of_text`` reads
    them. Ambiguous places count: ``London`` is a place wherever it lies."""
    tokens = _tokens(_normalize(text))
    if not tokens:
        return False
    mentions = list(_mentions(tokens, _lexicon()))
    return sum(mention.end - mention.start for mention in mentions) == len(tokens)


def _normalize(text: str) -> str:
    """Drop accents (NFKD, then no combining marks); case is kept for ``_Token.strict``."""
    decomposed = unicodedata.normalize("NFKD", text.translate(_LIGATURES))
    return "".join(char for char in decomposed if not unicodedata.combining(char))


def _tokens(normalized: str) -> list[_Token]:
    tokens = []
    previous_end = 0
    for match in _TOKEN.finditer(normalized):
        word = match.group().casefold()
        tokens.append(
            _Token(
                key=_TOKEN_ALIASES.get(word, word),
                strict=match.group().isupper() or normalized.startswith(".", match.end()),
                joined=not normalized[previous_end : match.start()].strip(" ."),
            )
        )
        previous_end = match.end()
    return tokens


def _key(name: str) -> str:
    """The lookup key of a name: its tokens, folded, joined by single spaces."""
    return " ".join(token.key for token in _tokens(_normalize(name)))


def _postal_regions(normalized: str) -> set[str]:
    regions = set()
    for fsa in _POSTAL_CODE.findall(normalized.upper()):
        code = "NU" if fsa in _NUNAVUT_FSAS else _POSTAL_PROVINCE[fsa[0]]
        regions.add(PROVINCES[code])
    return regions


def _mentions(tokens: list[_Token], lexicon: _Lexicon) -> Iterator[_Mention]:
    """Known names, left to right, each the longest one starting where it starts."""
    start = 0
    while start < len(tokens):
        mention = _longest_match(tokens, start, lexicon)
        if mention is None:
            start += 1
        else:
            yield mention
            start = mention.end


def _longest_match(tokens: list[_Token], start: int, lexicon: _Lexicon) -> _Mention | None:
    for size in range(min(MAX_TOKENS, len(tokens) - start), 0, -1):
        key = " ".join(token.key for token in tokens[start : start + size])
        entry = lexicon.get(key)
        if entry is None or (size == 1 and key in _WORDLIKE and not tokens[start].strict):
            continue
        return _Mention(start, start + size, *entry)
    return None


def _is_street(tokens: list[_Token], mention: _Mention) -> bool:
    """``rue Ontario``, ``boulevard de la Victoria``, ``Victoria Street`` name streets."""
    after = mention.end
    if after < len(tokens) and tokens[after].joined and tokens[after].key in _STREET_AFTER:
        return True
    before = mention.start - 1
    if before < 0 or not tokens[mention.start].joined:
        return False
    for _ in range(2):  # "rue de la Montagne": skip at most two little words
        if before > 0 and tokens[before].key in _STREET_FILLERS and tokens[before].joined:
            before -= 1
    return tokens[before].key in _STREET_BEFORE


def _union(mentions: Iterable[_Mention]) -> set[str]:
    return {region for mention in mentions for region in mention.regions}


def _only(regions: set[str]) -> str | None:
    return next(iter(regions)) if len(regions) == 1 else None


@cache
def _lexicon() -> _Lexicon:
    """Every known name's key, with its tier and regions; built once, on first use."""
    places: dict[str, set[str]] = {}
    explicit: dict[str, set[str]] = {}
    for name, code in gazetteer():
        _add(places, name, PROVINCES[code])
    for name in _FOREIGN_CITIES:
        _add(places, name, OUTSIDE_CANADA)
    for code, label in PROVINCES.items():
        for name in (code, label, *_PROVINCE_ALIASES[code]):
            _add(explicit, name, label)
    for name in (*_FOREIGN_REGIONS, *_faker_countries()):
        _add(explicit, name, OUTSIDE_CANADA)
    # An explicit name wins over a place of the same name ("Québec", "New York").
    lexicon: _Lexicon = {key: (_Kind.PLACE, frozenset(r)) for key, r in places.items()}
    lexicon.update({key: (_Kind.EXPLICIT, frozenset(r)) for key, r in explicit.items()})
    return lexicon


def _add(names: dict[str, set[str]], name: str, region: str) -> None:
    key = _key(name)
    if not key or key.count(" ") >= MAX_TOKENS:
        raise ValueError(f"name {name!r} is empty or longer than {MAX_TOKENS} tokens")
    names.setdefault(key, set()).add(region)


@cache
def gazetteer() -> tuple[tuple[str, str], ...]:
    """The ``(name, province code)`` rows of ``data/ca_places.csv``."""
    path = resources.files("anonymizers") / "data" / "ca_places.csv"
    rows = csv.DictReader(path.read_text(encoding="utf-8").splitlines())
    return tuple((row["name"], row["province"]) for row in rows)


def _faker_countries() -> list[str]:
    """Faker's English and French country names, minus odd forms ("Chine (Rép. pop.)")."""
    from faker.providers.address.en_US import Provider as English
    from faker.providers.address.fr_FR import Provider as French

    return [
        name
        for name in (*English.countries, *French.countries)
        if not any(mark in name for mark in "(,")
        and _key(name) not in _NOT_COUNTRIES
        and _key(name).count(" ") < MAX_TOKENS
    ]
